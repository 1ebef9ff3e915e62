//! Synchronisation (docs/SYNC_PROTOCOL.md): the host's schema and the order
//! entities travel in, records between the host's and the online form, the
//! plugin's state database, the first and the continuous synchronisation,
//! and the engine that drives them on the plugin's runtime.

pub mod adapters;
#[cfg(test)]
pub mod checksum;
pub mod connection;
pub mod continuous;
pub mod convert;
pub mod engine;
pub mod first_sync;
pub mod history;
pub mod reconcile;
pub mod restore;
pub mod schema;
pub mod state;
pub mod takeover;
