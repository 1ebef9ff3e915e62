//! The first sync's two sides, real: the host through the data channel and
//! the online service through `od-client`.

use super::continuous::{Applied, HostApply, HostChanges, LogPage, Op, OutChange, SyncRemote};
use super::convert::Fields;
use super::first_sync::{HostRecords, OnlineRecord, Page, Remote};
use crate::host::{Host, HostError};
use od_client::{
    Change, ChangeOp, ChangesPage, Client, ClientError, DeviceSession, PushAnswer, PushMode,
    PushRequest, Uuid,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Deserialize)]
struct Position {
    seq: u64,
}

#[derive(Deserialize)]
struct Count {
    count: u64,
}

#[derive(Deserialize)]
struct HostPage {
    records: Vec<HostRecord>,
    done: bool,
}

#[derive(Deserialize)]
struct HostRecord {
    local_id: Value,
    fields: Fields,
    /// The global id the host remembers for a row it created from online.
    #[serde(default)]
    global_id: Option<String>,
}

impl HostRecords for Host {
    type Error = HostError;

    fn position(&self) -> Result<u64, HostError> {
        Ok(self
            .call::<_, Position>("changes.position", &json!({}))?
            .seq)
    }

    fn count(&self, entity: &str) -> Result<u64, HostError> {
        Ok(self
            .call::<_, Count>("records.count", &json!({ "entity": entity }))?
            .count)
    }

    fn page(&self, entity: &str, after: Option<&Value>, limit: usize) -> Result<Page, HostError> {
        let page: HostPage = self.call(
            "records.page",
            &json!({ "entity": entity, "after_local_id": after, "limit": limit }),
        )?;
        let mut remembered = std::collections::HashMap::new();
        let records = page
            .records
            .into_iter()
            .map(|r| {
                if let (Some(global_id), Some(key)) =
                    (r.global_id, super::convert::local_key(&r.local_id))
                {
                    remembered.insert(key, global_id);
                }
                (r.local_id, r.fields)
            })
            .collect();
        Ok(Page {
            records,
            done: page.done,
            remembered,
        })
    }
}

/// Why a batch did not reach the service.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Service(#[from] ClientError),
    #[error("the add-on's state holds an invalid record id \"{0}\"")]
    BadId(String),
}

/// The service, as the sync computer holding the lease `fencing`.
pub struct ServiceRemote<'a> {
    pub client: &'a Client,
    pub device: &'a DeviceSession,
    pub fencing: u64,
}

impl Remote for ServiceRemote<'_> {
    type Error = PushError;

    async fn push_initial(
        &self,
        key: &str,
        records: &[OnlineRecord],
        host_position: u64,
    ) -> Result<Vec<(String, u64)>, PushError> {
        let changes = records
            .iter()
            .map(|r| {
                let global_id = Uuid::parse_str(&r.global_id)
                    .map_err(|_| PushError::BadId(r.global_id.clone()))?;
                Ok(Change {
                    entity: r.entity.clone(),
                    global_id,
                    op: ChangeOp::Upsert,
                    base_version: None,
                    fields: r.fields.clone(),
                    changed: None,
                    host_key: Some(r.host_key.clone()),
                })
            })
            .collect::<Result<Vec<_>, PushError>>()?;
        let request = PushRequest {
            mode: PushMode::Initial,
            changes,
        };
        let answer = self
            .client
            .push_with_host_position(self.device, self.fencing, key, &request, host_position)
            .await?;
        Ok(answer
            .results
            .into_iter()
            .map(|r| (r.global_id.hyphenated().to_string(), r.version))
            .collect())
    }

    fn is_host_restored(error: &PushError) -> bool {
        is_host_restored(error)
    }
}

fn is_host_restored(error: &PushError) -> bool {
    matches!(error, PushError::Service(e) if e.is_host_restored())
}

#[derive(Deserialize)]
struct ApplyAnswer {
    results: Vec<Applied>,
}

impl HostChanges for Host {
    type Error = HostError;

    fn read_changes(&self, after: u64, limit: usize) -> Result<LogPage, HostError> {
        self.call("changes.read", &json!({ "after": after, "limit": limit }))
    }

    fn apply(&self, changes: &[HostApply]) -> Result<Vec<Applied>, HostError> {
        Ok(self
            .call::<_, ApplyAnswer>(
                "records.apply",
                &json!({ "changes": changes, "per_change": true }),
            )?
            .results)
    }
}

impl SyncRemote for ServiceRemote<'_> {
    type Error = PushError;

    async fn push_changes(
        &self,
        key: &str,
        changes: &[OutChange],
        host_position: u64,
    ) -> Result<PushAnswer, PushError> {
        let changes = changes
            .iter()
            .map(|c| {
                let global_id = Uuid::parse_str(&c.global_id)
                    .map_err(|_| PushError::BadId(c.global_id.clone()))?;
                Ok(Change {
                    entity: c.entity.clone(),
                    global_id,
                    op: match c.op {
                        Op::Upsert => ChangeOp::Upsert,
                        Op::Delete => ChangeOp::Delete,
                    },
                    base_version: c.base_version,
                    fields: c.fields.clone(),
                    changed: match c.op {
                        Op::Upsert => Some(c.changed.clone()),
                        Op::Delete => None,
                    },
                    host_key: Some(c.local_key.clone()),
                })
            })
            .collect::<Result<Vec<_>, PushError>>()?;
        let request = PushRequest {
            mode: PushMode::Incremental,
            changes,
        };
        Ok(self
            .client
            .push_with_host_position(self.device, self.fencing, key, &request, host_position)
            .await?)
    }

    fn is_host_restored(error: &PushError) -> bool {
        is_host_restored(error)
    }

    async fn changes(
        &self,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> Result<ChangesPage, PushError> {
        Ok(self.client.changes(self.device, after, limit, wait).await?)
    }

    async fn ack(&self, cursor: u64) -> Result<u64, PushError> {
        Ok(self.client.ack(self.device, self.fencing, cursor).await?)
    }
}

impl super::takeover::OnlineRecords for ServiceRemote<'_> {
    async fn records(
        &self,
        entity: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::takeover::OnlinePage, PushError> {
        let page = self
            .client
            .sync_records(self.device, entity, after, limit as u32)
            .await?;
        Ok(super::takeover::OnlinePage {
            records: page
                .records
                .into_iter()
                .map(|r| super::takeover::OnlineEntry {
                    global_id: r.global_id.hyphenated().to_string(),
                    host_key: r.host_key,
                    version: r.version,
                    deleted: r.deleted,
                    fields: r.fields,
                    web_fields: r
                        .web_fields
                        .into_iter()
                        .map(|(field, w)| {
                            let edit = super::takeover::WebEdit {
                                seq: w.seq,
                                version: w.version,
                            };
                            (field, edit)
                        })
                        .collect(),
                })
                .collect(),
            next: page.next,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The first sync end to end: a host answering through the data channel
    //! (in memory), the plugin's first sync, od-client, and the real online
    //! service (`od_online::testing::TestServer`).
    use super::*;
    use crate::host::HostChannel;
    use crate::sync::first_sync::{self, FirstSyncError};
    use crate::sync::schema::tests::sample;
    use crate::sync::state::State;
    use od_client::{ClientConfig, NewDevice, Secret, ServiceUrl, SessionToken};
    use od_online::testing::TestServer;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A host whose tables live in memory, answering the channel methods
    /// of the first sync with the shapes of docs/HOST_CHANNEL.md.
    struct MemoryHost {
        tables: BTreeMap<&'static str, BTreeMap<i64, Value>>,
    }

    impl MemoryHost {
        fn new(contacts: i64, persons: i64) -> MemoryHost {
            let mut tables = BTreeMap::new();
            tables.insert(
                "employees",
                (1..=3)
                    .map(|i| (i, json!({"name": format!("Employee {i}")})))
                    .collect(),
            );
            tables.insert(
                "contacts",
                (1..=contacts)
                    .map(|i| {
                        (i, json!({"number": 10_000 + i, "name": format!("Kunde {i} AS <b>"), "balance": i * 100, "salesperson_id": i % 3 + 1}))
                    })
                    .collect(),
            );
            tables.insert(
                "contact_persons",
                (1..=persons)
                    .map(|i| {
                        (
                            i,
                            json!({"contact_id": i % contacts + 1, "name": format!("Person {i}")}),
                        )
                    })
                    .collect(),
            );
            MemoryHost { tables }
        }

        fn answer(&self, method: &str, params: &Value) -> Value {
            let table = |p: &Value| &self.tables[p["entity"].as_str().unwrap_or_default()];
            match method {
                "changes.position" => json!({"seq": 7}),
                "records.count" => json!({"count": table(params).len()}),
                "records.page" => {
                    let after = params["after_local_id"].as_i64().unwrap_or(i64::MIN);
                    let limit = params["limit"].as_u64().unwrap_or(1000) as usize;
                    let rows: Vec<Value> = table(params)
                        .range(after.saturating_add(1)..)
                        .take(limit)
                        .map(|(id, fields)| json!({"local_id": id, "fields": fields}))
                        .collect();
                    let last = rows
                        .last()
                        .and_then(|r| r["local_id"].as_i64())
                        .unwrap_or(i64::MAX);
                    json!({"records": rows, "done": table(params).range(last.saturating_add(1)..).next().is_none()})
                }
                other => panic!("unexpected method {other}"),
            }
        }
    }

    impl HostChannel for MemoryHost {
        fn request(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, HostError> {
            let params: Value = serde_json::from_slice(params).unwrap_or(Value::Null);
            Ok(self.answer(method, &params).to_string().into_bytes())
        }
        fn request_pump(&self) {}
    }

    /// The service, failing the `fail_at`-th push as a dropped connection
    /// would (after the service committed it, the worst case).
    struct Flaky<'a> {
        inner: ServiceRemote<'a>,
        pushes: AtomicUsize,
        fail_at: usize,
    }

    impl Remote for Flaky<'_> {
        type Error = PushError;
        async fn push_initial(
            &self,
            key: &str,
            records: &[OnlineRecord],
            host_position: u64,
        ) -> Result<Vec<(String, u64)>, PushError> {
            let versions = self.inner.push_initial(key, records, host_position).await?;
            if self.pushes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
                return Err(PushError::BadId("simulated: the answer was lost".into()));
            }
            Ok(versions)
        }
    }

    #[test]
    fn the_first_sync_reaches_the_real_service_once_even_after_a_lost_answer() {
        let server = TestServer::start();
        let company = server.connected_company("kari@example.com", "L-1");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = Client::new(
                ServiceUrl::parse(server.base_url()).unwrap(),
                ClientConfig::default(),
            )
            .unwrap();
            let session = SessionToken(Secret::new(company.session.token.clone()));
            let company_id = Uuid::parse_str(&company.company_id).unwrap();
            let new = NewDevice {
                computer_id: "pc-1".into(),
                computer_name: "PC 1".into(),
            };
            let device = DeviceSession::new(
                client
                    .create_device(&session, company_id, &new)
                    .await
                    .unwrap(),
            );
            let lease = client.lease(&device, Some("pc-1")).await.unwrap();
            client
                .put_schema(&device, lease.fencing, &sample())
                .await
                .unwrap();

            let host = Host::new(Arc::new(MemoryHost::new(2_345, 1_001)));
            let dir = tempfile::tempdir().unwrap();
            let remote = ServiceRemote {
                client: &client,
                device: &device,
                fencing: lease.fencing,
            };
            {
                let mut state = State::open(dir.path()).unwrap();
                let flaky = Flaky {
                    inner: ServiceRemote { ..remote },
                    pushes: AtomicUsize::new(0),
                    fail_at: 2,
                };
                let failed = first_sync::run(
                    &sample(),
                    &host,
                    &flaky,
                    &mut state,
                    &AtomicBool::new(false),
                    |_| {},
                )
                .await;
                assert!(
                    matches!(failed, Err(FirstSyncError::Remote(_))),
                    "{failed:?}"
                );
            }
            // The program restarts: the state comes back from disk.
            let mut state = State::open(dir.path()).unwrap();
            let position = first_sync::run(
                &sample(),
                &host,
                &remote,
                &mut state,
                &AtomicBool::new(false),
                |_| {},
            )
            .await
            .unwrap();
            assert_eq!(position, 7);

            let status = client.sync_status(&device).await.unwrap();
            let counts: BTreeMap<String, u64> = status
                .entities
                .iter()
                .map(|e| (e.entity.clone(), e.records))
                .collect();
            assert_eq!(
                counts,
                BTreeMap::from([
                    ("contact_persons".into(), 1_001),
                    ("contacts".into(), 2_345),
                    ("employees".into(), 3)
                ]),
                "every record exactly once"
            );
            // The oracle (G3): the host's records, as they should be online,
            // hash to the same per-entity digests as the service's copy.
            let online: BTreeMap<String, (u64, String)> = client
                .checksum(&device)
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.entity, (c.count, c.sha256)))
                .collect();
            let local: BTreeMap<String, (u64, String)> =
                crate::sync::checksum::host_checksums(&sample(), &host, &state)
                    .into_iter()
                    .map(|(entity, d)| {
                        assert!(d.unsent.is_empty(), "{entity}: never sent: {:?}", d.unsent);
                        (entity, (d.count, d.sha256))
                    })
                    .collect();
            assert_eq!(local, online, "host and online copies differ");
            // Continuous sync starts from shadows at the service's versions.
            let contact = state.global_id("contacts", "1").unwrap().unwrap();
            let shadow = state
                .shadow("contacts", &contact)
                .unwrap()
                .expect("a shadow");
            assert!(shadow.version >= 1, "{shadow:?}");
        });
    }
}
