//! The restore generation marker (docs/SYNC_PROTOCOL.md §9.2): the plugin
//! writes a generation into the company database (`sync.marker.set`) and
//! compares it with the one it keeps online (`sync.marker.get`). The
//! one-row table `od_sync_marker` is not an entity — no triggers, never in
//! the change log — and lives in the database file, so every backup
//! carries the marker that was current when it was taken.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};

use super::data;
use crate::error::{HostError, Result};

/// Longest generation the host keeps, in characters.
pub const MAX_GENERATION: usize = 100;

/// The marker as written; both `None` before the first write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marker {
    pub generation: Option<String>,
    /// The change-log position (`changes.position`) at the write.
    pub position: Option<i64>,
}

impl Marker {
    /// `{"generation": s | null, "position": n | null}`.
    pub fn to_json(&self) -> Value {
        json!({ "generation": self.generation, "position": self.position })
    }
}

/// The marker now.
pub fn get(conn: &Connection) -> Result<Marker> {
    let row: Option<(String, i64)> = conn
        .prepare_cached("SELECT generation, written_at_position FROM od_sync_marker WHERE id = 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(
        row.map_or_else(Marker::default, |(generation, position)| Marker {
            generation: Some(generation),
            position: Some(position),
        }),
    )
}

/// Why `generation` cannot be a marker, if it cannot.
pub fn check_generation(generation: &str) -> std::result::Result<(), String> {
    let length = generation.chars().count();
    if generation.trim().is_empty() {
        Err("\u{201c}generation\u{201d} must be a non-empty text".into())
    } else if length > MAX_GENERATION {
        Err(format!(
            "\u{201c}generation\u{201d} must be at most {MAX_GENERATION} characters (got {length})"
        ))
    } else if generation.chars().any(char::is_control) {
        Err("\u{201c}generation\u{201d} must not contain control characters".into())
    } else {
        Ok(())
    }
}

/// Replaces the marker with `generation` at the current change-log
/// position, in one transaction (`BEGIN IMMEDIATE`: no change can be
/// logged between reading the position and writing the marker). Writes
/// nothing to the change log.
pub fn set(conn: &mut Connection, generation: &str) -> Result<Marker> {
    check_generation(generation).map_err(HostError::InvalidInput)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let position = data::position(&tx)?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO od_sync_marker (id, generation, written_at_position, written_at)
         VALUES (1, ?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    )?
    .execute(params![generation, position])?;
    tx.commit()?;
    Ok(Marker {
        generation: Some(generation.to_owned()),
        position: Some(position),
    })
}
