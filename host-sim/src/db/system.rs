//! The system database: the installation's licences, add-on bindings,
//! company list, users, installed computers, sessions and API integrations.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{HostError, Result};

const SCHEMA: &str = "
CREATE TABLE installation (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    evaluation_installation INTEGER NOT NULL DEFAULT 0,
    created_at              TEXT NOT NULL
);

CREATE TABLE companies (
    id                       TEXT PRIMARY KEY,
    name                     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    file                     TEXT NOT NULL UNIQUE,
    is_sample                INTEGER NOT NULL DEFAULT 0,
    -- Written by the plugin when a company is connected to Online Desktop.
    online_desktop_connected INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE licence_documents (
    licence_number TEXT PRIMARY KEY,
    document       TEXT NOT NULL,
    registered_at  TEXT NOT NULL
);

CREATE TABLE add_on_bindings (
    add_on         TEXT NOT NULL,
    licence_number TEXT NOT NULL,
    company_id     TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    bound_at       TEXT NOT NULL,
    PRIMARY KEY (add_on, licence_number, company_id)
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    is_super_user INTEGER NOT NULL DEFAULT 0,
    -- A user may be linked to one employee of one company database.
    company_id    TEXT REFERENCES companies(id),
    employee_id   INTEGER,
    CHECK ((company_id IS NULL) = (employee_id IS NULL))
);

CREATE TABLE computers (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    holds_system_database INTEGER NOT NULL DEFAULT 0
);
-- At most one computer holds the system database.
CREATE UNIQUE INDEX computers_one_system_holder
    ON computers (holds_system_database) WHERE holds_system_database = 1;

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    company_id   TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    computer_id  TEXT NOT NULL REFERENCES computers(id) ON DELETE CASCADE,
    logged_in_at TEXT NOT NULL,
    UNIQUE (user_id, company_id, computer_id)
);
CREATE INDEX sessions_company ON sessions (company_id);

CREATE TABLE api_integrations (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL COLLATE NOCASE,
    company_id TEXT NOT NULL REFERENCES companies(id) ON DELETE CASCADE,
    logged_in  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (name, company_id)
);
";

/// Added with synchronisation (issue 4); created in older system databases
/// when they are opened.
const SYNC_BLOCKS: &str = "
CREATE TABLE IF NOT EXISTS sync_blocks (
    company_id TEXT PRIMARY KEY REFERENCES companies(id) ON DELETE CASCADE,
    reason     TEXT NOT NULL,
    blocked_at TEXT NOT NULL
);
";

/// Use of the program blocked for a company database by the add-on (during
/// the first synchronisation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBlock {
    pub reason: String,
    pub blocked_at: String,
}

/// One company database as the system database lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    pub id: String,
    pub name: String,
    /// File name under the data directory's `companies/` folder.
    pub file: String,
    pub is_sample: bool,
    pub online_desktop_connected: bool,
}

/// The employee a user is linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeLink {
    pub company_id: String,
    pub employee_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_super_user: bool,
    pub employee: Option<EmployeeLink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computer {
    pub id: String,
    pub name: String,
    pub holds_system_database: bool,
}

/// A user logged in to a company database from a computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub username: String,
    pub company_id: String,
    pub company_name: String,
    pub computer_id: String,
    pub computer_name: String,
    pub logged_in_at: String,
}

/// A program that logs in to a company database through the host's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub name: String,
    pub company_id: String,
    pub company_name: String,
    pub logged_in: bool,
}

/// A licence document as registered (the text is kept exactly as issued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceDocument {
    pub licence_number: String,
    pub document: String,
    pub registered_at: String,
}

/// Where a company database is connected to the online service (written by
/// `host-sim sync connect`; the device credentials stay with the add-on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineConnection {
    pub company_id: String,
    pub service_url: String,
    /// The company's id on the online service.
    pub online_company_id: String,
    /// The Online ID (e-mail) that connected it.
    pub connected_by: String,
    pub connected_at: String,
    /// The computer the connection belongs to (the sync computer); None
    /// for a connection recorded before the host kept it.
    pub computer_id: Option<String>,
}

/// An add-on registered for one company database under one licence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOnBinding {
    pub add_on: String,
    pub licence_number: String,
    pub company_id: String,
}

/// Whether registering a licence added a new one or replaced an older
/// document with the same licence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Added,
    Replaced,
}

/// The open system database.
#[derive(Debug)]
pub struct SystemDb {
    conn: Connection,
}

fn now_text() -> String {
    chrono::Local::now()
        .naive_local()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

impl SystemDb {
    /// Creates a new system database at `path` (which must not exist).
    pub fn create(path: &Path, evaluation_installation: bool) -> Result<Self> {
        let conn = super::create_new(path)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(SYNC_BLOCKS)?;
        conn.execute(
            "INSERT INTO installation (id, evaluation_installation, created_at) VALUES (1, ?1, ?2)",
            params![evaluation_installation, now_text()],
        )?;
        Ok(SystemDb { conn })
    }

    /// Opens the system database of an existing installation.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = super::open_existing(path)?;
        let has_blocks: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_blocks')",
            [],
            |row| row.get(0),
        )?;
        if !has_blocks {
            conn.execute_batch(SYNC_BLOCKS)?;
        }
        Ok(SystemDb { conn })
    }

    // --- blocking use of the program --------------------------------------

    /// Blocks use of the program for the company (replacing the reason of
    /// an earlier block).
    pub fn block_company(&self, company_id: &str, reason: &str) -> Result<SyncBlock> {
        let blocked_at = now_text();
        self.conn.execute(
            "INSERT INTO sync_blocks (company_id, reason, blocked_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (company_id) DO UPDATE SET reason = excluded.reason",
            params![company_id, reason, blocked_at],
        )?;
        Ok(self.company_block(company_id)?.unwrap_or(SyncBlock {
            reason: reason.to_owned(),
            blocked_at,
        }))
    }

    /// Lifts the block; whether there was one.
    pub fn unblock_company(&self, company_id: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM sync_blocks WHERE company_id = ?1",
            params![company_id],
        )? > 0)
    }

    pub fn company_block(&self, company_id: &str) -> Result<Option<SyncBlock>> {
        Ok(self
            .conn
            .query_row(
                "SELECT reason, blocked_at FROM sync_blocks WHERE company_id = ?1",
                params![company_id],
                |row| {
                    Ok(SyncBlock {
                        reason: row.get(0)?,
                        blocked_at: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    // --- installation -----------------------------------------------------

    pub fn evaluation_installation(&self) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT evaluation_installation FROM installation WHERE id = 1",
            [],
            |row| row.get(0),
        )?)
    }

    /// The system database's stable id, which the online service binds to
    /// the licence and the company. Made (a random UUID) the first time it
    /// is asked for; older system databases get the table then.
    pub fn database_id(&self) -> Result<String> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS system_identity (
                 id          INTEGER PRIMARY KEY CHECK (id = 1),
                 database_id TEXT NOT NULL
             );",
        )?;
        self.conn.execute(
            "INSERT OR IGNORE INTO system_identity (id, database_id) VALUES (1, ?1)",
            params![uuid::Uuid::new_v4().to_string()],
        )?;
        Ok(self.conn.query_row(
            "SELECT database_id FROM system_identity WHERE id = 1",
            [],
            |row| row.get(0),
        )?)
    }

    // --- online connections -----------------------------------------------

    fn ensure_online_connections(&self) -> Result<()> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS online_connections (
                 company_id         TEXT PRIMARY KEY,
                 service_url        TEXT NOT NULL,
                 online_company_id  TEXT NOT NULL,
                 connected_by       TEXT NOT NULL,
                 connected_at       TEXT NOT NULL
             );",
        )?;
        let has_computer: bool = self.conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('online_connections')
             WHERE name = 'computer_id'",
            [],
            |row| row.get(0),
        )?;
        if !has_computer {
            self.conn
                .execute_batch("ALTER TABLE online_connections ADD COLUMN computer_id TEXT;")?;
        }
        Ok(())
    }

    /// Records where a company database is connected (no credentials: the
    /// add-on keeps those) and marks it connected.
    pub fn record_online_connection(&self, connection: &OnlineConnection) -> Result<()> {
        self.ensure_online_connections()?;
        self.conn.execute(
            "INSERT INTO online_connections
                 (company_id, service_url, online_company_id, connected_by, connected_at,
                  computer_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (company_id) DO UPDATE SET service_url = excluded.service_url,
                 online_company_id = excluded.online_company_id,
                 connected_by = excluded.connected_by, connected_at = excluded.connected_at,
                 computer_id = excluded.computer_id",
            params![
                connection.company_id,
                connection.service_url,
                connection.online_company_id,
                connection.connected_by,
                connection.connected_at,
                connection.computer_id
            ],
        )?;
        self.set_online_desktop_connected(&connection.company_id, true)
    }

    /// Where the company database is connected, if it is.
    pub fn online_connection(&self, company_id: &str) -> Result<Option<OnlineConnection>> {
        self.ensure_online_connections()?;
        Ok(self
            .conn
            .query_row(
                "SELECT company_id, service_url, online_company_id, connected_by, connected_at,
                        computer_id
                 FROM online_connections WHERE company_id = ?1",
                params![company_id],
                |row| {
                    Ok(OnlineConnection {
                        company_id: row.get(0)?,
                        service_url: row.get(1)?,
                        online_company_id: row.get(2)?,
                        connected_by: row.get(3)?,
                        connected_at: row.get(4)?,
                        computer_id: row.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// Forgets the company database's connection (Disconnect's last step):
    /// removes its row and marks it not connected.
    pub fn forget_online_connection(&self, company_id: &str) -> Result<()> {
        self.ensure_online_connections()?;
        self.conn.execute(
            "DELETE FROM online_connections WHERE company_id = ?1",
            params![company_id],
        )?;
        self.set_online_desktop_connected(company_id, false)
    }

    pub fn set_evaluation_installation(&self, on: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE installation SET evaluation_installation = ?1 WHERE id = 1",
            params![on],
        )?;
        Ok(())
    }

    // --- companies --------------------------------------------------------

    pub fn add_company(&self, company: &Company) -> Result<()> {
        self.conn.execute(
            "INSERT INTO companies (id, name, file, is_sample, online_desktop_connected)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                company.id,
                company.name,
                company.file,
                company.is_sample,
                company.online_desktop_connected
            ],
        )?;
        Ok(())
    }

    /// All company databases, sorted by name.
    pub fn companies(&self) -> Result<Vec<Company>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name, file, is_sample, online_desktop_connected
             FROM companies ORDER BY name",
        )?;
        let rows = stmt.query_map([], company_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn company(&self, id: &str) -> Result<Option<Company>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, name, file, is_sample, online_desktop_connected
                 FROM companies WHERE id = ?1",
                params![id],
                company_from_row,
            )
            .optional()?)
    }

    pub fn set_online_desktop_connected(&self, company_id: &str, connected: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE companies SET online_desktop_connected = ?2 WHERE id = ?1",
            params![company_id, connected],
        )?;
        Ok(())
    }

    // --- users ------------------------------------------------------------

    /// All users, sorted by user name.
    pub fn users(&self) -> Result<Vec<User>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, username, is_super_user, company_id, employee_id
             FROM users ORDER BY username",
        )?;
        let rows = stmt.query_map([], user_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The user with this user name (case does not matter).
    pub fn user(&self, username: &str) -> Result<User> {
        self.conn
            .query_row(
                "SELECT id, username, is_super_user, company_id, employee_id
                 FROM users WHERE username = ?1",
                params![username],
                user_from_row,
            )
            .optional()?
            .ok_or_else(|| {
                let known = self
                    .users()
                    .map(|users| {
                        users
                            .into_iter()
                            .map(|u| u.username)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                HostError::NotFound {
                    kind: "user",
                    query: username.to_owned(),
                    hint: format!(" Users: {known}."),
                }
            })
    }

    pub fn add_user(&self, username: &str, is_super_user: bool) -> Result<User> {
        let username = username.trim();
        if username.is_empty() {
            return Err(HostError::InvalidInput(
                "A user name cannot be empty.".into(),
            ));
        }
        let exists: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE username = ?1)",
            params![username],
            |row| row.get(0),
        )?;
        if exists {
            return Err(HostError::NotAllowed(format!(
                "A user called \u{201c}{username}\u{201d} already exists."
            )));
        }
        self.conn.execute(
            "INSERT INTO users (username, is_super_user) VALUES (?1, ?2)",
            params![username, is_super_user],
        )?;
        self.user(username)
    }

    pub fn remove_user(&self, username: &str) -> Result<User> {
        let user = self.user(username)?;
        if user.is_super_user && self.super_user_count()? == 1 {
            return Err(HostError::NotAllowed(format!(
                "\u{201c}{}\u{201d} is the only super user and cannot be removed. Make another user a super user first.",
                user.username
            )));
        }
        self.conn
            .execute("DELETE FROM users WHERE id = ?1", params![user.id])?;
        Ok(user)
    }

    pub fn set_super_user(&self, username: &str, on: bool) -> Result<User> {
        let user = self.user(username)?;
        if !on && user.is_super_user && self.super_user_count()? == 1 {
            return Err(HostError::NotAllowed(format!(
                "\u{201c}{}\u{201d} is the only super user. Make another user a super user first.",
                user.username
            )));
        }
        self.conn.execute(
            "UPDATE users SET is_super_user = ?2 WHERE id = ?1",
            params![user.id, on],
        )?;
        self.user(username)
    }

    /// Links a user to an employee (the caller has checked that the employee
    /// exists in that company database).
    pub fn link_employee(&self, username: &str, link: &EmployeeLink) -> Result<User> {
        let user = self.user(username)?;
        self.conn.execute(
            "UPDATE users SET company_id = ?2, employee_id = ?3 WHERE id = ?1",
            params![user.id, link.company_id, link.employee_id],
        )?;
        self.user(username)
    }

    pub fn unlink_employee(&self, username: &str) -> Result<User> {
        let user = self.user(username)?;
        self.conn.execute(
            "UPDATE users SET company_id = NULL, employee_id = NULL WHERE id = ?1",
            params![user.id],
        )?;
        self.user(username)
    }

    fn super_user_count(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM users WHERE is_super_user = 1",
            [],
            |row| row.get(0),
        )?)
    }

    // --- computers --------------------------------------------------------

    /// All installed computers, sorted by name.
    pub fn computers(&self) -> Result<Vec<Computer>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, name, holds_system_database FROM computers ORDER BY name")?;
        let rows = stmt.query_map([], computer_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn add_computer(&self, id: &str, name: &str) -> Result<Computer> {
        let name = name.trim();
        if name.is_empty() {
            return Err(HostError::InvalidInput(
                "A computer name cannot be empty.".into(),
            ));
        }
        if self
            .computers()?
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
        {
            return Err(HostError::NotAllowed(format!(
                "A computer called \u{201c}{name}\u{201d} is already installed."
            )));
        }
        self.conn.execute(
            "INSERT INTO computers (id, name, holds_system_database) VALUES (?1, ?2, 0)",
            params![id, name],
        )?;
        Ok(Computer {
            id: id.to_owned(),
            name: name.to_owned(),
            holds_system_database: false,
        })
    }

    pub fn remove_computer(&self, computer: &Computer) -> Result<()> {
        if computer.holds_system_database {
            return Err(HostError::NotAllowed(format!(
                "\u{201c}{}\u{201d} holds the system database and cannot be removed. Make another computer the holder first.",
                computer.name
            )));
        }
        self.conn
            .execute("DELETE FROM computers WHERE id = ?1", params![computer.id])?;
        Ok(())
    }

    /// Makes `computer` the one that holds the system database.
    pub fn set_system_database_holder(&mut self, computer: &Computer) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE computers SET holds_system_database = 0 WHERE holds_system_database = 1",
            [],
        )?;
        tx.execute(
            "UPDATE computers SET holds_system_database = 1 WHERE id = ?1",
            params![computer.id],
        )?;
        tx.commit()?;
        Ok(())
    }

    // --- sessions ---------------------------------------------------------

    /// All sessions, sorted by company, user and computer.
    pub fn sessions(&self) -> Result<Vec<Session>> {
        let mut stmt = self.conn.prepare(
            "SELECT u.username, c.id, c.name, m.id, m.name, s.logged_in_at
             FROM sessions s
             JOIN users u ON u.id = s.user_id
             JOIN companies c ON c.id = s.company_id
             JOIN computers m ON m.id = s.computer_id
             ORDER BY c.name, u.username, m.name",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(Session {
                username: row.get(0)?,
                company_id: row.get(1)?,
                company_name: row.get(2)?,
                computer_id: row.get(3)?,
                computer_name: row.get(4)?,
                logged_in_at: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Logs a user in; returns false when that session already existed.
    pub fn log_in(&self, user: &User, company: &Company, computer: &Computer) -> Result<bool> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO sessions (user_id, company_id, computer_id, logged_in_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![user.id, company.id, computer.id, now_text()],
        )?;
        Ok(inserted == 1)
    }

    /// Logs a user out; returns false when there was no such session.
    pub fn log_out(&self, user: &User, company: &Company, computer: &Computer) -> Result<bool> {
        let deleted = self.conn.execute(
            "DELETE FROM sessions WHERE user_id = ?1 AND company_id = ?2 AND computer_id = ?3",
            params![user.id, company.id, computer.id],
        )?;
        Ok(deleted == 1)
    }

    // --- API integrations -------------------------------------------------

    /// All API integrations, sorted by company and name.
    pub fn integrations(&self) -> Result<Vec<Integration>> {
        let mut stmt = self.conn.prepare(
            "SELECT i.name, c.id, c.name, i.logged_in
             FROM api_integrations i JOIN companies c ON c.id = i.company_id
             ORDER BY c.name, i.name",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(Integration {
                name: row.get(0)?,
                company_id: row.get(1)?,
                company_name: row.get(2)?,
                logged_in: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn add_integration(&self, name: &str, company: &Company) -> Result<()> {
        let name = name.trim();
        if name.is_empty() {
            return Err(HostError::InvalidInput(
                "An integration name cannot be empty.".into(),
            ));
        }
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO api_integrations (name, company_id, logged_in) VALUES (?1, ?2, 0)",
            params![name, company.id],
        )?;
        if inserted == 0 {
            return Err(HostError::NotAllowed(format!(
                "The integration \u{201c}{name}\u{201d} is already set up for {}.",
                company.name
            )));
        }
        Ok(())
    }

    /// Marks an integration logged in or out; returns false when it already
    /// was in that state.
    pub fn set_integration_logged_in(
        &self,
        name: &str,
        company: &Company,
        logged_in: bool,
    ) -> Result<bool> {
        let current: Option<bool> = self
            .conn
            .query_row(
                "SELECT logged_in FROM api_integrations WHERE name = ?1 AND company_id = ?2",
                params![name, company.id],
                |row| row.get(0),
            )
            .optional()?;
        match current {
            None => {
                let known: Vec<String> = self
                    .integrations()?
                    .into_iter()
                    .filter(|i| i.company_id == company.id)
                    .map(|i| i.name)
                    .collect();
                let hint = if known.is_empty() {
                    format!(" {} has no API integrations.", company.name)
                } else {
                    format!(" Integrations of {}: {}.", company.name, known.join(", "))
                };
                Err(HostError::NotFound {
                    kind: "API integration",
                    query: name.to_owned(),
                    hint,
                })
            }
            Some(state) if state == logged_in => Ok(false),
            Some(_) => {
                self.conn.execute(
                    "UPDATE api_integrations SET logged_in = ?3 WHERE name = ?1 AND company_id = ?2",
                    params![name, company.id, logged_in],
                )?;
                Ok(true)
            }
        }
    }

    // --- licences and add-on bindings -------------------------------------

    /// All registered licence documents, sorted by licence number.
    pub fn licence_documents(&self) -> Result<Vec<LicenceDocument>> {
        let mut stmt = self.conn.prepare(
            "SELECT licence_number, document, registered_at
             FROM licence_documents ORDER BY licence_number",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(LicenceDocument {
                licence_number: row.get(0)?,
                document: row.get(1)?,
                registered_at: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Registers a licence document; a document with the same licence number
    /// is replaced (a renewed licence keeps its number).
    pub fn register_licence(&self, licence_number: &str, document: &str) -> Result<Registration> {
        let existed: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM licence_documents WHERE licence_number = ?1)",
            params![licence_number],
            |row| row.get(0),
        )?;
        self.conn.execute(
            "INSERT INTO licence_documents (licence_number, document, registered_at)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (licence_number)
             DO UPDATE SET document = excluded.document, registered_at = excluded.registered_at",
            params![licence_number, document, now_text()],
        )?;
        Ok(if existed {
            Registration::Replaced
        } else {
            Registration::Added
        })
    }

    /// All add-on bindings, sorted by add-on, licence number and company.
    pub fn bindings(&self) -> Result<Vec<AddOnBinding>> {
        let mut stmt = self.conn.prepare(
            "SELECT add_on, licence_number, company_id FROM add_on_bindings
             ORDER BY add_on, licence_number, company_id",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(AddOnBinding {
                add_on: row.get(0)?,
                licence_number: row.get(1)?,
                company_id: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds a binding; returns false when it already existed.
    pub fn add_binding(&self, binding: &AddOnBinding) -> Result<bool> {
        let inserted = self.conn.execute(
            "INSERT OR IGNORE INTO add_on_bindings (add_on, licence_number, company_id, bound_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                binding.add_on,
                binding.licence_number,
                binding.company_id,
                now_text()
            ],
        )?;
        Ok(inserted == 1)
    }

    /// Removes the bindings of one add-on for one company; returns how many
    /// were removed.
    pub fn remove_bindings(&self, add_on: &str, company_id: &str) -> Result<usize> {
        Ok(self.conn.execute(
            "DELETE FROM add_on_bindings WHERE add_on = ?1 AND company_id = ?2",
            params![add_on, company_id],
        )?)
    }
}

fn company_from_row(row: &Row<'_>) -> rusqlite::Result<Company> {
    Ok(Company {
        id: row.get(0)?,
        name: row.get(1)?,
        file: row.get(2)?,
        is_sample: row.get(3)?,
        online_desktop_connected: row.get(4)?,
    })
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let company_id: Option<String> = row.get(3)?;
    let employee_id: Option<i64> = row.get(4)?;
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        is_super_user: row.get(2)?,
        employee: company_id
            .zip(employee_id)
            .map(|(company_id, employee_id)| EmployeeLink {
                company_id,
                employee_id,
            }),
    })
}

fn computer_from_row(row: &Row<'_>) -> rusqlite::Result<Computer> {
    Ok(Computer {
        id: row.get(0)?,
        name: row.get(1)?,
        holds_system_database: row.get(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system() -> (tempfile::TempDir, SystemDb) {
        let dir = tempfile::tempdir().unwrap();
        let system = SystemDb::create(&dir.path().join("system.db"), false).unwrap();
        (dir, system)
    }

    fn company(system: &SystemDb, id: &str) -> Company {
        let company = Company {
            id: id.into(),
            name: format!("Company {id}"),
            file: format!("{id}.db"),
            is_sample: false,
            online_desktop_connected: false,
        };
        system.add_company(&company).unwrap();
        company
    }

    #[test]
    fn user_names_are_unique_whatever_the_case() {
        let (_dir, system) = system();
        system.add_user("Anna", false).unwrap();
        let error = system.add_user("anna", true).unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        assert_eq!(system.user("ANNA").unwrap().username, "Anna");
        assert!(system.add_user("  ", false).is_err());
    }

    #[test]
    fn the_last_super_user_stays() {
        let (_dir, system) = system();
        system.add_user("admin", true).unwrap();
        system.add_user("anna", false).unwrap();
        let error = system.remove_user("admin").unwrap_err();
        assert!(error.to_string().contains("only super user"), "{error}");
        assert!(system.set_super_user("admin", false).is_err());

        system.set_super_user("anna", true).unwrap();
        assert!(!system.set_super_user("admin", false).unwrap().is_super_user);
        system.remove_user("admin").unwrap();
        assert_eq!(system.users().unwrap().len(), 1);
    }

    #[test]
    fn linking_and_unlinking_an_employee() {
        let (_dir, system) = system();
        let alfa = company(&system, "a");
        system.add_user("anna", false).unwrap();
        let link = EmployeeLink {
            company_id: alfa.id.clone(),
            employee_id: 4,
        };
        assert_eq!(
            system.link_employee("anna", &link).unwrap().employee,
            Some(link)
        );
        assert_eq!(system.unlink_employee("anna").unwrap().employee, None);
    }

    #[test]
    fn exactly_one_computer_holds_the_system_database() {
        let (_dir, mut system) = system();
        let server = system.add_computer("c1", "SERVER").unwrap();
        let laptop = system.add_computer("c2", "LAPTOP").unwrap();
        assert!(system.add_computer("c3", "server").is_err());
        system.set_system_database_holder(&server).unwrap();
        system.set_system_database_holder(&laptop).unwrap();
        let holders: Vec<String> = system
            .computers()
            .unwrap()
            .into_iter()
            .filter(|c| c.holds_system_database)
            .map(|c| c.name)
            .collect();
        assert_eq!(holders, ["LAPTOP"]);
        let laptop = system
            .computers()
            .unwrap()
            .into_iter()
            .find(|c| c.name == "LAPTOP")
            .unwrap();
        let error = system.remove_computer(&laptop).unwrap_err();
        assert!(
            error.to_string().contains("holds the system database"),
            "{error}"
        );
        system.remove_computer(&server).unwrap();
        assert_eq!(system.computers().unwrap().len(), 1);
    }

    #[test]
    fn sessions_are_counted_once_and_go_with_their_user() {
        let (_dir, system) = system();
        let alfa = company(&system, "a");
        let computer = system.add_computer("c1", "SERVER").unwrap();
        system.add_user("admin", true).unwrap();
        let anna = system.add_user("anna", false).unwrap();
        assert!(system.log_in(&anna, &alfa, &computer).unwrap());
        assert!(!system.log_in(&anna, &alfa, &computer).unwrap());
        assert_eq!(system.sessions().unwrap().len(), 1);
        assert!(system.log_out(&anna, &alfa, &computer).unwrap());
        assert!(!system.log_out(&anna, &alfa, &computer).unwrap());
        system.log_in(&anna, &alfa, &computer).unwrap();
        system.remove_user("anna").unwrap();
        assert!(system.sessions().unwrap().is_empty());
    }

    #[test]
    fn integrations_log_in_and_out_per_company() {
        let (_dir, system) = system();
        let alfa = company(&system, "a");
        let beta = company(&system, "b");
        system.add_integration("Webshop", &alfa).unwrap();
        system.add_integration("Webshop", &beta).unwrap();
        assert!(system.add_integration("WEBSHOP", &alfa).is_err());
        assert!(system
            .set_integration_logged_in("webshop", &alfa, true)
            .unwrap());
        assert!(!system
            .set_integration_logged_in("Webshop", &alfa, true)
            .unwrap());
        let logged_in: Vec<(String, bool)> = system
            .integrations()
            .unwrap()
            .into_iter()
            .map(|i| (i.company_id, i.logged_in))
            .collect();
        assert_eq!(logged_in, [("a".into(), true), ("b".into(), false)]);
        let error = system
            .set_integration_logged_in("Payroll", &alfa, true)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("Integrations of Company a: Webshop"),
            "{error}"
        );
    }

    #[test]
    fn a_licence_with_the_same_number_replaces_the_old_document() {
        let (_dir, system) = system();
        assert_eq!(
            system.register_licence("L-1", "old").unwrap(),
            Registration::Added
        );
        assert_eq!(
            system.register_licence("L-1", "new").unwrap(),
            Registration::Replaced
        );
        let documents = system.licence_documents().unwrap();
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0].document, "new");
    }
}
