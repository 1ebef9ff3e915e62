//! Restore detection (docs/SYNC_PROTOCOL.md §9, signals 1 and 2) and the
//! simple reconciliation of Update connection.
//!
//! A backup of the company database put back sets the host's change log
//! back below what `state.db` says was pushed. Synchronising on would skip
//! the host's new edits and push restored (older) values as edits, so the
//! engine refuses to run from the moment it notices — the host's position
//! below the one pushed (signal 1), or the service refusing a push with
//! `host_restored` (signal 2) — until Update connection has reconciled.

use super::continuous;
use super::first_sync;
use super::state::{State, StateError};

/// The host's change-log position when the restore was noticed (H in §9).
/// While it is set the engine does not run.
const DETECTED: &str = "restore.detected_at_position";

/// The reason the status and `OD_EVENT_SYNC_STATE` show.
pub fn reason() -> String {
    "A backup of the company database seems to have been restored: the program's change log is behind what \
     Online Desktop has already synchronised. Synchronisation has stopped so that nothing is lost or undone \
     online. Choose Update connection in Company settings → Online Desktop."
        .to_owned()
}

/// The position pushed up to, as the host's change log must at least be:
/// the continuous position once the first sync finished, its start
/// position while it runs, nothing before.
pub fn pushed(state: &State) -> Result<Option<u64>, StateError> {
    if first_sync::finished(state)? {
        return Ok(Some(continuous::host_position(state)?));
    }
    first_sync::start_position(state)
}

/// Signal 1: the host's position is below the one pushed.
pub fn behind(state: &State, host_position: u64) -> Result<bool, StateError> {
    Ok(pushed(state)?.is_some_and(|pushed| host_position < pushed))
}

/// The position a noticed restore was noticed at, if one was.
pub fn detected(state: &State) -> Result<Option<u64>, StateError> {
    Ok(state.checkpoint(DETECTED)?.and_then(|p| p.parse().ok()))
}

/// Notes a restore noticed at the host's position `host_position` (kept
/// when one was noticed before: the earliest is the one that counts).
pub fn note(state: &mut State, host_position: u64) -> Result<(), StateError> {
    if detected(state)?.is_some() {
        return Ok(());
    }
    state.commit(|b| b.set_checkpoint(DETECTED, &host_position.to_string()))
}

/// The simple reconciliation (this computer's part of Update connection):
/// the position pushed up to becomes the position the restore was noticed
/// at — capped by the host's current one — so that every host edit made
/// after that is pushed as usual; the noticed restore is cleared. Answers
/// the new position, which the caller also sets as the service's host
/// marker. Nothing is done when no restore was noticed (`None`).
///
/// What this does not do (docs/SYNC_PROTOCOL.md §9.3 "the
/// reconciliation"): compare every host row with its shadow, let the
/// online state win for rows the restore set back (with conflicts
/// recorded), re-create records created after the backup, push rows the id
/// map does not know. Host edits made between the restore and its
/// detection are not pushed, and rows the restore set back keep their
/// older values on the host until they are edited again.
pub fn reconcile(state: &mut State, host_position: u64) -> Result<Option<u64>, StateError> {
    let Some(noticed) = detected(state)? else {
        return Ok(None);
    };
    let position = noticed.min(host_position);
    if first_sync::finished(state)? {
        continuous::reset_host_position(state, position)?;
    } else if first_sync::started(state)? {
        first_sync::reset_start_position(state, position)?;
    }
    state.commit(|b| b.clear_checkpoint(DETECTED))?;
    Ok(Some(position))
}

/// A generation marker written to the host but perhaps not online yet
/// (signal 3's rotation, docs/SYNC_PROTOCOL.md §9.3).
const MARKER_PENDING: &str = "restore.marker_pending";

/// The host's marker as `sync.marker.get` answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct HostGeneration {
    pub generation: Option<String>,
}

/// Signal 3: the host's generation marker is neither the online one nor
/// one this computer is writing. Nothing to compare (no marker on either
/// side: a first sync, a host that keeps none, a company database from
/// before the first rotation) is not a restore.
pub fn generation_differs(
    state: &State,
    host: Option<&str>,
    online: Option<&str>,
) -> Result<bool, StateError> {
    let (Some(host), Some(online)) = (host, online) else {
        return Ok(false);
    };
    if host == online {
        return Ok(false);
    }
    Ok(state.checkpoint(MARKER_PENDING)?.as_deref() != Some(host))
}

/// Step 1 of a rotation: the new marker, committed before anyone is told.
pub fn begin_rotation(state: &mut State) -> Result<String, StateError> {
    let marker = super::state::new_global_id();
    state.commit(|b| b.set_checkpoint(MARKER_PENDING, &marker))?;
    Ok(marker)
}

/// The last step: host and service both have it.
pub fn end_rotation(state: &mut State) -> Result<(), StateError> {
    state.commit(|b| b.clear_checkpoint(MARKER_PENDING))
}
