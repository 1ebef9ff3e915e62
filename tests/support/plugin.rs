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
