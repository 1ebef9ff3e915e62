//! `host-sim integration ...`: programs using the host's API.

use clap::Subcommand;

use super::table::Table;
use super::{quoted, yes_no, GlobalArgs};
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// List the API integrations of all company databases
    List,
    /// Set up an API integration for --company
    Add { name: String },
    /// Log an API integration in to --company
    Login { name: String },
    /// Log an API integration out of --company
    Logout { name: String },
}

pub fn run(global: &GlobalArgs, command: IntegrationCommand) -> Result<()> {
    let installation = global.open_installation()?;
    let system = installation.system();
    if let IntegrationCommand::List = command {
        let mut table = Table::new(&["Integration", "Company", "Logged in"]);
        for integration in system.integrations()? {
            table.row(vec![
                integration.name,
                integration.company_name,
                yes_no(integration.logged_in).into(),
            ]);
        }
        table.print_or("There are no API integrations.");
        return Ok(());
    }
    let company = installation.company_or_default(global.company.as_deref())?;
    match command {
        IntegrationCommand::Add { name } => {
            system.add_integration(&name, &company)?;
            println!(
                "Set up the API integration {} for {} (logged out).",
                quoted(name.trim()),
                quoted(&company.name)
            );
        }
        IntegrationCommand::Login { name } => {
            let changed = system.set_integration_logged_in(&name, &company, true)?;
            let state = if changed { "is now" } else { "was already" };
            println!(
                "The API integration {} {state} logged in to {}.",
                quoted(&name),
                quoted(&company.name)
            );
        }
        IntegrationCommand::Logout { name } => {
            let changed = system.set_integration_logged_in(&name, &company, false)?;
            let state = if changed { "is now" } else { "was already" };
            println!(
                "The API integration {} {state} logged out of {}.",
                quoted(&name),
                quoted(&company.name)
            );
        }
        IntegrationCommand::List => {}
    }
    Ok(())
}
