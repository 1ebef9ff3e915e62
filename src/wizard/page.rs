//! The page description: one JSON document per page, the same shape for
//! every page (docs/WIZARD.md), so a host UI renders it without knowing
//! the pages. A password's value is never part of it.

use super::company::{CompanyData, REGISTRATION_FIELDS};
use super::form::StartWhen;
use super::{steps, Job, Mode, Page, State};
use crate::prerequisites::{CheckState, PrerequisiteList};
use serde::Serialize;
use serde_json::{json, Value};

/// Host data the page shows, read before the wizard's lock was taken.
pub(super) struct Data {
    pub prerequisites: Option<PrerequisiteList>,
    pub company: Option<Result<CompanyData, String>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(super) struct Actions {
    pub back: bool,
    pub next: bool,
    pub finish: bool,
    pub cancel: bool,
    pub create_online_id: bool,
    pub recheck: bool,
}

/// What the current page allows. While busy only cancel (and not once
/// the finish is completing); when done or cancelled, nothing (the host
/// closes).
pub(super) fn actions(state: &State) -> Actions {
    if state.done() || state.page == Page::Cancelled {
        return Actions::default();
    }
    if let Some(busy) = &state.busy {
        let cancel = !(busy.job == Job::Finish
            && (busy.cancel_requested
                || state.finish_phase == Some(super::FinishPhase::Committing)));
        return Actions {
            cancel,
            ..Actions::default()
        };
    }
    let page = state.page;
    Actions {
        back: page.previous(state.mode).is_some(),
        next: !matches!(page, Page::Finish | Page::Confirm),
        finish: matches!(page, Page::Finish | Page::Confirm),
        cancel: true,
        create_online_id: page == Page::OnlineId && state.mode == Mode::Connect,
        recheck: page == Page::Prerequisites,
    }
}

struct Field {
    id: &'static str,
    label: String,
    kind: &'static str,
    value: Option<String>,
    required: bool,
    help: Option<String>,
    choices: Option<Value>,
}

impl Field {
    fn new(id: &'static str, label: impl Into<String>, kind: &'static str) -> Field {
        Field {
            id,
            label: label.into(),
            kind,
            value: None,
            required: false,
            help: None,
            choices: None,
        }
    }

    fn info(id: &'static str, label: impl Into<String>, value: impl Into<String>) -> Field {
        Field {
            value: Some(value.into()),
            ..Field::new(id, label, "info")
        }
    }

    fn value(mut self, value: impl Into<String>) -> Field {
        self.value = Some(value.into());
        self
    }

    fn required(mut self) -> Field {
        self.required = true;
        self
    }

    fn help(mut self, help: impl Into<String>) -> Field {
        self.help = Some(help.into());
        self
    }

    fn json(self, state: &State) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "value": self.value,
            "required": self.required,
            "read_only": self.kind == "info",
            "help": self.help,
            "choices": self.choices,
            "error": state.field_errors.get(self.id),
        })
    }
}

fn row_state(state: CheckState) -> &'static str {
    match state {
        CheckState::Passed => "passed",
        CheckState::Failed => "failed",
        CheckState::Pending => "pending",
    }
}

pub(super) fn render(state: &State, data: &Data) -> Value {
    let mut actions = actions(state);
    let mut rows = Value::Null;
    let (title, text, fields): (String, String, Vec<Field>) = match state.page {
        Page::Prerequisites => {
            let list = data.prerequisites.clone().unwrap_or(PrerequisiteList { items: Vec::new() });
            actions.next &= list.can_connect();
            rows = Value::Array(
                list.items
                    .iter()
                    .map(|p| {
                        json!({
                            "id": p.id,
                            "title": p.title,
                            "state": row_state(p.state),
                            "blocking": p.blocking,
                            "detail": p.detail,
                            "fix_location": p.fix_location,
                        })
                    })
                    .collect(),
            );
            let text = if list.can_connect() {
                "Every prerequisite is met. Rows marked as not blocking are warnings: they must be fixed before the first synchronisation starts."
            } else if list.pending() {
                "Checking … Next is possible when every prerequisite is met."
            } else {
                "Some prerequisites are not met. Each failed row says where to fix it in the program; then choose Check again."
            };
            ("Prerequisites for connecting".to_owned(), text.to_owned(), Vec::new())
        }
        Page::Welcome => (
            "Connect to Online Desktop".to_owned(),
            "Online Desktop puts this company's data online, so you and the people you invite can work with it in a \
             web browser. The connection takes these steps: you log in with your Online ID (or create one), check \
             the company's registration data, and choose when the first synchronisation starts.\n\n\
             The first synchronisation copies the whole company database and may take a long time. While it runs, \
             nobody can use the program for this company, and other users and integrations must be logged out. \
             Afterwards, changes go both ways within seconds while the sync computer is on."
                .to_owned(),
            Vec::new(),
        ),
        Page::OnlineId if state.mode != Mode::Connect => {
            let mut text = super::maintain::online_id_text(state.mode).to_owned();
            if let Some(session) = &state.session {
                text.push_str(&format!(
                    "\n\nYou are logged in as {}. Choose Next to continue.",
                    session.email
                ));
            }
            (
                "Your Online ID".to_owned(),
                text,
                vec![
                    Field::new("email", "E-mail address (Online ID)", "email")
                        .value(state.form.email.clone())
                        .required(),
                    Field::new("password", "Password of the Online ID", "password")
                        .value("")
                        .required()
                        .help("Not your password for the program."),
                ],
            )
        }
        Page::OnlineId => {
            let mut text = "Log in with your Online ID: the e-mail address and password you use for Online Desktop \
                            on the web. Your Online ID is not your login for the program.\n\n\
                            No Online ID yet? Enter your e-mail address and choose Create a new Online ID. We send \
                            you an e-mail with a link (it may be in your spam folder); open it, choose a password, \
                            then come back here and log in."
                .to_owned();
            if let Some(session) = &state.session {
                text.push_str(&format!(
                    "\n\nYou are logged in as {}. Choose Next to continue.",
                    session.email
                ));
            }
            (
                "Your Online ID".to_owned(),
                text,
                vec![
                    Field::new("email", "E-mail address (Online ID)", "email")
                        .value(state.form.email.clone())
                        .required(),
                    Field::new("password", "Password of the Online ID", "password")
                        .value("")
                        .required()
                        .help("Not your password for the program."),
                ],
            )
        }
        Page::Company => company_page(data, &mut actions),
        Page::Start => {
            let later = state.form.when == StartWhen::Later;
            let mut when = Field::new("when", "First synchronisation", "choice")
                .value(state.form.when.value())
                .required();
            when.choices = Some(json!([
                {"value": "now", "label": "Now, when I choose Finish"},
                {"value": "later", "label": "Later, at a date and time I choose"},
            ]));
            let mut at = Field::new("at", "Date and time", "datetime")
                .value(state.form.at.clone())
                .help("This computer's time, like 2026-12-24 22:00 (or with an offset: 2026-12-24T22:00:00+01:00). It must lie in the future.");
            at.required = later;
            let text = if later {
                "The first synchronisation starts at the time you choose. The program may be closed then, but this \
                 computer must stay on: the Online Desktop sync agent runs the synchronisation. Until then nothing is \
                 sent, and the program can be used as usual."
            } else {
                "The first synchronisation starts as soon as you choose Finish. It may take long, and nobody can use \
                 the program for this company meanwhile."
            };
            (
                "Start of synchronisation".to_owned(),
                text.to_owned(),
                vec![when, at],
            )
        }
        Page::Finish => finish_page(state, data),
        Page::Confirm => confirm_page(state),
        Page::Cancelled if state.mode != Mode::Connect => (
            "Cancelled".to_owned(),
            "Nothing was changed: the connection, the online data and synchronisation are as they were."
                .to_owned(),
            Vec::new(),
        ),
        Page::Cancelled => (
            "Connecting was cancelled".to_owned(),
            "The company was not connected. Nothing was stored on this computer. An Online ID you created stays \
             yours; you can use it when you connect later."
                .to_owned(),
            Vec::new(),
        ),
    };
    let busy = state.busy.as_ref();
    json!({
        "page": state.page.id(),
        "mode": state.mode.id(),
        "step": state.page.step(state.mode),
        "steps": steps(state.mode),
        "title": title,
        "text": text,
        "fields": fields.into_iter().map(|f| f.json(state)).collect::<Vec<_>>(),
        "rows": rows,
        "actions": actions,
        "busy": busy.is_some(),
        "busy_text": busy.map(|b| b.text.clone()),
        "error": state.error.as_ref().map(|e| e.message.clone()),
        "error_code": state.error.as_ref().map(|e| e.code),
        "notice": state.notice,
        "done": state.done(),
        "cancelled": state.page == Page::Cancelled,
    })
}

fn company_fields(company: &CompanyData) -> Vec<Field> {
    let mut fields: Vec<Field> = REGISTRATION_FIELDS
        .iter()
        .map(|(id, label)| {
            let value = company.value(id);
            let mut field = Field::info(id, *label, value);
            if value.is_empty() {
                field.help = Some(
                    "Missing: fill it in under View → Settings → Company → Company information."
                        .to_owned(),
                );
            }
            field
        })
        .collect();
    fields.push(Field::info(
        "licence_number",
        "Licence number",
        company.licence_number.clone(),
    ));
    fields.push(Field::info(
        "licensee",
        "Licensee",
        company.licensee.clone(),
    ));
    fields
}

fn company_page(data: &Data, actions: &mut Actions) -> (String, String, Vec<Field>) {
    let title = "Company registration".to_owned();
    match &data.company {
        Some(Ok(company)) => {
            actions.next &= company.missing.is_empty();
            let mut text = format!(
                "This is the registration data of {} that will be sent to Online Desktop, from the company settings \
                 and the licence. Check it; to change it, correct it in the program and come back. The online service \
                 binds the company to the licence and to this installation; a company that is already connected \
                 elsewhere is refused.",
                company.company_name
            );
            if !company.missing.is_empty() {
                text.push_str(&format!(
                    "\n\nMissing: {}. Fill it in under View → Settings → Company → Company information.",
                    company.missing.join(", ")
                ));
            }
            (title, text, company_fields(company))
        }
        Some(Err(message)) => {
            actions.next = false;
            (title, message.clone(), Vec::new())
        }
        None => (title, String::new(), Vec::new()),
    }
}

fn finish_page(state: &State, data: &Data) -> (String, String, Vec<Field>) {
    if let Some(connected) = &state.connected {
        let first_sync = match connected.scheduled_at {
            None => "Started now. Its progress shows in the synchronisation status.".to_owned(),
            Some(at) => format!(
                "Scheduled for {} (this computer's time). This computer must be on then.",
                at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M")
            ),
        };
        let mut text = format!(
            "{} is connected to Online Desktop. This computer ({}) is its sync computer.",
            connected.company_name, connected.computer_name
        );
        if let Some(problem) = &connected.start_problem {
            text.push_str(&format!(
                "\n\nSynchronisation could not be started yet: {problem} Start it in Company settings → Online Desktop."
            ));
        }
        return (
            "Connected".to_owned(),
            text,
            vec![
                Field::info("company", "Company", connected.company_name.clone()),
                Field::info(
                    "online_company_id",
                    "Online company id",
                    connected.online_company_id.clone(),
                ),
                Field::info(
                    "licence_number",
                    "Licence",
                    format!("{} ({})", connected.licence_number, connected.tier),
                ),
                Field::info(
                    "connected_by",
                    "Connected by (Online ID)",
                    connected.email.clone(),
                ),
                Field::info(
                    "sync_computer",
                    "Sync computer",
                    connected.computer_name.clone(),
                ),
                Field::info("first_sync", "First synchronisation", first_sync),
            ],
        );
    }
    let company_name = match &data.company {
        Some(Ok(company)) => company.company_name.clone(),
        _ => "The company".to_owned(),
    };
    let email = state
        .session
        .as_ref()
        .map(|s| s.email.clone())
        .unwrap_or_default();
    let first_sync = match state.form.when {
        StartWhen::Now => "Now, right after Finish.".to_owned(),
        StartWhen::Later => format!("Later: {}", state.form.at),
    };
    (
        "Ready to connect".to_owned(),
        format!(
            "Finish registers {company_name} with Online Desktop as {email}, makes this computer its sync computer, \
             stores this computer's credentials (never your password), and starts or schedules the first \
             synchronisation. If a step fails, what was done is taken back and you can try again."
        ),
        vec![
            Field::info("company", "Company", company_name),
            Field::info("connected_by", "Connected by (Online ID)", email),
            Field::info("first_sync", "First synchronisation", first_sync),
        ],
    )
}

fn confirm_page(state: &State) -> (String, String, Vec<Field>) {
    let email = state
        .session
        .as_ref()
        .map(|s| s.email.clone())
        .unwrap_or_default();
    if let Some(summary) = &state.maintained {
        let title = match state.mode {
            Mode::Disconnect => "Disconnected",
            Mode::ChangeUser => "User changed",
            Mode::SyncComputer => "Sync computer changed",
            _ => "Connection updated",
        };
        return (title.to_owned(), summary.clone(), Vec::new());
    }
    if state.mode == Mode::ChangeUser {
        let now = state
            .current_connected_by
            .clone()
            .unwrap_or_else(|| "(could not be read now)".to_owned());
        return (
            "Change user".to_owned(),
            format!(
                "Finish hands this company's connection to Online Desktop to {email}: from then on {email} is \
                 Connected by, administers the connection and is the only one who can disconnect it. {now} keeps \
                 access to the company online. Synchronisation goes on as it is; nothing is sent again."
            ),
            vec![
                Field::info("connected_by_now", "Connected by now", now),
                Field::info("connected_by_new", "Connected by after Finish", email),
            ],
        );
    }
    if let (Mode::SyncComputer, Some(chosen)) = (state.mode, &state.sync_move) {
        let (title, text) = super::sync_computer::confirm_text(chosen);
        return (
            title,
            text,
            vec![
                Field::info(
                    "sync_computer_now",
                    "Sync computer now",
                    chosen.from.clone().unwrap_or_else(|| "-".to_owned()),
                ),
                Field::info(
                    "sync_computer_new",
                    "Sync computer after Finish",
                    chosen.to.name.clone(),
                ),
                Field::info("online_id", "Online ID", email),
            ],
        );
    }
    let (title, text) = match state.mode {
        Mode::Disconnect => (
            "Disconnect from Online Desktop",
            "Finish disconnects this company from Online Desktop:\n\n\
             The online copy of the company's data is deleted. The company and its users' access stay online, \
             but there is no data to work with on the web until it is connected again.\n\n\
             The data in the program on this computer is never touched. Synchronisation stops, and the add-on's \
             own bookkeeping on this computer (the connection, the id mapping) is removed.\n\n\
             Connecting again later synchronises everything again from the start, like the first time.",
        ),
        _ => (
            "Update the connection",
            "Finish stops synchronisation, registers this computer with Online Desktop again with your Online ID \
             (the earlier registration of this computer stops working), stores the new credentials (never your \
             password) and starts synchronisation again where it stopped: nothing is sent twice.\n\n\
             If synchronisation stopped because a backup of the company database seems to have been restored, \
             the program's records are compared one by one with the online copy: where a record differs, the \
             online values are put back (the program's values stay in the synchronisation history as \
             conflicts), records the backup did not have are created again, records new in the program are \
             sent, and changes made after the restore was noticed are sent as usual.",
        ),
    };
    (
        title.to_owned(),
        text.to_owned(),
        vec![Field::info("online_id", "Online ID", email)],
    )
}
