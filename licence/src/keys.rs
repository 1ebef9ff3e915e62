//! Which issuer keys a build trusts, and the development key pair.
//!
//! A licence document names the key that signed it (`key_id`), so the vendor
//! can rotate keys: new licences are signed with a new key while builds that
//! trust both keep accepting the old licences.

use ed25519_dalek::VerifyingKey;

// Defines `PRODUCTION_ISSUER_KEYS` from `OD_LICENCE_ISSUER_KEYS` (see build.rs).
include!(concat!(env!("OUT_DIR"), "/issuer_keys.rs"));

/// The key id of the development key pair. Always defined (it is only a
/// name) so that code can recognise, and warn about, development licences.
pub const DEV_KEY_ID: &str = "dev-1";

/// The development *public* key: the public half of [`dev_signing_key`].
#[cfg(any(test, feature = "dev-issuer"))]
const DEV_PUBLIC_KEY: [u8; 32] = [
    0x56, 0x12, 0x24, 0xf0, 0xe9, 0x05, 0xb4, 0x17, 0xc8, 0x42, 0x9d, 0xca, 0x3d, 0x5f, 0xb9, 0x80,
    0xda, 0x88, 0xf3, 0x66, 0xab, 0x9a, 0xfe, 0x10, 0x0b, 0x7d, 0xaa, 0x11, 0x7b, 0x0a, 0xb9, 0x1c,
];

/// What [`TrustedKeys::compiled_in`] adds to the production keys.
#[cfg(feature = "dev-issuer")]
const DEVELOPMENT_ISSUER_KEYS: &[(&str, [u8; 32])] = &[(DEV_KEY_ID, DEV_PUBLIC_KEY)];
#[cfg(not(feature = "dev-issuer"))]
const DEVELOPMENT_ISSUER_KEYS: &[(&str, [u8; 32])] = &[];

/// The development private key. It is in the source on purpose: anyone may
/// issue development licences, which is why production builds do not trust
/// them (they are built without the `dev-issuer` feature).
#[cfg(any(test, feature = "dev-signing"))]
const DEV_SECRET_KEY: [u8; 32] = *b"od-licence dev key - not secret!";

/// The development signing key (key id [`DEV_KEY_ID`]), for the host
/// simulator and tests to issue licences. Deterministic, so licences issued
/// on one developer's machine verify on every other development build.
#[cfg(any(test, feature = "dev-signing"))]
pub fn dev_signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&DEV_SECRET_KEY)
}

/// A public key the vendor signs licences with, and the id documents name it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerKey {
    pub key_id: String,
    pub public: VerifyingKey,
}

/// The set of issuer keys a verifier accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    keys: Vec<IssuerKey>,
}

impl TrustedKeys {
    /// Keys compiled into this build:
    ///
    /// * the production issuer key(s) given at **build** time in the
    ///   environment variable `OD_LICENCE_ISSUER_KEYS`
    ///   (`key_id:hex32bytepublickey[,key_id:hex...]`, checked by build.rs,
    ///   which fails the build if it is malformed);
    /// * when the cargo feature `dev-issuer` is on (a default feature), the
    ///   development public key, id [`DEV_KEY_ID`].
    ///
    /// Baked in rather than read from a file at run time because a key file
    /// beside the plugin could be swapped by anyone who can write there.
    pub fn compiled_in() -> TrustedKeys {
        // A 32-byte string that is not a curve point cannot verify anything,
        // so such a key is left out; `production_keys_are_valid_points`
        // catches it in a test run of the release configuration.
        let keys = PRODUCTION_ISSUER_KEYS
            .iter()
            .chain(DEVELOPMENT_ISSUER_KEYS)
            .filter_map(|(key_id, bytes)| issuer_key(key_id, bytes))
            .collect();
        TrustedKeys { keys }
    }

    /// Exactly these keys. If two share a key id, the first one counts.
    pub fn new(keys: Vec<IssuerKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    /// The public key with this id, if trusted.
    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys
            .iter()
            .find(|key| key.key_id == key_id)
            .map(|key| &key.public)
    }

    /// Ids of the trusted keys, in the order they were given.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|key| key.key_id.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn issuer_key(key_id: &str, bytes: &[u8; 32]) -> Option<IssuerKey> {
    VerifyingKey::from_bytes(bytes)
        .ok()
        .map(|public| IssuerKey {
            key_id: key_id.to_owned(),
            public,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_public_key_is_the_public_half_of_the_dev_signing_key() {
        assert_eq!(dev_signing_key().verifying_key().to_bytes(), DEV_PUBLIC_KEY);
    }

    #[test]
    fn dev_signing_key_is_deterministic() {
        assert_eq!(dev_signing_key().to_bytes(), dev_signing_key().to_bytes());
    }

    #[test]
    fn production_keys_are_valid_points() {
        for (key_id, bytes) in PRODUCTION_ISSUER_KEYS {
            assert!(
                VerifyingKey::from_bytes(bytes).is_ok(),
                "OD_LICENCE_ISSUER_KEYS: key {key_id} is not a valid Ed25519 public key"
            );
        }
    }

    #[cfg(feature = "dev-issuer")]
    #[test]
    fn compiled_in_trusts_the_dev_key_with_dev_issuer() {
        let trusted = TrustedKeys::compiled_in();
        assert_eq!(
            trusted.get(DEV_KEY_ID),
            Some(&dev_signing_key().verifying_key())
        );
    }

    #[cfg(not(feature = "dev-issuer"))]
    #[test]
    fn compiled_in_does_not_trust_the_dev_key_without_dev_issuer() {
        assert_eq!(TrustedKeys::compiled_in().get(DEV_KEY_ID), None);
    }

    #[test]
    fn compiled_in_holds_every_production_key() {
        let trusted = TrustedKeys::compiled_in();
        for (key_id, _) in PRODUCTION_ISSUER_KEYS {
            assert!(trusted.get(key_id).is_some(), "{key_id} missing");
        }
    }

    #[test]
    fn new_looks_keys_up_by_id_first_one_wins() {
        let first = dev_signing_key().verifying_key();
        let second = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let trusted = TrustedKeys::new(vec![
            IssuerKey {
                key_id: "a".into(),
                public: first,
            },
            IssuerKey {
                key_id: "a".into(),
                public: second,
            },
        ]);
        assert_eq!(trusted.get("a"), Some(&first));
        assert_eq!(trusted.get("b"), None);
        assert_eq!(trusted.key_ids().collect::<Vec<_>>(), ["a", "a"]);
        assert!(!trusted.is_empty());
        assert!(TrustedKeys::new(Vec::new()).is_empty());
    }
}
