//! Add-on bindings: which company database an add-on is registered for.
//!
//! The host records a binding when someone registers Online Desktop for a
//! company (PRODUCT.md §1.3). One system database may bind Online Desktop to
//! one company database only, whatever licence is used, because the online
//! service and seat count are sold per company.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::licence::ADD_ON_ONLINE_DESKTOP;

/// Where the host tells people to register the Online Desktop licence.
pub const REGISTRATION_PATH: &str =
    "Help → About → Administer licence information → Add-on products → Online Desktop → Add";

/// One add-on registration, as stored in the host's system database.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    pub add_on: String,
    pub licence_number: String,
    /// The stable id of the company database the add-on is registered for.
    pub company_id: String,
}

/// Why Online Desktop cannot be registered for a company database.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BindError {
    #[error(
        "Online Desktop is already registered for company {company_id}. One system database \
         can have Online Desktop for one company only; more companies need a different licence."
    )]
    AlreadyRegisteredForAnotherCompany { company_id: String },

    #[error("Choose the licence to register Online Desktop with; no licence number was given.")]
    MissingLicenceNumber,

    #[error("Choose the company database to register Online Desktop for; none was given.")]
    MissingCompany,
}

/// Decides whether the host may record a binding of Online Desktop, with
/// `licence_number`, to `company_id`, given the bindings already recorded.
///
/// Registering the same company again is allowed (`Ok`), so that repeating
/// the registration, or re-registering with a renewed licence, is harmless;
/// the host then replaces that company's binding.
pub fn bind_check(
    bindings: &[Binding],
    licence_number: &str,
    company_id: &str,
) -> Result<(), BindError> {
    if licence_number.trim().is_empty() {
        return Err(BindError::MissingLicenceNumber);
    }
    if company_id.trim().is_empty() {
        return Err(BindError::MissingCompany);
    }
    match online_desktop_bindings(bindings).find(|binding| binding.company_id != company_id) {
        Some(other) => Err(BindError::AlreadyRegisteredForAnotherCompany {
            company_id: other.company_id.clone(),
        }),
        None => Ok(()),
    }
}

/// The bindings that concern Online Desktop (other add-ons bind freely).
pub(crate) fn online_desktop_bindings(bindings: &[Binding]) -> impl Iterator<Item = &Binding> {
    bindings
        .iter()
        .filter(|binding| binding.add_on == ADD_ON_ONLINE_DESKTOP)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(add_on: &str, licence_number: &str, company_id: &str) -> Binding {
        Binding {
            add_on: add_on.into(),
            licence_number: licence_number.into(),
            company_id: company_id.into(),
        }
    }

    #[test]
    fn first_registration_is_allowed() {
        assert_eq!(bind_check(&[], "L-1", "acme"), Ok(()));
    }

    #[test]
    fn registering_the_same_company_again_is_allowed() {
        let bindings = [binding(ADD_ON_ONLINE_DESKTOP, "L-1", "acme")];
        assert_eq!(bind_check(&bindings, "L-1", "acme"), Ok(()));
        assert_eq!(bind_check(&bindings, "L-2", "acme"), Ok(()));
    }

    #[test]
    fn second_company_is_refused_naming_the_first() {
        let bindings = [binding(ADD_ON_ONLINE_DESKTOP, "L-1", "acme")];
        let error = bind_check(&bindings, "L-1", "globex").expect_err("refused");
        assert_eq!(
            error,
            BindError::AlreadyRegisteredForAnotherCompany {
                company_id: "acme".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "Online Desktop is already registered for company acme. One system database can \
             have Online Desktop for one company only; more companies need a different licence."
        );
    }

    #[test]
    fn second_company_is_refused_even_with_another_licence() {
        let bindings = [binding(ADD_ON_ONLINE_DESKTOP, "L-1", "acme")];
        assert!(matches!(
            bind_check(&bindings, "L-2", "globex"),
            Err(BindError::AlreadyRegisteredForAnotherCompany { .. })
        ));
    }

    #[test]
    fn bindings_of_other_add_ons_do_not_count() {
        let bindings = [binding("payroll", "L-1", "acme")];
        assert_eq!(bind_check(&bindings, "L-1", "globex"), Ok(()));
    }

    #[test]
    fn blank_licence_number_or_company_is_refused() {
        assert_eq!(
            bind_check(&[], " ", "acme"),
            Err(BindError::MissingLicenceNumber)
        );
        assert_eq!(bind_check(&[], "L-1", ""), Err(BindError::MissingCompany));
    }
}
