//! Change tracking in a company database (docs/SYNC_PROTOCOL.md §2):
//! triggers on every declared table append to `change_log`.
//!
//! The origin of a write is read from the one-row table
//! `sync_apply_origin`: `records.apply` writes `'online'` into it at the
//! start of its transaction and deletes it before committing, so no other
//! connection ever sees the row, and a rolled-back apply leaves nothing
//! behind. Every other write finds the table empty and is logged as
//! `'host'`. (Triggers in the main schema can only read main-schema
//! tables, so a temporary table would not do.)
//!
//! `init` loads its generated rows before the triggers exist, so the log of
//! a new company database is empty: the first sync reads whole tables.
//! Databases made before change tracking get it when first opened
//! ([`migrate`], guarded by `PRAGMA user_version`); so do databases made
//! before the `sync_created` index by local id and the restore generation
//! marker (`od_sync_marker`, docs/SYNC_PROTOCOL.md §9.2; version 3).
//!
//! Local ids are `INTEGER PRIMARY KEY` rowids, which SQLite may hand out
//! again once the highest row is deleted; so the triggers forget the global
//! id remembered in `sync_created` when its row is deleted or gets another
//! id, and `records.page` never answers a stale global id for a new row.

use rusqlite::Connection;

use super::schema::ENTITIES;
use crate::error::Result;

/// `PRAGMA user_version` of a company database with change tracking.
pub const TRACKING_VERSION: i64 = 3;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS change_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    entity   TEXT NOT NULL,
    local_id INTEGER NOT NULL,
    op       TEXT NOT NULL CHECK (op = 'upsert' OR op = 'delete'),
    origin   TEXT NOT NULL CHECK (origin = 'host' OR origin = 'online'),
    at       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sync_apply_origin (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    origin TEXT NOT NULL
);
-- Records created through records.apply, by the global id the plugin gave:
-- a create delivered again finds the record made the first time.
CREATE TABLE IF NOT EXISTS sync_created (
    entity    TEXT NOT NULL,
    global_id TEXT NOT NULL,
    local_id  INTEGER NOT NULL,
    assigned  TEXT NOT NULL,
    PRIMARY KEY (entity, global_id)
) WITHOUT ROWID;
-- The restore generation marker (docs/SYNC_PROTOCOL.md §9.2): one row at
-- most, written by sync.marker.set. Not an entity: no triggers, never in the
-- change log; part of every backup because it is in the database file.
CREATE TABLE IF NOT EXISTS od_sync_marker (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    generation          TEXT NOT NULL,
    written_at_position INTEGER NOT NULL,
    written_at          TEXT NOT NULL
);
";

/// `records.page` looks remembered global ids up by (entity, local id).
/// Databases made before the triggers that forget deleted rows may hold
/// entries for rows that are gone, or two for a reused local id (which one
/// is current cannot be told): those are dropped before the unique index
/// is built.
const CREATED_INDEX: &str = "
DELETE FROM sync_created WHERE (entity, local_id) IN (
    SELECT entity, local_id FROM sync_created GROUP BY entity, local_id HAVING COUNT(*) > 1
);
CREATE UNIQUE INDEX IF NOT EXISTS sync_created_local ON sync_created (entity, local_id);
";

/// The SQL creating the change-log tables and every trigger.
pub fn tracking_sql() -> String {
    let mut sql = String::from(TABLES);
    for entity in ENTITIES {
        let table = entity.table();
        let name = entity.name;
        for (event, row, op) in [
            ("INSERT", "NEW", "upsert"),
            ("UPDATE", "NEW", "upsert"),
            ("DELETE", "OLD", "delete"),
        ] {
            let suffix = event.to_lowercase();
            sql.push_str(&format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_log_{suffix} AFTER {event} ON {table}
                 BEGIN
                     INSERT INTO change_log (entity, local_id, op, origin, at)
                     VALUES ('{name}', {row}.id, '{op}',
                             COALESCE((SELECT origin FROM sync_apply_origin WHERE id = 1), 'host'),
                             strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
                 END;\n"
            ));
        }
        // A row whose id changes is gone under its old id.
        sql.push_str(&format!(
            "CREATE TRIGGER IF NOT EXISTS {table}_log_rekey AFTER UPDATE OF id ON {table}
             WHEN OLD.id != NEW.id
             BEGIN
                 INSERT INTO change_log (entity, local_id, op, origin, at)
                 VALUES ('{name}', OLD.id, 'delete',
                         COALESCE((SELECT origin FROM sync_apply_origin WHERE id = 1), 'host'),
                         strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
             END;\n"
        ));
        // The global id remembered for a row is forgotten with the row (its
        // local id may be handed out again).
        sql.push_str(&format!(
            "DELETE FROM sync_created WHERE entity = '{name}'
                 AND NOT EXISTS (SELECT 1 FROM {table} WHERE id = sync_created.local_id);
             CREATE TRIGGER IF NOT EXISTS {table}_forget_created AFTER DELETE ON {table}
             BEGIN
                 DELETE FROM sync_created WHERE entity = '{name}' AND local_id = OLD.id;
             END;
             CREATE TRIGGER IF NOT EXISTS {table}_forget_created_rekey AFTER UPDATE OF id ON {table}
             WHEN OLD.id != NEW.id
             BEGIN
                 DELETE FROM sync_created WHERE entity = '{name}' AND local_id = OLD.id;
             END;\n"
        ));
    }
    sql.push_str(CREATED_INDEX);
    sql
}

/// Creates the change log and the triggers (idempotent).
pub fn install(conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;\n{}\nPRAGMA user_version = {TRACKING_VERSION};\nCOMMIT;",
        tracking_sql()
    ))
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })?;
    Ok(())
}

/// Adds change tracking to a database made before it existed.
pub fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version < TRACKING_VERSION {
        install(conn)?;
    }
    Ok(())
}
