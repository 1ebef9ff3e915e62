//! The wizard end to end: a whole plugin instance (`Plugin`) against the
//! real online service (`TestServer` on 127.0.0.1) and an in-memory host
//! with company data, a licence and a change log.

use super::Action;
use crate::host::{Host, HostChannel, HostError};
use crate::logging::LogConfig;
use crate::online::ServiceUrl;
use crate::plugin::{Config, Plugin};
use crate::sync::engine::tests::Program;
use crate::sync::engine::{Refusal, SyncState};
use od_abi::*;
use od_online::testing::{licence, registration, sign_licence, TestServer, TEST_PASSWORD};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const COMPANY_DB: &str = "company-db-1";
const SYSTEM_DB: &str = "system-db-1";

/// A program: its company data for the wizard, the sync methods of the
/// engine tests' program, and what it was told.
struct WizardHost {
    program: Arc<Program>,
    answers: Mutex<HashMap<String, Value>>,
    recorded: Arc<Mutex<Vec<Value>>>,
    /// What `connection.forget` told (Disconnect).
    forgotten: Arc<Mutex<Vec<Value>>>,
    /// What `connection.get` answers: the system database's note, shared
    /// by the computers of one installation.
    noted: Arc<Mutex<Option<Value>>>,
    fail_record: AtomicBool,
    /// Milliseconds a method takes (to catch the wizard busy).
    delays: Mutex<HashMap<String, u64>>,
}

impl WizardHost {
    fn new(licence_number: &str) -> Arc<WizardHost> {
        let host = Arc::new(WizardHost {
            program: Program::new(),
            answers: Mutex::new(HashMap::new()),
            recorded: Arc::default(),
            forgotten: Arc::default(),
            noted: Arc::default(),
            fail_record: AtomicBool::new(false),
            delays: Mutex::new(HashMap::new()),
        });
        host.set("user.current", json!({"username": "admin", "is_super_user": true, "employee": {"id": "1", "name": "Kari", "email": "kari@example.com"}}));
        host.set("company.registration", json!({"name": "Nordlys Handel AS", "street": "Storgata 1", "postcode": "0155", "city": "Oslo", "country": "Norway", "phone": "+47 22 00 00 00", "email": "post@nordlys.example", "organisation_number": "987 654 321"}));
        host.set(
            "company.identity",
            json!({"id": COMPANY_DB, "name": "Nordlys Handel AS", "is_sample": false}),
        );
        host.set("system.identity", json!({"id": SYSTEM_DB}));
        host.set("host.info", json!({"host_name": "t", "host_version": "1", "evaluation_installation": false, "computer": {"id": "pc-1", "name": "Kontor-PC"}}));
        host.set("system.companies", json!({"companies": [{"id": COMPANY_DB, "name": "Nordlys Handel AS", "is_sample": false, "online_desktop_connected": false}]}));
        host.set(
            "system.computers",
            json!({"computers": [
            {"id": "pc-1", "name": "Kontor-PC", "holds_system_database": true},
            {"id": "pc-2", "name": "Lager-PC", "holds_system_database": false}]}),
        );
        host.set_licence(&sign_licence(&licence(licence_number)), licence_number);
        host
    }

    /// Another computer of the same installation: the same company data
    /// and system database, its own `host.info`.
    fn sharing(other: &WizardHost, computer: Value) -> Arc<WizardHost> {
        let answers = other.answers.lock().clone();
        let host = Arc::new(WizardHost {
            program: other.program.clone(),
            answers: Mutex::new(answers),
            recorded: other.recorded.clone(),
            forgotten: other.forgotten.clone(),
            noted: other.noted.clone(),
            fail_record: AtomicBool::new(false),
            delays: Mutex::new(HashMap::new()),
        });
        host.set("host.info", json!({"host_name": "t", "host_version": "1", "evaluation_installation": false, "computer": computer}));
        host
    }

    fn set(&self, method: &str, answer: Value) {
        self.answers.lock().insert(method.to_owned(), answer);
    }

    fn set_licence(&self, document: &str, licence_number: &str) {
        self.set("licence.documents", json!({"documents": [document]}));
        self.set(
            "system.bindings",
            json!({"bindings": [{"add_on": od_licence::ADD_ON_ONLINE_DESKTOP, "licence_number": licence_number, "company_id": COMPANY_DB}]}),
        );
    }

    fn delay(&self, method: &str, millis: u64) {
        self.delays.lock().insert(method.to_owned(), millis);
    }
}

impl HostChannel for WizardHost {
    fn request(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, HostError> {
        let delay = self.delays.lock().get(method).copied();
        if let Some(millis) = delay {
            std::thread::sleep(Duration::from_millis(millis));
        }
        if method == "connection.forget" {
            self.forgotten
                .lock()
                .push(serde_json::from_slice(params).unwrap());
            *self.noted.lock() = None;
            return Ok(b"{}".to_vec());
        }
        if method == "connection.get" {
            return Ok(json!({ "connection": *self.noted.lock() })
                .to_string()
                .into_bytes());
        }
        if method == "connection.record" {
            if self.fail_record.load(Ordering::SeqCst) {
                return Err(HostError::Failed {
                    method: method.to_owned(),
                    message: "database is locked".to_owned(),
                });
            }
            let record: Value = serde_json::from_slice(params).unwrap();
            *self.noted.lock() = Some(record.clone());
            self.recorded.lock().push(record);
            return Ok(b"{}".to_vec());
        }
        let answer = self.answers.lock().get(method).cloned();
        match answer {
            Some(answer) => Ok(answer.to_string().into_bytes()),
            None => self.program.request(method, params),
        }
    }

    fn request_pump(&self) {}
}

struct Fixture {
    server: Option<TestServer>,
    url: String,
    folder: tempfile::TempDir,
    host: Arc<WizardHost>,
    plugin: Plugin,
}

fn fixture(licence_number: &str) -> Fixture {
    let server = TestServer::start();
    let url = server.base_url().to_owned();
    fixture_at(Some(server), &url, licence_number)
}

fn fixture_at(server: Option<TestServer>, url: &str, licence_number: &str) -> Fixture {
    let host = WizardHost::new(licence_number);
    let folder = tempfile::tempdir().unwrap();
    let plugin = Plugin::new(
        Host::new(host.clone()),
        Config {
            data_dir: Some(folder.path().to_path_buf()),
            service: ServiceUrl::parse(url).unwrap(),
            log: LogConfig {
                host: None,
                trace_file: None,
            },
        },
    );
    Fixture {
        server,
        url: url.to_owned(),
        folder,
        host,
        plugin,
    }
}

fn in_time(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Fixture {
    fn server(&self) -> &TestServer {
        self.server.as_ref().unwrap()
    }

    fn page(&self) -> Value {
        serde_json::from_str(&self.plugin.wizard_page().unwrap()).unwrap()
    }

    fn act(&self, action: Action) -> Result<(), Refusal> {
        self.plugin.wizard_action(action)
    }

    fn set(&self, field: &str, value: &str) {
        self.plugin.wizard_set(field, value).unwrap();
    }

    /// The page once it is no longer busy.
    fn settled(&self) -> Value {
        let mut page = self.page();
        in_time("the page to settle", || {
            page = self.page();
            page["busy"] == false
        });
        page
    }

    /// Opens the wizard and goes to the Online ID page.
    fn to_online_id(&self) {
        self.plugin.wizard_open().unwrap();
        let mut page = self.page();
        assert_eq!(page["page"], "prerequisites");
        in_time("every prerequisite to pass", || {
            page = self.page();
            page["actions"]["next"] == true
        });
        assert_eq!(page["rows"].as_array().unwrap().len(), 8);
        self.act(Action::Next).unwrap();
        assert_eq!(self.page()["page"], "welcome");
        self.act(Action::Next).unwrap();
        assert_eq!(self.page()["page"], "online_id");
    }

    fn log_in(&self, email: &str, password: &str) -> Value {
        self.set("email", email);
        self.set("password", password);
        self.act(Action::Next).unwrap();
        self.settled()
    }

    /// From the company page to the finish page.
    fn to_finish(&self, when: &str, at: &str) {
        assert_eq!(self.page()["page"], "company");
        self.act(Action::Next).unwrap();
        assert_eq!(self.page()["page"], "start");
        self.set("when", when);
        self.set("at", at);
        self.act(Action::Next).unwrap();
        assert_eq!(self.page()["page"], "finish", "{}", self.page());
    }

    fn finish(&self) -> Value {
        self.act(Action::Finish).unwrap();
        self.settled()
    }

    /// The companies the Online ID reaches online.
    fn companies_of(&self, email: &str) -> Vec<Value> {
        let session = self.server().log_in(email, TEST_PASSWORD);
        let answer = self
            .server()
            .get("/api/v1/companies")
            .bearer(&session.token)
            .send();
        assert_eq!(answer.status, 200);
        answer.json()["companies"].as_array().unwrap().clone()
    }

    /// Nothing on this computer: no connection, schedule or state; the
    /// host was told nothing; the engine is not connected.
    fn assert_nothing_left_locally(&self) {
        let files: Vec<String> = std::fs::read_dir(self.folder.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(files.is_empty(), "left behind: {files:?}");
        assert!(self.host.recorded.lock().is_empty());
        assert_eq!(self.plugin.sync_status().state, SyncState::NotConnected);
    }

    fn cancel_and_check(&self, email: &str) {
        self.act(Action::Cancel).unwrap();
        let page = self.settled();
        assert_eq!(page["page"], "cancelled");
        assert_eq!(page["cancelled"], true);
        self.plugin.wizard_close().unwrap();
        self.assert_nothing_left_locally();
        assert!(self.companies_of(email).is_empty());
    }
}

fn in_an_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn a_new_online_id_connects_the_company_and_the_first_sync_runs() {
    let f = fixture("L-HAPPY");
    let email = "kari@example.com";
    f.to_online_id();
    let page = f.page();
    assert_eq!(
        page["fields"][0]["value"], email,
        "pre-filled from the employee"
    );
    assert_eq!(page["actions"]["create_online_id"], true);
    f.act(Action::CreateOnlineId).unwrap();
    let page = f.settled();
    assert!(
        page["notice"].as_str().unwrap().contains("spam folder"),
        "{page}"
    );
    assert!(page["text"]
        .as_str()
        .unwrap()
        .contains("not your login for the program"));

    // The person opens the link and chooses a password there.
    let mail = f.server().outbox().wait_for_mail_to(email);
    let verified = f
        .server()
        .post("/api/v1/accounts/verify")
        .json(&json!({"token": mail.token().unwrap(), "password": TEST_PASSWORD}))
        .send();
    assert_eq!(verified.status, 200);

    f.set("email", email);
    f.set("password", TEST_PASSWORD);
    let before_login = f.plugin.wizard_page().unwrap();
    assert!(
        !before_login.contains(TEST_PASSWORD),
        "a page showed the password"
    );
    f.act(Action::Next).unwrap();
    let page = f.settled();
    assert_eq!(page["page"], "company", "{page}");
    let fields = page["fields"].as_array().unwrap();
    let value = |id: &str| fields.iter().find(|f| f["id"] == id).unwrap()["value"].clone();
    assert_eq!(value("licence_number"), "L-HAPPY");
    assert_eq!(value("licensee"), "Nordlys Handel AS");
    assert_eq!(value("organisation_number"), "987 654 321");

    f.to_finish("now", "");
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    assert_eq!(page["actions"]["cancel"], false);
    assert!(!page.to_string().contains(TEST_PASSWORD));

    let stored = std::fs::read_to_string(f.folder.path().join("connection.json")).unwrap();
    assert!(!stored.contains(TEST_PASSWORD));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.folder.path().join("connection.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let recorded = f.host.recorded.lock().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["connected_by"], email);
    assert_eq!(recorded[0]["company_id"], COMPANY_DB);
    assert_eq!(f.companies_of(email).len(), 1);

    in_time("the first synchronisation", || {
        let status = f.plugin.sync_status();
        status.first_sync_done && status.state == SyncState::Running
    });
    // The wizard is done: cancel is refused, close works.
    assert_eq!(f.act(Action::Cancel).unwrap_err().code, OD_RESULT_BAD_STATE);
    f.plugin.wizard_close().unwrap();
    assert!(f.plugin.wizard_open().is_err(), "connected already");
}

#[test]
fn later_schedules_the_first_sync_and_the_engine_waits() {
    let f = fixture("L-LATER");
    f.server()
        .create_online_id("per@example.com", TEST_PASSWORD);
    f.to_online_id();
    let page = f.log_in("per@example.com", TEST_PASSWORD);
    assert_eq!(page["page"], "company", "{page}");
    f.act(Action::Next).unwrap();
    f.set("when", "later");
    let page = f.page();
    assert!(
        page["text"].as_str().unwrap().contains("must stay on"),
        "{page}"
    );
    f.set("at", &in_an_hour());
    f.act(Action::Next).unwrap();
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    assert!(f.folder.path().join("schedule.json").exists());
    in_time("the engine to wait for its time", || {
        f.plugin.sync_status().state == SyncState::Scheduled
    });
    assert!(!f.plugin.sync_status().first_sync_done);
    assert!(f.plugin.sync_status().scheduled_at.is_some());
}

#[test]
fn cancel_on_every_page_leaves_nothing_behind() {
    let f = fixture("L-CANCEL");
    let email = "ola@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    for page in [
        "prerequisites",
        "welcome",
        "online_id",
        "company",
        "start",
        "finish",
    ] {
        f.plugin.wizard_open().unwrap();
        if page == "prerequisites" {
            f.cancel_and_check(email);
            continue;
        }
        f.plugin.wizard_close().unwrap();
        f.to_online_id();
        match page {
            "welcome" => f.act(Action::Back).unwrap(),
            "online_id" => {}
            _ => {
                assert_eq!(f.log_in(email, TEST_PASSWORD)["page"], "company");
                if page != "company" {
                    f.act(Action::Next).unwrap();
                }
                if page == "finish" {
                    f.act(Action::Next).unwrap();
                }
            }
        }
        assert_eq!(f.page()["page"], page);
        f.cancel_and_check(email);
    }
}

#[test]
fn cancel_during_finish_takes_everything_back() {
    let f = fixture("L-CANCEL-BUSY");
    let email = "siri@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    f.log_in(email, TEST_PASSWORD);
    f.to_finish("now", "");
    f.host.delay("system.identity", 1500);
    f.act(Action::Finish).unwrap();
    let page = f.page();
    assert_eq!(page["busy"], true);
    assert_eq!(page["actions"]["cancel"], true);
    assert_eq!(f.act(Action::Next).unwrap_err().code, OD_RESULT_BAD_STATE);
    assert_eq!(f.act(Action::Finish).unwrap_err().code, OD_RESULT_BAD_STATE);
    assert_eq!(
        f.plugin
            .wizard_set("email", "x@example.com")
            .unwrap_err()
            .code,
        OD_RESULT_BAD_STATE
    );
    assert_eq!(
        f.plugin.wizard_close().unwrap_err().code,
        OD_RESULT_BAD_STATE
    );
    f.host.delay("system.identity", 0);
    f.cancel_and_check(email);
}

#[test]
fn a_busy_finish_refuses_a_late_cancel_and_connects() {
    let f = fixture("L-LATE-CANCEL");
    let email = "eva@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    f.log_in(email, TEST_PASSWORD);
    f.to_finish("now", "");
    f.host.delay("connection.record", 1500);
    f.act(Action::Finish).unwrap();
    in_time("the finish to reach the host", || {
        f.page()["actions"]["cancel"] == false && f.page()["busy"] == true
    });
    assert_eq!(f.act(Action::Cancel).unwrap_err().code, OD_RESULT_BAD_STATE);
    assert_eq!(f.settled()["done"], true);
}

#[test]
fn a_failed_finish_takes_back_the_device_and_can_be_retried() {
    let f = fixture("L-RETRY");
    let email = "lars@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    f.log_in(email, TEST_PASSWORD);
    f.to_finish("later", &in_an_hour());
    f.host.fail_record.store(true, Ordering::SeqCst);
    let page = f.finish();
    assert_eq!(page["page"], "finish");
    assert_eq!(page["error_code"], OD_RESULT_HOST_CALLBACK_FAILED);
    assert!(page["error"]
        .as_str()
        .unwrap()
        .contains("database is locked"));
    assert_eq!(page["actions"]["finish"], true);
    f.assert_nothing_left_locally();
    // Nothing half-registered online: the registration made by this finish
    // was taken back, its device with it.
    assert!(f.companies_of(email).is_empty());

    f.host.fail_record.store(false, Ordering::SeqCst);
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    assert_eq!(f.companies_of(email).len(), 1);
}

#[test]
fn a_wrong_password_shows_at_the_field_and_can_be_corrected() {
    let f = fixture("L-WRONG");
    let email = "nils@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    let page = f.log_in(email, "not the password");
    assert_eq!(page["page"], "online_id");
    let password = &page["fields"][1];
    assert_eq!(password["value"], "");
    let error = password["error"].as_str().unwrap();
    assert!(error.contains("wrong"), "{page}");
    // Regression: the service's text spoke of just-created Online IDs
    // and verification links to someone who had not created one.
    assert!(!error.contains("just created"), "{error}");
    assert!(error.contains("/login"), "{error}");
    // Empty password and a malformed address are caught before sending.
    f.act(Action::Next).unwrap();
    assert!(f.page()["fields"][1]["error"]
        .as_str()
        .unwrap()
        .contains("Enter the password"));
    f.set("email", "nils@");
    f.act(Action::Next).unwrap();
    assert!(f.page()["fields"][0]["error"]
        .as_str()
        .unwrap()
        .contains("not an e-mail address"));
    assert_eq!(f.log_in(email, TEST_PASSWORD)["page"], "company");
}

#[test]
fn an_unverified_online_id_is_told_to_open_the_link() {
    let f = fixture("L-UNVERIFIED");
    f.to_online_id();
    f.set("email", "new@example.com");
    f.act(Action::CreateOnlineId).unwrap();
    f.settled();
    let page = f.log_in("new@example.com", TEST_PASSWORD);
    assert_eq!(page["page"], "online_id");
    let error = page["fields"][1]["error"].as_str().unwrap();
    assert!(
        error.contains("not verified yet") && error.contains("spam folder"),
        "{error}"
    );
}

#[test]
fn an_unreachable_service_is_shown_on_the_page_and_retried() {
    let f = fixture("L-DOWN");
    let email = "down@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    let mut f = f;
    drop(f.server.take());
    let page = f.log_in(email, TEST_PASSWORD);
    assert_eq!(page["page"], "online_id");
    assert_eq!(page["error_code"], OD_RESULT_SERVICE_UNREACHABLE, "{page}");
    assert!(page["error"]
        .as_str()
        .unwrap()
        .contains("cannot be reached"));
    assert_eq!(page["actions"]["next"], true, "retryable");
}

#[test]
fn a_refused_licence_is_shown_on_the_company_page() {
    let f = fixture("L-REFUSED");
    let email = "lic@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    f.log_in(email, TEST_PASSWORD);
    f.to_finish("now", "");
    // The licence was replaced meanwhile by an evaluation licence.
    let mut evaluation = licence("L-REFUSED");
    evaluation.evaluation = true;
    f.host.set_licence(&sign_licence(&evaluation), "L-REFUSED");
    let page = f.finish();
    assert_eq!(page["page"], "company", "{page}");
    assert_eq!(page["error_code"], OD_RESULT_SERVICE_REFUSED);
    f.assert_nothing_left_locally();
    assert!(f.companies_of(email).is_empty());
    // Corrected: the real licence again.
    f.host
        .set_licence(&sign_licence(&licence("L-REFUSED")), "L-REFUSED");
    f.to_finish("now", "");
    assert_eq!(f.finish()["done"], true);
}

#[test]
fn a_company_connected_by_another_online_id_is_refused() {
    let f = fixture("L-TAKEN");
    let other = f.server().connected_company("other@example.com", "L-OTHER");
    let _ = other;
    // The same company database and system database, registered first by
    // another Online ID with this company's licence.
    f.server()
        .create_online_id("first@example.com", TEST_PASSWORD);
    let first = f.server().log_in("first@example.com", TEST_PASSWORD);
    f.server().register_company(
        &first.token,
        &registration(&sign_licence(&licence("L-TAKEN")), SYSTEM_DB, COMPANY_DB),
    );
    let email = "second@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    f.log_in(email, TEST_PASSWORD);
    f.to_finish("now", "");
    let page = f.finish();
    assert_eq!(page["page"], "company", "{page}");
    assert_eq!(page["error_code"], OD_RESULT_SERVICE_REFUSED);
    assert!(page["error"]
        .as_str()
        .unwrap()
        .contains("Nothing was registered"));
    f.assert_nothing_left_locally();
    assert!(f.companies_of(email).is_empty());
}

#[test]
fn a_time_in_the_past_is_refused_at_the_field() {
    let f = fixture("L-PAST");
    let email = "past@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    f.log_in(email, TEST_PASSWORD);
    f.act(Action::Next).unwrap();
    f.set("when", "later");
    f.set("at", "2020-01-01 10:00");
    f.act(Action::Next).unwrap();
    let page = f.page();
    assert_eq!(page["page"], "start");
    let at = &page["fields"][1];
    assert!(
        at["error"].as_str().unwrap().contains("already passed"),
        "{page}"
    );
    assert_eq!(at["required"], true);
    assert!(f.plugin.wizard_set("when", "sometime").is_err());
    assert!(
        f.plugin.wizard_set("password", "x").is_err(),
        "not on this page"
    );
}

#[test]
fn only_a_super_user_of_an_unconnected_company_opens_the_wizard() {
    let f = fixture("L-OPEN");
    assert_eq!(
        f.plugin.wizard_page().unwrap_err().code,
        OD_RESULT_BAD_STATE
    );
    f.host.set(
        "user.current",
        json!({"username": "per", "is_super_user": false, "employee": null}),
    );
    let refused = f.plugin.wizard_open().unwrap_err();
    assert!(refused.message.contains("not a super user"), "{refused:?}");
    f.host.set(
        "user.current",
        json!({"username": "admin", "is_super_user": true, "employee": null}),
    );
    f.plugin.wizard_open().unwrap();
    assert_eq!(
        f.plugin.wizard_open().unwrap_err().code,
        OD_RESULT_BAD_STATE
    );
    assert_eq!(f.act(Action::Finish).unwrap_err().code, OD_RESULT_BAD_STATE);
    f.plugin.wizard_close().unwrap();
    f.plugin.wizard_close().unwrap();
}

// Update connection, Disconnect, the restore guard and restore detection.

use super::Mode;
use od_client::{Client, ClientConfig, DeviceSession};

const NEW_PASSWORD: &str = "a-new-password-2";

impl Fixture {
    /// Connects through the wizard with an existing Online ID and waits
    /// for the first sync to finish.
    fn connect(&self, email: &str) {
        self.to_online_id();
        assert_eq!(self.log_in(email, TEST_PASSWORD)["page"], "company");
        self.to_finish("now", "");
        assert_eq!(self.finish()["done"], true);
        self.plugin.wizard_close().unwrap();
        self.running();
    }

    fn running(&self) {
        in_time("synchronisation to run", || {
            let status = self.plugin.sync_status();
            status.first_sync_done && status.state == SyncState::Running
        });
    }

    fn connection(&self) -> Value {
        let text = std::fs::read_to_string(self.folder.path().join("connection.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Opens `mode` and logs in: the confirm page.
    fn open_and_log_in(&self, mode: Mode, email: &str, password: &str) -> Value {
        self.plugin.wizard_open_for(mode).unwrap();
        let page = self.page();
        assert_eq!(page["page"], "online_id", "{page}");
        assert_eq!(page["mode"], mode.id());
        assert_eq!(page["steps"], 2);
        assert_eq!(page["actions"]["create_online_id"], false);
        self.log_in(email, password)
    }

    /// The oracle of GUARANTEES.md: both sides' checksums per entity
    /// equal, every host record sent.
    fn assert_same_on_both_sides(&self) {
        let connection = crate::sync::connection::load(self.folder.path())
            .unwrap()
            .unwrap();
        let client = Client::new(
            ServiceUrl::parse(&self.url).unwrap(),
            ClientConfig::default(),
        )
        .unwrap();
        let device = DeviceSession::new(connection.credentials());
        let online = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(client.checksum(&device))
            .unwrap();
        let state = crate::sync::state::State::open(self.folder.path()).unwrap();
        let host = crate::sync::checksum::host_checksums(
            &crate::sync::continuous::tests::schema(),
            &Host::new(self.host.clone()),
            &state,
        );
        for (entity, digest) in &host {
            assert!(digest.unsent.is_empty(), "{entity}: unsent");
            let theirs = online.iter().find(|e| &e.entity == entity);
            if digest.count == 0 {
                assert!(theirs.is_none_or(|e| e.count == 0), "{entity}");
                continue;
            }
            let theirs = theirs.unwrap_or_else(|| panic!("{entity} is not online"));
            assert_eq!(
                (theirs.count, theirs.sha256.as_str()),
                (digest.count, digest.sha256.as_str()),
                "{entity}"
            );
        }
    }

    fn eventually_same_on_both_sides(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.assert_same_on_both_sides()
            }));
            if attempt.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the sides did not meet");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The online sequence number, as this computer's device sees it.
    fn online_sequence(&self) -> u64 {
        let connection = crate::sync::connection::load(self.folder.path())
            .unwrap()
            .unwrap();
        let client = Client::new(
            ServiceUrl::parse(self.server().base_url()).unwrap(),
            ClientConfig::default(),
        )
        .unwrap();
        let device = DeviceSession::new(connection.credentials());
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(client.sync_status(&device))
            .unwrap()
            .sequence
    }
}

#[test]
fn update_connection_after_a_password_change_replaces_the_device_and_sync_goes_on() {
    let f = fixture("L-UPDATE");
    let email = "kari@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.connect(email);
    let old = f.connection();
    let sequence = f.online_sequence();

    // The password is changed on the web.
    let session = f.server().log_in(email, TEST_PASSWORD);
    let changed = f
        .server()
        .post("/api/v1/me/password")
        .bearer(&session.token)
        .json(&json!({"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD}))
        .send();
    assert_eq!(changed.status, 204, "{}", changed.text());

    // The old password is refused at the field; the new one goes on.
    let page = f.open_and_log_in(Mode::UpdateConnection, email, TEST_PASSWORD);
    assert_eq!(page["page"], "online_id");
    assert!(page["fields"][1]["error"].is_string(), "{page}");
    let page = f.log_in(email, NEW_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    assert_eq!(page["actions"]["finish"], true);
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    assert!(!page.to_string().contains(NEW_PASSWORD));
    f.plugin.wizard_close().unwrap();

    let new = f.connection();
    assert_ne!(new["device_id"], old["device_id"]);
    let refused = f
        .server()
        .get("/api/v1/devices/current")
        .bearer(old["access_token"].as_str().unwrap())
        .send();
    assert_eq!(refused.status, 401, "the old device still works");
    f.running();
    // Nothing was sent again: the online sequence did not move.
    assert_eq!(f.online_sequence(), sequence);
    f.host
        .program
        .log
        .create("employees", json!({"name": "Ola Nordmann"}));
    f.eventually_same_on_both_sides();
    assert!(f.online_sequence() > sequence);
}

#[test]
fn disconnect_only_by_connected_by_then_connecting_again_resynchronises_everything() {
    let f = fixture("L-DISCONNECT");
    let email = "kari@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.server()
        .create_online_id("other@example.com", TEST_PASSWORD);
    for name in ["Ada", "Bo", "Cai"] {
        f.host
            .program
            .log
            .create("employees", json!({ "name": name }));
    }
    f.connect(email);
    assert_eq!(
        f.plugin.restore_check().unwrap_err().code,
        OD_RESULT_BAD_STATE
    );
    let old = f.connection();

    // Another Online ID is refused; nothing changed, sync runs again.
    let page = f.open_and_log_in(Mode::Disconnect, "other@example.com", TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    let page = f.finish();
    assert_eq!(page["page"], "online_id", "{page}");
    assert!(page["error"].is_string(), "{page}");
    f.plugin.wizard_close().unwrap();
    assert_eq!(f.connection(), old);
    f.running();

    let employees = f.host.program.log.rows("employees");
    assert!(!employees.is_empty());
    let page = f.open_and_log_in(Mode::Disconnect, email, TEST_PASSWORD);
    assert!(page["text"].as_str().unwrap().contains("never touched"));
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    f.plugin.wizard_close().unwrap();

    assert_eq!(f.plugin.sync_status().state, SyncState::NotConnected);
    for file in ["connection.json", "state.db", "schedule.json"] {
        assert!(!f.folder.path().join(file).exists(), "{file} left");
    }
    let forgotten = f.host.forgotten.lock().clone();
    assert_eq!(forgotten.len(), 1);
    assert_eq!(forgotten[0]["company_id"], COMPANY_DB);
    let company = &f.companies_of(email)[0];
    let session = f.server().log_in(email, TEST_PASSWORD);
    let online = f
        .server()
        .get(&format!(
            "/api/v1/companies/{}",
            company["id"].as_str().unwrap()
        ))
        .bearer(&session.token)
        .send()
        .json();
    assert_eq!(online["connected"], false, "{online}");
    f.plugin.restore_check().unwrap();
    // The host's own data is untouched.
    assert_eq!(f.host.program.log.rows("employees"), employees);

    // Connecting again sends everything again.
    f.connect(email);
    f.eventually_same_on_both_sides();
}

#[test]
fn cancel_in_update_connection_and_disconnect_leaves_everything_as_it_was() {
    let f = fixture("L-MODES-CANCEL");
    let email = "kari@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.connect(email);
    let before = f.connection();
    for mode in [Mode::UpdateConnection, Mode::Disconnect] {
        // On the Online ID page.
        f.plugin.wizard_open_for(mode).unwrap();
        f.act(Action::Cancel).unwrap();
        assert_eq!(f.settled()["cancelled"], true);
        f.plugin.wizard_close().unwrap();
        // On the confirm page, logged in.
        let page = f.open_and_log_in(mode, email, TEST_PASSWORD);
        assert_eq!(page["page"], "confirm");
        f.act(Action::Cancel).unwrap();
        let page = f.settled();
        assert_eq!(page["page"], "cancelled");
        assert!(page["text"]
            .as_str()
            .unwrap()
            .contains("Nothing was changed"));
        f.plugin.wizard_close().unwrap();
        assert_eq!(f.connection(), before);
        assert_eq!(f.plugin.sync_status().state, SyncState::Running);
        assert!(f.host.forgotten.lock().is_empty());
    }
    f.eventually_same_on_both_sides();
}

#[test]
fn the_modes_and_the_restore_guard_follow_the_connection() {
    let f = fixture("L-MODES-OPEN");
    f.plugin.restore_check().unwrap();
    for mode in [Mode::UpdateConnection, Mode::Disconnect] {
        let refused = f.plugin.wizard_open_for(mode).unwrap_err();
        assert_eq!(refused.code, OD_RESULT_BAD_STATE);
        assert!(
            refused.message.contains("not connected"),
            "{}",
            refused.message
        );
    }
    let email = "kari@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.connect(email);
    let refused = f.plugin.restore_check().unwrap_err();
    assert!(
        refused.message.contains("Disconnect it first"),
        "{}",
        refused.message
    );
    assert!(f.plugin.wizard_open_for(Mode::Connect).is_err());
    // Disconnect only on the sync computer.
    f.host.set("host.info", json!({"host_name": "t", "host_version": "1", "evaluation_installation": false, "computer": {"id": "pc-2", "name": "Lager-PC"}}));
    let refused = f.plugin.wizard_open_for(Mode::Disconnect).unwrap_err();
    assert!(
        refused.message.contains("sync computer"),
        "{}",
        refused.message
    );
}

#[test]
fn a_restored_host_stops_the_engine_until_update_connection() {
    let f = fixture("L-RESTORE");
    let email = "kari@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.connect(email);
    for name in ["Ada", "Bo", "Cai"] {
        f.host
            .program
            .log
            .create("employees", json!({ "name": name }));
    }
    f.eventually_same_on_both_sides();
    // The company database is put back: its change log is behind.
    f.host.set("changes.position", json!({"seq": 1}));
    in_time("the engine to notice the restore", || {
        f.plugin.sync_status().state == SyncState::Failed
    });
    let status = f.plugin.sync_status();
    let error = status.error.unwrap();
    assert_eq!(error.code, OD_RESULT_HOST_RESTORED);
    assert!(error.message.contains("backup"), "{}", error.message);
    assert!(
        error.message.contains("Update connection"),
        "{}",
        error.message
    );
    // Starting again does not run while it is not reconciled.
    f.plugin.start_sync(true).unwrap();
    in_time("the engine to refuse again", || {
        f.plugin.sync_status().state == SyncState::Failed
    });

    // The people go on working: the log grows past the pushed position
    // again (the real log of the test host).
    f.host.answers.lock().remove("changes.position");
    let page = f.open_and_log_in(Mode::UpdateConnection, email, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    assert!(
        page["text"].as_str().unwrap().contains("restored"),
        "{page}"
    );
    f.plugin.wizard_close().unwrap();
    f.running();
    f.host
        .program
        .log
        .create("employees", json!({"name": "Nils Nordmann"}));
    f.eventually_same_on_both_sides();
}

// Change user.

impl Fixture {
    /// The program's user is now a super user linked to the employee with
    /// `email`.
    fn user_with_email(&self, email: &str) {
        self.host.set(
            "user.current",
            json!({"username": "ola", "is_super_user": true, "employee": {"id": "2", "name": "Ola", "email": email}}),
        );
    }

    /// The company as its new "Connected by" sees it online.
    fn online_company(&self, email: &str) -> Value {
        let id = self.companies_of(email)[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let session = self.server().log_in(email, TEST_PASSWORD);
        self.server()
            .get(&format!("/api/v1/companies/{id}"))
            .bearer(&session.token)
            .send()
            .json()
    }
}

const KARI: &str = "kari@example.com";
const OLA: &str = "ola@example.com";

/// A company connected by Kari's Online ID; Ola has one too.
fn connected_by_kari(licence: &str) -> Fixture {
    let f = fixture(licence);
    f.server().create_online_id(KARI, TEST_PASSWORD);
    f.server().create_online_id(OLA, TEST_PASSWORD);
    f.connect(KARI);
    f
}

#[test]
fn change_user_hands_the_connection_to_the_new_online_id_and_sync_goes_on() {
    let f = connected_by_kari("L-CHANGE-USER");
    let (kari, ola) = (KARI, OLA);
    let before = f.connection();
    let recorded = f.host.recorded.lock().len();

    f.user_with_email(ola);
    f.plugin.wizard_open_for(Mode::ChangeUser).unwrap();
    let page = f.page();
    assert_eq!(page["mode"], "change_user", "{page}");
    assert_eq!(page["fields"][0]["value"], ola, "the employee's e-mail");
    f.plugin.wizard_close().unwrap();
    let page = f.open_and_log_in(Mode::ChangeUser, ola, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    assert_eq!(page["fields"][0]["value"], kari, "{page}");
    assert_eq!(page["fields"][1]["value"], ola, "{page}");
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    assert!(page["text"].as_str().unwrap().contains(kari), "{page}");
    f.plugin.wizard_close().unwrap();

    // Online: Ola is Connected by, Kari keeps access.
    let online = f.online_company(ola);
    assert_eq!(online["connected_by"]["email"], ola, "{online}");
    assert_eq!(f.companies_of(kari).len(), 1);
    // The program was told.
    let told = f.host.recorded.lock().clone();
    assert_eq!(told.len(), recorded + 1);
    assert_eq!(told[recorded]["connected_by"], ola);
    assert_eq!(told[recorded]["company_id"], COMPANY_DB);
    // The same device; synchronisation goes on.
    assert_eq!(f.connection()["device_id"], before["device_id"]);
    f.running();
    f.host
        .program
        .log
        .create("employees", json!({"name": "Per Hansen"}));
    f.eventually_same_on_both_sides();

    // Kari may no longer disconnect; Ola may.
    let page = f.open_and_log_in(Mode::Disconnect, kari, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    let page = f.finish();
    assert_eq!(page["page"], "online_id", "{page}");
    assert!(page["error"].as_str().unwrap().contains(ola), "{page}");
    f.plugin.wizard_close().unwrap();
    f.running();
    let page = f.open_and_log_in(Mode::Disconnect, ola, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
}

#[test]
fn change_user_cancel_the_same_person_and_a_wrong_password_change_nothing() {
    let f = connected_by_kari("L-CHANGE-NOTHING");
    let (kari, ola) = (KARI, OLA);
    let before = f.connection();
    let recorded = f.host.recorded.lock().len();

    // Cancel on the Online ID page and on the confirm page.
    f.user_with_email(ola);
    f.plugin.wizard_open_for(Mode::ChangeUser).unwrap();
    f.act(Action::Cancel).unwrap();
    assert_eq!(f.settled()["cancelled"], true);
    f.plugin.wizard_close().unwrap();
    let page = f.open_and_log_in(Mode::ChangeUser, ola, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    f.act(Action::Cancel).unwrap();
    let page = f.settled();
    assert!(page["text"]
        .as_str()
        .unwrap()
        .contains("Nothing was changed"));
    f.plugin.wizard_close().unwrap();

    // A wrong password: at the field.
    let page = f.open_and_log_in(Mode::ChangeUser, ola, "not-the-password");
    assert_eq!(page["page"], "online_id", "{page}");
    assert!(page["fields"][1]["error"].is_string(), "{page}");
    assert!(!page.to_string().contains("not-the-password"));
    f.plugin.wizard_close().unwrap();

    // The person who is Connected by already: refused politely.
    f.user_with_email(kari);
    let page = f.open_and_log_in(Mode::ChangeUser, kari, TEST_PASSWORD);
    assert_eq!(page["page"], "online_id", "{page}");
    let error = page["error"].as_str().unwrap();
    assert!(error.contains("Connected by already"), "{page}");
    assert_eq!(page["error_code"], OD_RESULT_BAD_STATE);
    f.plugin.wizard_close().unwrap();

    assert_eq!(f.online_company(kari)["connected_by"]["email"], kari);
    assert!(f.companies_of(ola).is_empty());
    assert_eq!(f.host.recorded.lock().len(), recorded);
    assert_eq!(f.connection(), before);
    assert_eq!(f.plugin.sync_status().state, SyncState::Running);
}

#[test]
fn change_user_opens_only_for_a_user_with_an_employee_e_mail_on_the_sync_computer() {
    let f = fixture("L-CHANGE-OPEN");
    let refused = f.plugin.wizard_open_for(Mode::ChangeUser).unwrap_err();
    assert!(
        refused.message.contains("not connected"),
        "{}",
        refused.message
    );
    let kari = "kari@example.com";
    f.server().create_online_id(kari, TEST_PASSWORD);
    f.connect(kari);
    f.host.set(
        "user.current",
        json!({"username": "ola", "is_super_user": true, "employee": {"id": "2", "name": "Ola", "email": null}}),
    );
    let refused = f.plugin.wizard_open_for(Mode::ChangeUser).unwrap_err();
    assert_eq!(refused.code, OD_RESULT_BAD_STATE);
    assert!(refused.message.contains("employee"), "{}", refused.message);
    f.host.set(
        "user.current",
        json!({"username": "ola", "is_super_user": false, "employee": {"id": "2", "name": "Ola", "email": "ola@example.com"}}),
    );
    assert!(f.plugin.wizard_open_for(Mode::ChangeUser).is_err());
    f.user_with_email("ola@example.com");
    f.host.set("host.info", json!({"host_name": "t", "host_version": "1", "evaluation_installation": false, "computer": {"id": "pc-2", "name": "Lager-PC"}}));
    let refused = f.plugin.wizard_open_for(Mode::ChangeUser).unwrap_err();
    assert!(
        refused.message.contains("sync computer"),
        "{}",
        refused.message
    );
}

// --- Sync computer ---------------------------------------------------------------------

impl Fixture {
    /// The same installation on another computer: the same company
    /// database and system database, an add-on folder of its own.
    fn another_computer(&self, id: &str, name: &str) -> Fixture {
        let host = WizardHost::sharing(&self.host, json!({ "id": id, "name": name }));
        self.plugin_on(host, tempfile::tempdir().unwrap())
    }

    /// This computer again with a new plugin instance (the program
    /// restarted), on `folder`.
    fn plugin_on(&self, host: Arc<WizardHost>, folder: tempfile::TempDir) -> Fixture {
        let plugin = Plugin::new(
            Host::new(host.clone()),
            Config {
                data_dir: Some(folder.path().to_path_buf()),
                service: ServiceUrl::parse(&self.url).unwrap(),
                log: LogConfig {
                    host: None,
                    trace_file: None,
                },
            },
        );
        Fixture {
            server: None,
            url: self.url.clone(),
            folder,
            host,
            plugin,
        }
    }

    fn online_counts(&self, email: &str) -> Vec<(String, u64)> {
        let server = self.server();
        let session = server.log_in(email, TEST_PASSWORD);
        let company = self.companies_of(email)[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ["contacts", "contact_persons", "employees"]
            .iter()
            .map(|entity| {
                let answer = server
                    .get(&format!(
                        "/api/v1/companies/{company}/records/{entity}?limit=1000"
                    ))
                    .bearer(&session.token)
                    .send();
                let live = answer.json()["records"].as_array().map_or(0, Vec::len);
                (entity.to_string(), live as u64)
            })
            .collect()
    }
}

fn some_company_data(program: &Program, contacts: usize) {
    let seller = program
        .log
        .create("employees", json!({"name": "Kari Nordmann"}));
    for i in 0..contacts {
        let id = program.log.create(
            "contacts",
            json!({"number": null, "name": format!("Kunde {i}"), "city": "Oslo", "salesperson_id": seller}),
        );
        program.log.create(
            "contact_persons",
            json!({"contact_id": id, "name": format!("Person {i}")}),
        );
    }
}

#[test]
fn sync_computer_moves_synchronisation_here_without_sending_anything_twice() {
    let a = fixture("L-SYNC-COMPUTER");
    let email = "kari@example.com";
    a.server().create_online_id(email, TEST_PASSWORD);
    some_company_data(&a.host.program, 4);
    a.connect(email);
    let before = a.online_counts(email);
    assert_eq!(before[0], ("contacts".to_owned(), 4));

    let b = a.another_computer("pc-2", "Lager-PC");
    // Connect is not the way on B: the company is connected already.
    let refused = b.plugin.wizard_open().unwrap_err();
    assert!(
        refused.message.contains("already connected") && refused.message.contains("Kontor-PC"),
        "{}",
        refused.message
    );
    assert!(
        refused.message.contains("Sync computer"),
        "{}",
        refused.message
    );
    // Nor on A, which is the sync computer already.
    let refused = a.plugin.wizard_open_for(Mode::SyncComputer).unwrap_err();
    assert!(refused.message.contains("already"), "{}", refused.message);

    let page = b.open_and_log_in(Mode::SyncComputer, email, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    let text = page["text"].as_str().unwrap();
    assert!(
        text.contains("Lager-PC") && text.contains("Kontor-PC"),
        "{text}"
    );
    // Kontor-PC holds the system database: recommended (PRODUCT.md §4).
    assert!(
        text.contains("The computer that holds the system database, Kontor-PC, is the recommended"),
        "{text}"
    );
    let field = |name: &str| {
        page["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == name)
            .map(|f| f["value"].clone())
    };
    assert_eq!(
        field("sync_computer_now"),
        Some(json!("Kontor-PC")),
        "{page}"
    );
    assert_eq!(
        field("sync_computer_new"),
        Some(json!("Lager-PC")),
        "{page}"
    );
    let done = b.finish();
    assert_eq!(done["done"], true, "{done}");
    b.plugin.wizard_close().unwrap();
    b.running();
    assert_eq!(b.connection()["computer_id"], "pc-2");
    let noted = b.host.noted.lock().clone().unwrap();
    assert_eq!(noted["computer_id"], "pc-2");
    assert_eq!(noted["connected_by"], email);

    // A stops at its next write; B carries on.
    let seller = a
        .host
        .program
        .log
        .rows("contacts")
        .into_keys()
        .next()
        .unwrap();
    a.host
        .program
        .log
        .edit("contacts", seller, json!({"city": "Narvik"}));
    a.plugin.notify_sync();
    b.plugin.notify_sync();
    in_time("computer A to stop", || {
        let status = a.plugin.sync_status();
        status.state == SyncState::Failed
            && status
                .error
                .is_some_and(|e| e.message.contains("Another computer"))
    });
    b.eventually_same_on_both_sides();
    assert_eq!(a.online_counts(email), before, "nothing online twice");
    let history: Value = serde_json::from_str(&b.plugin.sync_history().unwrap()).unwrap();
    assert!(
        history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "takeover" && r["outcome"] == "finished"),
        "{history}"
    );
}

#[test]
fn a_sync_computer_that_lost_its_add_on_folder_takes_the_online_records_over() {
    let a = fixture("L-LOST-FOLDER");
    let email = "kari@example.com";
    a.server().create_online_id(email, TEST_PASSWORD);
    some_company_data(&a.host.program, 3);
    a.connect(email);
    let before = a.online_counts(email);
    // The program restarts on a new disk: the add-on's folder is empty.
    let a2 = a.plugin_on(a.host.clone(), tempfile::tempdir().unwrap());
    assert_eq!(a2.plugin.sync_status().state, SyncState::NotConnected);
    // Update connection needs a connection here; Sync computer does not.
    assert!(a2.plugin.wizard_open_for(Mode::UpdateConnection).is_err());
    assert!(a.plugin.shut_down());
    let page = a2.open_and_log_in(Mode::SyncComputer, email, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    assert_eq!(a2.finish()["done"], true);
    a2.plugin.wizard_close().unwrap();
    a2.running();
    a2.eventually_same_on_both_sides();
    let server_counts = {
        // `a` is gone with its server handle; a2 shares the service.
        let client =
            Client::new(ServiceUrl::parse(&a2.url).unwrap(), ClientConfig::default()).unwrap();
        let connection = crate::sync::connection::load(a2.folder.path())
            .unwrap()
            .unwrap();
        let device = DeviceSession::new(connection.credentials());
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(client.sync_status(&device))
            .unwrap()
            .entities
            .into_iter()
            .map(|e| (e.entity, e.records))
            .collect::<Vec<_>>()
    };
    let mut expected: Vec<(String, u64)> = before;
    expected.sort();
    let mut got = server_counts;
    got.sort();
    assert_eq!(got, expected, "nothing online twice");
}

/// Regression: two page texts had runs of spaces in the middle of a
/// sentence (a string continued on the next line without `\`).
#[test]
fn page_texts_have_no_runs_of_spaces() {
    let f = connected_by_kari("L-SPACES");
    let (email, ola) = (KARI, OLA);
    for mode in [Mode::UpdateConnection, Mode::Disconnect, Mode::ChangeUser] {
        let who = if mode == Mode::ChangeUser {
            f.user_with_email(ola);
            ola
        } else {
            email
        };
        let page = f.open_and_log_in(mode, who, TEST_PASSWORD);
        assert_eq!(page["page"], "confirm", "{page}");
        for text in [&page["text"], &page["title"]] {
            let text = text.as_str().unwrap_or_default();
            assert!(!text.contains("  "), "{}: {text:?}", mode.id());
        }
        f.act(Action::Cancel).unwrap();
        f.settled();
        f.plugin.wizard_close().unwrap();
    }
}

/// A backup put back while connected, noticed, then Update connection:
/// every row compared with the online copy (docs/SYNC_PROTOCOL.md §9.3).
#[test]
fn update_connection_after_a_restore_puts_the_rows_right_one_by_one() {
    let f = fixture("L-RESTORE-ROWS");
    let email = "kari@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    some_company_data(&f.host.program, 4);
    f.connect(email);
    let log = &f.host.program.log;
    let contacts: Vec<i64> = log.rows("contacts").into_keys().collect();
    let persons: Vec<i64> = log.rows("contact_persons").into_keys().collect();
    let backup = log.backup();

    // Synchronised after the backup: an edit, a new contact, a delete in
    // the program, an edit on the web.
    log.edit("contacts", contacts[0], json!({"city": "Bergen"}));
    let created = log.create(
        "contacts",
        json!({"number": null, "name": "Etter backup", "city": "Molde", "salesperson_id": null}),
    );
    log.delete("contact_persons", persons[3]);
    f.plugin.notify_sync();
    f.eventually_same_on_both_sides();
    let web_id = crate::sync::state::State::open(f.folder.path())
        .unwrap()
        .global_id("contacts", &contacts[1].to_string())
        .unwrap()
        .unwrap();
    let company = f.companies_of(email)[0]["id"].as_str().unwrap().to_owned();
    let session = f.server().log_in(email, TEST_PASSWORD);
    let answer = f
        .server()
        .patch(&format!(
            "/api/v1/companies/{company}/records/contacts/{web_id}"
        ))
        .bearer(&session.token)
        .json(&json!({"fields": {"name": "Kunde 1 (web)"}}))
        .send();
    assert_eq!(answer.status, 200, "{}", answer.text());
    in_time("the web edit in the program", || {
        log.row("contacts", contacts[1]).unwrap()["name"] == "Kunde 1 (web)"
    });

    // The backup is put back: noticed at the next look.
    log.restore(backup);
    f.plugin.notify_sync();
    in_time("the engine to notice the restore", || {
        let status = f.plugin.sync_status();
        status.state == SyncState::Failed
            && status
                .error
                .is_some_and(|e| e.code == OD_RESULT_HOST_RESTORED)
    });
    assert_eq!(log.row("contacts", contacts[0]).unwrap()["city"], "Oslo");
    assert!(log.row("contacts", created).is_none());
    // Work goes on in the program after it was noticed.
    log.edit("contacts", contacts[2], json!({"city": "Tromsø"}));

    let page = f.open_and_log_in(Mode::UpdateConnection, email, TEST_PASSWORD);
    assert_eq!(page["page"], "confirm", "{page}");
    let page = f.finish();
    assert_eq!(page["done"], true, "{page}");
    let text = page["text"].as_str().unwrap();
    assert!(text.contains("2 set back to the online values"), "{text}");
    assert!(text.contains("1 created again"), "{text}");
    assert!(text.contains("1 sent online"), "{text}");
    assert!(text.contains("1 changed in the program after"), "{text}");
    f.plugin.wizard_close().unwrap();
    f.running();
    f.eventually_same_on_both_sides();
    // The online state won for the rows the restore set back; the
    // program's edit after the detection went online; the lost contact is
    // back.
    assert_eq!(log.row("contacts", contacts[0]).unwrap()["city"], "Bergen");
    assert_eq!(
        log.row("contacts", contacts[1]).unwrap()["name"],
        "Kunde 1 (web)"
    );
    assert_eq!(log.row("contacts", contacts[2]).unwrap()["city"], "Tromsø");
    assert!(log
        .rows("contacts")
        .values()
        .any(|r| r["name"] == "Etter backup" && r["city"] == "Molde"));
    // Each difference is in the history, with the program's value.
    let history: Value = serde_json::from_str(&f.plugin.sync_history().unwrap()).unwrap();
    let restored: Vec<&Value> = history["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "restore_online_wins")
        .collect();
    assert!(
        restored.iter().any(|c| c["field"] == "city"
            && c["host_value"] == "Oslo"
            && c["online_value"] == "Bergen"),
        "{history:#}"
    );
    assert!(
        restored
            .iter()
            .any(|c| c["field"] == "name" && c["online_value"] == "Kunde 1 (web)"),
        "{history:#}"
    );
}

/// The service wants a recent log-in to register a computer: a person who
/// lingered on the pages after logging in is sent back to log in again,
/// and finishing then connects.
#[test]
fn a_log_in_grown_old_before_finish_is_asked_for_again() {
    let f = fixture("L-OLD-LOGIN");
    let email = "kari@example.com";
    f.server().create_online_id(email, TEST_PASSWORD);
    f.to_online_id();
    assert_eq!(f.log_in(email, TEST_PASSWORD)["page"], "company");
    f.to_finish("now", "");
    f.server().clock().advance(chrono::Duration::minutes(11));
    let page = f.finish();
    assert_eq!(page["page"], "online_id", "{page}");
    let error = page["error"].as_str().unwrap_or_default();
    assert!(error.contains("Log in again"), "{page}");
    assert_eq!(f.log_in(email, TEST_PASSWORD)["page"], "company");
    f.to_finish("now", "");
    assert_eq!(f.finish()["done"], true);
    f.plugin.wizard_close().unwrap();
    f.running();
}
