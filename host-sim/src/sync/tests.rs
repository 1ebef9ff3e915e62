//! Change tracking and the synchronisation channel methods, against a demo
//! installation made by `init`.

use std::time::Instant;

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::data::{self, Change, Op, Writer};
use crate::channel::{handle, ChannelError, HostContext};
use crate::db::company::CompanyDb;
use crate::demo::{self, InitOptions};
use crate::installation::Installation;

struct Fixture {
    dir: tempfile::TempDir,
    installation: Installation,
}

impl Fixture {
    fn new(records: u64) -> Fixture {
        let dir = tempfile::tempdir().expect("temporary folder");
        let options = InitOptions {
            records,
            seed: 3,
            force: false,
            as_of: NaiveDate::from_ymd_opt(2026, 3, 31).expect("date"),
        };
        let (installation, _) = demo::init(dir.path(), &options).expect("init");
        Fixture { dir, installation }
    }

    fn context(&self) -> HostContext {
        HostContext {
            data_dir: self.dir.path().to_path_buf(),
            company_id: self
                .installation
                .find_company(demo::DEMO_COMPANY)
                .unwrap()
                .id,
            username: "admin".into(),
            computer_id: self
                .installation
                .find_computer(demo::SERVER_COMPUTER)
                .unwrap()
                .id,
        }
    }

    fn db(&self) -> CompanyDb {
        let company = self.installation.find_company(demo::DEMO_COMPANY).unwrap();
        self.installation.open_company_db(&company).unwrap()
    }

    fn ask(&self, method: &str, params: Value) -> Value {
        handle(&self.context(), method, &params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    fn refused(&self, method: &str, params: Value) -> String {
        handle(&self.context(), method, &params)
            .expect_err(method)
            .to_string()
    }

    fn log(&self) -> Vec<(String, i64, String, String)> {
        let db = self.db();
        let mut stmt = db
            .connection()
            .prepare("SELECT entity, local_id, op, origin FROM change_log ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

fn entry(entity: &str, id: i64, op: &str, origin: &str) -> (String, i64, String, String) {
    (entity.into(), id, op.into(), origin.into())
}

#[test]
fn init_logs_nothing_and_every_write_is_logged_once() {
    let fixture = Fixture::new(200);
    assert!(fixture.log().is_empty());
    assert_eq!(
        fixture.ask("changes.position", json!({})),
        json!({"seq": 0})
    );
    let db = fixture.db();
    let conn = db.connection();
    conn.execute(
        "INSERT INTO contacts (number, name, created_on) VALUES (9001, 'Ny AS', '2026-04-01')",
        [],
    )
    .unwrap();
    let id = conn.last_insert_rowid();
    conn.execute("UPDATE contacts SET city = 'Bergen' WHERE id = ?1", [id])
        .unwrap();
    conn.execute("DELETE FROM contacts WHERE id = ?1", [id])
        .unwrap();
    assert_eq!(
        fixture.log(),
        [
            entry("contacts", id, "upsert", "host"),
            entry("contacts", id, "upsert", "host"),
            entry("contacts", id, "delete", "host"),
        ]
    );
    assert_eq!(
        fixture.ask("changes.position", json!({})),
        json!({"seq": 3})
    );
}

#[test]
fn changes_read_gives_current_records_in_batches() {
    let fixture = Fixture::new(200);
    let mut db = fixture.db();
    let applied = data::apply(
        db.connection_mut(),
        Writer::Host,
        &[Change {
            entity: "contacts".into(),
            local_id: Some(1),
            global_id: None,
            op: Op::Upsert,
            fields: json!({"city": "Tromsø"}).as_object().unwrap().clone(),
        }],
    )
    .unwrap();
    assert_eq!(applied[0].local_id, 1);
    db.connection()
        .execute("DELETE FROM sales_lines WHERE id = 1", [])
        .unwrap();

    let answer = fixture.ask("changes.read", json!({"after": 0, "limit": 1}));
    assert_eq!(answer["last_seq"], 1);
    let changes = answer["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    let change = &changes[0];
    assert_eq!(
        (
            &change["seq"],
            &change["entity"],
            &change["local_id"],
            &change["op"],
            &change["origin"]
        ),
        (
            &json!(1),
            &json!("contacts"),
            &json!(1),
            &json!("upsert"),
            &json!("host")
        )
    );
    assert_eq!(change["record"]["city"], "Tromsø");
    assert!(change["record"]["number"].as_i64().is_some());

    let answer = fixture.ask("changes.read", json!({"after": 1}));
    assert_eq!(answer["last_seq"], 2);
    assert_eq!(answer["changes"][0]["op"], "delete");
    assert_eq!(answer["changes"][0]["record"], Value::Null);
    let answer = fixture.ask("changes.read", json!({"after": 2}));
    assert_eq!(answer, json!({"changes": [], "last_seq": 2}));

    assert!(fixture
        .refused("changes.read", json!({"after": "x"}))
        .contains("changes.read: \u{201c}after\u{201d} must be an integer"));
    assert!(fixture
        .refused("changes.read", json!({"limit": 0}))
        .contains("at least 1"));
}

#[test]
fn apply_is_logged_as_online_and_returns_host_numbers() {
    let fixture = Fixture::new(200);
    let before = fixture.db().connection().query_row(
        "SELECT MAX(number) FROM sales_documents WHERE kind = 'invoice'",
        [],
        |r| r.get::<_, i64>(0),
    );
    let answer = fixture.ask(
        "records.apply",
        json!({"changes": [
            {"entity": "contacts", "local_id": null, "op": "upsert",
             "fields": {"name": "Fjord Fisk AS", "is_customer": true}},
            {"entity": "sales_documents", "local_id": null, "op": "upsert",
             "fields": {"kind": "invoice", "contact_id": 1, "document_date": "2026-04-02",
                        "status": "open", "total_cents": 125000}},
            {"entity": "contacts", "local_id": 2, "op": "upsert", "fields": {"phone": null}},
            {"entity": "activities", "local_id": 1, "op": "delete"},
        ]}),
    );
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let contact_id = results[0]["local_id"].as_i64().unwrap();
    let assigned = &results[0]["assigned"];
    assert!(assigned["number"].as_i64().unwrap() > 0);
    assert!(assigned["created_on"].as_str().unwrap().len() == 10);
    assert_eq!(
        results[1]["assigned"]["number"].as_i64().unwrap(),
        before.unwrap() + 1
    );
    assert_eq!(
        results[2],
        json!({"local_id": 2, "assigned": {}, "outcome": "applied"})
    );
    assert_eq!(
        results[3],
        json!({"local_id": 1, "assigned": {}, "outcome": "applied"})
    );
    let log = fixture.log();
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|(_, _, _, origin)| origin == "online"));
    assert_eq!(log[0], entry("contacts", contact_id, "upsert", "online"));
    assert_eq!(log[3], entry("activities", 1, "delete", "online"));
    // The origin marker does not outlive the apply.
    fixture
        .db()
        .connection()
        .execute("UPDATE contacts SET city = 'Bodø' WHERE id = 2", [])
        .unwrap();
    assert_eq!(fixture.log()[4], entry("contacts", 2, "upsert", "host"));
    // Deleting what is already gone is no error (repeated delivery).
    fixture.ask(
        "records.apply",
        json!({"changes": [{"entity": "activities", "local_id": 1, "op": "delete"}]}),
    );
}

#[test]
fn one_bad_change_applies_nothing() {
    let fixture = Fixture::new(200);
    let bad = [
        (
            json!({"entity": "products", "local_id": 1, "op": "upsert", "fields": {"name": "X"}}),
            "maintained in the host only",
        ),
        (
            json!({"entity": "contacts", "local_id": 1, "op": "upsert", "fields": {"number": 5}}),
            "\u{201c}number\u{201d} of contacts is maintained in the host only",
        ),
        (
            json!({"entity": "contacts", "local_id": 1, "op": "upsert", "fields": {"colour": "red"}}),
            "have no field \u{201c}colour\u{201d}",
        ),
        (
            json!({"entity": "contacts", "local_id": 1, "op": "upsert", "fields": {"name": 5}}),
            "\u{201c}name\u{201d} must be text",
        ),
        (
            json!({"entity": "contacts", "local_id": 1, "op": "upsert", "fields": {"name": null}}),
            "cannot be empty",
        ),
        (
            json!({"entity": "activities", "local_id": 1, "op": "upsert", "fields": {"date": "2026-02-30"}}),
            "a date (YYYY-MM-DD)",
        ),
        (
            json!({"entity": "activities", "local_id": 1, "op": "upsert", "fields": {"kind": "party"}}),
            "one of call, meeting",
        ),
        (
            json!({"entity": "activities", "local_id": 1, "op": "upsert", "fields": {"contact_id": 999999}}),
            "which does not exist",
        ),
        (
            json!({"entity": "contacts", "local_id": 999999, "op": "upsert", "fields": {"city": "Oslo"}}),
            "no record 999999 in contacts",
        ),
        (
            json!({"entity": "contact_persons", "local_id": null, "op": "upsert", "fields": {"first_name": "Kari"}}),
            "needs a value for \u{201c}contact_id\u{201d}",
        ),
        (
            json!({"entity": "ghosts", "local_id": 1, "op": "delete"}),
            "no entity \u{201c}ghosts\u{201d}",
        ),
    ];
    for (change, expected) in bad {
        let message = fixture.refused(
            "records.apply",
            json!({"changes": [
                {"entity": "contacts", "local_id": 3, "op": "upsert", "fields": {"city": "Narvik"}},
                change,
            ]}),
        );
        assert!(
            message.contains(expected),
            "{message} (expected {expected})"
        );
        assert!(message.starts_with("Change 2 ("), "{message}");
        assert!(message.contains("no change was applied"), "{message}");
        assert!(fixture.log().is_empty(), "{message}");
    }
    assert_ne!(
        fixture.ask(
            "records.page",
            json!({"entity": "contacts", "after_local_id": 2, "limit": 1})
        )["records"][0]["fields"]["city"],
        "Narvik"
    );
    assert!(fixture
        .refused(
            "records.apply",
            json!({"changes": [{"entity": "contacts"}]})
        )
        .contains("records.apply: change 1: \u{201c}op\u{201d} must be"));
    assert!(fixture
        .refused("records.apply", json!({}))
        .contains("\u{201c}changes\u{201d} must be a list"));
}

#[test]
fn pages_walk_every_row_in_key_order() {
    let fixture = Fixture::new(30_000);
    let count = fixture.ask("records.count", json!({"entity": "sales_lines"}))["count"]
        .as_u64()
        .unwrap();
    assert!(count > 5_000, "{count}");
    let mut after = Value::Null;
    let mut seen = 0u64;
    let mut last = 0;
    let mut slowest = std::time::Duration::ZERO;
    loop {
        let started = Instant::now();
        let page = fixture.ask(
            "records.page",
            json!({"entity": "sales_lines", "after_local_id": after, "limit": 1000}),
        );
        slowest = slowest.max(started.elapsed());
        let records = page["records"].as_array().unwrap();
        for record in records {
            let id = record["local_id"].as_i64().unwrap();
            assert!(id > last);
            last = id;
            assert!(record["fields"]["quantity"].is_i64());
        }
        seen += records.len() as u64;
        if page["done"] == true {
            break;
        }
        assert_eq!(records.len(), 1000);
        after = json!(last);
    }
    assert_eq!(seen, count);
    // Generous for debug builds on a busy machine; release is ~1 ms.
    assert!(slowest.as_millis() < 500, "{slowest:?}");
    let page = fixture.ask(
        "records.page",
        json!({"entity": "employees", "limit": 100000}),
    );
    assert_eq!(page["done"], true);
    assert_eq!(page["records"][0]["local_id"], 1);
    assert_eq!(page["records"][0]["fields"]["first_name"], "Ingrid");
    assert!(fixture
        .refused("records.count", json!({"entity": "ghosts"}))
        .contains("records.count: there is no entity \u{201c}ghosts\u{201d}"));
}

#[test]
fn reading_a_thousand_changes_is_fast() {
    let fixture = Fixture::new(5_000);
    let db = fixture.db();
    db.connection()
        .execute("UPDATE contacts SET city = 'Alta' WHERE id <= 500", [])
        .unwrap();
    db.connection()
        .execute("UPDATE activities SET done = 1 WHERE id <= 500", [])
        .unwrap();
    let started = Instant::now();
    let answer = fixture.ask("changes.read", json!({"after": 0, "limit": 1000}));
    let elapsed = started.elapsed();
    assert_eq!(answer["changes"].as_array().unwrap().len(), 1000);
    assert_eq!(answer["last_seq"], 1000);
    assert_eq!(answer["changes"][999]["record"]["done"], true);
    assert!(elapsed.as_millis() < 500, "{elapsed:?}");
}

#[test]
fn block_and_unblock_are_recorded_in_the_system_database() {
    let fixture = Fixture::new(100);
    let context = fixture.context();
    let answer = fixture.ask("sync.block", json!({"reason": "First synchronisation"}));
    assert_eq!(answer["blocked"], true);
    assert_eq!(answer["reason"], "First synchronisation");
    let block = fixture
        .installation
        .system()
        .company_block(&context.company_id)
        .unwrap()
        .unwrap();
    assert_eq!(block.reason, "First synchronisation");
    assert_eq!(
        fixture.ask("sync.unblock", json!({})),
        json!({"blocked": false})
    );
    assert!(fixture
        .installation
        .system()
        .company_block(&context.company_id)
        .unwrap()
        .is_none());
    assert!(matches!(
        handle(&context, "sync.block", &json!({})),
        Err(ChannelError::InvalidParams(_))
    ));
}

#[test]
fn a_database_without_tracking_gets_it_when_opened() {
    let fixture = Fixture::new(100);
    let company = fixture
        .installation
        .find_company(demo::DEMO_COMPANY)
        .unwrap();
    let path = fixture.installation.dir().company_db(&company.file);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let triggers: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(triggers.len(), 6 * super::schema::ENTITIES.len());
        for trigger in triggers {
            conn.execute_batch(&format!("DROP TRIGGER {trigger}"))
                .unwrap();
        }
        conn.execute_batch(
            "DROP TABLE change_log; DROP TABLE sync_apply_origin; PRAGMA user_version = 0;",
        )
        .unwrap();
    }
    let db = fixture.db();
    db.connection()
        .execute("UPDATE products SET name = 'Ny' WHERE id = 1", [])
        .unwrap();
    assert_eq!(fixture.log(), [entry("products", 1, "upsert", "host")]);
}

#[test]
fn typed_text_is_parsed_per_field_type() {
    let contacts = super::schema::entity("contacts").unwrap();
    let lines = super::schema::entity("sales_lines").unwrap();
    let parse =
        |e: &super::schema::Entity, f: &str, t: &str| data::parse_typed(e.field(f).unwrap(), t);
    assert_eq!(parse(lines, "unit_price_cents", "12.5"), Ok(json!(1250)));
    assert_eq!(parse(lines, "unit_price_cents", "-3"), Ok(json!(-300)));
    assert_eq!(parse(lines, "quantity", "1.25"), Ok(json!(1250)));
    assert!(parse(lines, "unit_price_cents", "1.234").is_err());
    assert!(parse(lines, "unit_price_cents", "abc").is_err());
    assert_eq!(parse(contacts, "is_supplier", "yes"), Ok(json!(true)));
    assert!(parse(contacts, "is_supplier", "maybe").is_err());
    assert_eq!(parse(contacts, "city", "-"), Ok(Value::Null));
    assert_eq!(parse(contacts, "our_employee_id", "2"), Ok(json!(2)));
}

/// Regression (G2): a create delivered again after the plugin crashed before
/// storing the new local id made a second record.
#[test]
fn a_create_delivered_twice_makes_one_record() {
    let fixture = Fixture::new(200);
    let before = fixture.ask("records.count", json!({"entity": "contacts"}))["count"].clone();
    let create = json!({"changes": [{"entity": "contacts", "local_id": null, "op": "upsert",
        "global_id": "6f1c3a52-0000-4000-8000-000000000001", "fields": {"name": "Fjellet AS"}}]});
    let first = fixture.ask("records.apply", create.clone());
    let again = fixture.ask("records.apply", create);
    assert_eq!(first, again, "the same record and the same assigned values");
    let after = fixture.ask("records.count", json!({"entity": "contacts"}))["count"].clone();
    assert_eq!(after.as_u64().unwrap(), before.as_u64().unwrap() + 1);
    // Another global id is another record.
    let other = fixture.ask("records.apply", json!({"changes": [{"entity": "contacts", "local_id": null,
        "op": "upsert", "global_id": "6f1c3a52-0000-4000-8000-000000000002", "fields": {"name": "Dalen AS"}}]}));
    assert_ne!(
        other["results"][0]["local_id"],
        first["results"][0]["local_id"]
    );
}

fn position(fixture: &Fixture) -> i64 {
    fixture.ask("changes.position", json!({}))["seq"]
        .as_i64()
        .unwrap()
}

fn contact_field(fixture: &Fixture, id: i64, field: &str) -> Value {
    fixture.ask(
        "records.page",
        json!({"entity": "contacts", "after_local_id": id - 1, "limit": 1}),
    )["records"][0]["fields"][field]
        .clone()
}

/// The race of docs/SYNC_PROTOCOL.md §6: the host user edits a record after
/// the plugin checked for unpushed edits and before it applies an online
/// change to it. The guard, checked inside the apply's transaction, leaves
/// the host's edit alone.
#[test]
fn a_guarded_change_is_skipped_when_the_host_changed_the_row_after_the_position() {
    let fixture = Fixture::new(200);
    let db = fixture.db();
    let conn = db.connection();
    conn.execute("UPDATE contacts SET city = 'Pushed' WHERE id = 4", [])
        .unwrap();
    // The plugin has pushed up to here.
    let pushed = position(&fixture);
    conn.execute("UPDATE contacts SET name = 'Host edit' WHERE id = 3", [])
        .unwrap();
    conn.execute("DELETE FROM activities WHERE id = 2", [])
        .unwrap();
    let log_before = fixture.log().len();

    let answer = fixture.ask(
        "records.apply",
        json!({"changes": [
            {"entity": "contacts", "local_id": 3, "op": "upsert",
             "fields": {"name": "Web edit"}, "skip_if_host_changed_after": pushed},
            {"entity": "contacts", "local_id": 4, "op": "upsert",
             "fields": {"name": "Web edit 4"}, "skip_if_host_changed_after": pushed},
            {"entity": "activities", "local_id": 2, "op": "upsert",
             "fields": {"kind": "call"}, "skip_if_host_changed_after": pushed},
            {"entity": "contacts", "local_id": null, "op": "upsert",
             "fields": {"name": "Ny AS"}, "skip_if_host_changed_after": pushed},
        ]}),
    );
    let results = answer["results"].as_array().unwrap();
    let outcomes: Vec<&str> = results
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["skipped", "applied", "skipped", "applied"]);
    assert_eq!(results[0]["local_id"], 3);
    assert!(
        results[0]["reason"].as_str().unwrap().contains(&format!(
            "contacts 3 was changed in the program after position {pushed}"
        )),
        "{}",
        results[0]
    );
    // A host delete is a host change too: skipped, not refused as missing.
    assert_eq!(results[2]["local_id"], 2);
    assert_eq!(contact_field(&fixture, 3, "name"), json!("Host edit"));
    assert_eq!(contact_field(&fixture, 4, "name"), json!("Web edit 4"));
    let log = fixture.log();
    assert_eq!(
        log.len(),
        log_before + 2,
        "only the applied changes were logged"
    );
    assert!(log[log_before..].iter().all(|e| e.3 == "online"));

    // Once the host's edit is pushed (the guard passes it), the change applies;
    // the plugin's own applies (origin online) never hold a guard.
    let before = pushed;
    let pushed = position(&fixture);
    let answer = fixture.ask(
        "records.apply",
        json!({"changes": [
            {"entity": "contacts", "local_id": 3, "op": "upsert",
             "fields": {"name": "Web edit"}, "skip_if_host_changed_after": pushed},
            {"entity": "contacts", "local_id": 4, "op": "upsert",
             "fields": {"city": "Online"}, "skip_if_host_changed_after": before},
        ]}),
    );
    assert_eq!(answer["results"][0]["outcome"], "applied");
    assert_eq!(answer["results"][1]["outcome"], "applied");
    assert_eq!(contact_field(&fixture, 3, "name"), json!("Web edit"));

    assert!(fixture
        .refused(
            "records.apply",
            json!({"changes": [{"entity": "contacts", "local_id": 3, "op": "upsert",
                "fields": {}, "skip_if_host_changed_after": -1}]})
        )
        .contains("records.apply: change 1: \u{201c}skip_if_host_changed_after\u{201d} must be"));
}

/// docs/HOST_CHANNEL.md: with `per_change`, a change the host refuses is
/// answered as refused with the reason, and the others are applied.
#[test]
fn with_per_change_a_refused_change_leaves_the_others_applied() {
    let fixture = Fixture::new(200);
    let invoiced: i64 = fixture
        .db()
        .connection()
        .query_row("SELECT contact_id FROM sales_documents LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let answer = fixture.ask(
        "records.apply",
        json!({"per_change": true, "changes": [
            {"entity": "contacts", "local_id": 3, "op": "upsert", "fields": {"city": "Narvik"}},
            {"entity": "activities", "local_id": 1, "op": "upsert", "fields": {"kind": "party"}},
            {"entity": "contacts", "local_id": invoiced, "op": "delete"},
            {"entity": "contact_persons", "local_id": null, "op": "upsert", "fields": {"first_name": "Kari"}},
            {"entity": "contacts", "local_id": null, "op": "upsert", "fields": {"name": "Ny AS"}},
        ]}),
    );
    let results = answer["results"].as_array().unwrap();
    let outcomes: Vec<&str> = results
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["applied", "refused", "refused", "refused", "applied"]
    );
    assert!(results[1]["reason"]
        .as_str()
        .unwrap()
        .contains("one of call, meeting"));
    assert_eq!(results[1]["local_id"], 1);
    assert!(
        results[2]["reason"]
            .as_str()
            .unwrap()
            .contains("does not fit the rules of contacts"),
        "{}",
        results[2]
    );
    assert_eq!(results[3]["local_id"], Value::Null);
    assert!(results[3]["reason"]
        .as_str()
        .unwrap()
        .contains("needs a value for \u{201c}contact_id\u{201d}"));
    assert_eq!(contact_field(&fixture, 3, "city"), json!("Narvik"));
    assert!(!contact_field(&fixture, invoiced, "name").is_null());
    let log = fixture.log();
    assert_eq!(
        log.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["contacts", "contacts"],
        "only the applied changes left entries: {log:?}"
    );
    // Without it, one refused change still refuses the whole request.
    let message = fixture.refused(
        "records.apply",
        json!({"changes": [
            {"entity": "contacts", "local_id": 3, "op": "upsert", "fields": {"city": "Bodø"}},
            {"entity": "contacts", "local_id": invoiced, "op": "delete"},
        ]}),
    );
    assert!(message.starts_with("Change 2 ("), "{message}");
    assert_eq!(contact_field(&fixture, 3, "city"), json!("Narvik"));
    assert!(fixture
        .refused("records.apply", json!({"per_change": "yes", "changes": []}))
        .contains("\u{201c}per_change\u{201d} must be true or false"));
}

fn page_row(fixture: &Fixture, entity: &str, id: i64) -> Value {
    let page = fixture.ask(
        "records.page",
        json!({"entity": entity, "after_local_id": id - 1, "limit": 1}),
    );
    let row = page["records"][0].clone();
    assert_eq!(row["local_id"], id, "{page}");
    row
}

fn create_online(fixture: &Fixture, global_id: &str, name: &str) -> i64 {
    let answer = fixture.ask(
        "records.apply",
        json!({"changes": [{"entity": "contacts", "local_id": null, "op": "upsert",
            "global_id": global_id, "fields": {"name": name}}]}),
    );
    answer["results"][0]["local_id"].as_i64().unwrap()
}

#[test]
fn pages_tell_the_global_id_remembered_for_a_row_created_from_online() {
    let fixture = Fixture::new(200);
    const GLOBAL: &str = "0190a1b2-0000-7000-8000-000000000001";
    let id = create_online(&fixture, GLOBAL, "Fjellet AS");
    let row = page_row(&fixture, "contacts", id);
    assert_eq!(row["global_id"], GLOBAL);
    assert_eq!(row["fields"]["name"], "Fjellet AS");
    // A row the host made itself has none (the field is left out).
    let own = page_row(&fixture, "contacts", 1);
    assert!(own.get("global_id").is_none(), "{own}");
    // Every row of a whole page, once each: the join adds no rows.
    let page = fixture.ask("records.page", json!({"entity": "contacts", "limit": 5000}));
    let records = page["records"].as_array().unwrap();
    let remembered: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("global_id").is_some())
        .collect();
    assert_eq!(remembered.len(), 1);
    assert_eq!(
        records.len() as u64,
        fixture.ask("records.count", json!({"entity": "contacts"}))["count"]
            .as_u64()
            .unwrap()
    );
}

#[test]
fn a_deleted_row_takes_its_global_id_along_when_its_local_id_is_reused() {
    let fixture = Fixture::new(200);
    let count = || -> i64 {
        fixture
            .db()
            .connection()
            .query_row("SELECT COUNT(*) FROM sync_created", [], |r| r.get(0))
            .unwrap()
    };
    // The highest row: SQLite hands its rowid out again once it is deleted.
    let id = create_online(&fixture, "0190a1b2-0000-7000-8000-000000000002", "Borte AS");
    assert_eq!(count(), 1);
    fixture
        .db()
        .connection()
        .execute("DELETE FROM contacts WHERE id = ?1", [id])
        .unwrap();
    assert_eq!(count(), 0, "the delete trigger forgets the global id");
    let db = fixture.db();
    db.connection()
        .execute(
            "INSERT INTO contacts (number, name, created_on) VALUES (9001, 'Ny AS', '2026-04-01')",
            [],
        )
        .unwrap();
    assert_eq!(
        db.connection().last_insert_rowid(),
        id,
        "the local id is reused"
    );
    let row = page_row(&fixture, "contacts", id);
    assert_eq!(row["fields"]["name"], "Ny AS");
    assert!(row.get("global_id").is_none(), "{row}");

    // Deleted from online (records.apply) and by a cascade: forgotten too.
    let id = create_online(&fixture, "0190a1b2-0000-7000-8000-000000000003", "Dalen AS");
    fixture.ask(
        "records.apply",
        json!({"changes": [{"entity": "contacts", "local_id": id, "op": "delete"}]}),
    );
    assert_eq!(count(), 0);
    let parent = create_online(
        &fixture,
        "0190a1b2-0000-7000-8000-000000000006",
        "Foreldre AS",
    );
    let answer = fixture.ask(
        "records.apply",
        json!({"changes": [{"entity": "contact_persons", "local_id": null, "op": "upsert",
            "global_id": "0190a1b2-0000-7000-8000-000000000004",
            "fields": {"contact_id": parent, "first_name": "Kari", "last_name": "Nord"}}]}),
    );
    let person = answer["results"][0]["local_id"].as_i64().unwrap();
    assert_eq!(
        page_row(&fixture, "contact_persons", person)["global_id"],
        "0190a1b2-0000-7000-8000-000000000004"
    );
    assert_eq!(count(), 2);
    db.connection()
        .execute("DELETE FROM contacts WHERE id = ?1", [parent])
        .unwrap();
    assert_eq!(count(), 0);

    // A row that gets another id is gone under the old one.
    let id = create_online(&fixture, "0190a1b2-0000-7000-8000-000000000005", "Flytt AS");
    db.connection()
        .execute("UPDATE contacts SET id = ?1 WHERE id = ?2", [id + 100, id])
        .unwrap();
    assert_eq!(count(), 0);
    // The same create delivered again after the delete makes a new record.
    let again = create_online(&fixture, "0190a1b2-0000-7000-8000-000000000002", "Borte AS");
    assert_eq!(
        page_row(&fixture, "contacts", again)["global_id"],
        "0190a1b2-0000-7000-8000-000000000002"
    );
}

#[test]
fn the_page_looks_global_ids_up_by_index() {
    let fixture = Fixture::new(100);
    let db = fixture.db();
    for entity in super::schema::ENTITIES {
        let sql = data::page_remembered_sql(entity);
        let plan: Vec<String> = db
            .connection()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params![0, 1000], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("\n");
        assert!(
            plan.contains("sync_created_local"),
            "{}: {plan}",
            entity.name
        );
        assert!(!plan.contains("SCAN c"), "{}: {plan}", entity.name);
        assert!(!plan.contains("TEMP B-TREE"), "{}: {plan}", entity.name);
    }
}

#[test]
fn an_older_database_gets_the_index_and_loses_stale_global_ids_when_opened() {
    let fixture = Fixture::new(100);
    let company = fixture
        .installation
        .find_company(demo::DEMO_COMPANY)
        .unwrap();
    let path = fixture.installation.dir().company_db(&company.file);
    {
        // As version 2 left it: no index, no forgetting triggers, no marker
        // table, and entries for a deleted row and for a reused local id.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut sql = String::from(
            "DROP INDEX sync_created_local; DROP TABLE od_sync_marker; PRAGMA user_version = 2;",
        );
        for entity in super::schema::ENTITIES {
            let table = entity.table();
            sql.push_str(&format!(
                "DROP TRIGGER {table}_forget_created; DROP TRIGGER {table}_forget_created_rekey;"
            ));
        }
        sql.push_str(
            "INSERT INTO sync_created VALUES ('contacts', 'g-gone', 99999, '{}');
             INSERT INTO sync_created VALUES ('contacts', 'g-old', 3, '{}');
             INSERT INTO sync_created VALUES ('contacts', 'g-new', 3, '{}');
             INSERT INTO sync_created VALUES ('contacts', 'g-kept', 4, '{}');",
        );
        conn.execute_batch(&sql).unwrap();
    }
    let db = fixture.db();
    let kept: Vec<String> = db
        .connection()
        .prepare("SELECT global_id FROM sync_created ORDER BY global_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        kept,
        ["g-kept"],
        "which of two ids is current cannot be told"
    );
    let version: i64 = db
        .connection()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::tracking::TRACKING_VERSION);
    assert_eq!(page_row(&fixture, "contacts", 4)["global_id"], "g-kept");
    assert!(page_row(&fixture, "contacts", 3).get("global_id").is_none());
    assert_eq!(
        fixture.ask("sync.marker.get", json!({})),
        json!({"generation": null, "position": null})
    );
}

#[test]
fn the_marker_is_set_replaced_and_read_without_logging_a_change() {
    let fixture = Fixture::new(100);
    assert_eq!(
        fixture.ask("sync.marker.get", json!({})),
        json!({"generation": null, "position": null})
    );
    fixture.ask(
        "records.apply",
        json!({"changes": [{"entity": "contacts", "local_id": 3, "op": "upsert", "fields": {"city": "Tromsø"}}]}),
    );
    assert_eq!(position(&fixture), 1);
    const FIRST: &str = "0190a1b2-0000-7000-8000-0000000000a1";
    let set = fixture.ask("sync.marker.set", json!({"generation": FIRST}));
    assert_eq!(set, json!({"generation": FIRST, "position": 1}));
    assert_eq!(fixture.ask("sync.marker.get", json!({})), set);
    assert_eq!(position(&fixture), 1, "the marker is not change-logged");
    assert_eq!(fixture.log().len(), 1);

    fixture
        .db()
        .connection()
        .execute("UPDATE contacts SET city = 'Alta' WHERE id = 4", [])
        .unwrap();
    let second = fixture.ask("sync.marker.set", json!({"generation": "second"}));
    assert_eq!(second, json!({"generation": "second", "position": 2}));
    assert_eq!(fixture.ask("sync.marker.get", json!({})), second);
    let (rows, written_at): (i64, String) = fixture
        .db()
        .connection()
        .query_row(
            "SELECT COUNT(*), MAX(written_at) FROM od_sync_marker",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, 1, "one row, replaced");
    assert!(
        written_at.ends_with('Z') && written_at.contains('T'),
        "{written_at}"
    );
    assert_eq!(fixture.log().len(), 2);

    // 100 characters (not bytes) are fine; bad input is refused by name.
    let longest = "ø".repeat(100);
    assert_eq!(
        fixture.ask("sync.marker.set", json!({"generation": longest}))["generation"],
        json!(longest)
    );
    for (params, message) in [
        (json!({}), "\u{201c}generation\u{201d} must be a text"),
        (
            json!({"generation": 7}),
            "\u{201c}generation\u{201d} must be a text",
        ),
        (json!({"generation": ""}), "must be a non-empty text"),
        (json!({"generation": "  "}), "must be a non-empty text"),
        (
            json!({"generation": "x".repeat(101)}),
            "at most 100 characters (got 101)",
        ),
        (json!({"generation": "a\nb"}), "control characters"),
    ] {
        let refused = fixture.refused("sync.marker.set", params.clone());
        assert!(
            refused.starts_with("sync.marker.set: ") && refused.contains(message),
            "{params}: {refused}"
        );
    }
    assert_eq!(
        fixture.ask("sync.marker.get", json!({}))["generation"],
        json!(longest),
        "a refused set changes nothing"
    );
}
