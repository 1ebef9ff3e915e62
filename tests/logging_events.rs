//! The logging bridge (host log callback and trace log file, each with its
//! own level) and the event hand-off of the reachability check: the check
//! never waits for the network, the plugin asks for a pump from its own
//! thread, and `od_plugin_pump` delivers the event on the calling thread.

use od_abi::*;
use od_tests::fixtures::PREREQUISITE_IDS;
use od_tests::host::{HostApi, TestHost};
use od_tests::net::{ClosedPort, HealthServer};
use od_tests::plugin::plugin;
use std::time::{Duration, Instant};

/// Generous bounds: the machine may be a loaded 2-core CI runner.
const PROMPTLY: Duration = Duration::from_secs(1);
const EVENTUALLY: Duration = Duration::from_secs(20);

#[test]
fn host_log_gets_records_at_its_level_and_above_only() {
    let service = HealthServer::start();
    for level in OD_LOG_LEVEL_OFF..=OD_LOG_LEVEL_TRACE {
        let host = TestHost::complete();
        // An error (the licence cannot be read), warnings (rows that cannot
        // be checked) and information (loaded, stopped).
        host.fail("licence.documents", "the system database is locked");
        host.fail("user.current", "nobody is logged in");
        let mut api = HostApi::new(&host, &service.url());
        api.log_level = level;
        let instance = plugin().create(&api).expect("create");
        instance.check_prerequisites(0).expect("check");
        assert_eq!(instance.free(), OD_RESULT_OK);

        let logs = host.logs();
        for record in &logs {
            assert!(
                (OD_LOG_LEVEL_ERROR..=level).contains(&record.level),
                "level {level} forwarded {record:?}"
            );
            assert_eq!(
                record.struct_size as usize,
                std::mem::size_of::<od_log_record>()
            );
            assert!(!record.message.is_empty(), "{record:?}");
        }
        let has = |wanted: od_log_level, text: &str| {
            logs.iter()
                .any(|r| r.level == wanted && r.message.contains(text))
        };
        assert_eq!(
            has(OD_LOG_LEVEL_ERROR, "the system database is locked"),
            level >= OD_LOG_LEVEL_ERROR,
            "level {level}: {logs:#?}"
        );
        assert_eq!(
            has(OD_LOG_LEVEL_WARN, "nobody is logged in"),
            level >= OD_LOG_LEVEL_WARN,
            "level {level}: {logs:#?}"
        );
        assert_eq!(
            has(OD_LOG_LEVEL_INFO, "Online Desktop plugin"),
            level >= OD_LOG_LEVEL_INFO,
            "level {level}: {logs:#?}"
        );
        assert!(
            logs.iter()
                .filter(|r| r.message.contains("Online Desktop plugin"))
                .all(|r| r.target.starts_with("online_desktop")),
            "{logs:#?}"
        );
        assert_eq!(host.user_data_frees(), 1);
    }
}

#[test]
fn trace_log_file_is_written_at_its_own_level() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("support").join("logs").join("trace.log");
    let service = HealthServer::start();
    let host = TestHost::complete();
    let mut api = HostApi::new(&host, &service.url());
    api.log_level = OD_LOG_LEVEL_ERROR;
    api.trace_log_path = Some(path.to_str().expect("a UTF-8 path").as_bytes().to_vec());
    api.trace_log_level = OD_LOG_LEVEL_INFO;

    let first = plugin().create(&api).expect("create");
    assert_eq!(first.free(), OD_RESULT_OK);
    let after_first = std::fs::read_to_string(&path).expect("the trace log was created");
    assert!(
        after_first.contains("Online Desktop plugin") && after_first.contains("loaded"),
        "{after_first}"
    );
    assert!(after_first.contains("stopped"), "{after_first}");
    assert!(
        host.logs().iter().all(|r| r.level == OD_LOG_LEVEL_ERROR),
        "the host's own level still applies: {:#?}",
        host.logs()
    );

    // The file is appended to, never truncated.
    let second = plugin().create(&api).expect("create again");
    assert_eq!(second.free(), OD_RESULT_OK);
    let after_second = std::fs::read_to_string(&path).expect("the trace log");
    assert!(after_second.starts_with(&after_first));
    assert!(after_second.len() > after_first.len());
}

#[test]
fn an_unusable_trace_log_path_is_reported_but_not_fatal() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").expect("write");
    let path = file.join("trace.log");
    let host = TestHost::complete();
    let mut api = HostApi::new(&host, &ClosedPort::new().url());
    api.log_level = OD_LOG_LEVEL_WARN;
    api.trace_log_path = Some(path.to_str().expect("a UTF-8 path").as_bytes().to_vec());
    api.trace_log_level = OD_LOG_LEVEL_TRACE;
    let instance = plugin()
        .create(&api)
        .expect("the plugin works without its trace log");
    assert!(instance.check_licence().expect("licence").ok);
    assert!(
        host.logs()
            .iter()
            .any(|r| r.level == OD_LOG_LEVEL_WARN && r.message.contains("trace log")),
        "{:#?}",
        host.logs()
    );
}

#[test]
fn reachability_check_reports_through_pump_and_event() {
    let service = HealthServer::start();
    let host = TestHost::complete();
    let instance = plugin()
        .create(&HostApi::new(&host, &service.url()))
        .expect("create");

    let started = Instant::now();
    let list = instance.check_prerequisites(0).expect("check");
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
    let ids: Vec<&str> = list.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, PREREQUISITE_IDS);
    for row in &list.rows {
        let expected = if row.id == "service_reachable" {
            OD_CHECK_PENDING
        } else {
            OD_CHECK_PASSED
        };
        assert_eq!(row.state, expected, "{row:#?}");
    }
    assert!(list.pending);
    assert!(
        !list.can_connect,
        "a pending blocking row keeps Connect off"
    );

    // The service holds the request: nothing is queued yet.
    assert!(service.wait_for_requests(1, EVENTUALLY));
    assert_eq!(service.requests()[0], "GET /api/v1/health HTTP/1.1");
    assert_eq!(host.pump_requests(), 0);
    assert!(host.events().is_empty());

    service.release("200 OK");
    assert!(host.wait_for_pump_request(0, EVENTUALLY), "no pump request");
    let pump_thread = host.pump_threads()[0];
    assert_ne!(
        pump_thread,
        std::thread::current().id(),
        "request_pump comes from the plugin's own thread"
    );
    assert!(
        host.events().is_empty(),
        "events wait for od_plugin_pump, never go to the host directly"
    );

    assert_eq!(instance.pump(), OD_RESULT_OK);
    let events = host.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, OD_EVENT_PREREQUISITES_CHANGED);
    assert_eq!(events[0].payload, None);
    assert_eq!(
        events[0].struct_size as usize,
        std::mem::size_of::<od_event>()
    );
    assert_eq!(
        events[0].thread,
        std::thread::current().id(),
        "the event arrives on the thread that pumps"
    );

    let list = instance.check_prerequisites(0).expect("check again");
    let row = list.row("service_reachable");
    assert_eq!(row.state, OD_CHECK_PASSED, "{row:#?}");
    assert!(row.detail.contains(&service.url()), "{row:#?}");
    assert!(list.can_connect && !list.pending);

    // A fresh result is reused: no new probe, pump request or event.
    assert_eq!(instance.pump(), OD_RESULT_OK);
    assert_eq!(host.events().len(), 1);
    assert_eq!(service.requests().len(), 1);
    assert_eq!(host.pump_requests(), 1);

    // "Check again" starts a new probe; this time the service fails.
    service.hold();
    let list = instance
        .check_prerequisites(OD_CHECK_FLAG_REFRESH)
        .expect("refresh");
    assert_eq!(list.row("service_reachable").state, OD_CHECK_PENDING);
    assert!(service.wait_for_requests(2, EVENTUALLY));
    service.release("503 Service Unavailable");
    assert!(host.wait_for_pump_request(1, EVENTUALLY));
    assert_eq!(instance.pump(), OD_RESULT_OK);
    assert_eq!(host.events().len(), 2);
    let row = instance
        .check_prerequisites(0)
        .expect("check")
        .row("service_reachable")
        .clone();
    assert_eq!(row.state, OD_CHECK_FAILED);
    assert!(row.detail.contains("503"), "{row:#?}");

    assert_eq!(instance.free(), OD_RESULT_OK);
    assert_eq!(host.user_data_frees(), 1);
    assert_eq!(host.callback_panics(), 0);
}

#[test]
fn a_refused_connection_fails_the_row_with_a_reason() {
    let closed = ClosedPort::new();
    let host = TestHost::complete();
    let instance = plugin()
        .create(&HostApi::new(&host, &closed.url()))
        .expect("create");
    let first = instance.check_prerequisites(0).expect("check");
    // The refusal may already be in when the list is built; either way an
    // event follows.
    assert_ne!(first.row("service_reachable").state, OD_CHECK_PASSED);
    assert!(host.wait_for_pump_request(0, EVENTUALLY));
    assert_eq!(instance.pump(), OD_RESULT_OK);
    assert_eq!(host.events().len(), 1);
    let list = instance.check_prerequisites(0).expect("check again");
    let row = list.row("service_reachable");
    assert_eq!(row.state, OD_CHECK_FAILED);
    assert!(row.blocking);
    assert!(
        row.detail.contains(&closed.url()) && row.detail.contains("no connection could be made"),
        "{row:#?}"
    );
    assert!(!list.can_connect && !list.pending);
}

#[test]
fn check_prerequisites_never_waits_for_a_silent_service() {
    // The service accepts the connection and never answers, as an
    // unroutable address would (without sending anything off this computer).
    let silent = HealthServer::start();
    let host = TestHost::complete();
    let instance = plugin()
        .create(&HostApi::new(&host, &silent.url()))
        .expect("create");
    for _ in 0..3 {
        let started = Instant::now();
        let list = instance.check_prerequisites(0).expect("check");
        assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
        assert_eq!(list.row("service_reachable").state, OD_CHECK_PENDING);
        assert!(list.pending);
    }
    assert!(silent.wait_for_requests(1, EVENTUALLY));
    assert_eq!(
        silent.requests().len(),
        1,
        "a probe in flight is not started twice"
    );

    // Destroying the plugin cancels the probe and joins its threads well
    // within the documented 10 seconds.
    let started = Instant::now();
    assert_eq!(instance.free(), OD_RESULT_OK);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(host.user_data_frees(), 1);
    assert_eq!(host.pump_requests(), 0, "a cancelled probe reports nothing");
}
