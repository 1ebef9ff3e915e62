//! `host-sim connect` driving the add-on's connect wizard through the ABI,
//! scripted (`--email`, `--start`, `--at`, `--answers`), with the real
//! add-on against the real online service (od-online's `TestServer`): the
//! happy path to a finished first synchronisation, a new Online ID made in
//! the wizard, a first synchronisation later that the agent starts on time,
//! a cancel on every page that leaves nothing behind, and the refusals.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{Duration as ChronoDuration, Local};
use common::sync::{eventually, licensed_host, Agent, Web, EMAIL, PASSWORD};
use common::{field, Host};
use od_online::testing::TestServer;
use serde_json::json;

fn ok(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    common::sync::ok(host, server.base_url(), password, args)
}

fn fails(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    common::sync::fails(host, server.base_url(), password, args)
}

/// Every file called `name` under `dir`.
fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_named(&path, name));
            } else if path.file_name().is_some_and(|n| n == name) {
                found.push(path);
            }
        }
    }
    found
}

fn demo_company_connected(host: &Host) -> bool {
    host.channel("system.companies", &[])["companies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "Nordlys Handel AS" && c["online_desktop_connected"] == true)
}

fn companies_online(server: &TestServer) -> Vec<serde_json::Value> {
    let session = server.log_in(EMAIL, PASSWORD);
    let answer = server
        .get("/api/v1/companies")
        .bearer(&session.token)
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    body.as_array()
        .cloned()
        .or_else(|| body["companies"].as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn the_scripted_wizard_connects_and_runs_the_first_sync_now() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let host = licensed_host("60");

    let out = ok(
        &host,
        &server,
        Some(PASSWORD),
        &["connect", "--email", EMAIL, "--start", "now"],
    );
    for title in ["Step 1 of 6", "Step 3 of 6", "Step 6 of 6"] {
        assert!(out.contains(title), "{out}");
    }
    assert!(out.contains("is connected to Online Desktop"), "{out}");
    assert!(out.contains("The first synchronisation is done"), "{out}");
    assert!(out.contains("Online copy: http://"), "{out}");
    assert!(!out.contains(PASSWORD), "{out}");
    assert!(demo_company_connected(&host));

    // The online copy equals the program's data, entity by entity.
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    if let Some(report) = common::sync::differences(&host, None, &web) {
        panic!("the host and the online copy differ:\n{report}");
    }

    // A second run on the same company is refused in words.
    let err = fails(
        &host,
        &server,
        Some(PASSWORD),
        &["connect", "--email", EMAIL, "--start", "now"],
    );
    assert!(
        err.contains("This company is already connected to Online Desktop"),
        "{err}"
    );
    let settings = ok(&host, &server, None, &["settings"]);
    assert_eq!(field(&settings, "Connected"), Some("yes"), "{settings}");
    assert!(
        field(&settings, "Connected by").is_some_and(|by| by.starts_with(EMAIL)),
        "{settings}"
    );
}

#[test]
fn a_new_online_id_is_created_in_the_wizard() {
    let server = TestServer::start();
    let host = licensed_host("60");
    let mut child = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--data-dir")
        .arg(host.data_dir())
        .args(["--service-url", server.base_url()])
        .args([
            "connect",
            "--email",
            EMAIL,
            "--create-online-id",
            "--start",
            "now",
        ])
        .env_remove("OD_HOST_DATA")
        .env("OD_ONLINE_PASSWORD", PASSWORD)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The person opens the link in the mail and chooses a password.
    let mail = server
        .outbox()
        .wait_for_mails_to(EMAIL, 1)
        .pop()
        .expect("the verification mail");
    let token = mail.token().expect("a link with a token");
    let answer = server
        .post("/api/v1/accounts/verify")
        .json(&json!({ "token": token, "password": PASSWORD }))
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let output = child.wait_with_output().unwrap();
    let (out, err) = common::sync::text(&output);
    assert!(output.status.success(), "{out}\n{err}");
    assert!(out.contains("Open the link in the mail"), "{out}");
    assert!(out.contains("The first synchronisation is done"), "{out}");
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    if let Some(report) = common::sync::differences(&host, None, &web) {
        panic!("the host and the online copy differ:\n{report}");
    }
}

#[test]
fn later_leaves_the_first_sync_to_the_agent_on_time() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let host = licensed_host("60");
    let at = (Local::now() + ChronoDuration::seconds(6))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let answers = host.path("answers.json");
    std::fs::write(
        &answers,
        json!({ "email": EMAIL, "start": "later", "at": at }).to_string(),
    )
    .unwrap();
    let out = ok(
        &host,
        &server,
        Some(PASSWORD),
        &["connect", "--answers", answers.to_str().unwrap()],
    );
    assert!(out.contains("is connected to Online Desktop"), "{out}");
    assert!(out.contains(&format!("scheduled for {at}")), "{out}");
    assert!(out.contains("host-sim agent"), "{out}");
    let status = ok(&host, &server, None, &["sync", "status"]);
    assert_eq!(
        field(&status, "First synchronisation"),
        Some("not done yet")
    );

    let _agent = Agent::start(&host, server.base_url(), None, "agent");
    eventually("the scheduled first synchronisation", || {
        let out = ok(&host, &server, None, &["sync", "status"]);
        (field(&out, "First synchronisation") == Some("done")).then_some(())
    });
    let due = chrono::NaiveDateTime::parse_from_str(&at, "%Y-%m-%d %H:%M:%S").unwrap();
    assert!(Local::now().naive_local() >= due, "ran before {at}");
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    if let Some(report) = common::sync::differences(&host, None, &web) {
        panic!("the host and the online copy differ:\n{report}");
    }
}

#[test]
fn cancel_on_every_page_leaves_nothing_behind() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let host = licensed_host("60");
    for page in [
        "prerequisites",
        "welcome",
        "online_id",
        "company",
        "start",
        "finish",
    ] {
        let answers = host.path("answers.toml");
        std::fs::write(
            &answers,
            format!("email = \"{EMAIL}\"\nstart = \"now\"\ncancel_at = \"{page}\"\n"),
        )
        .unwrap();
        let out = ok(
            &host,
            &server,
            Some(PASSWORD),
            &["connect", "--answers", answers.to_str().unwrap()],
        );
        assert!(out.contains("The wizard was cancelled"), "{page}: {out}");
        assert!(
            files_named(&host.data_dir(), "connection.json").is_empty(),
            "{page}: a connection file was left"
        );
        assert!(
            files_named(&host.data_dir(), "schedule.json").is_empty(),
            "{page}: a schedule was left"
        );
        assert!(!demo_company_connected(&host), "{page}");
        assert!(
            companies_online(&server).is_empty(),
            "{page}: a company is registered online"
        );
    }
}

#[test]
fn a_wrong_password_is_refused_on_the_online_id_page() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let host = licensed_host("60");
    let err = fails(
        &host,
        &server,
        Some("not the password"),
        &["connect", "--email", EMAIL, "--start", "now"],
    );
    assert!(
        err.contains("The e-mail address or the password is wrong."),
        "{err}"
    );
    assert!(!err.contains("not the password"), "{err}");
    assert!(!demo_company_connected(&host));
    assert!(files_named(&host.data_dir(), "connection.json").is_empty());
    // Without a password and without a terminal to ask in.
    let err = fails(&host, &server, None, &["connect", "--email", EMAIL]);
    assert!(err.contains("set OD_ONLINE_PASSWORD"), "{err}");
    // Without a script and without a terminal: the check only.
    let out = ok(&host, &server, None, &["connect"]);
    assert!(out.contains("walk through the connect wizard"), "{out}");
}

#[test]
fn an_unreachable_service_stops_the_wizard_on_its_first_page() {
    let host = licensed_host("60");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let output = common::sync::run(
        &host,
        &format!("http://127.0.0.1:{port}"),
        Some(PASSWORD),
        &["connect", "--email", EMAIL, "--start", "now"],
    );
    let (out, err) = common::sync::text(&output);
    assert_eq!(output.status.code(), Some(3), "{out}\n{err}");
    assert!(out.contains("Step 1 of 6"), "{out}");
    assert!(
        err.contains("cannot be reached from this computer"),
        "{err}"
    );
    assert!(!demo_company_connected(&host));
}
