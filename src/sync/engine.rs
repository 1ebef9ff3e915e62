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
use super::schema::{self, Schema};
use super::state::State;
use crate::events::{Event, EventKind, EventQueue};
use crate::host::Host;
use crate::online::ServiceUrl;
use crate::runtime::Runtime;
use chrono::{DateTime, SecondsFormat, Utc};
use od_abi::*;
use od_client::{Client, ClientConfig, ClientError, DeviceSession};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// The lease lasts 60 s on the service; renewed well before.
pub(crate) const LEASE_RENEW: Duration = Duration::from_secs(20);
/// How long a pull waits on the service for online changes.
pub(crate) const LONG_POLL: Duration = Duration::from_secs(25);
/// How often the host's change log is looked at without a notification.
pub(crate) const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// Pauses between failed attempts: doubling from the first to the last.
pub(crate) const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// How often a quiet continuous run notes its last success in the history.
pub(crate) const HISTORY_EVERY: Duration = Duration::from_secs(60);
/// How often a first sync waiting for people to log out looks again.
pub(crate) const SESSIONS_RETRY: Duration = Duration::from_secs(30);

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
        }
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
            now,
            counts: Counts::new(),
        };
        self.shared.status.lock().error = None;
        task.set_state(SyncState::Starting, None);
        let shared = Arc::clone(&self.shared);
        let spawned = runtime.spawn(async move {
            let _running = RunningGuard(Arc::clone(&task.shared));
            task.run().await;
        });
        if let Err(e) = spawned {
            shared.running.store(false, Ordering::SeqCst);
            shared.status.lock().state = SyncState::Stopped;
            return Err(Refusal::bad_state(e.to_string()));
        }
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
        if status.last_success.is_none() {
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
        Ok(serde_json::json!({ "runs": runs, "conflicts": conflicts }).to_string())
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
}

impl Task {
    fn set_state(&self, state: SyncState, error: Option<&Failure>) {
        let changed = {
            let mut status = self.shared.status.lock();
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
        let mut backoff = BACKOFF.0;
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
                    if started.elapsed() > BACKOFF.1 {
                        backoff = BACKOFF.0;
                    }
                    let pause = least.max(backoff);
                    backoff = (backoff * 2).min(BACKOFF.1);
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
        let mut session = self.connect().await?;
        let done = first_sync::finished(&session.state)
            .map_err(|e| Failure::retry(OD_RESULT_INTERNAL, e.to_string()))?;
        self.shared.status.lock().first_sync_done = done;
        if !done && self.first_sync(&mut session).await? {
            return Ok(());
        }
        self.continuous(&mut session).await
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
        Ok(Session {
            client,
            device,
            schema,
            state,
            fencing: lease.fencing,
            renew_at: Instant::now() + LEASE_RENEW,
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
        session.renew_at = Instant::now() + LEASE_RENEW;
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
                stopped = self.pause(left.min(LEASE_RENEW)) => if stopped { return Ok(true) },
                _ = self.shared.wake.notified() => {}
            }
            self.renew_lease(session).await?;
        }
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
                retry: Some(SESSIONS_RETRY),
            });
        }
        let history = History::open(&self.folder).ok();
        let run = history
            .as_ref()
            .and_then(|h| h.begin(RunKind::FirstSync, Utc::now()).ok());
        self.set_state(SyncState::FirstSync, None);
        let outcome = self.first_sync_blocked(session).await;
        if let (Some(history), Some(run)) = (&history, run) {
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
            let mut status = self.shared.status.lock();
            status.first_sync_done = true;
            status.scheduled_at = None;
            drop(status);
            let _ = std::fs::remove_file(self.folder.join(SCHEDULE_FILE));
        }
        outcome
    }

    async fn first_sync_blocked(&mut self, session: &mut Session) -> Result<bool, Failure> {
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
        let outcome = {
            tokio::pin!(run);
            loop {
                tokio::select! {
                    result = &mut run => break result,
                    _ = stop_watch.wait_for(|s| *s) => stop.store(true, Ordering::SeqCst),
                }
            }
        };
        match outcome {
            Ok(position) => {
                tracing::info!(position, "first synchronisation finished");
                Ok(false)
            }
            Err(first_sync::FirstSyncError::Stopped) => Ok(true),
            Err(first_sync::FirstSyncError::Remote(message)) => {
                Err(Failure::retry(OD_RESULT_SERVICE_UNAVAILABLE, message))
            }
            Err(first_sync::FirstSyncError::Host(message)) => {
                Err(Failure::retry(OD_RESULT_HOST_CALLBACK_FAILED, message))
            }
            Err(other) => Err(Failure::retry(OD_RESULT_INTERNAL, other.to_string())),
        }
    }

    async fn continuous(&mut self, session: &mut Session) -> Result<(), Failure> {
        // Held as `&mut` across waits: a SQLite connection is Send, not Sync.
        let mut journal = History::open(&self.folder).ok().and_then(|h| {
            let run = h.begin(RunKind::Continuous, Utc::now()).ok()?;
            Some((h, run))
        });
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
            other => Failure::retry(OD_RESULT_INTERNAL, other.to_string()),
        };
        let mut stop = self.shared.stop.subscribe();
        let mut last_written = Instant::now();
        loop {
            if self.stopping() {
                return Ok(());
            }
            self.renew_lease(session).await?;
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
                if moved || last_written.elapsed() > HISTORY_EVERY {
                    let _ = history.update(*run, &self.counts, None);
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
                LONG_POLL.min(renew_in.max(Duration::from_secs(1))),
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
                            let _ = history.update(*run, &self.counts, None);
                            last_written = Instant::now();
                        }
                    }
                }
                _ = local_change(&self.host, pushed, &self.shared.wake) => {}
            }
        }
    }
}

/// Resolves when the host's change log moves past `pushed`: looked at
/// every [`WATCH_INTERVAL`], or at once when the host notifies.
async fn local_change(host: &Host, pushed: u64, wake: &Notify) {
    loop {
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        if HostRecords::position(host).is_ok_and(|p| p > pushed) {
            return;
        }
    }
}
