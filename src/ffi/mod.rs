//! The C ABI: every exported function. This layer only converts and checks;
//! the work happens in plain Rust modules.
//!
//! Rules kept by every export: the body runs inside the panic guard; every
//! pointer is checked; outputs are written only on success; strings in are
//! copied, never retained.

mod guard;
mod handles;
mod host_table;
mod outputs;
mod strings;

use crate::host::Host;
use crate::logging::{self, LogConfig};
use crate::online::{ServiceUrl, DEFAULT_SERVICE_URL};
use crate::plugin::{Config, Plugin};
use guard::{FfiError, FfiResult};
use host_table::HostTable;
use od_abi::*;
use parking_lot::Mutex;
use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;

/// One live plugin instance behind a handle.
struct Entry {
    plugin: Plugin,
    host: Arc<HostTable>,
    /// The message of the last call on this handle that failed; empty after
    /// a call that succeeded.
    last_error: Mutex<String>,
}

static PLUGINS: handles::Table<Entry> = handles::Table::new();

/// Runs an export on a live handle, under the instance's log dispatcher,
/// and records the outcome for `od_plugin_errmsg`. Only a handle that is
/// not live is a no-handle failure for `od_last_error`.
fn with_plugin(
    export: &'static str,
    handle: *const od_plugin,
    body: impl FnOnce(&Entry) -> FfiResult<()>,
) -> od_result {
    let mut outcome_code = OD_RESULT_OK;
    let code = guard::around_handle(export, || {
        let entry = lookup(handle)?;
        let outcome = tracing::dispatcher::with_default(entry.plugin.dispatch(), || {
            guard::catch(export, || body(&entry))
        });
        let mut last = entry.last_error.lock();
        last.clear();
        if let Err(error) = outcome {
            last.push_str(&error.message);
            outcome_code = error.code;
        }
        Ok(())
    });
    if code == OD_RESULT_OK {
        outcome_code
    } else {
        code
    }
}

fn lookup(handle: *const od_plugin) -> FfiResult<Arc<Entry>> {
    if handle.is_null() {
        return Err(FfiError::null("plugin"));
    }
    PLUGINS.get(handle as usize).ok_or_else(invalid_handle)
}

fn invalid_handle() -> FfiError {
    FfiError::new(
        OD_RESULT_INVALID_HANDLE,
        "the plugin handle is not valid (it was freed already, or does not come from od_plugin_new)",
    )
}

fn require_out<T>(out: *mut T, argument: &str) -> FfiResult<()> {
    if out.is_null() {
        Err(FfiError::null(argument))
    } else {
        Ok(())
    }
}

/// `[thread-safe]` The major version of this plugin's ABI
/// (`OD_VERSION_MAJOR` it was built with).
#[no_mangle]
pub extern "C" fn od_version_major() -> u32 {
    guard::infallible("od_version_major", OD_VERSION_MAJOR, || OD_VERSION_MAJOR)
}

/// `[thread-safe]` The minor version of this plugin's ABI.
#[no_mangle]
pub extern "C" fn od_version_minor() -> u32 {
    guard::infallible("od_version_minor", OD_VERSION_MINOR, || OD_VERSION_MINOR)
}

/// `[thread-safe]` The patch version of this plugin.
#[no_mangle]
pub extern "C" fn od_version_patch() -> u32 {
    guard::infallible("od_version_patch", OD_VERSION_PATCH, || OD_VERSION_PATCH)
}

/// `[thread-safe]` The plugin version as "major.minor.patch". A static
/// string: never free it.
#[no_mangle]
pub extern "C" fn od_version_string() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    guard::infallible("od_version_string", VERSION.as_ptr().cast(), || {
        VERSION.as_ptr().cast()
    })
}

/// `[thread-safe]` A short English description of a status code, for logs.
/// A static string: never free it. Unknown codes give "unknown status code".
#[no_mangle]
pub extern "C" fn od_result_text(result: od_result) -> *const c_char {
    fn text(result: od_result) -> &'static std::ffi::CStr {
        match result {
            OD_RESULT_OK => c"success",
            OD_RESULT_NULL_ARGUMENT => c"a required argument was NULL",
            OD_RESULT_INVALID_ARGUMENT => c"an argument has an invalid value",
            OD_RESULT_STRUCT_SIZE => c"a struct_size is too small",
            OD_RESULT_ABI_VERSION => c"incompatible ABI version",
            OD_RESULT_INVALID_UTF8 => c"a string is not valid UTF-8",
            OD_RESULT_STRING_TOO_LONG => c"a string is too long",
            OD_RESULT_INVALID_HANDLE => c"the handle is not valid",
            OD_RESULT_BUFFER_TOO_SMALL => c"the buffer is too small",
            OD_RESULT_HOST_CALLBACK_FAILED => c"a host callback failed",
            OD_RESULT_HOST_DATA_INVALID => c"a host callback answered with invalid data",
            OD_RESULT_HOST_CALLBACK_MISSING => c"a required host callback is missing",
            OD_RESULT_SERVICE_UNREACHABLE => c"the online service could not be reached",
            OD_RESULT_SERVICE_UNAVAILABLE => c"the online service is unavailable",
            OD_RESULT_SERVICE_AUTH => c"the online service did not accept the credentials",
            OD_RESULT_SERVICE_REFUSED => c"the online service refused the request",
            OD_RESULT_SERVICE_PROTOCOL => c"the online service answered with unreadable data",
            OD_RESULT_BAD_STATE => c"the plugin's state does not allow this call",
            OD_RESULT_HOST_RESTORED => {
                c"the company database seems to have been restored from a backup"
            }
            OD_RESULT_INTERNAL => c"internal error",
            OD_RESULT_PANIC => c"internal error (caught panic)",
            _ => c"unknown status code",
        }
    }
    let fallback = c"internal error".as_ptr();
    guard::infallible("od_result_text", fallback, || text(result).as_ptr())
}

/// `[thread-safe]` Copies the message of the last failed call on this
/// thread that had no valid plugin handle (`od_entry`, `od_plugin_new`, a
/// call with a NULL or stale handle, `od_last_error` itself).
///
/// Copies at most `buf_size` bytes including the terminating NUL into
/// `buf`; `buf` may be NULL only when `buf_size` is 0. When `out_len` is not
/// NULL it receives the message length in bytes, without the NUL. Returns
/// `OD_RESULT_OK`, or `OD_RESULT_BUFFER_TOO_SMALL` when the message was cut
/// (the cut text is still written, as with `snprintf`).
///
/// # Safety
/// `buf` points to `buf_size` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_last_error(
    buf: *mut c_char,
    buf_size: usize,
    out_len: *mut usize,
) -> od_result {
    let message = guard::last_error();
    // The message is read before the call, so a failure here (NULL buffer)
    // replaces it only afterwards; a cut message replaces nothing.
    guard::copy_message("od_last_error", || {
        // SAFETY: forwarded from the caller.
        unsafe { strings::copy_out(&message, buf, buf_size, out_len) }
    })
}

static PLUGIN_API: od_plugin_api = od_plugin_api {
    struct_size: std::mem::size_of::<od_plugin_api>() as u32,
    abi_major: OD_VERSION_MAJOR,
    abi_minor: OD_VERSION_MINOR,
    abi_patch: OD_VERSION_PATCH,
    version_string: Some(od_version_string),
    result_text: Some(od_result_text),
    last_error: Some(od_last_error),
    plugin_new: Some(od_plugin_new),
    plugin_free: Some(od_plugin_free),
    plugin_errmsg: Some(od_plugin_errmsg),
    plugin_pump: Some(od_plugin_pump),
    plugin_check_licence: Some(od_plugin_check_licence),
    licence_report_free: Some(od_licence_report_free),
    plugin_check_prerequisites: Some(od_plugin_check_prerequisites),
    prerequisite_list_free: Some(od_prerequisite_list_free),
    plugin_connection_set: Some(od_plugin_connection_set),
    plugin_sync_start: Some(od_plugin_sync_start),
    plugin_sync_stop: Some(od_plugin_sync_stop),
    plugin_sync_schedule: Some(od_plugin_sync_schedule),
    plugin_sync_notify: Some(od_plugin_sync_notify),
    plugin_sync_status: Some(od_plugin_sync_status),
    sync_status_free: Some(od_sync_status_free),
    plugin_sync_history: Some(od_plugin_sync_history),
    text_free: Some(od_text_free),
    plugin_wizard_open: Some(od_plugin_wizard_open),
    plugin_wizard_page: Some(od_plugin_wizard_page),
    plugin_wizard_set: Some(od_plugin_wizard_set),
    plugin_wizard_action: Some(od_plugin_wizard_action),
    plugin_wizard_close: Some(od_plugin_wizard_close),
    plugin_wizard_open_for: Some(od_plugin_wizard_open_for),
    plugin_restore_check: Some(od_plugin_restore_check),
};

/// `[thread-safe]` The entry point: the one symbol a host looks up after
/// loading the library. Checks that the host's ABI major version matches
/// and returns the plugin's function table in `*out_api`.
///
/// The table is static: it stays valid while the library is loaded and is
/// never freed. Returns `OD_RESULT_ABI_VERSION` (and leaves `*out_api`
/// untouched) when `host_abi_major` differs from `OD_VERSION_MAJOR`; a
/// different minor version is fine, provided the host reads only the
/// table entries that `struct_size` covers.
///
/// # Safety
/// `out_api` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_entry(
    host_abi_major: u32,
    host_abi_minor: u32,
    out_api: *mut *const od_plugin_api,
) -> od_result {
    guard::no_handle("od_entry", || {
        require_out(out_api, "out_api")?;
        if host_abi_major != OD_VERSION_MAJOR {
            return Err(FfiError::new(
                OD_RESULT_ABI_VERSION,
                format!(
                    "This Online Desktop plugin implements ABI {OD_VERSION_MAJOR}.{OD_VERSION_MINOR}, but the program \
                     expects ABI {host_abi_major}.{host_abi_minor}. Install the plugin version that matches the program."
                ),
            ));
        }
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *out_api = &PLUGIN_API };
        Ok(())
    })
}

/// `[ui-thread]` Creates a plugin instance for the company database the
/// host has open.
///
/// `host` is the host's table (see `od_host_api`); the plugin copies what
/// it needs, so the table and its strings may be freed when this returns.
/// Reads the licence data from the host now (a licence change takes effect
/// at the next creation). Does no network work and starts no thread.
///
/// On success writes the handle to `*out_plugin`; free it with
/// `od_plugin_free`. On failure `*out_plugin` is untouched, the message is
/// available from `od_last_error`, and `host->user_data_free` (when the
/// table is readable that far) has been called.
///
/// Returns `OD_RESULT_NULL_ARGUMENT`, `OD_RESULT_STRUCT_SIZE`,
/// `OD_RESULT_ABI_VERSION`, `OD_RESULT_HOST_CALLBACK_MISSING`,
/// `OD_RESULT_INVALID_ARGUMENT` (a log level above `OD_LOG_LEVEL_TRACE`,
/// or a `service_url` that is not https, or http to a non-loopback
/// address), `OD_RESULT_INVALID_UTF8`, `OD_RESULT_STRING_TOO_LONG` (paths
/// over 32 KiB, `service_url` over 2048 bytes), `OD_RESULT_BAD_STATE` (65535
/// instances alive at once), `OD_RESULT_PANIC`.
///
/// # Safety
/// `host` is NULL or points to at least `host->struct_size` readable bytes;
/// `out_plugin` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_new(
    host: *const od_host_api,
    out_plugin: *mut *mut od_plugin,
) -> od_result {
    let mut user_data_taken = false;
    let result = guard::no_handle("od_plugin_new", || {
        if host.is_null() {
            return Err(FfiError::null("host"));
        }
        require_out(out_plugin, "out_plugin")?;
        // SAFETY: checked non-NULL; `struct_size` is read before anything
        // beyond it.
        let api = unsafe { &*host };
        // SAFETY: `HostTable::from_api` checks `struct_size` first.
        let table = Arc::new(unsafe { HostTable::from_api(api) }?);
        // From here on dropping `table` releases user_data.
        user_data_taken = true;
        let config = config_from(api, &table)?;
        let plugin = Plugin::new(Host::new(table.clone()), config);
        let entry = Arc::new(Entry {
            plugin,
            host: table,
            last_error: Mutex::new(String::new()),
        });
        let Some(handle) = PLUGINS.insert(Arc::clone(&entry)) else {
            entry.plugin.shut_down();
            return Err(FfiError::new(
                OD_RESULT_BAD_STATE,
                "too many plugin instances are open at once",
            ));
        };
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *out_plugin = handle as *mut od_plugin };
        Ok(())
    });
    if result != OD_RESULT_OK && !user_data_taken {
        // Rejected before a HostTable owned user_data.
        // SAFETY: `host` is NULL or readable for its `struct_size`.
        unsafe { host_table::release_rejected(host) };
    }
    result
}

/// Reads the context fields of the host table.
fn config_from(api: &od_host_api, table: &Arc<HostTable>) -> FfiResult<Config> {
    let level = |value: u32, field: &str| {
        logging::level_filter(value).ok_or_else(|| {
            FfiError::new(
                OD_RESULT_INVALID_ARGUMENT,
                format!("od_host_api.{field} is {value}; use one of OD_LOG_LEVEL_*"),
            )
        })
    };
    let log_level = level(api.log_level, "log_level")?;
    let trace_level = level(api.trace_log_level, "trace_log_level")?;
    // SAFETY: the host table's strings are NULL or NUL-terminated.
    let data_dir = unsafe { strings::optional(api.data_dir, "data_dir", strings::MAX_PATH_BYTES) }?;
    // SAFETY: as above.
    let trace_path = unsafe {
        strings::optional(
            api.trace_log_path,
            "trace_log_path",
            strings::MAX_PATH_BYTES,
        )
    }?;
    // SAFETY: as above.
    let service_url =
        unsafe { strings::optional(api.service_url, "service_url", strings::MAX_URL_BYTES) }?;
    let service_url = service_url.filter(|url| !url.trim().is_empty());
    let service = ServiceUrl::parse(service_url.as_deref().unwrap_or(DEFAULT_SERVICE_URL))
        .map_err(|e| {
            FfiError::new(
                OD_RESULT_INVALID_ARGUMENT,
                format!("od_host_api.service_url: {e}"),
            )
        })?;
    let mut trace_error = None;
    let trace_file = match trace_path.filter(|p| !p.is_empty()) {
        Some(path) => match logging::open_trace_log(std::path::Path::new(&path)) {
            Ok(file) => Some((file, trace_level)),
            Err(e) => {
                trace_error = Some(format!("the trace log {path} cannot be opened: {e}"));
                None
            }
        },
        None => None,
    };
    let host_sink: Option<(Arc<dyn logging::LogSink>, _)> = table
        .has_log()
        .then(|| (Arc::clone(table) as Arc<dyn logging::LogSink>, log_level));
    let log = LogConfig {
        host: host_sink,
        trace_file,
    };
    if let Some(message) = trace_error {
        // Not fatal: the plugin works without its trace log; say so in the
        // host's log once the instance's logging is set up.
        let dispatch = logging::dispatch(LogConfig {
            host: log.host.clone(),
            trace_file: None,
        });
        tracing::dispatcher::with_default(&dispatch, || tracing::warn!("{message}"));
    }
    Ok(Config {
        data_dir: data_dir.filter(|d| !d.is_empty()).map(PathBuf::from),
        service,
        log,
    })
}

/// `[ui-thread]` Destroys a plugin instance: cancels its background work,
/// joins every thread it started (waiting at most 10 seconds), calls
/// `user_data_free`, and only then returns. Afterwards the host may unload
/// the library. `od_plugin_free(NULL)` does nothing and returns
/// `OD_RESULT_OK`.
///
/// Must not be called from inside a plugin callback running on a plugin
/// thread (`OD_RESULT_BAD_STATE`). Returns `OD_RESULT_INVALID_HANDLE` for a
/// handle that was freed already, and `OD_RESULT_INTERNAL` when background
/// work did not stop in time (the handle is freed anyway).
///
/// # Safety
/// Must not run concurrently with another call on the same handle.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_free(plugin: *mut od_plugin) -> od_result {
    if plugin.is_null() {
        return OD_RESULT_OK;
    }
    guard::no_handle("od_plugin_free", || {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(FfiError::new(
                OD_RESULT_BAD_STATE,
                "od_plugin_free was called from a plugin thread (inside a callback); call it from the program's own thread",
            ));
        }
        let entry = PLUGINS.remove(plugin as usize).ok_or_else(invalid_handle)?;
        let stopped = entry.plugin.shut_down();
        drop(entry);
        if stopped {
            Ok(())
        } else {
            Err(FfiError::new(
                OD_RESULT_INTERNAL,
                "background work of the plugin did not stop in time",
            ))
        }
    })
}

/// `[thread-safe]` Copies the message of the last call on `plugin` that
/// failed (empty when the last call succeeded), like `sqlite3_errmsg`.
/// Buffer rules as for `od_last_error`. This call does not change the
/// stored message.
///
/// # Safety
/// `buf` points to `buf_size` writable bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_errmsg(
    plugin: *const od_plugin,
    buf: *mut c_char,
    buf_size: usize,
    out_len: *mut usize,
) -> od_result {
    guard::copy_message("od_plugin_errmsg", || {
        let entry = lookup(plugin)?;
        let message = entry.last_error.lock().clone();
        // SAFETY: forwarded from the caller.
        unsafe { strings::copy_out(&message, buf, buf_size, out_len) }
    })
}

/// `[ui-thread]` Delivers every queued event to the host's `on_event`
/// callback, on the calling thread. Call it soon after the plugin asked
/// through `request_pump`; calling it when nothing is queued is harmless.
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_pump(plugin: *mut od_plugin) -> od_result {
    with_plugin("od_plugin_pump", plugin, |entry| {
        for event in entry.plugin.take_events() {
            let code = entry.host.deliver(&event);
            if code != 0 {
                tracing::warn!(
                    "the program's event callback returned {code} for {:?}",
                    event.kind
                );
            }
        }
        Ok(())
    })
}

/// `[thread-safe]` The licence check, rule by rule, as read when the
/// instance was created. On success `*out_report` receives a report the
/// caller owns; free it with `od_licence_report_free`.
///
/// # Safety
/// `out_report` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_check_licence(
    plugin: *mut od_plugin,
    out_report: *mut *mut od_licence_report,
) -> od_result {
    with_plugin("od_plugin_check_licence", plugin, |entry| {
        require_out(out_report, "out_report")?;
        let report = outputs::licence_report(entry.plugin.licence());
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *out_report = report };
        Ok(())
    })
}

/// `[thread-safe]` Frees a report from `od_plugin_check_licence`. NULL is
/// ignored; so is a report freed already or a pointer that is not a live
/// report, which is noted in `od_last_error`.
///
/// # Safety
/// None beyond passing the pointer received.
#[no_mangle]
pub unsafe extern "C" fn od_licence_report_free(report: *mut od_licence_report) {
    guard::infallible("od_licence_report_free", (), || {
        if !report.is_null() && !outputs::free_licence_report(report) {
            guard::set_last_error("od_licence_report_free: not a live licence report; ignored");
        }
    })
}

/// `[ui-thread]` Checks every prerequisite for connecting (PRODUCT.md §2)
/// and returns the rows in `*out_list`; free it with
/// `od_prerequisite_list_free`.
///
/// Host data is read afresh through the host's `request` callback on the
/// calling thread, so a fix in the host shows at once. The online-service
/// reachability check runs in the background: its row is
/// `OD_CHECK_PENDING` until it finishes, then the plugin queues
/// `OD_EVENT_PREREQUISITES_CHANGED` and calls `request_pump`; call this
/// function again to get the final row. This call never waits for the
/// network. `flags`: 0, or `OD_CHECK_FLAG_REFRESH` to start a new
/// reachability check even when a recent result is known. A host callback
/// that fails makes its row fail with the host's message; the call itself
/// still succeeds.
///
/// # Safety
/// `out_list` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_check_prerequisites(
    plugin: *mut od_plugin,
    flags: od_check_flags,
    out_list: *mut *mut od_prerequisite_list,
) -> od_result {
    with_plugin("od_plugin_check_prerequisites", plugin, |entry| {
        require_out(out_list, "out_list")?;
        if flags & !OD_CHECK_FLAG_REFRESH != 0 {
            return Err(FfiError::new(
                OD_RESULT_INVALID_ARGUMENT,
                format!("unknown flags {flags:#x}"),
            ));
        }
        let list = entry
            .plugin
            .prerequisites(flags & OD_CHECK_FLAG_REFRESH != 0);
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *out_list = outputs::prerequisite_list(&list) };
        Ok(())
    })
}

/// `[thread-safe]` Frees a list from `od_plugin_check_prerequisites`. NULL
/// is ignored; so is a list freed already or a pointer that is not a live
/// list, which is noted in `od_last_error`.
///
/// # Safety
/// None beyond passing the pointer received.
#[no_mangle]
pub unsafe extern "C" fn od_prerequisite_list_free(list: *mut od_prerequisite_list) {
    guard::infallible("od_prerequisite_list_free", (), || {
        if !list.is_null() && !outputs::free_prerequisite_list(list) {
            guard::set_last_error(
                "od_prerequisite_list_free: not a live prerequisite list; ignored",
            );
        }
    })
}

/// Longest connection document `od_plugin_connection_set` accepts.
const MAX_CONNECTION_BYTES: usize = 64 * 1024;

impl From<crate::sync::engine::Refusal> for FfiError {
    fn from(refusal: crate::sync::engine::Refusal) -> FfiError {
        FfiError::new(refusal.code, refusal.message)
    }
}

/// `[ui-thread]` (ABI 1.1) Stores this company's connection to the online
/// service: which company, and this computer's device credentials.
/// `connection_json` is UTF-8 JSON:
/// `{"service_url": s?, "company_id": uuid, "computer_id": s,
/// "device_id": uuid, "access_token": s, "access_expires_at": RFC 3339,
/// "refresh_token": s}` — as the service's device registration answers
/// (`service_url` defaults to the instance's service). The plugin keeps
/// them in a file only the owner can read and never logs the tokens; it
/// stores rotated tokens itself. Until the connect wizard exists this is
/// how a host (or a test) connects a company.
///
/// Returns `OD_RESULT_NULL_ARGUMENT`, `OD_RESULT_INVALID_UTF8`,
/// `OD_RESULT_STRING_TOO_LONG` (over 64 KiB), `OD_RESULT_INVALID_ARGUMENT`
/// (not the document above; the message names the field),
/// `OD_RESULT_BAD_STATE` (no `data_dir`, or synchronisation is running:
/// stop it first), `OD_RESULT_INTERNAL` (the file cannot be written).
///
/// # Safety
/// `connection_json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_connection_set(
    plugin: *mut od_plugin,
    connection_json: *const c_char,
) -> od_result {
    with_plugin("od_plugin_connection_set", plugin, |entry| {
        // SAFETY: forwarded from the caller.
        let json =
            unsafe { strings::optional(connection_json, "connection_json", MAX_CONNECTION_BYTES) }?
                .ok_or_else(|| FfiError::null("connection_json"))?;
        Ok(entry.plugin.set_connection(&json)?)
    })
}

/// `[ui-thread]` (ABI 1.1) Starts synchronising in the background and
/// returns at once: takes the company's sync lease for this computer,
/// stores the schema, runs (or resumes) the first synchronisation — at its
/// scheduled time, if one is set — and then keeps both sides in step until
/// `od_plugin_sync_stop` or `od_plugin_free`. Progress and state changes
/// arrive as `OD_EVENT_SYNC_PROGRESS` and `OD_EVENT_SYNC_STATE` through the
/// pump; `od_plugin_sync_status` tells the rest. Starting a running engine
/// does nothing.
///
/// While it runs the plugin calls the host's `request` from its own worker
/// thread (the `[thread-safe]` rule of the data channel), and asks the
/// host to block use of the program during the first synchronisation
/// (`sync.block` / `sync.unblock`).
///
/// `flags`: 0, or `OD_SYNC_FLAG_NOW` to run the first synchronisation now
/// even when it is scheduled later. Returns `OD_RESULT_INVALID_ARGUMENT`
/// (unknown flags), `OD_RESULT_BAD_STATE` (not connected, no `data_dir`,
/// or still stopping).
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_sync_start(
    plugin: *mut od_plugin,
    flags: od_sync_flags,
) -> od_result {
    with_plugin("od_plugin_sync_start", plugin, |entry| {
        if flags & !OD_SYNC_FLAG_NOW != 0 {
            return Err(FfiError::new(
                OD_RESULT_INVALID_ARGUMENT,
                format!("unknown flags {flags:#x}"),
            ));
        }
        Ok(entry.plugin.start_sync(flags & OD_SYNC_FLAG_NOW != 0)?)
    })
}

/// `[thread-safe]` (ABI 1.1) Asks synchronisation to stop and returns at
/// once. It stops at the next safe point (between batches; a wait for
/// online changes is cut short), then `OD_EVENT_SYNC_STATE` reports
/// `stopped`. A first synchronisation that is stopped continues where it
/// stopped at the next start. Stopping an engine that does not run does
/// nothing.
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_sync_stop(plugin: *mut od_plugin) -> od_result {
    with_plugin("od_plugin_sync_stop", plugin, |entry| {
        entry.plugin.stop_sync();
        Ok(())
    })
}

/// `[ui-thread]` (ABI 1.1) Schedules the first synchronisation for `at`,
/// an RFC 3339 date and time with its offset (`2026-12-24T22:00:00+01:00`);
/// NULL clears the schedule. A running engine (for example the host's
/// background agent) waits for that time, then starts. Returns
/// `OD_RESULT_INVALID_ARGUMENT` (not such a time, or a time already past),
/// `OD_RESULT_BAD_STATE` (the first synchronisation is done already, or
/// no `data_dir`), `OD_RESULT_INVALID_UTF8`, `OD_RESULT_STRING_TOO_LONG`.
///
/// # Safety
/// `at` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_sync_schedule(
    plugin: *mut od_plugin,
    at: *const c_char,
) -> od_result {
    with_plugin("od_plugin_sync_schedule", plugin, |entry| {
        // SAFETY: forwarded from the caller.
        let at = unsafe { strings::optional(at, "at", 256) }?;
        Ok(entry.plugin.schedule_sync(at.as_deref())?)
    })
}

/// `[thread-safe]` (ABI 1.1) Tells the plugin the host has just committed
/// changes to the company database, so they go online now rather than at
/// the plugin's next look at the change log (a quarter of a second).
/// Cheap; never waits. Without a running engine it does nothing.
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_sync_notify(plugin: *mut od_plugin) -> od_result {
    with_plugin("od_plugin_sync_notify", plugin, |entry| {
        entry.plugin.notify_sync();
        Ok(())
    })
}

/// `[thread-safe]` (ABI 1.1) The synchronisation status (state, last
/// success, pending changes each way, current error, first-sync progress)
/// in `*out_status`; free it with `od_sync_status_free`. Never waits for
/// the network.
///
/// # Safety
/// `out_status` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_sync_status(
    plugin: *mut od_plugin,
    out_status: *mut *mut od_sync_status,
) -> od_result {
    with_plugin("od_plugin_sync_status", plugin, |entry| {
        require_out(out_status, "out_status")?;
        let status = outputs::sync_status(&entry.plugin.sync_status());
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *out_status = status };
        Ok(())
    })
}

/// `[thread-safe]` (ABI 1.1) Frees a status from `od_plugin_sync_status`.
/// NULL is ignored; so is a status freed already or a pointer that is not
/// a live status, which is noted in `od_last_error`.
///
/// # Safety
/// None beyond passing the pointer received.
#[no_mangle]
pub unsafe extern "C" fn od_sync_status_free(status: *mut od_sync_status) {
    guard::infallible("od_sync_status_free", (), || {
        if !status.is_null() && !outputs::free_sync_status(status) {
            guard::set_last_error("od_sync_status_free: not a live status; ignored");
        }
    })
}

/// `[thread-safe]` (ABI 1.1) The synchronisation history as UTF-8 JSON in
/// `*out_history` (free with `od_text_free`):
/// `{"runs": [{"id", "kind": "first_sync"|"continuous", "started_at",
/// "ended_at": s?, "outcome": "running"|"finished"|"stopped"|"failed"|
/// "interrupted", "error": s?, "entities": [{"entity", "to_online",
/// "to_host"}]}], "conflicts": [{"entity", "global_id", "field",
/// "host_value", "online_value", "outcome", "recorded_at"}], "parked":
/// [{"entity", "global_id", "reason", "since", "tries"}]}` — runs newest
/// first (at most 200), conflicts of the last 7 days, and the online
/// changes set aside because the program refused them (with its reason;
/// tried again at each start, when the record changes online, and every
/// 5 minutes). Returns `OD_RESULT_NULL_ARGUMENT`, `OD_RESULT_BAD_STATE`
/// (no `data_dir`), `OD_RESULT_INTERNAL` (the history cannot be read).
///
/// # Safety
/// `out_history` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_sync_history(
    plugin: *mut od_plugin,
    out_history: *mut *mut od_text,
) -> od_result {
    with_plugin("od_plugin_sync_history", plugin, |entry| {
        require_out(out_history, "out_history")?;
        let json = entry.plugin.sync_history()?;
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *out_history = outputs::text(&json) };
        Ok(())
    })
}

/// `[thread-safe]` (ABI 1.1) Frees a text from the plugin (for example
/// `od_plugin_sync_history`'s). NULL is ignored; so is a text freed
/// already or a pointer that is not a live text, noted in `od_last_error`.
///
/// # Safety
/// None beyond passing the pointer received.
#[no_mangle]
pub unsafe extern "C" fn od_text_free(text: *mut od_text) {
    guard::infallible("od_text_free", (), || {
        if !text.is_null() && !outputs::free_text(text) {
            guard::set_last_error("od_text_free: not a live text; ignored");
        }
    })
}

/// Longest field id or value `od_plugin_wizard_set` accepts, in bytes.
const MAX_WIZARD_VALUE_BYTES: usize = 4096;

/// `[ui-thread]` (ABI 1.2) Opens the connect wizard (PRODUCT.md §3) on
/// its first page, the prerequisites. Reads the current user from the host
/// on the calling thread; does no network work itself (the prerequisites
/// page starts the reachability check in the background).
///
/// The wizard is a state machine inside the plugin; the host only renders
/// its pages. Its threading rules:
/// - Every `od_plugin_wizard_*` function is `[ui-thread]`: call them from
///   the thread that pumps (`od_plugin_pump`), never from two threads at
///   once. None of them waits for the network.
/// - `od_plugin_wizard_action` returns at once. Work that needs the online
///   service (create an Online ID, log in, finish) runs on the plugin's
///   own threads; meanwhile the page is `busy` and every action except
///   `OD_WIZARD_CANCEL` is refused with `OD_RESULT_BAD_STATE`.
/// - When background work changes the page, the plugin queues
///   `OD_EVENT_WIZARD_CHANGED` and calls `request_pump`; after pumping,
///   read the page again with `od_plugin_wizard_page`.
/// - The plugin calls the host's `request` for the wizard's data on the
///   calling thread and, during finish, on its own threads (the
///   `[thread-safe]` rule of the data channel).
///
/// Returns `OD_RESULT_BAD_STATE` when the current user is not a super
/// user, the company is connected already, there is no `data_dir`, or a
/// wizard is open already (close it first); `OD_RESULT_HOST_CALLBACK_FAILED`
/// when the host cannot say who is logged in. The message says which.
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_wizard_open(plugin: *mut od_plugin) -> od_result {
    with_plugin("od_plugin_wizard_open", plugin, |entry| {
        Ok(entry.plugin.wizard_open()?)
    })
}

/// `[ui-thread]` (ABI 1.2) The connect wizard's current page as UTF-8 JSON
/// in `*out_json` (free with `od_text_free`). Every page has the same
/// shape, so a host renders it without knowing the pages (docs/WIZARD.md):
///
/// `{"page": "prerequisites"|"welcome"|"online_id"|"company"|"start"|
/// "finish"|"cancelled", "step": n (1-6; 0 when cancelled), "steps": 6,
/// "title": s, "text": s (paragraphs separated by a blank line),
/// "fields": [{"id": s, "label": s, "kind": "text"|"email"|"password"|
/// "choice"|"datetime"|"info", "value": s|null, "required": b,
/// "read_only": b, "help": s|null, "choices": [{"value": s, "label": s}]|null,
/// "error": s|null}], "rows": [{"id", "title", "state": "passed"|"failed"|
/// "pending", "blocking": b, "detail", "fix_location"}]|null,
/// "actions": {"back": b, "next": b, "finish": b, "cancel": b,
/// "create_online_id": b, "recheck": b}, "busy": b, "busy_text": s|null,
/// "error": s|null, "error_code": n|null, "notice": s|null, "done": b,
/// "cancelled": b}`
///
/// Every key is always present. A field's `error` is shown at the field,
/// the page's `error` (with its `od_result` in `error_code`) above them,
/// `notice` as information. A `password` field's `value` is always the
/// empty string: the plugin never hands a password back. `rows` are the
/// prerequisites (first page only). When `done` (connected) or `cancelled`
/// is true, every action is false: show the page, then close the wizard.
/// Host data on the page is read afresh on the calling thread.
///
/// Returns `OD_RESULT_NULL_ARGUMENT`, `OD_RESULT_BAD_STATE` (no wizard is
/// open).
///
/// # Safety
/// `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_wizard_page(
    plugin: *mut od_plugin,
    out_json: *mut *mut od_text,
) -> od_result {
    with_plugin("od_plugin_wizard_page", plugin, |entry| {
        require_out(out_json, "out_json")?;
        let json = entry.plugin.wizard_page()?;
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { *out_json = outputs::text(&json) };
        Ok(())
    })
}

/// `[ui-thread]` (ABI 1.2) Sets a field of the wizard's current page to
/// `value` (UTF-8; both strings are copied). Fields: on `online_id`
/// `email` and `password`; on `start` `when` (`"now"` or `"later"`) and
/// `at` (a date and time). The password is kept only in memory until the
/// login, zeroed afterwards, never logged and never shown on a page.
/// Values are checked when the person moves on (`OD_WIZARD_NEXT`), and a
/// problem shows as the field's `error`.
///
/// Returns `OD_RESULT_NULL_ARGUMENT`, `OD_RESULT_INVALID_UTF8`,
/// `OD_RESULT_STRING_TOO_LONG` (over 4096 bytes), `OD_RESULT_INVALID_ARGUMENT`
/// (no such field on this page, a value over 512 characters, or a `when`
/// that is neither choice), `OD_RESULT_BAD_STATE` (no wizard open, or the
/// page is busy).
///
/// # Safety
/// `field_id` and `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn od_plugin_wizard_set(
    plugin: *mut od_plugin,
    field_id: *const c_char,
    value: *const c_char,
) -> od_result {
    with_plugin("od_plugin_wizard_set", plugin, |entry| {
        // SAFETY: forwarded from the caller.
        let field = unsafe { strings::optional(field_id, "field_id", MAX_WIZARD_VALUE_BYTES) }?
            .ok_or_else(|| FfiError::null("field_id"))?;
        // SAFETY: forwarded from the caller.
        let value = unsafe { strings::optional(value, "value", MAX_WIZARD_VALUE_BYTES) }?
            .map(od_client::Secret::new)
            .ok_or_else(|| FfiError::null("value"))?;
        Ok(entry.plugin.wizard_set(&field, value.expose())?)
    })
}

/// `[ui-thread]` (ABI 1.2) Asks the wizard to do `action`, one of
/// `OD_WIZARD_*`, and returns at once. The page's `actions` say which are
/// possible now. Next, Back and Recheck change the page at once (or show
/// field errors); Create a new Online ID, Next on the Online ID page (log
/// in) and Finish run in the background: the page is `busy` until
/// `OD_EVENT_WIZARD_CHANGED` arrives. Service errors (wrong password,
/// Online ID not verified, service unreachable, licence refused, company
/// already connected) show on the page they concern, and the person can
/// correct and try again. Cancel is possible on every page and while busy
/// (except in the last moment of finish, when the connection is being
/// stored): it leaves nothing behind; a running finish first takes back
/// what it registered (the page stays busy until it has).
///
/// Returns `OD_RESULT_INVALID_ARGUMENT` (not an `OD_WIZARD_*` value),
/// `OD_RESULT_BAD_STATE` (no wizard open; the page is busy; the action is
/// not possible on this page; cancel after the company was connected).
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_wizard_action(
    plugin: *mut od_plugin,
    action: od_wizard_action,
) -> od_result {
    with_plugin("od_plugin_wizard_action", plugin, |entry| {
        let action = crate::wizard::Action::try_from(action)?;
        Ok(entry.plugin.wizard_action(action)?)
    })
}

/// `[ui-thread]` (ABI 1.2) Closes the connect wizard. A wizard that has not
/// connected the company is cancelled first (nothing is left behind).
/// Closing when no wizard is open does nothing. Returns
/// `OD_RESULT_BAD_STATE` while the page is busy (cancel, wait for the
/// page to be no longer busy, then close). `od_plugin_free` closes an
/// open wizard too.
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_wizard_close(plugin: *mut od_plugin) -> od_result {
    with_plugin("od_plugin_wizard_close", plugin, |entry| {
        Ok(entry.plugin.wizard_close()?)
    })
}

/// `[ui-thread]` (ABI 1.2) Opens the wizard for `mode`, one of
/// `OD_WIZARD_MODE_*`. `OD_WIZARD_MODE_CONNECT` is
/// `od_plugin_wizard_open`. The other modes use the same page JSON
/// (`"mode"` names the mode), actions, threading rules and
/// `OD_EVENT_WIZARD_CHANGED` as the connect wizard, with two pages:
/// `online_id` (log in) and `confirm` (what will happen; `OD_WIZARD_FINISH`
/// does it; `done` with the summary when it has):
/// - `OD_WIZARD_MODE_UPDATE_CONNECTION`: a super user of the company
///   online (usually "Connected by") logs in; finish stops synchronisation
///   and waits for it, registers this computer again (the old credentials
///   stop working), stores the new ones, reconciles a noticed restore of
///   the company database (`OD_RESULT_HOST_RESTORED`), and starts
///   synchronisation again where it stopped.
/// - `OD_WIZARD_MODE_DISCONNECT`: only "Connected by", only on the computer
///   the connection belongs to; finish stops synchronisation, deletes the
///   online copy of the data, removes the add-on's connection and state on
///   this computer (the program's data is never touched) and tells the host
///   with `connection.forget`.
/// - `OD_WIZARD_MODE_CHANGE_USER` (= 4): hands "Connected by" to the
///   person logged in with their own Online ID; only a super user linked
///   to an employee with an e-mail address (pre-filled), only on the
///   computer the connection belongs to. Finish asks the service with the
///   Online ID's session and this computer's device token, tells the host
///   with `connection.record` (the new `connected_by`); the device stays
///   and synchronisation goes on. The person who is "Connected by" already
///   is refused on the `online_id` page.
/// - `OD_WIZARD_MODE_SYNC_COMPUTER` (= 5, ABI 1.3): makes *this* computer
///   the sync computer (open it on the computer that is to synchronise),
///   also after its add-on folder was lost. Needs the host method
///   `connection.get` (the company must be connected). Finish moves
///   synchronisation here online (the previous sync computer stops at its
///   next write), registers this computer, stores its credentials, tells
///   the host with `connection.record` (this computer's id) and starts
///   synchronisation, which takes the online records over: nothing is sent
///   twice.
///
/// Cancel on either page changes nothing; once finish runs it can no longer
/// be cancelled. An error (wrong password, not "Connected by" — the message
/// names who is —, the service unreachable) shows on the `online_id` page;
/// log in again to retry.
///
/// Returns `OD_RESULT_INVALID_ARGUMENT` (not an `OD_WIZARD_MODE_*` value),
/// `OD_RESULT_BAD_STATE` (not a super user; for connect: connected already,
/// here or from another computer; for update connection, disconnect and
/// change user: not connected on this computer; for disconnect and change
/// user: not the sync computer; for change user: not linked to an employee
/// with an e-mail address; for sync computer: the company is not connected,
/// or this computer synchronises it already; no `data_dir`; a wizard is
/// open already),
/// `OD_RESULT_HOST_CALLBACK_FAILED`.
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_wizard_open_for(
    plugin: *mut od_plugin,
    mode: od_wizard_mode,
) -> od_result {
    with_plugin("od_plugin_wizard_open_for", plugin, |entry| {
        let mode = crate::wizard::Mode::try_from(mode)?;
        Ok(entry.plugin.wizard_open_for(mode)?)
    })
}

/// `[ui-thread]` (ABI 1.2) The restore guard (PRODUCT.md §5.9): the host
/// calls it before restoring a backup of this company database. Returns
/// `OD_RESULT_OK` when a restore is allowed (the company is not connected
/// on this computer), `OD_RESULT_BAD_STATE` when it is connected, with the
/// reason for the person in the plugin's message (`od_plugin_last_error`).
/// Reads only local files; no network, no host call.
///
/// # Safety
/// `plugin` is a handle from `od_plugin_new` or any other value (checked).
#[no_mangle]
pub unsafe extern "C" fn od_plugin_restore_check(plugin: *mut od_plugin) -> od_result {
    with_plugin("od_plugin_restore_check", plugin, |entry| {
        Ok(entry.plugin.restore_check()?)
    })
}

/// Test builds only (cargo feature `test-panic`): makes the export named
/// `export` panic on its next calls, to prove that the panic guard holds;
/// NULL stops it. Not part of the ABI and not in the header.
///
/// # Safety
/// `export` is NULL or a NUL-terminated string.
#[cfg(feature = "test-panic")]
#[no_mangle]
pub unsafe extern "C" fn od_test_inject_panic(export: *const c_char) -> od_result {
    guard::no_handle("od_test_inject_panic", || {
        // SAFETY: forwarded from the caller.
        let name = unsafe { strings::optional(export, "export", 256) }?;
        guard::injection::set(name);
        Ok(())
    })
}
