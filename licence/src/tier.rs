//! Service-agreement tiers and the online modules (work areas) each grants.
//!
//! PRODUCT.md §1.5 leaves the tiers to us; docs/LICENSING.md is the
//! customer-facing table and must agree with [`Tier::modules`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The tier of a service agreement. Higher tiers grant a superset of the
/// modules of lower ones, so an upgrade never takes a work area away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Basic,
    Standard,
    Premium,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Basic, Tier::Standard, Tier::Premium];

    /// The online modules this tier grants, in [`Module::ALL`] order.
    pub fn modules(self) -> &'static [Module] {
        use Module::*;
        match self {
            Tier::Basic => &[Contacts, Activities, Employees, Dashboard],
            Tier::Standard => &[Contacts, Activities, Sales, Products, Employees, Dashboard],
            Tier::Premium => &Module::ALL,
        }
    }

    /// The name shown to people ("Standard").
    pub fn name(self) -> &'static str {
        match self {
            Tier::Basic => "Basic",
            Tier::Standard => "Standard",
            Tier::Premium => "Premium",
        }
    }

    /// The id used in licence JSON ("standard").
    pub fn id(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Standard => "standard",
            Tier::Premium => "premium",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tier name that is none of Basic, Standard or Premium.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("\"{0}\" is not a service agreement tier; use Basic, Standard or Premium.")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;

    /// Case-insensitive, because tiers are typed by people (dealers, the host
    /// simulator's command line) as often as they are read from JSON.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Tier::ALL
            .into_iter()
            .find(|tier| tier.id().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownTier(text.to_owned()))
    }
}

/// An online module: a work area of the web desktop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    Contacts,
    Activities,
    Projects,
    Sales,
    Products,
    Employees,
    Dashboard,
}

impl Module {
    pub const ALL: [Module; 7] = [
        Module::Contacts,
        Module::Activities,
        Module::Projects,
        Module::Sales,
        Module::Products,
        Module::Employees,
        Module::Dashboard,
    ];

    /// The stable id used in JSON, URLs and access rights ("contacts").
    pub fn id(self) -> &'static str {
        match self {
            Module::Contacts => "contacts",
            Module::Activities => "activities",
            Module::Projects => "projects",
            Module::Sales => "sales",
            Module::Products => "products",
            Module::Employees => "employees",
            Module::Dashboard => "dashboard",
        }
    }

    /// The title shown to people.
    pub fn title(self) -> &'static str {
        match self {
            Module::Contacts => "Contacts and contact persons",
            Module::Activities => "Activities",
            Module::Projects => "Projects",
            Module::Sales => "Sales documents (quotes, orders, invoices, credit notes)",
            Module::Products => "Products",
            Module::Employees => "Employees",
            Module::Dashboard => "Dashboard with key figures",
        }
    }

    /// Products and employees are maintained in the host only (PRODUCT.md
    /// §5.6); the web desktop shows them but does not let people edit them.
    pub fn read_only_online(self) -> bool {
        matches!(self, Module::Products | Module::Employees)
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// A module id that names no module.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("\"{0}\" is not an Online Desktop module.")]
pub struct UnknownModule(pub String);

impl FromStr for Module {
    type Err = UnknownModule;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Module::ALL
            .into_iter()
            .find(|module| module.id().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| UnknownModule(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_grant_the_documented_modules() {
        use Module::*;
        assert_eq!(
            Tier::Basic.modules(),
            &[Contacts, Activities, Employees, Dashboard]
        );
        assert_eq!(
            Tier::Standard.modules(),
            &[Contacts, Activities, Sales, Products, Employees, Dashboard]
        );
        assert_eq!(
            Tier::Premium.modules(),
            &[Contacts, Activities, Projects, Sales, Products, Employees, Dashboard]
        );
    }

    #[test]
    fn each_tier_includes_the_one_below() {
        for pair in Tier::ALL.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            for module in lower.modules() {
                assert!(
                    higher.modules().contains(module),
                    "{higher} lacks {module:?} of {lower}"
                );
            }
            assert!(higher.modules().len() > lower.modules().len());
        }
    }

    #[test]
    fn tier_modules_are_listed_in_module_order() {
        for tier in Tier::ALL {
            let mut sorted = tier.modules().to_vec();
            sorted.sort();
            assert_eq!(sorted, tier.modules(), "{tier}");
        }
    }

    #[test]
    fn tier_parses_case_insensitively_and_displays_its_name() {
        assert_eq!("standard".parse::<Tier>(), Ok(Tier::Standard));
        assert_eq!("PREMIUM".parse::<Tier>(), Ok(Tier::Premium));
        assert_eq!(" Basic ".parse::<Tier>(), Ok(Tier::Basic));
        assert_eq!("gold".parse::<Tier>(), Err(UnknownTier("gold".into())));
        assert_eq!(Tier::Standard.to_string(), "Standard");
        assert_eq!(Tier::Premium.name(), "Premium");
    }

    #[test]
    fn tier_and_module_serde_ids_are_lowercase() {
        assert_eq!(
            serde_json::to_string(&Tier::Standard).expect("serialises"),
            "\"standard\""
        );
        for module in Module::ALL {
            let json = serde_json::to_string(&module).expect("serialises");
            assert_eq!(json, format!("\"{}\"", module.id()));
            assert_eq!(module.id().parse::<Module>(), Ok(module));
        }
        assert_eq!(Module::Contacts.title(), "Contacts and contact persons");
    }

    #[test]
    fn only_products_and_employees_are_read_only_online() {
        let read_only: Vec<Module> = Module::ALL
            .into_iter()
            .filter(|m| m.read_only_online())
            .collect();
        assert_eq!(read_only, [Module::Products, Module::Employees]);
    }
}
