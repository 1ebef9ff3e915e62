//! The host's callback table, checked once and wrapped for plain Rust.

use super::guard::{FfiError, FfiResult};
use super::strings;
use crate::events::Event;
use crate::host::{HostChannel, HostError, MAX_RESPONSE_BYTES};
use crate::logging::{level_number, LogSink};
use od_abi::*;
use std::ffi::{c_void, CString};
use std::mem::{offset_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The smallest `od_host_api` this plugin accepts: every field of ABI 1.0.
pub(crate) const MIN_HOST_API_SIZE: usize = size_of::<od_host_api>();

/// The host's callbacks and `user_data`, copied out of `od_host_api`.
/// Dropping it calls `user_data_free`, which therefore runs exactly once and
/// only after the last plugin thread that could use `user_data` is gone.
pub struct HostTable {
    user_data: *mut c_void,
    user_data_free: od_user_data_free_fn,
    log: od_log_fn,
    request:
        unsafe extern "C" fn(*mut c_void, *const od_host_request, *mut od_host_response) -> i32,
    request_pump: unsafe extern "C" fn(*mut c_void) -> i32,
    on_event: od_event_fn,
}

// SAFETY: the ABI documents `log`, `request` and `request_pump` as callable
// from any thread with this `user_data`; `on_event` is only called from the
// pump, on the thread the host calls it from.
unsafe impl Send for HostTable {}
// SAFETY: as for Send; the table itself is never mutated after creation.
unsafe impl Sync for HostTable {}

/// Calls `user_data_free` for a table that was rejected before a
/// [`HostTable`] took ownership of `user_data`, if the field is readable.
///
/// # Safety
/// `host` is NULL or points to at least `struct_size` readable bytes.
pub unsafe fn release_rejected(host: *const od_host_api) {
    if host.is_null() {
        return;
    }
    // SAFETY: `struct_size` is the first field of every ABI version.
    let size = unsafe { (*host).struct_size } as usize;
    if size >= offset_of!(od_host_api, user_data_free) + size_of::<od_user_data_free_fn>() {
        // SAFETY: the size covers both fields read here.
        let (free, data) = unsafe { ((*host).user_data_free, (*host).user_data) };
        if let Some(free) = free {
            // SAFETY: the host gave this pair for exactly this call.
            unsafe { free(data) };
        }
    }
}

impl HostTable {
    /// Checks the version and the required callbacks and takes ownership
    /// of `user_data`.
    ///
    /// # Safety
    /// `host` points to at least `host.struct_size` readable bytes.
    pub unsafe fn from_api(host: &od_host_api) -> FfiResult<HostTable> {
        if (host.struct_size as usize) < MIN_HOST_API_SIZE {
            return Err(FfiError::new(
                OD_RESULT_STRUCT_SIZE,
                format!(
                    "od_host_api.struct_size is {} but this plugin needs at least {MIN_HOST_API_SIZE}; \
                     set it to sizeof(od_host_api)",
                    host.struct_size
                ),
            ));
        }
        if host.abi_major != OD_VERSION_MAJOR {
            return Err(FfiError::new(
                OD_RESULT_ABI_VERSION,
                format!(
                    "the program was built for Online Desktop ABI {}.{} but this plugin implements {}.{}; \
                     install the plugin version that matches the program",
                    host.abi_major, host.abi_minor, OD_VERSION_MAJOR, OD_VERSION_MINOR
                ),
            ));
        }
        let Some(request) = host.request else {
            return Err(FfiError::new(
                OD_RESULT_HOST_CALLBACK_MISSING,
                "od_host_api.request must not be NULL",
            ));
        };
        let Some(request_pump) = host.request_pump else {
            return Err(FfiError::new(
                OD_RESULT_HOST_CALLBACK_MISSING,
                "od_host_api.request_pump must not be NULL",
            ));
        };
        Ok(HostTable {
            user_data: host.user_data,
            user_data_free: host.user_data_free,
            log: host.log,
            request,
            request_pump,
            on_event: host.on_event,
        })
    }

    pub fn has_log(&self) -> bool {
        self.log.is_some()
    }

    /// Hands one event to the host. Call only from the pump.
    pub fn deliver(&self, event: &Event) -> i32 {
        let Some(on_event) = self.on_event else {
            return 0;
        };
        let payload = event.payload.as_deref().map(strings::to_c);
        let raw = od_event {
            struct_size: size_of::<od_event>() as u32,
            kind: event.kind.number(),
            payload_json: payload.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
        };
        // SAFETY: the host registered this callback for this user_data; the
        // event and its payload outlive the call.
        unsafe { on_event(self.user_data, &raw) }
    }
}

impl Drop for HostTable {
    fn drop(&mut self) {
        if let Some(free) = self.user_data_free.take() {
            // SAFETY: called once, after every user of `user_data` is gone.
            unsafe { free(self.user_data) };
        }
    }
}

/// Collects the host's answer through `od_host_response.write`.
struct Answer {
    bytes: Vec<u8>,
    overflow: bool,
}

unsafe extern "C" fn write_answer(context: *mut c_void, data: *const u8, len: usize) -> i32 {
    // A panic must not unwind into the host's frames.
    catch_unwind(AssertUnwindSafe(|| {
        if context.is_null() || (data.is_null() && len != 0) {
            return -1;
        }
        // SAFETY: `context` is the `Answer` the plugin passed for this
        // request, alive for the duration of the request callback.
        let answer = unsafe { &mut *context.cast::<Answer>() };
        if answer.overflow || answer.bytes.len().saturating_add(len) > MAX_RESPONSE_BYTES {
            answer.overflow = true;
            return -1;
        }
        if len != 0 {
            // SAFETY: the host passes `len` readable bytes at `data`.
            answer
                .bytes
                .extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
        }
        0
    }))
    .unwrap_or(-1)
}

impl HostChannel for HostTable {
    fn request(&self, method: &str, params_json: &[u8]) -> Result<Vec<u8>, HostError> {
        let method_c = strings::to_c(method);
        let mut answer = Answer {
            bytes: Vec::new(),
            overflow: false,
        };
        let request = od_host_request {
            struct_size: size_of::<od_host_request>() as u32,
            method: method_c.as_ptr(),
            params_json: params_json.as_ptr(),
            params_len: params_json.len(),
        };
        let mut response = od_host_response {
            struct_size: size_of::<od_host_response>() as u32,
            context: (&mut answer as *mut Answer).cast(),
            write: Some(write_answer),
        };
        // SAFETY: the host registered this callback; request and response
        // outlive the call, and `write` is only valid during it.
        let code = unsafe { (self.request)(self.user_data, &request, &mut response) };
        if answer.overflow {
            return Err(HostError::InvalidData {
                method: method.to_owned(),
                reason: format!(
                    "the answer is larger than {} MB",
                    MAX_RESPONSE_BYTES / (1024 * 1024)
                ),
            });
        }
        if code != 0 {
            let text = String::from_utf8_lossy(&answer.bytes).trim().to_owned();
            let message = if text.is_empty() {
                format!("error code {code}")
            } else {
                text
            };
            return Err(HostError::Failed {
                method: method.to_owned(),
                message,
            });
        }
        Ok(answer.bytes)
    }

    fn request_pump(&self) {
        // SAFETY: the host registered this thread-safe callback.
        let code = unsafe { (self.request_pump)(self.user_data) };
        if code != 0 {
            tracing::warn!(
                "the program refused to schedule event delivery (code {code}); events stay queued"
            );
        }
    }
}

impl LogSink for HostTable {
    fn log(&self, level: tracing::Level, target: &str, message: &str) {
        let Some(log) = self.log else { return };
        let target: CString = strings::to_c(target);
        let message: CString = strings::to_c(message);
        let record = od_log_record {
            struct_size: size_of::<od_log_record>() as u32,
            level: level_number(level),
            target: target.as_ptr(),
            message: message.as_ptr(),
        };
        // SAFETY: the host registered this thread-safe callback; the record
        // outlives the call. Its return value is ignored by contract.
        unsafe { log(self.user_data, &record) };
    }
}
