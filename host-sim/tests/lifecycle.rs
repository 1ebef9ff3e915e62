//! `host-sim lifecycle`: the real plugin loaded, used and unloaded 100
//! times in one process, with the real online service running, leaves no
//! thread behind and does not grow memory (docs/ARCHITECTURE.md,
//! "Lifecycle").

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `online-desktop serve` on a free loopback port, built into the same
/// folder as `host-sim`; stopped when dropped.
struct Service {
    child: Child,
    url: String,
    /// Removed after the service is stopped (fields drop after `drop`).
    _dir: tempfile::TempDir,
}

impl Service {
    fn start() -> Service {
        let exe = Path::new(env!("CARGO_BIN_EXE_host-sim"))
            .with_file_name(format!("online-desktop{}", std::env::consts::EXE_SUFFIX));
        assert!(
            exe.is_file(),
            "The online service {} is not built. Run `cargo build --workspace` (or `cargo test \
             --workspace`) first: `cargo test -p host-sim` alone does not build it.",
            exe.display()
        );
        // Its database and mails stay in a folder of its own.
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut child = Command::new(&exe)
            .args(["serve", "--addr", "127.0.0.1:0", "--database"])
            .arg(dir.path().join("online.db"))
            .arg("--outbox")
            .arg(dir.path().join("outbox"))
            .current_dir(dir.path())
            .env_remove("OD_ONLINE_ADDR")
            .env_remove("OD_ONLINE_PUBLIC_URL")
            .env_remove("OD_SMTP_URL")
            .env_remove("OD_TLS_CERT")
            .env_remove("OD_TLS_KEY")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdout = child.stdout.take().expect("the service's stdout");
        let stderr = child.stderr.take().expect("the service's stderr");
        let mut service = Service {
            child,
            url: String::new(),
            _dir: dir,
        };
        let (first_line, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_line.send(lines.next().and_then(Result::ok));
            // Keep reading so the service never blocks on a full pipe.
            for _ in lines {}
        });
        // What the service says on standard error, for the message below.
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let line = match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(line)) => line,
            other => {
                let status = service.child.kill().and_then(|_| service.child.wait());
                let errors = errors.join().unwrap_or_default();
                panic!(
                    "the online service {} did not say where it listens ({other:?}; {status:?}).\n\
                     Its standard error:\n{errors}\nRebuild it with `cargo build --workspace`.",
                    exe.display()
                )
            }
        };
        let url = line
            .strip_prefix("Online Desktop service listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the service: {line:?}"));
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        service.url = url.to_owned();
        service
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The plugin cargo built for this test run: `deps/` first, where the
/// dev-dependency puts it (the copy beside host-sim may be older).
fn plugin_library() -> PathBuf {
    let file = format!(
        "{}online_desktop{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let profile = Path::new(env!("CARGO_BIN_EXE_host-sim")).parent().unwrap();
    let candidates = [profile.join("deps").join(&file), profile.join(&file)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "The Online Desktop add-on is not built (looked for {candidates:?}). Run \
                 `cargo build --workspace` or `cargo test --workspace`."
            )
        })
        .clone()
}

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
