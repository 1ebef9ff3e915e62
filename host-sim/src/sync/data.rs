//! Reading and writing declared entities as field maps: the work behind
//! `changes.*`, `records.*` and the `record` commands.
//!
//! Every statement is prepared once per connection (`prepare_cached`);
//! reads go by primary key (pages are key ranges, changes are a `seq`
//! range), so a batch of a thousand rows costs milliseconds whatever the
//! size of the table.

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Map, Value};

use super::schema::{self, Assigned, Entity, Field, FieldType};
use crate::error::{HostError, Result};

/// Most entries or rows one read returns.
pub const MAX_BATCH: u64 = 5_000;
/// Most changes one `records.apply` takes.
pub const MAX_APPLY: usize = 5_000;

/// A row's fields by name.
pub type Fields = Map<String, Value>;

/// The declared entity called `name`, or a clear error.
pub fn entity(name: &str) -> Result<&'static Entity> {
    schema::entity(name).ok_or_else(|| {
        HostError::InvalidInput(format!(
            "There is no entity \u{201c}{name}\u{201d}. Entities: {}.",
            schema::entity_names()
        ))
    })
}

/// The travelling value of a stored column value.
fn value_out(field: &Field, value: ValueRef<'_>) -> Value {
    match (field.ty, value) {
        (_, ValueRef::Null) => Value::Null,
        (FieldType::Boolean, ValueRef::Integer(i)) => json!(i != 0),
        (FieldType::Decimal { scale, real: true }, ValueRef::Real(f)) => {
            json!((f * 10f64.powi(scale as i32)).round() as i64)
        }
        (FieldType::Decimal { scale, real: true }, ValueRef::Integer(i)) => {
            json!(i.saturating_mul(10i64.pow(scale)))
        }
        (_, ValueRef::Integer(i)) => json!(i),
        (_, ValueRef::Real(f)) => json!(f),
        (_, ValueRef::Text(t)) => json!(String::from_utf8_lossy(t)),
        (_, ValueRef::Blob(b)) => json!(String::from_utf8_lossy(b)),
    }
}

fn fields_of(entity: &Entity, row: &rusqlite::Row<'_>) -> rusqlite::Result<Fields> {
    let mut fields = Map::new();
    for (i, field) in entity.fields.iter().enumerate() {
        fields.insert(field.name.to_owned(), value_out(field, row.get_ref(i + 1)?));
    }
    Ok(fields)
}

/// The current fields of one row, `None` when there is no such row.
pub fn record(conn: &Connection, entity: &Entity, local_id: i64) -> Result<Option<Fields>> {
    let mut stmt = conn.prepare_cached(&format!("{} WHERE id = ?1", entity.select_sql()))?;
    Ok(stmt
        .query_row(params![local_id], |row| fields_of(entity, row))
        .optional()?)
}

pub fn count(conn: &Connection, entity: &Entity) -> Result<u64> {
    let mut stmt = conn.prepare_cached(&format!("SELECT COUNT(*) FROM {}", entity.table()))?;
    let n: i64 = stmt.query_row([], |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Up to `limit` rows with a local id after `after`, in key order, and
/// whether they are the last ones.
pub fn page(
    conn: &Connection,
    entity: &Entity,
    after: Option<i64>,
    limit: u64,
) -> Result<(Vec<(i64, Fields)>, bool)> {
    let limit = limit.clamp(1, MAX_BATCH);
    let mut stmt = conn.prepare_cached(&format!(
        "{} WHERE id > ?1 ORDER BY id LIMIT ?2",
        entity.select_sql()
    ))?;
    let mut rows = stmt.query(params![after.unwrap_or(i64::MIN), (limit + 1) as i64])?;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        if records.len() as u64 == limit {
            return Ok((records, false));
        }
        records.push((row.get(0)?, fields_of(entity, row)?));
    }
    Ok((records, true))
}

/// One row of [`page_remembered`].
#[derive(Debug, Clone, PartialEq)]
pub struct PageRow {
    pub local_id: i64,
    pub fields: Fields,
    /// The global id a `records.apply` create gave the row, if the host
    /// remembers one (`sync_created`).
    pub global_id: Option<String>,
}

impl PageRow {
    /// `{"local_id", "fields"}`, with `"global_id"` when one is remembered.
    pub fn to_json(&self) -> Value {
        let mut answer = json!({ "local_id": self.local_id, "fields": self.fields });
        if let Some(global_id) = &self.global_id {
            answer["global_id"] = json!(global_id);
        }
        answer
    }
}

/// [`page`] with the global id remembered for each row: a LEFT JOIN on
/// `sync_created`'s unique index by (entity, local id), one index lookup
/// per row, so a page costs the same on a table of a million rows.
pub fn page_remembered(
    conn: &Connection,
    entity: &Entity,
    after: Option<i64>,
    limit: u64,
) -> Result<(Vec<PageRow>, bool)> {
    let limit = limit.clamp(1, MAX_BATCH);
    let mut stmt = conn.prepare_cached(&page_remembered_sql(entity))?;
    let mut rows = stmt.query(params![after.unwrap_or(i64::MIN), (limit + 1) as i64])?;
    let global_id_column = entity.fields.len() + 1;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        if records.len() as u64 == limit {
            return Ok((records, false));
        }
        records.push(PageRow {
            local_id: row.get(0)?,
            fields: fields_of(entity, row)?,
            global_id: row.get(global_id_column)?,
        });
    }
    Ok((records, true))
}

/// The statement behind [`page_remembered`] (`?1` after, `?2` limit).
pub(crate) fn page_remembered_sql(entity: &Entity) -> String {
    let columns: Vec<String> = entity
        .fields
        .iter()
        .map(|f| format!("t.{}", f.name))
        .collect();
    format!(
        "SELECT t.id, {}, c.global_id FROM {} AS t
         LEFT JOIN sync_created AS c ON c.entity = '{}' AND c.local_id = t.id
         WHERE t.id > ?1 ORDER BY t.id LIMIT ?2",
        columns.join(", "),
        entity.table(),
        entity.name
    )
}

/// The newest position of the change log (0 when nothing was logged).
pub fn position(conn: &Connection) -> Result<i64> {
    let mut stmt =
        conn.prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'change_log'")?;
    Ok(stmt
        .query_row([], |row| row.get(0))
        .optional()?
        .unwrap_or(0))
}

/// One entry of the change log with the row's current state.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEntry {
    pub seq: i64,
    pub entity: String,
    pub local_id: i64,
    pub op: String,
    pub origin: String,
    /// The row now; `None` for deletes and rows deleted since.
    pub record: Option<Fields>,
}

impl ChangeEntry {
    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "entity": self.entity,
            "local_id": self.local_id,
            "op": self.op,
            "origin": self.origin,
            "record": self.record,
        })
    }
}

/// Up to `limit` entries after position `after`, oldest first.
pub fn changes(conn: &Connection, after: i64, limit: u64) -> Result<Vec<ChangeEntry>> {
    let limit = limit.clamp(1, MAX_BATCH);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, entity, local_id, op, origin FROM change_log
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let entries = stmt
        .query_map(params![after, limit as i64], |row| {
            Ok(ChangeEntry {
                seq: row.get(0)?,
                entity: row.get(1)?,
                local_id: row.get(2)?,
                op: row.get(3)?,
                origin: row.get(4)?,
                record: None,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(entries.len());
    for mut entry in entries {
        if entry.op == "upsert" {
            if let Some(entity) = schema::entity(&entry.entity) {
                entry.record = record(conn, entity, entry.local_id)?;
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// Who is writing: the host itself (the `record` commands: every field and
/// entity may be written, with origin `host`), or the plugin applying
/// changes from online (origin `online`, host-to-online data refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Host,
    Online,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
}

/// One change to apply. `local_id` `None` with `Upsert` creates a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub entity: String,
    pub local_id: Option<i64>,
    /// With a create: the record's global id; the same create delivered
    /// again returns the record made the first time.
    pub global_id: Option<String>,
    pub op: Op,
    pub fields: Fields,
}

impl Change {
    /// Reads a change of `records.apply`'s `changes` list.
    pub fn from_json(value: &Value) -> std::result::Result<Change, String> {
        let object = value.as_object().ok_or("a change must be an object")?;
        let entity = object
            .get("entity")
            .and_then(Value::as_str)
            .ok_or("\u{201c}entity\u{201d} must be a string")?
            .to_owned();
        let local_id = match object.get("local_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or("\u{201c}local_id\u{201d} must be an integer or null")?,
            ),
        };
        let global_id = match object.get("global_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            Some(_) => return Err("\u{201c}global_id\u{201d} must be a text or null".into()),
        };
        let op =
            match object.get("op").and_then(Value::as_str) {
                Some("upsert") => Op::Upsert,
                Some("delete") => Op::Delete,
                _ => return Err(
                    "\u{201c}op\u{201d} must be \u{201c}upsert\u{201d} or \u{201c}delete\u{201d}"
                        .into(),
                ),
            };
        let fields = match object.get("fields") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => return Err("\u{201c}fields\u{201d} must be an object".into()),
        };
        Ok(Change {
            entity,
            local_id,
            global_id,
            op,
            fields,
        })
    }
}

/// What applying one change did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub local_id: i64,
    /// Values the host gave a created record (its number, ...).
    pub assigned: Fields,
}

impl Applied {
    pub fn to_json(&self) -> Value {
        json!({ "local_id": self.local_id, "assigned": self.assigned })
    }
}

/// One change of `records.apply` with its optional guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Guarded {
    pub change: Change,
    /// Apply only if the row has no change-log entry of origin `host`
    /// after this position (checked in the apply's transaction): the
    /// plugin passes the position it has pushed up to, so a host edit it
    /// has not sent yet is never overwritten.
    pub skip_if_host_changed_after: Option<i64>,
}

impl Guarded {
    /// Reads a change of `records.apply`'s `changes` list with its guard.
    pub fn from_json(value: &Value) -> std::result::Result<Guarded, String> {
        let change = Change::from_json(value)?;
        let skip_if_host_changed_after = match value.get("skip_if_host_changed_after") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|n| *n >= 0).ok_or(
                "\u{201c}skip_if_host_changed_after\u{201d} must be a position (an integer of at least 0) or null",
            )?),
        };
        Ok(Guarded {
            change,
            skip_if_host_changed_after,
        })
    }
}

/// What happens to the other changes when the host refuses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing is applied (the default of `records.apply`).
    WholeBatch,
    /// The refused change alone is left out and answered as refused; the
    /// others are applied (`"per_change": true`).
    PerChange,
}

/// What became of one change.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied(Applied),
    /// Its guard held: the host changed the row after the guard's position.
    /// Nothing was written.
    Skipped {
        local_id: i64,
        reason: String,
    },
    /// The host's rules refused it ([`Refusal::PerChange`] only). Nothing
    /// of it was written.
    Refused {
        local_id: Option<i64>,
        reason: String,
    },
}

impl Outcome {
    pub fn to_json(&self) -> Value {
        match self {
            Outcome::Applied(applied) => {
                let mut answer = applied.to_json();
                answer["outcome"] = json!("applied");
                answer
            }
            Outcome::Skipped { local_id, reason } => json!({
                "local_id": local_id,
                "assigned": {},
                "outcome": "skipped",
                "reason": reason,
            }),
            Outcome::Refused { local_id, reason } => json!({
                "local_id": local_id,
                "assigned": {},
                "outcome": "refused",
                "reason": reason,
            }),
        }
    }
}

/// Applies `changes` in one transaction: all or nothing. The error names
/// the change that was refused (counting from 1).
pub fn apply(conn: &mut Connection, writer: Writer, changes: &[Change]) -> Result<Vec<Applied>> {
    let guarded: Vec<Guarded> = changes
        .iter()
        .map(|change| Guarded {
            change: change.clone(),
            skip_if_host_changed_after: None,
        })
        .collect();
    Ok(apply_guarded(conn, writer, &guarded, Refusal::WholeBatch)?
        .into_iter()
        .filter_map(|outcome| match outcome {
            Outcome::Applied(applied) => Some(applied),
            // Without guards and with whole-batch refusal nothing else occurs.
            Outcome::Skipped { .. } | Outcome::Refused { .. } => None,
        })
        .collect())
}

/// Applies `changes` in one transaction (`BEGIN IMMEDIATE`: no other
/// writer can slip in between a guard's check and the write). A change
/// whose guard holds is skipped. A change the host's rules refuse
/// (unknown entity or field, bad value, missing row, ...) refuses the whole
/// batch with an error naming it (counting from 1) under
/// [`Refusal::WholeBatch`], and only itself under [`Refusal::PerChange`]
/// (rolled back to a savepoint). Any other failure (the database is
/// locked, a disk error) fails the whole call: nothing is applied.
pub fn apply_guarded(
    conn: &mut Connection,
    writer: Writer,
    changes: &[Guarded],
    refusal: Refusal,
) -> Result<Vec<Outcome>> {
    if changes.len() > MAX_APPLY {
        return Err(HostError::InvalidInput(format!(
            "At most {MAX_APPLY} changes can be applied at once ({} were given).",
            changes.len()
        )));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if writer == Writer::Online {
        tx.execute(
            "INSERT OR REPLACE INTO sync_apply_origin (id, origin) VALUES (1, 'online')",
            [],
        )?;
    }
    let mut outcomes = Vec::with_capacity(changes.len());
    for (i, guarded) in changes.iter().enumerate() {
        let change = &guarded.change;
        if let (Some(after), Some(id)) = (guarded.skip_if_host_changed_after, change.local_id) {
            if host_changed_after(&tx, &change.entity, id, after)? {
                outcomes.push(Outcome::Skipped {
                    local_id: id,
                    reason: format!(
                        "{} {id} was changed in the program after position {after}",
                        change.entity
                    ),
                });
                continue;
            }
        }
        match refusal {
            Refusal::WholeBatch => {
                let applied = apply_one(&tx, writer, change).map_err(|error| {
                    let what = match change.local_id {
                        Some(id) => format!("{} {id}", change.entity),
                        None => format!("new {}", change.entity),
                    };
                    let message = match error {
                        HostError::InvalidInput(m) | HostError::NotAllowed(m) => m,
                        other => other.to_string(),
                    };
                    HostError::InvalidInput(format!(
                        "Change {} ({what}) was refused, and no change was applied: {message}",
                        i + 1
                    ))
                })?;
                outcomes.push(Outcome::Applied(applied));
            }
            Refusal::PerChange => {
                tx.execute_batch("SAVEPOINT apply_change")?;
                match apply_one(&tx, writer, change) {
                    Ok(applied) => {
                        tx.execute_batch("RELEASE apply_change")?;
                        outcomes.push(Outcome::Applied(applied));
                    }
                    Err(HostError::InvalidInput(reason) | HostError::NotAllowed(reason)) => {
                        tx.execute_batch("ROLLBACK TO apply_change; RELEASE apply_change")?;
                        outcomes.push(Outcome::Refused {
                            local_id: change.local_id,
                            reason,
                        });
                    }
                    // Not about this change: the transaction rolls back.
                    Err(other) => return Err(other),
                }
            }
        }
    }
    tx.execute("DELETE FROM sync_apply_origin", [])?;
    tx.commit()?;
    Ok(outcomes)
}

/// Whether the row has a change-log entry of origin `host` after `after`
/// (a range of the log's key: cheap while the plugin keeps up).
fn host_changed_after(conn: &Connection, entity: &str, local_id: i64, after: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM change_log WHERE seq > ?1 AND entity = ?2 AND local_id = ?3 AND origin = 'host' LIMIT 1",
        )?
        .query_row(params![after, entity, local_id], |_| Ok(()))
        .optional()?
        .is_some())
}

fn apply_one(conn: &Connection, writer: Writer, change: &Change) -> Result<Applied> {
    let entity = entity(&change.entity)?;
    if writer == Writer::Online && entity.host_to_online {
        return Err(HostError::NotAllowed(format!(
            "{} are maintained in the host only and cannot be changed from online.",
            entity.title
        )));
    }
    match (change.op, change.local_id) {
        (Op::Delete, None) => Err(HostError::InvalidInput(
            "A delete needs the local id of the record.".into(),
        )),
        (Op::Delete, Some(id)) => {
            // Deleting a record that is already gone changes nothing: the
            // same delete may be delivered twice.
            let mut stmt =
                conn.prepare_cached(&format!("DELETE FROM {} WHERE id = ?1", entity.table()))?;
            // Other records may still refer to it (a contact with invoices).
            stmt.execute(params![id])
                .map_err(|e| constraint_message(entity, e))?;
            Ok(Applied {
                local_id: id,
                assigned: Map::new(),
            })
        }
        (Op::Upsert, local_id) => {
            let mut columns: Vec<&'static str> = Vec::new();
            let mut values: Vec<SqlValue> = Vec::new();
            for (name, value) in &change.fields {
                let field = entity.field(name).ok_or_else(|| {
                    HostError::InvalidInput(format!(
                        "{} have no field \u{201c}{name}\u{201d}. Fields: {}.",
                        entity.title,
                        entity
                            .fields
                            .iter()
                            .map(|f| f.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
                if writer == Writer::Online && field.host_to_online {
                    return Err(HostError::NotAllowed(format!(
                        "The field \u{201c}{name}\u{201d} of {} is maintained in the host only.",
                        entity.name
                    )));
                }
                columns.push(field.name);
                values.push(value_in(conn, field, value)?);
            }
            match (local_id, &change.global_id) {
                (Some(id), _) => update(conn, entity, id, &columns, values),
                (None, Some(global_id)) => {
                    if let Some(earlier) = created_before(conn, entity, global_id)? {
                        return Ok(earlier);
                    }
                    let applied = insert(conn, entity, columns, values)?;
                    conn.prepare_cached(
                        // REPLACE: an entry left for a row that is gone
                        // (a database from before the triggers that
                        // forget them) gives way.
                        "INSERT OR REPLACE INTO sync_created (entity, global_id, local_id, assigned) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        entity.name,
                        global_id,
                        applied.local_id,
                        Value::Object(applied.assigned.clone()).to_string()
                    ])?;
                    Ok(applied)
                }
                (None, None) => insert(conn, entity, columns, values),
            }
        }
    }
}

/// The record an earlier `records.apply` created for `global_id`, if it is
/// still there.
fn created_before(conn: &Connection, entity: &Entity, global_id: &str) -> Result<Option<Applied>> {
    let earlier: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT local_id, assigned FROM sync_created WHERE entity = ?1 AND global_id = ?2",
        )?
        .query_row(params![entity.name, global_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let Some((local_id, assigned)) = earlier else {
        return Ok(None);
    };
    let exists: Option<i64> = conn
        .prepare_cached(&format!("SELECT id FROM {} WHERE id = ?1", entity.table()))?
        .query_row(params![local_id], |row| row.get(0))
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    let assigned = serde_json::from_str(&assigned).unwrap_or_default();
    Ok(Some(Applied { local_id, assigned }))
}

fn update(
    conn: &Connection,
    entity: &Entity,
    id: i64,
    columns: &[&str],
    values: Vec<SqlValue>,
) -> Result<Applied> {
    if record(conn, entity, id)?.is_none() {
        return Err(HostError::NotAllowed(format!(
            "There is no record {id} in {} (it may have been deleted in the host).",
            entity.name
        )));
    }
    if !columns.is_empty() {
        let sets: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ?{}", i + 2))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE id = ?1",
            entity.table(),
            sets.join(", ")
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut all = vec![SqlValue::Integer(id)];
        all.extend(values);
        stmt.execute(rusqlite::params_from_iter(all))
            .map_err(|e| constraint_message(entity, e))?;
    }
    Ok(Applied {
        local_id: id,
        assigned: Map::new(),
    })
}

fn insert(
    conn: &Connection,
    entity: &Entity,
    mut columns: Vec<&'static str>,
    mut values: Vec<SqlValue>,
) -> Result<Applied> {
    let mut assigned = Map::new();
    for field in entity.fields {
        if columns.contains(&field.name) {
            continue;
        }
        let Some(how) = field.assigned else {
            if field.required {
                return Err(HostError::InvalidInput(format!(
                    "A new record of {} needs a value for \u{201c}{}\u{201d}.",
                    entity.name, field.name
                )));
            }
            continue;
        };
        let value: SqlValue = match how {
            Assigned::NextNumber => {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT COALESCE(MAX({0}), 0) + 1 FROM {1}",
                    field.name,
                    entity.table()
                ))?;
                SqlValue::Integer(stmt.query_row([], |row| row.get(0))?)
            }
            Assigned::NextNumberPer(group) => {
                let group_value = columns
                    .iter()
                    .position(|c| *c == group)
                    .map(|i| values[i].clone())
                    .unwrap_or(SqlValue::Null);
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT COALESCE(MAX({0}), 0) + 1 FROM {1} WHERE {group} = ?1",
                    field.name,
                    entity.table()
                ))?;
                SqlValue::Integer(stmt.query_row(params![group_value], |row| row.get(0))?)
            }
            Assigned::Today => SqlValue::Text(
                chrono::Local::now()
                    .date_naive()
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
        };
        assigned.insert(field.name.to_owned(), value_out(field, sql_ref(&value)));
        columns.push(field.name);
        values.push(value);
    }
    let sql = if columns.is_empty() {
        format!("INSERT INTO {} DEFAULT VALUES", entity.table())
    } else {
        let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            entity.table(),
            columns.join(", "),
            placeholders.join(", ")
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.execute(rusqlite::params_from_iter(values))
        .map_err(|e| constraint_message(entity, e))?;
    Ok(Applied {
        local_id: conn.last_insert_rowid(),
        assigned,
    })
}

fn sql_ref(value: &SqlValue) -> ValueRef<'_> {
    match value {
        SqlValue::Null => ValueRef::Null,
        SqlValue::Integer(i) => ValueRef::Integer(*i),
        SqlValue::Real(f) => ValueRef::Real(*f),
        SqlValue::Text(t) => ValueRef::Text(t.as_bytes()),
        SqlValue::Blob(b) => ValueRef::Blob(b),
    }
}

/// A constraint the database enforces, said as a sentence.
fn constraint_message(entity: &Entity, error: rusqlite::Error) -> HostError {
    match &error {
        rusqlite::Error::SqliteFailure(e, Some(message))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            HostError::NotAllowed(format!(
                "The record does not fit the rules of {} ({message}).",
                entity.name
            ))
        }
        _ => HostError::Database(error),
    }
}

/// The stored value of a travelling value, checked against the field.
fn value_in(conn: &Connection, field: &Field, value: &Value) -> Result<SqlValue> {
    let wrong = |expected: &str| {
        HostError::InvalidInput(format!(
            "\u{201c}{}\u{201d} must be {expected} (got {value}).",
            field.name
        ))
    };
    if value.is_null() {
        if field.required {
            return Err(HostError::InvalidInput(format!(
                "\u{201c}{}\u{201d} cannot be empty.",
                field.name
            )));
        }
        return Ok(SqlValue::Null);
    }
    Ok(match field.ty {
        FieldType::Text => {
            let text = value.as_str().ok_or_else(|| wrong("text"))?;
            if let Some(choices) = field.choices {
                if !choices.contains(&text) {
                    return Err(wrong(&format!("one of {}", choices.join(", "))));
                }
            }
            SqlValue::Text(text.to_owned())
        }
        FieldType::Integer => SqlValue::Integer(value.as_i64().ok_or_else(|| wrong("an integer"))?),
        FieldType::Decimal { scale, real } => {
            let units = value.as_i64().ok_or_else(|| {
                wrong(&format!(
                    "an integer number of 1/{} units",
                    10i64.pow(scale)
                ))
            })?;
            if real {
                SqlValue::Real(units as f64 / 10f64.powi(scale as i32))
            } else {
                SqlValue::Integer(units)
            }
        }
        FieldType::Date => {
            let text = value.as_str().ok_or_else(|| wrong("a date (YYYY-MM-DD)"))?;
            match chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
                Ok(date) if date.format("%Y-%m-%d").to_string() == text => {
                    SqlValue::Text(text.to_owned())
                }
                _ => return Err(wrong("a date (YYYY-MM-DD)")),
            }
        }
        FieldType::Boolean => SqlValue::Integer(i64::from(
            value.as_bool().ok_or_else(|| wrong("true or false"))?,
        )),
        FieldType::Reference(target) => {
            let id = value
                .as_i64()
                .ok_or_else(|| wrong(&format!("the local id of a record of {target}")))?;
            let mut stmt = conn.prepare_cached(&format!("SELECT 1 FROM {target} WHERE id = ?1"))?;
            if stmt
                .query_row(params![id], |_| Ok(()))
                .optional()?
                .is_none()
            {
                return Err(HostError::InvalidInput(format!(
                    "\u{201c}{}\u{201d} refers to record {id} of {target}, which does not exist.",
                    field.name
                )));
            }
            SqlValue::Integer(id)
        }
    })
}

/// The travelling value of text typed on the command line: `-` or an
/// empty text is null; decimals may be written with a point (`12.50` for
/// a field of scale 2 is 1250); booleans as yes/no, true/false, 1/0.
pub fn parse_typed(field: &Field, text: &str) -> std::result::Result<Value, String> {
    let text = text.trim();
    if text.is_empty() || text == "-" {
        return Ok(Value::Null);
    }
    let bad = |expected: &str| {
        format!(
            "\u{201c}{text}\u{201d} is not a valid value for {} ({expected}).",
            field.name
        )
    };
    match field.ty {
        FieldType::Text | FieldType::Date => Ok(json!(text)),
        FieldType::Integer | FieldType::Reference(_) => text
            .parse::<i64>()
            .map(|n| json!(n))
            .map_err(|_| bad("a whole number")),
        FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" => Ok(json!(true)),
            "no" | "false" | "0" => Ok(json!(false)),
            _ => Err(bad("yes or no")),
        },
        FieldType::Decimal { scale, .. } => {
            let expected = format!("a number with at most {scale} decimals");
            let (negative, digits) = match text.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
            let digits_only = |s: &str| s.chars().all(|c| c.is_ascii_digit());
            if whole.is_empty() && fraction.is_empty()
                || !digits_only(whole)
                || !digits_only(fraction)
                || fraction.len() > scale as usize
            {
                return Err(bad(&expected));
            }
            let padded = format!("{whole}{fraction:0<width$}", width = scale as usize);
            let units: i64 = padded.parse().map_err(|_| bad(&expected))?;
            Ok(json!(if negative { -units } else { units }))
        }
    }
}
