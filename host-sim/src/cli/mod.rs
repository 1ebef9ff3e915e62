//! The `host-sim` command line: argument definitions and what each command
//! prints. The work itself is done by the library modules.

mod channel;
mod company;
mod computer;
mod desktop;
mod employee;
mod init;
mod installation;
mod integration;
mod licence;
mod record;
mod session;
mod sync;
mod table;
mod user;
mod wizard;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::channel::HostContext;
use crate::error::Result;
use crate::installation::Installation;

/// A realistic stand-in for the desktop ERP that loads the Online Desktop
/// plugin: its system database, company databases, users, computers and
/// licences.
#[derive(Debug, Parser)]
#[command(name = "host-sim", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts. `--company`, `--user` and `--computer`
/// say who is working where, as in a running host.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Folder holding the installation (system.db and companies/)
    #[arg(
        long,
        global = true,
        env = "OD_HOST_DATA",
        default_value = "./demo-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Company database, by name or id (a unique beginning is enough).
    /// Default: the only company database that is not the sample database
    #[arg(long, global = true, value_name = "COMPANY")]
    pub company: Option<String>,

    /// Host user working in the program
    #[arg(long, global = true, default_value = "admin", value_name = "USER")]
    pub user: String,

    /// Computer the program runs on, by name or id.
    /// Default: the computer that holds the system database
    #[arg(long, global = true, value_name = "COMPUTER")]
    pub computer: Option<String>,

    #[command(flatten)]
    pub add_on: desktop::AddOnArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the demo installation: system database, demo company, sample
    /// database, users, computers and an API integration
    Init(init::InitArgs),
    /// Company databases and their registration data
    #[command(subcommand)]
    Company(company::CompanyCommand),
    /// Host users (logins), super users and their link to an employee
    #[command(subcommand)]
    User(user::UserCommand),
    /// Employees of a company database
    #[command(subcommand)]
    Employee(employee::EmployeeCommand),
    /// Computers the program is installed on
    #[command(subcommand)]
    Computer(computer::ComputerCommand),
    /// Who is logged in to which company database from which computer
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Programs that log in through the host's API
    #[command(subcommand)]
    Integration(integration::IntegrationCommand),
    /// Settings of the whole installation
    #[command(subcommand)]
    Installation(installation::InstallationCommand),
    /// Issue, register and bind licences
    #[command(subcommand)]
    Licence(licence::LicenceCommand),
    /// Add, change, delete and view synchronised records (also while sync
    /// runs)
    #[command(subcommand)]
    Record(record::RecordCommand),
    /// The change log the add-on reads (docs/SYNC_PROTOCOL.md §2)
    Changes(record::ChangesArgs),
    /// Row counts and canonical SHA-256 digests per entity (by local id)
    Checksum(record::ChecksumArgs),
    /// Ask the host what the plugin would ask through its data channel
    /// (prints the JSON answer)
    Channel(channel::ChannelArgs),
    /// Menu action "Connect to Online Desktop": the connect wizard (in a
    /// terminal, or scripted with --email/--answers); with --check or
    /// without a terminal the licence check and the requirements (exit code
    /// 3 while one is not met)
    Connect(desktop::ConnectCommandArgs),
    /// "Company settings → Online Desktop": requirement status, connection,
    /// licence, trace log, synchronisation (status and history); the
    /// actions Connect, Update connection, Change user and Disconnect (a
    /// menu in a terminal, or the subcommands)
    Settings(desktop::SettingsArgs),
    /// The program as a person uses it: menus, prompts and colour
    Desktop,
    /// Load, use and unload the add-on many times in one process, then
    /// check that no thread is left and memory did not grow
    Lifecycle(desktop::LifecycleArgs),
    /// Online Desktop synchronisation: connect, run, status, history,
    /// schedule
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// The headless sync agent: keeps the company synchronised until
    /// SIGTERM or Ctrl-C, one log line per state change (for CI and
    /// services)
    Agent(sync::AgentArgs),
}

/// `on` or `off`, for settings people switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl Switch {
    pub fn is_on(self) -> bool {
        self == Switch::On
    }
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    match cli.command {
        Command::Init(args) => init::run(global, args),
        Command::Company(command) => company::run(global, command),
        Command::User(command) => user::run(global, command),
        Command::Employee(command) => employee::run(global, command),
        Command::Computer(command) => computer::run(global, command),
        Command::Session(command) => session::run(global, command),
        Command::Integration(command) => integration::run(global, command),
        Command::Installation(command) => installation::run(global, command),
        Command::Licence(command) => licence::run(global, command),
        Command::Record(command) => record::run(global, command),
        Command::Changes(args) => record::changes(global, args),
        Command::Checksum(args) => record::checksum(global, args),
        Command::Channel(args) => channel::run(global, args),
        Command::Connect(args) => desktop::connect(global, args),
        Command::Settings(args) => desktop::settings(global, args),
        Command::Desktop => crate::desktop::interactive::run(global),
        Command::Lifecycle(args) => desktop::lifecycle(global, args),
        Command::Sync(command) => sync::run(global, command),
        Command::Agent(args) => sync::agent(global, args),
    }
}

impl GlobalArgs {
    pub fn open_installation(&self) -> Result<Installation> {
        Installation::open(&self.data_dir)
    }

    /// The host context these options describe: the chosen (or default)
    /// company, user and computer, checked against the installation.
    pub fn host_context(&self) -> Result<HostContext> {
        let installation = self.open_installation()?;
        let company = installation.company_or_default(self.company.as_deref())?;
        let user = installation.system().user(&self.user)?;
        let computer = installation.computer_or_default(self.computer.as_deref())?;
        Ok(HostContext {
            data_dir: self.data_dir.clone(),
            company_id: company.id,
            username: user.username,
            computer_id: computer.id,
        })
    }
}

/// Printed after every change to licences or add-on registrations, because
/// the plugin reads licence data only when it is loaded (PRODUCT.md §1.4).
const TAKES_EFFECT_AT_RESTART: &str = "The change takes effect the next time the program starts.";

/// A yes/no for tables.
fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// Text for an empty optional field in tables.
fn or_dash(value: Option<&str>) -> &str {
    value.unwrap_or("-")
}

/// Quotes a name in a message.
fn quoted(name: &str) -> String {
    format!("\u{201c}{name}\u{201d}")
}
