//! `host-sim lifecycle`: the real plugin loaded, used and unloaded 100
//! times in one process, with the real online service running, leaves no
//! thread behind and does not grow memory (docs/ARCHITECTURE.md,
//! "Lifecycle").

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

mod programs;
use programs::{plugin_library, Service};

fn host_sim(data_dir: &Path, service: &Service, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_host-sim"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("OD_HOST_DATA")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1")
        .env("OD_PLUGIN_PATH", plugin_library())
        .env("OD_SERVICE_URL", &service.url)
        .stdin(Stdio::null())
        .output()
        .expect("host-sim runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn loading_and_unloading_100_times_leaves_nothing_behind() {
    let service = Service::start();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let data = dir.path().join("data");
    let (code, out, err) = host_sim(
        &data,
        &service,
        &["init", "--records", "60", "--as-of", "2026-03-31"],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    // A licensed company, so every cycle runs the whole licence check.
    let licence = dir.path().join("nordlys.licence");
    let licence = licence.to_str().unwrap();
    for args in [
        &["licence", "issue", "--out", licence][..],
        &["licence", "add", licence],
        &["licence", "bind", "--company", "nordlys"],
    ] {
        let (code, out, err) = host_sim(&data, &service, args);
        assert_eq!(code, Some(0), "{args:?}\n{out}\n{err}");
    }

    let start = Instant::now();
    let (code, out, err) = host_sim(&data, &service, &["lifecycle", "--cycles", "100"]);
    let took = start.elapsed();
    eprintln!(
        "host-sim lifecycle --cycles 100: {:.1} s",
        took.as_secs_f64()
    );
    let report = format!("exit {code:?}\n--- stdout:\n{out}\n--- stderr:\n{err}");
    assert_eq!(code, Some(0), "{report}");
    assert!(err.is_empty(), "{report}");
    let has_line = |line: &str| out.lines().any(|l| l.trim() == line);
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.starts_with("Loading and unloading ") && l.ends_with(" 100 times …")),
        "{report}"
    );
    assert!(has_line("100 cycles done"), "{report}");

    // "Threads before: N, after: M" with M <= N.
    let threads = out
        .lines()
        .find_map(|l| l.strip_prefix("Threads before: "))
        .unwrap_or_else(|| panic!("no thread count\n{report}"));
    let (before, after) = threads
        .split_once(", after: ")
        .unwrap_or_else(|| panic!("{report}"));
    let before: usize = before.parse().unwrap_or_else(|_| panic!("{report}"));
    let after: usize = after.parse().unwrap_or_else(|_| panic!("{report}"));
    assert!(after <= before, "threads were left running\n{report}");

    if cfg!(target_os = "linux") {
        assert!(
            out.lines().any(
                |l| l.starts_with("Resident memory after 10 warm-up cycles: ")
                    && l.contains("(growth ")
            ),
            "{report}"
        );
    }
    assert!(
        has_line("Lifecycle check passed: no thread left, memory did not grow."),
        "{report}"
    );
}
