//! The licence check (PRODUCT.md §1.5): may Online Desktop run in this
//! company database, and with which modules?
//!
//! Every rule is evaluated and reported on its own, even when an earlier one
//! fails, so that the host can show the whole list at once and the customer
//! can fix everything in one go instead of discovering problems one by one.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::binding::{online_desktop_bindings, Binding, REGISTRATION_PATH};
use crate::document::{open, LicenceError, Opened};
use crate::keys::{TrustedKeys, DEV_KEY_ID};
use crate::licence::{Licence, ADD_ON_ONLINE_DESKTOP};
use crate::tier::{Module, Tier};

/// The detail of every rule that needs a licence when there is none.
pub const NO_LICENCE: &str = "no licence";

/// What the host knows when the plugin is loaded.
#[derive(Clone, Copy, Debug)]
pub struct CheckInput<'a> {
    /// All licence documents registered in the system database.
    pub documents: &'a [String],
    /// Add-on bindings recorded in the system database.
    pub bindings: &'a [Binding],
    /// The stable id of the company database the plugin runs in.
    pub company_id: &'a str,
    pub is_sample_database: bool,
    /// Passed in rather than read from the clock so that the check is a pure
    /// function: testable, and the same on every computer for one date.
    pub today: NaiveDate,
}

/// The rules, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    LicencePresent,
    SignatureValid,
    AddOnGranted,
    BoundToThisCompany,
    NotSampleDatabase,
    NotEvaluation,
    AgreementValid,
    HolderDetailsComplete,
}

impl RuleId {
    pub const ALL: [RuleId; 8] = [
        RuleId::LicencePresent,
        RuleId::SignatureValid,
        RuleId::AddOnGranted,
        RuleId::BoundToThisCompany,
        RuleId::NotSampleDatabase,
        RuleId::NotEvaluation,
        RuleId::AgreementValid,
        RuleId::HolderDetailsComplete,
    ];

    /// Stable id for logs, the C ABI and tests.
    pub fn id(self) -> &'static str {
        match self {
            RuleId::LicencePresent => "licence_present",
            RuleId::SignatureValid => "signature_valid",
            RuleId::AddOnGranted => "add_on_granted",
            RuleId::BoundToThisCompany => "bound_to_this_company",
            RuleId::NotSampleDatabase => "not_sample_database",
            RuleId::NotEvaluation => "not_evaluation",
            RuleId::AgreementValid => "agreement_valid",
            RuleId::HolderDetailsComplete => "holder_details_complete",
        }
    }

    /// The rule in one line, as the host lists it.
    pub fn title(self) -> &'static str {
        match self {
            RuleId::LicencePresent => "An Online Desktop licence is registered",
            RuleId::SignatureValid => "The licence is genuine and unchanged",
            RuleId::AddOnGranted => "The licence includes the Online Desktop add-on",
            RuleId::BoundToThisCompany => "Online Desktop is registered for this company database",
            RuleId::NotSampleDatabase => "This is not the sample database",
            RuleId::NotEvaluation => "The licence is not an evaluation licence",
            RuleId::AgreementValid => "The service agreement is valid",
            RuleId::HolderDetailsComplete => {
                "The licence names the licence holder, a contact person and a phone number"
            }
        }
    }
}

/// The outcome of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: RuleId,
    pub passed: bool,
    /// One-line description of the rule ([`RuleId::title`]).
    pub title: String,
    /// What was found and, if the rule failed, how to fix it.
    pub detail: String,
}

impl RuleResult {
    fn new(rule: RuleId, passed: bool, detail: impl Into<String>) -> RuleResult {
        RuleResult {
            rule,
            passed,
            title: rule.title().to_owned(),
            detail: detail.into(),
        }
    }

    fn no_licence(rule: RuleId) -> RuleResult {
        RuleResult::new(rule, false, NO_LICENCE)
    }
}

/// The verdict of [`check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceReport {
    /// True only if every rule passed.
    pub ok: bool,
    /// Every rule of [`RuleId::ALL`], in that order.
    pub rules: Vec<RuleResult>,
    /// The licence the rules were checked against: the best verified one,
    /// or, if none verifies, what the best unverified one claims.
    pub licence: Option<Licence>,
    /// The tier the selected licence's agreement names (even if a rule
    /// failed, so the host can show it).
    pub tier: Option<Tier>,
    /// The modules the company gets; empty unless `ok`.
    pub modules: Vec<Module>,
}

impl LicenceReport {
    /// The result of one rule.
    pub fn rule(&self, rule: RuleId) -> Option<&RuleResult> {
        self.rules.iter().find(|result| result.rule == rule)
    }
}

/// Checks every licence rule for the company database the plugin runs in.
pub fn check(input: &CheckInput, trusted: &TrustedKeys) -> LicenceReport {
    let mut unreadable = Vec::new();
    let mut opened = Vec::new();
    for document in input.documents {
        match open(document, trusted) {
            Ok(candidate) => opened.push(candidate),
            Err(error) => unreadable.push(error),
        }
    }
    let selected = select(opened, input);

    // Rules that need a licence fail with "no licence" when there is none;
    // the others are still evaluated.
    let on_licence = |rule: RuleId, evaluate: &dyn Fn(&Opened) -> RuleResult| match &selected {
        Some(candidate) => evaluate(candidate),
        None => RuleResult::no_licence(rule),
    };
    let rules = vec![
        match &selected {
            Some(candidate) => licence_present(&candidate.licence),
            None => licence_absent(&unreadable),
        },
        on_licence(RuleId::SignatureValid, &signature_valid),
        on_licence(RuleId::AddOnGranted, &|c| add_on_granted(&c.licence)),
        on_licence(RuleId::BoundToThisCompany, &|c| {
            bound_to_this_company(&c.licence, input.bindings, input.company_id)
        }),
        not_sample_database(input.is_sample_database),
        on_licence(RuleId::NotEvaluation, &|c| not_evaluation(&c.licence)),
        on_licence(RuleId::AgreementValid, &|c| {
            agreement_valid(&c.licence, input.today)
        }),
        on_licence(RuleId::HolderDetailsComplete, &|c| {
            holder_details_complete(&c.licence)
        }),
    ];

    let ok = rules.iter().all(|result| result.passed);
    let licence = selected.map(|candidate| candidate.licence);
    let tier = licence
        .as_ref()
        .and_then(|licence| licence.agreement.as_ref())
        .map(|agreement| agreement.tier);
    let modules = match (ok, tier) {
        (true, Some(tier)) => tier.modules().to_vec(),
        _ => Vec::new(),
    };
    LicenceReport {
        ok,
        rules,
        licence,
        tier,
        modules,
    }
}

/// Picks the licence to check. Each add-on has its own licence, so the
/// system database may hold several; the one that matters is a genuine
/// Online Desktop licence, and among those the one whose agreement runs
/// longest (a renewal registered beside the old licence). Failing that, a
/// document that at least claims Online Desktop tells the customer more
/// than a genuine licence for some other add-on. Among equals, one already
/// registered for this company wins, then the first registered document, so
/// the choice is stable.
fn select(candidates: Vec<Opened>, input: &CheckInput) -> Option<Opened> {
    candidates.into_iter().rev().max_by_key(|candidate| {
        let genuine = candidate.signature.is_ok();
        let grants = candidate.licence.grants(ADD_ON_ONLINE_DESKTOP);
        let valid_until = candidate
            .licence
            .agreement
            .as_ref()
            .map(|agreement| agreement.valid_until);
        let bound_here = online_desktop_bindings(input.bindings).any(|binding| {
            binding.licence_number == candidate.licence.licence_number
                && binding.company_id == input.company_id
        });
        (genuine && grants, grants, genuine, valid_until, bound_here)
    })
}

/// No document could be read: say whether there were none or only bad ones,
/// quoting the first reason because it tells the customer what to ask for.
fn licence_absent(unreadable: &[LicenceError]) -> RuleResult {
    let detail = match unreadable {
        [] => format!(
            "No licence is registered in the system database. Register the Online Desktop \
             licence file under {REGISTRATION_PATH}."
        ),
        [error] => format!(
            "The registered licence document cannot be read. {error} Then register it under \
             {REGISTRATION_PATH}."
        ),
        [first, ..] => format!(
            "None of the {} registered licence documents can be read. {first} Then register \
             it under {REGISTRATION_PATH}.",
            unreadable.len()
        ),
    };
    RuleResult::new(RuleId::LicencePresent, false, detail)
}

fn licence_present(licence: &Licence) -> RuleResult {
    RuleResult::new(
        RuleId::LicencePresent,
        true,
        format!(
            "Licence {} for {} is registered.",
            licence.licence_number,
            display_or_unnamed(&licence.licensee_name)
        ),
    )
}

fn signature_valid(candidate: &Opened) -> RuleResult {
    match &candidate.signature {
        Ok(()) if candidate.key_id == DEV_KEY_ID => RuleResult::new(
            RuleId::SignatureValid,
            true,
            format!(
                "Licence {} is signed with the development key ({DEV_KEY_ID}); it is for \
                 testing only.",
                candidate.licence.licence_number
            ),
        ),
        Ok(()) => RuleResult::new(
            RuleId::SignatureValid,
            true,
            format!(
                "Licence {} was issued by the vendor (key {}) and has not been changed.",
                candidate.licence.licence_number, candidate.key_id
            ),
        ),
        Err(error) => RuleResult::new(
            RuleId::SignatureValid,
            false,
            format!("Licence {}: {error}", candidate.licence.licence_number),
        ),
    }
}

fn add_on_granted(licence: &Licence) -> RuleResult {
    if licence.grants(ADD_ON_ONLINE_DESKTOP) {
        return RuleResult::new(
            RuleId::AddOnGranted,
            true,
            format!(
                "Licence {} includes Online Desktop.",
                licence.licence_number
            ),
        );
    }
    let granted = if licence.add_ons.is_empty() {
        "no add-ons".to_owned()
    } else {
        licence.add_ons.join(", ")
    };
    RuleResult::new(
        RuleId::AddOnGranted,
        false,
        format!(
            "Licence {} includes {granted} but not Online Desktop. Ask your dealer for a \
             licence that includes Online Desktop.",
            licence.licence_number
        ),
    )
}

fn bound_to_this_company(licence: &Licence, bindings: &[Binding], company_id: &str) -> RuleResult {
    let number = &licence.licence_number;
    let online_desktop: Vec<&Binding> = online_desktop_bindings(bindings).collect();
    if online_desktop
        .iter()
        .any(|binding| &binding.licence_number == number && binding.company_id == company_id)
    {
        return RuleResult::new(
            RuleId::BoundToThisCompany,
            true,
            format!(
                "Online Desktop is registered for this company database with licence {number}."
            ),
        );
    }
    let this_company_other_licence = online_desktop
        .iter()
        .find(|binding| binding.company_id == company_id);
    let other_company = online_desktop
        .iter()
        .find(|binding| binding.company_id != company_id);
    let detail = if let Some(binding) = this_company_other_licence {
        format!(
            "This company database is registered with licence {}, but the licence in use is \
             {number}. Register Online Desktop again with licence {number} under \
             {REGISTRATION_PATH}, choose this company database, then restart the program.",
            binding.licence_number
        )
    } else if let Some(binding) = other_company {
        format!(
            "Online Desktop is registered for company {}, not for this company database \
             ({company_id}). One system database can have Online Desktop for one company \
             only; more companies need a different licence.",
            binding.company_id
        )
    } else {
        format!(
            "Online Desktop is not registered for this company database. Register it under \
             {REGISTRATION_PATH}, choose this company database, then restart the program."
        )
    };
    RuleResult::new(RuleId::BoundToThisCompany, false, detail)
}

fn not_sample_database(is_sample_database: bool) -> RuleResult {
    if is_sample_database {
        RuleResult::new(
            RuleId::NotSampleDatabase,
            false,
            "This is the sample database, which is for trying the program out. Online \
             Desktop cannot be used with it; open your own company database.",
        )
    } else {
        RuleResult::new(
            RuleId::NotSampleDatabase,
            true,
            "This is your own company database.",
        )
    }
}

fn not_evaluation(licence: &Licence) -> RuleResult {
    if licence.evaluation {
        RuleResult::new(
            RuleId::NotEvaluation,
            false,
            format!(
                "Licence {} is an evaluation licence. Online Desktop needs a full licence; \
                 ask your dealer for one.",
                licence.licence_number
            ),
        )
    } else {
        RuleResult::new(
            RuleId::NotEvaluation,
            true,
            format!("Licence {} is a full licence.", licence.licence_number),
        )
    }
}

fn agreement_valid(licence: &Licence, today: NaiveDate) -> RuleResult {
    match &licence.agreement {
        None => RuleResult::new(
            RuleId::AgreementValid,
            false,
            format!(
                "Licence {} has no service agreement. Online Desktop needs one; ask your \
                 dealer for a service agreement and a new licence file.",
                licence.licence_number
            ),
        ),
        Some(agreement) if agreement.is_valid_on(today) => RuleResult::new(
            RuleId::AgreementValid,
            true,
            format!(
                "{} service agreement, valid until {}.",
                agreement.tier, agreement.valid_until
            ),
        ),
        Some(agreement) => RuleResult::new(
            RuleId::AgreementValid,
            false,
            format!(
                "The {} service agreement ended on {}. Renew it with your dealer, then \
                 register the new licence file under {REGISTRATION_PATH}.",
                agreement.tier, agreement.valid_until
            ),
        ),
    }
}

fn holder_details_complete(licence: &Licence) -> RuleResult {
    let missing: Vec<&str> = [
        ("licensee name", &licence.licensee_name),
        ("contact person", &licence.contact_person),
        ("phone", &licence.phone),
    ]
    .into_iter()
    .filter(|(_, value)| value.trim().is_empty())
    .map(|(what, _)| what)
    .collect();
    if missing.is_empty() {
        return RuleResult::new(
            RuleId::HolderDetailsComplete,
            true,
            format!(
                "Licensee {}, contact person {}, phone {}.",
                licence.licensee_name, licence.contact_person, licence.phone
            ),
        );
    }
    RuleResult::new(
        RuleId::HolderDetailsComplete,
        false,
        format!(
            "The licence does not give the {}. Ask your dealer for a licence file with these \
             details filled in.",
            join_words(&missing)
        ),
    )
}

/// "a", "a and b", "a, b and c".
fn join_words(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [only] => (*only).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn display_or_unnamed(name: &str) -> &str {
    if name.trim().is_empty() {
        "an unnamed licensee"
    } else {
        name
    }
}

#[cfg(test)]
mod tests;
