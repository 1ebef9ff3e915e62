//! The C ABI of the Online Desktop plugin, as plain `#[repr(C)]` Rust types.
//!
//! This crate holds only types and constants, no behaviour. The plugin
//! implements them; a Rust host (the host simulator) uses them to load the
//! plugin exactly as a C host would through `include/online_desktop.h`, which
//! cbindgen generates from this crate and the plugin's exports.
//!
//! Names follow the C side (`od_` prefix, snake case) so that the header and
//! the Rust source read the same.
#![allow(non_camel_case_types)]
#![no_std]

use core::ffi::{c_char, c_void};

/// Major version of the ABI. A host and a plugin work together only when
/// their major versions are equal.
pub const OD_VERSION_MAJOR: u32 = 1;
/// Minor version of the ABI. Grows when functions or struct fields are
/// appended; a host built against an older minor version keeps working.
pub const OD_VERSION_MINOR: u32 = 3;
/// Patch version: fixes that do not change the ABI.
pub const OD_VERSION_PATCH: u32 = 0;

/// Status code returned by every fallible function.
///
/// Codes are grouped in ranges and never renumbered:
/// 0 success; 100-199 the caller passed something wrong; 200-299 a host
/// callback failed or answered badly; 300-399 the online service;
/// 400-499 the state of the plugin does not allow the call;
/// 900-999 internal faults of the plugin.
pub type od_result = u32;

/// Success.
pub const OD_RESULT_OK: od_result = 0;
/// A required pointer argument was NULL.
pub const OD_RESULT_NULL_ARGUMENT: od_result = 100;
/// An argument has a value outside its documented range.
pub const OD_RESULT_INVALID_ARGUMENT: od_result = 101;
/// A struct's `struct_size` is smaller than the smallest size this plugin
/// accepts for it.
pub const OD_RESULT_STRUCT_SIZE: od_result = 102;
/// The host was built for an ABI major version this plugin does not speak.
pub const OD_RESULT_ABI_VERSION: od_result = 103;
/// A string argument is not valid UTF-8.
pub const OD_RESULT_INVALID_UTF8: od_result = 104;
/// A string argument is longer than the plugin accepts.
pub const OD_RESULT_STRING_TOO_LONG: od_result = 105;
/// The handle is not a live handle of this plugin (freed, or foreign).
pub const OD_RESULT_INVALID_HANDLE: od_result = 106;
/// The caller's buffer was too small; the output was truncated.
pub const OD_RESULT_BUFFER_TOO_SMALL: od_result = 107;
/// A host callback reported failure.
pub const OD_RESULT_HOST_CALLBACK_FAILED: od_result = 200;
/// A host callback answered with data the plugin cannot use.
pub const OD_RESULT_HOST_DATA_INVALID: od_result = 201;
/// A required host callback is missing (NULL) in the host table.
pub const OD_RESULT_HOST_CALLBACK_MISSING: od_result = 202;
/// The online service could not be reached (no connection, name lookup or
/// TLS failure, or no answer in time).
pub const OD_RESULT_SERVICE_UNREACHABLE: od_result = 300;
/// The online service is overloaded or failing (5xx, or 429 after retries).
pub const OD_RESULT_SERVICE_UNAVAILABLE: od_result = 301;
/// The online service did not accept the credentials (wrong password,
/// Online ID not verified, token expired or revoked).
pub const OD_RESULT_SERVICE_AUTH: od_result = 302;
/// The online service refused the request; the message says why.
pub const OD_RESULT_SERVICE_REFUSED: od_result = 303;
/// The online service answered with something the plugin cannot read.
pub const OD_RESULT_SERVICE_PROTOCOL: od_result = 304;
/// The plugin is shutting down or in a state that does not allow the call.
pub const OD_RESULT_BAD_STATE: od_result = 400;
/// (ABI 1.2) The company database seems to have been restored from a
/// backup: its change log is behind what was synchronised. Synchronisation
/// stops until Update connection (`OD_WIZARD_MODE_UPDATE_CONNECTION`).
pub const OD_RESULT_HOST_RESTORED: od_result = 402;
/// An unexpected internal error.
pub const OD_RESULT_INTERNAL: od_result = 900;
/// The plugin caught a panic inside this call. The plugin stays usable;
/// report the message (see `od_plugin_errmsg` / `od_last_error`) to support.
pub const OD_RESULT_PANIC: od_result = 901;

/// Log level of a log record and of the level filters in `od_host_api`.
/// A filter forwards records at its level and every more severe level.
pub type od_log_level = u32;
/// Forward nothing.
pub const OD_LOG_LEVEL_OFF: od_log_level = 0;
/// Errors only.
pub const OD_LOG_LEVEL_ERROR: od_log_level = 1;
/// Warnings and errors.
pub const OD_LOG_LEVEL_WARN: od_log_level = 2;
/// Information, warnings and errors.
pub const OD_LOG_LEVEL_INFO: od_log_level = 3;
/// Debug output and above.
pub const OD_LOG_LEVEL_DEBUG: od_log_level = 4;
/// Everything.
pub const OD_LOG_LEVEL_TRACE: od_log_level = 5;

/// Kind of an `od_event`.
pub type od_event_kind = u32;
/// The result of a prerequisite check changed (for example the online
/// service reachability check finished). Call
/// `od_plugin_check_prerequisites` again to get the new list. No payload.
pub const OD_EVENT_PREREQUISITES_CHANGED: od_event_kind = 1;
/// (ABI 1.1) The synchronisation changed state (started, first sync
/// finished, error, retrying, stopped, ...). Payload:
/// `{"state": s, "error": s | null}`, `state` as in `od_sync_status`'s
/// `state_name`. Call `od_plugin_sync_status` for the whole picture.
pub const OD_EVENT_SYNC_STATE: od_event_kind = 2;
/// (ABI 1.1) Progress of the first synchronisation, after each batch.
/// Payload: `{"entity": s, "entity_title": s, "entity_done": n,
/// "entity_total": n, "done": n, "total": n, "seconds_left": n | null}`.
/// Events are merged while the host has not pumped, so a slow host sees
/// fewer, never stale, ones.
pub const OD_EVENT_SYNC_PROGRESS: od_event_kind = 3;
/// (ABI 1.2) The connect wizard's page changed (background work finished
/// or failed, a prerequisite was checked, a field was validated). Read it
/// again with `od_plugin_wizard_page`. No payload.
pub const OD_EVENT_WIZARD_CHANGED: od_event_kind = 4;

/// (ABI 1.2) What the person asked the connect wizard to do
/// (`od_plugin_wizard_action`). A page's `actions` object says which are
/// allowed now.
pub type od_wizard_action = u32;
/// Go to the next page (on the Online ID page: log in).
pub const OD_WIZARD_NEXT: od_wizard_action = 1;
/// Go to the previous page.
pub const OD_WIZARD_BACK: od_wizard_action = 2;
/// Stop connecting; leaves nothing behind. Allowed on every page, also
/// while the page is busy.
pub const OD_WIZARD_CANCEL: od_wizard_action = 3;
/// On the last page: register the company, this computer and the
/// credentials, and start or schedule the first synchronisation.
pub const OD_WIZARD_FINISH: od_wizard_action = 4;
/// On the Online ID page: create a new Online ID for the e-mail address
/// entered (the service sends a verification e-mail).
pub const OD_WIZARD_CREATE_ONLINE_ID: od_wizard_action = 5;
/// On the prerequisites page: check every prerequisite again (with a new
/// reachability check of the online service).
pub const OD_WIZARD_RECHECK: od_wizard_action = 6;

/// (ABI 1.2) What the wizard is opened for (`od_plugin_wizard_open_for`).
/// Every mode uses the same page JSON, actions and event.
pub type od_wizard_mode = u32;
/// Connect the company (what `od_plugin_wizard_open` does): six pages.
pub const OD_WIZARD_MODE_CONNECT: od_wizard_mode = 1;
/// Update connection: log in with the Online ID again, then this computer
/// is registered anew (after the Online ID's password changed, or after a
/// restored backup was noticed). Pages `online_id`, `confirm`.
pub const OD_WIZARD_MODE_UPDATE_CONNECTION: od_wizard_mode = 2;
/// Disconnect: only "Connected by", on the sync computer. Deletes the
/// online copy of the data; the program's data is never touched. Pages
/// `online_id`, `confirm`.
pub const OD_WIZARD_MODE_DISCONNECT: od_wizard_mode = 3;
/// Change user: hand the connection ("Connected by") to another person, a
/// super user linked to an employee with an e-mail address, who logs in
/// with their own Online ID; on the sync computer. Synchronisation goes
/// on with the same device. Pages `online_id`, `confirm`.
pub const OD_WIZARD_MODE_CHANGE_USER: od_wizard_mode = 4;
/// (ABI 1.3) Sync computer: make this computer the one that synchronises
/// the company (the previous sync computer stops at once), or bring back
/// a sync computer whose add-on folder was lost. Open it on the computer
/// that is to synchronise: its credentials are made there and never leave
/// it. Needs the host method `connection.get`. Synchronisation then goes
/// on where the previous computer left off, nothing sent twice. Pages
/// `online_id`, `confirm`.
pub const OD_WIZARD_MODE_SYNC_COMPUTER: od_wizard_mode = 5;

/// (ABI 1.1) State of the synchronisation engine of one plugin instance.
pub type od_sync_state = u32;
/// No connection is stored for this company (connect first).
pub const OD_SYNC_NOT_CONNECTED: od_sync_state = 0;
/// Connected; the engine is not running (never started, or stopped).
pub const OD_SYNC_STOPPED: od_sync_state = 1;
/// The engine waits for the scheduled time of the first synchronisation.
pub const OD_SYNC_SCHEDULED: od_sync_state = 2;
/// The engine is starting (lease, schema).
pub const OD_SYNC_STARTING: od_sync_state = 3;
/// The first full synchronisation runs; see the progress fields.
pub const OD_SYNC_FIRST_SYNC: od_sync_state = 4;
/// Continuous two-way synchronisation runs.
pub const OD_SYNC_RUNNING: od_sync_state = 5;
/// The last attempt failed (see `error`); the engine retries by itself.
pub const OD_SYNC_RETRYING: od_sync_state = 6;
/// The engine stopped on an error that needs a person (see `error`), for
/// example another computer is the sync computer.
pub const OD_SYNC_FAILED: od_sync_state = 7;
/// A stop was asked for; the engine stops at the next safe point.
pub const OD_SYNC_STOPPING: od_sync_state = 8;

/// (ABI 1.1) Flags of `od_plugin_sync_start`.
pub type od_sync_flags = u32;
/// Start the first synchronisation now even when it is scheduled later.
pub const OD_SYNC_FLAG_NOW: od_sync_flags = 1;

/// State of one check row.
pub type od_check_state = u32;
/// The criterion is not met.
pub const OD_CHECK_FAILED: od_check_state = 0;
/// The criterion is met.
pub const OD_CHECK_PASSED: od_check_state = 1;
/// The check runs in the background; an `OD_EVENT_PREREQUISITES_CHANGED`
/// event follows when it finishes.
pub const OD_CHECK_PENDING: od_check_state = 2;

/// Flags of `od_plugin_check_prerequisites`.
pub type od_check_flags = u32;
/// Start a new online-service reachability check even if a recent result
/// is known (the host's "Check again" button).
pub const OD_CHECK_FLAG_REFRESH: od_check_flags = 1;

/// An instance of the plugin for one company database. Opaque.
///
/// The pointer value is a handle, not an address: the plugin detects a
/// handle that was already freed and answers `OD_RESULT_INVALID_HANDLE`.
/// (Not `repr(C)`, so that the header declares it as an incomplete type.)
pub struct od_plugin {
    _private: [u8; 0],
}

/// One log record handed to the host's `log` callback.
#[repr(C)]
pub struct od_log_record {
    /// `sizeof(od_log_record)` as the plugin knows it.
    pub struct_size: u32,
    /// One of `OD_LOG_LEVEL_*` (never `OD_LOG_LEVEL_OFF`).
    pub level: od_log_level,
    /// Module that logged, NUL-terminated UTF-8. Valid during the call only.
    pub target: *const c_char,
    /// The formatted message, NUL-terminated UTF-8. Valid during the call only.
    pub message: *const c_char,
}

/// A request from the plugin to the host for host data.
#[repr(C)]
pub struct od_host_request {
    /// `sizeof(od_host_request)` as the plugin knows it.
    pub struct_size: u32,
    /// The method name, NUL-terminated ASCII, for example `"user.current"`.
    /// The methods and their JSON shapes are listed in
    /// `docs/HOST_CHANNEL.md`. Valid during the call only.
    pub method: *const c_char,
    /// The parameters as UTF-8 JSON (not NUL-terminated), `params_len`
    /// bytes. Valid during the call only.
    pub params_json: *const u8,
    /// Length of `params_json` in bytes.
    pub params_len: usize,
}

/// Where the host writes its answer to an `od_host_request`.
#[repr(C)]
pub struct od_host_response {
    /// `sizeof(od_host_response)` as the plugin knows it.
    pub struct_size: u32,
    /// Pass this as the first argument of `write`.
    pub context: *mut c_void,
    /// Appends `len` bytes to the answer; the plugin copies them, so the
    /// host may free its buffer when `write` returns. May be called any
    /// number of times during the request callback, never after it. On
    /// success the bytes form a UTF-8 JSON document; when the callback
    /// returns non-zero they form a readable UTF-8 error message. Returns 0,
    /// or non-zero when the answer grew beyond what the plugin accepts.
    pub write:
        Option<unsafe extern "C" fn(context: *mut c_void, data: *const u8, len: usize) -> i32>,
}

/// An event delivered on the host's UI thread by `od_plugin_pump`.
#[repr(C)]
pub struct od_event {
    /// `sizeof(od_event)` as the plugin knows it.
    pub struct_size: u32,
    /// One of `OD_EVENT_*`. Ignore kinds you do not know.
    pub kind: od_event_kind,
    /// Details as NUL-terminated UTF-8 JSON, or NULL when the kind has none.
    /// Valid during the callback only.
    pub payload_json: *const c_char,
}

/// `[thread-safe]` Receives one log record. Returns 0; other values are
/// ignored (logging never fails a plugin operation).
pub type od_log_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, record: *const od_log_record) -> i32>;

/// `[thread-safe]` Answers a request for host data by writing to
/// `response`. Returns 0 on success, non-zero on failure. It is called on
/// the thread that called the plugin, and later also on the plugin's worker
/// threads, so it must be safe to call from any thread.
pub type od_host_request_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        request: *const od_host_request,
        response: *mut od_host_response,
    ) -> i32,
>;

/// `[thread-safe]` Asks the host to call `od_plugin_pump` soon on its UI
/// thread. Must not call into the plugin itself; it only schedules. Returns
/// 0; a non-zero return is logged and the events stay queued.
pub type od_request_pump_fn = Option<unsafe extern "C" fn(user_data: *mut c_void) -> i32>;

/// `[ui-thread]` Receives one event, only ever from inside `od_plugin_pump`.
/// Returns 0; a non-zero return is logged.
pub type od_event_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const od_event) -> i32>;

/// Releases `user_data`. Called exactly once.
pub type od_user_data_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// The host's table: its context and callbacks, given to `od_plugin_new`.
///
/// The plugin copies what it needs during `od_plugin_new`; the host may free
/// the table and its strings when that call returns. Fields are only ever
/// appended; set `struct_size` to `sizeof(od_host_api)`.
#[repr(C)]
pub struct od_host_api {
    /// `sizeof(od_host_api)` as the host knows it.
    pub struct_size: u32,
    /// `OD_VERSION_MAJOR` as the host was built with; must equal the
    /// plugin's.
    pub abi_major: u32,
    /// `OD_VERSION_MINOR` as the host was built with; may differ.
    pub abi_minor: u32,
    /// Passed as the first argument of every callback below.
    pub user_data: *mut c_void,
    /// Optional. Called exactly once with `user_data`: by `od_plugin_free`
    /// after every plugin thread has stopped, or by `od_plugin_new` when it
    /// fails after the table has been validated far enough to read this
    /// field.
    pub user_data_free: od_user_data_free_fn,
    /// Optional (NULL: no forwarding). Receives plugin log records at
    /// `log_level` and above.
    pub log: od_log_fn,
    /// Most verbose level forwarded to `log`, one of `OD_LOG_LEVEL_*`.
    pub log_level: od_log_level,
    /// Required. Answers the plugin's requests for host data.
    pub request: od_host_request_fn,
    /// Required. Asks the host to pump events (see `od_plugin_pump`).
    pub request_pump: od_request_pump_fn,
    /// Optional (NULL: events are dropped when pumped). Receives events on
    /// the UI thread.
    pub on_event: od_event_fn,
    /// Optional. Folder where the plugin keeps its state for this company
    /// database (NUL-terminated UTF-8 path, at most 32 KiB). NULL or empty:
    /// nothing is kept.
    pub data_dir: *const c_char,
    /// Optional. The trace log file for support (company settings, "Trace
    /// log"), appended to; folders are created (UTF-8 path, at most 32 KiB).
    /// NULL or empty: no trace log. A file that cannot be opened is logged
    /// as a warning; the plugin works without it.
    pub trace_log_path: *const c_char,
    /// Most verbose level written to the trace log, one of `OD_LOG_LEVEL_*`.
    pub trace_log_level: od_log_level,
    /// Optional. Base address of the online service, for example
    /// `"https://online.example.com"` (at most 2048 bytes). NULL or empty:
    /// the address built into the plugin. `http://` is accepted for
    /// loopback addresses only.
    pub service_url: *const c_char,
}

/// One rule of the licence check.
#[repr(C)]
pub struct od_licence_rule {
    /// `sizeof(od_licence_rule)` as the plugin knows it.
    pub struct_size: u32,
    /// Stable identifier, for example `"agreement_valid"`.
    pub id: *const c_char,
    /// One-line description of the rule.
    pub title: *const c_char,
    /// 1 when the rule holds, 0 when not.
    pub passed: u32,
    /// What was found and, when it failed, how to fix it.
    pub detail: *const c_char,
}

/// An online module (work area) the licence entitles the company to.
#[repr(C)]
pub struct od_module {
    /// `sizeof(od_module)` as the plugin knows it.
    pub struct_size: u32,
    /// Stable identifier, for example `"contacts"`.
    pub id: *const c_char,
    /// Display name.
    pub title: *const c_char,
}

/// The licence check, rule by rule. Owned by the caller; free with
/// `od_licence_report_free`. Every string is NUL-terminated UTF-8 and lives
/// as long as the report. Arrays are arrays of pointers so that their
/// elements can grow in later minor versions.
#[repr(C)]
pub struct od_licence_report {
    /// `sizeof(od_licence_report)` as the plugin knows it.
    pub struct_size: u32,
    /// 1 when every rule holds (the add-on may run), 0 otherwise.
    pub ok: u32,
    /// Licence number, or NULL when no licence was found.
    pub licence_number: *const c_char,
    /// Licence holder's name, or NULL.
    pub licensee_name: *const c_char,
    /// Licence holder's contact person, or NULL.
    pub contact_person: *const c_char,
    /// Licence holder's phone, or NULL.
    pub phone: *const c_char,
    /// Service agreement tier (`"basic"`, `"standard"`, `"premium"`), or
    /// NULL when there is no agreement.
    pub tier: *const c_char,
    /// Last day of the service agreement, `YYYY-MM-DD`, or NULL.
    pub agreement_valid_until: *const c_char,
    /// Number of online users the licence allows.
    pub online_users: u32,
    /// 1 for an evaluation licence.
    pub evaluation: u32,
    /// The rules, in a fixed order.
    pub rules: *const *const od_licence_rule,
    /// Number of entries in `rules`.
    pub rule_count: usize,
    /// The online modules granted; empty unless `ok`.
    pub modules: *const *const od_module,
    /// Number of entries in `modules`.
    pub module_count: usize,
}

/// One criterion that must hold before the company can connect.
#[repr(C)]
pub struct od_prerequisite {
    /// `sizeof(od_prerequisite)` as the plugin knows it.
    pub struct_size: u32,
    /// Stable identifier, for example `"super_user"`.
    pub id: *const c_char,
    /// One-line description of the criterion.
    pub title: *const c_char,
    /// One of `OD_CHECK_*`.
    pub state: od_check_state,
    /// 1 when Connect needs this criterion; 0 when it is a warning only
    /// (enforced later, when the first synchronisation starts).
    pub blocking: u32,
    /// What was found, and how to fix it when it failed.
    pub detail: *const c_char,
    /// Where in the host to fix it, for example
    /// `"View → Settings → Company → Company information"`.
    pub fix_location: *const c_char,
}

/// The prerequisite list. Owned by the caller; free with
/// `od_prerequisite_list_free`. Strings live as long as the list.
#[repr(C)]
pub struct od_prerequisite_list {
    /// `sizeof(od_prerequisite_list)` as the plugin knows it.
    pub struct_size: u32,
    /// 1 when every blocking criterion passed: Connect may be enabled.
    pub can_connect: u32,
    /// 1 while at least one row is `OD_CHECK_PENDING`.
    pub pending: u32,
    /// The criteria, in a fixed order.
    pub items: *const *const od_prerequisite,
    /// Number of entries in `items`.
    pub count: usize,
}

/// (ABI 1.1) The synchronisation status. Owned by the caller; free with
/// `od_sync_status_free`. Strings live as long as the status.
#[repr(C)]
pub struct od_sync_status {
    /// `sizeof(od_sync_status)` as the plugin knows it.
    pub struct_size: u32,
    /// One of `OD_SYNC_*` (the states).
    pub state: od_sync_state,
    /// The state as a short English word (`"running"`, ...), for logs.
    pub state_name: *const c_char,
    /// 1 when the first full synchronisation has finished.
    pub first_sync_done: u32,
    /// 1 while the plugin has asked the host to block use of the program.
    pub blocked: u32,
    /// When the last round finished without error (RFC 3339, UTC), or NULL.
    pub last_success: *const c_char,
    /// When the first synchronisation is scheduled (RFC 3339, UTC), or NULL.
    pub scheduled_at: *const c_char,
    /// Changes made in the program not yet online (change-log entries).
    pub pending_to_online: u64,
    /// Changes made online not yet in the program, as far as known.
    pub pending_to_host: u64,
    /// Online changes set aside because the program refused them (see the
    /// history for the reasons).
    pub parked: u64,
    /// The `od_result` of the current error, or `OD_RESULT_OK`.
    pub error_code: od_result,
    /// The current error in words, or NULL.
    pub error: *const c_char,
    /// First sync: the entity being sent (its title), or NULL.
    pub progress_entity: *const c_char,
    /// First sync: records of that entity sent, and its total.
    pub progress_entity_done: u64,
    pub progress_entity_total: u64,
    /// First sync: records sent of all entities, and the total.
    pub progress_done: u64,
    pub progress_total: u64,
    /// First sync: estimated seconds left, or -1 when not known yet.
    pub progress_seconds_left: i64,
}

/// (ABI 1.1) A UTF-8 text the plugin hands over (for example JSON).
/// Owned by the caller; free with `od_text_free`.
#[repr(C)]
pub struct od_text {
    /// `sizeof(od_text)` as the plugin knows it.
    pub struct_size: u32,
    /// NUL-terminated UTF-8.
    pub text: *const c_char,
    /// Length of `text` in bytes, without the NUL.
    pub len: usize,
}

/// `[thread-safe]` Returns the plugin version, "major.minor.patch", a static string.
pub type od_version_string_fn = Option<unsafe extern "C" fn() -> *const c_char>;

/// The plugin's table, returned by `od_entry`. Every entry points at the
/// exported function of the same name (without the `od_` prefix); see those
/// functions for their documentation. Entries are only ever appended: read
/// an entry only when `struct_size` covers it.
#[repr(C)]
pub struct od_plugin_api {
    /// `sizeof(od_plugin_api)` as the plugin knows it.
    pub struct_size: u32,
    /// `OD_VERSION_MAJOR` of the plugin.
    pub abi_major: u32,
    /// `OD_VERSION_MINOR` of the plugin.
    pub abi_minor: u32,
    /// `OD_VERSION_PATCH` of the plugin.
    pub abi_patch: u32,
    /// See `od_version_string`.
    pub version_string: od_version_string_fn,
    /// See `od_result_text`.
    pub result_text: Option<unsafe extern "C" fn(result: od_result) -> *const c_char>,
    /// See `od_last_error`.
    pub last_error: Option<
        unsafe extern "C" fn(buf: *mut c_char, buf_size: usize, out_len: *mut usize) -> od_result,
    >,
    /// See `od_plugin_new`.
    pub plugin_new: Option<
        unsafe extern "C" fn(
            host: *const od_host_api,
            out_plugin: *mut *mut od_plugin,
        ) -> od_result,
    >,
    /// See `od_plugin_free`.
    pub plugin_free: Option<unsafe extern "C" fn(plugin: *mut od_plugin) -> od_result>,
    /// See `od_plugin_errmsg`.
    pub plugin_errmsg: Option<
        unsafe extern "C" fn(
            plugin: *const od_plugin,
            buf: *mut c_char,
            buf_size: usize,
            out_len: *mut usize,
        ) -> od_result,
    >,
    /// See `od_plugin_pump`.
    pub plugin_pump: Option<unsafe extern "C" fn(plugin: *mut od_plugin) -> od_result>,
    /// See `od_plugin_check_licence`.
    pub plugin_check_licence: Option<
        unsafe extern "C" fn(
            plugin: *mut od_plugin,
            out_report: *mut *mut od_licence_report,
        ) -> od_result,
    >,
    /// See `od_licence_report_free`.
    pub licence_report_free: Option<unsafe extern "C" fn(report: *mut od_licence_report)>,
    /// See `od_plugin_check_prerequisites`.
    pub plugin_check_prerequisites: Option<
        unsafe extern "C" fn(
            plugin: *mut od_plugin,
            flags: od_check_flags,
            out_list: *mut *mut od_prerequisite_list,
        ) -> od_result,
    >,
    /// See `od_prerequisite_list_free`.
    pub prerequisite_list_free: Option<unsafe extern "C" fn(list: *mut od_prerequisite_list)>,
    /// (ABI 1.1) See `od_plugin_connection_set`.
    pub plugin_connection_set: Option<
        unsafe extern "C" fn(plugin: *mut od_plugin, connection_json: *const c_char) -> od_result,
    >,
    /// (ABI 1.1) See `od_plugin_sync_start`.
    pub plugin_sync_start:
        Option<unsafe extern "C" fn(plugin: *mut od_plugin, flags: od_sync_flags) -> od_result>,
    /// (ABI 1.1) See `od_plugin_sync_stop`.
    pub plugin_sync_stop: Option<unsafe extern "C" fn(plugin: *mut od_plugin) -> od_result>,
    /// (ABI 1.1) See `od_plugin_sync_schedule`.
    pub plugin_sync_schedule:
        Option<unsafe extern "C" fn(plugin: *mut od_plugin, at: *const c_char) -> od_result>,
    /// (ABI 1.1) See `od_plugin_sync_notify`.
    pub plugin_sync_notify: Option<unsafe extern "C" fn(plugin: *mut od_plugin) -> od_result>,
    /// (ABI 1.1) See `od_plugin_sync_status`.
    pub plugin_sync_status: Option<
        unsafe extern "C" fn(
            plugin: *mut od_plugin,
            out_status: *mut *mut od_sync_status,
        ) -> od_result,
    >,
    /// (ABI 1.1) See `od_sync_status_free`.
    pub sync_status_free: Option<unsafe extern "C" fn(status: *mut od_sync_status)>,
    /// (ABI 1.1) See `od_plugin_sync_history`.
    pub plugin_sync_history: Option<
        unsafe extern "C" fn(plugin: *mut od_plugin, out_history: *mut *mut od_text) -> od_result,
    >,
    /// (ABI 1.1) See `od_text_free`.
    pub text_free: Option<unsafe extern "C" fn(text: *mut od_text)>,
    /// (ABI 1.2) See `od_plugin_wizard_open`.
    pub plugin_wizard_open: Option<unsafe extern "C" fn(plugin: *mut od_plugin) -> od_result>,
    /// (ABI 1.2) See `od_plugin_wizard_page`.
    pub plugin_wizard_page: Option<
        unsafe extern "C" fn(plugin: *mut od_plugin, out_json: *mut *mut od_text) -> od_result,
    >,
    /// (ABI 1.2) See `od_plugin_wizard_set`.
    pub plugin_wizard_set: Option<
        unsafe extern "C" fn(
            plugin: *mut od_plugin,
            field_id: *const c_char,
            value: *const c_char,
        ) -> od_result,
    >,
    /// (ABI 1.2) See `od_plugin_wizard_action`.
    pub plugin_wizard_action:
        Option<unsafe extern "C" fn(plugin: *mut od_plugin, action: od_wizard_action) -> od_result>,
    /// (ABI 1.2) See `od_plugin_wizard_close`.
    pub plugin_wizard_close: Option<unsafe extern "C" fn(plugin: *mut od_plugin) -> od_result>,
    /// (ABI 1.2) See `od_plugin_wizard_open_for`.
    pub plugin_wizard_open_for:
        Option<unsafe extern "C" fn(plugin: *mut od_plugin, mode: od_wizard_mode) -> od_result>,
    /// (ABI 1.2) See `od_plugin_restore_check`.
    pub plugin_restore_check: Option<unsafe extern "C" fn(plugin: *mut od_plugin) -> od_result>,
}

/// Signature of the one entry point, `od_entry`, for hosts that look it up
/// with `dlsym` / `GetProcAddress`.
pub type od_entry_fn = unsafe extern "C" fn(
    host_abi_major: u32,
    host_abi_minor: u32,
    out_api: *mut *const od_plugin_api,
) -> od_result;

/// The name of the entry point symbol.
pub const OD_ENTRY_SYMBOL: &str = "od_entry";
