//! The host's side of licensing (PRODUCT.md §1): issuing development
//! licences, registering licence documents in the system database, and
//! registering ("binding") the Online Desktop add-on for a company database.
//!
//! The host stores documents as issued and does not decide whether a
//! licence is good enough; that is the plugin's licence check. It does
//! verify signatures to warn people early, the way a real host would.

use od_licence::{
    bind_check, dev_signing_key, parse_unverified, sign, verify, BindError, Binding, Licence,
    TrustedKeys, ADD_ON_ONLINE_DESKTOP, DEV_KEY_ID,
};

use crate::db::system::{AddOnBinding, Company, LicenceDocument, Registration, SystemDb};
use crate::error::{HostError, Result};

/// Signs a licence with the development key, as the vendor's issuing
/// system would with its real key. Returns the document text.
pub fn issue(licence: &Licence) -> String {
    sign(licence, DEV_KEY_ID, &dev_signing_key())
}

/// The issuer keys this build trusts: the same set the plugin is built with.
pub fn trusted_keys() -> TrustedKeys {
    TrustedKeys::compiled_in()
}

/// A licence document that was just registered.
#[derive(Debug, Clone)]
pub struct Registered {
    pub licence: Licence,
    pub registration: Registration,
    /// Why the signature does not verify, if it does not. The document is
    /// registered all the same (the plugin will refuse it and say why).
    pub signature_problem: Option<String>,
}

/// Registers a licence document's text in the system database. Text that is
/// not a licence document is refused; a document with the number of an
/// already registered licence replaces it.
pub fn register(system: &SystemDb, document: &str) -> Result<Registered> {
    let licence = parse_unverified(document).map_err(|error| {
        HostError::InvalidInput(format!("The file was not registered. {error}"))
    })?;
    if licence.licence_number.trim().is_empty() {
        return Err(HostError::InvalidInput(
            "The file was not registered: the licence has no licence number.".into(),
        ));
    }
    let signature_problem = verify(document, &trusted_keys())
        .err()
        .map(|error| error.to_string());
    let registration = system.register_licence(&licence.licence_number, document)?;
    Ok(Registered {
        licence,
        registration,
        signature_problem,
    })
}

/// A registered document with what it claims and whether it verifies.
#[derive(Debug, Clone)]
pub struct RegisteredLicence {
    pub document: LicenceDocument,
    /// What the document says, read without trusting it.
    pub claims: Result<Licence, String>,
    /// `Ok` if the signature is valid under a trusted issuer key.
    pub verification: Result<(), String>,
}

/// All registered licence documents, each read and verified.
pub fn registered(system: &SystemDb) -> Result<Vec<RegisteredLicence>> {
    let trusted = trusted_keys();
    Ok(system
        .licence_documents()?
        .into_iter()
        .map(|document| {
            let claims = parse_unverified(&document.document).map_err(|e| e.to_string());
            let verification = verify(&document.document, &trusted)
                .map(|_| ())
                .map_err(|e| e.to_string());
            RegisteredLicence {
                document,
                claims,
                verification,
            }
        })
        .collect())
}

/// What registering Online Desktop for a company did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// The add-on is now registered for the company with this licence.
    Bound { licence_number: String },
    /// The company's registration now uses this licence instead of another.
    Rebound {
        licence_number: String,
        previous: String,
    },
    /// It was already registered for this company with this licence.
    AlreadyBound { licence_number: String },
}

/// Registers the Online Desktop add-on for `company` (PRODUCT.md §1.3).
///
/// `licence_number` chooses among the registered licences; without it the
/// only registered licence that grants Online Desktop is used. A second
/// company database is refused by [`od_licence::bind_check`].
pub fn bind(
    system: &SystemDb,
    company: &Company,
    licence_number: Option<&str>,
) -> Result<BindOutcome> {
    let licence_number = choose_licence(system, licence_number)?;
    let existing: Vec<AddOnBinding> = system.bindings()?;
    let for_check: Vec<Binding> = existing
        .iter()
        .map(|b| Binding {
            add_on: b.add_on.clone(),
            licence_number: b.licence_number.clone(),
            company_id: b.company_id.clone(),
        })
        .collect();
    bind_check(&for_check, &licence_number, &company.id)
        .map_err(|error| explain_bind_error(system, error))?;

    let previous = existing
        .iter()
        .find(|b| b.add_on == ADD_ON_ONLINE_DESKTOP && b.company_id == company.id)
        .map(|b| b.licence_number.clone());
    if previous.as_deref() == Some(licence_number.as_str()) {
        return Ok(BindOutcome::AlreadyBound { licence_number });
    }
    // One binding per company: a renewed or different licence replaces it.
    system.remove_bindings(ADD_ON_ONLINE_DESKTOP, &company.id)?;
    system.add_binding(&AddOnBinding {
        add_on: ADD_ON_ONLINE_DESKTOP.to_owned(),
        licence_number: licence_number.clone(),
        company_id: company.id.clone(),
    })?;
    Ok(match previous {
        Some(previous) => BindOutcome::Rebound {
            licence_number,
            previous,
        },
        None => BindOutcome::Bound { licence_number },
    })
}

/// Removes the Online Desktop registration of `company`; returns false when
/// there was none.
pub fn unbind(system: &SystemDb, company: &Company) -> Result<bool> {
    Ok(system.remove_bindings(ADD_ON_ONLINE_DESKTOP, &company.id)? > 0)
}

fn choose_licence(system: &SystemDb, wanted: Option<&str>) -> Result<String> {
    let documents = system.licence_documents()?;
    let granting: Vec<String> = documents
        .iter()
        .filter_map(|d| parse_unverified(&d.document).ok())
        .filter(|licence| licence.grants(ADD_ON_ONLINE_DESKTOP))
        .map(|licence| licence.licence_number)
        .collect();
    match wanted {
        Some(wanted) => {
            let wanted = wanted.trim();
            if !documents.iter().any(|d| d.licence_number == wanted) {
                return Err(HostError::NotFound {
                    kind: "registered licence with the number",
                    query: wanted.to_owned(),
                    hint: " Register the licence file first with `host-sim licence add FILE`."
                        .into(),
                });
            }
            if !granting.iter().any(|number| number == wanted) {
                return Err(HostError::NotAllowed(format!(
                    "Licence {wanted} does not include the Online Desktop add-on. Ask your dealer for a licence that does."
                )));
            }
            Ok(wanted.to_owned())
        }
        None => match granting.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(HostError::NotAllowed(
                "No registered licence includes the Online Desktop add-on. Register the licence file first with `host-sim licence add FILE`.".into(),
            )),
            several => Err(HostError::InvalidInput(format!(
                "Several registered licences include Online Desktop ({}). Choose one with --licence.",
                several.join(", ")
            ))),
        },
    }
}

/// The licence crate names the other company by id; people know it by name.
fn explain_bind_error(system: &SystemDb, error: BindError) -> HostError {
    let mut message = error.to_string();
    if let BindError::AlreadyRegisteredForAnotherCompany { company_id } = &error {
        if let Ok(Some(other)) = system.company(company_id) {
            message = message.replace(
                company_id.as_str(),
                &format!("\u{201c}{}\u{201d} (id {company_id})", other.name),
            );
        }
    }
    HostError::NotAllowed(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use od_licence::{Agreement, Tier};

    fn licence(number: &str, add_ons: &[&str]) -> Licence {
        Licence {
            licence_number: number.into(),
            licensee_name: "Nordlys Handel AS".into(),
            contact_person: "Ingrid Solberg".into(),
            phone: "+47 22 33 44 55".into(),
            add_ons: add_ons.iter().map(|a| a.to_string()).collect(),
            agreement: Some(Agreement {
                tier: Tier::Standard,
                valid_until: NaiveDate::from_ymd_opt(2030, 12, 31).unwrap(),
            }),
            online_users: 5,
            evaluation: false,
            issued_on: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        }
    }

    fn system_with_companies() -> (tempfile::TempDir, SystemDb, Company, Company) {
        let dir = tempfile::tempdir().unwrap();
        let system = SystemDb::create(&dir.path().join("system.db"), false).unwrap();
        let company = |id: &str, name: &str| Company {
            id: id.into(),
            name: name.into(),
            file: format!("{id}.db"),
            is_sample: false,
            online_desktop_connected: false,
        };
        let (a, b) = (company("id-a", "Alfa AS"), company("id-b", "Beta AS"));
        system.add_company(&a).unwrap();
        system.add_company(&b).unwrap();
        (dir, system, a, b)
    }

    #[test]
    fn issued_documents_verify_and_register() {
        let (_dir, system, _, _) = system_with_companies();
        let document = issue(&licence("L-1", &[ADD_ON_ONLINE_DESKTOP]));
        let registered = register(&system, &document).unwrap();
        assert_eq!(registered.registration, Registration::Added);
        assert_eq!(registered.signature_problem, None);
        let again = register(&system, &document).unwrap();
        assert_eq!(again.registration, Registration::Replaced);
        let list = registered_list(&system);
        assert_eq!(list.len(), 1);
        assert!(list[0].verification.is_ok());
    }

    fn registered_list(system: &SystemDb) -> Vec<RegisteredLicence> {
        registered(system).unwrap()
    }

    #[test]
    fn tampered_document_registers_with_a_warning() {
        let (_dir, system, _, _) = system_with_companies();
        let document = issue(&licence("L-1", &[ADD_ON_ONLINE_DESKTOP]))
            .replace("\\\"online_users\\\":5", "\\\"online_users\\\":500");
        assert!(
            document.contains("500"),
            "the test must really change the payload"
        );
        let registered = register(&system, &document).unwrap();
        assert!(registered.signature_problem.is_some());
        assert!(registered_list(&system)[0].verification.is_err());
    }

    #[test]
    fn text_that_is_not_a_licence_is_refused() {
        let (_dir, system, _, _) = system_with_companies();
        let message = register(&system, "hello").unwrap_err().to_string();
        assert!(
            message.contains("not an Online Desktop licence file"),
            "{message}"
        );
        assert!(system.licence_documents().unwrap().is_empty());
    }

    #[test]
    fn binds_one_company_and_refuses_a_second_by_name() {
        let (_dir, system, a, b) = system_with_companies();
        register(&system, &issue(&licence("L-1", &[ADD_ON_ONLINE_DESKTOP]))).unwrap();
        assert_eq!(
            bind(&system, &a, None).unwrap(),
            BindOutcome::Bound {
                licence_number: "L-1".into()
            }
        );
        assert_eq!(
            bind(&system, &a, None).unwrap(),
            BindOutcome::AlreadyBound {
                licence_number: "L-1".into()
            }
        );
        let message = bind(&system, &b, None).unwrap_err().to_string();
        assert!(message.contains("\u{201c}Alfa AS\u{201d}"), "{message}");
        assert!(message.contains("different licence"), "{message}");
        assert_eq!(system.bindings().unwrap().len(), 1);

        assert!(unbind(&system, &a).unwrap());
        assert!(!unbind(&system, &a).unwrap());
        assert!(bind(&system, &b, Some("L-1")).is_ok());
    }

    #[test]
    fn rebinding_with_a_renewed_licence_replaces_the_binding() {
        let (_dir, system, a, _) = system_with_companies();
        register(&system, &issue(&licence("L-1", &[ADD_ON_ONLINE_DESKTOP]))).unwrap();
        register(&system, &issue(&licence("L-2", &[ADD_ON_ONLINE_DESKTOP]))).unwrap();
        let message = bind(&system, &a, None).unwrap_err().to_string();
        assert!(message.contains("Choose one with --licence"), "{message}");
        bind(&system, &a, Some("L-1")).unwrap();
        assert_eq!(
            bind(&system, &a, Some("L-2")).unwrap(),
            BindOutcome::Rebound {
                licence_number: "L-2".into(),
                previous: "L-1".into()
            }
        );
        let bindings = system.bindings().unwrap();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].licence_number, "L-2");
    }

    #[test]
    fn licence_without_the_add_on_cannot_be_bound() {
        let (_dir, system, a, _) = system_with_companies();
        register(&system, &issue(&licence("L-9", &["payroll"]))).unwrap();
        let message = bind(&system, &a, None).unwrap_err().to_string();
        assert!(
            message.contains("No registered licence includes"),
            "{message}"
        );
        let message = bind(&system, &a, Some("L-9")).unwrap_err().to_string();
        assert!(
            message.contains("does not include the Online Desktop add-on"),
            "{message}"
        );
    }
}
