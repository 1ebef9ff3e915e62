//! The prerequisites for connecting a company (PRODUCT.md §2): one row per
//! criterion, checked afresh on every call except the online-service
//! reachability, which runs in the background and reports through an event.

use crate::events::{Event, EventKind, EventQueue};
use crate::host::{CompanyIdentity, CurrentUser, Host, HostError};
use crate::online::{self, ServiceUrl};
use crate::runtime::Runtime;
use od_licence::LicenceReport;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reachability result older than this is checked again.
pub(crate) const REACHABILITY_MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckState {
    Failed,
    Passed,
    Pending,
}

impl CheckState {
    fn from_passed(passed: bool) -> CheckState {
        if passed {
            CheckState::Passed
        } else {
            CheckState::Failed
        }
    }
}

/// One criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prerequisite {
    pub id: &'static str,
    pub title: &'static str,
    pub state: CheckState,
    /// Connect needs it; otherwise it is a warning (enforced when the first
    /// synchronisation starts).
    pub blocking: bool,
    pub detail: String,
    pub fix_location: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrerequisiteList {
    pub items: Vec<Prerequisite>,
}

impl PrerequisiteList {
    /// Connect may be enabled: every blocking criterion passed.
    pub fn can_connect(&self) -> bool {
        self.items
            .iter()
            .filter(|p| p.blocking)
            .all(|p| p.state == CheckState::Passed)
    }

    pub fn pending(&self) -> bool {
        self.items.iter().any(|p| p.state == CheckState::Pending)
    }
}

/// Where each criterion is fixed in the host.
mod fix {
    pub(crate) const LICENCE: &str = od_licence::REGISTRATION_PATH;
    pub(crate) const USERS: &str = "System → Users → (your user) → Super user";
    pub(crate) const EMPLOYEE: &str =
        "System → Users → (your user) → Employee, and Employees → (the employee) → E-mail";
    pub(crate) const REGISTRATION: &str = "View → Settings → Company → Company information";
    pub(crate) const SAMPLE: &str = "File → Open company (your own company database)";
    pub(crate) const EVALUATION: &str =
        "Help → About → Administer licence information (the full licence)";
    pub(crate) const OTHER_CONNECTED: &str =
        "The connected company: View → Settings → Company → Settings per module → Online Desktop → Disconnect";
    pub(crate) const NETWORK: &str =
        "This computer's internet connection, firewall and proxy settings";
    pub(crate) const SESSIONS: &str = "File → Users logged in, and Settings → API integrations";
}

/// The reachability probe's state, shared with its background task.
pub struct Reachability {
    service: ServiceUrl,
    state: Mutex<ProbeState>,
}

enum ProbeState {
    NotChecked,
    Checking,
    Done {
        at: Instant,
        /// The failure is the sentence the row shows.
        result: Result<(), String>,
    },
}

impl Reachability {
    pub fn new(service: ServiceUrl) -> Reachability {
        Reachability {
            service,
            state: Mutex::new(ProbeState::NotChecked),
        }
    }

    /// Starts a probe unless one runs or a fresh result is known (or
    /// `refresh` asks for a new one anyway). Never waits for the network.
    fn start_if_needed(
        self: &Arc<Self>,
        refresh: bool,
        runtime: &Runtime,
        events: &Arc<EventQueue>,
    ) {
        {
            let mut state = self.state.lock();
            let start = match &*state {
                ProbeState::NotChecked => true,
                ProbeState::Checking => false,
                ProbeState::Done { at, .. } => refresh || at.elapsed() > REACHABILITY_MAX_AGE,
            };
            if !start {
                return;
            }
            *state = ProbeState::Checking;
        }
        let this = Arc::clone(self);
        let queue = Arc::clone(events);
        let spawned = runtime.spawn(async move {
            let result = online::probe(&this.service).await;
            match &result {
                Ok(()) => tracing::info!("online service {} is reachable", this.service.as_str()),
                Err(why) => tracing::warn!("online service not reachable: {why}"),
            }
            *this.state.lock() = ProbeState::Done {
                at: Instant::now(),
                result,
            };
            queue.post(Event {
                kind: EventKind::PrerequisitesChanged,
                payload: None,
            });
        });
        if let Err(e) = spawned {
            *self.state.lock() = ProbeState::Done {
                at: Instant::now(),
                result: Err(format!("The add-on could not start its network check: {e}")),
            };
        }
    }

    fn row_state(&self) -> (CheckState, String) {
        match &*self.state.lock() {
            ProbeState::NotChecked | ProbeState::Checking => (
                CheckState::Pending,
                format!("Checking the connection to {} …", self.service.as_str()),
            ),
            ProbeState::Done { result: Ok(()), .. } => (
                CheckState::Passed,
                format!("The online service at {} answers.", self.service.as_str()),
            ),
            ProbeState::Done {
                result: Err(why), ..
            } => (CheckState::Failed, why.clone()),
        }
    }
}

/// Everything the check needs from the plugin.
pub struct Context<'a> {
    pub host: &'a Host,
    pub licence: &'a LicenceReport,
    pub reachability: &'a Arc<Reachability>,
    pub runtime: &'a Runtime,
    pub events: &'a Arc<EventQueue>,
}

/// Evaluates every criterion. Host data is read afresh, so fixing something
/// in the host and checking again shows the change at once.
pub fn check(ctx: &Context<'_>, refresh: bool) -> PrerequisiteList {
    ctx.reachability
        .start_if_needed(refresh, ctx.runtime, ctx.events);
    let (reach_state, reach_detail) = ctx.reachability.row_state();
    // Read once, used by several rows.
    let user = ctx.host.current_user();
    let company = ctx.host.company_identity();
    let items = vec![
        licence_row(ctx.licence),
        super_user_row(&user),
        employee_row(&user),
        registration_row(ctx.host),
        real_company_row(ctx.host, &company),
        other_connected_row(ctx.host, &company),
        Prerequisite {
            id: "service_reachable",
            title: "The online service can be reached from this computer",
            state: reach_state,
            blocking: true,
            detail: reach_detail,
            fix_location: fix::NETWORK,
        },
        sessions_row(ctx.host),
    ];
    PrerequisiteList { items }
}

fn row(
    id: &'static str,
    title: &'static str,
    fix_location: &'static str,
    outcome: Result<(bool, String), HostError>,
) -> Prerequisite {
    let (state, detail) = match outcome {
        Ok((passed, detail)) => (CheckState::from_passed(passed), detail),
        Err(error) => {
            tracing::warn!("prerequisite {id} could not be checked: {error}");
            (
                CheckState::Failed,
                format!("This could not be checked because {error}."),
            )
        }
    };
    Prerequisite {
        id,
        title,
        state,
        blocking: true,
        detail,
        fix_location,
    }
}

fn licence_row(report: &LicenceReport) -> Prerequisite {
    let detail = if report.ok {
        "The licence allows Online Desktop for this company.".to_owned()
    } else {
        licence_failure(report)
    };
    row(
        "licence",
        "The Online Desktop licence check passes",
        fix::LICENCE,
        Ok((report.ok, detail)),
    )
}

/// Why the licence check failed, in sentences. Without a licence the other
/// rules say nothing more, so only the missing licence is named.
fn licence_failure(report: &LicenceReport) -> String {
    let failed: Vec<&str> = report
        .rules
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.detail.as_str())
        .collect();
    let missing = report
        .rule(od_licence::RuleId::LicencePresent)
        .is_some_and(|r| !r.passed);
    let reasons = if missing {
        &failed[..1.min(failed.len())]
    } else {
        &failed[..]
    };
    let mut text = String::from("The licence check failed:");
    for reason in reasons {
        text.push(' ');
        text.push_str(reason.trim_end_matches('.'));
        text.push('.');
    }
    text
}

fn super_user_row(user: &Result<CurrentUser, HostError>) -> Prerequisite {
    let outcome = user.clone().map(|user| {
        if user.is_super_user {
            (true, format!("{} is a super user.", user.username))
        } else {
            (
                false,
                format!(
                    "{} is not a super user. Only a super user can connect the company.",
                    user.username
                ),
            )
        }
    });
    row(
        "super_user",
        "You are logged in as a super user",
        fix::USERS,
        outcome,
    )
}

fn employee_row(user: &Result<CurrentUser, HostError>) -> Prerequisite {
    let outcome = user.clone().map(|user| match user.employee {
        None => (
            false,
            format!(
                "{} is not linked to an employee. Link the user to an employee.",
                user.username
            ),
        ),
        Some(employee) => match employee.email.as_deref().map(str::trim) {
            Some(email) if !email.is_empty() => (
                true,
                format!(
                    "Linked to {} ({email}); this address is suggested as the Online ID.",
                    employee.name
                ),
            ),
            _ => (
                false,
                format!(
                    "The employee {} has no e-mail address. Enter one on the employee.",
                    employee.name
                ),
            ),
        },
    });
    row(
        "employee_email",
        "Your user is linked to an employee with an e-mail address",
        fix::EMPLOYEE,
        outcome,
    )
}

fn registration_row(host: &Host) -> Prerequisite {
    let outcome = host.company_registration().map(|r| {
        let fields = [
            ("company name", &r.name),
            ("street", &r.street),
            ("postcode", &r.postcode),
            ("city", &r.city),
            ("country", &r.country),
            ("phone", &r.phone),
            ("e-mail", &r.email),
            ("organisation number", &r.organisation_number),
        ];
        let missing: Vec<&str> = fields
            .iter()
            .filter(|(_, value)| value.as_deref().is_none_or(|v| v.trim().is_empty()))
            .map(|(name, _)| *name)
            .collect();
        if missing.is_empty() {
            (
                true,
                "Name, address, phone, e-mail and organisation number are filled in.".to_owned(),
            )
        } else {
            (false, format!("Missing: {}.", missing.join(", ")))
        }
    });
    row(
        "company_registration",
        "The company's registration data is complete",
        fix::REGISTRATION,
        outcome,
    )
}

fn real_company_row(host: &Host, company: &Result<CompanyIdentity, HostError>) -> Prerequisite {
    let title =
        "This is a real company database, not the sample database or an evaluation installation";
    let checked = company
        .clone()
        .and_then(|company| Ok((company, host.host_info()?)));
    let (outcome, fix_location) = match checked {
        Ok((company, _)) if company.is_sample => (
            Ok((false, "This is the sample database, which cannot be connected. Open your own company database.".to_owned())),
            fix::SAMPLE,
        ),
        Ok((_, info)) if info.evaluation_installation => (
            Ok((
                false,
                "This is an evaluation installation. Online Desktop needs a full installation: register the full \
                 licence you bought."
                    .to_owned(),
            )),
            fix::EVALUATION,
        ),
        Ok((company, _)) => (Ok((true, format!("{} is a company database of a full installation.", company.name))), fix::SAMPLE),
        Err(error) => (Err(error), fix::SAMPLE),
    };
    row("real_company", title, fix_location, outcome)
}

fn other_connected_row(host: &Host, company: &Result<CompanyIdentity, HostError>) -> Prerequisite {
    let outcome = company.clone().and_then(|company| {
        let others: Vec<String> = host
            .companies()?
            .companies
            .into_iter()
            .filter(|c| c.online_desktop_connected && c.id != company.id)
            .map(|c| c.name)
            .collect();
        Ok(if others.is_empty() {
            (
                true,
                "No other company of this installation is connected.".to_owned(),
            )
        } else {
            (
                false,
                format!(
                    "{} is already connected. Only one company per installation can be connected.",
                    others.join(", ")
                ),
            )
        })
    });
    row(
        "no_other_company_connected",
        "No other company database of this installation is connected",
        fix::OTHER_CONNECTED,
        outcome,
    )
}

fn sessions_row(host: &Host) -> Prerequisite {
    let outcome = host.active_sessions().map(|sessions| {
        let mut who: Vec<String> = sessions
            .users
            .iter()
            .map(|u| format!("user {} on {}", u.username, u.computer))
            .collect();
        who.extend(
            sessions
                .integrations
                .iter()
                .map(|i| format!("API integration {}", i.name)),
        );
        if who.is_empty() {
            (
                true,
                "Nobody else is logged in to this company database.".to_owned(),
            )
        } else {
            (
                false,
                format!(
                    "Logged in now: {}. They must log out before the first synchronisation starts.",
                    who.join(", ")
                ),
            )
        }
    });
    let mut prerequisite = row(
        "no_other_sessions",
        "No other users or API integrations are logged in (needed when the first synchronisation starts)",
        fix::SESSIONS,
        outcome,
    );
    prerequisite.blocking = false;
    prerequisite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::testing::FakeHost;
    use serde_json::json;

    fn complete_host() -> Arc<FakeHost> {
        let fake = Arc::new(FakeHost::default());
        fake.set("user.current", json!({"username": "admin", "is_super_user": true, "employee": {"id": "1", "name": "Kari", "email": "kari@example.com"}}));
        fake.set("company.registration", json!({"name": "Demo AS", "street": "Storgata 1", "postcode": "0155", "city": "Oslo", "country": "Norway", "phone": "+47 1", "email": "post@demo.example", "organisation_number": "999 888 777"}));
        fake.set(
            "company.identity",
            json!({"id": "c1", "name": "Demo AS", "is_sample": false}),
        );
        fake.set("host.info", json!({"host_name": "t", "host_version": "1", "evaluation_installation": false, "computer": {"id": "pc1", "name": "PC1"}}));
        fake.set("system.companies", json!({"companies": [{"id": "c1", "name": "Demo AS", "is_sample": false, "online_desktop_connected": false}]}));
        fake.set("sessions.active", json!({"users": [], "integrations": []}));
        fake
    }

    struct Fixture {
        host: Host,
        licence: LicenceReport,
        reachability: Arc<Reachability>,
        runtime: Runtime,
        events: Arc<EventQueue>,
    }

    impl Fixture {
        fn new(fake: Arc<FakeHost>, service: &str) -> Fixture {
            let host = Host::new(fake);
            let licence = crate::licence::check_with_host(
                &host,
                chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap(),
            );
            Fixture {
                events: Arc::new(EventQueue::new(host.clone())),
                host,
                licence,
                reachability: Arc::new(Reachability::new(ServiceUrl::parse(service).unwrap())),
                runtime: Runtime::new(tracing::Dispatch::none()),
            }
        }

        fn check(&self, refresh: bool) -> PrerequisiteList {
            check(
                &Context {
                    host: &self.host,
                    licence: &self.licence,
                    reachability: &self.reachability,
                    runtime: &self.runtime,
                    events: &self.events,
                },
                refresh,
            )
        }

        fn row(&self, id: &str) -> Prerequisite {
            self.check(false)
                .items
                .into_iter()
                .find(|p| p.id == id)
                .unwrap()
        }
    }

    #[test]
    fn complete_host_data_passes_the_local_rows() {
        let f = Fixture::new(complete_host(), "http://127.0.0.1:9");
        let list = f.check(false);
        assert_eq!(list.items.len(), 8);
        for id in [
            "super_user",
            "employee_email",
            "company_registration",
            "real_company",
            "no_other_company_connected",
            "no_other_sessions",
        ] {
            let row = list.items.iter().find(|p| p.id == id).unwrap();
            assert_eq!(row.state, CheckState::Passed, "{row:?}");
        }
        assert_eq!(
            list.items[0].state,
            CheckState::Failed,
            "no licence registered"
        );
        assert!(!list.can_connect());
    }

    #[test]
    fn each_local_failure_is_explained() {
        let fake = complete_host();
        fake.set(
            "user.current",
            json!({"username": "per", "is_super_user": false, "employee": null}),
        );
        fake.set("company.registration", json!({"name": "Demo AS", "street": " ", "postcode": "0155", "city": "Oslo", "country": null, "phone": "1", "email": "e", "organisation_number": "1"}));
        fake.set(
            "company.identity",
            json!({"id": "c1", "name": "Sample", "is_sample": true}),
        );
        fake.set("system.companies", json!({"companies": [{"id": "c2", "name": "Other AS", "is_sample": false, "online_desktop_connected": true}]}));
        fake.set("sessions.active", json!({"users": [{"username": "ola", "computer": "PC2"}], "integrations": [{"name": "Webshop"}]}));
        let f = Fixture::new(fake, "http://127.0.0.1:9");
        assert!(f
            .row("super_user")
            .detail
            .contains("per is not a super user"));
        assert!(f
            .row("employee_email")
            .detail
            .contains("not linked to an employee"));
        assert_eq!(
            f.row("company_registration").detail,
            "Missing: street, country."
        );
        assert!(f.row("real_company").detail.contains("sample database"));
        assert!(f
            .row("no_other_company_connected")
            .detail
            .contains("Other AS is already connected"));
        let sessions = f.row("no_other_sessions");
        assert_eq!(sessions.state, CheckState::Failed);
        assert!(!sessions.blocking);
        assert!(
            sessions
                .detail
                .contains("user ola on PC2, API integration Webshop"),
            "{}",
            sessions.detail
        );
    }

    /// Regression: without a licence the row listed every rule as
    /// "title: no licence", run together.
    #[test]
    fn without_a_licence_the_row_names_only_the_missing_licence() {
        let fake = complete_host();
        fake.set("licence.documents", json!({"documents": []}));
        fake.set("system.bindings", json!({"bindings": []}));
        let f = Fixture::new(fake, "http://127.0.0.1:9");
        let row = f.row("licence");
        assert_eq!(row.state, CheckState::Failed);
        assert!(
            row.detail.starts_with("The licence check failed: No "),
            "{}",
            row.detail
        );
        assert!(!row.detail.contains("no licence"), "{}", row.detail);
    }

    /// Regression: an evaluation installation pointed at "File → Open
    /// company", which cannot fix it.
    #[test]
    fn an_evaluation_installation_points_at_the_licence() {
        let fake = complete_host();
        fake.set(
            "host.info",
            json!({"host_name": "t", "host_version": "1", "evaluation_installation": true, "computer": {"id": "pc1", "name": "PC1"}}),
        );
        let row = Fixture::new(fake, "http://127.0.0.1:9").row("real_company");
        assert_eq!(row.state, CheckState::Failed);
        assert_eq!(row.fix_location, fix::EVALUATION);
        assert!(
            row.detail.contains("evaluation installation"),
            "{}",
            row.detail
        );
    }

    /// Regression: the user and the company identity were read from the
    /// host once per row that needed them (five calls instead of two).
    #[test]
    fn each_host_method_is_asked_once_per_check() {
        let fake = complete_host();
        let f = Fixture::new(fake.clone(), "http://127.0.0.1:9");
        fake.asked.lock().clear();
        f.check(false);
        let asked = fake.asked.lock().clone();
        for method in [
            "user.current",
            "company.identity",
            "company.registration",
            "host.info",
        ] {
            assert_eq!(
                asked.iter().filter(|m| *m == method).count(),
                1,
                "{method}: {asked:?}"
            );
        }
    }

    #[test]
    fn a_failing_host_callback_fails_only_its_rows() {
        let fake = complete_host();
        fake.fail("user.current", "no user is logged in");
        let f = Fixture::new(fake, "http://127.0.0.1:9");
        let row = f.row("super_user");
        assert_eq!(row.state, CheckState::Failed);
        assert!(
            row.detail.contains("no user is logged in"),
            "{}",
            row.detail
        );
        assert_eq!(f.row("company_registration").state, CheckState::Passed);
    }

    #[test]
    fn reachability_is_pending_then_reported_through_an_event() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let fake = complete_host();
        let f = Fixture::new(fake.clone(), &format!("http://127.0.0.1:{port}"));
        let started = Instant::now();
        assert_eq!(f.row("service_reachable").state, CheckState::Pending);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the check must not wait for the network"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while fake.pump_requests() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(f.events.drain().len(), 1);
        let row = f.row("service_reachable");
        assert_eq!(row.state, CheckState::Failed);
        assert!(
            row.detail.contains("no connection could be made"),
            "{}",
            row.detail
        );
    }
}
