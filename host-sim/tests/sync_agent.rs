//! `host-sim sync ...` and `host-sim agent` with the real add-on against the
//! real online service (od-online's `TestServer` on 127.0.0.1): connect,
//! the first synchronisation, edits both ways, the history, SIGTERM, and
//! the clear refusals.
#![cfg(unix)]

mod common;

use std::process::Command;

use common::sync::{eventually, licensed_host, Agent, Web, EMAIL, PASSWORD};
use common::{field, Host};
use od_online::testing::TestServer;
use serde_json::{json, Value};

fn ok(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    common::sync::ok(host, server.base_url(), password, args)
}

fn fails(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    common::sync::fails(host, server.base_url(), password, args)
}

fn contact_by_number(web: &Web, number: i64) -> Option<Value> {
    web.records("contacts")
        .into_iter()
        .find(|r| r["fields"]["number"].as_i64() == Some(number))
}

#[test]
fn the_agent_keeps_host_and_online_in_step_and_stops_on_sigterm() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let host = licensed_host("300");

    let out = ok(
        &host,
        &server,
        Some(PASSWORD),
        &["sync", "connect", "--email", EMAIL],
    );
    assert!(out.contains("is connected to Online Desktop"), "{out}");
    assert!(!out.contains(PASSWORD));
    // Connecting again is refused in words, and changes nothing.
    let err = fails(
        &host,
        &server,
        Some(PASSWORD),
        &["sync", "connect", "--email", EMAIL],
    );
    assert!(
        err.contains("is already connected to Online Desktop"),
        "{err}"
    );

    let mut agent = Agent::start(&host, server.base_url(), None, "agent");
    let status = eventually("the first synchronisation", || {
        let out = ok(&host, &server, None, &["sync", "status"]);
        (field(&out, "First synchronisation") == Some("done")).then_some(out)
    });
    assert_eq!(
        field(&status, "Sync agent").map(|s| s.starts_with("running")),
        Some(true),
        "{status}"
    );
    let log = agent.log();
    assert!(
        log.contains("Online Desktop sync agent")
            && log.contains("Nordlys Handel AS")
            && log.contains(server.base_url()),
        "{log}"
    );
    assert!(log.contains("state first_sync"), "{log}");

    // The oracle: every entity's digest online equals the host's.
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    let local = common::sync::host_checksums(&host.data_dir(), None);
    assert!(
        local.values().all(|(count, _)| *count > 0),
        "an entity has no records in the demo: {local:?}"
    );
    if let Some(report) = common::sync::differences(&host, None, &web) {
        panic!("the host and the online copy differ:\n{report}");
    }

    // An edit in the program goes online.
    let shown = host.ok(&["record", "show", "contacts", "1"]);
    let number: i64 = field(&shown, "number").unwrap().parse().unwrap();
    host.ok(&["record", "edit", "contacts", "1", "--set", "city=Tromsø"]);
    let online_contact = eventually("the host's edit online", || {
        contact_by_number(&web, number).filter(|r| r["fields"]["city"] == "Tromsø")
    });

    // An edit online comes into the program.
    let global_id = online_contact["global_id"].as_str().unwrap();
    web.patch("contacts", global_id, json!({ "phone": "+47 77 60 00 00" }));
    eventually("the online edit in the program", || {
        let shown = host.ok(&["record", "show", "contacts", "1"]);
        (field(&shown, "phone") == Some("+47 77 60 00 00")).then_some(())
    });

    // The history lists the first synchronisation with its counts.
    let history = ok(&host, &server, None, &["sync", "history"]);
    assert!(
        history.contains("first synchronisation · finished"),
        "{history}"
    );
    let first_run = &history[history.find("first synchronisation · finished").unwrap()..];
    let contacts_line = first_run
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("contacts "))
        .unwrap_or_else(|| panic!("no contacts row\n{history}"));
    assert!(
        contacts_line.split_whitespace().any(|w| w == "30"),
        "{history}"
    );
    let json: Value =
        serde_json::from_str(&ok(&host, &server, None, &["sync", "history", "--json"])).unwrap();
    let first = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "first_sync")
        .expect("a first-sync run");
    assert_eq!(first["outcome"], "finished", "{json}");
    let contacts = first["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"] == "contacts")
        .unwrap();
    assert_eq!(contacts["to_online"], 30, "{json}");

    // SIGTERM: a stop at a safe point, exit code 0.
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
    let log = agent.log();
    assert!(log.contains("state stopped"), "{log}");
    assert!(log.contains("agent stopped"), "{log}");
    let status = ok(&host, &server, None, &["sync", "status"]);
    assert_eq!(
        field(&status, "Sync agent"),
        Some("not running"),
        "{status}"
    );
}

#[test]
fn status_before_connecting_says_not_connected() {
    let server = TestServer::start();
    let host = licensed_host("60");
    let out = ok(&host, &server, None, &["sync", "status"]);
    assert!(out.contains("not connected to Online Desktop"), "{out}");
    assert!(out.contains("host-sim connect"), "{out}");
    // Starting without a connection says what to do first.
    let err = fails(&host, &server, None, &["agent"]);
    assert!(err.contains("not connected to Online Desktop yet"), "{err}");
}

#[test]
fn connecting_with_a_wrong_password_is_refused_in_words() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let host = licensed_host("60");
    let err = fails(
        &host,
        &server,
        Some("not the password"),
        &["sync", "connect", "--email", EMAIL],
    );
    assert!(
        err.contains("Your Online ID")
            && err.contains("The e-mail address or the password is wrong."),
        "{err}"
    );
    assert!(!err.contains("not the password"), "{err}");
    // Without a password and without a terminal to ask in.
    let err = fails(&host, &server, None, &["sync", "connect", "--email", EMAIL]);
    assert!(err.contains("set OD_ONLINE_PASSWORD"), "{err}");
    let out = ok(&host, &server, None, &["sync", "status"]);
    assert!(out.contains("not connected to Online Desktop"), "{out}");
}

#[test]
fn connecting_to_a_service_that_is_not_there_says_so() {
    let server = TestServer::start();
    let host = licensed_host("60");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--data-dir")
        .arg(host.data_dir())
        .args(["--service-url", &format!("http://127.0.0.1:{port}")])
        .args(["sync", "connect", "--email", EMAIL])
        .env("OD_ONLINE_PASSWORD", PASSWORD)
        .env_remove("OD_HOST_DATA")
        .output()
        .unwrap();
    let (_, err) = common::sync::text(&output);
    // The wizard's first page, the requirements, refuses (exit code 3).
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(
        err.contains("cannot be reached from this computer"),
        "{err}"
    );
    drop(server);
}

#[test]
fn a_schedule_in_the_past_is_refused_and_a_future_one_is_kept() {
    let server = TestServer::start();
    let host = licensed_host("60");
    let err = fails(
        &host,
        &server,
        None,
        &["sync", "schedule", "2020-01-01 10:00"],
    );
    assert!(
        err.contains("has already passed; choose a time in the future"),
        "{err}"
    );
    let err = fails(&host, &server, None, &["sync", "schedule", "Christmas eve"]);
    assert!(err.contains("is not a date and time"), "{err}");
    let out = ok(
        &host,
        &server,
        None,
        &["sync", "schedule", "2099-12-24 22:00"],
    );
    assert!(out.contains("scheduled for 2099-12-24 22:00:00"), "{out}");
    let out = ok(&host, &server, None, &["sync", "schedule", "--clear"]);
    assert!(out.contains("cleared"), "{out}");
}
