//! The first full synchronisation (docs/SYNC_PROTOCOL.md §6): every record
//! of every declared entity, in travel order and key order, in batches.
//!
//! Resumable by construction: before a batch is sent, the global ids it
//! uses are committed to the state database, so a batch sent again after a
//! crash carries the same ids and the same idempotency key, and the service
//! applies it once. After the service acknowledged a batch, the position
//! (the last local id) is committed. A restart therefore sends again at most
//! the batch that was in flight.

use super::convert::{self, Fields};
use super::schema::Schema;
use super::state::{State, StateError};
use serde_json::Value;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;

/// Records per batch (issue 4 item 8: about 1,000).
pub(crate) const BATCH: usize = 1_000;

/// One page of host records in key order.
pub struct Page {
    /// (local id, fields) in local id order.
    pub records: Vec<(Value, Fields)>,
    pub done: bool,
}

/// The host's side, as the first sync needs it.
pub trait HostRecords {
    type Error: std::fmt::Display;
    /// The newest change-log position (continuous sync starts after it).
    fn position(&self) -> Result<u64, Self::Error>;
    fn count(&self, entity: &str) -> Result<u64, Self::Error>;
    fn page(&self, entity: &str, after: Option<&Value>, limit: usize) -> Result<Page, Self::Error>;
}

/// A record as it goes online.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineRecord {
    pub entity: String,
    pub global_id: String,
    pub fields: Fields,
}

/// The service's side: stores one batch of the first sync, idempotently
/// under `key`, and answers each record's version (global id, version).
pub trait Remote {
    type Error: std::fmt::Display;
    fn push_initial(
        &self,
        key: &str,
        records: &[OnlineRecord],
    ) -> impl Future<Output = Result<Vec<(String, u64)>, Self::Error>>;
}

/// Progress for the host's progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub entity: String,
    pub done: u64,
    pub total: u64,
    /// Records of the batch just acknowledged; 0 when this reports work
    /// done before a restart.
    pub batch: u64,
}

#[derive(Debug, Error)]
pub enum FirstSyncError {
    #[error("the program could not supply its records: {0}")]
    Host(String),
    #[error("the online service did not accept the records: {0}")]
    Remote(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Schema(#[from] super::schema::SchemaError),
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error(
        "the first synchronisation was stopped; it continues where it stopped when started again"
    )]
    Stopped,
}

/// Checkpoint names.
const START_POSITION: &str = "first_sync.start_position";
const FINISHED: &str = "first_sync.finished";

fn after_key(entity: &str) -> String {
    format!("first_sync.{entity}.after")
}

fn done_key(entity: &str) -> String {
    format!("first_sync.{entity}.done")
}

fn sent_key(entity: &str) -> String {
    format!("first_sync.{entity}.sent")
}

/// Whether the first synchronisation has completed.
pub fn finished(state: &State) -> Result<bool, StateError> {
    Ok(state.checkpoint(FINISHED)?.is_some())
}

/// Whether a first synchronisation has begun with this state database (it
/// may be unfinished).
pub fn started(state: &State) -> Result<bool, StateError> {
    Ok(state.checkpoint(START_POSITION)?.is_some())
}

/// Whether the first synchronisation has completed, read from the state
/// database in `folder` without changing anything (false when there is
/// none yet). For status screens while the engine does not run.
pub fn finished_in(folder: &std::path::Path) -> bool {
    let path = folder.join("state.db");
    if !path.exists() {
        return false;
    }
    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM checkpoints WHERE name = ?1",
                [FINISHED],
                |row| row.get::<_, i64>(0),
            )
        })
        .is_ok_and(|n| n > 0)
}

/// Runs (or resumes) the first synchronisation. Checks `stop` between
/// batches: a stop leaves a consistent checkpoint. Returns the change-log
/// position continuous sync starts after.
pub async fn run<H: HostRecords, R: Remote>(
    schema: &Schema,
    host: &H,
    remote: &R,
    state: &mut State,
    stop: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> Result<u64, FirstSyncError> {
    if let Some(position) = state.checkpoint(FINISHED)? {
        return Ok(position.parse().unwrap_or(0));
    }
    // The position is taken before any record is read, so a change made
    // while the first sync runs is sent again by continuous sync, never lost.
    let start: u64 = match state.checkpoint(START_POSITION)? {
        Some(p) => p.parse().unwrap_or(0),
        None => {
            let position = host
                .position()
                .map_err(|e| FirstSyncError::Host(e.to_string()))?;
            state.commit(|b| b.set_checkpoint(START_POSITION, &position.to_string()))?;
            position
        }
    };
    for entity in super::schema::travel_order(schema)? {
        let sent: u64 = state
            .checkpoint(&sent_key(&entity.name))?
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if state.checkpoint(&done_key(&entity.name))?.is_some() {
            // Finished before a restart: reported, so that the totals add up.
            progress(Progress {
                entity: entity.name.clone(),
                done: sent,
                total: sent,
                batch: 0,
            });
            continue;
        }
        let total = host
            .count(&entity.name)
            .map_err(|e| FirstSyncError::Host(e.to_string()))?;
        let mut after: Option<Value> = state
            .checkpoint(&after_key(&entity.name))?
            .map(|k| convert::local_id(&k));
        let mut done = sent;
        progress(Progress {
            entity: entity.name.clone(),
            done,
            total: total.max(done),
            batch: 0,
        });
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(FirstSyncError::Stopped);
            }
            let page = host
                .page(&entity.name, after.as_ref(), BATCH)
                .map_err(|e| FirstSyncError::Host(e.to_string()))?;
            let Some((last_id, _)) = page.records.last() else {
                break;
            };
            let last_key = convert::local_key(last_id).unwrap_or_default();
            let batch_key = format!(
                "first:{}:{}:{last_key}",
                entity.name,
                after
                    .as_ref()
                    .and_then(convert::local_key)
                    .unwrap_or_default()
            );
            // Ids first: a batch sent again must carry the same ids.
            let mut records = Vec::with_capacity(page.records.len());
            state.commit(|b| {
                for (local_id, host_fields) in &page.records {
                    let key = convert::local_key(local_id).unwrap_or_default();
                    let global_id = b.global_id_or_mint(&entity.name, &key)?;
                    let fields = convert::to_online::<FirstSyncError>(
                        entity,
                        host_fields,
                        |target, target_key| Ok(b.global_id_or_mint(target, target_key)?),
                    )
                    .map_err(|e| StateError::Convert(e.to_string()))?;
                    records.push(OnlineRecord {
                        entity: entity.name.clone(),
                        global_id,
                        fields,
                    });
                }
                Ok(())
            })?;
            let versions = remote
                .push_initial(&batch_key, &records)
                .await
                .map_err(|e| FirstSyncError::Remote(e.to_string()))?;
            // The shadows (what was exchanged, at which version) go with the
            // position: continuous sync computes changed fields from them.
            let sent: std::collections::HashMap<&str, &Fields> = records
                .iter()
                .map(|r| (r.global_id.as_str(), &r.fields))
                .collect();
            state.commit(|b| {
                for (global_id, version) in &versions {
                    if let Some(fields) = sent.get(global_id.as_str()) {
                        b.set_shadow(&entity.name, global_id, *version, fields)?;
                    }
                }
                b.set_checkpoint(&after_key(&entity.name), &last_key)?;
                b.set_checkpoint(
                    &sent_key(&entity.name),
                    &(done + records.len() as u64).to_string(),
                )
            })?;
            done += records.len() as u64;
            progress(Progress {
                entity: entity.name.clone(),
                done,
                total: total.max(done),
                batch: records.len() as u64,
            });
            after = Some(last_id.clone());
            if page.done {
                break;
            }
        }
        state.commit(|b| b.set_checkpoint(&done_key(&entity.name), "1"))?;
    }
    state.commit(|b| b.set_checkpoint(FINISHED, &start.to_string()))?;
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::schema::tests::sample;
    use serde_json::json;
    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, HashMap};

    /// A host with records in memory.
    struct Records {
        tables: BTreeMap<String, BTreeMap<i64, Fields>>,
    }

    impl Records {
        fn new(contacts: i64, persons: i64) -> Records {
            let mut tables: BTreeMap<String, BTreeMap<i64, Fields>> = BTreeMap::new();
            let fields = |v: Value| serde_json::from_value::<Fields>(v).unwrap();
            tables.insert(
                "employees".into(),
                (1..=3)
                    .map(|i| (i, fields(json!({"name": format!("E{i}")}))))
                    .collect(),
            );
            tables.insert(
                "contacts".into(),
                (1..=contacts)
                    .map(|i| (i, fields(json!({"number": 10000 + i, "name": format!("C{i}"), "salesperson_id": i % 3 + 1}))))
                    .collect(),
            );
            tables.insert(
                "contact_persons".into(),
                (1..=persons)
                    .map(|i| {
                        (
                            i,
                            fields(
                                json!({"contact_id": i % contacts + 1, "name": format!("P{i}")}),
                            ),
                        )
                    })
                    .collect(),
            );
            Records { tables }
        }
    }

    impl HostRecords for Records {
        type Error = String;
        fn position(&self) -> Result<u64, String> {
            Ok(42)
        }
        fn count(&self, entity: &str) -> Result<u64, String> {
            Ok(self.tables[entity].len() as u64)
        }
        fn page(&self, entity: &str, after: Option<&Value>, limit: usize) -> Result<Page, String> {
            let after = after.and_then(Value::as_i64).unwrap_or(i64::MIN);
            let rows: Vec<(Value, Fields)> = self.tables[entity]
                .range(after + 1..)
                .take(limit)
                .map(|(id, f)| (json!(id), f.clone()))
                .collect();
            let done = rows
                .last()
                .and_then(|(id, _)| id.as_i64())
                .is_none_or(|last| self.tables[entity].range(last + 1..).next().is_none());
            Ok(Page {
                records: rows,
                done,
            })
        }
    }

    /// A service that keeps records by global id, remembers idempotency
    /// keys, and can be told to fail a push (the network dropping).
    #[derive(Default)]
    struct Service {
        records: RefCell<HashMap<(String, String), Fields>>,
        keys: RefCell<Vec<String>>,
        pushes: Cell<usize>,
        fail_at_push: Cell<Option<usize>>,
    }

    impl Remote for Service {
        type Error = String;
        async fn push_initial(
            &self,
            key: &str,
            records: &[OnlineRecord],
        ) -> Result<Vec<(String, u64)>, String> {
            self.pushes.set(self.pushes.get() + 1);
            if self.fail_at_push.get() == Some(self.pushes.get()) {
                return Err("connection reset".into());
            }
            let versions = records.iter().map(|r| (r.global_id.clone(), 1)).collect();
            if self.keys.borrow().iter().any(|k| k == key) {
                return Ok(versions);
            }
            self.keys.borrow_mut().push(key.to_owned());
            for r in records {
                self.records
                    .borrow_mut()
                    .insert((r.entity.clone(), r.global_id.clone()), r.fields.clone());
            }
            Ok(versions)
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn everything_goes_online_once_with_references_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let host = Records::new(2_500, 1_200);
        let service = Service::default();
        let mut seen = Vec::new();
        let position = runtime()
            .block_on(run(
                &sample(),
                &host,
                &service,
                &mut state,
                &AtomicBool::new(false),
                |p| seen.push(p),
            ))
            .unwrap();
        assert_eq!(position, 42);
        assert_eq!(service.records.borrow().len(), 2_500 + 1_200 + 3);
        assert_eq!(
            service.pushes.get(),
            3 + 2 + 1,
            "batches of 1,000 per entity"
        );
        let last = seen.iter().rfind(|p| p.entity == "contacts").unwrap();
        assert_eq!((last.done, last.total), (2_500, 2_500));
        // A contact person's contact is the contact's global id.
        let person_global = state.global_id("contact_persons", "7").unwrap().unwrap();
        let contact_global = state.global_id("contacts", "8").unwrap().unwrap();
        let records = service.records.borrow();
        let person = &records[&("contact_persons".to_owned(), person_global)];
        assert_eq!(person["contact_id"], json!(contact_global));
        assert!(finished(&state).unwrap());
        let contact = state.global_id("contacts", "8").unwrap().unwrap();
        let shadow = state
            .shadow("contacts", &contact)
            .unwrap()
            .expect("a shadow per sent record");
        assert_eq!(shadow.version, 1);
    }

    #[test]
    fn a_failure_mid_way_resumes_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let host = Records::new(2_500, 1_200);
        let service = Service::default();
        service.fail_at_push.set(Some(2));
        {
            let mut state = State::open(dir.path()).unwrap();
            let failed = runtime().block_on(run(
                &sample(),
                &host,
                &service,
                &mut state,
                &AtomicBool::new(false),
                |_| {},
            ));
            assert!(
                matches!(failed, Err(FirstSyncError::Remote(_))),
                "{failed:?}"
            );
        }
        service.fail_at_push.set(None);
        // A new process: the state is read back from disk.
        let mut state = State::open(dir.path()).unwrap();
        runtime()
            .block_on(run(
                &sample(),
                &host,
                &service,
                &mut state,
                &AtomicBool::new(false),
                |_| {},
            ))
            .unwrap();
        assert_eq!(
            service.records.borrow().len(),
            2_500 + 1_200 + 3,
            "no record twice, none missing"
        );
        assert_eq!(
            service.pushes.get(),
            1 + 1 + 2 + 2 + 1,
            "only the failed batch is sent again"
        );
    }

    #[test]
    fn a_stop_leaves_a_checkpoint_to_continue_from() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let host = Records::new(2_500, 0);
        let service = Service::default();
        let stop = AtomicBool::new(false);
        let stopped = runtime().block_on(run(&sample(), &host, &service, &mut state, &stop, |p| {
            if p.done >= 1_000 {
                stop.store(true, Ordering::SeqCst)
            }
        }));
        assert!(matches!(stopped, Err(FirstSyncError::Stopped)));
        assert_eq!(service.pushes.get(), 1);
        stop.store(false, Ordering::SeqCst);
        runtime()
            .block_on(run(&sample(), &host, &service, &mut state, &stop, |_| {}))
            .unwrap();
        assert_eq!(service.pushes.get(), 1 + 2 + 1);
        assert_eq!(service.records.borrow().len(), 2_503);
    }
}
