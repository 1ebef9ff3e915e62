//! Taking synchronisation over (docs/SYNC_PROTOCOL.md §10): this computer
//! becomes the sync computer of a company whose data is online already —
//! synchronisation was moved here from another computer, or this
//! computer's add-on folder (its `state.db`) was lost.
//!
//! A first sync from nothing would mint new global ids and put every record
//! online twice. Instead the plugin adopts the online records:
//!
//! 1. **Online records.** Every record of every entity is downloaded (`GET
//!    /api/v1/sync/records`) with the host key the service keeps from
//!    pushes. A live record with a host key is mapped to that host row, and
//!    its online state becomes the row's shadow (the state last exchanged).
//!    Fields a web user changed after the previous sync computer's last
//!    acknowledged pull have not reached the host yet; for those the shadow
//!    takes the host's value instead (step 2), so that the pull brings the
//!    web edit to the host rather than the push undoing it online, and the
//!    shadow's version is set just below the oldest such edit, so that a
//!    host edit pushed against it is merged with the web edits (and the
//!    merged record comes back in the pull).
//! 2. **Host rows.** Every host row is read. A row not mapped in step 1 but
//!    whose global id the host remembers (a record created online and
//!    applied by the previous sync computer) is mapped to it. A row that is
//!    still unknown online was never sent (created after the previous
//!    computer's last push, or its first sync did not finish): it is pushed
//!    as a new record, its id committed before the push, so a push sent
//!    again carries the same ids.
//! 3. **Positions.** Continuous sync goes on from where the previous sync
//!    computer left off: host changes after the position it pushed up to
//!    (`host.position` online) are pushed, online changes after the cursor
//!    it acknowledged are pulled. All in one commit with the first sync
//!    marked finished.
//!
//! Every step only writes what is true whatever happened before, so a
//! takeover stopped or crashed half-way is simply run again.

use super::continuous::{self, Op, OutChange, SyncRemote};
use super::convert::{self, Fields};
use super::first_sync::{self, HostRecords};
use super::schema::{self, Entity, Schema};
use super::state::{State, StateError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;

/// Records per page, online and on the host.
pub const PAGE: usize = 1_000;

/// The key of the deleted flag in [`OnlineEntry::web_fields`].
const DELETED: &str = "*";

/// Where the previous sync computer left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handover {
    /// The newest host change-log position pushed (`host.position` of
    /// `GET /api/v1/sync/status`; 0 when none was).
    pub host_position: u64,
    /// The highest cursor a device of the company acknowledged.
    pub cursor: u64,
}

/// One record as the service keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineEntry {
    pub global_id: String,
    /// The host's key of the record (its local id as text), when a push
    /// told it.
    pub host_key: Option<String>,
    pub version: u64,
    pub deleted: bool,
    /// Online form.
    pub fields: Fields,
    /// Fields (and `*`, the deleted flag) whose last change a web user
    /// made, with that change.
    pub web_fields: BTreeMap<String, WebEdit>,
}

/// A web user's change of one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebEdit {
    /// The company sequence number of the change.
    pub seq: u64,
    /// The record version it made.
    pub version: u64,
}

/// One page of [`OnlineRecords::records`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OnlinePage {
    pub records: Vec<OnlineEntry>,
    /// The global id to continue after; none on the last page.
    pub next: Option<String>,
}

/// The service's side of a takeover: continuous sync's, plus the download.
pub trait OnlineRecords: SyncRemote {
    /// Records of `entity` in global id order after `after`, tombstones
    /// included.
    fn records(
        &self,
        entity: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<OnlinePage, Self::Error>>;
}

/// What a takeover did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Host rows matched to online records.
    pub adopted: u64,
    /// Host rows that were not online, sent now.
    pub sent: u64,
    /// Records sent per entity (for the history).
    pub entities: BTreeMap<String, u64>,
}

#[derive(Debug, Error)]
pub enum TakeoverError {
    #[error("the program could not supply its records: {0}")]
    Host(String),
    #[error("the online service did not answer: {0}")]
    Remote(String),
    #[error("the online service refused the records: {0}")]
    HostRestored(String),
    /// Nothing online can be matched to the program's records.
    #[error(
        "the online copy holds {0} records, but none of them says which record of the program it is"
    )]
    Unmatched(u64),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error(transparent)]
    Convert(#[from] convert::ConvertError),
    #[error("taking synchronisation over was stopped; it starts again when synchronisation does")]
    Stopped,
}

/// Web edits the previous sync computer had not pulled, per record.
type Unseen = HashMap<(String, String), Vec<String>>;

/// Takes synchronisation over (see the module documentation). `progress`
/// is told (entity, records looked at) as it goes.
pub async fn run<H, R>(
    schema: &Schema,
    host: &H,
    remote: &R,
    state: &mut State,
    handover: Handover,
    stop: &AtomicBool,
    mut progress: impl FnMut(&str, u64),
) -> Result<Report, TakeoverError>
where
    H: HostRecords + Clone + Send + 'static,
    R: OnlineRecords,
{
    let position = host
        .position()
        .map_err(|e| TakeoverError::Host(e.to_string()))?;
    if position < handover.host_position {
        return Err(TakeoverError::HostRestored(format!(
            "the program's change log is at {position}, behind the {} synchronised before",
            handover.host_position
        )));
    }
    let order = schema::travel_order(schema)?;
    let mut unseen = Unseen::new();
    let mut deleted_unseen = HashSet::new();
    let (mut live, mut with_key) = (0u64, 0u64);
    for entity in &order {
        let mut after: Option<String> = None;
        let mut looked = 0u64;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(TakeoverError::Stopped);
            }
            let page = remote
                .records(&entity.name, after.as_deref(), PAGE)
                .await
                .map_err(|e| TakeoverError::Remote(e.to_string()))?;
            state.commit(|b| {
                for record in &page.records {
                    let fresh = |field: &str| {
                        record
                            .web_fields
                            .get(field)
                            .is_some_and(|edit| edit.seq > handover.cursor)
                    };
                    if record.deleted {
                        // A delete the previous computer did not apply yet
                        // comes in the pull, which must find the host row.
                        if fresh(DELETED) {
                            deleted_unseen.insert((entity.name.clone(), record.global_id.clone()));
                            if let Some(key) = &record.host_key {
                                b.map_if_free(&entity.name, key, &record.global_id)?;
                            }
                        }
                        continue;
                    }
                    live += 1;
                    let fields: Vec<String> = record
                        .web_fields
                        .keys()
                        .filter(|f| f.as_str() != DELETED && fresh(f))
                        .cloned()
                        .collect();
                    // The version the host last saw: just below the oldest
                    // web edit it has not (so the service merges a host
                    // edit with them and sends the record back, as it does
                    // for any edit it has not seen).
                    let seen = record
                        .web_fields
                        .iter()
                        .filter(|(f, _)| fresh(f))
                        .map(|(_, edit)| edit.version.saturating_sub(1))
                        .min()
                        .unwrap_or(record.version);
                    b.set_shadow(&entity.name, &record.global_id, seen, &record.fields)?;
                    if !fields.is_empty() {
                        unseen.insert((entity.name.clone(), record.global_id.clone()), fields);
                    }
                    if let Some(key) = &record.host_key {
                        with_key += 1;
                        if !b.map_if_free(&entity.name, key, &record.global_id)? {
                            tracing::warn!(
                                entity = entity.name,
                                key,
                                global_id = record.global_id,
                                "two online records claim one host row; the first one keeps it"
                            );
                        }
                    }
                }
                Ok(())
            })?;
            looked += page.records.len() as u64;
            progress(&entity.name, looked);
            match page.next {
                Some(next) if !page.records.is_empty() => after = Some(next),
                _ => break,
            }
        }
    }
    // Online records none of which names its host row were sent by a
    // plugin before host keys: matching is impossible, sending the host's
    // rows would put them online twice. (An empty program has nothing to
    // match: the records are web-created and come in the pull.)
    if live > 0 && with_key == 0 {
        let mut host_rows = 0;
        for entity in &order {
            host_rows += host
                .count(&entity.name)
                .map_err(|e| TakeoverError::Host(e.to_string()))?;
        }
        if host_rows > 0 {
            return Err(TakeoverError::Unmatched(live));
        }
    }
    let mut report = Report::default();
    for entity in &order {
        adopt_host_rows(
            entity,
            host,
            remote,
            state,
            handover,
            (&unseen, &deleted_unseen),
            stop,
            &mut report,
        )
        .await?;
    }
    state.commit(|b| {
        first_sync::mark_taken_over(b, handover.host_position)?;
        continuous::mark_taken_over(b, handover.host_position, handover.cursor)
    })?;
    Ok(report)
}

/// Step 2 for one entity: maps remembered rows, fixes shadows of rows with
/// unseen web edits, and sends the rows not online.
#[allow(clippy::too_many_arguments)]
async fn adopt_host_rows<H, R>(
    entity: &Entity,
    host: &H,
    remote: &R,
    state: &mut State,
    handover: Handover,
    (unseen, deleted_unseen): (&Unseen, &HashSet<(String, String)>),
    stop: &AtomicBool,
    report: &mut Report,
) -> Result<(), TakeoverError>
where
    H: HostRecords + Clone + Send + 'static,
    R: OnlineRecords,
{
    // The next page is read on a blocking thread while this one is
    // matched (the host answers synchronously), as in the first sync.
    let mut reading = Some(first_sync::read_page(host, &entity.name, None));
    let outcome = async {
        loop {
            tokio::task::yield_now().await;
            if stop.load(Ordering::SeqCst) {
                return Err(TakeoverError::Stopped);
            }
            let Some(read) = reading.take() else {
                return Ok(());
            };
            let page = read
                .await
                .map_err(|e| {
                    TakeoverError::Host(format!("reading the program's records failed: {e}"))
                })?
                .map_err(|e| TakeoverError::Host(e.to_string()))?;
            let Some((last, _)) = page.records.last() else {
                return Ok(());
            };
            if !page.done {
                reading = Some(first_sync::read_page(
                    host,
                    &entity.name,
                    Some(last.clone()),
                ));
            }
            adopt_page(
                entity,
                remote,
                state,
                handover,
                (unseen, deleted_unseen),
                &page,
                report,
            )
            .await?;
        }
    }
    .await;
    // A page still being read is waited for: no call into the program is
    // left running behind the engine.
    if let Some(read) = reading.take() {
        let _ = read.await;
    }
    outcome
}

/// Step 2 for one page of host rows.
async fn adopt_page<R: OnlineRecords>(
    entity: &Entity,
    remote: &R,
    state: &mut State,
    handover: Handover,
    (unseen, deleted_unseen): (&Unseen, &HashSet<(String, String)>),
    page: &first_sync::Page,
    report: &mut Report,
) -> Result<(), TakeoverError> {
    let mut send = Vec::new();
    let mut adopted = 0u64;
    state.commit(|b| {
        for (local_id, host_fields) in &page.records {
            let Some(key) = convert::local_key(local_id) else {
                continue;
            };
            let mut global = b.global_id(&entity.name, &key)?;
            if global.is_none() {
                if let Some(remembered) = page.remembered.get(&key) {
                    let online = b.shadow(&entity.name, remembered)?.is_some()
                        || deleted_unseen.contains(&(entity.name.clone(), remembered.clone()));
                    if online && b.map_if_free(&entity.name, &key, remembered)? {
                        global = Some(remembered.clone());
                    }
                }
            }
            let global_id = match global {
                Some(g) => g,
                None => b.global_id_or_mint(&entity.name, &key)?,
            };
            if deleted_unseen.contains(&(entity.name.clone(), global_id.clone())) {
                adopted += 1;
                continue;
            }
            let unseen_fields = unseen.get(&(entity.name.clone(), global_id.clone()));
            let shadow = b.shadow(&entity.name, &global_id)?;
            if shadow.is_some() && unseen_fields.is_none() {
                // Adopted as it is online: nothing to convert.
                adopted += 1;
                continue;
            }
            let online_fields =
                convert::to_online::<StateError>(entity, host_fields, |target, key| {
                    b.global_id_or_mint(target, key)
                })?;
            match shadow {
                Some(mut shadow) => {
                    adopted += 1;
                    // The host has not seen these web edits: its own
                    // values are the ones last exchanged.
                    for field in unseen_fields.into_iter().flatten() {
                        match online_fields.get(field) {
                            Some(value) => shadow.fields.insert(field.clone(), value.clone()),
                            None => shadow.fields.remove(field),
                        };
                    }
                    b.set_shadow(&entity.name, &global_id, shadow.version, &shadow.fields)?;
                }
                None => send.push(OutChange {
                    entity: entity.name.clone(),
                    global_id,
                    local_key: key,
                    op: Op::Upsert,
                    base_version: None,
                    changed: online_fields.keys().cloned().collect(),
                    fields: online_fields,
                }),
            }
        }
        Ok(())
    })?;
    report.adopted += adopted;
    continuous::push_rows(
        remote,
        state,
        "takeover",
        &entity.name,
        &send,
        handover.host_position,
    )
    .await
    .map_err(|e| match e {
        continuous::SyncError::HostRestored(m) => TakeoverError::HostRestored(m),
        continuous::SyncError::State(e) => TakeoverError::State(e),
        other => TakeoverError::Remote(other.to_string()),
    })?;
    report.sent += send.len() as u64;
    if !send.is_empty() {
        *report.entities.entry(entity.name.clone()).or_insert(0) += send.len() as u64;
    }
    Ok(())
}
