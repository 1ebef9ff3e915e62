//! The committed OpenAPI description is the one the code generates.

use std::path::Path;

use od_online::testing::TestServer;

#[test]
fn the_committed_openapi_description_is_current() {
    let generated = od_online::api::openapi_text();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
    if std::env::var_os("OD_WRITE_OPENAPI").is_some_and(|value| value == "1") {
        std::fs::write(&path, &generated).expect("write online/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "online/openapi.json differs from what the code generates. Regenerate it with\n    \
         OD_WRITE_OPENAPI=1 cargo test -p od-online --test service openapi\nand commit it."
    );

    let server = TestServer::start();
    let served = server.get("/api/v1/openapi.json").send();
    assert_eq!(served.status, 200);
    assert_eq!(
        served.json(),
        serde_json::from_str::<serde_json::Value>(&generated).expect("JSON")
    );
}

#[test]
fn the_description_covers_every_endpoint_of_the_contract() {
    let description: serde_json::Value =
        serde_json::from_str(&od_online::api::openapi_text()).expect("JSON");
    let expected = [
        ("get", "/api/v1/health"),
        ("post", "/api/v1/accounts"),
        ("post", "/api/v1/accounts/verify"),
        ("post", "/api/v1/sessions"),
        ("delete", "/api/v1/sessions/current"),
        ("get", "/api/v1/me"),
        ("patch", "/api/v1/me"),
        ("post", "/api/v1/me/password"),
        ("post", "/api/v1/accounts/password-reset"),
        ("post", "/api/v1/accounts/password-reset/confirm"),
        ("post", "/api/v1/companies"),
        ("get", "/api/v1/companies"),
        ("get", "/api/v1/companies/{id}"),
        ("delete", "/api/v1/companies/{id}"),
        ("post", "/api/v1/companies/{id}/disconnect"),
        ("post", "/api/v1/companies/{id}/devices"),
        ("post", "/api/v1/devices/refresh"),
        ("get", "/api/v1/devices/current"),
        ("delete", "/api/v1/devices/current"),
        ("get", "/api/v1/companies/{id}/devices"),
        ("delete", "/api/v1/companies/{id}/devices/{device_id}"),
        ("put", "/api/v1/sync/schema"),
        ("post", "/api/v1/sync/lease"),
        ("post", "/api/v1/sync/push"),
        ("get", "/api/v1/sync/changes"),
        ("post", "/api/v1/sync/ack"),
        ("get", "/api/v1/sync/status"),
        ("get", "/api/v1/sync/checksum"),
        ("get", "/api/v1/sync/records"),
        ("put", "/api/v1/sync/host"),
        ("post", "/api/v1/companies/{id}/sync-computer"),
        ("get", "/api/v1/companies/{id}/sync/conflicts"),
        ("get", "/api/v1/companies/{id}/records/{entity}"),
        ("post", "/api/v1/companies/{id}/records/{entity}"),
        ("get", "/api/v1/companies/{id}/records/{entity}/{global_id}"),
        (
            "patch",
            "/api/v1/companies/{id}/records/{entity}/{global_id}",
        ),
        (
            "delete",
            "/api/v1/companies/{id}/records/{entity}/{global_id}",
        ),
    ];
    for (method, path) in expected {
        assert!(
            description["paths"][path][method].is_object(),
            "{method} {path} is not described"
        );
    }
    let mut operation_ids: Vec<&str> = description["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|methods| methods.as_object().expect("methods").values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let count = operation_ids.len();
    operation_ids.sort_unstable();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), count, "operation ids are unique");
    let codes = description["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("the error codes");
    for code in [
        "invalid_credentials",
        "licence_in_use",
        "body_too_large",
        "token_invalid",
        "company_not_connected",
        "company_in_use",
        "host_restored",
    ] {
        assert!(codes.iter().any(|c| c == code), "{code}");
    }
}
