//! A configurable in-memory host: implements the `od_host_api` callbacks
//! over answers a test sets per method, and records everything the plugin
//! does through them (requests, log records, pump requests, events, and how
//! often `user_data_free` ran).
//!
//! The callbacks never unwind into the plugin: a panic inside one is caught,
//! counted in [`TestHost::callback_panics`], and turned into a failure code.

use od_abi::*;
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// How the host answers one request method.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A JSON document, returned with code 0.
    Json(serde_json::Value),
    /// These exact bytes, returned with code 0 (invalid UTF-8, invalid JSON).
    Raw(Vec<u8>),
    /// `message` written as the error text, then `code` (non-zero) returned.
    Fail { code: i32, message: Vec<u8> },
    /// `total` bytes written in 1 MiB chunks (until `write` refuses), then 0.
    Huge { total: usize },
    /// Misuses `write`: NULL data with a length, a NULL context, NULL data
    /// with length 0 (allowed: nothing), and an impossible length; then
    /// returns 0 without a valid answer.
    MisuseWrite,
}

impl Answer {
    /// A failure with a readable message.
    pub fn fail(message: &str) -> Answer {
        Answer::Fail {
            code: 1,
            message: message.as_bytes().to_vec(),
        }
    }
}

/// One log record as the host received it.
#[derive(Clone, Debug)]
pub struct LogRecord {
    pub struct_size: u32,
    pub level: od_log_level,
    pub target: String,
    pub message: String,
    pub thread: ThreadId,
}

/// One event as the host received it.
#[derive(Clone, Debug)]
pub struct EventRecord {
    pub struct_size: u32,
    pub kind: od_event_kind,
    pub payload: Option<String>,
    pub thread: ThreadId,
}

/// One request as the host received it.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    pub params: Vec<u8>,
    pub thread: ThreadId,
}

type PumpHook = Box<dyn Fn() -> i32 + Send + Sync>;

/// Answers a request from its method and parameters (JSON bytes), or
/// gives `None` to fall back to the answers set per method.
pub type RequestHook = Arc<dyn Fn(&str, &[u8]) -> Option<Answer> + Send + Sync>;

/// The host's state behind `user_data`.
pub struct TestHost {
    answers: Mutex<HashMap<String, Answer>>,
    requests: Mutex<Vec<RequestRecord>>,
    logs: Mutex<Vec<LogRecord>>,
    events: Mutex<Vec<EventRecord>>,
    pump_threads: Mutex<Vec<ThreadId>>,
    pump_signal: Condvar,
    /// The results `write` gave, in order, for [`Answer::MisuseWrite`] and
    /// [`Answer::Huge`].
    write_results: Mutex<Vec<i32>>,
    user_data_frees: AtomicUsize,
    callback_panics: AtomicUsize,
    /// What the log, request_pump and on_event callbacks return.
    log_return: AtomicI32,
    pump_return: AtomicI32,
    event_return: AtomicI32,
    /// Runs inside request_pump (on the plugin's thread) when set; its
    /// result is what request_pump returns.
    pump_hook: Mutex<Option<PumpHook>>,
    /// Asked first for every request when set (answers that depend on
    /// the parameters, such as the sync methods' pages).
    request_hook: Mutex<Option<RequestHook>>,
}

impl TestHost {
    /// A host without answers: every request fails with "unknown method".
    pub fn empty() -> Arc<TestHost> {
        Arc::new(TestHost {
            answers: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            logs: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            pump_threads: Mutex::new(Vec::new()),
            pump_signal: Condvar::new(),
            write_results: Mutex::new(Vec::new()),
            user_data_frees: AtomicUsize::new(0),
            callback_panics: AtomicUsize::new(0),
            log_return: AtomicI32::new(0),
            pump_return: AtomicI32::new(0),
            event_return: AtomicI32::new(0),
            pump_hook: Mutex::new(None),
            request_hook: Mutex::new(None),
        })
    }

    /// A host of a complete company whose licence check passes
    /// ([`crate::fixtures::complete_answers`]).
    pub fn complete() -> Arc<TestHost> {
        let host = TestHost::empty();
        for (method, value) in crate::fixtures::complete_answers() {
            host.set(method, Answer::Json(value));
        }
        host
    }

    pub fn set(&self, method: &str, answer: Answer) {
        self.answers.lock().insert(method.to_owned(), answer);
    }

    pub fn fail(&self, method: &str, message: &str) {
        self.set(method, Answer::fail(message));
    }

    pub fn set_log_return(&self, code: i32) {
        self.log_return.store(code, Ordering::SeqCst);
    }

    pub fn set_pump_return(&self, code: i32) {
        self.pump_return.store(code, Ordering::SeqCst);
    }

    pub fn set_event_return(&self, code: i32) {
        self.event_return.store(code, Ordering::SeqCst);
    }

    /// Runs `hook` inside every request_pump call instead of answering
    /// with the configured code.
    pub fn set_pump_hook(&self, hook: impl Fn() -> i32 + Send + Sync + 'static) {
        *self.pump_hook.lock() = Some(Box::new(hook));
    }

    /// Answers requests with `hook` first (it runs on whichever thread
    /// the plugin calls `request` from).
    pub fn set_request_hook(
        &self,
        hook: impl Fn(&str, &[u8]) -> Option<Answer> + Send + Sync + 'static,
    ) {
        *self.request_hook.lock() = Some(Arc::new(hook));
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.requests.lock().clone()
    }

    pub fn logs(&self) -> Vec<LogRecord> {
        self.logs.lock().clone()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.events.lock().clone()
    }

    pub fn write_results(&self) -> Vec<i32> {
        self.write_results.lock().clone()
    }

    /// The threads request_pump was called on, one entry per call.
    pub fn pump_threads(&self) -> Vec<ThreadId> {
        self.pump_threads.lock().clone()
    }

    pub fn pump_requests(&self) -> usize {
        self.pump_threads.lock().len()
    }

    /// Waits until request_pump has been called more than `seen` times;
    /// false on timeout.
    pub fn wait_for_pump_request(&self, seen: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut threads = self.pump_threads.lock();
        while threads.len() <= seen {
            if self
                .pump_signal
                .wait_until(&mut threads, deadline)
                .timed_out()
            {
                return threads.len() > seen;
            }
        }
        true
    }

    pub fn user_data_frees(&self) -> usize {
        self.user_data_frees.load(Ordering::SeqCst)
    }

    pub fn callback_panics(&self) -> usize {
        self.callback_panics.load(Ordering::SeqCst)
    }

    fn answer(&self, method: &str, params: &[u8]) -> Answer {
        // Cloned out, so that the hook runs without the lock held.
        let hook = self.request_hook.lock().clone();
        if let Some(answer) = hook.and_then(|hook| hook(method, params)) {
            return answer;
        }
        self.answers
            .lock()
            .get(method)
            .cloned()
            .unwrap_or_else(|| Answer::fail(&format!("unknown method {method}")))
    }
}

/// Polls `done` every few milliseconds until it holds; false on timeout.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs a callback body, turning a panic into `on_panic`.
fn guarded<T>(host: &TestHost, on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        host.callback_panics.fetch_add(1, Ordering::SeqCst);
        on_panic
    })
}

/// # Safety
/// `user_data` is the pointer [`HostApi`] made from an `Arc<TestHost>` that
/// is still alive (the test keeps its own reference).
unsafe fn host<'a>(user_data: *mut c_void) -> &'a TestHost {
    // SAFETY: see the function's contract.
    unsafe { &*user_data.cast::<TestHost>() }
}

fn c_text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return "<NULL>".to_owned();
    }
    // SAFETY: the plugin passes NUL-terminated strings valid for the call.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

unsafe extern "C" fn request_cb(
    user_data: *mut c_void,
    request: *const od_host_request,
    response: *mut od_host_response,
) -> i32 {
    // SAFETY: user_data is ours (see `host`).
    let host = unsafe { host(user_data) };
    guarded(host, -1, || {
        assert!(!request.is_null() && !response.is_null());
        // SAFETY: valid for the duration of the call, per the ABI.
        let (request, response) = unsafe { (&*request, &mut *response) };
        let method = c_text(request.method);
        let params = if request.params_json.is_null() {
            Vec::new()
        } else {
            // SAFETY: `params_len` bytes at `params_json`, per the ABI.
            unsafe { std::slice::from_raw_parts(request.params_json, request.params_len) }.to_vec()
        };
        host.requests.lock().push(RequestRecord {
            method: method.clone(),
            params: params.clone(),
            thread: std::thread::current().id(),
        });
        let write = response.write.expect("the plugin passes a write function");
        let context = response.context;
        // SAFETY: `write` and `context` come from the plugin for this call.
        let put = |bytes: &[u8]| unsafe { write(context, bytes.as_ptr(), bytes.len()) };
        match host.answer(&method, &params) {
            Answer::Json(value) => {
                // Two writes, to show that answers may come in pieces.
                let text = value.to_string().into_bytes();
                let (head, tail) = text.split_at(text.len() / 2);
                if put(head) != 0 || put(tail) != 0 {
                    return -1;
                }
                0
            }
            Answer::Raw(bytes) => {
                put(&bytes);
                0
            }
            Answer::Fail { code, message } => {
                put(&message);
                code
            }
            Answer::Huge { total } => {
                let chunk = vec![b' '; 1024 * 1024];
                let mut written = 0;
                while written < total {
                    let len = chunk.len().min(total - written);
                    let code = put(&chunk[..len]);
                    if code != 0 {
                        host.write_results.lock().push(code);
                        break;
                    }
                    written += len;
                }
                0
            }
            Answer::MisuseWrite => {
                let byte = [b'{'];
                // SAFETY: each call breaks a rule on purpose; the plugin
                // must refuse without reading the bad pointer.
                let results = unsafe {
                    [
                        write(context, std::ptr::null(), 16),
                        write(std::ptr::null_mut(), byte.as_ptr(), 1),
                        write(context, std::ptr::null(), 0),
                        write(context, byte.as_ptr(), usize::MAX),
                    ]
                };
                host.write_results.lock().extend(results);
                0
            }
        }
    })
}

unsafe extern "C" fn request_pump_cb(user_data: *mut c_void) -> i32 {
    // SAFETY: user_data is ours (see `host`).
    let host = unsafe { host(user_data) };
    guarded(host, -1, || {
        let code = match &*host.pump_hook.lock() {
            Some(hook) => hook(),
            None => host.pump_return.load(Ordering::SeqCst),
        };
        host.pump_threads.lock().push(std::thread::current().id());
        host.pump_signal.notify_all();
        code
    })
}

unsafe extern "C" fn log_cb(user_data: *mut c_void, record: *const od_log_record) -> i32 {
    // SAFETY: user_data is ours (see `host`).
    let host = unsafe { host(user_data) };
    guarded(host, -1, || {
        assert!(!record.is_null());
        // SAFETY: valid for the duration of the call, per the ABI.
        let record = unsafe { &*record };
        host.logs.lock().push(LogRecord {
            struct_size: record.struct_size,
            level: record.level,
            target: c_text(record.target),
            message: c_text(record.message),
            thread: std::thread::current().id(),
        });
        host.log_return.load(Ordering::SeqCst)
    })
}

unsafe extern "C" fn on_event_cb(user_data: *mut c_void, event: *const od_event) -> i32 {
    // SAFETY: user_data is ours (see `host`).
    let host = unsafe { host(user_data) };
    guarded(host, -1, || {
        assert!(!event.is_null());
        // SAFETY: valid for the duration of the call, per the ABI.
        let event = unsafe { &*event };
        host.events.lock().push(EventRecord {
            struct_size: event.struct_size,
            kind: event.kind,
            payload: (!event.payload_json.is_null()).then(|| c_text(event.payload_json)),
            thread: std::thread::current().id(),
        });
        host.event_return.load(Ordering::SeqCst)
    })
}

/// Counts the call; releases the reference [`HostApi`] handed over only the
/// first time, so that a second call is counted instead of freeing twice.
unsafe extern "C" fn user_data_free_cb(user_data: *mut c_void) {
    // SAFETY: user_data is ours (see `host`); the test holds another
    // reference, so the host outlives this call.
    let host = unsafe { host(user_data) };
    if host.user_data_frees.fetch_add(1, Ordering::SeqCst) == 0 {
        // SAFETY: balances the `Arc::into_raw` in `HostApi::table`.
        unsafe { Arc::decrement_strong_count(user_data.cast_const().cast::<TestHost>()) };
    }
}

/// Builds the `od_host_api` table for a [`TestHost`], with every field a
/// test may want to get wrong. Strings are byte vectors so that they can be
/// invalid UTF-8; a NUL is appended when the table is made.
pub struct HostApi {
    pub host: Arc<TestHost>,
    pub struct_size: u32,
    pub abi_major: u32,
    pub abi_minor: u32,
    pub log: bool,
    pub log_level: od_log_level,
    pub request: bool,
    pub request_pump: bool,
    pub on_event: bool,
    pub user_data_free: bool,
    pub data_dir: Option<Vec<u8>>,
    pub trace_log_path: Option<Vec<u8>>,
    pub trace_log_level: od_log_level,
    pub service_url: Option<Vec<u8>>,
}

/// An `od_host_api` and the strings it points to.
pub struct Table {
    /// Bigger than `od_host_api`, so that a host newer than the plugin
    /// (a larger `struct_size`) can be played safely.
    storage: Box<TableStorage>,
    _strings: Vec<Vec<u8>>,
}

#[repr(C)]
struct TableStorage {
    api: od_host_api,
    /// Fields a newer minor version of the ABI might append.
    _future: [u64; 8],
}

impl Table {
    pub fn as_ptr(&self) -> *const od_host_api {
        &self.storage.api
    }
}

impl HostApi {
    /// A table for `host` that the plugin accepts: every callback set, host
    /// log at INFO, no data folder or trace log, and the service address
    /// given (the plugin must never be left to its built-in address, which
    /// is on the internet).
    pub fn new(host: &Arc<TestHost>, service_url: &str) -> HostApi {
        HostApi {
            host: Arc::clone(host),
            struct_size: std::mem::size_of::<od_host_api>() as u32,
            abi_major: OD_VERSION_MAJOR,
            abi_minor: OD_VERSION_MINOR,
            log: true,
            log_level: OD_LOG_LEVEL_INFO,
            request: true,
            request_pump: true,
            on_event: true,
            user_data_free: true,
            data_dir: None,
            trace_log_path: None,
            trace_log_level: OD_LOG_LEVEL_OFF,
            service_url: Some(service_url.as_bytes().to_vec()),
        }
    }

    /// The C table. Each call hands the plugin one reference to the host,
    /// which `user_data_free` gives back.
    pub fn table(&self) -> Table {
        let mut strings = Vec::new();
        let mut c_string = |value: &Option<Vec<u8>>| -> *const c_char {
            match value {
                None => std::ptr::null(),
                Some(bytes) => {
                    let mut owned = bytes.clone();
                    owned.push(0);
                    let ptr = owned.as_ptr().cast();
                    strings.push(owned);
                    ptr
                }
            }
        };
        let api = od_host_api {
            struct_size: self.struct_size,
            abi_major: self.abi_major,
            abi_minor: self.abi_minor,
            user_data: Arc::into_raw(Arc::clone(&self.host)).cast_mut().cast(),
            user_data_free: self
                .user_data_free
                .then_some(user_data_free_cb as unsafe extern "C" fn(*mut c_void)),
            log: self.log.then_some(log_cb as _),
            log_level: self.log_level,
            request: self.request.then_some(request_cb as _),
            request_pump: self.request_pump.then_some(request_pump_cb as _),
            on_event: self.on_event.then_some(on_event_cb as _),
            data_dir: c_string(&self.data_dir),
            trace_log_path: c_string(&self.trace_log_path),
            trace_log_level: self.trace_log_level,
            service_url: c_string(&self.service_url),
        };
        Table {
            storage: Box::new(TableStorage {
                api,
                _future: [0; 8],
            }),
            _strings: strings,
        }
    }
}
