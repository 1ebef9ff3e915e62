//! The panic guard: with the test-only `od_test_inject_panic` (feature
//! `test-panic`, not in the header), each export in turn panics. An export
//! that returns `od_result` answers `OD_RESULT_PANIC` with a message naming
//! it; a `void` or value export returns safely; the process lives on, and
//! once the injection stops the same plugin instance works again.
//!
//! Its own test binary: the injection is global to the library.

use od_abi::*;
use od_tests::host::{HostApi, TestHost};
use od_tests::net::ClosedPort;
use od_tests::plugin::{c_string, plugin, Instance};
use parking_lot::Mutex;
use std::ffi::{c_char, CString};
use std::sync::Arc;

type InjectFn = unsafe extern "C" fn(export: *const c_char) -> od_result;

/// Tests take turns: only one export panics at a time.
static TURN: Mutex<()> = Mutex::new(());

/// While alive, `export` panics on every call.
struct Injection {
    inject: InjectFn,
}

impl Injection {
    fn start(export: &str) -> Injection {
        // SAFETY: the test-only export's true signature.
        let inject = unsafe { plugin().symbol::<InjectFn>("od_test_inject_panic") }.expect(
            "od_test_inject_panic is missing: the plugin was not built with the test-panic feature",
        );
        let name = CString::new(export).expect("an export name");
        // SAFETY: a NUL-terminated name.
        assert_eq!(unsafe { inject(name.as_ptr()) }, OD_RESULT_OK);
        Injection { inject }
    }
}

impl Drop for Injection {
    fn drop(&mut self) {
        // SAFETY: NULL stops the injection.
        let code = unsafe { (self.inject)(std::ptr::null()) };
        assert_eq!(code, OD_RESULT_OK);
    }
}

fn instance(host: &Arc<TestHost>, service: &ClosedPort) -> Instance<'static> {
    let mut api = HostApi::new(host, &service.url());
    api.log_level = OD_LOG_LEVEL_ERROR;
    plugin().create(&api).expect("create")
}

/// [`instance`] with a data folder, so that the sync exports can succeed.
fn instance_in(
    host: &Arc<TestHost>,
    service: &ClosedPort,
    dir: &std::path::Path,
) -> Instance<'static> {
    let mut api = HostApi::new(host, &service.url());
    api.log_level = OD_LOG_LEVEL_ERROR;
    api.data_dir = Some(dir.to_str().expect("a UTF-8 path").as_bytes().to_vec());
    plugin().create(&api).expect("create")
}

/// A connection document for a service that refuses connections.
fn connection(service: &ClosedPort) -> CString {
    let json = serde_json::json!({
        "service_url": service.url(),
        "company_id": "6f1c1a3e-8d2b-4c55-9a57-0d2c1e4b7a11",
        "computer_id": "pc-1",
        "device_id": "0b9d3c57-2f0e-4d8a-a3c1-5e6f7a8b9c0d",
        "access_token": "od-test-access",
        "access_expires_at": "2099-01-01T00:00:00Z",
        "refresh_token": "od-test-refresh",
    });
    CString::new(json.to_string()).expect("no NUL")
}

fn assert_panic_message(message: &str, export: &str) {
    assert!(
        message.contains(export)
            && message.contains("injected test panic")
            && message.contains("report this to support"),
        "{export}: {message}"
    );
}

#[test]
fn exports_on_a_handle_report_the_panic_on_the_handle() {
    let _turn = TURN.lock();
    let service = ClosedPort::new();
    let host = TestHost::complete();
    let instance = instance(&host, &service);
    let api = plugin().api();
    let handle = instance.handle();
    let calls: [(&str, &dyn Fn() -> od_result); 3] = [
        ("od_plugin_pump", &|| instance.pump()),
        ("od_plugin_check_licence", &|| {
            let mut out = std::ptr::null_mut();
            // SAFETY: a live handle and a writable output.
            let code = unsafe { api.plugin_check_licence.unwrap()(handle, &mut out) };
            assert_eq!(
                out.is_null(),
                code != OD_RESULT_OK,
                "output only on success"
            );
            // SAFETY: NULL or the report just made.
            unsafe { api.licence_report_free.unwrap()(out) };
            code
        }),
        ("od_plugin_check_prerequisites", &|| {
            let mut out = std::ptr::null_mut();
            // SAFETY: a live handle and a writable output.
            let code = unsafe { api.plugin_check_prerequisites.unwrap()(handle, 0, &mut out) };
            assert_eq!(
                out.is_null(),
                code != OD_RESULT_OK,
                "output only on success"
            );
            // SAFETY: NULL or the list just made.
            unsafe { api.prerequisite_list_free.unwrap()(out) };
            code
        }),
    ];
    for (export, call) in calls {
        let logged_before = host.logs().len();
        {
            let _panic = Injection::start(export);
            assert_eq!(call(), OD_RESULT_PANIC, "{export}");
            assert_eq!(call(), OD_RESULT_PANIC, "{export}, again");
            assert_panic_message(&instance.errmsg(), export);
        }
        let logs = host.logs();
        assert!(
            logs[logged_before..]
                .iter()
                .any(|r| r.level == OD_LOG_LEVEL_ERROR && r.message.contains(export)),
            "{export}: the panic is logged for the host: {logs:#?}"
        );
        assert_eq!(call(), OD_RESULT_OK, "{export} works again");
        assert_eq!(instance.errmsg(), "");
    }
    assert!(instance.check_licence().expect("licence").ok);
    assert_eq!(instance.check_prerequisites(0).expect("rows").rows.len(), 8);
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}

/// (ABI 1.1) The same for the synchronisation exports. Each panics before
/// it does anything, so the second half of the list (start, stop) finds
/// the connection and schedule the first half stored once the injection
/// stopped.
#[test]
fn sync_exports_on_a_handle_report_the_panic_on_the_handle() {
    let _turn = TURN.lock();
    let service = ClosedPort::new();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, &service, dir.path());
    let api = plugin().api();
    let handle = instance.handle();
    let document = connection(&service);
    let later = CString::new("2099-12-24T22:00:00+01:00").expect("no NUL");
    let calls: [(&str, &dyn Fn() -> od_result); 7] = [
        ("od_plugin_connection_set", &|| {
            // SAFETY: a live handle and a NUL-terminated document.
            unsafe { api.plugin_connection_set.unwrap()(handle, document.as_ptr()) }
        }),
        ("od_plugin_sync_schedule", &|| {
            // SAFETY: a live handle and a NUL-terminated time.
            unsafe { api.plugin_sync_schedule.unwrap()(handle, later.as_ptr()) }
        }),
        ("od_plugin_sync_notify", &|| {
            // SAFETY: a live handle.
            unsafe { api.plugin_sync_notify.unwrap()(handle) }
        }),
        ("od_plugin_sync_status", &|| {
            let mut out = std::ptr::null_mut();
            // SAFETY: a live handle and a writable output.
            let code = unsafe { api.plugin_sync_status.unwrap()(handle, &mut out) };
            assert_eq!(
                out.is_null(),
                code != OD_RESULT_OK,
                "output only on success"
            );
            // SAFETY: NULL or the status just made.
            unsafe { api.sync_status_free.unwrap()(out) };
            code
        }),
        ("od_plugin_sync_history", &|| {
            let mut out = std::ptr::null_mut();
            // SAFETY: a live handle and a writable output.
            let code = unsafe { api.plugin_sync_history.unwrap()(handle, &mut out) };
            assert_eq!(
                out.is_null(),
                code != OD_RESULT_OK,
                "output only on success"
            );
            // SAFETY: NULL or the text just made.
            unsafe { api.text_free.unwrap()(out) };
            code
        }),
        ("od_plugin_sync_start", &|| {
            // SAFETY: a live handle.
            unsafe { api.plugin_sync_start.unwrap()(handle, OD_SYNC_FLAG_NOW) }
        }),
        ("od_plugin_sync_stop", &|| {
            // SAFETY: a live handle.
            unsafe { api.plugin_sync_stop.unwrap()(handle) }
        }),
    ];
    for (export, call) in calls {
        let logged_before = host.logs().len();
        {
            let _panic = Injection::start(export);
            assert_eq!(call(), OD_RESULT_PANIC, "{export}");
            assert_eq!(call(), OD_RESULT_PANIC, "{export}, again");
            assert_panic_message(&instance.errmsg(), export);
        }
        let logs = host.logs();
        assert!(
            logs[logged_before..]
                .iter()
                .any(|r| r.level == OD_LOG_LEVEL_ERROR && r.message.contains(export)),
            "{export}: the panic is logged for the host: {logs:#?}"
        );
        assert_eq!(call(), OD_RESULT_OK, "{export} works again");
        assert_eq!(instance.errmsg(), "");
    }
    // Nothing was half done: the stored connection and schedule hold.
    let status = instance.sync_status().expect("status");
    assert_eq!(
        status.scheduled_at.as_deref(),
        Some("2099-12-24T21:00:00Z"),
        "{status:#?}"
    );
    assert!(dir.path().join("connection.json").is_file());
    assert!(instance.check_licence().expect("licence").ok);
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}

#[test]
fn exports_without_a_handle_report_the_panic_in_last_error() {
    let _turn = TURN.lock();
    let service = ClosedPort::new();
    let api = plugin().api();

    // od_entry
    {
        let _panic = Injection::start("od_entry");
        let sentinel = 0x77 as *const od_plugin_api;
        let mut out = sentinel;
        // SAFETY: `out` is writable.
        let code = unsafe { plugin().entry()(OD_VERSION_MAJOR, OD_VERSION_MINOR, &mut out) };
        assert_eq!(code, OD_RESULT_PANIC);
        assert_eq!(out, sentinel);
    }
    assert_panic_message(&plugin().last_error(), "od_entry");
    let mut out = std::ptr::null();
    // SAFETY: `out` is writable.
    let code = unsafe { plugin().entry()(OD_VERSION_MAJOR, OD_VERSION_MINOR, &mut out) };
    assert_eq!(code, OD_RESULT_OK);

    // od_plugin_new: fails, and releases user_data as on any failure.
    let host = TestHost::complete();
    {
        let _panic = Injection::start("od_plugin_new");
        let failure = plugin()
            .create(&HostApi::new(&host, &service.url()))
            .expect_err("panics");
        assert_eq!(failure.code, OD_RESULT_PANIC);
        assert_panic_message(&failure.message, "od_plugin_new");
        assert_eq!(host.user_data_frees(), 1);
    }

    // od_plugin_free: the handle survives the failed call.
    let host = TestHost::complete();
    let instance = instance(&host, &service);
    {
        let _panic = Injection::start("od_plugin_free");
        // SAFETY: a live handle.
        let code = unsafe { api.plugin_free.unwrap()(instance.handle()) };
        assert_eq!(code, OD_RESULT_PANIC);
        assert_eq!(host.user_data_frees(), 0);
    }
    assert_panic_message(&plugin().last_error(), "od_plugin_free");
    assert!(instance.check_licence().expect("still alive").ok);

    // od_plugin_errmsg: the handle's own message is untouched.
    instance
        .check_prerequisites(0x4)
        .expect_err("a failure to keep");
    {
        let _panic = Injection::start("od_plugin_errmsg");
        let mut buf = [0u8; 64];
        let mut len = 0;
        // SAFETY: a live handle and a writable buffer.
        let code = unsafe {
            api.plugin_errmsg.unwrap()(instance.handle(), buf.as_mut_ptr().cast(), 64, &mut len)
        };
        assert_eq!(code, OD_RESULT_PANIC);
    }
    assert_panic_message(&plugin().last_error(), "od_plugin_errmsg");
    assert!(instance.errmsg().contains("flags"), "{}", instance.errmsg());

    // od_last_error: the message of its own panic is read afterwards.
    {
        let _panic = Injection::start("od_last_error");
        let mut buf = [0u8; 64];
        // SAFETY: a writable buffer; out_len may be NULL.
        let code =
            unsafe { api.last_error.unwrap()(buf.as_mut_ptr().cast(), 64, std::ptr::null_mut()) };
        assert_eq!(code, OD_RESULT_PANIC);
    }
    assert_panic_message(&plugin().last_error(), "od_last_error");

    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}

#[test]
fn void_and_value_exports_return_safely() {
    let _turn = TURN.lock();
    // SAFETY: the exports' true signatures.
    let (major, minor, patch) = unsafe {
        (
            plugin()
                .symbol::<extern "C" fn() -> u32>("od_version_major")
                .expect("od_version_major"),
            plugin()
                .symbol::<extern "C" fn() -> u32>("od_version_minor")
                .expect("od_version_minor"),
            plugin()
                .symbol::<extern "C" fn() -> u32>("od_version_patch")
                .expect("od_version_patch"),
        )
    };
    let api = plugin().api();
    let version_string = api.version_string.unwrap();
    let version = format!("{OD_VERSION_MAJOR}.{OD_VERSION_MINOR}.{OD_VERSION_PATCH}");
    {
        let _panic = Injection::start("od_version_major");
        assert_eq!(major(), OD_VERSION_MAJOR);
    }
    {
        let _panic = Injection::start("od_version_minor");
        assert_eq!(minor(), OD_VERSION_MINOR);
    }
    {
        let _panic = Injection::start("od_version_patch");
        assert_eq!(patch(), OD_VERSION_PATCH);
    }
    {
        let _panic = Injection::start("od_version_string");
        // SAFETY: a static string, also when the body panicked.
        assert_eq!(unsafe { c_string(version_string()) }, Some(version));
    }
    {
        let _panic = Injection::start("od_result_text");
        assert_eq!(plugin().result_text(OD_RESULT_OK), "internal error");
    }
    assert_eq!(plugin().result_text(OD_RESULT_OK), "success");

    // The free functions: a panic leaves the output alive (leaked at
    // worst, never half-freed), and it can be freed once the panic stops.
    let service = ClosedPort::new();
    let host = TestHost::complete();
    let instance = instance(&host, &service);
    let mut report = std::ptr::null_mut();
    let mut list = std::ptr::null_mut();
    // SAFETY: a live handle and writable outputs; each output is freed
    // exactly once, after the injected panics.
    unsafe {
        assert_eq!(
            api.plugin_check_licence.unwrap()(instance.handle(), &mut report),
            OD_RESULT_OK
        );
        assert_eq!(
            api.plugin_check_prerequisites.unwrap()(instance.handle(), 0, &mut list),
            OD_RESULT_OK
        );
        {
            let _panic = Injection::start("od_licence_report_free");
            api.licence_report_free.unwrap()(report);
        }
        {
            let _panic = Injection::start("od_prerequisite_list_free");
            api.prerequisite_list_free.unwrap()(list);
        }
        assert_eq!((*report).ok, 1);
        assert_eq!((*list).count, 8);
        api.licence_report_free.unwrap()(report);
        api.prerequisite_list_free.unwrap()(list);
    }
    assert!(instance.check_licence().expect("usable").ok);

    // (ABI 1.1) The same for the status and the text.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let sync_host = TestHost::complete();
    let sync_instance = instance_in(&sync_host, &service, dir.path());
    let mut status = std::ptr::null_mut();
    let mut text = std::ptr::null_mut();
    // SAFETY: a live handle and writable outputs; each output is freed
    // exactly once, after the injected panics.
    unsafe {
        assert_eq!(
            api.plugin_sync_status.unwrap()(sync_instance.handle(), &mut status),
            OD_RESULT_OK
        );
        assert_eq!(
            api.plugin_sync_history.unwrap()(sync_instance.handle(), &mut text),
            OD_RESULT_OK
        );
        {
            let _panic = Injection::start("od_sync_status_free");
            api.sync_status_free.unwrap()(status);
        }
        {
            let _panic = Injection::start("od_text_free");
            api.text_free.unwrap()(text);
        }
        assert_eq!((*status).state, OD_SYNC_NOT_CONNECTED);
        let history = c_string((*text).text).expect("a text");
        let history: serde_json::Value = serde_json::from_str(&history).expect("JSON");
        assert_eq!(
            (&history["runs"], &history["conflicts"]),
            (&serde_json::json!([]), &serde_json::json!([]))
        );
        api.sync_status_free.unwrap()(status);
        api.text_free.unwrap()(text);
    }
    assert_eq!(
        sync_instance.sync_status().expect("usable").state,
        OD_SYNC_NOT_CONNECTED
    );
    assert_eq!(sync_instance.free(), OD_RESULT_OK);
    assert_eq!(sync_host.user_data_frees(), 1);
}

/// (ABI 1.2) The connect wizard's exports: each panics, answers
/// `OD_RESULT_PANIC` naming itself, and works again afterwards.
#[test]
fn wizard_exports_on_a_handle_report_the_panic_on_the_handle() {
    let _turn = TURN.lock();
    let service = ClosedPort::new();
    let host = TestHost::complete();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let instance = instance_in(&host, &service, dir.path());
    let api = plugin().api();
    let handle = instance.handle();
    let field = CString::new("email").expect("no NUL");
    let value = CString::new("kari@example.com").expect("no NUL");
    let calls: [(&str, &dyn Fn() -> od_result); 5] = [
        // SAFETY (all): a live handle, valid strings, writable outputs.
        ("od_plugin_wizard_open", &|| unsafe {
            api.plugin_wizard_open.unwrap()(handle)
        }),
        ("od_plugin_wizard_page", &|| {
            let mut out = std::ptr::null_mut();
            let code = unsafe { api.plugin_wizard_page.unwrap()(handle, &mut out) };
            assert_eq!(
                out.is_null(),
                code != OD_RESULT_OK,
                "output only on success"
            );
            unsafe { api.text_free.unwrap()(out) };
            code
        }),
        ("od_plugin_wizard_action", &|| unsafe {
            api.plugin_wizard_action.unwrap()(handle, OD_WIZARD_BACK)
        }),
        ("od_plugin_wizard_set", &|| unsafe {
            api.plugin_wizard_set.unwrap()(handle, field.as_ptr(), value.as_ptr())
        }),
        ("od_plugin_wizard_close", &|| unsafe {
            api.plugin_wizard_close.unwrap()(handle)
        }),
    ];
    for (export, call) in calls {
        {
            let _panic = Injection::start(export);
            assert_eq!(call(), OD_RESULT_PANIC, "{export}");
            assert_panic_message(&instance.errmsg(), export);
        }
        assert_ne!(call(), OD_RESULT_PANIC, "{export} works again");
    }
    // SAFETY: a live handle.
    unsafe {
        assert_eq!(api.plugin_wizard_close.unwrap()(handle), OD_RESULT_OK);
        assert_eq!(api.plugin_wizard_open.unwrap()(handle), OD_RESULT_OK);
    }
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}

/// (ABI 1.2) `od_plugin_wizard_open_for` and `od_plugin_restore_check`
/// report a panic as `OD_RESULT_PANIC` on the handle and work again after.
#[test]
fn wizard_modes_and_restore_check_report_the_panic_on_the_handle() {
    let _turn = TURN.lock();
    let service = ClosedPort::new();
    let host = TestHost::complete();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let instance = instance_in(&host, &service, dir.path());
    let api = plugin().api();
    let handle = instance.handle();
    let calls: [(&str, &dyn Fn() -> od_result); 2] = [
        // SAFETY (all): a live handle.
        ("od_plugin_wizard_open_for", &|| unsafe {
            let code = api.plugin_wizard_open_for.unwrap()(handle, OD_WIZARD_MODE_CONNECT);
            if code == OD_RESULT_OK {
                api.plugin_wizard_close.unwrap()(handle);
            }
            code
        }),
        ("od_plugin_restore_check", &|| unsafe {
            api.plugin_restore_check.unwrap()(handle)
        }),
    ];
    for (export, call) in calls {
        {
            let _panic = Injection::start(export);
            assert_eq!(call(), OD_RESULT_PANIC, "{export}");
            assert_panic_message(&instance.errmsg(), export);
        }
        assert_eq!(call(), OD_RESULT_OK, "{export} works again");
    }
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}
