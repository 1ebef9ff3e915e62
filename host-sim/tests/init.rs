//! `host-sim init` and the data directory.

mod common;

use common::{Host, AS_OF};
use std::process::Command;

#[test]
fn init_creates_the_demo_installation_and_prints_a_summary() {
    let host = Host::empty();
    let out = host.ok(&["init", "--records", "1000", "--seed", "9", "--as-of", AS_OF]);
    assert!(out.contains("Created the demo installation in"), "{out}");
    assert!(out.contains("Nordlys Handel AS: 1000 records in"), "{out}");
    assert!(
        out.contains("Sample Company (sample database): 200 records"),
        "{out}"
    );
    for (table, count) in [
        ("contacts", "100"),
        ("contact_persons", "150"),
        ("products", "50"),
        ("activities", "200"),
        ("sales_documents", "100"),
    ] {
        assert!(
            out.lines()
                .any(|line| line.split_whitespace().eq([table, count])),
            "missing {table} {count} in\n{out}"
        );
    }
    assert!(
        out.contains("System database: 3 users, 2 computers, 1 API integration."),
        "{out}"
    );
    assert!(out.contains("Done in "), "{out}");

    let data = host.data_dir();
    assert!(data.join("system.db").is_file());
    assert!(data.join("companies/nordlys-handel-as.db").is_file());
    assert!(data.join("companies/sample-company.db").is_file());

    let companies = host.ok(&["company", "list"]);
    assert_eq!(
        companies
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [
            "Name",
            "Id",
            "Sample",
            "Online",
            "Desktop",
            "registered",
            "Connected",
            "File"
        ]
    );
    assert!(companies.contains("Nordlys Handel AS"), "{companies}");
    assert!(companies.contains("Sample Company"), "{companies}");
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let host = Host::with_demo();
    let before = host.channel("company.identity", &[])["id"].clone();

    let error = host.fails(&["init", "--records", "20"]);
    assert!(error.contains("An installation already exists"), "{error}");
    assert!(error.contains("--force"), "{error}");
    assert_eq!(host.channel("company.identity", &[])["id"], before);

    host.ok(&["init", "--records", "20", "--force", "--as-of", AS_OF]);
    assert_ne!(host.channel("company.identity", &[])["id"], before);
}

#[test]
fn init_refuses_a_size_it_cannot_make() {
    let host = Host::empty();
    let error = host.fails(&["init", "--records", "5"]);
    assert!(error.contains("from 10 to 100000000 records"), "{error}");
    assert!(!host.data_dir().join("system.db").exists());
}

#[test]
fn commands_without_an_installation_say_how_to_make_one() {
    let host = Host::empty();
    let error = host.fails(&["company", "list"]);
    assert!(error.contains("No host installation was found"), "{error}");
    assert!(error.contains("host-sim init"), "{error}");
}

#[test]
fn the_data_directory_can_come_from_the_environment() {
    let host = Host::empty();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .args(args)
            .env("OD_HOST_DATA", host.data_dir())
            .output()
            .expect("host-sim runs")
    };
    assert!(run(&["init", "--records", "20"]).status.success());
    assert!(host.data_dir().join("system.db").is_file());
    let list = run(&["user", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("reception"));
}
