//! G8: no password and no token in the service's log, at debug level, over
//! a whole sign-up, login, connect and device flow.

use od_online::testing::{licence, registration, sign_licence, Mail, TestDevice, TestServer};
use serde_json::json;

use crate::mail::SmtpSink;
use crate::*;

#[test]
fn no_password_or_token_reaches_the_log() {
    let sink = SmtpSink::start();
    let server = TestServer::builder().smtp_url(sink.url()).start();
    let password = "Tr0ub4dor & 3 - my secret horse";
    let new_password = "an even longer secret passphrase";
    let mut secrets: Vec<String> = vec![password.into(), new_password.into()];

    assert_eq!(sign_up(&server, "ann@example.com").status, 202);
    let verification = Mail::parse(&sink.next().data).token().expect("a token");
    secrets.push(verification.clone());
    // The page with the token in its address.
    assert_eq!(
        server
            .get(&format!("/verify?token={verification}"))
            .send()
            .status,
        200
    );
    assert_eq!(verify(&server, &verification, password).status, 200);
    // Failed logins with the password typed into the address field.
    assert_eq!(log_in(&server, password, password).status, 401);
    assert_eq!(
        log_in(&server, "ann@example.com", &format!("{password}!")).status,
        401
    );
    secrets.push(format!("{password}!"));

    let login = log_in(&server, "ann@example.com", password);
    assert_eq!(login.status, 200);
    let session = text(&login.json(), "/token");
    let csrf = text(&login.json(), "/csrf_token");
    secrets.extend([session.clone(), csrf.clone()]);

    let company = server.register_company(
        &session,
        &registration(&sign_licence(&licence("L-1")), "system-1", "company-1"),
    );
    let company_id = text(&company, "/id");
    let device = server.create_device(&session, &company_id, "pc-1");
    secrets.extend([device.access_token.clone(), device.refresh_token.clone()]);
    let rotated = server
        .post("/api/v1/devices/refresh")
        .json(&json!({ "refresh_token": device.refresh_token }))
        .send();
    let rotated = TestDevice::from_answer(&rotated.json());
    secrets.extend([rotated.access_token.clone(), rotated.refresh_token.clone()]);
    // Reuse (theft detection) logs a warning: without the token.
    let reused = server
        .post("/api/v1/devices/refresh")
        .json(&json!({ "refresh_token": device.refresh_token }))
        .send();
    assert_eq!(reused.status, 401);
    assert_eq!(
        server
            .get("/api/v1/devices/current")
            .bearer(&rotated.access_token)
            .send()
            .status,
        401
    );

    // Cookie-authenticated change without and with the CSRF token.
    let cookie = format!("od_session={session}");
    let refused = server
        .patch("/api/v1/me")
        .header("Cookie", &cookie)
        .json(&json!({ "name": "Ann" }))
        .send();
    assert_eq!(refused.status, 403);
    let renamed = server
        .patch("/api/v1/me")
        .header("Cookie", &cookie)
        .header("X-CSRF-Token", &csrf)
        .json(&json!({ "name": "Ann" }))
        .send();
    assert_eq!(renamed.status, 200);

    let change = server
        .post("/api/v1/me/password")
        .bearer(&session)
        .json(&json!({ "current_password": password, "new_password": new_password }))
        .send();
    assert_eq!(change.status, 204);
    server
        .post("/api/v1/accounts/password-reset")
        .json(&json!({ "email": "ann@example.com" }))
        .send();
    let reset = Mail::parse(&sink.next().data).token().expect("a token");
    secrets.push(reset.clone());
    let confirm = server
        .post("/api/v1/accounts/password-reset/confirm")
        .json(&json!({ "token": reset, "new_password": "the final password here" }))
        .send();
    assert_eq!(confirm.status, 204);
    secrets.push("the final password here".into());
    assert_eq!(
        server
            .delete("/api/v1/sessions/current")
            .bearer(&session)
            .send()
            .status,
        401
    );

    let logs = server.logs();
    assert!(logs.contains("logged in"), "the log has content: {logs}");
    assert!(logs.contains("DEBUG"), "debug level is captured: {logs}");
    for secret in &secrets {
        assert!(!secret.is_empty());
        assert!(
            !logs.contains(secret.as_str()),
            "a secret ({} characters) is in the log:\n{logs}",
            secret.len()
        );
    }
}
