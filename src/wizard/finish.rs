//! Finish: register the company, make this computer its device, store the
//! credentials, schedule the first synchronisation if it is for later,
//! tell the host, then start the engine.
//!
//! Until the host has been told, any failure (or a cancel) undoes what was
//! done: the device is revoked, the local files are removed. The service
//! has no way to take back a company registration (docs/WIZARD.md
//! "What is left after a failure"); registering it again with the same
//! Online ID answers with the same company, so Finish can be retried.

use super::company::{self, CompanyData};
use super::form::{self, StartWhen};
use super::{FinishPhase, Page, PageError, Wizard};
use crate::host::ConnectionRecord;
use crate::sync::connection::Connection;
use chrono::{SecondsFormat, Utc};
use od_abi::*;
use od_client::{ClientError, DeviceCredentials, DeviceSession, NewDevice, SessionToken, Uuid};
use std::sync::Arc;

/// What the finish needs from the pages.
pub(super) struct Request {
    pub email: String,
    pub token: SessionToken,
    pub when: StartWhen,
    pub at: String,
}

/// How a finish ended when it did not connect.
enum Stop {
    /// The person cancelled; what was done is undone.
    Cancelled,
    /// A step failed: shown on `page`.
    Failed { page: Page, error: PageError },
}

fn failed(page: Page, code: od_result, message: impl Into<String>) -> Stop {
    Stop::Failed {
        page,
        error: PageError {
            code,
            message: message.into(),
        },
    }
}

/// The page a service error of the registration belongs on.
fn registration_failure(error: &ClientError) -> Stop {
    let page = match error.code() {
        Some(code) if code.starts_with("licence_") => Page::Company,
        Some(
            "company_connected_elsewhere" | "company_already_connected" | "registration_incomplete",
        ) => Page::Company,
        Some("not_verified") => Page::OnlineId,
        _ if super::needs_log_in(error) => Page::OnlineId,
        _ => Page::Finish,
    };
    let advice = match error.code() {
        Some("company_connected_elsewhere" | "company_already_connected") => {
            " Nothing was registered. Ask whoever connected it to disconnect it, or log in with their Online ID."
        }
        Some(code) if code.starts_with("licence_") => {
            " Nothing was registered. Check the licence in the licence settings."
        }
        _ if super::needs_log_in(error) => " Log in again.",
        _ => "",
    };
    failed(page, error.status_code(), format!("{error}{advice}"))
}

pub(super) async fn run(wizard: Arc<Wizard>, request: Request) {
    let outcome = connect(&wizard, &request).await;
    {
        let mut state = wizard.state.lock();
        state.busy = None;
        state.finish_phase = None;
        match outcome {
            Ok(connected) => {
                tracing::info!(
                    company = connected.online_company_id.as_str(),
                    "company connected by the wizard"
                );
                state.form.password = None;
                state.session = None;
                state.connected = Some(connected);
            }
            Err(Stop::Cancelled) => wizard.end_cancelled(&mut state),
            Err(Stop::Failed { page, error }) => {
                tracing::warn!(code = error.code, "connecting failed: {}", error.message);
                if page == Page::OnlineId {
                    // The session is no longer any good: log in again.
                    state.session = None;
                }
                state.page = page;
                state.error = Some(error);
            }
        }
    }
    wizard.changed();
}

fn cancel_requested(wizard: &Wizard) -> bool {
    wizard
        .state
        .lock()
        .busy
        .as_ref()
        .is_some_and(|b| b.cancel_requested)
}

async fn connect(wizard: &Wizard, request: &Request) -> Result<super::Connected, Stop> {
    let env = &wizard.env;
    let host = env.host.clone();
    let data: CompanyData = tokio::task::spawn_blocking(move || company::gather(&host))
        .await
        .map_err(|e| failed(Page::Finish, OD_RESULT_INTERNAL, e.to_string()))?
        .map_err(|message| failed(Page::Company, OD_RESULT_HOST_CALLBACK_FAILED, message))?;
    if !data.missing.is_empty() {
        return Err(failed(
            Page::Company,
            OD_RESULT_HOST_DATA_INVALID,
            format!(
                "The registration data is not complete (missing: {}).",
                data.missing.join(", ")
            ),
        ));
    }
    let scheduled_at = match request.when {
        StartWhen::Now => None,
        StartWhen::Later => Some(
            form::parse_later(&request.at, Utc::now())
                .map_err(|why| failed(Page::Start, OD_RESULT_INVALID_ARGUMENT, why))?,
        ),
    };
    if cancel_requested(wizard) {
        return Err(Stop::Cancelled);
    }

    let registered = env
        .client
        .register_company(&request.token, &data.registration)
        .await
        .map_err(|e| registration_failure(&e))?;
    let company = registered.company;
    if cancel_requested(wizard) {
        take_back_registration(wizard, request, company.id, registered.created).await;
        return Err(Stop::Cancelled);
    }

    let device = env
        .client
        .create_device(
            &request.token,
            company.id,
            &NewDevice {
                computer_id: data.computer.id.clone(),
                computer_name: data.computer.name.clone(),
            },
        )
        .await;
    let credentials = match device {
        Ok(credentials) => credentials,
        Err(e) => {
            take_back_registration(wizard, request, company.id, registered.created).await;
            let (page, advice) = if super::needs_log_in(&e) {
                (Page::OnlineId, " Log in again, then finish.")
            } else {
                (Page::Finish, "")
            };
            return Err(failed(
                page,
                e.status_code(),
                format!("The online service did not accept this computer: {e}{advice}"),
            ));
        }
    };

    // From here on a cancel comes too late; before it, undo.
    let cancelled = {
        let mut state = wizard.state.lock();
        let cancelled = state.busy.as_ref().is_some_and(|b| b.cancel_requested);
        if !cancelled {
            state.finish_phase = Some(FinishPhase::Committing);
        }
        cancelled
    };
    if cancelled {
        undo(wizard, &credentials, false).await;
        take_back_registration(wizard, request, company.id, registered.created).await;
        return Err(Stop::Cancelled);
    }

    let connection = Connection {
        service_url: Some(env.service.as_str().trim_end_matches('/').to_owned()),
        company_id: company.id,
        computer_id: data.computer.id.clone(),
        device_id: credentials.device_id,
        access_token: credentials.access_token.expose().to_owned(),
        access_expires_at: credentials.access_expires_at,
        refresh_token: credentials.refresh_token.expose().to_owned(),
    };
    let committed = commit(
        wizard,
        request,
        &data,
        &company.id.to_string(),
        &connection,
        scheduled_at,
    );
    drop(connection);
    if let Err(stop) = committed {
        undo(wizard, &credentials, true).await;
        take_back_registration(wizard, request, company.id, registered.created).await;
        return Err(stop);
    }
    if let Err(e) = env.client.log_out(&request.token).await {
        tracing::info!("the wizard's Online ID session could not be ended: {e}");
    }
    let start_problem = env
        .engine
        .start_with(&env.spawner, scheduled_at.is_none())
        .err()
        .map(|refusal| refusal.message);
    Ok(super::Connected {
        company_name: data.company_name,
        online_company_id: company.id.to_string(),
        licence_number: company.licence_number,
        tier: company.tier,
        email: request.email.clone(),
        computer_name: data.computer.name,
        scheduled_at,
        start_problem,
    })
}

/// The local steps: store the credentials, the schedule, and tell the host.
fn commit(
    wizard: &Wizard,
    request: &Request,
    data: &CompanyData,
    online_company_id: &str,
    connection: &Connection,
    scheduled_at: Option<chrono::DateTime<Utc>>,
) -> Result<(), Stop> {
    let env = &wizard.env;
    env.engine
        .store_connection(connection)
        .map_err(|r| failed(Page::Finish, r.code, r.message))?;
    if let Some(at) = scheduled_at {
        env.engine
            .schedule(Some(&at.to_rfc3339_opts(SecondsFormat::Secs, true)))
            .map_err(|r| failed(Page::Start, r.code, r.message))?;
    }
    env.host
        .record_connection(&ConnectionRecord {
            company_id: data.registration.company_database_id.clone(),
            online_company_id: online_company_id.to_owned(),
            service_url: env.service.as_str().trim_end_matches('/').to_owned(),
            connected_by: request.email.clone(),
            connected_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            licence_number: data.licence_number.clone(),
            computer_id: data.computer.id.clone(),
        })
        .map_err(|e| {
            failed(
                Page::Finish,
                OD_RESULT_HOST_CALLBACK_FAILED,
                format!("The program could not note the connection: {e}"),
            )
        })
}

/// Takes back this computer's device and, when they were written, the
/// local files.
async fn undo(wizard: &Wizard, credentials: &DeviceCredentials, local: bool) {
    if local {
        if let Err(refusal) = wizard.env.engine.forget_connection() {
            tracing::error!(
                "the connection files could not be removed: {}",
                refusal.message
            );
        }
    }
    let device = DeviceSession::new(credentials.clone());
    match wizard.env.client.revoke_device(&device).await {
        Ok(()) => tracing::info!("the device registered by the wizard was revoked again"),
        Err(e) => tracing::error!("the device registered by the wizard could not be revoked: {e}"),
    }
}

/// Takes back a registration this finish made (`DELETE` of a company never
/// used, devices included), so that a failed or cancelled finish leaves
/// nothing half-registered online. A company that existed before (connected
/// again after a disconnect) is left as it was.
async fn take_back_registration(wizard: &Wizard, request: &Request, company: Uuid, created: bool) {
    if !created {
        return;
    }
    match wizard
        .env
        .client
        .unregister_company(&request.token, company)
        .await
    {
        Ok(()) => tracing::info!(%company, "the registration made by the wizard was taken back"),
        Err(e) => tracing::error!(
            %company,
            "the registration made by the wizard could not be taken back: {e}; finishing again \
             with the same Online ID continues with it"
        ),
    }
}
