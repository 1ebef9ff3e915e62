//! Online ID passwords: the rules (8 to 128 characters, nothing else) and
//! Argon2id hashing. Hashing is slow on purpose, so it runs on the blocking
//! pool, a few at a time.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::secret::SecretString;
use crate::tokens::{random_bytes, RandomError};

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in characters. Long enough for any
/// passphrase, short enough that hashing it costs nothing extra.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// How much work one Argon2id hash takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordHashing {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl PasswordHashing {
    /// OWASP's recommendation for Argon2id: 19 MiB, 2 passes, 1 lane.
    pub const RECOMMENDED: PasswordHashing = PasswordHashing {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest Argon2id allows: for tests only, where hundreds of
    /// hashes must not take minutes.
    pub const FAST_FOR_TESTS: PasswordHashing = PasswordHashing {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for PasswordHashing {
    fn default() -> Self {
        PasswordHashing::RECOMMENDED
    }
}

/// Why a new password is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordRuleError {
    TooShort,
    TooLong,
}

/// The only rules: length in characters. No composition rules (NIST SP
/// 800-63B): they make passwords harder to remember, not harder to guess.
pub fn check_rules(password: &SecretString) -> Result<(), PasswordRuleError> {
    let chars = password.expose().chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Err(PasswordRuleError::TooShort)
    } else if chars > MAX_PASSWORD_CHARS {
        Err(PasswordRuleError::TooLong)
    } else {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid Argon2 parameters: {0}")]
    Parameters(String),
    #[error("cannot hash the password: {0}")]
    Hashing(String),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("the password hashing task failed: {0}")]
    Task(String),
}

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// The hash of a random password nobody knows, verified against when an
    /// address has no password, so that "no such account" takes as long as
    /// "wrong password" and the two cannot be told apart by timing.
    dummy_hash: String,
    /// Argon2 with 19 MiB per hash on a small machine: a burst of logins
    /// must queue rather than exhaust memory.
    permits: Semaphore,
}

impl Passwords {
    pub fn new(settings: PasswordHashing) -> Result<Passwords, PasswordError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|error| PasswordError::Parameters(error.to_string()))?;
        let mut unknowable = [0u8; 32];
        random_bytes(&mut unknowable)?;
        let dummy_hash = hash_with(&params, &unknowable)?;
        let concurrent = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .max(2);
        Ok(Passwords {
            inner: Arc::new(Inner {
                params,
                dummy_hash,
                permits: Semaphore::new(concurrent),
            }),
        })
    }

    /// The Argon2id hash (PHC string) of `password`, with a fresh salt.
    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let inner = self.inner.clone();
        let password = password.clone();
        let _permit = self.inner.permits.acquire().await;
        tokio::task::spawn_blocking(move || hash_with(&inner.params, password.expose().as_bytes()))
            .await
            .map_err(|error| PasswordError::Task(error.to_string()))?
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown
    /// address, or no password chosen yet) it does the same work against a
    /// dummy hash and answers false.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let inner = self.inner.clone();
        let password = password.clone();
        let _permit = self.inner.permits.acquire().await;
        tokio::task::spawn_blocking(move || {
            let (hash, real) = match &stored {
                Some(hash) => (hash.as_str(), true),
                None => (inner.dummy_hash.as_str(), false),
            };
            let matches = verify_with(hash, password.expose().as_bytes());
            real && matches
        })
        .await
        .map_err(|error| PasswordError::Task(error.to_string()))
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|error| PasswordError::Hashing(error.to_string()))?;
    argon2(params)
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hashing(error.to_string()))
}

/// A stored hash that cannot be parsed matches nothing.
fn verify_with(stored: &str, password: &[u8]) -> bool {
    match PasswordHash::new(stored) {
        // The parameters come from the stored hash, so raising the
        // recommended cost later keeps old hashes working.
        Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::new(text)
    }

    #[test]
    fn only_the_length_counts_in_characters() {
        assert_eq!(
            check_rules(&secret("1234567")),
            Err(PasswordRuleError::TooShort)
        );
        assert_eq!(check_rules(&secret("12345678")), Ok(()));
        assert_eq!(check_rules(&secret("ææææææææ")), Ok(()));
        assert_eq!(check_rules(&secret(&"å".repeat(128))), Ok(()));
        assert_eq!(
            check_rules(&secret(&"a".repeat(129))),
            Err(PasswordRuleError::TooLong)
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let passwords = Passwords::new(PasswordHashing::FAST_FOR_TESTS).expect("valid params");
        let first = passwords
            .hash(&secret("correct horse"))
            .await
            .expect("hash");
        let second = passwords
            .hash(&secret("correct horse"))
            .await
            .expect("hash");
        assert!(first.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{first}");
        assert_ne!(first, second, "a fresh salt each time");
        let check = |password: &str, stored: Option<String>| {
            let passwords = passwords.clone();
            let password = secret(password);
            async move { passwords.verify(&password, stored).await.expect("verify") }
        };
        assert!(check("correct horse", Some(first.clone())).await);
        assert!(!check("correct horsE", Some(first)).await);
        assert!(!check("anything", None).await);
        assert!(!check("anything", Some("not a hash".into())).await);
    }

    #[test]
    fn recommended_parameters_are_owasps() {
        assert_eq!(PasswordHashing::default().memory_kib, 19456);
        assert_eq!(PasswordHashing::default().iterations, 2);
        Params::new(19456, 2, 1, None).expect("valid");
    }
}
