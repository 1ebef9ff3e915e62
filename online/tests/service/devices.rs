//! Device tokens: registration, refresh with rotation, revocation.

use chrono::Duration;
use od_online::testing::{TestDevice, TestServer};
use serde_json::json;

use crate::*;

fn refresh(server: &TestServer, refresh_token: &str) -> od_online::testing::TestResponse {
    server
        .post("/api/v1/devices/refresh")
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
}

fn current(server: &TestServer, access_token: &str) -> od_online::testing::TestResponse {
    server
        .get("/api/v1/devices/current")
        .bearer(access_token)
        .send()
}

#[test]
fn a_super_user_registers_a_device_and_gets_its_tokens() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let answer = server
        .post(&format!("/api/v1/companies/{}/devices", company.company_id))
        .bearer(&company.session.token)
        .json(&json!({ "computer_id": "pc-1", "computer_name": "Front office" }))
        .send();
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    let device = TestDevice::from_answer(&body);
    assert!(device.access_token.starts_with("oda_") && device.access_token.len() == 47);
    assert!(device.refresh_token.starts_with("odr_") && device.refresh_token.len() == 47);
    let expires =
        chrono::DateTime::parse_from_rfc3339(&text(&body, "/access_expires_at")).expect("RFC 3339");
    let in_an_hour = server.clock().now() + Duration::hours(1);
    assert!(
        (expires.with_timezone(&chrono::Utc) - in_an_hour)
            .num_seconds()
            .abs()
            <= 1
    );

    let me = current(&server, &device.access_token);
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["device_id"], device.device_id);
    assert_eq!(me["company_id"], company.company_id);
    assert_eq!(me["computer_id"], "pc-1");
    assert_eq!(me["computer_name"], "Front office");

    let list = server
        .get(&format!("/api/v1/companies/{}/devices", company.company_id))
        .bearer(&company.session.token)
        .send();
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["devices"], json!([me]));

    let missing = server
        .post(&format!("/api/v1/companies/{}/devices", company.company_id))
        .bearer(&company.session.token)
        .json(&json!({ "computer_id": " ", "computer_name": "Front office" }))
        .send();
    assert_error(&missing, 400, "invalid_request");
}

#[test]
fn refreshing_rotates_both_tokens() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let first = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let answer = refresh(&server, &first.refresh_token);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let second = TestDevice::from_answer(&answer.json());
    assert_eq!(second.device_id, first.device_id);
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_eq!(current(&server, &second.access_token).status, 200);
    let third = TestDevice::from_answer(&refresh(&server, &second.refresh_token).json());
    assert_eq!(current(&server, &third.access_token).status, 200);
}

#[test]
fn a_refresh_token_used_twice_revokes_the_device() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let first = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let second = TestDevice::from_answer(&refresh(&server, &first.refresh_token).json());
    // Someone replays the old refresh token: theft. The device is revoked,
    // so neither the thief nor the rightful holder goes on.
    assert_error(
        &refresh(&server, &first.refresh_token),
        401,
        "token_invalid",
    );
    assert_error(
        &current(&server, &second.access_token),
        401,
        "token_invalid",
    );
    assert_error(
        &refresh(&server, &second.refresh_token),
        401,
        "token_invalid",
    );
    let list = server
        .get(&format!("/api/v1/companies/{}/devices", company.company_id))
        .bearer(&company.session.token)
        .send();
    assert_eq!(list.json()["devices"], json!([]));
    // The super user registers the computer again.
    let again = server.create_device(&company.session.token, &company.company_id, "pc-1");
    assert_eq!(current(&server, &again.access_token).status, 200);
}

#[test]
fn access_tokens_expire_after_an_hour_and_refresh_tokens_after_180_days() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    server.clock().advance(Duration::minutes(59));
    assert_eq!(current(&server, &device.access_token).status, 200);
    server.clock().advance(Duration::minutes(1));
    assert_error(
        &current(&server, &device.access_token),
        401,
        "token_invalid",
    );
    let renewed = TestDevice::from_answer(&refresh(&server, &device.refresh_token).json());
    assert_eq!(current(&server, &renewed.access_token).status, 200);

    // 180 days from the last refresh.
    server.clock().advance(Duration::days(179));
    let renewed = TestDevice::from_answer(&refresh(&server, &renewed.refresh_token).json());
    server.clock().advance(Duration::days(180));
    assert_error(
        &refresh(&server, &renewed.refresh_token),
        401,
        "token_invalid",
    );
}

#[test]
fn a_device_revokes_itself() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let answer = server
        .delete("/api/v1/devices/current")
        .bearer(&device.access_token)
        .send();
    assert_eq!(answer.status, 204);
    assert_error(
        &current(&server, &device.access_token),
        401,
        "token_invalid",
    );
    assert_error(
        &refresh(&server, &device.refresh_token),
        401,
        "token_invalid",
    );
}

#[test]
fn the_super_user_revokes_a_device_and_registering_a_computer_again_replaces_it() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let old = server.create_device(&company.session.token, &company.company_id, "pc-1");
    let other = server.create_device(&company.session.token, &company.company_id, "pc-2");
    let new = server.create_device(&company.session.token, &company.company_id, "pc-1");
    assert_error(&current(&server, &old.access_token), 401, "token_invalid");
    assert_error(&refresh(&server, &old.refresh_token), 401, "token_invalid");
    assert_eq!(current(&server, &new.access_token).status, 200);

    let devices = server
        .get(&format!("/api/v1/companies/{}/devices", company.company_id))
        .bearer(&company.session.token)
        .send()
        .json();
    let ids: Vec<&str> = devices["devices"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|device| device["device_id"].as_str())
        .collect();
    assert_eq!(ids, [other.device_id.as_str(), new.device_id.as_str()]);

    let revoke = |device_id: &str| {
        server
            .delete(&format!(
                "/api/v1/companies/{}/devices/{device_id}",
                company.company_id
            ))
            .bearer(&company.session.token)
            .send()
    };
    assert_eq!(revoke(&other.device_id).status, 204);
    assert_error(&current(&server, &other.access_token), 401, "token_invalid");
    assert_error(&revoke(&other.device_id), 404, "not_found");
    assert_error(&revoke(&uuid::Uuid::new_v4().to_string()), 404, "not_found");
    assert_error(&revoke("not-a-uuid"), 404, "not_found");
    assert_eq!(current(&server, &new.access_token).status, 200);
}

#[test]
fn sessions_and_device_tokens_are_not_interchangeable() {
    let server = TestServer::start();
    let company = server.connected_company("ann@example.com", "L-1");
    let device = server.create_device(&company.session.token, &company.company_id, "pc-1");
    assert_error(&me(&server, &device.access_token), 403, "forbidden");
    assert_error(&current(&server, &company.session.token), 403, "forbidden");
    assert_error(
        &server
            .post(&format!("/api/v1/companies/{}/devices", company.company_id))
            .bearer(&device.access_token)
            .json(&json!({ "computer_id": "pc-2", "computer_name": "x" }))
            .send(),
        403,
        "forbidden",
    );
    // A refresh token is no access token, and the other way round.
    assert_error(
        &current(&server, &device.refresh_token),
        401,
        "token_invalid",
    );
    assert_error(
        &refresh(&server, &device.access_token),
        401,
        "token_invalid",
    );
    assert_error(&refresh(&server, "odr_unknown"), 401, "token_invalid");
    assert_error(&current(&server, "oda_unknown"), 401, "token_invalid");
    assert_error(
        &server.get("/api/v1/devices/current").send(),
        401,
        "authentication_required",
    );
}
