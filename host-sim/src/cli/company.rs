//! `host-sim company ...`.

use clap::{Args, Subcommand};

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
    let installation = global.open_installation()?;
    match command {
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
