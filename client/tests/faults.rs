//! Transport-level faults the real service cannot produce, from a scripted
//! loopback server: 5xx and 429 with and without Retry-After, connections
//! cut off mid-answer, garbled answers, answers too slow, redirects,
//! cancellation. Waits are injected (FakeTimer), so nothing sleeps.

mod support;

use od_abi::{
    OD_RESULT_SERVICE_PROTOCOL, OD_RESULT_SERVICE_UNAVAILABLE, OD_RESULT_SERVICE_UNREACHABLE,
};
use od_client::{Client, ClientConfig, ClientError, RetryPolicy, Secret, UnreachableCause};
use std::time::Duration;
use support::*;

fn unavailable() -> Reply {
    Reply::json(
        503,
        serde_json::json!({"error": {"code": "maintenance", "message": "The service is being updated."}}),
    )
}

#[tokio::test]
async fn a_503_is_retried_with_backoff_then_succeeds() {
    let server = FaultServer::start(vec![Reply::status(503), unavailable(), Reply::health()]).await;
    let timer = FakeTimer::new();
    let health = client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap();
    assert_eq!(health.status, "ok");
    assert_eq!(server.requests(), 3);
    let sleeps = timer.sleeps();
    assert_eq!(sleeps.len(), 2);
    // 100 ms then 200 ms, each with jitter in its upper half.
    assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&sleeps[0]));
    assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&sleeps[1]));
}

#[tokio::test]
async fn retry_after_in_seconds_is_honoured() {
    let server = FaultServer::start(vec![
        Reply::status(503).with_header("Retry-After", "3"),
        Reply::health(),
    ])
    .await;
    let timer = FakeTimer::new();
    client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap();
    assert_eq!(timer.sleeps(), [Duration::from_secs(3)]);
}

#[tokio::test]
async fn retry_after_as_a_date_is_honoured() {
    let at = std::time::SystemTime::now() + Duration::from_secs(90);
    let server = FaultServer::start(vec![
        Reply::status(503).with_header("Retry-After", &httpdate::fmt_http_date(at)),
        Reply::health(),
    ])
    .await;
    let timer = FakeTimer::new();
    client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap();
    let waited = timer.sleeps()[0];
    assert!(
        (Duration::from_secs(80)..=Duration::from_secs(90)).contains(&waited),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_service_that_stays_down_is_unavailable_after_the_last_attempt() {
    let server = FaultServer::start(vec![unavailable()]).await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(3), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 3);
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNAVAILABLE);
    assert_eq!(error.code(), Some("maintenance"));
    assert_eq!(
        error.to_string(),
        "The service is being updated. Try again later."
    );
}

#[tokio::test]
async fn the_total_time_bounds_the_retries() {
    let server = FaultServer::start(vec![Reply::status(502)]).await;
    let timer = FakeTimer::new();
    let policy = RetryPolicy {
        max_attempts: 100,
        initial_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(4),
        max_total: Duration::from_secs(10),
    };
    let error = client(&server.url, policy, &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNAVAILABLE);
    let waited: Duration = timer.sleeps().iter().sum();
    assert!(waited <= Duration::from_secs(10), "{waited:?}");
    assert!(server.requests() < 10, "{}", server.requests());
}

#[tokio::test]
async fn a_429_whose_wait_is_too_long_ends_at_once_with_the_wait() {
    let server = FaultServer::start(vec![Reply::json(
        429,
        serde_json::json!({"error": {"code": "too_many_attempts", "message": "Too many attempts.", "retry_after": 900}}),
    )
    .with_header("Retry-After", "900")])
    .await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .log_in("kari@example.com", &Secret::new("correct horse"))
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1);
    assert!(timer.sleeps().is_empty());
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNAVAILABLE);
    assert_eq!(
        error,
        ClientError::Unavailable {
            service: server.url.to_string(),
            status: 429,
            code: Some("too_many_attempts".into()),
            message: Some("Too many attempts.".into()),
            retry_after: Some(Duration::from_secs(900)),
        }
    );
    assert_eq!(
        error.to_string(),
        "Too many attempts. Try again in about 15 minutes."
    );
}

#[tokio::test]
async fn a_429_is_retried_even_for_a_request_that_must_not_be_repeated() {
    // 429 means the service did nothing, so sending the log-in again is safe.
    let server = FaultServer::start(vec![
        Reply::status(429).with_header("Retry-After", "2"),
        Reply::status(429),
        Reply::json(
            401,
            serde_json::json!({"error": {"code": "invalid_credentials", "message": "The e-mail address or the password is wrong."}}),
        ),
    ])
    .await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .log_in("kari@example.com", &Secret::new("wrong"))
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 3);
    assert_eq!(timer.sleeps()[0], Duration::from_secs(2));
    assert_eq!(error.code(), Some("invalid_credentials"));
}

#[tokio::test]
async fn a_5xx_to_a_request_that_must_not_be_repeated_is_not_retried() {
    let server = FaultServer::start(vec![Reply::status(500), Reply::health()]).await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .refresh_device(&Secret::new("odr_x"))
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1);
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn an_answer_cut_off_is_retried_when_safe() {
    let server = FaultServer::start(vec![Reply::CutOff, Reply::health()]).await;
    let timer = FakeTimer::new();
    client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn an_answer_cut_off_is_not_retried_when_the_request_must_not_be_repeated() {
    // The refresh may have been done: sending the refresh token again would
    // revoke the device.
    let server = FaultServer::start(vec![Reply::CutOff]).await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .refresh_device(&Secret::new("odr_x"))
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1);
    assert_eq!(
        error,
        ClientError::Unreachable {
            service: server.url.to_string(),
            cause: UnreachableCause::Broken
        }
    );
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_UNREACHABLE);
}

#[tokio::test]
async fn an_answer_cut_off_every_time_is_unreachable() {
    let server = FaultServer::start(vec![Reply::CutOff]).await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(3), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 3);
    assert!(
        error.to_string().contains("the connection broke off"),
        "{error}"
    );
}

#[tokio::test]
async fn a_garbled_answer_is_a_protocol_error_and_not_retried() {
    let server = FaultServer::start(vec![Reply::Status {
        status: 200,
        headers: vec![("Content-Type", "application/json".into())],
        body: b"{\"status\": \"ok\", \"vers\xff\xfe".to_vec(),
    }])
    .await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 1);
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_PROTOCOL);
    assert!(error.to_string().contains("does not understand"), "{error}");
}

#[tokio::test]
async fn a_garbled_compressed_answer_is_a_protocol_error() {
    let server = FaultServer::start(vec![Reply::Status {
        status: 200,
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("Content-Encoding", "gzip".into()),
        ],
        body: b"\x1f\x8b\x08\x00garbage garbage garbage".to_vec(),
    }])
    .await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_PROTOCOL, "{error:?}");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_unreachable() {
    let server = FaultServer::start(vec![Reply::Raw(b"SSH-2.0-OpenSSH_9.6\r\n".to_vec())]).await;
    let timer = FakeTimer::new();
    let error = client(&server.url, RetryPolicy::none(), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(
        error.status_code(),
        OD_RESULT_SERVICE_UNREACHABLE,
        "{error:?}"
    );
}

#[tokio::test]
async fn a_json_answer_of_the_wrong_shape_is_a_protocol_error() {
    let server = FaultServer::start(vec![Reply::json(
        200,
        serde_json::json!({"status": "ok", "version": 3}),
    )])
    .await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_PROTOCOL);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    // Following one could send a token in plain text to another host.
    let server = FaultServer::start(vec![
        Reply::status(302).with_header("Location", "http://online.example.com/api/v1/health")
    ])
    .await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(4), &timer)
        .health()
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_PROTOCOL);
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_slow_answer_times_out_as_unreachable() {
    let server = FaultServer::start(vec![Reply::Silent]).await;
    let config = ClientConfig {
        request_timeout: Duration::from_millis(300),
        retry: RetryPolicy::none(),
        ..ClientConfig::default()
    };
    let client = Client::new(server.url.clone(), config).unwrap();
    let error = tokio::time::timeout(PATIENCE, client.health())
        .await
        .expect("the client's own timeout ends the request")
        .unwrap_err();
    assert_eq!(
        error,
        ClientError::Unreachable {
            service: server.url.to_string(),
            cause: UnreachableCause::Timeout
        }
    );
    assert!(error.to_string().contains("did not answer in time"));
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_and_retried() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = od_client::ServiceUrl::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let timer = FakeTimer::new();
    // Even a request that must not be repeated: it never reached the service.
    let error = client(&url, retries(3), &timer)
        .log_in("kari@example.com", &Secret::new("pw"))
        .await
        .unwrap_err();
    assert_eq!(timer.sleeps().len(), 2);
    assert_eq!(
        error,
        ClientError::Unreachable {
            service: url.to_string(),
            cause: UnreachableCause::Connect
        }
    );
}

#[tokio::test]
async fn dropping_the_future_stops_the_request() {
    let server = FaultServer::start(vec![Reply::Silent]).await;
    let timer = FakeTimer::new();
    let client = client(&server.url, retries(4), &timer);
    let mut request = Box::pin(client.health());
    // Drop the request only once the server holds it, however slow the
    // machine.
    tokio::select! {
        outcome = &mut request => panic!("the silent server never answers: {outcome:?}"),
        () = async {
            while server.requests() == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } => {}
    }
    drop(request);
    tokio::time::timeout(PATIENCE, server.client_closed())
        .await
        .expect("the connection is closed once the future is dropped");
    assert_eq!(server.requests(), 1);
    assert!(timer.sleeps().is_empty());
}

#[tokio::test]
async fn the_request_carries_the_token_only_in_the_authorization_header() {
    let server =
        FaultServer::start(vec![Reply::json(200, serde_json::json!({"companies": []}))]).await;
    let timer = FakeTimer::new();
    let session = od_client::SessionToken(Secret::new("ods_abc123"));
    let companies = client(&server.url, retries(1), &timer)
        .companies(&session)
        .await
        .unwrap();
    assert!(companies.is_empty());
    let seen = &server.seen()[0];
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/api/v1/companies")
    );
    assert!(
        seen.head
            .to_ascii_lowercase()
            .contains("authorization: bearer ods_abc123"),
        "{}",
        seen.head
    );
    assert!(
        seen.head.contains("od-client/"),
        "user agent: {}",
        seen.head
    );
}

#[tokio::test]
async fn the_log_in_body_carries_email_and_password() {
    let server = FaultServer::start(vec![Reply::json(
        401,
        serde_json::json!({"error": {"code": "not_verified", "message": "Open the link in the e-mail we sent."}}),
    )])
    .await;
    let timer = FakeTimer::new();
    let error = client(&server.url, retries(1), &timer)
        .log_in("kari@example.com", &Secret::new("pa\"ss"))
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), od_abi::OD_RESULT_SERVICE_AUTH);
    let body: serde_json::Value = serde_json::from_slice(&server.seen()[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"email": "kari@example.com", "password": "pa\"ss"})
    );
}
