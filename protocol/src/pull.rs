//! `GET /api/v1/sync/changes` (docs/SYNC_PROTOCOL.md §4): a page of records
//! changed online after the device's cursor; `GET /api/v1/sync/records`
//! (docs/ONLINE_API.md): a page of a company's records with their host keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::push::Fields;

/// `GET /api/v1/sync/changes`' answer.
// `ChangesAnswer` in the OpenAPI document, the name it has always had there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ChangesAnswer))]
pub struct ChangesPage {
    pub changes: Vec<RemoteChange>,
    /// Pass it as `after` next time (it also passes this device's own
    /// changes, which are left out).
    pub cursor: u64,
}

/// A record changed online, in its whole current state, at the sequence
/// number of its newest change.
// `ChangeView` in the OpenAPI document, the name it has always had there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ChangeView))]
pub struct RemoteChange {
    pub seq: u64,
    pub entity: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub global_id: Uuid,
    pub version: u64,
    pub deleted: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
}

/// One page of `GET /api/v1/sync/records`: a company's records of one
/// entity with their host keys, for a computer taking over
/// synchronisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncRecordsPage {
    /// By global id (as text), tombstones included.
    pub records: Vec<SyncRecord>,
    /// The last global id of this page, to pass as `after`; null when this
    /// was the last page.
    pub next: Option<String>,
}

/// A stored record as a computer taking over synchronisation downloads it,
/// to match the host's rows by `host_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncRecord {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub global_id: Uuid,
    /// The host's own key of the record (its local id as text), as the
    /// newest push that carried one sent it; null for a record created on
    /// the web until a push names one.
    pub host_key: Option<String>,
    pub version: u64,
    /// A tombstone: deleted (fields as they were).
    pub deleted: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Fields,
    /// The fields (and `*` for the deleted flag) whose last change came
    /// from a web user rather than a push, each with that change. The
    /// service always sends it (absent reads as empty).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub web_fields: BTreeMap<String, WebChange>,
}

/// A web user's change of one field (or of the deleted flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebChange {
    /// The company sequence number of the change.
    pub seq: u64,
    /// The record version the change produced. A computer taking over
    /// pushes with a `base_version` below it for the service to treat the
    /// change as unseen.
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_records_page_has_the_documented_shape() {
        let id = Uuid::nil();
        let json = serde_json::json!({
            "records": [{"global_id": id, "host_key": "17", "version": 3, "deleted": false,
                         "fields": {"name": "Ann"},
                         "web_fields": {"name": {"seq": 42, "version": 3}}}],
            "next": null
        });
        let page: SyncRecordsPage = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            page.records[0].web_fields["name"],
            WebChange {
                seq: 42,
                version: 3
            }
        );
        assert_eq!(serde_json::to_value(&page).unwrap(), json);
        // `web_fields` may be absent.
        let record: SyncRecord = serde_json::from_value(serde_json::json!({
            "global_id": id, "host_key": null, "version": 1, "deleted": true, "fields": {}
        }))
        .unwrap();
        assert!(record.web_fields.is_empty());
    }
}
