//! The built plugin, loaded with `libloading` and called through the
//! `od_plugin_api` table that `od_entry` returns, as a host would.
//!
//! The library is loaded once per test process and never unloaded; tests
//! running in parallel share it. [`Instance`] owns one plugin handle and
//! copies every output into plain Rust values before freeing it, so tests
//! read results without touching plugin memory afterwards.

use crate::host::{HostApi, TestHost};
use od_abi::*;
use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The loaded plugin library and its table.
pub struct Plugin {
    library: libloading::Library,
    path: PathBuf,
    api: &'static od_plugin_api,
    entry: od_entry_fn,
}

// SAFETY: the table is static data of the library, which stays loaded for
// the whole process; its functions are documented for the threads they
// may run on and the tests respect that.
unsafe impl Sync for Plugin {}
// SAFETY: as above.
unsafe impl Send for Plugin {}

/// A failed call: its code and the readable message the plugin gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: od_result,
    pub message: String,
}

/// The plugin built for this test run, loaded on first use.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| Plugin::load(&crate::paths::plugin_path()))
}

impl Plugin {
    /// Opens the library, looks up `od_entry` and gets the table.
    pub fn load(path: &Path) -> Plugin {
        // SAFETY: loading runs the library's initialisers; the plugin has
        // none that do work (the ABI promises loading does nothing).
        let library = unsafe { libloading::Library::new(path) }
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()));
        // SAFETY: `od_entry` has the signature `od_entry_fn`.
        let entry: od_entry_fn = *unsafe { library.get::<od_entry_fn>(b"od_entry\0") }
            .unwrap_or_else(|e| panic!("{} has no od_entry: {e}", path.display()));
        let mut api: *const od_plugin_api = std::ptr::null();
        // SAFETY: `api` is writable.
        let code = unsafe { entry(OD_VERSION_MAJOR, OD_VERSION_MINOR, &mut api) };
        assert_eq!(code, OD_RESULT_OK, "od_entry failed");
        assert!(!api.is_null(), "od_entry returned OK but no table");
        // SAFETY: the table is static in the library, which is never
        // unloaded (it is kept in a static for the whole process).
        let api = unsafe { &*api };
        assert!(
            api.struct_size as usize >= std::mem::size_of::<od_plugin_api>(),
            "the plugin's table is smaller than ABI {OD_VERSION_MAJOR}.{OD_VERSION_MINOR} needs"
        );
        Plugin {
            library,
            path: path.to_path_buf(),
            api,
            entry,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table `od_entry` returned.
    pub fn api(&self) -> &'static od_plugin_api {
        self.api
    }

    pub fn entry(&self) -> od_entry_fn {
        self.entry
    }

    /// An exported symbol by name (without the trailing NUL).
    ///
    /// # Safety
    /// `T` must be the symbol's true type.
    pub unsafe fn symbol<T: Copy>(&self, name: &str) -> Option<T> {
        let name = CString::new(name).ok()?;
        // SAFETY: forwarded to the caller.
        unsafe { self.library.get::<T>(name.as_bytes_with_nul()) }
            .ok()
            .map(|symbol| *symbol)
    }

    /// `od_last_error` of this thread, read with a buffer that fits.
    pub fn last_error(&self) -> String {
        let last_error = self.api.last_error.expect("last_error");
        // SAFETY: the buffer rules of od_last_error are kept.
        read_message(|buf, size, len| unsafe { last_error(buf, size, len) })
    }

    /// `od_result_text` of `code`.
    pub fn result_text(&self, code: od_result) -> String {
        let text = self.api.result_text.expect("result_text");
        // SAFETY: od_result_text returns a static NUL-terminated string.
        unsafe { c_string(text(code)) }.expect("od_result_text never returns NULL")
    }

    /// Creates an instance for `host_api`; on failure gives the code and
    /// the message of `od_last_error`.
    pub fn create(&self, host_api: &HostApi) -> Result<Instance<'_>, Failure> {
        let table = host_api.table();
        let new = self.api.plugin_new.expect("plugin_new");
        let mut handle: *mut od_plugin = std::ptr::null_mut();
        // SAFETY: the table and the out-pointer are valid for the call.
        let code = unsafe { new(table.as_ptr(), &mut handle) };
        drop(table);
        if code != OD_RESULT_OK {
            assert!(
                handle.is_null(),
                "od_plugin_new wrote the handle on failure"
            );
            return Err(Failure {
                code,
                message: self.last_error(),
            });
        }
        assert!(!handle.is_null(), "od_plugin_new returned OK but no handle");
        Ok(Instance {
            plugin: self,
            handle,
            host: Arc::clone(&host_api.host),
            freed: false,
        })
    }
}

/// Reads a message with the size-then-text pattern the ABI documents:
/// first `(NULL, 0, &len)`, then a buffer of `len + 1` bytes.
pub fn read_message(call: impl Fn(*mut c_char, usize, *mut usize) -> od_result) -> String {
    let mut len = usize::MAX;
    let code = call(std::ptr::null_mut(), 0, &mut len);
    assert!(
        code == OD_RESULT_OK || code == OD_RESULT_BUFFER_TOO_SMALL,
        "asking for the message length failed with {code}"
    );
    assert_ne!(len, usize::MAX, "out_len was not written");
    let mut buf = vec![0x55u8; len + 1];
    let mut second = usize::MAX;
    let code = call(buf.as_mut_ptr().cast(), buf.len(), &mut second);
    assert_eq!(code, OD_RESULT_OK, "reading the message failed");
    assert_eq!(
        second, len,
        "the message changed between asking for its length and reading it"
    );
    assert_eq!(buf[len], 0, "the message is NUL-terminated");
    String::from_utf8(buf[..len].to_vec()).expect("messages are UTF-8")
}

/// Copies a NUL-terminated UTF-8 string, or None for NULL.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub unsafe fn c_string(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: forwarded from the caller.
    let text = unsafe { CStr::from_ptr(ptr) };
    Some(
        text.to_str()
            .expect("the plugin's strings are UTF-8")
            .to_owned(),
    )
}

/// One plugin instance. Dropping it frees the handle (and asserts that
/// this succeeded) unless [`Instance::free`] did already.
pub struct Instance<'a> {
    plugin: &'a Plugin,
    handle: *mut od_plugin,
    host: Arc<TestHost>,
    freed: bool,
}

/// One rule of the licence report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub passed: bool,
    pub detail: String,
}

/// The licence report, copied out of the plugin's struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceReport {
    pub ok: bool,
    pub licence_number: Option<String>,
    pub licensee_name: Option<String>,
    pub tier: Option<String>,
    pub agreement_valid_until: Option<String>,
    pub online_users: u32,
    pub rules: Vec<Rule>,
    pub modules: Vec<String>,
}

impl LicenceReport {
    pub fn rule(&self, id: &str) -> &Rule {
        self.rules
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no rule {id} in {self:#?}"))
    }
}

/// One prerequisite row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub title: String,
    pub state: od_check_state,
    pub blocking: bool,
    pub detail: String,
    pub fix_location: String,
}

/// The prerequisite list, copied out of the plugin's struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisites {
    pub can_connect: bool,
    pub pending: bool,
    pub rows: Vec<Row>,
}

impl Prerequisites {
    pub fn row(&self, id: &str) -> &Row {
        self.rows
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no row {id} in {self:#?}"))
    }
}

/// The elements of an array of pointers.
///
/// # Safety
/// `items` points to `count` valid pointers (or `count` is 0).
unsafe fn elements<'t, T>(items: *const *const T, count: usize) -> Vec<&'t T> {
    if count == 0 {
        return Vec::new();
    }
    assert!(!items.is_null(), "a non-empty array is NULL");
    // SAFETY: forwarded from the caller.
    unsafe { std::slice::from_raw_parts(items, count) }
        .iter()
        // SAFETY: each element points to a live struct.
        .map(|&item| unsafe { item.as_ref() }.expect("an array element is NULL"))
        .collect()
}

/// # Safety
/// As for [`c_string`].
unsafe fn text(ptr: *const c_char) -> String {
    // SAFETY: forwarded from the caller.
    unsafe { c_string(ptr) }.expect("a required string is NULL")
}

/// (ABI 1.1) The synchronisation status, copied out of the plugin's struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    pub state: od_sync_state,
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
    pub progress_entity: Option<String>,
    pub progress_entity_done: u64,
    pub progress_entity_total: u64,
    pub progress_done: u64,
    pub progress_total: u64,
    pub progress_seconds_left: i64,
}

/// Copies a status and checks the invariants every status keeps.
///
/// # Safety
/// `raw` is a live status from `od_plugin_sync_status`.
pub unsafe fn copy_sync_status(raw: &od_sync_status) -> SyncStatus {
    assert_eq!(
        raw.struct_size as usize,
        std::mem::size_of::<od_sync_status>()
    );
    assert!(raw.first_sync_done <= 1 && raw.blocked <= 1, "0 or 1");
    // SAFETY: the status's strings are NULL or NUL-terminated and live as
    // long as the status (the caller's contract).
    let status = unsafe {
        SyncStatus {
            state: raw.state,
            state_name: text(raw.state_name),
            first_sync_done: raw.first_sync_done == 1,
            blocked: raw.blocked == 1,
            last_success: c_string(raw.last_success),
            scheduled_at: c_string(raw.scheduled_at),
            pending_to_online: raw.pending_to_online,
            pending_to_host: raw.pending_to_host,
            parked: raw.parked,
            error_code: raw.error_code,
            error: c_string(raw.error),
            progress_entity: c_string(raw.progress_entity),
            progress_entity_done: raw.progress_entity_done,
            progress_entity_total: raw.progress_entity_total,
            progress_done: raw.progress_done,
            progress_total: raw.progress_total,
            progress_seconds_left: raw.progress_seconds_left,
        }
    };
    assert_eq!(
        status.error.is_some(),
        status.error_code != OD_RESULT_OK,
        "an error has both a code and words: {status:#?}"
    );
    status
}

impl std::fmt::Debug for Instance<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl Instance<'_> {
    pub fn handle(&self) -> *mut od_plugin {
        self.handle
    }

    pub fn host(&self) -> &Arc<TestHost> {
        &self.host
    }

    fn failure(&self, code: od_result) -> Failure {
        Failure {
            code,
            message: self.errmsg(),
        }
    }

    /// `od_plugin_errmsg` for this handle.
    pub fn errmsg(&self) -> String {
        let errmsg = self.plugin.api.plugin_errmsg.expect("plugin_errmsg");
        // SAFETY: a live handle and the buffer rules of od_plugin_errmsg.
        read_message(|buf, size, len| unsafe { errmsg(self.handle, buf, size, len) })
    }

    pub fn pump(&self) -> od_result {
        let pump = self.plugin.api.plugin_pump.expect("plugin_pump");
        // SAFETY: a live handle.
        unsafe { pump(self.handle) }
    }

    pub fn check_licence(&self) -> Result<LicenceReport, Failure> {
        let check = self
            .plugin
            .api
            .plugin_check_licence
            .expect("plugin_check_licence");
        let free = self
            .plugin
            .api
            .licence_report_free
            .expect("licence_report_free");
        let mut out: *mut od_licence_report = std::ptr::null_mut();
        // SAFETY: a live handle and a writable out-pointer.
        let code = unsafe { check(self.handle, &mut out) };
        if code != OD_RESULT_OK {
            return Err(self.failure(code));
        }
        // SAFETY: on success `out` is a live report until freed below.
        let raw = unsafe { out.as_ref() }.expect("check_licence returned OK but no report");
        assert_eq!(
            raw.struct_size as usize,
            std::mem::size_of::<od_licence_report>()
        );
        // SAFETY: the report's arrays hold their counts of live elements.
        let (rules, modules) = unsafe {
            (
                elements(raw.rules, raw.rule_count),
                elements(raw.modules, raw.module_count),
            )
        };
        // SAFETY: the report's strings are NULL or NUL-terminated and live
        // until it is freed below.
        let report = unsafe {
            LicenceReport {
                ok: raw.ok == 1,
                licence_number: c_string(raw.licence_number),
                licensee_name: c_string(raw.licensee_name),
                tier: c_string(raw.tier),
                agreement_valid_until: c_string(raw.agreement_valid_until),
                online_users: raw.online_users,
                rules: rules
                    .into_iter()
                    .map(|r| {
                        assert_eq!(
                            r.struct_size as usize,
                            std::mem::size_of::<od_licence_rule>()
                        );
                        assert!(r.passed <= 1, "passed is 0 or 1");
                        Rule {
                            id: text(r.id),
                            title: text(r.title),
                            passed: r.passed == 1,
                            detail: text(r.detail),
                        }
                    })
                    .collect(),
                modules: modules.into_iter().map(|m| text(m.id)).collect(),
            }
        };
        // SAFETY: the report came from check_licence and is freed once.
        unsafe { free(out) };
        Ok(report)
    }

    pub fn check_prerequisites(&self, flags: od_check_flags) -> Result<Prerequisites, Failure> {
        let check = self
            .plugin
            .api
            .plugin_check_prerequisites
            .expect("plugin_check_prerequisites");
        let free = self
            .plugin
            .api
            .prerequisite_list_free
            .expect("prerequisite_list_free");
        let mut out: *mut od_prerequisite_list = std::ptr::null_mut();
        // SAFETY: a live handle and a writable out-pointer.
        let code = unsafe { check(self.handle, flags, &mut out) };
        if code != OD_RESULT_OK {
            return Err(self.failure(code));
        }
        // SAFETY: on success `out` is a live list until freed below.
        let raw = unsafe { out.as_ref() }.expect("check_prerequisites returned OK but no list");
        assert_eq!(
            raw.struct_size as usize,
            std::mem::size_of::<od_prerequisite_list>()
        );
        // SAFETY: the list's array holds `count` live elements.
        let items = unsafe { elements(raw.items, raw.count) };
        // SAFETY: the list's strings are NUL-terminated and live until it
        // is freed below.
        let list = unsafe {
            Prerequisites {
                can_connect: raw.can_connect == 1,
                pending: raw.pending == 1,
                rows: items
                    .into_iter()
                    .map(|p| {
                        assert_eq!(
                            p.struct_size as usize,
                            std::mem::size_of::<od_prerequisite>()
                        );
                        Row {
                            id: text(p.id),
                            title: text(p.title),
                            state: p.state,
                            blocking: p.blocking == 1,
                            detail: text(p.detail),
                            fix_location: text(p.fix_location),
                        }
                    })
                    .collect(),
            }
        };
        // SAFETY: the list came from check_prerequisites and is freed once.
        unsafe { free(out) };
        Ok(list)
    }

    /// A string argument as the ABI takes it: NULL, or the bytes with a
    /// NUL appended (they may be invalid UTF-8 on purpose).
    fn with_c_string<T>(value: Option<&[u8]>, call: impl FnOnce(*const c_char) -> T) -> T {
        match value {
            None => call(std::ptr::null()),
            Some(bytes) => {
                let mut owned = bytes.to_vec();
                owned.push(0);
                call(owned.as_ptr().cast())
            }
        }
    }

    fn outcome(&self, code: od_result) -> Result<(), Failure> {
        if code == OD_RESULT_OK {
            Ok(())
        } else {
            Err(self.failure(code))
        }
    }

    /// (ABI 1.1) `od_plugin_connection_set` with these bytes (None: NULL).
    pub fn connection_set(&self, json: Option<&[u8]>) -> Result<(), Failure> {
        let set = self
            .plugin
            .api
            .plugin_connection_set
            .expect("plugin_connection_set");
        // SAFETY: a live handle; the string is NULL or NUL-terminated.
        let code = Self::with_c_string(json, |ptr| unsafe { set(self.handle, ptr) });
        self.outcome(code)
    }

    /// (ABI 1.1) `od_plugin_sync_start`.
    pub fn sync_start(&self, flags: od_sync_flags) -> Result<(), Failure> {
        let start = self
            .plugin
            .api
            .plugin_sync_start
            .expect("plugin_sync_start");
        // SAFETY: a live handle.
        let code = unsafe { start(self.handle, flags) };
        self.outcome(code)
    }

    /// (ABI 1.1) `od_plugin_sync_stop`.
    pub fn sync_stop(&self) -> Result<(), Failure> {
        let stop = self.plugin.api.plugin_sync_stop.expect("plugin_sync_stop");
        // SAFETY: a live handle.
        let code = unsafe { stop(self.handle) };
        self.outcome(code)
    }

    /// (ABI 1.1) `od_plugin_sync_schedule` with these bytes (None: NULL).
    pub fn sync_schedule(&self, at: Option<&[u8]>) -> Result<(), Failure> {
        let schedule = self
            .plugin
            .api
            .plugin_sync_schedule
            .expect("plugin_sync_schedule");
        // SAFETY: a live handle; the string is NULL or NUL-terminated.
        let code = Self::with_c_string(at, |ptr| unsafe { schedule(self.handle, ptr) });
        self.outcome(code)
    }

    /// (ABI 1.1) `od_plugin_sync_notify`.
    pub fn sync_notify(&self) -> Result<(), Failure> {
        let notify = self
            .plugin
            .api
            .plugin_sync_notify
            .expect("plugin_sync_notify");
        // SAFETY: a live handle.
        let code = unsafe { notify(self.handle) };
        self.outcome(code)
    }

    /// (ABI 1.1) `od_plugin_sync_status`, copied out and freed.
    pub fn sync_status(&self) -> Result<SyncStatus, Failure> {
        let status = self
            .plugin
            .api
            .plugin_sync_status
            .expect("plugin_sync_status");
        let free = self.plugin.api.sync_status_free.expect("sync_status_free");
        let mut out: *mut od_sync_status = std::ptr::null_mut();
        // SAFETY: a live handle and a writable out-pointer.
        let code = unsafe { status(self.handle, &mut out) };
        if code != OD_RESULT_OK {
            assert!(out.is_null(), "out_status written on failure");
            return Err(self.failure(code));
        }
        // SAFETY: on success `out` is a live status until freed below.
        let raw = unsafe { out.as_ref() }.expect("sync_status returned OK but no status");
        // SAFETY: a live status.
        let copy = unsafe { copy_sync_status(raw) };
        // SAFETY: the status came from sync_status and is freed once.
        unsafe { free(out) };
        Ok(copy)
    }

    /// (ABI 1.1) `od_plugin_sync_history`: the text, checked against its
    /// length, copied out and freed.
    pub fn sync_history(&self) -> Result<String, Failure> {
        let history = self
            .plugin
            .api
            .plugin_sync_history
            .expect("plugin_sync_history");
        let free = self.plugin.api.text_free.expect("text_free");
        let mut out: *mut od_text = std::ptr::null_mut();
        // SAFETY: a live handle and a writable out-pointer.
        let code = unsafe { history(self.handle, &mut out) };
        if code != OD_RESULT_OK {
            assert!(out.is_null(), "out_history written on failure");
            return Err(self.failure(code));
        }
        // SAFETY: on success `out` is a live text until freed below.
        let raw = unsafe { out.as_ref() }.expect("sync_history returned OK but no text");
        assert_eq!(raw.struct_size as usize, std::mem::size_of::<od_text>());
        // SAFETY: a NUL-terminated string that lives as long as the text.
        let text = unsafe { text(raw.text) };
        assert_eq!(raw.len, text.len(), "len is strlen(text)");
        // SAFETY: the text came from sync_history and is freed once.
        unsafe { free(out) };
        Ok(text)
    }

    /// `od_plugin_free`; the instance is gone afterwards whatever it returns.
    pub fn free(mut self) -> od_result {
        self.freed = true;
        self.free_handle()
    }

    fn free_handle(&self) -> od_result {
        let free = self.plugin.api.plugin_free.expect("plugin_free");
        // SAFETY: the handle is freed once (`freed` guards the drop).
        unsafe { free(self.handle) }
    }
}

impl Drop for Instance<'_> {
    fn drop(&mut self) {
        if !self.freed {
            let code = self.free_handle();
            if !std::thread::panicking() {
                assert_eq!(code, OD_RESULT_OK, "od_plugin_free failed");
            }
        }
    }
}
