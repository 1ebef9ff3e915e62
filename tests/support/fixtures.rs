//! A complete company whose licence check and local prerequisites pass.

use chrono::{Days, Local, NaiveDate};
use od_licence::{Agreement, Licence, Tier, ADD_ON_ONLINE_DESKTOP};
use serde_json::{json, Value};

/// The licence number the fixtures bind to [`COMPANY_ID`]. The C host
/// (`tests/c/host.c`) answers with the same values.
pub const LICENCE_NUMBER: &str = "OD-TEST-0001";
pub const COMPANY_ID: &str = "c-test-1";
pub const COMPANY_NAME: &str = "Fjordline Regnskap AS";

/// A licence for Online Desktop with a Standard agreement that runs for
/// another year from today (the plugin checks against the local date).
pub fn licence() -> Licence {
    let today = Local::now().date_naive();
    Licence {
        licence_number: LICENCE_NUMBER.into(),
        licensee_name: COMPANY_NAME.into(),
        contact_person: "Kari Nordmann".into(),
        phone: "+47 22 00 00 00".into(),
        add_ons: vec![ADD_ON_ONLINE_DESKTOP.into()],
        agreement: Some(Agreement {
            tier: Tier::Standard,
            valid_until: today
                .checked_add_days(Days::new(365))
                .unwrap_or(NaiveDate::MAX),
        }),
        online_users: 5,
        evaluation: false,
        issued_on: today,
    }
}

/// `licence` as a document signed with the development key, which builds
/// with the default `dev-issuer` feature trust.
pub fn signed_document(licence: &Licence) -> String {
    od_licence::sign(
        licence,
        od_licence::DEV_KEY_ID,
        &od_licence::dev_signing_key(),
    )
}

/// The answer to every host-channel method for a complete company.
pub fn complete_answers() -> Vec<(&'static str, Value)> {
    vec![
        (
            "host.info",
            json!({"host_name": "Test ERP", "host_version": "9.1", "evaluation_installation": false,
                   "computer": {"id": "pc-1", "name": "PC-1", "holds_system_database": true}}),
        ),
        (
            "licence.documents",
            json!({"documents": [signed_document(&licence())]}),
        ),
        (
            "system.bindings",
            json!({"bindings": [{"add_on": ADD_ON_ONLINE_DESKTOP, "licence_number": LICENCE_NUMBER,
                                 "company_id": COMPANY_ID}]}),
        ),
        (
            "system.companies",
            json!({"companies": [{"id": COMPANY_ID, "name": COMPANY_NAME, "is_sample": false,
                                  "online_desktop_connected": false}]}),
        ),
        (
            "company.identity",
            json!({"id": COMPANY_ID, "name": COMPANY_NAME, "is_sample": false}),
        ),
        (
            "company.registration",
            json!({"name": COMPANY_NAME, "street": "Storgata 1", "postcode": "0155", "city": "Oslo",
                   "country": "Norway", "phone": "+47 22 00 00 00", "email": "post@fjordline.example",
                   "organisation_number": "999 888 777"}),
        ),
        (
            "user.current",
            json!({"username": "admin", "is_super_user": true,
                   "employee": {"id": "7", "name": "Kari Nordmann", "email": "kari@fjordline.example"}}),
        ),
        ("sessions.active", json!({"users": [], "integrations": []})),
    ]
}

/// The prerequisite rows, in the plugin's fixed order.
pub const PREREQUISITE_IDS: [&str; 8] = [
    "licence",
    "super_user",
    "employee_email",
    "company_registration",
    "real_company",
    "no_other_company_connected",
    "service_reachable",
    "no_other_sessions",
];
