//! The connect wizard (PRODUCT.md §3): prerequisites → welcome → Online ID
//! → company registration → start of synchronisation → finish.
//!
//! A state machine the host drives from its UI thread: it reads the current
//! page as JSON ([`page`] — any UI can render it without knowing the
//! pages), sets fields, and asks for actions. Everything that waits for the
//! network (sign-up, log in, finish) runs on the instance's runtime; the
//! page is `busy` meanwhile and refuses every action but cancel, and the
//! result arrives as `OD_EVENT_WIZARD_CHANGED` through the pump. No lock is
//! held across a call into the host or the network. See docs/WIZARD.md.

mod change_user;
mod company;
mod finish;
mod form;
mod maintain;
mod page;
mod sync_computer;
#[cfg(test)]
mod tests;

use crate::events::{Event, EventKind, EventQueue};
use crate::host::Host;
use crate::online::ServiceUrl;
use crate::prerequisites::{self, PrerequisiteList, Reachability};
use crate::runtime::{Runtime, Spawner};
use crate::sync::engine::{Engine, Refusal, SyncState};
use form::{Form, StartWhen};
use od_abi::*;
use od_client::{Client, ClientConfig, ClientError, Secret, SessionToken};
use od_licence::LicenceReport;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Whether the service wants the person to log in (again) with the
/// Online ID: the session is unknown or expired, or too old for an action
/// that changes the connection (the service's `reauthentication_required`).
pub(crate) fn needs_log_in(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some("token_invalid" | "authentication_required" | "reauthentication_required")
    )
}

/// The pages, in order; `Cancelled` is where a cancelled wizard rests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Prerequisites,
    Welcome,
    OnlineId,
    Company,
    Start,
    Finish,
    /// Update connection and Disconnect: what will happen; Finish does it.
    Confirm,
    Cancelled,
}

/// What the wizard is for (the ABI's `OD_WIZARD_MODE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Connect the company (PRODUCT.md §3): six pages.
    Connect,
    /// Log in again and give this computer a new device (PRODUCT.md §4):
    /// Online ID → confirm.
    UpdateConnection,
    /// Delete the online copy and forget the connection (PRODUCT.md §5.8):
    /// Online ID → confirm.
    Disconnect,
    /// Hand "Connected by" to another person's Online ID (PRODUCT.md §4):
    /// Online ID → confirm.
    ChangeUser,
    /// Make this computer the sync computer (PRODUCT.md §4), also after
    /// its add-on folder was lost: Online ID → confirm.
    SyncComputer,
}

impl Mode {
    pub fn id(self) -> &'static str {
        match self {
            Mode::Connect => "connect",
            Mode::UpdateConnection => "update_connection",
            Mode::Disconnect => "disconnect",
            Mode::ChangeUser => "change_user",
            Mode::SyncComputer => "sync_computer",
        }
    }
}

impl Mode {
    fn after_log_in(self) -> Page {
        match self {
            Mode::Connect => Page::Company,
            Mode::UpdateConnection | Mode::Disconnect | Mode::ChangeUser | Mode::SyncComputer => {
                Page::Confirm
            }
        }
    }
}

impl TryFrom<od_wizard_mode> for Mode {
    type Error = Refusal;
    fn try_from(value: od_wizard_mode) -> Result<Mode, Refusal> {
        Ok(match value {
            OD_WIZARD_MODE_CONNECT => Mode::Connect,
            OD_WIZARD_MODE_UPDATE_CONNECTION => Mode::UpdateConnection,
            OD_WIZARD_MODE_DISCONNECT => Mode::Disconnect,
            OD_WIZARD_MODE_CHANGE_USER => Mode::ChangeUser,
            OD_WIZARD_MODE_SYNC_COMPUTER => Mode::SyncComputer,
            other => {
                return Err(refusal(
                    OD_RESULT_INVALID_ARGUMENT,
                    format!("{other} is not one of the OD_WIZARD_MODE_* modes"),
                ))
            }
        })
    }
}

impl Page {
    pub fn id(self) -> &'static str {
        match self {
            Page::Prerequisites => "prerequisites",
            Page::Welcome => "welcome",
            Page::OnlineId => "online_id",
            Page::Company => "company",
            Page::Start => "start",
            Page::Finish => "finish",
            Page::Confirm => "confirm",
            Page::Cancelled => "cancelled",
        }
    }

    /// 1-based position among the mode's pages (the cancelled page keeps 0).
    pub fn step(self, mode: Mode) -> u32 {
        if mode != Mode::Connect {
            return match self {
                Page::OnlineId => 1,
                Page::Confirm => 2,
                _ => 0,
            };
        }
        match self {
            Page::Prerequisites => 1,
            Page::Welcome => 2,
            Page::OnlineId => 3,
            Page::Company => 4,
            Page::Start => 5,
            Page::Finish => 6,
            Page::Confirm | Page::Cancelled => 0,
        }
    }

    fn previous(self, mode: Mode) -> Option<Page> {
        if mode != Mode::Connect {
            return (self == Page::Confirm).then_some(Page::OnlineId);
        }
        match self {
            Page::Welcome => Some(Page::Prerequisites),
            Page::OnlineId => Some(Page::Welcome),
            Page::Company => Some(Page::OnlineId),
            Page::Start => Some(Page::Company),
            Page::Finish => Some(Page::Start),
            Page::Prerequisites | Page::Confirm | Page::Cancelled => None,
        }
    }
}

/// How many pages a mode has.
pub fn steps(mode: Mode) -> u32 {
    match mode {
        Mode::Connect => 6,
        Mode::UpdateConnection | Mode::Disconnect | Mode::ChangeUser | Mode::SyncComputer => 2,
    }
}

/// The ABI's `OD_WIZARD_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Next,
    Back,
    Cancel,
    Finish,
    CreateOnlineId,
    Recheck,
}

impl TryFrom<od_wizard_action> for Action {
    type Error = Refusal;
    fn try_from(value: od_wizard_action) -> Result<Action, Refusal> {
        Ok(match value {
            OD_WIZARD_NEXT => Action::Next,
            OD_WIZARD_BACK => Action::Back,
            OD_WIZARD_CANCEL => Action::Cancel,
            OD_WIZARD_FINISH => Action::Finish,
            OD_WIZARD_CREATE_ONLINE_ID => Action::CreateOnlineId,
            OD_WIZARD_RECHECK => Action::Recheck,
            other => {
                return Err(refusal(
                    OD_RESULT_INVALID_ARGUMENT,
                    format!("{other} is not one of the OD_WIZARD_* actions"),
                ))
            }
        })
    }
}

fn refusal(code: od_result, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn bad_state(message: impl Into<String>) -> Refusal {
    refusal(OD_RESULT_BAD_STATE, message)
}

/// Work running on the runtime for the wizard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    SignUp,
    LogIn,
    Finish,
}

/// How far a running finish got: until `Committing` a cancel is honoured
/// (what was registered online is undone); from then on it is too late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FinishPhase {
    Online,
    Committing,
}

struct Busy {
    job: Job,
    text: String,
    /// The finish was asked to stop; it undoes what it did at its next step.
    cancel_requested: bool,
}

/// A logged-in Online ID (the session token is a secret too).
struct LoggedIn {
    email: String,
    token: SessionToken,
}

/// What finish made, for the last page.
#[derive(Debug, Clone)]
pub struct Connected {
    pub company_name: String,
    pub online_company_id: String,
    pub licence_number: String,
    pub tier: String,
    pub email: String,
    pub computer_name: String,
    /// `None`: the first synchronisation started now.
    pub scheduled_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The engine could not be started (the connection is complete).
    pub start_problem: Option<String>,
}

/// An error shown on a page: the status code and the sentence.
#[derive(Debug, Clone, PartialEq)]
struct PageError {
    code: od_result,
    message: String,
}

struct State {
    mode: Mode,
    page: Page,
    form: Form,
    field_errors: BTreeMap<&'static str, String>,
    error: Option<PageError>,
    /// Information that is not an error (the verification mail was sent).
    notice: Option<String>,
    busy: Option<Busy>,
    finish_phase: Option<FinishPhase>,
    /// Bumped when a running sign-up or login is cancelled: its answer,
    /// arriving later, is ignored.
    generation: u64,
    session: Option<LoggedIn>,
    connected: Option<Connected>,
    /// Update connection, Disconnect or Change user was done: the summary.
    maintained: Option<String>,
    /// Change user: who is "Connected by" now, as the service said after
    /// the login (`None` when it could not be asked).
    current_connected_by: Option<String>,
    /// The address a verification mail was sent to in this wizard.
    signed_up: Option<String>,
    /// Sync computer: the computers before and after.
    sync_move: Option<sync_computer::Move>,
}

impl State {
    /// The wizard did what it was opened for; the page is the summary.
    fn done(&self) -> bool {
        self.connected.is_some() || self.maintained.is_some()
    }
}

/// What the wizard's background work needs; cloned into every task.
#[derive(Clone)]
struct Env {
    host: Host,
    events: Arc<EventQueue>,
    engine: Arc<Engine>,
    service: ServiceUrl,
    client: Client,
    spawner: Spawner,
}

/// What the UI-thread calls need besides the wizard itself.
pub struct Context<'a> {
    pub host: &'a Host,
    pub licence: &'a LicenceReport,
    pub reachability: &'a Arc<Reachability>,
    pub runtime: &'a Runtime,
    pub events: &'a Arc<EventQueue>,
    pub engine: &'a Arc<Engine>,
    pub service: &'a ServiceUrl,
}

impl Context<'_> {
    fn prerequisites(&self, refresh: bool) -> PrerequisiteList {
        prerequisites::check(
            &prerequisites::Context {
                host: self.host,
                licence: self.licence,
                reachability: self.reachability,
                runtime: self.runtime,
                events: self.events,
            },
            refresh,
        )
    }
}

/// The client settings of the wizard: a person is waiting, so fewer and
/// shorter retries than the sync engine's.
fn client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: std::time::Duration::from_secs(5),
        request_timeout: std::time::Duration::from_secs(20),
        user_agent: concat!("online-desktop-plugin/", env!("CARGO_PKG_VERSION")).to_owned(),
        retry: od_client::RetryPolicy {
            max_attempts: 3,
            initial_delay: std::time::Duration::from_millis(250),
            max_delay: std::time::Duration::from_secs(2),
            max_total: std::time::Duration::from_secs(20),
        },
        ..ClientConfig::default()
    }
}

pub struct Wizard {
    env: Env,
    state: Mutex<State>,
}

impl Wizard {
    /// Opens the wizard for `mode`. Connect: on the prerequisites page,
    /// only for a super user, only a company that is not connected yet;
    /// Update connection and Disconnect on the Online ID page, only for a
    /// super user of a connected company, Disconnect only on the computer
    /// the connection belongs to (the sync computer).
    pub fn open_for(ctx: &Context<'_>, mode: Mode) -> Result<Arc<Wizard>, Refusal> {
        let user = ctx.host.current_user().map_err(|e| {
            refusal(
                OD_RESULT_HOST_CALLBACK_FAILED,
                format!("The wizard cannot tell who is logged in: {e}"),
            )
        })?;
        if !user.is_super_user {
            return Err(bad_state(format!(
                "{} is not a super user. Only a super user can connect the company to Online Desktop.",
                user.username
            )));
        }
        if ctx.engine.data_folder().is_none() {
            return Err(bad_state(
                "The program gave the add-on no folder for its data (od_host_api.data_dir), so it cannot connect.",
            ));
        }
        let connected = ctx.engine.status().state != SyncState::NotConnected;
        match mode {
            Mode::Connect if connected => {
                return Err(bad_state(
                    "This company is already connected to Online Desktop. To connect it again, disconnect it first.",
                ))
            }
            Mode::Connect => {
                // Connected from another computer: this one joins with
                // the Sync computer choice, not a second connection.
                if let Ok(Some(recorded)) = ctx.host.recorded_connection() {
                    return Err(bad_state(format!(
                        "This company is already connected to Online Desktop{}. To synchronise it from this \
                         computer instead, choose Sync computer in Company settings → Online Desktop on this \
                         computer.",
                        recorded
                            .computer_id
                            .map(|id| {
                                let name = ctx
                                    .host
                                    .computers()
                                    .ok()
                                    .and_then(|c| c.into_iter().find(|c| c.id == id))
                                    .map_or(id, |c| c.name);
                                format!(" from the computer {name}")
                            })
                            .unwrap_or_default()
                    )));
                }
            }
            Mode::UpdateConnection | Mode::Disconnect | Mode::ChangeUser if !connected => {
                return Err(bad_state(
                    "This company is not connected to Online Desktop on this computer; there is no connection to update or disconnect.",
                ))
            }
            _ => {}
        }
        if mode == Mode::ChangeUser {
            change_user::may_open(&user)?;
        }
        let sync_move = match mode {
            Mode::SyncComputer => Some(sync_computer::may_open(ctx)?),
            _ => None,
        };
        if matches!(mode, Mode::Disconnect | Mode::ChangeUser) {
            maintain::on_sync_computer(ctx.host, ctx.engine, mode)?;
        }
        let client = Client::new(ctx.service.clone(), client_config())
            .map_err(|e| refusal(OD_RESULT_INTERNAL, e.to_string()))?;
        let spawner = ctx
            .runtime
            .spawner()
            .map_err(|e| bad_state(e.to_string()))?;
        let email = user
            .employee
            .and_then(|e| e.email)
            .map(|e| e.trim().to_owned())
            .unwrap_or_default();
        tracing::info!(
            user = user.username.as_str(),
            mode = mode.id(),
            "connect wizard opened"
        );
        Ok(Arc::new(Wizard {
            env: Env {
                host: ctx.host.clone(),
                events: Arc::clone(ctx.events),
                engine: Arc::clone(ctx.engine),
                service: ctx.service.clone(),
                client,
                spawner,
            },
            state: Mutex::new(State {
                mode,
                page: if mode == Mode::Connect {
                    Page::Prerequisites
                } else {
                    Page::OnlineId
                },
                form: Form::new(email),
                field_errors: BTreeMap::new(),
                error: None,
                notice: None,
                busy: None,
                finish_phase: None,
                generation: 0,
                session: None,
                connected: None,
                maintained: None,
                current_connected_by: None,
                signed_up: None,
                sync_move,
            }),
        }))
    }

    /// The page as JSON (docs/WIZARD.md). Host data the page shows is read
    /// afresh, so a fix made in the host shows at once.
    pub fn page(&self, ctx: &Context<'_>) -> String {
        let current = self.state.lock().page;
        let data = page::Data {
            prerequisites: (current == Page::Prerequisites).then(|| ctx.prerequisites(false)),
            company: matches!(current, Page::Company | Page::Finish)
                .then(|| company::gather(ctx.host)),
        };
        let state = self.state.lock();
        page::render(&state, &data).to_string()
    }

    /// Whether the page shows the prerequisites (their change is a change of the page).
    pub fn shows_prerequisites(&self) -> bool {
        self.state.lock().page == Page::Prerequisites
    }

    /// Sets a field of the current page. The value is copied; a password
    /// is kept only in memory until the login.
    pub fn set(&self, field: &str, value: &str) -> Result<(), Refusal> {
        let mut state = self.state.lock();
        if state.busy.is_some() {
            return Err(bad_state(
                "The wizard is busy; wait until the page is no longer busy.",
            ));
        }
        let fields: &[&str] = match state.page {
            Page::OnlineId => &["email", "password"],
            Page::Start => &["when", "at"],
            _ => &[],
        };
        if !fields.contains(&field) {
            return Err(refusal(
                OD_RESULT_INVALID_ARGUMENT,
                format!(
                    "the page {} has no field \u{201c}{field}\u{201d} to set (fields: {})",
                    state.page.id(),
                    if fields.is_empty() {
                        "none".to_owned()
                    } else {
                        fields.join(", ")
                    }
                ),
            ));
        }
        if value.chars().count() > form::MAX_FIELD_CHARS {
            return Err(refusal(
                OD_RESULT_INVALID_ARGUMENT,
                format!(
                    "the value of {field} is longer than {} characters",
                    form::MAX_FIELD_CHARS
                ),
            ));
        }
        match field {
            "email" => {
                let email = value.trim().to_owned();
                if state.session.as_ref().is_some_and(|s| s.email != email) {
                    // Another Online ID: the old login no longer counts.
                    if let Some(session) = state.session.take() {
                        self.log_out(session);
                    }
                }
                state.form.email = email;
            }
            "password" => {
                state.form.password = (!value.is_empty()).then(|| Secret::new(value));
            }
            "when" => {
                state.form.when = StartWhen::parse(value).ok_or_else(|| {
                    refusal(
                        OD_RESULT_INVALID_ARGUMENT,
                        format!("when must be \u{201c}now\u{201d} or \u{201c}later\u{201d}, not \u{201c}{value}\u{201d}"),
                    )
                })?;
                state.field_errors.remove("at");
            }
            _ => state.form.at = value.trim().to_owned(),
        }
        state.field_errors.remove(field);
        Ok(())
    }

    /// Carries out `action`; returns at once (network work continues on
    /// the runtime).
    pub fn act(self: &Arc<Self>, ctx: &Context<'_>, action: Action) -> Result<(), Refusal> {
        if action == Action::Cancel {
            return self.cancel();
        }
        // Read the host before taking the lock (no lock across host calls).
        let page = self.state.lock().page;
        let prerequisites = (page == Page::Prerequisites
            && matches!(action, Action::Next | Action::Recheck))
        .then(|| ctx.prerequisites(action == Action::Recheck));
        let company =
            (page == Page::Company && action == Action::Next).then(|| company::gather(ctx.host));

        let mut state = self.state.lock();
        if state.page != page {
            return Err(bad_state("The page changed meanwhile; read it again."));
        }
        if state.busy.is_some() {
            return Err(bad_state(
                "The wizard is busy; only cancel is possible until the page is no longer busy.",
            ));
        }
        let allowed = page::actions(&state);
        let permitted = match action {
            Action::Next => allowed.next,
            Action::Back => allowed.back,
            Action::Finish => allowed.finish,
            Action::CreateOnlineId => allowed.create_online_id,
            Action::Recheck => allowed.recheck,
            Action::Cancel => allowed.cancel,
        };
        if !permitted {
            return Err(bad_state(format!(
                "{action:?} is not possible on the page {} now",
                state.page.id()
            )));
        }
        state.error = None;
        match action {
            Action::Back => {
                state.notice = None;
                state.field_errors.clear();
                if let Some(previous) = state.page.previous(state.mode) {
                    state.page = previous;
                }
            }
            Action::Recheck => {}
            Action::Next => match state.page {
                Page::Prerequisites => {
                    if prerequisites.is_some_and(|list| list.can_connect()) {
                        state.page = Page::Welcome;
                    } else {
                        state.error = Some(PageError {
                            code: OD_RESULT_BAD_STATE,
                            message: "Not every prerequisite is met yet. Fix the rows marked as failed, then check again.".to_owned(),
                        });
                    }
                }
                Page::Welcome => state.page = Page::OnlineId,
                Page::OnlineId => self.log_in(&mut state),
                Page::Company => match company {
                    Some(Ok(data)) if data.missing.is_empty() => state.page = Page::Start,
                    Some(Ok(data)) => {
                        state.error = Some(PageError {
                            code: OD_RESULT_HOST_DATA_INVALID,
                            message: format!(
                                "The registration data is not complete (missing: {}). Fill it in under {}, then try again.",
                                data.missing.join(", "),
                                "View → Settings → Company → Company information"
                            ),
                        })
                    }
                    Some(Err(message)) => {
                        state.error = Some(PageError {
                            code: OD_RESULT_HOST_CALLBACK_FAILED,
                            message,
                        })
                    }
                    None => {}
                },
                Page::Start => {
                    if state.form.when == StartWhen::Later {
                        if let Err(why) = form::parse_later(&state.form.at, chrono::Utc::now()) {
                            state.field_errors.insert("at", why);
                            return Ok(());
                        }
                    }
                    state.page = Page::Finish;
                }
                Page::Finish | Page::Confirm | Page::Cancelled => {}
            },
            Action::CreateOnlineId => self.sign_up(&mut state),
            Action::Finish => {
                if state.form.when == StartWhen::Later {
                    if let Err(why) = form::parse_later(&state.form.at, chrono::Utc::now()) {
                        state.field_errors.insert("at", why);
                        state.page = Page::Start;
                        return Ok(());
                    }
                }
                if state.mode == Mode::Connect {
                    self.start_finish(&mut state);
                } else {
                    self.start_maintain(&mut state);
                }
            }
            Action::Cancel => {}
        }
        Ok(())
    }

    /// Cancel: nothing left behind. A running sign-up or login is
    /// abandoned; a running finish undoes what it did online at its next
    /// step (the page stays busy until it has).
    fn cancel(&self) -> Result<(), Refusal> {
        let mut state = self.state.lock();
        if state.connected.is_some() {
            return Err(bad_state(
                "The company is connected already; to undo it, disconnect it in Company settings → Online Desktop.",
            ));
        }
        if state.maintained.is_some() {
            return Err(bad_state("It is done already; close the wizard."));
        }
        if state.page == Page::Cancelled && state.busy.is_none() {
            return Ok(());
        }
        let committing = state.finish_phase == Some(FinishPhase::Committing);
        if let Some(busy) = &mut state.busy {
            if busy.job == Job::Finish {
                if committing {
                    return Err(bad_state(if state.mode == Mode::Connect {
                        "The connection is being completed and can no longer be cancelled; disconnect it afterwards if needed."
                    } else {
                        "It is being done and can no longer be cancelled; wait until the page is no longer busy."
                    }));
                }
                busy.cancel_requested = true;
                busy.text = "Cancelling: undoing what was registered online …".to_owned();
                return Ok(());
            }
            state.busy = None;
            state.generation += 1;
        }
        self.end_cancelled(&mut state);
        Ok(())
    }

    fn end_cancelled(&self, state: &mut State) {
        state.page = Page::Cancelled;
        state.form.password = None;
        state.field_errors.clear();
        state.error = None;
        state.notice = None;
        state.finish_phase = None;
        if let Some(session) = state.session.take() {
            self.log_out(session);
        }
        tracing::info!(mode = state.mode.id(), "connect wizard cancelled");
    }

    /// Closes the wizard: what is not finished is cancelled. Refused while
    /// the page is busy.
    pub fn close(&self) -> Result<(), Refusal> {
        let mut state = self.state.lock();
        if state.busy.is_some() {
            return Err(bad_state(
                "The wizard is busy; cancel it and wait until the page is no longer busy, then close it.",
            ));
        }
        if !state.done() && state.page != Page::Cancelled {
            self.end_cancelled(&mut state);
        }
        Ok(())
    }

    fn changed(&self) {
        self.env.events.post(Event {
            kind: EventKind::WizardChanged,
            payload: None,
        });
    }

    /// Ends an Online ID's session in the background (best effort: it
    /// expires by itself otherwise).
    fn log_out(&self, session: LoggedIn) {
        let client = self.env.client.clone();
        self.env.spawner.spawn(async move {
            if let Err(e) = client.log_out(&session.token).await {
                tracing::info!("the wizard's Online ID session could not be ended: {e}");
            }
        });
    }

    fn set_busy(state: &mut State, job: Job, text: impl Into<String>) {
        state.busy = Some(Busy {
            job,
            text: text.into(),
            cancel_requested: false,
        });
    }

    fn sign_up(self: &Arc<Self>, state: &mut State) {
        state.notice = None;
        if let Some(why) = form::email_problem(&state.form.email) {
            state.field_errors.insert("email", why.to_owned());
            return;
        }
        let email = state.form.email.clone();
        Self::set_busy(state, Job::SignUp, "Creating your Online ID …");
        let generation = state.generation;
        let this = Arc::clone(self);
        self.env.spawner.spawn(async move {
            let result = this.env.client.sign_up(&email).await;
            {
                let mut state = this.state.lock();
                if state.generation != generation {
                    return;
                }
                state.busy = None;
                match result {
                    Ok(_) => {
                        state.signed_up = Some(email.clone());
                        state.notice = Some(format!(
                            "We sent an e-mail to {email}. Open the link in it (within 24 hours) and choose a password \
                             for your Online ID there, then come back here and log in with {email} and that password. \
                             The e-mail may be in your spam folder. Your Online ID is not your login for the program."
                        ));
                    }
                    Err(error) => Self::service_error(&mut state, &error, &this.env.service),
                }
            }
            this.changed();
        });
    }

    fn log_in(self: &Arc<Self>, state: &mut State) {
        state.notice = None;
        if let Some(why) = form::email_problem(&state.form.email) {
            state.field_errors.insert("email", why.to_owned());
            return;
        }
        if state.form.password.is_none() && state.session.is_some() {
            // Came back to this page after logging in; nothing changed.
            state.page = state.mode.after_log_in();
            return;
        }
        let Some(password) = state.form.password.take() else {
            state.field_errors.insert(
                "password",
                "Enter the password of your Online ID (not your login for the program).".to_owned(),
            );
            return;
        };
        let email = state.form.email.clone();
        Self::set_busy(state, Job::LogIn, "Logging in …");
        let generation = state.generation;
        let mode = state.mode;
        let this = Arc::clone(self);
        self.env.spawner.spawn(async move {
            let result = this.env.client.log_in(&email, &password).await;
            drop(password);
            let current_connected_by = match (&result, mode) {
                (Ok(_), Mode::ChangeUser) => change_user::current_connected_by(&this.env).await,
                _ => None,
            };
            {
                let mut state = this.state.lock();
                if state.generation != generation {
                    if let Ok(session) = result {
                        this.log_out(LoggedIn {
                            email,
                            token: session.token,
                        });
                    }
                    return;
                }
                state.busy = None;
                match result {
                    Ok(session)
                        if current_connected_by
                            .as_deref()
                            .is_some_and(|current| current.eq_ignore_ascii_case(&email)) =>
                    {
                        this.log_out(LoggedIn {
                            email: email.clone(),
                            token: session.token,
                        });
                        if let Some(old) = state.session.take() {
                            this.log_out(old);
                        }
                        state.error = Some(change_user::same_person(&email));
                    }
                    Ok(session) => {
                        tracing::info!("logged in with the Online ID {email}");
                        state.current_connected_by = current_connected_by;
                        if let Some(old) = state.session.replace(LoggedIn {
                            email,
                            token: session.token,
                        }) {
                            this.log_out(old);
                        }
                        state.page = state.mode.after_log_in();
                    }
                    Err(error) => Self::service_error(&mut state, &error, &this.env.service),
                }
            }
            this.changed();
        });
    }

    /// Shows a service error on the Online ID page: on the field it is
    /// about where there is one.
    fn service_error(state: &mut State, error: &ClientError, service: &ServiceUrl) {
        let just_signed_up = state.signed_up.as_deref() == Some(state.form.email.as_str());
        let message = match error.code() {
            // The service's own text also speaks of just-created Online
            // IDs; here the wizard knows whether one was.
            Some("invalid_credentials") if !just_signed_up => format!(
                "The e-mail address or the password is wrong. Check both: it is the password of your Online ID, \
                 not your login for the program. Forgot it? Open {}login and choose \u{201c}Send me a \
                 new password link\u{201d}.",
                service.as_str()
            ),
            Some("invalid_credentials") if just_signed_up => format!(
                "{error} If you have just created this Online ID, it is not verified yet: open the link in the e-mail \
                 we sent you (look in the spam folder too), choose a password there, then log in here with it."
            ),
            Some("not_verified") => format!(
                "{error} Your Online ID is not verified yet: open the link in the e-mail we sent you (look in the spam \
                 folder too), choose a password there, then log in here."
            ),
            _ => error.to_string(),
        };
        match error.code() {
            Some("invalid_credentials") => {
                state.field_errors.insert("password", message);
            }
            Some("email_invalid") => {
                state.field_errors.insert("email", message);
            }
            _ => {
                state.error = Some(PageError {
                    code: error.status_code(),
                    message,
                })
            }
        }
    }

    fn start_finish(self: &Arc<Self>, state: &mut State) {
        let Some(session) = &state.session else {
            state.page = Page::OnlineId;
            state.error = Some(PageError {
                code: OD_RESULT_BAD_STATE,
                message: "Log in with your Online ID first.".to_owned(),
            });
            return;
        };
        let request = finish::Request {
            email: session.email.clone(),
            token: session.token.clone(),
            when: state.form.when,
            at: state.form.at.clone(),
        };
        Self::set_busy(
            state,
            Job::Finish,
            "Connecting: registering the company and this computer …",
        );
        state.finish_phase = Some(FinishPhase::Online);
        let this = Arc::clone(self);
        self.env.spawner.spawn(async move {
            finish::run(this, request).await;
        });
    }

    /// Finish of Update connection and Disconnect: not cancellable once
    /// started (it stops the engine at once).
    fn start_maintain(self: &Arc<Self>, state: &mut State) {
        let Some(session) = &state.session else {
            state.page = Page::OnlineId;
            state.error = Some(PageError {
                code: OD_RESULT_BAD_STATE,
                message: "Log in with your Online ID first.".to_owned(),
            });
            return;
        };
        let request = maintain::Request {
            email: session.email.clone(),
            token: session.token.clone(),
            mode: state.mode,
        };
        let text = match state.mode {
            Mode::Disconnect => "Disconnecting: stopping synchronisation and deleting the online copy …",
            Mode::ChangeUser => "Changing the user: handing the connection to your Online ID …",
            Mode::SyncComputer => "Moving synchronisation to this computer and registering it …",
            _ => "Updating the connection: stopping synchronisation and registering this computer again …",
        };
        Self::set_busy(state, Job::Finish, text);
        state.finish_phase = Some(FinishPhase::Committing);
        let this = Arc::clone(self);
        self.env.spawner.spawn(async move {
            maintain::run(this, request).await;
        });
    }
}
