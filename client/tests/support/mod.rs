//! Test helpers: a scripted loopback HTTP server for transport faults the
//! real service cannot produce, a timer that does not wait, and a log
//! capture.

#![allow(dead_code)] // each test file uses a part

use od_client::{Client, ClientConfig, RetryPolicy, ServiceUrl, Timer};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Generous bound for anything a test waits for, so that a loaded 2-core
/// machine does not make a test fail.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What the fault server does with one connection.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Writes these bytes as they are, then closes.
    Raw(Vec<u8>),
    /// A complete answer.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Sends the head and part of the body, then closes the connection.
    CutOff,
    /// Reads the request and never answers (until the server is dropped).
    Silent,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Status {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn health() -> Reply {
        Reply::json(200, serde_json::json!({"status": "ok", "version": "0.0.1"}))
    }

    pub fn status(status: u16) -> Reply {
        Reply::Status {
            status,
            headers: vec![],
            body: vec![],
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        if let Reply::Status { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }
}

/// A request as the fault server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub head: String,
    pub body: Vec<u8>,
}

/// Answers each connection with the next scripted reply (the last one
/// repeats). Only on 127.0.0.1; stops when dropped.
pub struct FaultServer {
    pub url: ServiceUrl,
    seen: Arc<Mutex<Vec<Seen>>>,
    closed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    pub async fn start(script: Vec<Reply>) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = ServiceUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn({
            let seen = Arc::clone(&seen);
            let closed = Arc::clone(&closed);
            async move {
                let mut connections = tokio::task::JoinSet::new();
                for n in 0.. {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let reply = script[n.min(script.len() - 1)].clone();
                    connections.spawn(serve(stream, reply, Arc::clone(&seen), Arc::clone(&closed)));
                }
            }
        });
        FaultServer {
            url,
            seen,
            closed,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits until a silent connection has been closed by the client.
    pub async fn client_closed(&self) {
        self.closed.notified().await
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    reply: Reply,
    seen: Arc<Mutex<Vec<Seen>>>,
    closed: Arc<tokio::sync::Notify>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    seen.lock().unwrap().push(request);
    let bytes = match reply {
        Reply::Raw(bytes) => bytes,
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let mut bytes = head.into_bytes();
            bytes.extend(body);
            bytes
        }
        Reply::CutOff => {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"status\": \"o"
                .to_vec()
        }
        Reply::Silent => {
            let mut rest = [0u8; 64];
            // Returns when the client closes its end (0 bytes or an error).
            while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
            closed.notify_one();
            return;
        }
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let mut words = head.split_whitespace();
    Some(Seen {
        method: words.next()?.to_owned(),
        path: words.next()?.to_owned(),
        body: buffer[head_end..head_end + length].to_vec(),
        head,
    })
}

/// A timer whose sleeps return at once and move its clock on; records
/// every wait.
#[derive(Debug)]
pub struct FakeTimer {
    start: Instant,
    slept: Mutex<Vec<Duration>>,
}

impl FakeTimer {
    pub fn new() -> Arc<FakeTimer> {
        Arc::new(FakeTimer {
            start: Instant::now(),
            slept: Mutex::new(Vec::new()),
        })
    }

    pub fn sleeps(&self) -> Vec<Duration> {
        self.slept.lock().unwrap().clone()
    }
}

impl Timer for FakeTimer {
    fn now(&self) -> Instant {
        self.start + self.slept.lock().unwrap().iter().sum::<Duration>()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.slept.lock().unwrap().push(duration);
        Box::pin(async {})
    }
}

/// A config with generous time limits, the given retries and a fake timer.
pub fn config(retry: RetryPolicy, timer: &Arc<FakeTimer>) -> ClientConfig {
    ClientConfig {
        connect_timeout: PATIENCE,
        request_timeout: PATIENCE,
        retry,
        timer: Arc::clone(timer) as Arc<dyn Timer>,
        ..ClientConfig::default()
    }
}

pub fn retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        max_total: Duration::from_secs(300),
    }
}

pub fn client(url: &ServiceUrl, retry: RetryPolicy, timer: &Arc<FakeTimer>) -> Client {
    Client::new(url.clone(), config(retry, timer)).unwrap()
}

/// Everything logged through `tracing` while it is the default subscriber,
/// at every level.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn dispatch(&self) -> tracing::Dispatch {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::Dispatch::new(subscriber)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
