//! G6 at the ABI: every export, called through the loaded cdylib with bad
//! input, returns its documented code, leaves a readable message, calls
//! `user_data_free` exactly once where documented, and leaves the plugin
//! usable.

use od_abi::*;
use od_tests::host::{wait_until, Answer, HostApi, TestHost};
use od_tests::net::ClosedPort;
use od_tests::plugin::{plugin, read_message, Instance};
use std::ffi::{c_char, c_void, CStr};
use std::mem::{offset_of, size_of};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn api() -> &'static od_plugin_api {
    plugin().api()
}

/// The online service address of most tests: a reserved loopback port
/// that refuses connections, kept for the whole test run.
fn closed_url() -> String {
    static CLOSED: OnceLock<ClosedPort> = OnceLock::new();
    CLOSED.get_or_init(ClosedPort::new).url()
}

/// A live instance of a complete company.
fn instance(host: &Arc<TestHost>) -> Instance<'static> {
    plugin()
        .create(&HostApi::new(host, &closed_url()))
        .expect("a normal instance")
}

/// The plugin is still usable: a new instance works end to end.
fn assert_usable() {
    let host = TestHost::complete();
    let instance = instance(&host);
    let report = instance.check_licence().expect("licence");
    assert!(report.ok, "{report:#?}");
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}

/// A string of `len` bytes that are all `a`.
fn long_string(len: usize) -> Vec<u8> {
    vec![b'a'; len]
}

const MEBIBYTE: usize = 1024 * 1024;

/// A live instance of a complete company that keeps its state in `dir`.
fn instance_in(host: &Arc<TestHost>, dir: &std::path::Path) -> Instance<'static> {
    let mut api = HostApi::new(host, &closed_url());
    api.data_dir = Some(dir.to_str().expect("a UTF-8 path").as_bytes().to_vec());
    plugin()
        .create(&api)
        .expect("an instance with a data folder")
}

/// The tokens of [`connection_json`]; no message may quote them.
const ACCESS_TOKEN: &str = "od-test-access-7f3a9c";
const REFRESH_TOKEN: &str = "od-test-refresh-2b8e41";

/// A connection document as the service's device registration answers.
fn connection_json(service_url: &str) -> serde_json::Value {
    serde_json::json!({
        "service_url": service_url,
        "company_id": "6f1c1a3e-8d2b-4c55-9a57-0d2c1e4b7a11",
        "computer_id": "pc-1",
        "device_id": "0b9d3c57-2f0e-4d8a-a3c1-5e6f7a8b9c0d",
        "access_token": ACCESS_TOKEN,
        "access_expires_at": "2099-01-01T00:00:00Z",
        "refresh_token": REFRESH_TOKEN,
    })
}

/// `text` with a NUL appended, for a `const char *` argument.
fn c_text(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

// ---------------------------------------------------------------- od_entry

#[test]
fn the_table_points_at_the_exports() {
    let api = api();
    assert_eq!(api.struct_size as usize, size_of::<od_plugin_api>());
    assert_eq!(
        (api.abi_major, api.abi_minor, api.abi_patch),
        (OD_VERSION_MAJOR, OD_VERSION_MINOR, OD_VERSION_PATCH)
    );
    let export = |name: &str| -> usize {
        // SAFETY: only the address is used.
        unsafe { plugin().symbol::<*const c_void>(name) }
            .unwrap_or_else(|| panic!("{name} is not exported")) as usize
    };
    let entries: [(&str, Option<usize>); 20] = [
        ("od_version_string", api.version_string.map(|f| f as usize)),
        ("od_result_text", api.result_text.map(|f| f as usize)),
        ("od_last_error", api.last_error.map(|f| f as usize)),
        ("od_plugin_new", api.plugin_new.map(|f| f as usize)),
        ("od_plugin_free", api.plugin_free.map(|f| f as usize)),
        ("od_plugin_errmsg", api.plugin_errmsg.map(|f| f as usize)),
        ("od_plugin_pump", api.plugin_pump.map(|f| f as usize)),
        (
            "od_plugin_check_licence",
            api.plugin_check_licence.map(|f| f as usize),
        ),
        (
            "od_licence_report_free",
            api.licence_report_free.map(|f| f as usize),
        ),
        (
            "od_plugin_check_prerequisites",
            api.plugin_check_prerequisites.map(|f| f as usize),
        ),
        (
            "od_prerequisite_list_free",
            api.prerequisite_list_free.map(|f| f as usize),
        ),
        (
            "od_plugin_connection_set",
            api.plugin_connection_set.map(|f| f as usize),
        ),
        (
            "od_plugin_sync_start",
            api.plugin_sync_start.map(|f| f as usize),
        ),
        (
            "od_plugin_sync_stop",
            api.plugin_sync_stop.map(|f| f as usize),
        ),
        (
            "od_plugin_sync_schedule",
            api.plugin_sync_schedule.map(|f| f as usize),
        ),
        (
            "od_plugin_sync_notify",
            api.plugin_sync_notify.map(|f| f as usize),
        ),
        (
            "od_plugin_sync_status",
            api.plugin_sync_status.map(|f| f as usize),
        ),
        (
            "od_sync_status_free",
            api.sync_status_free.map(|f| f as usize),
        ),
        (
            "od_plugin_sync_history",
            api.plugin_sync_history.map(|f| f as usize),
        ),
        ("od_text_free", api.text_free.map(|f| f as usize)),
    ];
    for (name, entry) in entries {
        assert_eq!(entry, Some(export(name)), "table entry for {name}");
    }
}

#[test]
fn od_entry_checks_the_major_version_and_out_pointer() {
    let entry = plugin().entry();
    // SAFETY: a NULL out-pointer is allowed (checked).
    let code = unsafe { entry(OD_VERSION_MAJOR, OD_VERSION_MINOR, std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(plugin().last_error().contains("out_api"));

    let sentinel = 0x5a5a_usize as *const od_plugin_api;
    for major in [0, OD_VERSION_MAJOR + 1, u32::MAX] {
        let mut out = sentinel;
        // SAFETY: `out` is writable.
        let code = unsafe { entry(major, 0, &mut out) };
        assert_eq!(code, OD_RESULT_ABI_VERSION, "major {major}");
        assert_eq!(out, sentinel, "out_api untouched on failure");
        let message = plugin().last_error();
        assert!(
            message.contains(&format!("ABI {major}.0")),
            "major {major}: {message}"
        );
    }
    for minor in [0, OD_VERSION_MINOR + 1, 99, u32::MAX] {
        let mut out = std::ptr::null();
        // SAFETY: `out` is writable.
        let code = unsafe { entry(OD_VERSION_MAJOR, minor, &mut out) };
        assert_eq!(code, OD_RESULT_OK, "a different minor {minor} is fine");
        assert!(std::ptr::eq(out, api()), "the one static table");
    }
}

#[test]
fn version_and_text_functions_answer_anything() {
    // SAFETY: the exports' true signatures.
    let (major, minor, patch, string) = unsafe {
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
            plugin()
                .symbol::<extern "C" fn() -> *const c_char>("od_version_string")
                .expect("od_version_string"),
        )
    };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let text = |p: *const c_char| {
                    // SAFETY: static NUL-terminated strings.
                    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
                };
                assert_eq!(
                    (major(), minor(), patch()),
                    (OD_VERSION_MAJOR, OD_VERSION_MINOR, OD_VERSION_PATCH)
                );
                assert_eq!(
                    text(string()),
                    format!("{OD_VERSION_MAJOR}.{OD_VERSION_MINOR}.{OD_VERSION_PATCH}")
                );
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("version functions from any thread");
    }

    let known = [
        OD_RESULT_OK,
        OD_RESULT_NULL_ARGUMENT,
        OD_RESULT_INVALID_ARGUMENT,
        OD_RESULT_STRUCT_SIZE,
        OD_RESULT_ABI_VERSION,
        OD_RESULT_INVALID_UTF8,
        OD_RESULT_STRING_TOO_LONG,
        OD_RESULT_INVALID_HANDLE,
        OD_RESULT_BUFFER_TOO_SMALL,
        OD_RESULT_HOST_CALLBACK_FAILED,
        OD_RESULT_HOST_DATA_INVALID,
        OD_RESULT_HOST_CALLBACK_MISSING,
        OD_RESULT_SERVICE_UNREACHABLE,
        OD_RESULT_SERVICE_UNAVAILABLE,
        OD_RESULT_SERVICE_AUTH,
        OD_RESULT_SERVICE_REFUSED,
        OD_RESULT_SERVICE_PROTOCOL,
        OD_RESULT_BAD_STATE,
        OD_RESULT_INTERNAL,
        OD_RESULT_PANIC,
    ];
    let texts: Vec<String> = known.iter().map(|&c| plugin().result_text(c)).collect();
    for (code, text) in known.iter().zip(&texts) {
        assert!(!text.is_empty() && text != "unknown status code", "{code}");
    }
    let mut distinct = texts.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), texts.len(), "one text per code: {texts:?}");
    for unknown in [1, 99, 108, 199, 203, 305, 401, 902, 1000, u32::MAX] {
        assert_eq!(plugin().result_text(unknown), "unknown status code");
    }
}

// ------------------------------------------------- messages and buffers

/// Makes the last no-handle call on this thread fail with a message that
/// has a two-byte character in it, and returns that message.
fn fail_with_a_non_ascii_message() -> String {
    let host = TestHost::complete();
    let mut api = HostApi::new(&host, "http://bjørnøya.example/");
    api.log = false;
    let failure = plugin().create(&api).expect_err("http to a remote host");
    assert_eq!(failure.code, OD_RESULT_INVALID_ARGUMENT);
    assert!(failure.message.contains('ø'), "{}", failure.message);
    failure.message
}

/// Regression: asking for the length with a `(NULL, 0)` buffer, as the
/// header documents, used to replace the stored message with "the buffer is
/// empty; ...", so the read that followed returned that text (with a length
/// that no longer matched) instead of the error. `od_plugin_errmsg` did the
/// same to `od_last_error`'s message.
#[test]
fn regression_asking_for_the_message_length_replaced_the_message() {
    let last_error = api().last_error.expect("last_error");
    let message = fail_with_a_non_ascii_message();
    let mut len = 0;
    // SAFETY: NULL with size 0 is allowed.
    let code = unsafe { last_error(std::ptr::null_mut(), 0, &mut len) };
    assert_eq!((code, len), (OD_RESULT_BUFFER_TOO_SMALL, message.len()));
    let mut buf = vec![0u8; len + 1];
    let mut read = 0;
    // SAFETY: `buf` has `len + 1` writable bytes.
    let code = unsafe { last_error(buf.as_mut_ptr().cast(), buf.len(), &mut read) };
    assert_eq!((code, read), (OD_RESULT_OK, len));
    assert_eq!(&buf[..len], message.as_bytes());
}

/// Regression: a failed call on a live handle used to replace
/// `od_last_error`'s message too, which the header reserves for calls
/// without a valid handle.
#[test]
fn regression_a_failure_on_a_live_handle_replaced_last_error() {
    let message = fail_with_a_non_ascii_message();
    let host = TestHost::complete();
    let instance = instance(&host);
    let failure = instance
        .check_prerequisites(0x10)
        .expect_err("unknown flags");
    assert_eq!(failure.code, OD_RESULT_INVALID_ARGUMENT);
    assert_eq!(plugin().last_error(), message);
    let errmsg = api().plugin_errmsg.expect("plugin_errmsg");
    let mut len = 0;
    // SAFETY: a live handle; NULL with size 0 is allowed.
    let code = unsafe { errmsg(instance.handle(), std::ptr::null_mut(), 0, &mut len) };
    assert_eq!(code, OD_RESULT_BUFFER_TOO_SMALL);
    assert_eq!(plugin().last_error(), message);
}

#[test]
fn last_error_follows_the_buffer_rules() {
    let last_error = api().last_error.expect("last_error");
    let message = fail_with_a_non_ascii_message();

    // Asking for the length, then reading: both see the same message.
    let mut len = 0;
    // SAFETY: NULL with size 0 is allowed.
    let code = unsafe { last_error(std::ptr::null_mut(), 0, &mut len) };
    assert_eq!(code, OD_RESULT_BUFFER_TOO_SMALL);
    assert_eq!(len, message.len());
    assert_eq!(plugin().last_error(), message, "the size query kept it");

    // Cut in the middle of 'ø' (two bytes): the cut text ends before it.
    let at = message.find('ø').expect("ø");
    let mut buf = vec![0x55u8; at + 2];
    let mut len = 0;
    // SAFETY: `buf` has `buf.len()` writable bytes.
    let code = unsafe { last_error(buf.as_mut_ptr().cast(), buf.len(), &mut len) };
    assert_eq!(code, OD_RESULT_BUFFER_TOO_SMALL);
    assert_eq!(len, message.len(), "out_len is the full length");
    let cut = CStr::from_bytes_until_nul(&buf).expect("NUL-terminated");
    assert_eq!(
        cut.to_str().expect("cut at a character boundary"),
        &message[..at]
    );
    assert_eq!(plugin().last_error(), message, "cutting kept it");

    // A one-byte buffer gets just the NUL; out_len may be NULL.
    let mut one = [0x55u8; 1];
    // SAFETY: `one` has one writable byte; out_len may be NULL.
    let code = unsafe { last_error(one.as_mut_ptr().cast(), 1, std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_BUFFER_TOO_SMALL);
    assert_eq!(one[0], 0);
    let mut big = vec![0x55u8; message.len() + 10];
    // SAFETY: as above.
    let code = unsafe { last_error(big.as_mut_ptr().cast(), big.len(), std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_OK);
    assert_eq!(
        CStr::from_bytes_until_nul(&big).unwrap().to_str().unwrap(),
        message
    );

    // A NULL buffer with a size is a failure of od_last_error itself.
    // SAFETY: NULL is checked.
    let code = unsafe { last_error(std::ptr::null_mut(), 16, &mut len) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(plugin().last_error().contains("buf"));

    // The slot is per thread.
    let other = std::thread::spawn(|| plugin().last_error())
        .join()
        .expect("another thread");
    assert_eq!(other, "");
}

#[test]
fn errmsg_follows_the_buffer_rules_and_keeps_the_message() {
    let errmsg = api().plugin_errmsg.expect("plugin_errmsg");
    let host = TestHost::complete();
    let instance = instance(&host);
    let handle = instance.handle();
    assert_eq!(instance.errmsg(), "", "nothing failed yet");

    let failure = instance
        .check_prerequisites(0x10)
        .expect_err("unknown flags");
    assert_eq!(failure.code, OD_RESULT_INVALID_ARGUMENT);
    assert!(failure.message.contains("0x10"), "{}", failure.message);

    // A no-handle failure first, to see that errmsg leaves it alone.
    let no_handle = fail_with_a_non_ascii_message();
    let mut len = 0;
    // SAFETY: a live handle; NULL with size 0 is allowed.
    let code = unsafe { errmsg(handle, std::ptr::null_mut(), 0, &mut len) };
    assert_eq!(code, OD_RESULT_BUFFER_TOO_SMALL);
    assert_eq!(len, failure.message.len());
    let mut small = [0x55u8; 4];
    // SAFETY: `small` has 4 writable bytes.
    let code = unsafe { errmsg(handle, small.as_mut_ptr().cast(), 4, &mut len) };
    assert_eq!(code, OD_RESULT_BUFFER_TOO_SMALL);
    assert_eq!(&small, b"unk\0");
    assert_eq!(
        instance.errmsg(),
        failure.message,
        "errmsg does not change it"
    );
    assert_eq!(
        plugin().last_error(),
        no_handle,
        "a call with a valid handle leaves od_last_error alone"
    );
    // SAFETY: NULL with a size is checked.
    let code = unsafe { errmsg(handle, std::ptr::null_mut(), 8, &mut len) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);

    // A call that succeeds clears the message.
    instance.check_licence().expect("licence");
    let mut buf = [0x55u8; 8];
    // SAFETY: `buf` has 8 writable bytes.
    let code = unsafe { errmsg(handle, buf.as_mut_ptr().cast(), buf.len(), &mut len) };
    assert_eq!(code, OD_RESULT_OK);
    assert_eq!((len, buf[0]), (0, 0));
    // SAFETY: NULL with size 0, and a NULL out_len.
    let code = unsafe { errmsg(handle, std::ptr::null_mut(), 0, std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_OK, "an empty message fits in nothing");
}

// ------------------------------------------------------- od_plugin_new

/// A change to a host table.
type Edit = Box<dyn Fn(&mut HostApi)>;

/// One bad host table: what to break, and what the plugin must answer.
struct Case {
    name: &'static str,
    edit: Edit,
    code: od_result,
    /// `user_data_free` runs when the table was readable that far.
    frees: usize,
    mentions: &'static str,
}

fn case(
    name: &'static str,
    code: od_result,
    frees: usize,
    mentions: &'static str,
    edit: impl Fn(&mut HostApi) + 'static,
) -> Case {
    Case {
        name,
        edit: Box::new(edit),
        code,
        frees,
        mentions,
    }
}

#[test]
fn plugin_new_refuses_bad_host_tables() {
    let full = size_of::<od_host_api>() as u32;
    let covers_free =
        (offset_of!(od_host_api, user_data_free) + size_of::<od_user_data_free_fn>()) as u32;
    let invalid_utf8 = b"/tmp/od-\xff\xfe-test".to_vec();
    let cases = vec![
        case(
            "struct_size 0",
            OD_RESULT_STRUCT_SIZE,
            0,
            "struct_size",
            |a| a.struct_size = 0,
        ),
        case(
            "struct_size 4",
            OD_RESULT_STRUCT_SIZE,
            0,
            "struct_size",
            |a| a.struct_size = 4,
        ),
        case(
            "struct_size short of user_data_free",
            OD_RESULT_STRUCT_SIZE,
            0,
            "struct_size",
            move |a| a.struct_size = covers_free - 1,
        ),
        case(
            "struct_size covering user_data_free",
            OD_RESULT_STRUCT_SIZE,
            1,
            "struct_size",
            move |a| a.struct_size = covers_free,
        ),
        case(
            "struct_size one byte short",
            OD_RESULT_STRUCT_SIZE,
            1,
            "struct_size",
            move |a| a.struct_size = full - 1,
        ),
        case("abi_major 0", OD_RESULT_ABI_VERSION, 1, "ABI 0.", |a| {
            a.abi_major = 0
        }),
        case("abi_major 2", OD_RESULT_ABI_VERSION, 1, "ABI 2.", |a| {
            a.abi_major = OD_VERSION_MAJOR + 1
        }),
        case("abi_major max", OD_RESULT_ABI_VERSION, 1, "ABI", |a| {
            a.abi_major = u32::MAX
        }),
        case(
            "request missing",
            OD_RESULT_HOST_CALLBACK_MISSING,
            1,
            "request",
            |a| a.request = false,
        ),
        case(
            "request_pump missing",
            OD_RESULT_HOST_CALLBACK_MISSING,
            1,
            "request_pump",
            |a| a.request_pump = false,
        ),
        case(
            "log_level 6",
            OD_RESULT_INVALID_ARGUMENT,
            1,
            "log_level",
            |a| a.log_level = OD_LOG_LEVEL_TRACE + 1,
        ),
        case(
            "log_level max",
            OD_RESULT_INVALID_ARGUMENT,
            1,
            "log_level",
            |a| a.log_level = u32::MAX,
        ),
        case(
            "trace_log_level 6",
            OD_RESULT_INVALID_ARGUMENT,
            1,
            "trace_log_level",
            |a| a.trace_log_level = OD_LOG_LEVEL_TRACE + 1,
        ),
        case(
            "data_dir not UTF-8",
            OD_RESULT_INVALID_UTF8,
            1,
            "data_dir",
            {
                let bad = invalid_utf8.clone();
                move |a| a.data_dir = Some(bad.clone())
            },
        ),
        case(
            "trace_log_path not UTF-8",
            OD_RESULT_INVALID_UTF8,
            1,
            "trace_log_path",
            {
                let bad = invalid_utf8.clone();
                move |a| a.trace_log_path = Some(bad.clone())
            },
        ),
        case(
            "service_url not UTF-8",
            OD_RESULT_INVALID_UTF8,
            1,
            "service_url",
            |a| a.service_url = Some(b"http://127.0.0.1:1/\xc3(".to_vec()),
        ),
        case(
            "data_dir of 4 MiB",
            OD_RESULT_STRING_TOO_LONG,
            1,
            "data_dir",
            |a| a.data_dir = Some(long_string(4 * MEBIBYTE)),
        ),
        case(
            "trace_log_path of 4 MiB",
            OD_RESULT_STRING_TOO_LONG,
            1,
            "trace_log_path",
            |a| a.trace_log_path = Some(long_string(4 * MEBIBYTE)),
        ),
        case(
            "service_url of 4 MiB",
            OD_RESULT_STRING_TOO_LONG,
            1,
            "service_url",
            |a| {
                let mut url = b"https://".to_vec();
                url.extend(long_string(4 * MEBIBYTE));
                a.service_url = Some(url)
            },
        ),
    ];
    let mut urls: Vec<Case> = [
        "http://10.0.0.5",
        "http://192.0.2.1:8080/",
        "http://online.example.com",
        "http://localhost.example.com:1",
        "http://[::ffff:127.0.0.1]:1",
        "ftp://127.0.0.1/",
        "not a url",
        "https://",
        "file:///etc/passwd",
    ]
    .into_iter()
    .map(|url| {
        case(
            "service_url refused",
            OD_RESULT_INVALID_ARGUMENT,
            1,
            "service_url",
            move |a| a.service_url = Some(url.as_bytes().to_vec()),
        )
    })
    .collect();
    let all = cases.into_iter().chain(urls.drain(..));
    for case in all {
        let host = TestHost::complete();
        let mut api = HostApi::new(&host, &closed_url());
        (case.edit)(&mut api);
        let failure = match plugin().create(&api) {
            Ok(_) => panic!("{}: accepted", case.name),
            Err(failure) => failure,
        };
        assert_eq!(
            failure.code, case.code,
            "{}: {}",
            case.name, failure.message
        );
        assert!(
            failure.message.contains(case.mentions),
            "{}: the message should name {:?}: {}",
            case.name,
            case.mentions,
            failure.message
        );
        assert!(
            failure.message.len() < 1024,
            "{}: a readable message, not an echo of the input ({} bytes)",
            case.name,
            failure.message.len()
        );
        assert_eq!(host.user_data_frees(), case.frees, "{}", case.name);
        assert!(host.requests().is_empty(), "{}: no host call", case.name);
        assert!(host.logs().is_empty(), "{}: nothing logged", case.name);
    }
    assert_usable();
}

#[test]
fn plugin_new_accepts_what_the_abi_allows() {
    let mut tables: Vec<(&str, Edit)> = vec![
        (
            "a newer host: larger struct_size and minor",
            Box::new(|a| {
                a.struct_size += 64;
                a.abi_minor = OD_VERSION_MINOR + 7;
            }),
        ),
        ("no log callback", Box::new(|a| a.log = false)),
        ("no on_event callback", Box::new(|a| a.on_event = false)),
        ("no user_data_free", Box::new(|a| a.user_data_free = false)),
        (
            "log levels at the ends",
            Box::new(|a| {
                a.log_level = OD_LOG_LEVEL_OFF;
                a.trace_log_level = OD_LOG_LEVEL_TRACE;
            }),
        ),
        (
            "empty data_dir and trace_log_path",
            Box::new(|a| {
                a.data_dir = Some(Vec::new());
                a.trace_log_path = Some(Vec::new());
            }),
        ),
        // Regression: an empty service_url was refused while an empty
        // data_dir meant "none"; empty now means the built-in address.
        (
            "empty service_url",
            Box::new(|a| a.service_url = Some(Vec::new())),
        ),
    ];
    for url in [
        "http://127.0.0.1:1",
        "http://localhost:1/",
        "http://[::1]:1",
        "https://online.example.com/base/",
    ] {
        tables.push((
            "a service_url the ABI allows",
            Box::new(move |a| a.service_url = Some(url.as_bytes().to_vec())),
        ));
    }
    for (name, edit) in tables {
        let host = TestHost::complete();
        let mut api = HostApi::new(&host, &closed_url());
        edit(&mut api);
        let instance = plugin()
            .create(&api)
            .unwrap_or_else(|f| panic!("{name}: {f:?}"));
        assert!(instance.check_licence().expect(name).ok, "{name}");
        assert_eq!(instance.free(), OD_RESULT_OK, "{name}");
        let frees = usize::from(api.user_data_free);
        assert_eq!(host.user_data_frees(), frees, "{name}");
    }
}

#[test]
fn plugin_new_checks_its_pointers() {
    let new = api().plugin_new.expect("plugin_new");
    let mut out = std::ptr::null_mut();
    // SAFETY: NULL is checked.
    let code = unsafe { new(std::ptr::null(), &mut out) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(out.is_null());
    assert!(plugin().last_error().contains("host"));

    let host = TestHost::complete();
    let table = HostApi::new(&host, &closed_url()).table();
    // SAFETY: a valid table; NULL out_plugin is checked.
    let code = unsafe { new(table.as_ptr(), std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(plugin().last_error().contains("out_plugin"));
    assert_eq!(host.user_data_frees(), 1, "released on failure");
    assert_usable();
}

// ------------------------------------------------------------- handles

/// Every export that takes a handle, called with `handle`: the codes.
/// `od_plugin_free` comes last.
fn call_everything_with(handle: *mut od_plugin) -> [od_result; 12] {
    let api = api();
    let sentinel_report = 0x77 as *mut od_licence_report;
    let sentinel_list = 0x77 as *mut od_prerequisite_list;
    let sentinel_status = 0x77 as *mut od_sync_status;
    let sentinel_text = 0x77 as *mut od_text;
    let mut report = sentinel_report;
    let mut list = sentinel_list;
    let mut status = sentinel_status;
    let mut text = sentinel_text;
    let mut buf = [0u8; 64];
    let mut len = 0;
    let connection = c_text(&connection_json(&closed_url()).to_string());
    // SAFETY: the handle is checked by the plugin; every other pointer is
    // valid.
    let codes = unsafe {
        [
            api.plugin_errmsg.unwrap()(handle, buf.as_mut_ptr().cast(), buf.len(), &mut len),
            api.plugin_pump.unwrap()(handle),
            api.plugin_check_licence.unwrap()(handle, &mut report),
            api.plugin_check_prerequisites.unwrap()(handle, 0, &mut list),
            api.plugin_connection_set.unwrap()(handle, connection.as_ptr().cast()),
            api.plugin_sync_start.unwrap()(handle, OD_SYNC_FLAG_NOW),
            api.plugin_sync_stop.unwrap()(handle),
            api.plugin_sync_schedule.unwrap()(handle, std::ptr::null()),
            api.plugin_sync_notify.unwrap()(handle),
            api.plugin_sync_status.unwrap()(handle, &mut status),
            api.plugin_sync_history.unwrap()(handle, &mut text),
            api.plugin_free.unwrap()(handle),
        ]
    };
    assert_eq!(report, sentinel_report, "out_report untouched on failure");
    assert_eq!(list, sentinel_list, "out_list untouched on failure");
    assert_eq!(status, sentinel_status, "out_status untouched on failure");
    assert_eq!(text, sentinel_text, "out_history untouched on failure");
    codes
}

#[test]
fn every_export_checks_its_handle() {
    let host = TestHost::complete();
    let live = instance(&host);

    let stale = {
        let other_host = TestHost::complete();
        let other = instance(&other_host);
        let handle = other.handle();
        assert_eq!(other.free(), OD_RESULT_OK);
        assert_eq!(other_host.user_data_frees(), 1);
        handle
    };
    // A new instance may reuse the freed slot; the old handle stays dead.
    let reuse_host = TestHost::complete();
    let reused = instance(&reuse_host);
    assert_ne!(reused.handle(), stale);

    let mut local = 0u64;
    let made_up = [
        stale,
        // Generation 0 is never handed out.
        std::ptr::without_provenance_mut(1),
        0xffff_0000_usize as *mut od_plugin,
        0xdead_beef as *mut od_plugin,
        usize::MAX as *mut od_plugin,
        (&mut local as *mut u64).cast(),
        (live.handle() as usize ^ (1 << 20)) as *mut od_plugin,
        (live.handle() as usize + 1) as *mut od_plugin,
    ];
    for handle in made_up {
        let codes = call_everything_with(handle);
        assert_eq!(
            codes, [OD_RESULT_INVALID_HANDLE; 12],
            "handle {:#x}",
            handle as usize
        );
        assert!(
            plugin().last_error().contains("not valid"),
            "{}",
            plugin().last_error()
        );
    }
    let codes = call_everything_with(std::ptr::null_mut());
    let mut expected = [OD_RESULT_NULL_ARGUMENT; 12];
    expected[11] = OD_RESULT_OK; // od_plugin_free(NULL) does nothing
    assert_eq!(codes, expected);
    assert!(
        plugin().last_error().contains("plugin"),
        "{}",
        plugin().last_error()
    );

    // The live instances were not disturbed.
    assert!(live.check_licence().expect("live").ok);
    assert!(reused.check_licence().expect("reused").ok);
    assert_eq!(live.errmsg(), "");
    drop(live);
    drop(reused);
    assert_eq!(host.user_data_frees(), 1);
    assert_eq!(reuse_host.user_data_frees(), 1);
}

#[test]
fn null_outputs_and_unknown_flags_are_refused() {
    let host = TestHost::complete();
    let instance = instance(&host);
    let api = api();
    // SAFETY: a live handle; NULL outputs are checked.
    let code =
        unsafe { api.plugin_check_licence.unwrap()(instance.handle(), std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(instance.errmsg().contains("out_report"));
    // SAFETY: as above.
    let code = unsafe {
        api.plugin_check_prerequisites.unwrap()(instance.handle(), 0, std::ptr::null_mut())
    };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(instance.errmsg().contains("out_list"));
    for flags in [2, 0x8000_0000, u32::MAX] {
        let failure = instance.check_prerequisites(flags).expect_err("bad flags");
        assert_eq!(failure.code, OD_RESULT_INVALID_ARGUMENT, "{flags:#x}");
        assert!(failure.message.contains("flags"), "{}", failure.message);
    }
    let list = instance.check_prerequisites(0).expect("usable afterwards");
    assert_eq!(list.rows.len(), 8);
    assert_eq!(instance.errmsg(), "");
}

#[test]
fn free_functions_ignore_what_they_do_not_own() {
    let api = api();
    let host = TestHost::complete();
    let instance = instance(&host);
    let report_free = api.licence_report_free.unwrap();
    let list_free = api.prerequisite_list_free.unwrap();
    let mut report = std::ptr::null_mut();
    let mut list = std::ptr::null_mut();
    // SAFETY: a live handle and writable outputs.
    unsafe {
        assert_eq!(
            api.plugin_check_licence.unwrap()(instance.handle(), &mut report),
            OD_RESULT_OK
        );
        assert_eq!(
            api.plugin_check_prerequisites.unwrap()(instance.handle(), 0, &mut list),
            OD_RESULT_OK
        );
    }
    let mut fake_report: od_licence_report = unsafe { std::mem::zeroed() };
    let mut fake_list: od_prerequisite_list = unsafe { std::mem::zeroed() };
    // SAFETY: the free functions check the pointer before using it; the
    // real outputs are freed exactly once by their own function at the end.
    unsafe {
        report_free(std::ptr::null_mut());
        list_free(std::ptr::null_mut());
        // Wrong kind: each ignores the other's output.
        report_free(list.cast());
        list_free(report.cast());
        // Not ours at all.
        report_free(&mut fake_report);
        list_free(&mut fake_list);
        report_free(0x1000 as *mut od_licence_report);
        list_free(usize::MAX as *mut od_prerequisite_list);
        // The real outputs are still intact.
        assert_eq!((*report).ok, 1);
        assert_eq!((*list).count, 8);
        report_free(report);
        list_free(list);
        // Double free: ignored.
        report_free(report);
        list_free(list);
    }
    assert!(instance.check_licence().expect("usable").ok);
}

// ------------------------------------------------- misbehaving callbacks

/// Which rows read which method.
const ROWS_OF: [(&str, &[&str]); 6] = [
    ("user.current", &["super_user", "employee_email"]),
    ("company.registration", &["company_registration"]),
    ("host.info", &["real_company"]),
    ("system.companies", &["no_other_company_connected"]),
    ("sessions.active", &["no_other_sessions"]),
    (
        "company.identity",
        &["real_company", "no_other_company_connected"],
    ),
];

/// The complete answer to `method` with a string the plugin reads
/// replaced by bytes that are not UTF-8.
fn invalid_utf8_answer(method: &str) -> Vec<u8> {
    const MARK: &str = "@@not-utf-8@@";
    let (_, mut value) = od_tests::fixtures::complete_answers()
        .into_iter()
        .find(|(m, _)| *m == method)
        .expect("a known method");
    let place = match method {
        "user.current" => "/username",
        "company.registration" => "/name",
        "host.info" => "/host_name",
        "system.companies" => "/companies/0/name",
        "company.identity" => "/name",
        "sessions.active" => {
            value["users"] = serde_json::json!([{"username": MARK, "computer": "PC-2"}]);
            "/users/0/username"
        }
        other => panic!("no string to spoil in {other}"),
    };
    *value.pointer_mut(place).expect("the field") = MARK.into();
    let text = value.to_string();
    let at = text.find(MARK).expect("the mark");
    let mut bytes = text.as_bytes()[..at].to_vec();
    bytes.extend_from_slice(b"\xff\xfe");
    bytes.extend_from_slice(&text.as_bytes()[at + MARK.len()..]);
    bytes
}

#[test]
fn host_request_failures_fail_only_their_rows() {
    let answers: Vec<(&str, Answer, &str)> = vec![
        (
            "fails",
            Answer::fail("database is locked"),
            "database is locked",
        ),
        (
            "fails with an invalid UTF-8 message",
            Answer::Fail {
                code: 7,
                message: b"locked \xff\xfe by PC-2".to_vec(),
            },
            "by PC-2",
        ),
        (
            "fails without a message",
            Answer::Fail {
                code: -3,
                message: Vec::new(),
            },
            "error code -3",
        ),
        (
            "answers invalid JSON",
            Answer::Raw(b"{\"username\": ".to_vec()),
            "cannot read",
        ),
        (
            "answers the wrong shape",
            Answer::Raw(b"[1, 2, 3]".to_vec()),
            "cannot read",
        ),
        ("answers nothing", Answer::Raw(Vec::new()), "cannot read"),
        ("misuses write", Answer::MisuseWrite, "cannot read"),
    ];
    for (method, rows) in ROWS_OF {
        let mut answers = answers.clone();
        answers.push((
            "answers invalid UTF-8",
            Answer::Raw(invalid_utf8_answer(method)),
            "cannot read",
        ));
        for (what, answer, expected) in &answers {
            let host = TestHost::complete();
            let instance = instance(&host);
            host.set(method, answer.clone());
            let list = instance
                .check_prerequisites(0)
                .unwrap_or_else(|f| panic!("{method} {what}: {f:?}"));
            for row in &list.rows {
                if rows.contains(&row.id.as_str()) {
                    assert_eq!(row.state, OD_CHECK_FAILED, "{method} {what}: {row:#?}");
                    assert!(
                        row.detail.contains(expected) && row.detail.contains(method),
                        "{method} {what}: {row:#?}"
                    );
                } else if row.id != "service_reachable" {
                    assert_eq!(row.state, OD_CHECK_PASSED, "{method} {what}: {row:#?}");
                }
            }
            if matches!(answer, Answer::MisuseWrite) {
                let results = host.write_results();
                assert!(results.len() >= 4, "{results:?}");
                assert!(
                    results
                        .chunks(4)
                        .all(|r| r[0] != 0 && r[1] != 0 && r[2] == 0 && r[3] != 0),
                    "NULL data, a NULL context and an impossible length are refused; (NULL, 0) is \
                     nothing: {results:?}"
                );
            }
            assert_eq!(instance.errmsg(), "", "the call itself succeeded");
            // The host is fixed: the next check reads afresh and passes.
            for (method, value) in od_tests::fixtures::complete_answers() {
                host.set(method, Answer::Json(value));
            }
            let list = instance.check_prerequisites(0).expect("check again");
            assert!(
                list.rows
                    .iter()
                    .filter(|r| r.id != "service_reachable")
                    .all(|r| r.state == OD_CHECK_PASSED),
                "{method} {what}: {list:#?}"
            );
            assert_eq!(instance.free(), OD_RESULT_OK);
            assert_eq!(host.user_data_frees(), 1);
            assert_eq!(host.callback_panics(), 0);
        }
    }
}

#[test]
fn a_huge_host_answer_is_refused() {
    let host = TestHost::complete();
    let instance = instance(&host);
    host.set(
        "user.current",
        Answer::Huge {
            total: 65 * MEBIBYTE,
        },
    );
    let list = instance.check_prerequisites(0).expect("check");
    let row = list.row("super_user");
    assert_eq!(row.state, OD_CHECK_FAILED);
    assert!(row.detail.contains("larger than 64 MB"), "{row:#?}");
    let results = host.write_results();
    assert!(
        !results.is_empty() && results.iter().all(|&r| r != 0),
        "write refused the part beyond the limit: {results:?}"
    );
    assert_eq!(list.row("company_registration").state, OD_CHECK_PASSED);
}

#[test]
fn licence_data_the_host_cannot_give_fails_the_licence_not_the_plugin() {
    let cases: Vec<(&str, Answer, &str)> = vec![
        (
            "licence.documents",
            Answer::fail("system database locked"),
            "system database locked",
        ),
        (
            "licence.documents",
            Answer::Raw(b"\xff".to_vec()),
            "cannot read",
        ),
        (
            "licence.documents",
            Answer::Huge {
                total: 65 * MEBIBYTE,
            },
            "larger than 64 MB",
        ),
        (
            "system.bindings",
            Answer::Raw(b"{\"bindings\": 5}".to_vec()),
            "cannot read",
        ),
        ("company.identity", Answer::MisuseWrite, "cannot read"),
    ];
    for (method, answer, expected) in cases {
        let host = TestHost::complete();
        host.set(method, answer);
        let instance = instance(&host);
        let report = instance.check_licence().expect("the report");
        assert!(!report.ok, "{method}");
        let first = &report.rules[0];
        assert_eq!(first.id, "licence_present");
        assert!(!first.passed);
        assert!(
            first.detail.contains(expected) && first.detail.contains(method),
            "{method}: {first:#?}"
        );
        let list = instance.check_prerequisites(0).expect("check");
        assert_eq!(list.row("licence").state, OD_CHECK_FAILED);
        assert!(!list.can_connect);
    }
    assert_usable();
}

#[test]
fn callbacks_that_return_errors_change_nothing() {
    let host = TestHost::complete();
    host.set_log_return(-1);
    host.set_pump_return(5);
    host.set_event_return(9);
    let mut api = HostApi::new(&host, &closed_url());
    api.log_level = OD_LOG_LEVEL_TRACE;
    let instance = plugin().create(&api).expect("create");
    assert!(instance.check_licence().expect("licence").ok);
    instance.check_prerequisites(0).expect("check");
    assert!(host.wait_for_pump_request(0, Duration::from_secs(20)));

    // The host refused to schedule a pump; the event stays queued and the
    // next pump delivers it.
    let refused_pump_logged = || {
        host.logs()
            .iter()
            .any(|r| r.level == OD_LOG_LEVEL_WARN && r.message.contains("(code 5)"))
    };
    assert!(
        wait_until(Duration::from_secs(20), refused_pump_logged),
        "the refused pump is logged: {:#?}",
        host.logs()
    );
    assert_eq!(instance.pump(), OD_RESULT_OK);
    let events = host.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, OD_EVENT_PREREQUISITES_CHANGED);
    assert_eq!(
        instance.errmsg(),
        "",
        "the event callback's code is not an error"
    );
    let logs = host.logs();
    assert!(
        logs.iter()
            .any(|r| r.level == OD_LOG_LEVEL_WARN && r.message.contains("returned 9")),
        "the event callback's code is logged: {logs:#?}"
    );
    assert_eq!(
        instance
            .check_prerequisites(0)
            .expect("check")
            .row("service_reachable")
            .state,
        OD_CHECK_FAILED
    );
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}

#[test]
fn without_on_event_pumped_events_are_dropped() {
    let host = TestHost::complete();
    let mut api = HostApi::new(&host, &closed_url());
    api.on_event = false;
    let instance = plugin().create(&api).expect("create");
    instance.check_prerequisites(0).expect("check");
    assert!(host.wait_for_pump_request(0, Duration::from_secs(20)));
    assert_eq!(instance.pump(), OD_RESULT_OK);
    assert_eq!(instance.pump(), OD_RESULT_OK);
    assert!(host.events().is_empty());
}

#[test]
fn free_from_inside_a_plugin_thread_is_refused() {
    let host = TestHost::complete();
    let instance = instance(&host);
    let handle = instance.handle() as usize;
    let result = Arc::new(parking_lot::Mutex::new(None));
    let seen = Arc::clone(&result);
    host.set_pump_hook(move || {
        // SAFETY: the handle is checked; the host must not do this, and the
        // plugin must say so instead of deadlocking.
        let code = unsafe { api().plugin_free.unwrap()(handle as *mut od_plugin) };
        *seen.lock() = Some(code);
        0
    });
    instance.check_prerequisites(0).expect("check");
    assert!(host.wait_for_pump_request(0, Duration::from_secs(20)));
    assert_eq!(*result.lock(), Some(OD_RESULT_BAD_STATE));
    assert_eq!(host.user_data_frees(), 0, "the instance is still alive");
    assert!(instance.check_licence().expect("still usable").ok);
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
}

#[test]
fn thread_safe_calls_from_many_threads() {
    let host = TestHost::complete();
    let instance = instance(&host);
    let handle = instance.handle() as usize;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let api = api();
                for _ in 0..50 {
                    let mut report = std::ptr::null_mut();
                    // SAFETY: a live handle ([thread-safe] call).
                    unsafe {
                        assert_eq!(
                            api.plugin_check_licence.unwrap()(
                                handle as *mut od_plugin,
                                &mut report
                            ),
                            OD_RESULT_OK
                        );
                        assert_eq!((*report).ok, 1);
                        api.licence_report_free.unwrap()(report);
                    }
                    let message = read_message(|buf, size, len| {
                        // SAFETY: a live handle and the buffer rules.
                        unsafe {
                            api.plugin_errmsg.unwrap()(handle as *mut od_plugin, buf, size, len)
                        }
                    });
                    assert_eq!(message, "");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a worker");
    }
    assert_eq!(instance.free(), OD_RESULT_OK);
}

// ------------------------------------------------- synchronisation (ABI 1.1)

/// The status of a company that is not connected: nothing known yet.
fn assert_fresh_status(status: &od_tests::plugin::SyncStatus, context: &str) {
    assert_eq!(
        status.state, OD_SYNC_NOT_CONNECTED,
        "{context}: {status:#?}"
    );
    assert_eq!(status.state_name, "not_connected", "{context}");
    assert!(
        !status.first_sync_done && !status.blocked,
        "{context}: {status:#?}"
    );
    assert_eq!(
        (&status.last_success, &status.scheduled_at),
        (&None, &None),
        "{context}"
    );
    assert_eq!(
        (
            status.pending_to_online,
            status.pending_to_host,
            status.parked
        ),
        (0, 0, 0),
        "{context}"
    );
    assert_eq!(
        (status.error_code, &status.error),
        (OD_RESULT_OK, &None),
        "{context}"
    );
    assert_eq!(status.progress_entity, None, "{context}");
    assert_eq!(
        (
            status.progress_entity_done,
            status.progress_entity_total,
            status.progress_done,
            status.progress_total
        ),
        (0, 0, 0, 0),
        "{context}"
    );
    assert_eq!(status.progress_seconds_left, -1, "{context}");
}

#[test]
fn a_fresh_instance_is_not_connected_and_has_an_empty_history() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let with_folder = instance_in(&host, dir.path());
    assert_fresh_status(
        &with_folder.sync_status().expect("status"),
        "with a data folder",
    );
    let history = with_folder.sync_history().expect("history");
    let parsed: serde_json::Value = serde_json::from_str(&history).expect("the history is JSON");
    // Later versions may add members; these two are the ABI's.
    assert!(parsed.is_object(), "{history}");
    assert_eq!(parsed["runs"], serde_json::json!([]), "{history}");
    assert_eq!(parsed["conflicts"], serde_json::json!([]), "{history}");
    assert_eq!(with_folder.errmsg(), "");

    let other_host = TestHost::complete();
    let without_folder = instance(&other_host);
    assert_fresh_status(
        &without_folder.sync_status().expect("status"),
        "without a data folder",
    );

    // Connected: stopped, not yet synchronised.
    with_folder
        .connection_set(Some(connection_json(&closed_url()).to_string().as_bytes()))
        .expect("a valid connection");
    let status = with_folder.sync_status().expect("status");
    assert_eq!(
        (status.state, status.state_name.as_str()),
        (OD_SYNC_STOPPED, "stopped"),
        "{status:#?}"
    );
    assert!(!status.first_sync_done && status.error.is_none());
    assert_eq!(status.progress_seconds_left, -1);
    assert!(
        host.events().is_empty(),
        "storing a connection starts nothing"
    );
}

#[test]
fn sync_exports_refuse_null_outputs_and_arguments() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, dir.path());
    let api = api();
    // SAFETY: a live handle; NULL outputs are checked.
    let code = unsafe { api.plugin_sync_status.unwrap()(instance.handle(), std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(
        instance.errmsg().contains("out_status"),
        "{}",
        instance.errmsg()
    );
    // SAFETY: as above.
    let code = unsafe { api.plugin_sync_history.unwrap()(instance.handle(), std::ptr::null_mut()) };
    assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
    assert!(
        instance.errmsg().contains("out_history"),
        "{}",
        instance.errmsg()
    );
    let failure = instance.connection_set(None).expect_err("NULL document");
    assert_eq!(failure.code, OD_RESULT_NULL_ARGUMENT);
    assert!(
        failure.message.contains("connection_json"),
        "{}",
        failure.message
    );
    // NULL clears the schedule: not an error.
    instance.sync_schedule(None).expect("NULL clears");
    assert_eq!(instance.errmsg(), "");
    assert_fresh_status(&instance.sync_status().expect("usable"), "afterwards");
}

/// `connection_json` with `field` set to `value`, as bytes.
fn connection_with(field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut document = connection_json(&closed_url());
    document[field] = value;
    document.to_string().into_bytes()
}

/// `connection_json` without `field`, as bytes.
fn connection_without(field: &str) -> Vec<u8> {
    let mut document = connection_json(&closed_url());
    document
        .as_object_mut()
        .expect("an object")
        .remove(field)
        .expect("the field");
    document.to_string().into_bytes()
}

/// One refused connection document: what it is, its bytes, the code, and
/// what the message must name.
type RefusedDocument = (String, Vec<u8>, od_result, &'static str);

/// Hands each document to `od_plugin_connection_set` on a fresh instance
/// with a data folder; asserts the code, that nothing was stored and that
/// no secret is quoted. Returns the cases whose message does not name
/// what it should, with the message.
fn refuse_documents(cases: &[RefusedDocument]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, dir.path());
    let mut unnamed = Vec::new();
    for (what, document, code, mentions) in cases {
        let failure = instance
            .connection_set(Some(document))
            .expect_err(what.as_str());
        assert_eq!(failure.code, *code, "{what}: {}", failure.message);
        assert!(
            failure.message.len() < 1024,
            "{what}: a readable message, not an echo of the input ({} bytes)",
            failure.message.len()
        );
        for secret in [ACCESS_TOKEN, REFRESH_TOKEN, "hunter2"] {
            assert!(
                !failure.message.contains(secret),
                "{what}: the message quotes a secret: {}",
                failure.message
            );
        }
        if !failure.message.contains(mentions) {
            unnamed.push(format!("{what}: {}", failure.message));
        }
        assert!(
            !dir.path().join("connection.json").exists(),
            "{what}: nothing stored"
        );
        assert_eq!(
            instance.sync_status().expect("status").state,
            OD_SYNC_NOT_CONNECTED,
            "{what}"
        );
    }
    unnamed
}

#[test]
fn connection_set_refuses_documents_that_do_not_fit() {
    let valid = connection_json(&closed_url());
    let with = connection_with;
    let without = connection_without;
    let mut cases: Vec<RefusedDocument> = vec![
        (
            "invalid UTF-8".into(),
            b"{\"computer_id\": \"pc-\xff\xfe\"}".to_vec(),
            OD_RESULT_INVALID_UTF8,
            "connection_json",
        ),
        (
            "over 64 KiB".into(),
            long_string(64 * 1024 + 1),
            OD_RESULT_STRING_TOO_LONG,
            "connection_json",
        ),
        (
            "4 MiB".into(),
            long_string(4 * MEBIBYTE),
            OD_RESULT_STRING_TOO_LONG,
            "connection_json",
        ),
        (
            "not JSON".into(),
            b"company_id=1".to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "not valid",
        ),
        (
            "empty".into(),
            Vec::new(),
            OD_RESULT_INVALID_ARGUMENT,
            "not valid",
        ),
        (
            "cut short".into(),
            valid.to_string().as_bytes()[..40].to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "not valid",
        ),
        (
            "an array".into(),
            b"[1, 2, 3]".to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "not valid",
        ),
        (
            "an unknown field password".into(),
            with("password", "hunter2-secret".into()),
            OD_RESULT_INVALID_ARGUMENT,
            "password",
        ),
        (
            "an empty computer_id".into(),
            with("computer_id", "".into()),
            OD_RESULT_INVALID_ARGUMENT,
            "computer_id",
        ),
        (
            "an empty access_token".into(),
            with("access_token", "".into()),
            OD_RESULT_INVALID_ARGUMENT,
            "access_token",
        ),
        (
            "a refresh_token with a line break".into(),
            with("refresh_token", "abc\ndef".into()),
            OD_RESULT_INVALID_ARGUMENT,
            "refresh_token",
        ),
        (
            "a service_url to a remote host over http".into(),
            with("service_url", "http://online.example.com".into()),
            OD_RESULT_INVALID_ARGUMENT,
            "service_url",
        ),
    ];
    for field in [
        "company_id",
        "computer_id",
        "device_id",
        "access_token",
        "access_expires_at",
        "refresh_token",
    ] {
        cases.push((
            format!("without {field}"),
            without(field),
            OD_RESULT_INVALID_ARGUMENT,
            field,
        ));
    }
    let unnamed = refuse_documents(&cases);
    assert!(
        unnamed.is_empty(),
        "messages that do not name what they should:\n{}",
        unnamed.join("\n")
    );

    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, dir.path());
    // Exactly 64 KiB is still accepted (padded with white space).
    let mut padded = valid.to_string().into_bytes();
    padded.resize(64 * 1024, b' ');
    instance
        .connection_set(Some(&padded))
        .expect("64 KiB are accepted");
    assert_eq!(
        instance.sync_status().expect("status").state,
        OD_SYNC_STOPPED
    );
    // service_url is optional: the instance's service is used.
    instance
        .connection_set(Some(without("service_url").as_slice()))
        .expect("without service_url");
    assert_eq!(instance.errmsg(), "");
}

/// Regression (found by this test, fixed in the plugin): a value of the
/// wrong kind was refused with serde's message alone, for example "the
/// connection details are not valid: invalid type: integer `17`, expected
/// a formatted UUID string at line 1 column 170", which did not name the
/// field (`device_id`), although the header promises "the message names
/// the field".
#[test]
fn regression_a_value_of_the_wrong_kind_was_refused_without_naming_its_field() {
    let cases: Vec<RefusedDocument> = [
        ("company_id", serde_json::json!("not-a-uuid")),
        ("device_id", serde_json::json!(17)),
        ("access_expires_at", serde_json::json!("tomorrow")),
        ("computer_id", serde_json::json!(["pc-1"])),
    ]
    .into_iter()
    .map(|(field, value)| {
        (
            format!("{field} of the wrong kind"),
            connection_with(field, value),
            OD_RESULT_INVALID_ARGUMENT,
            field,
        )
    })
    .collect();
    let unnamed = refuse_documents(&cases);
    assert!(
        unnamed.is_empty(),
        "messages that do not name the field:\n{}",
        unnamed.join("\n")
    );
}

#[test]
fn sync_start_refuses_unknown_flags_and_an_unconnected_company() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, dir.path());
    for flags in [2, 0x80, 0x8000_0000, u32::MAX] {
        let failure = instance.sync_start(flags).expect_err("unknown flags");
        assert_eq!(failure.code, OD_RESULT_INVALID_ARGUMENT, "{flags:#x}");
        assert!(
            failure.message.contains("flags") && failure.message.contains(&format!("{flags:#x}")),
            "{}",
            failure.message
        );
    }
    for flags in [0, OD_SYNC_FLAG_NOW] {
        let failure = instance.sync_start(flags).expect_err("not connected");
        assert_eq!(failure.code, OD_RESULT_BAD_STATE, "{}", failure.message);
        assert!(
            failure.message.contains("not connected"),
            "{}",
            failure.message
        );
    }
    assert_fresh_status(&instance.sync_status().expect("status"), "after refusals");
    assert!(
        host.requests()
            .iter()
            .all(|r| !r.method.starts_with("schema")),
        "nothing was started: {:?}",
        host.requests()
    );
}

#[test]
fn without_a_data_dir_nothing_can_be_set_up() {
    let host = TestHost::complete();
    let instance = instance(&host);
    let connection = connection_json(&closed_url()).to_string();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let refusals: [(&str, Result<(), od_tests::plugin::Failure>); 5] = [
        (
            "connection_set",
            instance.connection_set(Some(connection.as_bytes())),
        ),
        ("sync_start", instance.sync_start(0)),
        ("sync_start now", instance.sync_start(OD_SYNC_FLAG_NOW)),
        (
            "sync_schedule",
            instance.sync_schedule(Some(tomorrow.as_bytes())),
        ),
        ("sync_schedule NULL", instance.sync_schedule(None)),
    ];
    for (what, outcome) in refusals {
        let failure = outcome.expect_err(what);
        assert_eq!(failure.code, OD_RESULT_BAD_STATE, "{what}");
        assert!(
            failure.message.contains("data_dir"),
            "{what}: {}",
            failure.message
        );
    }
    // The history has nowhere to come from. (The header does not list
    // OD_RESULT_BAD_STATE for od_plugin_sync_history; reported.)
    let failure = instance.sync_history().expect_err("no folder");
    assert_eq!(failure.code, OD_RESULT_BAD_STATE, "{}", failure.message);
    assert!(failure.message.contains("data_dir"), "{}", failure.message);
    // Reading and the calls that only ask are fine.
    instance.sync_stop().expect("stop");
    instance.sync_notify().expect("notify");
    assert_fresh_status(&instance.sync_status().expect("status"), "no folder");
    assert_eq!(instance.errmsg(), "");
}

#[test]
fn sync_schedule_refuses_past_times_garbage_and_bad_strings() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, dir.path());
    let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let cases: Vec<(&str, Vec<u8>, od_result, &str)> = vec![
        (
            "a past time",
            past.into_bytes(),
            OD_RESULT_INVALID_ARGUMENT,
            "already passed",
        ),
        (
            "the epoch",
            b"1970-01-01T00:00:00Z".to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "already passed",
        ),
        (
            "words",
            b"tomorrow evening".to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "2026-12-24T22:00:00+01:00",
        ),
        ("empty", Vec::new(), OD_RESULT_INVALID_ARGUMENT, "like"),
        (
            "a date only",
            b"2099-12-24".to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "like",
        ),
        (
            "no offset",
            b"2099-12-24T22:00:00".to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "like",
        ),
        (
            "month 13",
            b"2099-13-24T22:00:00Z".to_vec(),
            OD_RESULT_INVALID_ARGUMENT,
            "like",
        ),
        (
            "256 bytes of garbage",
            long_string(256),
            OD_RESULT_INVALID_ARGUMENT,
            "like",
        ),
        (
            "257 bytes",
            long_string(257),
            OD_RESULT_STRING_TOO_LONG,
            "at",
        ),
        (
            "4 MiB",
            long_string(4 * MEBIBYTE),
            OD_RESULT_STRING_TOO_LONG,
            "at",
        ),
        (
            "invalid UTF-8",
            b"2099-12-24T22:00:00\xff+01:00".to_vec(),
            OD_RESULT_INVALID_UTF8,
            "at",
        ),
    ];
    for (what, at, code, mentions) in cases {
        let failure = instance.sync_schedule(Some(&at)).expect_err(what);
        assert_eq!(failure.code, code, "{what}: {}", failure.message);
        assert!(
            failure.message.contains(mentions),
            "{what}: {}",
            failure.message
        );
        assert!(failure.message.len() < 1024, "{what}");
        assert_eq!(
            instance.sync_status().expect("status").scheduled_at,
            None,
            "{what}: nothing scheduled"
        );
    }
    // A future time with an offset is kept, in UTC; NULL clears it.
    instance
        .sync_schedule(Some(b"2099-12-24T22:00:00+01:00"))
        .expect("a future time");
    assert_eq!(
        instance
            .sync_status()
            .expect("status")
            .scheduled_at
            .as_deref(),
        Some("2099-12-24T21:00:00Z")
    );
    instance.sync_schedule(None).expect("cleared");
    assert_eq!(instance.sync_status().expect("status").scheduled_at, None);
    assert_eq!(instance.errmsg(), "");
}

#[test]
fn stop_and_notify_without_a_running_engine_do_nothing() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, dir.path());
    for _ in 0..3 {
        instance.sync_stop().expect("stop");
        instance.sync_notify().expect("notify");
    }
    assert_fresh_status(&instance.sync_status().expect("status"), "never started");
    instance
        .connection_set(Some(connection_json(&closed_url()).to_string().as_bytes()))
        .expect("connected");
    instance.sync_stop().expect("stop when connected");
    instance.sync_notify().expect("notify when connected");
    assert_eq!(
        instance.sync_status().expect("status").state,
        OD_SYNC_STOPPED
    );
    assert_eq!(instance.pump(), OD_RESULT_OK);
    assert!(host.events().is_empty(), "{:#?}", host.events());
    assert_eq!(host.pump_requests(), 0, "nothing ran in the background");
    assert_eq!(instance.errmsg(), "");
}

#[test]
fn sync_free_functions_ignore_what_they_do_not_own() {
    let api = api();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let host = TestHost::complete();
    let instance = instance_in(&host, dir.path());
    let status_free = api.sync_status_free.unwrap();
    let text_free = api.text_free.unwrap();
    let report_free = api.licence_report_free.unwrap();
    let mut status = std::ptr::null_mut();
    let mut text = std::ptr::null_mut();
    let mut report = std::ptr::null_mut();
    // SAFETY: a live handle and writable outputs.
    unsafe {
        assert_eq!(
            api.plugin_sync_status.unwrap()(instance.handle(), &mut status),
            OD_RESULT_OK
        );
        assert_eq!(
            api.plugin_sync_history.unwrap()(instance.handle(), &mut text),
            OD_RESULT_OK
        );
        assert_eq!(
            api.plugin_check_licence.unwrap()(instance.handle(), &mut report),
            OD_RESULT_OK
        );
    }
    // SAFETY: zeroed C structs of plain fields and NULL pointers.
    let mut fake_status: od_sync_status = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut fake_text: od_text = unsafe { std::mem::zeroed() };
    let ignored = |what: &str, export: &str| {
        let message = plugin().last_error();
        assert!(
            message.contains(export) && message.contains("ignored"),
            "{what}: {message}"
        );
    };
    // SAFETY: the free functions check the pointer before using it; the
    // real outputs are freed exactly once by their own function at the end.
    unsafe {
        status_free(std::ptr::null_mut());
        text_free(std::ptr::null_mut());
        // Wrong kind: each ignores the others' outputs.
        status_free(text.cast());
        ignored("a text to status_free", "od_sync_status_free");
        text_free(status.cast());
        ignored("a status to text_free", "od_text_free");
        status_free(report.cast());
        ignored("a report to status_free", "od_sync_status_free");
        text_free(report.cast());
        ignored("a report to text_free", "od_text_free");
        report_free(status.cast());
        report_free(text.cast());
        // Not ours at all.
        status_free(&mut fake_status);
        ignored("a status of the host's", "od_sync_status_free");
        text_free(&mut fake_text);
        ignored("a text of the host's", "od_text_free");
        status_free(0x1000 as *mut od_sync_status);
        text_free(usize::MAX as *mut od_text);
        ignored("a made-up text", "od_text_free");
        // The real outputs are still intact.
        assert_eq!((*status).state, OD_SYNC_NOT_CONNECTED);
        assert_eq!((*status).progress_seconds_left, -1);
        let history = CStr::from_ptr((*text).text).to_str().expect("UTF-8");
        assert_eq!((*text).len, history.len());
        assert_eq!((*report).ok, 1);
        status_free(status);
        text_free(text);
        report_free(report);
        // Double free: ignored.
        status_free(status);
        ignored("a status freed already", "od_sync_status_free");
        text_free(text);
        ignored("a text freed already", "od_text_free");
    }
    assert_fresh_status(&instance.sync_status().expect("usable"), "afterwards");
    instance.sync_history().expect("usable");
}

/// (ABI 1.2) The connect wizard's exports with bad input: NULL and stale
/// handles, NULL outputs and strings, invalid UTF-8, huge strings, unknown
/// actions and fields; each returns its documented code, and the wizard
/// and the plugin stay usable. A password set is never on a page.
#[test]
fn wizard_exports_refuse_bad_input() {
    let api = api();
    let (open, page, set, action, close) = (
        api.plugin_wizard_open.expect("open"),
        api.plugin_wizard_page.expect("page"),
        api.plugin_wizard_set.expect("set"),
        api.plugin_wizard_action.expect("action"),
        api.plugin_wizard_close.expect("close"),
    );
    let text_free = api.text_free.expect("text_free");
    let host = TestHost::complete();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let instance = instance_in(&host, dir.path());
    let handle = instance.handle();
    let read_page = || -> String {
        let mut out = std::ptr::null_mut();
        // SAFETY: a live handle and a writable output.
        assert_eq!(unsafe { page(handle, &mut out) }, OD_RESULT_OK);
        // SAFETY: the text just made.
        let json = unsafe { CStr::from_ptr((*out).text) }
            .to_str()
            .expect("UTF-8")
            .to_owned();
        // SAFETY: the text just made.
        unsafe { text_free(out) };
        json
    };
    // SAFETY (every call below): the pointers are NULL, made up, or valid
    // as the export documents.
    unsafe {
        for code in [
            open(std::ptr::null_mut()),
            action(std::ptr::null_mut(), OD_WIZARD_NEXT),
            close(std::ptr::null_mut()),
        ] {
            assert_eq!(code, OD_RESULT_NULL_ARGUMENT);
        }
        let made_up = 0x7777_0001usize as *mut od_plugin;
        assert_eq!(open(made_up), OD_RESULT_INVALID_HANDLE);
        assert_eq!(close(made_up), OD_RESULT_INVALID_HANDLE);
        let mut out = std::ptr::null_mut();
        assert_eq!(page(made_up, &mut out), OD_RESULT_INVALID_HANDLE);
        assert!(out.is_null());
        // Nothing open yet.
        assert_eq!(page(handle, &mut out), OD_RESULT_BAD_STATE);
        assert!(out.is_null());
        assert!(
            instance.errmsg().contains("not open"),
            "{}",
            instance.errmsg()
        );
        assert_eq!(action(handle, OD_WIZARD_NEXT), OD_RESULT_BAD_STATE);
        assert_eq!(close(handle), OD_RESULT_OK, "closing nothing is fine");

        assert_eq!(open(handle), OD_RESULT_OK);
        assert_eq!(open(handle), OD_RESULT_BAD_STATE, "open already");
        assert_eq!(page(handle, std::ptr::null_mut()), OD_RESULT_NULL_ARGUMENT);
        for bad in [0, 7, 99, u32::MAX] {
            assert_eq!(action(handle, bad), OD_RESULT_INVALID_ARGUMENT, "{bad}");
        }
        assert_eq!(action(handle, OD_WIZARD_FINISH), OD_RESULT_BAD_STATE);
        assert_eq!(action(handle, OD_WIZARD_BACK), OD_RESULT_BAD_STATE);
        let email = c"email";
        let value = c"kari@example.com";
        assert_eq!(
            set(handle, std::ptr::null(), value.as_ptr()),
            OD_RESULT_NULL_ARGUMENT
        );
        assert_eq!(
            set(handle, email.as_ptr(), std::ptr::null()),
            OD_RESULT_NULL_ARGUMENT
        );
        let invalid = b"\xff\xfe\0";
        assert_eq!(
            set(handle, email.as_ptr(), invalid.as_ptr().cast()),
            OD_RESULT_INVALID_UTF8
        );
        let mut huge = long_string(MEBIBYTE);
        huge.push(0);
        assert_eq!(
            set(handle, email.as_ptr(), huge.as_ptr().cast()),
            OD_RESULT_STRING_TOO_LONG
        );
        // The prerequisites page has no fields.
        assert_eq!(
            set(handle, email.as_ptr(), value.as_ptr()),
            OD_RESULT_INVALID_ARGUMENT
        );
    }
    let json = read_page();
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(parsed["page"], "prerequisites");
    assert_eq!(parsed["steps"], 6);
    assert_eq!(parsed["actions"]["cancel"], true);
    // SAFETY: a live handle.
    unsafe {
        assert_eq!(action(handle, OD_WIZARD_CANCEL), OD_RESULT_OK);
        assert_eq!(close(handle), OD_RESULT_OK);
        assert_eq!(page(handle, &mut std::ptr::null_mut()), OD_RESULT_BAD_STATE);
    }
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
    assert_usable();
}

/// (ABI 1.2) `od_plugin_wizard_open_for` and `od_plugin_restore_check`
/// with bad input: NULL and made-up handles, modes that are not
/// `OD_WIZARD_MODE_*`, the maintenance modes on an unconnected company;
/// each returns its documented code and the plugin stays usable.
#[test]
fn wizard_modes_and_restore_check_refuse_bad_input() {
    let api = api();
    let open_for = api.plugin_wizard_open_for.expect("open_for");
    let restore_check = api.plugin_restore_check.expect("restore_check");
    let close = api.plugin_wizard_close.expect("close");
    let host = TestHost::complete();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let instance = instance_in(&host, dir.path());
    let handle = instance.handle();
    let made_up = 0x7777_0001usize as *mut od_plugin;
    // SAFETY (every call below): the pointers are NULL, made up, or valid
    // as the export documents.
    unsafe {
        assert_eq!(
            open_for(std::ptr::null_mut(), OD_WIZARD_MODE_CONNECT),
            OD_RESULT_NULL_ARGUMENT
        );
        assert_eq!(restore_check(std::ptr::null_mut()), OD_RESULT_NULL_ARGUMENT);
        assert_eq!(
            open_for(made_up, OD_WIZARD_MODE_CONNECT),
            OD_RESULT_INVALID_HANDLE
        );
        assert_eq!(restore_check(made_up), OD_RESULT_INVALID_HANDLE);
        for mode in [0, 6, u32::MAX] {
            assert_eq!(open_for(handle, mode), OD_RESULT_INVALID_ARGUMENT, "{mode}");
            assert!(
                instance.errmsg().contains("OD_WIZARD_MODE_"),
                "{}",
                instance.errmsg()
            );
        }
        for mode in [
            OD_WIZARD_MODE_UPDATE_CONNECTION,
            OD_WIZARD_MODE_DISCONNECT,
            OD_WIZARD_MODE_CHANGE_USER,
        ] {
            assert_eq!(open_for(handle, mode), OD_RESULT_BAD_STATE, "{mode}");
            assert!(
                instance.errmsg().contains("not connected"),
                "{}",
                instance.errmsg()
            );
        }
        // Sync computer (ABI 1.3) needs the host to say the company is
        // connected (`connection.get`); this host cannot.
        assert_ne!(open_for(handle, OD_WIZARD_MODE_SYNC_COMPUTER), OD_RESULT_OK);
        assert!(
            instance.errmsg().contains("connection.get")
                || instance.errmsg().contains("not connected"),
            "{}",
            instance.errmsg()
        );
        assert_ne!(
            plugin().result_text(OD_RESULT_HOST_RESTORED),
            "unknown status code"
        );
        // Not connected: a restore is allowed.
        assert_eq!(restore_check(handle), OD_RESULT_OK);
        assert_eq!(open_for(handle, OD_WIZARD_MODE_CONNECT), OD_RESULT_OK);
        assert_eq!(close(handle), OD_RESULT_OK);
    }
    assert_eq!(instance.free(), OD_RESULT_OK);
}
