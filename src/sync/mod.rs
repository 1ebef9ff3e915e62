//! Synchronisation (issue 4, in progress; docs/SYNC_PROTOCOL.md): the
//! host's schema and the order entities travel in, records between the
//! host's and the online form, and the plugin's state database. The engine
//! that drives them follows.

pub mod adapters;
#[cfg(test)]
pub mod checksum;
pub mod continuous;
pub mod convert;
pub mod first_sync;
pub mod schema;
pub mod state;
