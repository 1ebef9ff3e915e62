//! The licence check as the plugin runs it: read the licence data from the
//! host once, when the plugin is created (PRODUCT.md §1.4: a new binding
//! takes effect at the next start), and evaluate the rules of `od-licence`.

use crate::host::{Host, HostError};
use od_licence::{check, Binding, CheckInput, LicenceReport, RuleId, TrustedKeys};

/// Reads the licence data from the host and checks it. A host that cannot
/// answer gets a report whose first rule says so; the plugin stays usable.
pub fn check_with_host(host: &Host, today: chrono::NaiveDate) -> LicenceReport {
    match read_licence_data(host) {
        Ok((documents, bindings, company_id, is_sample)) => {
            let mut report = check(
                &CheckInput {
                    documents: &documents,
                    bindings: &bindings,
                    company_id: &company_id,
                    is_sample_database: is_sample,
                    today,
                },
                &TrustedKeys::compiled_in(),
            );
            name_companies(host, &mut report);
            report
        }
        Err(error) => {
            tracing::error!("licence data could not be read: {error}");
            let mut report = check(
                &CheckInput {
                    documents: &[],
                    bindings: &[],
                    company_id: "",
                    is_sample_database: false,
                    today,
                },
                &TrustedKeys::compiled_in(),
            );
            if let Some(rule) = report
                .rules
                .iter_mut()
                .find(|r| r.rule == RuleId::LicencePresent)
            {
                rule.detail = format!("The licence information could not be read: {error}. Restart the program; if it persists, contact support.");
            }
            report
        }
    }
}

/// The rules name company databases by their ids; a bookkeeper knows them
/// by name. Leaves the ids when the host cannot list the companies.
fn name_companies(host: &Host, report: &mut LicenceReport) {
    let Ok(companies) = host.companies() else {
        return;
    };
    for rule in &mut report.rules {
        for company in &companies.companies {
            if !company.id.is_empty() && rule.detail.contains(&company.id) {
                rule.detail = rule
                    .detail
                    .replace(&company.id, &format!("\u{201c}{}\u{201d}", company.name));
            }
        }
    }
}

type LicenceData = (Vec<String>, Vec<Binding>, String, bool);

fn read_licence_data(host: &Host) -> Result<LicenceData, HostError> {
    let documents = host.licence_documents()?.documents;
    let bindings = host
        .bindings()?
        .bindings
        .into_iter()
        .map(|b| Binding {
            add_on: b.add_on,
            licence_number: b.licence_number,
            company_id: b.company_id,
        })
        .collect();
    let company = host.company_identity()?;
    Ok((documents, bindings, company.id, company.is_sample))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::testing::FakeHost;
    use chrono::NaiveDate;
    use od_licence::{Agreement, Licence, Tier, ADD_ON_ONLINE_DESKTOP};
    use serde_json::json;
    use std::sync::Arc;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    pub(crate) fn licence(number: &str) -> Licence {
        Licence {
            licence_number: number.into(),
            licensee_name: "Fjordline Regnskap AS".into(),
            contact_person: "Kari Nordmann".into(),
            phone: "+47 22 00 00 00".into(),
            add_ons: vec![ADD_ON_ONLINE_DESKTOP.into()],
            agreement: Some(Agreement {
                tier: Tier::Standard,
                valid_until: NaiveDate::from_ymd_opt(2027, 12, 31).unwrap(),
            }),
            online_users: 5,
            evaluation: false,
            issued_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        }
    }

    #[test]
    fn a_valid_bound_licence_passes_with_the_tiers_modules() {
        let doc = od_licence::sign(
            &licence("L-1"),
            od_licence::DEV_KEY_ID,
            &od_licence::dev_signing_key(),
        );
        let fake = Arc::new(FakeHost::default());
        fake.set("licence.documents", json!({"documents": [doc]}));
        fake.set("system.bindings", json!({"bindings": [{"add_on": "online-desktop", "licence_number": "L-1", "company_id": "c1"}]}));
        fake.set(
            "company.identity",
            json!({"id": "c1", "name": "Demo", "is_sample": false}),
        );
        let report = check_with_host(&Host::new(fake), today());
        assert!(report.ok, "{report:#?}");
        assert_eq!(report.modules, Tier::Standard.modules());
    }

    #[test]
    fn a_binding_to_another_company_names_both_companies() {
        let doc = od_licence::sign(
            &licence("L-1"),
            od_licence::DEV_KEY_ID,
            &od_licence::dev_signing_key(),
        );
        let fake = Arc::new(FakeHost::default());
        fake.set("licence.documents", json!({"documents": [doc]}));
        fake.set("system.bindings", json!({"bindings": [{"add_on": "online-desktop", "licence_number": "L-1", "company_id": "id-other"}]}));
        fake.set(
            "company.identity",
            json!({"id": "id-this", "name": "Nordlys AS", "is_sample": false}),
        );
        fake.set("system.companies", json!({"companies": [
            {"id": "id-this", "name": "Nordlys AS", "is_sample": false, "online_desktop_connected": false},
            {"id": "id-other", "name": "Sample Company", "is_sample": true, "online_desktop_connected": false}]}));
        let report = check_with_host(&Host::new(fake), today());
        let rule = report.rule(RuleId::BoundToThisCompany).unwrap();
        assert!(!rule.passed);
        assert!(
            rule.detail.contains("\u{201c}Sample Company\u{201d}"),
            "{}",
            rule.detail
        );
        assert!(
            rule.detail.contains("\u{201c}Nordlys AS\u{201d}"),
            "{}",
            rule.detail
        );
        assert!(!rule.detail.contains("id-other"), "{}", rule.detail);
    }

    #[test]
    fn a_host_that_cannot_answer_fails_the_first_rule_with_its_reason() {
        let fake = Arc::new(FakeHost::default());
        fake.fail("licence.documents", "system database is locked");
        let report = check_with_host(&Host::new(fake), today());
        assert!(!report.ok);
        let first = &report.rules[0];
        assert_eq!(first.rule, RuleId::LicencePresent);
        assert!(
            first.detail.contains("system database is locked"),
            "{}",
            first.detail
        );
    }
}
