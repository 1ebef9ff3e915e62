//! The host side of synchronisation (docs/SYNC_PROTOCOL.md §1–§2): the
//! declared schema, change tracking, reading and applying records, and the
//! canonical checksum that tests compare with the online copy.

pub mod checksum;
pub mod data;
pub mod schema;
pub mod tracking;

#[cfg(test)]
mod tests;
