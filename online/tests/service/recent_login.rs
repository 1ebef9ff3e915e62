//! What changes a company's connection needs a login of the last 10 minutes
//! (`RECENT_LOGIN`; PRODUCT.md §5.8 "after logging in with the Online ID"):
//! disconnect, undoing a registration, Change user, moving the sync
//! computer and registering a computer. An older session, valid for
//! everything else, is refused with `reauthentication_required` (401) and
//! nothing changes; a fresh login does it.

use chrono::Duration;
use od_online::api::RECENT_LOGIN;
use od_online::testing::{TestCompany, TestDevice, TestResponse, TestServer, TEST_PASSWORD};
use serde_json::{json, Value};

use crate::*;

const MESSAGE: &str = "For this, log in again with your Online ID (the last log-in was more \
                       than 10 minutes ago).";

#[track_caller]
fn assert_reauthentication(answer: &TestResponse) {
    assert_error(answer, 401, "reauthentication_required");
    assert_eq!(answer.json()["error"]["message"], MESSAGE);
}

fn path(company: &TestCompany, rest: &str) -> String {
    format!("/api/v1/companies/{}{rest}", company.company_id)
}

fn company_view(server: &TestServer, company: &TestCompany, session: &str) -> Value {
    let answer = server.get(&path(company, "")).bearer(session).send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

fn device_count(server: &TestServer, company: &TestCompany, session: &str) -> usize {
    let answer = server
        .get(&path(company, "/devices"))
        .bearer(session)
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["devices"].as_array().map_or(0, Vec::len)
}

fn lease(server: &TestServer, device: &TestDevice) -> TestResponse {
    server
        .post("/api/v1/sync/lease")
        .bearer(&device.access_token)
        .json(&json!({}))
        .send()
}

fn fencing(answer: &TestResponse) -> i64 {
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["fencing"].as_i64().expect("fencing")
}

fn register_device(server: &TestServer, company: &TestCompany, session: &str) -> TestResponse {
    server
        .post(&path(company, "/devices"))
        .bearer(session)
        .json(&json!({ "computer_id": "pc-2", "computer_name": "PC 2" }))
        .send()
}

fn move_sync_computer(server: &TestServer, company: &TestCompany, session: &str) -> TestResponse {
    server
        .post(&path(company, "/sync-computer"))
        .bearer(session)
        .json(&json!({ "computer_id": "pc-2" }))
        .send()
}

fn change_connected_by(
    server: &TestServer,
    company: &TestCompany,
    session: &str,
    device: &TestDevice,
) -> TestResponse {
    server
        .post(&path(company, "/connected-by"))
        .bearer(session)
        .json(&json!({ "device_access_token": device.access_token }))
        .send()
}

fn disconnect(server: &TestServer, company: &TestCompany, session: &str) -> TestResponse {
    server
        .post(&path(company, "/disconnect"))
        .bearer(session)
        .send()
}

fn unregister(server: &TestServer, company: &TestCompany, session: &str) -> TestResponse {
    server.delete(&path(company, "")).bearer(session).send()
}

fn fresh_login(server: &TestServer, email: &str) -> String {
    server.log_in(email, TEST_PASSWORD).token
}

#[test]
fn the_limit_is_ten_minutes() {
    assert_eq!(RECENT_LOGIN, Duration::minutes(10));
}

#[test]
fn an_old_session_changes_nothing_of_the_connection_and_a_fresh_login_does() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    // Bob, another Online ID, for Change user.
    let bob = online_id(&server, "bob@example.com");

    server.clock().advance(RECENT_LOGIN + Duration::seconds(1));
    let old = company.session.token.as_str();
    // The sync computer holds the lease (renewing it keeps its number).
    let first_fencing = fencing(&lease(&server, &device));
    // Still a valid session for everything else.
    assert_eq!(me(&server, old).status, 200);
    assert_eq!(company_view(&server, &company, old)["connected"], true);

    // Register a computer: no device is made.
    assert_reauthentication(&register_device(&server, &company, old));
    assert_eq!(device_count(&server, &company, old), 1);
    // Move the sync computer: the lease stays where it was.
    assert_reauthentication(&move_sync_computer(&server, &company, old));
    assert_eq!(fencing(&lease(&server, &device)), first_fencing);
    // Change user: Ann stays "Connected by".
    assert_reauthentication(&change_connected_by(&server, &company, &bob, &device));
    assert_eq!(
        company_view(&server, &company, old)["connected_by"]["email"],
        "ann@example.com"
    );
    // Disconnect and undo the registration: the company stays connected,
    // its device works.
    assert_reauthentication(&disconnect(&server, &company, old));
    assert_reauthentication(&unregister(&server, &company, old));
    let view = company_view(&server, &company, old);
    assert_eq!(view["connected"], true, "{view}");
    assert_eq!(fencing(&lease(&server, &device)), first_fencing);
    // Also with the web session's cookie (and a right CSRF token).
    let cookie = format!("od_session={old}; od_csrf={}", company.session.csrf_token);
    let by_cookie = server
        .post(&path(&company, "/disconnect"))
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", &company.session.csrf_token)
        .send();
    assert_reauthentication(&by_cookie);
    assert_eq!(company_view(&server, &company, old)["connected"], true);

    // After logging in again, each of them works.
    let ann = fresh_login(&server, "ann@example.com");
    let registered = register_device(&server, &company, &ann);
    assert_eq!(registered.status, 201, "{}", registered.text());
    assert_eq!(device_count(&server, &company, &ann), 2);
    let moved = move_sync_computer(&server, &company, &ann);
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.json()["computer_id"], "pc-2");
    let bob = fresh_login(&server, "bob@example.com");
    let changed = change_connected_by(&server, &company, &bob, &device);
    assert_eq!(changed.status, 200, "{}", changed.text());
    assert_eq!(changed.json()["connected_by"]["email"], "bob@example.com");
    let done = disconnect(&server, &company, &bob);
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(company_view(&server, &company, &bob)["connected"], false);
}

#[test]
fn undoing_a_registration_needs_a_fresh_login_too() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    server.clock().advance(RECENT_LOGIN + Duration::seconds(1));
    assert_reauthentication(&unregister(&server, &company, &company.session.token));
    assert_eq!(
        company_view(&server, &company, &company.session.token)["connected"],
        true
    );
    let ann = fresh_login(&server, "ann@example.com");
    let undone = unregister(&server, &company, &ann);
    assert_eq!(undone.status, 204, "{}", undone.text());
    assert_error(
        &server.get(&path(&company, "")).bearer(&ann).send(),
        404,
        "not_found",
    );
}

#[test]
fn a_login_exactly_ten_minutes_old_is_still_recent() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    // Using the session meanwhile does not make it recent.
    for _ in 0..5 {
        server.clock().advance(Duration::minutes(2));
        assert_eq!(me(&server, &company.session.token).status, 200);
    }
    let at_the_limit = register_device(&server, &company, &company.session.token);
    assert_eq!(at_the_limit.status, 201, "{}", at_the_limit.text());
    server.clock().advance(Duration::seconds(1));
    assert_reauthentication(&register_device(&server, &company, &company.session.token));
}

#[test]
fn a_device_token_is_still_refused_as_before() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    assert_error(
        &disconnect(&server, &company, &device.access_token),
        403,
        "forbidden",
    );
    assert_error(
        &register_device(&server, &company, &device.access_token),
        403,
        "forbidden",
    );
}
