//! The plugin from C: the header compiles (twice, as C99, C11 and C++11)
//! and agrees with od-abi on every size, offset and constant; the C host
//! `tests/c/host.c` drives the built plugin through the header alone; the
//! C host `tests/c/wizard.c` connects a company with the connect wizard
//! against the real online service and runs the first synchronisation;
//! and both do so without memory errors or leaks under valgrind.
#![cfg(unix)]

use od_abi::*;
use od_online::testing::{licence as online_licence, sign_licence, TestServer, TEST_PASSWORD};
use od_tests::fixtures;
use od_tests::net::ClosedPort;
use od_tests::paths::{header_path, workspace_root};
use od_tests::plugin::plugin;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const WARNINGS: [&str; 4] = ["-Wall", "-Wextra", "-Werror", "-pedantic"];

fn c_dir() -> PathBuf {
    workspace_root().join("tests").join("c")
}

fn include_dir() -> PathBuf {
    header_path().parent().expect("include/").to_path_buf()
}

fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

/// Runs a compiler and fails the test with its output when it fails.
fn compile(compiler: &str, args: &[&str]) {
    let output = Command::new(compiler)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        output.status.success(),
        "{compiler} {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[test]
fn the_header_compiles_twice_as_c99_c11_and_cpp11() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let source = c_dir().join("header_twice.c");
    let include = format!("-I{}", path(&include_dir()));
    for std in ["-std=c99", "-std=c11"] {
        let object = dir.path().join(format!("header{std}.o"));
        let mut args = vec![
            std,
            include.as_str(),
            "-c",
            path(&source),
            "-o",
            path(&object),
        ];
        args.extend(WARNINGS);
        compile(&tool("CC", "cc"), &args);
    }
    let object = dir.path().join("header-cpp.o");
    let mut args = vec![
        "-x",
        "c++",
        "-std=c++11",
        include.as_str(),
        "-c",
        path(&source),
        "-o",
        path(&object),
    ];
    args.extend(WARNINGS);
    compile(&tool("CXX", "c++"), &args);
}

/// `OD_ASSERT` lines for a struct's size and every field's offset.
macro_rules! layout {
    ($lines:ident, $ty:ident { $($field:ident),* $(,)? }) => {
        $lines.push(format!(
            "OD_ASSERT(sizeof({ty}) == {}, \"sizeof({ty})\");",
            size_of::<$ty>(),
            ty = stringify!($ty)
        ));
        $(
            $lines.push(format!(
                "OD_ASSERT(offsetof({ty}, {field}) == {}, \"{ty}.{field}\");",
                offset_of!($ty, $field),
                ty = stringify!($ty),
                field = stringify!($field)
            ));
        )*
    };
}

/// `OD_ASSERT` lines for constants.
macro_rules! constants {
    ($lines:ident, $($name:ident),* $(,)?) => {
        $(
            $lines.push(format!(
                "OD_ASSERT({name} == {}u, \"{name}\");",
                $name,
                name = stringify!($name)
            ));
        )*
    };
}

#[test]
fn the_header_agrees_with_od_abi_on_layout_and_constants() {
    let mut lines = vec![
        "#include \"online_desktop.h\"".to_owned(),
        "#include <stddef.h>".to_owned(),
        "#ifdef __cplusplus".to_owned(),
        "#define OD_ASSERT(e, m) static_assert(e, m)".to_owned(),
        "#else".to_owned(),
        "#define OD_ASSERT(e, m) _Static_assert(e, m)".to_owned(),
        "#endif".to_owned(),
    ];
    for (ty, size) in [
        ("od_result", size_of::<od_result>()),
        ("od_log_level", size_of::<od_log_level>()),
        ("od_event_kind", size_of::<od_event_kind>()),
        ("od_check_state", size_of::<od_check_state>()),
        ("od_check_flags", size_of::<od_check_flags>()),
        ("od_sync_flags", size_of::<od_sync_flags>()),
        ("od_sync_state", size_of::<od_sync_state>()),
        ("od_wizard_action", size_of::<od_wizard_action>()),
    ] {
        lines.push(format!("OD_ASSERT(sizeof({ty}) == {size}, \"{ty}\");"));
    }
    layout!(
        lines,
        od_log_record {
            struct_size,
            level,
            target,
            message
        }
    );
    layout!(
        lines,
        od_host_request {
            struct_size,
            method,
            params_json,
            params_len
        }
    );
    layout!(
        lines,
        od_host_response {
            struct_size,
            context,
            write
        }
    );
    layout!(
        lines,
        od_event {
            struct_size,
            kind,
            payload_json
        }
    );
    layout!(
        lines,
        od_host_api {
            struct_size,
            abi_major,
            abi_minor,
            user_data,
            user_data_free,
            log,
            log_level,
            request,
            request_pump,
            on_event,
            data_dir,
            trace_log_path,
            trace_log_level,
            service_url,
        }
    );
    layout!(
        lines,
        od_licence_rule {
            struct_size,
            id,
            title,
            passed,
            detail
        }
    );
    layout!(
        lines,
        od_module {
            struct_size,
            id,
            title
        }
    );
    layout!(
        lines,
        od_licence_report {
            struct_size,
            ok,
            licence_number,
            licensee_name,
            contact_person,
            phone,
            tier,
            agreement_valid_until,
            online_users,
            evaluation,
            rules,
            rule_count,
            modules,
            module_count,
        }
    );
    layout!(
        lines,
        od_prerequisite {
            struct_size,
            id,
            title,
            state,
            blocking,
            detail,
            fix_location,
        }
    );
    layout!(
        lines,
        od_prerequisite_list {
            struct_size,
            can_connect,
            pending,
            items,
            count,
        }
    );
    layout!(
        lines,
        od_sync_status {
            struct_size,
            state,
            state_name,
            first_sync_done,
            blocked,
            last_success,
            scheduled_at,
            pending_to_online,
            pending_to_host,
            parked,
            error_code,
            error,
            progress_entity,
            progress_entity_done,
            progress_entity_total,
            progress_done,
            progress_total,
            progress_seconds_left,
        }
    );
    layout!(
        lines,
        od_text {
            struct_size,
            text,
            len
        }
    );
    layout!(
        lines,
        od_plugin_api {
            struct_size,
            abi_major,
            abi_minor,
            abi_patch,
            version_string,
            result_text,
            last_error,
            plugin_new,
            plugin_free,
            plugin_errmsg,
            plugin_pump,
            plugin_check_licence,
            licence_report_free,
            plugin_check_prerequisites,
            prerequisite_list_free,
            plugin_connection_set,
            plugin_sync_start,
            plugin_sync_stop,
            plugin_sync_schedule,
            plugin_sync_notify,
            plugin_sync_status,
            sync_status_free,
            plugin_sync_history,
            text_free,
            plugin_wizard_open,
            plugin_wizard_page,
            plugin_wizard_set,
            plugin_wizard_action,
            plugin_wizard_close,
        }
    );
    constants!(
        lines,
        OD_VERSION_MAJOR,
        OD_VERSION_MINOR,
        OD_VERSION_PATCH,
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
        OD_LOG_LEVEL_OFF,
        OD_LOG_LEVEL_ERROR,
        OD_LOG_LEVEL_WARN,
        OD_LOG_LEVEL_INFO,
        OD_LOG_LEVEL_DEBUG,
        OD_LOG_LEVEL_TRACE,
        OD_EVENT_PREREQUISITES_CHANGED,
        OD_EVENT_SYNC_STATE,
        OD_EVENT_SYNC_PROGRESS,
        OD_EVENT_WIZARD_CHANGED,
        OD_WIZARD_NEXT,
        OD_WIZARD_BACK,
        OD_WIZARD_CANCEL,
        OD_WIZARD_FINISH,
        OD_WIZARD_CREATE_ONLINE_ID,
        OD_WIZARD_RECHECK,
        OD_SYNC_NOT_CONNECTED,
        OD_SYNC_STOPPED,
        OD_SYNC_SCHEDULED,
        OD_SYNC_STARTING,
        OD_SYNC_FIRST_SYNC,
        OD_SYNC_RUNNING,
        OD_SYNC_RETRYING,
        OD_SYNC_FAILED,
        OD_SYNC_STOPPING,
        OD_SYNC_FLAG_NOW,
        OD_CHECK_FAILED,
        OD_CHECK_PASSED,
        OD_CHECK_PENDING,
        OD_CHECK_FLAG_REFRESH,
    );
    let dir = tempfile::tempdir().expect("a temporary folder");
    let source = dir.path().join("layout.c");
    std::fs::write(&source, lines.join("\n") + "\n").expect("write layout.c");
    let include = format!("-I{}", path(&include_dir()));
    let mut c11 = vec!["-std=c11", include.as_str(), "-fsyntax-only", path(&source)];
    c11.extend(WARNINGS);
    compile(&tool("CC", "cc"), &c11);
    let mut cpp = vec![
        "-x",
        "c++",
        "-std=c++11",
        include.as_str(),
        "-fsyntax-only",
        path(&source),
    ];
    cpp.extend(WARNINGS);
    compile(&tool("CXX", "c++"), &cpp);
}

/// The C host, built into `dir`.
fn build_c_host(dir: &Path) -> PathBuf {
    build_c_program(dir, "host.c", "od-c-host")
}

/// `tests/c/<source>` built into `dir/<name>`, C11 with every warning an
/// error, linked with pthreads (and libdl).
fn build_c_program(dir: &Path, source: &str, name: &str) -> PathBuf {
    let exe = dir.join(name);
    let include = format!("-I{}", path(&include_dir()));
    let source = c_dir().join(source);
    let mut args = vec![
        "-std=c11",
        "-g",
        include.as_str(),
        "-pthread",
        path(&source),
        "-o",
        path(&exe),
    ];
    args.extend(WARNINGS);
    if cfg!(target_os = "linux") {
        args.push("-ldl");
    }
    compile(&tool("CC", "cc"), &args);
    exe
}

/// Everything the C host needs: its binary, a licence file, a service
/// address that refuses connections and an empty folder for the plugin.
struct Setup {
    dir: tempfile::TempDir,
    exe: PathBuf,
    licence: PathBuf,
    service: ClosedPort,
    data_dir: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let exe = build_c_host(dir.path());
    let licence = dir.path().join("licence.odl");
    std::fs::write(&licence, fixtures::signed_document(&fixtures::licence()))
        .expect("write the licence");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("the data folder");
    Setup {
        exe,
        licence,
        service: ClosedPort::new(),
        data_dir,
        dir,
    }
}

impl Setup {
    fn args(&self) -> Vec<String> {
        vec![
            path(plugin().path()).to_owned(),
            path(&self.licence).to_owned(),
            self.service.url(),
            path(&self.data_dir).to_owned(),
        ]
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The lines the C host prints when the plugin behaves.
fn assert_expected_output(stdout: &str, service_url: &str, context: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    let last = |prefix: &str| {
        lines
            .iter()
            .rev()
            .find(|l| l.starts_with(prefix))
            .copied()
            .unwrap_or_else(|| panic!("no line {prefix:?}\n{context}"))
    };
    let version = format!("{OD_VERSION_MAJOR}.{OD_VERSION_MINOR}.{OD_VERSION_PATCH}");
    assert!(
        has(&format!(
            "plugin {version}, ABI {version}; header {version}"
        )),
        "{context}"
    );
    assert!(
        has(&format!(
            "od_entry for ABI {}: incompatible ABI version: ",
            OD_VERSION_MAJOR + 1
        )),
        "{context}"
    );
    assert!(
        has(&format!("licence: ok, number {}", fixtures::LICENCE_NUMBER)),
        "{context}"
    );
    for rule in [
        "licence_present",
        "signature_valid",
        "add_on_granted",
        "bound_to_this_company",
        "not_sample_database",
        "not_evaluation",
        "agreement_valid",
        "holder_details_complete",
    ] {
        assert!(has(&format!("rule {rule}: passed - ")), "{rule}\n{context}");
    }
    assert!(has("module contacts: "), "{context}");
    assert!(has("event 1 (prerequisites changed)"), "{context}");
    for row in fixtures::PREREQUISITE_IDS {
        let line = last(&format!("prerequisite {row}: "));
        if row == "service_reachable" {
            assert!(
                line.starts_with("prerequisite service_reachable: FAILED - ")
                    && line.contains(service_url)
                    && line.contains("no connection could be made"),
                "{line}\n{context}"
            );
        } else {
            assert!(line.contains(": PASSED"), "{line}\n{context}");
        }
    }
    assert_eq!(
        last("prerequisites: "),
        "prerequisites: can_connect=0 pending=0"
    );
    assert!(
        has("unknown flags: an argument has an invalid value: unknown flags 0x80"),
        "{context}"
    );
    // (ABI 1.1) Synchronisation.
    assert!(
        has("sync status: not_connected (0), first sync done 0, error 0: (none)"),
        "{context}"
    );
    assert!(
        has("sync history: {") && last("sync history: ").ends_with('}'),
        "{context}"
    );
    let refused = last("sync start without a connection: ");
    assert!(
        refused.contains("the plugin's state does not allow this call")
            && refused.contains("not connected"),
        "{refused}\n{context}"
    );
    assert!(
        has("sync status: stopped (1), first sync done 0, error 0: (none)"),
        "{context}"
    );
    for state in ["starting", "retrying", "stopped"] {
        assert!(
            has(&format!("event 2 (sync state {state}): ")),
            "{state}\n{context}"
        );
    }
    let error = last("sync error: ");
    assert!(error.contains(service_url), "{error}\n{context}");
    assert!(has("sync stopped after "), "{context}");
    assert!(
        has("plugin freed; user_data_free called 1 time(s)"),
        "{context}"
    );
    assert_eq!(lines.last(), Some(&"all expectations held"), "{context}");
}

#[test]
fn the_c_host_drives_the_plugin() {
    let setup = setup();
    let output = Command::new(&setup.exe)
        .args(setup.args())
        .output()
        .expect("run the C host");
    let context = describe(&output);
    println!("{context}");
    assert!(output.status.success(), "{context}");
    assert_expected_output(
        &String::from_utf8_lossy(&output.stdout),
        &setup.service.url(),
        &context,
    );
}

#[test]
fn the_c_host_refuses_to_run_without_its_inputs() {
    let setup = setup();
    let output = Command::new(&setup.exe)
        .env_remove("OD_LICENCE_FILE")
        .env_remove("OD_SERVICE_URL")
        .output()
        .expect("run the C host");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let output = Command::new(&setup.exe)
        .args(&setup.args()[..3])
        .env_remove("OD_DATA_DIR")
        .output()
        .expect("run the C host");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let missing = setup.dir.path().join("missing.so");
    let output = Command::new(&setup.exe)
        .args([
            path(&missing),
            path(&setup.licence),
            &setup.service.url(),
            path(&setup.data_dir),
        ])
        .output()
        .expect("run the C host");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Whether valgrind can run; without it a test passes with a note, except
/// on CI (env `CI`), where valgrind is required.
fn valgrind_available() -> bool {
    if on_path("valgrind") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "valgrind is required on CI (install it: apt-get install valgrind)"
    );
    eprintln!("valgrind is not installed: skipping the memory check");
    false
}

/// `command` under valgrind's memcheck; asserts that it succeeded with no
/// error and nothing definitely lost. No suppressions are needed: Rust's
/// std, tokio and the plugin leave nothing definitely lost once the plugin
/// is freed.
fn run_under_valgrind(exe: &Path, configure: impl FnOnce(&mut Command)) -> (Output, String) {
    let mut command = Command::new("valgrind");
    command
        .args([
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--error-exitcode=99",
            "--track-origins=yes",
        ])
        .arg(exe);
    configure(&mut command);
    let output = command.output().expect("run valgrind");
    let context = describe(&output);
    println!("{context}");
    assert!(output.status.success(), "{context}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ERROR SUMMARY: 0 errors"), "{context}");
    assert!(
        !stderr.contains("definitely lost: ") || stderr.contains("definitely lost: 0 bytes"),
        "{context}"
    );
    (output, context)
}

#[test]
fn the_c_host_is_clean_under_valgrind() {
    if !valgrind_available() {
        return;
    }
    let setup = setup();
    let (output, context) = run_under_valgrind(&setup.exe, |command| {
        command.args(setup.args());
    });
    assert_expected_output(
        &String::from_utf8_lossy(&output.stdout),
        &setup.service.url(),
        &context,
    );
}

// --- The connect wizard from C (ABI 1.2) ------------------------------------

/// What `tests/c/wizard.c` answers as its company (its `LICENCE_NUMBER`).
const WIZARD_LICENCE_NUMBER: &str = "OD-C-WIZARD-1";
const WIZARD_EMAIL: &str = "kari@nordlys.example";

/// The real online service with a verified Online ID, the wizard host
/// built, its licence bound to the host's company, an empty data folder.
struct WizardSetup {
    server: TestServer,
    exe: PathBuf,
    licence: PathBuf,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

fn wizard_setup() -> WizardSetup {
    let server = TestServer::start();
    server.create_online_id(WIZARD_EMAIL, TEST_PASSWORD);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let exe = build_c_program(dir.path(), "wizard.c", "od-c-wizard");
    let licence = dir.path().join("licence.odl");
    std::fs::write(
        &licence,
        sign_licence(&online_licence(WIZARD_LICENCE_NUMBER)),
    )
    .expect("write the licence");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).expect("the data folder");
    WizardSetup {
        server,
        exe,
        licence,
        data_dir,
        _dir: dir,
    }
}

impl WizardSetup {
    /// The wizard host's arguments and environment on `command`.
    fn configure(&self, command: &mut Command) {
        command
            .args([
                path(plugin().path()),
                path(&self.licence),
                self.server.base_url(),
                path(&self.data_dir),
                WIZARD_EMAIL,
            ])
            .env("OD_ONLINE_ID_PASSWORD", TEST_PASSWORD);
    }

    /// Checks what the wizard host printed, and that the company's
    /// contacts are online for the Online ID that connected it.
    fn assert_connected(&self, stdout: &str, context: &str) {
        let lines: Vec<&str> = stdout.lines().collect();
        let pages: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("page "))
            .collect();
        assert_eq!(
            pages,
            [
                "prerequisites",
                "welcome",
                "online_id",
                "company",
                "start",
                "finish"
            ],
            "{context}"
        );
        let line = |prefix: &str| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no line {prefix:?}\n{context}"))
        };
        assert_eq!(
            line("online_id e-mail suggested: "),
            WIZARD_EMAIL,
            "{context}"
        );
        let wrong = line("wrong password: page ");
        assert!(
            wrong.starts_with("online_id, password error: ") && wrong.len() > 30,
            "{wrong}\n{context}"
        );
        // Both logins ran in the background: busy, then the event.
        assert_eq!(
            lines
                .iter()
                .filter(|l| **l == "logging in: busy true")
                .count(),
            2,
            "{context}"
        );
        let events: usize = line("wizard changed events: ").parse().expect("a count");
        assert!(
            events >= 3,
            "two logins and the finish: {events}\n{context}"
        );
        assert_eq!(line("finish: "), "done true, error (none)", "{context}");
        assert_eq!(
            line("summary: "),
            "connected, first sync done, sync.block 1, sync.unblock 1",
            "{context}"
        );
        assert!(line("first sync done: state ").ends_with("error (none)"));
        assert!(lines.contains(&"sync stopped"), "{context}");
        assert!(lines.contains(&"plugin freed"), "{context}");
        assert!(
            !stdout.contains(TEST_PASSWORD),
            "the password was printed\n{context}"
        );
        assert_eq!(lines.last(), Some(&"all expectations held"), "{context}");

        let recorded: serde_json::Value =
            serde_json::from_str(line("connection.record 1 time(s): "))
                .unwrap_or_else(|e| panic!("connection.record's parameters: {e}\n{context}"));
        assert_eq!(recorded["company_id"], "c-wizard-company-1", "{recorded}");
        assert_eq!(recorded["connected_by"], WIZARD_EMAIL, "{recorded}");
        assert_eq!(recorded["licence_number"], WIZARD_LICENCE_NUMBER);
        assert_eq!(recorded["computer_id"], "pc-1");
        assert_eq!(recorded["service_url"], self.server.base_url());
        let online_company = recorded["online_company_id"]
            .as_str()
            .expect("the online company id");

        let session = self.server.log_in(WIZARD_EMAIL, TEST_PASSWORD);
        let answer = self
            .server
            .get(&format!(
                "/api/v1/companies/{online_company}/records/contacts"
            ))
            .bearer(&session.token)
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let mut names: Vec<String> = answer.json()["records"]
            .as_array()
            .expect("a list of records")
            .iter()
            .map(|r| r["fields"]["name"].as_str().expect("a name").to_owned())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["Fjellheim AS", "Kystlinje AS", "Nordlys ANS"]);
        let stored = std::fs::read_to_string(self.data_dir.join("connection.json"))
            .expect("connection.json");
        assert!(!stored.contains(TEST_PASSWORD));
    }
}

#[test]
fn the_c_host_connects_the_company_with_the_wizard_and_syncs() {
    let setup = wizard_setup();
    let mut command = Command::new(&setup.exe);
    setup.configure(&mut command);
    let output = command.output().expect("run the wizard host");
    let context = describe(&output);
    println!("{context}");
    assert!(output.status.success(), "{context}");
    setup.assert_connected(&String::from_utf8_lossy(&output.stdout), &context);
}

#[test]
fn the_c_wizard_host_refuses_to_run_without_its_inputs() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let exe = build_c_program(dir.path(), "wizard.c", "od-c-wizard");
    let output = Command::new(&exe)
        .env_remove("OD_ONLINE_ID_PASSWORD")
        .args(["a", "b", "c", "d", "e"])
        .output()
        .expect("run the wizard host");
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
}

#[test]
fn the_c_wizard_host_is_clean_under_valgrind() {
    if !valgrind_available() {
        return;
    }
    let setup = wizard_setup();
    let (output, context) = run_under_valgrind(&setup.exe, |command| setup.configure(command));
    setup.assert_connected(&String::from_utf8_lossy(&output.stdout), &context);
}
