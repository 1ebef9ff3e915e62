//! What a licence says: the signed content of a licence document.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::tier::Tier;

/// The add-on id a licence must list in [`Licence::add_ons`] to allow Online
/// Desktop. The host's licences cover several add-ons, each with its own id,
/// so the plugin looks for its own id rather than for "any licence".
pub const ADD_ON_ONLINE_DESKTOP: &str = "online-desktop";

/// A licence as the vendor issued it (PRODUCT.md §1.2).
///
/// This is only the *content*; whether it can be trusted is decided by
/// [`crate::verify`], and whether it allows Online Desktop in a given company
/// database by [`crate::check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Licence {
    pub licence_number: String,
    pub licensee_name: String,
    pub contact_person: String,
    pub phone: String,
    /// Add-on ids, e.g. [`ADD_ON_ONLINE_DESKTOP`].
    pub add_ons: Vec<String>,
    /// The service agreement; `None` means the customer has none, which
    /// Online Desktop requires (it is a service, not a one-off product).
    pub agreement: Option<Agreement>,
    /// How many people may be invited to the web desktop (seats).
    pub online_users: u32,
    /// Evaluation licences let people try the host; they do not allow
    /// putting a company online.
    pub evaluation: bool,
    pub issued_on: NaiveDate,
}

impl Licence {
    /// Whether the licence lists the given add-on id.
    pub fn grants(&self, add_on: &str) -> bool {
        self.add_ons.iter().any(|granted| granted == add_on)
    }
}

/// A service agreement: which tier, and until when it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub tier: Tier,
    /// The last day on which the agreement is valid (inclusive).
    pub valid_until: NaiveDate,
}

impl Agreement {
    /// Valid on `today` if `today` is not after [`Agreement::valid_until`].
    pub fn is_valid_on(&self, today: NaiveDate) -> bool {
        self.valid_until >= today
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn agreement_is_valid_through_its_last_day() {
        let agreement = Agreement {
            tier: Tier::Basic,
            valid_until: date(2025, 6, 30),
        };
        assert!(agreement.is_valid_on(date(2025, 6, 29)));
        assert!(agreement.is_valid_on(date(2025, 6, 30)));
        assert!(!agreement.is_valid_on(date(2025, 7, 1)));
    }

    #[test]
    fn licence_json_uses_lowercase_tier_and_iso_dates() {
        let licence = Licence {
            licence_number: "L-1".into(),
            licensee_name: "Acme".into(),
            contact_person: "Ann".into(),
            phone: "1".into(),
            add_ons: vec![ADD_ON_ONLINE_DESKTOP.into()],
            agreement: Some(Agreement {
                tier: Tier::Premium,
                valid_until: date(2026, 12, 31),
            }),
            online_users: 5,
            evaluation: false,
            issued_on: date(2025, 1, 2),
        };
        let json = serde_json::to_value(&licence).expect("licence serialises");
        assert_eq!(json["agreement"]["tier"], "premium");
        assert_eq!(json["agreement"]["valid_until"], "2026-12-31");
        assert_eq!(json["issued_on"], "2025-01-02");
        assert!(licence.grants(ADD_ON_ONLINE_DESKTOP));
        assert!(!licence.grants("payroll"));
    }
}
