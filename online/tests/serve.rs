//! Starts the real service binary on a free loopback port and asks it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary, stopped (killed) when dropped.
struct Running {
    child: Child,
    url: String,
}

impl Running {
    fn start(folder: &Path, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_online-desktop"))
            .arg("serve")
            .args(args)
            .current_dir(folder)
            .env_remove("OD_ONLINE_ADDR")
            .env_remove("OD_SMTP_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start online-desktop");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("the first line");
        let url = first
            .trim()
            .strip_prefix("Online Desktop service listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Running { child, url }
    }

    fn addr(&self) -> String {
        self.url
            .rsplit("://")
            .next()
            .expect("an address")
            .to_owned()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn serve_prints_its_address_answers_health_and_creates_its_database() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let service = Running::start(folder.path(), &["--addr", "127.0.0.1:0"]);
    assert!(
        service.url.starts_with("http://127.0.0.1:"),
        "{}",
        service.url
    );
    let answer = get(&service.addr(), "/api/v1/health");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    // No configuration: an embedded database and an outbox in ./online-data.
    assert!(folder.path().join("online-data/online.db").is_file());
    assert!(folder.path().join("online-data/outbox").is_dir());
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_service_gracefully() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let mut service = Running::start(folder.path(), &["--addr", "127.0.0.1:0"]);
    let status = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = service.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn serves_https_with_the_given_certificate() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let folder = tempfile::tempdir().expect("a temporary folder");
    let cert = fixtures.join("cert.pem");
    let key = fixtures.join("key.pem");
    let service = Running::start(
        folder.path(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().expect("a UTF-8 path"),
            "--tls-key",
            key.to_str().expect("a UTF-8 path"),
        ],
    );
    assert!(
        service.url.starts_with("https://127.0.0.1:"),
        "{}",
        service.url
    );

    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&cert).expect("the test certificate"))
        .expect("a trusted root");
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("a server name");
    let connection = ClientConnection::new(Arc::new(config), name).expect("a TLS client");
    let tcp = TcpStream::connect(service.addr()).expect("connect");
    let mut tls = StreamOwned::new(connection, tcp);
    write!(
        tls,
        "GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send over TLS");
    let mut answer = Vec::new();
    // A peer that closes without close_notify is an error in rustls; the
    // answer has arrived by then.
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{answer}"
    );

    // Plain HTTP to the HTTPS port gets nowhere.
    let mut plain = TcpStream::connect(service.addr()).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let _ = write!(plain, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(!answer.contains("\"status\":\"ok\""), "{answer}");
}

#[test]
fn a_missing_certificate_is_reported_before_listening() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let output = Command::new(env!("CARGO_BIN_EXE_online-desktop"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            "no-such-cert.pem",
            "--tls-key",
            "no-such-key.pem",
        ])
        .current_dir(folder.path())
        .output()
        .expect("run online-desktop");
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout: it never listened"
    );
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(errors.contains("no-such-cert.pem"), "{errors}");
}
