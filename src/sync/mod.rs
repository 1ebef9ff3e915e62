//! Synchronisation (issue 4, in progress): the plugin's state database.
//! The engine that uses it follows; see docs/SYNC_PROTOCOL.md.

pub mod state;
