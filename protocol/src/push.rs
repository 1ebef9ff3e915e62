//! `POST /api/v1/sync/push` (docs/SYNC_PROTOCOL.md §4–§5): the batch the
//! host sends and the service's answer, with the conflicts it resolved.
//!
//! Versions and sequence numbers are `u64`: they start at 0 and only grow.
//! The service keeps them as SQLite integers (`i64`) and refuses a
//! `base_version` beyond `i64::MAX`, which no version can reach.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A record's fields by name, as they travel (docs/SYNC_PROTOCOL.md §1
/// types: text, integers, minor units, dates as text, references as global
/// ids). `null` means "no value".
pub type Fields = BTreeMap<String, serde_json::Value>;

/// `POST /api/v1/sync/push`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushRequest {
    pub mode: PushMode,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    /// First sync: each record is the host's whole record and replaces what
    /// is online; no conflict detection.
    Initial,
    /// Changes since the last exchange, with field-level conflict detection
    /// against `base_version`.
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Upsert,
    Delete,
}

/// One record's change from the host.
// `PushChange` in the OpenAPI document, the name it has always had there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = PushChange))]
pub struct Change {
    pub entity: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub global_id: Uuid,
    pub op: ChangeOp,
    /// The record version the host last saw (from a push answer or a pull);
    /// none or 0 for a record new to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u64>,
    /// A delete needs none: the service takes a missing `fields` as empty.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
    /// The fields the host changed; absent: every field in `fields` —
    /// deliberately not an empty list, which would mean "nothing changed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// The host's own key of the record (its local id, as text). The
    /// service keeps it so that another computer taking synchronisation
    /// over can match the host's rows to the online records
    /// (docs/SYNC_PROTOCOL.md §10). Absent: the stored key is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
}

/// `POST /api/v1/sync/push`'s answer (the same again for a repeated key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushAnswer {
    /// One per change, in order.
    pub results: Vec<PushResult>,
    pub conflicts: Vec<Conflict>,
    /// The company's sequence number after this push (not a pull cursor:
    /// web edits before it may not have been pulled yet).
    pub cursor: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResult {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub global_id: Uuid,
    pub version: u64,
    pub deleted: bool,
}

/// A conflict as recorded and answered (G7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conflict {
    pub entity: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub global_id: Uuid,
    /// The field, or `*` for a delete against an edit.
    pub field: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub host_value: serde_json::Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub online_value: serde_json::Value,
    /// `host_wins` (same field changed on both sides), `host_delete_wins`
    /// (the host deleted a record edited online), `online_delete_undone`
    /// (the host edited a record deleted online: it is restored).
    // Text, not an enum: an outcome added later must not turn a committed
    // push's answer into a protocol error for an older client.
    pub outcome: String,
    /// RFC 3339, set when read from the history.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "whole_seconds"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub at: Option<DateTime<Utc>>,
}

/// The history's times as the service has always written them: whole
/// seconds, `Z` (chrono's own form would add the stored microseconds).
fn whole_seconds<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_serialise_as_the_protocol_says() {
        let id = Uuid::nil();
        let change = Change {
            entity: "contacts".into(),
            global_id: id,
            op: ChangeOp::Upsert,
            base_version: Some(3),
            fields: Fields::from([("name".into(), "Ann".into())]),
            changed: Some(vec!["name".into()]),
            host_key: Some("17".into()),
        };
        let request = PushRequest {
            mode: PushMode::Incremental,
            changes: vec![
                change.clone(),
                Change {
                    base_version: None,
                    changed: None,
                    host_key: None,
                    op: ChangeOp::Delete,
                    fields: Fields::new(),
                    ..change
                },
            ],
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(
            json,
            json!({"mode": "incremental", "changes": [
                {"entity": "contacts", "global_id": id, "op": "upsert", "base_version": 3,
                 "fields": {"name": "Ann"}, "changed": ["name"], "host_key": "17"},
                {"entity": "contacts", "global_id": id, "op": "delete", "fields": {}}
            ]})
        );
        assert_eq!(
            serde_json::from_value::<PushRequest>(json).unwrap(),
            request
        );
    }

    #[test]
    fn a_change_without_fields_reads_as_empty() {
        let change: Change = serde_json::from_value(json!(
            {"entity": "contacts", "global_id": Uuid::nil(), "op": "delete"}))
        .unwrap();
        assert_eq!((change.fields, change.base_version), (Fields::new(), None));
    }

    #[test]
    fn a_conflict_time_travels_in_whole_seconds_and_only_when_set() {
        let conflict = Conflict {
            entity: "contacts".into(),
            global_id: Uuid::nil(),
            field: "name".into(),
            host_value: json!("Host"),
            online_value: json!("Web"),
            outcome: "host_wins".into(),
            at: DateTime::from_timestamp_micros(1_700_000_000_123_456),
        };
        let json = serde_json::to_value(&conflict).unwrap();
        assert_eq!(json["at"], "2023-11-14T22:13:20Z");
        let read: Conflict = serde_json::from_value(json).unwrap();
        assert_eq!(read.at, DateTime::from_timestamp(1_700_000_000, 0));
        let untimed = serde_json::to_value(Conflict {
            at: None,
            ..conflict
        })
        .unwrap();
        assert!(untimed.get("at").is_none(), "{untimed}");
    }
}
