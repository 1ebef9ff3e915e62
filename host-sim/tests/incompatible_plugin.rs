//! The host refuses a plugin built for another ABI with a clear message,
//! and never crashes. The incompatible plugins are small C libraries built
//! by the test.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn build_plugin(dir: &Path, mode: u32) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.join(format!("libincompatible{mode}.so"));
    let status = Command::new("cc")
        .args([
            "-std=c11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
        ])
        .arg(format!("-DMODE={mode}"))
        .arg("-I")
        .arg(root.join("../include"))
        .arg(root.join("tests/fixtures/incompatible_plugin.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("cc runs");
    assert!(status.success(), "the fixture plugin must compile");
    out
}

fn connect_with(plugin: &Path, data: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--data-dir")
        .arg(data)
        .arg("--plugin")
        .arg(plugin)
        .arg("connect")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn a_plugin_for_another_abi_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--data-dir")
        .arg(&data)
        .args(["init", "--records", "20"])
        .output()
        .unwrap();
    assert!(init.status.success());

    let refusing = build_plugin(dir.path(), 1);
    let (code, text) = connect_with(&refusing, &data);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("is not compatible with this program"),
        "{text}"
    );
    assert!(
        text.contains("implements ABI 2.0, but the program expects ABI 1.0"),
        "{text}"
    );
    assert!(
        text.contains("Install the add-on version made for this program"),
        "{text}"
    );

    let newer_table = build_plugin(dir.path(), 2);
    let (code, text) = connect_with(&newer_table, &data);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("it implements ABI 2.0, this program needs 1.0"),
        "{text}"
    );
}

#[test]
fn an_add_on_of_abi_1_0_is_refused_for_synchronisation_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--data-dir")
        .arg(&data)
        .args(["init", "--records", "20"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let old = build_plugin(dir.path(), 3);
    for command in [&["sync", "status"][..], &["agent"], &["sync", "history"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--plugin")
            .arg(&old)
            .args(command)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{command:?}: {text}");
        assert!(
            text.contains("(version 1.0.0, ABI 1.0) is too old for synchronisation"),
            "{command:?}: {text}"
        );
    }
}
