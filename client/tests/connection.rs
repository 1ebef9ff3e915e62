//! The connection's life through the client against the real online
//! service (`od-online`'s `TestServer`): disconnect and connect again,
//! undoing a registration never used, Update connection, and the host
//! marker of restore detection (docs/SYNC_PROTOCOL.md §9).

mod support;

use od_client::{
    Change, ChangeOp, Client, ClientError, DeviceSession, Fields, HostMarker, NewDevice, PushMode,
    PushRequest, Registration, RegistrationData, Schema, Secret, ServiceUrl, SessionToken,
};
use od_online::testing::{licence, sign_licence, TestServer, TEST_PASSWORD};
use serde_json::json;
use support::*;
use uuid::Uuid;

fn schema() -> Schema {
    serde_json::from_value(json!({"version": 1, "entities": [
        {"name": "contacts", "title": "Contacts", "fields": [
            {"name": "name", "type": "text", "required": true}
        ]}
    ]}))
    .unwrap()
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

fn contacts(count: usize) -> PushRequest {
    PushRequest {
        mode: PushMode::Initial,
        changes: (0..count)
            .map(|n| Change {
                entity: "contacts".into(),
                global_id: Uuid::from_u128(n as u128 + 1),
                op: ChangeOp::Upsert,
                base_version: None,
                fields: Fields::from([("name".into(), format!("Contact {n}").into())]),
                changed: None,
                host_key: None,
            })
            .collect(),
    }
}

struct Setup {
    server: TestServer,
    client: Client,
    session: SessionToken,
    company_id: Uuid,
}

/// A company registered by ann@example.com through the client (no device
/// yet).
async fn registered() -> Setup {
    let server = TestServer::start();
    let client = client(
        &ServiceUrl::parse(server.base_url()).unwrap(),
        retries(3),
        &FakeTimer::new(),
    );
    server.create_online_id("ann@example.com", TEST_PASSWORD);
    let session = client
        .log_in("ann@example.com", &Secret::new(TEST_PASSWORD))
        .await
        .unwrap()
        .token;
    let company = client
        .register_company(&session, &registration("L-1"))
        .await
        .unwrap()
        .company;
    assert!(company.connected && company.disconnected_at.is_none());
    Setup {
        server,
        client,
        session,
        company_id: company.id,
    }
}

impl Setup {
    async fn device(&self) -> DeviceSession {
        DeviceSession::new(
            self.client
                .create_device(&self.session, self.company_id, &this_computer())
                .await
                .unwrap(),
        )
    }

    /// Lease, schema and `count` contacts pushed from host position 7.
    async fn synchronise(&self, device: &DeviceSession, count: usize) -> u64 {
        let fencing = self.client.lease(device, None).await.unwrap().fencing;
        self.client
            .put_schema(device, fencing, &schema())
            .await
            .unwrap();
        self.client
            .push_with_host_position(device, fencing, "first:contacts", &contacts(count), 7)
            .await
            .unwrap();
        fencing
    }

    async fn other_online_id(&self, email: &str) -> SessionToken {
        self.server.create_online_id(email, TEST_PASSWORD);
        self.client
            .log_in(email, &Secret::new(TEST_PASSWORD))
            .await
            .unwrap()
            .token
    }
}

#[tokio::test]
async fn disconnect_then_connect_again_through_the_client() {
    let setup = registered().await;
    let client = &setup.client;
    let device = setup.device().await;
    setup.synchronise(&device, 3).await;

    // Someone else cannot; the company does not exist for them.
    let eve = setup.other_online_id("eve@example.com").await;
    let refused = client
        .disconnect_company(&eve, setup.company_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("not_found"));

    let done = client
        .disconnect_company(&setup.session, setup.company_id)
        .await
        .unwrap();
    assert_eq!(done.company_id, setup.company_id);
    assert_eq!((done.records_deleted, done.devices_revoked), (3, 1));
    let again = client
        .disconnect_company(&setup.session, setup.company_id)
        .await
        .unwrap();
    assert_eq!(again.disconnected_at, done.disconnected_at);
    assert_eq!((again.records_deleted, again.devices_revoked), (0, 0));

    let company = client
        .company(&setup.session, setup.company_id)
        .await
        .unwrap();
    assert!(!company.connected);
    assert_eq!(company.disconnected_at, Some(done.disconnected_at));
    // The device's credentials no longer work: log in again.
    assert!(matches!(
        client.sync_status(&device).await.unwrap_err(),
        ClientError::Auth { .. }
    ));
    // No device until the company is connected again.
    let refused = client
        .create_device(&setup.session, setup.company_id, &this_computer())
        .await
        .unwrap_err();
    assert!(refused.is_company_not_connected(), "{refused:?}");
    assert!(
        refused.to_string().contains("Connect it again"),
        "{refused}"
    );

    let registered = client
        .register_company(&setup.session, &registration("L-1"))
        .await
        .unwrap();
    assert!(!registered.created && registered.company.connected);
    let device = setup.device().await;
    setup.synchronise(&device, 2).await;
    let status = client.sync_status(&device).await.unwrap();
    assert_eq!(status.entities[0].records, 2);
    assert_eq!(status.host.position, Some(7));
}

#[tokio::test]
async fn a_registration_never_used_is_undone() {
    let setup = registered().await;
    let client = &setup.client;
    // The device was made, then the wizard's finish failed.
    let device = setup.device().await;
    client
        .unregister_company(&setup.session, setup.company_id)
        .await
        .unwrap();
    assert!(client.companies(&setup.session).await.unwrap().is_empty());
    assert!(matches!(
        client.current_device(&device).await.unwrap_err(),
        ClientError::Auth { .. }
    ));
    // Asking again (an answer lost on the way): nothing left, done.
    client
        .unregister_company(&setup.session, setup.company_id)
        .await
        .unwrap();
    // The licence is free again.
    assert!(
        client
            .register_company(&setup.session, &registration("L-1"))
            .await
            .unwrap()
            .created
    );
}

#[tokio::test]
async fn a_company_that_was_used_is_disconnected_not_unregistered() {
    let setup = registered().await;
    let device = setup.device().await;
    setup.synchronise(&device, 1).await;
    let refused = setup
        .client
        .unregister_company(&setup.session, setup.company_id)
        .await
        .unwrap_err();
    assert!(refused.is_company_in_use(), "{refused:?}");
    assert_eq!(refused.status_code(), od_abi::OD_RESULT_SERVICE_REFUSED);
}

#[tokio::test]
async fn update_connection_gives_the_same_computer_a_new_device_that_goes_on() {
    let setup = registered().await;
    let client = &setup.client;
    let old = setup.device().await;
    let fencing = setup.synchronise(&old, 2).await;
    let sequence = client.sync_status(&old).await.unwrap().sequence;
    client.ack(&old, fencing, sequence).await.unwrap();

    // A new login (the password was changed elsewhere), the same computer.
    let session = client
        .log_in("ann@example.com", &Secret::new(TEST_PASSWORD))
        .await
        .unwrap()
        .token;
    let new = DeviceSession::new(
        client
            .create_device(&session, setup.company_id, &this_computer())
            .await
            .unwrap(),
    );
    assert!(matches!(
        client.current_device(&old).await.unwrap_err(),
        ClientError::Auth { .. }
    ));
    assert_eq!(client.lease(&new, None).await.unwrap().fencing, fencing);
    let status = client.sync_status(&new).await.unwrap();
    assert_eq!(status.acknowledged, sequence);
    let page = client
        .changes(&new, 0, 100, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(page.changes.is_empty(), "its own pushes: {page:?}");
}

#[tokio::test]
async fn the_host_marker_travels_and_a_restored_host_is_refused() {
    let setup = registered().await;
    let client = &setup.client;
    let device = setup.device().await;
    let fencing = setup.synchronise(&device, 1).await;
    assert_eq!(
        client.sync_status(&device).await.unwrap().host,
        HostMarker {
            position: Some(7),
            generation: None
        }
    );

    // The host's change log went back: refused, nothing applied.
    let refused = client
        .push_with_host_position(&device, fencing, "inc:1", &contacts(2), 3)
        .await
        .unwrap_err();
    assert!(refused.is_host_restored(), "{refused:?}");
    assert_eq!(refused.status_code(), od_abi::OD_RESULT_SERVICE_REFUSED);
    assert_eq!(
        client.sync_status(&device).await.unwrap().entities[0].records,
        1
    );

    // Update connection reconciled both sides: a new marker.
    let marker = HostMarker {
        position: Some(3),
        generation: Some("0196f2a4-generation-2".into()),
    };
    assert_eq!(
        client
            .set_host_marker(&device, fencing, &marker)
            .await
            .unwrap(),
        marker
    );
    client
        .push_with_host_position(&device, fencing, "inc:1", &contacts(2), 3)
        .await
        .unwrap();
    assert_eq!(client.sync_status(&device).await.unwrap().host, marker);
    let stale = client
        .set_host_marker(&device, fencing + 1, &marker)
        .await
        .unwrap_err();
    assert!(stale.is_stale_fencing(), "{stale:?}");
}

#[tokio::test]
async fn change_user_makes_the_new_online_id_connected_by_with_the_devices_proof() {
    let setup = registered().await;
    let client = &setup.client;
    let device = setup.device().await;
    setup.synchronise(&device, 2).await;
    let access = device.credentials().await.access_token;
    let bob = setup.other_online_id("bob@example.com").await;

    // Without the sync computer's proof: refused, nothing changes.
    let refused = client
        .change_connected_by(&bob, setup.company_id, &Secret::new("oda_nothing"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"), "{refused:?}");

    let company = client
        .change_connected_by(&bob, setup.company_id, &access)
        .await
        .unwrap();
    assert_eq!(company.connected_by.email, "bob@example.com");
    assert!(company.connected);
    // The same again changes nothing.
    let again = client
        .change_connected_by(&bob, setup.company_id, &access)
        .await
        .unwrap();
    assert_eq!(again.connected_by.email, "bob@example.com");

    // Ann may no longer disconnect; synchronisation goes on.
    let refused = client
        .disconnect_company(&setup.session, setup.company_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"));
    assert_eq!(
        client.sync_status(&device).await.unwrap().entities[0].records,
        2
    );
    // Bob may.
    let done = client
        .disconnect_company(&bob, setup.company_id)
        .await
        .unwrap();
    assert_eq!(done.devices_revoked, 1);
}

#[tokio::test]
async fn moving_the_sync_computer_ends_the_old_lease_at_once() {
    let setup = registered().await;
    let client = &setup.client;
    let device = setup.device().await;
    let fencing = setup.synchronise(&device, 2).await;
    let other = client
        .create_device(
            &setup.session,
            setup.company_id,
            &NewDevice {
                computer_id: "pc-2".into(),
                computer_name: "Back office".into(),
            },
        )
        .await
        .unwrap();
    let other = DeviceSession::new(other);
    // pc-2 is refused while pc-1 is the sync computer.
    assert!(client.lease(&other, None).await.is_err());

    // Someone who is not a super user of the company cannot move it.
    let eve = setup.other_online_id("eve@example.com").await;
    assert!(client
        .move_sync_computer(&eve, setup.company_id, Some("pc-2"))
        .await
        .is_err());
    let moved = client
        .move_sync_computer(&setup.session, setup.company_id, Some("pc-2"))
        .await
        .unwrap();
    assert_eq!(moved.computer_id.as_deref(), Some("pc-2"));
    assert!(moved.fencing > fencing);
    // The old holder is refused; the new one gets the lease.
    assert!(client.lease(&device, None).await.is_err());
    let lease = client.lease(&other, None).await.unwrap();
    assert_eq!(lease.computer_id, "pc-2");
    // Moving again to the same computer is harmless.
    let again = client
        .move_sync_computer(&setup.session, setup.company_id, Some("pc-2"))
        .await
        .unwrap();
    assert_eq!(again.computer_id.as_deref(), Some("pc-2"));
}

#[tokio::test]
async fn an_old_login_must_log_in_again_before_disconnecting() {
    let setup = registered().await;
    let client = &setup.client;
    setup
        .server
        .clock()
        .advance(od_online::api::RECENT_LOGIN + chrono::Duration::seconds(1));
    let refused = client
        .disconnect_company(&setup.session, setup.company_id)
        .await
        .unwrap_err();
    assert!(refused.is_reauthentication_required(), "{refused:?}");
    assert_eq!(refused.code(), Some("reauthentication_required"));
    assert_eq!(refused.status_code(), od_abi::OD_RESULT_SERVICE_AUTH);
    assert!(refused.to_string().contains("log in again"), "{refused}");
    let refused = client
        .create_device(&setup.session, setup.company_id, &this_computer())
        .await
        .unwrap_err();
    assert!(refused.is_reauthentication_required(), "{refused:?}");
    // The session is still good for the rest, and nothing changed.
    let company = client
        .company(&setup.session, setup.company_id)
        .await
        .unwrap();
    assert!(company.connected);

    let fresh = client
        .log_in("ann@example.com", &Secret::new(TEST_PASSWORD))
        .await
        .unwrap()
        .token;
    let done = client
        .disconnect_company(&fresh, setup.company_id)
        .await
        .unwrap();
    assert_eq!(done.company_id, setup.company_id);
}
