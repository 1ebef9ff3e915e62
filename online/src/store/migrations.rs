//! The SQLite schema, as numbered migrations applied in order at start-up.
//! A migration is never edited once released: changes are new migrations.

use rusqlite::{Connection, OptionalExtension};

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: Online IDs, sessions, links, throttling, companies, devices.
    r#"
    CREATE TABLE accounts (
        id            TEXT PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE,
        name          TEXT NOT NULL DEFAULT '',
        verified      INTEGER NOT NULL DEFAULT 0,
        password_hash TEXT,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE email_links (
        token_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        purpose    TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    );
    CREATE INDEX email_links_account ON email_links(account_id, purpose);
    CREATE TABLE sessions (
        id           TEXT PRIMARY KEY,
        token_hash   TEXT NOT NULL UNIQUE,
        csrf_hash    TEXT NOT NULL,
        account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL
    );
    CREATE INDEX sessions_account ON sessions(account_id);
    CREATE TABLE throttle_events (
        kind TEXT NOT NULL,
        key  TEXT NOT NULL,
        at   INTEGER NOT NULL
    );
    CREATE INDEX throttle_events_key ON throttle_events(kind, key, at);
    CREATE TABLE companies (
        id                  TEXT PRIMARY KEY,
        details             TEXT NOT NULL,
        licence_number      TEXT NOT NULL UNIQUE,
        licence_document    TEXT NOT NULL,
        tier                TEXT NOT NULL,
        online_users        INTEGER NOT NULL,
        system_database_id  TEXT NOT NULL,
        company_database_id TEXT NOT NULL UNIQUE,
        connected_by        TEXT NOT NULL REFERENCES accounts(id),
        created_at          INTEGER NOT NULL,
        updated_at          INTEGER NOT NULL
    );
    CREATE TABLE memberships (
        company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        role       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (company_id, account_id)
    );
    CREATE INDEX memberships_account ON memberships(account_id);
    CREATE TABLE devices (
        id            TEXT PRIMARY KEY,
        company_id    TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        computer_id   TEXT NOT NULL,
        computer_name TEXT NOT NULL,
        created_by    TEXT NOT NULL REFERENCES accounts(id),
        created_at    INTEGER NOT NULL,
        revoked_at    INTEGER
    );
    CREATE INDEX devices_company ON devices(company_id, computer_id);
    CREATE TABLE device_tokens (
        token_hash TEXT PRIMARY KEY,
        device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
        kind       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    );
    CREATE INDEX device_tokens_device ON device_tokens(device_id);
    "#,
    // 2: synchronisation (docs/SYNC_PROTOCOL.md §4).
    r#"
    CREATE TABLE sync_state (
        company_id       TEXT PRIMARY KEY REFERENCES companies(id) ON DELETE CASCADE,
        seq              INTEGER NOT NULL DEFAULT 0,
        schema           TEXT,
        schema_at        INTEGER,
        computer_id      TEXT,
        fencing          INTEGER NOT NULL DEFAULT 0,
        lease_expires_at INTEGER
    );
    CREATE TABLE sync_records (
        company_id    TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        entity        TEXT NOT NULL,
        global_id     TEXT NOT NULL,
        version       INTEGER NOT NULL,
        deleted       INTEGER NOT NULL,
        fields        TEXT NOT NULL,
        meta          TEXT NOT NULL,
        seq           INTEGER NOT NULL,
        origin_device TEXT,
        updated_at    INTEGER NOT NULL,
        PRIMARY KEY (company_id, entity, global_id)
    ) WITHOUT ROWID;
    CREATE INDEX sync_records_seq ON sync_records(company_id, seq);
    CREATE TABLE sync_idempotency (
        company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        key        TEXT NOT NULL,
        answer     TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (company_id, key)
    ) WITHOUT ROWID;
    CREATE INDEX sync_idempotency_age ON sync_idempotency(created_at);
    CREATE TABLE sync_conflicts (
        id           INTEGER PRIMARY KEY,
        company_id   TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        entity       TEXT NOT NULL,
        global_id    TEXT NOT NULL,
        field        TEXT NOT NULL,
        host_value   TEXT NOT NULL,
        online_value TEXT NOT NULL,
        outcome      TEXT NOT NULL,
        at           INTEGER NOT NULL
    );
    CREATE INDEX sync_conflicts_company ON sync_conflicts(company_id, at);
    CREATE TABLE sync_cursors (
        device_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
        company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
        cursor     INTEGER NOT NULL,
        acked_at   INTEGER NOT NULL
    );
    "#,
    // 3: the housekeeping deletes old conflicts of every company by age
    // alone, which `sync_conflicts_company` (company first) cannot serve.
    r#"
    CREATE INDEX sync_conflicts_age ON sync_conflicts(at);
    "#,
    // 4: disconnecting a company (PRODUCT.md §5.8) keeps the company and its
    // memberships but marks it; restore detection (docs/SYNC_PROTOCOL.md §9)
    // keeps the newest host change-log position pushed and the plugin's
    // generation marker.
    r#"
    ALTER TABLE companies ADD COLUMN disconnected_at INTEGER;
    ALTER TABLE sync_state ADD COLUMN host_position INTEGER;
    ALTER TABLE sync_state ADD COLUMN host_generation TEXT;
    "#,
    // 5: the audit trail of changes to who administers a company (Change
    // user hands "Connected by" to another Online ID).
    r#"
    CREATE TABLE audit_events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        company_id TEXT NOT NULL,
        at         INTEGER NOT NULL,
        action     TEXT NOT NULL,
        account_id TEXT NOT NULL,
        detail     TEXT NOT NULL
    );
    CREATE INDEX audit_events_company ON audit_events(company_id, at);
    "#,
    // 6: the host's own key of a record (its local id as text), as the last
    // push that carried one sent it: a new sync computer matches the host's
    // rows to the online records by it (`GET /api/v1/sync/records`). Null
    // for records created on the web until a push carries one.
    r#"
    ALTER TABLE sync_records ADD COLUMN host_key TEXT;
    "#,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database has schema version {found}, newer than this service knows ({known}); \
         run a newer version of the service"
    )]
    TooNew { found: i64, known: i64 },
}

/// Brings the database to [`CURRENT_VERSION`], each migration in its own
/// transaction together with the new version number.
pub fn migrate(connection: &mut Connection) -> Result<i64, MigrationError> {
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    let found: i64 = connection
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    if found > CURRENT_VERSION {
        return Err(MigrationError::TooNew {
            found,
            known: CURRENT_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        let transaction = connection.transaction()?;
        transaction.execute_batch(sql)?;
        transaction.execute("DELETE FROM schema_version", [])?;
        transaction.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )?;
        transaction.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(CURRENT_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_harmless_and_records_the_version() {
        let mut connection = Connection::open_in_memory().expect("in-memory database");
        assert_eq!(migrate(&mut connection).expect("first"), CURRENT_VERSION);
        assert_eq!(migrate(&mut connection).expect("second"), CURRENT_VERSION);
        let version: i64 = connection
            .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .expect("version row");
        assert_eq!(version, CURRENT_VERSION);
    }

    fn query_plan(connection: &Connection, sql: &str) -> String {
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let details = statement
            .query_map([], |row| row.get::<_, String>(3))
            .expect("plan rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("plan details");
        details.join("; ")
    }

    #[test]
    fn pruning_conflicts_uses_an_index_not_a_table_scan() {
        let mut connection = Connection::open_in_memory().expect("in-memory database");
        migrate(&mut connection).expect("migrate");
        // In the push transaction, per company.
        let per_company = query_plan(
            &connection,
            "DELETE FROM sync_conflicts WHERE company_id = 'c' AND at < 0",
        );
        assert!(
            per_company.contains("INDEX sync_conflicts_company"),
            "{per_company}"
        );
        // In the housekeeping, every company.
        let by_age = query_plan(&connection, "DELETE FROM sync_conflicts WHERE at < 0");
        assert!(by_age.contains("INDEX sync_conflicts_age"), "{by_age}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut connection = Connection::open_in_memory().expect("in-memory database");
        migrate(&mut connection).expect("migrate");
        connection
            .execute("UPDATE schema_version SET version = 99", [])
            .expect("update");
        assert!(matches!(
            migrate(&mut connection),
            Err(MigrationError::TooNew { found: 99, .. })
        ));
    }
}
