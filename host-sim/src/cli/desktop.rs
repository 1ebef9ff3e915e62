//! The Online Desktop actions of the host: "Connect to Online Desktop",
//! "Company settings → Online Desktop", and the add-on lifecycle check.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use console::style;

use super::sync::{follow_first_sync, local_time, EventLoop, FirstSyncEnd};
use super::{quoted, wizard, GlobalArgs};
use crate::desktop::{lifecycle, render};
use crate::error::{HostError, Result};
use crate::plugin::host::StderrLog;
use crate::plugin::{Instance, Library, Settings, WizardMode};

/// Where the add-on is and how it is set up; every command accepts these.
#[derive(Debug, Clone, Args)]
pub struct AddOnArgs {
    /// The Online Desktop add-on library. Default: the one built in this
    /// workspace, next to this program
    #[arg(long, global = true, env = "OD_PLUGIN_PATH", value_name = "FILE")]
    pub plugin: Option<PathBuf>,

    /// Address of the online service. Default: the add-on's built-in one
    #[arg(long, global = true, env = "OD_SERVICE_URL", value_name = "URL")]
    pub service_url: Option<String>,

    /// How much of the add-on's log to show on standard error
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "off",
        value_name = "LEVEL"
    )]
    pub add_on_log: Level,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn abi(self) -> od_abi::od_log_level {
        match self {
            Level::Off => od_abi::OD_LOG_LEVEL_OFF,
            Level::Error => od_abi::OD_LOG_LEVEL_ERROR,
            Level::Warn => od_abi::OD_LOG_LEVEL_WARN,
            Level::Info => od_abi::OD_LOG_LEVEL_INFO,
            Level::Debug => od_abi::OD_LOG_LEVEL_DEBUG,
            Level::Trace => od_abi::OD_LOG_LEVEL_TRACE,
        }
    }
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// How long to wait for the online-service check, in seconds
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub wait: u64,
}

/// `settings`: the page, or one of its actions.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    pub check_args: ConnectArgs,
    #[command(subcommand)]
    pub action: Option<SettingsAction>,
}

/// The actions of "Company settings → Online Desktop" while connected.
#[derive(Debug, Subcommand)]
pub enum SettingsAction {
    /// Update connection: log in again with the Online ID (a super user of
    /// the company online), register this computer again, and go on
    /// synchronising where it stopped (also after a restored backup). The
    /// password comes from OD_ONLINE_PASSWORD or a hidden prompt
    UpdateConnection(MaintainArgs),
    /// Disconnect: only the Online ID that connected the company; deletes
    /// the online copy and the add-on's connection on this computer (the
    /// program's data stays). The password comes from OD_ONLINE_PASSWORD or
    /// a hidden prompt
    Disconnect(MaintainArgs),
    /// Change user: hand "Connected by" to the host user running this (a
    /// super user linked to an employee with an e-mail, --user), who logs
    /// in with their own Online ID; synchronisation goes on unchanged. The
    /// password comes from OD_ONLINE_PASSWORD or a hidden prompt
    ChangeUser(MaintainArgs),
    /// Sync computer: run it on the computer that is to synchronise (with
    /// --computer NAME): the company's synchronisation moves to this
    /// computer (the sync computer until now stops at once), this computer
    /// is registered with the Online ID, and `host-sim agent` here goes on
    /// where the other left off, taking the online records over (nothing
    /// is sent twice). Also brings back a sync computer whose add-on folder
    /// was lost. The password comes from OD_ONLINE_PASSWORD or a hidden
    /// prompt
    SyncComputer(MaintainArgs),
}

/// How the wizard of Update connection, Disconnect, Change user or Sync
/// computer is answered.
#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// Scripted: the Online ID to log in with. Without it, the wizard asks
    /// in a terminal
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,
    /// Scripted: press Cancel on this page (`online_id` or `confirm`)
    #[arg(long, value_name = "PAGE", requires = "email")]
    pub cancel_at: Option<String>,
}

/// `connect`: the check, then the connect wizard.
#[derive(Debug, Args)]
pub struct ConnectCommandArgs {
    #[command(flatten)]
    pub check_args: ConnectArgs,
    /// Only the licence check and the requirements; do not open the wizard
    #[arg(long)]
    pub check: bool,
    /// Answer the wizard's pages from a file (JSON or simple TOML: email,
    /// password_env, create_online_id, start, at) instead of asking
    #[arg(long, value_name = "FILE", conflicts_with = "check")]
    pub answers: Option<PathBuf>,
    /// Scripted: the Online ID to log in with (the password comes from
    /// OD_ONLINE_PASSWORD or a hidden prompt, never from an argument)
    #[arg(long, value_name = "EMAIL", conflicts_with = "check")]
    pub email: Option<String>,
    /// Scripted: when the first synchronisation runs
    #[arg(long, value_enum, value_name = "WHEN", conflicts_with = "check")]
    pub start: Option<wizard::Start>,
    /// Scripted, with --start later: "2026-12-24 22:00" (local time) or RFC 3339
    #[arg(long, value_name = "TIME", conflicts_with = "check")]
    pub at: Option<String>,
    /// Scripted: create a new Online ID first (then press Enter once the
    /// link in the mail has been opened and a password chosen)
    #[arg(long, conflicts_with = "check")]
    pub create_online_id: bool,
}

impl ConnectCommandArgs {
    /// The scripted answers, when any were given.
    fn answers(&self) -> Result<Option<wizard::Answers>> {
        let mut answers = match &self.answers {
            Some(path) => Some(wizard::Answers::from_file(path)?),
            None => None,
        };
        let flags = self.email.is_some()
            || self.start.is_some()
            || self.at.is_some()
            || self.create_online_id;
        if flags {
            let a = answers.get_or_insert_with(wizard::Answers::default);
            if let Some(email) = &self.email {
                a.email = Some(email.clone());
            }
            if let Some(start) = self.start {
                a.start = start;
            }
            if let Some(at) = &self.at {
                a.at = Some(at.clone());
                if self.start.is_none() {
                    a.start = wizard::Start::Later;
                }
            }
            a.create_online_id |= self.create_online_id;
        }
        Ok(answers)
    }
}

#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// How many times to load and unload the add-on
    #[arg(long, default_value_t = 100)]
    pub cycles: u32,
}

impl GlobalArgs {
    /// The add-on's settings for the context these options describe: its
    /// folder and trace log live under the data directory, per computer and
    /// company (`online-desktop/<computer id>/<company id>`).
    pub fn add_on_settings(&self) -> Result<Settings> {
        let context = self.host_context()?;
        let installation = self.open_installation()?;
        let computer = installation.computer_or_default(Some(&context.computer_id))?;
        let folder = installation
            .dir()
            .add_on_folder_moving_old(&computer, &context.company_id)?;
        drop(installation);
        let level = self.add_on.add_on_log;
        Ok(Settings {
            trace_log: Some(folder.join("trace.log")),
            trace_level: od_abi::OD_LOG_LEVEL_DEBUG,
            data_dir: Some(folder),
            context,
            service_url: self.add_on.service_url.clone(),
            log: (level != Level::Off)
                .then(|| Box::new(StderrLog) as Box<dyn crate::plugin::host::LogOutput>),
            log_level: level.abi(),
        })
    }

    /// Loads the add-on library (as the program does when it starts).
    pub fn load_add_on(&self) -> Result<Library> {
        Ok(Library::load(&Library::resolve_path(
            self.add_on.plugin.as_deref(),
        ))?)
    }
}

/// "Connect to Online Desktop": the connect wizard, scripted or for a
/// person at the terminal; without either (`--check`, or no terminal) the
/// licence check and the requirements.
pub fn connect(global: &GlobalArgs, args: ConnectCommandArgs) -> Result<()> {
    if !args.check {
        if let Some(answers) = args.answers()? {
            return connect_with_wizard(
                global,
                wizard::Mode::Scripted(answers),
                AfterFinish::FollowFirstSync,
            );
        }
        if attended() {
            return connect_with_wizard(
                global,
                wizard::Mode::Interactive,
                AfterFinish::FollowFirstSync,
            );
        }
    }
    check(global, args.check_args)
}

/// Whether a person sits at this terminal (input and output).
pub fn attended() -> bool {
    console::user_attended()
        && console::Term::stdout().is_term()
        && std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// What happens after the wizard connected the company.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFinish {
    /// "now": show the first synchronisation's progress until it is done;
    /// "later": say when, and that the sync agent runs it.
    FollowFirstSync,
    /// Stop the engine and clear the schedule: the next `host-sim agent`
    /// runs the first synchronisation (`sync connect`, for tests).
    LeaveToAgent,
}

/// Opens the add-on's connect wizard for the company and walks it.
pub fn connect_with_wizard(
    global: &GlobalArgs,
    mode: wizard::Mode,
    after: AfterFinish,
) -> Result<()> {
    let library = global.load_add_on()?;
    let settings = global.add_on_settings()?;
    let company_id = settings.context.company_id.clone();
    let company = company_name(global)?;
    println!(
        "{}",
        style(format!("Connect to Online Desktop — {company}"))
            .bold()
            .underlined()
    );
    let instance = Instance::create(&library, settings)?;
    let events = EventLoop::new(&instance)?;
    let page = match wizard::run(&instance, &events, mode)? {
        wizard::Outcome::Cancelled => {
            println!("The wizard was cancelled. Nothing was changed.");
            return Ok(());
        }
        wizard::Outcome::Connected(page) => page,
    };
    let connection = global
        .open_installation()?
        .system()
        .online_connection(&company_id)?;
    let online = connection.as_ref().map(|c| {
        format!(
            "{}/api/v1/companies/{}",
            c.service_url.trim_end_matches('/'),
            c.online_company_id
        )
    });
    let status = instance.sync_status()?;
    let connected_line = format!(
        "{} is connected to Online Desktop{}.",
        quoted(&company),
        connection
            .as_ref()
            .map(|c| format!(
                " (online company id {}, by {})",
                c.online_company_id, c.connected_by
            ))
            .unwrap_or_default()
    );
    match after {
        AfterFinish::LeaveToAgent => {
            events.stop(|_| {})?;
            if status.scheduled_at.is_some() {
                instance.sync_schedule(None)?;
            }
            println!("{}", style(connected_line).green());
            println!(
                "Start synchronising with `host-sim agent` (in the background) or `host-sim sync run`                  (in this terminal)."
            );
        }
        AfterFinish::FollowFirstSync => {
            if let Some(at) = &status.scheduled_at {
                events.stop(|_| {})?;
                println!("{}", style(connected_line).green());
                println!(
                    "The first synchronisation is scheduled for {}. The sync agent starts it then: leave this computer on with `host-sim agent` running (use of the program is blocked while it runs).",
                    local_time(at)
                );
            } else if page.done && status.state == crate::plugin::SyncState::NotConnected {
                println!("{}", style(connected_line).green());
            } else {
                println!("First synchronisation …");
                let end = follow_first_sync(&instance, &events)?;
                events.stop(|_| {})?;
                match end {
                    FirstSyncEnd::Done => {
                        println!("{}", style(connected_line).green().bold());
                        println!(
                            "{}",
                            style(
                                "The first synchronisation is done: the online copy is complete."
                            )
                            .green()
                        );
                        if let Some(online) = &online {
                            println!("Online copy: {online}");
                        }
                        println!(
                            "Keep it in step with `host-sim agent` (in the background) or `host-sim sync run` (in this terminal)."
                        );
                    }
                    FirstSyncEnd::StopAsked => {
                        println!("{connected_line}");
                        println!(
                            "The first synchronisation was stopped at a safe point; `host-sim agent` or `host-sim sync run` continues it."
                        );
                    }
                    FirstSyncEnd::Failed(message) => {
                        println!("{connected_line}");
                        return Err(HostError::AddOnRefused(format!(
                            "The first synchronisation stopped: {message}"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The licence check and the requirements (exit code 3 while one is not
/// met).
fn check(global: &GlobalArgs, args: ConnectArgs) -> Result<()> {
    let library = global.load_add_on()?;
    let settings = global.add_on_settings()?;
    let company = company_name(global)?;
    println!(
        "{}",
        style(format!("Connect to Online Desktop — {company}"))
            .bold()
            .underlined()
    );
    println!(
        "Logged in as {} · Online Desktop add-on {}\n",
        settings.context.username,
        library.version()
    );
    let company_id = settings.context.company_id.clone();
    let instance = Instance::create(&library, settings)?;
    let licence = instance.licence()?;
    println!("{}", render::licence(&licence));
    let view = instance.prerequisites_settled(false, Duration::from_secs(args.wait))?;
    println!("{}", render::prerequisites(&view));
    drop(instance);
    // Connect is offered only while the company is not connected.
    let installation = global.open_installation()?;
    if let Some(c) = installation.system().online_connection(&company_id)? {
        let sync_computer = c
            .computer_id
            .and_then(|id| {
                let computers = installation.system().computers().ok()?;
                computers.into_iter().find(|m| m.id == id).map(|m| m.name)
            })
            .unwrap_or_else(|| "the computer that connected it".to_owned());
        println!(
            "{}",
            style(format!(
                "The company is already connected to Online Desktop (by {}; sync computer: {sync_computer}): \
                 Connect is not offered. See `host-sim settings`.",
                c.connected_by
            ))
            .yellow()
        );
        return Ok(());
    }
    println!("{}", render::verdict(&view));
    if view.can_connect {
        println!(
            "Run `host-sim connect` in a terminal to walk through the connect wizard (Online ID, \
             company registration, first synchronisation), or script it with --email or --answers."
        );
        Ok(())
    } else {
        Err(HostError::RequirementsNotMet(
            "Connecting is not possible yet: see the items marked ✘ above.".into(),
        ))
    }
}

/// "Company settings → Online Desktop": the page; in a terminal, a menu of
/// the actions; or one action (`settings update-connection`, `settings
/// disconnect`, `settings change-user`, `settings sync-computer`).
pub fn settings(global: &GlobalArgs, args: SettingsArgs) -> Result<()> {
    match args.action {
        Some(SettingsAction::UpdateConnection(a)) => {
            maintain(global, WizardMode::UpdateConnection, a)
        }
        Some(SettingsAction::Disconnect(a)) => maintain(global, WizardMode::Disconnect, a),
        Some(SettingsAction::ChangeUser(a)) => maintain(global, WizardMode::ChangeUser, a),
        Some(SettingsAction::SyncComputer(a)) => maintain(global, WizardMode::SyncComputer, a),
        None => {
            let connected = show_settings(global, &args.check_args)?;
            if attended() {
                settings_menu(global, connected)?;
            }
            Ok(())
        }
    }
}

/// The actions offered on the page, as a menu for a person.
fn settings_menu(global: &GlobalArgs, connected: ConnectChoice) -> Result<()> {
    let actions: Vec<WizardMode> = match connected {
        ConnectChoice::Connected => vec![
            WizardMode::UpdateConnection,
            WizardMode::ChangeUser,
            WizardMode::Disconnect,
            WizardMode::SyncComputer,
        ],
        ConnectChoice::ConnectedElsewhere => vec![WizardMode::SyncComputer],
        ConnectChoice::CanConnect => vec![WizardMode::Connect],
        ConnectChoice::CannotConnect => Vec::new(),
    };
    if actions.is_empty() {
        return Ok(());
    }
    let mut labels: Vec<String> = actions.iter().map(|a| format!("{} …", a.label())).collect();
    labels.push("Close".into());
    let choice = dialoguer::Select::new()
        .with_prompt("Online Desktop")
        .items(&labels)
        .default(labels.len() - 1)
        .interact()
        .map_err(|e| HostError::InvalidInput(format!("the prompt failed: {e}")))?;
    match actions.get(choice) {
        None => Ok(()),
        Some(WizardMode::Connect) => connect_with_wizard(
            global,
            wizard::Mode::Interactive,
            AfterFinish::FollowFirstSync,
        ),
        Some(&mode) => maintain_with(global, mode, wizard::Mode::Interactive),
    }
}

/// What the page lets the person do about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectChoice {
    /// Connected, and synchronised by this computer (or the program does
    /// not say which computer synchronises it).
    Connected,
    /// Connected, but the add-on on this computer does not synchronise it:
    /// another computer is the sync computer, or this one lost its add-on
    /// folder. Only Sync computer can be done here.
    ConnectedElsewhere,
    CanConnect,
    CannotConnect,
}

/// Prints the page; says whether the company is connected, or can be.
pub fn show_settings(global: &GlobalArgs, args: &ConnectArgs) -> Result<ConnectChoice> {
    let library = global.load_add_on()?;
    let settings = global.add_on_settings()?;
    let trace_log = settings.trace_log.clone();
    let this_computer = settings.context.computer_id.clone();
    let company = company_name(global)?;
    let installation = global.open_installation()?;
    let computers = installation.system().computers()?;
    let connected = installation
        .system()
        .company(&settings.context.company_id)?
        .is_some_and(|c| c.online_desktop_connected);
    let connection = installation
        .system()
        .online_connection(&settings.context.company_id)?;
    drop(installation);
    let instance = Instance::create(&library, settings)?;
    let licence = instance.licence()?;
    let view = instance.prerequisites_settled(false, Duration::from_secs(args.wait))?;
    // Whether the add-on on this computer holds a connection of its own.
    let connected_here = library.has_sync()
        && instance.sync_status()?.state != crate::plugin::SyncState::NotConnected;
    drop(instance);
    println!(
        "{}",
        style(format!("Company settings → Online Desktop — {company}"))
            .bold()
            .underlined()
    );
    println!("\n{}", style("Connection").bold());
    let unmet: Vec<&str> = view
        .rows
        .iter()
        .filter(|r| r.blocking && r.state != crate::plugin::RowState::Passed)
        .map(|r| r.title.as_str())
        .collect();
    if unmet.is_empty() {
        println!(
            "  Requirement status: {}",
            style("all requirements are met").green()
        );
    } else {
        println!(
            "  Requirement status: {}",
            style(format!("{} not met", unmet.len())).red().bold()
        );
        for title in unmet {
            println!("    {} {}", style("✘").red().bold(), style(title).red());
        }
    }
    println!("  Connected: {}", if connected { "yes" } else { "no" });
    println!(
        "  Connect: {}",
        if connected {
            "not available (already connected)"
        } else if view.can_connect {
            "available"
        } else {
            "not available until every requirement is met"
        }
    );
    match connection.as_ref().filter(|_| connected) {
        Some(c) => println!(
            "  Connected by: {} on {} (online company {} at {})",
            c.connected_by, c.connected_at, c.online_company_id, c.service_url
        ),
        None => println!("  Connected by: -"),
    }
    if let Some(path) = trace_log {
        println!("  Trace log: {}", path.display());
    }
    println!("\n{}", style("Licence").bold());
    match &licence.licence_number {
        None => println!("  No Online Desktop licence is registered."),
        Some(number) => {
            let agreement = match (&licence.tier, &licence.valid_until) {
                (Some(tier), Some(until)) => format!(
                    "{} service agreement, valid until {until}",
                    render::tier_name(tier)
                ),
                _ => "no service agreement".to_owned(),
            };
            println!(
                "  {number} · {agreement} · {} online users",
                licence.online_users
            );
        }
    }
    if licence.ok {
        let titles: Vec<&str> = licence.modules.iter().map(|(_, t)| t.as_str()).collect();
        println!("  Online modules: {}", titles.join(", "));
    } else {
        println!(
            "  {}",
            style("The licence check does not pass (see Connect to Online Desktop).").red()
        );
    }
    println!("\n{}", style("Synchronisation").bold());
    let sync_computer_id = connection
        .as_ref()
        .filter(|_| connected)
        .and_then(|c| c.computer_id.clone());
    let this_name = computers
        .iter()
        .find(|m| m.id == this_computer)
        .map_or_else(|| this_computer.clone(), |m| m.name.clone());
    let sync_computer = sync_computer_id.as_deref().map(|id| {
        computers
            .iter()
            .find(|m| m.id == id)
            .map_or_else(|| id.to_owned(), |m| m.name.clone())
    });
    match (connected, sync_computer.clone()) {
        (true, Some(name)) if sync_computer_id.as_deref() == Some(this_computer.as_str()) => {
            if connected_here {
                println!("  Sync computer: {name} (this computer)");
            } else {
                println!(
                    "  Sync computer: {name} (this computer; its add-on has no connection: \
                     Sync computer brings it back)"
                );
            }
        }
        (true, Some(name)) => println!(
            "  Sync computer: {name} (this computer, {this_name}, does not synchronise the company)"
        ),
        (true, None) => println!("  Sync computer: the computer that connected the company"),
        (false, _) => {
            println!(
                "  Sync computer: not chosen yet (chosen when connecting). Installed computers:"
            );
            for computer in &computers {
                let note = if computer.holds_system_database {
                    " (holds the system database; recommended)"
                } else {
                    ""
                };
                println!("    - {}{note}", computer.name);
            }
        }
    }
    if library.has_sync() {
        super::sync::status(global, false)?;
        if connected {
            println!();
            super::sync::history(global, false)?;
        }
    } else {
        println!("  Last synchronisation: never · pending changes: none");
    }
    println!("\n{}", style("Actions").bold());
    let elsewhere = connected
        && sync_computer_id
            .as_deref()
            .is_some_and(|id| id != this_computer || !connected_here);
    let choice = if connected {
        if elsewhere {
            println!(
                "  Update connection, Change user, Disconnect: on the sync computer{}",
                sync_computer
                    .as_deref()
                    .filter(|_| sync_computer_id.as_deref() != Some(this_computer.as_str()))
                    .map(|name| format!(" ({name})"))
                    .unwrap_or_default()
            );
        } else {
            println!("  Update connection: `host-sim settings update-connection --email EMAIL`");
            println!("  Change user: `host-sim --user USER settings change-user --email EMAIL`");
            println!("  Disconnect: `host-sim settings disconnect --email EMAIL`");
        }
        let name = if elsewhere {
            this_name.as_str()
        } else {
            "NAME"
        };
        println!(
            "  Sync computer: `host-sim --computer {name} settings sync-computer --email EMAIL` \
             (on the computer that is to synchronise)"
        );
        if elsewhere {
            ConnectChoice::ConnectedElsewhere
        } else {
            ConnectChoice::Connected
        }
    } else if view.can_connect {
        println!("  Connect: `host-sim connect`");
        ConnectChoice::CanConnect
    } else {
        println!("  Connect: not available until every requirement is met");
        ConnectChoice::CannotConnect
    };
    Ok(choice)
}

/// `settings update-connection` / `settings disconnect` / `settings
/// change-user` / `settings sync-computer`: the add-on's wizard in that
/// mode, scripted with --email or for a person.
fn maintain(global: &GlobalArgs, mode: WizardMode, args: MaintainArgs) -> Result<()> {
    let how = match args.email {
        Some(email) => wizard::Mode::Scripted(wizard::Answers {
            email: Some(email),
            cancel_at: args.cancel_at,
            ..wizard::Answers::default()
        }),
        None if attended() => wizard::Mode::Interactive,
        None => {
            return Err(HostError::InvalidInput(
                "Say which Online ID to log in with: --email EMAIL (the password comes from \
                 OD_ONLINE_PASSWORD), or run the command in a terminal."
                    .into(),
            ))
        }
    };
    maintain_with(global, mode, how)
}

/// Opens the add-on's wizard for Update connection, Disconnect, Change user
/// or Sync computer and walks it; the synchronisation itself is left to
/// the sync agent.
pub fn maintain_with(global: &GlobalArgs, mode: WizardMode, how: wizard::Mode) -> Result<()> {
    let library = global.load_add_on()?;
    let settings = global.add_on_settings()?;
    let company_id = settings.context.company_id.clone();
    let this_computer = settings.context.computer_id.clone();
    let company = company_name(global)?;
    println!(
        "{}",
        style(format!("{} — {company}", mode.label()))
            .bold()
            .underlined()
    );
    let instance = Instance::create(&library, settings)?;
    let events = EventLoop::new(&instance)?;
    match wizard::run_for(&instance, &events, mode, how)? {
        wizard::Outcome::Cancelled => {
            println!("The wizard was cancelled. Nothing was changed.");
            return Ok(());
        }
        wizard::Outcome::Connected(_) => {}
    }
    // The add-on started synchronisation again in this process (Update
    // connection; Sync computer, with the takeover of the online records);
    // the sync agent is what keeps it running.
    if matches!(
        mode,
        WizardMode::UpdateConnection | WizardMode::SyncComputer
    ) {
        events.stop(|_| {})?;
    }
    drop(events);
    drop(instance);
    let installation = global.open_installation()?;
    let connected = installation
        .system()
        .company(&company_id)?
        .is_some_and(|c| c.online_desktop_connected);
    match mode {
        WizardMode::UpdateConnection => {
            println!(
                "{}",
                style(format!(
                    "The connection of {} is updated: this computer is registered again.",
                    quoted(&company)
                ))
                .green()
            );
            println!(
                "Synchronisation goes on where it stopped with `host-sim agent` (in the background) \
                 or `host-sim sync run` (in this terminal)."
            );
        }
        WizardMode::Disconnect => {
            println!(
                "{}",
                style(format!(
                    "{} is disconnected from Online Desktop: the online copy is deleted; \
                     the program's data is unchanged.",
                    quoted(&company)
                ))
                .green()
            );
            if connected {
                println!(
                    "{}",
                    style("The program still shows the company as connected (the add-on did not say connection.forget).")
                        .yellow()
                );
            }
        }
        WizardMode::ChangeUser => {
            let connected_by = installation
                .system()
                .online_connection(&company_id)?
                .map(|c| c.connected_by);
            match connected_by {
                Some(who) => println!(
                    "{}",
                    style(format!(
                        "{} is now connected by {who}; synchronisation goes on unchanged.",
                        quoted(&company)
                    ))
                    .green()
                ),
                None => println!(
                    "{}",
                    style("The program has not noted the new \"Connected by\" (the add-on did not say connection.record).")
                        .yellow()
                ),
            }
        }
        WizardMode::SyncComputer => {
            let name = installation
                .system()
                .computers()?
                .into_iter()
                .find(|m| m.id == this_computer)
                .map_or_else(|| this_computer.clone(), |m| m.name);
            let noted = installation
                .system()
                .online_connection(&company_id)?
                .and_then(|c| c.computer_id);
            if noted.as_deref() == Some(this_computer.as_str()) {
                println!(
                    "{}",
                    style(format!(
                        "{name} is now the sync computer of {}: the computer that synchronised \
                         it until now stops at its next write.",
                        quoted(&company)
                    ))
                    .green()
                );
            } else {
                println!(
                    "{}",
                    style(format!(
                        "Synchronisation was moved to {name}, but the program has not noted it \
                         as the sync computer (the add-on did not say connection.record)."
                    ))
                    .yellow()
                );
            }
            println!(
                "Run `host-sim --computer {name} agent` on it (in the background) or `host-sim \
                 --computer {name} sync run` (in this terminal): synchronisation goes on where the \
                 other computer left off, taking over the records already online (nothing is sent \
                 twice)."
            );
        }
        WizardMode::Connect => {}
    }
    Ok(())
}

fn company_name(global: &GlobalArgs) -> Result<String> {
    Ok(global
        .open_installation()?
        .company_or_default(global.company.as_deref())?
        .name)
}

/// Loads, uses and unloads the add-on `--cycles` times.
pub fn lifecycle(global: &GlobalArgs, args: LifecycleArgs) -> Result<()> {
    let path = Library::resolve_path(global.add_on.plugin.as_deref());
    println!(
        "Loading and unloading {} {} times …",
        path.display(),
        args.cycles
    );
    let report = lifecycle::run(
        &path,
        args.cycles,
        || global.add_on_settings(),
        |cycle| {
            if cycle % 10 == 0 {
                println!("  {cycle} cycles done");
            }
        },
    )?;
    let text = |v: Option<usize>| v.map_or("unknown".to_owned(), |n| n.to_string());
    println!(
        "Threads before: {}, after: {}",
        text(report.threads_before),
        text(report.threads_after)
    );
    match report.growth_kib() {
        Some(growth) => println!(
            "Resident memory after {} warm-up cycles: {} KiB; after all: {} KiB (growth {growth} KiB, limit {} KiB)",
            lifecycle::WARMUP_CYCLES.min(args.cycles),
            report.rss_after_warmup_kib.unwrap_or(0),
            report.rss_after_kib.unwrap_or(0),
            lifecycle::MAX_GROWTH_KIB
        ),
        None => println!("Resident memory: not measurable on this platform"),
    }
    if report.passed() {
        println!(
            "{}",
            style("Lifecycle check passed: no thread left, memory did not grow.")
                .green()
                .bold()
        );
        Ok(())
    } else {
        Err(HostError::CheckFailed(format!(
            "Lifecycle check failed: {}{}",
            if report.threads_left() {
                "threads were left running; "
            } else {
                ""
            },
            if report.memory_grew() {
                "memory grew"
            } else {
                ""
            }
        )))
    }
}
