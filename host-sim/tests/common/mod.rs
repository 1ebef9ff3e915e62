//! Runs the built `host-sim` binary against a data directory in a
//! temporary folder.

#![allow(dead_code)] // Each test file uses a different part of this.

pub mod sync;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A data directory and the commands run against it.
pub struct Host {
    dir: tempfile::TempDir,
}

/// Fixed so that the demo data, and so the tests, never depend on the day.
pub const AS_OF: &str = "2026-03-31";

impl Host {
    /// An empty data directory.
    pub fn empty() -> Host {
        Host {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    /// A data directory with a small demo installation.
    pub fn with_demo() -> Host {
        let host = Host::empty();
        host.ok(&["init", "--records", "60", "--seed", "5", "--as-of", AS_OF]);
        host
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env_remove("OD_HOST_DATA")
            .output()
            .expect("host-sim runs")
    }

    /// Runs a command that must succeed; returns what it printed.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "host-sim {args:?} failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status.code()
        );
        stdout
    }

    /// Runs a command that must fail with exit code 1; returns its error
    /// message.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(1),
            "host-sim {args:?} should fail\nstdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(stderr.starts_with("Error: "), "{stderr}");
        stderr
    }

    /// What the plugin would get from the data channel (as admin, in the
    /// demo company, on the server, unless `args` say otherwise).
    pub fn channel(&self, method: &str, args: &[&str]) -> Value {
        let mut all = vec!["channel", method];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("channel answers JSON")
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("file can be read")
}

/// The value printed after `label:` on some line of `output` (the layout's
/// spacing does not matter).
pub fn field<'a>(output: &'a str, label: &str) -> Option<&'a str> {
    let prefix = format!("{label}:");
    output
        .lines()
        .map(str::trim_start)
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(str::trim)
}
