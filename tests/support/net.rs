//! Loopback endpoints for the online-service reachability check.

use parking_lot::{Condvar, Mutex};
use socket2::{Domain, Socket, Type};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A loopback port that is reserved but refuses connections: the socket is
/// bound and never listens, so no other program can take the port while
/// the test runs and a connection attempt is refused at once.
pub struct ClosedPort {
    _socket: Socket,
    addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("a loopback address");
        socket.bind(&any.into()).expect("bind 127.0.0.1:0");
        let addr = socket
            .local_addr()
            .expect("the bound address")
            .as_socket()
            .expect("an IP address");
        ClosedPort {
            _socket: socket,
            addr,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        ClosedPort::new()
    }
}

/// A stand-in for the online service's health endpoint on 127.0.0.1 that
/// holds every request until the test releases it: until then the service
/// looks as slow as an unroutable address, afterwards it answers with the
/// status the test chose.
pub struct HealthServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    /// The status line to answer with, once released.
    release: Mutex<Option<&'static str>>,
    released: Condvar,
    requests: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl HealthServer {
    pub fn start() -> HealthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = listener.local_addr().expect("the listener's address");
        let shared = Arc::new(Shared {
            release: Mutex::new(None),
            released: Condvar::new(),
            requests: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let serving = Arc::clone(&shared);
        // Connection threads are not joined: each ends when its client
        // goes away or, at the latest, when its read times out.
        let thread = std::thread::spawn(move || {
            while !serving.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = Arc::clone(&serving);
                        std::thread::spawn(move || serve(stream, &shared));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HealthServer {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets held and future requests through with `status_line`, for
    /// example `"200 OK"`.
    pub fn release(&self, status_line: &'static str) {
        *self.shared.release.lock() = Some(status_line);
        self.shared.released.notify_all();
    }

    /// Holds requests again until the next [`HealthServer::release`].
    pub fn hold(&self) {
        *self.shared.release.lock() = None;
    }

    /// Waits until at least `count` requests have arrived; false on timeout.
    pub fn wait_for_requests(&self, count: usize, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.shared.requests.lock().len() < count {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// The request lines received so far ("GET /api/v1/health HTTP/1.1").
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().clone()
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.release("503 Service Unavailable");
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head);
    shared
        .requests
        .lock()
        .push(text.lines().next().unwrap_or("").to_owned());
    let status = {
        let mut release = shared.release.lock();
        while release.is_none() {
            shared.released.wait(&mut release);
        }
        release.unwrap_or("503 Service Unavailable")
    };
    let body = "{\"status\":\"ok\"}";
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
