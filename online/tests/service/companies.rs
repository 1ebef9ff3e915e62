//! Company registration and access to companies.

use chrono::Duration;
use od_online::testing::{licence, registration, sign_licence, TestServer};
use serde_json::{json, Value};

use crate::*;

fn register(server: &TestServer, token: &str, body: &Value) -> od_online::testing::TestResponse {
    server
        .post("/api/v1/companies")
        .bearer(token)
        .json(body)
        .send()
}

#[test]
fn registration_binds_the_company_and_makes_the_caller_its_super_user() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let body = registration(&sign_licence(&licence("L-1001")), "system-1", "company-1");
    let answer = register(&server, &token, &body);
    assert_eq!(answer.status, 201, "{}", answer.text());
    let company = answer.json();
    let id = text(&company, "/id");
    assert_eq!(company["name"], "Nordlys Handel AS");
    assert_eq!(
        company["registration"]["organisation_number"],
        "987 654 321"
    );
    assert_eq!(company["licence_number"], "L-1001");
    assert_eq!(company["tier"], "standard");
    assert_eq!(
        company["modules"],
        json!([
            "contacts",
            "activities",
            "sales",
            "products",
            "employees",
            "dashboard"
        ])
    );
    assert_eq!(company["online_users"], 5);
    assert_eq!(company["connected_by"]["email"], "ann@example.com");
    assert_eq!(
        company["connected_by"]["account_id"],
        me(&server, &token).json()["id"]
    );
    assert!(company["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let summary = json!([{ "id": id, "name": "Nordlys Handel AS", "role": "super_user" }]);
    let list = server.get("/api/v1/companies").bearer(&token).send();
    assert_eq!(list.json()["companies"], summary);
    assert_eq!(me(&server, &token).json()["companies"], summary);
    let one = server
        .get(&format!("/api/v1/companies/{id}"))
        .bearer(&token)
        .send();
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), company);
}

#[test]
fn registering_the_same_company_again_is_harmless() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let document = sign_licence(&licence("L-1001"));
    let first = register(
        &server,
        &token,
        &registration(&document, "system-1", "company-1"),
    );
    assert_eq!(first.status, 201);
    let again = register(
        &server,
        &token,
        &registration(&document, "system-1", "company-1"),
    );
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json(), first.json());

    // A renewed licence (new number, premium) for the same company updates it.
    let mut renewed = licence("L-2002");
    renewed.agreement.as_mut().expect("an agreement").tier = od_licence::Tier::Premium;
    renewed.online_users = 9;
    let mut body = registration(&sign_licence(&renewed), "system-1", "company-1");
    body["registration"]["phone"] = json!("+47 99 99 99 99");
    let updated = register(&server, &token, &body);
    assert_eq!(updated.status, 200, "{}", updated.text());
    let company = updated.json();
    assert_eq!(company["id"], first.json()["id"]);
    assert_eq!(company["licence_number"], "L-2002");
    assert_eq!(company["tier"], "premium");
    assert_eq!(company["online_users"], 9);
    assert_eq!(company["registration"]["phone"], "+47 99 99 99 99");
    assert_eq!(
        server.get("/api/v1/companies").bearer(&token).send().json()["companies"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // The old licence is free again for another company.
    let other = register(
        &server,
        &token,
        &registration(&document, "system-2", "company-2"),
    );
    assert_eq!(other.status, 201, "{}", other.text());
}

#[test]
fn a_changed_or_foreign_licence_document_is_invalid() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let document = sign_licence(&licence("L-1001"));
    let tampered = document.replace("\\\"online_users\\\":5", "\\\"online_users\\\":500");
    assert_ne!(tampered, document);
    let answer = register(
        &server,
        &token,
        &registration(&tampered, "system-1", "company-1"),
    );
    assert_error(&answer, 400, "licence_invalid");
    assert!(
        answer.text().contains("changed after it was issued"),
        "{}",
        answer.text()
    );
    for garbage in ["not a licence", "{}", "{\"format\":\"od-licence/9\"}"] {
        let answer = register(
            &server,
            &token,
            &registration(garbage, "system-1", "company-1"),
        );
        assert_error(&answer, 400, "licence_invalid");
    }
    let mut foreign: Value = serde_json::from_str(&document).expect("JSON");
    foreign["key_id"] = json!("someone-else");
    let answer = register(
        &server,
        &token,
        &registration(&foreign.to_string(), "system-1", "company-1"),
    );
    assert_error(&answer, 400, "licence_invalid");
}

#[test]
fn licences_without_online_desktop_evaluation_or_agreement_are_refused() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let attempt = |licence: &od_licence::Licence| {
        register(
            &server,
            &token,
            &registration(&sign_licence(licence), "system-1", "company-1"),
        )
    };
    let mut not_granted = licence("L-1");
    not_granted.add_ons = vec!["payroll".into()];
    assert_error(&attempt(&not_granted), 409, "licence_not_granted");
    let mut evaluation = licence("L-2");
    evaluation.evaluation = true;
    assert_error(&attempt(&evaluation), 409, "licence_evaluation");
    let mut no_agreement = licence("L-3");
    no_agreement.agreement = None;
    assert_error(&attempt(&no_agreement), 409, "licence_expired");
    let mut expired = licence("L-4");
    let yesterday = server.clock().now().date_naive() - Duration::days(1);
    expired
        .agreement
        .as_mut()
        .expect("an agreement")
        .valid_until = yesterday;
    let answer = attempt(&expired);
    assert_error(&answer, 409, "licence_expired");
    assert!(answer
        .text()
        .contains(&yesterday.format("%Y-%m-%d").to_string()));
    assert!(
        server.get("/api/v1/companies").bearer(&token).send().json()["companies"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[test]
fn the_agreement_is_checked_against_the_services_clock() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let today = server.clock().now().date_naive();
    let mut ends_today = licence("L-1");
    ends_today
        .agreement
        .as_mut()
        .expect("an agreement")
        .valid_until = today;
    let body = registration(&sign_licence(&ends_today), "system-1", "company-1");
    assert_eq!(
        register(&server, &token, &body).status,
        201,
        "valid through its last day"
    );
    server.clock().advance(Duration::days(1));
    let token = server
        .log_in("ann@example.com", od_online::testing::TEST_PASSWORD)
        .token;
    assert_error(&register(&server, &token, &body), 409, "licence_expired");
}

#[test]
fn a_licence_serves_one_company_and_a_company_one_system_database() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let document = sign_licence(&licence("L-1"));
    assert_eq!(
        register(
            &server,
            &token,
            &registration(&document, "system-1", "company-1")
        )
        .status,
        201
    );
    // The same licence for another company database.
    let answer = register(
        &server,
        &token,
        &registration(&document, "system-1", "company-2"),
    );
    assert_error(&answer, 409, "licence_in_use");
    let answer = register(
        &server,
        &token,
        &registration(&document, "system-2", "company-2"),
    );
    assert_error(&answer, 409, "licence_in_use");
    // The company database from another system database, with another licence.
    let other = sign_licence(&licence("L-2"));
    let answer = register(
        &server,
        &token,
        &registration(&other, "system-2", "company-1"),
    );
    assert_error(&answer, 409, "company_connected_elsewhere");
    // Even with the licence that serves it.
    let answer = register(
        &server,
        &token,
        &registration(&document, "system-2", "company-1"),
    );
    assert_error(&answer, 409, "company_connected_elsewhere");
}

#[test]
fn another_online_id_cannot_take_over_a_connected_company() {
    let server = TestServer::start();
    let ann = online_id(&server, "ann@example.com");
    let bob = online_id(&server, "bob@example.com");
    let body = registration(&sign_licence(&licence("L-1")), "system-1", "company-1");
    assert_eq!(register(&server, &ann, &body).status, 201);
    assert_error(
        &register(&server, &bob, &body),
        409,
        "company_already_connected",
    );
    assert_eq!(
        server.get("/api/v1/companies").bearer(&bob).send().json()["companies"],
        json!([])
    );
}

#[test]
fn incomplete_registration_data_names_the_missing_fields() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let mut body = registration(&sign_licence(&licence("L-1")), "system-1", " ");
    body["registration"]["phone"] = json!("");
    body["registration"]
        .as_object_mut()
        .expect("an object")
        .remove("organisation_number");
    let answer = register(&server, &token, &body);
    assert_error(&answer, 400, "registration_incomplete");
    assert_eq!(
        answer.json()["error"]["fields"],
        json!([
            "company_database_id",
            "registration.phone",
            "registration.organisation_number"
        ])
    );
    let message = text(&answer.json(), "/error/message");
    assert!(
        message.contains("phone") && message.contains("organisation number"),
        "{message}"
    );
    let nothing = register(&server, &token, &json!({}));
    assert_error(&nothing, 400, "registration_incomplete");
}

#[test]
fn registration_needs_a_session() {
    let server = TestServer::start();
    let body = registration(&sign_licence(&licence("L-1")), "system-1", "company-1");
    let answer = server.post("/api/v1/companies").json(&body).send();
    assert_error(&answer, 401, "authentication_required");
    // Signed up but not verified: no session to be had.
    sign_up(&server, "ann@example.com");
    assert_error(
        &log_in(
            &server,
            "ann@example.com",
            od_online::testing::TEST_PASSWORD,
        ),
        401,
        "invalid_credentials",
    );
}

#[test]
fn nobody_reaches_another_customers_company_by_any_id() {
    let server = TestServer::start();
    let ann = server.connected_company("ann@example.com", "L-1");
    let bob = server.connected_company("bob@example.com", "L-2");
    let carl = online_id(&server, "carl@example.com");
    let ann_device = server.create_device(&ann.session.token, &ann.company_id, "pc-ann");
    let bob_device = server.create_device(&bob.session.token, &bob.company_id, "pc-bob");

    let get = |token: &str, id: &str| {
        server
            .get(&format!("/api/v1/companies/{id}"))
            .bearer(token)
            .send()
    };
    assert_eq!(get(&ann.session.token, &ann.company_id).status, 200);
    assert_eq!(get(&ann_device.access_token, &ann.company_id).status, 200);
    for (token, id) in [
        (&ann.session.token, &bob.company_id),
        (&bob.session.token, &ann.company_id),
        (&carl, &ann.company_id),
        (&ann_device.access_token, &bob.company_id),
        (&bob_device.access_token, &ann.company_id),
    ] {
        assert_error(&get(token, id), 404, "not_found");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let unknown_answer = get(&ann.session.token, &unknown);
    assert_error(&unknown_answer, 404, "not_found");
    assert_eq!(get(&carl, &ann.company_id).body, unknown_answer.body);
    assert_error(&get(&ann.session.token, "not-a-uuid"), 404, "not_found");
    assert_error(&get(&ann.session.token, "../me"), 404, "not_found");

    // Devices of another company: neither listed, created nor revoked.
    for (token, company) in [
        (&ann.session.token, &bob.company_id),
        (&carl, &ann.company_id),
    ] {
        let list = server
            .get(&format!("/api/v1/companies/{company}/devices"))
            .bearer(token)
            .send();
        assert_error(&list, 404, "not_found");
        let create = server
            .post(&format!("/api/v1/companies/{company}/devices"))
            .bearer(token)
            .json(&json!({ "computer_id": "x", "computer_name": "x" }))
            .send();
        assert_error(&create, 404, "not_found");
    }
    let revoke = server
        .delete(&format!(
            "/api/v1/companies/{}/devices/{}",
            ann.company_id, bob_device.device_id
        ))
        .bearer(&ann.session.token)
        .send();
    assert_error(&revoke, 404, "not_found");
    let revoke = server
        .delete(&format!(
            "/api/v1/companies/{}/devices/{}",
            bob.company_id, bob_device.device_id
        ))
        .bearer(&ann.session.token)
        .send();
    assert_error(&revoke, 404, "not_found");
    assert_eq!(
        server
            .get("/api/v1/devices/current")
            .bearer(&bob_device.access_token)
            .send()
            .status,
        200,
        "Bob's device still works"
    );
}
