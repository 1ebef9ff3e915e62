//! The Online Desktop actions of the host: "Connect to Online Desktop",
//! "Company settings → Online Desktop", and the add-on lifecycle check.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use console::style;

use super::GlobalArgs;
use crate::desktop::{lifecycle, render};
use crate::error::{HostError, Result};
use crate::plugin::host::StderrLog;
use crate::plugin::{Instance, Library, Settings};

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

/// "Connect to Online Desktop": the licence check and the requirements.
pub fn connect(global: &GlobalArgs, args: ConnectArgs) -> Result<()> {
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
    let instance = Instance::create(&library, settings)?;
    let licence = instance.licence()?;
    println!("{}", render::licence(&licence));
    let view = instance.prerequisites_settled(false, Duration::from_secs(args.wait))?;
    println!("{}", render::prerequisites(&view));
    println!("{}", render::verdict(&view));
    if view.can_connect {
        println!("The connect wizard (Online ID, company registration, first synchronisation) follows in a later version.");
        Ok(())
    } else {
        Err(HostError::RequirementsNotMet(
            "Connecting is not possible yet: see the items marked ✘ above.".into(),
        ))
    }
}

/// "Company settings → Online Desktop".
pub fn settings(global: &GlobalArgs, args: ConnectArgs) -> Result<()> {
    let library = global.load_add_on()?;
    let settings = global.add_on_settings()?;
    let trace_log = settings.trace_log.clone();
    let company = company_name(global)?;
    let installation = global.open_installation()?;
    let computers = installation.system().computers()?;
    let connected = installation
        .system()
        .company(&settings.context.company_id)?
        .is_some_and(|c| c.online_desktop_connected);
    let instance = Instance::create(&library, settings)?;
    let licence = instance.licence()?;
    let view = instance.prerequisites_settled(false, Duration::from_secs(args.wait))?;
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
    println!("  Connected by: -");
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
    println!("  Sync computer: not chosen yet (chosen when connecting). Installed computers:");
    for computer in computers {
        let note = if computer.holds_system_database {
            " (holds the system database; recommended)"
        } else {
            ""
        };
        println!("    - {}{note}", computer.name);
    }
    println!("  Last synchronisation: never · pending changes: none");
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
