//! The licence document: the text file the vendor issues and the host stores.
//!
//! ```json
//! {
//!   "format": "od-licence/1",
//!   "key_id": "dev-1",
//!   "payload": "{\"licence_number\":\"L-1\",...}",
//!   "signature": "<base64 Ed25519 signature over the UTF-8 bytes of payload>"
//! }
//! ```
//!
//! The licence travels as a JSON *string* inside the document and the
//! signature covers that string's exact bytes. Signing re-serialised JSON
//! would need a canonical form that every issuer and verifier agree on;
//! signing the bytes as they stand needs none, and the licence stays
//! readable in any text editor.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::keys::TrustedKeys;
use crate::licence::Licence;

/// The `format` of documents this crate reads and writes. A change that old
/// verifiers could misread gets a new number, so they refuse it by name
/// instead of misreading it.
pub const FORMAT: &str = "od-licence/1";

/// Why a licence document cannot be used. The messages are shown to the
/// person registering the licence (often a bookkeeper), so they say what
/// happened in plain words and what to do next.
#[derive(Debug, Error)]
pub enum LicenceError {
    #[error(
        "This is not an Online Desktop licence file. Check that you chose the licence file \
         your dealer sent you, or ask your dealer for a new licence file."
    )]
    NotADocument {
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "This licence file has a format (\"{format}\") that this version of Online Desktop \
         does not know. Update Online Desktop, or ask your dealer for a licence file for \
         this version."
    )]
    UnknownFormat { format: String },

    #[error(
        "This licence file was signed with a key (\"{key_id}\") that this version of Online \
         Desktop does not recognise, so it cannot be checked. Ask your dealer for a licence \
         file for this version of Online Desktop."
    )]
    UnknownIssuer { key_id: String },

    #[error(
        "The licence document has been changed after it was issued (its signature does not \
         match). Ask your dealer for a new licence file."
    )]
    BadSignature,

    #[error(
        "The licence file is intact but its contents cannot be read as a licence. Ask your \
         dealer for a new licence file."
    )]
    InvalidPayload {
        #[source]
        source: serde_json::Error,
    },
}

/// The document as it is stored; field names are the wire format.
#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    key_id: String,
    payload: String,
    signature: String,
}

/// Just the format, read first so that a future format with different
/// fields is reported as "unknown format" rather than "not a licence".
#[derive(Deserialize)]
struct FormatOnly {
    format: String,
}

/// A document that has been read but not yet trusted.
pub(crate) struct Opened {
    pub(crate) key_id: String,
    pub(crate) licence: Licence,
    /// `Ok` if the signature is valid under a trusted key.
    pub(crate) signature: Result<(), LicenceError>,
}

/// Signs `licence` with `key` and returns the document text (pretty JSON).
///
/// `key_id` must be the id under which verifiers trust `key`'s public half.
pub fn sign(licence: &Licence, key_id: &str, key: &SigningKey) -> String {
    let payload = to_json(licence, serde_json::to_string);
    let signature = key.sign(payload.as_bytes());
    let envelope = Envelope {
        format: FORMAT.to_owned(),
        key_id: key_id.to_owned(),
        payload,
        signature: BASE64.encode(signature.to_bytes()),
    };
    to_json(&envelope, serde_json::to_string_pretty)
}

/// Serialising to a string can only fail for maps with non-string keys or a
/// failing `Serialize` impl. `Licence` and `Envelope` have neither (strings,
/// numbers, booleans, dates, a list and an option), so this never fails.
fn to_json<T: Serialize>(value: &T, serialise: fn(&T) -> serde_json::Result<String>) -> String {
    serialise(value).expect("licence types always serialise to JSON")
}

/// Reads a document and checks its signature against `trusted`. Returns the
/// licence only if the document is intact and signed by a trusted key.
pub fn verify(document: &str, trusted: &TrustedKeys) -> Result<Licence, LicenceError> {
    let envelope = read_envelope(document)?;
    check_signature(&envelope, trusted)?;
    read_payload(&envelope)
}

/// Reads what a document *claims* without checking the signature, so the
/// host can show the contents of a tampered or foreign document. Never base
/// a decision on the result.
pub fn parse_unverified(document: &str) -> Result<Licence, LicenceError> {
    read_payload(&read_envelope(document)?)
}

/// Reads a document and checks its signature, keeping the licence even when
/// the signature fails, for the rule report.
pub(crate) fn open(document: &str, trusted: &TrustedKeys) -> Result<Opened, LicenceError> {
    let envelope = read_envelope(document)?;
    let licence = read_payload(&envelope)?;
    Ok(Opened {
        signature: check_signature(&envelope, trusted),
        key_id: envelope.key_id,
        licence,
    })
}

fn read_envelope(document: &str) -> Result<Envelope, LicenceError> {
    // Editors on Windows may save the file with a byte-order mark.
    let document = document.trim_start_matches('\u{feff}');
    let FormatOnly { format } =
        serde_json::from_str(document).map_err(|source| LicenceError::NotADocument { source })?;
    if format != FORMAT {
        return Err(LicenceError::UnknownFormat { format });
    }
    serde_json::from_str(document).map_err(|source| LicenceError::NotADocument { source })
}

fn check_signature(envelope: &Envelope, trusted: &TrustedKeys) -> Result<(), LicenceError> {
    let public = trusted
        .get(&envelope.key_id)
        .ok_or_else(|| LicenceError::UnknownIssuer {
            key_id: envelope.key_id.clone(),
        })?;
    // A signature field that is not even 64 bytes of base64 has been edited
    // just like a payload that no longer matches.
    let bytes = BASE64
        .decode(envelope.signature.trim())
        .map_err(|_| LicenceError::BadSignature)?;
    let signature = Signature::from_slice(&bytes).map_err(|_| LicenceError::BadSignature)?;
    // `verify_strict` also rejects malleable signatures and weak keys, which
    // plain `verify` would let through.
    public
        .verify_strict(envelope.payload.as_bytes(), &signature)
        .map_err(|_| LicenceError::BadSignature)
}

fn read_payload(envelope: &Envelope) -> Result<Licence, LicenceError> {
    serde_json::from_str(&envelope.payload)
        .map_err(|source| LicenceError::InvalidPayload { source })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::keys::{dev_signing_key, IssuerKey, DEV_KEY_ID};
    use crate::licence::{Agreement, ADD_ON_ONLINE_DESKTOP};
    use crate::tier::Tier;

    fn licence() -> Licence {
        Licence {
            licence_number: "L-1001".into(),
            licensee_name: "Nordlys Regnskap AS".into(),
            contact_person: "Kari Nordmann".into(),
            phone: "+47 22 00 00 00".into(),
            add_ons: vec![ADD_ON_ONLINE_DESKTOP.into()],
            agreement: Some(Agreement {
                tier: Tier::Standard,
                valid_until: NaiveDate::from_ymd_opt(2026, 12, 31).expect("date"),
            }),
            online_users: 10,
            evaluation: false,
            issued_on: NaiveDate::from_ymd_opt(2025, 1, 15).expect("date"),
        }
    }

    fn dev_trusted() -> TrustedKeys {
        TrustedKeys::new(vec![IssuerKey {
            key_id: DEV_KEY_ID.into(),
            public: dev_signing_key().verifying_key(),
        }])
    }

    fn envelope_of(document: &str) -> serde_json::Value {
        serde_json::from_str(document).expect("document is JSON")
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let document = sign(&licence(), DEV_KEY_ID, &dev_signing_key());
        assert_eq!(
            verify(&document, &dev_trusted()).expect("verifies"),
            licence()
        );
    }

    #[cfg(feature = "dev-issuer")]
    #[test]
    fn development_licences_verify_against_the_compiled_in_keys() {
        let document = sign(&licence(), DEV_KEY_ID, &dev_signing_key());
        assert_eq!(
            verify(&document, &TrustedKeys::compiled_in()).expect("verifies"),
            licence()
        );
    }

    #[test]
    fn document_is_pretty_json_with_a_readable_payload() {
        let document = sign(&licence(), DEV_KEY_ID, &dev_signing_key());
        assert!(document.contains('\n'), "pretty-printed");
        let envelope = envelope_of(&document);
        assert_eq!(envelope["format"], FORMAT);
        assert_eq!(envelope["key_id"], DEV_KEY_ID);
        let payload = envelope["payload"].as_str().expect("payload is a string");
        assert!(payload.contains("\"licensee_name\":\"Nordlys Regnskap AS\""));
        let signature = BASE64
            .decode(
                envelope["signature"]
                    .as_str()
                    .expect("signature is a string"),
            )
            .expect("base64");
        assert_eq!(signature.len(), 64);
    }

    #[test]
    fn changing_one_character_of_the_licensee_breaks_the_signature() {
        let document = sign(&licence(), DEV_KEY_ID, &dev_signing_key());
        let tampered = document.replacen("Nordlys", "Nordlyz", 1);
        assert_ne!(tampered, document);
        assert!(matches!(
            verify(&tampered, &dev_trusted()),
            Err(LicenceError::BadSignature)
        ));
        // What the tampered document claims can still be shown.
        let claimed = parse_unverified(&tampered).expect("still parses");
        assert_eq!(claimed.licensee_name, "Nordlyz Regnskap AS");
    }

    #[test]
    fn signature_by_an_untrusted_key_under_a_trusted_id_is_bad() {
        let forger = SigningKey::from_bytes(&[42; 32]);
        let document = sign(&licence(), DEV_KEY_ID, &forger);
        assert!(matches!(
            verify(&document, &dev_trusted()),
            Err(LicenceError::BadSignature)
        ));
    }

    #[test]
    fn mangled_signature_field_is_a_bad_signature() {
        let document = sign(&licence(), DEV_KEY_ID, &dev_signing_key());
        let mut envelope = envelope_of(&document);
        for replacement in ["not base64!", "AAAA", ""] {
            envelope["signature"] = replacement.into();
            assert!(
                matches!(
                    verify(&envelope.to_string(), &dev_trusted()),
                    Err(LicenceError::BadSignature)
                ),
                "{replacement:?}"
            );
        }
    }

    #[test]
    fn unknown_key_id_is_reported_by_name() {
        let document = sign(&licence(), "vendor-2031", &dev_signing_key());
        match verify(&document, &dev_trusted()) {
            Err(LicenceError::UnknownIssuer { key_id }) => assert_eq!(key_id, "vendor-2031"),
            other => panic!("expected UnknownIssuer, got {other:?}"),
        }
    }

    #[test]
    fn garbage_is_not_a_document() {
        for garbage in ["", "hello", "{}", "[1,2]", "{\"format\":1}", "\u{0}\u{1}"] {
            assert!(
                matches!(
                    verify(garbage, &dev_trusted()),
                    Err(LicenceError::NotADocument { .. })
                ),
                "{garbage:?}"
            );
            assert!(
                matches!(
                    parse_unverified(garbage),
                    Err(LicenceError::NotADocument { .. })
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn right_format_with_missing_fields_is_not_a_document() {
        let document = r#"{"format":"od-licence/1","key_id":"dev-1"}"#;
        assert!(matches!(
            verify(document, &dev_trusted()),
            Err(LicenceError::NotADocument { .. })
        ));
    }

    #[test]
    fn other_format_version_is_reported_by_name() {
        let document = r#"{"format":"od-licence/2","anything":"else"}"#;
        match verify(document, &dev_trusted()) {
            Err(LicenceError::UnknownFormat { format }) => assert_eq!(format, "od-licence/2"),
            other => panic!("expected UnknownFormat, got {other:?}"),
        }
    }

    #[test]
    fn signed_payload_that_is_not_a_licence_is_invalid_payload() {
        let key = dev_signing_key();
        let payload = r#"{"licence_number":"L-1"}"#;
        let envelope = Envelope {
            format: FORMAT.into(),
            key_id: DEV_KEY_ID.into(),
            payload: payload.into(),
            signature: BASE64.encode(key.sign(payload.as_bytes()).to_bytes()),
        };
        let document = serde_json::to_string(&envelope).expect("serialises");
        assert!(matches!(
            verify(&document, &dev_trusted()),
            Err(LicenceError::InvalidPayload { .. })
        ));
    }

    #[test]
    fn byte_order_mark_is_accepted() {
        let document = sign(&licence(), DEV_KEY_ID, &dev_signing_key());
        let with_bom = format!("\u{feff}{document}");
        assert_eq!(
            verify(&with_bom, &dev_trusted()).expect("verifies"),
            licence()
        );
    }

    #[test]
    fn open_keeps_the_claimed_licence_when_the_signature_fails() {
        let document = sign(&licence(), DEV_KEY_ID, &dev_signing_key());
        let tampered = document.replacen("Kari", "Kara", 1);
        let opened = open(&tampered, &dev_trusted()).expect("opens");
        assert_eq!(opened.key_id, DEV_KEY_ID);
        assert_eq!(opened.licence.contact_person, "Kara Nordmann");
        assert!(matches!(opened.signature, Err(LicenceError::BadSignature)));
    }

    #[test]
    fn error_messages_tell_the_reader_what_to_do() {
        let tampered = LicenceError::BadSignature.to_string();
        assert_eq!(
            tampered,
            "The licence document has been changed after it was issued (its signature does \
             not match). Ask your dealer for a new licence file."
        );
        let unknown = LicenceError::UnknownIssuer {
            key_id: "k9".into(),
        }
        .to_string();
        assert!(unknown.contains("\"k9\"") && unknown.contains("Ask your dealer"));
    }
}
