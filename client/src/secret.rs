//! Secrets (passwords, tokens) that never show in logs or error messages.

use serde::{Deserialize, Deserializer};
use std::fmt;
use zeroize::Zeroizing;

/// A password or token. `Debug` and `Display` print `[REDACTED]`; the text
/// is overwritten with zeros when the value is dropped. Read it with
/// [`Secret::expose`], only where it is sent or stored on purpose.
///
/// There is deliberately no `Serialize`: a secret goes into a request body
/// only through a request type that borrows it for that one request. The
/// client zeroes the bodies it builds and reads; the copies the HTTP stack
/// makes while sending are beyond its reach.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(text.into()))
    }

    /// The secret text itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret::new(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret::new(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_redacted_everywhere() {
        let secret = Secret::new("hunter2-odr_abc");
        assert_eq!(format!("{secret}"), "[REDACTED]");
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([REDACTED])");
        assert_eq!(secret.expose(), "hunter2-odr_abc");
    }

    #[test]
    fn reads_from_json_without_keeping_a_copy_in_the_type() {
        let secret: Secret = serde_json::from_str("\"oda_x\"").unwrap();
        assert_eq!(secret.expose(), "oda_x");
        assert_eq!(secret, Secret::from("oda_x"));
    }
}
