//! Synchronisation (docs/SYNC_PROTOCOL.md §4–§7) against the real service:
//! schema, lease and fencing, push (initial, incremental, idempotent),
//! conflicts, deletes, pull with echo suppression and long-poll, web edits
//! and their validation, restarts, company isolation, the checksum.

use std::io::Write;
use std::time::{Duration, Instant};

use od_online::testing::{TestCompany, TestDevice, TestResponse, TestServer};
use serde_json::{json, Value};
use uuid::Uuid;

use super::assert_error;

fn schema() -> Value {
    json!({"version": 1, "entities": [
        {"name": "contacts", "title": "Contacts", "parent": null, "fields": [
            {"name": "number", "type": "integer", "required": true, "online": "read_only",
             "direction": "host_to_online", "assigned_by_host": true},
            {"name": "name", "type": "text", "required": true, "online": "read_write", "direction": "two_way"},
            {"name": "city", "type": "text", "online": "read_write", "direction": "two_way"},
            {"name": "phone", "type": "text", "online": "read_write", "direction": "two_way"},
            {"name": "balance", "type": "decimal", "online": "read_only", "direction": "two_way"},
            {"name": "since", "type": "date"},
            {"name": "active", "type": "boolean"},
            {"name": "parent_id", "type": "reference", "entity": "contacts"}
        ]},
        {"name": "products", "title": "Products", "online_create": false, "fields": [
            {"name": "name", "type": "text", "required": true, "online": "read_only", "direction": "host_to_online"}
        ]}
    ]})
}

/// A connected company with a device holding the lease and the schema sent.
struct Sync {
    company: TestCompany,
    device: TestDevice,
    fencing: i64,
}

fn lease(server: &TestServer, device: &TestDevice, computer: &str) -> TestResponse {
    server
        .post("/api/v1/sync/lease")
        .bearer(&device.access_token)
        .json(&json!({ "computer_id": computer }))
        .send()
}

fn setup(server: &TestServer, email: &str, licence: &str) -> Sync {
    let company = server.connected_company(email, licence);
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let answer = lease(server, &device, "pc-1");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let fencing = answer.json()["fencing"].as_i64().expect("fencing");
    let answer = server
        .request("PUT", "/api/v1/sync/schema")
        .bearer(&device.access_token)
        .header("X-Fencing", &fencing.to_string())
        .json(&schema())
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    Sync {
        company,
        device,
        fencing,
    }
}

fn push_as(
    server: &TestServer,
    device: &TestDevice,
    fencing: i64,
    key: &str,
    body: &Value,
) -> TestResponse {
    server
        .post("/api/v1/sync/push")
        .bearer(&device.access_token)
        .header("X-Fencing", &fencing.to_string())
        .header("Idempotency-Key", key)
        .json(body)
        .send()
}

impl Sync {
    fn push(&self, server: &TestServer, key: &str, body: &Value) -> TestResponse {
        push_as(server, &self.device, self.fencing, key, body)
    }

    fn push_ok(&self, server: &TestServer, key: &str, body: &Value) -> Value {
        let answer = self.push(server, key, body);
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    }

    fn pull(&self, server: &TestServer, after: i64) -> Value {
        let answer = server
            .get(&format!("/api/v1/sync/changes?after={after}&limit=1000"))
            .bearer(&self.device.access_token)
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    }

    fn records_path(&self, entity: &str) -> String {
        format!(
            "/api/v1/companies/{}/records/{entity}",
            self.company.company_id
        )
    }

    fn web_patch(&self, server: &TestServer, id: &str, fields: Value) -> TestResponse {
        server
            .patch(&format!("{}/{id}", self.records_path("contacts")))
            .bearer(&self.company.session.token)
            .json(&json!({ "fields": fields }))
            .send()
    }

    fn web_get(&self, server: &TestServer, id: &str) -> TestResponse {
        server
            .get(&format!("{}/{id}", self.records_path("contacts")))
            .bearer(&self.company.session.token)
            .send()
    }

    fn conflicts(&self, server: &TestServer) -> Vec<Value> {
        let answer = server
            .get(&format!(
                "/api/v1/companies/{}/sync/conflicts?days=7",
                self.company.company_id
            ))
            .bearer(&self.company.session.token)
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()["conflicts"]
            .as_array()
            .expect("conflicts")
            .clone()
    }

    fn status(&self, server: &TestServer) -> Value {
        let answer = server
            .get("/api/v1/sync/status")
            .bearer(&self.device.access_token)
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    }
}

fn contact(id: Uuid, n: usize) -> Value {
    json!({"entity": "contacts", "global_id": id, "op": "upsert",
           "fields": {"number": 10000 + n, "name": format!("Contact {n}"), "city": "Oslo"}})
}

fn ids(count: usize) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    ids.sort();
    ids
}

#[test]
fn the_lease_is_held_by_one_computer_and_fencing_only_grows() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    // Renewing keeps the number.
    let renewed = lease(&server, &sync.device, "pc-1");
    assert_eq!(renewed.status, 200);
    assert_eq!(renewed.json()["fencing"], sync.fencing);
    // A device of another computer is refused, also after the lease expired.
    let other = server.create_device(
        &sync.company.session.token,
        &sync.company.company_id,
        "pc-2",
    );
    assert_error(&lease(&server, &other, "pc-2"), 409, "lease_held");
    // A computer id that is not the device's own is refused.
    assert_error(&lease(&server, &other, "pc-1"), 400, "invalid_request");
    server.clock().advance(chrono::Duration::seconds(61));
    assert_error(&lease(&server, &other, "pc-2"), 409, "lease_held");
    // The expired lease cannot write; asking again gives a larger number.
    let body = json!({"mode": "incremental", "changes": []});
    assert_error(
        &sync.push(&server, "k-expired", &body),
        409,
        "stale_fencing",
    );
    let again = lease(&server, &sync.device, "pc-1").json();
    let second = again["fencing"].as_i64().expect("fencing");
    assert!(second > sync.fencing);
    assert_eq!(
        push_as(&server, &sync.device, second, "k-1", &body).status,
        200
    );
    assert_error(&sync.push(&server, "k-old", &body), 409, "stale_fencing");
    // No fencing header at all.
    let answer = server
        .post("/api/v1/sync/push")
        .bearer(&sync.device.access_token)
        .header("Idempotency-Key", "k-none")
        .json(&body)
        .send();
    assert_error(&answer, 400, "invalid_request");

    // Only a super user moves synchronisation, and the move takes effect at
    // once: the old holder's number is stale, the new computer gets a larger one.
    let move_path = format!(
        "/api/v1/companies/{}/sync-computer",
        sync.company.company_id
    );
    let by_device = server
        .post(&move_path)
        .bearer(&other.access_token)
        .json(&json!({"computer_id": "pc-2"}))
        .send();
    assert_error(&by_device, 403, "forbidden");
    let moved = server
        .post(&move_path)
        .bearer(&sync.company.session.token)
        .json(&json!({"computer_id": "pc-2"}))
        .send();
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.json()["computer_id"], "pc-2");
    assert_error(
        &push_as(&server, &sync.device, second, "k-2", &body),
        409,
        "stale_fencing",
    );
    assert_error(&lease(&server, &sync.device, "pc-1"), 409, "lease_held");
    let third = lease(&server, &other, "pc-2").json()["fencing"]
        .as_i64()
        .expect("fencing");
    assert!(third > second, "{third} > {second}");
    assert_eq!(push_as(&server, &other, third, "k-3", &body).status, 200);
}

#[test]
fn initial_batches_apply_once_in_any_order() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let ids = ids(150);
    let batch = |range: std::ops::Range<usize>| {
        json!({"mode": "initial",
               "changes": range.map(|n| contact(ids[n], n)).collect::<Vec<_>>()})
    };
    // Out of order: the second batch first.
    let second = sync.push_ok(&server, "contacts:50-99", &batch(50..100));
    let first = sync.push_ok(&server, "contacts:0-49", &batch(0..50));
    assert_eq!(first["results"].as_array().map(Vec::len), Some(50));
    assert_eq!(first["results"][0]["version"], 1);
    // The same batch again: the stored answer, nothing applied twice.
    let repeated = sync.push_ok(&server, "contacts:0-49", &batch(0..50));
    assert_eq!(repeated, first);
    let repeated = sync.push_ok(&server, "contacts:50-99", &batch(50..100));
    assert_eq!(repeated, second);
    sync.push_ok(&server, "contacts:100-149", &batch(100..150));
    let status = sync.status(&server);
    assert_eq!(status["sequence"], 150, "{status}");
    assert_eq!(status["entities"][0]["records"], 150, "{status}");
    // Even the same batch under another key changes nothing (same values).
    sync.push_ok(&server, "contacts:0-49:again", &batch(0..50));
    assert_eq!(sync.status(&server)["sequence"], 150);
    // The web sees them.
    let list = server
        .get(&format!("{}?limit=100", sync.records_path("contacts")))
        .bearer(&sync.company.session.token)
        .send()
        .json();
    assert_eq!(list["records"].as_array().map(Vec::len), Some(100));
    assert_eq!(list["next"], ids[99].to_string());
    // An entity the schema does not have.
    let unknown = json!({"mode": "initial", "changes": [
        {"entity": "invoices", "global_id": Uuid::new_v4(), "op": "upsert", "fields": {}}]});
    assert_error(
        &sync.push(&server, "k-unknown", &unknown),
        400,
        "invalid_request",
    );
}

#[test]
fn gzip_bodies_are_accepted() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let ids = ids(200);
    let body = json!({"mode": "initial",
                      "changes": (0..200).map(|n| contact(ids[n], n)).collect::<Vec<_>>()});
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(body.to_string().as_bytes())
        .expect("compress");
    let compressed = encoder.finish().expect("compress");
    let answer = server
        .post("/api/v1/sync/push")
        .bearer(&sync.device.access_token)
        .header("X-Fencing", &sync.fencing.to_string())
        .header("Idempotency-Key", "gz-1")
        .header("Content-Encoding", "gzip")
        .body("application/json", compressed)
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["results"].as_array().map(Vec::len), Some(200));
    // Larger than the general 64 KiB limit, fine for sync.
    let big = json!({"mode": "initial",
                     "changes": (0..200).map(|n| contact(ids[n], n + 1)).collect::<Vec<_>>(),
                     "padding": "x".repeat(200_000)});
    assert_eq!(sync.push(&server, "big", &big).status, 200);
    let garbage = server
        .post("/api/v1/sync/push")
        .bearer(&sync.device.access_token)
        .header("X-Fencing", &sync.fencing.to_string())
        .header("Idempotency-Key", "gz-2")
        .header("Content-Encoding", "gzip")
        .body("application/json", b"not gzip".to_vec())
        .send();
    assert_error(&garbage, 400, "invalid_request");
}

#[test]
fn the_same_field_on_both_sides_the_host_wins_and_both_values_are_recorded() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let id = Uuid::new_v4();
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [contact(id, 1)]}),
    );
    // A web user changes the name and the phone.
    let edited = sync.web_patch(
        &server,
        &id.to_string(),
        json!({"name": "Web name", "phone": "555"}),
    );
    assert_eq!(edited.status, 200, "{}", edited.text());
    assert_eq!(edited.json()["version"], 2);
    // The host changed the name and the city since version 1.
    let answer = sync.push_ok(
        &server,
        "inc-1",
        &json!({"mode": "incremental", "changes": [
            {"entity": "contacts", "global_id": id, "op": "upsert", "base_version": 1,
             "fields": {"number": 10001, "name": "Host name", "city": "Bergen"},
             "changed": ["name", "city"]}]}),
    );
    assert_eq!(
        answer["conflicts"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    assert_eq!(answer["conflicts"][0]["field"], "name");
    assert_eq!(answer["conflicts"][0]["host_value"], "Host name");
    assert_eq!(answer["conflicts"][0]["online_value"], "Web name");
    assert_eq!(answer["conflicts"][0]["outcome"], "host_wins");
    let record = sync.web_get(&server, &id.to_string()).json();
    assert_eq!(
        record["fields"],
        json!({"number": 10001, "name": "Host name", "city": "Bergen", "phone": "555"})
    );
    // Recorded in the history with both values.
    let history = sync.conflicts(&server);
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["online_value"], "Web name");
    assert!(history[0]["at"].is_string());
    // The merged record goes back to the host (the phone is new to it).
    let pulled = sync.pull(&server, 0);
    let changes = pulled["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{pulled}");
    assert_eq!(changes[0]["fields"]["phone"], "555");
    assert_eq!(changes[0]["version"], 3);

    // Different fields on both sides merge without a conflict.
    sync.web_patch(&server, &id.to_string(), json!({"phone": "777"}));
    let answer = sync.push_ok(
        &server,
        "inc-2",
        &json!({"mode": "incremental", "changes": [
            {"entity": "contacts", "global_id": id, "op": "upsert", "base_version": 3,
             "fields": {"city": "Trondheim"}, "changed": ["city"]}]}),
    );
    assert_eq!(answer["conflicts"], json!([]));
    let record = sync.web_get(&server, &id.to_string()).json();
    assert_eq!(record["fields"]["phone"], "777");
    assert_eq!(record["fields"]["city"], "Trondheim");
    assert_eq!(sync.conflicts(&server).len(), 1);
}

/// The device after the clock moved on: its access token and lease have
/// expired, so it refreshes and asks for the lease again (a new fencing
/// number).
fn resume(server: &TestServer, sync: &Sync) -> Sync {
    let refreshed = server
        .post("/api/v1/devices/refresh")
        .json(&json!({ "refresh_token": sync.device.refresh_token }))
        .send();
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let device = TestDevice::from_answer(&refreshed.json());
    let answer = lease(server, &device, "pc-1");
    assert_eq!(answer.status, 200, "{}", answer.text());
    Sync {
        company: sync.company.clone(),
        device,
        fencing: answer.json()["fencing"].as_i64().expect("fencing"),
    }
}

/// Every conflict the service still stores for the company, however old
/// (the history endpoint looks back 30 days at most, so it cannot tell a
/// pruned conflict from a hidden one).
fn stored_conflicts(server: &TestServer, sync: &Sync) -> Vec<od_online::sync::Conflict> {
    use od_online::store::{SqliteStore, Store};
    let store = SqliteStore::open(&server.data_dir().join("online.db")).expect("the database");
    let company = Uuid::parse_str(&sync.company.company_id).expect("company id");
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(store.conflicts(company, chrono::DateTime::UNIX_EPOCH))
        .expect("conflicts")
}

/// Regression: nothing bounded the conflict history deterministically (only
/// a timer-driven sweep every 10 minutes). Recording a company's new
/// conflicts now deletes its conflicts older than the 30-day retention, in
/// the same transaction; younger ones stay.
#[test]
fn recording_conflicts_deletes_the_companys_conflicts_older_than_the_retention() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let [old, young, new] = ids(3).try_into().expect("three ids");
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [contact(old, 1), contact(young, 2), contact(new, 3)]}),
    );
    for id in [old, young, new] {
        let edited = sync.web_patch(&server, &id.to_string(), json!({"name": "Web name"}));
        assert_eq!(edited.status, 200, "{}", edited.text());
    }
    let conflicting_push = |sync: &Sync, id: Uuid| {
        let answer = sync.push_ok(
            &server,
            &format!("inc-{id}"),
            &json!({"mode": "incremental", "changes": [
                {"entity": "contacts", "global_id": id, "op": "upsert", "base_version": 1,
                 "fields": {"name": "Host name"}, "changed": ["name"]}]}),
        );
        assert_eq!(
            answer["conflicts"][0]["global_id"],
            id.to_string(),
            "{answer}"
        );
    };
    conflicting_push(&sync, old);
    server.clock().advance(chrono::Duration::days(20));
    let sync = resume(&server, &sync);
    conflicting_push(&sync, young);
    assert_eq!(stored_conflicts(&server, &sync).len(), 2);

    // 31 days after the first conflict, 11 after the second.
    server.clock().advance(chrono::Duration::days(11));
    let sync = resume(&server, &sync);
    conflicting_push(&sync, new);
    let stored: Vec<Uuid> = stored_conflicts(&server, &sync)
        .iter()
        .map(|conflict| conflict.global_id)
        .collect();
    assert_eq!(stored, [new, young], "newest first, the old one deleted");

    // The history lists what is kept.
    let session = server.log_in("ann@example.com", od_online::testing::TEST_PASSWORD);
    let history = server
        .get(&format!(
            "/api/v1/companies/{}/sync/conflicts?days=30",
            sync.company.company_id
        ))
        .bearer(&session.token)
        .send();
    assert_eq!(history.status, 200, "{}", history.text());
    let listed: Vec<Value> = history.json()["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .map(|conflict| conflict["global_id"].clone())
        .collect();
    assert_eq!(listed, [json!(new.to_string()), json!(young.to_string())]);
    // Times in whole seconds, as documented (the clock has microseconds).
    let at = history.json()["conflicts"][0]["at"].clone();
    assert!(
        at.as_str()
            .is_some_and(|at| at.len() == "2025-01-01T00:00:00Z".len() && at.ends_with('Z')),
        "{at}"
    );
}

/// The push body's type is shared with od-client, whose versions are
/// unsigned: a negative `base_version` is refused (it used to count as 0),
/// and one beyond the stored range still is, as before.
#[test]
fn a_base_version_outside_the_stored_range_is_refused() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let id = Uuid::new_v4();
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [contact(id, 1)]}),
    );
    for (key, base) in [("negative", json!(-1)), ("too-large", json!(u64::MAX))] {
        let answer = sync.push(
            &server,
            key,
            &json!({"mode": "incremental", "changes": [
                {"entity": "contacts", "global_id": id, "op": "upsert", "base_version": base,
                 "fields": {"name": "Host name"}, "changed": ["name"]}]}),
        );
        assert_error(&answer, 400, "invalid_request");
    }
    assert_eq!(sync.status(&server)["sequence"], 1, "nothing applied");
    let largest = sync.push_ok(
        &server,
        "largest",
        &json!({"mode": "incremental", "changes": [
            {"entity": "contacts", "global_id": id, "op": "upsert", "base_version": i64::MAX,
             "fields": {"name": "Host name"}, "changed": ["name"]}]}),
    );
    assert_eq!(largest["results"][0]["version"], 2, "{largest}");
}

#[test]
fn a_host_key_longer_than_200_characters_is_refused_and_nothing_applied() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let [a, b] = [Uuid::new_v4(), Uuid::new_v4()];
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [keyed(a, 1, "1")]}),
    );
    // 201 characters (multi-byte ones count once each).
    let long = "ä".repeat(201);
    let answer = sync.push(
        &server,
        "long-key",
        &json!({"mode": "initial", "changes": [keyed(b, 2, "2"), keyed(a, 1, &long)]}),
    );
    assert_error(&answer, 400, "invalid_request");
    assert_eq!(sync.status(&server)["sequence"], 1, "nothing applied");
    let records = all_records(&server, &sync);
    assert_eq!(records.len(), 1);
    assert_eq!(record_of(&records, a)["host_key"], "1");
    // 200 characters are accepted, under the same idempotency key: the
    // refused push did not use it up.
    let longest = "ä".repeat(200);
    sync.push_ok(
        &server,
        "long-key",
        &json!({"mode": "initial", "changes": [keyed(b, 2, "2"), keyed(a, 1, &longest)]}),
    );
    let records = all_records(&server, &sync);
    assert_eq!(record_of(&records, a)["host_key"], longest.as_str());
    assert_eq!(record_of(&records, b)["host_key"], "2");
}

#[test]
fn deletes_leave_tombstones_and_delete_against_edit_follows_the_rule() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [contact(a, 1), contact(b, 2), contact(c, 3)]}),
    );
    let cursor = sync.pull(&server, 0)["cursor"].as_i64().expect("cursor");
    // The host deletes a: gone online.
    sync.push_ok(
        &server,
        "del-a",
        &json!({"mode": "incremental", "changes": [
            {"entity": "contacts", "global_id": a, "op": "delete", "base_version": 1}]}),
    );
    assert_error(&sync.web_get(&server, &a.to_string()), 404, "not_found");
    // A web user deletes b: a tombstone goes to the host.
    let deleted = server
        .delete(&format!("{}/{b}", sync.records_path("contacts")))
        .bearer(&sync.company.session.token)
        .send();
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let pulled = sync.pull(&server, cursor);
    let changes = pulled["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{pulled}");
    assert_eq!(changes[0]["global_id"], b.to_string());
    assert_eq!(changes[0]["deleted"], true);
    // The host edited b before it heard of the delete: b is restored.
    let answer = sync.push_ok(
        &server,
        "edit-b",
        &json!({"mode": "incremental", "changes": [
            {"entity": "contacts", "global_id": b, "op": "upsert", "base_version": 1,
             "fields": {"city": "Tromsø"}, "changed": ["city"]}]}),
    );
    assert_eq!(
        answer["conflicts"][0]["outcome"], "online_delete_undone",
        "{answer}"
    );
    assert_eq!(
        sync.web_get(&server, &b.to_string()).json()["fields"]["city"],
        "Tromsø"
    );
    // A web user edits c while the host deletes it: the host's delete wins.
    sync.web_patch(&server, &c.to_string(), json!({"phone": "1"}));
    let answer = sync.push_ok(
        &server,
        "del-c",
        &json!({"mode": "incremental", "changes": [
            {"entity": "contacts", "global_id": c, "op": "delete", "base_version": 1}]}),
    );
    assert_eq!(
        answer["conflicts"][0]["outcome"], "host_delete_wins",
        "{answer}"
    );
    assert_eq!(
        answer["conflicts"][0]["online_value"],
        json!({"phone": "1"})
    );
    assert_error(&sync.web_get(&server, &c.to_string()), 404, "not_found");
    assert_eq!(sync.conflicts(&server).len(), 2);
    let status = sync.status(&server);
    assert_eq!(status["entities"][0]["records"], 1, "{status}");
    assert_eq!(status["entities"][0]["deleted"], 2, "{status}");
}

#[test]
fn pulls_leave_out_the_devices_own_pushes_but_pass_them() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let ids = ids(3);
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": ids.iter().enumerate()
            .map(|(n, id)| contact(*id, n)).collect::<Vec<_>>()}),
    );
    let pulled = sync.pull(&server, 0);
    assert_eq!(pulled["changes"], json!([]));
    assert_eq!(pulled["cursor"], 3);
    // A web create comes through with its values, markup as it was typed.
    let created = server
        .post(&sync.records_path("contacts"))
        .bearer(&sync.company.session.token)
        .json(
            &json!({"fields": {"name": "<script>alert(1)</script>", "active": true,
                                 "since": "2025-01-31"}}),
        )
        .send();
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let pulled = sync.pull(&server, 3);
    assert_eq!(pulled["cursor"], 4);
    assert_eq!(pulled["changes"][0]["global_id"], created["global_id"]);
    assert_eq!(
        pulled["changes"][0]["fields"]["name"],
        "<script>alert(1)</script>"
    );
    // Acknowledge; the cursor never goes back.
    let ack = |cursor: i64| {
        server
            .post("/api/v1/sync/ack")
            .bearer(&sync.device.access_token)
            .header("X-Fencing", &sync.fencing.to_string())
            .json(&json!({ "cursor": cursor }))
            .send()
    };
    assert_eq!(ack(4).json()["cursor"], 4);
    assert_eq!(ack(2).json()["cursor"], 4);
    assert_error(&ack(99), 400, "invalid_request");
    assert_eq!(sync.status(&server)["acknowledged"], 4);
}

#[test]
fn a_waiting_pull_returns_when_a_web_edit_commits() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let id = Uuid::new_v4();
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [contact(id, 1)]}),
    );
    let started = Instant::now();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            server
                .get("/api/v1/sync/changes?after=1&wait=25")
                .bearer(&sync.device.access_token)
                .send()
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(!waiting.is_finished(), "the pull should wait for news");
        let edited = sync.web_patch(&server, &id.to_string(), json!({"city": "Bodø"}));
        assert_eq!(edited.status, 200);
        let answer = waiting.join().expect("the pull");
        assert_eq!(answer.status, 200, "{}", answer.text());
        let body = answer.json();
        assert_eq!(body["changes"][0]["fields"]["city"], "Bodø", "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "woken by the edit, not by the 25 s timeout"
        );
    });
    // Nothing new: the wait ends with the same cursor.
    let answer = server
        .get("/api/v1/sync/changes?after=2&wait=1")
        .bearer(&sync.device.access_token)
        .send()
        .json();
    assert_eq!(answer, json!({"changes": [], "cursor": 2}));
}

#[test]
fn web_edits_are_validated_against_the_schema() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let path = sync.records_path("contacts");
    let create = |fields: Value| {
        server
            .post(&path)
            .bearer(&sync.company.session.token)
            .json(&json!({ "fields": fields }))
            .send()
    };
    let refused = create(json!({"name": "A", "number": 5}));
    assert_error(&refused, 400, "validation_failed");
    assert_eq!(refused.json()["error"]["fields"], json!(["number"]));
    assert_error(
        &create(json!({"name": "A", "balance": 5})),
        400,
        "validation_failed",
    );
    assert_error(&create(json!({"city": "Oslo"})), 400, "validation_failed");
    assert_error(&create(json!({"name": 5})), 400, "validation_failed");
    assert_error(
        &create(json!({"name": "A", "since": "31.01.2025"})),
        400,
        "validation_failed",
    );
    assert_error(
        &create(json!({"name": "A", "parent_id": "x"})),
        400,
        "validation_failed",
    );
    assert_error(
        &create(json!({"name": "A", "nope": 1})),
        400,
        "validation_failed",
    );
    let ok = create(json!({"name": "A"}));
    assert_eq!(ok.status, 201, "{}", ok.text());
    let id = ok.json()["global_id"].as_str().expect("id").to_owned();
    assert_error(
        &sync.web_patch(&server, &id, json!({"name": null})),
        400,
        "validation_failed",
    );
    assert_error(
        &sync.web_patch(&server, &id, json!({"number": 1})),
        400,
        "validation_failed",
    );
    let stale = server
        .patch(&format!("{path}/{id}"))
        .bearer(&sync.company.session.token)
        .json(&json!({"fields": {"city": "Oslo"}, "base_version": 7}))
        .send();
    assert_error(&stale, 409, "version_conflict");
    // Host-only entities.
    let products = sync.records_path("products");
    let answer = server
        .post(&products)
        .bearer(&sync.company.session.token)
        .json(&json!({"fields": {"name": "Chair"}}))
        .send();
    assert_error(&answer, 409, "entity_read_only");
    assert_error(
        &server
            .get(&sync.records_path("invoices"))
            .bearer(&sync.company.session.token)
            .send(),
        404,
        "not_found",
    );
    // Device tokens are not web users.
    assert_error(
        &server.get(&path).bearer(&sync.device.access_token).send(),
        403,
        "forbidden",
    );
}

#[test]
fn a_restarted_service_keeps_records_idempotency_and_lease() {
    let folder = tempfile::tempdir().expect("a folder");
    let id = Uuid::new_v4();
    let body = json!({"mode": "initial", "changes": [contact(id, 1)]});
    let (sync, first) = {
        let server = TestServer::builder().data_dir(folder.path()).start();
        let sync = setup(&server, "ann@example.com", "L-1");
        let first = sync.push_ok(&server, "batch-1", &body);
        (sync, first)
    };
    let server = TestServer::builder().data_dir(folder.path()).start();
    let renewed = lease(&server, &sync.device, "pc-1");
    assert_eq!(renewed.status, 200, "{}", renewed.text());
    let fencing = renewed.json()["fencing"].as_i64().expect("fencing");
    assert!(fencing >= sync.fencing);
    let again = push_as(&server, &sync.device, fencing, "batch-1", &body);
    assert_eq!(again.json(), first);
    assert_eq!(sync.status(&server)["sequence"], 1);
    assert_eq!(
        sync.web_get(&server, &id.to_string()).json()["fields"]["name"],
        "Contact 1"
    );
}

#[test]
fn one_companys_device_and_users_cannot_reach_another_companys_sync_data() {
    let server = TestServer::start();
    let a = setup(&server, "ann@example.com", "L-1");
    let b = setup(&server, "bob@example.com", "L-2");
    let id = Uuid::new_v4();
    a.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [contact(id, 1)]}),
    );
    // b's device sees only b's company.
    assert_eq!(b.pull(&server, 0), json!({"changes": [], "cursor": 0}));
    assert_eq!(b.status(&server)["sequence"], 0);
    // b's user cannot reach a's records, by any path.
    for path in [
        a.records_path("contacts"),
        format!("{}/{id}", a.records_path("contacts")),
        format!("/api/v1/companies/{}/sync/conflicts", a.company.company_id),
        format!("/api/v1/companies/{}/sync/schema", a.company.company_id),
    ] {
        let answer = server.get(&path).bearer(&b.company.session.token).send();
        assert_error(&answer, 404, "not_found");
    }
    let answer = server
        .post(&format!(
            "/api/v1/companies/{}/sync-computer",
            a.company.company_id
        ))
        .bearer(&b.company.session.token)
        .json(&json!({"computer_id": "pc-x"}))
        .send();
    assert_error(&answer, 404, "not_found");
    // The same idempotency key in another company is another batch.
    let answer = b.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [contact(id, 2)]}),
    );
    assert_eq!(answer["results"][0]["version"], 1);
    assert_eq!(
        a.web_get(&server, &id.to_string()).json()["fields"]["name"],
        "Contact 1"
    );
    // And b's fencing number is not a's.
    let empty = json!({"mode": "incremental", "changes": []});
    assert_eq!(
        push_as(&server, &a.device, a.fencing, "x", &empty).status,
        200
    );
}

#[test]
fn the_checksum_follows_the_documented_canonical_form() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let ids = ids(20);
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": ids.iter().enumerate()
            .map(|(n, id)| contact(*id, n)).collect::<Vec<_>>()}),
    );
    let answer = server
        .get("/api/v1/sync/checksum")
        .bearer(&sync.device.access_token)
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    // Computed here as a host would: sorted ids, canonical lines, SHA-256.
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for (n, id) in ids.iter().enumerate() {
        hasher.update(format!(
            "[\"{id}\",{{\"city\":\"Oslo\",\"name\":\"Contact {n}\",\"number\":{}}},false]\n",
            10000 + n
        ));
    }
    let expected: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        body,
        json!({"entities": [{"entity": "contacts", "count": 20, "sha256": expected}]})
    );
}

/// Rough timing of a 1,000-record initial batch (and its repeat). Run in
/// release for a figure: `cargo test --release -p od-online --test service
/// thousand -- --nocapture`.
#[test]
fn a_thousand_record_batch_is_one_quick_transaction() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let ids = ids(3000);
    let mut timings = Vec::new();
    for batch in 0..3 {
        let body = json!({"mode": "initial", "changes": (batch * 1000..(batch + 1) * 1000)
            .map(|n| contact(ids[n], n)).collect::<Vec<_>>()});
        let started = Instant::now();
        sync.push_ok(&server, &format!("perf-{batch}"), &body);
        timings.push(started.elapsed());
    }
    let started = Instant::now();
    sync.push_ok(
        &server,
        "perf-0",
        &json!({"mode": "initial", "changes": []}),
    );
    let replay = started.elapsed();
    println!("1,000-record initial batches: {timings:?}; a repeated key: {replay:?}");
    assert!(timings.iter().all(|time| *time < Duration::from_secs(20)));
    assert_eq!(sync.status(&server)["sequence"], 3000);
}

// --- Taking over: host keys, the records download, last_acknowledged ---------------

fn keyed(id: Uuid, n: usize, key: &str) -> Value {
    let mut change = contact(id, n);
    change["host_key"] = json!(key);
    change
}

fn sync_records(server: &TestServer, device: &TestDevice, query: &str) -> TestResponse {
    server
        .get(&format!("/api/v1/sync/records?{query}"))
        .bearer(&device.access_token)
        .send()
}

/// Every record of `contacts`, one page of 1,000, by global id.
fn all_records(server: &TestServer, sync: &Sync) -> Vec<Value> {
    let answer = sync_records(server, &sync.device, "entity=contacts");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let page = answer.json();
    assert_eq!(page["next"], Value::Null, "{page}");
    page["records"].as_array().expect("records").clone()
}

fn record_of(records: &[Value], id: Uuid) -> Value {
    records
        .iter()
        .find(|record| record["global_id"] == id.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("{id} not in {records:?}"))
}

#[test]
fn host_keys_are_stored_from_every_push_and_kept_when_a_push_has_none() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let [a, b, c, d] = [
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    ];
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [
            keyed(a, 1, "1"), keyed(b, 2, "2"), contact(c, 3), keyed(d, 4, "4")]}),
    );
    let records = all_records(&server, &sync);
    assert_eq!(records.len(), 4);
    assert_eq!(record_of(&records, a)["host_key"], "1");
    assert_eq!(record_of(&records, c)["host_key"], Value::Null);
    let first = record_of(&records, a);
    assert_eq!(first["version"], 1);
    assert_eq!(first["deleted"], false);
    assert_eq!(first["fields"]["name"], "Contact 1");
    assert_eq!(first["web_fields"], json!({}));

    sync.push_ok(
        &server,
        "incr",
        &json!({"mode": "incremental", "changes": [
            // No key: the stored one stays.
            {"entity": "contacts", "global_id": a, "op": "upsert", "base_version": 1,
             "fields": {"city": "Bergen"}, "changed": ["city"]},
            // A new key replaces the stored one.
            {"entity": "contacts", "global_id": b, "op": "upsert", "base_version": 1,
             "fields": {"city": "Bergen"}, "changed": ["city"], "host_key": "20"},
            // The same values, a key: stored without a new version.
            {"entity": "contacts", "global_id": c, "op": "upsert", "base_version": 1,
             "fields": {"city": "Oslo"}, "changed": ["city"], "host_key": "3"},
            // A delete carries its key too.
            {"entity": "contacts", "global_id": d, "op": "delete", "base_version": 1,
             "host_key": "40"}]}),
    );
    let records = all_records(&server, &sync);
    assert_eq!(record_of(&records, a)["host_key"], "1");
    assert_eq!(record_of(&records, a)["version"], 2);
    assert_eq!(record_of(&records, b)["host_key"], "20");
    assert_eq!(record_of(&records, c)["host_key"], "3");
    assert_eq!(record_of(&records, c)["version"], 1);
    // Tombstones are listed, with their fields as they were.
    let tombstone = record_of(&records, d);
    assert_eq!(tombstone["deleted"], true, "{tombstone}");
    assert_eq!(tombstone["host_key"], "40");
    assert_eq!(tombstone["fields"]["name"], "Contact 4");

    // A new sync computer's first (initial) push of unchanged records: the
    // keys are stored, nothing else changes (no version, no sequence number).
    let sequence = sync.status(&server)["sequence"].clone();
    let mut same_a = keyed(a, 1, "101");
    same_a["fields"]["city"] = json!("Bergen");
    sync.push_ok(
        &server,
        "takeover",
        &json!({"mode": "initial", "changes": [same_a]}),
    );
    assert_eq!(sync.status(&server)["sequence"], sequence);
    let records = all_records(&server, &sync);
    assert_eq!(record_of(&records, a)["host_key"], "101");
    assert_eq!(record_of(&records, a)["version"], 2);
    // An initial push without a key keeps it as well.
    let mut changed_a = contact(a, 1);
    changed_a["fields"]["city"] = json!("Narvik");
    sync.push_ok(
        &server,
        "initial-no-key",
        &json!({"mode": "initial", "changes": [changed_a]}),
    );
    let records = all_records(&server, &sync);
    assert_eq!(record_of(&records, a)["host_key"], "101");
    assert_eq!(record_of(&records, a)["version"], 3);
}

#[test]
fn web_fields_list_the_changes_of_web_users_until_a_push_changes_them() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let pushed = Uuid::new_v4();
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [keyed(pushed, 1, "7")]}),
    );
    // Created on the web: no host key, every field it has is a web change.
    let created = server
        .post(&sync.records_path("contacts"))
        .bearer(&sync.company.session.token)
        .json(&json!({"fields": {"name": "Web", "city": "Bergen"}}))
        .send();
    assert_eq!(created.status, 201, "{}", created.text());
    let web_id = Uuid::parse_str(created.json()["global_id"].as_str().expect("id")).expect("uuid");
    let created_seq = sync.status(&server)["sequence"].as_i64().expect("sequence");
    let records = all_records(&server, &sync);
    let web = record_of(&records, web_id);
    assert_eq!(web["host_key"], Value::Null, "{web}");
    // Each with its sequence number and the record version it made.
    let creation = json!({"seq": created_seq, "version": 1});
    assert_eq!(web["version"], 1);
    assert_eq!(
        web["web_fields"],
        json!({"name": creation, "city": creation})
    );

    // A web edit after the push shows with its sequence number...
    let edited = sync.web_patch(&server, &pushed.to_string(), json!({"phone": "555"}));
    assert_eq!(edited.status, 200, "{}", edited.text());
    let edit_seq = sync.status(&server)["sequence"].as_i64().expect("sequence");
    let record = record_of(&all_records(&server, &sync), pushed);
    assert_eq!(record["version"], 2);
    assert_eq!(
        record["web_fields"],
        json!({"phone": {"seq": edit_seq, "version": 2}}),
        "{record}"
    );
    assert_eq!(record["fields"]["phone"], "555");
    assert_eq!(record["host_key"], "7");
    // ... until a push changes that field.
    sync.push_ok(
        &server,
        "phone",
        &json!({"mode": "incremental", "changes": [
            {"entity": "contacts", "global_id": pushed, "op": "upsert", "base_version": 2,
             "fields": {"phone": "556"}, "changed": ["phone"]}]}),
    );
    let record = record_of(&all_records(&server, &sync), pushed);
    assert_eq!(record["web_fields"], json!({}), "{record}");

    // A web delete is listed under `*`; the host restoring it removes that.
    let deleted = server
        .delete(&format!("{}/{pushed}", sync.records_path("contacts")))
        .bearer(&sync.company.session.token)
        .send();
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let delete_seq = sync.status(&server)["sequence"].as_i64().expect("sequence");
    let record = record_of(&all_records(&server, &sync), pushed);
    assert_eq!(record["deleted"], true);
    assert_eq!(record["version"], 4);
    assert_eq!(
        record["web_fields"],
        json!({"*": {"seq": delete_seq, "version": 4}}),
        "{record}"
    );
    sync.push_ok(
        &server,
        "restore",
        &json!({"mode": "initial", "changes": [keyed(pushed, 1, "7")]}),
    );
    let record = record_of(&all_records(&server, &sync), pushed);
    assert_eq!(record["deleted"], false);
    assert_eq!(record["web_fields"], json!({}), "{record}");
}

#[test]
fn the_records_download_pages_by_global_id_and_covers_every_record_once() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let ids = ids(30);
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": ids.iter().enumerate()
            .map(|(n, id)| keyed(*id, n, &n.to_string())).collect::<Vec<_>>()}),
    );
    sync.push_ok(
        &server,
        "deletes",
        &json!({"mode": "incremental", "changes": ids.iter().step_by(6)
            .map(|id| json!({"entity": "contacts", "global_id": id, "op": "delete",
                             "base_version": 1}))
            .collect::<Vec<_>>()}),
    );
    // 30 records, 5 of them tombstones, in pages of 10: the last page is
    // full and still says it is the last.
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &after {
            Some(after) => format!("entity=contacts&limit=10&after={after}"),
            None => "entity=contacts&limit=10".to_owned(),
        };
        let answer = sync_records(&server, &sync.device, &query);
        assert_eq!(answer.status, 200, "{}", answer.text());
        let page = answer.json();
        pages += 1;
        let records = page["records"].as_array().expect("records");
        seen.extend(
            records
                .iter()
                .map(|record| record["global_id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(Some(next), seen.last().map(String::as_str));
                after = Some(next.to_owned());
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(seen, expected, "every record once, by global id");
    let tombstones = all_records(&server, &sync)
        .iter()
        .filter(|record| record["deleted"] == true)
        .count();
    assert_eq!(tombstones, 5);
    // The limit is at most 5000 and at least 1.
    let page = sync_records(&server, &sync.device, "entity=contacts&limit=0").json();
    assert_eq!(page["records"].as_array().expect("records").len(), 1);
    assert_eq!(page["next"], ids[0].to_string());
    let page = sync_records(&server, &sync.device, "entity=contacts&limit=999999").json();
    assert_eq!(page["records"].as_array().expect("records").len(), 30);
    // An entity with no records; then refusals.
    let page = sync_records(&server, &sync.device, "entity=products").json();
    assert_eq!(page, json!({"records": [], "next": null}));
    for query in [
        "entity=nope",
        "",
        "entity=contacts&after=not-a-uuid",
        "entity=contacts&limit=x",
    ] {
        assert_error(
            &sync_records(&server, &sync.device, query),
            400,
            "invalid_request",
        );
    }
    // A user's session is not a device.
    let answer = server
        .get("/api/v1/sync/records?entity=contacts")
        .bearer(&sync.company.session.token)
        .send();
    assert_error(&answer, 403, "forbidden");
}

#[test]
fn the_records_download_reaches_only_the_devices_company() {
    let server = TestServer::start();
    let a = setup(&server, "ann@example.com", "L-1");
    let b = setup(&server, "bob@example.com", "L-2");
    let id = Uuid::new_v4();
    a.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": [keyed(id, 1, "1")]}),
    );
    assert_eq!(all_records(&server, &a).len(), 1);
    assert_eq!(all_records(&server, &b), Vec::<Value>::new());
    let answer = sync_records(&server, &b.device, &format!("entity=contacts&after={id}"));
    assert_eq!(answer.json()["records"], json!([]));
    // A company without a schema yet: as a push would answer.
    let company = server.connected_company("cy@example.com", "L-3");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    assert_error(
        &sync_records(&server, &device, "entity=contacts"),
        409,
        "schema_missing",
    );
}

fn ack_as(server: &TestServer, device: &TestDevice, fencing: i64, cursor: i64) -> TestResponse {
    server
        .post("/api/v1/sync/ack")
        .bearer(&device.access_token)
        .header("X-Fencing", &fencing.to_string())
        .json(&json!({ "cursor": cursor }))
        .send()
}

fn status_of(server: &TestServer, device: &TestDevice) -> Value {
    let answer = server
        .get("/api/v1/sync/status")
        .bearer(&device.access_token)
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

#[test]
fn last_acknowledged_is_the_highest_cursor_of_any_device_of_the_company() {
    let server = TestServer::start();
    let sync = setup(&server, "ann@example.com", "L-1");
    let other = server.create_device(
        &sync.company.session.token,
        &sync.company.company_id,
        "pc-2",
    );
    assert_eq!(status_of(&server, &other)["last_acknowledged"], 0);
    let ids = ids(3);
    sync.push_ok(
        &server,
        "init",
        &json!({"mode": "initial", "changes": ids.iter().enumerate()
            .map(|(n, id)| contact(*id, n)).collect::<Vec<_>>()}),
    );
    assert_eq!(
        ack_as(&server, &sync.device, sync.fencing, 3).json()["cursor"],
        3
    );
    let status = status_of(&server, &other);
    assert_eq!(status["acknowledged"], 0, "{status}");
    assert_eq!(status["last_acknowledged"], 3, "{status}");

    // Synchronisation moves to pc-2, which goes on from there.
    let move_to = |computer: &str| {
        let moved = server
            .post(&format!(
                "/api/v1/companies/{}/sync-computer",
                sync.company.company_id
            ))
            .bearer(&sync.company.session.token)
            .json(&json!({ "computer_id": computer }))
            .send();
        assert_eq!(moved.status, 200, "{}", moved.text());
    };
    move_to("pc-2");
    let fencing = lease(&server, &other, "pc-2").json()["fencing"]
        .as_i64()
        .expect("fencing");
    let edited = sync.web_patch(&server, &ids[0].to_string(), json!({"city": "Molde"}));
    assert_eq!(edited.status, 200, "{}", edited.text());
    sync.web_patch(&server, &ids[1].to_string(), json!({"city": "Molde"}));
    assert_eq!(ack_as(&server, &other, fencing, 4).json()["cursor"], 4);
    let status = status_of(&server, &sync.device);
    assert_eq!(status["acknowledged"], 3, "{status}");
    assert_eq!(status["last_acknowledged"], 4, "{status}");
    let status = status_of(&server, &other);
    assert_eq!(status["acknowledged"], 4, "{status}");
    assert_eq!(status["last_acknowledged"], 4, "{status}");

    // And back: pc-1 is behind; the highest stays until someone passes it.
    move_to("pc-1");
    let fencing = lease(&server, &sync.device, "pc-1").json()["fencing"]
        .as_i64()
        .expect("fencing");
    assert_eq!(status_of(&server, &sync.device)["last_acknowledged"], 4);
    assert_eq!(
        ack_as(&server, &sync.device, fencing, 5).json()["cursor"],
        5
    );
    assert_eq!(status_of(&server, &other)["last_acknowledged"], 5);
    // Another company's acknowledgements do not count.
    let b = setup(&server, "bob@example.com", "L-2");
    assert_eq!(b.status(&server)["last_acknowledged"], 0);
}
