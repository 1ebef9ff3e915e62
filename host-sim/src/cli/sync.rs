//! `host-sim sync ...` and `host-sim agent`: connecting a company for tests
//! and demos, and running, watching, scheduling and reviewing the add-on's
//! synchronisation (docs/SYNC_PROTOCOL.md §8).
//!
//! The add-on does the work on its own threads; these commands only call
//! its control functions and run the host's event loop: they wait for the
//! add-on's pump requests, pump on this thread, and show the events.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use clap::{Args, Subcommand};
use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use od_abi::{OD_EVENT_SYNC_PROGRESS, OD_EVENT_SYNC_STATE, OD_EVENT_WIZARD_CHANGED, OD_RESULT_OK};
use serde_json::{json, Value};

use super::table::Table;
use super::{quoted, GlobalArgs};
use crate::error::{HostError, Result};
use crate::plugin::host::HostState;
use crate::plugin::instance::CallError;
use crate::plugin::{Instance, Library, SyncState, SyncStatusView, Wake};

/// How often the agent logs first-sync progress at most.
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(5);
/// How often the agent writes its status for `sync status`.
const AGENT_REPORT_EVERY: Duration = Duration::from_secs(2);
/// An agent status older than this is taken as a stopped agent.
const AGENT_REPORT_STALE: Duration = Duration::from_secs(15);
/// How long a stop may take before the add-on is freed anyway (its free
/// cancels the work and joins its threads).
const STOP_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Connect the company through the add-on's connect wizard, scripted,
    /// and leave the first synchronisation to the sync agent (for tests;
    /// people use `host-sim connect`). The password comes from
    /// OD_ONLINE_PASSWORD or a hidden prompt
    Connect(ConnectArgs),
    /// Synchronise in the foreground: a progress bar for the first
    /// synchronisation, then a live status line. Ctrl-C stops at a safe point
    Run(RunArgs),
    /// The synchronisation status: state, first sync, last success, pending
    /// changes, errors, schedule
    Status,
    /// Past synchronisation runs and the conflicts of the last 7 days
    History(HistoryArgs),
    /// Schedule the first synchronisation ("2026-12-24 22:00" in local time,
    /// or RFC 3339), or clear the schedule
    Schedule(ScheduleArgs),
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The Online ID (e-mail address) to log in with; it becomes the
    /// company's super user online
    #[arg(long, value_name = "EMAIL")]
    email: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run the first synchronisation now even when it is scheduled later
    #[arg(long)]
    now: bool,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Run the first synchronisation now even when it is scheduled later
    #[arg(long)]
    now: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Print the add-on's JSON instead of tables
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// When: "2026-12-24 22:00" (local time) or "2026-12-24T22:00:00+01:00"
    #[arg(
        value_name = "AT",
        required_unless_present = "clear",
        conflicts_with = "clear"
    )]
    at: Option<String>,
    /// Remove the schedule
    #[arg(long)]
    clear: bool,
}

pub fn run(global: &GlobalArgs, command: SyncCommand) -> Result<()> {
    match command {
        SyncCommand::Connect(args) => connect(global, args),
        SyncCommand::Run(args) => run_foreground(global, args),
        SyncCommand::Status => status(global, true),
        SyncCommand::History(args) => history(global, args.json),
        SyncCommand::Schedule(args) => schedule(global, args),
    }
}

/// Loads the add-on and refuses one too old for synchronisation.
fn load(global: &GlobalArgs) -> Result<Library> {
    let library = global.load_add_on()?;
    library.require_sync()?;
    Ok(library)
}

/// An add-on refusal whose message is meant for people (a bad time, not
/// connected, ...), shown as it is; other failures as add-on errors.
fn refused(error: CallError) -> HostError {
    match error.code {
        od_abi::OD_RESULT_INVALID_ARGUMENT | od_abi::OD_RESULT_BAD_STATE
            if !error.message.is_empty() =>
        {
            HostError::AddOnRefused(error.message)
        }
        _ => error.into(),
    }
}

// --- connect ---------------------------------------------------------------

/// `sync connect`: the connect wizard through the add-on, scripted, and the
/// first synchronisation left to the next agent (or `sync run`).
fn connect(global: &GlobalArgs, args: ConnectArgs) -> Result<()> {
    if global.add_on.service_url.is_none() {
        return Err(HostError::InvalidInput(
            "Say which online service to connect to: --service-url URL or OD_SERVICE_URL.".into(),
        ));
    }
    // The wizard asks for "now" or a time; a day ahead, cleared once
    // connected, leaves the first synchronisation to the agent.
    let at = (Local::now() + chrono::Duration::days(1)).to_rfc3339_opts(SecondsFormat::Secs, false);
    let answers = super::wizard::Answers {
        email: Some(args.email),
        start: super::wizard::Start::Later,
        at: Some(at),
        ..super::wizard::Answers::default()
    };
    super::desktop::connect_with_wizard(
        global,
        super::wizard::Mode::Scripted(answers),
        super::desktop::AfterFinish::LeaveToAgent,
    )
}

// --- the event loop ----------------------------------------------------------

/// What the add-on or the signal handler reported to the loop.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Happening {
    State {
        state: SyncState,
        name: String,
        error: Option<String>,
    },
    Progress(Progress),
    /// The connect wizard's page changed (`OD_EVENT_WIZARD_CHANGED`).
    WizardChanged,
    /// SIGINT or SIGTERM.
    StopAsked,
}

/// `OD_EVENT_SYNC_PROGRESS`'s payload.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Progress {
    entity_title: String,
    entity_done: u64,
    entity_total: u64,
    done: u64,
    total: u64,
    seconds_left: Option<u64>,
}

impl Progress {
    fn from_json(value: &Value) -> Progress {
        let n = |key: &str| value[key].as_u64().unwrap_or(0);
        Progress {
            entity_title: value["entity_title"]
                .as_str()
                .or_else(|| value["entity"].as_str())
                .unwrap_or_default()
                .to_owned(),
            entity_done: n("entity_done"),
            entity_total: n("entity_total"),
            done: n("done"),
            total: n("total"),
            seconds_left: value["seconds_left"].as_u64(),
        }
    }

    fn line(&self) -> String {
        let left = self
            .seconds_left
            .map(|s| format!(", about {} left", duration_words(s)))
            .unwrap_or_default();
        format!(
            "{} of {} records ({}: {} of {}){left}",
            self.done, self.total, self.entity_title, self.entity_done, self.entity_total
        )
    }
}

/// Waits for the add-on's pump requests (and stop requests), pumps on this
/// thread and turns the events into [`Happening`]s.
pub(super) struct EventLoop<'a, 'lib> {
    instance: &'a Instance<'lib>,
    state: Arc<HostState>,
}

impl<'a, 'lib> EventLoop<'a, 'lib> {
    pub(super) fn new(instance: &'a Instance<'lib>) -> Result<EventLoop<'a, 'lib>> {
        let state = instance.shared_state();
        stop_on_signals(Arc::clone(&state))?;
        Ok(EventLoop { instance, state })
    }

    /// What happened within `timeout` (nothing when it passed quietly).
    pub(super) fn next(&self, timeout: Duration) -> Result<Vec<Happening>> {
        match self.state.wait(timeout) {
            Wake::Interrupted => {
                self.state.clear_interrupt();
                Ok(vec![Happening::StopAsked])
            }
            Wake::Timeout => Ok(Vec::new()),
            Wake::Pump => {
                self.instance.pump()?;
                Ok(self
                    .state
                    .take_events()
                    .into_iter()
                    .filter_map(|event| {
                        let payload: Value = event
                            .payload
                            .as_deref()
                            .and_then(|p| serde_json::from_str(p).ok())
                            .unwrap_or(Value::Null);
                        match event.kind {
                            OD_EVENT_SYNC_STATE => {
                                let name = payload["state"].as_str().unwrap_or_default().to_owned();
                                Some(Happening::State {
                                    state: SyncState::from_name(&name),
                                    name,
                                    error: payload["error"].as_str().map(str::to_owned),
                                })
                            }
                            OD_EVENT_SYNC_PROGRESS => {
                                Some(Happening::Progress(Progress::from_json(&payload)))
                            }
                            OD_EVENT_WIZARD_CHANGED => Some(Happening::WizardChanged),
                            _ => None,
                        }
                    })
                    .collect())
            }
        }
    }

    /// Asks the add-on to stop and waits until it has (or the deadline
    /// passed); `report` sees every state change on the way.
    pub(super) fn stop(&self, mut report: impl FnMut(&Happening)) -> Result<()> {
        self.instance.sync_stop()?;
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            for happening in self.next(Duration::from_millis(250))? {
                report(&happening);
            }
            let state = self.instance.sync_status()?.state;
            if matches!(
                state,
                SyncState::Stopped | SyncState::Failed | SyncState::NotConnected
            ) {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// SIGINT and SIGTERM wake the loop instead of ending the process; a
/// second one ends it at once.
fn stop_on_signals(state: Arc<HostState>) -> Result<()> {
    let (ready, installed) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("host-sim-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            runtime.block_on(wait_for_signals(state, ready));
        })
        .map_err(|e| HostError::io("starting the signal handler", e))?;
    installed
        .recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the signal handler ended")))
        .map_err(|e| HostError::io("installing the signal handler", e))
}

#[cfg(unix)]
async fn wait_for_signals(
    state: Arc<HostState>,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let mut asked = false;
    loop {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        if asked {
            eprintln!("Stopping at once.");
            std::process::exit(130);
        }
        asked = true;
        state.interrupt();
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(
    state: Arc<HostState>,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    let _ = ready.send(Ok(()));
    let mut asked = false;
    while tokio::signal::ctrl_c().await.is_ok() {
        if asked {
            eprintln!("Stopping at once.");
            std::process::exit(130);
        }
        asked = true;
        state.interrupt();
    }
}

// --- sync run ---------------------------------------------------------------

fn progress_bar(total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "First synchronisation [{bar:30}] {pos}/{len} records · {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::new(total).with_style(style)
}

fn live_line() -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let line = ProgressBar::new_spinner().with_style(style);
    line.enable_steady_tick(Duration::from_millis(200));
    line
}

fn live_text(status: &SyncStatusView) -> String {
    format!(
        "Synchronising · to online: {} pending · to the program: {} pending{} · last success {} · Ctrl-C stops",
        status.pending_to_online,
        status.pending_to_host,
        if status.parked > 0 {
            format!(" ({} set aside)", status.parked)
        } else {
            String::new()
        },
        status
            .last_success
            .as_deref()
            .map_or("not yet".to_owned(), local_time)
    )
}

fn run_foreground(global: &GlobalArgs, args: RunArgs) -> Result<()> {
    let library = load(global)?;
    let company = global
        .open_installation()?
        .company_or_default(global.company.as_deref())?;
    let instance = Instance::create(&library, global.add_on_settings()?)?;
    let events = EventLoop::new(&instance)?;
    instance.sync_start(args.now).map_err(refused)?;
    println!(
        "Synchronising {} with Online Desktop. Ctrl-C stops at a safe point.",
        quoted(&company.name)
    );
    let mut bar: Option<ProgressBar> = None;
    let mut live: Option<ProgressBar> = None;
    let mut failure = None;
    let say = |bar: &Option<ProgressBar>, live: &Option<ProgressBar>, text: String| match bar
        .as_ref()
        .or(live.as_ref())
    {
        Some(b) => b.println(text),
        None => println!("{text}"),
    };
    let mut stop_asked = false;
    let mut last_live = Instant::now() - Duration::from_secs(10);
    'outer: loop {
        for happening in events.next(Duration::from_millis(250))? {
            match happening {
                Happening::WizardChanged => {}
                Happening::StopAsked => {
                    stop_asked = true;
                    break 'outer;
                }
                Happening::Progress(p) => {
                    let b = bar.get_or_insert_with(|| progress_bar(p.total));
                    b.set_length(p.total);
                    b.set_position(p.done);
                    let left = p
                        .seconds_left
                        .map_or("estimating time left".to_owned(), |s| {
                            format!("about {} left", duration_words(s))
                        });
                    b.set_message(format!(
                        "{} {}/{} · {left}",
                        p.entity_title, p.entity_done, p.entity_total
                    ));
                }
                Happening::State { state, name, error } => {
                    if state != SyncState::FirstSync {
                        if let Some(b) = bar.take() {
                            if state == SyncState::Running {
                                b.finish_with_message("done");
                            } else {
                                b.abandon();
                            }
                        }
                    }
                    let line = state_line(state, &name, error.as_deref());
                    say(&bar, &live, line);
                    if state == SyncState::Failed {
                        failure = Some(error.unwrap_or_else(|| "synchronisation failed".into()));
                        break 'outer;
                    }
                    if state == SyncState::Stopped {
                        break 'outer;
                    }
                }
            }
        }
        let running = instance.sync_status()?;
        if bar.is_none() && running.state == SyncState::Running {
            if last_live.elapsed() >= Duration::from_secs(1) {
                live.get_or_insert_with(live_line)
                    .set_message(live_text(&running));
                last_live = Instant::now();
            }
        } else if let Some(l) = live.take() {
            l.finish_and_clear();
        }
    }
    if let Some(l) = live.take() {
        l.finish_and_clear();
    }
    if let Some(b) = bar.take() {
        b.abandon();
    }
    if stop_asked {
        println!("Stopping at a safe point … (Ctrl-C again stops at once)");
        events.stop(|h| {
            if let Happening::State { state, name, error } = h {
                println!("{}", state_line(*state, name, error.as_deref()));
            }
        })?;
    }
    drop(events);
    drop(instance);
    match failure {
        Some(message) => Err(HostError::AddOnRefused(format!(
            "Synchronisation stopped: {message}"
        ))),
        None => Ok(()),
    }
}

/// How following the first synchronisation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FirstSyncEnd {
    Done,
    Failed(String),
    /// Ctrl-C or SIGTERM.
    StopAsked,
}

/// Shows the first synchronisation's progress bar (as `sync run` does)
/// until it is done, failed, or the person asked to stop. The engine runs
/// in `instance`, started by the caller.
pub(super) fn follow_first_sync(
    instance: &Instance<'_>,
    events: &EventLoop<'_, '_>,
) -> Result<FirstSyncEnd> {
    let mut bar: Option<ProgressBar> = None;
    let end = 'outer: loop {
        for happening in events.next(Duration::from_millis(250))? {
            match happening {
                Happening::WizardChanged => {}
                Happening::StopAsked => break 'outer FirstSyncEnd::StopAsked,
                Happening::Progress(p) => {
                    let b = bar.get_or_insert_with(|| progress_bar(p.total));
                    b.set_length(p.total);
                    b.set_position(p.done);
                    let left = p
                        .seconds_left
                        .map_or("estimating time left".to_owned(), |s| {
                            format!("about {} left", duration_words(s))
                        });
                    b.set_message(format!(
                        "{} {}/{} · {left}",
                        p.entity_title, p.entity_done, p.entity_total
                    ));
                }
                Happening::State { state, name, error } => {
                    let line = state_line(state, &name, error.as_deref());
                    match &bar {
                        Some(b) => b.println(line),
                        None => println!("{line}"),
                    }
                    if state == SyncState::Failed {
                        break 'outer FirstSyncEnd::Failed(
                            error.unwrap_or_else(|| "synchronisation failed".into()),
                        );
                    }
                }
            }
        }
        let status = instance.sync_status()?;
        if status.first_sync_done {
            break FirstSyncEnd::Done;
        }
        if status.state == SyncState::Failed {
            break FirstSyncEnd::Failed(
                status
                    .error
                    .unwrap_or_else(|| "synchronisation failed".into()),
            );
        }
    };
    if let Some(b) = bar.take() {
        if end == FirstSyncEnd::Done {
            b.finish_with_message("done");
        } else {
            b.abandon();
        }
    }
    Ok(end)
}

/// One line for a state change, for people.
fn state_line(state: SyncState, name: &str, error: Option<&str>) -> String {
    let mut line = format!("Synchronisation: {} ({name})", state.describe());
    if let Some(error) = error {
        line.push_str(&format!(": {error}"));
    }
    line
}

// --- agent --------------------------------------------------------------------

/// Where the agent reports its status for `sync status` in other
/// processes (the add-on's own files say only what is stored): per
/// computer and company, like the add-on's folder, so that agents on two
/// computers of one installation do not overwrite each other's report.
fn agent_report_path(global: &GlobalArgs, computer_id: &str, company_id: &str) -> PathBuf {
    global
        .data_dir
        .join("agents")
        .join(computer_id)
        .join(format!("{company_id}.json"))
}

fn write_agent_report(path: &std::path::Path, status: &SyncStatusView) {
    let report = json!({
        "pid": std::process::id(),
        "updated_at": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        "state": status.state_name,
        "first_sync_done": status.first_sync_done,
        "last_success": status.last_success,
        "pending_to_online": status.pending_to_online,
        "pending_to_host": status.pending_to_host,
        "parked": status.parked,
        "error": status.error,
        "progress": status.progress.as_ref().map(|p| json!({
            "entity": p.entity, "entity_done": p.entity_done, "entity_total": p.entity_total,
            "done": p.done, "total": p.total, "seconds_left": p.seconds_left,
        })),
    });
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let temporary = path.with_extension("json.new");
            std::fs::write(&temporary, report.to_string())?;
            std::fs::rename(&temporary, path)
        });
    if let Err(e) = written {
        agent_log(&format!(
            "warning: the status for `sync status` could not be written to {}: {e}",
            path.display()
        ));
    }
}

fn agent_log(text: &str) {
    println!(
        "{} {text}",
        Local::now().to_rfc3339_opts(SecondsFormat::Secs, false)
    );
}

pub fn agent(global: &GlobalArgs, args: AgentArgs) -> Result<()> {
    let library = load(global)?;
    let installation = global.open_installation()?;
    let company = installation.company_or_default(global.company.as_deref())?;
    let computer = installation.computer_or_default(global.computer.as_deref())?;
    let service = installation
        .system()
        .online_connection(&company.id)?
        .map(|c| c.service_url)
        .or_else(|| global.add_on.service_url.clone())
        .unwrap_or_else(|| "the add-on's built-in service".into());
    drop(installation);
    let instance = Instance::create(&library, global.add_on_settings()?)?;
    let events = EventLoop::new(&instance)?;
    agent_log(&format!(
        "Online Desktop sync agent {} for {} (company id {}) on {}, service {}, add-on {}",
        env!("CARGO_PKG_VERSION"),
        quoted(&company.name),
        company.id,
        computer.name,
        service,
        library.version()
    ));
    let report_path = agent_report_path(global, &computer.id, &company.id);
    instance.sync_start(args.now).map_err(refused)?;
    let mut last_progress = Instant::now() - PROGRESS_LOG_EVERY;
    let mut pending_progress: Option<Progress> = None;
    let mut last_report = Instant::now() - AGENT_REPORT_EVERY;
    let mut failure = None;
    let log_state = |state: SyncState, name: &str, error: Option<&str>| {
        let mut line = format!("state {name}: {}", state.describe());
        if let Some(error) = error {
            line.push_str(&format!(" — {error}"));
        }
        agent_log(&line);
    };
    'outer: loop {
        let mut changed = false;
        for happening in events.next(Duration::from_millis(500))? {
            match happening {
                Happening::WizardChanged => {}
                Happening::StopAsked => {
                    agent_log("stop asked; stopping at a safe point");
                    break 'outer;
                }
                Happening::Progress(p) => pending_progress = Some(p),
                Happening::State { state, name, error } => {
                    changed = true;
                    if state != SyncState::FirstSync {
                        if let Some(p) = pending_progress.take() {
                            agent_log(&format!("first sync: {}", p.line()));
                        }
                    }
                    log_state(state, &name, error.as_deref());
                    if state == SyncState::Failed {
                        failure = Some(error.unwrap_or_else(|| "synchronisation failed".into()));
                        break 'outer;
                    }
                }
            }
        }
        if last_progress.elapsed() >= PROGRESS_LOG_EVERY {
            if let Some(p) = pending_progress.take() {
                agent_log(&format!("first sync: {}", p.line()));
                last_progress = Instant::now();
            }
        }
        if changed || last_report.elapsed() >= AGENT_REPORT_EVERY {
            write_agent_report(&report_path, &instance.sync_status()?);
            last_report = Instant::now();
        }
    }
    events.stop(|h| {
        if let Happening::State { state, name, error } = h {
            log_state(*state, name, error.as_deref());
        }
    })?;
    let _ = std::fs::remove_file(&report_path);
    drop(events);
    drop(instance);
    match failure {
        Some(message) => Err(HostError::AddOnRefused(format!(
            "Synchronisation stopped and needs attention: {message}"
        ))),
        None => {
            agent_log("agent stopped");
            Ok(())
        }
    }
}

// --- sync status ----------------------------------------------------------------

/// The agent's last report, when one is running for the company on the
/// computer.
fn running_agent(global: &GlobalArgs, computer_id: &str, company_id: &str) -> Option<Value> {
    let text = std::fs::read_to_string(agent_report_path(global, computer_id, company_id)).ok()?;
    let report: Value = serde_json::from_str(&text).ok()?;
    let updated = DateTime::parse_from_rfc3339(report["updated_at"].as_str()?).ok()?;
    let age = Utc::now().signed_duration_since(updated.with_timezone(&Utc));
    (age.to_std().unwrap_or_default() <= AGENT_REPORT_STALE).then_some(report)
}

/// `sync status`; the company settings show it too, under their own
/// heading (`title` false).
pub(super) fn status(global: &GlobalArgs, title: bool) -> Result<()> {
    let library = load(global)?;
    let installation = global.open_installation()?;
    let company = installation.company_or_default(global.company.as_deref())?;
    let computer = installation.computer_or_default(global.computer.as_deref())?;
    let connection = installation.system().online_connection(&company.id)?;
    drop(installation);
    let instance = Instance::create(&library, global.add_on_settings()?)?;
    let mut status = instance.sync_status()?;
    drop(instance);
    let agent = running_agent(global, &computer.id, &company.id);
    if let Some(report) = &agent {
        // The running agent knows what the files cannot: its state, what
        // is pending, the current error and progress.
        let n = |key: &str| report[key].as_u64().unwrap_or(0);
        let name = report["state"].as_str().unwrap_or_default().to_owned();
        status.state = SyncState::from_name(&name);
        status.state_name = name;
        status.first_sync_done |= report["first_sync_done"].as_bool().unwrap_or(false);
        status.pending_to_online = n("pending_to_online");
        status.pending_to_host = n("pending_to_host");
        status.parked = n("parked");
        status.error = report["error"].as_str().map(str::to_owned);
        if let Some(last) = report["last_success"].as_str() {
            status.last_success = Some(last.to_owned());
        }
        status.progress = report["progress"].as_object().map(|p| {
            let n = |key: &str| p.get(key).and_then(Value::as_u64).unwrap_or(0);
            crate::plugin::SyncProgress {
                entity: p
                    .get("entity")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                entity_done: n("entity_done"),
                entity_total: n("entity_total"),
                done: n("done"),
                total: n("total"),
                seconds_left: p.get("seconds_left").and_then(Value::as_u64),
            }
        });
    }
    if title {
        println!(
            "{}",
            style(format!("Online Desktop synchronisation — {}", company.name))
                .bold()
                .underlined()
        );
    }
    let row = |label: &str, value: String| println!("  {label:<24}{value}");
    row(
        "State:",
        format!("{} ({})", status.state.describe(), status.state_name),
    );
    if status.state == SyncState::NotConnected {
        match &connection {
            // Connected, from another computer (or this one lost its
            // add-on folder): this computer has no connection of its own.
            Some(c) => println!(
                "\nThis company is connected to Online Desktop (by {}), but this computer ({}) does not \
                 synchronise it. To synchronise it from here: \
                 `host-sim --computer {} settings sync-computer --email EMAIL`.",
                c.connected_by, computer.name, computer.name
            ),
            None => println!(
                "\nThis company is not connected to Online Desktop yet. Connect it with \
                 `host-sim connect` (the connect wizard; scripted: `host-sim connect --email EMAIL`)."
            ),
        }
        return Ok(());
    }
    if let Some(c) = &connection {
        row("Service:", c.service_url.clone());
        row(
            "Connected by:",
            format!("{} on {}", c.connected_by, c.connected_at),
        );
    }
    row(
        "Sync agent:",
        match &agent {
            Some(report) => format!(
                "running (process {})",
                report["pid"].as_u64().unwrap_or_default()
            ),
            None => "not running".into(),
        },
    );
    row(
        "First synchronisation:",
        if status.first_sync_done {
            "done".into()
        } else {
            "not done yet".into()
        },
    );
    if let Some(p) = &status.progress {
        let left = p
            .seconds_left
            .map(|s| format!(", about {} left", duration_words(s)))
            .unwrap_or_default();
        row(
            "Progress:",
            format!(
                "{} of {} records ({} {} of {}){left}",
                p.done, p.total, p.entity, p.entity_done, p.entity_total
            ),
        );
    }
    row(
        "Scheduled first sync:",
        status
            .scheduled_at
            .as_deref()
            .map_or("-".into(), local_time),
    );
    row(
        "Last success:",
        status
            .last_success
            .as_deref()
            .map_or("never".into(), local_time),
    );
    if agent.is_some() {
        row("Pending to online:", status.pending_to_online.to_string());
        row(
            "Pending to the program:",
            status.pending_to_host.to_string(),
        );
    } else {
        row(
            "Pending to online:",
            "- (known while synchronisation runs)".into(),
        );
        row(
            "Pending to the program:",
            "- (known while synchronisation runs)".into(),
        );
    }
    row("Set aside (parked):", status.parked.to_string());
    row(
        "Error:",
        match (&status.error, status.error_code) {
            (Some(e), _) => e.clone(),
            (None, OD_RESULT_OK) => "none".into(),
            (None, code) => format!("code {code}"),
        },
    );
    if status.blocked {
        row(
            "Program use:",
            "blocked during the first synchronisation".into(),
        );
    }
    Ok(())
}

// --- sync history ---------------------------------------------------------------

/// `sync history` (runs, and the conflicts of the last 7 days); the
/// company settings show it too.
pub(super) fn history(global: &GlobalArgs, json: bool) -> Result<()> {
    let library = load(global)?;
    let instance = Instance::create(&library, global.add_on_settings()?)?;
    let text = instance.sync_history().map_err(refused)?;
    drop(instance);
    if json {
        println!("{text}");
        return Ok(());
    }
    let history: Value = serde_json::from_str(&text).map_err(|e| {
        HostError::CheckFailed(format!("The add-on's history is not readable JSON: {e}"))
    })?;
    let empty = Vec::new();
    let runs = history["runs"].as_array().unwrap_or(&empty);
    println!("{}", style("Synchronisation runs (newest first)").bold());
    if runs.is_empty() {
        println!("  No synchronisation has run yet.");
    }
    for run in runs {
        let kind = match run["kind"].as_str().unwrap_or_default() {
            "first_sync" => "first synchronisation",
            "continuous" => "continuous synchronisation",
            other => other,
        };
        let outcome = run["outcome"].as_str().unwrap_or_default();
        let started = run["started_at"].as_str().map_or("?".into(), local_time);
        let ended = run["ended_at"]
            .as_str()
            .map_or("still running".into(), local_time);
        println!(
            "\n  Run {} · {kind} · {outcome}",
            run["id"].as_i64().unwrap_or_default()
        );
        println!("    Started {started}, ended {ended}");
        if let Some(error) = run["error"].as_str() {
            println!("    Error: {error}");
        }
        let entities = run["entities"].as_array().unwrap_or(&empty);
        if entities.is_empty() {
            println!("    No records moved.");
            continue;
        }
        let mut table = Table::new(&["    Entity", "To online", "To the program"]);
        for e in entities {
            table.row(vec![
                format!("    {}", e["entity"].as_str().unwrap_or_default()),
                e["to_online"].as_u64().unwrap_or(0).to_string(),
                e["to_host"].as_u64().unwrap_or(0).to_string(),
            ]);
        }
        print!("{}", table.render());
    }
    let conflicts = history["conflicts"].as_array().unwrap_or(&empty);
    println!("\n{}", style("Conflicts of the last 7 days").bold());
    let mut table = Table::new(&[
        "When",
        "Entity",
        "Record",
        "Field",
        "In the program",
        "Online",
        "Outcome",
    ]);
    let value = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    for c in conflicts {
        table.row(vec![
            c["recorded_at"].as_str().map_or("?".into(), local_time),
            value(&c["entity"]),
            value(&c["global_id"]),
            value(&c["field"]),
            value(&c["host_value"]),
            value(&c["online_value"]),
            value(&c["outcome"]),
        ]);
    }
    table.print_or("  No conflicts.");
    Ok(())
}

// --- sync schedule ----------------------------------------------------------------

/// RFC 3339 as it is; a local date and time ("2026-12-24 22:00") gets this
/// computer's offset.
pub fn schedule_time(text: &str) -> Result<String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_rfc3339_opts(SecondsFormat::Secs, false));
    }
    let formats = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ];
    let naive = formats
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| {
            HostError::InvalidInput(format!(
                "{} is not a date and time. Write it like 2026-12-24 22:00 (local time) or \
                 2026-12-24T22:00:00+01:00.",
                quoted(text)
            ))
        })?;
    let local = Local.from_local_datetime(&naive).single().ok_or_else(|| {
        HostError::InvalidInput(format!(
            "{} does not exist or is ambiguous in local time (a daylight-saving change). \
             Give the offset, like 2026-03-29T02:30:00+01:00.",
            quoted(text)
        ))
    })?;
    Ok(local.to_rfc3339_opts(SecondsFormat::Secs, false))
}

fn schedule(global: &GlobalArgs, args: ScheduleArgs) -> Result<()> {
    let at = match (&args.at, args.clear) {
        (_, true) => None,
        (Some(text), false) => Some(schedule_time(text)?),
        (None, false) => {
            return Err(HostError::InvalidInput(
                "Give a time (AT) or --clear.".into(),
            ))
        }
    };
    let library = load(global)?;
    let instance = Instance::create(&library, global.add_on_settings()?)?;
    instance.sync_schedule(at.as_deref()).map_err(refused)?;
    drop(instance);
    match at {
        Some(at) => println!(
            "The first synchronisation is scheduled for {}. A running sync agent starts it then; \
             use of the program is blocked while it runs.",
            local_time(&at)
        ),
        None => println!("The schedule of the first synchronisation is cleared."),
    }
    Ok(())
}

// --- text -------------------------------------------------------------------------

/// An RFC 3339 time in this computer's local time, for people.
pub(super) fn local_time(text: &str) -> String {
    match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at
            .with_timezone(&Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => text.to_owned(),
    }
}

/// "45 s", "3 min 10 s", "2 h 5 min".
fn duration_words(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} s"),
        60..=3599 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_local_times_get_the_local_offset() {
        let text = schedule_time("2026-12-24 22:00").unwrap();
        let at = DateTime::parse_from_rfc3339(&text).unwrap();
        let expected = Local
            .from_local_datetime(
                &NaiveDateTime::parse_from_str("2026-12-24 22:00", "%Y-%m-%d %H:%M").unwrap(),
            )
            .single()
            .unwrap();
        assert_eq!(at, expected);
        assert_eq!(
            schedule_time("2026-12-24T22:00:00+01:00").unwrap(),
            "2026-12-24T22:00:00+01:00"
        );
        assert!(schedule_time("Christmas eve").is_err());
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration_words(45), "45 s");
        assert_eq!(duration_words(190), "3 min 10 s");
        assert_eq!(duration_words(7500), "2 h 5 min");
    }

    #[test]
    fn progress_events_are_read_from_their_json() {
        let p = Progress::from_json(&json!({
            "entity": "contacts", "entity_title": "Contacts", "entity_done": 10,
            "entity_total": 20, "done": 100, "total": 400, "seconds_left": null
        }));
        assert_eq!(p.line(), "100 of 400 records (Contacts: 10 of 20)");
    }
}
