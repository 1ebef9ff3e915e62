//! The host's answers to the plugin's data channel.
//!
//! The plugin asks the host for data with a method name and JSON
//! parameters; [`handle`] answers from the installation on disk, as seen by
//! one user logged in to one company database on one computer
//! ([`HostContext`]). The JSON shapes are the contract in
//! docs/HOST_CHANNEL.md: the plugin parses them, so a field is never renamed
//! or removed.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::db::company::{CompanyDb, RegistrationField};
use crate::db::system::{Company, OnlineConnection};
use crate::error::HostError;
use crate::installation::Installation;
use crate::sync::{self, data};

/// The host's name in `host.info`.
pub const HOST_NAME: &str = "Host Simulator";

/// Every method [`handle`] answers.
pub const METHODS: [&str; 23] = [
    "host.info",
    "system.identity",
    "connection.record",
    "connection.get",
    "connection.forget",
    "licence.documents",
    "system.bindings",
    "system.companies",
    "system.computers",
    "company.identity",
    "company.registration",
    "user.current",
    "sessions.active",
    "schema.entities",
    "changes.position",
    "changes.read",
    "records.count",
    "records.page",
    "records.apply",
    "sync.block",
    "sync.unblock",
    "sync.marker.get",
    "sync.marker.set",
];

/// Entries or rows a read returns when the parameters do not say.
pub const DEFAULT_BATCH: u64 = 1_000;

/// Who is asking: the running host's data directory, open company database,
/// logged-in user and computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostContext {
    pub data_dir: PathBuf,
    /// The id of the company database the host has open.
    pub company_id: String,
    pub username: String,
    /// The id of the computer the host runs on.
    pub computer_id: String,
}

/// Why a channel request has no answer.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The plugin asked for something the host does not offer.
    #[error("unknown method \u{201c}{0}\u{201d}")]
    UnknownMethod(String),

    /// The context names a company, user or computer that does not exist.
    #[error("{0}")]
    ContextNotFound(String),

    /// The parameters do not fit the method.
    #[error("{0}")]
    InvalidParams(String),

    /// The installation could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Answers one data-channel request. Methods without parameters ignore
/// the ones given; `null` counts as `{}`.
pub fn handle(context: &HostContext, method: &str, params: &Value) -> Result<Value, ChannelError> {
    if !METHODS.contains(&method) {
        return Err(ChannelError::UnknownMethod(method.to_owned()));
    }
    if method == "schema.entities" {
        return Ok(sync::schema::schema_json());
    }
    let installation = Installation::open(&context.data_dir)?;
    if let Some(answer) = sync_method(&installation, context, method, params)? {
        return Ok(answer);
    }
    let system = installation.system();
    match method {
        "host.info" => {
            let computer = system
                .computers()?
                .into_iter()
                .find(|c| c.id == context.computer_id)
                .ok_or_else(|| {
                    ChannelError::ContextNotFound(format!(
                        "no installed computer has the id {}",
                        context.computer_id
                    ))
                })?;
            Ok(json!({
                "host_name": HOST_NAME,
                "host_version": env!("CARGO_PKG_VERSION"),
                "evaluation_installation": system.evaluation_installation()?,
                "computer": {
                    "id": computer.id,
                    "name": computer.name,
                    "holds_system_database": computer.holds_system_database,
                },
            }))
        }
        "licence.documents" => {
            let documents: Vec<String> = system
                .licence_documents()?
                .into_iter()
                .map(|d| d.document)
                .collect();
            Ok(json!({ "documents": documents }))
        }
        "system.identity" => Ok(json!({ "id": system.database_id()? })),
        "connection.record" => {
            let p = Params { method, params };
            let text = |name: &str| p.text(name);
            let company_id = text("company_id")?;
            let computer_id = text("computer_id")?;
            let connection = OnlineConnection {
                online_company_id: text("online_company_id")?,
                service_url: text("service_url")?,
                connected_by: text("connected_by")?,
                connected_at: text("connected_at")?,
                company_id,
                computer_id: Some(computer_id.clone()),
            };
            // Part of the record; the host keeps no column for it (the
            // company's binding names the licence already).
            text("licence_number")?;
            let company = current_company(&installation, context)?;
            if connection.company_id != company.id {
                return Err(p.invalid(&format!(
                    "the company {} is not the company database the program has open",
                    connection.company_id
                )));
            }
            if !system.computers()?.iter().any(|c| c.id == computer_id) {
                return Err(p.invalid(&format!("no installed computer has the id {computer_id}")));
            }
            system.record_online_connection(&connection)?;
            Ok(json!({}))
        }
        "connection.get" => {
            let company = current_company(&installation, context)?;
            Ok(match system.online_connection(&company.id)? {
                None => json!({ "connection": null }),
                Some(c) => json!({ "connection": {
                    "company_id": c.company_id,
                    "online_company_id": c.online_company_id,
                    "service_url": c.service_url,
                    "connected_by": c.connected_by,
                    "connected_at": c.connected_at,
                    "computer_id": c.computer_id,
                }}),
            })
        }
        "connection.forget" => {
            let p = Params { method, params };
            let text = |name: &str| p.text(name);
            let company_id = text("company_id")?;
            let online_company_id = text("online_company_id")?;
            let company = current_company(&installation, context)?;
            if company_id != company.id {
                return Err(p.invalid(&format!(
                    "the company {company_id} is not the company database the program has open"
                )));
            }
            if let Some(recorded) = system.online_connection(&company_id)? {
                if recorded.online_company_id != online_company_id {
                    return Err(p.invalid(&format!(
                        "the company database is connected to the online company {}, not {online_company_id}",
                        recorded.online_company_id
                    )));
                }
            }
            system.forget_online_connection(&company_id)?;
            Ok(json!({}))
        }
        "system.bindings" => {
            let bindings: Vec<Value> = system
                .bindings()?
                .into_iter()
                .map(|b| {
                    json!({
                        "add_on": b.add_on,
                        "licence_number": b.licence_number,
                        "company_id": b.company_id,
                    })
                })
                .collect();
            Ok(json!({ "bindings": bindings }))
        }
        "system.companies" => {
            let companies: Vec<Value> = system
                .companies()?
                .into_iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "name": c.name,
                        "is_sample": c.is_sample,
                        "online_desktop_connected": c.online_desktop_connected,
                    })
                })
                .collect();
            Ok(json!({ "companies": companies }))
        }
        "system.computers" => {
            let computers: Vec<Value> = system
                .computers()?
                .into_iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "name": c.name,
                        "holds_system_database": c.holds_system_database,
                    })
                })
                .collect();
            Ok(json!({ "computers": computers }))
        }
        "company.identity" => {
            let company = current_company(&installation, context)?;
            // The company database's own record is the truth about it; the
            // name is the one the host's company list shows.
            let info = installation.open_company_db(&company)?.info()?;
            Ok(json!({
                "id": info.id,
                "name": company.name,
                "is_sample": info.is_sample,
            }))
        }
        "company.registration" => {
            let company = current_company(&installation, context)?;
            let info = installation.open_company_db(&company)?.info()?;
            let fields: serde_json::Map<String, Value> = RegistrationField::ALL
                .into_iter()
                .map(|field| {
                    (
                        field.column().to_owned(),
                        json!(info.registration.get(field)),
                    )
                })
                .collect();
            Ok(Value::Object(fields))
        }
        "user.current" => {
            let user = system.user(&context.username).map_err(|_| {
                ChannelError::ContextNotFound(format!("no user is called {}", context.username))
            })?;
            let employee = match &user.employee {
                None => Value::Null,
                Some(link) => employee_json(&installation, &link.company_id, link.employee_id)?,
            };
            Ok(json!({
                "username": user.username,
                "is_super_user": user.is_super_user,
                "employee": employee,
            }))
        }
        "sessions.active" => {
            let company = current_company(&installation, context)?;
            let users: Vec<Value> = system
                .sessions()?
                .into_iter()
                .filter(|s| s.company_id == company.id)
                .filter(|s| {
                    !(s.username.eq_ignore_ascii_case(&context.username)
                        && s.computer_id == context.computer_id)
                })
                .map(|s| json!({ "username": s.username, "computer": s.computer_name }))
                .collect();
            let integrations: Vec<Value> = system
                .integrations()?
                .into_iter()
                .filter(|i| i.company_id == company.id && i.logged_in)
                .map(|i| json!({ "name": i.name }))
                .collect();
            Ok(json!({ "users": users, "integrations": integrations }))
        }
        _ => Err(ChannelError::UnknownMethod(method.to_owned())),
    }
}

/// The synchronisation methods (docs/SYNC_PROTOCOL.md §2); `None` for
/// the others.
fn sync_method(
    installation: &Installation,
    context: &HostContext,
    method: &str,
    params: &Value,
) -> Result<Option<Value>, ChannelError> {
    let params = Params { method, params };
    let answer = match method {
        "changes.position" => {
            let db = company_db(installation, context)?;
            json!({ "seq": data::position(db.connection())? })
        }
        "changes.read" => {
            let after = params.integer("after")?.unwrap_or(0);
            let limit = params.limit()?;
            let db = company_db(installation, context)?;
            let entries = data::changes(db.connection(), after, limit)?;
            let last_seq = entries.last().map_or(after, |e| e.seq);
            let changes: Vec<Value> = entries.iter().map(data::ChangeEntry::to_json).collect();
            json!({ "changes": changes, "last_seq": last_seq })
        }
        "records.count" => {
            let entity = params.entity()?;
            let db = company_db(installation, context)?;
            json!({ "count": data::count(db.connection(), entity)? })
        }
        "records.page" => {
            let entity = params.entity()?;
            let after = params.integer("after_local_id")?;
            let limit = params.limit()?;
            let db = company_db(installation, context)?;
            let (records, done) = data::page_remembered(db.connection(), entity, after, limit)?;
            let records: Vec<Value> = records.iter().map(data::PageRow::to_json).collect();
            json!({ "records": records, "done": done })
        }
        "records.apply" => {
            let list = params
                .get("changes")
                .and_then(Value::as_array)
                .ok_or_else(|| params.invalid("\u{201c}changes\u{201d} must be a list"))?;
            let changes = list
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    data::Guarded::from_json(c)
                        .map_err(|m| params.invalid(&format!("change {}: {m}", i + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let refusal = match params.get("per_change") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => data::Refusal::WholeBatch,
                Some(Value::Bool(true)) => data::Refusal::PerChange,
                Some(_) => {
                    return Err(params.invalid("\u{201c}per_change\u{201d} must be true or false"))
                }
            };
            let mut db = company_db(installation, context)?;
            let outcomes =
                data::apply_guarded(db.connection_mut(), data::Writer::Online, &changes, refusal)?;
            let results: Vec<Value> = outcomes.iter().map(data::Outcome::to_json).collect();
            json!({ "results": results })
        }
        "sync.block" => {
            let reason = params
                .get("reason")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .ok_or_else(|| params.invalid("\u{201c}reason\u{201d} must be a non-empty text"))?;
            let company = current_company(installation, context)?;
            let block = installation.system().block_company(&company.id, reason)?;
            json!({ "blocked": true, "reason": block.reason, "blocked_at": block.blocked_at })
        }
        "sync.unblock" => {
            let company = current_company(installation, context)?;
            installation.system().unblock_company(&company.id)?;
            json!({ "blocked": false })
        }
        "sync.marker.get" => {
            let db = company_db(installation, context)?;
            sync::marker::get(db.connection())?.to_json()
        }
        "sync.marker.set" => {
            let generation = params
                .get("generation")
                .and_then(Value::as_str)
                .ok_or_else(|| params.invalid("\u{201c}generation\u{201d} must be a text"))?;
            sync::marker::check_generation(generation).map_err(|m| params.invalid(&m))?;
            let mut db = company_db(installation, context)?;
            sync::marker::set(db.connection_mut(), generation)?.to_json()
        }
        _ => return Ok(None),
    };
    Ok(Some(answer))
}

/// A method's parameters, with messages that name the method.
struct Params<'a> {
    method: &'a str,
    params: &'a Value,
}

impl Params<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }

    fn invalid(&self, message: &str) -> ChannelError {
        ChannelError::InvalidParams(format!("{}: {message}", self.method))
    }

    /// A required, non-empty string (trimmed).
    fn text(&self, name: &str) -> Result<String, ChannelError> {
        self.get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                self.invalid(&format!(
                    "\u{201c}{name}\u{201d} must be a non-empty string"
                ))
            })
    }

    /// An optional integer (absent or null is `None`).
    fn integer(&self, name: &str) -> Result<Option<i64>, ChannelError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.invalid(&format!("\u{201c}{name}\u{201d} must be an integer"))),
        }
    }

    /// `limit`: default [`DEFAULT_BATCH`], at most [`data::MAX_BATCH`].
    fn limit(&self) -> Result<u64, ChannelError> {
        match self.integer("limit")? {
            None => Ok(DEFAULT_BATCH),
            Some(n) if n >= 1 => Ok((n as u64).min(data::MAX_BATCH)),
            Some(_) => Err(self.invalid("\u{201c}limit\u{201d} must be at least 1")),
        }
    }

    fn entity(&self) -> Result<&'static sync::schema::Entity, ChannelError> {
        let name = self
            .get("entity")
            .and_then(Value::as_str)
            .ok_or_else(|| self.invalid("\u{201c}entity\u{201d} must be a string"))?;
        sync::schema::entity(name).ok_or_else(|| {
            self.invalid(&format!(
                "there is no entity \u{201c}{name}\u{201d} (entities: {})",
                sync::schema::entity_names()
            ))
        })
    }
}

fn company_db(
    installation: &Installation,
    context: &HostContext,
) -> Result<CompanyDb, ChannelError> {
    let company = current_company(installation, context)?;
    Ok(installation.open_company_db(&company)?)
}

fn current_company(
    installation: &Installation,
    context: &HostContext,
) -> Result<Company, ChannelError> {
    installation
        .system()
        .company(&context.company_id)?
        .ok_or_else(|| {
            ChannelError::ContextNotFound(format!(
                "no company database has the id {}",
                context.company_id
            ))
        })
}

/// The linked employee, or `null` when the link points at an employee or
/// company that no longer exists (the host shows such a user as unlinked).
fn employee_json(
    installation: &Installation,
    company_id: &str,
    employee_id: i64,
) -> Result<Value, ChannelError> {
    let Some(company) = installation.system().company(company_id)? else {
        return Ok(Value::Null);
    };
    let employee = installation
        .open_company_db(&company)?
        .employee(employee_id)?;
    Ok(match employee {
        None => Value::Null,
        Some(employee) => json!({
            "id": employee.id.to_string(),
            "name": employee.full_name(),
            "email": employee.email,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::company::RegistrationField;
    use crate::db::system::EmployeeLink;
    use crate::demo::{self, InitOptions};
    use crate::licensing;
    use chrono::NaiveDate;

    /// A demo installation created by `init` in a temporary folder.
    struct Fixture {
        dir: tempfile::TempDir,
        installation: Installation,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("temporary folder");
            let options = InitOptions {
                records: 20,
                seed: 7,
                force: false,
                as_of: NaiveDate::from_ymd_opt(2026, 3, 31).expect("date"),
            };
            let (installation, _) = demo::init(dir.path(), &options).expect("init");
            Fixture { dir, installation }
        }

        fn company(&self, name: &str) -> Company {
            self.installation.find_company(name).expect("company")
        }

        fn context(&self, company: &str, username: &str, computer: &str) -> HostContext {
            HostContext {
                data_dir: self.dir.path().to_path_buf(),
                company_id: self.company(company).id,
                username: username.into(),
                computer_id: self
                    .installation
                    .find_computer(computer)
                    .expect("computer")
                    .id,
            }
        }

        /// admin on the server, in the demo company.
        fn admin(&self) -> HostContext {
            self.context(demo::DEMO_COMPANY, "admin", demo::SERVER_COMPUTER)
        }

        fn ask(&self, context: &HostContext, method: &str) -> Value {
            handle(context, method, &json!({})).expect(method)
        }
    }

    #[test]
    fn host_info_names_the_host_and_this_computer() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        let answer = fixture.ask(&context, "host.info");
        assert_eq!(
            answer,
            json!({
                "host_name": "Host Simulator",
                "host_version": env!("CARGO_PKG_VERSION"),
                "evaluation_installation": false,
                "computer": {
                    "id": context.computer_id,
                    "name": "OFFICE-SERVER",
                    "holds_system_database": true,
                },
            })
        );
        fixture
            .installation
            .system()
            .set_evaluation_installation(true)
            .unwrap();
        let laptop = fixture.context(demo::DEMO_COMPANY, "admin", demo::LAPTOP_COMPUTER);
        let answer = fixture.ask(&laptop, "host.info");
        assert_eq!(answer["evaluation_installation"], true);
        assert_eq!(answer["computer"]["name"], "LAPTOP-LARS");
        assert_eq!(answer["computer"]["holds_system_database"], false);
    }

    #[test]
    fn licence_documents_are_the_registered_texts() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        assert_eq!(
            fixture.ask(&context, "licence.documents"),
            json!({ "documents": [] })
        );
        let licence = od_licence::Licence {
            licence_number: "OD-1".into(),
            licensee_name: "Nordlys Handel AS".into(),
            contact_person: "Ingrid Solberg".into(),
            phone: "+47 22 33 44 55".into(),
            add_ons: vec![od_licence::ADD_ON_ONLINE_DESKTOP.into()],
            agreement: None,
            online_users: 3,
            evaluation: false,
            issued_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
        };
        let document = licensing::issue(&licence);
        licensing::register(fixture.installation.system(), &document).unwrap();
        assert_eq!(
            fixture.ask(&context, "licence.documents"),
            json!({ "documents": [document] })
        );
    }

    #[test]
    fn bindings_list_every_registered_add_on() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        assert_eq!(
            fixture.ask(&context, "system.bindings"),
            json!({ "bindings": [] })
        );
        fixture
            .installation
            .system()
            .add_binding(&crate::db::system::AddOnBinding {
                add_on: "online-desktop".into(),
                licence_number: "OD-1".into(),
                company_id: context.company_id.clone(),
            })
            .unwrap();
        assert_eq!(
            fixture.ask(&context, "system.bindings"),
            json!({ "bindings": [{
                "add_on": "online-desktop",
                "licence_number": "OD-1",
                "company_id": context.company_id,
            }] })
        );
    }

    #[test]
    fn companies_show_sample_and_connection_state() {
        let fixture = Fixture::new();
        let demo_company = fixture.company(demo::DEMO_COMPANY);
        let sample = fixture.company(demo::SAMPLE_COMPANY);
        fixture
            .installation
            .system()
            .set_online_desktop_connected(&demo_company.id, true)
            .unwrap();
        assert_eq!(
            fixture.ask(&fixture.admin(), "system.companies"),
            json!({ "companies": [
                { "id": demo_company.id, "name": "Nordlys Handel AS", "is_sample": false,
                  "online_desktop_connected": true },
                { "id": sample.id, "name": "Sample Company", "is_sample": true,
                  "online_desktop_connected": false },
            ] })
        );
    }

    #[test]
    fn computers_show_which_holds_the_system_database() {
        let fixture = Fixture::new();
        let server = fixture.installation.find_computer("OFFICE-SERVER").unwrap();
        let laptop = fixture.installation.find_computer("LAPTOP-LARS").unwrap();
        assert_eq!(
            fixture.ask(&fixture.admin(), "system.computers"),
            json!({ "computers": [
                { "id": laptop.id, "name": "LAPTOP-LARS", "holds_system_database": false },
                { "id": server.id, "name": "OFFICE-SERVER", "holds_system_database": true },
            ] })
        );
    }

    #[test]
    fn company_identity_comes_from_the_open_company_database() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        assert_eq!(
            fixture.ask(&context, "company.identity"),
            json!({ "id": context.company_id, "name": "Nordlys Handel AS", "is_sample": false })
        );
        let sample = fixture.context(demo::SAMPLE_COMPANY, "admin", "OFFICE-SERVER");
        assert_eq!(
            fixture.ask(&sample, "company.identity"),
            json!({ "id": sample.company_id, "name": "Sample Company", "is_sample": true })
        );
    }

    #[test]
    fn registration_is_complete_and_cleared_fields_are_null() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        assert_eq!(
            fixture.ask(&context, "company.registration"),
            json!({
                "name": "Nordlys Handel AS",
                "street": "Storgata 12",
                "postcode": "0155",
                "city": "Oslo",
                "country": "Norway",
                "phone": "+47 22 33 44 55",
                "email": "post@nordlyshandel.no",
                "organisation_number": "923 456 783",
            })
        );
        let company = fixture.company(demo::DEMO_COMPANY);
        let mut db = fixture.installation.open_company_db(&company).unwrap();
        db.set_registration(&[
            (RegistrationField::Phone, None),
            (RegistrationField::Street, Some("  ")),
        ])
        .unwrap();
        let answer = fixture.ask(&context, "company.registration");
        assert_eq!(answer["phone"], Value::Null);
        assert_eq!(answer["street"], Value::Null);
        assert_eq!(answer["city"], "Oslo");
    }

    #[test]
    fn current_user_with_and_without_an_employee() {
        let fixture = Fixture::new();
        let admin = fixture.admin();
        assert_eq!(
            fixture.ask(&admin, "user.current"),
            json!({
                "username": "admin",
                "is_super_user": true,
                "employee": {
                    "id": "1",
                    "name": "Ingrid Solberg",
                    "email": "ingrid.solberg@nordlyshandel.no",
                },
            })
        );
        let reception = fixture.context(demo::DEMO_COMPANY, "reception", "OFFICE-SERVER");
        assert_eq!(
            fixture.ask(&reception, "user.current"),
            json!({ "username": "reception", "is_super_user": false, "employee": null })
        );

        let company = fixture.company(demo::DEMO_COMPANY);
        let db = fixture.installation.open_company_db(&company).unwrap();
        db.set_employee_email(2, None).unwrap();
        let lars = fixture.context(demo::DEMO_COMPANY, "LARS", "OFFICE-SERVER");
        assert_eq!(
            fixture.ask(&lars, "user.current"),
            json!({
                "username": "lars",
                "is_super_user": false,
                "employee": { "id": "2", "name": "Lars Haugen", "email": null },
            })
        );
    }

    #[test]
    fn user_linked_to_an_employee_that_is_gone_has_no_employee() {
        let fixture = Fixture::new();
        let company = fixture.company(demo::DEMO_COMPANY);
        fixture
            .installation
            .system()
            .link_employee(
                "reception",
                &EmployeeLink {
                    company_id: company.id,
                    employee_id: 9_999,
                },
            )
            .unwrap();
        let reception = fixture.context(demo::DEMO_COMPANY, "reception", "OFFICE-SERVER");
        assert_eq!(
            fixture.ask(&reception, "user.current")["employee"],
            Value::Null
        );
    }

    #[test]
    fn active_sessions_leave_out_my_own_and_other_companies() {
        let fixture = Fixture::new();
        let system = fixture.installation.system();
        let demo_company = fixture.company(demo::DEMO_COMPANY);
        let sample = fixture.company(demo::SAMPLE_COMPANY);
        let server = fixture.installation.find_computer("OFFICE-SERVER").unwrap();
        let laptop = fixture.installation.find_computer("LAPTOP-LARS").unwrap();
        let admin = system.user("admin").unwrap();
        let lars = system.user("lars").unwrap();
        let reception = system.user("reception").unwrap();
        let context = fixture.admin();

        system.log_in(&admin, &demo_company, &server).unwrap();
        assert_eq!(
            fixture.ask(&context, "sessions.active"),
            json!({ "users": [], "integrations": [] })
        );

        system.log_in(&lars, &demo_company, &laptop).unwrap();
        system.log_in(&admin, &demo_company, &laptop).unwrap();
        system.log_in(&reception, &sample, &server).unwrap();
        system
            .set_integration_logged_in(demo::WEBSHOP_INTEGRATION, &demo_company, true)
            .unwrap();
        assert_eq!(
            fixture.ask(&context, "sessions.active"),
            json!({
                "users": [
                    { "username": "admin", "computer": "LAPTOP-LARS" },
                    { "username": "lars", "computer": "LAPTOP-LARS" },
                ],
                "integrations": [{ "name": "Webshop Connector" }],
            })
        );

        let in_sample = fixture.context(demo::SAMPLE_COMPANY, "admin", "OFFICE-SERVER");
        assert_eq!(
            fixture.ask(&in_sample, "sessions.active"),
            json!({
                "users": [{ "username": "reception", "computer": "OFFICE-SERVER" }],
                "integrations": [],
            })
        );
    }

    #[test]
    fn system_identity_is_stable() {
        let fixture = Fixture::new();
        let first = fixture.ask(&fixture.admin(), "system.identity");
        let id = first["id"].as_str().expect("id is text");
        assert_eq!(id.len(), 36, "{first}");
        assert_eq!(fixture.ask(&fixture.admin(), "system.identity"), first);
        assert_eq!(fixture.installation.system().database_id().unwrap(), id);
    }

    fn record_params(context: &HostContext) -> Value {
        json!({
            "company_id": context.company_id,
            "online_company_id": "0190b2a4-0000-7000-8000-000000000001",
            "service_url": "https://online.example",
            "connected_by": "kari@example.com",
            "connected_at": "2026-03-31T10:00:00Z",
            "licence_number": "OD-1",
            "computer_id": context.computer_id,
        })
    }

    #[test]
    fn connection_record_marks_the_company_connected() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        assert_eq!(
            handle(&context, "connection.get", &json!({})).unwrap(),
            json!({ "connection": null })
        );
        let params = record_params(&context);
        assert_eq!(
            handle(&context, "connection.record", &params).unwrap(),
            json!({})
        );
        let got = handle(&context, "connection.get", &json!({})).unwrap();
        for field in [
            "company_id",
            "online_company_id",
            "service_url",
            "connected_by",
            "connected_at",
            "computer_id",
        ] {
            assert_eq!(got["connection"][field], params[field], "{field}");
        }
        let system = fixture.installation.system();
        let connection = system
            .online_connection(&context.company_id)
            .unwrap()
            .expect("recorded");
        assert_eq!(connection.service_url, "https://online.example");
        assert_eq!(connection.connected_by, "kari@example.com");
        assert_eq!(connection.connected_at, "2026-03-31T10:00:00Z");
        assert_eq!(
            connection.online_company_id,
            "0190b2a4-0000-7000-8000-000000000001"
        );
        assert!(
            system
                .company(&context.company_id)
                .unwrap()
                .unwrap()
                .online_desktop_connected
        );
        let companies = fixture.ask(&context, "system.companies");
        assert!(companies["companies"]
            .as_array()
            .unwrap()
            .iter()
            .any(
                |c| c["id"] == context.company_id.as_str() && c["online_desktop_connected"] == true
            ));
    }

    #[test]
    fn connection_record_refuses_incomplete_or_foreign_records() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        let good = record_params(&context);
        let broken = |key: &str, value: Value| {
            let mut params = good.clone();
            params[key] = value;
            handle(&context, "connection.record", &params).unwrap_err()
        };
        for key in [
            "company_id",
            "online_company_id",
            "service_url",
            "connected_by",
        ] {
            assert!(matches!(
                broken(key, Value::Null),
                ChannelError::InvalidParams(_)
            ));
        }
        let error = broken("company_id", json!("someone-else"));
        assert!(
            error.to_string().contains("not the company database"),
            "{error}"
        );
        let error = broken("computer_id", json!("nowhere"));
        assert!(
            error.to_string().contains("no installed computer"),
            "{error}"
        );
        assert!(matches!(
            broken("licence_number", json!("")),
            ChannelError::InvalidParams(_)
        ));
        let system = fixture.installation.system();
        assert!(system
            .online_connection(&context.company_id)
            .unwrap()
            .is_none());
        assert!(
            !system
                .company(&context.company_id)
                .unwrap()
                .unwrap()
                .online_desktop_connected
        );
    }

    #[test]
    fn connection_forget_marks_the_company_not_connected() {
        let fixture = Fixture::new();
        let context = fixture.admin();
        let params = record_params(&context);
        handle(&context, "connection.record", &params).unwrap();
        let forget = |online: &str| {
            handle(
                &context,
                "connection.forget",
                &json!({"company_id": context.company_id, "online_company_id": online}),
            )
        };
        let error = forget("0190b2a4-0000-7000-8000-00000000ffff").unwrap_err();
        assert!(matches!(error, ChannelError::InvalidParams(_)), "{error}");
        let system = fixture.installation.system();
        assert!(system
            .online_connection(&context.company_id)
            .unwrap()
            .is_some());
        let error = handle(
            &context,
            "connection.forget",
            &json!({"company_id": "someone-else", "online_company_id": "x"}),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("not the company database"),
            "{error}"
        );
        assert_eq!(
            forget("0190b2a4-0000-7000-8000-000000000001").unwrap(),
            json!({})
        );
        assert!(system
            .online_connection(&context.company_id)
            .unwrap()
            .is_none());
        assert!(
            !system
                .company(&context.company_id)
                .unwrap()
                .unwrap()
                .online_desktop_connected
        );
        let companies = fixture.ask(&context, "system.companies");
        assert!(companies["companies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == context.company_id.as_str()
                && c["online_desktop_connected"] == false));
        // Forgetting again (nothing recorded) is harmless.
        assert_eq!(forget("anything").unwrap(), json!({}));
    }

    #[test]
    fn unknown_method_is_its_own_error() {
        let fixture = Fixture::new();
        let error = handle(&fixture.admin(), "company.records", &json!({})).unwrap_err();
        assert!(matches!(error, ChannelError::UnknownMethod(ref m) if m == "company.records"));
        assert_eq!(
            error.to_string(),
            "unknown method \u{201c}company.records\u{201d}"
        );
    }

    #[test]
    fn context_naming_nothing_real_is_reported() {
        let fixture = Fixture::new();
        let mut context = fixture.admin();
        context.username = "nobody".into();
        assert!(matches!(
            handle(&context, "user.current", &json!({})),
            Err(ChannelError::ContextNotFound(_))
        ));
        let mut context = fixture.admin();
        context.company_id = "missing".into();
        assert!(matches!(
            handle(&context, "company.identity", &json!({})),
            Err(ChannelError::ContextNotFound(_))
        ));
        let mut context = fixture.admin();
        context.computer_id = "missing".into();
        assert!(matches!(
            handle(&context, "host.info", &json!({})),
            Err(ChannelError::ContextNotFound(_))
        ));
    }

    #[test]
    fn missing_installation_is_a_host_error() {
        let dir = tempfile::tempdir().unwrap();
        let context = HostContext {
            data_dir: dir.path().join("nothing"),
            company_id: "x".into(),
            username: "admin".into(),
            computer_id: "y".into(),
        };
        let error = handle(&context, "host.info", &json!({})).unwrap_err();
        assert!(matches!(
            error,
            ChannelError::Host(HostError::NoInstallation(_))
        ));
    }
}
