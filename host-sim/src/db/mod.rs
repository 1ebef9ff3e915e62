//! The host's two kinds of SQLite database: the system database (one per
//! installation) and the company databases (one file per company).

pub mod company;
pub mod system;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{HostError, Result};

/// How long a statement waits for another connection's lock before failing.
/// The plugin (phase 2) reads the same files while the host writes them.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens an existing database file, refusing to create a new one.
fn open_existing(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|source| HostError::OpenDatabase {
            path: path.to_path_buf(),
            source,
        })?;
    configure(&conn)?;
    Ok(conn)
}

/// Creates a new, empty database file (the caller makes sure none exists).
fn create_new(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|source| HostError::OpenDatabase {
        path: path.to_path_buf(),
        source,
    })?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}
