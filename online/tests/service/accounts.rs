//! Sign-up, verification and password reset.

use chrono::Duration;
use od_online::testing::{TestServer, TEST_PASSWORD};
use od_online::Limits;
use serde_json::json;

use crate::*;

#[test]
fn sign_up_sends_a_verification_link_that_sets_the_password() {
    let server = TestServer::start();
    let answer = sign_up(&server, "  Ann@Example.com ");
    assert_eq!(answer.status, 202, "{}", answer.text());
    let mail = server.outbox().wait_for_mail_to("ann@example.com");
    assert_eq!(mail.subject, "Verify your Online ID for Online Desktop");
    let link = mail.link().expect("a link");
    assert!(
        link.starts_with(&format!("{}/verify?token=", server.base_url())),
        "{link}"
    );
    let words = mail.body.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("not the login of your business software"),
        "{words}"
    );

    let token = mail.token().expect("a token");
    let answer = verify(&server, &token, TEST_PASSWORD);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let account = answer.json()["account"].clone();
    assert_eq!(account["email"], "ann@example.com");
    assert_eq!(account["verified"], true);
    assert_eq!(account["name"], "");
    assert!(account["id"].as_str().is_some_and(|id| id.len() == 36));
    assert!(account["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    assert_eq!(
        log_in(&server, "ann@example.com", TEST_PASSWORD).status,
        200
    );
}

#[test]
fn sign_up_answers_the_same_for_new_pending_and_existing_addresses() {
    let server = TestServer::start();
    let new = sign_up(&server, "ann@example.com");
    let pending = sign_up(&server, "ann@example.com");
    // Both verification links work until one is used.
    let mails = server.outbox().wait_for_mails_to("ann@example.com", 2);
    assert!(mails.iter().all(|mail| mail.subject.starts_with("Verify")));
    let first = mails[0].token().expect("a token");
    assert_eq!(verify(&server, &first, TEST_PASSWORD).status, 200);
    let second = mails[1].token().expect("a token");
    assert_error(
        &verify(&server, &second, TEST_PASSWORD),
        401,
        "token_invalid",
    );

    let existing = sign_up(&server, "ann@example.com");
    for answer in [&new, &pending, &existing] {
        assert_eq!(answer.status, 202);
        assert_eq!(answer.body, new.body, "one answer for every address");
    }
    // A verified address is told it has an Online ID, with a reset link.
    let mail = server
        .outbox()
        .wait_for_mails_to("ann@example.com", 3)
        .remove(2);
    assert_eq!(mail.subject, "You already have an Online ID");
    assert!(mail.link().expect("a link").contains("/reset?token="));
    assert!(mail.body.contains(&format!("{}/login", server.base_url())));
    let reset = server
        .post("/api/v1/accounts/password-reset/confirm")
        .json(&json!({ "token": mail.token(), "new_password": "a new long password" }))
        .send();
    assert_eq!(reset.status, 204, "{}", reset.text());
    assert_eq!(
        log_in(&server, "ann@example.com", "a new long password").status,
        200
    );
}

#[test]
fn malformed_addresses_and_requests_are_refused() {
    let server = TestServer::start();
    for bad in [
        "",
        "ann",
        "ann@example",
        "ann smith@example.com",
        "<ann@example.com>",
    ] {
        assert_error(&sign_up(&server, bad), 400, "email_invalid");
        let reset = server
            .post("/api/v1/accounts/password-reset")
            .json(&json!({ "email": bad }))
            .send();
        assert_error(&reset, 400, "email_invalid");
    }
    let missing = server.post("/api/v1/accounts").json(&json!({})).send();
    assert_error(&missing, 400, "invalid_request");
    assert!(missing.text().contains("email"), "{}", missing.text());
    let not_json = server
        .post("/api/v1/accounts")
        .body("application/json", b"{\"email\":".to_vec())
        .send();
    assert_error(&not_json, 400, "invalid_request");
    let form = server
        .post("/api/v1/accounts")
        .body(
            "application/x-www-form-urlencoded",
            b"email=ann%40example.com".to_vec(),
        )
        .send();
    assert_error(&form, 415, "unsupported_media_type");
    assert!(server.outbox().mails().is_empty());
}

#[test]
fn sign_up_is_rate_limited_per_address_and_recovers() {
    let server = TestServer::start();
    for _ in 0..5 {
        assert_eq!(sign_up(&server, "ann@example.com").status, 202);
    }
    let limited = sign_up(&server, "ann@example.com");
    assert_error(&limited, 429, "too_many_requests");
    let retry: u64 = limited
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(limited.json()["error"]["retry_after"], retry);
    // Resets count against the same address.
    let reset = server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "ann@example.com" }))
        .send();
    assert_error(&reset, 429, "too_many_requests");
    // Another address is not affected.
    assert_eq!(sign_up(&server, "bob@example.com").status, 202);
    server.clock().advance(Duration::seconds(retry as i64));
    assert_eq!(sign_up(&server, "ann@example.com").status, 202);
}

#[test]
fn mail_requests_are_rate_limited_per_client_address() {
    let server = TestServer::builder()
        .configure(|config| {
            config.limits = Limits {
                mail_requests_per_ip: 3,
                ..Limits::default()
            }
        })
        .start();
    for n in 0..3 {
        assert_eq!(
            sign_up(&server, &format!("user{n}@example.com")).status,
            202
        );
    }
    assert_error(
        &sign_up(&server, "user9@example.com"),
        429,
        "too_many_requests",
    );
    let reset = server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "user0@example.com" }))
        .send();
    assert_error(&reset, 429, "too_many_requests");
    server.clock().advance(Duration::hours(1));
    assert_eq!(sign_up(&server, "user9@example.com").status, 202);
}

#[test]
fn verification_links_work_once_and_expire_after_a_day() {
    let server = TestServer::start();
    sign_up(&server, "ann@example.com");
    let token = token_of_mail(&server, "ann@example.com", 1);
    assert_eq!(verify(&server, &token, TEST_PASSWORD).status, 200);
    let reused = verify(&server, &token, "another password");
    assert_error(&reused, 401, "token_invalid");
    assert_error(
        &log_in(&server, "ann@example.com", "another password"),
        401,
        "invalid_credentials",
    );

    sign_up(&server, "bob@example.com");
    let token = token_of_mail(&server, "bob@example.com", 1);
    server.clock().advance(Duration::hours(24));
    assert_error(
        &verify(&server, &token, TEST_PASSWORD),
        401,
        "token_invalid",
    );

    sign_up(&server, "bob@example.com");
    let token = token_of_mail(&server, "bob@example.com", 2);
    server.clock().advance(Duration::hours(23));
    assert_eq!(verify(&server, &token, TEST_PASSWORD).status, 200);

    assert_error(
        &verify(&server, "no-such-token", TEST_PASSWORD),
        401,
        "token_invalid",
    );
}

#[test]
fn passwords_need_8_to_128_characters_and_nothing_else() {
    let server = TestServer::start();
    sign_up(&server, "ann@example.com");
    let token = token_of_mail(&server, "ann@example.com", 1);
    assert_error(
        &verify(&server, &token, "1234567"),
        400,
        "password_too_short",
    );
    assert_error(
        &verify(&server, &token, &"x".repeat(129)),
        400,
        "password_too_long",
    );
    // A refused password does not use up the link; no composition rules.
    let password = "ø".repeat(128);
    assert_eq!(verify(&server, &token, &password).status, 200);
    assert_eq!(log_in(&server, "ann@example.com", &password).status, 200);

    sign_up(&server, "bob@example.com");
    let token = token_of_mail(&server, "bob@example.com", 1);
    assert_eq!(verify(&server, &token, "aaaaaaaa").status, 200);
}

#[test]
fn password_reset_sends_a_link_that_ends_every_session() {
    let server = TestServer::start();
    let first = online_id(&server, "ann@example.com");
    let second = server.log_in("ann@example.com", TEST_PASSWORD).token;

    let unknown = server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "nobody@example.com" }))
        .send();
    let known = server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "ANN@example.com" }))
        .send();
    assert_eq!((unknown.status, known.status), (202, 202));
    assert_eq!(unknown.body, known.body, "one answer for every address");

    let mail = server
        .outbox()
        .wait_for_mails_to("ann@example.com", 2)
        .remove(1);
    assert_eq!(mail.subject, "Choose a new password for your Online ID");
    let link = mail.link().expect("a link");
    assert!(
        link.starts_with(&format!("{}/reset?token=", server.base_url())),
        "{link}"
    );
    let token = mail.token().expect("a token");

    let confirm = |token: &str, password: &str| {
        server
            .post("/api/v1/accounts/password-reset/confirm")
            .json(&json!({ "token": token, "new_password": password }))
            .send()
    };
    assert_error(&confirm(&token, "short"), 400, "password_too_short");
    assert_eq!(confirm(&token, "my new password").status, 204);
    assert_error(&confirm(&token, "my other password"), 401, "token_invalid");

    for session in [&first, &second] {
        assert_error(&me(&server, session), 401, "token_invalid");
    }
    assert_error(
        &log_in(&server, "ann@example.com", TEST_PASSWORD),
        401,
        "invalid_credentials",
    );
    assert_eq!(
        log_in(&server, "ann@example.com", "my new password").status,
        200
    );
    assert!(server.outbox().mails_to("nobody@example.com").is_empty());
}

#[test]
fn reset_links_expire_after_an_hour() {
    let server = TestServer::start();
    online_id(&server, "ann@example.com");
    server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "ann@example.com" }))
        .send();
    let token = token_of_mail(&server, "ann@example.com", 2);
    server.clock().advance(Duration::minutes(60));
    let late = server
        .post("/api/v1/accounts/password-reset/confirm")
        .json(&json!({ "token": token, "new_password": "my new password" }))
        .send();
    assert_error(&late, 401, "token_invalid");
    // A verification token is no reset token, and the other way round.
    sign_up(&server, "bob@example.com");
    let verification = token_of_mail(&server, "bob@example.com", 1);
    let wrong_kind = server
        .post("/api/v1/accounts/password-reset/confirm")
        .json(&json!({ "token": verification, "new_password": "my new password" }))
        .send();
    assert_error(&wrong_kind, 401, "token_invalid");
}

#[test]
fn reset_for_an_unverified_address_sends_the_verification_link_again() {
    let server = TestServer::start();
    sign_up(&server, "ann@example.com");
    server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "ann@example.com" }))
        .send();
    let mail = server
        .outbox()
        .wait_for_mails_to("ann@example.com", 2)
        .remove(1);
    assert!(mail.subject.starts_with("Verify"), "{}", mail.subject);
    let token = mail.token().expect("a token");
    assert_eq!(verify(&server, &token, TEST_PASSWORD).status, 200);
}

#[test]
fn bodies_over_64_kib_are_refused_with_413() {
    let server = TestServer::start();
    let padding = "x".repeat(70 * 1024);
    let answer = server
        .post("/api/v1/accounts")
        .json(&json!({ "email": "ann@example.com", "padding": padding }))
        .send();
    assert_error(&answer, 413, "body_too_large");
    let answer = server
        .post("/api/v1/sessions")
        .json(&json!({ "email": "ann@example.com", "password": padding }))
        .send();
    assert_error(&answer, 413, "body_too_large");
    // Just under the limit is read (and refused for what it says).
    let padding = "x".repeat(60 * 1024);
    let answer = server
        .post("/api/v1/accounts")
        .json(&json!({ "email": "ann", "padding": padding }))
        .send();
    assert_error(&answer, 400, "email_invalid");
}

#[test]
fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let server = TestServer::start();
    assert_error(&server.get("/api/v1/nothing-here").send(), 404, "not_found");
    // GET never changes state: the state-changing endpoints do not take it.
    for path in [
        "/api/v1/accounts",
        "/api/v1/accounts/verify",
        "/api/v1/sessions",
        "/api/v1/sessions/current",
        "/api/v1/devices/refresh",
    ] {
        assert_error(&server.get(path).send(), 405, "method_not_allowed");
    }
    let health = server.get("/api/v1/health").send();
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(health.header("cache-control"), Some("no-store"));
}

#[test]
fn pages_escape_what_they_echo_and_allow_only_their_own_script() {
    let server = TestServer::start();
    let page = server
        .get("/verify?token=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .send();
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/html")));
    let html = page.text();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(
        html.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    let policy = page.header("content-security-policy").expect("a CSP");
    assert!(policy.contains("script-src 'nonce-"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(html.contains("/api/v1/accounts/verify"));

    let reset = server.get("/reset?token=abc").send();
    assert_eq!(reset.status, 200);
    assert!(reset.text().contains("value=\"abc\""));
    assert!(reset
        .text()
        .contains("/api/v1/accounts/password-reset/confirm"));
    let login = server.get("/login").send();
    assert_eq!(login.status, 200);
    assert!(login.text().contains("/api/v1/sessions"));
    assert_eq!(server.get("/verify").send().status, 200);
}
