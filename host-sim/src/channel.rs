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

use crate::db::company::RegistrationField;
use crate::db::system::Company;
use crate::error::HostError;
use crate::installation::Installation;

/// The host's name in `host.info`.
pub const HOST_NAME: &str = "Host Simulator";

/// Every method [`handle`] answers.
pub const METHODS: [&str; 9] = [
    "host.info",
    "licence.documents",
    "system.bindings",
    "system.companies",
    "system.computers",
    "company.identity",
    "company.registration",
    "user.current",
    "sessions.active",
];

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

    /// The installation could not be read.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Answers one data-channel request. Parameters are accepted for future
/// methods; none of the current ones takes any.
pub fn handle(context: &HostContext, method: &str, _params: &Value) -> Result<Value, ChannelError> {
    if !METHODS.contains(&method) {
        return Err(ChannelError::UnknownMethod(method.to_owned()));
    }
    let installation = Installation::open(&context.data_dir)?;
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
