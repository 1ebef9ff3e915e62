//! What the service is told at start-up. `online-desktop serve` builds it
//! from flags and environment variables; tests build it in code.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::password::PasswordHashing;
use crate::secret::SecretString;
use crate::throttle::Limits;

/// The default folder for the database and the outbox, relative to the
/// working directory.
pub const DEFAULT_DATA_DIR: &str = "online-data";

/// The sender of the service's mails unless told otherwise.
pub const DEFAULT_MAIL_FROM: &str = "Online Desktop <no-reply@localhost>";

/// Serve HTTPS with this certificate chain and private key (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Clone)]
pub struct Config {
    /// The SQLite file; created and migrated on first start.
    pub database: PathBuf,
    /// The address people reach the service at, for links in mails
    /// (`https://online.example.com`). `None`: the listening address.
    pub public_url: Option<String>,
    /// Where mails are written when no SMTP server is configured.
    pub outbox: PathBuf,
    /// `smtp://host:port` (or any URL lettre reads); may hold credentials.
    pub smtp_url: Option<SecretString>,
    pub mail_from: String,
    pub tls: Option<TlsFiles>,
    /// Reverse proxies in front of the service: for requests from them, the
    /// client's address is read from `X-Forwarded-For` (throttling per IP).
    pub trusted_proxies: Vec<IpAddr>,
    pub password_hashing: PasswordHashing,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

impl Config {
    /// Everything under `data_dir`: `online.db` and `outbox/`; no SMTP, no
    /// TLS, recommended password hashing, the contract's limits.
    pub fn in_dir(data_dir: impl AsRef<Path>) -> Config {
        let data_dir = data_dir.as_ref();
        Config {
            database: data_dir.join("online.db"),
            public_url: None,
            outbox: data_dir.join("outbox"),
            smtp_url: None,
            mail_from: DEFAULT_MAIL_FROM.to_owned(),
            tls: None,
            trusted_proxies: Vec::new(),
            password_hashing: PasswordHashing::RECOMMENDED,
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::in_dir(DEFAULT_DATA_DIR)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database", &self.database)
            .field("public_url", &self.public_url)
            .field("outbox", &self.outbox)
            .field("smtp_url", &self.smtp_url)
            .field("mail_from", &self.mail_from)
            .field("tls", &self.tls)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("password_hashing", &self.password_hashing)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_in_one_folder_and_debug_hides_the_smtp_url() {
        let mut config = Config::default();
        assert_eq!(config.database, Path::new("online-data/online.db"));
        assert_eq!(config.outbox, Path::new("online-data/outbox"));
        config.smtp_url = Some(SecretString::new("smtp://user:pass@mail.example.com"));
        let debug = format!("{config:?}");
        assert!(!debug.contains("pass@"), "{debug}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
    }
}
