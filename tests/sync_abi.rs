//! Synchronisation (ABI 1.1) end to end, through the loaded cdylib as a
//! host drives it: the connection is kept in an owner-only file and its
//! tokens never reach a log, and the first synchronisation against the
//! real online service (`od_online::testing::TestServer`) with a tiny
//! in-process host, followed through events and status until it is
//! stopped and written in the history.
//!
//! Every wait polls with a deadline while pumping on the test's thread
//! (the host's UI thread); none is a fixed sleep.

use od_abi::*;
use od_online::testing::{TestCompany, TestServer};
use od_tests::host::{Answer, EventRecord, HostApi, TestHost};
use od_tests::net::ClosedPort;
use od_tests::plugin::{plugin, Instance};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous: a loaded 2-core machine, and a client that retries.
const EVENTUALLY: Duration = Duration::from_secs(90);

/// Pumps on this thread until `done` holds for the events delivered so
/// far; panics at the deadline with what was seen.
fn pump_until(
    instance: &Instance<'_>,
    what: &str,
    mut done: impl FnMut(&[EventRecord]) -> bool,
) -> Vec<EventRecord> {
    let host = instance.host();
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let asked = host.pump_requests();
        assert_eq!(instance.pump(), OD_RESULT_OK);
        let events = host.events();
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}: {:#?}\n{events:#?}",
            instance.sync_status()
        );
        host.wait_for_pump_request(asked, Duration::from_millis(200));
    }
}

/// The states the `OD_EVENT_SYNC_STATE` events reported, in order.
fn states(events: &[EventRecord]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == OD_EVENT_SYNC_STATE)
        .map(|e| {
            assert_eq!(e.struct_size as usize, std::mem::size_of::<od_event>());
            let payload = e.payload.as_deref().expect("a state event has a payload");
            let value: Value = serde_json::from_str(payload).expect("the payload is JSON");
            assert!(
                value["error"].is_null() || value["error"].is_string(),
                "{payload}"
            );
            value["state"]
                .as_str()
                .unwrap_or_else(|| panic!("no state in {payload}"))
                .to_owned()
        })
        .collect()
}

/// Pumps until a state event reports `state`.
fn pump_until_state(instance: &Instance<'_>, state: &str) -> Vec<EventRecord> {
    pump_until(instance, &format!("the state {state}"), |events| {
        states(events).iter().any(|s| s == state)
    })
}

fn data_dir(dir: &Path) -> Option<Vec<u8>> {
    Some(dir.to_str().expect("a UTF-8 path").as_bytes().to_vec())
}

/// The tiny company: contacts and their contact persons.
fn schema() -> Value {
    json!({"version": 1, "entities": [
        {"name": "contacts", "title": "Contacts", "fields": [
            {"name": "number", "type": "integer", "required": true, "online": "read_only",
             "direction": "host_to_online", "assigned_by_host": true},
            {"name": "name", "type": "text", "required": true, "online": "read_write", "direction": "two_way"},
            {"name": "city", "type": "text", "online": "read_write", "direction": "two_way"}]},
        {"name": "contact_persons", "title": "Contact persons", "parent": "contacts", "fields": [
            {"name": "contact_id", "type": "reference", "entity": "contacts", "required": true,
             "online": "read_write", "direction": "two_way"},
            {"name": "name", "type": "text", "required": true, "online": "read_write", "direction": "two_way"}]}
    ]})
}

/// The company's records by entity and local id, in the order they were
/// made (which is also the change log, one entry each).
fn records() -> Vec<(&'static str, i64, Value)> {
    vec![
        (
            "contacts",
            1,
            json!({"number": 10001, "name": "Fjellheim AS", "city": "Oslo"}),
        ),
        (
            "contacts",
            2,
            json!({"number": 10002, "name": "Kystlinje AS", "city": "Bergen"}),
        ),
        (
            "contacts",
            3,
            json!({"number": 10003, "name": "Nordlys ANS", "city": null}),
        ),
        (
            "contact_persons",
            1,
            json!({"contact_id": 1, "name": "Ola Nordmann"}),
        ),
        (
            "contact_persons",
            2,
            json!({"contact_id": 3, "name": "Kari Nordmann"}),
        ),
    ]
}

/// Answers the sync methods of docs/HOST_CHANNEL.md for [`records`];
/// every other method falls through to the complete company's answers.
/// Records `sync.block` / `sync.unblock` in `blocks`.
fn answer_sync(method: &str, params: &[u8], blocks: &Mutex<Vec<String>>) -> Option<Answer> {
    let params: Value = serde_json::from_slice(params).unwrap_or(Value::Null);
    let all = records();
    let table = |entity: &str| -> BTreeMap<i64, Value> {
        all.iter()
            .filter(|(e, _, _)| *e == entity)
            .map(|(_, id, fields)| (*id, fields.clone()))
            .collect()
    };
    let answer = match method {
        "schema.entities" => schema(),
        "changes.position" => json!({ "seq": all.len() }),
        "changes.read" => {
            let after = params["after"].as_u64().unwrap_or(0);
            let limit = params["limit"].as_u64().unwrap_or(1000) as usize;
            let changes: Vec<Value> = all
                .iter()
                .enumerate()
                .map(|(i, (entity, id, fields))| (i as u64 + 1, entity, id, fields))
                .filter(|(seq, ..)| *seq > after)
                .take(limit)
                .map(|(seq, entity, id, fields)| {
                    json!({"seq": seq, "entity": entity, "local_id": id, "op": "upsert",
                           "origin": "host", "record": fields})
                })
                .collect();
            let last = changes
                .last()
                .map_or(after, |c| c["seq"].as_u64().unwrap_or(after));
            json!({ "changes": changes, "last_seq": last })
        }
        "records.count" => json!({ "count": table(params["entity"].as_str()?).len() }),
        "records.page" => {
            let rows = table(params["entity"].as_str()?);
            let after = params["after_local_id"].as_i64().unwrap_or(0);
            let limit = params["limit"].as_u64().unwrap_or(1000) as usize;
            let page: Vec<Value> = rows
                .range(after + 1..)
                .take(limit)
                .map(|(id, fields)| json!({ "local_id": id, "fields": fields }))
                .collect();
            let done = rows.range(after + 1..).count() <= limit;
            json!({ "records": page, "done": done })
        }
        "sync.block" => {
            blocks.lock().push(method.to_owned());
            json!({"blocked": true, "reason": params["reason"], "blocked_at": "2026-01-01T00:00:00Z"})
        }
        "sync.unblock" => {
            blocks.lock().push(method.to_owned());
            json!({ "blocked": false })
        }
        "records.apply" => return Some(Answer::fail("this test's host expects no online changes")),
        _ => return None,
    };
    Some(Answer::Json(answer))
}

/// Registers this computer as a device of the company, as the connect
/// wizard will: the connection document `od_plugin_connection_set` takes.
fn device_connection(server: &TestServer, company: &TestCompany, computer: &str) -> Value {
    let answer = server
        .post(&format!("/api/v1/companies/{}/devices", company.company_id))
        .bearer(&company.session.token)
        .json(&json!({ "computer_id": computer, "computer_name": computer }))
        .send();
    assert_eq!(answer.status, 201, "{}", answer.text());
    let device = answer.json();
    json!({
        "company_id": company.company_id,
        "computer_id": computer,
        "device_id": device["device_id"],
        "access_token": device["access_token"],
        "access_expires_at": device["access_expires_at"],
        "refresh_token": device["refresh_token"],
    })
}

/// The records of `entity` the service holds for the company.
fn online_records(server: &TestServer, company: &TestCompany, entity: &str) -> Vec<Value> {
    let answer = server
        .get(&format!(
            "/api/v1/companies/{}/records/{entity}",
            company.company_id
        ))
        .bearer(&company.session.token)
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["records"]
        .as_array()
        .expect("a list of records")
        .clone()
}

#[test]
fn the_first_sync_runs_through_the_abi_against_the_real_service() {
    let server = TestServer::start();
    let company = server.connected_company("sync-abi@example.com", "OD-SYNC-ABI-1");
    let connection = device_connection(&server, &company, "pc-1");

    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let blocks = Arc::new(Mutex::new(Vec::new()));
    let seen_blocks = Arc::clone(&blocks);
    host.set_request_hook(move |method, params| answer_sync(method, params, &seen_blocks));
    let trace = dir.path().join("logs").join("trace.log");
    let mut api = HostApi::new(&host, server.base_url());
    api.data_dir = data_dir(dir.path());
    api.log_level = OD_LOG_LEVEL_TRACE;
    api.trace_log_path = data_dir(&trace);
    api.trace_log_level = OD_LOG_LEVEL_TRACE;
    let instance = plugin().create(&api).expect("create");
    let ui_thread = std::thread::current().id();

    // Without service_url the connection uses the instance's service.
    instance
        .connection_set(Some(connection.to_string().as_bytes()))
        .expect("connection_set");
    assert_eq!(
        instance.sync_status().expect("status").state,
        OD_SYNC_STOPPED
    );
    instance.sync_start(OD_SYNC_FLAG_NOW).expect("sync_start");
    instance
        .sync_start(OD_SYNC_FLAG_NOW)
        .expect("a second start does nothing");
    let refused = instance
        .connection_set(Some(connection.to_string().as_bytes()))
        .expect_err("no new connection while running");
    assert_eq!(refused.code, OD_RESULT_BAD_STATE, "{}", refused.message);

    let mut done = None;
    let events = pump_until(&instance, "the first sync, then running", |_| {
        let status = instance.sync_status().expect("status");
        let finished = status.first_sync_done && status.state == OD_SYNC_RUNNING;
        if finished {
            done = Some(status);
        }
        finished
    });
    let status = done.expect("the status that ended the wait");
    assert_eq!(status.state_name, "running");
    assert_eq!(
        (status.error_code, &status.error, status.blocked),
        (OD_RESULT_OK, &None, false),
        "{status:#?}"
    );
    assert!(status.last_success.is_some(), "{status:#?}");
    assert_eq!(status.progress_entity, None, "no progress once running");
    assert_eq!(status.progress_seconds_left, -1);
    assert_eq!(status.scheduled_at, None);

    // Events: on the UI thread, the states in order, progress that adds up.
    assert!(events.iter().all(|e| e.thread == ui_thread), "{events:#?}");
    let seen = states(&events);
    let first = |state: &str| {
        seen.iter()
            .position(|s| s == state)
            .unwrap_or_else(|| panic!("no {state} in {seen:?}"))
    };
    assert!(
        first("starting") < first("first_sync") && first("first_sync") < first("running"),
        "{seen:?}"
    );
    let progress: Vec<Value> = events
        .iter()
        .filter(|e| e.kind == OD_EVENT_SYNC_PROGRESS)
        .map(|e| {
            let payload = e.payload.as_deref().expect("a progress payload");
            serde_json::from_str(payload).expect("the payload is JSON")
        })
        .collect();
    assert!(!progress.is_empty(), "{events:#?}");
    for p in &progress {
        let number = |key: &str| {
            p[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} is a count: {p}"))
        };
        assert!(number("done") <= number("total"), "{p}");
        assert!(number("entity_done") <= number("entity_total"), "{p}");
        let (entity, title) = (p["entity"].as_str(), p["entity_title"].as_str());
        assert!(
            matches!(
                (entity, title),
                (Some("contacts"), Some("Contacts"))
                    | (Some("contact_persons"), Some("Contact persons"))
            ),
            "{p}"
        );
        assert!(
            p["seconds_left"].is_null() || p["seconds_left"].is_u64(),
            "{p}"
        );
    }
    let last = progress.last().expect("a progress event");
    assert_eq!(
        (&last["done"], &last["total"]),
        (&json!(5), &json!(5)),
        "the last progress is the final one: {progress:#?}"
    );

    // The host: blocked once around the first sync, its data read from
    // the plugin's own thread.
    assert_eq!(*blocks.lock(), ["sync.block", "sync.unblock"]);
    let requests = host.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.method.starts_with("records.") || r.method == "schema.entities")
            .all(|r| r.thread != ui_thread),
        "the sync methods are asked from a worker thread"
    );

    // Online: every record, the contact persons referring to their contacts.
    let contacts = online_records(&server, &company, "contacts");
    let mut names: Vec<&str> = contacts
        .iter()
        .map(|r| r["fields"]["name"].as_str().expect("a name"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Fjellheim AS", "Kystlinje AS", "Nordlys ANS"]);
    let global_of = |name: &str| {
        contacts
            .iter()
            .find(|r| r["fields"]["name"] == name)
            .map(|r| r["global_id"].clone())
            .expect("the contact")
    };
    let persons = online_records(&server, &company, "contact_persons");
    assert_eq!(persons.len(), 2, "{persons:#?}");
    for (person, contact) in [
        ("Ola Nordmann", "Fjellheim AS"),
        ("Kari Nordmann", "Nordlys ANS"),
    ] {
        let online = persons
            .iter()
            .find(|r| r["fields"]["name"] == person)
            .unwrap_or_else(|| panic!("{person} online: {persons:#?}"));
        assert_eq!(
            online["fields"]["contact_id"],
            global_of(contact),
            "{person}"
        );
    }

    // Nothing to schedule any more; notify is harmless while running.
    let refused = instance
        .sync_schedule(Some(b"2099-12-24T22:00:00+01:00"))
        .expect_err("the first sync is done");
    assert_eq!(refused.code, OD_RESULT_BAD_STATE, "{}", refused.message);
    instance.sync_notify().expect("notify");

    // Stop: the engine says so through the pump.
    instance.sync_stop().expect("sync_stop");
    let events = pump_until_state(&instance, "stopped");
    assert_eq!(states(&events).last().map(String::as_str), Some("stopped"));
    let stopped = instance.sync_status().expect("status");
    assert_eq!(
        (stopped.state, stopped.state_name.as_str()),
        (OD_SYNC_STOPPED, "stopped"),
        "{stopped:#?}"
    );
    assert!(stopped.first_sync_done && stopped.last_success.is_some());

    // The history: the first sync finished, with what it sent.
    let text = instance.sync_history().expect("history");
    let history: Value = serde_json::from_str(&text).expect("the history is JSON");
    let runs = history["runs"].as_array().expect("runs");
    let first_sync = runs
        .iter()
        .find(|r| r["kind"] == "first_sync")
        .unwrap_or_else(|| panic!("no first_sync run: {text}"));
    assert_eq!(first_sync["outcome"], "finished", "{text}");
    assert!(first_sync["ended_at"].is_string(), "{text}");
    assert!(first_sync["error"].is_null(), "{text}");
    let sent = |entity: &str| {
        first_sync["entities"]
            .as_array()
            .expect("entities")
            .iter()
            .find(|e| e["entity"] == entity)
            .map_or(0, |e| e["to_online"].as_u64().expect("a count"))
    };
    assert_eq!(
        (sent("contacts"), sent("contact_persons")),
        (3, 2),
        "{text}"
    );
    assert_eq!(runs[0]["kind"], "continuous", "newest first: {text}");
    assert_eq!(runs[0]["outcome"], "stopped", "{text}");
    assert_eq!(history["conflicts"], json!([]), "{text}");

    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
    assert_eq!(host.callback_panics(), 0);

    // The tokens went over the wire, and into no log.
    let trace_log = std::fs::read_to_string(&trace).expect("the trace log");
    assert!(
        trace_log.contains("first synchronisation finished"),
        "the engine logged: {trace_log}"
    );
    for key in ["access_token", "refresh_token"] {
        let token = connection[key].as_str().expect("a token");
        assert!(!trace_log.contains(token), "{key} in the trace log");
        for record in host.logs() {
            assert!(
                !record.message.contains(token),
                "{key} in the host log: {record:?}"
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("connection.json"))
            .expect("connection.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "still owner-only: {mode:o}");
    }
}

/// Tokens of [`the_connection_is_owner_only_and_its_tokens_are_never_logged`].
const ACCESS_TOKEN: &str = "od-access-S3CR3T-41c7e0a2";
const REFRESH_TOKEN: &str = "od-refresh-S3CR3T-9b2d5f11";

#[test]
fn the_connection_is_owner_only_and_its_tokens_are_never_logged() {
    let service = ClosedPort::new();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let logs = tempfile::tempdir().expect("a temporary folder");
    let trace = logs.path().join("trace.log");
    let host = TestHost::complete();
    // The schema lets the engine get as far as the (refusing) service.
    host.set("schema.entities", Answer::Json(schema()));
    let mut api = HostApi::new(&host, &service.url());
    api.data_dir = data_dir(dir.path());
    api.log_level = OD_LOG_LEVEL_TRACE;
    api.trace_log_path = data_dir(&trace);
    api.trace_log_level = OD_LOG_LEVEL_TRACE;
    let instance = plugin().create(&api).expect("create");

    let connection = json!({
        "service_url": service.url(),
        "company_id": "6f1c1a3e-8d2b-4c55-9a57-0d2c1e4b7a11",
        "computer_id": "pc-1",
        "device_id": "0b9d3c57-2f0e-4d8a-a3c1-5e6f7a8b9c0d",
        "access_token": ACCESS_TOKEN,
        "access_expires_at": "2099-01-01T00:00:00Z",
        "refresh_token": REFRESH_TOKEN,
    });
    instance
        .connection_set(Some(connection.to_string().as_bytes()))
        .expect("connection_set");

    let file = dir.path().join("connection.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("connection.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only: {mode:o}");
    }
    let stored = std::fs::read_to_string(&file).expect("connection.json");
    let stored_json: Value = serde_json::from_str(&stored).expect("JSON");
    assert_eq!(stored_json["access_token"], ACCESS_TOKEN);
    assert!(
        !stored.to_lowercase().contains("password"),
        "no password is kept: {stored}"
    );
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("the data folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Started against a service that refuses connections: it retries.
    instance.sync_start(OD_SYNC_FLAG_NOW).expect("sync_start");
    pump_until_state(&instance, "retrying");
    let status = instance.sync_status().expect("status");
    assert_eq!(status.state, OD_SYNC_RETRYING, "{status:#?}");
    assert_eq!(status.error_code, OD_RESULT_SERVICE_UNREACHABLE);
    let error = status.error.expect("an error");
    assert!(error.contains(&service.url()), "{error}");
    instance.sync_stop().expect("sync_stop");
    let events = pump_until_state(&instance, "stopped");
    assert_eq!(instance.free(), OD_RESULT_OK);

    let host_log: Vec<String> = host
        .logs()
        .iter()
        .map(|r| format!("[{}] {}: {}", r.level, r.target, r.message))
        .collect();
    let trace_log = std::fs::read_to_string(&trace).expect("the trace log");
    assert!(
        host_log.iter().any(|l| l.contains("synchronisation")),
        "the engine logged: {host_log:#?}"
    );
    assert!(
        trace_log.contains("synchronisation"),
        "the engine logged: {trace_log}"
    );
    let payloads: Vec<&str> = events.iter().filter_map(|e| e.payload.as_deref()).collect();
    for secret in [ACCESS_TOKEN, REFRESH_TOKEN, "S3CR3T"] {
        for line in &host_log {
            assert!(!line.contains(secret), "the host log has a token: {line}");
        }
        assert!(
            !trace_log.contains(secret),
            "the trace log has a token:\n{trace_log}"
        );
        for payload in &payloads {
            assert!(!payload.contains(secret), "an event has a token: {payload}");
        }
        assert!(!error.contains(secret), "{error}");
    }
}

/// `od_plugin_free` in the middle of the first sync: it returns promptly
/// (well within its 10-second deadline) with OD_RESULT_OK, the program is
/// unblocked, and the first sync has not finished (it resumes at the next
/// start; tested in src/sync/engine.rs).
#[test]
fn freeing_the_plugin_in_the_middle_of_the_first_sync_stops_it_and_unblocks_the_program() {
    let server = TestServer::start();
    let company = server.connected_company("sync-free@example.com", "OD-SYNC-ABI-3");
    let connection = device_connection(&server, &company, "pc-1");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let blocks = Arc::new(Mutex::new(Vec::new()));
    let seen_blocks = Arc::clone(&blocks);
    host.set_request_hook(move |method, params| {
        if method == "records.page" {
            // A slow disk: the first sync is still running when freed.
            std::thread::sleep(Duration::from_millis(400));
        }
        answer_sync(method, params, &seen_blocks)
    });
    let mut api = HostApi::new(&host, server.base_url());
    api.data_dir = data_dir(dir.path());
    let instance = plugin().create(&api).expect("create");
    instance
        .connection_set(Some(connection.to_string().as_bytes()))
        .expect("connection_set");
    instance.sync_start(OD_SYNC_FLAG_NOW).expect("sync_start");
    // Waits for the block itself, not the state event that comes just
    // before it, so that the free lands in the middle of the first sync.
    pump_until(&instance, "the program blocked", |_| {
        blocks.lock().iter().any(|b| b == "sync.block")
    });
    let asked = Instant::now();
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        *blocks.lock(),
        ["sync.block", "sync.unblock"],
        "the program is unblocked"
    );
}
