//! Change user (PRODUCT.md §4): hand the connection's administration
//! ("Connected by") to another person, a super user of the program linked
//! to an employee with an e-mail address, who logs in with their own
//! Online ID. Online ID → confirm → finish.
//!
//! The service wants two proofs together (docs/ONLINE_API.md): the new
//! person's Online ID session, and a current access token of this
//! computer's device — so the mode opens only on the sync computer. The
//! device and its credentials stay: synchronisation goes on where it was.
//! Finish stops the engine for the moment of the call, because only one
//! holder may refresh the device's tokens (a refresh token used twice
//! revokes the device), and starts it again.

use super::maintain::{self, Request};
use super::{bad_state, PageError, Wizard};
use crate::host::{ConnectionRecord, CurrentUser};
use crate::sync::engine::Refusal;
use chrono::{SecondsFormat, Utc};
use od_abi::*;
use od_client::{ClientError, Company, DeviceSession};
use std::sync::Arc;

/// The Online ID page's text in this mode.
pub(super) const ONLINE_ID_TEXT: &str =
    "Log in with your own Online ID to take over this company's connection to Online Desktop. After Finish you \
     are Connected by: the person who administers the connection (and the only one who can disconnect it). The \
     Online ID that is Connected by now keeps its access to the company online. Synchronisation goes on as it is. \
     Your Online ID is not your login for the program.";

/// Only a super user linked to an employee with an e-mail address: the
/// connection is handed to a person the program knows.
pub(super) fn may_open(user: &CurrentUser) -> Result<(), Refusal> {
    let has_email = user
        .employee
        .as_ref()
        .and_then(|e| e.email.as_deref())
        .is_some_and(|email| !email.trim().is_empty());
    if has_email {
        Ok(())
    } else {
        Err(bad_state(format!(
            "{} is not linked to an employee with an e-mail address. Only a super user linked to an employee with \
             an e-mail address can take over the connection; link the user to an employee (View → Settings → \
             Users) and give the employee an e-mail address.",
            user.username
        )))
    }
}

/// Who is "Connected by" now, asked with the device's access token as it
/// is stored (never refreshed here: the engine owns the refresh token).
/// `None` when it cannot be asked; finish still works then.
pub(super) async fn current_connected_by(env: &super::Env) -> Option<String> {
    let connection = env.engine.connection().ok().flatten()?;
    match env
        .client
        .company_with_access_token(
            &connection.credentials().access_token,
            connection.company_id,
        )
        .await
    {
        Ok(company) => Some(company.connected_by.email),
        Err(e) => {
            tracing::info!("who is Connected by could not be asked: {e}");
            None
        }
    }
}

/// The person who is "Connected by" already logged in: nothing to hand over.
pub(super) fn same_person(email: &str) -> PageError {
    maintain::error(
        OD_RESULT_BAD_STATE,
        format!(
            "{email} is Connected by already; there is nothing to change. To hand the connection to someone else, \
             that person logs in here with their own Online ID."
        ),
    )
}

fn service_error(error: &ClientError) -> PageError {
    let advice = match error.code() {
        Some("forbidden" | "not_found") => {
            " This computer's connection was not accepted as the sync computer's; run Update connection, then try \
             again."
        }
        Some("company_not_connected") => " The company was disconnected online.",
        _ if super::needs_log_in(error) => " Log in again.",
        _ => " Nothing was changed; you can try again.",
    };
    maintain::error(
        error.status_code(),
        format!("The connection could not be handed over: {error}{advice}"),
    )
}

/// Finish: the service makes the session's Online ID "Connected by", then
/// the program is told (`connection.record`).
pub(super) async fn finish(wizard: &Wizard, request: &Request) -> Result<String, PageError> {
    let env = &wizard.env;
    let connection = env
        .engine
        .connection()
        .map_err(|r| maintain::error(r.code, r.message))?
        .ok_or_else(|| {
            maintain::error(
                OD_RESULT_BAD_STATE,
                "This company is not connected on this computer.",
            )
        })?;
    let identity = env.host.company_identity().map_err(|e| {
        maintain::error(
            OD_RESULT_HOST_CALLBACK_FAILED,
            format!("The wizard cannot tell which company this is: {e}"),
        )
    })?;
    let previous = wizard.state.lock().current_connected_by.clone();
    let was_running = maintain::stop_engine(&env.engine).await?;
    let engine = Arc::clone(&env.engine);
    let base = connection.clone();
    let device = DeviceSession::new(connection.credentials()).on_refresh(move |fresh| {
        if let Err(r) = engine.store_connection(&base.with_credentials(fresh)) {
            tracing::error!("the renewed connection could not be stored: {}", r.message);
        }
    });
    let handed: Result<Company, ClientError> = async {
        // Refreshes the access token when the service no longer takes it.
        env.client.current_device(&device).await?;
        let access = device.credentials().await.access_token;
        env.client
            .change_connected_by(&request.token, connection.company_id, &access)
            .await
    }
    .await;
    let company = match handed {
        Ok(company) => company,
        Err(e) => {
            maintain::restart(wizard, was_running);
            return Err(service_error(&e));
        }
    };
    let now_by = company.connected_by.email.clone();
    tracing::info!(
        company = %company.id,
        connected_by = now_by.as_str(),
        previous = previous.as_deref().unwrap_or("?"),
        "Connected by changed"
    );
    let recorded = env.host.record_connection(&ConnectionRecord {
        company_id: identity.id,
        online_company_id: company.id.to_string(),
        service_url: connection
            .service_url
            .clone()
            .unwrap_or_else(|| env.service.as_str().to_owned())
            .trim_end_matches('/')
            .to_owned(),
        connected_by: now_by.clone(),
        connected_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        licence_number: company.licence_number.clone(),
        computer_id: connection.computer_id.clone(),
    });
    maintain::restart(wizard, was_running);
    let mut summary = match previous {
        Some(previous) if !previous.eq_ignore_ascii_case(&now_by) => format!(
            "{now_by} is Connected by now, instead of {previous}. {previous} keeps access to the company online. \
             Synchronisation goes on as it was."
        ),
        _ => format!("{now_by} is Connected by now. Synchronisation goes on as it was."),
    };
    if let Err(e) = recorded {
        tracing::warn!("the program was not told the new Connected by (connection.record): {e}");
        summary.push_str(&format!(
            "\n\nThe program could not note it yet ({e}); Company settings may still show the previous Connected by."
        ));
    }
    Ok(summary)
}
