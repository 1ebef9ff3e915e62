//! The real service for tests, in this process (cargo feature `testing`).
//!
//! [`TestServer::start`] runs the service on a free port of 127.0.0.1 in a
//! background thread with its own tokio runtime, a temporary folder for the
//! database and the outbox, cheap password hashing and a [`ManualClock`];
//! it stops when dropped. Other crates' tests use it as a dev-dependency:
//!
//! ```toml
//! [dev-dependencies]
//! od-online = { path = "../online", features = ["testing"] }
//! ```
//!
//! ```no_run
//! use od_online::testing::{TestServer, TEST_PASSWORD};
//!
//! let server = TestServer::start();
//! server.create_online_id("ann@example.com", TEST_PASSWORD);
//! let session = server.log_in("ann@example.com", TEST_PASSWORD);
//! let me = server.get("/api/v1/me").bearer(&session.token).send();
//! assert_eq!(me.status, 200);
//! ```
//!
//! Never enable this feature in a shipped build: it also turns on the
//! development licence signing key of od-licence.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::NaiveDate;
use od_licence::{Agreement, Licence, Tier, ADD_ON_ONLINE_DESKTOP};
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify};

use crate::clock::ManualClock;
use crate::config::Config;
use crate::model::CompanyDetails;
use crate::password::PasswordHashing;
use crate::secret::SecretString;
use crate::Service;

/// A password that passes the rules, for tests.
pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// How long the helpers wait for a mail or an answer.
const WAIT: Duration = Duration::from_secs(20);

// --- Log capture --------------------------------------------------------------

/// Everything the service logged (at debug level and above), as text.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self.0.clone())
    }
}

thread_local! {
    static LOG_GUARD: std::cell::RefCell<Option<tracing::dispatcher::DefaultGuard>> =
        const { std::cell::RefCell::new(None) };
}

// --- The server -----------------------------------------------------------------

type ConfigEdit = Box<dyn FnOnce(&mut Config) + Send>;

/// Configures a [`TestServer`] before it starts.
#[must_use]
pub struct TestServerBuilder {
    edits: Vec<ConfigEdit>,
    data_dir: Option<PathBuf>,
}

impl TestServerBuilder {
    /// Send mails through this SMTP server instead of the outbox.
    pub fn smtp_url(self, url: impl Into<String>) -> Self {
        let url = SecretString::new(url.into());
        self.configure(move |config| config.smtp_url = Some(url))
    }

    /// Change anything in the configuration (limits, public URL, ...).
    /// The defaults: everything in a temporary folder, no SMTP,
    /// [`PasswordHashing::FAST_FOR_TESTS`], the contract's limits, and a
    /// [`ManualClock`] at the current time.
    pub fn configure(mut self, edit: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Keep the database and outbox in `folder` (not deleted afterwards),
    /// e.g. to start on a database a test prepared.
    pub fn data_dir(mut self, folder: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(folder.into());
        self
    }

    /// Starts the service and waits until it listens. Panics when it cannot.
    pub fn start(self) -> TestServer {
        let (temporary, data_dir) = match self.data_dir {
            Some(folder) => (None, folder),
            None => {
                let folder = tempfile::Builder::new()
                    .prefix("od-online-test-")
                    .tempdir()
                    .expect("a temporary folder for the test server");
                let path = folder.path().to_owned();
                (Some(folder), path)
            }
        };
        let clock = Arc::new(ManualClock::starting_now());
        let mut config = Config::in_dir(&data_dir);
        config.password_hashing = PasswordHashing::FAST_FOR_TESTS;
        config.clock = clock.clone();
        for edit in self.edits {
            edit(&mut config);
        }
        let outbox = Outbox {
            folder: config.outbox.clone(),
        };

        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the listener's address");

        let logs = LogCapture::default();
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(logs.clone())
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .finish(),
        );
        let (ready_sender, ready) = mpsc::channel::<Result<String, String>>();
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("od-online-test-server".to_owned())
            .spawn(move || {
                serve_in_thread(config, listener, dispatch, ready_sender, shutdown_signal)
            })
            .expect("a thread for the test server");
        let base_url = match ready.recv_timeout(WAIT) {
            Ok(Ok(url)) => url,
            Ok(Err(error)) => panic!("the test server did not start: {error}"),
            Err(_) => panic!("the test server did not start within {WAIT:?}"),
        };
        TestServer {
            base_url,
            addr,
            outbox,
            clock,
            logs,
            data_dir,
            _temporary: temporary,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

fn serve_in_thread(
    config: Config,
    listener: std::net::TcpListener,
    dispatch: tracing::Dispatch,
    ready: mpsc::Sender<Result<String, String>>,
    shutdown: oneshot::Receiver<()>,
) {
    let _thread_logs = tracing::dispatcher::set_default(&dispatch);
    let for_workers = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            let guard = tracing::dispatcher::set_default(&for_workers);
            LOG_GUARD.with(|slot| *slot.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| LOG_GUARD.with(|slot| drop(slot.borrow_mut().take())))
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(format!("no tokio runtime: {error}")));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = ready.send(Err(error.to_string()));
                return;
            }
        };
        let service = match Service::new(config, listener).await {
            Ok(service) => service,
            Err(error) => {
                let _ = ready.send(Err(error.to_string()));
                return;
            }
        };
        let _ = ready.send(Ok(service.url().to_owned()));
        let stopping = Arc::new(Notify::new());
        let notify = stopping.clone();
        let serve = service.serve(async move {
            let _ = shutdown.await;
            notify.notify_one();
        });
        // Graceful shutdown waits for open connections; a client that keeps
        // one open must not hang the test, so give up after a few seconds.
        tokio::select! {
            result = serve => {
                if let Err(error) = result {
                    tracing::error!(%error, "the test server stopped with an error");
                }
            }
            _ = async {
                stopping.notified().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            } => tracing::warn!("the test server did not stop gracefully within 5 s"),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
}

/// The real service on 127.0.0.1, for tests. Stops when dropped.
pub struct TestServer {
    base_url: String,
    addr: SocketAddr,
    outbox: Outbox,
    clock: Arc<ManualClock>,
    logs: LogCapture,
    data_dir: PathBuf,
    _temporary: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A service with the test defaults (see [`TestServerBuilder::configure`]).
    pub fn start() -> TestServer {
        TestServer::builder().start()
    }

    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            edits: Vec::new(),
            data_dir: None,
        }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mails the service wrote (when no SMTP server is configured).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The service's clock: move it forward instead of sleeping.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Everything the service has logged so far.
    pub fn logs(&self) -> String {
        self.logs.contents()
    }

    /// The folder with the database (`online.db`) and the outbox.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A request to `path` (e.g. `/api/v1/me`).
    pub fn request(&self, method: &str, path: &str) -> TestRequest {
        TestRequest {
            addr: self.addr,
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn get(&self, path: &str) -> TestRequest {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str) -> TestRequest {
        self.request("POST", path)
    }

    pub fn patch(&self, path: &str) -> TestRequest {
        self.request("PATCH", path)
    }

    pub fn delete(&self, path: &str) -> TestRequest {
        self.request("DELETE", path)
    }

    // --- Shortcuts for setting up a test ----------------------------------------

    /// Signs up, follows the verification mail (outbox) and sets
    /// `password`. Panics if any step fails.
    pub fn create_online_id(&self, email: &str, password: &str) {
        let before = self.outbox.mails_to(email).len();
        let answer = self
            .post("/api/v1/accounts")
            .json(&json!({ "email": email }))
            .send();
        assert_eq!(answer.status, 202, "sign-up of {email}: {}", answer.text());
        let mail = self
            .outbox
            .wait_for_mails_to(email, before + 1)
            .pop()
            .expect("a verification mail");
        let token = mail.token().expect("a link with a token in the mail");
        let answer = self
            .post("/api/v1/accounts/verify")
            .json(&json!({ "token": token, "password": password }))
            .send();
        assert_eq!(
            answer.status,
            200,
            "verification of {email}: {}",
            answer.text()
        );
    }

    /// Logs in; panics unless it works.
    pub fn log_in(&self, email: &str, password: &str) -> TestSession {
        let answer = self
            .post("/api/v1/sessions")
            .json(&json!({ "email": email, "password": password }))
            .send();
        assert_eq!(answer.status, 200, "login of {email}: {}", answer.text());
        let body = answer.json();
        TestSession {
            token: text_field(&body, "token"),
            csrf_token: text_field(&body, "csrf_token"),
        }
    }

    /// Registers a company with `session_token`; panics unless it answers
    /// 200 or 201. Returns the company as answered.
    pub fn register_company(&self, session_token: &str, registration: &Value) -> Value {
        let answer = self
            .post("/api/v1/companies")
            .bearer(session_token)
            .json(registration)
            .send();
        assert!(
            answer.status == 201 || answer.status == 200,
            "company registration: {} {}",
            answer.status,
            answer.text()
        );
        answer.json()
    }

    /// Registers a device; panics unless it works.
    pub fn create_device(
        &self,
        session_token: &str,
        company_id: &str,
        computer_id: &str,
    ) -> TestDevice {
        let answer = self
            .post(&format!("/api/v1/companies/{company_id}/devices"))
            .bearer(session_token)
            .json(&json!({ "computer_id": computer_id, "computer_name": computer_id }))
            .send();
        assert_eq!(answer.status, 201, "device registration: {}", answer.text());
        TestDevice::from_answer(&answer.json())
    }

    /// A verified Online ID (`email`, [`TEST_PASSWORD`]) that has connected
    /// a company with a fresh licence `licence_number`: everything the
    /// connect wizard does before the first sync.
    pub fn connected_company(&self, email: &str, licence_number: &str) -> TestCompany {
        self.create_online_id(email, TEST_PASSWORD);
        let session = self.log_in(email, TEST_PASSWORD);
        let system_database_id = format!("system-{licence_number}");
        let company_database_id = format!("company-{licence_number}");
        let company = self.register_company(
            &session.token,
            &registration(
                &sign_licence(&licence(licence_number)),
                &system_database_id,
                &company_database_id,
            ),
        );
        TestCompany {
            company_id: text_field(&company, "id"),
            session,
            system_database_id,
            company_database_id,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn text_field(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("no text field {field:?} in {value}"))
        .to_owned()
}

/// A logged-in session.
#[derive(Clone, Debug)]
pub struct TestSession {
    pub token: String,
    pub csrf_token: String,
}

/// A device's credentials.
#[derive(Clone, Debug)]
pub struct TestDevice {
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestDevice {
    /// From the answer of device registration or refresh.
    pub fn from_answer(answer: &Value) -> TestDevice {
        TestDevice {
            device_id: text_field(answer, "device_id"),
            access_token: text_field(answer, "access_token"),
            refresh_token: text_field(answer, "refresh_token"),
        }
    }
}

/// A company connected by [`TestServer::connected_company`].
#[derive(Clone, Debug)]
pub struct TestCompany {
    pub company_id: String,
    /// The session of the Online ID that connected it (its super user).
    pub session: TestSession,
    pub system_database_id: String,
    pub company_database_id: String,
}

// --- Licences and registrations -----------------------------------------------------

/// A licence that passes every rule: Online Desktop granted, Standard
/// agreement valid until 2099-12-31, 5 online users, not evaluation.
pub fn licence(licence_number: &str) -> Licence {
    Licence {
        licence_number: licence_number.to_owned(),
        licensee_name: "Nordlys Handel AS".to_owned(),
        contact_person: "Per Hansen".to_owned(),
        phone: "+47 22 00 00 00".to_owned(),
        add_ons: vec![ADD_ON_ONLINE_DESKTOP.to_owned()],
        agreement: Some(Agreement {
            tier: Tier::Standard,
            valid_until: NaiveDate::from_ymd_opt(2099, 12, 31).expect("a valid date"),
        }),
        online_users: 5,
        evaluation: false,
        issued_on: NaiveDate::from_ymd_opt(2025, 1, 2).expect("a valid date"),
    }
}

/// The licence document, signed with the development key.
pub fn sign_licence(licence: &Licence) -> String {
    od_licence::sign(
        licence,
        od_licence::DEV_KEY_ID,
        &od_licence::dev_signing_key(),
    )
}

/// Complete registration data.
pub fn company_details(name: &str) -> CompanyDetails {
    CompanyDetails {
        name: name.to_owned(),
        street: "Storgata 1".to_owned(),
        postcode: "0155".to_owned(),
        city: "Oslo".to_owned(),
        country: "Norway".to_owned(),
        phone: "+47 22 00 00 00".to_owned(),
        email: "post@nordlys.example".to_owned(),
        organisation_number: "987 654 321".to_owned(),
    }
}

/// The body of `POST /api/v1/companies`.
pub fn registration(
    licence_document: &str,
    system_database_id: &str,
    company_database_id: &str,
) -> Value {
    json!({
        "licence_document": licence_document,
        "system_database_id": system_database_id,
        "company_database_id": company_database_id,
        "registration": company_details("Nordlys Handel AS"),
    })
}

// --- Mails -------------------------------------------------------------------------

/// The outbox folder of a [`TestServer`].
#[derive(Clone, Debug)]
pub struct Outbox {
    folder: PathBuf,
}

impl Outbox {
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Every mail written so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(&self.folder) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|path| {
                let raw = std::fs::read_to_string(&path).ok()?;
                let mut mail = Mail::parse(&raw);
                mail.path = Some(path);
                Some(mail)
            })
            .collect()
    }

    /// The mails to `address`, oldest first.
    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|mail| mail.to.eq_ignore_ascii_case(address))
            .collect()
    }

    /// Waits until at least `count` mails to `address` are there (mails go
    /// out in the background) and returns them all, oldest first.
    pub fn wait_for_mails_to(&self, address: &str, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mails = self.mails_to(address);
            if mails.len() >= count {
                return mails;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {count} mail(s) to {address} in {}, found {}",
                    self.folder.display(),
                    mails.len()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first mail to `address`, waiting for it.
    pub fn wait_for_mail_to(&self, address: &str) -> Mail {
        self.wait_for_mails_to(address, 1).remove(0)
    }
}

/// A mail, parsed from its text (outbox file or SMTP `DATA`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    /// The decoded text, with `\n` line ends.
    pub body: String,
    /// The file, for outbox mails.
    pub path: Option<PathBuf>,
}

impl Mail {
    /// Reads a message as lettre writes it: headers, a blank line, a body
    /// in 7bit, quoted-printable or base64.
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        let encoding = header("content-transfer-encoding").to_ascii_lowercase();
        let body = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(body),
            "base64" => {
                let compact: String = body.split_whitespace().collect();
                String::from_utf8_lossy(&STANDARD.decode(compact).unwrap_or_default()).into_owned()
            }
            _ => body.to_owned(),
        };
        Mail {
            from: header("from"),
            to: header("to"),
            subject: header("subject"),
            body: body.replace("\r\n", "\n"),
            path: None,
        }
    }

    /// Every http(s) link in the body.
    pub fn links(&self) -> Vec<String> {
        self.body
            .split_whitespace()
            .filter(|word| word.starts_with("http://") || word.starts_with("https://"))
            .map(str::to_owned)
            .collect()
    }

    /// The first link with a token.
    pub fn link(&self) -> Option<String> {
        self.links()
            .into_iter()
            .find(|link| link.contains("token="))
    }

    /// The token of [`Mail::link`].
    pub fn token(&self) -> Option<String> {
        let link = self.link()?;
        let (_, rest) = link.split_once("token=")?;
        Some(rest.split('&').next().unwrap_or(rest).to_owned())
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end_matches([' ', '\t']);
        let (line, soft_break) = match line.strip_suffix('=') {
            Some(line) => (line, true),
            None => (line, false),
        };
        let raw = line.as_bytes();
        let mut index = 0;
        while index < raw.len() {
            if raw[index] == b'=' && index + 2 < raw.len() {
                let hex = std::str::from_utf8(&raw[index + 1..index + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                if let Some(byte) = hex {
                    bytes.push(byte);
                    index += 3;
                    continue;
                }
            }
            bytes.push(raw[index]);
            index += 1;
        }
        if !soft_break && lines.peek().is_some() {
            bytes.push(b'\n');
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

// --- A small HTTP/1.1 client -----------------------------------------------------------

/// A request being put together; [`TestRequest::send`] sends it.
#[must_use]
pub struct TestRequest {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl TestRequest {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(self, value: &Value) -> Self {
        self.body("application/json", value.to_string().into_bytes())
    }

    /// Any body with its content type.
    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = Some(body);
        self
    }

    /// Sends the request (one connection, closed after the answer) and
    /// reads the answer. Panics on a network error.
    pub fn send(self) -> TestResponse {
        let mut stream = TcpStream::connect(self.addr).expect("connect to the test server");
        stream.set_read_timeout(Some(WAIT)).expect("a read timeout");
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.addr
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = self.body.unwrap_or_default();
        if !body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(&body);
        // The server may answer (413) and close before reading everything;
        // the answer is still there to read.
        let _ = stream.write_all(&request);
        let mut raw = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => raw.extend_from_slice(&buffer[..read]),
                Err(error) if raw.is_empty() => panic!("no answer from the test server: {error}"),
                Err(_) => break,
            }
        }
        TestResponse::parse(&raw)
    }
}

/// An answer.
#[derive(Clone, Debug)]
pub struct TestResponse {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TestResponse {
    fn parse(raw: &[u8]) -> TestResponse {
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer: {}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
        if chunked {
            body = decode_chunked(&body);
        }
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// Every header `name` (e.g. each `set-cookie`).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing it) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the answer ({}) is not JSON ({error}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// `error.code` of an error answer.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()?
            .pointer("/error/code")?
            .as_str()
            .map(str::to_owned)
    }
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = data.windows(2).position(|window| window == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        body.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_bodies_are_decoded() {
        let raw = "From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                   Open http://127.0.0.1:1/verify?token=3Dabc=\r\ndef now\r\nbye";
        let mail = Mail::parse(raw);
        assert_eq!(mail.to, "b@example.com");
        assert_eq!(mail.subject, "Hi");
        assert_eq!(
            mail.body,
            "Open http://127.0.0.1:1/verify?token=abcdef now\nbye"
        );
        assert_eq!(mail.token().as_deref(), Some("abcdef"));
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            decode_chunked(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
            b"abcde"
        );
    }
}
