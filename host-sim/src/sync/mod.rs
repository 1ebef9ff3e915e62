//! The host side of synchronisation (docs/SYNC_PROTOCOL.md §1–§2): the
//! declared schema, change tracking, reading and applying records, and the
//! canonical checksum that tests compare with the online copy; and the
//! restore generation marker (§9.2).

pub mod checksum;
pub mod data;
pub mod marker;
pub mod schema;
pub mod tracking;

#[cfg(test)]
mod tests;
