//! Continuous two-way synchronisation (docs/SYNC_PROTOCOL.md §6 "Continuous"),
//! as plain Rust over two traits; not yet driven by the ABI.
//!
//! One round is [`push_local`] until the host's change log is read to the
//! end, then [`pull_remote`] ([`sync_once`] does both).
//!
//! **Shadows.** For every record the state database keeps its version and
//! fields (online form) as last exchanged. A push sends the fields that
//! differ from the shadow (`changed`) with the shadow's version as
//! `base_version`; a pull applies to the host only the two-way fields that
//! differ from it. A record without a shadow (sent by a first sync that did
//! not record shadows yet) counts as "every field changed, no base
//! version": the host's values win over anything edited online before.
//!
//! **Host → online** ([`push_local`]). The change log after the stored
//! position is read in batches of [`BATCH`] and coalesced per row. A row
//! whose entries in the window all have origin `online` is the echo of an
//! apply and is skipped (the position still passes it) — unless it is in
//! the outbox (values the host assigned to a record created online, e.g. a
//! number, which must go online). Before the push, the batch itself (ids
//! minted for it, fields, key) is committed as the pending push: a retry
//! after a crash sends exactly the same batch under the same key
//! (`inc:<state id>:<after>:<last seq>`), so the service applies it once
//! and the shadows record what the service has. After the answer, one
//! transaction stores the shadows (versions from the answer), the conflicts
//! the service resolved (history, G7), and the new position.
//!
//! **Online → host** ([`pull_remote`]). Changes after the stored cursor
//! (long-poll). If the host has unpushed changes of its own, nothing is
//! applied (the host's edits are pushed first, so conflicts are resolved by
//! the service and recorded). An edit the host makes after that check is
//! still safe: every update and delete carries the guard "skip if the host
//! changed this row after position N" (N = the position pushed up to),
//! checked by the host in the apply's transaction; a skipped change stores
//! nothing and holds the cursor, so it comes again after the host's edit
//! was pushed. Upserts travel parents first; a change that refers to a
//! record not in the host yet waits for a later round of the same page
//! (the round that creates it), or, when its target is not in the page at
//! all, holds the cursor before it — once: when the next pull starts with
//! it and the target is still missing, it is parked, waiting for it. Each
//! round is one `records.apply` followed by one state transaction (id map,
//! shadows, outbox, parked changes); deletes go last, children first. Then
//! the cursor is stored and acknowledged.
//!
//! **Parked changes.** A change the host refuses (its answer for that
//! change, with the reason) or that cannot be converted is set aside in
//! the state database and the cursor moves on; a failure of the whole
//! request (the host unreachable, its database locked) fails the pull
//! instead. A parked change is tried again when its record changes online
//! (the newer state replaces it), when the record it waits for arrives, and
//! every [`PARKED_RETRY`]; a push of the record supersedes it (the service
//! merges it with what is online and records any conflict). [`parked`]
//! lists them.

use super::convert::{self, ConvertError, Fields};
use super::schema::{self, Direction, Schema, SchemaError};
use super::state::{Batch, LocalConflict, Parked, Shadow, State, StateError, ToPark};
use od_client::{ChangesPage, PushAnswer, RemoteChange, Uuid};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;
use thiserror::Error;

/// Change-log entries read per push (issue 4 item 8: about 1,000).
pub(crate) const BATCH: usize = 1_000;

/// How long a parked change waits before it is tried again, unless its
/// record changes online again or the record it waits for arrives first.
pub(crate) const PARKED_RETRY: Duration = Duration::from_secs(5 * 60);

/// Checkpoint names.
const POSITION: &str = "continuous.host_position";
const CURSOR: &str = "continuous.cursor";
const PENDING: &str = "continuous.pending_push";
const STATE_ID: &str = "continuous.state_id";
/// Written by the first sync: the position continuous sync starts after.
const FIRST_SYNC_FINISHED: &str = "first_sync.finished";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Upsert,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Host,
    Online,
}

/// One entry of the host's change log (`changes.read`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub entity: String,
    pub local_id: Value,
    pub op: Op,
    pub origin: Origin,
    /// The row now; null for deletes and rows deleted since.
    #[serde(default)]
    pub record: Option<Fields>,
}

/// One read of the change log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LogPage {
    pub changes: Vec<LogEntry>,
    pub last_seq: u64,
}

/// One change for `records.apply`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostApply {
    pub entity: String,
    /// `None` creates the record.
    pub local_id: Option<Value>,
    /// With a create: the record's global id, so that a create delivered
    /// again (after a crash before the plugin stored the new local id)
    /// finds the record made the first time instead of making another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_id: Option<String>,
    pub op: Op,
    pub fields: Fields,
    /// The guard against a host edit racing the pull: apply only if the
    /// row has no change-log entry of origin `host` after this position
    /// (the one pushed up to), checked by the host in the apply's
    /// transaction. Creates need none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_if_host_changed_after: Option<u64>,
}

/// What the host did with one change of `records.apply`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// Written (also what an answer without `outcome` means).
    #[default]
    Applied,
    /// Not written: the guard held (the host changed the row after the
    /// guard's position).
    Skipped,
    /// Not written: the host's rules refused this change (the others of
    /// the request were applied).
    Refused,
}

/// `records.apply`'s answer for one change.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Applied {
    /// Null for a create that was refused.
    #[serde(default)]
    pub local_id: Value,
    #[serde(default)]
    pub assigned: Fields,
    #[serde(default)]
    pub outcome: ApplyOutcome,
    /// Why it was skipped or refused, in the host's words.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The host's side of continuous sync.
pub trait HostChanges {
    type Error: std::fmt::Display;
    /// `changes.read`: entries after `after`, oldest first.
    fn read_changes(&self, after: u64, limit: usize) -> Result<LogPage, Self::Error>;
    /// `records.apply` with per-change answers (`"per_change": true`):
    /// one transaction, origin `online`; one result per change, in order,
    /// each applied, skipped (its guard held) or refused (with the host's
    /// reason; the others are applied). An error is a failure of the whole
    /// request (nothing applied), never about one change.
    fn apply(&self, changes: &[HostApply]) -> Result<Vec<Applied>, Self::Error>;
}

/// One record's change as it is pushed (incremental).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutChange {
    pub entity: String,
    pub global_id: String,
    /// The host row it came from (to unmap it after a delete).
    pub local_key: String,
    pub op: Op,
    pub base_version: Option<u64>,
    /// The whole record in the online form (empty for deletes).
    pub fields: Fields,
    /// The fields that differ from the shadow.
    pub changed: Vec<String>,
}

/// The service's side of continuous sync.
pub trait SyncRemote {
    type Error: std::fmt::Display;
    /// `POST /sync/push`, mode incremental, once per `key`; `host_position`
    /// is the last change-log position the batch covers (restore detection,
    /// docs/SYNC_PROTOCOL.md §9).
    fn push_changes(
        &self,
        key: &str,
        changes: &[OutChange],
        host_position: u64,
    ) -> impl Future<Output = Result<PushAnswer, Self::Error>>;
    /// Whether `error` is the service's `host_restored`: the host's change
    /// log is behind what was pushed before (a backup was restored).
    fn is_host_restored(_error: &Self::Error) -> bool {
        false
    }
    /// `GET /sync/changes` (long-poll up to `wait`).
    fn changes(
        &self,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> impl Future<Output = Result<ChangesPage, Self::Error>>;
    /// `POST /sync/ack`.
    fn ack(&self, cursor: u64) -> impl Future<Output = Result<u64, Self::Error>>;
}

#[derive(Debug, Error)]
pub enum SyncError {
    #[error("the program could not read or apply changes: {0}")]
    Host(String),
    #[error("the online service did not accept the exchange: {0}")]
    Remote(String),
    #[error("the online service answered in an unexpected way: {0}")]
    Protocol(String),
    #[error("the online service refused the changes: {0}")]
    HostRestored(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// A batch committed before it is pushed, so that a retry sends the same.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingPush {
    after: u64,
    last_seq: u64,
    key: String,
    changes: Vec<OutChange>,
    /// Outbox rows this push sends.
    outbox: Vec<(String, String)>,
}

/// What one [`push_local`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Change-log entries passed.
    pub read: usize,
    /// Records pushed.
    pub pushed: usize,
    /// Conflicts the service resolved (and that were recorded).
    pub conflicts: usize,
    /// The position moved: there may be more to read.
    pub more: bool,
    /// Records pushed, per entity (for the history).
    pub entities: BTreeMap<String, usize>,
}

/// What one [`pull_remote`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// The host had unpushed changes: nothing was applied; push first.
    pub host_first: bool,
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    /// Changes waiting for a record they refer to (the cursor stays before
    /// them).
    pub waiting: usize,
    pub cursor: u64,
    /// Records applied to the host (created, updated or deleted), per
    /// entity (for the history).
    pub entities: BTreeMap<String, usize>,
    /// Online changes parked when this pull ends (set aside because the
    /// host refused them or they wait for a record the host does not
    /// have), those of earlier pulls included; [`parked`] lists them.
    pub parked: usize,
    /// Changes skipped because the host edited the record after the
    /// position pushed up to (the cursor stays before them: they come
    /// again once the host's edit was pushed).
    pub skipped: usize,
}

/// The host change-log position pushed up to.
pub fn host_position(state: &State) -> Result<u64, StateError> {
    let stored = match state.checkpoint(POSITION)? {
        Some(p) => Some(p),
        None => state.checkpoint(FIRST_SYNC_FINISHED)?,
    };
    Ok(stored.and_then(|p| p.parse().ok()).unwrap_or(0))
}

/// Continuous sync after a takeover (docs/SYNC_PROTOCOL.md §10): host
/// changes after `position` are pushed, online changes after `cursor`
/// pulled; a batch prepared by an earlier attempt is dropped.
pub fn mark_taken_over(
    b: &mut super::state::Batch<'_>,
    position: u64,
    cursor: u64,
) -> Result<(), StateError> {
    b.set_checkpoint(POSITION, &position.to_string())?;
    b.set_checkpoint(CURSOR, &cursor.to_string())?;
    b.clear_checkpoint(PENDING)
}

/// Sets the host change-log position pushed up to (Update connection
/// after a restore, docs/SYNC_PROTOCOL.md §9). A batch prepared but not
/// sent is dropped: it was read from the log as it was before the restore.
pub fn reset_host_position(state: &mut State, position: u64) -> Result<(), StateError> {
    state.commit(|b| {
        b.set_checkpoint(POSITION, &position.to_string())?;
        b.clear_checkpoint(PENDING)
    })
}

/// The service cursor pulled up to.
pub fn cursor(state: &State) -> Result<u64, StateError> {
    Ok(state
        .checkpoint(CURSOR)?
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

/// The online changes set aside (parked) because they could not be
/// applied to the host, oldest first, with the host's reason: for the user
/// to see (and fix, online or in the program).
// The engine (src/sync/engine.rs) shows them; until it does, only tests call this.
pub fn parked(state: &State) -> Result<Vec<Parked>, StateError> {
    state.parked()
}

/// How many online changes are parked.
// The engine (src/sync/engine.rs) shows them; until it does, only tests call this.
#[cfg_attr(not(test), allow(dead_code))]
pub fn parked_count(state: &State) -> Result<usize, StateError> {
    state.parked_count()
}

/// Makes the next pull try every parked change again (after the user fixed
/// what the program refused), instead of waiting for [`PARKED_RETRY`].
// The engine (src/sync/engine.rs) shows them; until it does, only tests call this.
pub fn retry_parked(state: &mut State) -> Result<(), StateError> {
    state.commit(|b| b.retry_parked_now())
}

/// A host row's entries in one window, coalesced.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub entity: String,
    pub local_id: Value,
    pub key: String,
    /// The row is gone (its last entry is a delete, or it was deleted since).
    pub deleted: bool,
    pub record: Option<Fields>,
    /// Any entry came from the host (not only applies from online).
    pub from_host: bool,
}

/// Coalesces change-log entries per row, in the order rows first appear;
/// the row's last entry gives its state.
pub fn coalesce(entries: &[LogEntry]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for entry in entries {
        let key = convert::local_key(&entry.local_id).unwrap_or_default();
        let deleted = entry.op == Op::Delete || entry.record.is_none();
        let at = *index
            .entry((entry.entity.clone(), key.clone()))
            .or_insert_with(|| {
                rows.push(Row {
                    entity: entry.entity.clone(),
                    local_id: entry.local_id.clone(),
                    key,
                    deleted,
                    record: None,
                    from_host: false,
                });
                rows.len() - 1
            });
        let row = &mut rows[at];
        row.deleted = deleted;
        row.record = if deleted { None } else { entry.record.clone() };
        row.from_host |= entry.origin == Origin::Host;
    }
    rows
}

/// The fields of `current` that differ from the shadow (absent = null);
/// every field when there is no shadow.
pub fn changed_fields(shadow: Option<&Shadow>, current: &Fields) -> Vec<String> {
    current
        .iter()
        .filter(|(name, value)| match shadow {
            None => true,
            Some(shadow) => shadow.fields.get(*name).unwrap_or(&Value::Null) != *value,
        })
        .map(|(name, _)| name.clone())
        .collect()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Sends the host's changes after the stored position (one batch of at
/// most [`BATCH`] entries); see the module documentation.
pub async fn push_local<H: HostChanges, R: SyncRemote>(
    schema: &Schema,
    host: &H,
    remote: &R,
    state: &mut State,
) -> Result<PushReport, SyncError> {
    let position = host_position(state)?;
    let pending = state
        .checkpoint(PENDING)?
        .and_then(|p| serde_json::from_str::<PendingPush>(&p).ok())
        .filter(|p| p.after == position);
    let (pending, read) = match pending {
        Some(pending) => (pending, 0),
        None => {
            let page = host
                .read_changes(position, BATCH)
                .map_err(|e| SyncError::Host(e.to_string()))?;
            if page.changes.is_empty() {
                if page.last_seq > position {
                    state.commit(|b| b.set_checkpoint(POSITION, &page.last_seq.to_string()))?;
                }
                return Ok(PushReport {
                    more: page.last_seq > position,
                    ..PushReport::default()
                });
            }
            let read = page.changes.len();
            (prepare(schema, state, position, page)?, read)
        }
    };
    let answer = if pending.changes.is_empty() {
        None
    } else {
        Some(push_checked(remote, &pending.key, &pending.changes, pending.last_seq).await?)
    };
    let recorded_at = now();
    state.commit(|b| {
        if let Some(answer) = &answer {
            for (change, result) in pending.changes.iter().zip(&answer.results) {
                match change.op {
                    Op::Delete => {
                        b.remove_shadow(&change.entity, &change.global_id)?;
                        b.unmap(&change.entity, &change.local_key)?;
                    }
                    Op::Upsert => b.set_shadow(
                        &change.entity,
                        &change.global_id,
                        result.version,
                        &change.fields,
                    )?,
                }
                // The service merged the host's record over the parked
                // online change (conflicts resolved and recorded); what of
                // it survives online comes back in the next pull.
                b.unpark(&change.entity, &change.global_id)?;
            }
            for c in &answer.conflicts {
                b.record_conflict(&LocalConflict::from_service(c, &recorded_at))?;
            }
        }
        for (entity, local) in &pending.outbox {
            b.remove_from_outbox(entity, local)?;
        }
        b.set_checkpoint(POSITION, &pending.last_seq.to_string())?;
        b.clear_checkpoint(PENDING)
    })?;
    let mut entities = BTreeMap::new();
    for change in &pending.changes {
        *entities.entry(change.entity.clone()).or_insert(0) += 1;
    }
    Ok(PushReport {
        read,
        pushed: pending.changes.len(),
        conflicts: answer.map_or(0, |a| a.conflicts.len()),
        more: pending.last_seq > position,
        entities,
    })
}

/// One push, its answer checked: one result per change.
async fn push_checked<R: SyncRemote>(
    remote: &R,
    key: &str,
    changes: &[OutChange],
    host_position: u64,
) -> Result<PushAnswer, SyncError> {
    let answer = remote
        .push_changes(key, changes, host_position)
        .await
        .map_err(|e| {
            if R::is_host_restored(&e) {
                SyncError::HostRestored(e.to_string())
            } else {
                SyncError::Remote(e.to_string())
            }
        })?;
    if answer.results.len() != changes.len() {
        return Err(SyncError::Protocol(format!(
            "{} results for {} changes",
            answer.results.len(),
            changes.len()
        )));
    }
    Ok(answer)
}

/// Pushes rows outside the change log — a takeover's or a restore
/// reconciliation's (docs/SYNC_PROTOCOL.md §9.5, §10) — whose ids are
/// committed already, then stores their shadows and the conflicts the
/// service answered. The idempotency key `<kind>:<entity>:<digest>` names
/// the contents, so the same rows sent again are applied once and rows read
/// again with other values are a new push. Answers the conflicts.
pub(crate) async fn push_rows<R: SyncRemote>(
    remote: &R,
    state: &mut State,
    kind: &str,
    entity: &str,
    changes: &[OutChange],
    host_position: u64,
) -> Result<usize, SyncError> {
    use sha2::{Digest, Sha256};
    if changes.is_empty() {
        return Ok(0);
    }
    let body = serde_json::to_vec(changes).map_err(|e| StateError::Convert(e.to_string()))?;
    let key = format!("{kind}:{entity}:{:x}", Sha256::digest(body));
    let answer = push_checked(remote, &key, changes, host_position).await?;
    let recorded_at = now();
    state.commit(|b| {
        for (change, result) in changes.iter().zip(&answer.results) {
            b.set_shadow(
                &change.entity,
                &change.global_id,
                result.version,
                &change.fields,
            )?;
        }
        for c in &answer.conflicts {
            b.record_conflict(&LocalConflict::from_service(c, &recorded_at))?;
        }
        Ok(())
    })?;
    Ok(answer.conflicts.len())
}

/// Builds the batch for one window and commits it (with the ids it mints)
/// as the pending push.
fn prepare(
    schema: &Schema,
    state: &mut State,
    after: u64,
    page: LogPage,
) -> Result<PendingPush, SyncError> {
    let outbox: BTreeSet<(String, String)> = state.outbox()?.into_iter().collect();
    let rows: Vec<Row> = coalesce(&page.changes)
        .into_iter()
        .filter(|r| r.from_host || outbox.contains(&(r.entity.clone(), r.key.clone())))
        .collect();
    // What is known before the transaction: ids and shadows.
    let mut known = Vec::with_capacity(rows.len());
    for row in &rows {
        let global = state.global_id(&row.entity, &row.key)?;
        let shadow = match &global {
            Some(g) => state.shadow(&row.entity, g)?,
            None => None,
        };
        known.push((global, shadow));
    }
    let state_id = match state.checkpoint(STATE_ID)? {
        Some(id) => id,
        None => uuid::Uuid::new_v4().to_string(),
    };
    let key = format!("inc:{state_id}:{after}:{}", page.last_seq);
    let mut changes = Vec::new();
    let mut sent_outbox = Vec::new();
    let mut pending = None;
    state.commit(|b| {
        b.set_checkpoint(STATE_ID, &state_id)?;
        for (row, (global, shadow)) in rows.iter().zip(known) {
            if outbox.contains(&(row.entity.clone(), row.key.clone())) {
                sent_outbox.push((row.entity.clone(), row.key.clone()));
            }
            let Some(entity) = schema::entity(schema, &row.entity) else {
                tracing::warn!(
                    "the change log names {}, which the program does not declare",
                    row.entity
                );
                continue;
            };
            if row.deleted {
                // A row never sent has nothing online to delete.
                if let Some(global_id) = global {
                    changes.push(OutChange {
                        entity: row.entity.clone(),
                        global_id,
                        local_key: row.key.clone(),
                        op: Op::Delete,
                        base_version: shadow.map(|s| s.version),
                        fields: Fields::new(),
                        changed: Vec::new(),
                    });
                }
                continue;
            }
            let record = row.record.clone().unwrap_or_default();
            let global_id = match global {
                Some(g) => g,
                None => b.global_id_or_mint(&row.entity, &row.key)?,
            };
            let fields = convert::to_online::<SyncError>(entity, &record, |target, key| {
                Ok(b.global_id_or_mint(target, key)?)
            })
            .map_err(|e| StateError::Convert(e.to_string()))?;
            let changed = changed_fields(shadow.as_ref(), &fields);
            if changed.is_empty() {
                continue;
            }
            changes.push(OutChange {
                entity: row.entity.clone(),
                global_id,
                local_key: row.key.clone(),
                op: Op::Upsert,
                base_version: shadow.map(|s| s.version),
                fields,
                changed,
            });
        }
        let batch = PendingPush {
            after,
            last_seq: page.last_seq,
            key: key.clone(),
            changes: std::mem::take(&mut changes),
            outbox: std::mem::take(&mut sent_outbox),
        };
        let text = serde_json::to_string(&batch).map_err(|e| StateError::Convert(e.to_string()))?;
        b.set_checkpoint(PENDING, &text)?;
        pending = Some(batch);
        Ok(())
    })?;
    pending.ok_or_else(|| SyncError::Protocol("no batch was prepared".into()))
}

/// Whether the host has changes of its own not pushed yet.
fn host_has_unpushed<H: HostChanges>(host: &H, state: &State) -> Result<bool, SyncError> {
    if state.checkpoint(PENDING)?.is_some() {
        return Ok(true);
    }
    let page = host
        .read_changes(host_position(state)?, BATCH)
        .map_err(|e| SyncError::Host(e.to_string()))?;
    Ok(page.changes.iter().any(|e| e.origin == Origin::Host))
}

/// A change from online on its way to the host.
#[derive(Debug, Clone)]
struct Incoming {
    change: RemoteChange,
    /// A parked change tried again: not from this page, so it never holds
    /// the cursor (it stays parked instead).
    retry: bool,
}

impl Incoming {
    fn global_id(&self) -> String {
        self.change.global_id.to_string()
    }
}

/// A parked change as stored: the record's state online when it was
/// parked (a newer state from the service replaces it).
#[derive(Serialize, Deserialize)]
struct StoredChange {
    seq: u64,
    version: u64,
    deleted: bool,
    fields: Fields,
}

/// What to do with one change after the host answered.
enum Settle {
    /// Stored like any applied change.
    Applied,
    /// The guard held: nothing stored; a change of this page holds the
    /// cursor, a retried one stays parked.
    Skipped,
    /// Set aside with the reason (and the record it waits for).
    Park(String, Option<(String, String)>),
}

fn settle(result: Option<&Applied>) -> Settle {
    match result {
        Some(r) if r.outcome == ApplyOutcome::Skipped => Settle::Skipped,
        Some(r) if r.outcome == ApplyOutcome::Refused => Settle::Park(
            r.reason
                .clone()
                .unwrap_or_else(|| "the program refused it without a reason".into()),
            None,
        ),
        _ => Settle::Applied,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// When a change parked now is due for its next try.
fn retry_at() -> i64 {
    unix_now().saturating_add(PARKED_RETRY.as_secs() as i64)
}

/// Parks `incoming` (or, for a retried change that was skipped or still
/// waits, keeps it parked as it was).
fn park(
    b: &mut Batch<'_>,
    incoming: &Incoming,
    reason: &str,
    waits_for: Option<&(String, String)>,
    now: &str,
) -> Result<(), StateError> {
    let change = &incoming.change;
    let stored = serde_json::to_string(&StoredChange {
        seq: change.seq,
        version: change.version,
        deleted: change.deleted,
        fields: change.fields.clone(),
    })
    .map_err(|e| StateError::Convert(e.to_string()))?;
    tracing::warn!(
        "an online change of {} {} was set aside: {reason}",
        change.entity,
        change.global_id
    );
    b.park(&ToPark {
        entity: &change.entity,
        global_id: &incoming.global_id(),
        change: &stored,
        reason,
        now,
        retry_at: retry_at(),
        waits_for: waits_for.map(|(e, g)| (e.as_str(), g.as_str())),
    })
}

/// Parked changes to try in this pull: those due, and those waiting for a
/// record that arrived (in this page, among the due ones, or earlier) —
/// except records this page brings a newer state of.
fn parked_retries(state: &State, page: &[Incoming]) -> Result<Vec<Incoming>, SyncError> {
    let in_page: BTreeSet<(String, String)> = page
        .iter()
        .map(|i| (i.change.entity.clone(), i.global_id()))
        .collect();
    let candidates = state.parked_for_retry(unix_now(), BATCH)?;
    let due: BTreeSet<(String, String)> = candidates
        .iter()
        .filter(|p| p.due)
        .map(|p| (p.entity.clone(), p.global_id.clone()))
        .collect();
    let mut retries = Vec::new();
    for parked in candidates {
        if in_page.contains(&(parked.entity.clone(), parked.global_id.clone())) {
            continue;
        }
        let wanted = parked.due
            || match &parked.waits_for {
                Some(target) => {
                    in_page.contains(target)
                        || due.contains(target)
                        || state.local_id(&target.0, &target.1)?.is_some()
                }
                None => false,
            };
        if !wanted {
            continue;
        }
        let (Ok(stored), Ok(global_id)) = (
            serde_json::from_str::<StoredChange>(&parked.change),
            Uuid::parse_str(&parked.global_id),
        ) else {
            tracing::warn!(
                "the parked change of {} {} is damaged and cannot be tried again",
                parked.entity,
                parked.global_id
            );
            continue;
        };
        retries.push(Incoming {
            change: RemoteChange {
                seq: stored.seq,
                entity: parked.entity,
                global_id,
                version: stored.version,
                deleted: stored.deleted,
                fields: stored.fields,
            },
            retry: true,
        });
    }
    Ok(retries)
}

/// `records.apply`, checked to answer once per change.
fn apply_on_host<H: HostChanges>(host: &H, apply: &[HostApply]) -> Result<Vec<Applied>, SyncError> {
    if apply.is_empty() {
        return Ok(Vec::new());
    }
    let results = host
        .apply(apply)
        .map_err(|e| SyncError::Host(e.to_string()))?;
    if results.len() != apply.len() {
        return Err(SyncError::Host(format!(
            "records.apply answered {} results for {} changes",
            results.len(),
            apply.len()
        )));
    }
    Ok(results)
}

/// Applies the service's changes after the stored cursor to the host; see
/// the module documentation. `wait` is the long-poll time.
pub async fn pull_remote<H: HostChanges, R: SyncRemote>(
    schema: &Schema,
    host: &H,
    remote: &R,
    state: &mut State,
    limit: u32,
    wait: Duration,
) -> Result<PullReport, SyncError> {
    let after = cursor(state)?;
    let page = remote
        .changes(after, limit, wait)
        .await
        .map_err(|e| SyncError::Remote(e.to_string()))?;
    let mut report = PullReport {
        cursor: after,
        ..PullReport::default()
    };
    // Checked after the (possibly long) wait: the host's own edits go
    // first, so that the service resolves and records any conflict.
    if host_has_unpushed(host, state)? {
        report.host_first = true;
        report.parked = state.parked_count()?;
        return Ok(report);
    }
    // An edit the host makes after that check still wins: every update and
    // delete is guarded by the position pushed up to.
    let guard = host_position(state)?;
    let order: BTreeMap<&str, usize> = schema::travel_order(schema)?
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let rank = |entity: &str| order.get(entity).copied().unwrap_or(usize::MAX);
    let mut incoming: Vec<Incoming> = page
        .changes
        .into_iter()
        .map(|change| Incoming {
            change,
            retry: false,
        })
        .collect();
    let retries = parked_retries(state, &incoming)?;
    incoming.extend(retries);
    let (mut deletes, mut upserts): (Vec<_>, Vec<_>) =
        incoming.into_iter().partition(|i| i.change.deleted);
    upserts.sort_by_key(|i| (rank(&i.change.entity), i.change.seq));
    deletes.sort_by_key(|i| (std::cmp::Reverse(rank(&i.change.entity)), i.change.seq));

    // Sequence numbers of page changes that must come again.
    let mut held: Vec<u64> = Vec::new();
    let mut pending = upserts;
    let mut waiting: Vec<(Incoming, (String, String))> = Vec::new();
    while !pending.is_empty() {
        let mut apply = Vec::new();
        // (change, local key when known, index into the apply results)
        let mut sent = Vec::new();
        let mut unconvertible = Vec::new();
        let mut deferred = Vec::new();
        for incoming in pending {
            let change = &incoming.change;
            let Some(entity) = schema::entity(schema, &change.entity) else {
                tracing::warn!(
                    "the service sent {}, which the program does not declare",
                    change.entity
                );
                continue;
            };
            let global_id = incoming.global_id();
            let local = state.local_id(&change.entity, &global_id)?;
            let wanted: Fields = match &local {
                None if !entity.online_create => continue,
                None => change.fields.clone(),
                Some(_) => {
                    let shadow = state.shadow(&change.entity, &global_id)?;
                    entity
                        .fields
                        .iter()
                        .filter(|f| f.direction == Direction::TwoWay && !f.assigned_by_host)
                        .filter_map(|f| {
                            let value = change.fields.get(&f.name).unwrap_or(&Value::Null);
                            let before = shadow
                                .as_ref()
                                .map(|s| s.fields.get(&f.name).unwrap_or(&Value::Null));
                            (before != Some(value)).then(|| (f.name.clone(), value.clone()))
                        })
                        .collect()
                }
            };
            let host_fields = match convert::to_host(entity, &wanted, |target, global| {
                state.local_id(target, global).ok().flatten()
            }) {
                Ok(fields) => fields,
                Err(ConvertError::TargetNotHere {
                    target, global_id, ..
                }) => {
                    deferred.push((incoming, (target, global_id)));
                    continue;
                }
                Err(e) => {
                    unconvertible.push((incoming, e.to_string()));
                    continue;
                }
            };
            let index = if local.is_none() || !host_fields.is_empty() {
                apply.push(HostApply {
                    entity: change.entity.clone(),
                    local_id: local.as_deref().map(convert::local_id),
                    global_id: local
                        .is_none()
                        .then(|| change.global_id.hyphenated().to_string()),
                    op: Op::Upsert,
                    fields: host_fields,
                    skip_if_host_changed_after: local.is_some().then_some(guard),
                });
                Some(apply.len() - 1)
            } else {
                None
            };
            sent.push((incoming, local, index));
        }
        if sent.is_empty() && unconvertible.is_empty() {
            waiting = deferred;
            break;
        }
        let results = apply_on_host(host, &apply)?;
        let now = now();
        state.commit(|b| {
            for (incoming, reason) in &unconvertible {
                park(b, incoming, reason, None, &now)?;
            }
            for (incoming, local, index) in &sent {
                let change = &incoming.change;
                let global_id = incoming.global_id();
                let result = index.map(|i| &results[i]);
                match settle(result) {
                    Settle::Applied => {}
                    Settle::Skipped => {
                        report.skipped += 1;
                        if incoming.retry {
                            b.postpone_parked(&change.entity, &global_id, retry_at(), None)?;
                        } else {
                            held.push(change.seq);
                        }
                        continue;
                    }
                    Settle::Park(reason, waits_for) => {
                        park(b, incoming, &reason, waits_for.as_ref(), &now)?;
                        continue;
                    }
                }
                match (local, result) {
                    (None, Some(result)) => {
                        let key = convert::local_key(&result.local_id).ok_or_else(|| {
                            StateError::Convert(format!(
                                "the program answered the local id {} for a new record",
                                result.local_id
                            ))
                        })?;
                        b.map(&change.entity, &key, &global_id)?;
                        if !result.assigned.is_empty() {
                            b.add_to_outbox(&change.entity, &key)?;
                        }
                        report.created += 1;
                        *report.entities.entry(change.entity.clone()).or_insert(0) += 1;
                    }
                    (Some(_), Some(_)) => {
                        report.updated += 1;
                        *report.entities.entry(change.entity.clone()).or_insert(0) += 1;
                    }
                    _ => {}
                }
                b.set_shadow(&change.entity, &global_id, change.version, &change.fields)?;
                b.unpark(&change.entity, &global_id)?;
            }
            Ok(())
        })?;
        pending = deferred.into_iter().map(|(incoming, _)| incoming).collect();
    }
    // A change whose target is not in the host: a retried one stays
    // parked; one whose target is parked is parked too; otherwise it holds
    // the cursor, and the next pull starts with it — and when it already
    // did (nothing before it is left to pass), the target is not coming
    // with it, so it is parked, to be tried again when the target arrives.
    let mut park_waiting = Vec::new();
    for (incoming, target) in waiting {
        if incoming.retry {
            park_waiting.push((incoming, target, None));
        } else if state.is_parked(&target.0, &target.1)? {
            let reason = format!(
                "{} refers to {} {}, which was set aside too",
                incoming.change.entity, target.0, target.1
            );
            park_waiting.push((incoming, target, Some(reason)));
        } else if incoming.change.seq.saturating_sub(1) <= after {
            let reason = format!(
                "{} refers to {} {}, which is not in the program",
                incoming.change.entity, target.0, target.1
            );
            park_waiting.push((incoming, target, Some(reason)));
        } else {
            report.waiting += 1;
            held.push(incoming.change.seq);
        }
    }

    let mut apply = Vec::new();
    let mut sent = Vec::new();
    let mut nothing_to_delete = Vec::new();
    for incoming in deletes {
        let global_id = incoming.global_id();
        match state.local_id(&incoming.change.entity, &global_id)? {
            Some(local) => {
                apply.push(HostApply {
                    entity: incoming.change.entity.clone(),
                    local_id: Some(convert::local_id(&local)),
                    global_id: None,
                    op: Op::Delete,
                    fields: Fields::new(),
                    skip_if_host_changed_after: Some(guard),
                });
                sent.push((incoming, local));
            }
            // Never in the host (or gone already): a parked create or
            // update of it is moot.
            None => nothing_to_delete.push((incoming.change.entity.clone(), global_id)),
        }
    }
    let results = apply_on_host(host, &apply)?;
    let settled: Vec<Settle> = results.iter().map(|r| settle(Some(r))).collect();
    for ((incoming, _), settled) in sent.iter().zip(&settled) {
        if matches!(settled, Settle::Skipped) && !incoming.retry {
            held.push(incoming.change.seq);
        }
    }
    let new_cursor = match held.iter().min() {
        Some(seq) => seq.saturating_sub(1).max(after),
        None => page.cursor.max(after),
    };
    let now = now();
    state.commit(|b| {
        for (incoming, target, reason) in &park_waiting {
            match reason {
                Some(reason) => park(b, incoming, reason, Some(target), &now)?,
                None => b.postpone_parked(
                    &incoming.change.entity,
                    &incoming.global_id(),
                    retry_at(),
                    Some((&target.0, &target.1)),
                )?,
            }
        }
        for ((incoming, local), settled) in sent.iter().zip(settled) {
            let entity = &incoming.change.entity;
            let global_id = incoming.global_id();
            match settled {
                Settle::Applied => {
                    b.unmap(entity, local)?;
                    b.remove_shadow(entity, &global_id)?;
                    b.unpark(entity, &global_id)?;
                    report.deleted += 1;
                    *report.entities.entry(entity.clone()).or_insert(0) += 1;
                }
                Settle::Skipped => {
                    report.skipped += 1;
                    if incoming.retry {
                        b.postpone_parked(entity, &global_id, retry_at(), None)?;
                    }
                }
                Settle::Park(reason, waits_for) => {
                    park(b, incoming, &reason, waits_for.as_ref(), &now)?;
                }
            }
        }
        for (entity, global_id) in &nothing_to_delete {
            b.unpark(entity, global_id)?;
        }
        b.set_checkpoint(CURSOR, &new_cursor.to_string())
    })?;
    report.cursor = new_cursor;
    report.parked = state.parked_count()?;
    if new_cursor > after {
        remote
            .ack(new_cursor)
            .await
            .map_err(|e| SyncError::Remote(e.to_string()))?;
    }
    Ok(report)
}

/// One round: the host's changes first (until the log is read to the end),
/// then one pull. (The engine interleaves the two itself.)
#[cfg(test)]
pub async fn sync_once<H: HostChanges, R: SyncRemote>(
    schema: &Schema,
    host: &H,
    remote: &R,
    state: &mut State,
    wait: Duration,
) -> Result<(Vec<PushReport>, PullReport), SyncError> {
    let mut pushes = Vec::new();
    loop {
        let report = push_local(schema, host, remote, state).await?;
        let more = report.more;
        pushes.push(report);
        if !more {
            break;
        }
    }
    let pull = pull_remote(schema, host, remote, state, 1_000, wait).await?;
    Ok((pushes, pull))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::{Host, HostChannel, HostError};
    use od_client::{PushResult, RemoteChange, Uuid};
    use parking_lot::Mutex;
    use serde_json::json;
    use std::cell::RefCell;
    use std::sync::Arc;

    pub(crate) fn fields(value: Value) -> Fields {
        serde_json::from_value(value).unwrap()
    }

    /// Contacts with a two-way `city` too, so that two fields can be edited
    /// on two sides.
    pub(crate) fn schema() -> Schema {
        serde_json::from_value(json!({"version": 1, "entities": [
            {"name": "contact_persons", "title": "Contact persons", "parent": "contacts", "fields": [
                {"name": "contact_id", "type": "reference", "entity": "contacts", "required": true, "online": "read_write", "direction": "two_way"},
                {"name": "name", "type": "text", "required": true, "online": "read_write", "direction": "two_way"}]},
            {"name": "contacts", "title": "Contacts", "fields": [
                {"name": "number", "type": "integer", "required": true, "online": "read_only", "direction": "host_to_online", "assigned_by_host": true},
                {"name": "name", "type": "text", "required": true, "online": "read_write", "direction": "two_way"},
                {"name": "city", "type": "text", "online": "read_write", "direction": "two_way"},
                {"name": "salesperson_id", "type": "reference", "entity": "employees", "online": "read_write", "direction": "two_way"}]},
            {"name": "employees", "title": "Employees", "online_create": false, "fields": [
                {"name": "name", "type": "text", "required": true, "online": "read_only", "direction": "host_to_online"}]}
        ]}))
        .unwrap()
    }

    #[derive(Default, Clone)]
    pub(crate) struct Tables {
        rows: BTreeMap<String, BTreeMap<i64, Fields>>,
        /// Creates by global id, as the host simulator keeps them.
        created: BTreeMap<(String, String), (i64, Fields)>,
        /// (seq, entity, local id, op, origin)
        log: Vec<(u64, String, i64, Op, Origin)>,
        next_id: i64,
        next_number: i64,
        /// The host's rule against contacts in Atlantis is lifted.
        atlantis_known: bool,
        /// The generation marker (`sync.marker.set`), part of a backup.
        marker: Option<String>,
    }

    impl Tables {
        fn log(&mut self, entity: &str, id: i64, op: Op, origin: Origin) {
            let seq = self.log.len() as u64 + 1;
            self.log.push((seq, entity.to_owned(), id, op, origin));
        }

        fn edit(&mut self, entity: &str, id: i64, values: Fields, origin: Origin) {
            self.rows
                .get_mut(entity)
                .and_then(|r| r.get_mut(&id))
                .expect("row")
                .extend(values);
            self.log(entity, id, Op::Upsert, origin);
        }

        /// Why the host refuses a change of `records.apply`, if it does:
        /// a reference to a row that does not exist, an update of a row
        /// that does not exist, and its one business rule: no contact in
        /// Atlantis.
        fn refusal(&self, change: &Value) -> Option<String> {
            let entity = change["entity"].as_str().unwrap_or_default();
            for (field, target) in [("contact_id", "contacts"), ("salesperson_id", "employees")] {
                if let Some(id) = change["fields"][field].as_i64() {
                    if !self.rows.get(target).is_some_and(|r| r.contains_key(&id)) {
                        return Some(format!(
                            "{field} refers to {target} {id}, which does not exist"
                        ));
                    }
                }
            }
            if change["op"] == "upsert" {
                if let Some(id) = change["local_id"].as_i64() {
                    if !self.rows.get(entity).is_some_and(|r| r.contains_key(&id)) {
                        return Some(format!("{entity} {id} does not exist"));
                    }
                }
            }
            (change["fields"]["city"] == "Atlantis" && !self.atlantis_known)
                .then(|| "the program knows no city called Atlantis".to_owned())
        }

        fn create(&mut self, entity: &str, mut fields: Fields, origin: Origin) -> (i64, Fields) {
            self.next_id += 1;
            let id = self.next_id;
            let mut assigned = Fields::new();
            if entity == "contacts" && fields.get("number").is_none_or(Value::is_null) {
                self.next_number += 1;
                assigned.insert("number".into(), json!(10_000 + self.next_number));
                fields.extend(assigned.clone());
            }
            self.rows
                .entry(entity.to_owned())
                .or_default()
                .insert(id, fields);
            self.log(entity, id, Op::Upsert, origin);
            (id, assigned)
        }
    }

    /// A host with tables in memory and a real change log: every write is
    /// logged with its origin (`online` for `records.apply`), answering
    /// `changes.read` and `records.apply` as docs/HOST_CHANNEL.md says.
    /// An edit the host makes inside `records.apply`, before it writes:
    /// the user's edit racing the pull (after its check for unpushed edits).
    type Race = Box<dyn FnOnce(&mut Tables) + Send>;

    #[derive(Default)]
    pub(crate) struct LogHost {
        tables: Mutex<Tables>,
        before_apply: Mutex<Option<Race>>,
        /// `records.apply` fails as a whole (the database is locked).
        fail_apply: std::sync::atomic::AtomicBool,
    }

    impl LogHost {
        pub(crate) fn allow_atlantis(&self) {
            self.tables.lock().atlantis_known = true;
        }

        pub(crate) fn forbid_atlantis(&self) {
            self.tables.lock().atlantis_known = false;
        }
    }

    impl LogHost {
        pub(crate) fn create(&self, entity: &str, values: Value) -> i64 {
            self.tables
                .lock()
                .create(entity, fields(values), Origin::Host)
                .0
        }

        pub(crate) fn edit(&self, entity: &str, id: i64, values: Value) {
            self.tables
                .lock()
                .edit(entity, id, fields(values), Origin::Host);
        }

        /// The host user edits the row while the next `records.apply` runs,
        /// just before it writes (the race of docs/SYNC_PROTOCOL.md §6).
        pub(crate) fn edit_during_next_apply(&self, entity: &str, id: i64, values: Value) {
            let (entity, values) = (entity.to_owned(), fields(values));
            *self.before_apply.lock() = Some(Box::new(move |t: &mut Tables| {
                t.edit(&entity, id, values, Origin::Host)
            }));
        }

        pub(crate) fn fail_applies(&self, fail: bool) {
            self.fail_apply
                .store(fail, std::sync::atomic::Ordering::SeqCst);
        }

        pub(crate) fn delete(&self, entity: &str, id: i64) {
            let mut t = self.tables.lock();
            t.rows.get_mut(entity).and_then(|r| r.remove(&id));
            t.log(entity, id, Op::Delete, Origin::Host);
        }

        /// The global ids the host remembers for rows it created from
        /// online, by local id (as the host simulator's `records.page`
        /// tells them).
        pub(crate) fn remembered(&self, entity: &str) -> BTreeMap<i64, String> {
            self.tables
                .lock()
                .created
                .iter()
                .filter(|((e, _), _)| e == entity)
                .map(|((_, global_id), (id, _))| (*id, global_id.clone()))
                .collect()
        }

        /// A copy of the whole company database, change log included.
        pub(crate) fn backup(&self) -> Tables {
            self.tables.lock().clone()
        }

        /// The generation marker the host keeps.
        pub(crate) fn marker(&self) -> Option<String> {
            self.tables.lock().marker.clone()
        }

        /// Puts a backup back (what a restore does to the database).
        pub(crate) fn restore(&self, backup: Tables) {
            *self.tables.lock() = backup;
        }

        pub(crate) fn row(&self, entity: &str, id: i64) -> Option<Fields> {
            self.tables.lock().rows.get(entity)?.get(&id).cloned()
        }

        pub(crate) fn rows(&self, entity: &str) -> BTreeMap<i64, Fields> {
            self.tables
                .lock()
                .rows
                .get(entity)
                .cloned()
                .unwrap_or_default()
        }

        fn answer(&self, method: &str, params: &Value) -> Result<Value, String> {
            let mut t = self.tables.lock();
            match method {
                "changes.read" => {
                    let after = params["after"].as_u64().unwrap_or(0);
                    let limit = params["limit"].as_u64().unwrap_or(1000) as usize;
                    let entries: Vec<Value> = t
                        .log
                        .iter()
                        .filter(|e| e.0 > after)
                        .take(limit)
                        .map(|(seq, entity, id, op, origin)| {
                            let record = t.rows.get(entity).and_then(|r| r.get(id));
                            json!({"seq": seq, "entity": entity, "local_id": id, "op": op,
                                   "origin": origin, "record": if *op == Op::Delete { None } else { record }})
                        })
                        .collect();
                    let last = entries.last().map_or(after, |e| e["seq"].as_u64().unwrap());
                    Ok(json!({"changes": entries, "last_seq": last}))
                }
                "records.apply" => {
                    if let Some(edit) = self.before_apply.lock().take() {
                        edit(&mut t);
                    }
                    if self.fail_apply.load(std::sync::atomic::Ordering::SeqCst) {
                        return Err("database is locked".into());
                    }
                    let per_change = params["per_change"].as_bool().unwrap_or(false);
                    let changes = params["changes"].as_array().cloned().unwrap_or_default();
                    let skipped = |t: &Tables, c: &Value| {
                        let (Some(after), Some(id)) = (
                            c["skip_if_host_changed_after"].as_u64(),
                            c["local_id"].as_i64(),
                        ) else {
                            return false;
                        };
                        t.log.iter().any(|(seq, entity, row, _, origin)| {
                            *seq > after
                                && entity == c["entity"].as_str().unwrap_or_default()
                                && *row == id
                                && *origin == Origin::Host
                        })
                    };
                    if !per_change {
                        // All or nothing: check every change first.
                        for (i, c) in changes.iter().enumerate() {
                            if let Some(reason) = t.refusal(c).filter(|_| !skipped(&t, c)) {
                                return Err(format!(
                                    "Change {} was refused, and no change was applied: {reason}",
                                    i + 1
                                ));
                            }
                        }
                    }
                    let mut results = Vec::new();
                    for c in changes {
                        let entity = c["entity"].as_str().unwrap().to_owned();
                        let local = c["local_id"].as_i64();
                        if skipped(&t, &c) {
                            results.push(json!({"local_id": local, "assigned": {},
                                "outcome": "skipped", "reason": "changed in the program"}));
                            continue;
                        }
                        if let Some(reason) = t.refusal(&c) {
                            results.push(json!({"local_id": local, "assigned": {},
                                "outcome": "refused", "reason": reason}));
                            continue;
                        }
                        let values: Fields =
                            serde_json::from_value(c["fields"].clone()).unwrap_or_default();
                        match (c["op"].as_str(), local) {
                            (Some("upsert"), None) => {
                                let global = c["global_id"]
                                    .as_str()
                                    .map(|g| (entity.clone(), g.to_owned()));
                                let earlier =
                                    global.as_ref().and_then(|g| t.created.get(g)).cloned();
                                let (id, assigned) = match earlier {
                                    Some((id, assigned))
                                        if t.rows
                                            .get(&entity)
                                            .is_some_and(|r| r.contains_key(&id)) =>
                                    {
                                        (id, assigned)
                                    }
                                    _ => {
                                        let made = t.create(&entity, values, Origin::Online);
                                        if let Some(g) = global {
                                            t.created.insert(g, made.clone());
                                        }
                                        made
                                    }
                                };
                                results.push(json!({"local_id": id, "assigned": assigned}));
                            }
                            (Some("upsert"), Some(id)) => {
                                t.edit(&entity, id, values, Origin::Online);
                                results.push(json!({"local_id": id, "assigned": {}}));
                            }
                            (Some("delete"), Some(id)) => {
                                if t.rows
                                    .get_mut(&entity)
                                    .and_then(|r| r.remove(&id))
                                    .is_some()
                                {
                                    t.log(&entity, id, Op::Delete, Origin::Online);
                                }
                                results.push(json!({"local_id": id, "assigned": {}}));
                            }
                            _ => return Err(format!("bad change {c}")),
                        }
                    }
                    Ok(json!({ "results": results }))
                }
                "sync.marker.get" => Ok(json!({ "generation": t.marker, "position": null })),
                "sync.marker.set" => {
                    t.marker = params["generation"].as_str().map(str::to_owned);
                    Ok(json!({ "generation": t.marker, "position": t.log.len() }))
                }
                other => Err(format!("unexpected method {other}")),
            }
        }
    }

    impl HostChannel for LogHost {
        fn request(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, HostError> {
            let params: Value = serde_json::from_slice(params).unwrap_or(Value::Null);
            self.answer(method, &params)
                .map(|v| v.to_string().into_bytes())
                .map_err(|message| HostError::Failed {
                    method: method.to_owned(),
                    message,
                })
        }
        fn request_pump(&self) {}
    }

    pub(crate) fn host() -> (Arc<LogHost>, Host) {
        let log = Arc::new(LogHost::default());
        (log.clone(), Host::new(log))
    }

    /// A service in memory: records pushes, answers one prepared page.
    #[derive(Default)]
    struct FakeRemote {
        pushes: RefCell<Vec<(String, Vec<OutChange>)>>,
        page: RefCell<Vec<RemoteChange>>,
        acked: RefCell<Vec<u64>>,
    }

    impl SyncRemote for FakeRemote {
        type Error = String;
        async fn push_changes(
            &self,
            key: &str,
            changes: &[OutChange],
            _host_position: u64,
        ) -> Result<PushAnswer, String> {
            self.pushes
                .borrow_mut()
                .push((key.to_owned(), changes.to_vec()));
            Ok(PushAnswer {
                results: changes
                    .iter()
                    .map(|c| PushResult {
                        global_id: Uuid::parse_str(&c.global_id).unwrap(),
                        version: c.base_version.unwrap_or(0) + 1,
                        deleted: c.op == Op::Delete,
                    })
                    .collect(),
                conflicts: Vec::new(),
                cursor: 0,
            })
        }
        async fn changes(&self, after: u64, _: u32, _: Duration) -> Result<ChangesPage, String> {
            let changes: Vec<RemoteChange> = self
                .page
                .borrow()
                .iter()
                .filter(|c| c.seq > after)
                .cloned()
                .collect();
            let cursor = changes.iter().map(|c| c.seq).max().unwrap_or(after);
            Ok(ChangesPage { changes, cursor })
        }
        async fn ack(&self, cursor: u64) -> Result<u64, String> {
            self.acked.borrow_mut().push(cursor);
            Ok(cursor)
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn entry(seq: u64, id: i64, op: Op, origin: Origin, record: Option<Value>) -> LogEntry {
        LogEntry {
            seq,
            entity: "contacts".into(),
            local_id: json!(id),
            op,
            origin,
            record: record.map(fields),
        }
    }

    #[test]
    fn entries_coalesce_per_row_and_echoes_are_told_apart() {
        let rows = coalesce(&[
            entry(1, 1, Op::Upsert, Origin::Host, Some(json!({"name": "A"}))),
            entry(2, 2, Op::Upsert, Origin::Online, Some(json!({"name": "B"}))),
            entry(
                3,
                1,
                Op::Upsert,
                Origin::Online,
                Some(json!({"name": "A2"})),
            ),
            entry(4, 3, Op::Upsert, Origin::Host, None),
            entry(5, 3, Op::Delete, Origin::Host, None),
            entry(
                6,
                2,
                Op::Upsert,
                Origin::Online,
                Some(json!({"name": "B2"})),
            ),
        ]);
        let summary: Vec<(&str, bool, bool)> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.deleted, r.from_host))
            .collect();
        assert_eq!(
            summary,
            [("1", false, true), ("2", false, false), ("3", true, true)]
        );
        assert_eq!(rows[0].record, Some(fields(json!({"name": "A2"}))));
        assert_eq!(rows[1].record, Some(fields(json!({"name": "B2"}))));
    }

    #[test]
    fn changed_fields_are_the_ones_differing_from_the_shadow() {
        let current = fields(json!({"name": "A", "city": null, "number": 5}));
        let shadow = Shadow {
            version: 3,
            fields: fields(json!({"name": "A", "number": 4})),
        };
        assert_eq!(changed_fields(Some(&shadow), &current), ["number"]);
        assert_eq!(
            changed_fields(None, &current),
            ["city", "name", "number"],
            "no shadow: every field"
        );
    }

    #[test]
    fn a_push_sends_host_changes_only_with_their_base_and_skips_echoes() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        let e = log.create("employees", json!({"name": "E"}));
        let c = log.create(
            "contacts",
            json!({"name": "A", "city": "Oslo", "salesperson_id": e}),
        );
        let gone = log.create("contacts", json!({"name": "Short-lived"}));
        log.delete("contacts", gone);
        let report = block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        assert_eq!((report.read, report.pushed), (4, 2));
        let (key, sent) = remote.pushes.borrow()[0].clone();
        assert!(key.starts_with("inc:") && key.ends_with(":0:4"), "{key}");
        assert_eq!(sent[1].entity, "contacts");
        assert_eq!(sent[1].base_version, None);
        let employee = state
            .global_id("employees", &e.to_string())
            .unwrap()
            .unwrap();
        assert_eq!(sent[1].fields["salesperson_id"], json!(employee));
        assert_eq!(host_position(&state).unwrap(), 4);

        // An edit: only the changed field, against the shadow's version.
        log.edit("contacts", c, json!({"city": "Bergen"}));
        block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        let (_, sent) = remote.pushes.borrow()[1].clone();
        assert_eq!(sent[0].changed, ["city"]);
        assert_eq!(sent[0].base_version, Some(1));

        // An apply from online is an echo: passed, not pushed.
        host.apply(&[HostApply {
            entity: "contacts".into(),
            local_id: Some(json!(c)),
            global_id: None,
            op: Op::Upsert,
            fields: fields(json!({"name": "From the web"})),
            skip_if_host_changed_after: None,
        }])
        .unwrap();
        let report = block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        assert_eq!((report.read, report.pushed), (1, 0));
        assert_eq!(remote.pushes.borrow().len(), 2);
        assert_eq!(host_position(&state).unwrap(), 6);

        // A delete of a sent row goes as a delete and forgets the row.
        log.delete("contacts", c);
        block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        let (_, sent) = remote.pushes.borrow()[2].clone();
        assert_eq!((sent[0].op, sent[0].base_version), (Op::Delete, Some(2)));
        assert_eq!(state.global_id("contacts", &c.to_string()).unwrap(), None);
        let nothing = block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        assert_eq!(nothing, PushReport::default());
    }

    fn remote_change(seq: u64, entity: &str, id: Uuid, values: Value) -> RemoteChange {
        RemoteChange {
            seq,
            entity: entity.into(),
            global_id: id,
            version: 1,
            deleted: false,
            fields: fields(values),
        }
    }

    /// Regression (G2): the plugin stopped after the host created a record
    /// from online but before its state recorded the new local id; the same
    /// change pulled again must not create the record twice.
    #[test]
    fn a_create_pulled_again_after_a_crash_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let before_crash = tempfile::tempdir().unwrap();
        drop(State::open(dir.path()).unwrap());
        std::fs::copy(
            dir.path().join("state.db"),
            before_crash.path().join("state.db"),
        )
        .unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        let contact = Uuid::new_v4();
        *remote.page.borrow_mut() = vec![remote_change(
            3,
            "contacts",
            contact,
            json!({"name": "Fjellet AS"}),
        )];
        let mut state = State::open(dir.path()).unwrap();
        block_on(pull_remote(
            &schema(),
            &host,
            &remote,
            &mut state,
            1000,
            Duration::ZERO,
        ))
        .unwrap();
        // The state as it was before the pull committed: the local id is lost.
        let mut restarted = State::open(before_crash.path()).unwrap();
        block_on(pull_remote(
            &schema(),
            &host,
            &remote,
            &mut restarted,
            1000,
            Duration::ZERO,
        ))
        .unwrap();
        assert_eq!(log.rows("contacts").len(), 1, "{:?}", log.rows("contacts"));
        assert_eq!(
            restarted
                .local_id("contacts", &contact.to_string())
                .unwrap(),
            state.local_id("contacts", &contact.to_string()).unwrap()
        );
    }

    #[test]
    fn a_pull_creates_parents_before_the_children_that_refer_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        let (contact, person) = (Uuid::new_v4(), Uuid::new_v4());
        *remote.page.borrow_mut() = vec![
            remote_change(
                5,
                "contact_persons",
                person,
                json!({"contact_id": contact, "name": "P"}),
            ),
            remote_change(6, "contacts", contact, json!({"name": "C", "city": "Oslo"})),
        ];
        let report = block_on(pull_remote(
            &schema(),
            &host,
            &remote,
            &mut state,
            1000,
            Duration::ZERO,
        ))
        .unwrap();
        assert_eq!((report.created, report.waiting, report.cursor), (2, 0, 6));
        let contact_local = state
            .local_id("contacts", &contact.to_string())
            .unwrap()
            .unwrap();
        let person_local = state
            .local_id("contact_persons", &person.to_string())
            .unwrap()
            .unwrap();
        let row = log
            .row("contact_persons", person_local.parse().unwrap())
            .unwrap();
        assert_eq!(
            row["contact_id"],
            json!(contact_local.parse::<i64>().unwrap())
        );
        let contact_row = log.row("contacts", contact_local.parse().unwrap()).unwrap();
        assert_eq!(contact_row["number"], json!(10_001), "the host assigned it");
        assert_eq!(
            state.outbox().unwrap(),
            [("contacts".to_owned(), contact_local.clone())]
        );
        assert_eq!(*remote.acked.borrow(), [6]);

        // The assigned number goes online with the next push, the rest of
        // the applied record does not (echo).
        block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        let (_, sent) = remote.pushes.borrow()[0].clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].changed, ["number"]);
        assert_eq!(sent[0].base_version, Some(1));
        assert!(state.outbox().unwrap().is_empty());
    }

    #[test]
    fn a_reference_to_a_record_not_here_holds_the_cursor_then_waits_parked() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        let (target, person) = (Uuid::new_v4(), Uuid::new_v4());
        *remote.page.borrow_mut() = vec![
            remote_change(3, "contacts", Uuid::new_v4(), json!({"name": "C"})),
            remote_change(
                4,
                "contact_persons",
                person,
                json!({"contact_id": target, "name": "P"}),
            ),
            remote_change(5, "contacts", Uuid::new_v4(), json!({"name": "D"})),
        ];
        let pull = |state: &mut State| {
            block_on(pull_remote(
                &schema(),
                &host,
                &remote,
                state,
                1000,
                Duration::ZERO,
            ))
            .unwrap()
        };
        let report = pull(&mut state);
        assert_eq!((report.created, report.waiting, report.cursor), (2, 1, 3));
        // The next pull starts with it, and its target is still not there:
        // it is parked instead of holding the cursor for ever.
        let report = pull(&mut state);
        assert_eq!(
            (report.waiting, report.parked, report.cursor),
            (0, 1, 5),
            "{report:?}"
        );
        let parked = parked(&state).unwrap();
        assert_eq!(parked[0].global_id, person.to_string());
        assert!(
            parked[0]
                .reason
                .contains(&format!("contacts {target}, which is not in the program")),
            "{parked:?}"
        );
        // The target arrives: the parked change follows in the same pull.
        remote
            .page
            .borrow_mut()
            .push(remote_change(8, "contacts", target, json!({"name": "T"})));
        let report = pull(&mut state);
        assert_eq!(
            (report.created, report.parked, report.cursor),
            (2, 0, 8),
            "{report:?}"
        );
        let person_local = state
            .local_id("contact_persons", &person.to_string())
            .unwrap()
            .unwrap();
        let target_local: i64 = state
            .local_id("contacts", &target.to_string())
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            log.row("contact_persons", person_local.parse().unwrap())
                .unwrap()["contact_id"],
            json!(target_local)
        );
    }

    fn pull(host: &Host, remote: &FakeRemote, state: &mut State) -> PullReport {
        block_on(pull_remote(
            &schema(),
            host,
            remote,
            state,
            1000,
            Duration::ZERO,
        ))
        .unwrap()
    }

    /// Regression (G2, G7): the host user edited a record after the pull
    /// had checked for unpushed host edits and before `records.apply`; the
    /// online values overwrote the edit, and no conflict was recorded.
    #[test]
    fn a_host_edit_racing_the_pull_is_not_overwritten_and_is_pushed_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        let c = log.create("contacts", json!({"name": "A", "city": "Oslo"}));
        block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        let gc = state
            .global_id("contacts", &c.to_string())
            .unwrap()
            .unwrap();
        let mut web = remote_change(
            10,
            "contacts",
            Uuid::parse_str(&gc).unwrap(),
            json!({"number": 10_001, "name": "Web", "city": "Oslo", "salesperson_id": null}),
        );
        web.version = 2;
        *remote.page.borrow_mut() = vec![web];
        log.edit_during_next_apply("contacts", c, json!({"name": "Host"}));
        let report = pull(&host, &remote, &mut state);
        assert!(!report.host_first, "the edit came after the check");
        assert_eq!(
            (report.updated, report.skipped, report.cursor),
            (0, 1, 9),
            "{report:?}"
        );
        assert!(report.entities.is_empty());
        assert_eq!(log.row("contacts", c).unwrap()["name"], json!("Host"));
        assert_eq!(
            state.shadow("contacts", &gc).unwrap().unwrap().version,
            1,
            "nothing stored for the skipped change"
        );
        assert_eq!(*remote.acked.borrow(), [9], "not past the skipped change");
        // The host's edit goes first, against the version the host last saw,
        // so that the service finds the conflict (host wins, recorded).
        let push = block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        assert_eq!(push.entities, BTreeMap::from([("contacts".to_owned(), 1)]));
        let (_, sent) = remote.pushes.borrow().last().cloned().unwrap();
        assert_eq!(
            (sent[0].changed.clone(), sent[0].base_version),
            (vec!["name".to_owned()], Some(1))
        );
        assert_eq!(sent[0].fields["name"], json!("Host"));
    }

    #[test]
    fn a_change_the_host_refuses_is_parked_and_the_rest_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        let (a, b, c, p) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        *remote.page.borrow_mut() = vec![
            remote_change(3, "contacts", a, json!({"name": "A"})),
            remote_change(4, "contacts", b, json!({"name": "B", "city": "Atlantis"})),
            remote_change(5, "contacts", c, json!({"name": "C"})),
            remote_change(
                6,
                "contact_persons",
                p,
                json!({"contact_id": b, "name": "P"}),
            ),
        ];
        let report = pull(&host, &remote, &mut state);
        assert_eq!(
            (report.created, report.parked, report.cursor),
            (2, 2, 6),
            "{report:?}"
        );
        assert_eq!(
            report.entities,
            BTreeMap::from([("contacts".to_owned(), 2)])
        );
        assert_eq!(*remote.acked.borrow(), [6]);
        assert_eq!(log.rows("contacts").len(), 2);
        let parked = parked(&state).unwrap();
        assert_eq!(parked_count(&state).unwrap(), 2);
        let reasons: BTreeMap<String, String> = parked
            .iter()
            .map(|p| (p.global_id.clone(), p.reason.clone()))
            .collect();
        assert!(reasons[&b.to_string()].contains("no city called Atlantis"));
        assert!(
            reasons[&p.to_string()].contains(&format!("contacts {b}, which was set aside too")),
            "{reasons:?}"
        );
        assert!(parked.iter().all(
            |p| p.entity == "contacts" || p.entity == "contact_persons" && !p.since.is_empty()
        ));

        // Not tried again before its time while nothing about it changes.
        let report = pull(&host, &remote, &mut state);
        assert_eq!((report.created, report.parked), (0, 2));

        // Fixed online: the newer state arrives, and the person waiting
        // for it follows in the same pull.
        let mut fixed = remote_change(7, "contacts", b, json!({"name": "B", "city": "Tromsø"}));
        fixed.version = 2;
        *remote.page.borrow_mut() = vec![fixed];
        let report = pull(&host, &remote, &mut state);
        assert_eq!(
            (report.created, report.parked, report.cursor),
            (2, 0, 7),
            "{report:?}"
        );
        assert_eq!(
            report.entities,
            BTreeMap::from([
                ("contact_persons".to_owned(), 1),
                ("contacts".to_owned(), 1)
            ])
        );
        assert!(super::parked(&state).unwrap().is_empty());
        let b_local: i64 = state
            .local_id("contacts", &b.to_string())
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            log.row("contacts", b_local).unwrap()["city"],
            json!("Tromsø")
        );
        let p_local: i64 = state
            .local_id("contact_persons", &p.to_string())
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            log.row("contact_persons", p_local).unwrap()["contact_id"],
            json!(b_local)
        );
        assert_eq!(
            state
                .shadow("contacts", &b.to_string())
                .unwrap()
                .unwrap()
                .version,
            2
        );
    }

    #[test]
    fn a_host_failing_the_whole_apply_fails_the_pull_and_parks_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        *remote.page.borrow_mut() = vec![
            remote_change(3, "contacts", Uuid::new_v4(), json!({"name": "A"})),
            remote_change(4, "contacts", Uuid::new_v4(), json!({"name": "B"})),
        ];
        log.fail_applies(true);
        let failed = block_on(pull_remote(
            &schema(),
            &host,
            &remote,
            &mut state,
            1000,
            Duration::ZERO,
        ));
        assert!(
            matches!(&failed, Err(SyncError::Host(m)) if m.contains("database is locked")),
            "{failed:?}"
        );
        assert_eq!(cursor(&state).unwrap(), 0);
        assert_eq!(parked_count(&state).unwrap(), 0);
        assert!(remote.acked.borrow().is_empty());
        log.fail_applies(false);
        let report = pull(&host, &remote, &mut state);
        assert_eq!((report.created, report.cursor), (2, 4));
    }

    #[test]
    fn a_parked_change_is_tried_again_later_or_superseded_by_a_host_push() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        let atlantis = Uuid::new_v4();
        *remote.page.borrow_mut() = vec![remote_change(
            3,
            "contacts",
            atlantis,
            json!({"name": "A", "city": "Atlantis"}),
        )];
        assert_eq!(pull(&host, &remote, &mut state).parked, 1);
        // The program learns of Atlantis; the user asks to try again.
        log.allow_atlantis();
        assert_eq!(pull(&host, &remote, &mut state).parked, 1, "not due yet");
        retry_parked(&mut state).unwrap();
        let report = pull(&host, &remote, &mut state);
        assert_eq!((report.created, report.parked), (1, 0), "{report:?}");
        assert_eq!(log.rows("contacts").len(), 1);

        // A parked update of a record the host then edits: the host's push
        // (against the version the host last saw) supersedes it; the
        // service merges and records any conflict.
        let c = log.create("contacts", json!({"name": "C", "city": "Oslo"}));
        block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        let gc = state
            .global_id("contacts", &c.to_string())
            .unwrap()
            .unwrap();
        let base = state.shadow("contacts", &gc).unwrap().unwrap().version;
        let mut web = remote_change(
            9,
            "contacts",
            Uuid::parse_str(&gc).unwrap(),
            json!({"number": 10_002, "name": "C", "city": "Atlantis", "salesperson_id": null}),
        );
        web.version = base + 1;
        *remote.page.borrow_mut() = vec![web];
        log.forbid_atlantis();
        assert_eq!(pull(&host, &remote, &mut state).parked, 1);
        log.edit("contacts", c, json!({"city": "Bergen"}));
        block_on(push_local(&schema(), &host, &remote, &mut state)).unwrap();
        let (_, sent) = remote.pushes.borrow().last().cloned().unwrap();
        assert_eq!(sent[0].base_version, Some(base));
        assert_eq!(parked_count(&state).unwrap(), 0);
    }

    #[test]
    fn a_pull_waits_while_the_host_has_unpushed_edits() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (log, host) = host();
        let remote = FakeRemote::default();
        log.create("contacts", json!({"name": "A"}));
        *remote.page.borrow_mut() = vec![remote_change(
            3,
            "contacts",
            Uuid::new_v4(),
            json!({"name": "C"}),
        )];
        let report = block_on(pull_remote(
            &schema(),
            &host,
            &remote,
            &mut state,
            1000,
            Duration::ZERO,
        ))
        .unwrap();
        assert!(report.host_first);
        assert_eq!(log.rows("contacts").len(), 1);
        let (_, pull) = block_on(sync_once(
            &schema(),
            &host,
            &remote,
            &mut state,
            Duration::ZERO,
        ))
        .unwrap();
        assert_eq!(pull.created, 1);
    }
}

#[cfg(test)]
mod end_to_end {
    //! Continuous sync against the real service (`TestServer`), with the
    //! in-memory host and its change log answering through the channel.
    use super::tests::{fields, host, schema};
    use super::*;
    use crate::sync::adapters::{PushError, ServiceRemote};
    use od_client::{
        Client, ClientConfig, DeviceSession, NewDevice, Secret, ServiceUrl, SessionToken, Uuid,
    };
    use od_online::testing::{TestCompany, TestServer};
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Web<'a> {
        server: &'a TestServer,
        company: &'a TestCompany,
    }

    impl Web<'_> {
        fn path(&self, entity: &str) -> String {
            format!(
                "/api/v1/companies/{}/records/{entity}",
                self.company.company_id
            )
        }
        fn get(&self, entity: &str, id: &str) -> Option<Value> {
            let answer = self
                .server
                .get(&format!("{}/{id}", self.path(entity)))
                .bearer(&self.company.session.token)
                .send();
            (answer.status == 200).then(|| answer.json()["fields"].clone())
        }
        fn create(&self, entity: &str, values: Value) -> String {
            let answer = self
                .server
                .post(&self.path(entity))
                .bearer(&self.company.session.token)
                .json(&json!({ "fields": values }))
                .send();
            assert_eq!(answer.status, 201, "{}", answer.text());
            answer.json()["global_id"].as_str().unwrap().to_owned()
        }
        fn patch(&self, entity: &str, id: &str, values: Value) {
            let answer = self
                .server
                .patch(&format!("{}/{id}", self.path(entity)))
                .bearer(&self.company.session.token)
                .json(&json!({ "fields": values }))
                .send();
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
        fn delete(&self, entity: &str, id: &str) {
            let answer = self
                .server
                .delete(&format!("{}/{id}", self.path(entity)))
                .bearer(&self.company.session.token)
                .send();
            assert_eq!(answer.status, 204, "{}", answer.text());
        }
        fn conflicts(&self) -> Vec<Value> {
            let answer = self
                .server
                .get(&format!(
                    "/api/v1/companies/{}/sync/conflicts?days=7",
                    self.company.company_id
                ))
                .bearer(&self.company.session.token)
                .send();
            answer.json()["conflicts"].as_array().unwrap().clone()
        }
    }

    async fn connect(server: &TestServer, company: &TestCompany) -> (Client, DeviceSession, u64) {
        let client = Client::new(
            ServiceUrl::parse(server.base_url()).unwrap(),
            ClientConfig::default(),
        )
        .unwrap();
        let session = SessionToken(Secret::new(company.session.token.clone()));
        let new = NewDevice {
            computer_id: "pc-1".into(),
            computer_name: "PC 1".into(),
        };
        let device = DeviceSession::new(
            client
                .create_device(
                    &session,
                    Uuid::parse_str(&company.company_id).unwrap(),
                    &new,
                )
                .await
                .unwrap(),
        );
        let lease = client.lease(&device, Some("pc-1")).await.unwrap();
        client
            .put_schema(&device, lease.fencing, &schema())
            .await
            .unwrap();
        (client, device, lease.fencing)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn edits_creates_deletes_and_conflicts_travel_both_ways_without_echo() {
        let server = TestServer::start();
        let company = server.connected_company("kari@example.com", "L-1");
        let web = Web {
            server: &server,
            company: &company,
        };
        runtime().block_on(async {
            let (client, device, fencing) = connect(&server, &company).await;
            let remote = ServiceRemote {
                client: &client,
                device: &device,
                fencing,
            };
            let (log, host) = host();
            let dir = tempfile::tempdir().unwrap();
            let mut state = State::open(dir.path()).unwrap();
            let s = schema();
            let sequence = || async { client.sync_status(&device).await.unwrap().sequence };
            macro_rules! round {
                () => {
                    sync_once(&s, &host, &remote, &mut state, Duration::ZERO)
                        .await
                        .unwrap()
                };
            }

            // Host creates reach the service, references as global ids.
            let e = log.create("employees", json!({"name": "Eva"}));
            let c = log.create(
                "contacts",
                json!({"name": "Fjord", "city": "Oslo", "salesperson_id": e}),
            );
            let p = log.create("contact_persons", json!({"contact_id": c, "name": "Per"}));
            round!();
            let gc = state
                .global_id("contacts", &c.to_string())
                .unwrap()
                .unwrap();
            let ge = state
                .global_id("employees", &e.to_string())
                .unwrap()
                .unwrap();
            let gp = state
                .global_id("contact_persons", &p.to_string())
                .unwrap()
                .unwrap();
            let online = web.get("contacts", &gc).unwrap();
            assert_eq!(
                (online["name"].clone(), online["salesperson_id"].clone()),
                (json!("Fjord"), json!(ge))
            );
            assert_eq!(online["number"], json!(10_001));

            // A host edit reaches the service.
            log.edit("contacts", c, json!({"city": "Bergen"}));
            round!();
            assert_eq!(web.get("contacts", &gc).unwrap()["city"], json!("Bergen"));

            // A web edit reaches the host, and is not pushed back.
            web.patch("contacts", &gc, json!({"name": "Fjord AS"}));
            let before = sequence().await;
            round!();
            assert_eq!(log.row("contacts", c).unwrap()["name"], json!("Fjord AS"));
            let (pushes, _) = round!();
            assert_eq!(pushes.iter().map(|p| p.pushed).sum::<usize>(), 0, "no echo");
            assert_eq!(
                sequence().await,
                before,
                "the service's sequence did not grow from the pull"
            );

            // The same field on both sides: the host wins on both, recorded.
            log.edit("contacts", c, json!({"name": "Host name"}));
            web.patch("contacts", &gc, json!({"name": "Web name"}));
            round!();
            round!();
            assert_eq!(log.row("contacts", c).unwrap()["name"], json!("Host name"));
            assert_eq!(
                web.get("contacts", &gc).unwrap()["name"],
                json!("Host name")
            );
            let local = state.conflicts().unwrap();
            assert_eq!(local.len(), 1, "{local:?}");
            assert_eq!(
                (local[0].host_value.clone(), local[0].online_value.clone()),
                (json!("Host name"), json!("Web name"))
            );
            assert_eq!(local[0].outcome, "host_wins");
            assert_eq!(web.conflicts().len(), 1);

            // Different fields merge on both sides.
            log.edit("contacts", c, json!({"city": "Tromsø"}));
            web.patch("contacts", &gc, json!({"name": "Merged"}));
            round!();
            round!();
            let row = log.row("contacts", c).unwrap();
            assert_eq!(
                (row["name"].clone(), row["city"].clone()),
                (json!("Merged"), json!("Tromsø"))
            );
            let online = web.get("contacts", &gc).unwrap();
            assert_eq!(
                (online["name"].clone(), online["city"].clone()),
                (json!("Merged"), json!("Tromsø"))
            );
            assert_eq!(state.conflicts().unwrap().len(), 1);

            // A record created online gets a host id and its number.
            let gw = web.create("contacts", json!({"name": "Web kunde", "city": "Oslo"}));
            let gwp = web.create(
                "contact_persons",
                json!({"contact_id": gw, "name": "Web person"}),
            );
            round!();
            round!();
            let w: i64 = state
                .local_id("contacts", &gw)
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            let wp: i64 = state
                .local_id("contact_persons", &gwp)
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(log.row("contacts", w).unwrap()["name"], json!("Web kunde"));
            assert_eq!(
                log.row("contact_persons", wp).unwrap()["contact_id"],
                json!(w)
            );
            let number = log.row("contacts", w).unwrap()["number"].clone();
            assert_eq!(
                web.get("contacts", &gw).unwrap()["number"],
                number,
                "the assigned number went online"
            );

            // Deletes both ways.
            log.delete("contact_persons", p);
            web.delete("contact_persons", &gwp);
            round!();
            assert_eq!(web.get("contact_persons", &gp), None);
            assert_eq!(log.row("contact_persons", wp), None);
            assert!(log.rows("contact_persons").is_empty());

            // Quiet: nothing more moves either way.
            let before = sequence().await;
            let (pushes, pull) = round!();
            assert_eq!(pushes.iter().map(|p| p.pushed).sum::<usize>(), 0);
            assert_eq!((pull.created, pull.updated, pull.deleted), (0, 0, 0));
            assert_eq!(sequence().await, before);
            assert_eq!(log.rows("contacts").len(), 2);
            let counts = client.sync_status(&device).await.unwrap().entities;
            let live: BTreeMap<String, u64> = counts
                .iter()
                .map(|e| (e.entity.clone(), e.records))
                .collect();
            assert_eq!(live.get("contacts"), Some(&2), "{counts:?}");
        });
    }

    /// Pushes to the service, then loses the answer once when told.
    struct LosesAnswer<'a> {
        inner: ServiceRemote<'a>,
        lose: AtomicBool,
    }

    impl SyncRemote for LosesAnswer<'_> {
        type Error = PushError;
        async fn push_changes(
            &self,
            key: &str,
            changes: &[OutChange],
            host_position: u64,
        ) -> Result<PushAnswer, PushError> {
            let answer = self.inner.push_changes(key, changes, host_position).await?;
            if self.lose.swap(false, Ordering::SeqCst) {
                return Err(PushError::BadId("simulated: the answer was lost".into()));
            }
            Ok(answer)
        }
        async fn changes(
            &self,
            after: u64,
            limit: u32,
            wait: Duration,
        ) -> Result<ChangesPage, PushError> {
            self.inner.changes(after, limit, wait).await
        }
        async fn ack(&self, cursor: u64) -> Result<u64, PushError> {
            self.inner.ack(cursor).await
        }
    }

    #[test]
    fn a_push_whose_answer_was_lost_is_applied_once_after_a_restart() {
        let server = TestServer::start();
        let company = server.connected_company("kari@example.com", "L-1");
        let web = Web {
            server: &server,
            company: &company,
        };
        runtime().block_on(async {
            let (client, device, fencing) = connect(&server, &company).await;
            let remote = LosesAnswer {
                inner: ServiceRemote {
                    client: &client,
                    device: &device,
                    fencing,
                },
                lose: AtomicBool::new(false),
            };
            let (log, host) = host();
            let dir = tempfile::tempdir().unwrap();
            let s = schema();
            let c = log.create("contacts", json!({"name": "Fjord", "city": "Oslo"}));
            {
                let mut state = State::open(dir.path()).unwrap();
                sync_once(&s, &host, &remote, &mut state, Duration::ZERO)
                    .await
                    .unwrap();
                log.edit("contacts", c, json!({"city": "Bergen"}));
                remote.lose.store(true, Ordering::SeqCst);
                let lost = push_local(&s, &host, &remote, &mut state).await;
                assert!(matches!(lost, Err(SyncError::Remote(_))), "{lost:?}");
            }
            let after_commit = client.sync_status(&device).await.unwrap().sequence;
            // Edited again before the restart: the retry still sends what
            // was committed online, and the new edit follows.
            log.edit("contacts", c, json!({"city": "Tromsø"}));
            let mut state = State::open(dir.path()).unwrap();
            let retry = push_local(&s, &host, &remote, &mut state).await.unwrap();
            assert_eq!(retry.pushed, 1);
            assert_eq!(
                client.sync_status(&device).await.unwrap().sequence,
                after_commit,
                "applied once"
            );
            let gc = state
                .global_id("contacts", &c.to_string())
                .unwrap()
                .unwrap();
            assert_eq!(web.get("contacts", &gc).unwrap()["city"], json!("Bergen"));
            sync_once(&s, &host, &remote, &mut state, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(web.get("contacts", &gc).unwrap()["city"], json!("Tromsø"));
            assert_eq!(
                client.sync_status(&device).await.unwrap().sequence,
                after_commit + 1
            );
            assert_eq!(
                fields(web.get("contacts", &gc).unwrap())["name"],
                json!("Fjord")
            );
        });
    }

    /// Regression (G2, G7), end to end: a host edit made between the
    /// pull's check for unpushed edits and `records.apply` was overwritten
    /// by the online values with no conflict recorded. Now it is skipped,
    /// pushed first, and the service resolves it: the host wins, recorded,
    /// both sides equal. The same for an online delete racing a host edit.
    #[test]
    fn a_host_edit_racing_a_pull_wins_and_the_conflict_is_recorded() {
        let server = TestServer::start();
        let company = server.connected_company("kari@example.com", "L-1");
        let web = Web {
            server: &server,
            company: &company,
        };
        runtime().block_on(async {
            let (client, device, fencing) = connect(&server, &company).await;
            let remote = ServiceRemote {
                client: &client,
                device: &device,
                fencing,
            };
            let (log, host) = host();
            let dir = tempfile::tempdir().unwrap();
            let mut state = State::open(dir.path()).unwrap();
            let s = schema();
            macro_rules! round {
                () => {
                    sync_once(&s, &host, &remote, &mut state, Duration::ZERO)
                        .await
                        .unwrap()
                };
            }
            let c = log.create("contacts", json!({"name": "Fjord", "city": "Oslo"}));
            round!();
            let gc = state
                .global_id("contacts", &c.to_string())
                .unwrap()
                .unwrap();

            web.patch(
                "contacts",
                &gc,
                json!({"name": "Web name", "city": "Bergen"}),
            );
            log.edit_during_next_apply("contacts", c, json!({"name": "Host name"}));
            let (_, pull) = round!();
            assert_eq!((pull.skipped, pull.updated), (1, 0), "{pull:?}");
            assert_eq!(log.row("contacts", c).unwrap()["name"], json!("Host name"));
            round!();
            round!();
            let row = log.row("contacts", c).unwrap();
            let online = web.get("contacts", &gc).unwrap();
            assert_eq!(
                (row["name"].clone(), row["city"].clone()),
                (json!("Host name"), json!("Bergen")),
                "the host's edit and the other online field"
            );
            assert_eq!(
                (online["name"].clone(), online["city"].clone()),
                (json!("Host name"), json!("Bergen"))
            );
            let local = state.conflicts().unwrap();
            assert_eq!(local.len(), 1, "{local:?}");
            assert_eq!(
                (
                    local[0].field.as_str(),
                    local[0].host_value.clone(),
                    local[0].online_value.clone(),
                    local[0].outcome.as_str()
                ),
                ("name", json!("Host name"), json!("Web name"), "host_wins")
            );
            assert_eq!(web.conflicts().len(), 1);

            // An online delete racing a host edit: the record stays, and
            // is restored online (recorded).
            web.delete("contacts", &gc);
            log.edit_during_next_apply("contacts", c, json!({"city": "Tromsø"}));
            let (_, pull) = round!();
            assert_eq!((pull.skipped, pull.deleted), (1, 0), "{pull:?}");
            round!();
            round!();
            assert_eq!(log.row("contacts", c).unwrap()["city"], json!("Tromsø"));
            assert_eq!(web.get("contacts", &gc).unwrap()["city"], json!("Tromsø"));
            let outcomes: Vec<String> = state
                .conflicts()
                .unwrap()
                .into_iter()
                .map(|c| c.outcome)
                .collect();
            assert_eq!(outcomes, ["host_wins", "online_delete_undone"]);

            // Quiet: nothing moves, nothing comes again.
            let (pushes, pull) = round!();
            assert_eq!(pushes.iter().map(|p| p.pushed).sum::<usize>(), 0);
            assert_eq!(
                (pull.created, pull.updated, pull.deleted, pull.skipped),
                (0, 0, 0, 0)
            );
        });
    }

    /// One online change the host refuses is parked with the host's reason;
    /// the others arrive and the cursor moves on; fixed online, it arrives.
    #[test]
    fn a_change_the_host_refuses_is_parked_until_it_is_fixed_online() {
        let server = TestServer::start();
        let company = server.connected_company("kari@example.com", "L-1");
        let web = Web {
            server: &server,
            company: &company,
        };
        runtime().block_on(async {
            let (client, device, fencing) = connect(&server, &company).await;
            let remote = ServiceRemote {
                client: &client,
                device: &device,
                fencing,
            };
            let (log, host) = host();
            let dir = tempfile::tempdir().unwrap();
            let mut state = State::open(dir.path()).unwrap();
            let s = schema();
            macro_rules! round {
                () => {
                    sync_once(&s, &host, &remote, &mut state, Duration::ZERO)
                        .await
                        .unwrap()
                };
            }
            web.create("contacts", json!({"name": "Good 1"}));
            let bad = web.create("contacts", json!({"name": "Bad", "city": "Atlantis"}));
            web.create("contacts", json!({"name": "Good 2"}));
            let (_, pull) = round!();
            assert_eq!((pull.created, pull.parked), (2, 1), "{pull:?}");
            assert_eq!(pull.entities, BTreeMap::from([("contacts".to_owned(), 2)]));
            let parked = parked(&state).unwrap();
            assert_eq!(
                (parked[0].entity.as_str(), parked[0].global_id.as_str()),
                ("contacts", bad.as_str())
            );
            assert!(parked[0].reason.contains("Atlantis"), "{parked:?}");
            let status = client.sync_status(&device).await.unwrap();
            assert_eq!(status.acknowledged, status.sequence, "the cursor moved on");

            web.patch("contacts", &bad, json!({"city": "Oslo"}));
            round!();
            round!();
            assert_eq!(parked_count(&state).unwrap(), 0);
            let local: i64 = state
                .local_id("contacts", &bad)
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            let row = log.row("contacts", local).unwrap();
            assert_eq!(row["city"], json!("Oslo"));
            assert_eq!(
                web.get("contacts", &bad).unwrap()["number"],
                row["number"],
                "the number the host gave went online"
            );
            assert_eq!(log.rows("contacts").len(), 3);
        });
    }
}
