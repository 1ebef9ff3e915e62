//! `record`, `changes` and `checksum`: changing data from the command line
//! shows up in the change log and in the data channel.

mod common;

use common::{field, Host};
use serde_json::json;

#[test]
fn record_commands_change_data_and_the_log_shows_it() {
    let host = Host::with_demo();
    let out = host.ok(&["changes"]);
    assert!(out.contains("has no entries after 0"), "{out}");

    let out = host.ok(&[
        "record",
        "add",
        "contacts",
        "--set",
        "name=Fjord Fisk AS",
        "--set",
        "city=Bergen",
        "--set",
        "is_supplier=yes",
    ]);
    assert!(out.starts_with("Added record "), "{out}");
    assert!(out.contains("Assigned number: "), "{out}");
    let id = out
        .trim_start_matches("Added record ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();

    host.ok(&[
        "record",
        "edit",
        "contacts",
        &id,
        "--set",
        "city=Tromsø",
        "--set",
        "phone=-",
    ]);
    let show = host.ok(&["record", "show", "contacts", &id]);
    assert_eq!(field(&show, "city"), Some("Tromsø"));
    assert_eq!(field(&show, "is_supplier"), Some("true"));
    assert_eq!(field(&show, "phone"), Some("-"));

    host.ok(&["record", "delete", "contacts", &id]);
    let out = host.ok(&["changes"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("Seq"), "{out}");
    assert!(
        lines[1].contains("contacts") && lines[1].contains("upsert") && lines[1].ends_with("host")
    );
    assert!(lines[3].contains("delete"), "{out}");
    assert_eq!(field(&out, "Newest position"), Some("3"));
    let out = host.ok(&["changes", "--after", "2"]);
    assert_eq!(out.lines().count(), 3, "{out}");

    let read = host.channel("changes.read", &["--params", r#"{"after": 0, "limit": 2}"#]);
    assert_eq!(read["last_seq"], 2);
    assert_eq!(read["changes"][1]["record"], json!(null));

    let list = host.ok(&["record", "list", "employees", "--limit", "2"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(list.contains("Ingrid"), "{list}");
}

#[test]
fn record_commands_explain_bad_input() {
    let host = Host::with_demo();
    let error = host.fails(&["record", "add", "ghosts"]);
    assert!(
        error.contains("There is no entity \u{201c}ghosts\u{201d}"),
        "{error}"
    );
    let error = host.fails(&["record", "edit", "contacts", "1", "--set", "colour=red"]);
    assert!(
        error.contains("Contacts have no field \u{201c}colour\u{201d}"),
        "{error}"
    );
    let error = host.fails(&[
        "record",
        "edit",
        "contacts",
        "1",
        "--set",
        "is_customer=maybe",
    ]);
    assert!(
        error.contains("not a valid value for is_customer"),
        "{error}"
    );
    let error = host.fails(&["record", "edit", "contacts", "1", "--set", "city"]);
    assert!(error.contains("is not FIELD=VALUE"), "{error}");
    let error = host.fails(&[
        "record",
        "add",
        "contact_persons",
        "--set",
        "first_name=Kari",
    ]);
    assert!(
        error.contains("needs a value for \u{201c}contact_id\u{201d}"),
        "{error}"
    );
    let error = host.fails(&["record", "show", "contacts", "99999"]);
    assert!(
        error.contains("There is no record with the local id"),
        "{error}"
    );
    let error = host.fails(&["record", "delete", "contacts", "99999"]);
    assert!(error.contains("99999"), "{error}");
    assert!(host.ok(&["changes"]).contains("no entries"));
}

#[test]
fn a_block_is_shown_and_stops_record_changes() {
    let host = Host::with_demo();
    host.channel(
        "sync.block",
        &["--params", r#"{"reason": "First synchronisation"}"#],
    );
    let show = host.ok(&["company", "show"]);
    let block = field(&show, "Use of the program").unwrap();
    assert!(
        block.starts_with("blocked by Online Desktop since "),
        "{block}"
    );
    assert!(block.ends_with(": First synchronisation"), "{block}");
    let error = host.fails(&["record", "edit", "contacts", "1", "--set", "city=Oslo"]);
    assert!(error.contains("blocked by Online Desktop"), "{error}");
    host.ok(&[
        "record",
        "edit",
        "contacts",
        "1",
        "--set",
        "city=Oslo",
        "--ignore-block",
    ]);
    host.channel("sync.unblock", &[]);
    let show = host.ok(&["company", "show"]);
    assert_eq!(field(&show, "Use of the program"), Some("not blocked"));
    host.ok(&["record", "edit", "contacts", "1", "--set", "city=Oslo"]);
}

#[test]
fn checksum_changes_with_the_data_and_only_there() {
    let host = Host::with_demo();
    let before = host.ok(&["checksum"]);
    assert!(before.contains("sales_lines"), "{before}");
    assert_eq!(host.ok(&["checksum"]), before);
    host.ok(&["record", "edit", "contacts", "1", "--set", "city=Alta"]);
    let after = host.ok(&["checksum"]);
    let row = |text: &str, entity: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{entity} ")))
            .unwrap()
            .to_owned()
    };
    assert_ne!(row(&before, "contacts"), row(&after, "contacts"));
    assert_eq!(row(&before, "products"), row(&after, "products"));
    let one = host.ok(&["checksum", "--entity", "products"]);
    assert_eq!(one.lines().count(), 3, "{one}");
}
