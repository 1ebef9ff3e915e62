//! `host-sim sync ...` and `host-sim agent` with the real add-on against the
//! real online service (od-online's `TestServer` on 127.0.0.1): connect,
//! the first synchronisation, edits both ways, the history, SIGTERM, and
//! the clear refusals.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{field, Host, AS_OF};
use host_sim::installation::Installation;
use host_sim::sync::{checksum, schema};
use od_online::testing::TestServer;
use serde_json::{json, Value};

const EMAIL: &str = "ingrid.solberg@nordlyshandel.no";
const PASSWORD: &str = "correct horse battery";
/// Generous: a loaded CI machine builds and runs other tests meanwhile.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs host-sim against `host` and `server` with `password` in the
/// environment (never on the command line).
fn run(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host-sim"));
    command
        .arg("--data-dir")
        .arg(host.data_dir())
        .arg("--service-url")
        .arg(server.base_url())
        .args(args)
        .env_remove("OD_HOST_DATA")
        .env_remove("OD_ONLINE_PASSWORD")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("OD_ONLINE_PASSWORD", password);
    }
    command.output().expect("host-sim runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    let output = run(host, server, password, args);
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "host-sim {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

fn fails(host: &Host, server: &TestServer, password: Option<&str>, args: &[&str]) -> String {
    let output = run(host, server, password, args);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "host-sim {args:?} should fail\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stderr
}

/// A demo installation of `records` records with a valid licence
/// registered and bound to the demo company.
fn licensed_host(records: &str) -> Host {
    let host = Host::empty();
    host.ok(&[
        "init",
        "--records",
        records,
        "--seed",
        "5",
        "--as-of",
        AS_OF,
    ]);
    let licence = host.path("nordlys.licence");
    let licence = licence.to_str().unwrap();
    host.ok(&[
        "licence",
        "issue",
        "--out",
        licence,
        "--valid-until",
        "2099-12-31",
    ]);
    host.ok(&["licence", "add", licence]);
    host.ok(&["licence", "bind", "--company", "nordlys"]);
    host
}

/// Polls `check` until it gives a value or the deadline passes.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The agent process; killed if a test fails before it stopped it.
struct Agent {
    child: Child,
    log: std::path::PathBuf,
}

impl Agent {
    fn start(host: &Host, server: &TestServer) -> Agent {
        let log = host.path("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .arg("--data-dir")
            .arg(host.data_dir())
            .arg("--service-url")
            .arg(server.base_url())
            .arg("agent")
            .env_remove("OD_HOST_DATA")
            .stdin(Stdio::null())
            .stdout(File::create(&log).unwrap())
            .stderr(File::create(host.path("agent.err")).unwrap())
            .spawn()
            .expect("the agent starts");
        Agent { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code (within a few seconds).
    fn terminate(&mut self) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not stop within 15 s of SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A logged-in Online ID on the service, for the records API.
struct Web<'a> {
    server: &'a TestServer,
    token: String,
    company_id: String,
}

impl<'a> Web<'a> {
    fn log_in(server: &'a TestServer) -> Web<'a> {
        let token = server.log_in(EMAIL, PASSWORD).token;
        let companies = server.get("/api/v1/companies").bearer(&token).send().json();
        let company_id = companies["companies"][0]["id"].as_str().unwrap().to_owned();
        Web {
            server,
            token,
            company_id,
        }
    }

    fn records(&self, entity: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let path = format!(
                "/api/v1/companies/{}/records/{entity}?limit=500{after}",
                self.company_id
            );
            let answer = self.server.get(&path).bearer(&self.token).send();
            assert_eq!(answer.status, 200, "{}", answer.text());
            let page = answer.json();
            all.extend(page["records"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => return all,
            }
        }
    }

    fn contact_by_number(&self, number: i64) -> Option<Value> {
        self.records("contacts")
            .into_iter()
            .find(|r| r["fields"]["number"].as_i64() == Some(number))
    }

    fn patch(&self, entity: &str, global_id: &str, fields: Value) {
        let answer = self
            .server
            .patch(&format!(
                "/api/v1/companies/{}/records/{entity}/{global_id}",
                self.company_id
            ))
            .bearer(&self.token)
            .json(&json!({ "fields": fields }))
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }

    /// The service's checksum per entity, asked as a device of its own.
    fn checksums(&self) -> BTreeMap<String, (u64, String)> {
        let answer = self
            .server
            .post(&format!("/api/v1/companies/{}/devices", self.company_id))
            .bearer(&self.token)
            .json(&json!({ "computer_id": "checksum-oracle", "computer_name": "Test oracle" }))
            .send();
        assert_eq!(answer.status, 201, "{}", answer.text());
        let access = answer.json()["access_token"].as_str().unwrap().to_owned();
        let answer = self
            .server
            .get("/api/v1/sync/checksum")
            .bearer(&access)
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["entity"].as_str().unwrap().to_owned(),
                    (
                        e["count"].as_u64().unwrap(),
                        e["sha256"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect()
    }
}

/// The host's checksum per entity, with local ids mapped to global ids
/// through the add-on's id map (the oracle of GUARANTEES.md).
fn host_checksums(data_dir: &Path) -> BTreeMap<String, (u64, String)> {
    let installation = Installation::open(data_dir).unwrap();
    let company = installation.company_or_default(None).unwrap();
    let state = rusqlite::Connection::open_with_flags(
        data_dir
            .join("online-desktop")
            .join(&company.id)
            .join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let ids: BTreeMap<(String, String), String> = state
        .prepare("SELECT entity, local_id, global_id FROM ids")
        .unwrap()
        .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let db = installation.open_company_db(&company).unwrap();
    let global = |entity: &str, local: i64| {
        ids.get(&(entity.to_owned(), local.to_string()))
            .cloned()
            .unwrap_or_else(|| format!("unsent:{entity}:{local}"))
    };
    schema::ENTITIES
        .iter()
        .map(|entity| {
            let digest = checksum::entity_digest(db.connection(), entity, &global).unwrap();
            (entity.name.to_owned(), digest)
        })
        .collect()
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

    let mut agent = Agent::start(&host, &server);
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
    let web = Web::log_in(&server);
    let online = web.checksums();
    let local = host_checksums(&host.data_dir());
    for (entity, (count, digest)) in &local {
        assert!(*count > 0, "{entity} has no records in the demo");
        assert_eq!(
            online.get(entity),
            Some(&(*count, digest.clone())),
            "{entity}: the host and the online copy differ"
        );
    }

    // An edit in the program goes online.
    let shown = host.ok(&["record", "show", "contacts", "1"]);
    let number: i64 = field(&shown, "number").unwrap().parse().unwrap();
    host.ok(&["record", "edit", "contacts", "1", "--set", "city=Tromsø"]);
    let online_contact = eventually("the host's edit online", || {
        web.contact_by_number(number)
            .filter(|r| r["fields"]["city"] == "Tromsø")
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
    assert!(out.contains("host-sim sync connect --email"), "{out}");
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
        err.contains(
            "Logging in with the Online ID failed: The e-mail address or the password is wrong."
        ),
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
    let (_, err) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
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
