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

impl From<super::convert::ConvertError> for StateError {
    fn from(error: super::convert::ConvertError) -> StateError {
        StateError::Convert(error.to_string())
    }
}

/// Current format of `state.db`. 1: ids and checkpoints; 2 (additive):
/// shadows, the local conflict history and rows waiting to go online; 3
/// (additive): online changes set aside (parked).
const FORMAT: i64 = 3;

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
-- Online changes the host refused (or that wait for a record that is not
-- in the host), one per record: its newest state online as last pulled.
-- retry_at is Unix seconds (when to try again; never used for ordering);
-- waits_entity/waits_global name the record it waits for, if any.
CREATE TABLE IF NOT EXISTS parked (
    entity       TEXT NOT NULL,
    global_id    TEXT NOT NULL,
    change       TEXT NOT NULL,
    reason       TEXT NOT NULL,
    since        TEXT NOT NULL,
    tries        INTEGER NOT NULL,
    retry_at     INTEGER NOT NULL,
    waits_entity TEXT,
    waits_global TEXT,
    PRIMARY KEY (entity, global_id)
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

impl LocalConflict {
    /// A conflict as the service answered it, learnt of at `recorded_at`.
    pub fn from_service(c: &od_client::Conflict, recorded_at: &str) -> LocalConflict {
        LocalConflict {
            entity: c.entity.clone(),
            global_id: c.global_id.to_string(),
            field: c.field.clone(),
            host_value: c.host_value.clone(),
            online_value: c.online_value.clone(),
            outcome: c.outcome.clone(),
            recorded_at: recorded_at.to_owned(),
        }
    }
}

/// An online change set aside because it could not be applied to the host
/// (docs/SYNC_PROTOCOL.md §6): shown to the user, tried again later.
// Listed by the engine (src/sync/engine.rs) once it shows parked changes.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub entity: String,
    pub global_id: String,
    /// The host's reason (or why the change could not be converted).
    pub reason: String,
    /// When it was first set aside (RFC 3339; for display only).
    pub since: String,
    /// How many times it was tried.
    pub tries: u32,
}

/// A parked change as continuous sync reads it back for a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedChange {
    pub entity: String,
    pub global_id: String,
    /// The change as continuous sync stored it (JSON).
    pub change: String,
    /// Its retry time has come.
    pub due: bool,
    /// The record it waits for (entity, global id).
    pub waits_for: Option<(String, String)>,
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

    /// Every mapped record of `entity`: (local id, global id).
    pub fn mapped(&self, entity: &str) -> Result<Vec<(String, String)>, StateError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT local_id, global_id FROM ids WHERE entity = ?1")?;
        let rows = statement
            .query_map(params![entity], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The shadow of a record, if it was exchanged since shadows exist.
    pub fn shadow(&self, entity: &str, global_id: &str) -> Result<Option<Shadow>, StateError> {
        read_shadow(&self.connection, entity, global_id)
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

    /// The parked changes, oldest first.
    pub fn parked(&self) -> Result<Vec<Parked>, StateError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT entity, global_id, reason, since, tries FROM parked ORDER BY since, entity, global_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(Parked {
                entity: row.get(0)?,
                global_id: row.get(1)?,
                reason: row.get(2)?,
                since: row.get(3)?,
                tries: row.get::<_, i64>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many changes are parked.
    pub fn parked_count(&self) -> Result<usize, StateError> {
        let count: i64 = self
            .connection
            .prepare_cached("SELECT COUNT(*) FROM parked")?
            .query_row([], |row| row.get(0))?;
        Ok(count.max(0) as usize)
    }

    /// Whether a change of this record is parked.
    pub fn is_parked(&self, entity: &str, global_id: &str) -> Result<bool, StateError> {
        Ok(self
            .connection
            .prepare_cached("SELECT 1 FROM parked WHERE entity = ?1 AND global_id = ?2")?
            .query_row(params![entity, global_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Parked changes that may be tried again: those due at `now` (Unix
    /// seconds), oldest retry time first, at most `limit`, and every one
    /// that waits for a record (the caller decides whether it arrived).
    pub fn parked_for_retry(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<ParkedChange>, StateError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT entity, global_id, change, retry_at <= ?1, waits_entity, waits_global FROM parked
             WHERE retry_at <= ?1 OR waits_entity IS NOT NULL
             ORDER BY retry_at <= ?1 DESC, retry_at, entity, global_id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![now, limit as i64], |row| {
            let waits: (Option<String>, Option<String>) = (row.get(4)?, row.get(5)?);
            Ok(ParkedChange {
                entity: row.get(0)?,
                global_id: row.get(1)?,
                change: row.get(2)?,
                due: row.get(3)?,
                waits_for: match waits {
                    (Some(entity), Some(global_id)) => Some((entity, global_id)),
                    _ => None,
                },
            })
        })?;
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

/// A new global id: a UUID whose first 48 bits are the time in
/// milliseconds and the rest random (version 7, RFC 9562). Ids minted
/// together sort together, so the 1,000 new ids of a first-sync batch land
/// in a few pages of every index keyed by them (here and in the service's
/// records) instead of in 1,000 random ones: with random (v4) ids each
/// batch rewrote about one index page per record (docs/PERFORMANCE.md).
pub(crate) fn new_global_id() -> String {
    let random = uuid::Uuid::new_v4().into_bytes();
    let mut counter_and_random = [0u8; 10];
    counter_and_random.copy_from_slice(&random[6..]);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &counter_and_random)
        .into_uuid()
        .to_string()
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

    /// Records the pair when neither side is mapped yet; true when the pair
    /// is (now) mapped, false when either side already has another partner
    /// (nothing written). For adopting ids that may collide (a takeover:
    /// docs/SYNC_PROTOCOL.md §10).
    pub fn map_if_free(
        &mut self,
        entity: &str,
        local_id: &str,
        global_id: &str,
    ) -> Result<bool, StateError> {
        self.tx
            .prepare_cached(
                "INSERT INTO ids (entity, local_id, global_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?
            .execute(params![entity, local_id, global_id])?;
        Ok(self.global_id(entity, local_id)?.as_deref() == Some(global_id))
    }

    /// [`State::global_id`] inside a commit.
    pub fn global_id(&self, entity: &str, local_id: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .tx
            .prepare_cached("SELECT global_id FROM ids WHERE entity = ?1 AND local_id = ?2")?
            .query_row(params![entity, local_id], |row| row.get(0))
            .optional()?)
    }

    /// [`State::local_id`] inside a commit.
    pub fn local_id(&self, entity: &str, global_id: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .tx
            .prepare_cached("SELECT local_id FROM ids WHERE entity = ?1 AND global_id = ?2")?
            .query_row(params![entity, global_id], |row| row.get(0))
            .optional()?)
    }

    /// [`State::shadow`] inside a commit.
    pub fn shadow(&self, entity: &str, global_id: &str) -> Result<Option<Shadow>, StateError> {
        read_shadow(&self.tx, entity, global_id)
    }

    /// The global id of a host record, made now ([`new_global_id`]) when it has none:
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
        match known {
            Some(global_id) => Ok(global_id),
            None => self.mint_or_global_id(entity, local_id),
        }
    }

    /// The same as [`Batch::global_id_or_mint`], for a record that most
    /// likely has no global id yet (the first sync sending it): one
    /// statement when it has none, two when it has one.
    pub fn mint_or_global_id(
        &mut self,
        entity: &str,
        local_id: &str,
    ) -> Result<String, StateError> {
        let minted = new_global_id();
        let inserted = self
            .tx
            .prepare_cached("INSERT INTO ids (entity, local_id, global_id) VALUES (?1, ?2, ?3) ON CONFLICT (entity, local_id) DO NOTHING")?
            .execute(params![entity, local_id, minted])?;
        if inserted == 1 {
            return Ok(minted);
        }
        Ok(self
            .tx
            .prepare_cached("SELECT global_id FROM ids WHERE entity = ?1 AND local_id = ?2")?
            .query_row(params![entity, local_id], |row| row.get(0))?)
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

    /// Deletes the conflicts recorded before `before` (RFC 3339, UTC, as
    /// recorded); returns how many. The history shows 7 days; they are kept
    /// a while longer, then deleted, since they hold customer data.
    pub fn prune_conflicts(&mut self, before: &str) -> Result<usize, StateError> {
        Ok(self
            .tx
            .execute("DELETE FROM conflicts WHERE recorded_at < ?1", [before])?)
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

/// What [`Batch::park`] stores.
#[derive(Debug, Clone, Copy)]
pub struct ToPark<'a> {
    pub entity: &'a str,
    pub global_id: &'a str,
    /// The change to try again (JSON).
    pub change: &'a str,
    pub reason: &'a str,
    /// Now, RFC 3339 (kept as `since` when the record was not parked yet).
    pub now: &'a str,
    /// When to try again, Unix seconds.
    pub retry_at: i64,
    /// The record it waits for (entity, global id).
    pub waits_for: Option<(&'a str, &'a str)>,
}

impl Batch<'_> {
    /// Sets a change aside, or replaces the parked change of its record
    /// (the newer state online wins; `since` stays the first time).
    pub fn park(&mut self, parked: &ToPark<'_>) -> Result<(), StateError> {
        let (waits_entity, waits_global) = parked.waits_for.unzip();
        self.tx
            .prepare_cached(
                "INSERT INTO parked (entity, global_id, change, reason, since, tries, retry_at, waits_entity, waits_global)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8)
                 ON CONFLICT (entity, global_id) DO UPDATE SET change = excluded.change,
                     reason = excluded.reason, tries = tries + 1, retry_at = excluded.retry_at,
                     waits_entity = excluded.waits_entity, waits_global = excluded.waits_global",
            )?
            .execute(params![
                parked.entity,
                parked.global_id,
                parked.change,
                parked.reason,
                parked.now,
                parked.retry_at,
                waits_entity,
                waits_global
            ])?;
        Ok(())
    }

    /// Tries a parked change again later, unchanged (it was skipped because
    /// the host had edited the record, or it still waits for `waits_for`).
    pub fn postpone_parked(
        &mut self,
        entity: &str,
        global_id: &str,
        retry_at: i64,
        waits_for: Option<(&str, &str)>,
    ) -> Result<(), StateError> {
        let (waits_entity, waits_global) = waits_for.unzip();
        self.tx
            .prepare_cached(
                "UPDATE parked SET tries = tries + 1, retry_at = ?3, waits_entity = ?4, waits_global = ?5
                 WHERE entity = ?1 AND global_id = ?2",
            )?
            .execute(params![entity, global_id, retry_at, waits_entity, waits_global])?;
        Ok(())
    }

    /// Forgets the parked change of a record (applied, or superseded).
    pub fn unpark(&mut self, entity: &str, global_id: &str) -> Result<(), StateError> {
        self.tx
            .prepare_cached("DELETE FROM parked WHERE entity = ?1 AND global_id = ?2")?
            .execute(params![entity, global_id])?;
        Ok(())
    }

    /// Makes every parked change due at once.
    pub fn retry_parked_now(&mut self) -> Result<(), StateError> {
        self.tx
            .prepare_cached("UPDATE parked SET retry_at = 0")?
            .execute([])?;
        Ok(())
    }
}

fn read_shadow(
    connection: &Connection,
    entity: &str,
    global_id: &str,
) -> Result<Option<Shadow>, StateError> {
    let row: Option<(i64, String)> = connection
        .prepare_cached("SELECT version, fields FROM shadows WHERE entity = ?1 AND global_id = ?2")?
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
    fn ids_minted_later_sort_later_and_are_uuids() {
        let first = new_global_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later: Vec<String> = (0..100).map(|_| new_global_id()).collect();
        for id in &later {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert!(*id > first, "{id} minted after {first} sorts before it");
        }
        let distinct: std::collections::HashSet<&String> = later.iter().collect();
        assert_eq!(distinct.len(), later.len());
    }

    #[test]
    fn minting_twice_gives_the_first_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let mut ids = Vec::new();
        state
            .commit(|b| {
                ids.push(b.mint_or_global_id("contacts", "1")?);
                ids.push(b.mint_or_global_id("contacts", "1")?);
                ids.push(b.global_id_or_mint("contacts", "1")?);
                ids.push(b.global_id_or_mint("contacts", "2")?);
                ids.push(b.mint_or_global_id("contacts", "2")?);
                Ok(())
            })
            .unwrap();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[0], ids[2]);
        assert_eq!(ids[3], ids[4]);
        assert_ne!(ids[0], ids[3]);
        assert_eq!(
            state.local_id("contacts", &ids[3]).unwrap().as_deref(),
            Some("2")
        );
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
    fn old_conflicts_are_pruned_and_newer_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let conflict = |at: &str| LocalConflict {
            entity: "contacts".into(),
            global_id: "g1".into(),
            field: "city".into(),
            host_value: "Oslo".into(),
            online_value: "Bergen".into(),
            outcome: "host_wins".into(),
            recorded_at: at.into(),
        };
        state
            .commit(|b| {
                b.record_conflict(&conflict("2026-09-01T10:00:00Z"))?;
                b.record_conflict(&conflict("2026-11-20T10:00:00Z"))
            })
            .unwrap();
        let mut pruned = 0;
        state
            .commit(|b| {
                pruned = b.prune_conflicts("2026-10-29T00:00:00Z")?;
                Ok(())
            })
            .unwrap();
        assert_eq!(pruned, 1);
        let left = state.conflicts().unwrap();
        assert_eq!(left, vec![conflict("2026-11-20T10:00:00Z")]);
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
        assert_eq!(version, FORMAT);
        state.commit(|b| b.remove_shadow("contacts", "g1")).unwrap();
        assert_eq!(state.shadow("contacts", "g1").unwrap(), None);
    }

    #[test]
    fn a_format_2_file_gains_the_parked_table() {
        let dir = tempfile::tempdir().unwrap();
        {
            let connection = Connection::open(dir.path().join("state.db")).unwrap();
            connection
                .execute_batch(&format!(
                    "{}\nDROP TABLE parked; PRAGMA user_version = 2;",
                    SCHEMA
                ))
                .unwrap();
            connection
                .execute("INSERT INTO ids VALUES ('contacts', '1', 'g1')", [])
                .unwrap();
        }
        let mut state = State::open(dir.path()).unwrap();
        assert_eq!(
            state.global_id("contacts", "1").unwrap().as_deref(),
            Some("g1")
        );
        assert_eq!(state.parked_count().unwrap(), 0);
        let park = |reason: &'static str, now: &'static str| ToPark {
            entity: "contacts",
            global_id: "g2",
            change: "{}",
            reason,
            now,
            retry_at: 100,
            waits_for: None,
        };
        state
            .commit(|b| b.park(&park("refused", "2026-01-01T00:00:00Z")))
            .unwrap();
        state
            .commit(|b| b.park(&park("refused again", "2026-01-02T00:00:00Z")))
            .unwrap();
        assert_eq!(
            state.parked().unwrap(),
            [Parked {
                entity: "contacts".into(),
                global_id: "g2".into(),
                reason: "refused again".into(),
                since: "2026-01-01T00:00:00Z".into(),
                tries: 2,
            }]
        );
        assert!(state.parked_for_retry(99, 10).unwrap().is_empty());
        assert_eq!(state.parked_for_retry(100, 10).unwrap().len(), 1);
        state.commit(|b| b.unpark("contacts", "g2")).unwrap();
        assert!(!state.is_parked("contacts", "g2").unwrap());
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
