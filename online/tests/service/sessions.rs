//! Login, throttling, cookies and CSRF, logout, profile, password change.

use chrono::{Duration, Utc};
use od_online::model::{Account, Session};
use od_online::password::Passwords;
use od_online::store::{SqliteStore, Store};
use od_online::testing::{TestServer, TEST_PASSWORD};
use od_online::tokens::{issue, TokenKind};
use od_online::{PasswordHashing, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::*;

#[test]
fn login_answers_tokens_and_sets_strict_http_only_cookies() {
    let server = TestServer::start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    let answer = log_in(&server, "ANN@example.com ", TEST_PASSWORD);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let token = text(&body, "/token");
    assert!(
        token.starts_with("ods_") && token.len() == 4 + 43,
        "{token}"
    );
    let csrf = text(&body, "/csrf_token");
    assert_eq!(body["account"]["email"], "ann@example.com");
    let expires =
        chrono::DateTime::parse_from_rfc3339(&text(&body, "/expires_at")).expect("RFC 3339");
    let in_12_hours = server.clock().now() + Duration::hours(12);
    assert!(
        (expires.with_timezone(&Utc) - in_12_hours)
            .num_seconds()
            .abs()
            <= 1
    );

    let session = set_cookie(&answer, "od_session");
    assert_eq!(cookie_value(session), token);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain HTTP on loopback: {session}"
    );
    let csrf_cookie = set_cookie(&answer, "od_csrf");
    assert_eq!(cookie_value(csrf_cookie), csrf);
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "the page's script reads it: {csrf_cookie}"
    );
    assert!(csrf_cookie.contains("SameSite=Strict"), "{csrf_cookie}");

    assert_eq!(me(&server, &token).status, 200);
}

#[test]
fn cookies_are_secure_when_served_over_https() {
    let server = TestServer::builder()
        .configure(|config| config.public_url = Some("https://online.example.com".into()))
        .start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    let answer = log_in(&server, "ann@example.com", TEST_PASSWORD);
    assert!(set_cookie(&answer, "od_session").contains("; Secure"));
    assert!(set_cookie(&answer, "od_csrf").contains("; Secure"));
    assert!(answer.header("strict-transport-security").is_some());
    let mail = server.outbox().wait_for_mail_to("ann@example.com");
    assert!(mail
        .link()
        .expect("a link")
        .starts_with("https://online.example.com/verify?token="));
}

#[test]
fn unknown_address_and_wrong_password_get_the_same_answer() {
    let server = TestServer::start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    sign_up(&server, "pending@example.com");
    let wrong = log_in(&server, "ann@example.com", "not the password");
    let unknown = log_in(&server, "nobody@example.com", TEST_PASSWORD);
    let pending = log_in(&server, "pending@example.com", TEST_PASSWORD);
    let malformed = log_in(&server, "not an address", TEST_PASSWORD);
    assert_error(&wrong, 401, "invalid_credentials");
    for other in [&unknown, &pending, &malformed] {
        assert_eq!(other.status, wrong.status);
        assert_eq!(other.body, wrong.body);
    }
    assert!(wrong.headers("set-cookie").is_empty());
}

/// An Online ID that has a password but is not verified, which the API
/// alone never produces (the password is chosen with the verification
/// link); the service must still refuse it.
#[test]
fn a_right_password_on_an_unverified_address_is_not_verified() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let session_token = runtime.block_on(async {
        let store = SqliteStore::open(&folder.path().join("online.db")).expect("the database");
        let account = Account {
            id: Uuid::new_v4(),
            email: "ann@example.com".into(),
            name: String::new(),
            verified: false,
            created_at: Utc::now(),
        };
        store.insert_account(&account).await.expect("insert");
        let passwords = Passwords::new(PasswordHashing::FAST_FOR_TESTS).expect("hashing");
        let hash = passwords
            .hash(&SecretString::new(TEST_PASSWORD))
            .await
            .expect("hash");
        store
            .set_password(account.id, &hash, None)
            .await
            .expect("password");
        let token = issue(TokenKind::Session).expect("a token");
        let csrf = issue(TokenKind::Csrf).expect("a token");
        store
            .insert_session(&Session {
                id: Uuid::new_v4(),
                account_id: account.id,
                token_hash: token.hash.clone(),
                csrf_hash: csrf.hash,
                created_at: Utc::now(),
                last_used_at: Utc::now(),
                expires_at: Utc::now() + Duration::days(30),
            })
            .await
            .expect("session");
        token.secret.expose().to_owned()
    });
    let server = TestServer::builder().data_dir(folder.path()).start();
    let answer = log_in(&server, "ann@example.com", TEST_PASSWORD);
    assert_error(&answer, 403, "not_verified");
    assert!(answer.text().contains("spam"), "{}", answer.text());
    assert_error(
        &log_in(&server, "ann@example.com", "wrong password"),
        401,
        "invalid_credentials",
    );

    // Company registration refuses such an Online ID too.
    let registration = od_online::testing::registration(
        &od_online::testing::sign_licence(&od_online::testing::licence("L-1")),
        "system-1",
        "company-1",
    );
    let answer = server
        .post("/api/v1/companies")
        .bearer(&session_token)
        .json(&registration)
        .send();
    assert_error(&answer, 403, "not_verified");
}

#[test]
fn failed_logins_slow_the_account_down_but_never_lock_the_user_out() {
    let server = TestServer::start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    for _ in 0..5 {
        assert_error(
            &log_in(&server, "ann@example.com", "guess"),
            401,
            "invalid_credentials",
        );
    }
    // From the sixth attempt on: wait 1 s, 2 s, 4 s, ... without the
    // password being checked, even the right one.
    for expected_wait in [1, 2, 4, 8] {
        let refused = log_in(&server, "ann@example.com", TEST_PASSWORD);
        assert_error(&refused, 429, "too_many_attempts");
        assert_eq!(
            refused.header("retry-after"),
            Some(expected_wait.to_string().as_str())
        );
        assert_eq!(refused.json()["error"]["retry_after"], expected_wait);
        server.clock().advance(Duration::seconds(expected_wait));
        assert_error(
            &log_in(&server, "ann@example.com", "guess"),
            401,
            "invalid_credentials",
        );
    }
    // Other addresses are not affected.
    server.create_online_id("bob@example.com", TEST_PASSWORD);
    assert_eq!(
        log_in(&server, "bob@example.com", TEST_PASSWORD).status,
        200
    );
    // The real user waits out the delay and gets in; that starts afresh.
    let refused = log_in(&server, "ann@example.com", TEST_PASSWORD);
    assert_error(&refused, 429, "too_many_attempts");
    server.clock().advance(Duration::seconds(16));
    assert_eq!(
        log_in(&server, "ann@example.com", TEST_PASSWORD).status,
        200
    );
    assert_error(
        &log_in(&server, "ann@example.com", "guess"),
        401,
        "invalid_credentials",
    );
    assert_eq!(
        log_in(&server, "ann@example.com", TEST_PASSWORD).status,
        200
    );
}

#[test]
fn the_delay_is_capped_at_15_minutes_and_unknown_addresses_are_throttled_alike() {
    let server = TestServer::start();
    let mut waits = Vec::new();
    for _ in 0..20 {
        let answer = log_in(&server, "nobody@example.com", "guess");
        if answer.status == 429 {
            let wait: i64 = answer
                .header("retry-after")
                .expect("Retry-After")
                .parse()
                .expect("a number");
            waits.push(wait);
            server.clock().advance(Duration::seconds(wait));
            assert_error(
                &log_in(&server, "nobody@example.com", "guess"),
                401,
                "invalid_credentials",
            );
        }
    }
    assert_eq!(waits.first(), Some(&1));
    assert_eq!(waits.last(), Some(&900), "{waits:?}");
    assert!(waits.iter().all(|wait| *wait <= 900));
}

#[test]
fn a_password_reset_lifts_the_login_delay() {
    let server = TestServer::start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    for _ in 0..5 {
        assert_error(
            &log_in(&server, "ann@example.com", "guess"),
            401,
            "invalid_credentials",
        );
    }
    assert_error(
        &log_in(&server, "ann@example.com", TEST_PASSWORD),
        429,
        "too_many_attempts",
    );
    server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "ann@example.com" }))
        .send();
    let token = token_of_mail(&server, "ann@example.com", 2);
    let confirm = server
        .post("/api/v1/accounts/password-reset/confirm")
        .json(&json!({ "token": token, "new_password": "my new password" }))
        .send();
    assert_eq!(confirm.status, 204);
    assert_eq!(
        log_in(&server, "ann@example.com", "my new password").status,
        200
    );
}

#[test]
fn one_client_address_gets_50_failures_per_15_minutes() {
    let server = TestServer::start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    for n in 0..50 {
        let answer = log_in(&server, &format!("user{n}@example.com"), "guess");
        assert_error(&answer, 401, "invalid_credentials");
    }
    let refused = log_in(&server, "ann@example.com", TEST_PASSWORD);
    assert_error(&refused, 429, "too_many_attempts");
    let wait: i64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("a number");
    assert!((1..=900).contains(&wait), "{wait}");
    server.clock().advance(Duration::minutes(15));
    assert_eq!(
        log_in(&server, "ann@example.com", TEST_PASSWORD).status,
        200
    );
}

#[test]
fn cookie_authenticated_changes_need_the_csrf_token() {
    let server = TestServer::start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    let login = log_in(&server, "ann@example.com", TEST_PASSWORD);
    let session_cookie = cookie_value(set_cookie(&login, "od_session")).to_owned();
    let csrf = text(&login.json(), "/csrf_token");
    let cookie = format!("od_session={session_cookie}; od_csrf={csrf}");

    // Reading with the cookie needs no CSRF token.
    let read = server.get("/api/v1/me").header("Cookie", &cookie).send();
    assert_eq!(read.status, 200, "{}", read.text());

    let rename = |csrf: Option<&str>| {
        let mut request = server
            .patch("/api/v1/me")
            .header("Cookie", &cookie)
            .json(&json!({ "name": "Ann" }));
        if let Some(csrf) = csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        request.send()
    };
    assert_error(&rename(None), 403, "csrf_failed");
    assert_error(&rename(Some("odc_wrong")), 403, "csrf_failed");
    let other = log_in(&server, "ann@example.com", TEST_PASSWORD);
    let others_csrf = text(&other.json(), "/csrf_token");
    assert_error(&rename(Some(&others_csrf)), 403, "csrf_failed");
    assert_eq!(
        me(&server, &text(&login.json(), "/token")).json()["name"],
        ""
    );
    let renamed = rename(Some(&csrf));
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_eq!(renamed.json()["name"], "Ann");

    // Logging out with the cookie needs it too.
    let logout = server
        .delete("/api/v1/sessions/current")
        .header("Cookie", &cookie)
        .send();
    assert_error(&logout, 403, "csrf_failed");
    // A bearer token is no ambient credential: no CSRF token needed.
    let bearer = server
        .patch("/api/v1/me")
        .bearer(&text(&login.json(), "/token"))
        .json(&json!({ "name": "Ann Smith" }))
        .send();
    assert_eq!(bearer.status, 200);
}

#[test]
fn logout_ends_the_session_and_clears_the_cookies() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let other = server.log_in("ann@example.com", TEST_PASSWORD).token;
    let answer = server
        .delete("/api/v1/sessions/current")
        .bearer(&token)
        .send();
    assert_eq!(answer.status, 204);
    assert!(set_cookie(&answer, "od_session").contains("Max-Age=0"));
    assert!(set_cookie(&answer, "od_csrf").contains("Max-Age=0"));
    assert_error(&me(&server, &token), 401, "token_invalid");
    assert_error(
        &server
            .delete("/api/v1/sessions/current")
            .bearer(&token)
            .send(),
        401,
        "token_invalid",
    );
    assert_eq!(me(&server, &other).status, 200, "only this session ends");
    assert_error(
        &server.get("/api/v1/me").send(),
        401,
        "authentication_required",
    );
    assert_error(&me(&server, "ods_not-a-session"), 401, "token_invalid");
    assert_error(
        &server
            .get("/api/v1/me")
            .header("Authorization", "Basic abc")
            .send(),
        401,
        "token_invalid",
    );
}

#[test]
fn sessions_end_12_hours_after_their_last_use_and_after_30_days() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    server.clock().advance(Duration::hours(11));
    assert_eq!(me(&server, &token).status, 200);
    server.clock().advance(Duration::hours(11));
    assert_eq!(me(&server, &token).status, 200, "used 11 hours ago");
    server.clock().advance(Duration::hours(12));
    assert_error(&me(&server, &token), 401, "token_invalid");

    // Used every 10 hours, a session still ends 30 days after the login.
    let token = server.log_in("ann@example.com", TEST_PASSWORD).token;
    for _ in 0..71 {
        server.clock().advance(Duration::hours(10));
        assert_eq!(me(&server, &token).status, 200);
    }
    server.clock().advance(Duration::hours(10));
    assert_error(&me(&server, &token), 401, "token_invalid");
}

#[test]
fn my_profile_shows_the_online_id_and_its_companies() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let answer = me(&server, &token);
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["verified"], true);
    assert_eq!(body["companies"], json!([]));

    let rename = server
        .patch("/api/v1/me")
        .bearer(&token)
        .json(&json!({ "name": "  Ann Smith  " }))
        .send();
    assert_eq!(rename.status, 200);
    assert_eq!(rename.json()["name"], "Ann Smith");
    assert_eq!(me(&server, &token).json()["name"], "Ann Smith");
    let too_long = server
        .patch("/api/v1/me")
        .bearer(&token)
        .json(&json!({ "name": "x".repeat(201) }))
        .send();
    assert_error(&too_long, 400, "invalid_request");
    let two_lines = server
        .patch("/api/v1/me")
        .bearer(&token)
        .json(&json!({ "name": "Ann\nSmith" }))
        .send();
    assert_error(&two_lines, 400, "invalid_request");
}

#[test]
fn changing_the_password_ends_the_other_sessions() {
    let server = TestServer::start();
    let this = online_id(&server, "ann@example.com");
    let other = server.log_in("ann@example.com", TEST_PASSWORD).token;
    let change = |current: &str, new: &str| {
        server
            .post("/api/v1/me/password")
            .bearer(&this)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    assert_error(
        &change("wrong password", "my new password"),
        401,
        "invalid_credentials",
    );
    assert_error(&change(TEST_PASSWORD, "short"), 400, "password_too_short");
    assert_error(
        &change(TEST_PASSWORD, &"x".repeat(129)),
        400,
        "password_too_long",
    );
    assert_eq!(me(&server, &other).status, 200, "nothing changed yet");
    assert_eq!(change(TEST_PASSWORD, "my new password").status, 204);
    assert_eq!(me(&server, &this).status, 200, "this session goes on");
    assert_error(&me(&server, &other), 401, "token_invalid");
    assert_error(
        &log_in(&server, "ann@example.com", TEST_PASSWORD),
        401,
        "invalid_credentials",
    );
    assert_eq!(
        log_in(&server, "ann@example.com", "my new password").status,
        200
    );
}

#[test]
fn guessing_the_current_password_is_throttled_like_a_login() {
    let server = TestServer::start();
    let token = online_id(&server, "ann@example.com");
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let answer = server
            .post("/api/v1/me/password")
            .bearer(&token)
            .json(&json!({ "current_password": "guess", "new_password": "my new password" }))
            .send();
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
}

/// An unknown address costs a full Argon2id verification too (against a
/// dummy hash), so timing does not tell who has an Online ID. Measured with
/// real (if small) parameters; the bound is loose, since without the dummy
/// verification the unknown address would answer a hundred times faster.
#[test]
fn an_unknown_address_takes_as_long_as_a_wrong_password() {
    let server = TestServer::builder()
        .configure(|config| {
            config.password_hashing = PasswordHashing {
                memory_kib: 4096,
                iterations: 2,
                parallelism: 1,
            }
        })
        .start();
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    let fastest = |email: &str| {
        (0..3)
            .map(|_| {
                let started = std::time::Instant::now();
                let answer = log_in(&server, email, "not the password");
                assert_eq!(answer.status, 401);
                started.elapsed()
            })
            .min()
            .expect("three timings")
    };
    let wrong_password = fastest("ann@example.com");
    let unknown = fastest("nobody@example.com");
    assert!(
        unknown * 3 >= wrong_password && wrong_password * 3 >= unknown,
        "unknown address {unknown:?}, wrong password {wrong_password:?}"
    );
}

#[test]
fn behind_a_trusted_proxy_clients_are_throttled_by_their_forwarded_address() {
    let trusting = TestServer::builder()
        .configure(|config| config.trusted_proxies = vec!["127.0.0.1".parse().expect("an IP")])
        .start();
    let attempt = |server: &TestServer, n: usize, client: &str| {
        server
            .post("/api/v1/sessions")
            .header("X-Forwarded-For", &format!("198.51.100.7, {client}"))
            .json(&json!({ "email": format!("user{n}@example.com"), "password": "guess" }))
            .send()
    };
    for n in 0..50 {
        assert_eq!(attempt(&trusting, n, "203.0.113.1").status, 401);
    }
    assert_error(
        &attempt(&trusting, 99, "203.0.113.1"),
        429,
        "too_many_attempts",
    );
    assert_error(
        &attempt(&trusting, 99, "203.0.113.2"),
        401,
        "invalid_credentials",
    );

    // Without trust, the header is the client's own claim and is ignored.
    let plain = TestServer::start();
    for n in 0..50 {
        assert_eq!(attempt(&plain, n, &format!("203.0.113.{n}")).status, 401);
    }
    assert_error(
        &attempt(&plain, 99, "203.0.113.200"),
        429,
        "too_many_attempts",
    );
}
