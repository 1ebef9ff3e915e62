//! `GET /api/v1/sync/changes` (docs/SYNC_PROTOCOL.md §4): a page of records
//! changed online after the device's cursor.

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
