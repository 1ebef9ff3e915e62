//! The management commands, checked through their output and through what
//! the data channel then answers.

mod common;

use common::{field, Host};
use serde_json::json;

#[test]
fn company_show_and_set_registration() {
    let host = Host::with_demo();
    let show = host.ok(&["company", "show"]);
    assert_eq!(field(&show, "Company database"), Some("Nordlys Handel AS"));
    assert_eq!(field(&show, "Organisation number"), Some("923 456 783"));
    assert_eq!(field(&show, "Online Desktop"), Some("not registered"));

    let out = host.ok(&[
        "company",
        "set-registration",
        "--phone",
        "",
        "--city",
        "Bergen",
        "--postcode",
        "5003",
    ]);
    assert!(
        out.contains("The registration data of \u{201c}Nordlys Handel AS\u{201d} was updated."),
        "{out}"
    );
    assert!(out.contains("Still missing: Phone."), "{out}");
    let registration = host.channel("company.registration", &[]);
    assert_eq!(registration["phone"], json!(null));
    assert_eq!(registration["city"], "Bergen");
    assert_eq!(registration["postcode"], "5003");
    assert_eq!(registration["street"], "Storgata 12");

    let error = host.fails(&["company", "set-registration"]);
    assert!(error.contains("Nothing to change"), "{error}");
    let error = host.fails(&["company", "set-registration", "--email", "post at nordlys"]);
    assert!(error.contains("is not an e-mail address"), "{error}");
}

#[test]
fn companies_are_chosen_by_name_prefix_or_id_and_ambiguity_is_explained() {
    let host = Host::with_demo();
    let out = host.ok(&["company", "add", "Nordic Test AB"]);
    assert!(
        out.contains("Created the company database \u{201c}Nordic Test AB\u{201d}"),
        "{out}"
    );
    assert!(host
        .data_dir()
        .join("companies/nordic-test-ab.db")
        .is_file());

    // With two ordinary companies there is no default any more.
    let error = host.fails(&["company", "show"]);
    assert!(
        error.contains("Choose a company database with --company"),
        "{error}"
    );

    let error = host.fails(&["company", "show", "--company", "nord"]);
    assert!(
        error.contains("\u{201c}nord\u{201d} matches more than one company database"),
        "{error}"
    );
    assert!(error.contains("Nordlys Handel AS (id "), "{error}");
    assert!(error.contains("Nordic Test AB (id "), "{error}");

    let show = host.ok(&["company", "show", "--company", "NORDLYS"]);
    assert_eq!(field(&show, "Company database"), Some("Nordlys Handel AS"));
    let show = host.ok(&["company", "show", "--company", "sample company"]);
    assert_eq!(field(&show, "Sample database"), Some("yes"));

    let id = host.channel("company.identity", &["--company", "Nordic"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let show = host.ok(&["company", "show", "--company", &id[..8]]);
    assert_eq!(field(&show, "Company database"), Some("Nordic Test AB"));
    assert_eq!(field(&show, "Company name"), Some("Nordic Test AB"));
    assert_eq!(field(&show, "Phone"), Some("-"));
    let registration = host.channel("company.registration", &["--company", &id]);
    assert_eq!(registration["name"], "Nordic Test AB");
    assert_eq!(registration["phone"], json!(null));

    let error = host.fails(&["company", "show", "--company", "Acme"]);
    assert!(
        error.contains("There is no company database \u{201c}Acme\u{201d}"),
        "{error}"
    );
    let error = host.fails(&["company", "add", "nordic test ab"]);
    assert!(error.contains("already exists"), "{error}");
}

#[test]
fn users_are_added_promoted_linked_and_removed() {
    let host = Host::with_demo();
    let list = host.ok(&["user", "list"]);
    assert!(list.contains("Ingrid Solberg (no. 1)"), "{list}");
    assert!(list.contains("ingrid.solberg@nordlyshandel.no"), "{list}");

    assert!(host
        .ok(&["user", "add", "anna"])
        .contains("Added the user \u{201c}anna\u{201d}."));
    let error = host.fails(&["user", "add", "ANNA"]);
    assert!(error.contains("already exists"), "{error}");

    host.ok(&["user", "set-super", "anna", "on"]);
    let out = host.ok(&["user", "link-employee", "anna", "--employee", "2"]);
    assert!(
        out.contains("\u{201c}anna\u{201d} is now linked to the employee Lars Haugen (no. 2)"),
        "{out}"
    );
    assert_eq!(
        host.channel("user.current", &["--user", "anna"]),
        json!({
            "username": "anna",
            "is_super_user": true,
            "employee": { "id": "2", "name": "Lars Haugen", "email": "lars.haugen@nordlyshandel.no" },
        })
    );
    let error = host.fails(&["user", "link-employee", "anna", "--employee", "999"]);
    assert!(
        error.contains("There is no employee with the number \u{201c}999\u{201d}"),
        "{error}"
    );

    assert!(host
        .ok(&["user", "unlink", "anna"])
        .contains("is no longer linked"));
    host.ok(&["user", "set-super", "anna", "off"]);
    assert_eq!(
        host.channel("user.current", &["--user", "anna"]),
        json!({ "username": "anna", "is_super_user": false, "employee": null })
    );

    assert!(host
        .ok(&["user", "remove", "anna"])
        .contains("Removed the user \u{201c}anna\u{201d}"));
    let error = host.fails(&["user", "remove", "anna"]);
    assert!(
        error.contains("There is no user \u{201c}anna\u{201d}"),
        "{error}"
    );
    let error = host.fails(&["user", "remove", "admin"]);
    assert!(error.contains("only super user"), "{error}");
    let error = host.fails(&["user", "set-super", "admin", "off"]);
    assert!(error.contains("only super user"), "{error}");
}

#[test]
fn employees_are_listed_added_and_their_e_mail_changed() {
    let host = Host::with_demo();
    let list = host.ok(&["employee", "list"]);
    assert!(list.contains("Ingrid Solberg"), "{list}");
    assert!(list.contains("Managing Director"), "{list}");

    let out = host.ok(&[
        "employee",
        "add",
        "--first-name",
        "Siri",
        "--last-name",
        "Dahl",
        "--title",
        "Accountant",
    ]);
    assert!(
        out.contains("Added the employee Siri Dahl (no. 3)"),
        "{out}"
    );

    let out = host.ok(&["employee", "set-email", "3", "siri.dahl@nordlyshandel.no"]);
    assert!(out.contains("is now siri.dahl@nordlyshandel.no"), "{out}");
    host.ok(&["user", "link-employee", "reception", "--employee", "3"]);
    assert_eq!(
        host.channel("user.current", &["--user", "reception"])["employee"]["email"],
        "siri.dahl@nordlyshandel.no"
    );

    let out = host.ok(&["employee", "set-email", "3", ""]);
    assert!(out.contains("was cleared"), "{out}");
    assert_eq!(
        host.channel("user.current", &["--user", "reception"])["employee"]["email"],
        json!(null)
    );

    let error = host.fails(&["employee", "set-email", "3", "siri"]);
    assert!(error.contains("is not an e-mail address"), "{error}");
    let list = host.ok(&["employee", "list", "--company", "Sample"]);
    assert!(list.contains("Ola Nordmann"), "{list}");
}

#[test]
fn computers_are_added_removed_and_the_system_database_moves() {
    let host = Host::with_demo();
    let out = host.ok(&["computer", "add", "LAPTOP-SIRI"]);
    assert!(
        out.contains("Added the computer \u{201c}LAPTOP-SIRI\u{201d}"),
        "{out}"
    );
    let error = host.fails(&["computer", "add", "laptop-siri"]);
    assert!(error.contains("already installed"), "{error}");

    let error = host.fails(&["computer", "remove", "OFFICE-SERVER"]);
    assert!(error.contains("holds the system database"), "{error}");

    let out = host.ok(&["computer", "set-system-db-holder", "laptop-s"]);
    assert!(
        out.contains("\u{201c}LAPTOP-SIRI\u{201d} now holds the system database."),
        "{out}"
    );
    let computers = host.channel("system.computers", &[])["computers"].clone();
    let holders: Vec<&str> = computers
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["holds_system_database"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(holders, ["LAPTOP-SIRI"]);
    // Without --computer the host runs on the computer with the system database.
    assert_eq!(
        host.channel("host.info", &[])["computer"]["name"],
        "LAPTOP-SIRI"
    );

    host.ok(&["computer", "remove", "OFFICE-SERVER"]);
    let list = host.ok(&["computer", "list"]);
    assert!(!list.contains("OFFICE-SERVER"), "{list}");
    assert!(list.contains("LAPTOP-LARS"), "{list}");

    let error = host.fails(&["computer", "remove", "LAPTOP"]);
    assert!(error.contains("matches more than one computer"), "{error}");
}

#[test]
fn sessions_show_up_for_the_other_users_only() {
    let host = Host::with_demo();
    assert!(host
        .ok(&["session", "list"])
        .contains("Nobody is logged in."));

    let out = host.ok(&["session", "login"]);
    assert!(out.contains("\u{201c}admin\u{201d} is now logged in to \u{201c}Nordlys Handel AS\u{201d} on \u{201c}OFFICE-SERVER\u{201d}."), "{out}");
    let out = host.ok(&[
        "session",
        "login",
        "--user",
        "lars",
        "--computer",
        "LAPTOP-LARS",
    ]);
    assert!(
        out.contains("\u{201c}lars\u{201d} is now logged in"),
        "{out}"
    );
    assert!(host
        .ok(&[
            "session",
            "login",
            "--user",
            "lars",
            "--computer",
            "LAPTOP-LARS"
        ])
        .contains("already logged in"));

    let list = host.ok(&["session", "list"]);
    assert!(list.contains("lars"), "{list}");
    assert!(list.contains("LAPTOP-LARS"), "{list}");

    assert_eq!(
        host.channel("sessions.active", &[]),
        json!({ "users": [{ "username": "lars", "computer": "LAPTOP-LARS" }], "integrations": [] })
    );
    assert_eq!(
        host.channel(
            "sessions.active",
            &["--user", "lars", "--computer", "LAPTOP-LARS"]
        ),
        json!({ "users": [{ "username": "admin", "computer": "OFFICE-SERVER" }], "integrations": [] })
    );

    let out = host.ok(&[
        "session",
        "logout",
        "--user",
        "lars",
        "--computer",
        "LAPTOP-LARS",
    ]);
    assert!(out.contains("is now logged out"), "{out}");
    assert!(host
        .ok(&[
            "session",
            "logout",
            "--user",
            "lars",
            "--computer",
            "LAPTOP-LARS"
        ])
        .contains("was not logged in"));
    assert_eq!(host.channel("sessions.active", &[])["users"], json!([]));

    let error = host.fails(&["session", "login", "--user", "nobody"]);
    assert!(
        error.contains("There is no user \u{201c}nobody\u{201d}"),
        "{error}"
    );
}

#[test]
fn integrations_log_in_and_out() {
    let host = Host::with_demo();
    let list = host.ok(&["integration", "list"]);
    assert!(
        list.contains("Webshop Connector  Nordlys Handel AS  no"),
        "{list}"
    );

    let out = host.ok(&["integration", "login", "Webshop Connector"]);
    assert!(out.contains("is now logged in to"), "{out}");
    assert_eq!(
        host.channel("sessions.active", &[])["integrations"],
        json!([{ "name": "Webshop Connector" }])
    );
    assert!(host
        .ok(&["integration", "login", "Webshop Connector"])
        .contains("was already logged in"));
    host.ok(&["integration", "logout", "Webshop Connector"]);
    assert_eq!(
        host.channel("sessions.active", &[])["integrations"],
        json!([])
    );

    host.ok(&[
        "integration",
        "add",
        "Payroll Export",
        "--company",
        "Sample",
    ]);
    host.ok(&[
        "integration",
        "login",
        "Payroll Export",
        "--company",
        "Sample",
    ]);
    assert_eq!(
        host.channel("sessions.active", &["--company", "Sample"])["integrations"],
        json!([{ "name": "Payroll Export" }])
    );
    let error = host.fails(&["integration", "login", "Payroll Export"]);
    assert!(
        error.contains("There is no API integration \u{201c}Payroll Export\u{201d}"),
        "{error}"
    );
    assert!(
        error.contains("Integrations of Nordlys Handel AS: Webshop Connector"),
        "{error}"
    );
}

#[test]
fn the_installation_can_be_an_evaluation_installation() {
    let host = Host::with_demo();
    assert_eq!(
        host.channel("host.info", &[])["evaluation_installation"],
        false
    );
    let out = host.ok(&["installation", "set-evaluation", "on"]);
    assert!(
        out.contains("This is now an evaluation installation."),
        "{out}"
    );
    assert_eq!(
        host.channel("host.info", &[])["evaluation_installation"],
        true
    );
    let show = host.ok(&["installation", "show"]);
    assert_eq!(field(&show, "Evaluation installation"), Some("yes"));
    host.ok(&["installation", "set-evaluation", "off"]);
    assert_eq!(
        host.channel("host.info", &[])["evaluation_installation"],
        false
    );
}

#[test]
fn the_channel_command_answers_with_the_host_context() {
    let host = Host::with_demo();
    let info = host.channel("host.info", &["--computer", "LAPTOP-LARS"]);
    assert_eq!(info["host_name"], "Host Simulator");
    assert_eq!(info["computer"]["name"], "LAPTOP-LARS");
    let companies = host.channel("system.companies", &[])["companies"].clone();
    assert_eq!(companies.as_array().unwrap().len(), 2);

    let output = host.run(&["channel", "no.such.method"]);
    assert_eq!(output.status.code(), Some(2));
    let error = host.fails(&["channel", "user.current", "--params", "{"]);
    assert!(error.contains("--params is not valid JSON"), "{error}");
}
