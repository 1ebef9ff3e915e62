//! `host-sim company ...`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use console::style;

use super::table::Table;
use super::{or_dash, quoted, yes_no, GlobalArgs};
use crate::db::company::{Registration, RegistrationField};
use crate::error::{HostError, Result};

#[derive(Debug, Subcommand)]
pub enum CompanyCommand {
    /// List the company databases
    List,
    /// Show one company database (--company) with its registration data
    Show,
    /// Change the registration data (--company); an empty value clears a
    /// field
    SetRegistration(RegistrationArgs),
    /// Create a new, empty company database
    Add {
        /// Name of the new company database
        name: String,
    },
    /// Take a backup of the company database (--company) into a new file;
    /// allowed while connected
    Backup {
        /// The backup file to write (must not exist)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup of the company database (--company). The Online
    /// Desktop add-on is asked first and refuses while the company is
    /// connected on this computer (PRODUCT.md §5.9)
    Restore {
        /// A backup taken with `company backup`
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Restore even when the add-on refuses (simulates a restore done
        /// behind its back; the add-on then stops synchronisation until
        /// Update connection)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct RegistrationArgs {
    /// Registered company name
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    street: Option<String>,
    #[arg(long)]
    postcode: Option<String>,
    #[arg(long)]
    city: Option<String>,
    #[arg(long)]
    country: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    #[arg(long)]
    email: Option<String>,
    /// Organisation (registration) number
    #[arg(long)]
    organisation_number: Option<String>,
}

impl RegistrationArgs {
    fn changes(&self) -> Vec<(RegistrationField, Option<&str>)> {
        use RegistrationField::*;
        [
            (Name, &self.name),
            (Street, &self.street),
            (Postcode, &self.postcode),
            (City, &self.city),
            (Country, &self.country),
            (Phone, &self.phone),
            (Email, &self.email),
            (OrganisationNumber, &self.organisation_number),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.as_deref().map(|v| (field, Some(v))))
        .collect()
    }
}

pub fn run(global: &GlobalArgs, command: CompanyCommand) -> Result<()> {
    match command {
        CompanyCommand::Backup { out } => return backup(global, &out),
        CompanyCommand::Restore { file, force } => return restore(global, &file, force),
        _ => {}
    }
    let installation = global.open_installation()?;
    match command {
        CompanyCommand::Backup { .. } | CompanyCommand::Restore { .. } => unreachable!(),
        CompanyCommand::List => {
            let bindings = installation.system().bindings()?;
            let mut table = Table::new(&[
                "Name",
                "Id",
                "Sample",
                "Online Desktop registered",
                "Connected",
                "File",
            ]);
            for company in installation.system().companies()? {
                let registered = bindings.iter().any(|b| {
                    b.company_id == company.id && b.add_on == od_licence::ADD_ON_ONLINE_DESKTOP
                });
                table.row(vec![
                    company.name,
                    company.id,
                    yes_no(company.is_sample).into(),
                    yes_no(registered).into(),
                    yes_no(company.online_desktop_connected).into(),
                    format!("companies/{}", company.file),
                ]);
            }
            table.print_or("There are no company databases.");
        }
        CompanyCommand::Show => {
            let company = installation.company_or_default(global.company.as_deref())?;
            let db = installation.open_company_db(&company)?;
            let info = db.info()?;
            let binding = installation.system().bindings()?.into_iter().find(|b| {
                b.company_id == company.id && b.add_on == od_licence::ADD_ON_ONLINE_DESKTOP
            });
            line("Company database:", &company.name);
            line("Id:", &company.id);
            line("File:", &format!("companies/{}", company.file));
            line("Sample database:", yes_no(info.is_sample));
            line("Currency:", &info.currency);
            line(
                "Online Desktop:",
                &match &binding {
                    Some(b) => format!("registered with licence {}", b.licence_number),
                    None => "not registered".into(),
                },
            );
            line("Connected:", yes_no(company.online_desktop_connected));
            line(
                "Use of the program:",
                &match installation.system().company_block(&company.id)? {
                    Some(block) => format!(
                        "blocked by Online Desktop since {}: {}",
                        block.blocked_at, block.reason
                    ),
                    None => "not blocked".into(),
                },
            );
            println!();
            println!("Registration data");
            print_registration(&info.registration);
            println!();
            println!("Records");
            for (table, count) in db.record_counts()? {
                line(&format!("  {table}"), &count.to_string());
            }
        }
        CompanyCommand::SetRegistration(args) => {
            let changes = args.changes();
            if changes.is_empty() {
                return Err(HostError::InvalidInput(
                    "Nothing to change. Give at least one field, for example --phone \"+47 22 33 44 55\" (an empty value clears the field).".into(),
                ));
            }
            let company = installation.company_or_default(global.company.as_deref())?;
            let mut db = installation.open_company_db(&company)?;
            db.set_registration(&changes)?;
            let registration = db.info()?.registration;
            println!(
                "The registration data of {} was updated.",
                quoted(&company.name)
            );
            print_registration(&registration);
            let missing = registration.missing();
            if !missing.is_empty() {
                let labels: Vec<&str> = missing.iter().map(|f| f.label()).collect();
                println!("Still missing: {}.", labels.join(", "));
            }
        }
        CompanyCommand::Add { name } => {
            let registration = Registration {
                name: Some(name.trim().to_owned()),
                ..Registration::default()
            };
            let (company, ()) =
                installation.create_company(&name, false, registration, |_| Ok(()))?;
            println!(
                "Created the company database {} (id {}, file companies/{}).",
                quoted(&company.name),
                company.id,
                company.file
            );
            println!(
                "It has no records yet, and of its registration data only the company name is filled in (see `host-sim company set-registration`)."
            );
        }
    }
    Ok(())
}

/// `company backup`: a consistent copy of the company database (`VACUUM
/// INTO`), change log included.
fn backup(global: &GlobalArgs, out: &Path) -> Result<()> {
    let installation = global.open_installation()?;
    let company = installation.company_or_default(global.company.as_deref())?;
    if out.exists() {
        return Err(HostError::InvalidInput(format!(
            "{} exists already; choose a new file for the backup.",
            out.display()
        )));
    }
    let db = installation.open_company_db(&company)?;
    let target = out.to_str().ok_or_else(|| {
        HostError::InvalidInput(format!("{} is not a usable file name.", out.display()))
    })?;
    db.connection().execute("VACUUM INTO ?1", [target])?;
    println!(
        "The company database {} was backed up to {}.",
        quoted(&company.name),
        out.display()
    );
    Ok(())
}

/// `company restore`: asks the add-on (`od_plugin_restore_check`), then
/// copies the backup back into the company database with SQLite's backup
/// API (other processes see the restored data at their next read).
fn restore(global: &GlobalArgs, file: &Path, force: bool) -> Result<()> {
    let installation = global.open_installation()?;
    let company = installation.company_or_default(global.company.as_deref())?;
    if !file.is_file() {
        return Err(HostError::InvalidInput(format!(
            "There is no backup file {}.",
            file.display()
        )));
    }
    let backup_id =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT id FROM company_info", [], |r| r.get::<_, String>(0)))
            .map_err(|_| {
                HostError::InvalidInput(format!(
                    "{} is not a backup of a company database.",
                    file.display()
                ))
            })?;
    if backup_id != company.id {
        return Err(HostError::InvalidInput(format!(
            "{} is a backup of another company database (id {backup_id}), not of {}.",
            file.display(),
            quoted(&company.name)
        )));
    }
    drop(installation);
    if let Some(reason) = restore_refusal(global, &company.name)? {
        let reason = reason.trim_end().trim_end_matches('.').to_owned() + ".";
        if !force {
            return Err(HostError::NotAllowed(format!(
                "The backup is not restored: {reason} Disconnect Online Desktop first, or run \
                 Update connection after restoring (`--force` restores anyway)."
            )));
        }
        println!(
            "{}",
            style(format!(
                "Restoring anyway (--force), although the add-on refused: {reason}"
            ))
            .yellow()
        );
    }
    let installation = global.open_installation()?;
    let mut db = installation.open_company_db(&company)?;
    db.connection_mut().restore(
        rusqlite::MAIN_DB,
        file,
        None::<fn(rusqlite::backup::Progress)>,
    )?;
    drop(db);
    // Change tracking as this program version has it.
    drop(installation.open_company_db(&company)?);
    println!(
        "The company database {} was restored from {}.",
        quoted(&company.name),
        file.display()
    );
    if force {
        println!(
            "If it is connected to Online Desktop, synchronisation stops when the add-on notices \
             the restore; run Update connection (`host-sim settings update-connection`) then."
        );
    }
    Ok(())
}

/// Why the add-on refuses a restore (`od_plugin_restore_check`), if it
/// does. Without the add-on, the company's connected flag decides.
fn restore_refusal(global: &GlobalArgs, company: &str) -> Result<Option<String>> {
    let library = match global.load_add_on() {
        Ok(library) => library,
        Err(e) => {
            let installation = global.open_installation()?;
            let connected = installation
                .company_or_default(global.company.as_deref())?
                .online_desktop_connected;
            return Ok(connected.then(|| {
                format!(
                    "{} is connected to Online Desktop, and the add-on cannot be asked ({e}).",
                    quoted(company)
                )
            }));
        }
    };
    let instance = crate::plugin::Instance::create(&library, global.add_on_settings()?)?;
    match instance.restore_check() {
        Ok(()) => Ok(None),
        Err(e) if e.code == od_abi::OD_RESULT_BAD_STATE => Ok(Some(if e.message.is_empty() {
            format!("{} is connected to Online Desktop.", quoted(company))
        } else {
            e.message
        })),
        Err(e) => Err(e.into()),
    }
}

/// Values line up in one column after labels of up to 22 characters.
fn line(label: &str, value: &str) {
    println!("{label:<24}{value}");
}

fn print_registration(registration: &Registration) {
    for field in RegistrationField::ALL {
        line(
            &format!("  {}:", field.label()),
            or_dash(registration.get(field)),
        );
    }
}
