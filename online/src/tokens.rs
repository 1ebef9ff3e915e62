//! Random tokens (sessions, devices, e-mail links, CSRF) and their hashes.
//!
//! Every token is 32 random bytes, base64url without padding, after a prefix
//! that names its kind (docs/ONLINE_API.md). The service stores only the
//! SHA-256 of a token, so a copy of the database lets nobody in; logs name a
//! token by the first characters of its hash at most.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::secret::SecretString;

/// What a token is for; the prefix tells a reader (and a support person
/// looking at a header) which kind they have without revealing anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An Online ID's session (`ods_`).
    Session,
    /// A device's access token (`oda_`).
    DeviceAccess,
    /// A device's refresh token (`odr_`).
    DeviceRefresh,
    /// The CSRF token of a session (double-submit).
    Csrf,
    /// A one-time link in an e-mail (verification, password reset).
    EmailLink,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Session => "ods_",
            TokenKind::DeviceAccess => "oda_",
            TokenKind::DeviceRefresh => "odr_",
            TokenKind::Csrf => "odc_",
            TokenKind::EmailLink => "",
        }
    }
}

/// The SHA-256 of a token, as 64 lower-case hex digits: what the database
/// keeps. Its `Debug` shows only the first 8 digits, enough to match log
/// lines with each other.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    /// The hash of `token` (the whole token text, prefix included).
    pub fn of(token: &str) -> TokenHash {
        let digest = Sha256::digest(token.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        TokenHash(hex)
    }

    /// A hash read back from storage.
    pub fn from_stored(hex: String) -> TokenHash {
        TokenHash(hex)
    }

    /// The full hex digest, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 8 hex digits, for logs.
    pub fn short(&self) -> &str {
        &self.0[..8.min(self.0.len())]
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", self.short())
    }
}

/// A freshly made token: the secret for the client, the hash for storage.
#[derive(Debug)]
pub struct IssuedToken {
    pub secret: SecretString,
    pub hash: TokenHash,
}

/// The operating system could not give us random bytes. Nothing sensible
/// can go on without them, so callers answer with an internal error.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// Fills `buffer` with random bytes from the operating system.
pub fn random_bytes(buffer: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buffer).map_err(|error| RandomError(error.to_string()))
}

/// Makes a new token of `kind`.
pub fn issue(kind: TokenKind) -> Result<IssuedToken, RandomError> {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes)?;
    let secret = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let hash = TokenHash::of(&secret);
    Ok(IssuedToken {
        secret: SecretString::new(secret),
        hash,
    })
}

/// Compares two byte strings in time that depends only on their length, so
/// an attacker cannot learn a secret byte by byte from response times.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_their_prefix_and_32_random_bytes() {
        let first = issue(TokenKind::DeviceRefresh).expect("random bytes");
        let second = issue(TokenKind::DeviceRefresh).expect("random bytes");
        let text = first.secret.expose();
        assert!(text.starts_with("odr_"), "{text}");
        let body = URL_SAFE_NO_PAD
            .decode(&text[4..])
            .expect("base64url after the prefix");
        assert_eq!(body.len(), 32);
        assert_ne!(first.secret, second.secret);
        assert_eq!(first.hash, TokenHash::of(text));
    }

    #[test]
    fn hash_is_sha256_hex_and_debug_shows_a_prefix_only() {
        let hash = TokenHash::of("abc");
        assert_eq!(
            hash.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(format!("{hash:?}"), "TokenHash(ba7816bf…)");
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
