//! The SQLite side of synchronisation: functions over one transaction,
//! called by `SqliteStore`'s `Store` methods. Statements are prepared once
//! per connection (`prepare_cached`), so a 1,000-record batch runs the same
//! two statements per record inside one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    Disconnection, Fence, Fenced, HostMarker, Lease, LeaseOutcome, PushOutcome, StoredChanges,
    SyncCounts, Unregistration, WebOutcome, WebWrite,
};
use crate::sync::{
    apply_web, merge_push, wire_number, with_new_host_key, Checksum, Conflict, FieldMeta,
    PushAnswer, PushRequest, PushResult, StoredRecord, CONFLICT_RETENTION_DAYS,
};

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn to_sql_error(error: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

fn from_sql_error(
    index: usize,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
}

/// Whether the company exists and is connected (not disconnected).
fn connected(connection: &Connection, company: &str) -> rusqlite::Result<bool> {
    Ok(connection
        .prepare_cached("SELECT disconnected_at IS NULL FROM companies WHERE id = ?1")?
        .query_row([company], |row| row.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Makes sure the company's `sync_state` row exists.
fn ensure_state(connection: &Connection, company: &str) -> rusqlite::Result<()> {
    connection
        .prepare_cached("INSERT OR IGNORE INTO sync_state (company_id) VALUES (?1)")?
        .execute([company])?;
    Ok(())
}

pub(super) fn lease(connection: &Connection, company: Uuid) -> rusqlite::Result<Lease> {
    let lease = connection
        .query_row(
            "SELECT computer_id, fencing, lease_expires_at FROM sync_state WHERE company_id = ?1",
            [company.to_string()],
            |row| {
                let expires: Option<i64> = row.get(2)?;
                Ok(Lease {
                    computer_id: row.get(0)?,
                    fencing: row.get(1)?,
                    expires_at: expires.and_then(DateTime::from_timestamp_micros),
                })
            },
        )
        .optional()?;
    Ok(lease.unwrap_or(Lease {
        computer_id: None,
        fencing: 0,
        expires_at: None,
    }))
}

/// Whether `fence` is the company's current, unexpired lease.
fn fence_holds(connection: &Connection, company: Uuid, fence: &Fence) -> rusqlite::Result<bool> {
    let lease = lease(connection, company)?;
    Ok(
        lease.computer_id.as_deref() == Some(fence.computer_id.as_str())
            && lease.fencing == fence.fencing
            && lease.expires_at.is_some_and(|expires| expires > fence.now),
    )
}

pub(super) fn acquire_lease(
    transaction: &Transaction<'_>,
    company: Uuid,
    computer_id: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> rusqlite::Result<LeaseOutcome> {
    let company_text = company.to_string();
    if !connected(transaction, &company_text)? {
        return Ok(LeaseOutcome::NotConnected);
    }
    ensure_state(transaction, &company_text)?;
    let current = lease(transaction, company)?;
    match current.computer_id.as_deref() {
        Some(other) if other != computer_id => return Ok(LeaseOutcome::Held(current)),
        _ => {}
    }
    let renewing =
        current.computer_id.is_some() && current.expires_at.is_some_and(|expires| expires > now);
    let fencing = if renewing {
        current.fencing
    } else {
        current.fencing + 1
    };
    transaction.execute(
        "UPDATE sync_state SET computer_id = ?2, fencing = ?3, lease_expires_at = ?4
         WHERE company_id = ?1",
        params![company_text, computer_id, fencing, micros(until)],
    )?;
    Ok(LeaseOutcome::Granted(Lease {
        computer_id: Some(computer_id.to_owned()),
        fencing,
        expires_at: Some(until),
    }))
}

pub(super) fn move_sync_computer(
    transaction: &Transaction<'_>,
    company: Uuid,
    computer_id: Option<String>,
) -> rusqlite::Result<Lease> {
    let company_text = company.to_string();
    ensure_state(transaction, &company_text)?;
    transaction.execute(
        "UPDATE sync_state SET computer_id = ?2, fencing = fencing + 1, lease_expires_at = NULL
         WHERE company_id = ?1",
        params![company_text, computer_id],
    )?;
    lease(transaction, company)
}

pub(super) fn put_schema(
    transaction: &Transaction<'_>,
    company: Uuid,
    fence: &Fence,
    schema: &str,
) -> rusqlite::Result<Fenced<()>> {
    if !fence_holds(transaction, company, fence)? {
        return Ok(Fenced::Stale);
    }
    transaction.execute(
        "UPDATE sync_state SET schema = ?2, schema_at = ?3 WHERE company_id = ?1",
        params![company.to_string(), schema, micros(fence.now)],
    )?;
    Ok(Fenced::Done(()))
}

pub(super) fn schema(connection: &Connection, company: Uuid) -> rusqlite::Result<Option<String>> {
    Ok(connection
        .query_row(
            "SELECT schema FROM sync_state WHERE company_id = ?1",
            [company.to_string()],
            |row| row.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

const RECORD_COLUMNS: &str =
    "entity, global_id, version, deleted, fields, meta, seq, origin_device, host_key";

fn record_from(row: &Row<'_>) -> rusqlite::Result<StoredRecord> {
    let global_id: String = row.get(1)?;
    let fields: String = row.get(4)?;
    let meta: String = row.get(5)?;
    let origin: Option<String> = row.get(7)?;
    Ok(StoredRecord {
        entity: row.get(0)?,
        global_id: Uuid::parse_str(&global_id).map_err(|error| from_sql_error(1, error))?,
        version: row.get(2)?,
        deleted: row.get(3)?,
        fields: serde_json::from_str(&fields).map_err(|error| from_sql_error(4, error))?,
        meta: serde_json::from_str::<BTreeMap<String, FieldMeta>>(&meta)
            .map_err(|error| from_sql_error(5, error))?,
        seq: row.get(6)?,
        origin_device: origin
            .map(|text| Uuid::parse_str(&text).map_err(|error| from_sql_error(7, error)))
            .transpose()?,
        host_key: row.get(8)?,
    })
}

fn find_record(
    connection: &Connection,
    company: &str,
    entity: &str,
    global_id: &str,
) -> rusqlite::Result<Option<StoredRecord>> {
    connection
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM sync_records
             WHERE company_id = ?1 AND entity = ?2 AND global_id = ?3"
        ))?
        .query_row(params![company, entity, global_id], record_from)
        .optional()
}

fn save_record(
    connection: &Connection,
    company: &str,
    record: &StoredRecord,
    now: i64,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO sync_records
               (company_id, entity, global_id, version, deleted, fields, meta, seq, origin_device,
                updated_at, host_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (company_id, entity, global_id) DO UPDATE SET
               version = excluded.version, deleted = excluded.deleted, fields = excluded.fields,
               meta = excluded.meta, seq = excluded.seq, origin_device = excluded.origin_device,
               updated_at = excluded.updated_at, host_key = excluded.host_key",
        )?
        .execute(params![
            company,
            record.entity,
            record.global_id.to_string(),
            record.version,
            record.deleted,
            serde_json::to_string(&record.fields).map_err(to_sql_error)?,
            serde_json::to_string(&record.meta).map_err(to_sql_error)?,
            record.seq,
            record.origin_device.map(|id| id.to_string()),
            now,
            record.host_key,
        ])?;
    Ok(())
}

fn sequence(connection: &Connection, company: &str) -> rusqlite::Result<i64> {
    connection
        .prepare_cached("SELECT seq FROM sync_state WHERE company_id = ?1")?
        .query_row([company], |row| row.get(0))
}

fn set_sequence(connection: &Connection, company: &str, seq: i64) -> rusqlite::Result<()> {
    connection
        .prepare_cached("UPDATE sync_state SET seq = ?2 WHERE company_id = ?1")?
        .execute(params![company, seq])?;
    Ok(())
}

/// Records a push's conflicts and, when there are any, deletes the
/// company's conflicts older than the retention: the history only grows
/// here, so pruning here keeps it bounded deterministically (the periodic
/// housekeeping is for companies that stopped recording conflicts).
fn record_conflicts(
    connection: &Connection,
    company: &str,
    conflicts: &[Conflict],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    if conflicts.is_empty() {
        return Ok(());
    }
    let oldest_kept = now - chrono::Duration::days(CONFLICT_RETENTION_DAYS);
    connection
        .prepare_cached("DELETE FROM sync_conflicts WHERE company_id = ?1 AND at < ?2")?
        .execute(params![company, micros(oldest_kept)])?;
    let now = micros(now);
    let mut statement = connection.prepare_cached(
        "INSERT INTO sync_conflicts
           (company_id, entity, global_id, field, host_value, online_value, outcome, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for conflict in conflicts {
        statement.execute(params![
            company,
            conflict.entity,
            conflict.global_id.to_string(),
            conflict.field,
            conflict.host_value.to_string(),
            conflict.online_value.to_string(),
            conflict.outcome,
            now,
        ])?;
    }
    Ok(())
}

pub(super) fn push(
    transaction: &Transaction<'_>,
    company: Uuid,
    device: Uuid,
    fence: &Fence,
    key: &str,
    request: &PushRequest,
    host_position: Option<i64>,
) -> rusqlite::Result<PushOutcome> {
    let company_text = company.to_string();
    ensure_state(transaction, &company_text)?;
    if !fence_holds(transaction, company, fence)? {
        return Ok(PushOutcome::StaleFencing);
    }
    let stored: Option<String> = transaction
        .prepare_cached("SELECT answer FROM sync_idempotency WHERE company_id = ?1 AND key = ?2")?
        .query_row(params![company_text, key], |row| row.get(0))
        .optional()?;
    if let Some(answer) = stored {
        let answer: PushAnswer =
            serde_json::from_str(&answer).map_err(|error| from_sql_error(0, error))?;
        return Ok(PushOutcome::Replayed(answer));
    }
    if let Some(position) = host_position {
        let stored = host_marker(transaction, &company_text)?.position;
        if let Some(stored) = stored.filter(|stored| position < *stored) {
            return Ok(PushOutcome::HostBehind(stored));
        }
        transaction
            .prepare_cached(
                "UPDATE sync_state SET host_position = MAX(COALESCE(host_position, ?2), ?2)
                 WHERE company_id = ?1",
            )?
            .execute(params![company_text, position])?;
    }
    let now = micros(fence.now);
    let mut seq = sequence(transaction, &company_text)?;
    let mut results = Vec::with_capacity(request.changes.len());
    let mut conflicts = Vec::new();
    for change in &request.changes {
        let global_id = change.global_id.to_string();
        let existing = find_record(transaction, &company_text, &change.entity, &global_id)?;
        let (new, found) = merge_push(request.mode, existing.as_ref(), change, seq + 1, device);
        conflicts.extend(found);
        let result = match new {
            Some(record) => {
                seq += 1;
                save_record(transaction, &company_text, &record, now)?;
                PushResult {
                    global_id: change.global_id,
                    version: wire_number(record.version),
                    deleted: record.deleted,
                }
            }
            None => {
                // No data changed, but the change may name a new host key
                // (e.g. a new sync computer's first push): stored with the
                // same statement, no new version or sequence number.
                if let Some(keyed) = existing
                    .as_ref()
                    .and_then(|record| with_new_host_key(record, change))
                {
                    save_record(transaction, &company_text, &keyed, now)?;
                }
                PushResult {
                    global_id: change.global_id,
                    version: existing
                        .as_ref()
                        .map_or(0, |record| wire_number(record.version)),
                    deleted: existing.as_ref().is_none_or(|record| record.deleted),
                }
            }
        };
        results.push(result);
    }
    set_sequence(transaction, &company_text, seq)?;
    record_conflicts(transaction, &company_text, &conflicts, fence.now)?;
    let answer = PushAnswer {
        results,
        conflicts,
        cursor: wire_number(seq),
    };
    transaction
        .prepare_cached(
            "INSERT INTO sync_idempotency (company_id, key, answer, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            company_text,
            key,
            serde_json::to_string(&answer).map_err(to_sql_error)?,
            now
        ])?;
    Ok(PushOutcome::Applied(answer))
}

/// The devices of `device`'s computer in its company, past and present: a
/// record whose newest change one of them pushed is an echo for it.
fn same_computer(connection: &Connection, device: Uuid) -> rusqlite::Result<Vec<Uuid>> {
    let mut statement = connection.prepare_cached(
        "SELECT d.id FROM devices d JOIN devices me
           ON me.id = ?1 AND d.company_id = me.company_id AND d.computer_id = me.computer_id",
    )?;
    let ids = statement
        .query_map([device.to_string()], |row| {
            let text: String = row.get(0)?;
            Uuid::parse_str(&text).map_err(|error| from_sql_error(0, error))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if ids.is_empty() { vec![device] } else { ids })
}

pub(super) fn changes(
    connection: &Connection,
    company: Uuid,
    device: Uuid,
    after: i64,
    limit: usize,
) -> rusqlite::Result<StoredChanges> {
    let echoes_of = same_computer(connection, device)?;
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM sync_records
         WHERE company_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let rows = statement.query_map(
        params![company.to_string(), after, limit as i64],
        record_from,
    )?;
    let mut cursor = after;
    let mut records = Vec::new();
    for row in rows {
        let record = row?;
        cursor = record.seq;
        if !record
            .origin_device
            .is_some_and(|origin| echoes_of.contains(&origin))
        {
            records.push(record);
        }
    }
    Ok(StoredChanges { records, cursor })
}

pub(super) fn ack(
    transaction: &Transaction<'_>,
    company: Uuid,
    device: Uuid,
    fence: &Fence,
    cursor: i64,
) -> rusqlite::Result<Fenced<Option<i64>>> {
    if !fence_holds(transaction, company, fence)? {
        return Ok(Fenced::Stale);
    }
    if cursor > sequence(transaction, &company.to_string())? {
        return Ok(Fenced::Done(None));
    }
    transaction.execute(
        "INSERT INTO sync_cursors (device_id, company_id, cursor, acked_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (device_id) DO UPDATE SET cursor = MAX(cursor, excluded.cursor),
           acked_at = excluded.acked_at",
        params![
            device.to_string(),
            company.to_string(),
            cursor,
            micros(fence.now)
        ],
    )?;
    let stored = transaction.query_row(
        "SELECT cursor FROM sync_cursors WHERE device_id = ?1",
        [device.to_string()],
        |row| row.get(0),
    )?;
    Ok(Fenced::Done(Some(stored)))
}

pub(super) fn counts(
    connection: &Connection,
    company: Uuid,
    device: Uuid,
) -> rusqlite::Result<SyncCounts> {
    let company_text = company.to_string();
    let (sequence, has_schema) = connection
        .query_row(
            "SELECT seq, schema IS NOT NULL FROM sync_state WHERE company_id = ?1",
            [&company_text],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?
        .unwrap_or((0, false));
    let acknowledged = connection
        .query_row(
            "SELECT cursor FROM sync_cursors WHERE device_id = ?1",
            [device.to_string()],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    // Every device of the company, revoked ones too: the old sync
    // computer's acknowledgements stay true after its device is gone.
    let last_acknowledged = connection
        .query_row(
            "SELECT COALESCE(MAX(cursor), 0) FROM sync_cursors WHERE company_id = ?1",
            [&company_text],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let mut statement = connection.prepare(
        "SELECT entity, SUM(deleted = 0), SUM(deleted = 1) FROM sync_records
         WHERE company_id = ?1 GROUP BY entity ORDER BY entity",
    )?;
    let entities = statement
        .query_map([&company_text], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(SyncCounts {
        sequence,
        acknowledged,
        last_acknowledged,
        has_schema,
        lease: lease(connection, company)?,
        host: host_marker(connection, &company_text)?,
        entities,
    })
}

fn host_marker(connection: &Connection, company: &str) -> rusqlite::Result<HostMarker> {
    Ok(connection
        .prepare_cached(
            "SELECT host_position, host_generation FROM sync_state WHERE company_id = ?1",
        )?
        .query_row([company], |row| {
            Ok(HostMarker {
                position: row.get(0)?,
                generation: row.get(1)?,
            })
        })
        .optional()?
        .unwrap_or_default())
}

pub(super) fn set_host_marker(
    transaction: &Transaction<'_>,
    company: Uuid,
    fence: &Fence,
    marker: &HostMarker,
) -> rusqlite::Result<Fenced<HostMarker>> {
    if !fence_holds(transaction, company, fence)? {
        return Ok(Fenced::Stale);
    }
    let company_text = company.to_string();
    transaction.execute(
        "UPDATE sync_state SET host_position = COALESCE(?2, host_position),
           host_generation = COALESCE(?3, host_generation)
         WHERE company_id = ?1",
        params![company_text, marker.position, marker.generation],
    )?;
    Ok(Fenced::Done(host_marker(transaction, &company_text)?))
}

pub(super) fn disconnect(
    transaction: &Transaction<'_>,
    company: Uuid,
    now: DateTime<Utc>,
) -> rusqlite::Result<Option<Disconnection>> {
    let company_text = company.to_string();
    let before: Option<Option<i64>> = transaction
        .query_row(
            "SELECT disconnected_at FROM companies WHERE id = ?1",
            [&company_text],
            |row| row.get(0),
        )
        .optional()?;
    let Some(before) = before else {
        return Ok(None);
    };
    let disconnected_at = match before {
        Some(at) => at,
        None => {
            transaction.execute(
                "UPDATE companies SET disconnected_at = ?2, updated_at = ?2 WHERE id = ?1",
                params![company_text, micros(now)],
            )?;
            micros(now)
        }
    };
    transaction.execute(
        "DELETE FROM device_tokens
         WHERE device_id IN (SELECT id FROM devices WHERE company_id = ?1)",
        [&company_text],
    )?;
    let devices_revoked = transaction.execute(
        "UPDATE devices SET revoked_at = ?2 WHERE company_id = ?1 AND revoked_at IS NULL",
        params![company_text, micros(now)],
    )?;
    let records_deleted = transaction.execute(
        "DELETE FROM sync_records WHERE company_id = ?1",
        [&company_text],
    )?;
    for table in ["sync_conflicts", "sync_idempotency", "sync_cursors"] {
        transaction.execute(
            &format!("DELETE FROM {table} WHERE company_id = ?1"),
            [&company_text],
        )?;
    }
    // The sequence and fencing numbers only grow (a cursor or lease from
    // before can never name something after); the rest starts afresh.
    transaction.execute(
        "UPDATE sync_state SET schema = NULL, schema_at = NULL, computer_id = NULL,
           fencing = fencing + 1, lease_expires_at = NULL, host_position = NULL,
           host_generation = NULL
         WHERE company_id = ?1",
        [&company_text],
    )?;
    Ok(Some(Disconnection {
        disconnected_at: DateTime::from_timestamp_micros(disconnected_at).unwrap_or(now),
        records_deleted: records_deleted as u64,
        devices_revoked: devices_revoked as u64,
    }))
}

pub(super) fn unregister(
    transaction: &Transaction<'_>,
    company: Uuid,
) -> rusqlite::Result<Unregistration> {
    let company_text = company.to_string();
    let connected_by: Option<String> = transaction
        .query_row(
            "SELECT connected_by FROM companies WHERE id = ?1",
            [&company_text],
            |row| row.get(0),
        )
        .optional()?;
    let Some(connected_by) = connected_by else {
        return Ok(Unregistration::NotFound);
    };
    let used: bool = transaction.query_row(
        "SELECT EXISTS (SELECT 1 FROM sync_state
                        WHERE company_id = ?1 AND (seq > 0 OR schema IS NOT NULL))
             OR EXISTS (SELECT 1 FROM memberships WHERE company_id = ?1 AND account_id <> ?2)",
        params![company_text, connected_by],
        |row| row.get(0),
    )?;
    if used {
        return Ok(Unregistration::InUse);
    }
    // Memberships, devices and their tokens, and any sync state go with it
    // (ON DELETE CASCADE).
    transaction.execute("DELETE FROM companies WHERE id = ?1", [&company_text])?;
    Ok(Unregistration::Deleted)
}

pub(super) fn checksums(
    connection: &Connection,
    company: Uuid,
) -> rusqlite::Result<Vec<(String, u64, String)>> {
    let mut statement = connection.prepare(
        "SELECT entity, global_id, fields FROM sync_records
         WHERE company_id = ?1 AND deleted = 0 ORDER BY entity, global_id",
    )?;
    let mut rows = statement.query([company.to_string()])?;
    let mut sums: Vec<(String, u64, String)> = Vec::new();
    let mut current: Option<(String, Checksum)> = None;
    while let Some(row) = rows.next()? {
        let entity: String = row.get(0)?;
        let global_id: String = row.get(1)?;
        let fields: String = row.get(2)?;
        let global_id = Uuid::parse_str(&global_id).map_err(|error| from_sql_error(1, error))?;
        let fields: Map<String, Value> =
            serde_json::from_str(&fields).map_err(|error| from_sql_error(2, error))?;
        if current.as_ref().is_none_or(|(name, _)| *name != entity) {
            if let Some((name, sum)) = current.take() {
                sums.push((name, sum.count, sum.finish()));
            }
            current = Some((entity, Checksum::default()));
        }
        if let Some((_, sum)) = current.as_mut() {
            sum.add(global_id, &fields, false);
        }
    }
    if let Some((name, sum)) = current.take() {
        sums.push((name, sum.count, sum.finish()));
    }
    Ok(sums)
}

/// Records of an entity by global id (as text), after `after`: live ones
/// only, or with `tombstones` the deleted ones too.
pub(super) fn records(
    connection: &Connection,
    company: Uuid,
    entity: &str,
    after: Option<Uuid>,
    limit: usize,
    tombstones: bool,
) -> rusqlite::Result<Vec<StoredRecord>> {
    let live = if tombstones { "" } else { "AND deleted = 0" };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM sync_records
         WHERE company_id = ?1 AND entity = ?2 {live} AND global_id > ?3
         ORDER BY global_id LIMIT ?4"
    ))?;
    let rows = statement.query_map(
        params![
            company.to_string(),
            entity,
            after.map(|id| id.to_string()).unwrap_or_default(),
            limit as i64
        ],
        record_from,
    )?;
    rows.collect()
}

pub(super) fn record(
    connection: &Connection,
    company: Uuid,
    entity: &str,
    global_id: Uuid,
) -> rusqlite::Result<Option<StoredRecord>> {
    find_record(
        connection,
        &company.to_string(),
        entity,
        &global_id.to_string(),
    )
}

pub(super) fn write_record(
    transaction: &Transaction<'_>,
    company: Uuid,
    entity: &str,
    global_id: Uuid,
    write: &WebWrite,
    now: DateTime<Utc>,
) -> rusqlite::Result<WebOutcome> {
    let company_text = company.to_string();
    if !connected(transaction, &company_text)? {
        return Ok(WebOutcome::NotConnected);
    }
    ensure_state(transaction, &company_text)?;
    let existing = find_record(transaction, &company_text, entity, &global_id.to_string())?;
    let live = existing.as_ref().filter(|record| !record.deleted);
    let fields = match (write, live) {
        (WebWrite::Create(_), Some(_)) => return Ok(WebOutcome::Exists),
        (WebWrite::Create(_), None) if existing.is_some() => return Ok(WebOutcome::Exists),
        (WebWrite::Create(fields), None) => Some(fields),
        (_, None) => return Ok(WebOutcome::NotFound),
        (WebWrite::Patch { base_version, .. }, Some(record))
            if base_version.is_some_and(|base| base != record.version) =>
        {
            return Ok(WebOutcome::VersionMismatch(record.version))
        }
        (WebWrite::Patch { fields, .. }, Some(_)) => Some(fields),
        (WebWrite::Delete, Some(_)) => None,
    };
    let seq = sequence(transaction, &company_text)? + 1;
    match apply_web(live, entity, global_id, fields, seq) {
        Some(record) => {
            save_record(transaction, &company_text, &record, micros(now))?;
            set_sequence(transaction, &company_text, seq)?;
            Ok(WebOutcome::Written(record))
        }
        None => Ok(WebOutcome::Written(
            live.cloned()
                .expect("only an existing record can be unchanged"),
        )),
    }
}

pub(super) fn conflicts(
    connection: &Connection,
    company: Uuid,
    since: DateTime<Utc>,
) -> rusqlite::Result<Vec<Conflict>> {
    let mut statement = connection.prepare(
        "SELECT entity, global_id, field, host_value, online_value, outcome, at
         FROM sync_conflicts WHERE company_id = ?1 AND at >= ?2 ORDER BY at DESC, id DESC",
    )?;
    let rows = statement.query_map(params![company.to_string(), micros(since)], |row| {
        let global_id: String = row.get(1)?;
        let host: String = row.get(3)?;
        let online: String = row.get(4)?;
        let at: i64 = row.get(6)?;
        Ok(Conflict {
            entity: row.get(0)?,
            global_id: Uuid::parse_str(&global_id).map_err(|error| from_sql_error(1, error))?,
            field: row.get(2)?,
            host_value: serde_json::from_str(&host).map_err(|error| from_sql_error(3, error))?,
            online_value: serde_json::from_str(&online)
                .map_err(|error| from_sql_error(4, error))?,
            outcome: row.get(5)?,
            at: DateTime::from_timestamp_micros(at),
        })
    })?;
    rows.collect()
}

pub(super) fn prune(
    transaction: &Transaction<'_>,
    conflicts_before: DateTime<Utc>,
    keys_before: DateTime<Utc>,
) -> rusqlite::Result<()> {
    transaction.execute(
        "DELETE FROM sync_conflicts WHERE at < ?1",
        [micros(conflicts_before)],
    )?;
    transaction.execute(
        "DELETE FROM sync_idempotency WHERE created_at < ?1",
        [micros(keys_before)],
    )?;
    Ok(())
}
