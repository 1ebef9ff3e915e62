//! Secrets that must never reach a log (GUARANTEES.md G8).

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A string that is a secret: a password, a token, an SMTP URL with
/// credentials. `Debug` and `Display` print `[REDACTED]`, so putting one in
/// a log line or an error message by mistake shows nothing; the value is
/// read only through [`SecretString::expose`], which is easy to grep for.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    /// The secret itself. Call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretString)
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        SecretString(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_print_as_redacted() {
        let secret = SecretString::new("hunter2-hunter2");
        assert_eq!(format!("{secret}"), "[REDACTED]");
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(secret.expose(), "hunter2-hunter2");
    }

    #[test]
    fn secrets_deserialise_from_json_strings() {
        let secret: SecretString = serde_json::from_str("\"pw\"").expect("a JSON string");
        assert_eq!(secret.expose(), "pw");
    }
}
