//! The restore generation marker (docs/SYNC_PROTOCOL.md §9.2) lives in the
//! company database: a backup carries it, and a restore brings the
//! backup's marker back — what lets the add-on see a restore that the
//! change-log position alone cannot.

mod common;

use common::Host;
use serde_json::json;

fn set(host: &Host, generation: &str) -> serde_json::Value {
    let params = json!({ "generation": generation }).to_string();
    host.channel("sync.marker.set", &["--params", &params])
}

#[test]
fn a_restored_backup_brings_its_marker_back() {
    let host = Host::with_demo();
    assert_eq!(
        host.channel("sync.marker.get", &[]),
        json!({"generation": null, "position": null})
    );
    host.ok(&["record", "add", "contacts", "--set", "name=Før Backup AS"]);
    let before = set(&host, "generation-before-the-backup");
    assert_eq!(
        before,
        json!({"generation": "generation-before-the-backup", "position": 1})
    );
    let backup = host.path("marker.backup");
    let backup = backup.to_str().unwrap();
    host.ok(&["company", "backup", "--out", backup]);

    host.ok(&["record", "add", "contacts", "--set", "name=Etter Backup AS"]);
    let after = set(&host, "generation-after-the-backup");
    assert_eq!(after["position"], 2);
    assert_eq!(host.channel("sync.marker.get", &[]), after);
    assert_eq!(
        host.channel("changes.position", &[]),
        json!({"seq": 2}),
        "writing the marker logs no change"
    );

    let out = host.ok(&["company", "restore", backup, "--force"]);
    assert!(out.contains("was restored"), "{out}");
    assert_eq!(host.channel("sync.marker.get", &[]), before);
    assert_eq!(host.channel("changes.position", &[]), json!({"seq": 1}));

    let err = host.fails(&[
        "channel",
        "sync.marker.set",
        "--params",
        r#"{"generation": ""}"#,
    ]);
    assert!(
        err.contains("sync.marker.set: \u{201c}generation\u{201d} must be a non-empty text"),
        "{err}"
    );
    assert_eq!(host.channel("sync.marker.get", &[]), before);
}
