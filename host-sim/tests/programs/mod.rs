//! What the host simulator's end-to-end tests share: where the built
//! programs are, and the real online service on a loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

// ---------------------------------------------------------------------------
// Where the built programs are.

pub fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// The online service, built from `od-online` into the same folder as
/// `host-sim`.
pub fn service_exe() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_host-sim")).with_file_name(exe_name("online-desktop"));
    assert!(
        path.is_file(),
        "The online service {} is not built. Run `cargo build --workspace` (or `cargo test \
         --workspace`) first: `cargo test -p host-sim` alone does not build it.",
        path.display()
    );
    path
}

/// The plugin library cargo built for this test run. As a dev-dependency
/// of host-sim its cdylib lands in `target/<profile>/deps/`; cargo copies
/// it up to `target/<profile>/` only when the plugin is built as a
/// workspace member, so the copy there may be older. Hence `deps/` first.
pub fn plugin_library() -> PathBuf {
    let file = format!(
        "{}online_desktop{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let profile = Path::new(env!("CARGO_BIN_EXE_host-sim"))
        .parent()
        .expect("host-sim is in a folder");
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

// ---------------------------------------------------------------------------
// The online service.

/// `online-desktop serve` on a free loopback port; stopped when dropped.
pub struct Service {
    child: Child,
    pub url: String,
    /// Removed after the service is stopped (fields drop after `drop`).
    _dir: tempfile::TempDir,
}

impl Service {
    pub fn start() -> Service {
        let exe = service_exe();
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
        // From here on the guard stops the service, whatever fails.
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
        service.assert_healthy();
        service
    }

    pub fn addr(&self) -> SocketAddr {
        self.url
            .trim_start_matches("http://")
            .parse()
            .expect("the service's address")
    }

    /// `GET /api/v1/health` answers 200 with status ok.
    pub fn assert_healthy(&self) {
        let timeout = Duration::from_secs(30);
        let mut stream =
            TcpStream::connect_timeout(&self.addr(), timeout).expect("connect to the service");
        stream.set_read_timeout(Some(timeout)).unwrap();
        stream.set_write_timeout(Some(timeout)).unwrap();
        stream
            .write_all(
                b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            )
            .expect("send the health request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("read the health answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""status":"ok""#), "{answer}");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service for the tests of this file that run at the same time: it
/// takes a while to start (it prepares its password hashing), and the
/// tests only need its health check. Stopped when the last test using it
/// ends; started again for a test that comes later.
#[allow(dead_code)] // not every test file shares its service
pub fn shared_service() -> Arc<Service> {
    static SHARED: Mutex<Weak<Service>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(service) = shared.upgrade() {
        return service;
    }
    let service = Arc::new(Service::start());
    *shared = Arc::downgrade(&service);
    service
}
