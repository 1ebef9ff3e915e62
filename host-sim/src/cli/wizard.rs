//! The add-on's connect wizard in the terminal (docs/WIZARD.md): every page
//! is rendered from its JSON, whatever page it is; the person fills in the
//! fields and picks one of the page's actions, or a script of answers does
//! (`connect --answers FILE`, `connect --email ...`). Background work (log
//! in, create an Online ID, finish) shows a spinner until the add-on sends
//! `OD_EVENT_WIZARD_CHANGED`; the host never asks the network itself.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use clap::ValueEnum;
use console::style;
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Input, Password, Select};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use super::sync::{EventLoop, Happening};
use crate::error::{HostError, Result};
use crate::plugin::instance::CallError;
use crate::plugin::{Instance, WizardAction, WizardMode, WizardPage};

/// Environment variable with the Online ID's password for scripted runs.
pub const PASSWORD_ENV: &str = "OD_ONLINE_PASSWORD";

/// When the first synchronisation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Start {
    Now,
    Later,
}

/// The answers of a scripted run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub email: Option<String>,
    /// The environment variable holding the password.
    pub password_env: String,
    /// Create a new Online ID first (the run then waits for Enter on
    /// standard input while the person opens the link in the mail).
    pub create_online_id: bool,
    pub start: Start,
    /// The time for `later` ("2026-12-24 22:00" or RFC 3339).
    pub at: Option<String>,
    /// Press Cancel on this page (`prerequisites`, `welcome`, `online_id`,
    /// `company`, `start`, `finish`) instead of going on.
    pub cancel_at: Option<String>,
}

impl Default for Answers {
    fn default() -> Answers {
        Answers {
            email: None,
            password_env: PASSWORD_ENV.into(),
            create_online_id: false,
            start: Start::Now,
            at: None,
            cancel_at: None,
        }
    }
}

impl Answers {
    /// Reads an answers file: a JSON object, or the same keys as flat
    /// TOML (`email = "..."`, `create_online_id = false`).
    pub fn from_file(path: &Path) -> Result<Answers> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| HostError::io(format!("reading {}", path.display()), e))?;
        let value = match serde_json::from_str::<Value>(&text) {
            Ok(value) => value,
            Err(_) => flat_toml(&text).map_err(|line| {
                HostError::InvalidInput(format!(
                    "{} is neither JSON nor simple TOML (key = value): line {line} is not understood.",
                    path.display()
                ))
            })?,
        };
        Answers::from_json(&value)
    }

    pub fn from_json(value: &Value) -> Result<Answers> {
        let object = value.as_object().ok_or_else(|| {
            HostError::InvalidInput("The answers must be an object of keys and values.".into())
        })?;
        let mut answers = Answers::default();
        for (key, v) in object {
            let text = || {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    HostError::InvalidInput(format!("The answer {key} must be text."))
                })
            };
            match key.as_str() {
                "email" => answers.email = Some(text()?),
                "password_env" => answers.password_env = text()?,
                "password" => {
                    return Err(HostError::InvalidInput(
                        "An answers file never holds the password: name the environment variable \
                         that does (password_env, default OD_ONLINE_PASSWORD)."
                            .into(),
                    ))
                }
                "create_online_id" => {
                    answers.create_online_id = v.as_bool().ok_or_else(|| {
                        HostError::InvalidInput("create_online_id must be true or false.".into())
                    })?
                }
                "start" => {
                    answers.start = match text()?.as_str() {
                        "now" => Start::Now,
                        "later" => Start::Later,
                        other => {
                            return Err(HostError::InvalidInput(format!(
                                "start must be \"now\" or \"later\", not \"{other}\"."
                            )))
                        }
                    }
                }
                "at" => answers.at = Some(text()?),
                "cancel_at" => answers.cancel_at = Some(text()?),
                other => {
                    return Err(HostError::InvalidInput(format!(
                        "The answers file has an unknown key \"{other}\" (known: email, \
                         password_env, create_online_id, start, at, cancel_at)."
                    )))
                }
            }
        }
        Ok(answers)
    }
}

/// `key = "text"` / `key = true` lines (comments and blank lines allowed);
/// the number of the first line that is not one.
fn flat_toml(text: &str) -> std::result::Result<Value, usize> {
    let mut object = serde_json::Map::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(n + 1)?;
        let value = value.trim();
        let value = match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(
                value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .ok_or(n + 1)?
                    .to_owned(),
            ),
        };
        object.insert(key.trim().to_owned(), value);
    }
    Ok(Value::Object(object))
}

/// Who answers the pages.
pub enum Mode {
    /// A person at the terminal.
    Interactive,
    Scripted(Answers),
}

/// How the wizard ended.
pub enum Outcome {
    /// Done (connected, connection updated, disconnected): the last page,
    /// the summary.
    Connected(Box<WizardPage>),
    Cancelled,
}

/// Opens the connect wizard, walks it to the end and closes it.
pub fn run(instance: &Instance<'_>, events: &EventLoop<'_, '_>, mode: Mode) -> Result<Outcome> {
    run_for(instance, events, WizardMode::Connect, mode)
}

/// Opens the wizard for `purpose` (connect, update connection, disconnect),
/// walks it to the end with the same renderer and closes it.
pub fn run_for(
    instance: &Instance<'_>,
    events: &EventLoop<'_, '_>,
    purpose: WizardMode,
    mode: Mode,
) -> Result<Outcome> {
    instance.wizard_open_for(purpose).map_err(refused)?;
    let result = match mode {
        Mode::Interactive => interactive(instance, events),
        Mode::Scripted(answers) => scripted(instance, events, &answers),
    };
    if result.is_err() {
        abandon(instance, events);
    } else {
        instance.wizard_close().map_err(refused)?;
    }
    result
}

/// An add-on refusal meant for people, shown as it is.
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

/// Cancels (leaving nothing behind) and closes the wizard after a failure.
fn abandon(instance: &Instance<'_>, events: &EventLoop<'_, '_>) {
    if instance.wizard_page().is_err() {
        return;
    }
    let _ = instance.wizard_action(WizardAction::Cancel);
    let _ = settle(instance, events, false);
    let _ = instance.wizard_close();
}

/// The page once it is no longer busy and no prerequisite is pending:
/// waits for `OD_EVENT_WIZARD_CHANGED` (a spinner with the busy text while
/// it does). Ctrl-C while busy cancels.
fn settle(instance: &Instance<'_>, events: &EventLoop<'_, '_>, show: bool) -> Result<WizardPage> {
    let mut page = instance.wizard_page()?;
    let mut spinner: Option<ProgressBar> = None;
    let mut cancel_asked = false;
    while waiting(&page) {
        if show {
            let text = page
                .busy_text
                .clone()
                .unwrap_or_else(|| "Checking the requirements …".into());
            let s = spinner.get_or_insert_with(|| {
                let s = ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                s.enable_steady_tick(Duration::from_millis(120));
                s
            });
            s.set_message(text);
        }
        let mut changed = false;
        for happening in events.next(Duration::from_secs(30))? {
            match happening {
                Happening::WizardChanged => changed = true,
                Happening::StopAsked if !cancel_asked => {
                    cancel_asked = true;
                    let _ = instance.wizard_action(WizardAction::Cancel);
                    changed = true;
                }
                _ => {}
            }
        }
        if changed {
            page = instance.wizard_page()?;
        }
    }
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    Ok(page)
}

fn waiting(page: &WizardPage) -> bool {
    page.busy
        || page
            .rows
            .as_ref()
            .is_some_and(|rows| rows.iter().any(|r| r.state == "pending"))
}

// --- rendering ----------------------------------------------------------------

/// The page's heading: "Step 3 of 6 · Your Online ID".
fn heading(page: &WizardPage) -> String {
    if page.step == 0 {
        page.title.clone()
    } else {
        format!("Step {} of {} · {}", page.step, page.steps, page.title)
    }
}

/// The whole page for a person.
pub fn render(page: &WizardPage) -> String {
    let mut out = format!("\n{}\n", style(heading(page)).bold().underlined());
    for paragraph in page.text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        out.push_str(&format!("\n{}\n", paragraph.trim_end()));
    }
    if let Some(rows) = &page.rows {
        out.push('\n');
        for row in rows {
            let (mark, title) = match (row.state.as_str(), row.blocking) {
                ("passed", _) => (style("✔").green().bold(), style(row.title.clone())),
                ("pending", _) => (style("…").dim(), style(row.title.clone()).dim()),
                (_, true) => (style("✘").red().bold(), style(row.title.clone()).red()),
                (_, false) => (
                    style("!").yellow().bold(),
                    style(row.title.clone()).yellow(),
                ),
            };
            out.push_str(&format!("  {mark} {title}\n"));
            if !row.detail.is_empty() {
                out.push_str(&format!("      {}\n", row.detail));
            }
            if row.state == "failed" && !row.fix_location.is_empty() {
                out.push_str(&format!(
                    "      {} {}\n",
                    style("Fix it in:").bold(),
                    row.fix_location
                ));
            }
        }
    }
    if let Some(error) = &page.error {
        out.push_str(&format!(
            "\n{} {}\n",
            style("✘").red().bold(),
            style(error).red()
        ));
    }
    if let Some(notice) = &page.notice {
        out.push_str(&format!(
            "\n{} {}\n",
            style("ℹ").cyan().bold(),
            style(notice).cyan()
        ));
    }
    if !page.fields.is_empty() {
        out.push('\n');
    }
    for field in &page.fields {
        let value = match field.kind.as_str() {
            "password" => "(hidden)".to_owned(),
            "choice" => {
                let v = field.value.clone().unwrap_or_default();
                field
                    .choices
                    .iter()
                    .find(|(value, _)| *value == v)
                    .map_or(v, |(_, label)| label.clone())
            }
            _ => field.value.clone().unwrap_or_default(),
        };
        let required = if field.required && !field.read_only {
            " *"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {}{required}: {value}\n",
            style(&field.label).bold()
        ));
        if let Some(help) = &field.help {
            out.push_str(&format!("      {}\n", style(help).dim()));
        }
        if let Some(error) = &field.error {
            out.push_str(&format!(
                "      {} {}\n",
                style("✘").red().bold(),
                style(error).red()
            ));
        }
    }
    out
}

// --- a person at the terminal ---------------------------------------------------

fn theme() -> ColorfulTheme {
    ColorfulTheme::default()
}

fn prompt_error(e: dialoguer::Error) -> HostError {
    HostError::InvalidInput(format!("the prompt failed: {e}"))
}

fn interactive(instance: &Instance<'_>, events: &EventLoop<'_, '_>) -> Result<Outcome> {
    loop {
        let page = settle(instance, events, true)?;
        println!("{}", render(&page));
        if page.done {
            return Ok(Outcome::Connected(Box::new(page)));
        }
        if page.cancelled {
            return Ok(Outcome::Cancelled);
        }
        ask_fields(instance, &page)?;
        if page.actions.is_empty() {
            // Nothing to press: wait for the add-on (the page will change).
            events.next(Duration::from_secs(1))?;
            continue;
        }
        let labels: Vec<&str> = page.actions.iter().map(|a| a.label()).collect();
        let choice = Select::with_theme(&theme())
            .with_prompt("What next?")
            .items(&labels)
            .default(0)
            .interact()
            .map_err(prompt_error)?;
        if let Err(e) = instance.wizard_action(page.actions[choice]) {
            println!("{} {}", style("✘").red().bold(), style(e.message).red());
        }
    }
}

/// Asks for every field a person can change, in order; a choice may make
/// another field required (the time for "later"), so the page is read
/// again after each answer.
fn ask_fields(instance: &Instance<'_>, first: &WizardPage) -> Result<()> {
    let ids: Vec<String> = first
        .fields
        .iter()
        .filter(|f| !f.read_only && f.kind != "info")
        .map(|f| f.id.clone())
        .collect();
    for id in ids {
        let page = instance.wizard_page()?;
        let Some(field) = page.field(&id) else {
            continue;
        };
        let current = field.value.clone().unwrap_or_default();
        let value = match field.kind.as_str() {
            "password" => {
                let text = Password::with_theme(&theme())
                    .with_prompt(format!("{} (hidden; empty to skip)", field.label))
                    .allow_empty_password(true)
                    .interact()
                    .map_err(prompt_error)?;
                if text.is_empty() {
                    continue;
                }
                text
            }
            "choice" => {
                let labels: Vec<&str> = field.choices.iter().map(|(_, l)| l.as_str()).collect();
                let default = field
                    .choices
                    .iter()
                    .position(|(v, _)| *v == current)
                    .unwrap_or(0);
                let i = Select::with_theme(&theme())
                    .with_prompt(&field.label)
                    .items(&labels)
                    .default(default)
                    .interact()
                    .map_err(prompt_error)?;
                field.choices[i].0.clone()
            }
            "datetime" if !field.required && current.is_empty() => continue,
            _ => {
                let prompt = match field.kind.as_str() {
                    "datetime" => format!("{} (e.g. 2026-12-24 22:00)", field.label),
                    _ => field.label.clone(),
                };
                Input::<String>::with_theme(&theme())
                    .with_prompt(prompt)
                    .with_initial_text(current.clone())
                    .allow_empty(!field.required)
                    .interact_text()
                    .map_err(prompt_error)?
            }
        };
        if value != current || field.kind == "password" {
            if let Err(e) = instance.wizard_set(&id, &value) {
                println!("{} {}", style("✘").red().bold(), style(e.message).red());
            }
        }
    }
    Ok(())
}

// --- a script -------------------------------------------------------------------

/// The password for a scripted run: from the environment variable, else a
/// hidden prompt in a terminal.
pub fn password(variable: &str, email: &str) -> Result<String> {
    if let Some(value) = std::env::var_os(variable) {
        let text = value
            .into_string()
            .map_err(|_| HostError::InvalidInput(format!("{variable} is not valid text.")))?;
        if !text.is_empty() {
            return Ok(text);
        }
    }
    if !console::Term::stderr().is_term() {
        return Err(HostError::InvalidInput(format!(
            "No password: set {variable}, or run the command in a terminal to be asked for it."
        )));
    }
    Password::new()
        .with_prompt(format!("Password of the Online ID {email}"))
        .interact()
        .map_err(|e| HostError::InvalidInput(format!("The password could not be read: {e}")))
}

fn scripted(
    instance: &Instance<'_>,
    events: &EventLoop<'_, '_>,
    answers: &Answers,
) -> Result<Outcome> {
    let mut created = false;
    let mut last: Option<(String, WizardAction)> = None;
    let mut repeats = 0;
    loop {
        let page = settle(instance, events, false)?;
        println!("{}", heading(&page));
        let errors = page.errors();
        for error in &errors {
            println!("  {} {}", style("✘").red().bold(), style(error).red());
        }
        if let Some(notice) = &page.notice {
            println!("  {notice}");
        }
        if page.done {
            for field in &page.fields {
                println!(
                    "  {}: {}",
                    field.label,
                    field.value.as_deref().unwrap_or_default()
                );
            }
            return Ok(Outcome::Connected(Box::new(page)));
        }
        if page.cancelled {
            return Ok(Outcome::Cancelled);
        }
        if !errors.is_empty() {
            return Err(HostError::AddOnRefused(format!(
                "{}: {}",
                page.title,
                errors.join(" ")
            )));
        }
        let action = match page.page.as_str() {
            name if answers.cancel_at.as_deref() == Some(name) => WizardAction::Cancel,
            "prerequisites" => {
                if !page.can(WizardAction::Next) {
                    let unmet: Vec<String> = page
                        .rows
                        .iter()
                        .flatten()
                        .filter(|r| r.blocking && r.state != "passed")
                        .map(|r| {
                            let fix = if r.fix_location.is_empty() {
                                String::new()
                            } else {
                                format!(" (fix it in {})", r.fix_location)
                            };
                            format!("{}: {}{fix}", r.title, r.detail)
                        })
                        .collect();
                    return Err(HostError::RequirementsNotMet(format!(
                        "Connecting is not possible yet. {}",
                        unmet.join(" ")
                    )));
                }
                WizardAction::Next
            }
            "online_id" => {
                let email = answers
                    .email
                    .clone()
                    .or_else(|| page.field("email").and_then(|f| f.value.clone()))
                    .filter(|e| !e.trim().is_empty())
                    .ok_or_else(|| {
                        HostError::InvalidInput(
                            "Say which Online ID to use: --email EMAIL or \"email\" in the answers."
                                .into(),
                        )
                    })?;
                instance.wizard_set("email", &email).map_err(refused)?;
                if answers.create_online_id && !created {
                    created = true;
                    WizardAction::CreateOnlineId
                } else {
                    if created {
                        println!(
                            "  Open the link in the mail, choose a password for the Online ID, \
                             then press Enter here."
                        );
                        let mut line = String::new();
                        std::io::stdin()
                            .lock()
                            .read_line(&mut line)
                            .map_err(|e| HostError::io("waiting for Enter", e))?;
                    }
                    let secret = password(&answers.password_env, &email)?;
                    instance.wizard_set("password", &secret).map_err(refused)?;
                    drop(secret);
                    WizardAction::Next
                }
            }
            "start" => {
                let when = match answers.start {
                    Start::Now => "now",
                    Start::Later => "later",
                };
                instance.wizard_set("when", when).map_err(refused)?;
                if answers.start == Start::Later {
                    let at = answers.at.as_deref().ok_or_else(|| {
                        HostError::InvalidInput(
                            "Say when the first synchronisation runs: --at TIME or \"at\" in the answers."
                                .into(),
                        )
                    })?;
                    instance.wizard_set("at", at).map_err(refused)?;
                }
                WizardAction::Next
            }
            "finish" | "confirm" => WizardAction::Finish,
            _ if page.can(WizardAction::Next) => WizardAction::Next,
            other => {
                return Err(HostError::AddOnRefused(format!(
                    "The wizard shows a page this program cannot answer (\u{201c}{other}\u{201d})."
                )))
            }
        };
        let this = (page.page.clone(), action);
        if last.as_ref() == Some(&this) && action != WizardAction::CreateOnlineId {
            repeats += 1;
            if repeats >= 3 {
                return Err(HostError::AddOnRefused(format!(
                    "{}: the wizard does not move on.",
                    page.title
                )));
            }
        } else {
            repeats = 0;
        }
        last = Some(this);
        instance.wizard_action(action).map_err(refused)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_come_from_json_or_flat_toml() {
        let json = Answers::from_json(&json!({
            "email": "kari@example.com", "password_env": "PW", "create_online_id": true,
            "start": "later", "at": "2026-12-24 22:00"
        }))
        .unwrap();
        let toml = Answers::from_json(
            &flat_toml(
                "# answers\nemail = \"kari@example.com\"\npassword_env = \"PW\"\n\
                 create_online_id = true\nstart = \"later\"\nat = \"2026-12-24 22:00\"\n",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(json, toml);
        assert_eq!(json.start, Start::Later);
        assert!(Answers::from_json(&json!({"password": "x"})).is_err());
        assert!(Answers::from_json(&json!({"start": "soon"})).is_err());
        assert_eq!(flat_toml("email kari"), Err(1));
    }
}
