//! Sync computer (PRODUCT.md §4, ABI 1.3): make *this* computer the one
//! that synchronises the company. Online ID → confirm → finish.
//!
//! Opened on the computer that is to synchronise: its credentials are
//! made here and never leave it (docs/adr/0008). Also the way back for a
//! sync computer whose add-on folder was lost (a new disk): it has no
//! connection of its own, so Update connection cannot open there.
//!
//! Finish moves synchronisation online (the previous sync computer's lease
//! ends at once and its writes are refused), registers this computer,
//! stores its credentials, tells the program (`connection.record`), and
//! starts synchronisation, which takes the online records over where the
//! previous computer left off instead of sending the company again
//! (docs/SYNC_PROTOCOL.md §10).

use super::maintain::{self, Request};
use super::{bad_state, refusal, Context, PageError, Wizard};
use crate::host::{Computer, ConnectionRecord, Host, RecordedConnection};
use crate::sync::connection::Connection;
use crate::sync::engine::{Refusal, SyncState};
use od_abi::*;
use od_client::{ClientError, NewDevice, Uuid};

/// The Online ID page's text in this mode.
pub(super) const ONLINE_ID_TEXT: &str =
    "Log in with your Online ID (a super user of the company online) to make this computer the sync computer: \
     the one computer that synchronises this company with Online Desktop. Your Online ID is not your login for \
     the program.";

/// What the confirm page shows: the computers before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Move {
    /// The sync computer now, by name (or id when the program does not
    /// list it); `None` when none is noted.
    pub from: Option<String>,
    pub to: Computer,
    pub company: String,
    /// The computer that holds the system database, when it is another
    /// one: recommended as the sync computer (PRODUCT.md §4).
    pub recommended: Option<String>,
}

/// Opens only for a connected company, and not on the computer that
/// synchronises it already (unless its add-on lost its connection).
pub(super) fn may_open(ctx: &Context<'_>) -> Result<Move, Refusal> {
    let recorded = recorded(ctx.host)?;
    let this = ctx
        .host
        .host_info()
        .map_err(|e| {
            refusal(
                OD_RESULT_HOST_CALLBACK_FAILED,
                format!("The wizard cannot tell which computer this is: {e}"),
            )
        })?
        .computer;
    let here = ctx.engine.status().state != SyncState::NotConnected
        && ctx
            .engine
            .connection()?
            .is_some_and(|c| c.computer_id == this.id);
    if here && recorded.computer_id.as_deref() == Some(this.id.as_str()) {
        return Err(bad_state(format!(
            "{} is the sync computer of this company already.",
            this.name
        )));
    }
    let company = ctx
        .host
        .company_identity()
        .map(|c| c.name)
        .unwrap_or_default();
    let computers = ctx.host.computers().unwrap_or_default();
    let from = recorded.computer_id.map(|id| {
        computers
            .iter()
            .find(|c| c.id == id)
            .map_or(id, |c| c.name.clone())
    });
    let recommended = computers
        .iter()
        .find(|c| c.holds_system_database && c.id != this.id)
        .map(|c| c.name.clone());
    Ok(Move {
        from,
        to: this,
        company,
        recommended,
    })
}

/// What the program noted about the connection; refused when nothing.
fn recorded(host: &Host) -> Result<RecordedConnection, Refusal> {
    host.recorded_connection()
        .map_err(|e| {
            refusal(
                OD_RESULT_HOST_CALLBACK_FAILED,
                format!("The program does not say how this company is connected (connection.get, ABI 1.3): {e}"),
            )
        })?
        .ok_or_else(|| {
            bad_state(
                "This company is not connected to Online Desktop yet. Connect it first (Connect to Online Desktop); \
                 the computer that connects it becomes its sync computer.",
            )
        })
}

/// The confirm page's title, text and the two computers.
pub(super) fn confirm_text(chosen: &Move) -> (String, String) {
    let from = chosen
        .from
        .clone()
        .unwrap_or_else(|| "the computer that synchronises it now".to_owned());
    let advice = chosen
        .recommended
        .as_ref()
        .map(|name| {
            format!(
                "\n\nThe computer that holds the system database, {name}, is the recommended sync computer: it \
                 is usually switched on whenever the program is used."
            )
        })
        .unwrap_or_default();
    (
        "Make this computer the sync computer".to_owned(),
        format!(
            "Finish makes {to} the sync computer of {company}: {from} stops synchronising at once, this computer \
             is registered with Online Desktop with your Online ID (its credentials are stored here, never your \
             password), and synchronisation goes on here where {from} left off. Nothing is sent twice: the \
             records already online are matched with the records in the program.\n\nSynchronisation runs only \
             while {to} is switched on.{advice}",
            to = chosen.to.name,
            company = if chosen.company.is_empty() {
                "this company"
            } else {
                &chosen.company
            },
        ),
    )
}

fn service_error(error: &ClientError, doing: &str) -> PageError {
    let advice = match error.code() {
        Some("forbidden" | "not_found") => {
            " Log in with an Online ID that is a super user of the company online (for example the one that \
             connected it)."
        }
        Some("company_not_connected") => {
            " The company was disconnected online; connect it again with Connect."
        }
        _ if super::needs_log_in(error) => " Log in again.",
        _ => " You can try again.",
    };
    maintain::error(error.status_code(), format!("{doing}: {error}{advice}"))
}

/// Finish (see the module documentation).
pub(super) async fn finish(wizard: &Wizard, request: &Request) -> Result<String, PageError> {
    let env = &wizard.env;
    let recorded = recorded(&env.host).map_err(|r| maintain::error(r.code, r.message))?;
    let company_id = Uuid::parse_str(&recorded.online_company_id).map_err(|_| {
        maintain::error(
            OD_RESULT_HOST_DATA_INVALID,
            format!(
                "The program noted \u{201c}{}\u{201d} as the online company, which is not an online company id.",
                recorded.online_company_id
            ),
        )
    })?;
    let this = env
        .host
        .host_info()
        .map_err(|e| {
            maintain::error(
                OD_RESULT_HOST_CALLBACK_FAILED,
                format!("The wizard cannot tell which computer this is: {e}"),
            )
        })?
        .computer;
    let identity = env.host.company_identity().map_err(|e| {
        maintain::error(
            OD_RESULT_HOST_CALLBACK_FAILED,
            format!("The wizard cannot tell which company this is: {e}"),
        )
    })?;
    // A connection this computer had (not the sync computer's) stops.
    maintain::stop_engine(&env.engine).await?;
    let company = env
        .client
        .company(&request.token, company_id)
        .await
        .map_err(|e| service_error(&e, "The company could not be found online"))?;
    if !company.connected {
        return Err(maintain::error(
            OD_RESULT_BAD_STATE,
            "The company was disconnected online; connect it again with Connect.",
        ));
    }
    env.client
        .move_sync_computer(&request.token, company_id, Some(&this.id))
        .await
        .map_err(|e| {
            service_error(
                &e,
                "Synchronisation could not be moved to this computer; nothing was changed",
            )
        })?;
    tracing::info!(company = %company_id, computer = this.id.as_str(), "sync computer moved here");
    let moved = "Synchronisation was moved to this computer, but";
    let credentials = env
        .client
        .create_device(
            &request.token,
            company_id,
            &NewDevice {
                computer_id: this.id.clone(),
                computer_name: this.name.clone(),
            },
        )
        .await
        .map_err(|e| {
            service_error(
                &e,
                &format!("{moved} this computer could not be registered (no computer synchronises now; Finish again)"),
            )
        })?;
    let connection = Connection {
        service_url: Some(env.service.as_str().trim_end_matches('/').to_owned()),
        company_id,
        computer_id: this.id.clone(),
        device_id: credentials.device_id,
        access_token: credentials.access_token.expose().to_owned(),
        access_expires_at: credentials.access_expires_at,
        refresh_token: credentials.refresh_token.expose().to_owned(),
    };
    // What this computer kept from an earlier time as sync computer is
    // out of date: synchronisation starts afresh from the online records.
    env.engine.forget_everything().map_err(|r| {
        maintain::error(
            r.code,
            format!("{moved} the add-on's earlier files on this computer could not be removed: {} Finish again.", r.message),
        )
    })?;
    env.engine.store_connection(&connection).map_err(|r| {
        maintain::error(
            r.code,
            format!(
                "{moved} its credentials could not be stored: {} Finish again.",
                r.message
            ),
        )
    })?;
    let noted = env.host.record_connection(&ConnectionRecord {
        company_id: identity.id,
        online_company_id: company_id.to_string(),
        service_url: connection.service_url.clone().unwrap_or_default(),
        connected_by: company.connected_by.email.clone(),
        connected_at: recorded.connected_at.clone(),
        licence_number: company.licence_number.clone(),
        computer_id: this.id.clone(),
    });
    let start_problem = env
        .engine
        .start_with(&env.spawner, true)
        .err()
        .map(|r| r.message);
    let mut summary = format!(
        "{} is the sync computer of {} now. Synchronisation goes on here where the previous sync computer left \
         off; the records already online are matched with the records in the program, nothing is sent twice. \
         Keep this computer switched on.",
        this.name, identity.name
    );
    if let Err(e) = noted {
        tracing::warn!("the program was not told the new sync computer (connection.record): {e}");
        summary.push_str(&format!(
            "\n\nThe program could not note it yet ({e}); Company settings may still show the previous sync computer."
        ));
    }
    if let Some(problem) = start_problem {
        summary.push_str(&format!(
            "\n\nSynchronisation could not be started yet: {problem}"
        ));
    }
    Ok(summary)
}
