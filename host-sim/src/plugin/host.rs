//! The host's side of the ABI: the callbacks the plugin calls, over the
//! simulator's real databases.

use crate::channel::{self, HostContext};
use od_abi::*;
use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where the plugin's log records go.
pub trait LogOutput: Send + Sync {
    fn record(&self, level: od_log_level, target: &str, message: &str);
}

/// Prints records on standard error, as a host's log window would show them.
pub struct StderrLog;

impl LogOutput for StderrLog {
    fn record(&self, level: od_log_level, target: &str, message: &str) {
        let name = match level {
            OD_LOG_LEVEL_ERROR => "ERROR",
            OD_LOG_LEVEL_WARN => "WARN",
            OD_LOG_LEVEL_INFO => "INFO",
            OD_LOG_LEVEL_DEBUG => "DEBUG",
            _ => "TRACE",
        };
        eprintln!("[add-on {name} {target}] {message}");
    }
}

/// The state behind `user_data`: what the host knows and what the plugin
/// has asked of it.
///
/// Shared by the host's own thread and the plugin's worker threads (which
/// call `request`, `request_pump` and `log`): the context is read-only, the
/// log output is `Send + Sync`, and everything that changes is behind the
/// one mutex. `request` opens its own database connections per call.
pub struct HostState {
    pub context: HostContext,
    log: Option<Box<dyn LogOutput>>,
    pump: Mutex<PumpState>,
    pump_signal: Condvar,
}

#[derive(Default)]
struct PumpState {
    requested: bool,
    /// Someone outside the plugin (a signal handler) woke the loop.
    interrupted: bool,
    events: Vec<Event>,
}

/// One event the plugin delivered through `od_plugin_pump`, copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// One of `OD_EVENT_*`.
    pub kind: od_event_kind,
    /// The JSON payload, for kinds that have one.
    pub payload: Option<String>,
}

/// Why [`HostState::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The plugin asked for a pump.
    Pump,
    /// [`HostState::interrupt`] was called (for example on SIGTERM).
    Interrupted,
    /// Nothing happened within the time given.
    Timeout,
}

// The plugin calls the callbacks from any thread (see above).
const _: () = {
    const fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<HostState>();
};

impl HostState {
    pub fn new(context: HostContext, log: Option<Box<dyn LogOutput>>) -> HostState {
        HostState {
            context,
            log,
            pump: Mutex::new(PumpState::default()),
            pump_signal: Condvar::new(),
        }
    }

    pub fn has_log(&self) -> bool {
        self.log.is_some()
    }

    /// Waits until the plugin asks for a pump, at most `timeout`. Returns
    /// whether it asked (and clears the request).
    pub fn wait_for_pump_request(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.pump.lock().unwrap_or_else(|e| e.into_inner());
        while !state.requested {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .pump_signal
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.requested = false;
        true
    }

    /// Waits until the plugin asks for a pump or the loop is interrupted,
    /// at most `timeout`, and clears what it reports. A pending interrupt
    /// is reported before a pump request, and stays reported until
    /// [`HostState::clear_interrupt`].
    pub fn wait(&self, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        let mut state = self.pump.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.interrupted {
                return Wake::Interrupted;
            }
            if state.requested {
                state.requested = false;
                return Wake::Pump;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Wake::Timeout;
            }
            state = self
                .pump_signal
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Wakes the loop waiting in [`HostState::wait`]. `[thread-safe]`.
    pub fn interrupt(&self) {
        self.pump
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .interrupted = true;
        self.pump_signal.notify_all();
    }

    /// Forgets an interrupt once the loop has acted on it.
    pub fn clear_interrupt(&self) {
        self.pump
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .interrupted = false;
    }

    /// Takes the events delivered by the last pumps, oldest first.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.pump.lock().unwrap_or_else(|e| e.into_inner()).events)
    }
}

/// `od_host_api.request`: answers from the installation on disk.
pub(crate) unsafe extern "C" fn request(
    user_data: *mut c_void,
    request: *const od_host_request,
    response: *mut od_host_response,
) -> i32 {
    catch_unwind(AssertUnwindSafe(|| {
        if user_data.is_null() || request.is_null() || response.is_null() {
            return 1;
        }
        // SAFETY: user_data is the HostState given with this table; the
        // plugin passes valid request and response structs for the call.
        let (state, request, response) =
            unsafe { (&*user_data.cast::<HostState>(), &*request, &*response) };
        // SAFETY: the method is a NUL-terminated string for the call.
        let method = unsafe { CStr::from_ptr(request.method) }.to_string_lossy();
        let params = if request.params_json.is_null() || request.params_len == 0 {
            serde_json::Value::Null
        } else {
            // SAFETY: params_json has params_len readable bytes.
            let bytes =
                unsafe { std::slice::from_raw_parts(request.params_json, request.params_len) };
            serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null)
        };
        let (code, answer) = match channel::handle(&state.context, &method, &params) {
            Ok(value) => (0, value.to_string()),
            Err(error) => (1, error.to_string()),
        };
        if let Some(write) = response.write {
            // SAFETY: write/context come from the plugin for this call.
            if unsafe { write(response.context, answer.as_ptr(), answer.len()) } != 0 {
                return 1;
            }
        }
        code
    }))
    .unwrap_or(1)
}

/// `od_host_api.request_pump`: [thread-safe] remember and wake the UI loop.
pub(crate) unsafe extern "C" fn request_pump(user_data: *mut c_void) -> i32 {
    if user_data.is_null() {
        return 1;
    }
    // SAFETY: user_data is the HostState given with this table.
    let state = unsafe { &*user_data.cast::<HostState>() };
    state
        .pump
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .requested = true;
    state.pump_signal.notify_all();
    0
}

/// `od_host_api.on_event`: [ui-thread] record the event for the UI.
pub(crate) unsafe extern "C" fn on_event(user_data: *mut c_void, event: *const od_event) -> i32 {
    if user_data.is_null() || event.is_null() {
        return 1;
    }
    // SAFETY: user_data is the HostState; event is valid for the call.
    let (state, event) = unsafe { (&*user_data.cast::<HostState>(), &*event) };
    // SAFETY: the payload is NULL or NUL-terminated, valid for the call.
    let payload = (!event.payload_json.is_null())
        .then(|| unsafe { super::loader::c_text(event.payload_json) });
    state
        .pump
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .events
        .push(Event {
            kind: event.kind,
            payload,
        });
    0
}

/// `od_host_api.log`: [thread-safe] forward to the log output.
pub(crate) unsafe extern "C" fn log(user_data: *mut c_void, record: *const od_log_record) -> i32 {
    if user_data.is_null() || record.is_null() {
        return 1;
    }
    // SAFETY: user_data is the HostState; record and its strings are valid
    // for the call.
    let (state, record) = unsafe { (&*user_data.cast::<HostState>(), &*record) };
    if let Some(out) = &state.log {
        // SAFETY: as above.
        let (target, message) = unsafe {
            (
                super::loader::c_text(record.target),
                super::loader::c_text(record.message),
            )
        };
        out.record(record.level, &target, &message);
    }
    0
}

/// `od_host_api.user_data_free`: drops the HostState reference the plugin
/// held.
pub(crate) unsafe extern "C" fn user_data_free(user_data: *mut c_void) {
    if !user_data.is_null() {
        // SAFETY: made by Arc::into_raw in `Instance::create`; the plugin
        // calls this exactly once.
        drop(unsafe { std::sync::Arc::from_raw(user_data.cast::<HostState>().cast_const()) });
    }
}
