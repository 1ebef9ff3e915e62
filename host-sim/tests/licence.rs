//! The licence flow (PRODUCT.md §1): issue, register, list, bind, unbind.

mod common;

use common::{field, read, Host};
use serde_json::json;

const RESTART: &str = "The change takes effect the next time the program starts.";

/// Issues a licence with `args` to FILE in the test folder; returns its path.
fn issue(host: &Host, file: &str, args: &[&str]) -> String {
    let path = host.path(file).display().to_string();
    let mut all = vec!["licence", "issue", "--out", path.as_str()];
    all.extend_from_slice(args);
    let out = host.ok(&all);
    assert!(out.contains("Issued licence"), "{out}");
    path
}

#[test]
fn default_licence_is_a_valid_standard_licence_for_online_desktop() {
    let host = Host::with_demo();
    let path = issue(&host, "default.licence", &["--issued-on", "2026-03-01"]);
    let document: serde_json::Value = serde_json::from_str(&read(path.as_ref())).unwrap();
    assert_eq!(document["format"], "od-licence/1");
    assert_eq!(document["key_id"], "dev-1");
    let payload: serde_json::Value =
        serde_json::from_str(document["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload,
        json!({
            "licence_number": "OD-100001",
            "licensee_name": "Nordlys Handel AS",
            "contact_person": "Ingrid Solberg",
            "phone": "+47 22 33 44 55",
            "add_ons": ["online-desktop"],
            "agreement": { "tier": "standard", "valid_until": "2027-03-01" },
            "online_users": 5,
            "evaluation": false,
            "issued_on": "2026-03-01",
        })
    );
}

#[test]
fn issue_register_list_and_bind() {
    let host = Host::with_demo();
    let path = issue(&host, "nordlys.licence", &[]);

    let out = host.ok(&["licence", "add", &path]);
    assert!(out.contains("Registered licence OD-100001."), "{out}");
    assert!(out.contains(RESTART), "{out}");
    assert!(!out.contains("Warning"), "{out}");
    assert_eq!(
        host.channel("licence.documents", &[]),
        json!({ "documents": [read(path.as_ref())] })
    );

    let list = host.ok(&["licence", "list"]);
    assert!(list.contains("Licence OD-100001 (registered "), "{list}");
    assert_eq!(field(&list, "Licensee"), Some("Nordlys Handel AS"));
    assert_eq!(field(&list, "Add-ons"), Some("online-desktop"));
    assert!(field(&list, "Service agreement")
        .unwrap()
        .starts_with("Standard, valid until "));
    assert_eq!(field(&list, "Signature"), Some("valid"));
    assert_eq!(field(&list, "Registered add-ons"), Some("-"));

    let out = host.ok(&["licence", "bind", "--company", "Nordlys"]);
    assert!(
        out.contains("Online Desktop is now registered for \u{201c}Nordlys Handel AS\u{201d} with licence OD-100001."),
        "{out}"
    );
    assert!(out.contains(RESTART), "{out}");
    let company_id = host.channel("company.identity", &[])["id"].clone();
    assert_eq!(
        host.channel("system.bindings", &[]),
        json!({ "bindings": [{
            "add_on": "online-desktop", "licence_number": "OD-100001", "company_id": company_id,
        }] })
    );
    let list = host.ok(&["licence", "list"]);
    assert_eq!(
        field(&list, "Registered add-ons"),
        Some("online-desktop for \u{201c}Nordlys Handel AS\u{201d}")
    );
    let show = host.ok(&["company", "show"]);
    assert_eq!(
        field(&show, "Online Desktop"),
        Some("registered with licence OD-100001")
    );

    // The same company again changes nothing.
    let out = host.ok(&["licence", "bind", "--company", "nordlys handel as"]);
    assert!(out.contains("already registered"), "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    assert_eq!(
        host.channel("system.bindings", &[])["bindings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_second_company_is_refused() {
    let host = Host::with_demo();
    let path = issue(&host, "nordlys.licence", &[]);
    host.ok(&["licence", "add", &path]);
    host.ok(&["licence", "bind", "--company", "Nordlys"]);

    let error = host.fails(&["licence", "bind", "--company", "Sample"]);
    assert!(
        error.contains(
            "Online Desktop is already registered for company \u{201c}Nordlys Handel AS\u{201d}"
        ),
        "{error}"
    );
    assert!(
        error.contains("more companies need a different licence"),
        "{error}"
    );
    let bindings = host.channel("system.bindings", &[])["bindings"].clone();
    assert_eq!(bindings.as_array().unwrap().len(), 1);

    let out = host.ok(&["licence", "unbind", "--company", "Nordlys"]);
    assert!(
        out.contains(
            "Online Desktop is no longer registered for \u{201c}Nordlys Handel AS\u{201d}."
        ),
        "{out}"
    );
    assert!(out.contains(RESTART), "{out}");
    assert_eq!(
        host.channel("system.bindings", &[]),
        json!({ "bindings": [] })
    );
    assert!(host
        .ok(&["licence", "unbind", "--company", "Nordlys"])
        .contains("was not registered"));

    let out = host.ok(&["licence", "bind", "--company", "Sample"]);
    assert!(
        out.contains("now registered for \u{201c}Sample Company\u{201d}"),
        "{out}"
    );
    assert!(out.contains("sample database"), "{out}");
}

#[test]
fn a_file_that_is_not_a_licence_is_refused() {
    let host = Host::with_demo();
    let path = host.path("notes.txt");
    std::fs::write(&path, "Remember to renew the service agreement.").unwrap();
    let error = host.fails(&["licence", "add", path.to_str().unwrap()]);
    assert!(error.contains("The file was not registered."), "{error}");
    assert!(
        error.contains("This is not an Online Desktop licence file."),
        "{error}"
    );
    assert!(host
        .ok(&["licence", "list"])
        .contains("No licences are registered."));

    let error = host.fails(&[
        "licence",
        "add",
        host.path("missing.licence").to_str().unwrap(),
    ]);
    assert!(error.contains("Could not read the file"), "{error}");
}

#[test]
fn a_changed_licence_is_registered_but_shown_as_not_valid() {
    let host = Host::with_demo();
    let path = issue(&host, "nordlys.licence", &["--online-users", "5"]);
    let tampered = read(path.as_ref()).replace("\\\"online_users\\\":5", "\\\"online_users\\\":50");
    assert!(tampered.contains("\\\"online_users\\\":50"));
    std::fs::write(&path, tampered).unwrap();

    let out = host.ok(&["licence", "add", &path]);
    assert!(
        out.contains("Warning: The licence document has been changed after it was issued"),
        "{out}"
    );
    assert!(
        out.contains("Online Desktop will not accept this licence."),
        "{out}"
    );
    let list = host.ok(&["licence", "list"]);
    assert_eq!(field(&list, "Online users"), Some("50"));
    assert!(
        field(&list, "Signature").unwrap().starts_with("NOT VALID."),
        "{list}"
    );
}

#[test]
fn every_field_can_be_chosen_when_issuing() {
    let host = Host::with_demo();
    let path = issue(
        &host,
        "odd.licence",
        &[
            "--number",
            "OD-7",
            "--licensee",
            "",
            "--contact-person",
            "Per Berg",
            "--phone",
            "",
            "--add-on",
            "payroll",
            "--add-on",
            "online-desktop",
            "--tier",
            "Premium",
            "--valid-until",
            "2025-12-31",
            "--online-users",
            "12",
            "--evaluation",
        ],
    );
    host.ok(&["licence", "add", &path]);
    let list = host.ok(&["licence", "list"]);
    assert_eq!(field(&list, "Licensee"), Some("(missing)"));
    assert_eq!(field(&list, "Contact person"), Some("Per Berg"));
    assert_eq!(field(&list, "Phone"), Some("(missing)"));
    assert_eq!(field(&list, "Add-ons"), Some("payroll, online-desktop"));
    assert_eq!(
        field(&list, "Service agreement"),
        Some("Premium, valid until 2025-12-31")
    );
    assert_eq!(field(&list, "Online users"), Some("12"));
    assert_eq!(field(&list, "Evaluation licence"), Some("yes"));

    let path = issue(
        &host,
        "bare.licence",
        &["--number", "OD-8", "--no-agreement", "--no-add-ons"],
    );
    let out = host.ok(&["licence", "add", &path]);
    assert_eq!(field(&out, "Service agreement"), Some("(none)"));
    assert_eq!(field(&out, "Add-ons"), Some("(none)"));

    // OD-8 grants nothing, so OD-7 is the only choice for Online Desktop.
    let out = host.ok(&["licence", "bind", "--company", "Nordlys"]);
    assert!(out.contains("with licence OD-7."), "{out}");
    let error = host.fails(&[
        "licence",
        "bind",
        "--company",
        "Nordlys",
        "--licence",
        "OD-8",
    ]);
    assert!(
        error.contains("Licence OD-8 does not include the Online Desktop add-on"),
        "{error}"
    );

    let output = host.run(&["licence", "issue", "--out", "x", "--tier", "gold"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a service agreement tier"));
}

#[test]
fn registering_the_same_number_replaces_the_document() {
    let host = Host::with_demo();
    let first = issue(&host, "first.licence", &["--online-users", "5"]);
    let renewed = issue(&host, "renewed.licence", &["--online-users", "8"]);
    host.ok(&["licence", "add", &first]);
    let out = host.ok(&["licence", "add", &renewed]);
    assert!(
        out.contains("it replaces the licence with the same number"),
        "{out}"
    );
    assert_eq!(
        host.channel("licence.documents", &[]),
        json!({ "documents": [read(renewed.as_ref())] })
    );
}

#[test]
fn binding_needs_a_company_and_a_licence() {
    let host = Host::with_demo();
    let error = host.fails(&["licence", "bind"]);
    assert!(
        error.contains("Choose the company database with --company"),
        "{error}"
    );
    let error = host.fails(&["licence", "bind", "--company", "Nordlys"]);
    assert!(
        error.contains("No registered licence includes the Online Desktop add-on"),
        "{error}"
    );
    let error = host.fails(&[
        "licence",
        "bind",
        "--company",
        "Nordlys",
        "--licence",
        "OD-1",
    ]);
    assert!(
        error.contains("There is no registered licence with the number \u{201c}OD-1\u{201d}"),
        "{error}"
    );
}
