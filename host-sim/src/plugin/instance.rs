//! A plugin instance for the company the host has open, and owned Rust
//! copies of what it reports.

use super::host::{self, HostState, LogOutput};
use super::loader::{c_text, read_message, Library};
use crate::channel::HostContext;
use od_abi::*;
use std::ffi::CString;
use std::mem::size_of;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the host tells the plugin when creating it.
pub struct Settings {
    pub context: HostContext,
    /// Folder for the plugin's state for this company.
    pub data_dir: Option<PathBuf>,
    pub trace_log: Option<PathBuf>,
    pub trace_level: od_log_level,
    /// Online service address; None for the plugin's built-in one.
    pub service_url: Option<String>,
    pub log: Option<Box<dyn LogOutput>>,
    pub log_level: od_log_level,
}

#[derive(Debug, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct CallError {
    pub code: od_result,
    pub message: String,
}

/// One licence rule, as the plugin reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub passed: bool,
    pub detail: String,
}

/// The licence check, copied out of the plugin's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceView {
    pub ok: bool,
    pub licence_number: Option<String>,
    pub licensee_name: Option<String>,
    pub contact_person: Option<String>,
    pub phone: Option<String>,
    pub tier: Option<String>,
    pub valid_until: Option<String>,
    pub online_users: u32,
    pub evaluation: bool,
    pub rules: Vec<Rule>,
    /// (id, title) of each granted module.
    pub modules: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Passed,
    Failed,
    Pending,
}

/// One prerequisite row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub title: String,
    pub state: RowState,
    pub blocking: bool,
    pub detail: String,
    pub fix_location: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrerequisitesView {
    pub can_connect: bool,
    pub pending: bool,
    pub rows: Vec<Row>,
}

/// A live plugin instance; dropping it destroys the instance.
pub struct Instance<'lib> {
    library: &'lib Library,
    handle: *mut od_plugin,
    state: Arc<HostState>,
}

impl<'lib> Instance<'lib> {
    pub fn create(library: &'lib Library, settings: Settings) -> Result<Instance<'lib>, CallError> {
        let api = library.api();
        let state = Arc::new(HostState::new(settings.context, settings.log));
        let text = |value: Option<String>| value.and_then(|v| CString::new(v).ok());
        let data_dir = text(settings.data_dir.map(|p| p.to_string_lossy().into_owned()));
        let trace = text(settings.trace_log.map(|p| p.to_string_lossy().into_owned()));
        let url = text(settings.service_url);
        let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let table = od_host_api {
            struct_size: size_of::<od_host_api>() as u32,
            abi_major: OD_VERSION_MAJOR,
            abi_minor: OD_VERSION_MINOR,
            user_data: Arc::into_raw(Arc::clone(&state)).cast_mut().cast(),
            user_data_free: Some(host::user_data_free),
            log: if state.has_log() {
                Some(host::log)
            } else {
                None
            },
            log_level: settings.log_level,
            request: Some(host::request),
            request_pump: Some(host::request_pump),
            on_event: Some(host::on_event),
            data_dir: ptr(&data_dir),
            trace_log_path: ptr(&trace),
            trace_log_level: settings.trace_level,
            service_url: ptr(&url),
        };
        let new = api.plugin_new.ok_or_else(missing)?;
        let mut handle: *mut od_plugin = std::ptr::null_mut();
        // SAFETY: the table and its strings live until the call returns;
        // the plugin copies what it keeps. On failure it has released
        // user_data through user_data_free.
        let code = unsafe { new(&table, &mut handle) };
        if code != OD_RESULT_OK {
            return Err(CallError {
                code,
                message: library.last_error_message(),
            });
        }
        Ok(Instance {
            library,
            handle,
            state,
        })
    }

    pub fn state(&self) -> &HostState {
        &self.state
    }

    pub(crate) fn library(&self) -> &'lib Library {
        self.library
    }

    pub(crate) fn handle(&self) -> *mut od_plugin {
        self.handle
    }

    /// `Ok` for `OD_RESULT_OK`, else the add-on's error with its message.
    pub(crate) fn result(&self, code: od_result) -> Result<(), CallError> {
        if code == OD_RESULT_OK {
            Ok(())
        } else {
            Err(self.error(code))
        }
    }

    /// The host state shared with the plugin, for a thread that must wake
    /// the host's loop (a signal handler).
    pub fn shared_state(&self) -> Arc<HostState> {
        Arc::clone(&self.state)
    }

    fn error(&self, code: od_result) -> CallError {
        let api = self.library.api();
        let message = match api.plugin_errmsg {
            Some(f) => read_message(|buf, size, len| {
                // SAFETY: live handle; buf has `size` writable bytes.
                unsafe { f(self.handle, buf, size, len) }
            }),
            None => String::new(),
        };
        CallError { code, message }
    }

    pub fn licence(&self) -> Result<LicenceView, CallError> {
        let api = self.library.api();
        let check = api.plugin_check_licence.ok_or_else(missing)?;
        let mut report: *mut od_licence_report = std::ptr::null_mut();
        // SAFETY: live handle, writable out-pointer.
        let code = unsafe { check(self.handle, &mut report) };
        if code != OD_RESULT_OK {
            return Err(self.error(code));
        }
        // SAFETY: on success the plugin returned a valid report, freed below.
        let view = unsafe { licence_view(&*report) };
        if let Some(free) = api.licence_report_free {
            // SAFETY: the report came from this plugin and is freed once.
            unsafe { free(report) };
        }
        Ok(view)
    }

    pub fn prerequisites(&self, refresh: bool) -> Result<PrerequisitesView, CallError> {
        let api = self.library.api();
        let check = api.plugin_check_prerequisites.ok_or_else(missing)?;
        let mut list: *mut od_prerequisite_list = std::ptr::null_mut();
        let flags = if refresh { OD_CHECK_FLAG_REFRESH } else { 0 };
        // SAFETY: live handle, writable out-pointer.
        let code = unsafe { check(self.handle, flags, &mut list) };
        if code != OD_RESULT_OK {
            return Err(self.error(code));
        }
        // SAFETY: on success the plugin returned a valid list, freed below.
        let view = unsafe { prerequisites_view(&*list) };
        if let Some(free) = api.prerequisite_list_free {
            // SAFETY: the list came from this plugin and is freed once.
            unsafe { free(list) };
        }
        Ok(view)
    }

    /// Delivers queued events (the host's UI loop calls this when asked).
    pub fn pump(&self) -> Result<(), CallError> {
        let pump = self.library.api().plugin_pump.ok_or_else(missing)?;
        // SAFETY: live handle.
        let code = unsafe { pump(self.handle) };
        if code == OD_RESULT_OK {
            Ok(())
        } else {
            Err(self.error(code))
        }
    }

    /// The prerequisites once no row is pending any more: checks, and while
    /// a check runs in the background, waits for the plugin's pump request,
    /// pumps, and checks again — as a UI loop does, at most `timeout`.
    pub fn prerequisites_settled(
        &self,
        refresh: bool,
        timeout: Duration,
    ) -> Result<PrerequisitesView, CallError> {
        let deadline = Instant::now() + timeout;
        let mut view = self.prerequisites(refresh)?;
        while view.pending {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.state.wait_for_pump_request(left) {
                break;
            }
            self.pump()?;
            view = self.prerequisites(false)?;
        }
        Ok(view)
    }
}

/// Synchronisation (ABI 1.1). Each call refuses an add-on whose table does
/// not have the function (an ABI 1.0 add-on) with [`CallError::too_old`].
impl Instance<'_> {
    fn sync_entry<F>(&self, entry: Option<F>) -> Result<F, CallError> {
        entry.ok_or_else(|| CallError::too_old(self.library))
    }

    fn check(&self, code: od_result) -> Result<(), CallError> {
        if code == OD_RESULT_OK {
            Ok(())
        } else {
            Err(self.error(code))
        }
    }

    /// Stores the company's connection (`od_plugin_connection_set`).
    /// `json` carries tokens: it is never logged.
    pub fn connection_set(&self, json: &str) -> Result<(), CallError> {
        let set = self.sync_entry(self.library.api().plugin_connection_set)?;
        let json = CString::new(json).map_err(|_| CallError {
            code: OD_RESULT_INVALID_ARGUMENT,
            message: "the connection document contains a NUL character".into(),
        })?;
        // SAFETY: live handle; the string lives for the call (the plugin
        // copies it).
        self.check(unsafe { set(self.handle, json.as_ptr()) })
    }

    /// Starts synchronisation in the background; `now` runs a scheduled
    /// first synchronisation at once.
    pub fn sync_start(&self, now: bool) -> Result<(), CallError> {
        let start = self.sync_entry(self.library.api().plugin_sync_start)?;
        let flags = if now { OD_SYNC_FLAG_NOW } else { 0 };
        // SAFETY: live handle.
        self.check(unsafe { start(self.handle, flags) })
    }

    /// Asks synchronisation to stop at its next safe point; returns at once.
    pub fn sync_stop(&self) -> Result<(), CallError> {
        let stop = self.sync_entry(self.library.api().plugin_sync_stop)?;
        // SAFETY: live handle.
        self.check(unsafe { stop(self.handle) })
    }

    /// Schedules the first synchronisation (RFC 3339), or clears the
    /// schedule (`None`).
    pub fn sync_schedule(&self, at: Option<&str>) -> Result<(), CallError> {
        let schedule = self.sync_entry(self.library.api().plugin_sync_schedule)?;
        let at = at
            .map(|text| {
                CString::new(text).map_err(|_| CallError {
                    code: OD_RESULT_INVALID_ARGUMENT,
                    message: "the time contains a NUL character".into(),
                })
            })
            .transpose()?;
        let ptr = at.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        // SAFETY: live handle; the string is NULL or lives for the call.
        self.check(unsafe { schedule(self.handle, ptr) })
    }

    /// Tells the add-on the host has just committed changes.
    pub fn sync_notify(&self) -> Result<(), CallError> {
        let notify = self.sync_entry(self.library.api().plugin_sync_notify)?;
        // SAFETY: live handle.
        self.check(unsafe { notify(self.handle) })
    }

    /// The synchronisation status, copied out of the add-on's struct.
    pub fn sync_status(&self) -> Result<SyncStatusView, CallError> {
        let api = self.library.api();
        let status_fn = self.sync_entry(api.plugin_sync_status)?;
        let free = self.sync_entry(api.sync_status_free)?;
        let mut status: *mut od_sync_status = std::ptr::null_mut();
        // SAFETY: live handle, writable out-pointer.
        let code = unsafe { status_fn(self.handle, &mut status) };
        self.check(code)?;
        if status.is_null() {
            return Err(CallError {
                code: OD_RESULT_INTERNAL,
                message: "the add-on answered the status call without a status".into(),
            });
        }
        // SAFETY: on success the add-on returned a valid status, freed
        // right after the copy, once.
        let view = unsafe { sync_status_view(&*status) };
        // SAFETY: as above.
        unsafe { free(status) };
        Ok(view)
    }

    /// The synchronisation history, as the add-on's JSON text.
    pub fn sync_history(&self) -> Result<String, CallError> {
        let api = self.library.api();
        let history = self.sync_entry(api.plugin_sync_history)?;
        let free = self.sync_entry(api.text_free)?;
        let mut text: *mut od_text = std::ptr::null_mut();
        // SAFETY: live handle, writable out-pointer.
        let code = unsafe { history(self.handle, &mut text) };
        self.check(code)?;
        if text.is_null() {
            return Err(CallError {
                code: OD_RESULT_INTERNAL,
                message: "the add-on answered the history call without a text".into(),
            });
        }
        // SAFETY: a valid text from the add-on, `len` bytes at `text`;
        // freed once after the copy.
        let copy = unsafe {
            let t = &*text;
            let copy = if t.text.is_null() {
                String::new()
            } else {
                String::from_utf8_lossy(std::slice::from_raw_parts(t.text.cast::<u8>(), t.len))
                    .into_owned()
            };
            free(text);
            copy
        };
        Ok(copy)
    }
}

/// The synchronisation state (`OD_SYNC_*`), as the host shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    NotConnected,
    Stopped,
    Scheduled,
    Starting,
    FirstSync,
    Running,
    Retrying,
    Failed,
    Stopping,
    /// A state a newer add-on knows and this program does not.
    Other(od_sync_state),
}

impl SyncState {
    pub fn from_code(code: od_sync_state) -> SyncState {
        match code {
            OD_SYNC_NOT_CONNECTED => SyncState::NotConnected,
            OD_SYNC_STOPPED => SyncState::Stopped,
            OD_SYNC_SCHEDULED => SyncState::Scheduled,
            OD_SYNC_STARTING => SyncState::Starting,
            OD_SYNC_FIRST_SYNC => SyncState::FirstSync,
            OD_SYNC_RUNNING => SyncState::Running,
            OD_SYNC_RETRYING => SyncState::Retrying,
            OD_SYNC_FAILED => SyncState::Failed,
            OD_SYNC_STOPPING => SyncState::Stopping,
            other => SyncState::Other(other),
        }
    }

    /// The state as the add-on names it in its events (`"running"`, ...).
    pub fn from_name(name: &str) -> SyncState {
        match name {
            "not_connected" => SyncState::NotConnected,
            "stopped" => SyncState::Stopped,
            "scheduled" => SyncState::Scheduled,
            "starting" => SyncState::Starting,
            "first_sync" => SyncState::FirstSync,
            "running" => SyncState::Running,
            "retrying" => SyncState::Retrying,
            "failed" => SyncState::Failed,
            "stopping" => SyncState::Stopping,
            _ => SyncState::Other(u32::MAX),
        }
    }

    /// The state in words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            SyncState::NotConnected => "not connected to Online Desktop",
            SyncState::Stopped => "stopped",
            SyncState::Scheduled => "waiting for the scheduled first synchronisation",
            SyncState::Starting => "starting",
            SyncState::FirstSync => "first synchronisation running",
            SyncState::Running => "synchronising continuously",
            SyncState::Retrying => "an attempt failed; trying again by itself",
            SyncState::Failed => "stopped on an error that needs you",
            SyncState::Stopping => "stopping",
            SyncState::Other(_) => "in a state this program does not know",
        }
    }
}

/// First-synchronisation progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncProgress {
    pub entity: String,
    pub entity_done: u64,
    pub entity_total: u64,
    pub done: u64,
    pub total: u64,
    pub seconds_left: Option<u64>,
}

/// The synchronisation status, copied out of `od_sync_status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatusView {
    pub state: SyncState,
    /// The add-on's short English name of the state.
    pub state_name: String,
    pub first_sync_done: bool,
    pub blocked: bool,
    pub last_success: Option<String>,
    pub scheduled_at: Option<String>,
    pub pending_to_online: u64,
    pub pending_to_host: u64,
    pub parked: u64,
    pub error_code: od_result,
    pub error: Option<String>,
    /// While the first synchronisation runs.
    pub progress: Option<SyncProgress>,
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        if let Some(free) = self.library.api().plugin_free {
            // SAFETY: the handle is live and freed exactly once, here.
            let code = unsafe { free(self.handle) };
            if code != OD_RESULT_OK {
                eprintln!(
                    "The Online Desktop add-on did not shut down cleanly: {}",
                    self.library.last_error_message()
                );
            }
        }
    }
}

impl CallError {
    /// The add-on's table lacks the synchronisation functions (ABI 1.0).
    pub fn too_old(library: &Library) -> CallError {
        CallError {
            code: OD_RESULT_ABI_VERSION,
            message: library.require_sync().err().map_or_else(
                || "the add-on lacks a synchronisation function".into(),
                |e| e.to_string(),
            ),
        }
    }
}

fn missing() -> CallError {
    CallError {
        code: OD_RESULT_INTERNAL,
        message: "the add-on's function table lacks a required function".into(),
    }
}

/// Optional string: NULL gives None.
unsafe fn opt(ptr: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: forwarded from the caller.
    (!ptr.is_null()).then(|| unsafe { c_text(ptr) })
}

/// Elements of an array of pointers.
unsafe fn items<'a, T: 'a>(ptr: *const *const T, count: usize) -> impl Iterator<Item = &'a T> {
    let slice: &[*const T] = if ptr.is_null() || count == 0 {
        &[]
    } else {
        // SAFETY: the plugin documents `count` valid element pointers.
        unsafe { std::slice::from_raw_parts(ptr, count) }
    };
    // SAFETY: each element pointer is valid while the output lives.
    slice
        .iter()
        .filter(|p| !p.is_null())
        .map(|p| unsafe { &**p })
}

unsafe fn licence_view(r: &od_licence_report) -> LicenceView {
    // SAFETY (whole function): the report and its strings are valid until
    // freed, which happens after this copy.
    unsafe {
        LicenceView {
            ok: r.ok != 0,
            licence_number: opt(r.licence_number),
            licensee_name: opt(r.licensee_name),
            contact_person: opt(r.contact_person),
            phone: opt(r.phone),
            tier: opt(r.tier),
            valid_until: opt(r.agreement_valid_until),
            online_users: r.online_users,
            evaluation: r.evaluation != 0,
            rules: items(r.rules, r.rule_count)
                .map(|rule| Rule {
                    id: c_text(rule.id),
                    title: c_text(rule.title),
                    passed: rule.passed != 0,
                    detail: c_text(rule.detail),
                })
                .collect(),
            modules: items(r.modules, r.module_count)
                .map(|m| (c_text(m.id), c_text(m.title)))
                .collect(),
        }
    }
}

unsafe fn prerequisites_view(l: &od_prerequisite_list) -> PrerequisitesView {
    // SAFETY (whole function): as in `licence_view`.
    unsafe {
        PrerequisitesView {
            can_connect: l.can_connect != 0,
            pending: l.pending != 0,
            rows: items(l.items, l.count)
                .map(|p| Row {
                    id: c_text(p.id),
                    title: c_text(p.title),
                    state: match p.state {
                        OD_CHECK_PASSED => RowState::Passed,
                        OD_CHECK_PENDING => RowState::Pending,
                        _ => RowState::Failed,
                    },
                    blocking: p.blocking != 0,
                    detail: c_text(p.detail),
                    fix_location: c_text(p.fix_location),
                })
                .collect(),
        }
    }
}

unsafe fn sync_status_view(s: &od_sync_status) -> SyncStatusView {
    // SAFETY (whole function): as in `licence_view`.
    unsafe {
        let progress_entity = opt(s.progress_entity);
        SyncStatusView {
            state: SyncState::from_code(s.state),
            state_name: c_text(s.state_name),
            first_sync_done: s.first_sync_done != 0,
            blocked: s.blocked != 0,
            last_success: opt(s.last_success),
            scheduled_at: opt(s.scheduled_at),
            pending_to_online: s.pending_to_online,
            pending_to_host: s.pending_to_host,
            parked: s.parked,
            error_code: s.error_code,
            error: opt(s.error),
            progress: progress_entity.map(|entity| SyncProgress {
                entity,
                entity_done: s.progress_entity_done,
                entity_total: s.progress_entity_total,
                done: s.progress_done,
                total: s.progress_total,
                seconds_left: u64::try_from(s.progress_seconds_left).ok(),
            }),
        }
    }
}
