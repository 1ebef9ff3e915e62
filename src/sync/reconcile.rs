//! Reconciling a restored company database row by row
//! (docs/SYNC_PROTOCOL.md §9.3), the part of Update connection after a
//! restore was noticed.
//!
//! A backup put back sets host rows to older values, brings back rows the
//! company had deleted since, and loses rows it created since. The online
//! copy still has every change synchronised up to the restore (web edits
//! included), and `state.db` its shadow of each record — the state last
//! exchanged. For every host row:
//!
//! - changed by the host after the restore was noticed (a host-origin
//!   change-log entry after the reconciled position): a host edit — left to
//!   continuous sync, which pushes it as usual (host wins per field, every
//!   conflict recorded);
//! - equal to its shadow: untouched by the restore;
//! - different: restored to older values, or edited between the restore and
//!   its detection — which cannot be told apart. For the fields that travel
//!   both ways **the online state wins**: the shadow's values are written to
//!   the host and each difference is recorded as a conflict
//!   `restore_online_wins` with both values (listed in the history, so the
//!   person can enter again what was meant). Fields only the host owns
//!   (read-only online, numbers it assigns) keep the host's value and are
//!   pushed;
//! - not known online (created after the restore; or deleted online after
//!   the backup and brought back by it): pushed as a new record.
//!
//! A mapped record the host no longer has (created after the backup, lost
//! by the restore) is created again on the host from its shadow, and its id
//! map follows the new row.
//!
//! The rules cannot see a local id the host gave again after the restore
//! to a new row (a row created after the backup had it): the new row is
//! taken for the old record. Before the detection its values lose to the
//! old record's (recorded as conflicts, nothing silently lost); after it,
//! they are pushed onto the old record.

use super::continuous::{Applied, ApplyOutcome, HostApply, HostChanges, Op, OutChange, SyncRemote};
use super::convert::{self, Fields};
use super::first_sync::HostRecords;
use super::schema::{self, Direction, Entity, Schema};
use super::state::{LocalConflict, State, StateError};
use serde_json::Value;
use std::collections::HashSet;
use thiserror::Error;

/// Rows per page and per request.
const PAGE: usize = 1_000;

/// The outcome recorded for a field the online state won.
pub const RESTORE_ONLINE_WINS: &str = "restore_online_wins";

/// What a reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Host rows set back to the online state (fields that differed).
    pub online_won: u64,
    /// Records the restore had lost, created again on the host.
    pub recreated: u64,
    /// Host rows pushed: new ones, and host-owned fields.
    pub sent: u64,
    /// Rows changed after the detection, left for continuous sync.
    pub host_edits: u64,
    /// Changes the host refused or skipped (the log says which).
    pub not_applied: u64,
}

#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("the program could not read or apply records: {0}")]
    Host(String),
    #[error("the online service did not accept the records: {0}")]
    Remote(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
}

/// Reconciles every entity (see the module documentation). `position` is
/// the position continuous sync goes on from: host changes after it are
/// host edits.
pub async fn run<H, R>(
    schema: &Schema,
    host: &H,
    remote: &R,
    state: &mut State,
    position: u64,
) -> Result<Report, ReconcileError>
where
    H: HostRecords + HostChanges,
    R: SyncRemote,
{
    let host_error = |e: &dyn std::fmt::Display| ReconcileError::Host(e.to_string());
    let edited = edited_after(host, position)?;
    let now = HostRecords::position(host).map_err(|e| host_error(&e))?;
    let mut report = Report::default();
    for entity in schema::travel_order(schema)? {
        let mut seen = HashSet::new();
        let mut after: Option<Value> = None;
        loop {
            let page = HostRecords::page(host, &entity.name, after.as_ref(), PAGE)
                .map_err(|e| host_error(&e))?;
            let Some((last, _)) = page.records.last() else {
                break;
            };
            let last = last.clone();
            let mut plan = Plan::default();
            state.commit(|b| {
                for (local_id, fields) in &page.records {
                    let Some(key) = convert::local_key(local_id) else {
                        continue;
                    };
                    seen.insert(key.clone());
                    if edited.contains(&(entity.name.clone(), key.clone())) {
                        plan.host_edits += 1;
                        continue;
                    }
                    // A row the host made from an online record (a
                    // record created again by an earlier, interrupted
                    // reconciliation) is that record.
                    if let Some(remembered) = page.remembered.get(&key) {
                        if b.global_id(&entity.name, &key)?.is_none()
                            && b.shadow(&entity.name, remembered)?.is_some()
                        {
                            b.map_if_free(&entity.name, &key, remembered)?;
                        }
                    }
                    plan.row(b, entity, local_id, &key, fields, now)?;
                }
                Ok(())
            })?;
            report.host_edits += plan.host_edits;
            apply_online_wins(host, state, &plan.online_wins, &mut report)?;
            send(remote, state, entity, plan.sends, position, &mut report).await?;
            if page.done {
                break;
            }
            after = Some(last);
        }
        recreate_lost(host, state, entity, &seen, &edited, &mut report)?;
    }
    Ok(report)
}

/// The rows the host changed after `position` (origin host).
fn edited_after<H: HostChanges>(
    host: &H,
    position: u64,
) -> Result<HashSet<(String, String)>, ReconcileError> {
    let mut edited = HashSet::new();
    let mut after = position;
    loop {
        let page = host
            .read_changes(after, PAGE)
            .map_err(|e| ReconcileError::Host(e.to_string()))?;
        for entry in &page.changes {
            if entry.origin == super::continuous::Origin::Host {
                if let Some(key) = convert::local_key(&entry.local_id) {
                    edited.insert((entry.entity.clone(), key));
                }
            }
        }
        if page.changes.is_empty() || page.last_seq <= after {
            return Ok(edited);
        }
        after = page.last_seq;
    }
}

/// A row the online state wins: the change for the host, the conflicts to
/// record once it is applied.
struct OnlineWins {
    apply: HostApply,
    conflicts: Vec<LocalConflict>,
}

#[derive(Default)]
struct Plan {
    online_wins: Vec<OnlineWins>,
    sends: Vec<OutChange>,
    host_edits: u64,
}

impl Plan {
    /// Decides one host row that was not edited after the detection.
    fn row(
        &mut self,
        b: &mut super::state::Batch<'_>,
        entity: &Entity,
        local_id: &Value,
        key: &str,
        fields: &Fields,
        now: u64,
    ) -> Result<(), StateError> {
        // Not known online — never mapped, or mapped by an earlier attempt
        // whose push did not come back (its id committed before it went):
        // a new record, sent with that id.
        let global_id = b.global_id_or_mint(&entity.name, key)?;
        let Some(shadow) = b.shadow(&entity.name, &global_id)? else {
            let online =
                convert::to_online::<StateError>(entity, fields, |t, k| b.global_id_or_mint(t, k))?;
            self.sends.push(OutChange {
                entity: entity.name.clone(),
                global_id,
                local_key: key.to_owned(),
                op: Op::Upsert,
                base_version: None,
                changed: online.keys().cloned().collect(),
                fields: online,
            });
            return Ok(());
        };
        let online = convert::to_online::<StateError>(entity, fields, |t, k| {
            Ok(b.global_id(t, k)?
                .unwrap_or_else(|| format!("(not sent: {t} {k})")))
        })?;
        let mut wins = Fields::new();
        let mut kept = Vec::new();
        let mut conflicts = Vec::new();
        for field in &entity.fields {
            let host_value = online.get(&field.name).unwrap_or(&Value::Null);
            let online_value = shadow.fields.get(&field.name).unwrap_or(&Value::Null);
            if host_value == online_value {
                continue;
            }
            if field.direction == Direction::TwoWay && !field.assigned_by_host {
                wins.insert(field.name.clone(), online_value.clone());
                conflicts.push(LocalConflict {
                    entity: entity.name.clone(),
                    global_id: global_id.clone(),
                    field: field.name.clone(),
                    host_value: host_value.clone(),
                    online_value: online_value.clone(),
                    outcome: RESTORE_ONLINE_WINS.to_owned(),
                    recorded_at: String::new(),
                });
            } else {
                kept.push(field.name.clone());
            }
        }
        if !wins.is_empty() {
            let fields = convert::to_host(entity, &wins, |t, g| b.local_id(t, g).ok().flatten())?;
            self.online_wins.push(OnlineWins {
                apply: HostApply {
                    entity: entity.name.clone(),
                    local_id: Some(local_id.clone()),
                    global_id: None,
                    op: Op::Upsert,
                    fields,
                    skip_if_host_changed_after: Some(now),
                },
                conflicts,
            });
        }
        if !kept.is_empty() {
            self.sends.push(OutChange {
                entity: entity.name.clone(),
                global_id,
                local_key: key.to_owned(),
                op: Op::Upsert,
                base_version: Some(shadow.version),
                fields: online,
                changed: kept,
            });
        }
        Ok(())
    }
}

fn stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Writes the online state to the host; the conflicts of what was
/// written are recorded.
fn apply_online_wins<H: HostChanges>(
    host: &H,
    state: &mut State,
    rows: &[OnlineWins],
    report: &mut Report,
) -> Result<(), ReconcileError> {
    if rows.is_empty() {
        return Ok(());
    }
    let changes: Vec<HostApply> = rows.iter().map(|r| r.apply.clone()).collect();
    let results = host
        .apply(&changes)
        .map_err(|e| ReconcileError::Host(e.to_string()))?;
    let recorded_at = stamp();
    state.commit(|b| {
        for (row, result) in rows.iter().zip(&results) {
            if !applied(row.apply.entity.as_str(), result, report) {
                continue;
            }
            report.online_won += 1;
            for conflict in &row.conflicts {
                b.record_conflict(&LocalConflict {
                    recorded_at: recorded_at.clone(),
                    ..conflict.clone()
                })?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// Whether the host applied a change; a skipped or refused one is counted
/// and logged.
fn applied(entity: &str, result: &Applied, report: &mut Report) -> bool {
    if result.outcome == ApplyOutcome::Applied {
        return true;
    }
    report.not_applied += 1;
    tracing::warn!(
        entity,
        local_id = %result.local_id,
        outcome = ?result.outcome,
        reason = result.reason.as_deref().unwrap_or(""),
        "the reconciliation of a restore could not write a record"
    );
    false
}

/// Pushes rows online does not have, and host-owned fields.
async fn send<R: SyncRemote>(
    remote: &R,
    state: &mut State,
    entity: &Entity,
    changes: Vec<OutChange>,
    position: u64,
    report: &mut Report,
) -> Result<(), ReconcileError> {
    super::continuous::push_rows(remote, state, "reconcile", &entity.name, &changes, position)
        .await
        .map_err(|e| match e {
            super::continuous::SyncError::State(e) => ReconcileError::State(e),
            other => ReconcileError::Remote(other.to_string()),
        })?;
    report.sent += changes.len() as u64;
    Ok(())
}

/// Creates again on the host the mapped records it no longer has.
fn recreate_lost<H: HostChanges>(
    host: &H,
    state: &mut State,
    entity: &Entity,
    seen: &HashSet<String>,
    edited: &HashSet<(String, String)>,
    report: &mut Report,
) -> Result<(), ReconcileError> {
    let mut lost = Vec::new();
    for (key, global_id) in state.mapped(&entity.name)? {
        // Deleted after the detection: continuous sync pushes the delete.
        if seen.contains(&key) || edited.contains(&(entity.name.clone(), key.clone())) {
            continue;
        }
        let Some(shadow) = state.shadow(&entity.name, &global_id)? else {
            continue;
        };
        match convert::to_host(entity, &shadow.fields, |t, g| {
            state.local_id(t, g).ok().flatten()
        }) {
            Ok(fields) => lost.push((key, global_id, fields)),
            Err(e) => {
                report.not_applied += 1;
                tracing::warn!("a record the restore lost cannot be created again yet: {e}");
            }
        }
    }
    // Their old local ids go first: the host may give a new row one of
    // them. Should this stop half-way, the rows already created are found
    // again by the global id the host remembers.
    state.commit(|b| {
        for (key, _, _) in &lost {
            b.unmap(&entity.name, key)?;
        }
        Ok(())
    })?;
    for chunk in lost.chunks(PAGE) {
        let changes: Vec<HostApply> = chunk
            .iter()
            .map(|(_, global_id, fields)| HostApply {
                entity: entity.name.clone(),
                local_id: None,
                global_id: Some(global_id.clone()),
                op: Op::Upsert,
                fields: fields.clone(),
                skip_if_host_changed_after: None,
            })
            .collect();
        let results = host
            .apply(&changes)
            .map_err(|e| ReconcileError::Host(e.to_string()))?;
        state.commit(|b| {
            for ((_, global_id, _), result) in chunk.iter().zip(&results) {
                if !applied(&entity.name, result, report) {
                    continue;
                }
                let Some(new_key) = convert::local_key(&result.local_id) else {
                    continue;
                };
                if !b.map_if_free(&entity.name, &new_key, global_id)? {
                    tracing::warn!(
                        entity = entity.name,
                        key = new_key,
                        "a record created again got a local id that is linked to another record"
                    );
                    continue;
                }
                if !result.assigned.is_empty() {
                    // The host gave it new numbers: they go online.
                    b.add_to_outbox(&entity.name, &new_key)?;
                }
                report.recreated += 1;
            }
            Ok(())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
    use crate::sync::continuous::tests::schema;
    use crate::sync::engine::tests::Program;
    use od_client::{ChangesPage, PushAnswer, PushResult, Uuid};
    use serde_json::json;
    use std::cell::{Cell, RefCell};
    use std::time::Duration;

    /// A service whose first push is lost on the way; then it answers.
    #[derive(Default)]
    struct Flaky {
        failed_once: Cell<bool>,
        pushed: RefCell<Vec<OutChange>>,
    }

    impl SyncRemote for Flaky {
        type Error = String;
        async fn push_changes(
            &self,
            _key: &str,
            changes: &[OutChange],
            _host_position: u64,
        ) -> Result<PushAnswer, String> {
            if !self.failed_once.replace(true) {
                return Err("connection reset".into());
            }
            self.pushed.borrow_mut().extend(changes.iter().cloned());
            Ok(PushAnswer {
                results: changes
                    .iter()
                    .map(|c| PushResult {
                        global_id: Uuid::parse_str(&c.global_id).unwrap(),
                        version: 1,
                        deleted: false,
                    })
                    .collect(),
                conflicts: Vec::new(),
                cursor: 0,
            })
        }
        async fn changes(&self, after: u64, _: u32, _: Duration) -> Result<ChangesPage, String> {
            Ok(ChangesPage {
                changes: Vec::new(),
                cursor: after,
            })
        }
        async fn ack(&self, cursor: u64) -> Result<u64, String> {
            Ok(cursor)
        }
    }

    /// Regression: a reconciliation whose push of new rows failed kept
    /// their minted ids; run again, it took them for rows "never exchanged"
    /// and sent nothing, so the rows never went online.
    #[test]
    fn new_rows_whose_push_failed_are_sent_when_it_runs_again() {
        let program = Program::new();
        let rows: Vec<i64> = (0..3)
            .map(|i| {
                program.log.create(
                    "contacts",
                    json!({"number": 10_000 + i, "name": format!("Ny {i}"), "city": "Oslo", "salesperson_id": null}),
                )
            })
            .collect();
        let host = Host::new(program.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let remote = Flaky::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let position = HostRecords::position(&host).unwrap();
        let first = runtime.block_on(run(&schema(), &host, &remote, &mut state, position));
        assert!(matches!(first, Err(ReconcileError::Remote(_))), "{first:?}");
        let report = runtime
            .block_on(run(&schema(), &host, &remote, &mut state, position))
            .unwrap();
        assert_eq!(report.sent, 3, "{report:?}");
        let pushed = remote.pushed.borrow();
        for row in rows {
            let global = state
                .global_id("contacts", &row.to_string())
                .unwrap()
                .unwrap();
            assert!(pushed.iter().any(|c| c.global_id == global), "{row}");
            assert!(state.shadow("contacts", &global).unwrap().is_some());
        }
    }
}
