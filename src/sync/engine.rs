//! The synchronisation engine (docs/SYNC_PROTOCOL.md §8): one task on the
//! plugin's runtime that takes the lease, stores the schema, runs (or
//! resumes) the first synchronisation, then keeps both sides in step until
//! it is stopped.
//!
//! The host's UI thread only flips flags and reads a snapshot; everything
//! that waits (network, host batches) happens on the task. Errors the
//! engine can outlive (the service unreachable, a host batch failing) are
//! retried with a growing pause; the ones that need a person (another
//! computer is the sync computer, the credentials were revoked) stop it.

use super::connection::{self, Connection};
use super::continuous;
use super::first_sync::{self, HostRecords};
use super::history::{self, Counts, History, RunKind};
use super::restore;
use super::schema::{self, Schema};
use super::state::State;
use super::takeover::{self, Handover};
use crate::events::{Event, EventKind, EventQueue};
use crate::host::Host;
use crate::online::ServiceUrl;
use crate::runtime::{Runtime, Spawner};
use chrono::{DateTime, SecondsFormat, Utc};
use od_abi::*;
use od_client::{Client, ClientConfig, ClientError, DeviceSession, HostMarker};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// The engine's intervals. The defaults are the product's; tests shorten
/// them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The lease lasts 60 s on the service; renewed well before.
    pub lease_renew: Duration,
    /// How long a pull waits on the service for online changes.
    pub long_poll: Duration,
    /// How often the host's change log is looked at without a notification.
    pub watch: Duration,
    /// Pauses between failed attempts: doubling from the first to the last.
    pub backoff: (Duration, Duration),
    /// How often a quiet continuous run notes its last success in the history.
    pub history_every: Duration,
    /// How often a first sync waiting for people to log out looks again.
    pub sessions_retry: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            lease_renew: Duration::from_secs(20),
            long_poll: Duration::from_secs(25),
            watch: Duration::from_millis(250),
            backoff: (Duration::from_secs(1), Duration::from_secs(60)),
            history_every: Duration::from_secs(60),
            sessions_retry: Duration::from_secs(30),
        }
    }
}

/// Conflicts are kept this long in `state.db` (the history shows 7 days).
pub(crate) const CONFLICT_DAYS: i64 = 30;

const USER_AGENT: &str = concat!("online-desktop-plugin/", env!("CARGO_PKG_VERSION"));
const SCHEDULE_FILE: &str = "schedule.json";

/// The engine's state (the ABI's `OD_SYNC_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    NotConnected,
    Stopped,
    Scheduled,
    Starting,
    FirstSync,
    Running,
    Retrying,
    Failed,
    Stopping,
}

impl SyncState {
    pub fn code(self) -> od_sync_state {
        match self {
            SyncState::NotConnected => OD_SYNC_NOT_CONNECTED,
            SyncState::Stopped => OD_SYNC_STOPPED,
            SyncState::Scheduled => OD_SYNC_SCHEDULED,
            SyncState::Starting => OD_SYNC_STARTING,
            SyncState::FirstSync => OD_SYNC_FIRST_SYNC,
            SyncState::Running => OD_SYNC_RUNNING,
            SyncState::Retrying => OD_SYNC_RETRYING,
            SyncState::Failed => OD_SYNC_FAILED,
            SyncState::Stopping => OD_SYNC_STOPPING,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SyncState::NotConnected => "not_connected",
            SyncState::Stopped => "stopped",
            SyncState::Scheduled => "scheduled",
            SyncState::Starting => "starting",
            SyncState::FirstSync => "first_sync",
            SyncState::Running => "running",
            SyncState::Retrying => "retrying",
            SyncState::Failed => "failed",
            SyncState::Stopping => "stopping",
        }
    }
}

/// First-sync progress, as the status and the progress events show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub entity: String,
    pub entity_title: String,
    pub entity_done: u64,
    pub entity_total: u64,
    pub done: u64,
    pub total: u64,
    pub seconds_left: Option<u64>,
}

/// An error as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: od_result,
    pub message: String,
    /// Whether the engine tries again by itself, and after how long at
    /// least (`None`: it stops; a person must act).
    pub retry: Option<Duration>,
}

impl Failure {
    fn retry(code: od_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            retry: Some(Duration::ZERO),
        }
    }

    fn stop(code: od_result, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
            retry: None,
        }
    }

    fn service(error: &ClientError) -> Failure {
        let code = error.status_code();
        if error.is_lease_held() {
            return Failure::stop(
                code,
                format!(
                    "Another computer is the sync computer of this company, so this one does not synchronise ({error}). \
                     Synchronisation can be moved in Company settings → Online Desktop."
                ),
            );
        }
        if code == OD_RESULT_SERVICE_AUTH {
            return Failure::stop(
                code,
                format!(
                    "The online service no longer accepts this computer's connection ({error}). \
                     Choose Update connection in Company settings → Online Desktop."
                ),
            );
        }
        Failure::retry(code, error.to_string())
    }
}

/// What `od_plugin_sync_status` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: SyncState,
    pub first_sync_done: bool,
    pub blocked: bool,
    pub last_success: Option<DateTime<Utc>>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub pending_to_online: u64,
    pub pending_to_host: u64,
    pub parked: u64,
    pub error: Option<Failure>,
    pub progress: Option<Progress>,
}

impl Status {
    fn new() -> Status {
        Status {
            state: SyncState::Stopped,
            first_sync_done: false,
            blocked: false,
            last_success: None,
            scheduled_at: None,
            pending_to_online: 0,
            pending_to_host: 0,
            parked: 0,
            error: None,
            progress: None,
        }
    }
}

/// What Update connection's reconciliation of a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The host position synchronisation goes on from.
    pub position: u64,
    /// The row-by-row part (none when the first sync had not finished).
    pub report: Option<super::reconcile::Report>,
}

/// Why a control call was refused (the ABI turns it into a status code).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: od_result,
    pub message: String,
}

impl Refusal {
    fn bad_state(message: impl Into<String>) -> Refusal {
        Refusal {
            code: OD_RESULT_BAD_STATE,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            code: OD_RESULT_INVALID_ARGUMENT,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Refusal {
        Refusal {
            code: OD_RESULT_INTERNAL,
            message: message.into(),
        }
    }
}

struct Shared {
    status: Mutex<Status>,
    /// A task is alive (set by start, cleared by the task as it ends).
    running: AtomicBool,
    stop: watch::Sender<bool>,
    /// The host committed a change (`od_plugin_sync_notify`).
    wake: Notify,
}

/// The engine of one plugin instance.
pub struct Engine {
    folder: Option<PathBuf>,
    service: ServiceUrl,
    host: Host,
    events: Arc<EventQueue>,
    shared: Arc<Shared>,
    /// Client settings (tests shorten the timeouts).
    client_config: ClientConfig,
    timing: Timing,
}

#[derive(Serialize, Deserialize)]
struct ScheduleFile {
    first_sync_at: DateTime<Utc>,
}

fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Engine {
    pub fn new(
        folder: Option<PathBuf>,
        service: ServiceUrl,
        host: Host,
        events: Arc<EventQueue>,
    ) -> Engine {
        let (stop, _) = watch::channel(false);
        Engine {
            folder,
            service,
            host,
            events,
            shared: Arc::new(Shared {
                status: Mutex::new(Status::new()),
                running: AtomicBool::new(false),
                stop,
                wake: Notify::new(),
            }),
            client_config: ClientConfig {
                user_agent: USER_AGENT.to_owned(),
                ..ClientConfig::default()
            },
            timing: Timing::default(),
        }
    }

    /// The same engine with other intervals (tests).
    #[cfg(test)]
    pub(crate) fn with_timing(mut self, timing: Timing) -> Engine {
        self.timing = timing;
        self
    }

    fn folder(&self) -> Result<&Path, Refusal> {
        self.folder.as_deref().ok_or_else(|| {
            Refusal::bad_state(
                "The program gave the add-on no folder for its data (od_host_api.data_dir), so it cannot synchronise.",
            )
        })
    }

    /// Stores the connection (`od_plugin_connection_set`); refused while
    /// the engine runs.
    pub fn set_connection(&self, json: &str) -> Result<(), Refusal> {
        let folder = self.folder()?;
        if self.shared.running.load(Ordering::SeqCst) {
            return Err(Refusal::bad_state(
                "Synchronisation is running; stop it before changing the connection.",
            ));
        }
        let connection = Connection::parse(json).map_err(|e| Refusal::invalid(e.to_string()))?;
        connection
            .service(&self.service)
            .map_err(|e| Refusal::invalid(e.to_string()))?;
        connection::save(folder, &connection).map_err(|e| Refusal::internal(e.to_string()))?;
        tracing::info!(
            company = %connection.company_id,
            computer = connection.computer_id.as_str(),
            "connection stored"
        );
        Ok(())
    }

    /// Stores a connection the wizard made (the path of
    /// `od_plugin_connection_set`, without the JSON).
    pub fn store_connection(&self, connection: &Connection) -> Result<(), Refusal> {
        let folder = self.folder()?;
        if self.shared.running.load(Ordering::SeqCst) {
            return Err(Refusal::bad_state(
                "Synchronisation is running; stop it before changing the connection.",
            ));
        }
        connection::save(folder, connection).map_err(|e| Refusal::internal(e.to_string()))?;
        tracing::info!(
            company = %connection.company_id,
            computer = connection.computer_id.as_str(),
            "connection stored"
        );
        Ok(())
    }

    /// Removes what [`Engine::store_connection`] and [`Engine::schedule`]
    /// wrote (the wizard's finish failed or was cancelled after storing).
    /// Only for an engine that has not started.
    pub fn forget_connection(&self) -> Result<(), Refusal> {
        let folder = self.folder()?;
        for file in [connection::FILE, SCHEDULE_FILE] {
            let path = folder.join(file);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Refusal::internal(format!("{}: {e}", path.display()))),
            }
        }
        self.shared.status.lock().scheduled_at = None;
        Ok(())
    }

    /// The folder of the add-on's data, if the host gave one.
    pub fn data_folder(&self) -> Option<&Path> {
        self.folder.as_deref()
    }

    /// Schedules the first synchronisation for `at` (None: no schedule).
    pub fn schedule(&self, at: Option<&str>) -> Result<(), Refusal> {
        let folder = self.folder()?;
        if first_sync::finished_in(folder) {
            return Err(Refusal::bad_state(
                "The first synchronisation has already been done; there is nothing to schedule.",
            ));
        }
        let path = folder.join(SCHEDULE_FILE);
        let Some(text) = at else {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Refusal::internal(format!("{}: {e}", path.display()))),
            }
            self.shared.status.lock().scheduled_at = None;
            return Ok(());
        };
        let when = DateTime::parse_from_rfc3339(text.trim())
            .map_err(|e| {
                Refusal::invalid(format!(
                    "\u{201c}{text}\u{201d} is not a date and time like 2026-12-24T22:00:00+01:00 ({e})"
                ))
            })?
            .with_timezone(&Utc);
        if when <= Utc::now() {
            return Err(Refusal::invalid(format!(
                "The time {} has already passed; choose a time in the future.",
                stamp(when)
            )));
        }
        let json = serde_json::to_vec(&ScheduleFile {
            first_sync_at: when,
        })
        .unwrap_or_default();
        std::fs::create_dir_all(folder)
            .and_then(|()| std::fs::write(&path, json))
            .map_err(|e| Refusal::internal(format!("{}: {e}", path.display())))?;
        self.shared.status.lock().scheduled_at = Some(when);
        // A running engine waiting for the old time looks again.
        self.shared.wake.notify_one();
        Ok(())
    }

    fn scheduled(folder: &Path) -> Option<DateTime<Utc>> {
        let text = std::fs::read(folder.join(SCHEDULE_FILE)).ok()?;
        Some(
            serde_json::from_slice::<ScheduleFile>(&text)
                .ok()?
                .first_sync_at,
        )
    }

    /// Starts the engine in the background (`od_plugin_sync_start`); does
    /// nothing when it runs already.
    pub fn start(&self, runtime: &Runtime, now: bool) -> Result<(), Refusal> {
        let spawner = runtime
            .spawner()
            .map_err(|e| Refusal::bad_state(e.to_string()))?;
        self.start_with(&spawner, now)
    }

    /// [`Engine::start`] from a task on the runtime (the wizard's finish).
    pub fn start_with(&self, spawner: &Spawner, now: bool) -> Result<(), Refusal> {
        let folder = self.folder()?.to_path_buf();
        let connection = connection::load(&folder)
            .map_err(|e| Refusal::bad_state(e.to_string()))?
            .ok_or_else(|| {
                Refusal::bad_state(
                    "This company is not connected to Online Desktop yet. Connect it first \
                     (Company settings → Online Desktop → Connect).",
                )
            })?;
        let service = connection
            .service(&self.service)
            .map_err(|e| Refusal::bad_state(e.to_string()))?;
        if self.shared.running.swap(true, Ordering::SeqCst) {
            if *self.shared.stop.borrow() {
                return Err(Refusal::bad_state(
                    "Synchronisation is stopping; start it again when it has stopped.",
                ));
            }
            return Ok(());
        }
        self.shared.stop.send_replace(false);
        let task = Task {
            folder,
            service,
            connection,
            host: self.host.clone(),
            events: Arc::clone(&self.events),
            shared: Arc::clone(&self.shared),
            client_config: self.client_config.clone(),
            timing: self.timing,
            now,
            counts: Counts::new(),
        };
        self.shared.status.lock().error = None;
        task.set_state(SyncState::Starting, None);
        spawner.spawn(async move {
            let _running = RunningGuard(Arc::clone(&task.shared));
            task.run().await;
        });
        Ok(())
    }

    /// Asks the engine to stop at its next safe point; returns at once.
    pub fn stop(&self) {
        if self.shared.running.load(Ordering::SeqCst) {
            self.shared.stop.send_replace(true);
            let mut status = self.shared.status.lock();
            if status.state != SyncState::Stopped {
                status.state = SyncState::Stopping;
            }
        }
    }

    /// The host committed changes: push them now rather than at the next
    /// look at the change log.
    pub fn notify(&self) {
        self.shared.wake.notify_one();
    }

    /// Whether the engine task is alive.
    pub fn running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Waits (on the runtime) until the engine task has ended, at most
    /// `within`; true when it has.
    pub async fn stopped(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.running() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The stored connection, if there is one.
    pub fn connection(&self) -> Result<Option<Connection>, Refusal> {
        connection::load(self.folder()?).map_err(|e| Refusal::internal(e.to_string()))
    }

    /// Disconnect's local part: removes the connection, the schedule and
    /// `state.db` (ids, shadows, checkpoints); the history stays. Only for
    /// an engine that does not run.
    pub fn forget_everything(&self) -> Result<(), Refusal> {
        let folder = self.folder()?;
        if self.running() {
            return Err(Refusal::bad_state(
                "Synchronisation is running; stop it before disconnecting.",
            ));
        }
        self.forget_connection()?;
        for file in [
            "state.db",
            "state.db-wal",
            "state.db-shm",
            "state.db-journal",
        ] {
            let path = folder.join(file);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Refusal::internal(format!("{}: {e}", path.display()))),
            }
        }
        *self.shared.status.lock() = Status::new();
        Ok(())
    }

    /// Update connection's reconciliation of a noticed restore
    /// ([`restore::reconcile`], docs/SYNC_PROTOCOL.md §9): sets the
    /// service's host marker to the reconciled position (with the stored,
    /// new credentials and the lease), then the local bookkeeping. Answers
    /// the position, or `None` when no restore was noticed. Only for an
    /// engine that does not run.
    pub async fn reconcile_restore(&self) -> Result<Option<Reconciled>, Refusal> {
        let folder = self.folder()?.to_path_buf();
        if self.running() {
            return Err(Refusal::bad_state(
                "Synchronisation is running; stop it before updating the connection.",
            ));
        }
        if !folder.join("state.db").exists() {
            return Ok(None);
        }
        let mut state = State::open(&folder).map_err(|e| Refusal::internal(e.to_string()))?;
        let Some(noticed) =
            restore::detected(&state).map_err(|e| Refusal::internal(e.to_string()))?
        else {
            return Ok(None);
        };
        let host_position = HostRecords::position(&self.host).map_err(|e| Refusal {
            code: OD_RESULT_HOST_CALLBACK_FAILED,
            message: e.to_string(),
        })?;
        let position = noticed.min(host_position);
        let connection = connection::load(&folder)
            .map_err(|e| Refusal::internal(e.to_string()))?
            .ok_or_else(|| {
                Refusal::bad_state("This company is not connected to Online Desktop.")
            })?;
        let service = connection
            .service(&self.service)
            .map_err(|e| Refusal::bad_state(e.to_string()))?;
        let client = Client::new(service, self.client_config.clone())
            .map_err(|e| Refusal::internal(e.to_string()))?;
        let device = DeviceSession::new(connection.credentials());
        let refused = |e: ClientError| Refusal {
            code: e.status_code(),
            message: format!("The online service could not be told about the restore: {e}"),
        };
        let lease = client
            .lease(&device, Some(&connection.computer_id))
            .await
            .map_err(refused)?;
        client
            .set_host_marker(
                &device,
                lease.fencing,
                &HostMarker {
                    position: Some(position),
                    generation: None,
                },
            )
            .await
            .map_err(refused)?;
        // Row by row (docs/SYNC_PROTOCOL.md §9.3) once the first sync had
        // finished; an unfinished one starts again from the position.
        let mut report = None;
        if first_sync::finished(&state).map_err(|e| Refusal::internal(e.to_string()))? {
            let schema: Schema = self
                .host
                .call("schema.entities", &serde_json::json!({}))
                .map_err(|e| Refusal {
                    code: OD_RESULT_HOST_CALLBACK_FAILED,
                    message: e.to_string(),
                })?;
            let remote = super::adapters::ServiceRemote {
                client: &client,
                device: &device,
                fencing: lease.fencing,
            };
            let done = super::reconcile::run(&schema, &self.host, &remote, &mut state, position)
                .await
                .map_err(|e| Refusal {
                    code: match e {
                        super::reconcile::ReconcileError::Host(_) => OD_RESULT_HOST_CALLBACK_FAILED,
                        super::reconcile::ReconcileError::Remote(_) => {
                            OD_RESULT_SERVICE_UNAVAILABLE
                        }
                        _ => OD_RESULT_INTERNAL,
                    },
                    message: format!("The records could not all be compared and put right: {e}"),
                })?;
            report = Some(done);
        }
        // A new generation: the restored database's marker is an old one.
        rotate_generation(&self.host, &client, &device, lease.fencing, &mut state)
            .await
            .map_err(|e| match e {
                Rotation::Service(e) => refused(e),
                Rotation::State(e) => Refusal::internal(e.to_string()),
            })?;
        restore::reconcile(&mut state, position).map_err(|e| Refusal::internal(e.to_string()))?;
        tracing::warn!(
            position,
            report = ?report,
            "a restored company database was reconciled row by row: the online state won where the \
             program's rows differed (conflicts recorded), lost records were created again, new rows sent"
        );
        Ok(Some(Reconciled { position, report }))
    }

    /// The current status; when the engine does not run, what the files
    /// say (connected, first sync done, scheduled, last success).
    pub fn status(&self) -> Status {
        let mut status = self.shared.status.lock().clone();
        if self.running() {
            return status;
        }
        let Some(folder) = self.folder.as_deref() else {
            status.state = SyncState::NotConnected;
            return status;
        };
        if !matches!(connection::load(folder), Ok(Some(_))) {
            status.state = SyncState::NotConnected;
        } else if status.state != SyncState::Failed {
            status.state = SyncState::Stopped;
        }
        status.first_sync_done = first_sync::finished_in(folder);
        status.scheduled_at = if status.first_sync_done {
            None
        } else {
            Engine::scheduled(folder)
        };
        // Reading the status creates nothing (a cancelled connect wizard
        // leaves the folder empty).
        if status.last_success.is_none() && folder.join("history.db").exists() {
            status.last_success = History::open(folder)
                .and_then(|h| h.last_success())
                .ok()
                .flatten();
        }
        status.blocked = false;
        status.progress = None;
        status
    }

    /// The history as JSON (`od_plugin_sync_history`): runs, newest first,
    /// and the conflicts of the last 7 days.
    pub fn history_json(&self) -> Result<String, Refusal> {
        let folder = self.folder()?;
        let runs = if folder.join("history.db").exists() {
            History::open(folder)
                .and_then(|h| h.runs(200))
                .map_err(|e| Refusal::internal(format!("the history could not be read: {e}")))?
        } else {
            Vec::new()
        };
        let since = Utc::now() - chrono::Duration::days(7);
        let conflicts = if folder.join("state.db").exists() {
            State::open(folder)
                .and_then(|s| s.conflicts())
                .map_err(|e| Refusal::internal(e.to_string()))?
                .into_iter()
                .filter(|c| {
                    DateTime::parse_from_rfc3339(&c.recorded_at)
                        .is_ok_and(|at| at.with_timezone(&Utc) >= since)
                })
                .map(|c| {
                    serde_json::json!({
                        "entity": c.entity,
                        "global_id": c.global_id,
                        "field": c.field,
                        "host_value": c.host_value,
                        "online_value": c.online_value,
                        "outcome": c.outcome,
                        "recorded_at": c.recorded_at,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let parked: Vec<serde_json::Value> = if folder.join("state.db").exists() {
            State::open(folder)
                .and_then(|s| continuous::parked(&s))
                .map_err(|e| Refusal::internal(e.to_string()))?
                .into_iter()
                .map(|p| {
                    serde_json::json!({
                        "entity": p.entity,
                        "global_id": p.global_id,
                        "reason": p.reason,
                        "since": p.since,
                        "tries": p.tries,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(
            serde_json::json!({ "runs": runs, "conflicts": conflicts, "parked": parked })
                .to_string(),
        )
    }
}

/// Clears `running` when the task ends, however it ends (also when the
/// runtime drops it at shutdown).
struct RunningGuard(Arc<Shared>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

/// The host is blocked while this lives; unblocked however the first sync
/// ends (also when the plugin is destroyed in the middle of it).
struct Block<'a> {
    host: &'a Host,
    shared: &'a Shared,
}

impl<'a> Block<'a> {
    fn new(host: &'a Host, shared: &'a Shared) -> Result<Block<'a>, Failure> {
        host.call::<_, serde_json::Value>(
            "sync.block",
            &serde_json::json!({
                "reason": "Online Desktop is sending the company's data online for the first time. \
                           The program can be used again as soon as it has finished."
            }),
        )
        .map_err(|e| {
            Failure::retry(
                OD_RESULT_HOST_CALLBACK_FAILED,
                format!("The program could not be blocked for the first synchronisation: {e}"),
            )
        })?;
        shared.status.lock().blocked = true;
        Ok(Block { host, shared })
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .host
            .call::<_, serde_json::Value>("sync.unblock", &serde_json::json!({}))
        {
            tracing::error!(
                "the program could not be unblocked after the first synchronisation: {e}"
            );
        }
        self.shared.status.lock().blocked = false;
    }
}

/// One run of the engine, from start to stop.
struct Task {
    folder: PathBuf,
    service: ServiceUrl,
    connection: Connection,
    host: Host,
    events: Arc<EventQueue>,
    shared: Arc<Shared>,
    client_config: ClientConfig,
    timing: Timing,
    now: bool,
    counts: Counts,
}

/// Everything one connected session needs.
struct Session {
    client: Client,
    device: DeviceSession,
    schema: Schema,
    state: State,
    fencing: u64,
    renew_at: Instant,
    /// When the generation marker is rotated next (signal 3).
    rotate_at: Instant,
}

/// How often the generation marker is rotated while synchronisation runs
/// (docs/SYNC_PROTOCOL.md §9.1, signal 3).
const ROTATE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

impl Task {
    fn set_state(&self, state: SyncState, error: Option<&Failure>) {
        self.set_state_with(state, error, |_| {});
    }

    /// Sets the state and, under the same lock, whatever else goes with it,
    /// so that a status read in between never shows half of it.
    fn set_state_with(
        &self,
        state: SyncState,
        error: Option<&Failure>,
        also: impl FnOnce(&mut Status),
    ) {
        let changed = {
            let mut status = self.shared.status.lock();
            also(&mut status);
            let changed = status.state != state || status.error.as_ref() != error;
            status.state = state;
            status.error = error.cloned();
            if state != SyncState::FirstSync {
                status.progress = None;
            }
            changed
        };
        if changed {
            self.events.post(Event {
                kind: EventKind::SyncState,
                payload: Some(
                    serde_json::json!({
                        "state": state.name(),
                        "error": error.map(|f| f.message.as_str()),
                    })
                    .to_string(),
                ),
            });
        }
    }

    fn stopping(&self) -> bool {
        *self.shared.stop.borrow()
    }

    /// Waits `pause`, or less when a stop is asked; true when stopped.
    async fn pause(&self, pause: Duration) -> bool {
        let mut stop = self.shared.stop.subscribe();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => true,
            _ = tokio::time::sleep(pause) => self.stopping(),
        }
    }

    async fn run(mut self) {
        let timing = self.timing;
        let mut backoff = timing.backoff.0;
        let outcome = loop {
            let started = Instant::now();
            match self.session().await {
                Ok(()) => break None,
                Err(failure) => {
                    tracing::warn!(code = failure.code, "synchronisation: {}", failure.message);
                    let Some(least) = failure.retry else {
                        break Some(failure);
                    };
                    // A session that ran a while before failing starts the
                    // pauses again from the shortest.
                    if started.elapsed() > timing.backoff.1 {
                        backoff = timing.backoff.0;
                    }
                    let pause = least.max(backoff);
                    backoff = (backoff * 2).min(timing.backoff.1);
                    self.set_state(SyncState::Retrying, Some(&failure));
                    if self.pause(pause).await {
                        break None;
                    }
                }
            }
        };
        match &outcome {
            None => self.set_state(SyncState::Stopped, None),
            Some(failure) => self.set_state(SyncState::Failed, Some(failure)),
        }
        tracing::info!("synchronisation stopped");
    }

    /// Connects and synchronises until stopped (Ok) or an error.
    async fn session(&mut self) -> Result<(), Failure> {
        if self.stopping() {
            return Ok(());
        }
        self.set_state(SyncState::Starting, None);
        // Connecting may wait on a silent service through its retries; a
        // stop does not wait for that (nothing is half-done yet).
        let mut stop = self.shared.stop.subscribe();
        let mut session = tokio::select! {
            session = self.connect() => session?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        self.check_restore(&mut session.state)?;
        self.check_generation(&mut session).await?;
        self.rotate_generation(&mut session).await?;
        let outcome = self.synchronise(&mut session).await;
        if matches!(&outcome, Err(f) if f.code == OD_RESULT_HOST_RESTORED) {
            // The service refused a push (signal 2): noted, so that the
            // engine does not run again until Update connection.
            let position = HostRecords::position(&self.host)
                .ok()
                .or_else(|| restore::pushed(&session.state).ok().flatten())
                .unwrap_or(0);
            if let Err(e) = restore::note(&mut session.state, position) {
                tracing::error!("the restore could not be noted in the add-on's state: {e}");
            }
        }
        outcome
    }

    async fn synchronise(&mut self, session: &mut Session) -> Result<(), Failure> {
        let done = first_sync::finished(&session.state)
            .map_err(|e| Failure::retry(OD_RESULT_INTERNAL, e.to_string()))?;
        self.shared.status.lock().first_sync_done = done;
        if !done && self.first_sync(session).await? {
            return Ok(());
        }
        self.continuous(session).await
    }

    /// Restore detection, signal 3 (docs/SYNC_PROTOCOL.md §9.1): the
    /// generation marker in the company database is not the one online (a
    /// backup from before the last rotation was put back, even one whose
    /// change log has since passed the position pushed). A host that keeps
    /// no marker (`sync.marker.get` unknown) is not checked.
    async fn check_generation(&self, session: &mut Session) -> Result<(), Failure> {
        let host: restore::HostGeneration =
            match self.host.call("sync.marker.get", &serde_json::json!({})) {
                Ok(marker) => marker,
                Err(e) => {
                    tracing::debug!("the program keeps no generation marker: {e}");
                    return Ok(());
                }
            };
        let online = session
            .client
            .sync_status(&session.device)
            .await
            .map_err(|e| Failure::service(&e))?;
        let internal =
            |e: super::state::StateError| Failure::retry(OD_RESULT_INTERNAL, e.to_string());
        let differs = restore::generation_differs(
            &session.state,
            host.generation.as_deref(),
            online.host.generation.as_deref(),
        )
        .map_err(internal)?;
        if differs {
            let position = HostRecords::position(&self.host)
                .map_err(|e| Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, e.to_string()))?;
            tracing::error!(
                host = host.generation.as_deref().unwrap_or(""),
                online = online.host.generation.as_deref().unwrap_or(""),
                "the company database's generation marker is not the one online"
            );
            restore::note(&mut session.state, position).map_err(internal)?;
            return Err(Failure::stop(OD_RESULT_HOST_RESTORED, restore::reason()));
        }
        Ok(())
    }

    /// Rotates the generation marker ([`rotate_generation`]); next in a
    /// day.
    async fn rotate_generation(&self, session: &mut Session) -> Result<(), Failure> {
        session.rotate_at = Instant::now() + ROTATE_EVERY;
        rotate_generation(
            &self.host,
            &session.client,
            &session.device,
            session.fencing,
            &mut session.state,
        )
        .await
        .map_err(|e| match e {
            Rotation::Service(e) => Failure::service(&e),
            Rotation::State(e) => Failure::retry(OD_RESULT_INTERNAL, e.to_string()),
        })
    }

    /// Restore detection, signal 1 (docs/SYNC_PROTOCOL.md §9): the host's
    /// change log is behind what was pushed, or a restore was noticed
    /// before and not reconciled yet. Stops the engine with the reason.
    fn check_restore(&self, state: &mut State) -> Result<(), Failure> {
        let internal =
            |e: super::state::StateError| Failure::retry(OD_RESULT_INTERNAL, e.to_string());
        let restored = || Failure::stop(OD_RESULT_HOST_RESTORED, restore::reason());
        if restore::detected(state).map_err(internal)?.is_some() {
            return Err(restored());
        }
        let position = HostRecords::position(&self.host)
            .map_err(|e| Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, e.to_string()))?;
        if restore::behind(state, position).map_err(internal)? {
            tracing::error!(position, "the host's change log is behind what was pushed");
            restore::note(state, position).map_err(internal)?;
            return Err(restored());
        }
        Ok(())
    }

    async fn connect(&mut self) -> Result<Session, Failure> {
        let state = State::open(&self.folder)
            .map_err(|e| Failure::stop(OD_RESULT_INTERNAL, e.to_string()))?;
        // Newer credentials may have been stored by an earlier session.
        if let Ok(Some(stored)) = connection::load(&self.folder) {
            self.connection = stored;
        }
        let client = Client::new(self.service.clone(), self.client_config.clone())
            .map_err(|e| Failure::stop(OD_RESULT_INTERNAL, e.to_string()))?;
        let folder = self.folder.clone();
        let base = self.connection.clone();
        let device = DeviceSession::new(self.connection.credentials()).on_refresh(move |fresh| {
            if let Err(e) = connection::save(&folder, &base.with_credentials(fresh)) {
                tracing::error!("the renewed connection could not be stored: {e}");
            }
        });
        let schema: Schema = self
            .host
            .call("schema.entities", &serde_json::json!({}))
            .map_err(|e| Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, e.to_string()))?;
        schema::travel_order(&schema)
            .map_err(|e| Failure::stop(OD_RESULT_HOST_DATA_INVALID, e.to_string()))?;
        let lease = client
            .lease(&device, Some(&self.connection.computer_id))
            .await
            .map_err(|e| Failure::service(&e))?;
        client
            .put_schema(&device, lease.fencing, &schema)
            .await
            .map_err(|e| Failure::service(&e))?;
        tracing::info!(fencing = lease.fencing, "synchronisation connected");
        let mut state = state;
        // Housekeeping at each start: old conflicts go; parked changes are
        // tried again at once (the program may have been fixed meanwhile).
        let before = stamp(Utc::now() - chrono::Duration::days(CONFLICT_DAYS));
        let pruned = state
            .commit(|b| b.prune_conflicts(&before).map(drop))
            .and_then(|()| continuous::retry_parked(&mut state));
        if let Err(e) = pruned {
            tracing::warn!("the add-on's housekeeping failed: {e}");
        }
        Ok(Session {
            client,
            device,
            schema,
            state,
            fencing: lease.fencing,
            renew_at: Instant::now() + self.timing.lease_renew,
            rotate_at: Instant::now(),
        })
    }

    async fn renew_lease(&self, session: &mut Session) -> Result<(), Failure> {
        if Instant::now() < session.renew_at {
            return Ok(());
        }
        let lease = session
            .client
            .lease(&session.device, Some(&self.connection.computer_id))
            .await
            .map_err(|e| Failure::service(&e))?;
        if lease.fencing != session.fencing {
            tracing::info!(
                old = session.fencing,
                new = lease.fencing,
                "the lease was taken anew"
            );
            session.fencing = lease.fencing;
        }
        session.renew_at = Instant::now() + self.timing.lease_renew;
        Ok(())
    }

    /// Runs the first synchronisation; true when it was stopped.
    async fn first_sync(&mut self, session: &mut Session) -> Result<bool, Failure> {
        // Waits for the scheduled time, read afresh each time round so
        // that a new schedule (or none) takes effect at once. The lease is
        // kept meanwhile, so no other computer starts instead.
        while let Some(at) =
            Engine::scheduled(&self.folder).filter(|at| !self.now && Utc::now() < *at)
        {
            self.shared.status.lock().scheduled_at = Some(at);
            self.set_state(SyncState::Scheduled, None);
            let left = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                stopped = self.pause(left.min(self.timing.lease_renew)) => if stopped { return Ok(true) },
                _ = self.shared.wake.notified() => {}
            }
            self.renew_lease(session).await?;
        }
        let handover = self.handover(session).await?;
        if handover.is_none() {
            self.everybody_logged_out()?;
        }
        let kind = match handover {
            Some(_) => RunKind::Takeover,
            None => RunKind::FirstSync,
        };
        let mut journal = open_run(&self.folder, kind);
        self.set_state(SyncState::FirstSync, None);
        let outcome = match handover {
            Some(handover) => self.take_over(session, handover).await,
            None => self.first_sync_blocked(session, &mut journal).await,
        };
        if let Some((history, run)) = &journal {
            let run = *run;
            let (word, error) = match &outcome {
                Ok(true) => ("stopped", None),
                Ok(false) => ("finished", None),
                Err(f) => ("failed", Some(f.message.as_str())),
            };
            if let Err(e) = history.finish(run, Utc::now(), word, &self.counts, error) {
                tracing::warn!("the history could not be written: {e}");
            }
        }
        self.counts.clear();
        if let Ok(false) = outcome {
            // Done and running at once: a host waiting for `running` after
            // the first sync never sees "done" while still "first_sync".
            self.set_state_with(SyncState::Running, None, |status| {
                status.first_sync_done = true;
                status.scheduled_at = None;
                status.last_success = Some(Utc::now());
            });
            let _ = std::fs::remove_file(self.folder.join(SCHEDULE_FILE));
        }
        outcome
    }

    /// The first sync needs everybody else logged out of the company.
    fn everybody_logged_out(&self) -> Result<(), Failure> {
        let sessions = self
            .host
            .active_sessions()
            .map_err(|e| Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, e.to_string()))?;
        if !sessions.users.is_empty() || !sessions.integrations.is_empty() {
            let mut who: Vec<String> = sessions
                .users
                .iter()
                .map(|u| format!("{} on {}", u.username, u.computer))
                .collect();
            who.extend(
                sessions
                    .integrations
                    .iter()
                    .map(|i| format!("the API integration {}", i.name)),
            );
            return Err(Failure {
                code: OD_RESULT_BAD_STATE,
                message: format!(
                    "The first synchronisation waits until everybody else has logged out of this company \
                     (logged in now: {}). It starts by itself when they have.",
                    who.join(", ")
                ),
                retry: Some(self.timing.sessions_retry),
            });
        }
        Ok(())
    }

    /// A first sync that begins from nothing while the company's data is
    /// online already would mint new ids for records that have ones: every
    /// record online twice. That happens when another computer synchronised
    /// the company before (synchronisation was moved here), or this
    /// computer's add-on folder was lost. Then the online records are taken
    /// over instead (docs/SYNC_PROTOCOL.md §10): where the previous sync
    /// computer left off, when there is something online.
    async fn handover(&self, session: &mut Session) -> Result<Option<Handover>, Failure> {
        let started = first_sync::started(&session.state)
            .map_err(|e| Failure::retry(OD_RESULT_INTERNAL, e.to_string()))?;
        if started {
            return Ok(None);
        }
        let online = session
            .client
            .sync_status(&session.device)
            .await
            .map_err(|e| Failure::service(&e))?;
        let records: u64 = online.entities.iter().map(|e| e.records + e.deleted).sum();
        if records == 0 {
            return Ok(None);
        }
        Ok(Some(Handover {
            host_position: online.host.position.unwrap_or(0),
            cursor: online.last_acknowledged,
        }))
    }

    /// Takes the online records over (docs/SYNC_PROTOCOL.md §10); the
    /// first sync's end when it is done.
    async fn take_over(
        &mut self,
        session: &mut Session,
        handover: Handover,
    ) -> Result<bool, Failure> {
        tracing::info!(
            host_position = handover.host_position,
            cursor = handover.cursor,
            "the company is online already: taking synchronisation over"
        );
        let stop = AtomicBool::new(false);
        let remote = super::adapters::ServiceRemote {
            client: &session.client,
            device: &session.device,
            fencing: session.fencing,
        };
        let mut stop_watch = self.shared.stop.subscribe();
        let titles: BTreeMap<String, String> = session
            .schema
            .entities
            .iter()
            .map(|e| (e.name.clone(), e.title.clone()))
            .collect();
        let shared = &self.shared;
        let events = &self.events;
        let run = takeover::run(
            &session.schema,
            &self.host,
            &remote,
            &mut session.state,
            handover,
            &stop,
            |entity: &str, looked: u64| {
                let progress = Progress {
                    entity: entity.to_owned(),
                    entity_title: titles
                        .get(entity)
                        .cloned()
                        .unwrap_or_else(|| entity.to_owned()),
                    entity_done: looked,
                    entity_total: looked,
                    done: looked,
                    total: looked,
                    seconds_left: None,
                };
                shared.status.lock().progress = Some(progress.clone());
                events.post_latest(Event {
                    kind: EventKind::SyncProgress,
                    payload: serde_json::to_string(&progress).ok(),
                });
            },
        );
        let keep = keep_lease(
            &session.client,
            &session.device,
            &self.connection.computer_id,
            session.fencing,
            self.timing.lease_renew,
        );
        let outcome = lease_kept(run, keep, &mut stop_watch, &stop).await?;
        match outcome {
            Ok(report) => {
                tracing::info!(
                    adopted = report.adopted,
                    sent = report.sent,
                    "synchronisation taken over"
                );
                for (entity, sent) in &report.entities {
                    history::add(&mut self.counts, entity, *sent, 0);
                }
                Ok(false)
            }
            Err(takeover::TakeoverError::Stopped) => Ok(true),
            Err(takeover::TakeoverError::Remote(message)) => Err(transfer_failure(Transfer::Remote, message)),
            Err(takeover::TakeoverError::HostRestored(message)) => {
                Err(transfer_failure(Transfer::HostRestored, message))
            }
            Err(takeover::TakeoverError::Host(message)) => Err(transfer_failure(Transfer::Host, message)),
            Err(takeover::TakeoverError::Unmatched(records)) => Err(Failure::stop(
                OD_RESULT_BAD_STATE,
                format!(
                    "The online copy of this company already holds {records} records, but they cannot be matched to \
                     the records in the program (they were sent by an older version of Online Desktop). Sending the \
                     company again from here would put every record online twice, so synchronisation does not \
                     start. Disconnect in Company settings → Online Desktop and connect again."
                ),
            )),
            Err(other) => Err(Failure::retry(OD_RESULT_INTERNAL, other.to_string())),
        }
    }

    async fn first_sync_blocked(
        &mut self,
        session: &mut Session,
        journal: &mut Option<(History, i64)>,
    ) -> Result<bool, Failure> {
        let _block = Block::new(&self.host, &self.shared)?;
        // Totals per entity first, for the overall progress and the time left.
        let order: Vec<(String, String)> = schema::travel_order(&session.schema)
            .map_err(|e| Failure::stop(OD_RESULT_HOST_DATA_INVALID, e.to_string()))?
            .iter()
            .map(|e| (e.name.clone(), e.title.clone()))
            .collect();
        let mut totals = std::collections::BTreeMap::new();
        for (name, _) in &order {
            let count = HostRecords::count(&self.host, name)
                .map_err(|e| Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, e.to_string()))?;
            totals.insert(name.clone(), (0u64, count));
        }
        let started = Instant::now();
        let mut sent_here = 0u64;
        let stop = AtomicBool::new(false);
        let remote = super::adapters::ServiceRemote {
            client: &session.client,
            device: &session.device,
            fencing: session.fencing,
        };
        let mut stop_watch = self.shared.stop.subscribe();
        let computer_id = self.connection.computer_id.clone();
        let lease_renew = self.timing.lease_renew;
        let counts = &mut self.counts;
        let shared = &self.shared;
        let events = &self.events;
        let run = first_sync::run(
            &session.schema,
            &self.host,
            &remote,
            &mut session.state,
            &stop,
            |p: first_sync::Progress| {
                sent_here += p.batch;
                history::add(counts, &p.entity, p.batch, 0);
                // Per batch, so that a run cut short by a crash still tells
                // what it sent.
                if let (true, Some((history, run))) = (p.batch > 0, journal.as_mut()) {
                    if let Err(e) = history.update(*run, counts) {
                        tracing::warn!("the history could not be written: {e}");
                    }
                }
                totals.insert(p.entity.clone(), (p.done, p.total));
                let done: u64 = totals.values().map(|(d, _)| *d).sum();
                let total: u64 = totals.values().map(|(d, t)| (*t).max(*d)).sum();
                let elapsed = started.elapsed().as_secs_f64();
                let seconds_left = (sent_here >= 2 * first_sync::BATCH as u64 && elapsed > 0.0)
                    .then(|| ((total - done) as f64 / (sent_here as f64 / elapsed)).ceil() as u64);
                let title = order
                    .iter()
                    .find(|(name, _)| *name == p.entity)
                    .map_or_else(|| p.entity.clone(), |(_, t)| t.clone());
                let progress = Progress {
                    entity: p.entity.clone(),
                    entity_title: title,
                    entity_done: p.done,
                    entity_total: p.total,
                    done,
                    total,
                    seconds_left,
                };
                shared.status.lock().progress = Some(progress.clone());
                events.post_latest(Event {
                    kind: EventKind::SyncProgress,
                    payload: serde_json::to_string(&progress).ok(),
                });
            },
        );
        // The stop flag is copied into first_sync's between batches.
        // The lease lasts a minute; a big first sync takes longer.
        let keep = keep_lease(
            &session.client,
            &session.device,
            &computer_id,
            session.fencing,
            lease_renew,
        );
        let outcome = lease_kept(run, keep, &mut stop_watch, &stop).await?;
        match outcome {
            Ok(position) => {
                tracing::info!(position, "first synchronisation finished");
                Ok(false)
            }
            Err(first_sync::FirstSyncError::Stopped) => Ok(true),
            Err(first_sync::FirstSyncError::Remote(message)) => {
                Err(transfer_failure(Transfer::Remote, message))
            }
            Err(first_sync::FirstSyncError::HostRestored(message)) => {
                Err(transfer_failure(Transfer::HostRestored, message))
            }
            Err(first_sync::FirstSyncError::Host(message)) => {
                Err(transfer_failure(Transfer::Host, message))
            }
            Err(other) => Err(Failure::retry(OD_RESULT_INTERNAL, other.to_string())),
        }
    }

    async fn continuous(&mut self, session: &mut Session) -> Result<(), Failure> {
        let mut journal = open_run(&self.folder, RunKind::Continuous);
        let outcome = self.continuous_rounds(session, &mut journal).await;
        if let Some((history, run)) = &journal {
            let run = *run;
            let (word, error) = match &outcome {
                Ok(()) => ("stopped", None),
                Err(f) => ("failed", Some(f.message.as_str())),
            };
            if let Err(e) = history.finish(run, Utc::now(), word, &self.counts, error) {
                tracing::warn!("the history could not be written: {e}");
            }
        }
        self.counts.clear();
        outcome
    }

    async fn continuous_rounds(
        &mut self,
        session: &mut Session,
        journal: &mut Option<(History, i64)>,
    ) -> Result<(), Failure> {
        let sync = |e: continuous::SyncError| match e {
            continuous::SyncError::Host(message) => {
                Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, message)
            }
            continuous::SyncError::Remote(message) => {
                Failure::retry(OD_RESULT_SERVICE_UNAVAILABLE, message)
            }
            continuous::SyncError::HostRestored(message) => {
                tracing::error!("{message}");
                Failure::stop(OD_RESULT_HOST_RESTORED, restore::reason())
            }
            other => Failure::retry(OD_RESULT_INTERNAL, other.to_string()),
        };
        let mut stop = self.shared.stop.subscribe();
        let mut last_written = Instant::now();
        loop {
            if self.stopping() {
                return Ok(());
            }
            self.check_restore(&mut session.state)?;
            self.renew_lease(session).await?;
            if Instant::now() >= session.rotate_at {
                self.rotate_generation(session).await?;
            }
            let remote = super::adapters::ServiceRemote {
                client: &session.client,
                device: &session.device,
                fencing: session.fencing,
            };
            let mut moved = false;
            loop {
                let report = continuous::push_local(
                    &session.schema,
                    &self.host,
                    &remote,
                    &mut session.state,
                )
                .await
                .map_err(sync)?;
                for (entity, n) in &report.entities {
                    history::add(&mut self.counts, entity, *n as u64, 0);
                }
                moved |= report.pushed > 0;
                if !report.more || self.stopping() {
                    break;
                }
            }
            let pushed = continuous::host_position(&session.state)
                .map_err(|e| Failure::retry(OD_RESULT_INTERNAL, e.to_string()))?;
            let position = HostRecords::position(&self.host).unwrap_or(pushed);
            {
                let mut status = self.shared.status.lock();
                status.pending_to_online = position.saturating_sub(pushed);
                status.last_success = Some(Utc::now());
            }
            self.set_state(SyncState::Running, None);
            if let Some((history, run)) = journal.as_mut() {
                if moved || last_written.elapsed() > self.timing.history_every {
                    let _ = history.update(*run, &self.counts);
                    let _ = history.succeeded(*run, Utc::now());
                    last_written = Instant::now();
                }
            }
            let renew_in = session.renew_at.saturating_duration_since(Instant::now());
            let pull = continuous::pull_remote(
                &session.schema,
                &self.host,
                &remote,
                &mut session.state,
                1_000,
                self.timing
                    .long_poll
                    .min(renew_in.max(Duration::from_secs(1))),
            );
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Ok(()),
                report = pull => {
                    let report = report.map_err(sync)?;
                    for (entity, n) in &report.entities {
                        history::add(&mut self.counts, entity, 0, *n as u64);
                    }
                    let mut status = self.shared.status.lock();
                    status.pending_to_host = (report.waiting + report.parked) as u64;
                    status.parked = report.parked as u64;
                    drop(status);
                    if !report.entities.is_empty() {
                        if let Some((history, run)) = journal.as_mut() {
                            let _ = history.update(*run, &self.counts);
                        }
                    }
                }
                _ = local_change(&self.host, pushed, &self.shared.wake, self.timing.watch) => {}
            }
        }
    }
}

/// Runs a long transfer (the first sync, a takeover) while `keep` keeps the
/// lease: a stop asked for is passed on through `stop` (the transfer stops
/// at its next safe point); a lost lease ends it at once.
async fn lease_kept<T>(
    run: impl Future<Output = T>,
    keep: impl Future<Output = Failure>,
    stop_watch: &mut watch::Receiver<bool>,
    stop: &AtomicBool,
) -> Result<T, Failure> {
    tokio::pin!(run);
    tokio::pin!(keep);
    // Once passed on, the watch is not looked at again: `wait_for` would
    // answer at once, every time round, until the transfer has stopped.
    let mut asked = false;
    loop {
        tokio::select! {
            result = &mut run => return Ok(result),
            failure = &mut keep => return Err(failure),
            _ = stop_watch.wait_for(|s| *s), if !asked => {
                stop.store(true, Ordering::SeqCst);
                asked = true;
            }
        }
    }
}

/// Where the first sync or a takeover broke off.
enum Transfer {
    Remote,
    HostRestored,
    Host,
}

/// How the first sync and the takeover stop or retry on what they share.
fn transfer_failure(kind: Transfer, message: String) -> Failure {
    match kind {
        Transfer::Remote => Failure::retry(OD_RESULT_SERVICE_UNAVAILABLE, message),
        Transfer::HostRestored => {
            tracing::error!("{message}");
            Failure::stop(OD_RESULT_HOST_RESTORED, restore::reason())
        }
        Transfer::Host => Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, message),
    }
}

enum Rotation {
    Service(ClientError),
    State(super::state::StateError),
}

/// Rotates the generation marker (signal 3, docs/SYNC_PROTOCOL.md §9.3):
/// committed in `state.db` first, then written to the host, then online; a
/// rotation cut short is recognised by the pending marker. Nothing for a
/// host that keeps no marker (`sync.marker.set` unknown).
async fn rotate_generation(
    host: &Host,
    client: &Client,
    device: &DeviceSession,
    fencing: u64,
    state: &mut State,
) -> Result<(), Rotation> {
    let marker = restore::begin_rotation(state).map_err(Rotation::State)?;
    let written: Result<serde_json::Value, _> = host.call(
        "sync.marker.set",
        &serde_json::json!({ "generation": marker }),
    );
    if let Err(e) = written {
        tracing::debug!("the program keeps no generation marker: {e}");
        return restore::end_rotation(state).map_err(Rotation::State);
    }
    client
        .set_host_marker(
            device,
            fencing,
            &HostMarker {
                position: None,
                generation: Some(marker),
            },
        )
        .await
        .map_err(Rotation::Service)?;
    restore::end_rotation(state).map_err(Rotation::State)
}

/// Renews the lease every `interval` while other work runs; resolves only
/// when it cannot (another computer took over, the service refuses, or the
/// lease lapsed and came back with a new fencing number, which makes the
/// writes under way stale).
async fn keep_lease(
    client: &Client,
    device: &DeviceSession,
    computer_id: &str,
    fencing: u64,
    interval: Duration,
) -> Failure {
    loop {
        tokio::time::sleep(interval).await;
        match client.lease(device, Some(computer_id)).await {
            Ok(lease) if lease.fencing == fencing => {}
            Ok(lease) => {
                return Failure::retry(
                    OD_RESULT_SERVICE_REFUSED,
                    format!(
                    "the synchronisation lease lapsed and was taken anew (fencing {fencing} → {})",
                    lease.fencing
                ),
                )
            }
            Err(e) => return Failure::service(&e),
        }
    }
}

/// Opens the history and begins a run in it. Held as `&mut` across waits
/// (a SQLite connection is Send, not Sync). None when the history cannot be
/// written: synchronisation goes on without it.
fn open_run(folder: &Path, kind: RunKind) -> Option<(History, i64)> {
    let opened = History::open(folder).and_then(|h| {
        let run = h.begin(kind, Utc::now())?;
        Ok((h, run))
    });
    match opened {
        Ok(journal) => Some(journal),
        Err(e) => {
            tracing::warn!("the history could not be written: {e}");
            None
        }
    }
}

/// Resolves when the host's change log moves past `pushed`: looked at
/// every `interval`, or at once when the host notifies.
async fn local_change(host: &Host, pushed: u64, wake: &Notify, interval: Duration) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
        if HostRecords::position(host).is_ok_and(|p| p > pushed) {
            return;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The engine against the real online service (`TestServer` on
    //! 127.0.0.1) and an in-memory host with a real change log.
    use super::*;
    use crate::host::{HostChannel, HostError};
    use crate::sync::checksum::host_checksums;
    use crate::sync::continuous::tests::{host as log_host, schema, LogHost};
    use od_online::testing::{TestCompany, TestServer};
    use serde_json::{json, Value};
    use std::sync::atomic::AtomicUsize;
    use tracing::Dispatch;

    /// The in-memory host, plus what the engine asks of a whole program:
    /// the schema, paging, the log position, sessions and blocking.
    pub(crate) struct Program {
        pub(crate) log: Arc<LogHost>,
        pub(crate) sessions: Mutex<Value>,
        pub(crate) blocks: Mutex<Vec<String>>,
        pumps: AtomicUsize,
        /// Milliseconds each page takes (a big database on a slow disk).
        slow_pages: std::sync::atomic::AtomicU64,
        /// Pages read so far.
        pages: AtomicUsize,
        /// Milliseconds each read of the change log takes.
        slow_reads: std::sync::atomic::AtomicU64,
    }

    impl Program {
        /// A program with the test schema's demo rows and nobody else
        /// logged in.
        pub(crate) fn new() -> Arc<Program> {
            let (log, _) = log_host();
            Arc::new(Program {
                log,
                sessions: Mutex::new(json!({"users": [], "integrations": []})),
                blocks: Mutex::new(Vec::new()),
                pumps: AtomicUsize::new(0),
                slow_pages: std::sync::atomic::AtomicU64::new(0),
                pages: AtomicUsize::new(0),
                slow_reads: std::sync::atomic::AtomicU64::new(0),
            })
        }

        fn answer(&self, method: &str, params: &Value) -> Option<Value> {
            Some(match method {
                "schema.entities" => serde_json::to_value(schema()).unwrap(),
                "changes.position" => {
                    let all = self
                        .log
                        .request("changes.read", br#"{"after":0,"limit":100000000}"#);
                    let all: Value = serde_json::from_slice(&all.unwrap()).unwrap();
                    json!({ "seq": all["last_seq"] })
                }
                "records.count" => {
                    json!({ "count": self.log.rows(params["entity"].as_str()?).len() })
                }
                "records.page" => {
                    self.pages.fetch_add(1, Ordering::SeqCst);
                    let delay = self.slow_pages.load(Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(delay));
                    let after = params["after_local_id"].as_i64().unwrap_or(0);
                    let limit = params["limit"].as_u64().unwrap_or(1000) as usize;
                    let rows = self.log.rows(params["entity"].as_str()?);
                    let remembered = self.log.remembered(params["entity"].as_str()?);
                    let page: Vec<Value> = rows
                        .range(after + 1..)
                        .take(limit)
                        .map(|(id, fields)| {
                            json!({ "local_id": id, "fields": fields, "global_id": remembered.get(id) })
                        })
                        .collect();
                    let done = rows.range(after + 1..).count() <= limit;
                    json!({ "records": page, "done": done })
                }
                "sessions.active" => self.sessions.lock().clone(),
                "sync.block" | "sync.unblock" => {
                    self.blocks.lock().push(method.to_owned());
                    json!({})
                }
                _ => return None,
            })
        }
    }

    impl HostChannel for Program {
        fn request(&self, method: &str, params: &[u8]) -> Result<Vec<u8>, HostError> {
            if method == "changes.read" {
                let delay = self.slow_reads.load(Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(delay));
            }
            let parsed: Value = serde_json::from_slice(params).unwrap_or(Value::Null);
            match self.answer(method, &parsed) {
                Some(answer) => Ok(answer.to_string().into_bytes()),
                None => self.log.request(method, params),
            }
        }

        fn request_pump(&self) {
            self.pumps.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn fast() -> Timing {
        Timing {
            lease_renew: Duration::from_secs(2),
            long_poll: Duration::from_secs(1),
            watch: Duration::from_millis(50),
            backoff: (Duration::from_millis(50), Duration::from_millis(400)),
            history_every: Duration::from_secs(1),
            sessions_retry: Duration::from_millis(200),
        }
    }

    struct Fixture {
        server: TestServer,
        company: TestCompany,
        folder: tempfile::TempDir,
        program: Arc<Program>,
        events: Arc<EventQueue>,
        engine: Engine,
        runtime: Runtime,
    }

    fn device(server: &TestServer, company: &TestCompany, computer: &str) -> Value {
        let answer = server
            .post(&format!("/api/v1/companies/{}/devices", company.company_id))
            .bearer(&company.session.token)
            .json(&json!({ "computer_id": computer, "computer_name": computer }))
            .send();
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer.json()
    }

    fn fixture(licence: &str) -> Fixture {
        let server = TestServer::start();
        let company = server.connected_company(&format!("{licence}@example.com"), licence);
        let (log, _) = log_host();
        let program = Arc::new(Program {
            log,
            sessions: Mutex::new(json!({"users": [], "integrations": []})),
            blocks: Mutex::new(Vec::new()),
            pumps: AtomicUsize::new(0),
            slow_pages: std::sync::atomic::AtomicU64::new(0),
            pages: AtomicUsize::new(0),
            slow_reads: std::sync::atomic::AtomicU64::new(0),
        });
        let host = Host::new(program.clone());
        let events = Arc::new(EventQueue::new(host.clone()));
        let folder = tempfile::tempdir().unwrap();
        let engine = Engine::new(
            Some(folder.path().to_path_buf()),
            ServiceUrl::parse(server.base_url()).unwrap(),
            host,
            Arc::clone(&events),
        )
        .with_timing(fast());
        let answer = device(&server, &company, "pc-1");
        let connection = json!({
            "company_id": company.company_id,
            "computer_id": "pc-1",
            "device_id": answer["device_id"],
            "access_token": answer["access_token"],
            "access_expires_at": answer["access_expires_at"],
            "refresh_token": answer["refresh_token"],
        });
        engine.set_connection(&connection.to_string()).unwrap();
        Fixture {
            server,
            company,
            folder,
            program,
            events,
            engine,
            runtime: Runtime::new(Dispatch::none()),
        }
    }

    impl Fixture {
        fn wait_for(&self, what: &str, done: impl Fn(&Status) -> bool) -> Status {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let status = self.engine.status();
                if done(&status) {
                    return status;
                }
                assert!(
                    Instant::now() < deadline,
                    "waited in vain for {what}: {status:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        fn eventually(&self, what: &str, done: impl Fn() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !done() {
                assert!(
                    Instant::now() < deadline,
                    "waited in vain for {what}: {:?}",
                    self.engine.status()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        fn records(&self, entity: &str) -> String {
            format!(
                "/api/v1/companies/{}/records/{entity}",
                self.company.company_id
            )
        }

        fn online(&self, entity: &str, global_id: &str) -> Option<Value> {
            let answer = self
                .server
                .get(&format!("{}/{global_id}", self.records(entity)))
                .bearer(&self.company.session.token)
                .send();
            (answer.status == 200).then(|| answer.json()["fields"].clone())
        }

        fn global_id(&self, entity: &str, local: i64) -> Option<String> {
            State::open(self.folder.path())
                .unwrap()
                .global_id(entity, &local.to_string())
                .unwrap()
        }

        /// Both sides' canonical checksums per entity (the oracle of
        /// GUARANTEES.md): equal, and every host record sent.
        fn assert_same_on_both_sides(&self) {
            let connection = connection::load(self.folder.path()).unwrap().unwrap();
            let client = Client::new(
                ServiceUrl::parse(self.server.base_url()).unwrap(),
                ClientConfig::default(),
            )
            .unwrap();
            let device = DeviceSession::new(connection.credentials());
            let online = tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(client.checksum(&device))
                .unwrap();
            let state = State::open(self.folder.path()).unwrap();
            let host = host_checksums(&schema(), &Host::new(self.program.clone()), &state);
            for (entity, digest) in &host {
                assert!(
                    digest.unsent.is_empty(),
                    "{entity}: unsent {:?}",
                    digest.unsent
                );
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

        fn states_posted(&self) -> Vec<String> {
            self.events
                .drain()
                .into_iter()
                .filter(|e| e.kind == EventKind::SyncState)
                .map(|e| {
                    let payload: Value = serde_json::from_str(&e.payload.unwrap()).unwrap();
                    payload["state"].as_str().unwrap().to_owned()
                })
                .collect()
        }
    }

    fn company_data(log: &LogHost, contacts: usize) -> Vec<i64> {
        let seller = log.create("employees", json!({"name": "Kari Nordmann"}));
        (0..contacts)
            .map(|i| {
                let id = log.create(
                    "contacts",
                    json!({"number": null, "name": format!("Kunde {i}"), "city": "Oslo", "salesperson_id": seller}),
                );
                log.create("contact_persons", json!({"contact_id": id, "name": format!("Person {i}")}));
                id
            })
            .collect()
    }

    #[test]
    fn the_first_sync_then_changes_both_ways_until_stopped() {
        let f = fixture("OD-ENGINE-1");
        let contacts = company_data(&f.program.log, 3);
        assert_eq!(f.engine.status().state, SyncState::Stopped);
        f.engine.start(&f.runtime, false).unwrap();
        // Starting twice is harmless.
        f.engine.start(&f.runtime, false).unwrap();
        let status = f.wait_for("the first sync", |s| {
            s.first_sync_done && s.state == SyncState::Running
        });
        assert!(status.error.is_none() && !status.blocked);
        assert_eq!(*f.program.blocks.lock(), ["sync.block", "sync.unblock"]);
        f.assert_same_on_both_sides();
        assert!(f.program.pumps.load(Ordering::SeqCst) > 0);

        // The program → online, within moments.
        let contact = contacts[1];
        let global = f.global_id("contacts", contact).unwrap();
        f.program
            .log
            .edit("contacts", contact, json!({"city": "Bergen"}));
        f.engine.notify();
        f.eventually("the edit online", || {
            f.online("contacts", &global)
                .is_some_and(|r| r["city"] == "Bergen")
        });
        // Online → the program.
        let answer = f
            .server
            .patch(&format!("{}/{global}", f.records("contacts")))
            .bearer(&f.company.session.token)
            .json(&json!({"fields": {"name": "Kunde Én"}}))
            .send();
        assert_eq!(answer.status, 200, "{}", answer.text());
        f.eventually("the online edit in the program", || {
            f.program.log.row("contacts", contact).unwrap()["name"] == "Kunde Én"
        });
        f.assert_same_on_both_sides();

        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        assert_eq!(f.engine.status().state, SyncState::Stopped);
        let states = f.states_posted();
        for state in ["starting", "first_sync", "running", "stopped"] {
            assert!(states.iter().any(|s| s == state), "{state} in {states:?}");
        }
        let history: Value = serde_json::from_str(&f.engine.history_json().unwrap()).unwrap();
        let runs = history["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{history}");
        assert_eq!(runs[0]["kind"], "continuous");
        assert_eq!(runs[0]["outcome"], "stopped");
        assert_eq!(runs[1]["kind"], "first_sync");
        assert_eq!(runs[1]["outcome"], "finished");
        let sent = |run: &Value, entity: &str, direction: &str| {
            run["entities"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["entity"] == entity)
                .map_or(0, |e| e[direction].as_u64().unwrap())
        };
        assert_eq!(sent(&runs[1], "contacts", "to_online"), 3);
        assert_eq!(sent(&runs[1], "contact_persons", "to_online"), 3);
        assert_eq!(sent(&runs[1], "employees", "to_online"), 1);
        assert_eq!(sent(&runs[0], "contacts", "to_online"), 1);
        assert_eq!(sent(&runs[0], "contacts", "to_host"), 1);
        // After the engine stopped, the files still tell the status.
        let status = f.engine.status();
        assert!(status.first_sync_done && status.last_success.is_some());
    }

    #[test]
    fn the_first_sync_waits_while_others_are_logged_in() {
        let f = fixture("OD-ENGINE-2");
        company_data(&f.program.log, 2);
        *f.program.sessions.lock() = json!({
            "users": [{"username": "ola", "computer": "PC-2"}],
            "integrations": [{"name": "Webshop"}]
        });
        f.engine.start(&f.runtime, true).unwrap();
        let status = f.wait_for("the refusal", |s| s.state == SyncState::Retrying);
        let message = status.error.unwrap().message;
        assert!(
            message.contains("ola on PC-2") && message.contains("Webshop"),
            "{message}"
        );
        assert!(f.program.blocks.lock().is_empty(), "not blocked meanwhile");
        assert!(!status.first_sync_done);
        *f.program.sessions.lock() = json!({"users": [], "integrations": []});
        f.wait_for("the first sync", |s| s.first_sync_done);
        f.assert_same_on_both_sides();
    }

    #[test]
    fn another_sync_computer_stops_the_engine_with_the_reason() {
        let f = fixture("OD-ENGINE-3");
        let other = device(&f.server, &f.company, "pc-2");
        let credentials = serde_json::from_value(other).unwrap();
        let client = Client::new(
            ServiceUrl::parse(f.server.base_url()).unwrap(),
            ClientConfig::default(),
        )
        .unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(client.lease(&DeviceSession::new(credentials), Some("pc-2")))
            .unwrap();
        f.engine.start(&f.runtime, true).unwrap();
        let status = f.wait_for("the failure", |s| s.state == SyncState::Failed);
        let error = status.error.unwrap();
        assert!(
            error.message.contains("Another computer"),
            "{}",
            error.message
        );
        assert_eq!(error.code, OD_RESULT_SERVICE_REFUSED);
        f.eventually("the task to end", || !f.engine.running());
        assert!(f.program.blocks.lock().is_empty());
    }

    #[test]
    fn a_scheduled_first_sync_waits_for_its_time() {
        let f = fixture("OD-ENGINE-4");
        company_data(&f.program.log, 2);
        let past = (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
        let refused = f.engine.schedule(Some(&past)).unwrap_err();
        assert_eq!(refused.code, OD_RESULT_INVALID_ARGUMENT);
        assert!(
            refused.message.contains("already passed"),
            "{}",
            refused.message
        );
        let refused = f.engine.schedule(Some("tomorrow evening")).unwrap_err();
        assert!(
            refused.message.contains("2026-12-24T22:00:00+01:00"),
            "{}",
            refused.message
        );

        let at = Utc::now() + chrono::Duration::seconds(2);
        f.engine.schedule(Some(&at.to_rfc3339())).unwrap();
        assert_eq!(
            f.engine.status().scheduled_at.map(|t| t.timestamp()),
            Some(at.timestamp())
        );
        f.engine.start(&f.runtime, false).unwrap();
        let waiting = f.wait_for("the wait", |s| s.state == SyncState::Scheduled);
        assert!(!waiting.first_sync_done);
        assert!(f.program.blocks.lock().is_empty());
        let done = f.wait_for("the first sync", |s| s.first_sync_done);
        assert!(Utc::now() >= at, "not before its time");
        assert!(done.scheduled_at.is_none());
        let refused = f.engine.schedule(Some(&at.to_rfc3339())).unwrap_err();
        assert_eq!(refused.code, OD_RESULT_BAD_STATE);
        f.assert_same_on_both_sides();
    }

    #[test]
    fn a_stopped_first_sync_resumes_where_it_stopped() {
        let f = fixture("OD-ENGINE-5");
        company_data(&f.program.log, 4_000);
        f.program.slow_pages.store(30, Ordering::SeqCst);
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("some progress", |s| {
            s.progress.as_ref().is_some_and(|p| p.done >= 1_000)
        });
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        let stopped = f.engine.status();
        assert_eq!(stopped.state, SyncState::Stopped);
        assert!(!stopped.first_sync_done, "stopped half-way");
        f.program.slow_pages.store(0, Ordering::SeqCst);
        assert_eq!(*f.program.blocks.lock(), ["sync.block", "sync.unblock"]);
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the first sync", |s| s.first_sync_done);
        f.assert_same_on_both_sides();
        let history: Value = serde_json::from_str(&f.engine.history_json().unwrap()).unwrap();
        let first: Vec<&Value> = history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "first_sync")
            .collect();
        // Sent once in all: what the first run sent is not sent again
        // (the batch in flight at most).
        let sent: u64 = first
            .iter()
            .flat_map(|r| r["entities"].as_array().unwrap())
            .filter(|e| e["entity"] == "contacts")
            .map(|e| e["to_online"].as_u64().unwrap())
            .sum();
        assert!(
            (4_000..=4_000 + first_sync::BATCH as u64).contains(&sent),
            "{sent}"
        );
    }

    #[test]
    fn a_stop_while_connecting_to_a_silent_service_is_prompt() {
        let f = fixture("OD-ENGINE-7");
        // Accepts connections and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap();
        let mut connection: Value =
            serde_json::to_value(connection::load(f.folder.path()).unwrap().unwrap()).unwrap();
        connection["service_url"] = format!("http://{address}").into();
        f.engine.set_connection(&connection.to_string()).unwrap();
        f.engine.start(&f.runtime, true).unwrap();
        f.eventually("a connection to the silent service", || {
            silent.set_nonblocking(true).unwrap();
            silent.accept().is_ok()
        });
        let asked = Instant::now();
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
        assert_eq!(f.engine.status().state, SyncState::Stopped);
    }

    #[test]
    fn a_first_sync_longer_than_the_lease_keeps_it() {
        let f = fixture("OD-ENGINE-8");
        company_data(&f.program.log, 4_000);
        f.program.slow_pages.store(700, Ordering::SeqCst);
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the first sync", |s| s.state == SyncState::FirstSync);
        // The service's clock runs 45 s per 2.5 s here: three times over the
        // minute a lease lasts before the first sync is through.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(2_500));
            f.server.clock().advance(chrono::Duration::seconds(45));
        }
        f.program.slow_pages.store(0, Ordering::SeqCst);
        f.wait_for("the first sync", |s| s.first_sync_done);
        let states = f.states_posted();
        assert!(
            !states.iter().any(|s| s == "retrying"),
            "the lease lapsed: {states:?}"
        );
        f.assert_same_on_both_sides();
    }

    /// The add-on's folder is lost (a new disk; the same happens when
    /// synchronisation moves to another computer): the online records are
    /// taken over, nothing is sent twice, and what changed on either side
    /// meanwhile still arrives (docs/SYNC_PROTOCOL.md §10).
    #[test]
    fn a_lost_state_takes_the_online_records_over_without_a_second_copy() {
        let f = fixture("OD-ENGINE-9");
        let contacts = company_data(&f.program.log, 5);
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the first sync", |s| {
            s.first_sync_done && s.state == SyncState::Running
        });
        // A contact created online reaches the program (which remembers
        // its global id).
        let answer = f
            .server
            .post(&f.records("contacts"))
            .bearer(&f.company.session.token)
            .json(&json!({"fields": {"name": "Nettkunde", "city": "Tromsø"}}))
            .send();
        assert_eq!(answer.status, 201, "{}", answer.text());
        let web_created = answer.json()["global_id"].as_str().unwrap().to_owned();
        f.eventually("the web contact in the program", || {
            f.program
                .log
                .rows("contacts")
                .values()
                .any(|r| r["name"] == "Nettkunde")
        });
        let (edited_here, edited_online, edited_both) = (contacts[0], contacts[1], contacts[2]);
        let online_id = f.global_id("contacts", edited_online).unwrap();
        let both_id = f.global_id("contacts", edited_both).unwrap();
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(f.folder.path().join(name));
        }
        // Meanwhile, on both sides: edits, a new contact in the program,
        // a web edit the program has not seen, different fields of one
        // record on each side.
        f.program
            .log
            .edit("contacts", edited_here, json!({"city": "Bodø"}));
        let new_here = f.program.log.create(
            "contacts",
            json!({"number": null, "name": "Ny kunde", "city": "Molde", "salesperson_id": null}),
        );
        f.program
            .log
            .edit("contacts", edited_both, json!({"city": "Hamar"}));
        for (id, fields) in [
            (&online_id, json!({"name": "Kunde En (web)"})),
            (&both_id, json!({"name": "Kunde To (web)"})),
        ] {
            let answer = f
                .server
                .patch(&format!("{}/{id}", f.records("contacts")))
                .bearer(&f.company.session.token)
                .json(&json!({ "fields": fields }))
                .send();
            assert_eq!(answer.status, 200, "{}", answer.text());
        }

        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the takeover", |s| {
            s.first_sync_done && s.state == SyncState::Running
        });
        f.eventually("the web edits in the program", || {
            f.program.log.row("contacts", edited_online).unwrap()["name"] == "Kunde En (web)"
                && f.program.log.row("contacts", edited_both).unwrap()["name"] == "Kunde To (web)"
        });
        f.eventually("the program's edits online", || {
            f.global_id("contacts", new_here)
                .is_some_and(|g| f.online("contacts", &g).is_some())
                && f.online("contacts", &both_id)
                    .is_some_and(|r| r["city"] == "Hamar")
        });
        f.assert_same_on_both_sides();
        // Nothing twice: 7 contacts, 5 persons, 1 employee online.
        let live = |entity: &str| {
            f.server
                .get(&f.records(entity))
                .bearer(&f.company.session.token)
                .send()
                .json()["records"]
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(
            (live("contacts"), live("contact_persons"), live("employees")),
            (7, 5, 1)
        );
        let here_id = f.global_id("contacts", edited_here).unwrap();
        assert_eq!(f.online("contacts", &here_id).unwrap()["city"], "Bodø");
        let web_row = f
            .program
            .log
            .rows("contacts")
            .into_iter()
            .find(|(_, r)| r["name"] == "Nettkunde");
        assert_eq!(
            f.global_id("contacts", web_row.unwrap().0).as_deref(),
            Some(web_created.as_str())
        );
        assert_eq!(
            f.program.blocks.lock().len(),
            2,
            "the program was not blocked again"
        );
        let history: Value = serde_json::from_str(&f.engine.history_json().unwrap()).unwrap();
        let kinds: Vec<&str> = history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"takeover"), "{history}");
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
    }

    /// Signal 3: a backup from before the last rotation, put back while
    /// the computer was off, and the people went on working until the
    /// change log passed the position pushed — positions alone cannot tell.
    #[test]
    fn a_restore_whose_log_moved_past_the_pushed_position_is_caught_by_the_marker() {
        let f = fixture("OD-ENGINE-11");
        let contacts = company_data(&f.program.log, 3);
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the first sync", |s| {
            s.first_sync_done && s.state == SyncState::Running
        });
        let first = f.program.log.marker().expect("a marker at the start");
        let backup = f.program.log.backup();
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        // Started again: a new generation, on the host and online.
        f.engine.start(&f.runtime, true).unwrap();
        f.eventually("the rotation", || {
            f.program.log.marker().is_some_and(|m| m != first)
        });
        f.wait_for("running", |s| s.state == SyncState::Running);
        f.program
            .log
            .edit("contacts", contacts[0], json!({"city": "Bergen"}));
        f.engine.notify();
        f.eventually("the edit online", || {
            let global = f.global_id("contacts", contacts[0]).unwrap();
            f.online("contacts", &global)
                .is_some_and(|r| r["city"] == "Bergen")
        });
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        // The backup is put back; then more work than the backup was behind.
        f.program.log.restore(backup);
        for i in 0..10 {
            f.program.log.edit(
                "contacts",
                contacts[1],
                json!({ "city": format!("By {i}") }),
            );
        }
        f.engine.start(&f.runtime, true).unwrap();
        let status = f.wait_for("the refusal", |s| s.state == SyncState::Failed);
        let error = status.error.unwrap();
        assert_eq!(error.code, OD_RESULT_HOST_RESTORED, "{}", error.message);
        // Nothing of the restored database went online.
        let global = f.global_id("contacts", contacts[0]).unwrap();
        assert_eq!(f.online("contacts", &global).unwrap()["city"], "Bergen");
        let other = f.global_id("contacts", contacts[1]).unwrap();
        assert_eq!(f.online("contacts", &other).unwrap()["city"], "Oslo");
    }

    /// Regression: an empty company whose only records were created on the
    /// web before the previous computer pulled them was refused as "cannot
    /// be matched"; there is nothing to match, the records come in the pull.
    #[test]
    fn a_takeover_of_an_empty_company_pulls_what_the_web_created() {
        let f = fixture("OD-ENGINE-12");
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the first sync", |s| {
            s.first_sync_done && s.state == SyncState::Running
        });
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        for name in ["Web AS", "Nett AS"] {
            let answer = f
                .server
                .post(&f.records("contacts"))
                .bearer(&f.company.session.token)
                .json(&json!({"fields": {"name": name, "city": "Oslo"}}))
                .send();
            assert_eq!(answer.status, 201, "{}", answer.text());
        }
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(f.folder.path().join(name));
        }
        f.engine.start(&f.runtime, true).unwrap();
        f.eventually("the web's contacts in the program", || {
            f.program.log.rows("contacts").len() == 2
        });
        assert_eq!(f.engine.status().state, SyncState::Running);
        // The numbers the program gave them go online too.
        f.eventually("both sides the same", || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f.assert_same_on_both_sides()
            }))
            .is_ok()
        });
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
    }

    /// A takeover stopped half-way (the program closed) and started again:
    /// nothing twice online, nothing missing, both sides equal.
    #[test]
    fn a_takeover_stopped_half_way_runs_again_without_a_second_copy() {
        let f = fixture("OD-ENGINE-13");
        company_data(&f.program.log, 6);
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the first sync", |s| {
            s.first_sync_done && s.state == SyncState::Running
        });
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        for name in ["state.db", "state.db-wal", "state.db-shm"] {
            let _ = std::fs::remove_file(f.folder.path().join(name));
        }
        // Rows online does not have yet, of the entity that travels last:
        // the takeover sends them at its end.
        for i in 0..3 {
            f.program
                .log
                .create("employees", json!({ "name": format!("Ny {i}") }));
        }
        // Each page of the program takes a while: stopped while the first
        // is read (no push, nothing else awaited, in between).
        f.program.slow_pages.store(300, Ordering::SeqCst);
        let pages = f.program.pages.load(Ordering::SeqCst);
        f.engine.start(&f.runtime, true).unwrap();
        f.eventually("the takeover reading the program", || {
            f.program.pages.load(Ordering::SeqCst) > pages
        });
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
        assert!(!f.engine.status().first_sync_done, "stopped before the end");
        f.program.slow_pages.store(0, Ordering::SeqCst);
        f.engine.start(&f.runtime, true).unwrap();
        f.wait_for("the takeover done", |s| {
            s.first_sync_done && s.state == SyncState::Running
        });
        f.eventually("both sides the same", || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                f.assert_same_on_both_sides()
            }))
            .is_ok()
        });
        let live = |entity: &str| {
            f.server
                .get(&format!("{}?limit=100", f.records(entity)))
                .bearer(&f.company.session.token)
                .send()
                .json()["records"]
                .as_array()
                .unwrap()
                .len()
        };
        assert_eq!(
            (live("contacts"), live("contact_persons"), live("employees")),
            (6, 6, 4),
            "nothing twice, the new employees sent"
        );
        let history: Value = serde_json::from_str(&f.engine.history_json().unwrap()).unwrap();
        let takeovers: Vec<&str> = history["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "takeover")
            .map(|r| r["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(takeovers, ["finished", "stopped"], "{history}");
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
    }

    /// Regression: the status said "first sync done" while its state was
    /// still `first_sync` until the first continuous round had pushed.
    #[test]
    fn the_first_sync_is_done_and_running_at_the_same_moment() {
        let f = fixture("OD-ENGINE-10");
        company_data(&f.program.log, 3);
        // The first continuous round reads the change log slowly.
        f.program.slow_reads.store(1_500, Ordering::SeqCst);
        f.engine.start(&f.runtime, true).unwrap();
        let done = f.wait_for("the first sync", |s| s.first_sync_done);
        assert_eq!(done.state, SyncState::Running, "{done:?}");
        assert!(
            done.progress.is_none() && done.last_success.is_some(),
            "{done:?}"
        );
        f.program.slow_reads.store(0, Ordering::SeqCst);
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
    }

    #[test]
    fn control_calls_refuse_what_cannot_be_done_and_say_why() {
        let f = fixture("OD-ENGINE-6");
        let bad = f.engine.set_connection("{\"company_id\": 1}").unwrap_err();
        assert_eq!(bad.code, OD_RESULT_INVALID_ARGUMENT);
        let events = Arc::new(EventQueue::new(Host::new(f.program.clone())));
        let homeless = Engine::new(
            None,
            ServiceUrl::parse(f.server.base_url()).unwrap(),
            Host::new(f.program.clone()),
            events.clone(),
        );
        assert_eq!(
            homeless.start(&f.runtime, false).unwrap_err().code,
            OD_RESULT_BAD_STATE
        );
        assert_eq!(homeless.status().state, SyncState::NotConnected);
        let empty = tempfile::tempdir().unwrap();
        let unconnected = Engine::new(
            Some(empty.path().to_path_buf()),
            ServiceUrl::parse(f.server.base_url()).unwrap(),
            Host::new(f.program.clone()),
            events,
        );
        let refused = unconnected.start(&f.runtime, false).unwrap_err();
        assert!(
            refused.message.contains("not connected"),
            "{}",
            refused.message
        );
        assert_eq!(unconnected.status().state, SyncState::NotConnected);
        // While running, the connection cannot change under the engine.
        f.engine.start(&f.runtime, true).unwrap();
        let running = f.engine.set_connection("{}").unwrap_err();
        assert_eq!(running.code, OD_RESULT_BAD_STATE);
        f.engine.stop();
        f.eventually("the stop", || !f.engine.running());
    }
}
