//! The bare-pipeline baseline of issue 4: how fast can records move from one
//! SQLite database through JSON over HTTP on loopback into another SQLite
//! database, with nothing else in the way? The first synchronisation is held
//! to within 2× of this (docs/PERFORMANCE.md).
//!
//! `pipeline-baseline run --records 1000000` creates the source database,
//! starts a receiver process, sends every record in batches of 1,000 with
//! two requests in flight, then measures single-record round trips. It
//! prints the throughput, the round-trip latency and the peak memory of
//! both processes.

use anyhow::{bail, Context, Result};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, Subcommand};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Run the whole benchmark (starts its own receiver process).
    Run {
        #[arg(long, default_value_t = 1_000_000)]
        records: u64,
        #[arg(long, default_value_t = 1_000)]
        batch: usize,
        #[arg(long, default_value_t = 2)]
        in_flight: usize,
        #[arg(long, default_value_t = 2_000)]
        round_trips: usize,
        /// Folder for the two databases (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// The receiving side (started by `run`).
    Receive {
        #[arg(long)]
        db: PathBuf,
    },
}

/// One record of about 375 bytes as JSON, like a contact with its address.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: i64,
    global_id: String,
    name: String,
    street: String,
    postcode: String,
    city: String,
    country: String,
    phone: String,
    email: String,
    notes: String,
    balance_cents: i64,
    updated_at: String,
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY, global_id TEXT NOT NULL, name TEXT NOT NULL, street TEXT NOT NULL,
    postcode TEXT NOT NULL, city TEXT NOT NULL, country TEXT NOT NULL, phone TEXT NOT NULL,
    email TEXT NOT NULL, notes TEXT NOT NULL, balance_cents INTEGER NOT NULL, updated_at TEXT NOT NULL)";

const UPSERT: &str = "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
    ON CONFLICT (id) DO UPDATE SET name = excluded.name, notes = excluded.notes, updated_at = excluded.updated_at";

fn main() -> Result<()> {
    match Cli::parse().command {
        Mode::Run {
            records,
            batch,
            in_flight,
            round_trips,
            dir,
        } => run(records, batch, in_flight, round_trips, dir),
        Mode::Receive { db } => receive(&db),
    }
}

fn record(i: i64) -> Record {
    Record {
        id: i,
        global_id: format!("{:08x}-4b1d-4c3e-9f00-{:012x}", i as u32, i),
        name: format!("Nordlys Handel {i} AS"),
        street: format!("Storgata {}", i % 200 + 1),
        postcode: format!("{:04}", i % 10_000),
        city: "Oslo".into(),
        country: "Norway".into(),
        phone: format!(
            "+47 22 {:02} {:02} {:02}",
            i % 100,
            (i / 100) % 100,
            (i / 10_000) % 100
        ),
        email: format!("post{i}@nordlys-handel.example"),
        notes: "Customer since 2019; delivery on Tuesdays. Invoices by e-mail, 14 days net.".into(),
        balance_cents: i * 37 % 1_000_000,
        updated_at: "2026-11-28T05:14:27Z".into(),
    }
}

fn open(path: &Path) -> Result<Connection> {
    let db = Connection::open(path).with_context(|| format!("open {}", path.display()))?;
    db.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
    db.execute_batch(CREATE)?;
    Ok(db)
}

fn insert(db: &mut Connection, records: &[Record]) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    {
        let mut statement = tx.prepare_cached(UPSERT)?;
        for r in records {
            statement.execute(params![
                r.id,
                r.global_id,
                r.name,
                r.street,
                r.postcode,
                r.city,
                r.country,
                r.phone,
                r.email,
                r.notes,
                r.balance_cents,
                r.updated_at
            ])?;
        }
    }
    tx.commit()
}

fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

// ---------------------------------------------------------------- receiver

type Db = Arc<Mutex<Connection>>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn receive(path: &Path) -> Result<()> {
    let db: Db = Arc::new(Mutex::new(open(path)?));
    let app = Router::new()
        .route("/batch", post(batch))
        .route(
            "/stats",
            get(|| async { Json(serde_json::json!({ "peak_kib": peak_memory_kib() })) }),
        )
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn batch(
    State(db): State<Db>,
    Json(records): Json<Vec<Record>>,
) -> Result<Json<usize>, String> {
    let count = records.len();
    tokio::task::spawn_blocking(move || {
        let mut db = db.lock().map_err(|_| "poisoned".to_owned())?;
        insert(&mut db, &records).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(Json(count))
}

// ------------------------------------------------------------------ sender

fn run(
    records: u64,
    batch: usize,
    in_flight: usize,
    round_trips: usize,
    dir: Option<PathBuf>,
) -> Result<()> {
    let temp;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            temp = std::env::temp_dir().join(format!("od-bench-{}", std::process::id()));
            temp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let source = dir.join("source.db");
    let target = dir.join("target.db");
    for path in [&source, &target] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    eprintln!("creating {records} source records …");
    {
        let mut db = open(&source)?;
        let mut next = 0i64;
        while next < records as i64 {
            let end = (next + 10_000).min(records as i64);
            let chunk: Vec<Record> = (next..end).map(record).collect();
            insert(&mut db, &chunk)?;
            next = end;
        }
    }

    let mut receiver = Command::new(std::env::current_exe()?)
        .args(["receive", "--db"])
        .arg(&target)
        .stdout(Stdio::piped())
        .spawn()
        .context("start the receiver")?;
    let mut line = String::new();
    BufReader::new(receiver.stdout.take().context("receiver stdout")?).read_line(&mut line)?;
    let base = format!("http://{}", line.trim());

    let outcome = send(&source, &base, batch, in_flight, round_trips);
    let _ = receiver.kill();
    let _ = receiver.wait();
    let (elapsed, sent, trips, receiver_peak) = outcome?;

    let count: i64 =
        Connection::open(&target)?.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
    if count as u64 != records {
        bail!("the target holds {count} records, expected {records}");
    }
    let json_bytes = serde_json::to_vec(&record(records as i64 / 2))?.len();
    println!("records:            {records} (~{json_bytes} bytes each as JSON), batches of {batch}, {in_flight} in flight");
    println!(
        "bulk transfer:      {:.2} s ({:.0} records/s)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    let mut trips = trips;
    trips.sort();
    if !trips.is_empty() {
        let at = |q: f64| trips[((trips.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
        println!(
            "one-change round trip: median {:.3} ms, p99 {:.3} ms ({} trips)",
            at(0.5),
            at(0.99),
            trips.len()
        );
    }
    println!(
        "peak memory:        sender {} MiB, receiver {} MiB",
        peak_memory_kib() / 1024,
        receiver_peak / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

type Outcome = (Duration, u64, Vec<Duration>, u64);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn send(
    source: &Path,
    base: &str,
    batch: usize,
    in_flight: usize,
    round_trips: usize,
) -> Result<Outcome> {
    let client = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(in_flight * 2);
    let source = source.to_path_buf();
    let started = Instant::now();
    let reader = std::thread::spawn(move || -> Result<u64> {
        let db = Connection::open(&source)?;
        let mut statement =
            db.prepare("SELECT * FROM records WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let mut after = -1i64;
        let mut total = 0u64;
        loop {
            let rows: Vec<Record> = statement
                .query_map(params![after, batch as i64], |r| {
                    Ok(Record {
                        id: r.get(0)?,
                        global_id: r.get(1)?,
                        name: r.get(2)?,
                        street: r.get(3)?,
                        postcode: r.get(4)?,
                        city: r.get(5)?,
                        country: r.get(6)?,
                        phone: r.get(7)?,
                        email: r.get(8)?,
                        notes: r.get(9)?,
                        balance_cents: r.get(10)?,
                        updated_at: r.get(11)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            total += rows.len() as u64;
            if tx.blocking_send(serde_json::to_vec(&rows)?).is_err() {
                bail!("the sender stopped");
            }
        }
        Ok(total)
    });
    let mut requests = tokio::task::JoinSet::new();
    while let Some(body) = rx.recv().await {
        while requests.len() >= in_flight {
            requests.join_next().await.context("a request")???;
        }
        let request = client
            .post(format!("{base}/batch"))
            .header("content-type", "application/json")
            .body(body)
            .send();
        requests.spawn(async move {
            request
                .await?
                .error_for_status()
                .map(|_| ())
                .map_err(anyhow::Error::from)
        });
    }
    while let Some(done) = requests.join_next().await {
        done??;
    }
    let sent = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let elapsed = started.elapsed();

    let mut trips = Vec::with_capacity(round_trips);
    for i in 0..round_trips {
        let mut change = record(i as i64 % 1000);
        change.notes = format!("changed {i}");
        let body = serde_json::to_vec(&[change])?;
        let at = Instant::now();
        client
            .post(format!("{base}/batch"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        trips.push(at.elapsed());
    }
    let stats: serde_json::Value = client
        .get(format!("{base}/stats"))
        .send()
        .await?
        .json()
        .await?;
    let receiver_peak = stats["peak_kib"].as_u64().unwrap_or(0);
    Ok((elapsed, sent, trips, receiver_peak))
}
