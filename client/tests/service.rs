//! The client against the real online service (`od-online`'s `TestServer`
//! on 127.0.0.1): the flows the plugin runs, the contract's error codes as
//! `ClientError` kinds, and the device token's refresh.

mod support;

use od_abi::{OD_RESULT_SERVICE_AUTH, OD_RESULT_SERVICE_REFUSED, OD_RESULT_SERVICE_UNAVAILABLE};
use od_client::{
    Client, ClientError, DeviceCredentials, DeviceSession, NewDevice, Registration,
    RegistrationData, RetryPolicy, Secret, ServiceUrl, SessionToken, Timer,
};
use od_online::testing::{licence, sign_licence, TestServer, TEST_PASSWORD};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

fn url(server: &TestServer) -> ServiceUrl {
    ServiceUrl::parse(server.base_url()).unwrap()
}

fn client_for(server: &TestServer) -> (Client, Arc<FakeTimer>) {
    let timer = FakeTimer::new();
    (client(&url(server), retries(3), &timer), timer)
}

fn registration(licence_number: &str) -> Registration {
    Registration {
        licence_document: sign_licence(&licence(licence_number)),
        system_database_id: format!("system-{licence_number}"),
        company_database_id: format!("company-{licence_number}"),
        registration: RegistrationData {
            name: "Nordlys Handel AS".into(),
            street: "Storgata 1".into(),
            postcode: "0155".into(),
            city: "Oslo".into(),
            country: "Norway".into(),
            phone: "+47 22 00 00 00".into(),
            email: "post@nordlys.example".into(),
            organisation_number: "987 654 321".into(),
        },
    }
}

fn this_computer() -> NewDevice {
    NewDevice {
        computer_id: "pc-1".into(),
        computer_name: "Front office".into(),
    }
}

/// Signs up through the client and verifies with the link from the outbox.
async fn online_id(client: &Client, server: &TestServer, email: &str, password: &Secret) {
    client.sign_up(email).await.unwrap();
    let token = server
        .outbox()
        .wait_for_mail_to(email)
        .token()
        .expect("a verification link");
    let account = client
        .verify_account(&Secret::new(token), password)
        .await
        .unwrap();
    assert!(account.verified);
    assert_eq!(account.email, email);
}

/// A logged-in super user of a connected company, and this computer as its
/// device.
async fn connected_device(
    client: &Client,
    server: &TestServer,
) -> (SessionToken, od_client::Company, DeviceCredentials) {
    let password = Secret::new(TEST_PASSWORD);
    online_id(client, server, "kari@example.com", &password).await;
    let session = client.log_in("kari@example.com", &password).await.unwrap();
    let company = client
        .register_company(&session.token, &registration("L-1001"))
        .await
        .unwrap()
        .company;
    let device = client
        .create_device(&session.token, company.id, &this_computer())
        .await
        .unwrap();
    (session.token, company, device)
}

/// Counts refreshes and keeps the latest credentials, as the plugin's
/// credential store would.
#[derive(Clone, Default)]
struct Store {
    refreshes: Arc<AtomicUsize>,
    latest: Arc<Mutex<Option<DeviceCredentials>>>,
}

impl Store {
    fn session(&self, credentials: DeviceCredentials) -> DeviceSession {
        let store = self.clone();
        DeviceSession::new(credentials).on_refresh(move |new| {
            store.refreshes.fetch_add(1, Ordering::SeqCst);
            *store.latest.lock().unwrap() = Some(new.clone());
        })
    }

    fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }
}

fn with_access_token(credentials: &DeviceCredentials, token: &str) -> DeviceCredentials {
    DeviceCredentials {
        access_token: Secret::new(token),
        ..credentials.clone()
    }
}

#[tokio::test]
async fn health_answers_with_the_service_version() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let health = client.health().await.unwrap();
    assert_eq!(health.status, "ok");
    assert!(health.version.is_some_and(|v| !v.is_empty()));
}

/// Everything the connect wizard and a later sync do, in order, with all the
/// client's log output captured: no password or token may appear in it.
#[tokio::test]
async fn the_whole_flow_works_and_logs_no_secret() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let logs = LogCapture::default();
    let store = Store::default();
    let password = Secret::new("a long and secret passphrase");
    let email = "ann@example.com";

    // The default for this thread, so that the tasks the HTTP stack spawns
    // on this (single-threaded) runtime are captured too.
    let capture = tracing::dispatcher::set_default(&logs.dispatch());
    let secrets = async {
        let mut secrets = vec![password.expose().to_owned()];
        client.sign_up(email).await.unwrap();
        let verification = server.outbox().wait_for_mail_to(email).token().unwrap();
        secrets.push(verification.clone());
        client
            .verify_account(&Secret::new(verification), &password)
            .await
            .unwrap();

        let session = client.log_in(email, &password).await.unwrap();
        secrets.push(session.token.0.expose().to_owned());
        secrets.push(session.csrf_token.expose().to_owned());
        assert_eq!(session.account.email, email);
        let me = client.me(&session.token).await.unwrap();
        assert!(me.account.verified && me.companies.is_empty());

        let registered = client
            .register_company(&session.token, &registration("L-2001"))
            .await
            .unwrap();
        assert!(registered.created);
        let company = registered.company;
        assert_eq!(company.licence_number, "L-2001");
        assert_eq!(company.tier, "standard");
        assert_eq!(company.online_users, 5);
        assert_eq!(company.connected_by.email, email);
        assert_eq!(company.registration.city, "Oslo");
        let again = client
            .register_company(&session.token, &registration("L-2001"))
            .await
            .unwrap();
        assert!(!again.created, "the same registration is idempotent");
        assert_eq!(again.company.id, company.id);
        let companies = client.companies(&session.token).await.unwrap();
        assert_eq!(companies.len(), 1);
        assert_eq!(
            (companies[0].id, companies[0].role.as_str()),
            (company.id, "super_user")
        );
        assert_eq!(
            client.company(&session.token, company.id).await.unwrap(),
            company
        );

        let credentials = client
            .create_device(&session.token, company.id, &this_computer())
            .await
            .unwrap();
        secrets.push(credentials.access_token.expose().to_owned());
        secrets.push(credentials.refresh_token.expose().to_owned());
        let device = store.session(credentials.clone());
        let info = client.current_device(&device).await.unwrap();
        assert_eq!(info.device_id, credentials.device_id);
        assert_eq!(info.company_id, company.id);
        assert_eq!(info.computer_name, "Front office");
        assert_eq!(
            client
                .company_as_device(&device, company.id)
                .await
                .unwrap()
                .id,
            company.id
        );

        // The service stops accepting the access token (an hour passes):
        // the client refreshes once and repeats the request.
        server.clock().advance(chrono::Duration::minutes(61));
        let info = client.current_device(&device).await.unwrap();
        assert_eq!(info.device_id, credentials.device_id);
        assert_eq!(store.refreshes(), 1);
        let rotated = device.credentials().await;
        assert_ne!(rotated.refresh_token, credentials.refresh_token);
        assert_ne!(rotated.access_token, credentials.access_token);
        secrets.push(rotated.access_token.expose().to_owned());
        secrets.push(rotated.refresh_token.expose().to_owned());

        client.revoke_device(&device).await.unwrap();
        let error = client.current_device(&device).await.unwrap_err();
        assert_eq!(error.status_code(), OD_RESULT_SERVICE_AUTH, "{error:?}");

        client.log_out(&session.token).await.unwrap();
        let error = client.me(&session.token).await.unwrap_err();
        assert!(error.is_token_invalid(), "{error:?}");
        secrets
    }
    .await;
    drop(capture);

    let output = logs.text();
    assert!(
        output.contains("api/v1/devices/refresh"),
        "the capture sees the client's log:\n{output}"
    );
    for secret in &secrets {
        assert!(secret.len() >= 8, "a real secret: {secret:?}");
        assert!(
            !output.contains(secret.as_str()),
            "a secret is in the log:\n{output}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_is_auth() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    online_id(
        &client,
        &server,
        "kari@example.com",
        &Secret::new(TEST_PASSWORD),
    )
    .await;
    for email in ["kari@example.com", "nobody@example.com"] {
        let error = client
            .log_in(email, &Secret::new("not the password"))
            .await
            .unwrap_err();
        assert_eq!(error.status_code(), OD_RESULT_SERVICE_AUTH);
        assert_eq!(error.code(), Some("invalid_credentials"));
        assert!(!error.to_string().is_empty());
    }
}

#[tokio::test]
async fn throttled_logins_are_unavailable_with_the_wait() {
    let server = TestServer::start();
    let timer = FakeTimer::new();
    let client = client(&url(&server), RetryPolicy::none(), &timer);
    online_id(
        &client,
        &server,
        "kari@example.com",
        &Secret::new(TEST_PASSWORD),
    )
    .await;
    let mut last = None;
    for _ in 0..10 {
        let error = client
            .log_in("kari@example.com", &Secret::new("guess"))
            .await
            .unwrap_err();
        let throttled = error.status_code() == OD_RESULT_SERVICE_UNAVAILABLE;
        last = Some(error);
        if throttled {
            break;
        }
    }
    match last.unwrap() {
        ClientError::Unavailable {
            status: 429,
            code,
            retry_after,
            ..
        } => {
            assert_eq!(code.as_deref(), Some("too_many_attempts"));
            assert!(retry_after.is_some_and(|wait| wait >= Duration::from_secs(1)));
        }
        other => panic!("expected throttling, got {other:?}"),
    }
}

#[tokio::test]
async fn registration_errors_are_refusals_with_the_service_code() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let password = Secret::new(TEST_PASSWORD);
    online_id(&client, &server, "kari@example.com", &password).await;
    let session = client
        .log_in("kari@example.com", &password)
        .await
        .unwrap()
        .token;

    let mut not_a_licence = registration("L-3001");
    not_a_licence.licence_document = "not a licence".into();
    let mut evaluation = registration("L-3002");
    let mut evaluation_licence = licence("L-3002");
    evaluation_licence.evaluation = true;
    evaluation.licence_document = sign_licence(&evaluation_licence);
    let mut incomplete = registration("L-3003");
    incomplete.registration.street.clear();
    for (registration, code) in [
        (not_a_licence, "licence_invalid"),
        (evaluation, "licence_evaluation"),
        (incomplete, "registration_incomplete"),
    ] {
        let error = client
            .register_company(&session, &registration)
            .await
            .unwrap_err();
        assert_eq!(error.status_code(), OD_RESULT_SERVICE_REFUSED, "{error:?}");
        assert_eq!(error.code(), Some(code));
        assert!(!error.to_string().is_empty());
    }
}

#[tokio::test]
async fn a_device_reaches_only_its_own_company() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let (_, _, credentials) = connected_device(&client, &server).await;
    let device = DeviceSession::new(credentials);
    let error = client
        .company_as_device(&device, od_client::Uuid::new_v4())
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_REFUSED);
    assert_eq!(error.code(), Some("not_found"));
}

#[tokio::test]
async fn a_refused_access_token_is_refreshed_once_and_the_request_repeated() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let (_, company, credentials) = connected_device(&client, &server).await;
    let store = Store::default();
    let device = store.session(with_access_token(&credentials, "oda_not_a_token"));
    let info = client.current_device(&device).await.unwrap();
    assert_eq!(info.company_id, company.id);
    assert_eq!(store.refreshes(), 1);
    let stored = store.latest.lock().unwrap().clone().unwrap();
    assert_eq!(stored, device.credentials().await);
    assert_ne!(stored.refresh_token, credentials.refresh_token);
    // The new token works without another refresh.
    client.current_device(&device).await.unwrap();
    assert_eq!(store.refreshes(), 1);
}

#[tokio::test]
async fn concurrent_requests_with_a_refused_token_refresh_only_once() {
    // Two refreshes with the same refresh token would revoke the device.
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let (_, _, credentials) = connected_device(&client, &server).await;
    let store = Store::default();
    let device = store.session(with_access_token(&credentials, "oda_not_a_token"));
    let (a, b, c, d) = tokio::join!(
        client.current_device(&device),
        client.current_device(&device),
        client.current_device(&device),
        client.current_device(&device),
    );
    for outcome in [a, b, c, d] {
        outcome.unwrap();
    }
    assert_eq!(store.refreshes(), 1);
}

#[tokio::test]
async fn an_access_token_known_to_have_expired_is_refreshed_before_the_request() {
    let server = TestServer::start();
    let (client, timer) = client_for(&server);
    let (_, _, credentials) = connected_device(&client, &server).await;
    let store = Store::default();
    // A first refresh tells the client when the access token ends.
    let device = store.session(with_access_token(&credentials, "oda_not_a_token"));
    client.current_device(&device).await.unwrap();
    assert_eq!(store.refreshes(), 1);
    // An hour passes on this computer only: the service would still accept
    // the token, so a refresh now can only be the client's own decision.
    timer.sleep(Duration::from_secs(3600)).await;
    client.current_device(&device).await.unwrap();
    assert_eq!(store.refreshes(), 2);
}

#[tokio::test]
async fn a_failed_refresh_is_auth_and_asks_to_log_in_again() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let (_, _, credentials) = connected_device(&client, &server).await;
    client
        .revoke_device(&DeviceSession::new(credentials.clone()))
        .await
        .unwrap();
    let device = DeviceSession::new(credentials);
    let error = client.current_device(&device).await.unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_AUTH);
    assert!(error.is_token_invalid());
    assert!(error.to_string().contains("Log in again"), "{error}");
}

#[tokio::test]
async fn a_refresh_token_used_twice_revokes_the_device() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let (_, _, credentials) = connected_device(&client, &server).await;
    let fresh = client
        .refresh_device(&credentials.refresh_token)
        .await
        .unwrap();
    let error = client
        .refresh_device(&credentials.refresh_token)
        .await
        .unwrap_err();
    assert!(error.is_token_invalid(), "{error:?}");
    // Theft detection: the fresh credentials are dead too.
    let error = client
        .current_device(&DeviceSession::new(fresh))
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_AUTH);
}

#[tokio::test]
async fn registering_the_computer_again_replaces_its_device() {
    let server = TestServer::start();
    let (client, _) = client_for(&server);
    let (session, company, first) = connected_device(&client, &server).await;
    let second = client
        .create_device(&session, company.id, &this_computer())
        .await
        .unwrap();
    assert_ne!(first.device_id, second.device_id);
    let error = client
        .current_device(&DeviceSession::new(first))
        .await
        .unwrap_err();
    assert_eq!(error.status_code(), OD_RESULT_SERVICE_AUTH);
    client
        .current_device(&DeviceSession::new(second))
        .await
        .unwrap();
}
