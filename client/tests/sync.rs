//! Synchronisation as the sync computer against the real online service
//! (`od-online`'s `TestServer`): lease and fencing, schema, push (gzip,
//! idempotent, conflicts), long-poll pull with echo suppression, ack,
//! status, checksum, the records download of a computer taking over — and
//! a push whose answer is lost after the service committed it.

mod support;

use od_client::{
    Change, ChangeOp, Client, DeviceSession, EntityChecksum, Fields, NewDevice, PushMode,
    PushRequest, RetryPolicy, Schema, Secret, ServiceUrl, SessionToken,
};
use od_online::testing::{TestCompany, TestServer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

fn schema() -> Schema {
    serde_json::from_value(json!({"version": 1, "entities": [
        {"name": "contacts", "title": "Contacts", "parent": null, "fields": [
            {"name": "number", "type": "integer", "required": true, "online": "read_only",
             "direction": "host_to_online", "assigned_by_host": true},
            {"name": "name", "type": "text", "required": true},
            {"name": "city", "type": "text"},
            {"name": "parent_id", "type": "reference", "entity": "contacts"}
        ]},
        {"name": "products", "title": "Products", "online_create": false, "fields": [
            {"name": "name", "type": "text", "required": true, "online": "read_only",
             "direction": "host_to_online"}
        ]}
    ]}))
    .unwrap()
}

/// A connected company, this computer (`pc-1`) as its device, the client.
struct Setup {
    server: TestServer,
    client: Client,
    company: TestCompany,
    session: SessionToken,
    device: DeviceSession,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with_client(|url| client(url, retries(3), &FakeTimer::new())).await
    }

    async fn with_client(make: impl FnOnce(&ServiceUrl) -> Client) -> Setup {
        let server = TestServer::start();
        let client = make(&ServiceUrl::parse(server.base_url()).unwrap());
        let company = server.connected_company("kari@example.com", "L-1");
        let session = SessionToken(Secret::new(company.session.token.clone()));
        let device = DeviceSession::new(
            client
                .create_device(&session, company_id(&company), &computer("pc-1"))
                .await
                .unwrap(),
        );
        Setup {
            server,
            client,
            company,
            session,
            device,
        }
    }

    /// Takes the lease and stores the schema; the fencing number.
    async fn ready(&self) -> u64 {
        let lease = self.client.lease(&self.device, Some("pc-1")).await.unwrap();
        self.client
            .put_schema(&self.device, lease.fencing, &schema())
            .await
            .unwrap();
        lease.fencing
    }

    async fn other_device(&self, computer_id: &str) -> DeviceSession {
        DeviceSession::new(
            self.client
                .create_device(
                    &self.session,
                    company_id(&self.company),
                    &computer(computer_id),
                )
                .await
                .unwrap(),
        )
    }

    fn records_path(&self, id: Uuid) -> String {
        format!(
            "/api/v1/companies/{}/records/contacts/{id}",
            self.company.company_id
        )
    }

    /// A web user's edit through the records API; the record as answered.
    fn web_edit(&self, id: Uuid, fields: Value) -> Value {
        let answer = self
            .server
            .patch(&self.records_path(id))
            .bearer(&self.company.session.token)
            .json(&json!({ "fields": fields }))
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    }

    fn web_get(&self, id: Uuid) -> Value {
        let answer = self
            .server
            .get(&self.records_path(id))
            .bearer(&self.company.session.token)
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json()
    }

    fn move_sync_to(&self, computer_id: &str) {
        let answer = self
            .server
            .post(&format!(
                "/api/v1/companies/{}/sync-computer",
                self.company.company_id
            ))
            .bearer(&self.company.session.token)
            .json(&json!({ "computer_id": computer_id }))
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
}

fn company_id(company: &TestCompany) -> Uuid {
    company.company_id.parse().unwrap()
}

fn computer(id: &str) -> NewDevice {
    NewDevice {
        computer_id: id.into(),
        computer_name: id.into(),
    }
}

fn ids(count: usize) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    ids.sort();
    ids
}

fn fields(value: Value) -> Fields {
    serde_json::from_value(value).unwrap()
}

fn contact(id: Uuid, n: usize) -> Change {
    Change {
        entity: "contacts".into(),
        global_id: id,
        op: ChangeOp::Upsert,
        base_version: None,
        fields: fields(
            json!({"number": 10000 + n, "name": format!("Contact {n}"), "city": "Oslo"}),
        ),
        changed: None,
        host_key: Some(n.to_string()),
    }
}

fn initial(ids: &[Uuid]) -> PushRequest {
    PushRequest {
        mode: PushMode::Initial,
        changes: ids
            .iter()
            .enumerate()
            .map(|(n, id)| contact(*id, n))
            .collect(),
    }
}

#[tokio::test]
async fn the_lease_is_acquired_renewed_and_held_by_one_computer() {
    let setup = Setup::new().await;
    let lease = setup
        .client
        .lease(&setup.device, Some("pc-1"))
        .await
        .unwrap();
    assert_eq!(lease.computer_id, "pc-1");
    assert!(lease.expires_at > chrono::Utc::now() - chrono::Duration::seconds(5));
    let renewed = setup.client.lease(&setup.device, None).await.unwrap();
    assert_eq!(renewed.fencing, lease.fencing, "renewing keeps the number");

    let other = setup.other_device("pc-2").await;
    let error = setup.client.lease(&other, Some("pc-2")).await.unwrap_err();
    assert!(error.is_lease_held(), "{error:?}");
    assert!(!error.is_stale_fencing());
    assert_eq!(error.status_code(), od_abi::OD_RESULT_SERVICE_REFUSED);

    let status = setup.client.sync_status(&setup.device).await.unwrap();
    assert_eq!(status.lease.computer_id.as_deref(), Some("pc-1"));
    assert_eq!(status.lease.fencing, lease.fencing);
    assert!(!status.schema);
}

#[tokio::test]
async fn the_schema_is_stored_and_read_back() {
    let setup = Setup::new().await;
    let error = setup.client.schema(&setup.device).await.unwrap_err();
    assert!(error.is_schema_missing(), "{error:?}");
    let lease = setup.client.lease(&setup.device, None).await.unwrap();
    let stored = setup
        .client
        .put_schema(&setup.device, lease.fencing, &schema())
        .await
        .unwrap();
    assert_eq!((stored.version, stored.entities), (1, 2));
    assert_eq!(setup.client.schema(&setup.device).await.unwrap(), schema());
    assert!(
        setup
            .client
            .sync_status(&setup.device)
            .await
            .unwrap()
            .schema
    );
}

#[tokio::test]
async fn an_initial_batch_of_a_thousand_is_applied_once_per_key() {
    let setup = Setup::new().await;
    let fencing = setup.ready().await;
    assert_eq!(setup.client.checksum(&setup.device).await.unwrap(), vec![]);
    let ids = ids(1000);
    let batch = initial(&ids);
    let answer = setup
        .client
        .push(&setup.device, fencing, "contacts:first-last", &batch)
        .await
        .unwrap();
    assert_eq!(answer.results.len(), 1000);
    assert!(answer.conflicts.is_empty());
    assert_eq!(answer.cursor, 1000);
    assert!(answer
        .results
        .iter()
        .zip(&ids)
        .all(|(result, id)| result.global_id == *id && result.version == 1 && !result.deleted));

    // The same key again: the stored answer, nothing applied.
    let again = setup
        .client
        .push(&setup.device, fencing, "contacts:first-last", &batch)
        .await
        .unwrap();
    assert_eq!(again, answer);
    let status = setup.client.sync_status(&setup.device).await.unwrap();
    assert_eq!(status.sequence, 1000);
    assert_eq!(status.entities.len(), 1);
    assert_eq!(
        (status.entities[0].records, status.entities[0].deleted),
        (1000, 0)
    );
    let checksum = setup.client.checksum(&setup.device).await.unwrap();
    assert_eq!(checksum.len(), 1);
    assert_eq!(
        (checksum[0].entity.as_str(), checksum[0].count),
        ("contacts", 1000)
    );
    assert_eq!(checksum[0].sha256.len(), 64);
}

#[tokio::test]
async fn an_incremental_push_over_a_web_edit_reports_the_conflict_and_the_host_wins() {
    let setup = Setup::new().await;
    let fencing = setup.ready().await;
    let id = Uuid::new_v4();
    let first = setup
        .client
        .push(&setup.device, fencing, "init", &initial(&[id]))
        .await
        .unwrap();
    assert_eq!(first.results[0].version, 1);
    let edited = setup.web_edit(id, json!({"name": "Web name"}));
    assert_eq!(edited["version"], 2);

    let change = Change {
        base_version: Some(1),
        fields: fields(json!({"name": "Host name"})),
        changed: Some(vec!["name".into()]),
        ..contact(id, 0)
    };
    let answer = setup
        .client
        .push(
            &setup.device,
            fencing,
            "incremental-1",
            &PushRequest {
                mode: PushMode::Incremental,
                changes: vec![change],
            },
        )
        .await
        .unwrap();
    assert_eq!(answer.conflicts.len(), 1, "{answer:?}");
    let conflict = &answer.conflicts[0];
    assert_eq!(
        (
            conflict.entity.as_str(),
            conflict.global_id,
            conflict.field.as_str()
        ),
        ("contacts", id, "name")
    );
    assert_eq!(conflict.host_value, json!("Host name"));
    assert_eq!(conflict.online_value, json!("Web name"));
    assert_eq!(conflict.outcome, "host_wins");
    assert_eq!(answer.results[0].version, 3);
    let record = setup.web_get(id);
    assert_eq!(record["fields"]["name"], "Host name");
    assert_eq!(record["fields"]["city"], "Oslo", "other fields untouched");
}

#[tokio::test]
async fn a_long_poll_wakes_on_a_web_edit_without_echoing_own_pushes_and_is_acknowledged() {
    let setup = Setup::new().await;
    let fencing = setup.ready().await;
    let ids = ids(3);
    setup
        .client
        .push(&setup.device, fencing, "init", &initial(&ids))
        .await
        .unwrap();
    // Only this device's pushes so far: nothing to pull, the cursor passes them.
    let page = setup
        .client
        .changes(&setup.device, 0, 1000, Duration::ZERO)
        .await
        .unwrap();
    assert!(page.changes.is_empty(), "no echo: {page:?}");
    assert_eq!(page.cursor, 3);

    // A web edit while the long poll waits (if it lands before the poll
    // starts, the poll answers at once — either way it must bring it).
    let edit = setup
        .server
        .patch(&setup.records_path(ids[1]))
        .bearer(&setup.company.session.token)
        .json(&json!({"fields": {"city": "Bergen"}}));
    let editor = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        edit.send().status
    });
    let started = Instant::now();
    let page = tokio::time::timeout(
        PATIENCE,
        setup
            .client
            .changes(&setup.device, page.cursor, 1000, Duration::from_secs(25)),
    )
    .await
    .expect("the long poll ends")
    .unwrap();
    assert_eq!(editor.join().unwrap(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "woken, not timed out"
    );
    assert_eq!(page.changes.len(), 1, "{page:?}");
    let change = &page.changes[0];
    assert_eq!((change.global_id, change.version), (ids[1], 2));
    assert_eq!(change.fields["city"], json!("Bergen"));
    assert_eq!(
        change.fields["name"],
        json!("Contact 1"),
        "the whole record"
    );
    assert!(!change.deleted);
    assert_eq!(page.cursor, change.seq);
    assert_eq!(page.cursor, 4);

    assert_eq!(
        setup
            .client
            .ack(&setup.device, fencing, page.cursor)
            .await
            .unwrap(),
        4
    );
    // It never goes back.
    assert_eq!(
        setup.client.ack(&setup.device, fencing, 1).await.unwrap(),
        4
    );
    let status = setup.client.sync_status(&setup.device).await.unwrap();
    assert_eq!((status.sequence, status.acknowledged), (4, 4));
}

#[tokio::test]
async fn a_long_poll_is_not_cut_off_by_the_normal_request_timeout() {
    let setup = Setup::with_client(|url| {
        let config = od_client::ClientConfig {
            request_timeout: Duration::from_secs(1),
            retry: RetryPolicy::none(),
            ..od_client::ClientConfig::default()
        };
        Client::new(url.clone(), config).unwrap()
    })
    .await;
    setup.ready().await;
    let started = Instant::now();
    let page = setup
        .client
        .changes(&setup.device, 0, 10, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(page.changes.is_empty());
    assert_eq!(page.cursor, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "waited: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_checksum_follows_pushes() {
    let setup = Setup::new().await;
    let fencing = setup.ready().await;
    let ids = ids(10);
    setup
        .client
        .push(&setup.device, fencing, "init", &initial(&ids))
        .await
        .unwrap();
    let before: Vec<EntityChecksum> = setup.client.checksum(&setup.device).await.unwrap();
    assert_eq!(before[0].count, 10);
    let change = Change {
        base_version: Some(1),
        fields: fields(json!({"city": "Tromsø"})),
        changed: None,
        ..contact(ids[4], 4)
    };
    let delete = Change {
        op: ChangeOp::Delete,
        base_version: Some(1),
        fields: Fields::new(),
        ..contact(ids[5], 5)
    };
    let answer = setup
        .client
        .push(
            &setup.device,
            fencing,
            "edit-and-delete",
            &PushRequest {
                mode: PushMode::Incremental,
                changes: vec![change, delete],
            },
        )
        .await
        .unwrap();
    assert!(answer.results[1].deleted);
    let after = setup.client.checksum(&setup.device).await.unwrap();
    assert_eq!(after[0].count, 9);
    assert_ne!(after[0].sha256, before[0].sha256);
    let status = setup.client.sync_status(&setup.device).await.unwrap();
    assert_eq!(
        (status.entities[0].records, status.entities[0].deleted),
        (9, 1),
        "live records and tombstones"
    );
}

#[tokio::test]
async fn moving_synchronisation_makes_the_old_fencing_stale_at_once() {
    let setup = Setup::new().await;
    let fencing = setup.ready().await;
    let other = setup.other_device("pc-2").await;
    setup.move_sync_to("pc-2");

    let empty = PushRequest {
        mode: PushMode::Incremental,
        changes: vec![],
    };
    let error = setup
        .client
        .push(&setup.device, fencing, "after-move", &empty)
        .await
        .unwrap_err();
    assert!(error.is_stale_fencing(), "{error:?}");
    let error = setup
        .client
        .ack(&setup.device, fencing, 0)
        .await
        .unwrap_err();
    assert!(error.is_stale_fencing(), "{error:?}");
    let error = setup
        .client
        .put_schema(&setup.device, fencing, &schema())
        .await
        .unwrap_err();
    assert!(error.is_stale_fencing(), "{error:?}");
    let error = setup.client.lease(&setup.device, None).await.unwrap_err();
    assert!(error.is_lease_held(), "{error:?}");

    let lease = setup.client.lease(&other, None).await.unwrap();
    assert_eq!(lease.computer_id, "pc-2");
    assert!(lease.fencing > fencing);
    setup
        .client
        .push(&other, lease.fencing, "from-pc-2", &empty)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_computer_taking_over_downloads_the_records_with_their_host_keys() {
    let setup = Setup::new().await;
    let fencing = setup.ready().await;
    let ids = ids(5);
    setup
        .client
        .push(&setup.device, fencing, "init", &initial(&ids))
        .await
        .unwrap();
    // The host deletes one; a web user edits another.
    let delete = Change {
        entity: "contacts".into(),
        global_id: ids[4],
        op: ChangeOp::Delete,
        base_version: Some(1),
        fields: Fields::new(),
        changed: None,
        host_key: None,
    };
    setup
        .client
        .push(
            &setup.device,
            fencing,
            "delete",
            &PushRequest {
                mode: PushMode::Incremental,
                changes: vec![delete],
            },
        )
        .await
        .unwrap();
    setup.web_edit(ids[1], json!({"city": "Ålesund"}));
    setup.client.ack(&setup.device, fencing, 7).await.unwrap();

    // pc-2 takes over.
    let other = setup.other_device("pc-2").await;
    setup.move_sync_to("pc-2");
    let status = setup.client.sync_status(&other).await.unwrap();
    assert_eq!(status.acknowledged, 0);
    assert_eq!(status.last_acknowledged, 7);

    let mut records = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = setup
            .client
            .sync_records(&other, "contacts", after.as_deref(), 2)
            .await
            .unwrap();
        pages += 1;
        assert!(page.records.len() <= 2);
        records.extend(page.records);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        records
            .iter()
            .map(|record| record.global_id)
            .collect::<Vec<_>>(),
        ids
    );
    for (n, record) in records.iter().enumerate() {
        assert_eq!(record.host_key.as_deref(), Some(n.to_string().as_str()));
    }
    assert!(records[4].deleted);
    assert_eq!(records[4].version, 2);
    assert_eq!(records[1].fields["city"], json!("Ålesund"));
    assert_eq!(
        records[1].web_fields,
        std::collections::BTreeMap::from([(
            "city".to_owned(),
            od_client::WebChange { seq: 7, version: 2 }
        )])
    );
    // The alias the plugin uses names the same type.
    let _: &od_client::OnlineRecord = &records[0];
    assert!(records[0].web_fields.is_empty());

    let error = setup
        .client
        .sync_records(&other, "nope", None, 10)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("invalid_request"), "{error:?}");
}

/// Forwards connections to `upstream`; the first one's request goes
/// through, but once the service starts answering (it has committed) the
/// connection is closed without passing the answer on. Later connections
/// are forwarded both ways.
struct CutFirstAnswer {
    url: ServiceUrl,
    connections: Arc<AtomicUsize>,
    first_request_head: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl CutFirstAnswer {
    async fn start(upstream: std::net::SocketAddr) -> CutFirstAnswer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = ServiceUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let first_request_head = Arc::new(Mutex::new(String::new()));
        let task = tokio::spawn({
            let connections = Arc::clone(&connections);
            let head = Arc::clone(&first_request_head);
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                while let Ok((mut near, _)) = listener.accept().await {
                    let n = connections.fetch_add(1, Ordering::SeqCst);
                    let head = Arc::clone(&head);
                    tasks.spawn(async move {
                        let mut far = TcpStream::connect(upstream).await.unwrap();
                        if n > 0 {
                            let _ = tokio::io::copy_bidirectional(&mut near, &mut far).await;
                            return;
                        }
                        let request = read_request(&mut near).await;
                        let end = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                        *head.lock().unwrap() = String::from_utf8_lossy(&request[..end]).into();
                        far.write_all(&request).await.unwrap();
                        let mut first = [0u8; 1];
                        let _ = far.read(&mut first).await;
                        // Dropping both ends: the client sees the connection
                        // close before any answer.
                    });
                }
            }
        });
        CutFirstAnswer {
            url,
            connections,
            first_request_head,
            task,
        }
    }
}

impl Drop for CutFirstAnswer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One whole HTTP/1.1 request with a `Content-Length` body.
async fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..at]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if buffer.len() >= at + 4 + length {
                return buffer;
            }
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the request was cut short");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_push_whose_answer_is_lost_after_the_commit_is_retried_and_applied_once() {
    let setup = Setup::new().await;
    let fencing = setup.ready().await;
    let proxy = CutFirstAnswer::start(setup.server.addr()).await;
    let timer = FakeTimer::new();
    let through_proxy = client(&proxy.url, retries(3), &timer);

    let ids = ids(500);
    let answer = through_proxy
        .push(
            &setup.device,
            fencing,
            "contacts:lost-answer",
            &initial(&ids),
        )
        .await
        .unwrap();
    assert_eq!(proxy.connections.load(Ordering::SeqCst), 2, "sent twice");
    assert_eq!(timer.sleeps().len(), 1, "one retry after a backoff");
    let head = proxy
        .first_request_head
        .lock()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        head.contains("idempotency-key: contacts:lost-answer"),
        "{head}"
    );

    // The second attempt got the answer stored with the first one's data.
    assert_eq!(answer.results.len(), 500);
    assert!(answer.results.iter().all(|result| result.version == 1));
    assert_eq!(answer.cursor, 500);
    let status = setup.client.sync_status(&setup.device).await.unwrap();
    assert_eq!(status.sequence, 500, "applied once");
    assert_eq!(status.entities[0].records, 500);
    assert!(
        setup.server.logs().contains("push repeated"),
        "the service replayed the stored answer"
    );
}
