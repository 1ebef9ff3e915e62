//! `host-sim licence ...`: the licence flow of PRODUCT.md §1.

use std::path::PathBuf;

use chrono::{Months, NaiveDate};
use clap::{Args, Subcommand};
use od_licence::{Agreement, Licence, Tier, ADD_ON_ONLINE_DESKTOP};

use super::{quoted, yes_no, GlobalArgs, TAKES_EFFECT_AT_RESTART};
use crate::db::system::Registration;
use crate::error::{HostError, Result};
use crate::licensing::{self, BindOutcome};

#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// Issue a licence file signed with the development key (as the vendor
    /// would). Without options: a valid Standard licence for one year that
    /// grants Online Desktop
    Issue(IssueArgs),
    /// Register a licence file in the system database (a licence with the
    /// same number is replaced)
    Add {
        /// The licence file
        file: PathBuf,
    },
    /// List the registered licences: what each claims and whether it is
    /// genuine
    List,
    /// Register the Online Desktop add-on for the company database chosen
    /// with --company (one company database per system database)
    Bind {
        /// Licence number to use. Default: the only registered licence that
        /// includes Online Desktop
        #[arg(long, value_name = "NUMBER")]
        licence: Option<String>,
    },
    /// Remove the Online Desktop registration of the company database chosen
    /// with --company
    Unbind,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Where to write the licence file
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Licence number
    #[arg(long, default_value = "OD-100001")]
    number: String,

    /// Licence holder's name (may be empty)
    #[arg(long, default_value = "Nordlys Handel AS")]
    licensee: String,

    /// Contact person (may be empty)
    #[arg(long, default_value = "Ingrid Solberg")]
    contact_person: String,

    /// Phone (may be empty)
    #[arg(long, default_value = "+47 22 33 44 55")]
    phone: String,

    /// Add-on the licence grants; repeat for several
    #[arg(long = "add-on", value_name = "ADD_ON", default_value = ADD_ON_ONLINE_DESKTOP)]
    add_ons: Vec<String>,

    /// Grant no add-ons at all
    #[arg(long, conflicts_with = "add_ons")]
    no_add_ons: bool,

    /// Service agreement tier: basic, standard or premium
    #[arg(long, default_value = "standard", value_parser = parse_tier)]
    tier: Tier,

    /// Last day of the service agreement, YYYY-MM-DD. Default: one year
    /// after the issue date
    #[arg(long, value_name = "DATE")]
    valid_until: Option<NaiveDate>,

    /// Issue the licence without a service agreement
    #[arg(long, conflicts_with_all = ["tier", "valid_until"])]
    no_agreement: bool,

    /// Number of online users (seats)
    #[arg(long, default_value_t = 5)]
    online_users: u32,

    /// Issue an evaluation licence
    #[arg(long)]
    evaluation: bool,

    /// Issue date, YYYY-MM-DD. Default: today
    #[arg(long, value_name = "DATE")]
    issued_on: Option<NaiveDate>,
}

fn parse_tier(text: &str) -> std::result::Result<Tier, String> {
    text.parse::<Tier>().map_err(|e| e.to_string())
}

impl IssueArgs {
    fn licence(&self) -> Licence {
        let issued_on = self
            .issued_on
            .unwrap_or_else(|| chrono::Local::now().date_naive());
        let valid_until = self.valid_until.unwrap_or_else(|| {
            issued_on
                .checked_add_months(Months::new(12))
                .unwrap_or(issued_on)
        });
        Licence {
            licence_number: self.number.clone(),
            licensee_name: self.licensee.clone(),
            contact_person: self.contact_person.clone(),
            phone: self.phone.clone(),
            add_ons: if self.no_add_ons {
                Vec::new()
            } else {
                self.add_ons.clone()
            },
            agreement: (!self.no_agreement).then_some(Agreement {
                tier: self.tier,
                valid_until,
            }),
            online_users: self.online_users,
            evaluation: self.evaluation,
            issued_on,
        }
    }
}

pub fn run(global: &GlobalArgs, command: LicenceCommand) -> Result<()> {
    match command {
        LicenceCommand::Issue(args) => {
            let licence = args.licence();
            let document = licensing::issue(&licence);
            std::fs::write(&args.out, document)
                .map_err(|e| HostError::io(format!("Could not write {}", args.out.display()), e))?;
            println!(
                "Issued licence {} to {}.",
                licence.licence_number,
                args.out.display()
            );
            print_licence(&licence);
            Ok(())
        }
        LicenceCommand::Add { file } => {
            let document = std::fs::read_to_string(&file).map_err(|e| {
                HostError::io(format!("Could not read the file {}", file.display()), e)
            })?;
            let installation = global.open_installation()?;
            let registered = licensing::register(installation.system(), &document)?;
            let number = &registered.licence.licence_number;
            match registered.registration {
                Registration::Added => println!("Registered licence {number}."),
                Registration::Replaced => println!(
                    "Registered licence {number}; it replaces the licence with the same number."
                ),
            }
            print_licence(&registered.licence);
            if let Some(problem) = &registered.signature_problem {
                println!("Warning: {problem}");
                println!("Online Desktop will not accept this licence.");
            }
            println!("{TAKES_EFFECT_AT_RESTART}");
            Ok(())
        }
        LicenceCommand::List => {
            let installation = global.open_installation()?;
            let system = installation.system();
            let registered = licensing::registered(system)?;
            if registered.is_empty() {
                println!("No licences are registered.");
                return Ok(());
            }
            let bindings = system.bindings()?;
            let companies = system.companies()?;
            for (i, entry) in registered.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!(
                    "Licence {} (registered {})",
                    entry.document.licence_number, entry.document.registered_at
                );
                match &entry.claims {
                    Ok(licence) => print_licence(licence),
                    Err(problem) => println!("  Cannot be read: {problem}"),
                }
                match &entry.verification {
                    Ok(()) => println!("  {:<22}valid", "Signature:"),
                    Err(problem) => println!("  {:<22}NOT VALID. {problem}", "Signature:"),
                }
                let bound: Vec<String> = bindings
                    .iter()
                    .filter(|b| b.licence_number == entry.document.licence_number)
                    .map(|b| {
                        let company = companies
                            .iter()
                            .find(|c| c.id == b.company_id)
                            .map_or(b.company_id.as_str(), |c| c.name.as_str());
                        format!("{} for {}", b.add_on, quoted(company))
                    })
                    .collect();
                let bound = if bound.is_empty() {
                    "-".to_owned()
                } else {
                    bound.join(", ")
                };
                println!("  {:<22}{bound}", "Registered add-ons:");
            }
            Ok(())
        }
        LicenceCommand::Bind { licence } => {
            let installation = global.open_installation()?;
            let company = installation.find_company(required_company(global)?)?;
            let name = quoted(&company.name);
            match licensing::bind(installation.system(), &company, licence.as_deref())? {
                BindOutcome::Bound { licence_number } => println!(
                    "Online Desktop is now registered for {name} with licence {licence_number}."
                ),
                BindOutcome::Rebound {
                    licence_number,
                    previous,
                } => println!(
                    "Online Desktop for {name} is now registered with licence {licence_number} instead of {previous}."
                ),
                BindOutcome::AlreadyBound { licence_number } => {
                    println!(
                        "Online Desktop was already registered for {name} with licence {licence_number}; nothing changed."
                    );
                    return Ok(());
                }
            }
            if company.is_sample {
                println!("Note: {name} is the sample database; Online Desktop cannot be used with the sample database.");
            }
            println!("{TAKES_EFFECT_AT_RESTART}");
            Ok(())
        }
        LicenceCommand::Unbind => {
            let installation = global.open_installation()?;
            let company = installation.find_company(required_company(global)?)?;
            let name = quoted(&company.name);
            if licensing::unbind(installation.system(), &company)? {
                println!("Online Desktop is no longer registered for {name}.");
                println!("{TAKES_EFFECT_AT_RESTART}");
            } else {
                println!("Online Desktop was not registered for {name}; nothing changed.");
            }
            Ok(())
        }
    }
}

/// Registering an add-on names the company database explicitly, as the
/// host's dialog makes people choose it.
fn required_company(global: &GlobalArgs) -> Result<&str> {
    global.company.as_deref().ok_or_else(|| {
        HostError::InvalidInput(
            "Choose the company database with --company (see `host-sim company list`).".into(),
        )
    })
}

fn print_licence(licence: &Licence) {
    let field = |label: &str, value: &str| println!("  {:<22}{value}", format!("{label}:"));
    let or_missing = |value: &str| {
        if value.trim().is_empty() {
            "(missing)".to_owned()
        } else {
            value.to_owned()
        }
    };
    field("Licensee", &or_missing(&licence.licensee_name));
    field("Contact person", &or_missing(&licence.contact_person));
    field("Phone", &or_missing(&licence.phone));
    field(
        "Add-ons",
        &if licence.add_ons.is_empty() {
            "(none)".to_owned()
        } else {
            licence.add_ons.join(", ")
        },
    );
    field(
        "Service agreement",
        &match &licence.agreement {
            Some(agreement) => format!("{}, valid until {}", agreement.tier, agreement.valid_until),
            None => "(none)".to_owned(),
        },
    );
    field("Online users", &licence.online_users.to_string());
    field("Evaluation licence", yes_no(licence.evaluation));
    field("Issued on", &licence.issued_on.to_string());
}
