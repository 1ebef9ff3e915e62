//! Licences for Online Desktop: the signed document the vendor issues, its
//! verification, and the licence rules the plugin enforces.
//!
//! Used by the plugin (verify and [`check`] at load time), by the host
//! simulator (issue development licences with [`sign`], register add-ons
//! with [`bind_check`]) and by the online service (verify). It does no I/O:
//! callers pass in the documents, bindings and today's date, which keeps
//! every decision testable and identical wherever it is made.
//!
//! See docs/LICENSING.md for the document format, the rules, the tiers and
//! how keys are built in.

mod binding;
mod document;
mod keys;
mod licence;
mod rules;
mod tier;

/// Re-exported so that callers name the same key types as this crate
/// without pinning a matching `ed25519-dalek` version themselves.
pub use ed25519_dalek;

pub use binding::{bind_check, BindError, Binding, REGISTRATION_PATH};
pub use document::{parse_unverified, sign, verify, LicenceError, FORMAT};
#[cfg(feature = "dev-signing")]
pub use keys::dev_signing_key;
pub use keys::{IssuerKey, TrustedKeys, DEV_KEY_ID};
pub use licence::{Agreement, Licence, ADD_ON_ONLINE_DESKTOP};
pub use rules::{check, CheckInput, LicenceReport, RuleId, RuleResult, NO_LICENCE};
pub use tier::{Module, Tier, UnknownModule, UnknownTier};
