//! The synchronisation history (PRODUCT.md §4): each run of the engine with
//! its start, end, outcome, error and records moved per entity and
//! direction.
//!
//! Kept in `history.db` beside `state.db`, apart from it on purpose: the
//! history is for people; losing it loses no data and never changes what
//! is synchronised. Runs older than [`KEEP_DAYS`] days are pruned, and at
//! most [`KEEP_RUNS`] are kept.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// How long runs are kept.
pub(crate) const KEEP_DAYS: i64 = 90;
/// At most this many runs are kept.
pub(crate) const KEEP_RUNS: i64 = 500;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    outcome    TEXT NOT NULL,
    error      TEXT,
    counts     TEXT NOT NULL DEFAULT '{}',
    last_success TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_start ON runs (started_at);
";

/// What a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    FirstSync,
    Continuous,
    /// The online records taken over (docs/SYNC_PROTOCOL.md §10).
    Takeover,
}

impl RunKind {
    fn name(self) -> &'static str {
        match self {
            RunKind::FirstSync => "first_sync",
            RunKind::Continuous => "continuous",
            RunKind::Takeover => "takeover",
        }
    }
}

/// Records moved by a run, per entity: (to online, to the program).
pub type Counts = BTreeMap<String, (u64, u64)>;

/// One run as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: i64,
    pub kind: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// `running`, `finished`, `stopped` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub entities: Vec<EntityCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityCount {
    pub entity: String,
    pub to_online: u64,
    pub to_host: u64,
}

pub struct History {
    connection: Connection,
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl History {
    pub fn open(folder: &Path) -> rusqlite::Result<History> {
        let connection = Connection::open(folder.join("history.db"))?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        // Losing the newest history entry at a power cut is acceptable; an
        // fsync per round is not.
        connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        connection.execute_batch(SCHEMA)?;
        Ok(History { connection })
    }

    /// Starts a run; runs left `running` by a crash are closed first, and
    /// old runs pruned.
    pub fn begin(&self, kind: RunKind, at: DateTime<Utc>) -> rusqlite::Result<i64> {
        self.connection.execute(
            "UPDATE runs SET outcome = 'interrupted', ended_at = COALESCE(ended_at, started_at) \
             WHERE outcome = 'running'",
            [],
        )?;
        self.connection.execute(
            "DELETE FROM runs WHERE started_at < ?1",
            [stamp(at - Duration::days(KEEP_DAYS))],
        )?;
        self.connection.execute(
            "DELETE FROM runs WHERE id <= (SELECT MAX(id) FROM runs) - ?1",
            [KEEP_RUNS - 1],
        )?;
        self.connection.execute(
            "INSERT INTO runs (kind, started_at, outcome) VALUES (?1, ?2, 'running')",
            params![kind.name(), stamp(at)],
        )?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Stores the counts so far of a running run.
    pub fn update(&self, id: i64, counts: &Counts) -> rusqlite::Result<()> {
        self.connection.execute(
            "UPDATE runs SET counts = ?2 WHERE id = ?1",
            params![id, encode(counts)],
        )?;
        Ok(())
    }

    /// Notes that a running run was up to date at `at`.
    pub fn succeeded(&self, id: i64, at: DateTime<Utc>) -> rusqlite::Result<()> {
        self.connection.execute(
            "UPDATE runs SET last_success = ?2 WHERE id = ?1",
            params![id, stamp(at)],
        )?;
        Ok(())
    }

    /// When a run was last up to date (see [`History::succeeded`]), if ever.
    pub fn last_success(&self) -> rusqlite::Result<Option<DateTime<Utc>>> {
        let text: Option<String> =
            self.connection
                .query_row("SELECT MAX(last_success) FROM runs", [], |row| row.get(0))?;
        Ok(text
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Ends a run.
    pub fn finish(
        &self,
        id: i64,
        at: DateTime<Utc>,
        outcome: &str,
        counts: &Counts,
        error: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.connection.execute(
            "UPDATE runs SET ended_at = ?2, outcome = ?3, counts = ?4, error = ?5, \
             last_success = CASE WHEN ?3 = 'finished' THEN ?2 ELSE last_success END WHERE id = ?1",
            params![id, stamp(at), outcome, encode(counts), error],
        )?;
        Ok(())
    }

    /// The newest runs first, at most `limit`.
    pub fn runs(&self, limit: usize) -> rusqlite::Result<Vec<Run>> {
        let mut statement = self.connection.prepare(
            "SELECT id, kind, started_at, ended_at, outcome, error, counts FROM runs \
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit as i64], |row| {
            let counts: String = row.get(6)?;
            Ok(Run {
                id: row.get(0)?,
                kind: row.get(1)?,
                started_at: row.get(2)?,
                ended_at: row.get(3)?,
                outcome: row.get(4)?,
                error: row.get(5)?,
                entities: decode(&counts)
                    .into_iter()
                    .map(|(entity, (to_online, to_host))| EntityCount {
                        entity,
                        to_online,
                        to_host,
                    })
                    .collect(),
            })
        })?;
        rows.collect()
    }

    /// The last run's counts, if it is still open (for tests).
    #[cfg(test)]
    fn open_run(&self) -> rusqlite::Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        self.connection
            .query_row("SELECT id FROM runs WHERE outcome = 'running'", [], |r| {
                r.get(0)
            })
            .optional()
    }
}

fn encode(counts: &Counts) -> String {
    serde_json::to_string(counts).unwrap_or_else(|_| "{}".into())
}

fn decode(text: &str) -> Counts {
    serde_json::from_str(text).unwrap_or_default()
}

/// Adds `moved` records of `entity` in one direction.
pub fn add(counts: &mut Counts, entity: &str, to_online: u64, to_host: u64) {
    if to_online == 0 && to_host == 0 {
        return;
    }
    let entry = counts.entry(entity.to_owned()).or_default();
    entry.0 += to_online;
    entry.1 += to_host;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_recorded_with_counts_and_crashed_ones_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path()).unwrap();
        let now = Utc::now();
        let first = history.begin(RunKind::FirstSync, now).unwrap();
        let mut counts = Counts::new();
        add(&mut counts, "contacts", 10, 0);
        add(&mut counts, "contacts", 5, 2);
        add(&mut counts, "products", 0, 0);
        history.update(first, &counts).unwrap();
        assert_eq!(history.last_success().unwrap(), None);
        history.succeeded(first, now).unwrap();
        assert_eq!(
            history.last_success().unwrap().map(|t| t.timestamp()),
            Some(now.timestamp())
        );
        // A crash: the next run closes the open one.
        let second = history.begin(RunKind::Continuous, now).unwrap();
        assert_eq!(history.open_run().unwrap(), Some(second));
        history
            .finish(second, now, "stopped", &Counts::new(), None)
            .unwrap();
        let runs = history.runs(10).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].outcome, "stopped");
        assert_eq!(runs[1].kind, "first_sync");
        assert_eq!(runs[1].outcome, "interrupted");
        assert_eq!(
            runs[1].entities,
            vec![EntityCount {
                entity: "contacts".into(),
                to_online: 15,
                to_host: 2
            }]
        );
    }

    #[test]
    fn old_runs_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(dir.path()).unwrap();
        let long_ago = Utc::now() - Duration::days(KEEP_DAYS + 1);
        let old = history.begin(RunKind::Continuous, long_ago).unwrap();
        history
            .finish(old, long_ago, "stopped", &Counts::new(), None)
            .unwrap();
        for _ in 0..KEEP_RUNS + 3 {
            let id = history.begin(RunKind::Continuous, Utc::now()).unwrap();
            history
                .finish(id, Utc::now(), "stopped", &Counts::new(), None)
                .unwrap();
        }
        let runs = history.runs(10_000).unwrap();
        assert_eq!(runs.len() as i64, KEEP_RUNS);
        assert!(runs.iter().all(|r| r.id != old));
    }
}
