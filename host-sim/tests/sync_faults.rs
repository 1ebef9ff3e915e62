//! Faults through the whole stack: the host-sim agent process with the real
//! add-on, and the real online service over HTTP on 127.0.0.1, each test
//! ending with the oracle of GUARANTEES.md (per entity the host's canonical
//! checksum, through the add-on's id map, equals the service's; the
//! service's live counts equal the host's) and a check that nothing was
//! applied twice.
//!
//! What "applied twice" can look like: the service's merge makes a repeated
//! push of the same values a no-op (no new version, no sequence number), so
//! a batch applied a second time is visible only when something changed in
//! between. Hence: after a first sync with nothing else going on, the
//! company's sequence number equals the number of records (each record
//! stored once, and a batch applied again after a later change would take
//! new numbers); and where an answer is lost, the test changes the record
//! online before the add-on sends the batch again, and the online change
//! must survive (a second application would overwrite it, or record a
//! conflict).
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use common::sync::{
    assert_converges, create_online_id, eventually, eventually_within, fails, history,
    licensed_host, ok, sent_in_runs, Agent, ServiceProcess, Web, EMAIL, PASSWORD,
};
use common::{field, Host};
use host_sim::installation::Installation;
use od_online::testing::TestServer;
use serde_json::{json, Value};

/// Records per first-sync batch (the add-on's `first_sync::BATCH`).
const BATCH: u64 = 1_000;
/// Batches of the first sync on the wire at once (`first_sync::IN_FLIGHT`).
const IN_FLIGHT: u64 = 2;

/// Connects the demo company of `host` to the service at `url`.
fn connect(host: &Host, url: &str, computer: Option<&str>) -> String {
    let mut args = vec!["sync", "connect", "--email", EMAIL];
    if let Some(computer) = computer {
        args.extend(["--computer", computer]);
    }
    ok(host, url, Some(PASSWORD), &args)
}

/// Records per entity in the host's company database.
fn host_counts(host: &Host) -> BTreeMap<String, u64> {
    common::sync::host_rows(&host.data_dir(), None)
        .into_iter()
        .map(|(entity, rows)| (entity, rows.len() as u64))
        .collect()
}

/// Whether `sync status` (on `computer`) says the first sync is done.
fn first_sync_done(host: &Host, url: &str, computer: Option<&str>) -> bool {
    let mut args = vec!["sync", "status"];
    if let Some(computer) = computer {
        args.extend(["--computer", computer]);
    }
    let out = ok(host, url, None, &args);
    field(&out, "First synchronisation") == Some("done")
}

/// Waits until the service holds at least two batches of the first sync
/// but not all of it (polled every 20 ms, so the moment is not missed).
fn wait_for_first_sync_in_the_middle(web: &Web, total: u64, agent: &Agent) -> u64 {
    eventually_within(
        Duration::from_secs(120),
        Duration::from_millis(20),
        "two batches of the first sync online",
        || {
            let online: u64 = web.live_counts().values().sum();
            assert!(
                online < total,
                "the first sync finished before it could be interrupted ({online} of {total} \
                 records); make the demo company bigger\n{}",
                agent.log()
            );
            (online >= 2 * BATCH).then_some(online)
        },
    )
}

/// The local id → global id map of the add-on on the default computer.
fn global_id(data_dir: &Path, entity: &str, local_id: i64) -> Option<String> {
    global_id_on(data_dir, None, entity, local_id)
}

/// The local id → global id map of the add-on on `computer`.
fn global_id_on(
    data_dir: &Path,
    computer: Option<&str>,
    entity: &str,
    local_id: i64,
) -> Option<String> {
    let installation = Installation::open(data_dir).unwrap();
    let company = installation.company_or_default(None).unwrap();
    let computer = installation.computer_or_default(computer).unwrap();
    let state = rusqlite::Connection::open_with_flags(
        installation
            .dir()
            .add_on_folder(&computer.id, &company.id)
            .join("state.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    state
        .query_row(
            "SELECT global_id FROM ids WHERE entity = ?1 AND local_id = ?2",
            rusqlite::params![entity, local_id.to_string()],
            |row| row.get(0),
        )
        .ok()
}

/// After a first sync with nothing else going on: every record stored once
/// (the sequence number counts each stored change), at version 1.
fn assert_each_record_stored_once(web: &Web, total: u64, context: &str) {
    let status = web.sync_status();
    assert_eq!(
        status["sequence"].as_u64(),
        Some(total),
        "the service's sequence number should equal the number of records sent ({total}): a \
         batch was stored more than once\n{status}\n{context}"
    );
    let twice: Vec<Value> = web
        .records("contacts")
        .into_iter()
        .filter(|r| r["version"] != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "contacts changed after the first sync stored them: {twice:?}"
    );
}

/// The first-sync runs sent every record at least once, and again at most
/// the batches in flight when it was interrupted.
fn assert_sent_again_at_most_the_batches_in_flight(
    history: &Value,
    counts: &BTreeMap<String, u64>,
) {
    let sent = sent_in_runs(history, "first_sync");
    for (entity, total) in counts {
        let n = sent.get(entity).copied().unwrap_or(0);
        assert!(
            n >= *total && n <= total + IN_FLIGHT * BATCH,
            "{entity}: the first-sync runs sent {n} records for {total} in the company; at most \
             the batches in flight ({IN_FLIGHT} × {BATCH}) may be sent again\n{history:#}"
        );
    }
}

fn company_show(host: &Host) -> String {
    host.ok(&["company", "show"])
}

fn assert_not_blocked(host: &Host) {
    let shown = company_show(host);
    assert!(
        !shown.contains("blocked by Online Desktop"),
        "the program is still blocked after the first sync finished:\n{shown}"
    );
}

// --- 1. The host killed in the middle of the first sync -----------------------------

#[test]
fn the_host_killed_in_the_first_sync_resumes_and_sends_again_at_most_the_batch_in_flight() {
    let started = Instant::now();
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let url = server.base_url();
    let host = licensed_host("12000");
    let counts = host_counts(&host);
    let total: u64 = counts.values().sum();
    connect(&host, url, None);
    let web = Web::log_in(url, EMAIL, PASSWORD);

    let mut agent = Agent::start(&host, url, None, "agent-1");
    let online = wait_for_first_sync_in_the_middle(&web, total, &agent);
    agent.kill();
    let log = agent.log();
    assert!(log.contains("state first_sync"), "{log}");

    // The crash left the first sync unfinished, and the program blocked
    // (the block is lifted by the add-on when the first sync ends).
    assert!(!first_sync_done(&host, url, None), "{log}");
    assert!(
        company_show(&host).contains("blocked by Online Desktop"),
        "the first sync was killed while it blocked the program"
    );
    let at_kill: u64 = web.live_counts().values().sum();
    assert!(at_kill < total, "{at_kill} of {total} online at the kill");

    let mut agent = Agent::start(&host, url, None, "agent-2");
    eventually("the first sync to finish after the restart", || {
        assert!(agent.exited().is_none(), "the agent ended\n{}", agent.log());
        first_sync_done(&host, url, None).then_some(())
    });
    let log = agent.log();
    assert_converges(&host, None, &web, &|| log.clone());
    assert_each_record_stored_once(&web, total, &log);

    let history = history(&host, url, None);
    let runs = history["runs"].as_array().unwrap();
    let first: Vec<&Value> = runs.iter().filter(|r| r["kind"] == "first_sync").collect();
    assert_eq!(first.len(), 2, "{history:#}");
    assert!(
        first.iter().any(|r| r["outcome"] == "interrupted"),
        "the killed run is shown as interrupted\n{history:#}"
    );
    assert!(
        first.iter().any(|r| r["outcome"] == "finished"),
        "{history:#}"
    );
    assert_sent_again_at_most_the_batches_in_flight(&history, &counts);
    assert_not_blocked(&host);

    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
    eprintln!(
        "host killed at {online} of {total} records; test took {:?}",
        started.elapsed()
    );
}

// --- 2. The service killed in the middle of the first sync ------------------------

#[test]
fn the_service_killed_in_the_first_sync_and_restarted_is_caught_up_by_itself() {
    let started = Instant::now();
    let folder = tempfile::tempdir().unwrap();
    let mut service = ServiceProcess::start(folder.path(), 0);
    let url = service.url.clone();
    create_online_id(&url, &folder.path().join("outbox"), EMAIL, PASSWORD);
    let host = licensed_host("12000");
    let counts = host_counts(&host);
    let total: u64 = counts.values().sum();
    connect(&host, &url, None);
    let web = Web::log_in(&url, EMAIL, PASSWORD);

    let mut agent = Agent::start(&host, &url, None, "agent");
    let online = wait_for_first_sync_in_the_middle(&web, total, &agent);
    service.kill();

    // Without the service the agent keeps trying by itself.
    eventually("the agent to say it retries", || {
        assert!(agent.exited().is_none(), "the agent ended\n{}", agent.log());
        agent.log().contains("state retrying").then_some(())
    });
    assert!(!first_sync_done(&host, &url, None));

    let mut service = ServiceProcess::start(folder.path(), service.port);
    assert_eq!(service.url, url);
    eventually(
        "the first sync to finish after the service came back",
        || {
            assert!(agent.exited().is_none(), "the agent ended\n{}", agent.log());
            first_sync_done(&host, &url, None).then_some(())
        },
    );
    let log = eventually("the agent back to synchronising continuously", || {
        let log = agent.log();
        let retrying = log.find("state retrying")?;
        log[retrying..].contains("state running").then_some(log)
    });
    let retrying = log.find("state retrying").unwrap();
    assert!(
        log[retrying..].contains("state first_sync"),
        "after retrying, the first sync went on\n{log}"
    );
    assert_converges(&host, None, &web, &|| {
        format!("{log}\n{}", service.errors())
    });
    assert_each_record_stored_once(&web, total, &log);
    let history = history(&host, &url, None);
    assert_sent_again_at_most_the_batches_in_flight(&history, &counts);
    assert_not_blocked(&host);

    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
    service.kill();
    eprintln!(
        "service killed at {online} of {total} records; test took {:?}",
        started.elapsed()
    );
}

// --- 3. A batch delivered twice: the answer lost -----------------------------------

/// What the proxy does with the next pushes whose idempotency key starts
/// with `key_prefix`: forwards them, waits for the service's answer to
/// start, closes both connections (so the service has committed and the
/// add-on never hears it), then runs `hook` while every other request
/// waits.
struct LoseAnswers {
    remaining: usize,
    key_prefix: String,
    hook: Box<dyn FnMut(&str) + Send>,
}

struct ProxyShared {
    upstream: String,
    /// Held while a hook runs and while the test cuts the network: every
    /// request waits for it before it is forwarded, every answer before it
    /// is delivered.
    gate: Mutex<()>,
    lose: Mutex<Option<LoseAnswers>>,
    lost: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// A TCP proxy between the add-on and the service that understands just
/// enough HTTP/1.1 to find the pushes (std threads, one per connection).
struct Proxy {
    url: String,
    shared: Arc<ProxyShared>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(ProxyShared {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            gate: Mutex::new(()),
            lose: Mutex::new(None),
            lost: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accepting.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || {
                    let _ = forward(client, &shared);
                });
            }
        });
        Proxy { url, shared }
    }

    fn lose_answers(&self, n: usize, key_prefix: &str, hook: impl FnMut(&str) + Send + 'static) {
        *lock(&self.shared.lose) = Some(LoseAnswers {
            remaining: n,
            key_prefix: key_prefix.to_owned(),
            hook: Box::new(hook),
        });
    }

    /// The idempotency keys of the pushes whose answers were lost.
    fn lost(&self) -> Vec<String> {
        lock(&self.shared.lost).clone()
    }

    /// Cuts the network until the guard is dropped.
    fn cut(&self) -> MutexGuard<'_, ()> {
        lock(&self.shared.gate)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An HTTP/1.1 message's head (through the blank line) and body, as bytes
/// to pass on unchanged. None at the end of the connection.
fn read_message(reader: &mut impl BufRead, request: bool) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(length, 0);
        reader.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else if !request && !head.starts_with("HTTP/1.1 204") && !head.starts_with("HTTP/1.1 304") {
        reader.read_to_end(&mut body).ok()?;
    }
    Some((head, body))
}

fn forward(client: TcpStream, shared: &ProxyShared) -> std::io::Result<()> {
    let mut upstream = TcpStream::connect(&shared.upstream)?;
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut from_upstream = BufReader::new(upstream.try_clone()?);
    let mut to_client = client;
    while let Some((head, body)) = read_message(&mut from_client, true) {
        let key = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("idempotency-key")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_default();
        let is_push = head.starts_with("POST /api/v1/sync/push");
        let gate = lock(&shared.gate);
        let lose_this = is_push && {
            let mut lose = lock(&shared.lose);
            match lose.as_mut() {
                Some(rule) if rule.remaining > 0 && key.starts_with(&rule.key_prefix) => {
                    rule.remaining -= 1;
                    true
                }
                _ => false,
            }
        };
        upstream.write_all(head.as_bytes())?;
        upstream.write_all(&body)?;
        if lose_this {
            // The service answers after its commit: wait for the first
            // byte, then lose the answer.
            let mut first = [0u8; 1];
            from_upstream.read_exact(&mut first)?;
            let _ = to_client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            lock(&shared.lost).push(key.clone());
            if let Some(rule) = lock(&shared.lose).as_mut() {
                (rule.hook)(&key);
            }
            drop(gate);
            return Ok(());
        }
        drop(gate);
        let Some((answer_head, answer_body)) = read_message(&mut from_upstream, false) else {
            return Ok(());
        };
        drop(lock(&shared.gate));
        to_client.write_all(answer_head.as_bytes())?;
        to_client.write_all(&answer_body)?;
    }
    let _ = upstream.shutdown(Shutdown::Both);
    Ok(())
}

#[test]
fn a_push_whose_answer_is_lost_is_sent_again_and_applied_once() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let proxy = Proxy::start(server.base_url());
    let host = licensed_host("3000");
    let counts = host_counts(&host);
    let total: u64 = counts.values().sum();
    // Connected through the proxy: the add-on keeps the address it was
    // connected with.
    connect(&host, &proxy.url, None);
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);

    // The first sync: the answer to the (first) batch of contacts is lost.
    // Before the add-on sends it again, a web user changes a contact of
    // that batch: sent again and applied once, the batch must not undo it.
    let data_dir = host.data_dir();
    let base = server.base_url().to_owned();
    let edited = Arc::new(Mutex::new(None::<(String, Value)>));
    let edited_by_hook = Arc::clone(&edited);
    proxy.lose_answers(1, "first:contacts:", move |_key| {
        let global = global_id(&data_dir, "contacts", 1).expect("contact 1 has a global id");
        let web = Web::log_in(&base, EMAIL, PASSWORD);
        let record = web.patch(
            "contacts",
            &global,
            json!({ "city": "Changed online after the lost answer" }),
        );
        *lock(&edited_by_hook) = Some((global, record));
    });
    let mut agent = Agent::start(&host, &proxy.url, None, "agent");
    eventually("the first sync", || {
        assert!(agent.exited().is_none(), "the agent ended\n{}", agent.log());
        first_sync_done(&host, &proxy.url, None).then_some(())
    });
    assert_eq!(proxy.lost().len(), 1, "{:?}", proxy.lost());
    let (global, record) = lock(&edited).clone().expect("the hook ran");
    assert_eq!(
        record["version"], 2,
        "the lost answer's batch was stored before the web edit: {record}"
    );
    eventually("the web edit in the program", || {
        let shown = host.ok(&["record", "show", "contacts", "1"]);
        (field(&shown, "city") == Some("Changed online after the lost answer")).then_some(())
    });
    let log = agent.log();
    assert_converges(&host, None, &web, &|| log.clone());
    let online = web.record("contacts", &global).unwrap();
    assert_eq!(
        online["version"], 2,
        "the batch sent again was applied again: {online}"
    );
    assert_eq!(
        web.sync_status()["sequence"].as_u64(),
        Some(total + 1),
        "every record stored once, plus the web edit"
    );

    // Continuous sync: a host edit whose answer is lost; meanwhile the same
    // field changes online. Sent again, the push must be answered from the
    // first application (the later web value stays, no conflict), not
    // applied again (which would overwrite the web value as a conflict).
    let data_dir = host.data_dir();
    let base = server.base_url().to_owned();
    let web_edit_done = Arc::new(AtomicBool::new(false));
    let done_by_hook = Arc::clone(&web_edit_done);
    proxy.lose_answers(1, "inc:", move |_key| {
        let global = global_id(&data_dir, "contacts", 2).expect("contact 2 has a global id");
        let web = Web::log_in(&base, EMAIL, PASSWORD);
        let record = web.patch("contacts", &global, json!({ "city": "Web city" }));
        assert_eq!(record["version"], 3, "{record}");
        done_by_hook.store(true, Ordering::SeqCst);
    });
    host.ok(&["record", "edit", "contacts", "2", "--set", "city=Host city"]);
    eventually("the lost answer and the web edit", || {
        web_edit_done.load(Ordering::SeqCst).then_some(())
    });
    eventually("the later web value in the program", || {
        let shown = host.ok(&["record", "show", "contacts", "2"]);
        (field(&shown, "city") == Some("Web city")).then_some(())
    });
    let log = agent.log();
    assert_converges(&host, None, &web, &|| log.clone());
    let global = global_id(&host.data_dir(), "contacts", 2).unwrap();
    let online = web.record("contacts", &global).unwrap();
    assert_eq!(online["fields"]["city"], "Web city", "{online}");
    assert_eq!(online["version"], 3, "applied twice: {online}");
    let conflicts: Vec<Value> = web
        .conflicts()
        .into_iter()
        .filter(|c| c["global_id"] == global.as_str())
        .collect();
    assert!(
        conflicts.is_empty(),
        "the push sent again made a conflict, so it was applied again: {conflicts:?}"
    );
    assert_eq!(proxy.lost().len(), 2, "{:?}", proxy.lost());
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
}

// --- 4. Two computers and one company ------------------------------------------------

/// The id of the computer named `name`.
fn computer_id(host: &Host, name: &str) -> String {
    let computers = host.channel("system.computers", &[]);
    computers["computers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["id"].as_str())
        .unwrap_or_else(|| panic!("no computer {name}: {computers}"))
        .to_owned()
}

/// `settings sync-computer` on `computer` (default: the one that holds the
/// system database): the Sync computer wizard, scripted; what it printed.
fn sync_computer(host: &Host, url: &str, computer: Option<&str>) -> String {
    let mut args = vec!["settings", "sync-computer", "--email", EMAIL];
    if let Some(computer) = computer {
        args.extend(["--computer", computer]);
    }
    let out = ok(host, url, Some(PASSWORD), &args);
    assert!(out.contains("is now the sync computer of"), "{out}");
    assert!(out.contains("agent"), "{out}");
    out
}

/// The computer the program noted as the company's sync computer
/// (`connection.get`).
fn noted_sync_computer(host: &Host) -> Option<String> {
    let got = host.channel("connection.get", &[]);
    got["connection"]["computer_id"].as_str().map(str::to_owned)
}

/// The takeover runs of `computer`'s history; panics when there is none.
fn assert_took_over(host: &Host, url: &str, computer: Option<&str>) -> Value {
    let history = history(host, url, computer);
    assert!(
        history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "takeover"),
        "no takeover run in the history of {computer:?}\n{history:#}"
    );
    history
}

/// A company connected and synchronised from OFFICE-SERVER (agent A
/// running), and computer B-DESK added. Connect on B-DESK is refused (the
/// company is connected from OFFICE-SERVER: B joins with Sync computer) and
/// writes nothing.
fn two_computers(server: &TestServer) -> (Host, Web, Agent) {
    server.create_online_id(EMAIL, PASSWORD);
    let url = server.base_url();
    let host = licensed_host("300");
    connect(&host, url, None);
    let agent_a = Agent::start(&host, url, None, "agent-a");
    eventually("the first sync on computer A", || {
        first_sync_done(&host, url, None).then_some(())
    });
    let web = Web::log_in(url, EMAIL, PASSWORD);
    let log_a = agent_a.log();
    assert_converges(&host, None, &web, &|| log_a.clone());
    let a = computer_id(&host, "OFFICE-SERVER");
    let sequence = web.sync_status()["sequence"].clone();
    let online = web.live_counts();
    host.ok(&["computer", "add", "B-DESK"]);
    let b = computer_id(&host, "B-DESK");

    let err = fails(
        &host,
        url,
        Some(PASSWORD),
        &["sync", "connect", "--email", EMAIL, "--computer", "B-DESK"],
    );
    assert!(
        err.contains(
            "This company is already connected to Online Desktop from the computer OFFICE-SERVER."
        ),
        "{err}"
    );
    assert!(
        err.contains("choose Sync computer in Company settings → Online Desktop"),
        "{err}"
    );
    // B wrote nothing: no connection of its own, no device online, the
    // lease and the online copy are A's, the program still names A.
    let status_b = ok(
        &host,
        url,
        None,
        &["sync", "status", "--computer", "B-DESK"],
    );
    assert!(!first_sync_done(&host, url, Some("B-DESK")), "{status_b}");
    let installation = Installation::open(&host.data_dir()).unwrap();
    let company = installation.company_or_default(None).unwrap();
    let folder_b = installation.dir().add_on_folder(&b, &company.id);
    drop(installation);
    assert!(
        !folder_b.join("connection.json").exists(),
        "the refused connect left a connection on B"
    );
    let status = web.sync_status();
    assert_eq!(status["lease"]["computer_id"], a.as_str(), "{status}");
    assert_eq!(status["sequence"], sequence, "{status}");
    assert_eq!(web.live_counts(), online);
    assert_eq!(noted_sync_computer(&host).as_deref(), Some(a.as_str()));

    // The settings page on B: A synchronises; B may only become the sync
    // computer.
    let settings = ok(&host, url, None, &["settings", "--computer", "B-DESK"]);
    assert!(
        settings.contains("Sync computer: OFFICE-SERVER (this computer, B-DESK, does not synchronise the company)"),
        "{settings}"
    );
    assert!(
        settings.contains(
            "Sync computer: `host-sim --computer B-DESK settings sync-computer --email EMAIL` \
             (on the computer that is to synchronise)"
        ),
        "{settings}"
    );
    assert!(
        !settings.contains("settings disconnect --email"),
        "{settings}"
    );
    // Sync computer on B, cancelled on its confirm page: nothing changes.
    let out = ok(
        &host,
        url,
        Some(PASSWORD),
        &[
            "settings",
            "sync-computer",
            "--email",
            EMAIL,
            "--cancel-at",
            "confirm",
            "--computer",
            "B-DESK",
        ],
    );
    assert!(
        out.contains("The wizard was cancelled. Nothing was changed."),
        "{out}"
    );
    assert_eq!(web.sync_status()["lease"]["computer_id"], a.as_str());
    assert_eq!(noted_sync_computer(&host).as_deref(), Some(a.as_str()));
    (host, web, agent_a)
}

/// Moves synchronisation from OFFICE-SERVER (agent A running) to B-DESK
/// with `settings sync-computer` on B: A stops with the reason at its next
/// write. Returns A's log.
fn move_to_b(host: &Host, url: &str, web: &Web, agent_a: &mut Agent) -> String {
    let b = computer_id(host, "B-DESK");
    let out = sync_computer(host, url, Some("B-DESK"));
    assert!(out.contains("B-DESK is now the sync computer"), "{out}");
    assert_eq!(
        web.sync_status()["lease"]["computer_id"],
        b.as_str(),
        "{out}"
    );
    assert_eq!(noted_sync_computer(host).as_deref(), Some(b.as_str()));

    // A's next write is refused: it stops with the reason.
    host.ok(&["record", "edit", "contacts", "3", "--set", "city=Bodø"]);
    let code = agent_a.wait_for_exit("the move");
    let log_a = agent_a.log();
    assert_eq!(code, Some(1), "{log_a}");
    assert!(
        log_a.contains("Another computer is the sync computer of this company"),
        "{log_a}"
    );
    log_a
}

#[test]
fn a_second_computer_is_refused_while_another_is_the_sync_computer() {
    let server = TestServer::start();
    let url = server.base_url();
    let (host, web, mut agent_a) = two_computers(&server);
    let a = computer_id(&host, "OFFICE-SERVER");
    let b = computer_id(&host, "B-DESK");
    assert_ne!(a, b);
    move_to_b(&host, url, &web, &mut agent_a);
    let mut agent_b = Agent::start(&host, url, Some("B-DESK"), "agent-b");
    let log_b = || agent_b.log();
    assert_converges(&host, Some("B-DESK"), &web, &log_b);

    // A still has its connection, but the service gives the lease to B
    // only: A started again is refused and writes nothing.
    let sequence = web.sync_status()["sequence"].clone();
    let online = web.live_counts();
    let mut agent_a = Agent::start(&host, url, None, "agent-a-again");
    let code = agent_a.wait_for_exit("the refused lease");
    let log = agent_a.log();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("state failed"), "{log}");
    assert!(
        log.contains("Another computer is the sync computer of this company"),
        "{log}"
    );
    let status = web.sync_status();
    assert_eq!(status["sequence"], sequence, "A wrote\n{status}\n{log}");
    assert_eq!(status["lease"]["computer_id"], b.as_str(), "{status}");
    assert_eq!(web.live_counts(), online);

    // B goes on synchronising.
    assert!(agent_b.exited().is_none(), "{}", agent_b.log());
    host.ok(&["record", "edit", "contacts", "9", "--set", "city=Narvik"]);
    let contact_9 = global_id_on(&host.data_dir(), Some("B-DESK"), "contacts", 9).unwrap();
    eventually("B's edit online", || {
        let record = web.record("contacts", &contact_9)?;
        (record["fields"]["city"] == "Narvik").then_some(())
    });
    assert_converges(&host, Some("B-DESK"), &web, &|| agent_b.log());
    assert!(agent_b.exited().is_none(), "{}", agent_b.log());
    assert_eq!(agent_b.terminate(), Some(0), "{}", agent_b.log());
}

#[test]
fn moving_synchronisation_stops_the_old_computer_and_the_new_one_does_not_send_the_company_twice() {
    let server = TestServer::start();
    let url = server.base_url();
    let (host, web, mut agent_a) = two_computers(&server);
    let online_before = web.live_counts();
    assert_eq!(online_before, host_counts(&host));
    let log_a = move_to_b(&host, url, &web, &mut agent_a);

    // While no computer synchronises: edits on both sides, and a new
    // record in the program.
    host.ok(&["record", "edit", "contacts", "4", "--set", "city=Alta"]);
    host.ok(&[
        "record",
        "add",
        "contacts",
        "--set",
        "name=Mellomrom AS",
        "--set",
        "city=Harstad",
    ]);
    let contact_5 = global_id(&host.data_dir(), "contacts", 5).expect("contact 5 online");
    web.patch(
        "contacts",
        &contact_5,
        json!({ "email": "between@web.example" }),
    );

    // B takes the online records over: nothing online twice.
    let mut agent_b = Agent::start(&host, url, Some("B-DESK"), "agent-b");
    let context = || format!("{log_a}\n{}", agent_b.log());
    assert_converges(&host, Some("B-DESK"), &web, &context);
    let mut expected = online_before.clone();
    *expected.get_mut("contacts").unwrap() += 1;
    assert_eq!(web.live_counts(), expected, "{}", context());
    assert_eq!(host_counts(&host), expected);
    let contact_3 = global_id_on(&host.data_dir(), Some("B-DESK"), "contacts", 3).unwrap();
    let contact_4 = global_id_on(&host.data_dir(), Some("B-DESK"), "contacts", 4).unwrap();
    assert_eq!(
        global_id_on(&host.data_dir(), Some("B-DESK"), "contacts", 5).as_deref(),
        Some(contact_5.as_str()),
        "B matched contact 5 to another online record"
    );
    assert_eq!(
        web.record("contacts", &contact_3).unwrap()["fields"]["city"],
        "Bodø"
    );
    assert_eq!(
        web.record("contacts", &contact_4).unwrap()["fields"]["city"],
        "Alta"
    );
    let shown = host.ok(&["record", "show", "contacts", "5"]);
    assert_eq!(
        field(&shown, "email"),
        Some("between@web.example"),
        "{shown}"
    );
    let history_b = assert_took_over(&host, url, Some("B-DESK"));
    let sent: u64 = sent_in_runs(&history_b, "takeover").values().sum();
    assert!(
        sent <= 3,
        "the takeover sent {sent} records for 3 changed in the program\n{history_b:#}"
    );

    // Then edits both ways, synchronised by B.
    host.ok(&[
        "record",
        "edit",
        "contacts",
        "6",
        "--set",
        "phone=+47 22 22 22 22",
    ]);
    let contact_7 = global_id_on(&host.data_dir(), Some("B-DESK"), "contacts", 7).unwrap();
    web.patch("contacts", &contact_7, json!({ "city": "Svolvær" }));
    eventually("the web edit on B", || {
        let shown = host.ok(&["record", "show", "contacts", "7"]);
        (field(&shown, "city") == Some("Svolvær")).then_some(())
    });
    assert_converges(&host, Some("B-DESK"), &web, &context);
    assert_eq!(web.live_counts(), expected, "{}", context());
    assert_eq!(agent_b.terminate(), Some(0), "{}", agent_b.log());
}

#[test]
fn a_sync_computer_that_lost_its_add_on_folder_takes_the_online_records_over() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let url = server.base_url();
    let host = licensed_host("300");
    connect(&host, url, None);
    let mut agent = Agent::start(&host, url, None, "agent-before");
    eventually("the first sync", || {
        first_sync_done(&host, url, None).then_some(())
    });
    let web = Web::log_in(url, EMAIL, PASSWORD);
    let log = agent.log();
    assert_converges(&host, None, &web, &|| log.clone());
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
    let online_before = web.live_counts();
    let contact_2 = global_id(&host.data_dir(), "contacts", 2).unwrap();

    // A new disk: the add-on folder is gone; the program still notes the
    // company as connected from this computer.
    let a = computer_id(&host, "OFFICE-SERVER");
    let installation = Installation::open(&host.data_dir()).unwrap();
    let company = installation.company_or_default(None).unwrap();
    let folder = installation.dir().add_on_folder(&a, &company.id);
    drop(installation);
    std::fs::remove_dir_all(&folder).unwrap();
    assert_eq!(noted_sync_computer(&host).as_deref(), Some(a.as_str()));
    host.ok(&[
        "record",
        "edit",
        "contacts",
        "2",
        "--set",
        "city=Hammerfest",
    ]);
    web.patch(
        "contacts",
        &contact_2,
        json!({ "email": "lost@web.example" }),
    );

    // Update connection cannot open (no connection here); Connect is
    // refused; the page offers Sync computer.
    let settings = ok(&host, url, None, &["settings"]);
    assert!(
        settings.contains("its add-on has no connection: Sync computer brings it back"),
        "{settings}"
    );
    assert!(
        settings.contains("settings sync-computer --email EMAIL"),
        "{settings}"
    );
    let err = fails(
        &host,
        url,
        Some(PASSWORD),
        &["sync", "connect", "--email", EMAIL],
    );
    assert!(err.contains("from the computer OFFICE-SERVER"), "{err}");
    assert!(err.contains("Sync computer"), "{err}");

    let out = sync_computer(&host, url, None);
    assert!(
        out.contains("OFFICE-SERVER is now the sync computer"),
        "{out}"
    );
    let mut agent = Agent::start(&host, url, None, "agent-after");
    let log = || agent.log();
    assert_converges(&host, None, &web, &log);
    assert_eq!(
        web.live_counts(),
        online_before,
        "nothing online twice\n{}",
        log()
    );
    assert_eq!(
        global_id(&host.data_dir(), "contacts", 2).as_deref(),
        Some(contact_2.as_str()),
        "the takeover matched contact 2 to another online record"
    );
    let shown = host.ok(&["record", "show", "contacts", "2"]);
    assert_eq!(field(&shown, "city"), Some("Hammerfest"), "{shown}");
    assert_eq!(field(&shown, "email"), Some("lost@web.example"), "{shown}");
    assert_took_over(&host, url, None);
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
}

// --- 5. Edits on both sides ---------------------------------------------------------------

#[test]
fn edits_creates_and_deletes_on_both_sides_converge_and_the_same_field_keeps_the_host_value() {
    let server = TestServer::start();
    server.create_online_id(EMAIL, PASSWORD);
    let proxy = Proxy::start(server.base_url());
    let host = licensed_host("300");
    // Connected through the proxy: the add-on keeps the address it was
    // connected with.
    connect(&host, &proxy.url, None);
    let web = Web::log_in(server.base_url(), EMAIL, PASSWORD);
    let mut agent = Agent::start(&host, &proxy.url, None, "agent");
    eventually("the first sync", || {
        first_sync_done(&host, &proxy.url, None).then_some(())
    });

    // While the agent runs: edits, creates and deletes on each side.
    host.ok(&[
        "record",
        "edit",
        "contacts",
        "5",
        "--set",
        "phone=+47 11 11 11 11",
    ]);
    let added = host.ok(&[
        "record",
        "add",
        "contacts",
        "--set",
        "name=Fjord Fisk AS",
        "--set",
        "city=Bergen",
    ]);
    host.ok(&["record", "delete", "activities", "7"]);
    let contact_6 = eventually("contact 6 online", || {
        global_id(&host.data_dir(), "contacts", 6)
    });
    web.patch(
        "contacts",
        &contact_6,
        json!({ "email": "post@web.example" }),
    );
    let created = web.create(
        "contacts",
        json!({ "name": "Webbutikk AS", "city": "Tromsø" }),
    );
    let activity_9 = global_id(&host.data_dir(), "activities", 9).expect("activity 9 online");
    web.delete("activities", &activity_9);
    let log = agent.log();
    assert_converges(&host, None, &web, &|| format!("{added}\n{log}"));
    let listed = host.ok(&["record", "list", "contacts", "--limit", "1000"]);
    assert!(listed.contains("Webbutikk AS"), "{listed}");
    assert!(listed.contains("Fjord Fisk AS"), "{listed}");
    assert!(web.record("activities", &activity_9).is_none());
    assert_eq!(
        created["fields"]["name"], "Webbutikk AS",
        "the web create: {created}"
    );

    // The same field on both sides at once: the network is cut, both
    // change contact 8's city, the network comes back. The host's value
    // wins and the conflict is recorded with both values on both sides.
    let contact_8 = global_id(&host.data_dir(), "contacts", 8).unwrap();
    {
        let _cut = proxy.cut();
        web.patch("contacts", &contact_8, json!({ "city": "Online city" }));
        host.ok(&["record", "edit", "contacts", "8", "--set", "city=Host city"]);
        // The add-on sees the host's edit (it looks every 250 ms) and
        // waits for the network to push it.
        std::thread::sleep(Duration::from_millis(600));
    }
    eventually("the host's value online", || {
        let record = web.record("contacts", &contact_8)?;
        (record["fields"]["city"] == "Host city").then_some(())
    });
    let log = agent.log();
    assert_converges(&host, None, &web, &|| log.clone());
    let shown = host.ok(&["record", "show", "contacts", "8"]);
    assert_eq!(field(&shown, "city"), Some("Host city"), "{shown}");
    let all_conflicts = web.conflicts();
    let online_conflicts: Vec<&Value> = all_conflicts
        .iter()
        .filter(|c| c["global_id"] == contact_8.as_str())
        .collect();
    assert_eq!(
        online_conflicts.len(),
        1,
        "one conflict for contact 8 ({contact_8}) online: {all_conflicts:#?}\n{}",
        agent.log()
    );
    let c = &online_conflicts[0];
    assert_eq!(c["field"], "city", "{c}");
    assert_eq!(c["host_value"], "Host city", "{c}");
    assert_eq!(c["online_value"], "Online city", "{c}");
    assert_eq!(c["outcome"], "host_wins", "{c}");
    let history = history(&host, &proxy.url, None);
    let recorded: Vec<&Value> = history["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["global_id"] == contact_8.as_str())
        .collect();
    assert_eq!(recorded.len(), 1, "{history:#}");
    assert_eq!(recorded[0]["host_value"], "Host city", "{history:#}");
    assert_eq!(recorded[0]["online_value"], "Online city", "{history:#}");
    assert_eq!(recorded[0]["outcome"], "host_wins", "{history:#}");
    assert_eq!(agent.terminate(), Some(0), "{}", agent.log());
}
