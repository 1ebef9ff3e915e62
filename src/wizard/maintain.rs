//! Update connection and Disconnect (PRODUCT.md §4, §5.8): the wizard's
//! other two modes, Online ID → confirm → finish.
//!
//! Update connection: any super user of the company may (the service lets
//! a super user of the company register a device); usually it is
//! "Connected by" after the Online ID's password changed, or after a
//! restore of the company database was noticed. Disconnect: only
//! "Connected by" (the service refuses anybody else, naming who), only on
//! the computer the connection belongs to.
//!
//! Both stop the engine first and wait for it; a failure before the
//! service changed anything starts it again as it was.

use super::{Mode, Page, PageError, Wizard};
use crate::host::{ConnectionForget, Host};
use crate::sync::engine::{Engine, Refusal};
use od_abi::*;
use od_client::{ClientError, NewDevice, SessionToken};
use std::sync::Arc;
use std::time::Duration;

/// How long finish waits for the engine to stop.
const STOP_WITHIN: Duration = Duration::from_secs(60);

pub(super) struct Request {
    pub email: String,
    pub token: SessionToken,
    pub mode: Mode,
}

/// The Online ID page's text in these modes.
pub(super) fn online_id_text(mode: Mode) -> &'static str {
    match mode {
        Mode::ChangeUser => super::change_user::ONLINE_ID_TEXT,
        Mode::SyncComputer => super::sync_computer::ONLINE_ID_TEXT,
        Mode::Disconnect => {
            "Log in with the Online ID that connected this company (Connected by in Company settings → Online \
             Desktop). Only that Online ID can disconnect it. Your Online ID is not your login for the program."
        }
        _ => {
            "Log in with your Online ID to update this computer's connection: the Online ID that connected the \
             company, or another super user of the company online. Use its current password (if it was changed \
             on the web, the new one). Your Online ID is not your login for the program."
        }
    }
}

/// Disconnect and Change user only on the computer the connection belongs
/// to.
pub(super) fn on_sync_computer(host: &Host, engine: &Engine, mode: Mode) -> Result<(), Refusal> {
    let connection = engine.connection()?.ok_or_else(|| Refusal {
        code: OD_RESULT_BAD_STATE,
        message: "This company is not connected to Online Desktop on this computer.".to_owned(),
    })?;
    let info = host.host_info().map_err(|e| Refusal {
        code: OD_RESULT_HOST_CALLBACK_FAILED,
        message: format!("The wizard cannot tell which computer this is: {e}"),
    })?;
    if info.computer.id != connection.computer_id {
        return Err(Refusal {
            code: OD_RESULT_BAD_STATE,
            message: format!(
                "{} on the sync computer, the computer that synchronises this company.",
                if mode == Mode::ChangeUser {
                    "Change the user"
                } else {
                    "Disconnect"
                }
            ),
        });
    }
    Ok(())
}

pub(super) fn error(code: od_result, message: impl Into<String>) -> PageError {
    PageError {
        code,
        message: message.into(),
    }
}

fn service_error(error: &ClientError, doing: &str) -> PageError {
    let advice = match error.code() {
        Some("forbidden") => {
            " Only the Online ID that connected the company (Connected by) can disconnect it; log in with that one."
        }
        Some("company_not_connected") => {
            " The company was disconnected online; connect it again with Connect."
        }
        _ if super::needs_log_in(error) => " Log in again.",
        _ => " Nothing was changed; you can try again.",
    };
    error_with(error.status_code(), format!("{doing}: {error}{advice}"))
}

fn error_with(code: od_result, message: String) -> PageError {
    error(code, message)
}

pub(super) async fn run(wizard: Arc<Wizard>, request: Request) {
    let outcome = match request.mode {
        Mode::Disconnect => disconnect(&wizard, &request).await,
        Mode::ChangeUser => super::change_user::finish(&wizard, &request).await,
        Mode::SyncComputer => super::sync_computer::finish(&wizard, &request).await,
        _ => update(&wizard, &request).await,
    };
    if let Err(e) = wizard.env.client.log_out(&request.token).await {
        tracing::info!("the wizard's Online ID session could not be ended: {e}");
    }
    {
        let mut state = wizard.state.lock();
        state.busy = None;
        state.finish_phase = None;
        state.session = None;
        state.form.password = None;
        match outcome {
            Ok(summary) => state.maintained = Some(summary),
            Err(error) => {
                tracing::warn!(
                    code = error.code,
                    "{}: {}",
                    request.mode.id(),
                    error.message
                );
                // The session was ended: log in again to retry.
                state.page = Page::OnlineId;
                state.error = Some(error);
            }
        }
    }
    wizard.changed();
}

/// Stops the engine and waits for it; answers whether it was running.
pub(super) async fn stop_engine(engine: &Engine) -> Result<bool, PageError> {
    let was_running = engine.running();
    engine.stop();
    if !engine.stopped(STOP_WITHIN).await {
        return Err(error(
            OD_RESULT_BAD_STATE,
            "Synchronisation did not stop in time; nothing was changed. Try again in a moment.",
        ));
    }
    Ok(was_running)
}

pub(super) fn restart(wizard: &Wizard, was_running: bool) {
    if !was_running {
        return;
    }
    if let Err(refusal) = wizard.env.engine.start_with(&wizard.env.spawner, false) {
        tracing::error!(
            "synchronisation could not be started again: {}",
            refusal.message
        );
    }
}

async fn update(wizard: &Wizard, request: &Request) -> Result<String, PageError> {
    let env = &wizard.env;
    let connection = env
        .engine
        .connection()
        .map_err(|r| error(r.code, r.message))?
        .ok_or_else(|| {
            error(
                OD_RESULT_BAD_STATE,
                "This company is not connected on this computer.",
            )
        })?;
    let info = env.host.host_info().map_err(|e| {
        error(
            OD_RESULT_HOST_CALLBACK_FAILED,
            format!("The wizard cannot tell which computer this is: {e}"),
        )
    })?;
    let was_running = stop_engine(&env.engine).await?;
    // The same computer again: the service replaces its device (the old
    // tokens stop working) and the new one keeps its cursor and lease.
    let credentials = match env
        .client
        .create_device(
            &request.token,
            connection.company_id,
            &NewDevice {
                computer_id: connection.computer_id.clone(),
                computer_name: info.computer.name.clone(),
            },
        )
        .await
    {
        Ok(credentials) => credentials,
        Err(e) => {
            restart(wizard, was_running);
            return Err(service_error(
                &e,
                "The online service did not register this computer again",
            ));
        }
    };
    env.engine
        .store_connection(&connection.with_credentials(&credentials))
        .map_err(|r| {
            error(
                r.code,
                format!("The new credentials could not be stored: {}", r.message),
            )
        })?;
    let reconciled = env.engine.reconcile_restore().await.map_err(|r| {
        error(
            r.code,
            format!(
                "The connection was updated, but the restored company database could not be reconciled: {} \
                 Run Update connection again.",
                r.message
            ),
        )
    })?;
    let scheduled = env.engine.status().scheduled_at.is_some();
    let start_problem = env
        .engine
        .start_with(&env.spawner, !scheduled)
        .err()
        .map(|r| r.message);
    tracing::info!(
        email = request.email.as_str(),
        reconciled = ?reconciled,
        "connection updated"
    );
    let mut summary = format!(
        "The connection of this computer ({}) was updated with the Online ID {}. Synchronisation continues \
         where it stopped.",
        info.computer.name, request.email
    );
    if let Some(reconciled) = &reconciled {
        summary.push_str(
            "\n\nThe restored company database was taken up again: changes made in the program from now on are \
             synchronised as usual.",
        );
        if let Some(report) = &reconciled.report {
            summary.push_str(&format!(
                " Records compared one by one: {} set back to the online values (each difference is in the \
                 synchronisation history as a conflict, with the program's value, so nothing is lost), {} \
                 created again in the program (the backup did not have them), {} sent online (new in the \
                 program), {} changed in the program after the restore was noticed (sent as usual).",
                report.online_won, report.recreated, report.sent, report.host_edits
            ));
            if report.not_applied > 0 {
                summary.push_str(&format!(
                    " {} records could not be written in the program; the trace log names them.",
                    report.not_applied
                ));
            }
        }
    }
    if let Some(problem) = start_problem {
        summary.push_str(&format!(
            "\n\nSynchronisation could not be started yet: {problem}"
        ));
    }
    Ok(summary)
}

async fn disconnect(wizard: &Wizard, request: &Request) -> Result<String, PageError> {
    let env = &wizard.env;
    let connection = env
        .engine
        .connection()
        .map_err(|r| error(r.code, r.message))?
        .ok_or_else(|| {
            error(
                OD_RESULT_BAD_STATE,
                "This company is not connected on this computer.",
            )
        })?;
    let identity = env.host.company_identity().map_err(|e| {
        error(
            OD_RESULT_HOST_CALLBACK_FAILED,
            format!("The wizard cannot tell which company this is: {e}"),
        )
    })?;
    let was_running = stop_engine(&env.engine).await?;
    let disconnected = match env
        .client
        .disconnect_company(&request.token, connection.company_id)
        .await
    {
        Ok(disconnected) => disconnected,
        Err(e) => {
            restart(wizard, was_running);
            return Err(service_error(&e, "The company could not be disconnected"));
        }
    };
    tracing::info!(
        company = %connection.company_id,
        records = disconnected.records_deleted,
        "company disconnected online"
    );
    // Online it is done; from here on only local clean-up, which is
    // reported but cannot undo the disconnect.
    env.engine.forget_everything().map_err(|r| {
        error(
            r.code,
            format!(
                "The company was disconnected online, but the add-on's files on this computer could not all be \
                 removed: {}",
                r.message
            ),
        )
    })?;
    let forget = ConnectionForget {
        company_id: identity.id,
        online_company_id: connection.company_id.to_string(),
    };
    if let Err(e) = env.host.forget_connection(&forget) {
        tracing::warn!(
            "the program was not told about the disconnect (connection.forget, ABI 1.2): {e}; it may still \
             show the company as connected"
        );
    }
    Ok(format!(
        "{} is no longer connected to Online Desktop. The online copy of its data was deleted ({} records); \
         the company and its users' access stay online. The data in the program was not touched. Connecting \
         again synchronises everything from the start.",
        identity.name, disconnected.records_deleted
    ))
}
