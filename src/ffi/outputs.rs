//! Results handed to the host: C structs whose strings and arrays live in
//! one allocation owned by the host until it calls the matching free.
//!
//! Each output is a `#[repr(C)]` Rust struct whose first field is the public
//! C struct, so the pointer the host holds is the pointer to the whole
//! allocation. Live outputs are registered, so a double free or a foreign
//! pointer is recognised and ignored instead of corrupting memory.

use super::strings::to_c;
use crate::prerequisites::{CheckState, PrerequisiteList};
use crate::sync::engine::Status;
use od_abi::*;
use od_licence::LicenceReport;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::mem::size_of;

/// Which free function an output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LicenceReport,
    PrerequisiteList,
    SyncStatus,
    Text,
}

static LIVE: Mutex<Option<HashMap<usize, Kind>>> = Mutex::new(None);

fn register(address: usize, kind: Kind) {
    LIVE.lock()
        .get_or_insert_with(HashMap::new)
        .insert(address, kind);
}

/// Forgets `address`; false when it is not a live output of `kind` (freed
/// already, foreign, or handed to the wrong free function).
fn unregister(address: usize, kind: Kind) -> bool {
    let mut live = LIVE.lock();
    let Some(map) = live.as_mut() else {
        return false;
    };
    if map.get(&address) != Some(&kind) {
        return false;
    }
    map.remove(&address);
    if map.is_empty() {
        *live = None;
    }
    true
}

/// Owns the C strings of one output.
#[derive(Default)]
struct Strings(Vec<CString>);

impl Strings {
    fn add(&mut self, text: &str) -> *const c_char {
        let owned = to_c(text);
        let ptr = owned.as_ptr();
        self.0.push(owned);
        ptr
    }

    fn add_opt(&mut self, text: Option<&str>) -> *const c_char {
        text.map_or(std::ptr::null(), |t| self.add(t))
    }
}

/// Elements of an array of pointers, kept alive with their pointers.
struct Array<T> {
    items: Vec<Box<T>>,
    pointers: Vec<*const T>,
}

impl<T> Array<T> {
    fn new(items: Vec<T>) -> Array<T> {
        let items: Vec<Box<T>> = items.into_iter().map(Box::new).collect();
        let pointers = items.iter().map(|b| &**b as *const T).collect();
        Array { items, pointers }
    }

    fn ptr(&self) -> *const *const T {
        if self.pointers.is_empty() {
            std::ptr::null()
        } else {
            self.pointers.as_ptr()
        }
    }
}

#[repr(C)]
struct LicenceReportOut {
    public: od_licence_report,
    strings: Strings,
    rules: Array<od_licence_rule>,
    modules: Array<od_module>,
}

/// Builds the C form of a licence report; the host frees it with
/// [`free_licence_report`].
pub fn licence_report(report: &LicenceReport) -> *mut od_licence_report {
    let mut strings = Strings::default();
    let licence = report.licence.as_ref();
    let rules = Array::new(
        report
            .rules
            .iter()
            .map(|rule| od_licence_rule {
                struct_size: size_of::<od_licence_rule>() as u32,
                id: strings.add(rule.rule.id()),
                title: strings.add(&rule.title),
                passed: u32::from(rule.passed),
                detail: strings.add(&rule.detail),
            })
            .collect(),
    );
    let modules = Array::new(
        report
            .modules
            .iter()
            .map(|module| od_module {
                struct_size: size_of::<od_module>() as u32,
                id: strings.add(module.id()),
                title: strings.add(module.title()),
            })
            .collect(),
    );
    let valid_until = licence
        .and_then(|l| l.agreement.as_ref())
        .map(|a| a.valid_until.format("%Y-%m-%d").to_string());
    let public = od_licence_report {
        struct_size: size_of::<od_licence_report>() as u32,
        ok: u32::from(report.ok),
        licence_number: strings.add_opt(licence.map(|l| l.licence_number.as_str())),
        licensee_name: strings.add_opt(licence.map(|l| l.licensee_name.as_str())),
        contact_person: strings.add_opt(licence.map(|l| l.contact_person.as_str())),
        phone: strings.add_opt(licence.map(|l| l.phone.as_str())),
        tier: strings.add_opt(report.tier.map(|t| t.id())),
        agreement_valid_until: strings.add_opt(valid_until.as_deref()),
        online_users: licence.map_or(0, |l| l.online_users),
        evaluation: u32::from(licence.is_some_and(|l| l.evaluation)),
        rules: rules.ptr(),
        rule_count: rules.items.len(),
        modules: modules.ptr(),
        module_count: modules.items.len(),
    };
    let out = Box::into_raw(Box::new(LicenceReportOut {
        public,
        strings,
        rules,
        modules,
    }));
    register(out as usize, Kind::LicenceReport);
    out.cast()
}

/// Frees a report made by [`licence_report`]; false for an unknown pointer.
pub fn free_licence_report(report: *mut od_licence_report) -> bool {
    if !unregister(report as usize, Kind::LicenceReport) {
        return false;
    }
    // SAFETY: the address was registered by `licence_report`, which made it
    // with `Box::into_raw` of a `LicenceReportOut`, and is unregistered now,
    // so this is the only reclaim.
    drop(unsafe { Box::from_raw(report.cast::<LicenceReportOut>()) });
    true
}

#[repr(C)]
struct PrerequisiteListOut {
    public: od_prerequisite_list,
    strings: Strings,
    items: Array<od_prerequisite>,
}

/// Builds the C form of the prerequisite list; the host frees it with
/// [`free_prerequisite_list`].
pub fn prerequisite_list(list: &PrerequisiteList) -> *mut od_prerequisite_list {
    let mut strings = Strings::default();
    let items = Array::new(
        list.items
            .iter()
            .map(|p| od_prerequisite {
                struct_size: size_of::<od_prerequisite>() as u32,
                id: strings.add(p.id),
                title: strings.add(p.title),
                state: match p.state {
                    CheckState::Failed => OD_CHECK_FAILED,
                    CheckState::Passed => OD_CHECK_PASSED,
                    CheckState::Pending => OD_CHECK_PENDING,
                },
                blocking: u32::from(p.blocking),
                detail: strings.add(&p.detail),
                fix_location: strings.add(p.fix_location),
            })
            .collect(),
    );
    let public = od_prerequisite_list {
        struct_size: size_of::<od_prerequisite_list>() as u32,
        can_connect: u32::from(list.can_connect()),
        pending: u32::from(list.pending()),
        items: items.ptr(),
        count: items.items.len(),
    };
    let out = Box::into_raw(Box::new(PrerequisiteListOut {
        public,
        strings,
        items,
    }));
    register(out as usize, Kind::PrerequisiteList);
    out.cast()
}

/// Frees a list made by [`prerequisite_list`]; false for an unknown pointer.
pub fn free_prerequisite_list(list: *mut od_prerequisite_list) -> bool {
    if !unregister(list as usize, Kind::PrerequisiteList) {
        return false;
    }
    // SAFETY: as in `free_licence_report`, for `PrerequisiteListOut`.
    drop(unsafe { Box::from_raw(list.cast::<PrerequisiteListOut>()) });
    true
}

#[repr(C)]
struct SyncStatusOut {
    public: od_sync_status,
    strings: Strings,
}

/// Builds the C form of the synchronisation status; the host frees it
/// with [`free_sync_status`].
pub fn sync_status(status: &Status) -> *mut od_sync_status {
    let mut strings = Strings::default();
    let stamp = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    let progress = status.progress.as_ref();
    let public = od_sync_status {
        struct_size: size_of::<od_sync_status>() as u32,
        state: status.state.code(),
        state_name: strings.add(status.state.name()),
        first_sync_done: u32::from(status.first_sync_done),
        blocked: u32::from(status.blocked),
        last_success: strings.add_opt(stamp(status.last_success).as_deref()),
        scheduled_at: strings.add_opt(stamp(status.scheduled_at).as_deref()),
        pending_to_online: status.pending_to_online,
        pending_to_host: status.pending_to_host,
        parked: status.parked,
        error_code: status.error.as_ref().map_or(OD_RESULT_OK, |e| e.code),
        error: strings.add_opt(status.error.as_ref().map(|e| e.message.as_str())),
        progress_entity: strings.add_opt(progress.map(|p| p.entity_title.as_str())),
        progress_entity_done: progress.map_or(0, |p| p.entity_done),
        progress_entity_total: progress.map_or(0, |p| p.entity_total),
        progress_done: progress.map_or(0, |p| p.done),
        progress_total: progress.map_or(0, |p| p.total),
        progress_seconds_left: progress
            .and_then(|p| p.seconds_left)
            .map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX)),
    };
    let out = Box::into_raw(Box::new(SyncStatusOut { public, strings }));
    register(out as usize, Kind::SyncStatus);
    out.cast()
}

/// Frees a status made by [`sync_status`]; false for an unknown pointer.
pub fn free_sync_status(status: *mut od_sync_status) -> bool {
    if !unregister(status as usize, Kind::SyncStatus) {
        return false;
    }
    // SAFETY: as in `free_licence_report`, for `SyncStatusOut`.
    drop(unsafe { Box::from_raw(status.cast::<SyncStatusOut>()) });
    true
}

#[repr(C)]
struct TextOut {
    public: od_text,
    text: CString,
}

/// Builds an `od_text`; the host frees it with [`free_text`].
pub fn text(content: &str) -> *mut od_text {
    let text = to_c(content);
    let public = od_text {
        struct_size: size_of::<od_text>() as u32,
        text: text.as_ptr(),
        len: text.as_bytes().len(),
    };
    let out = Box::into_raw(Box::new(TextOut { public, text }));
    register(out as usize, Kind::Text);
    out.cast()
}

/// Frees a text made by [`text`]; false for an unknown pointer.
pub fn free_text(text: *mut od_text) -> bool {
    if !unregister(text as usize, Kind::Text) {
        return false;
    }
    // SAFETY: as in `free_licence_report`, for `TextOut`.
    drop(unsafe { Box::from_raw(text.cast::<TextOut>()) });
    true
}
