//! The company's connection to the online service: which service, which
//! company, and this computer's device credentials (docs/SYNC_PROTOCOL.md
//! §8).
//!
//! Kept in `connection.json` in the add-on's folder, a file only its owner
//! can read (G8): written to a temporary file created with owner-only
//! permissions, flushed, then renamed over the old one, so a crash leaves
//! either the old or the new credentials, never half of them. The Online
//! ID password is never part of it. The tokens rotate on every refresh;
//! the engine writes the new ones back at once.

use crate::online::ServiceUrl;
use chrono::{DateTime, Utc};
use od_client::{DeviceCredentials, Secret, Uuid};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub(crate) const FILE: &str = "connection.json";

/// What `od_plugin_connection_set` receives and what is stored.
#[derive(Clone, Serialize)]
pub struct Connection {
    /// The service the company is registered with; the plugin's configured
    /// service when not given.
    pub service_url: Option<String>,
    pub company_id: Uuid,
    /// This computer's id in the host's system database.
    pub computer_id: String,
    pub device_id: Uuid,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("service_url", &self.service_url)
            .field("company_id", &self.company_id)
            .field("computer_id", &self.computer_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Error)]
pub enum ConnectionError {
    #[error("the connection details are not valid: {0}")]
    Invalid(String),
    #[error("the add-on's connection file {path} could not be read or written: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Connection {
    /// Parses and checks the JSON a host hands over. Every refusal names
    /// the field.
    pub fn parse(json: &str) -> Result<Connection, ConnectionError> {
        let invalid = |text: String| ConnectionError::Invalid(text);
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(invalid(
                "the connection details must be a JSON object".into(),
            ));
        };
        const KNOWN: [&str; 7] = [
            "service_url",
            "company_id",
            "computer_id",
            "device_id",
            "access_token",
            "access_expires_at",
            "refresh_token",
        ];
        if let Some(unknown) = map.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(invalid(format!(
                "unknown field `{unknown}`, expected one of {}",
                KNOWN.map(|k| format!("`{k}`")).join(", ")
            )));
        }
        fn field<T: serde::de::DeserializeOwned>(
            map: &mut serde_json::Map<String, serde_json::Value>,
            name: &str,
        ) -> Result<T, ConnectionError> {
            let value = map
                .remove(name)
                .ok_or_else(|| ConnectionError::Invalid(format!("missing field `{name}`")))?;
            serde_json::from_value(value)
                .map_err(|e| ConnectionError::Invalid(format!("field `{name}`: {e}")))
        }
        let service_url = match map.remove("service_url") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(url)) => Some(url),
            Some(other) => {
                return Err(invalid(format!(
                    "field `service_url`: expected a string, found {other}"
                )))
            }
        };
        let connection = Connection {
            service_url,
            company_id: field(&mut map, "company_id")?,
            computer_id: field(&mut map, "computer_id")?,
            device_id: field(&mut map, "device_id")?,
            access_token: field(&mut map, "access_token")?,
            access_expires_at: field(&mut map, "access_expires_at")?,
            refresh_token: field(&mut map, "refresh_token")?,
        };
        if connection.computer_id.trim().is_empty() {
            return Err(ConnectionError::Invalid(
                "field `computer_id` is empty".into(),
            ));
        }
        for (name, token) in [
            ("access_token", &connection.access_token),
            ("refresh_token", &connection.refresh_token),
        ] {
            if token.is_empty() || token.len() > 4096 || token.chars().any(char::is_control) {
                return Err(ConnectionError::Invalid(format!(
                    "field `{name}` is empty, too long or holds control characters"
                )));
            }
        }
        if let Some(url) = &connection.service_url {
            ServiceUrl::parse(url)
                .map_err(|e| ConnectionError::Invalid(format!("field `service_url`: {e}")))?;
        }
        Ok(connection)
    }

    /// The service to talk to: the stored one, else `default`.
    pub fn service(&self, default: &ServiceUrl) -> Result<ServiceUrl, ConnectionError> {
        match &self.service_url {
            Some(url) => ServiceUrl::parse(url)
                .map_err(|e| ConnectionError::Invalid(format!("service_url: {e}"))),
            None => Ok(default.clone()),
        }
    }

    pub fn credentials(&self) -> DeviceCredentials {
        DeviceCredentials {
            device_id: self.device_id,
            access_token: Secret::new(self.access_token.clone()),
            access_expires_at: self.access_expires_at,
            refresh_token: Secret::new(self.refresh_token.clone()),
        }
    }

    /// The same connection with rotated credentials.
    pub fn with_credentials(&self, credentials: &DeviceCredentials) -> Connection {
        Connection {
            device_id: credentials.device_id,
            access_token: credentials.access_token.expose().to_owned(),
            access_expires_at: credentials.access_expires_at,
            refresh_token: credentials.refresh_token.expose().to_owned(),
            ..self.clone()
        }
    }
}

fn path(folder: &Path) -> PathBuf {
    folder.join(FILE)
}

/// The stored connection, or `None` when the company is not connected.
pub fn load(folder: &Path) -> Result<Option<Connection>, ConnectionError> {
    let path = path(folder);
    match std::fs::read_to_string(&path) {
        Ok(text) => Connection::parse(&text).map(Some).map_err(|e| {
            ConnectionError::Invalid(format!(
                "{} is damaged ({e}); connect again",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConnectionError::Io { path, source }),
    }
}

/// Stores `connection` atomically in an owner-only file.
pub fn save(folder: &Path, connection: &Connection) -> Result<(), ConnectionError> {
    let target = path(folder);
    let io = |source| ConnectionError::Io {
        path: target.clone(),
        source,
    };
    std::fs::create_dir_all(folder).map_err(io)?;
    let temporary = folder.join(format!("{FILE}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = owner_only_file(&temporary)?;
        // Only strings, numbers and ids: serialising cannot fail.
        let json = serde_json::to_vec_pretty(connection).unwrap_or_default();
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &target)?;
        sync_folder(folder);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(io)
}

#[cfg(unix)]
fn owner_only_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn owner_only_file(path: &Path) -> std::io::Result<std::fs::File> {
    // On Windows the add-on's folder under the user's profile is private
    // to the user by its inherited ACL.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// Makes the rename durable (best effort: not every platform can open a
/// folder).
fn sync_folder(folder: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    #[cfg(not(unix))]
    let _ = folder;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        serde_json::json!({
            "company_id": "6f1c1a3e-8d2b-4c55-9a57-0d2c1e4b7a11",
            "computer_id": "pc-1",
            "device_id": "0b6c7c9e-4a43-4f07-8a52-9a3a4b8f8e21",
            "access_token": "oda_secret",
            "access_expires_at": "2026-12-01T10:00:00Z",
            "refresh_token": "odr_secret",
        })
        .to_string()
    }

    #[test]
    fn saved_connections_are_private_to_the_owner_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let connection = Connection::parse(&sample()).unwrap();
        save(dir.path(), &connection).unwrap();
        let loaded = load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.refresh_token, "odr_secret");
        assert_eq!(loaded.computer_id, "pc-1");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_details_are_refused_with_the_reason_and_secrets_stay_out_of_debug() {
        let error = Connection::parse("{}").unwrap_err().to_string();
        assert!(error.contains("missing field"), "{error}");
        let mut value: serde_json::Value = serde_json::from_str(&sample()).unwrap();
        value["password"] = "x".into();
        let error = Connection::parse(&value.to_string())
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `password`"), "{error}");
        value.as_object_mut().unwrap().remove("password");
        value["device_id"] = 17.into();
        let error = Connection::parse(&value.to_string())
            .unwrap_err()
            .to_string();
        assert!(error.contains("field `device_id`"), "{error}");
        value["device_id"] = "0b6c7c9e-4a43-4f07-8a52-9a3a4b8f8e21".into();
        value["service_url"] = "http://example.com".into();
        assert!(Connection::parse(&value.to_string()).is_err());
        value["service_url"] = "http://127.0.0.1:8480".into();
        value["access_token"] = "".into();
        assert!(Connection::parse(&value.to_string())
            .unwrap_err()
            .to_string()
            .contains("access_token"));
        let connection = Connection::parse(&sample()).unwrap();
        let debug = format!("{connection:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn a_damaged_file_says_to_connect_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let error = load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("connect again"), "{error}");
    }
}
