//! Synchronisation data and rules (docs/SYNC_PROTOCOL.md §4–§5), free of any
//! storage backend: the schema the plugin declares, the records the service
//! keeps, how a pushed change merges into a stored record (field-level
//! conflicts, host wins), validation of web edits, and the canonical
//! checksum of the test oracle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// How long a lease lasts unless renewed.
pub const LEASE_SECONDS: i64 = 60;
/// Largest push body after decompression.
pub const SYNC_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Longest long-poll wait.
pub const MAX_WAIT_SECONDS: u64 = 30;
pub const DEFAULT_PAGE: usize = 1000;
pub const MAX_PAGE: usize = 5000;
/// How long the conflict history is kept, in days. The product shows the
/// last 7 days (the plugin's history, the web desktop's default `days=7`);
/// the history endpoint can look back this far, so a user away for a few
/// weeks still finds what happened meanwhile. Conflicts hold customer data,
/// so older ones are deleted rather than merely hidden: in the push
/// transaction that records a company's new conflicts, and by the periodic
/// housekeeping (for companies that record none).
pub const CONFLICT_RETENTION_DAYS: i64 = 30;
/// How long idempotency keys and their stored answers are kept, in days:
/// far longer than any retry of a lost push answer takes, even after a sync
/// computer was switched off for a while.
pub const IDEMPOTENCY_RETENTION_DAYS: i64 = 30;

// --- Schema -------------------------------------------------------------------------

// The declared schema's wire types and their checks are shared with the
// plugin's client (od-protocol, with `ToSchema` for the OpenAPI document).
pub use od_protocol::{
    valid_name, Direction, EntityDef, FieldDef, FieldType, OnlineAccess, Schema,
};

// --- Stored records -------------------------------------------------------------------

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    #[serde(rename = "h")]
    Host,
    #[serde(rename = "o")]
    Online,
}

/// When a field (or, under the key `*`, the deleted flag) last changed:
/// the record version and company sequence number of that change and who
/// made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMeta(pub i64, pub i64, pub Origin);

impl FieldMeta {
    pub fn version(&self) -> i64 {
        self.0
    }
    /// The company sequence number of the change.
    pub fn seq(&self) -> i64 {
        self.1
    }
    pub fn origin(&self) -> Origin {
        self.2
    }
}

/// The key of the deleted flag in [`StoredRecord::meta`].
pub const DELETED_META: &str = "*";

/// A record as the service keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecord {
    pub entity: String,
    pub global_id: Uuid,
    pub version: i64,
    pub deleted: bool,
    pub fields: Map<String, Value>,
    pub seq: i64,
    pub meta: BTreeMap<String, FieldMeta>,
    /// The device whose push made the newest change, when that device has
    /// everything of the record already (its pull leaves it out).
    pub origin_device: Option<Uuid>,
    /// The host's own key of the record (its local id as text), as the
    /// newest push that carried one sent it; `None` for records created on
    /// the web until a push names one.
    pub host_key: Option<String>,
}

impl StoredRecord {
    /// The fields (and [`DELETED_META`] for the deleted flag) whose last
    /// change came from a web user, with that change (its record version
    /// and company sequence number).
    pub fn web_fields(&self) -> BTreeMap<String, FieldMeta> {
        self.meta
            .iter()
            .filter(|(_, meta)| meta.origin() == Origin::Online)
            .map(|(name, meta)| (name.clone(), *meta))
            .collect()
    }
}

// --- Push ---------------------------------------------------------------------------

// The push and pull bodies are shared with the plugin's client
// (od-protocol, with `ToSchema` for the OpenAPI document).
pub use od_protocol::{
    Change, ChangeOp, ChangesPage, Conflict, Fields, PushAnswer, PushMode, PushRequest, PushResult,
    RemoteChange, SyncRecord, SyncRecordsPage, WebChange,
};

/// A version or sequence number as it travels (`u64`). Stored as SQLite
/// integers, they start at 0 and only grow, so none is ever negative.
pub fn wire_number(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or_default()
}

/// The largest version a push may name as its `base_version`: versions are
/// stored as `i64`, so a larger one names no version at all.
pub const MAX_BASE_VERSION: u64 = i64::MAX as u64;

/// The longest `host_key` a push may carry, in characters.
pub const MAX_HOST_KEY_CHARS: usize = 200;

impl From<StoredRecord> for RemoteChange {
    fn from(record: StoredRecord) -> Self {
        RemoteChange {
            seq: wire_number(record.seq),
            entity: record.entity,
            global_id: record.global_id,
            version: wire_number(record.version),
            deleted: record.deleted,
            fields: record.fields.into_iter().collect(),
        }
    }
}

/// A pushed change that changed no data may still name a new host key:
/// then the stored record with that key (no new version or sequence
/// number: the data is the same). `None` when the key is absent or the one
/// stored already.
pub fn with_new_host_key(existing: &StoredRecord, change: &Change) -> Option<StoredRecord> {
    let key = change.host_key.as_ref()?;
    if existing.host_key.as_ref() == Some(key) {
        return None;
    }
    let mut record = existing.clone();
    record.host_key = Some(key.clone());
    Some(record)
}

/// Applies one pushed change to the stored record (if any). `seq` is the
/// sequence number this change gets if it changes anything. Returns the new
/// record (None: nothing changed) and the conflicts found.
pub fn merge_push(
    mode: PushMode,
    existing: Option<&StoredRecord>,
    change: &Change,
    seq: i64,
    device: Uuid,
) -> (Option<StoredRecord>, Vec<Conflict>) {
    let mut conflicts = Vec::new();
    // The push handler refuses a larger one; saturating keeps it total.
    let base = i64::try_from(change.base_version.unwrap_or(0)).unwrap_or(i64::MAX);
    let unseen_online = |meta: &FieldMeta| meta.origin() == Origin::Online && meta.version() > base;
    let conflict = |field: &str, host: Value, online: Value, outcome: &str| Conflict {
        entity: change.entity.clone(),
        global_id: change.global_id,
        field: field.to_owned(),
        host_value: host,
        online_value: online,
        outcome: outcome.to_owned(),
        at: None,
    };
    match (change.op, existing) {
        (ChangeOp::Delete, None) => (None, conflicts),
        (ChangeOp::Delete, Some(record)) if record.deleted => (None, conflicts),
        (ChangeOp::Delete, Some(record)) => {
            let version = record.version + 1;
            if mode == PushMode::Incremental {
                let edited: Map<String, Value> = record
                    .meta
                    .iter()
                    .filter(|(field, meta)| field.as_str() != DELETED_META && unseen_online(meta))
                    .map(|(field, _)| {
                        (
                            field.clone(),
                            record.fields.get(field).cloned().unwrap_or(Value::Null),
                        )
                    })
                    .collect();
                if !edited.is_empty() {
                    conflicts.push(conflict(
                        DELETED_META,
                        Value::String("deleted".to_owned()),
                        Value::Object(edited),
                        "host_delete_wins",
                    ));
                }
            }
            let mut new = record.clone();
            new.version = version;
            new.deleted = true;
            new.seq = seq;
            new.meta.insert(
                DELETED_META.to_owned(),
                FieldMeta(version, seq, Origin::Host),
            );
            new.origin_device = Some(device);
            if let Some(key) = &change.host_key {
                new.host_key = Some(key.clone());
            }
            (Some(new), conflicts)
        }
        (ChangeOp::Upsert, None) => {
            let fields: Map<String, Value> = change
                .fields
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            let meta = fields
                .keys()
                .map(|name| (name.clone(), FieldMeta(1, seq, Origin::Host)))
                .collect();
            let record = StoredRecord {
                entity: change.entity.clone(),
                global_id: change.global_id,
                version: 1,
                deleted: false,
                fields,
                seq,
                meta,
                origin_device: Some(device),
                host_key: change.host_key.clone(),
            };
            (Some(record), conflicts)
        }
        (ChangeOp::Upsert, Some(record)) => {
            let version = record.version + 1;
            let mut new = record.clone();
            let mut changed_any = false;
            if record.deleted {
                changed_any = true;
                new.deleted = false;
                let online_delete = record.meta.get(DELETED_META).is_some_and(&unseen_online);
                if mode == PushMode::Incremental && online_delete {
                    conflicts.push(conflict(
                        DELETED_META,
                        Value::Object(change.fields.clone().into_iter().collect()),
                        Value::String("deleted".to_owned()),
                        "online_delete_undone",
                    ));
                }
                new.meta.insert(
                    DELETED_META.to_owned(),
                    FieldMeta(version, seq, Origin::Host),
                );
            }
            let names: Vec<&String> = match (&change.changed, mode) {
                (_, PushMode::Initial) | (None, _) => change.fields.keys().collect(),
                (Some(changed), PushMode::Incremental) => changed.iter().collect(),
            };
            if mode == PushMode::Initial {
                // The host's snapshot is the whole record.
                let stale: Vec<String> = new
                    .fields
                    .keys()
                    .filter(|name| !change.fields.contains_key(*name))
                    .cloned()
                    .collect();
                for name in stale {
                    new.fields.remove(&name);
                    new.meta.insert(name, FieldMeta(version, seq, Origin::Host));
                    changed_any = true;
                }
            }
            for name in names {
                let value = change.fields.get(name).cloned().unwrap_or(Value::Null);
                let current = record.fields.get(name).cloned().unwrap_or(Value::Null);
                if value == current {
                    continue;
                }
                if mode == PushMode::Incremental
                    && !record.deleted
                    && record.meta.get(name).is_some_and(&unseen_online)
                {
                    conflicts.push(conflict(name, value.clone(), current, "host_wins"));
                }
                if value.is_null() {
                    new.fields.remove(name);
                } else {
                    new.fields.insert(name.clone(), value);
                }
                new.meta
                    .insert(name.clone(), FieldMeta(version, seq, Origin::Host));
                changed_any = true;
            }
            if !changed_any {
                return (None, conflicts);
            }
            new.version = version;
            new.seq = seq;
            // Online changes the host has not seen stay in the record: then
            // the device must get it back in its pull.
            let keeps_online = mode == PushMode::Incremental
                && new.meta.values().any(|meta| {
                    meta.origin() == Origin::Online
                        && meta.version() > base
                        && meta.version() < version
                });
            new.origin_device = if keeps_online { None } else { Some(device) };
            if let Some(key) = &change.host_key {
                new.host_key = Some(key.clone());
            }
            (Some(new), conflicts)
        }
    }
}

// --- Web edits ------------------------------------------------------------------------

/// A field that failed validation, with the reason.
pub type FieldProblem = (String, String);

/// Checks values a web user sends for `entity`: known, writable online, of
/// the right type; for a create also every required writable field.
pub fn validate_web_fields(
    entity: &EntityDef,
    fields: &Map<String, Value>,
    creating: bool,
) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    for (name, value) in fields {
        let Some(field) = entity.field(name) else {
            problems.push((name.clone(), "is not a field of this record".to_owned()));
            continue;
        };
        if !field.writable_online() {
            problems.push((name.clone(), "cannot be changed online".to_owned()));
            continue;
        }
        if value.is_null() {
            if field.required {
                problems.push((name.clone(), "is required".to_owned()));
            }
            continue;
        }
        if let Err(reason) = check_type(field, value) {
            problems.push((name.clone(), reason));
        }
    }
    if creating {
        for field in &entity.fields {
            if field.required && field.writable_online() && !fields.contains_key(&field.name) {
                problems.push((field.name.clone(), "is required".to_owned()));
            }
        }
    }
    problems
}

fn check_type(field: &FieldDef, value: &Value) -> Result<(), String> {
    let ok = match field.kind {
        FieldType::Text => value.is_string(),
        FieldType::Integer | FieldType::Decimal => value.is_i64(),
        FieldType::Boolean => value.is_boolean(),
        FieldType::Date => value
            .as_str()
            .is_some_and(|text| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()),
        FieldType::Datetime => value
            .as_str()
            .is_some_and(|text| chrono::DateTime::parse_from_rfc3339(text).is_ok()),
        FieldType::Reference => value
            .as_str()
            .is_some_and(|text| Uuid::parse_str(text).is_ok()),
    };
    if ok {
        Ok(())
    } else {
        Err(match field.kind {
            FieldType::Text => "must be text",
            FieldType::Integer => "must be a whole number",
            FieldType::Decimal => "must be a whole number of minor units (cents)",
            FieldType::Boolean => "must be true or false",
            FieldType::Date => "must be a date (YYYY-MM-DD)",
            FieldType::Datetime => "must be a time (RFC 3339)",
            FieldType::Reference => "must be the global id of a record",
        }
        .to_owned())
    }
}

/// Applies a web edit (create, patch or delete) made at `seq`.
pub fn apply_web(
    existing: Option<&StoredRecord>,
    entity: &str,
    global_id: Uuid,
    fields: Option<&Map<String, Value>>,
    seq: i64,
) -> Option<StoredRecord> {
    let mut record = existing.cloned().unwrap_or(StoredRecord {
        entity: entity.to_owned(),
        global_id,
        version: 0,
        deleted: false,
        fields: Map::new(),
        seq,
        meta: BTreeMap::new(),
        origin_device: None,
        host_key: None,
    });
    let version = record.version + 1;
    let mut changed = existing.is_none();
    match fields {
        None => {
            if record.deleted {
                return None;
            }
            record.deleted = true;
            record.meta.insert(
                DELETED_META.to_owned(),
                FieldMeta(version, seq, Origin::Online),
            );
            changed = true;
        }
        Some(fields) => {
            for (name, value) in fields {
                if record.fields.get(name).unwrap_or(&Value::Null) == value {
                    continue;
                }
                if value.is_null() {
                    record.fields.remove(name);
                } else {
                    record.fields.insert(name.clone(), value.clone());
                }
                record
                    .meta
                    .insert(name.clone(), FieldMeta(version, seq, Origin::Online));
                changed = true;
            }
        }
    }
    if !changed {
        return None;
    }
    record.version = version;
    record.seq = seq;
    record.origin_device = None;
    Some(record)
}

// --- Checksum (the test oracle) ---------------------------------------------------------

// The line format and the running SHA-256 are shared with the hosts
// (od-protocol), so both sides hash the same bytes for the same data.
pub use od_protocol::{canonical_line, Checksum};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(op: ChangeOp, base: Option<u64>, fields: Value, changed: Option<&[&str]>) -> Change {
        Change {
            entity: "contacts".to_owned(),
            global_id: Uuid::nil(),
            op,
            base_version: base,
            fields: fields
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            changed: changed.map(|names| names.iter().map(|name| name.to_string()).collect()),
            host_key: None,
        }
    }

    #[test]
    fn same_field_both_sides_host_wins_and_different_fields_merge() {
        let device = Uuid::new_v4();
        let (first, _) = merge_push(
            PushMode::Initial,
            None,
            &change(
                ChangeOp::Upsert,
                None,
                json!({"name": "A", "city": "Oslo"}),
                None,
            ),
            1,
            device,
        );
        let first = first.expect("created");
        let web = apply_web(
            Some(&first),
            "contacts",
            Uuid::nil(),
            Some(json!({"name": "B", "phone": "1"}).as_object().unwrap()),
            2,
        )
        .expect("edited");
        assert_eq!(web.version, 2);
        let (merged, conflicts) = merge_push(
            PushMode::Incremental,
            Some(&web),
            &change(
                ChangeOp::Upsert,
                Some(1),
                json!({"name": "C", "city": "Bergen"}),
                Some(&["name", "city"]),
            ),
            3,
            device,
        );
        let merged = merged.expect("merged");
        assert_eq!(merged.fields["name"], "C");
        assert_eq!(merged.fields["city"], "Bergen");
        assert_eq!(merged.fields["phone"], "1");
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].field, "name");
        assert_eq!(conflicts[0].online_value, "B");
        assert_eq!(
            merged.origin_device, None,
            "the phone must go back to the host"
        );
    }
}
