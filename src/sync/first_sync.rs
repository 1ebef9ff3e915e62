//! The first full synchronisation (docs/SYNC_PROTOCOL.md §6): every record
//! of every declared entity, in travel order and key order, in batches.
//!
//! Resumable by construction: before a batch is sent, the global ids it
//! uses are committed to the state database, so a batch sent again after a
//! crash carries the same ids and the same idempotency key, and the service
//! applies it once. After the service acknowledged a batch, the position
//! (the last local id) is committed. Up to [`IN_FLIGHT`] batches are on the
//! wire at once, and their answers are applied oldest first, so the position
//! only ever passes acknowledged batches, in order. A restart therefore sends
//! again at most the batches that were in flight.

use super::convert::{self, Fields};
use super::schema::Schema;
use super::state::{State, StateError};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use thiserror::Error;

/// Records per batch (issue 4 item 8: about 1,000).
pub(crate) const BATCH: usize = 1_000;

/// Batches sent before the oldest one is answered: the next page is read,
/// given its ids and sent while the service stores the one before (issue 4
/// item 8: "a couple of requests in flight"). A restart sends again at most
/// these.
pub(crate) const IN_FLIGHT: usize = 2;

/// One page of host records in key order.
pub struct Page {
    /// (local id, fields) in local id order.
    pub records: Vec<(Value, Fields)>,
    pub done: bool,
    /// The global ids the host remembers for rows of this page, by local
    /// key ([`convert::local_key`]): rows it created from online records
    /// (optional for a host; a takeover uses them, docs/SYNC_PROTOCOL.md
    /// §10).
    pub remembered: HashMap<String, String>,
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
    /// The host's key of the record (its local id as text).
    pub host_key: String,
    pub fields: Fields,
}

/// The service's side: stores one batch of the first sync, idempotently
/// under `key`, and answers each record's version (global id, version).
pub trait Remote {
    type Error: std::fmt::Display;
    /// `host_position` is the change-log position taken at the start of
    /// the first sync (restore detection, docs/SYNC_PROTOCOL.md §9).
    fn push_initial(
        &self,
        key: &str,
        records: &[OnlineRecord],
        host_position: u64,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, Self::Error>>;
    /// Whether `error` is the service's `host_restored` (a backup of the
    /// host's database was restored).
    fn is_host_restored(_error: &Self::Error) -> bool {
        false
    }
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
    #[error("the online service refused the records: {0}")]
    HostRestored(String),
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

/// A batch as it goes online: its idempotency key, the key of its last
/// record (the checkpoint once it is acknowledged), and its records.
struct Batch {
    key: String,
    last_key: String,
    records: Vec<OnlineRecord>,
}

/// The global ids of records referred to, by (entity, local key): many
/// records refer to the same few (the lines of one sales document, the
/// products), so each is looked up in the state database about once. Kept
/// for one run only: any failure ends the run, so it never holds an id
/// whose transaction was rolled back.
type Referred = HashMap<(String, String), String>;

/// At most this many ids are kept in [`Referred`] (a few MiB); then it
/// starts again, so memory stays flat however large the company is.
const REFERRED_KEPT: usize = 20_000;

/// A short digest of a batch's records (ids and values), for its key.
fn digest(records: &[OnlineRecord]) -> String {
    let mut hasher = Sha256::new();
    for record in records {
        hasher.update(record.global_id.as_bytes());
        // Fields are a sorted map: the same values give the same text.
        hasher.update(serde_json::to_vec(&record.fields).unwrap_or_default());
    }
    let digest = hasher.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Gives every record of a page, and every record it refers to, its global
/// id, committed before the batch is sent.
fn with_global_ids(
    state: &mut State,
    entity: &super::schema::Entity,
    page: Vec<(Value, Fields)>,
    referred: &mut Referred,
) -> Result<Vec<OnlineRecord>, FirstSyncError> {
    let mut records = Vec::with_capacity(page.len());
    if referred.len() >= REFERRED_KEPT {
        referred.clear();
    }
    state.commit(|b| {
        for (local_id, host_fields) in page {
            let key = convert::local_key(&local_id).unwrap_or_default();
            let global_id = b.mint_or_global_id(&entity.name, &key)?;
            let fields = convert::into_online::<FirstSyncError>(
                entity,
                host_fields,
                |target, target_key| {
                    let wanted = (target.to_owned(), target_key.to_owned());
                    if let Some(global_id) = referred.get(&wanted) {
                        return Ok(global_id.clone());
                    }
                    let global_id = b.global_id_or_mint(target, target_key)?;
                    referred.insert(wanted, global_id.clone());
                    Ok(global_id)
                },
            )
            .map_err(|e| StateError::Convert(e.to_string()))?;
            records.push(OnlineRecord {
                entity: entity.name.clone(),
                global_id,
                host_key: key,
                fields,
            });
        }
        Ok(())
    })?;
    Ok(records)
}

/// Sends one batch; answers the service's answer with the batch.
async fn send<R: Remote>(
    remote: &R,
    batch: Batch,
    host_position: u64,
) -> (Result<Vec<(String, u64)>, R::Error>, Batch) {
    let answer = remote
        .push_initial(&batch.key, &batch.records, host_position)
        .await;
    (answer, batch)
}

/// A batch on the wire, and its answer once it has one.
struct Sending<F: Future> {
    future: Pin<Box<F>>,
    answer: Option<F::Output>,
}

impl<F: Future> Sending<F> {
    fn new(future: F) -> Sending<F> {
        Sending {
            future: Box::pin(future),
            answer: None,
        }
    }
}

/// Polls every batch on the wire that has no answer yet. A younger batch
/// answered first keeps its answer until its turn.
fn drive<F: Future>(in_flight: &mut VecDeque<Sending<F>>, cx: &mut Context<'_>) {
    for sending in in_flight.iter_mut() {
        if sending.answer.is_none() {
            if let Poll::Ready(answer) = sending.future.as_mut().poll(cx) {
                sending.answer = Some(answer);
            }
        }
    }
}

/// Reads one page of the host's records on a blocking thread: the host
/// answers synchronously, and meanwhile the batches on the wire (and the
/// lease renewal beside the first sync) must make progress.
pub(crate) fn read_page<H>(
    host: &H,
    entity: &str,
    after: Option<Value>,
) -> tokio::task::JoinHandle<Result<Page, FirstSyncError>>
where
    H: HostRecords + Clone + Send + 'static,
{
    let host = host.clone();
    let entity = entity.to_owned();
    tokio::task::spawn_blocking(move || {
        host.page(&entity, after.as_ref(), BATCH)
            .map_err(|e| FirstSyncError::Host(e.to_string()))
    })
}

/// Waits for a page being read while driving the batches on the wire.
async fn receive<F: Future>(
    in_flight: &mut VecDeque<Sending<F>>,
    mut read: tokio::task::JoinHandle<Result<Page, FirstSyncError>>,
) -> Result<Page, FirstSyncError> {
    std::future::poll_fn(|cx| {
        drive(in_flight, cx);
        Pin::new(&mut read).poll(cx)
    })
    .await
    .map_err(|e| FirstSyncError::Host(format!("reading the program's records failed: {e}")))?
}

/// Drives every batch on the wire and returns the oldest one's answer as
/// soon as it has one (`None` when nothing is on the wire).
async fn oldest_answer<F: Future>(in_flight: &mut VecDeque<Sending<F>>) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        drive(in_flight, cx);
        match in_flight.front() {
            None => Poll::Ready(None),
            Some(oldest) if oldest.answer.is_some() => {
                Poll::Ready(in_flight.pop_front().and_then(|oldest| oldest.answer))
            }
            Some(_) => Poll::Pending,
        }
    })
    .await
}

/// Whether the first synchronisation has completed.
pub fn finished(state: &State) -> Result<bool, StateError> {
    Ok(state.checkpoint(FINISHED)?.is_some())
}

/// Marks the first sync done without running it: a takeover adopted the
/// online records (docs/SYNC_PROTOCOL.md §10); continuous sync starts after
/// `position`.
pub fn mark_taken_over(b: &mut super::state::Batch<'_>, position: u64) -> Result<(), StateError> {
    b.set_checkpoint(START_POSITION, &position.to_string())?;
    b.set_checkpoint(FINISHED, &position.to_string())
}

/// Whether a first synchronisation has begun with this state database (it
/// may be unfinished).
pub fn started(state: &State) -> Result<bool, StateError> {
    Ok(state.checkpoint(START_POSITION)?.is_some())
}

/// The change-log position the first synchronisation started at (its
/// pushes carry it), once it has started.
pub fn start_position(state: &State) -> Result<Option<u64>, StateError> {
    Ok(state
        .checkpoint(START_POSITION)?
        .and_then(|p| p.parse().ok()))
}

/// Moves an unfinished first synchronisation's start position to
/// `position` (Update connection after a restore, docs/SYNC_PROTOCOL.md
/// §9): continuous sync then starts after it.
pub fn reset_start_position(state: &mut State, position: u64) -> Result<(), StateError> {
    state.commit(|b| b.set_checkpoint(START_POSITION, &position.to_string()))
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

/// Runs (or resumes) the first synchronisation. Checks `stop` before
/// taking each page: a stop waits for the batches already sent and leaves a
/// consistent checkpoint. Needs a tokio runtime (pages are read with
/// `spawn_blocking`). Returns the change-log
/// position continuous sync starts after.
pub async fn run<H, R: Remote>(
    schema: &Schema,
    host: &H,
    remote: &R,
    state: &mut State,
    stop: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> Result<u64, FirstSyncError>
where
    H: HostRecords + Clone + Send + 'static,
{
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
    let mut referred = Referred::new();
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
        // Up to IN_FLIGHT batches on the wire; their answers are applied
        // oldest first, so the checkpoint only ever passes batches the
        // service acknowledged, in order. The host's next page is read on
        // a thread of its own meanwhile (the host answers synchronously).
        let mut in_flight = VecDeque::new();
        let mut reading = Some(read_page(host, &entity.name, after.clone()));
        let mut stopping = false;
        let outcome: Result<bool, FirstSyncError> = async {
            loop {
                while !stopping && in_flight.len() < IN_FLIGHT {
                    let Some(read) = reading.take() else {
                        break;
                    };
                    if stop.load(Ordering::SeqCst) {
                        // No new batch; the answers of those on the wire
                        // are still applied.
                        reading = Some(read);
                        stopping = true;
                        break;
                    }
                    let page = receive(&mut in_flight, read).await?;
                    let Some((last_id, _)) = page.records.last() else {
                        break;
                    };
                    let last_id = last_id.clone();
                    if !page.done {
                        reading = Some(read_page(host, &entity.name, Some(last_id.clone())));
                    }
                    // Ids first: a batch sent again must carry the same ids.
                    let records = with_global_ids(state, entity, page.records, &mut referred)?;
                    let batch = Batch {
                        // The key names the contents too: the same rows
                        // read again with other values (edited after a lost
                        // answer) are a new batch, not the stored answer.
                        key: format!(
                            "first:{}:{}:{}:{}",
                            entity.name,
                            after
                                .as_ref()
                                .and_then(convert::local_key)
                                .unwrap_or_default(),
                            convert::local_key(&last_id).unwrap_or_default(),
                            digest(&records)
                        ),
                        last_key: convert::local_key(&last_id).unwrap_or_default(),
                        records,
                    };
                    after = Some(last_id);
                    in_flight.push_back(Sending::new(send(remote, batch, start)));
                }
                let Some((answer, batch)) = oldest_answer(&mut in_flight).await else {
                    return Ok(stopping);
                };
                let versions = answer.map_err(|e| {
                    if R::is_host_restored(&e) {
                        FirstSyncError::HostRestored(e.to_string())
                    } else {
                        FirstSyncError::Remote(e.to_string())
                    }
                })?;
                // The shadows (what was exchanged, at which version) go with
                // the position: continuous sync computes changed fields from
                // them.
                let sent: HashMap<&str, &Fields> = batch
                    .records
                    .iter()
                    .map(|r| (r.global_id.as_str(), &r.fields))
                    .collect();
                let count = batch.records.len() as u64;
                state.commit(|b| {
                    for (global_id, version) in &versions {
                        if let Some(fields) = sent.get(global_id.as_str()) {
                            b.set_shadow(&entity.name, global_id, *version, fields)?;
                        }
                    }
                    b.set_checkpoint(&after_key(&entity.name), &batch.last_key)?;
                    b.set_checkpoint(&sent_key(&entity.name), &(done + count).to_string())
                })?;
                done += count;
                progress(Progress {
                    entity: entity.name.clone(),
                    done,
                    total: total.max(done),
                    batch: count,
                });
            }
        }
        .await;
        // After a failure, the batches already sent are waited for (a
        // request cut off while it refreshes the device's token would lose
        // the new one); their answers are not used, a restart sends them
        // again. A page being read is waited for too.
        if !matches!(outcome, Ok(false)) {
            while oldest_answer(&mut in_flight).await.is_some() {}
            if let Some(read) = reading.take() {
                let _ = read.await;
            }
        }
        if outcome? {
            return Err(FirstSyncError::Stopped);
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
    use std::collections::BTreeMap;

    /// A host with records in memory.
    #[derive(Clone)]
    struct Records {
        tables: std::sync::Arc<BTreeMap<String, BTreeMap<i64, Fields>>>,
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
            Records {
                tables: std::sync::Arc::new(tables),
            }
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
                remembered: HashMap::new(),
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
        /// This push is stored, but its answer never arrives.
        lose_answer_at_push: Cell<Option<usize>>,
        /// Times a push yields before it answers (a request on the wire).
        answer_after_yields: Cell<usize>,
        on_the_wire: Cell<usize>,
        most_on_the_wire: Cell<usize>,
    }

    impl Remote for Service {
        type Error = String;
        async fn push_initial(
            &self,
            key: &str,
            records: &[OnlineRecord],
            _host_position: u64,
        ) -> Result<Vec<(String, u64)>, String> {
            self.pushes.set(self.pushes.get() + 1);
            let push = self.pushes.get();
            self.on_the_wire.set(self.on_the_wire.get() + 1);
            self.most_on_the_wire
                .set(self.most_on_the_wire.get().max(self.on_the_wire.get()));
            for _ in 0..self.answer_after_yields.get() {
                tokio::task::yield_now().await;
            }
            self.on_the_wire.set(self.on_the_wire.get() - 1);
            if self.fail_at_push.get() == Some(push) {
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
            if self.lose_answer_at_push.get() == Some(push) {
                return Err("the answer was lost".into());
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

    /// Runs the first sync once in a new process (the state read back from
    /// disk).
    fn run_once(
        dir: &std::path::Path,
        host: &Records,
        service: &Service,
    ) -> Result<u64, FirstSyncError> {
        let mut state = State::open(dir).unwrap();
        runtime().block_on(run(
            &sample(),
            host,
            service,
            &mut state,
            &AtomicBool::new(false),
            |_| {},
        ))
    }

    #[test]
    fn two_batches_are_on_the_wire_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let host = Records::new(2_500, 1_200);
        let service = Service::default();
        service.answer_after_yields.set(3);
        run_once(dir.path(), &host, &service).unwrap();
        assert_eq!(service.most_on_the_wire.get(), IN_FLIGHT);
        assert_eq!(service.records.borrow().len(), 2_500 + 1_200 + 3);
        assert_eq!(service.pushes.get(), 3 + 2 + 1, "each batch once");
    }

    /// Regression: a batch whose answer was lost was read again after the
    /// restart with a record the user had edited meanwhile, and sent under
    /// the same idempotency key: the service answered the stored result of
    /// the old values, the shadow took the new ones, and continuous sync saw
    /// nothing to send — the edit never went online.
    #[test]
    fn a_batch_read_again_with_other_values_is_sent_again() {
        let dir = tempfile::tempdir().unwrap();
        let host = Records::new(10, 0);
        let service = Service::default();
        service.lose_answer_at_push.set(Some(1));
        assert!(run_once(dir.path(), &host, &service).is_err());
        let mut tables = (*host.tables).clone();
        tables
            .get_mut("contacts")
            .unwrap()
            .get_mut(&5)
            .unwrap()
            .insert("name".into(), json!("C5 edited"));
        let edited = Records {
            tables: std::sync::Arc::new(tables),
        };
        run_once(dir.path(), &edited, &service).unwrap();
        let state = State::open(dir.path()).unwrap();
        let global = state.global_id("contacts", "5").unwrap().unwrap();
        let online = service.records.borrow()[&("contacts".to_owned(), global.clone())].clone();
        let shadow = state.shadow("contacts", &global).unwrap().unwrap();
        assert_eq!(online["name"], "C5 edited");
        assert_eq!(shadow.fields, online, "the shadow is what is online");
    }

    #[test]
    fn a_failure_of_the_second_batch_in_flight_keeps_the_first_and_resumes_after_it() {
        // Travel order: contacts (3 batches), contact persons, employees.
        // Push 1 (contacts 1–1,000) is answered; push 2 (1,001–2,000) fails
        // while push 3 (2,001–2,500), in flight behind it, is stored.
        let dir = tempfile::tempdir().unwrap();
        let host = Records::new(2_500, 1_200);
        let service = Service::default();
        service.answer_after_yields.set(2);
        service.fail_at_push.set(Some(2));
        let failed = run_once(dir.path(), &host, &service);
        assert!(
            matches!(failed, Err(FirstSyncError::Remote(_))),
            "{failed:?}"
        );
        assert_eq!(service.pushes.get(), 3);
        {
            let state = State::open(dir.path()).unwrap();
            // The checkpoint passed the acknowledged batch only.
            let checkpoint = |name: &str| state.checkpoint(name).unwrap();
            assert_eq!(checkpoint(&after_key("contacts")).as_deref(), Some("1000"));
            assert_eq!(checkpoint(&sent_key("contacts")).as_deref(), Some("1000"));
            let shadowed = |local: &str| {
                let global = state
                    .global_id("contacts", local)
                    .unwrap()
                    .expect("ids are committed before a batch is sent");
                state.shadow("contacts", &global).unwrap().is_some()
            };
            assert!(shadowed("1000"), "the answered batch has its shadows");
            assert!(!shadowed("1001"), "the failed batch has none");
            assert!(!shadowed("2001"), "nor the one behind it");
        }
        service.fail_at_push.set(None);
        run_once(dir.path(), &host, &service).unwrap();
        assert_eq!(
            service.records.borrow().len(),
            2_500 + 1_200 + 3,
            "no record twice, none missing"
        );
        assert_eq!(
            service.pushes.get(),
            3 + 2 + 2 + 1,
            "the failed batch and the one behind it are sent again, nothing else"
        );
    }

    #[test]
    fn a_failure_of_the_oldest_batch_in_flight_resumes_before_it() {
        // Push 1 fails; push 2, in flight behind it, was stored all the
        // same (its answer is not used: the checkpoint never jumps a batch).
        let dir = tempfile::tempdir().unwrap();
        let host = Records::new(2_500, 1_200);
        let service = Service::default();
        service.answer_after_yields.set(2);
        service.fail_at_push.set(Some(1));
        assert!(matches!(
            run_once(dir.path(), &host, &service),
            Err(FirstSyncError::Remote(_))
        ));
        assert_eq!(service.pushes.get(), 2);
        assert_eq!(
            State::open(dir.path())
                .unwrap()
                .checkpoint(&after_key("contacts"))
                .unwrap(),
            None
        );
        service.fail_at_push.set(None);
        run_once(dir.path(), &host, &service).unwrap();
        assert_eq!(service.records.borrow().len(), 2_500 + 1_200 + 3);
        assert_eq!(service.pushes.get(), 2 + 3 + 2 + 1);
        // The batch stored in the failed run came again under its key.
        let keys = service.keys.borrow();
        assert_eq!(keys.len(), 3 + 2 + 1, "every batch stored once: {keys:?}");
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
        // The batch already on the wire when the stop came was waited for
        // and kept.
        assert_eq!(service.pushes.get(), 2);
        assert_eq!(
            state.checkpoint(&sent_key("contacts")).unwrap().as_deref(),
            Some("2000")
        );
        stop.store(false, Ordering::SeqCst);
        runtime()
            .block_on(run(&sample(), &host, &service, &mut state, &stop, |_| {}))
            .unwrap();
        assert_eq!(service.pushes.get(), 2 + 1 + 1, "nothing sent twice");
        assert_eq!(service.records.borrow().len(), 2_503);
    }
}
