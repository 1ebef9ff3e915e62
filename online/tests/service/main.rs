//! API v1 against the real service (`TestServer`: a free port on
//! 127.0.0.1, a temporary database, a clock the tests move).

mod accounts;
mod companies;
mod connection;
mod devices;
mod mail;
mod openapi;
mod recent_login;
mod secrets;
mod sessions;
mod sync;

use od_online::testing::{TestResponse, TestServer, TEST_PASSWORD};
use serde_json::{json, Value};

/// Asserts the status and the error code of an answer.
#[track_caller]
pub fn assert_error(answer: &TestResponse, status: u16, code: &str) {
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (status, Some(code)),
        "{}",
        answer.text()
    );
    let body = answer.json();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "every error has a message: {body}"
    );
}

pub fn sign_up(server: &TestServer, email: &str) -> TestResponse {
    server
        .post("/api/v1/accounts")
        .json(&json!({ "email": email }))
        .send()
}

pub fn log_in(server: &TestServer, email: &str, password: &str) -> TestResponse {
    server
        .post("/api/v1/sessions")
        .json(&json!({ "email": email, "password": password }))
        .send()
}

/// The token of the newest mail to `email`, waiting for mail number `count`.
pub fn token_of_mail(server: &TestServer, email: &str, count: usize) -> String {
    server
        .outbox()
        .wait_for_mails_to(email, count)
        .pop()
        .and_then(|mail| mail.token())
        .expect("a mail with a link")
}

pub fn verify(server: &TestServer, token: &str, password: &str) -> TestResponse {
    server
        .post("/api/v1/accounts/verify")
        .json(&json!({ "token": token, "password": password }))
        .send()
}

/// A verified Online ID and a session token.
pub fn online_id(server: &TestServer, email: &str) -> String {
    server.create_online_id(email, TEST_PASSWORD);
    server.log_in(email, TEST_PASSWORD).token
}

pub fn me(server: &TestServer, token: &str) -> TestResponse {
    server.get("/api/v1/me").bearer(token).send()
}

/// The cookie `name=value` set by an answer, with its attributes.
pub fn set_cookie<'a>(answer: &'a TestResponse, name: &str) -> &'a str {
    answer
        .headers("set-cookie")
        .into_iter()
        .find(|cookie| cookie.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no cookie {name}: {:?}", answer.headers))
}

pub fn cookie_value(cookie: &str) -> &str {
    cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value)
        .unwrap_or_default()
}

pub fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text at {pointer} in {value}"))
        .to_owned()
}
