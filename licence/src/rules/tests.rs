use chrono::NaiveDate;
use ed25519_dalek::SigningKey;

use super::*;
use crate::binding::Binding;
use crate::document::sign;
use crate::keys::{dev_signing_key, IssuerKey};
use crate::licence::Agreement;

const COMPANY: &str = "company-acme";

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn today() -> NaiveDate {
    date(2025, 6, 1)
}

fn good_licence() -> Licence {
    Licence {
        licence_number: "L-1001".into(),
        licensee_name: "Acme Accounting".into(),
        contact_person: "Ann Smith".into(),
        phone: "+44 20 7946 0000".into(),
        add_ons: vec![ADD_ON_ONLINE_DESKTOP.into()],
        agreement: Some(Agreement {
            tier: Tier::Standard,
            valid_until: date(2025, 12, 31),
        }),
        online_users: 5,
        evaluation: false,
        issued_on: date(2025, 1, 2),
    }
}

fn trusted() -> TrustedKeys {
    TrustedKeys::new(vec![IssuerKey {
        key_id: "vendor-1".into(),
        public: vendor_key().verifying_key(),
    }])
}

fn vendor_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

fn issue(licence: &Licence) -> String {
    sign(licence, "vendor-1", &vendor_key())
}

fn bound(licence_number: &str, company_id: &str) -> Binding {
    Binding {
        add_on: ADD_ON_ONLINE_DESKTOP.into(),
        licence_number: licence_number.into(),
        company_id: company_id.into(),
    }
}

/// Everything in order: one genuine licence, bound to this company.
struct Setup {
    documents: Vec<String>,
    bindings: Vec<Binding>,
    company_id: String,
    is_sample_database: bool,
    today: NaiveDate,
}

impl Setup {
    fn with(licence: Licence) -> Setup {
        Setup {
            bindings: vec![bound(&licence.licence_number, COMPANY)],
            documents: vec![issue(&licence)],
            company_id: COMPANY.into(),
            is_sample_database: false,
            today: today(),
        }
    }

    fn good() -> Setup {
        Setup::with(good_licence())
    }

    fn check(&self) -> LicenceReport {
        let input = CheckInput {
            documents: &self.documents,
            bindings: &self.bindings,
            company_id: &self.company_id,
            is_sample_database: self.is_sample_database,
            today: self.today,
        };
        check(&input, &trusted())
    }
}

fn result(report: &LicenceReport, rule: RuleId) -> &RuleResult {
    report.rule(rule).expect("every rule is reported")
}

/// Asserts that exactly `failing` failed, that each rule is reported once in
/// order, and that the verdict follows.
fn assert_only_failing(report: &LicenceReport, failing: &[RuleId]) {
    let order: Vec<RuleId> = report.rules.iter().map(|r| r.rule).collect();
    assert_eq!(order, RuleId::ALL, "every rule reported once, in order");
    for result in &report.rules {
        assert_eq!(
            result.passed,
            !failing.contains(&result.rule),
            "{}: {}",
            result.rule.id(),
            result.detail
        );
        assert_eq!(result.title, result.rule.title());
        assert!(
            !result.detail.is_empty(),
            "{} has a detail",
            result.rule.id()
        );
    }
    assert_eq!(report.ok, failing.is_empty());
    if !report.ok {
        assert!(report.modules.is_empty(), "no modules unless ok");
    }
}

#[test]
fn everything_in_order_passes_and_grants_the_tier_modules() {
    let report = Setup::good().check();
    assert_only_failing(&report, &[]);
    assert_eq!(report.licence, Some(good_licence()));
    assert_eq!(report.tier, Some(Tier::Standard));
    assert_eq!(report.modules, Tier::Standard.modules());
}

#[test]
fn no_documents_fails_every_licence_rule_with_no_licence() {
    let mut setup = Setup::good();
    setup.documents.clear();
    let report = setup.check();
    assert_only_failing(
        &report,
        &[
            RuleId::LicencePresent,
            RuleId::SignatureValid,
            RuleId::AddOnGranted,
            RuleId::BoundToThisCompany,
            RuleId::NotEvaluation,
            RuleId::AgreementValid,
            RuleId::HolderDetailsComplete,
        ],
    );
    assert!(result(&report, RuleId::LicencePresent)
        .detail
        .contains(REGISTRATION_PATH));
    for rule in RuleId::ALL {
        if !matches!(rule, RuleId::LicencePresent | RuleId::NotSampleDatabase) {
            assert_eq!(result(&report, rule).detail, NO_LICENCE);
        }
    }
    assert_eq!(report.licence, None);
    assert_eq!(report.tier, None);
}

#[test]
fn no_documents_in_the_sample_database_still_reports_the_sample_rule() {
    let mut setup = Setup::good();
    setup.documents.clear();
    setup.is_sample_database = true;
    let report = setup.check();
    assert!(!result(&report, RuleId::NotSampleDatabase).passed);
    assert!(result(&report, RuleId::NotSampleDatabase)
        .detail
        .contains("sample database"));
}

#[test]
fn only_unreadable_documents_count_as_no_licence_and_say_why() {
    let mut setup = Setup::good();
    setup.documents = vec!["not a licence".into()];
    let report = setup.check();
    let present = result(&report, RuleId::LicencePresent);
    assert!(!present.passed);
    assert!(
        present
            .detail
            .contains("This is not an Online Desktop licence file"),
        "{}",
        present.detail
    );
    assert_eq!(result(&report, RuleId::SignatureValid).detail, NO_LICENCE);
}

#[test]
fn tampered_licence_fails_only_the_signature_and_shows_its_claims() {
    let mut setup = Setup::good();
    setup.documents = vec![setup.documents[0].replacen("Acme", "Acne", 1)];
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::SignatureValid]);
    assert!(result(&report, RuleId::SignatureValid)
        .detail
        .contains("has been changed after it was issued"));
    let claimed = report.licence.expect("claims are shown");
    assert_eq!(claimed.licensee_name, "Acne Accounting");
    assert!(report.modules.is_empty());
}

#[test]
fn licence_from_an_unknown_issuer_fails_the_signature_rule() {
    let mut setup = Setup::good();
    setup.documents = vec![sign(&good_licence(), "elsewhere-1", &vendor_key())];
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::SignatureValid]);
    assert!(result(&report, RuleId::SignatureValid)
        .detail
        .contains("\"elsewhere-1\""));
}

#[test]
fn sample_database_fails() {
    let mut setup = Setup::good();
    setup.is_sample_database = true;
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::NotSampleDatabase]);
    assert_eq!(report.tier, Some(Tier::Standard), "tier still shown");
}

#[test]
fn evaluation_licence_fails() {
    let report = Setup::with(Licence {
        evaluation: true,
        ..good_licence()
    })
    .check();
    assert_only_failing(&report, &[RuleId::NotEvaluation]);
    assert!(result(&report, RuleId::NotEvaluation)
        .detail
        .contains("evaluation licence"));
}

#[test]
fn expired_agreement_fails_and_agreement_ending_today_passes() {
    let mut setup = Setup::good();
    setup.today = date(2026, 1, 1);
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::AgreementValid]);
    let detail = &result(&report, RuleId::AgreementValid).detail;
    assert!(
        detail.contains("ended on 2025-12-31") && detail.contains("Renew"),
        "{detail}"
    );

    setup.today = date(2025, 12, 31);
    assert_only_failing(&setup.check(), &[]);
}

#[test]
fn missing_agreement_fails() {
    let report = Setup::with(Licence {
        agreement: None,
        ..good_licence()
    })
    .check();
    assert_only_failing(&report, &[RuleId::AgreementValid]);
    assert!(result(&report, RuleId::AgreementValid)
        .detail
        .contains("no service agreement"));
    assert_eq!(report.tier, None);
}

#[test]
fn missing_phone_fails_and_is_named() {
    let report = Setup::with(Licence {
        phone: "  ".into(),
        ..good_licence()
    })
    .check();
    assert_only_failing(&report, &[RuleId::HolderDetailsComplete]);
    assert_eq!(
        result(&report, RuleId::HolderDetailsComplete).detail,
        "The licence does not give the phone. Ask your dealer for a licence file with these \
         details filled in."
    );
}

#[test]
fn all_missing_holder_details_are_named() {
    let report = Setup::with(Licence {
        licensee_name: String::new(),
        contact_person: String::new(),
        phone: String::new(),
        ..good_licence()
    })
    .check();
    assert_only_failing(&report, &[RuleId::HolderDetailsComplete]);
    assert!(result(&report, RuleId::HolderDetailsComplete)
        .detail
        .contains("licensee name, contact person and phone"));
}

#[test]
fn add_on_not_granted_fails() {
    let report = Setup::with(Licence {
        add_ons: vec!["payroll".into()],
        ..good_licence()
    })
    .check();
    assert_only_failing(&report, &[RuleId::AddOnGranted]);
    assert!(result(&report, RuleId::AddOnGranted)
        .detail
        .contains("includes payroll but not Online Desktop"));
}

#[test]
fn not_bound_fails_and_says_where_to_register() {
    let mut setup = Setup::good();
    setup.bindings.clear();
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::BoundToThisCompany]);
    let detail = &result(&report, RuleId::BoundToThisCompany).detail;
    assert!(detail.contains("not registered for this company database"));
    assert!(detail.contains(
        "Help → About → Administer licence information → Add-on products → Online Desktop → Add"
    ));
}

#[test]
fn binding_of_another_add_on_does_not_count() {
    let mut setup = Setup::good();
    setup.bindings = vec![Binding {
        add_on: "payroll".into(),
        ..bound("L-1001", COMPANY)
    }];
    assert_only_failing(&setup.check(), &[RuleId::BoundToThisCompany]);
}

#[test]
fn bound_to_another_company_fails_and_names_it() {
    let mut setup = Setup::good();
    setup.bindings = vec![bound("L-1001", "company-globex")];
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::BoundToThisCompany]);
    let detail = &result(&report, RuleId::BoundToThisCompany).detail;
    assert!(
        detail.contains("registered for company company-globex, not for this company database"),
        "{detail}"
    );
}

#[test]
fn this_company_bound_with_another_licence_number_fails_and_names_both() {
    let mut setup = Setup::good();
    setup.bindings = vec![bound("L-0999", COMPANY)];
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::BoundToThisCompany]);
    let detail = &result(&report, RuleId::BoundToThisCompany).detail;
    assert!(
        detail.contains("registered with licence L-0999")
            && detail.contains("the licence in use is L-1001"),
        "{detail}"
    );
}

#[test]
fn several_failures_are_all_reported() {
    let mut setup = Setup::with(Licence {
        evaluation: true,
        agreement: None,
        ..good_licence()
    });
    setup.is_sample_database = true;
    assert_only_failing(
        &setup.check(),
        &[
            RuleId::NotSampleDatabase,
            RuleId::NotEvaluation,
            RuleId::AgreementValid,
        ],
    );
}

#[test]
fn premium_tier_grants_projects() {
    let report = Setup::with(Licence {
        agreement: Some(Agreement {
            tier: Tier::Premium,
            valid_until: date(2025, 12, 31),
        }),
        ..good_licence()
    })
    .check();
    assert!(report.ok);
    assert!(report.modules.contains(&Module::Projects));
    assert_eq!(report.modules, Tier::Premium.modules());
}

#[test]
fn genuine_online_desktop_licence_is_preferred_to_a_tampered_one() {
    let mut setup = Setup::good();
    let tampered = setup.documents[0].replacen("Ann", "Bob", 1);
    setup.documents.insert(0, tampered);
    let report = setup.check();
    assert_only_failing(&report, &[]);
    assert_eq!(report.licence, Some(good_licence()));
}

#[test]
fn latest_agreement_wins_among_genuine_online_desktop_licences() {
    let renewal = Licence {
        agreement: Some(Agreement {
            tier: Tier::Premium,
            valid_until: date(2026, 12, 31),
        }),
        ..good_licence()
    };
    let mut setup = Setup::good();
    setup.documents.push(issue(&renewal));
    let report = setup.check();
    assert_eq!(report.licence, Some(renewal));
    assert_eq!(report.tier, Some(Tier::Premium));

    setup.documents.reverse();
    assert_eq!(
        setup.check().tier,
        Some(Tier::Premium),
        "order does not matter"
    );
}

#[test]
fn genuine_online_desktop_licence_is_preferred_to_other_add_on_licences() {
    let payroll = Licence {
        licence_number: "L-2002".into(),
        add_ons: vec!["payroll".into()],
        agreement: Some(Agreement {
            tier: Tier::Premium,
            valid_until: date(2030, 1, 1),
        }),
        ..good_licence()
    };
    let mut setup = Setup::good();
    setup.documents.insert(0, issue(&payroll));
    let report = setup.check();
    assert!(report.ok);
    assert_eq!(report.licence, Some(good_licence()));
}

#[test]
fn tampered_online_desktop_licence_is_reported_rather_than_another_add_on() {
    let payroll = Licence {
        licence_number: "L-2002".into(),
        add_ons: vec!["payroll".into()],
        ..good_licence()
    };
    let mut setup = Setup::good();
    let tampered =
        setup.documents[0].replacen("\\\"online_users\\\":5", "\\\"online_users\\\":50", 1);
    assert_ne!(tampered, setup.documents[0], "the edit applied");
    setup.documents = vec![issue(&payroll), tampered];
    let report = setup.check();
    assert_only_failing(&report, &[RuleId::SignatureValid]);
    let claimed = report.licence.expect("claims are shown");
    assert_eq!(claimed.licence_number, "L-1001");
    assert_eq!(claimed.online_users, 50);
}

#[test]
fn unreadable_documents_beside_a_good_one_are_ignored() {
    let mut setup = Setup::good();
    setup.documents.insert(0, "garbage".into());
    assert_only_failing(&setup.check(), &[]);
}

#[test]
fn development_licence_passes_and_says_it_is_for_testing() {
    let mut setup = Setup::good();
    setup.documents = vec![sign(&good_licence(), DEV_KEY_ID, &dev_signing_key())];
    let input = CheckInput {
        documents: &setup.documents,
        bindings: &setup.bindings,
        company_id: &setup.company_id,
        is_sample_database: false,
        today: today(),
    };
    let dev_trusted = TrustedKeys::new(vec![IssuerKey {
        key_id: DEV_KEY_ID.into(),
        public: dev_signing_key().verifying_key(),
    }]);
    let report = check(&input, &dev_trusted);
    assert!(report.ok);
    assert!(result(&report, RuleId::SignatureValid)
        .detail
        .contains("testing only"));
}

#[test]
fn rule_ids_are_the_documented_strings() {
    let ids: Vec<&str> = RuleId::ALL.iter().map(|rule| rule.id()).collect();
    assert_eq!(
        ids,
        [
            "licence_present",
            "signature_valid",
            "add_on_granted",
            "bound_to_this_company",
            "not_sample_database",
            "not_evaluation",
            "agreement_valid",
            "holder_details_complete",
        ]
    );
    for rule in RuleId::ALL {
        let json = serde_json::to_string(&rule).expect("serialises");
        assert_eq!(json, format!("\"{}\"", rule.id()));
    }
}

#[test]
fn join_words_reads_like_a_sentence() {
    assert_eq!(join_words(&["a"]), "a");
    assert_eq!(join_words(&["a", "b"]), "a and b");
    assert_eq!(join_words(&["a", "b", "c"]), "a, b and c");
}

#[test]
fn among_equal_licences_the_one_registered_here_wins_then_the_first() {
    let other = Licence {
        licence_number: "L-3003".into(),
        ..good_licence()
    };
    let mut setup = Setup::good();
    setup.documents.insert(0, issue(&other));
    let report = setup.check();
    assert!(report.ok, "L-1001 is bound here and chosen");
    assert_eq!(report.licence, Some(good_licence()));

    setup.bindings.clear();
    let report = setup.check();
    assert_eq!(
        report.licence.map(|licence| licence.licence_number),
        Some("L-3003".to_owned()),
        "first registered document"
    );
}
