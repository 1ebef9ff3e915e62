//! The connection's life (issue 5): disconnect (PRODUCT.md §5.8), undoing a
//! registration that was never used, Update connection (a new device for
//! the same computer), and the host marker of restore detection
//! (docs/SYNC_PROTOCOL.md §9).

use od_online::testing::{TestCompany, TestDevice, TestResponse, TestServer, TEST_PASSWORD};
use serde_json::{json, Value};

use crate::*;

fn schema() -> Value {
    json!({"version": 1, "entities": [
        {"name": "contacts", "title": "Contacts", "fields": [
            {"name": "name", "type": "text", "required": true},
            {"name": "city", "type": "text"}
        ]}
    ]})
}

const IDS: [&str; 3] = [
    "00000000-0000-4000-8000-000000000001",
    "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003",
];

fn lease(server: &TestServer, device: &TestDevice) -> i64 {
    let answer = server
        .post("/api/v1/sync/lease")
        .bearer(&device.access_token)
        .json(&json!({}))
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["fencing"].as_i64().expect("fencing")
}

fn put_schema(server: &TestServer, device: &TestDevice, fencing: i64) {
    let answer = server
        .request("PUT", "/api/v1/sync/schema")
        .bearer(&device.access_token)
        .header("X-Fencing", &fencing.to_string())
        .json(&schema())
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
}

fn push(
    server: &TestServer,
    device: &TestDevice,
    fencing: i64,
    key: &str,
    host_position: Option<&str>,
    body: &Value,
) -> TestResponse {
    let mut request = server
        .post("/api/v1/sync/push")
        .bearer(&device.access_token)
        .header("X-Fencing", &fencing.to_string())
        .header("Idempotency-Key", key);
    if let Some(position) = host_position {
        request = request.header("X-Host-Position", position);
    }
    request.json(body).send()
}

/// The plugin's first-sync batch of the three contacts (the same key every
/// time, as the plugin makes it).
fn first_batch(server: &TestServer, device: &TestDevice, fencing: i64) -> Value {
    let changes: Vec<Value> = IDS
        .iter()
        .enumerate()
        .map(|(n, id)| {
            json!({"entity": "contacts", "global_id": id, "op": "upsert",
                   "fields": {"name": format!("Contact {n}"), "city": "Oslo"}})
        })
        .collect();
    let answer = push(
        server,
        device,
        fencing,
        "first:contacts:0:3",
        Some("3"),
        &json!({"mode": "initial", "changes": changes}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

fn status(server: &TestServer, device: &TestDevice) -> Value {
    let answer = server
        .get("/api/v1/sync/status")
        .bearer(&device.access_token)
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

fn company_path(company: &TestCompany, rest: &str) -> String {
    format!("/api/v1/companies/{}{rest}", company.company_id)
}

fn disconnect(server: &TestServer, company: &TestCompany, session: &str) -> TestResponse {
    server
        .post(&company_path(company, "/disconnect"))
        .bearer(session)
        .send()
}

fn records(server: &TestServer, company: &TestCompany) -> TestResponse {
    server
        .get(&company_path(company, "/records/contacts"))
        .bearer(&company.session.token)
        .send()
}

/// A connected company whose sync computer `pc-1` has sent the schema and
/// the three contacts, one of which a web user then edited and the host
/// edited too (a conflict in the history), and acknowledged everything.
fn synchronised(server: &TestServer) -> (TestCompany, TestDevice, i64) {
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let fencing = lease(server, &device);
    put_schema(server, &device, fencing);
    first_batch(server, &device, fencing);
    let edited = server
        .patch(&company_path(
            &company,
            &format!("/records/contacts/{}", IDS[0]),
        ))
        .bearer(&company.session.token)
        .json(&json!({"fields": {"city": "Bergen"}}))
        .send();
    assert_eq!(edited.status, 200, "{}", edited.text());
    let answer = push(
        server,
        &device,
        fencing,
        "inc:1",
        Some("4"),
        &json!({"mode": "incremental", "changes": [{"entity": "contacts", "global_id": IDS[0],
               "op": "upsert", "base_version": 1, "fields": {"city": "Trondheim"}}]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["conflicts"].as_array().map(Vec::len), Some(1));
    let sequence = status(server, &device)["sequence"]
        .as_i64()
        .expect("sequence");
    let acked = server
        .post("/api/v1/sync/ack")
        .bearer(&device.access_token)
        .header("X-Fencing", &fencing.to_string())
        .json(&json!({ "cursor": sequence }))
        .send();
    assert_eq!(acked.status, 200, "{}", acked.text());
    (company, device, fencing)
}

/// Makes `email` (a new Online ID) a super user of the company. Invitations
/// come with a later issue; until then the membership is written directly.
fn add_super_user(server: &TestServer, company: &TestCompany, email: &str) -> String {
    let session = online_id(server, email);
    let me = me(server, &session).json();
    let connection = rusqlite::Connection::open(server.data_dir().join("online.db"))
        .expect("the service's database");
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    connection
        .execute(
            "INSERT INTO memberships (company_id, account_id, role, created_at)
             VALUES (?1, ?2, 'super_user', 0)",
            [company.company_id.as_str(), text(&me, "/id").as_str()],
        )
        .expect("a membership");
    session
}

// --- Disconnect ------------------------------------------------------------------

#[test]
fn disconnect_deletes_the_synchronised_data_and_connecting_again_starts_afresh() {
    let server = TestServer::start();
    let (company, device, fencing) = synchronised(&server);
    let before = status(&server, &device);
    assert_eq!(before["host"], json!({"position": 4, "generation": null}));
    assert_eq!(
        records(&server, &company).json()["records"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );

    let answer = disconnect(&server, &company, &company.session.token);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["company_id"], company.company_id);
    assert_eq!(
        (
            body["records_deleted"].as_u64(),
            body["devices_revoked"].as_u64()
        ),
        (Some(3), Some(1))
    );

    // Web access to the data is closed, with a clear answer.
    for path in [
        "/records/contacts",
        &format!("/records/contacts/{}", IDS[1]),
        "/sync/schema",
        "/sync/conflicts",
    ] {
        let answer = server
            .get(&company_path(&company, path))
            .bearer(&company.session.token)
            .send();
        assert_error(&answer, 409, "company_not_connected");
        assert!(answer.text().contains("disconnected"), "{}", answer.text());
    }
    let create = server
        .post(&company_path(&company, "/records/contacts"))
        .bearer(&company.session.token)
        .json(&json!({"fields": {"name": "Web"}}))
        .send();
    assert_error(&create, 409, "company_not_connected");
    let moved = server
        .post(&company_path(&company, "/sync-computer"))
        .bearer(&company.session.token)
        .json(&json!({"computer_id": "pc-2"}))
        .send();
    assert_error(&moved, 409, "company_not_connected");

    // The company and who may use it are kept.
    let kept = server
        .get(&company_path(&company, ""))
        .bearer(&company.session.token)
        .send()
        .json();
    assert_eq!(
        (kept["connected"].as_bool(), kept["name"].as_str()),
        (Some(false), Some("Nordlys Handel AS"))
    );
    assert_eq!(kept["disconnected_at"], body["disconnected_at"]);
    let mine = me(&server, &company.session.token).json();
    assert_eq!(mine["companies"][0]["id"], company.company_id);
    assert_eq!(mine["companies"][0]["role"], "super_user");

    // The device is revoked; no new one until the company is connected again.
    let refused = server
        .post("/api/v1/sync/lease")
        .bearer(&device.access_token)
        .json(&json!({}))
        .send();
    assert_error(&refused, 401, "token_invalid");
    let refreshed = server
        .post("/api/v1/devices/refresh")
        .json(&json!({ "refresh_token": device.refresh_token }))
        .send();
    assert_error(&refreshed, 401, "token_invalid");
    let new_device = server
        .post(&company_path(&company, "/devices"))
        .bearer(&company.session.token)
        .json(&json!({"computer_id": "pc-1", "computer_name": "pc-1"}))
        .send();
    assert_error(&new_device, 409, "company_not_connected");

    // Connecting again: the same registration, then a new device.
    let again = server
        .post("/api/v1/companies")
        .bearer(&company.session.token)
        .json(&od_online::testing::registration(
            &od_online::testing::sign_licence(&od_online::testing::licence("L-1")),
            &company.system_database_id,
            &company.company_database_id,
        ))
        .send();
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["connected"], true);
    assert_eq!(again.json()["disconnected_at"], Value::Null);
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let new_fencing = lease(&server, &device);
    assert!(
        new_fencing > fencing,
        "fencing only grows: {new_fencing} > {fencing}"
    );
    let fresh = status(&server, &device);
    assert_eq!(fresh["schema"], false);
    assert_eq!(fresh["acknowledged"], 0);
    assert_eq!(fresh["entities"], json!([]));
    assert_eq!(fresh["host"], json!({"position": null, "generation": null}));
    assert!(
        fresh["sequence"].as_i64() >= before["sequence"].as_i64(),
        "the sequence number only grows: {fresh} {before}"
    );

    // The first sync runs again with the same keys: applied, not replayed.
    put_schema(&server, &device, new_fencing);
    let answer = first_batch(&server, &device, new_fencing);
    assert!(
        answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["version"] == 1),
        "{answer}"
    );
    let listed = records(&server, &company);
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()["records"].as_array().map(Vec::len), Some(3));
    let history = server
        .get(&company_path(&company, "/sync/conflicts"))
        .bearer(&company.session.token)
        .send();
    assert_eq!(history.json()["conflicts"], json!([]));
    let pulled = server
        .get("/api/v1/sync/changes?after=0")
        .bearer(&device.access_token)
        .send();
    assert_eq!(
        pulled.json()["changes"],
        json!([]),
        "its own pushes are echoes"
    );
}

#[test]
fn disconnecting_twice_is_fine() {
    let server = TestServer::start();
    let (company, _, _) = synchronised(&server);
    let first = disconnect(&server, &company, &company.session.token);
    assert_eq!(first.status, 200, "{}", first.text());
    server.clock().advance(chrono::Duration::minutes(5));
    let second = disconnect(&server, &company, &company.session.token);
    assert_eq!(second.status, 200, "{}", second.text());
    let (first, second) = (first.json(), second.json());
    assert_eq!(second["disconnected_at"], first["disconnected_at"]);
    assert_eq!(
        (
            second["records_deleted"].as_u64(),
            second["devices_revoked"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn only_the_online_id_that_connected_the_company_may_disconnect_it() {
    let server = TestServer::start();
    let (company, device, _) = synchronised(&server);

    // Another Online ID without access: the company does not exist for it.
    let stranger = online_id(&server, "eve@example.com");
    assert_error(&disconnect(&server, &company, &stranger), 404, "not_found");
    // Another super user of the company: refused, naming "Connected by".
    let colleague = add_super_user(&server, &company, "bob@example.com");
    let refused = disconnect(&server, &company, &colleague);
    assert_error(&refused, 403, "forbidden");
    assert!(
        refused.text().contains("ann@example.com"),
        "{}",
        refused.text()
    );
    // The device itself cannot either.
    assert_error(
        &disconnect(&server, &company, &device.access_token),
        403,
        "forbidden",
    );
    // Without a login.
    assert_error(
        &server.post(&company_path(&company, "/disconnect")).send(),
        401,
        "authentication_required",
    );

    // Nothing happened.
    assert_eq!(status(&server, &device)["entities"][0]["records"], 3);
    assert_eq!(records(&server, &company).status, 200);
}

#[test]
fn a_super_user_connecting_a_disconnected_company_again_becomes_connected_by() {
    let server = TestServer::start();
    let (company, _, _) = synchronised(&server);
    let colleague = add_super_user(&server, &company, "bob@example.com");
    assert_eq!(
        disconnect(&server, &company, &company.session.token).status,
        200
    );
    let again = server
        .post("/api/v1/companies")
        .bearer(&colleague)
        .json(&od_online::testing::registration(
            &od_online::testing::sign_licence(&od_online::testing::licence("L-1")),
            &company.system_database_id,
            &company.company_database_id,
        ))
        .send();
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["connected_by"]["email"], "bob@example.com");
    // Now only Bob may disconnect it.
    assert_error(
        &disconnect(&server, &company, &company.session.token),
        403,
        "forbidden",
    );
    assert_eq!(disconnect(&server, &company, &colleague).status, 200);
}

// --- Undoing a registration -----------------------------------------------------

#[test]
fn a_registration_never_used_can_be_undone_and_its_licence_is_free_again() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-7");
    // The device was made, but the wizard's finish failed afterwards (or
    // its answer was lost): the undo removes it too.
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let answer = server
        .delete(&company_path(&company, ""))
        .bearer(&company.session.token)
        .send();
    assert_eq!(answer.status, 204, "{}", answer.text());

    assert_error(
        &server
            .get(&company_path(&company, ""))
            .bearer(&company.session.token)
            .send(),
        404,
        "not_found",
    );
    assert_eq!(
        me(&server, &company.session.token).json()["companies"],
        json!([])
    );
    assert_error(
        &server
            .get("/api/v1/devices/current")
            .bearer(&device.access_token)
            .send(),
        401,
        "token_invalid",
    );
    // Undoing again: nothing is left to undo.
    assert_error(
        &server
            .delete(&company_path(&company, ""))
            .bearer(&company.session.token)
            .send(),
        404,
        "not_found",
    );
    // The licence and the company database are free: anyone may connect them.
    let other = online_id(&server, "bob@example.com");
    let registered = server
        .post("/api/v1/companies")
        .bearer(&other)
        .json(&od_online::testing::registration(
            &od_online::testing::sign_licence(&od_online::testing::licence("L-7")),
            &company.system_database_id,
            &company.company_database_id,
        ))
        .send();
    assert_eq!(registered.status, 201, "{}", registered.text());
}

#[test]
fn a_company_that_was_used_is_not_unregistered() {
    let server = TestServer::start();
    let (company, _, _) = synchronised(&server);
    let undo = || {
        server
            .delete(&company_path(&company, ""))
            .bearer(&company.session.token)
            .send()
    };
    let refused = undo();
    assert_error(&refused, 409, "company_in_use");
    assert!(refused.text().contains("Disconnect"), "{}", refused.text());
    // Disconnected, it still has its users and its history of numbers.
    assert_eq!(
        disconnect(&server, &company, &company.session.token).status,
        200
    );
    assert_error(&undo(), 409, "company_in_use");
    assert_eq!(
        server
            .get(&company_path(&company, ""))
            .bearer(&company.session.token)
            .send()
            .status,
        200
    );
}

#[test]
fn only_connected_by_undoes_a_registration_and_not_while_others_use_it() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let stranger = online_id(&server, "eve@example.com");
    let undo = |session: &str| {
        server
            .delete(&company_path(&company, ""))
            .bearer(session)
            .send()
    };
    assert_error(&undo(&stranger), 404, "not_found");
    let colleague = add_super_user(&server, &company, "bob@example.com");
    assert_error(&undo(&colleague), 403, "forbidden");
    assert_error(&undo(&company.session.token), 409, "company_in_use");
}

// --- Update connection ------------------------------------------------------------

#[test]
fn update_connection_replaces_the_device_and_the_computer_goes_on_where_it_was() {
    let server = TestServer::start();
    let (company, old, fencing) = synchronised(&server);
    let acknowledged = status(&server, &old)["acknowledged"].clone();

    // The Online ID's password was changed elsewhere: the plugin logs in
    // with the new one and registers the same computer again.
    let changed = server
        .post("/api/v1/me/password")
        .bearer(&company.session.token)
        .json(&json!({"current_password": TEST_PASSWORD, "new_password": "a new passphrase"}))
        .send();
    assert_eq!(changed.status, 204, "{}", changed.text());
    let session = server.log_in("ann@example.com", "a new passphrase").token;
    let new = server.create_device(&session, &company.company_id, "pc-1");
    assert_ne!(new.device_id, old.device_id);

    // The old device's tokens are dead.
    assert_error(
        &server
            .get("/api/v1/devices/current")
            .bearer(&old.access_token)
            .send(),
        401,
        "token_invalid",
    );
    assert_error(
        &server
            .post("/api/v1/devices/refresh")
            .json(&json!({ "refresh_token": old.refresh_token }))
            .send(),
        401,
        "token_invalid",
    );
    let devices = server
        .get(&company_path(&company, "/devices"))
        .bearer(&session)
        .send()
        .json();
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(1));
    assert_eq!(devices["devices"][0]["device_id"], new.device_id);

    // The new device is the same computer: same lease, same cursor, its
    // earlier pushes are still echoes, the data and the schema are there.
    assert_eq!(lease(&server, &new), fencing);
    let now = status(&server, &new);
    assert_eq!(now["acknowledged"], acknowledged);
    assert_eq!(now["schema"], true);
    assert_eq!(now["host"]["position"], 4);
    let pulled = server
        .get("/api/v1/sync/changes?after=0")
        .bearer(&new.access_token)
        .send()
        .json();
    let pulled_ids: Vec<&str> = pulled["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter_map(|change| change["global_id"].as_str())
        .collect();
    // Only the record the web edited and the host's push merged comes
    // back (it holds the web's change); the plain pushes are echoes.
    assert!(
        !pulled_ids.contains(&IDS[1]) && !pulled_ids.contains(&IDS[2]),
        "{pulled}"
    );
    let answer = push(
        &server,
        &new,
        fencing,
        "inc:2",
        Some("5"),
        &json!({"mode": "incremental", "changes": [{"entity": "contacts", "global_id": IDS[1],
               "op": "upsert", "base_version": 1, "fields": {"city": "Tromsø"}}]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
}

// --- Restore detection ------------------------------------------------------------

#[test]
fn pushes_keep_the_newest_host_position_and_one_behind_it_is_refused() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let fencing = lease(&server, &device);
    put_schema(&server, &device, fencing);
    assert_eq!(
        status(&server, &device)["host"],
        json!({"position": null, "generation": null})
    );
    let change = |id: &str, city: &str| {
        json!({"mode": "incremental", "changes": [{"entity": "contacts", "global_id": id,
               "op": "upsert", "fields": {"name": "N", "city": city}}]})
    };

    let ok = push(
        &server,
        &device,
        fencing,
        "a",
        Some("10"),
        &change(IDS[0], "Oslo"),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(status(&server, &device)["host"]["position"], 10);
    // Without the header, nothing is checked or stored.
    let plain = push(
        &server,
        &device,
        fencing,
        "b",
        None,
        &change(IDS[0], "Bergen"),
    );
    assert_eq!(plain.status, 200, "{}", plain.text());
    // The same position again is fine (a window with only echoes before it).
    let same = push(
        &server,
        &device,
        fencing,
        "c",
        Some("10"),
        &change(IDS[0], "Molde"),
    );
    assert_eq!(same.status, 200, "{}", same.text());

    // The host's change log is behind what was pushed: restored.
    let behind = push(
        &server,
        &device,
        fencing,
        "d",
        Some("7"),
        &change(IDS[1], "Bodø"),
    );
    assert_error(&behind, 409, "host_restored");
    assert!(behind.text().contains("position 10"), "{}", behind.text());
    assert_eq!(
        status(&server, &device)["entities"][0]["records"],
        1,
        "nothing of the refused push is applied"
    );
    // A batch sent again under its key gets its stored answer first.
    let again = push(
        &server,
        &device,
        fencing,
        "a",
        Some("7"),
        &change(IDS[0], "Oslo"),
    );
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), ok.json());

    // Garbage in the header.
    for bad in ["-1", "soon"] {
        let answer = push(
            &server,
            &device,
            fencing,
            "e",
            Some(bad),
            &change(IDS[1], "Bodø"),
        );
        assert_error(&answer, 400, "invalid_request");
    }
}

#[test]
fn update_connection_sets_the_host_marker_after_a_restore_was_reconciled() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let fencing = lease(&server, &device);
    put_schema(&server, &device, fencing);
    let body = json!({"mode": "incremental", "changes": [{"entity": "contacts",
        "global_id": IDS[0], "op": "upsert", "fields": {"name": "N"}}]});
    assert_eq!(
        push(&server, &device, fencing, "a", Some("40"), &body).status,
        200
    );

    let put = |fencing: i64, marker: &Value| {
        server
            .request("PUT", "/api/v1/sync/host")
            .bearer(&device.access_token)
            .header("X-Fencing", &fencing.to_string())
            .json(marker)
            .send()
    };
    // Reconciled at host position 12 under a new generation.
    let answer = put(fencing, &json!({"position": 12, "generation": "gen-2"}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.json(),
        json!({"position": 12, "generation": "gen-2"})
    );
    assert_eq!(
        status(&server, &device)["host"],
        json!({"position": 12, "generation": "gen-2"})
    );
    assert_eq!(
        push(&server, &device, fencing, "b", Some("13"), &body).status,
        200
    );
    assert_eq!(status(&server, &device)["host"]["position"], 13);
    // A new generation alone (the plugin's rotation) keeps the position.
    let rotated = put(fencing, &json!({"position": null, "generation": "gen-3"}));
    assert_eq!(
        rotated.json(),
        json!({"position": 13, "generation": "gen-3"})
    );

    assert_error(
        &put(fencing + 1, &json!({"position": 1, "generation": "x"})),
        409,
        "stale_fencing",
    );
    assert_error(
        &put(fencing, &json!({"position": -1, "generation": "x"})),
        400,
        "invalid_request",
    );
    assert_error(
        &put(fencing, &json!({"position": 1, "generation": ""})),
        400,
        "invalid_request",
    );
    assert_error(
        &server
            .request("PUT", "/api/v1/sync/host")
            .bearer(&company.session.token)
            .header("X-Fencing", &fencing.to_string())
            .json(&json!({"position": 1, "generation": "x"}))
            .send(),
        403,
        "forbidden",
    );
}

// --- Change user ---------------------------------------------------------------

fn change_connected_by(
    server: &TestServer,
    company: &TestCompany,
    session: &str,
    device_access_token: Option<&str>,
) -> TestResponse {
    let body = match device_access_token {
        Some(token) => json!({ "device_access_token": token }),
        None => json!({}),
    };
    server
        .post(&company_path(company, "/connected-by"))
        .bearer(session)
        .json(&body)
        .send()
}

/// The audit trail of the company, as `(action, account_id, detail)`.
fn audit_events(server: &TestServer, company: &TestCompany) -> Vec<(String, String, Value)> {
    let connection = rusqlite::Connection::open(server.data_dir().join("online.db"))
        .expect("the service's database");
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    let mut statement = connection
        .prepare(
            "SELECT action, account_id, detail FROM audit_events WHERE company_id = ?1 ORDER BY id",
        )
        .expect("a query");
    let rows = statement
        .query_map([company.company_id.as_str()], |row| {
            let detail: String = row.get(2)?;
            Ok((
                row.get(0)?,
                row.get(1)?,
                serde_json::from_str(&detail).unwrap_or(Value::Null),
            ))
        })
        .expect("rows");
    rows.collect::<Result<_, _>>().expect("audit events")
}

#[test]
fn change_user_hands_connected_by_to_the_new_online_id_and_sync_goes_on() {
    let server = TestServer::start();
    let (company, device, fencing) = synchronised(&server);
    let ann = text(&me(&server, &company.session.token).json(), "/id");
    // Bob is not a member of the company yet.
    let bob = online_id(&server, "bob@example.com");
    let bob_id = text(&me(&server, &bob).json(), "/id");
    assert_error(&records_of(&server, &company, &bob), 404, "not_found");

    let changed = change_connected_by(&server, &company, &bob, Some(&device.access_token));
    assert_eq!(changed.status, 200, "{}", changed.text());
    let view = changed.json();
    assert_eq!(view["connected_by"]["email"], "bob@example.com");
    assert_eq!(view["connected_by"]["account_id"], bob_id.as_str());
    assert_eq!(view["connected"], true);

    // Bob is a super user of the company now and reaches its data.
    let summaries = me(&server, &bob).json();
    assert_eq!(summaries["companies"][0]["id"], company.company_id.as_str());
    assert_eq!(summaries["companies"][0]["role"], "super_user");
    assert_eq!(records_of(&server, &company, &bob).status, 200);
    // Ann keeps ordinary access, but may no longer disconnect.
    assert_eq!(records(&server, &company).status, 200);
    let refused = disconnect(&server, &company, &company.session.token);
    assert_error(&refused, 403, "forbidden");
    assert!(
        refused.text().contains("bob@example.com"),
        "{}",
        refused.text()
    );
    // Synchronisation goes on with the same device and lease.
    assert_eq!(status(&server, &device)["entities"][0]["records"], 3);
    assert_eq!(lease(&server, &device), fencing);
    // The audit trail names both Online IDs and the device.
    let events = audit_events(&server, &company);
    assert_eq!(events.len(), 1, "{events:?}");
    let (action, by, detail) = &events[0];
    assert_eq!(
        (action.as_str(), by.as_str()),
        ("connected_by_changed", bob_id.as_str())
    );
    assert_eq!(detail["previous_connected_by"], ann.as_str());
    assert_eq!(detail["device_id"], device.device_id.as_str());
    assert_eq!(detail["membership_added"], true);

    // The same Online ID again: nothing changes, nothing is logged.
    let again = change_connected_by(&server, &company, &bob, Some(&device.access_token));
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["connected_by"]["email"], "bob@example.com");
    assert_eq!(audit_events(&server, &company).len(), 1);

    // Bob, "Connected by" now, may disconnect.
    let done = disconnect(&server, &company, &bob);
    assert_eq!(done.status, 200, "{}", done.text());
}

fn records_of(server: &TestServer, company: &TestCompany, session: &str) -> TestResponse {
    server
        .get(&company_path(company, "/records/contacts"))
        .bearer(session)
        .send()
}

#[test]
fn change_user_needs_the_sync_computers_device_token_of_this_company() {
    let server = TestServer::start();
    let (company, device, _) = synchronised(&server);
    let bob = online_id(&server, "bob@example.com");

    // The session alone is not enough.
    assert_error(
        &change_connected_by(&server, &company, &bob, None),
        400,
        "invalid_request",
    );
    assert_error(
        &change_connected_by(&server, &company, &bob, Some("oda_not-a-token")),
        403,
        "forbidden",
    );
    // A refresh token is not an access token.
    assert_error(
        &change_connected_by(&server, &company, &bob, Some(&device.refresh_token)),
        403,
        "forbidden",
    );
    // A device of another company: this company does not exist for it.
    let other = server.connected_company("carl@example.com", "L-2");
    let other_device = server.create_device(&other.session.token, &other.company_id, "pc-9");
    assert_error(
        &change_connected_by(&server, &company, &bob, Some(&other_device.access_token)),
        404,
        "not_found",
    );
    // The device token alone (as the caller) is not enough either.
    assert_error(
        &change_connected_by(
            &server,
            &company,
            &device.access_token,
            Some(&device.access_token),
        ),
        403,
        "forbidden",
    );
    // Without a login.
    assert_error(
        &server
            .post(&company_path(&company, "/connected-by"))
            .json(&json!({ "device_access_token": device.access_token }))
            .send(),
        401,
        "authentication_required",
    );

    // Nothing changed.
    let view = server
        .get(&company_path(&company, ""))
        .bearer(&company.session.token)
        .send()
        .json();
    assert_eq!(view["connected_by"]["email"], "ann@example.com");
    assert_error(&records_of(&server, &company, &bob), 404, "not_found");
    assert!(audit_events(&server, &company).is_empty());
    assert!(
        !server.logs().contains(&device.refresh_token),
        "no token in the logs"
    );
}

#[test]
fn change_user_is_refused_for_a_disconnected_company() {
    let server = TestServer::start();
    let (company, device, _) = synchronised(&server);
    let bob = online_id(&server, "bob@example.com");
    // A device token taken before the disconnect is revoked with it.
    let done = disconnect(&server, &company, &company.session.token);
    assert_eq!(done.status, 200, "{}", done.text());
    assert_error(
        &change_connected_by(&server, &company, &bob, Some(&device.access_token)),
        403,
        "forbidden",
    );
    // A member of the company learns why.
    let colleague = add_super_user(&server, &company, "dora@example.com");
    assert_error(
        &change_connected_by(&server, &company, &colleague, Some(&device.access_token)),
        409,
        "company_not_connected",
    );
    assert!(audit_events(&server, &company).is_empty());
}
