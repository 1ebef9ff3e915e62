//! The plugin's own state for one company: the map between the host's
//! local ids and the global ids of records, and the checkpoints of the
//! synchronisation (docs/SYNC_PROTOCOL.md §3, §6).
//!
//! One SQLite file, `state.db`, in the folder the host gives (`data_dir`).
//! A checkpoint and the id mappings it depends on are written in one
//! transaction, so after a crash the state is either before or after a
//! batch, never half-way.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("the add-on's state file {path} cannot be opened: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the add-on's state file could not be read or written: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the add-on's folder {path} cannot be created: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{entity} record {local_id} is already linked to another online record")]
    AlreadyMapped { entity: String, local_id: String },
    #[error("a record could not be prepared for sending: {0}")]
    Convert(String),
    #[error("the add-on's state file was written by a newer version of the add-on (format {found}, this one knows {known})")]
    TooNew { found: i64, known: i64 },
}

/// Current format of `state.db`. 1: ids and checkpoints; 2 (additive):
/// shadows, the local conflict history and rows waiting to go online.
const FORMAT: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ids (
    entity    TEXT NOT NULL,
    local_id  TEXT NOT NULL,
    global_id TEXT NOT NULL,
    PRIMARY KEY (entity, local_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS ids_by_global ON ids (entity, global_id);
CREATE TABLE IF NOT EXISTS checkpoints (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shadows (
    entity    TEXT NOT NULL,
    global_id TEXT NOT NULL,
    version   INTEGER NOT NULL,
    fields    TEXT NOT NULL,
    PRIMARY KEY (entity, global_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conflicts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    entity       TEXT NOT NULL,
    global_id    TEXT NOT NULL,
    field        TEXT NOT NULL,
    host_value   TEXT NOT NULL,
    online_value TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    recorded_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    entity   TEXT NOT NULL,
    local_id TEXT NOT NULL,
    PRIMARY KEY (entity, local_id)
) WITHOUT ROWID;
";

/// A record as last exchanged with the service (docs/SYNC_PROTOCOL.md §6):
/// the version the service gave it and its fields in the online form
/// (references as global ids). Continuous sync sends the fields that differ
/// from it, with its version as `base_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    pub version: u64,
    pub fields: super::convert::Fields,
}

/// A conflict the service resolved (G7), kept for the history.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConflict {
    pub entity: String,
    pub global_id: String,
    /// The field, or `*` for a delete against an edit.
    pub field: String,
    pub host_value: serde_json::Value,
    pub online_value: serde_json::Value,
    pub outcome: String,
    /// When this computer learnt of it (RFC 3339; for display only, never
    /// for ordering).
    pub recorded_at: String,
}

/// The state database of one company.
pub struct State {
    connection: Connection,
}

impl State {
    /// Opens (creating when missing) `data_dir/state.db`. The file is
    /// readable by its owner only: it will hold the device credentials too.
    pub fn open(data_dir: &Path) -> Result<State, StateError> {
        let path = data_dir.join("state.db");
        let open_error = |source| StateError::Open {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(|source| StateError::Folder {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let connection = Connection::open(&path).map_err(open_error)?;
        restrict_to_owner(&path);
        connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
        let state = State { connection };
        state.migrate()?;
        Ok(state)
    }

    fn migrate(&self) -> Result<(), StateError> {
        let found: i64 = self
            .connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if found > FORMAT {
            return Err(StateError::TooNew {
                found,
                known: FORMAT,
            });
        }
        self.connection.execute_batch(SCHEMA)?;
        self.connection
            .execute_batch(&format!("PRAGMA user_version = {FORMAT}"))?;
        Ok(())
    }

    /// The global id of a host record, if it has one.
    pub fn global_id(&self, entity: &str, local_id: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .connection
            .prepare_cached("SELECT global_id FROM ids WHERE entity = ?1 AND local_id = ?2")?
            .query_row(params![entity, local_id], |row| row.get(0))
            .optional()?)
    }

    /// The host's local id of a record known by its global id.
    pub fn local_id(&self, entity: &str, global_id: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .connection
            .prepare_cached("SELECT local_id FROM ids WHERE entity = ?1 AND global_id = ?2")?
            .query_row(params![entity, global_id], |row| row.get(0))
            .optional()?)
    }

    /// The shadow of a record, if it was exchanged since shadows exist.
    pub fn shadow(&self, entity: &str, global_id: &str) -> Result<Option<Shadow>, StateError> {
        let row: Option<(i64, String)> = self
            .connection
            .prepare_cached(
                "SELECT version, fields FROM shadows WHERE entity = ?1 AND global_id = ?2",
            )?
            .query_row(params![entity, global_id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        row.map(|(version, fields)| {
            Ok(Shadow {
                version: version.max(0) as u64,
                fields: serde_json::from_str(&fields)
                    .map_err(|e| StateError::Convert(format!("a stored shadow is damaged: {e}")))?,
            })
        })
        .transpose()
    }

    /// The conflicts recorded, oldest first.
    pub fn conflicts(&self) -> Result<Vec<LocalConflict>, StateError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT entity, global_id, field, host_value, online_value, outcome, recorded_at FROM conflicts ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            let value = |text: String| {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            };
            Ok(LocalConflict {
                entity: row.get(0)?,
                global_id: row.get(1)?,
                field: row.get(2)?,
                host_value: value(row.get(3)?),
                online_value: value(row.get(4)?),
                outcome: row.get(5)?,
                recorded_at: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Host rows that must go online at the next push although their
    /// change-log entries came from an apply (values the host assigned to
    /// a record created online).
    pub fn outbox(&self) -> Result<Vec<(String, String)>, StateError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT entity, local_id FROM outbox ORDER BY entity, local_id")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A checkpoint's value.
    pub fn checkpoint(&self, name: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .connection
            .prepare_cached("SELECT value FROM checkpoints WHERE name = ?1")?
            .query_row(params![name], |row| row.get(0))
            .optional()?)
    }

    /// Writes id mappings and checkpoints together: all or nothing.
    pub fn commit(
        &mut self,
        write: impl FnOnce(&mut Batch<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let tx = self.connection.transaction()?;
        let mut batch = Batch { tx };
        write(&mut batch)?;
        batch.tx.commit()?;
        Ok(())
    }
}

/// Writes inside one [`State::commit`].
pub struct Batch<'a> {
    tx: Transaction<'a>,
}

impl Batch<'_> {
    /// Records that a host record has this global id. Recording the same
    /// pair again is harmless; a different pair for either side is an error
    /// (the map is one-to-one).
    pub fn map(&mut self, entity: &str, local_id: &str, global_id: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached("INSERT INTO ids (entity, local_id, global_id) VALUES (?1, ?2, ?3) ON CONFLICT (entity, local_id) DO NOTHING")?
            .execute(params![entity, local_id, global_id])?;
        let mapped: String = self
            .tx
            .prepare_cached("SELECT global_id FROM ids WHERE entity = ?1 AND local_id = ?2")?
            .query_row(params![entity, local_id], |row| row.get(0))?;
        if mapped != global_id {
            return Err(StateError::AlreadyMapped {
                entity: entity.to_owned(),
                local_id: local_id.to_owned(),
            });
        }
        Ok(())
    }

    /// The global id of a host record, made now (UUID v4) when it has none:
    /// the side that creates a record, or first sends it, names it.
    pub fn global_id_or_mint(
        &mut self,
        entity: &str,
        local_id: &str,
    ) -> Result<String, StateError> {
        let known: Option<String> = self
            .tx
            .prepare_cached("SELECT global_id FROM ids WHERE entity = ?1 AND local_id = ?2")?
            .query_row(params![entity, local_id], |row| row.get(0))
            .optional()?;
        if let Some(global_id) = known {
            return Ok(global_id);
        }
        let global_id = uuid::Uuid::new_v4().to_string();
        self.map(entity, local_id, &global_id)?;
        Ok(global_id)
    }

    /// Forgets the mapping of a record deleted on both sides.
    pub fn unmap(&mut self, entity: &str, local_id: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached("DELETE FROM ids WHERE entity = ?1 AND local_id = ?2")?
            .execute(params![entity, local_id])?;
        Ok(())
    }

    pub fn set_checkpoint(&mut self, name: &str, value: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached("INSERT INTO checkpoints (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")?
            .execute(params![name, value])?;
        Ok(())
    }

    pub fn clear_checkpoint(&mut self, name: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached("DELETE FROM checkpoints WHERE name = ?1")?
            .execute(params![name])?;
        Ok(())
    }

    /// Records a record as exchanged: `version` from the service, `fields`
    /// in the online form. The first sync calls this for each record of a
    /// batch, with the version from the push answer, in the transaction
    /// that stores the batch's checkpoint; a record without a shadow is
    /// treated by continuous sync as "every field changed, no base version".
    pub fn set_shadow(
        &mut self,
        entity: &str,
        global_id: &str,
        version: u64,
        fields: &super::convert::Fields,
    ) -> Result<(), StateError> {
        let fields =
            serde_json::to_string(fields).map_err(|e| StateError::Convert(e.to_string()))?;
        self.tx
            .prepare_cached("INSERT INTO shadows (entity, global_id, version, fields) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (entity, global_id) DO UPDATE SET version = excluded.version, fields = excluded.fields")?
            .execute(params![entity, global_id, version as i64, fields])?;
        Ok(())
    }

    /// Forgets the shadow of a record deleted on both sides.
    pub fn remove_shadow(&mut self, entity: &str, global_id: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached("DELETE FROM shadows WHERE entity = ?1 AND global_id = ?2")?
            .execute(params![entity, global_id])?;
        Ok(())
    }

    /// Keeps a conflict for the history.
    pub fn record_conflict(&mut self, conflict: &LocalConflict) -> Result<(), StateError> {
        self.tx
            .prepare_cached("INSERT INTO conflicts (entity, global_id, field, host_value, online_value, outcome, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
            .execute(params![
                conflict.entity,
                conflict.global_id,
                conflict.field,
                conflict.host_value.to_string(),
                conflict.online_value.to_string(),
                conflict.outcome,
                conflict.recorded_at
            ])?;
        Ok(())
    }

    /// Marks a host row to be sent at the next push (see [`State::outbox`]).
    pub fn add_to_outbox(&mut self, entity: &str, local_id: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached(
                "INSERT INTO outbox (entity, local_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![entity, local_id])?;
        Ok(())
    }

    pub fn remove_from_outbox(&mut self, entity: &str, local_id: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached("DELETE FROM outbox WHERE entity = ?1 AND local_id = ?2")?
            .execute(params![entity, local_id])?;
        Ok(())
    }
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(
            "could not make {} readable by its owner only: {e}",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn restrict_to_owner(_path: &Path) {
    // On Windows the file inherits the ACL of the host's per-user data
    // folder, which only its owner (and administrators) can read.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_and_checkpoints_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut state = State::open(dir.path()).unwrap();
            state
                .commit(|b| {
                    b.map("contacts", "17", "0b7e…-g1")?;
                    b.set_checkpoint("first_sync.contacts", "17")
                })
                .unwrap();
        }
        let state = State::open(dir.path()).unwrap();
        assert_eq!(
            state.global_id("contacts", "17").unwrap().as_deref(),
            Some("0b7e…-g1")
        );
        assert_eq!(
            state.local_id("contacts", "0b7e…-g1").unwrap().as_deref(),
            Some("17")
        );
        assert_eq!(
            state.checkpoint("first_sync.contacts").unwrap().as_deref(),
            Some("17")
        );
        assert_eq!(state.global_id("products", "17").unwrap(), None);
    }

    #[test]
    fn a_failed_batch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        state.commit(|b| b.map("contacts", "1", "g1")).unwrap();
        let failed = state.commit(|b| {
            b.set_checkpoint("position", "99")?;
            b.map("contacts", "2", "g2")?;
            b.map("contacts", "1", "another")
        });
        assert!(
            matches!(failed, Err(StateError::AlreadyMapped { .. })),
            "{failed:?}"
        );
        assert_eq!(state.checkpoint("position").unwrap(), None);
        assert_eq!(state.global_id("contacts", "2").unwrap(), None);
        assert_eq!(
            state.global_id("contacts", "1").unwrap().as_deref(),
            Some("g1")
        );
    }

    #[test]
    fn mapping_again_is_harmless_and_unmap_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        state.commit(|b| b.map("contacts", "1", "g1")).unwrap();
        state.commit(|b| b.map("contacts", "1", "g1")).unwrap();
        state.commit(|b| b.unmap("contacts", "1")).unwrap();
        assert_eq!(state.local_id("contacts", "g1").unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn only_the_owner_can_read_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        State::open(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join("state.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_format_1_file_gains_shadows_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let connection = Connection::open(dir.path().join("state.db")).unwrap();
            connection
                .execute_batch(
                    "CREATE TABLE ids (entity TEXT NOT NULL, local_id TEXT NOT NULL, global_id TEXT NOT NULL, PRIMARY KEY (entity, local_id)) WITHOUT ROWID;
                     CREATE TABLE checkpoints (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                     INSERT INTO ids VALUES ('contacts', '1', 'g1');
                     INSERT INTO checkpoints VALUES ('first_sync.finished', '7');
                     PRAGMA user_version = 1;",
                )
                .unwrap();
        }
        let mut state = State::open(dir.path()).unwrap();
        assert_eq!(
            state.global_id("contacts", "1").unwrap().as_deref(),
            Some("g1")
        );
        assert_eq!(
            state.checkpoint("first_sync.finished").unwrap().as_deref(),
            Some("7")
        );
        let fields: super::super::convert::Fields =
            serde_json::from_value(serde_json::json!({"name": "A", "number": 3})).unwrap();
        state
            .commit(|b| {
                b.set_shadow("contacts", "g1", 4, &fields)?;
                b.record_conflict(&LocalConflict {
                    entity: "contacts".into(),
                    global_id: "g1".into(),
                    field: "name".into(),
                    host_value: serde_json::json!("A"),
                    online_value: serde_json::json!("B"),
                    outcome: "host_wins".into(),
                    recorded_at: "2026-01-01T00:00:00Z".into(),
                })
            })
            .unwrap();
        drop(state);
        let mut state = State::open(dir.path()).unwrap();
        assert_eq!(
            state.shadow("contacts", "g1").unwrap(),
            Some(Shadow { version: 4, fields })
        );
        assert_eq!(
            state.conflicts().unwrap()[0].online_value,
            serde_json::json!("B")
        );
        let version: i64 = state
            .connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, 2);
        state.commit(|b| b.remove_shadow("contacts", "g1")).unwrap();
        assert_eq!(state.shadow("contacts", "g1").unwrap(), None);
    }

    #[test]
    fn a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        State::open(dir.path()).unwrap();
        Connection::open(dir.path().join("state.db"))
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        assert!(matches!(
            State::open(dir.path()),
            Err(StateError::TooNew { found: 99, .. })
        ));
    }
}
