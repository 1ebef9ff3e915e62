//! What the end-to-end synchronisation tests share: host-sim's sync
//! commands and its agent as child processes, the online service as a
//! child process (`online-desktop serve`), a small HTTP client for the
//! service's API as an Online ID sees it, and the oracle of GUARANTEES.md
//! (per entity, the host's canonical checksum through the add-on's id map
//! equals the service's, and the counts agree).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use host_sim::installation::Installation;
use host_sim::sync::{checksum, schema};
use serde_json::{json, Value};

use super::{Host, AS_OF};

pub const EMAIL: &str = "ingrid.solberg@nordlyshandel.no";
pub const PASSWORD: &str = "correct horse battery";
/// Generous: a loaded CI machine builds and runs other tests meanwhile.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Polls `check` until it gives a value or [`DEADLINE`] passes.
pub fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    eventually_within(DEADLINE, Duration::from_millis(200), what, check)
}

/// Polls `check` every `every` until it gives a value or `limit` passes.
pub fn eventually_within<T>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// A demo installation of `records` records with a valid licence
/// registered and bound to the demo company.
pub fn licensed_host(records: &str) -> Host {
    let host = Host::empty();
    host.ok(&[
        "init",
        "--records",
        records,
        "--seed",
        "5",
        "--as-of",
        AS_OF,
    ]);
    let licence = host.path("nordlys.licence");
    let licence = licence.to_str().unwrap();
    host.ok(&[
        "licence",
        "issue",
        "--out",
        licence,
        "--valid-until",
        "2099-12-31",
    ]);
    host.ok(&["licence", "add", licence]);
    host.ok(&["licence", "bind", "--company", "nordlys"]);
    host
}

// --- host-sim with a service ---------------------------------------------------------

/// host-sim against `host` and the service at `url`, with `password` in the
/// environment (never on the command line).
pub fn run(host: &Host, url: &str, password: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host-sim"));
    command
        .arg("--data-dir")
        .arg(host.data_dir())
        .arg("--service-url")
        .arg(url)
        .args(args)
        .env_remove("OD_HOST_DATA")
        .env_remove("OD_ONLINE_PASSWORD")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("OD_ONLINE_PASSWORD", password);
    }
    command.output().expect("host-sim runs")
}

pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A command that must succeed; what it printed.
pub fn ok(host: &Host, url: &str, password: Option<&str>, args: &[&str]) -> String {
    let output = run(host, url, password, args);
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "host-sim {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// A command that must fail with exit code 1; its error message.
pub fn fails(host: &Host, url: &str, password: Option<&str>, args: &[&str]) -> String {
    let output = run(host, url, password, args);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "host-sim {args:?} should fail\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stderr
}

/// `host-sim sync history --json` (on `computer`, default the one that
/// holds the system database).
pub fn history(host: &Host, url: &str, computer: Option<&str>) -> Value {
    let mut args = vec!["sync", "history", "--json"];
    if let Some(computer) = computer {
        args.extend(["--computer", computer]);
    }
    serde_json::from_str(&ok(host, url, None, &args)).expect("the history is JSON")
}

/// The sync agent process; killed when dropped, so that no test leaves
/// one behind, whatever failed.
pub struct Agent {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Agent {
    /// `host-sim agent` (with `--computer computer` when given); its
    /// output goes to files named after `name` in the host's folder.
    pub fn start(host: &Host, url: &str, computer: Option<&str>, name: &str) -> Agent {
        let out = host.path(&format!("{name}.log"));
        let err = host.path(&format!("{name}.err"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_host-sim"));
        command
            .arg("--data-dir")
            .arg(host.data_dir())
            .arg("--service-url")
            .arg(url);
        if let Some(computer) = computer {
            command.args(["--computer", computer]);
        }
        let child = command
            .arg("agent")
            .env_remove("OD_HOST_DATA")
            .env_remove("OD_ONLINE_PASSWORD")
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("the agent starts");
        Agent { child, out, err }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed on standard output, then standard error.
    pub fn log(&self) -> String {
        format!(
            "{}{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// Its exit code, if it has ended.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().unwrap().map(|status| status.code())
    }

    /// SIGKILL: no stop at a safe point, no clean-up (a crash, a power cut).
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL to the agent");
        self.child.wait().expect("the killed agent is reaped");
    }

    /// SIGTERM, then the exit code (within a few seconds).
    pub fn terminate(&mut self) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.wait_for_exit("SIGTERM")
    }

    /// Waits for the agent to end by itself; its exit code.
    pub fn wait_for_exit(&mut self, after: &str) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(code) = self.exited() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not stop within 60 s of {after}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// --- the online service as a process ------------------------------------------------

/// `online-desktop serve` as a child process on 127.0.0.1, with its
/// database and outbox in `folder` (which outlives the process, so a
/// service can be killed and started again on the same data); killed when
/// dropped.
pub struct ServiceProcess {
    child: Child,
    pub url: String,
    pub port: u16,
    errors: PathBuf,
}

/// The online service's program, built from od-online into the same folder
/// as host-sim (`cargo build -p od-online` or `--workspace`).
pub fn service_exe() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_host-sim"))
        .with_file_name(format!("online-desktop{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "The online service {} is not built. Run `cargo build --workspace` (or `cargo build -p \
         od-online`) first: `cargo test -p host-sim` alone does not build it.",
        path.display()
    );
    path
}

impl ServiceProcess {
    /// Starts the service on `port` (0: a free one) and waits until it
    /// says where it listens.
    pub fn start(folder: &Path, port: u16) -> ServiceProcess {
        let exe = service_exe();
        // Standard error of each start in a file of its own.
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let errors = folder.join(format!("service-{start}.err"));
        let mut child = Command::new(&exe)
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--database",
            ])
            .arg(folder.join("online.db"))
            .arg("--outbox")
            .arg(folder.join("outbox"))
            .current_dir(folder)
            .env_remove("OD_ONLINE_ADDR")
            .env_remove("OD_ONLINE_PUBLIC_URL")
            .env_remove("OD_SMTP_URL")
            .env_remove("OD_TLS_CERT")
            .env_remove("OD_TLS_KEY")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&errors).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        let stdout = child.stdout.take().expect("the service's stdout");
        let (first_line, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first_line.send(lines.next().and_then(Result::ok));
            // Keep reading so the service never blocks on a full pipe.
            for _ in lines {}
        });
        let mut service = ServiceProcess {
            child,
            url: String::new(),
            port,
            errors,
        };
        let line = match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(line)) => line,
            other => panic!(
                "the online service did not say where it listens ({other:?}).\nIts standard error:\n{}",
                service.errors()
            ),
        };
        let url = line
            .strip_prefix("Online Desktop service listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the service: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        service.port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the service's address");
        service.url = url;
        service
    }

    pub fn errors(&self) -> String {
        std::fs::read_to_string(&self.errors).unwrap_or_default()
    }

    /// SIGKILL: the service ends at once, whatever it was doing.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL to the service");
        self.child.wait().expect("the killed service is reaped");
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- HTTP ------------------------------------------------------------------------------

/// An answer of the service.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on its own connection (`Connection: close`).
pub fn http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("the answer to {method} {path}: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut content = raw[split + 4..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        content = unchunk(&content);
    }
    Answer {
        status,
        body: String::from_utf8_lossy(&content).into_owned(),
    }
}

fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        out.extend_from_slice(&raw[start..(start + size).min(raw.len())]);
        raw = &raw[(start + size + 2).min(raw.len())..];
    }
    out
}

/// Signs up with the service at `base`, follows the link of the
/// verification mail in `outbox` and sets `password`.
pub fn create_online_id(base: &str, outbox: &Path, email: &str, password: &str) {
    let answer = http(
        base,
        "POST",
        "/api/v1/accounts",
        None,
        Some(&json!({ "email": email })),
    );
    assert_eq!(answer.status, 202, "sign-up: {}", answer.body);
    let token = eventually("the verification mail", || {
        std::fs::read_dir(outbox)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|raw| od_online::testing::Mail::parse(&raw))
            .find(|mail| mail.to.eq_ignore_ascii_case(email))
            .and_then(|mail| mail.token())
    });
    let answer = http(
        base,
        "POST",
        "/api/v1/accounts/verify",
        None,
        Some(&json!({ "token": token, "password": password })),
    );
    assert_eq!(answer.status, 200, "verification: {}", answer.body);
}

// --- the Online ID's view of the service ------------------------------------------

/// A logged-in Online ID on the service, for the records API.
pub struct Web {
    pub base: String,
    token: String,
    pub company_id: String,
    oracle: std::cell::OnceCell<String>,
}

impl Web {
    pub fn log_in(base: &str, email: &str, password: &str) -> Web {
        let answer = http(
            base,
            "POST",
            "/api/v1/sessions",
            None,
            Some(&json!({ "email": email, "password": password })),
        );
        assert_eq!(answer.status, 200, "login: {}", answer.body);
        let token = answer.json()["token"].as_str().unwrap().to_owned();
        let companies = http(base, "GET", "/api/v1/companies", Some(&token), None).json();
        let company_id = companies["companies"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no company: {companies}"))
            .to_owned();
        Web {
            base: base.to_owned(),
            token,
            company_id,
            oracle: std::cell::OnceCell::new(),
        }
    }

    /// A request as the Online ID.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        http(&self.base, method, path, Some(&self.token), body)
    }

    fn company_path(&self, rest: &str) -> String {
        format!("/api/v1/companies/{}{rest}", self.company_id)
    }

    /// Every live record of `entity`.
    pub fn records(&self, entity: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = String::new();
        loop {
            let path = self.company_path(&format!("/records/{entity}?limit=500{after}"));
            let answer = self.call("GET", &path, None);
            assert_eq!(answer.status, 200, "{}", answer.body);
            let page = answer.json();
            all.extend(page["records"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => after = format!("&after={next}"),
                None => return all,
            }
        }
    }

    /// One live record, or None (deleted or unknown).
    pub fn record(&self, entity: &str, global_id: &str) -> Option<Value> {
        let answer = self.call(
            "GET",
            &self.company_path(&format!("/records/{entity}/{global_id}")),
            None,
        );
        match answer.status {
            200 => Some(answer.json()),
            404 => None,
            _ => panic!("GET {entity}/{global_id}: {}", answer.body),
        }
    }

    pub fn patch(&self, entity: &str, global_id: &str, fields: Value) -> Value {
        let answer = self.call(
            "PATCH",
            &self.company_path(&format!("/records/{entity}/{global_id}")),
            Some(&json!({ "fields": fields })),
        );
        assert_eq!(
            answer.status, 200,
            "PATCH {entity}/{global_id}: {}",
            answer.body
        );
        answer.json()
    }

    pub fn create(&self, entity: &str, fields: Value) -> Value {
        let answer = self.call(
            "POST",
            &self.company_path(&format!("/records/{entity}")),
            Some(&json!({ "fields": fields })),
        );
        assert_eq!(answer.status, 201, "POST {entity}: {}", answer.body);
        answer.json()
    }

    pub fn delete(&self, entity: &str, global_id: &str) {
        let answer = self.call(
            "DELETE",
            &self.company_path(&format!("/records/{entity}/{global_id}")),
            None,
        );
        assert_eq!(
            answer.status, 204,
            "DELETE {entity}/{global_id}: {}",
            answer.body
        );
    }

    /// The service's conflict history of the company.
    pub fn conflicts(&self) -> Vec<Value> {
        let answer = self.call("GET", &self.company_path("/sync/conflicts"), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["conflicts"].as_array().unwrap().clone()
    }

    /// Makes `computer_id` the company's sync computer.
    pub fn move_sync_computer(&self, computer_id: &str) -> Value {
        let answer = self.call(
            "POST",
            &self.company_path("/sync-computer"),
            Some(&json!({ "computer_id": computer_id })),
        );
        assert_eq!(answer.status, 200, "sync-computer: {}", answer.body);
        answer.json()
    }

    /// A device for the test itself (computer "checksum-oracle"), to ask
    /// what only devices may ask; it never takes the lease.
    fn oracle_token(&self) -> &str {
        self.oracle.get_or_init(|| {
            let answer = self.call(
                "POST",
                &self.company_path("/devices"),
                Some(&json!({ "computer_id": "checksum-oracle", "computer_name": "Test oracle" })),
            );
            assert_eq!(answer.status, 201, "{}", answer.body);
            answer.json()["access_token"].as_str().unwrap().to_owned()
        })
    }

    /// The service's checksum per entity: (live records, SHA-256).
    pub fn checksums(&self) -> BTreeMap<String, (u64, String)> {
        let answer = http(
            &self.base,
            "GET",
            "/api/v1/sync/checksum",
            Some(self.oracle_token()),
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["entity"].as_str().unwrap().to_owned(),
                    (
                        e["count"].as_u64().unwrap(),
                        e["sha256"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect()
    }

    /// `GET /api/v1/sync/status`: the company's sequence number, the lease
    /// and per entity the live and deleted records.
    pub fn sync_status(&self) -> Value {
        let answer = http(
            &self.base,
            "GET",
            "/api/v1/sync/status",
            Some(self.oracle_token()),
            None,
        );
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    /// Live records online per entity, from the sync status.
    pub fn live_counts(&self) -> BTreeMap<String, u64> {
        self.sync_status()["entities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["entity"].as_str().unwrap().to_owned(),
                    e["records"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

// --- the oracle -------------------------------------------------------------------------

/// The host's rows per entity as `(global id, canonical line)`, with local
/// ids mapped to global ids through the id map of the add-on on
/// `computer` (default: the one that holds the system database).
pub fn host_rows(
    data_dir: &Path,
    computer: Option<&str>,
) -> BTreeMap<String, Vec<(String, String)>> {
    let installation = Installation::open(data_dir).unwrap();
    let company = installation.company_or_default(None).unwrap();
    let computer = installation.computer_or_default(computer).unwrap();
    let state = installation
        .dir()
        .add_on_folder(&computer.id, &company.id)
        .join("state.db");
    // No state yet (not connected): nothing has a global id.
    let ids: BTreeMap<(String, String), String> = if state.is_file() {
        rusqlite::Connection::open_with_flags(&state, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
            .prepare("SELECT entity, local_id, global_id FROM ids")
            .unwrap()
            .query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    } else {
        BTreeMap::new()
    };
    let db = installation.open_company_db(&company).unwrap();
    let global = |entity: &str, local: i64| {
        ids.get(&(entity.to_owned(), local.to_string()))
            .cloned()
            .unwrap_or_else(|| format!("unsent:{entity}:{local}"))
    };
    schema::ENTITIES
        .iter()
        .map(|entity| {
            let rows = checksum::entity_rows(db.connection(), entity, &global).unwrap();
            (entity.name.to_owned(), rows)
        })
        .collect()
}

/// The host's checksum per entity through the add-on's id map.
pub fn host_checksums(data_dir: &Path, computer: Option<&str>) -> BTreeMap<String, (u64, String)> {
    host_rows(data_dir, computer)
        .into_iter()
        .map(|(entity, rows)| (entity, checksum::digest(rows)))
        .collect()
}

/// What differs between the host (through the add-on's id map on
/// `computer`) and the online copy; None when every entity's count and
/// digest agree, and the service's live counts equal the host's (no
/// record online twice). The text names the rows: missing online, extra
/// online, duplicated on the host, fields that differ.
pub fn differences(host: &Host, computer: Option<&str>, web: &Web) -> Option<String> {
    let rows = host_rows(&host.data_dir(), computer);
    let online = web.checksums();
    let live = web.live_counts();
    let mut report = String::new();
    for (entity, rows) in &rows {
        let local = checksum::digest(rows.clone());
        let theirs = online
            .get(entity)
            .cloned()
            .unwrap_or_else(|| checksum::digest(Vec::new()));
        let live_count = live.get(entity).copied().unwrap_or(0);
        if local == theirs && live_count == local.0 {
            continue;
        }
        report.push_str(&format!(
            "{entity}: host {} rows {}, online {} rows {} ({} live records in the sync status)\n",
            local.0, local.1, theirs.0, theirs.1, live_count
        ));
        report.push_str(&row_differences(entity, rows, &web.records(entity)));
    }
    (!report.is_empty()).then_some(report)
}

/// Per row: missing online, extra online, duplicate ids on the host,
/// fields that differ (at most 10 of each kind).
fn row_differences(entity: &str, host: &[(String, String)], online: &[Value]) -> String {
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&str> = host
        .iter()
        .filter(|(id, _)| !seen.insert(id.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    let host: BTreeMap<&str, &str> = host.iter().map(|(i, l)| (i.as_str(), l.as_str())).collect();
    let online: BTreeMap<String, String> = online
        .iter()
        .map(|r| {
            let id = r["global_id"].as_str().unwrap().to_owned();
            let fields = r["fields"].as_object().cloned().unwrap_or_default();
            let line = od_protocol::canonical_line(&id, &fields, false);
            (id, line)
        })
        .collect();
    let missing: Vec<&str> = host
        .keys()
        .filter(|id| !online.contains_key(**id))
        .copied()
        .collect();
    let extra: Vec<&String> = online
        .keys()
        .filter(|id| !host.contains_key(id.as_str()))
        .collect();
    let differ: Vec<String> = host
        .iter()
        .filter_map(|(id, line)| {
            let theirs = online.get(*id)?;
            (theirs != line).then(|| format!("    host:   {line}\n    online: {theirs}"))
        })
        .collect();
    let mut text = String::new();
    let mut list = |what: &str, items: Vec<String>| {
        if !items.is_empty() {
            text.push_str(&format!(
                "  {entity}: {} {what}, e.g.:\n{}\n",
                items.len(),
                items
                    .iter()
                    .take(10)
                    .map(|i| format!("    {i}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
    };
    list(
        "missing online",
        missing.iter().map(|s| s.to_string()).collect(),
    );
    list(
        "extra online",
        extra.iter().map(|s| s.to_string()).collect(),
    );
    list(
        "duplicate ids on the host",
        duplicates.iter().map(|s| s.to_string()).collect(),
    );
    list("with different fields", differ);
    text
}

/// The oracle, once both sides are quiet: waits until the host and the
/// online copy agree (a run that stops making progress fails at the
/// deadline), printing the differences per row if they never do.
pub fn assert_converges(
    host: &Host,
    computer: Option<&str>,
    web: &Web,
    context: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let Some(report) = differences(host, computer, web) else {
            return;
        };
        assert!(
            Instant::now() < deadline,
            "the host and the online copy differ after {DEADLINE:?}:\n{report}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Per entity, the records the add-on sent online in the runs of `kind`
/// (`to_online` summed over those runs of `sync history --json`).
pub fn sent_in_runs(history: &Value, kind: &str) -> BTreeMap<String, u64> {
    let mut sent = BTreeMap::new();
    for run in history["runs"].as_array().unwrap() {
        if run["kind"] != kind {
            continue;
        }
        for e in run["entities"].as_array().into_iter().flatten() {
            *sent
                .entry(e["entity"].as_str().unwrap().to_owned())
                .or_insert(0) += e["to_online"].as_u64().unwrap_or(0);
        }
    }
    sent
}
