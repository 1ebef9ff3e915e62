//! What the plugin, the service and the host simulator must agree on byte
//! for byte (docs/SYNC_PROTOCOL.md): the declared schema's wire types (§1)
//! and the canonical checksum of the test oracle (§7).
//!
//! Deliberately small: serde, serde_json and sha2 only; with the feature
//! `openapi`, the schema types also derive `utoipa::ToSchema`.

pub mod checksum;
pub mod schema;

pub use checksum::{canonical_line, write_canonical, Checksum};
pub use schema::{valid_name, Direction, EntityDef, FieldDef, FieldType, OnlineAccess, Schema};
