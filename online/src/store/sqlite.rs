//! The embedded backend: one SQLite file in WAL mode, one connection used
//! from the blocking pool. One connection serialises the service's writes,
//! which SQLite does anyway; it keeps every method a simple transaction.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use uuid::Uuid;

use super::migrations::{migrate, MigrationError};
use super::sqlite_sync;
use super::{
    Disconnection, EventWindow, Fence, Fenced, HandOver, HostMarker, Lease, LeaseOutcome,
    Membership, PushOutcome, Rotation, Store, StoreError, StoreResult, StoredChanges, SyncCounts,
    Unregistration, WebOutcome, WebWrite,
};
use crate::model::{
    Account, AccountLogin, Company, CompanyDetails, Device, DeviceToken, DeviceTokenKind,
    EmailLink, LinkPurpose, Role, Session,
};
use crate::secret::SecretString;
use crate::sync::{Conflict, PushRequest, StoredRecord};
use crate::tokens::TokenHash;

/// The SQLite [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating the file and its folder if needed) and migrates the
    /// database at `path`.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|error| {
                StoreError::Database(format!("cannot create {}: {error}", folder.display()))
            })?;
        }
        let connection = Connection::open(path).map_err(database_error)?;
        SqliteStore::prepare(connection)
    }

    /// A database that lives only as long as this store (unit tests).
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        SqliteStore::prepare(Connection::open_in_memory().map_err(database_error)?)
    }

    fn prepare(mut connection: Connection) -> StoreResult<SqliteStore> {
        // WAL lets readers (backups, a support person's sqlite3) work while
        // the service writes; NORMAL sync is durable at each checkpoint and
        // safe against corruption in WAL mode.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(database_error)?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(database_error)?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(database_error)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(database_error)?;
        migrate(&mut connection).map_err(|error| match error {
            MigrationError::Sqlite(error) => database_error(error),
            other => StoreError::Database(other.to_string()),
        })?;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    async fn call<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside `work` rolled its transaction back when the
            // transaction was dropped, so the connection is fine to reuse.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        })
        .await
        .map_err(|error| StoreError::Database(format!("database task failed: {error}")))?
        .map_err(database_error)
    }

    async fn in_transaction<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.call(move |connection| {
            let transaction = connection.transaction()?;
            let result = work(&transaction)?;
            transaction.commit()?;
            Ok(result)
        })
        .await
    }
}

fn database_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Database(error.to_string()),
    }
}

// --- Column conversions -----------------------------------------------------
// Times are microseconds since 1970 (UTC), which compare as numbers; ids are
// hyphenated UUID text.

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn conversion_error(
    index: usize,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadValue(String);

fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<DateTime<Utc>> {
    let value: i64 = row.get(index)?;
    DateTime::from_timestamp_micros(value)
        .ok_or(rusqlite::Error::IntegralValueOutOfRange(index, value))
}

fn optional_time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let value: Option<i64> = row.get(index)?;
    value
        .map(|value| {
            DateTime::from_timestamp_micros(value)
                .ok_or(rusqlite::Error::IntegralValueOutOfRange(index, value))
        })
        .transpose()
}

fn uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    Uuid::parse_str(&text).map_err(|error| conversion_error(index, error))
}

const ACCOUNT_COLUMNS: &str = "id, email, name, verified, created_at, password_hash";

fn account_from(row: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: uuid_at(row, 0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        verified: row.get(3)?,
        created_at: time_at(row, 4)?,
    })
}

const SESSION_COLUMNS: &str =
    "id, account_id, token_hash, csrf_hash, created_at, last_used_at, expires_at";

fn session_from(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: uuid_at(row, 0)?,
        account_id: uuid_at(row, 1)?,
        token_hash: TokenHash::from_stored(row.get(2)?),
        csrf_hash: TokenHash::from_stored(row.get(3)?),
        created_at: time_at(row, 4)?,
        last_used_at: time_at(row, 5)?,
        expires_at: time_at(row, 6)?,
    })
}

const COMPANY_COLUMNS: &str = "c.id, c.details, c.licence_number, c.licence_document, c.tier, \
     c.online_users, c.system_database_id, c.company_database_id, c.connected_by, c.created_at, \
     c.updated_at, c.disconnected_at";

fn company_from(row: &Row<'_>) -> rusqlite::Result<Company> {
    let details: String = row.get(1)?;
    let details: CompanyDetails =
        serde_json::from_str(&details).map_err(|error| conversion_error(1, error))?;
    let tier: String = row.get(4)?;
    let tier = tier.parse().map_err(|error| conversion_error(4, error))?;
    Ok(Company {
        id: uuid_at(row, 0)?,
        details,
        licence_number: row.get(2)?,
        licence_document: row.get(3)?,
        tier,
        online_users: row.get(5)?,
        system_database_id: row.get(6)?,
        company_database_id: row.get(7)?,
        connected_by: uuid_at(row, 8)?,
        created_at: time_at(row, 9)?,
        updated_at: time_at(row, 10)?,
        disconnected_at: optional_time_at(row, 11)?,
    })
}

fn details_json(details: &CompanyDetails) -> rusqlite::Result<String> {
    serde_json::to_string(details)
        .map_err(|error| rusqlite::Error::ToSqlConversionFailure(error.into()))
}

const DEVICE_COLUMNS: &str =
    "d.id, d.company_id, d.computer_id, d.computer_name, d.created_by, d.created_at, d.revoked_at";

fn device_from(row: &Row<'_>, first: usize) -> rusqlite::Result<Device> {
    Ok(Device {
        id: uuid_at(row, first)?,
        company_id: uuid_at(row, first + 1)?,
        computer_id: row.get(first + 2)?,
        computer_name: row.get(first + 3)?,
        created_by: uuid_at(row, first + 4)?,
        created_at: time_at(row, first + 5)?,
        revoked_at: optional_time_at(row, first + 6)?,
    })
}

const TOKEN_COLUMNS: &str =
    "t.token_hash, t.device_id, t.kind, t.created_at, t.expires_at, t.used_at";

fn device_token_from(row: &Row<'_>) -> rusqlite::Result<DeviceToken> {
    let kind: String = row.get(2)?;
    let kind = DeviceTokenKind::parse(&kind)
        .ok_or_else(|| conversion_error(2, BadValue(format!("unknown token kind {kind:?}"))))?;
    Ok(DeviceToken {
        hash: TokenHash::from_stored(row.get(0)?),
        device_id: uuid_at(row, 1)?,
        kind,
        created_at: time_at(row, 3)?,
        expires_at: time_at(row, 4)?,
        used_at: optional_time_at(row, 5)?,
    })
}

fn insert_device_tokens(
    transaction: &Transaction<'_>,
    tokens: &[DeviceToken],
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare(
        "INSERT INTO device_tokens (token_hash, device_id, kind, created_at, expires_at, used_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for token in tokens {
        statement.execute(params![
            token.hash.as_str(),
            token.device_id.to_string(),
            token.kind.as_str(),
            micros(token.created_at),
            micros(token.expires_at),
            token.used_at.map(micros),
        ])?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<AccountLogin>> {
        let email = email.to_owned();
        self.call(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = ?1"),
                    [email],
                    |row| {
                        let hash: Option<String> = row.get(5)?;
                        Ok(AccountLogin {
                            account: account_from(row)?,
                            password_hash: hash.map(SecretString::new),
                        })
                    },
                )
                .optional()
        })
        .await
    }

    async fn account_by_id(&self, id: Uuid) -> StoreResult<Option<Account>> {
        self.call(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"),
                    [id.to_string()],
                    account_from,
                )
                .optional()
        })
        .await
    }

    async fn insert_account(&self, account: &Account) -> StoreResult<()> {
        let account = account.clone();
        self.call(move |connection| {
            connection.execute(
                "INSERT INTO accounts (id, email, name, verified, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    account.id.to_string(),
                    account.email,
                    account.name,
                    account.verified,
                    micros(account.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_account_name(&self, id: Uuid, name: &str) -> StoreResult<()> {
        let name = name.to_owned();
        self.call(move |connection| {
            connection.execute(
                "UPDATE accounts SET name = ?2 WHERE id = ?1",
                params![id.to_string(), name],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<Uuid>,
    ) -> StoreResult<()> {
        let password_hash = password_hash.to_owned();
        self.in_transaction(move |transaction| {
            transaction.execute(
                "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
                params![id.to_string(), password_hash],
            )?;
            transaction.execute(
                "DELETE FROM sessions WHERE account_id = ?1 AND id IS NOT ?2",
                params![id.to_string(), keep_session.map(|id| id.to_string())],
            )?;
            Ok(())
        })
        .await
    }

    async fn insert_email_link(&self, link: &EmailLink) -> StoreResult<()> {
        let link = link.clone();
        self.call(move |connection| {
            connection.execute(
                "INSERT INTO email_links (token_hash, account_id, purpose, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    link.hash.as_str(),
                    link.account_id.to_string(),
                    link.purpose.as_str(),
                    micros(link.created_at),
                    micros(link.expires_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn email_link_account(
        &self,
        hash: &TokenHash,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let hash = hash.clone();
        self.call(move |connection| {
            connection
                .query_row(
                    "SELECT account_id FROM email_links
                     WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3",
                    params![hash.as_str(), purpose.as_str(), micros(now)],
                    |row| uuid_at(row, 0),
                )
                .optional()
        })
        .await
    }

    async fn consume_email_link(
        &self,
        hash: &TokenHash,
        purpose: LinkPurpose,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Account>> {
        let hash = hash.clone();
        let password_hash = password_hash.to_owned();
        self.in_transaction(move |transaction| {
            let account_id = transaction
                .query_row(
                    "UPDATE email_links SET used_at = ?3
                     WHERE token_hash = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
                     RETURNING account_id",
                    params![hash.as_str(), purpose.as_str(), micros(now)],
                    |row| row.get::<_, String>(0),
                )
                .optional()?;
            let Some(account_id) = account_id else {
                return Ok(None);
            };
            transaction.execute(
                "UPDATE email_links SET used_at = ?3
                 WHERE account_id = ?1 AND purpose = ?2 AND used_at IS NULL",
                params![account_id, purpose.as_str(), micros(now)],
            )?;
            match purpose {
                LinkPurpose::Verify => {
                    transaction.execute(
                        "UPDATE accounts SET password_hash = ?2, verified = 1 WHERE id = ?1",
                        params![account_id, password_hash],
                    )?;
                }
                LinkPurpose::Reset => {
                    transaction.execute(
                        "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
                        params![account_id, password_hash],
                    )?;
                    transaction
                        .execute("DELETE FROM sessions WHERE account_id = ?1", [&account_id])?;
                }
            }
            transaction
                .query_row(
                    &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1"),
                    [&account_id],
                    account_from,
                )
                .optional()
        })
        .await
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        let session = session.clone();
        self.call(move |connection| {
            connection.execute(
                "INSERT INTO sessions
                   (id, account_id, token_hash, csrf_hash, created_at, last_used_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    session.id.to_string(),
                    session.account_id.to_string(),
                    session.token_hash.as_str(),
                    session.csrf_hash.as_str(),
                    micros(session.created_at),
                    micros(session.last_used_at),
                    micros(session.expires_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn session_by_token(&self, hash: &TokenHash) -> StoreResult<Option<Session>> {
        let hash = hash.clone();
        self.call(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?1"),
                    [hash.as_str()],
                    session_from,
                )
                .optional()
        })
        .await
    }

    async fn touch_session(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.call(move |connection| {
            connection.execute(
                "UPDATE sessions SET last_used_at = ?2 WHERE id = ?1 AND last_used_at < ?2",
                params![id.to_string(), micros(now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, id: Uuid) -> StoreResult<()> {
        self.call(move |connection| {
            connection.execute("DELETE FROM sessions WHERE id = ?1", [id.to_string()])?;
            Ok(())
        })
        .await
    }

    async fn record_event(&self, kind: &str, key: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.call(move |connection| {
            connection.execute(
                "INSERT INTO throttle_events (kind, key, at) VALUES (?1, ?2, ?3)",
                params![kind, key, micros(at)],
            )?;
            Ok(())
        })
        .await
    }

    async fn event_window(
        &self,
        kind: &str,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<EventWindow> {
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.call(move |connection| {
            connection.query_row(
                "SELECT COUNT(*), MIN(at), MAX(at) FROM throttle_events
                 WHERE kind = ?1 AND key = ?2 AND at > ?3",
                params![kind, key, micros(since)],
                |row| {
                    Ok(EventWindow {
                        count: row.get(0)?,
                        oldest: optional_time_at(row, 1)?,
                        newest: optional_time_at(row, 2)?,
                    })
                },
            )
        })
        .await
    }

    async fn clear_events(&self, kind: &str, key: &str) -> StoreResult<()> {
        let (kind, key) = (kind.to_owned(), key.to_owned());
        self.call(move |connection| {
            connection.execute(
                "DELETE FROM throttle_events WHERE kind = ?1 AND key = ?2",
                params![kind, key],
            )?;
            Ok(())
        })
        .await
    }

    async fn company_by_id(&self, id: Uuid) -> StoreResult<Option<Company>> {
        self.call(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {COMPANY_COLUMNS} FROM companies c WHERE c.id = ?1"),
                    [id.to_string()],
                    company_from,
                )
                .optional()
        })
        .await
    }

    async fn company_by_licence(&self, licence_number: &str) -> StoreResult<Option<Company>> {
        let licence_number = licence_number.to_owned();
        self.call(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {COMPANY_COLUMNS} FROM companies c WHERE c.licence_number = ?1"
                    ),
                    [licence_number],
                    company_from,
                )
                .optional()
        })
        .await
    }

    async fn company_by_database(&self, company_database_id: &str) -> StoreResult<Option<Company>> {
        let company_database_id = company_database_id.to_owned();
        self.call(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {COMPANY_COLUMNS} FROM companies c WHERE c.company_database_id = ?1"
                    ),
                    [company_database_id],
                    company_from,
                )
                .optional()
        })
        .await
    }

    async fn insert_company(&self, company: &Company) -> StoreResult<()> {
        let company = company.clone();
        self.in_transaction(move |transaction| {
            transaction.execute(
                "INSERT INTO companies
                   (id, details, licence_number, licence_document, tier, online_users,
                    system_database_id, company_database_id, connected_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    company.id.to_string(),
                    details_json(&company.details)?,
                    company.licence_number,
                    company.licence_document,
                    company.tier.id(),
                    company.online_users,
                    company.system_database_id,
                    company.company_database_id,
                    company.connected_by.to_string(),
                    micros(company.created_at),
                    micros(company.updated_at)
                ],
            )?;
            transaction.execute(
                "INSERT INTO memberships (company_id, account_id, role, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    company.id.to_string(),
                    company.connected_by.to_string(),
                    Role::SuperUser.as_str(),
                    micros(company.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn update_company(&self, company: &Company) -> StoreResult<()> {
        let company = company.clone();
        self.call(move |connection| {
            connection.execute(
                "UPDATE companies SET details = ?2, licence_number = ?3, licence_document = ?4,
                   tier = ?5, online_users = ?6, updated_at = ?7, connected_by = ?8,
                   disconnected_at = ?9
                 WHERE id = ?1",
                params![
                    company.id.to_string(),
                    details_json(&company.details)?,
                    company.licence_number,
                    company.licence_document,
                    company.tier.id(),
                    company.online_users,
                    micros(company.updated_at),
                    company.connected_by.to_string(),
                    company.disconnected_at.map(micros)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn disconnect_company(
        &self,
        company_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Disconnection>> {
        self.in_transaction(move |transaction| {
            sqlite_sync::disconnect(transaction, company_id, now)
        })
        .await
    }

    async fn unregister_company(&self, company_id: Uuid) -> StoreResult<Unregistration> {
        self.in_transaction(move |transaction| sqlite_sync::unregister(transaction, company_id))
            .await
    }

    async fn change_connected_by(
        &self,
        company_id: Uuid,
        account_id: Uuid,
        device_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<HandOver> {
        self.in_transaction(move |transaction| {
            let company_text = company_id.to_string();
            let account_text = account_id.to_string();
            let found: Option<(String, Option<i64>)> = transaction
                .query_row(
                    "SELECT connected_by, disconnected_at FROM companies WHERE id = ?1",
                    [&company_text],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((previous, None)) = found else {
                return Ok(HandOver::NotConnected);
            };
            let device_active = transaction
                .query_row(
                    "SELECT 1 FROM devices WHERE id = ?1 AND company_id = ?2 AND revoked_at IS NULL",
                    [device_id.to_string(), company_text.clone()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if !device_active {
                return Ok(HandOver::DeviceRevoked);
            }
            let previous = Uuid::parse_str(&previous)
                .map_err(|error| conversion_error(0, BadValue(error.to_string())))?;
            if previous == account_id {
                return Ok(HandOver::Unchanged);
            }
            let membership_added = transaction.execute(
                "INSERT INTO memberships (company_id, account_id, role, created_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (company_id, account_id) DO NOTHING",
                params![company_text, account_text, Role::SuperUser.as_str(), micros(now)],
            )? == 1;
            transaction.execute(
                "UPDATE memberships SET role = ?3 WHERE company_id = ?1 AND account_id = ?2",
                params![company_text, account_text, Role::SuperUser.as_str()],
            )?;
            transaction.execute(
                "UPDATE companies SET connected_by = ?2, updated_at = ?3 WHERE id = ?1",
                params![company_text, account_text, micros(now)],
            )?;
            let detail = serde_json::json!({
                "previous_connected_by": previous.to_string(),
                "device_id": device_id.to_string(),
                "membership_added": membership_added,
            });
            transaction.execute(
                "INSERT INTO audit_events (company_id, at, action, account_id, detail)
                 VALUES (?1, ?2, 'connected_by_changed', ?3, ?4)",
                params![company_text, micros(now), account_text, detail.to_string()],
            )?;
            Ok(HandOver::Changed {
                previous,
                membership_added,
            })
        })
        .await
    }

    async fn role_in(&self, company_id: Uuid, account_id: Uuid) -> StoreResult<Option<Role>> {
        self.call(move |connection| {
            let role: Option<String> = connection
                .query_row(
                    "SELECT role FROM memberships WHERE company_id = ?1 AND account_id = ?2",
                    [company_id.to_string(), account_id.to_string()],
                    |row| row.get(0),
                )
                .optional()?;
            role.map(|role| {
                Role::parse(&role)
                    .ok_or_else(|| conversion_error(0, BadValue(format!("unknown role {role:?}"))))
            })
            .transpose()
        })
        .await
    }

    async fn memberships(&self, account_id: Uuid) -> StoreResult<Vec<Membership>> {
        self.call(move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {COMPANY_COLUMNS}, m.role FROM memberships m
                 JOIN companies c ON c.id = m.company_id
                 WHERE m.account_id = ?1"
            ))?;
            let rows = statement.query_map([account_id.to_string()], |row| {
                let role: String = row.get(12)?;
                let role = Role::parse(&role).ok_or_else(|| {
                    conversion_error(12, BadValue(format!("unknown role {role:?}")))
                })?;
                Ok(Membership {
                    company: company_from(row)?,
                    role,
                })
            })?;
            let mut memberships = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            memberships.sort_by(|a, b| {
                a.company
                    .details
                    .name
                    .to_lowercase()
                    .cmp(&b.company.details.name.to_lowercase())
                    .then(a.company.id.cmp(&b.company.id))
            });
            Ok(memberships)
        })
        .await
    }

    async fn insert_device(&self, device: &Device, tokens: &[DeviceToken]) -> StoreResult<()> {
        let device = device.clone();
        let tokens = tokens.to_vec();
        self.in_transaction(move |transaction| {
            // The cursor of the device being replaced, read before it is
            // revoked: the same computer goes on from where it was.
            let cursor: Option<(i64, i64)> = transaction.query_row(
                "SELECT MAX(s.cursor), MAX(s.acked_at) FROM sync_cursors s
                     JOIN devices d ON d.id = s.device_id
                     WHERE d.company_id = ?1 AND d.computer_id = ?2 AND d.revoked_at IS NULL",
                params![device.company_id.to_string(), device.computer_id],
                |row| {
                    Ok(row
                        .get::<_, Option<i64>>(0)?
                        .zip(row.get::<_, Option<i64>>(1)?))
                },
            )?;
            transaction.execute(
                "UPDATE devices SET revoked_at = ?3
                 WHERE company_id = ?1 AND computer_id = ?2 AND revoked_at IS NULL",
                params![
                    device.company_id.to_string(),
                    device.computer_id,
                    micros(device.created_at)
                ],
            )?;
            transaction.execute(
                "INSERT INTO devices
                   (id, company_id, computer_id, computer_name, created_by, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    device.id.to_string(),
                    device.company_id.to_string(),
                    device.computer_id,
                    device.computer_name,
                    device.created_by.to_string(),
                    micros(device.created_at),
                    device.revoked_at.map(micros)
                ],
            )?;
            insert_device_tokens(transaction, &tokens)?;
            if let Some((cursor, acked_at)) = cursor {
                transaction.execute(
                    "INSERT INTO sync_cursors (device_id, company_id, cursor, acked_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        device.id.to_string(),
                        device.company_id.to_string(),
                        cursor,
                        acked_at
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn device_token(&self, hash: &TokenHash) -> StoreResult<Option<(DeviceToken, Device)>> {
        let hash = hash.clone();
        self.call(move |connection| {
            connection
                .query_row(
                    &format!(
                        "SELECT {TOKEN_COLUMNS}, {DEVICE_COLUMNS} FROM device_tokens t
                         JOIN devices d ON d.id = t.device_id WHERE t.token_hash = ?1"
                    ),
                    [hash.as_str()],
                    |row| Ok((device_token_from(row)?, device_from(row, 6)?)),
                )
                .optional()
        })
        .await
    }

    async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        new: &[DeviceToken],
        now: DateTime<Utc>,
    ) -> StoreResult<Rotation> {
        let old = old.clone();
        let new = new.to_vec();
        self.in_transaction(move |transaction| {
            let found = transaction
                .query_row(
                    &format!(
                        "SELECT {TOKEN_COLUMNS}, {DEVICE_COLUMNS} FROM device_tokens t
                         JOIN devices d ON d.id = t.device_id WHERE t.token_hash = ?1"
                    ),
                    [old.as_str()],
                    |row| Ok((device_token_from(row)?, device_from(row, 6)?)),
                )
                .optional()?;
            let Some((token, device)) = found else {
                return Ok(Rotation::Invalid);
            };
            if token.kind != DeviceTokenKind::Refresh || device.revoked_at.is_some() {
                return Ok(Rotation::Invalid);
            }
            if token.used_at.is_some() {
                transaction.execute(
                    "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![device.id.to_string(), micros(now)],
                )?;
                return Ok(Rotation::Reused {
                    device_id: device.id,
                });
            }
            if token.expires_at <= now {
                return Ok(Rotation::Invalid);
            }
            transaction.execute(
                "UPDATE device_tokens SET used_at = ?2 WHERE token_hash = ?1",
                params![old.as_str(), micros(now)],
            )?;
            insert_device_tokens(transaction, &new)?;
            Ok(Rotation::Rotated(device))
        })
        .await
    }

    async fn devices_of_company(&self, company_id: Uuid) -> StoreResult<Vec<Device>> {
        self.call(move |connection| {
            let mut statement = connection.prepare(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices d
                 WHERE d.company_id = ?1 AND d.revoked_at IS NULL
                 ORDER BY d.created_at, d.rowid"
            ))?;
            let rows = statement.query_map([company_id.to_string()], |row| device_from(row, 0))?;
            rows.collect()
        })
        .await
    }

    async fn device_by_id(&self, id: Uuid) -> StoreResult<Option<Device>> {
        self.call(move |connection| {
            connection
                .query_row(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.id = ?1"),
                    [id.to_string()],
                    |row| device_from(row, 0),
                )
                .optional()
        })
        .await
    }

    async fn revoke_device(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        self.call(move |connection| {
            let changed = connection.execute(
                "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id.to_string(), micros(now)],
            )?;
            Ok(changed > 0)
        })
        .await
    }

    async fn sync_schema(&self, company_id: Uuid) -> StoreResult<Option<String>> {
        self.call(move |connection| sqlite_sync::schema(connection, company_id))
            .await
    }

    async fn put_sync_schema(
        &self,
        company_id: Uuid,
        fence: Fence,
        schema: String,
    ) -> StoreResult<Fenced<()>> {
        self.in_transaction(move |transaction| {
            sqlite_sync::put_schema(transaction, company_id, &fence, &schema)
        })
        .await
    }

    async fn sync_lease(&self, company_id: Uuid) -> StoreResult<Lease> {
        self.call(move |connection| sqlite_sync::lease(connection, company_id))
            .await
    }

    async fn acquire_lease(
        &self,
        company_id: Uuid,
        computer_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<LeaseOutcome> {
        let computer_id = computer_id.to_owned();
        self.in_transaction(move |transaction| {
            sqlite_sync::acquire_lease(transaction, company_id, &computer_id, now, until)
        })
        .await
    }

    async fn move_sync_computer(
        &self,
        company_id: Uuid,
        computer_id: Option<String>,
    ) -> StoreResult<Lease> {
        self.in_transaction(move |transaction| {
            sqlite_sync::move_sync_computer(transaction, company_id, computer_id)
        })
        .await
    }

    async fn push(
        &self,
        company_id: Uuid,
        device_id: Uuid,
        fence: Fence,
        idempotency_key: String,
        request: PushRequest,
        host_position: Option<i64>,
    ) -> StoreResult<PushOutcome> {
        self.in_transaction(move |transaction| {
            sqlite_sync::push(
                transaction,
                company_id,
                device_id,
                &fence,
                &idempotency_key,
                &request,
                host_position,
            )
        })
        .await
    }

    async fn set_host_marker(
        &self,
        company_id: Uuid,
        fence: Fence,
        marker: HostMarker,
    ) -> StoreResult<Fenced<HostMarker>> {
        self.in_transaction(move |transaction| {
            sqlite_sync::set_host_marker(transaction, company_id, &fence, &marker)
        })
        .await
    }

    async fn changes(
        &self,
        company_id: Uuid,
        device_id: Uuid,
        after: i64,
        limit: usize,
    ) -> StoreResult<StoredChanges> {
        self.call(move |connection| {
            sqlite_sync::changes(connection, company_id, device_id, after, limit)
        })
        .await
    }

    async fn ack(
        &self,
        company_id: Uuid,
        device_id: Uuid,
        fence: Fence,
        cursor: i64,
    ) -> StoreResult<Fenced<Option<i64>>> {
        self.in_transaction(move |transaction| {
            sqlite_sync::ack(transaction, company_id, device_id, &fence, cursor)
        })
        .await
    }

    async fn sync_counts(&self, company_id: Uuid, device_id: Uuid) -> StoreResult<SyncCounts> {
        self.call(move |connection| sqlite_sync::counts(connection, company_id, device_id))
            .await
    }

    async fn checksums(&self, company_id: Uuid) -> StoreResult<Vec<(String, u64, String)>> {
        self.call(move |connection| sqlite_sync::checksums(connection, company_id))
            .await
    }

    async fn records(
        &self,
        company_id: Uuid,
        entity: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>> {
        let entity = entity.to_owned();
        self.call(move |connection| {
            sqlite_sync::records(connection, company_id, &entity, after, limit, false)
        })
        .await
    }

    async fn records_with_tombstones(
        &self,
        company_id: Uuid,
        entity: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>> {
        let entity = entity.to_owned();
        self.call(move |connection| {
            sqlite_sync::records(connection, company_id, &entity, after, limit, true)
        })
        .await
    }

    async fn record(
        &self,
        company_id: Uuid,
        entity: &str,
        global_id: Uuid,
    ) -> StoreResult<Option<StoredRecord>> {
        let entity = entity.to_owned();
        self.call(move |connection| sqlite_sync::record(connection, company_id, &entity, global_id))
            .await
    }

    async fn write_record(
        &self,
        company_id: Uuid,
        entity: &str,
        global_id: Uuid,
        write: WebWrite,
        now: DateTime<Utc>,
    ) -> StoreResult<WebOutcome> {
        let entity = entity.to_owned();
        self.in_transaction(move |transaction| {
            sqlite_sync::write_record(transaction, company_id, &entity, global_id, &write, now)
        })
        .await
    }

    async fn conflicts(
        &self,
        company_id: Uuid,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<Conflict>> {
        self.call(move |connection| sqlite_sync::conflicts(connection, company_id, since))
            .await
    }

    async fn prune_sync(
        &self,
        conflicts_before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.in_transaction(move |transaction| {
            sqlite_sync::prune(transaction, conflicts_before, keys_before)
        })
        .await
    }

    async fn prune(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        events_before: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.in_transaction(move |transaction| {
            transaction.execute(
                "DELETE FROM email_links WHERE expires_at <= ?1",
                [micros(now)],
            )?;
            transaction.execute(
                "DELETE FROM sessions WHERE expires_at <= ?1 OR last_used_at < ?2",
                [micros(now), micros(idle_before)],
            )?;
            transaction.execute(
                "DELETE FROM device_tokens WHERE expires_at <= ?1",
                [micros(now)],
            )?;
            transaction.execute(
                "DELETE FROM throttle_events WHERE at < ?1",
                [micros(events_before)],
            )?;
            Ok(())
        })
        .await
    }
}
