//! "Company settings → Online Desktop" with the real add-on against the
//! real online service (od-online's `TestServer`): Disconnect and connect
//! again (a full new synchronisation), Update connection after a password
//! change, Change user to a second Online ID, the restore guard, and a
//! restore done anyway that stops synchronisation until Update connection.
#![cfg(unix)]

mod common;

use common::sync::{assert_converges, licensed_host, Agent, Web, EMAIL, PASSWORD};
use common::{field, Host};
use od_online::testing::TestServer;
use serde_json::json;

const NEW_PASSWORD: &str = "a brand new passphrase";

fn ok(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    common::sync::ok(host, server.base_url(), password, args)
}

fn fails(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    common::sync::fails(host, server.base_url(), password, args)
}

/// A licensed host connected with the scripted wizard, first sync done.
fn connected(server: &TestServer) -> Host {
    server.create_online_id(EMAIL, PASSWORD);
    let host = licensed_host("60");
    let out = ok(
        &host,
        server,
        Some(PASSWORD),
        &["connect", "--email", EMAIL, "--start", "now"],
    );
    assert!(out.contains("The first synchronisation is done"), "{out}");
    host
}

/// Live records of the company online, over every entity (0 when the
/// service has no data for it any more).
fn online_records(web: &Web, host: &Host) -> usize {
    common::sync::host_checksums(&host.data_dir(), None)
        .keys()
        .map(|entity| {
            let answer = web.call(
                "GET",
                &format!(
                    "/api/v1/companies/{}/records/{entity}?limit=500",
                    web.company_id
                ),
                None,
            );
            if answer.status == 200 {
                answer.json()["records"].as_array().map_or(0, Vec::len)
            } else {
                0
            }
        })
        .sum()
}

fn agent_context(agent: &Agent) -> impl Fn() -> String + '_ {
    move || agent.log()
}

#[test]
fn disconnect_then_connect_again_synchronises_everything_anew() {
    let server = TestServer::start();
    let host = connected(&server);
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    assert!(common::sync::differences(&host, None, &web).is_none());
    assert!(online_records(&web, &host) > 0);

    // The settings show the synchronisation and offer the two actions.
    let settings = ok(&host, &server, None, &["settings"]);
    assert_eq!(field(&settings, "Connected"), Some("yes"), "{settings}");
    assert!(field(&settings, "Sync computer").is_some(), "{settings}");
    assert!(
        settings.contains("Conflicts of the last 7 days"),
        "{settings}"
    );
    assert!(
        settings.contains("settings update-connection"),
        "{settings}"
    );
    assert!(settings.contains("settings disconnect"), "{settings}");
    // Sync computer is offered too (it is run on the computer that is to
    // synchronise); this computer is the sync computer.
    assert_eq!(
        field(&settings, "Sync computer"),
        Some("OFFICE-SERVER (this computer)"),
        "{settings}"
    );
    assert!(
        settings.contains(
            "Sync computer: `host-sim --computer NAME settings sync-computer --email EMAIL` \
             (on the computer that is to synchronise)"
        ),
        "{settings}"
    );
    // Regression: the requirement check (`connect` without a terminal)
    // said "Connect is available" for a company connected already.
    let check = ok(&host, &server, None, &["connect"]);
    assert!(!check.contains("Connect is available"), "{check}");
    assert!(
        check.contains("already connected") && check.contains("sync computer: OFFICE-SERVER"),
        "{check}"
    );
    // On the sync computer, Sync computer is refused by the add-on.
    let err = fails(
        &host,
        &server,
        Some(PASSWORD),
        &["settings", "sync-computer", "--email", EMAIL],
    );
    assert!(
        err.contains("OFFICE-SERVER is the sync computer of this company already."),
        "{err}"
    );

    // A wrong password changes nothing.
    let err = fails(
        &host,
        &server,
        Some("not the password"),
        &["settings", "disconnect", "--email", EMAIL],
    );
    assert!(err.contains("Error: "), "{err}");
    let settings = ok(&host, &server, None, &["settings"]);
    assert_eq!(
        field(&settings, "Connected"),
        Some("yes"),
        "{err}\n{settings}"
    );
    assert!(online_records(&web, &host) > 0);

    // Disconnect: the online copy is gone, the program's data stays.
    let before = common::sync::host_rows(&host.data_dir(), None)
        .values()
        .map(Vec::len)
        .sum::<usize>();
    let out = ok(
        &host,
        &server,
        Some(PASSWORD),
        &["settings", "disconnect", "--email", EMAIL],
    );
    assert!(out.contains("is disconnected from Online Desktop"), "{out}");
    assert!(
        !out.contains("still shows the company as connected"),
        "{out}"
    );
    let settings = ok(&host, &server, None, &["settings"]);
    assert_eq!(field(&settings, "Connected"), Some("no"), "{settings}");
    assert_eq!(field(&settings, "Connected by"), Some("-"), "{settings}");
    let companies = host.channel("system.companies", &[]);
    assert!(companies["companies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["online_desktop_connected"] == false));
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    assert_eq!(online_records(&web, &host), 0);
    let after = common::sync::host_rows(&host.data_dir(), None)
        .values()
        .map(Vec::len)
        .sum::<usize>();
    assert_eq!(before, after);

    // Connect again: everything is synchronised anew.
    let out = ok(
        &host,
        &server,
        Some(PASSWORD),
        &["connect", "--email", EMAIL, "--start", "now"],
    );
    assert!(out.contains("The first synchronisation is done"), "{out}");
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    if let Some(report) = common::sync::differences(&host, None, &web) {
        panic!("the host and the online copy differ:\n{report}");
    }
}

#[test]
fn update_connection_after_a_password_change_lets_sync_go_on() {
    let server = TestServer::start();
    let host = connected(&server);
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    let answer = web.call(
        "POST",
        "/api/v1/me/password",
        Some(&json!({ "current_password": PASSWORD, "new_password": NEW_PASSWORD })),
    );
    assert_eq!(answer.status, 204, "{}", answer.body);

    // The old password no longer logs in.
    let err = fails(
        &host,
        &server,
        Some(PASSWORD),
        &["settings", "update-connection", "--email", EMAIL],
    );
    assert!(err.contains("Error: "), "{err}");

    let out = ok(
        &host,
        &server,
        Some(NEW_PASSWORD),
        &["settings", "update-connection", "--email", EMAIL],
    );
    assert!(out.contains("connection of"), "{out}");
    assert!(out.contains("is updated"), "{out}");
    assert!(!out.contains(NEW_PASSWORD), "{out}");

    // Synchronisation goes on: a host edit reaches the online copy.
    host.ok(&[
        "record",
        "add",
        "contacts",
        "--set",
        "name=Etter Oppdatering AS",
    ]);
    let web = Web::log_in(server.base_url(), EMAIL, NEW_PASSWORD);
    let agent = Agent::start(&host, server.base_url(), None, "agent");
    assert_converges(&host, None, &web, &agent_context(&agent));
}

#[test]
fn change_user_hands_connected_by_to_another_online_id_and_sync_goes_on() {
    const SECOND_EMAIL: &str = "kari.nordmann@nordlyshandel.no";
    const SECOND_PASSWORD: &str = "kari's own passphrase";
    let server = TestServer::start();
    let host = connected(&server);
    let settings = ok(&host, &server, None, &["settings"]);
    assert!(
        field(&settings, "Connected by").is_some_and(|v| v.starts_with(EMAIL)),
        "{settings}"
    );
    assert!(settings.contains("settings change-user"), "{settings}");

    // A second super user of the program, linked to an employee with an
    // e-mail address, with an Online ID of her own.
    host.ok(&[
        "employee",
        "add",
        "--first-name",
        "Kari",
        "--last-name",
        "Nordmann",
        "--email",
        SECOND_EMAIL,
        "--number",
        "9001",
    ]);
    host.ok(&["user", "add", "kari", "--super-user"]);
    host.ok(&["user", "link-employee", "kari", "--employee", "9001"]);
    server.create_online_id(SECOND_EMAIL, SECOND_PASSWORD);

    // Cancel changes nothing.
    let out = ok(
        &host,
        &server,
        Some(SECOND_PASSWORD),
        &[
            "--user",
            "kari",
            "settings",
            "change-user",
            "--email",
            SECOND_EMAIL,
            "--cancel-at",
            "confirm",
        ],
    );
    assert!(out.contains("Nothing was changed"), "{out}");
    let settings = ok(&host, &server, None, &["settings"]);
    assert!(
        field(&settings, "Connected by").is_some_and(|v| v.starts_with(EMAIL)),
        "{settings}"
    );

    let out = ok(
        &host,
        &server,
        Some(SECOND_PASSWORD),
        &[
            "--user",
            "kari",
            "settings",
            "change-user",
            "--email",
            SECOND_EMAIL,
        ],
    );
    assert!(out.contains("is now connected by"), "{out}");
    assert!(!out.contains(SECOND_PASSWORD), "{out}");
    let settings = ok(&host, &server, None, &["settings"]);
    assert_eq!(field(&settings, "Connected"), Some("yes"), "{settings}");
    assert!(
        field(&settings, "Connected by").is_some_and(|v| v.starts_with(SECOND_EMAIL)),
        "{settings}"
    );

    // Synchronisation goes on: a host edit reaches the online copy.
    host.ok(&[
        "record",
        "add",
        "contacts",
        "--set",
        "name=Etter Brukerbytte AS",
    ]);
    let web = Web::log_in(server.base_url(), SECOND_EMAIL, SECOND_PASSWORD);
    let mut agent = Agent::start(&host, server.base_url(), None, "agent");
    assert_converges(&host, None, &web, &agent_context(&agent));
    assert!(web
        .records("contacts")
        .iter()
        .any(|r| r["fields"]["name"] == "Etter Brukerbytte AS"));
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());

    // The previous Online ID can no longer disconnect the company.
    let err = fails(
        &host,
        &server,
        Some(PASSWORD),
        &["settings", "disconnect", "--email", EMAIL],
    );
    assert!(err.contains("Only the Online ID that connected"), "{err}");
    let settings = ok(&host, &server, None, &["settings"]);
    assert_eq!(
        field(&settings, "Connected"),
        Some("yes"),
        "{err}\n{settings}"
    );
}

#[test]
fn a_restore_is_refused_while_connected_and_forced_stops_sync_until_update_connection() {
    let server = TestServer::start();
    let host = connected(&server);
    let backup = host.path("nordlys.backup");
    let backup = backup.to_str().unwrap();
    let out = ok(
        &host,
        &server,
        None,
        &["company", "backup", "--out", backup],
    );
    assert!(out.contains("was backed up"), "{out}");

    // Edits after the backup, synchronised.
    host.ok(&[
        "record",
        "add",
        "contacts",
        "--set",
        "name=Etter Sikkerhetskopi AS",
    ]);
    host.ok(&["record", "add", "contacts", "--set", "name=Enda En AS"]);
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    let mut agent = Agent::start(&host, server.base_url(), None, "agent");
    assert_converges(&host, None, &web, &agent_context(&agent));
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());

    // Refused while connected, in words.
    let err = fails(&host, &server, None, &["company", "restore", backup]);
    assert!(err.contains("The backup is not restored"), "{err}");
    assert!(err.contains("Update connection"), "{err}");

    // Forced: the next agent notices and stops with the reason.
    let out = ok(
        &host,
        &server,
        None,
        &["company", "restore", backup, "--force"],
    );
    assert!(out.contains("was restored"), "{out}");
    let mut agent = Agent::start(&host, server.base_url(), None, "agent-after-restore");
    let code = agent.wait_for_exit("the restore");
    assert_eq!(code, Some(1), "{}", agent.log());
    let log = agent.log();
    assert!(log.contains("Update connection"), "{log}");
    assert!(log.to_lowercase().contains("restored"), "{log}");

    // Update connection reconciles; synchronisation runs again.
    let out = ok(
        &host,
        &server,
        Some(PASSWORD),
        &["settings", "update-connection", "--email", EMAIL],
    );
    assert!(out.contains("is updated"), "{out}");
    host.ok(&[
        "record",
        "add",
        "contacts",
        "--set",
        "name=Etter Gjenoppretting AS",
    ]);
    let agent = Agent::start(&host, server.base_url(), None, "agent-after-update");
    common::sync::eventually("a new host edit online", || {
        let found = web
            .records("contacts")
            .iter()
            .any(|r| r["fields"]["name"] == "Etter Gjenoppretting AS");
        (found || agent.log().contains("failed")).then_some(())
    });
    assert!(
        web.records("contacts")
            .iter()
            .any(|r| r["fields"]["name"] == "Etter Gjenoppretting AS"),
        "{}",
        agent.log()
    );
}

#[test]
fn a_restore_is_allowed_when_not_connected() {
    let host = licensed_host("20");
    let backup = host.path("b.backup");
    let backup = backup.to_str().unwrap();
    host.ok(&["company", "backup", "--out", backup]);
    let err = host.fails(&["company", "backup", "--out", backup]);
    assert!(err.contains("exists already"), "{err}");
    host.ok(&["record", "add", "contacts", "--set", "name=Bare Lokalt AS"]);
    let out = host.ok(&["company", "restore", backup]);
    assert!(out.contains("was restored"), "{out}");
    let list = host.ok(&["record", "list", "contacts"]);
    assert!(!list.contains("Bare Lokalt AS"), "{list}");
}
