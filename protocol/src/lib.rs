//! What the plugin, the service and the host simulator must agree on byte
//! for byte (docs/SYNC_PROTOCOL.md): the declared schema's wire types (§1),
//! the push and pull bodies (§4–§5) and the canonical checksum of the test
//! oracle (§7). The plugin's client sends and reads these types, the
//! service reads and answers them: one definition, one JSON shape.
//!
//! Deliberately small: serde, serde_json, uuid, chrono (no clock) and sha2
//! only; with the feature `openapi`, the wire types also derive
//! `utoipa::ToSchema`.

pub mod checksum;
pub mod pull;
pub mod push;
pub mod schema;

pub use checksum::{canonical_line, write_canonical, Checksum};
pub use pull::{ChangesPage, RemoteChange, SyncRecord, SyncRecordsPage, WebChange};
pub use push::{Change, ChangeOp, Conflict, Fields, PushAnswer, PushMode, PushRequest, PushResult};
pub use schema::{valid_name, Direction, EntityDef, FieldDef, FieldType, OnlineAccess, Schema};
