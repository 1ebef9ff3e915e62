//! `host-sim session ...`: users logging in and out of company databases.

use clap::Subcommand;

use super::table::Table;
use super::{quoted, GlobalArgs};
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List who is logged in where
    List,
    /// Log --user in to --company from --computer
    Login,
    /// Log --user out of --company on --computer
    Logout,
}

pub fn run(global: &GlobalArgs, command: SessionCommand) -> Result<()> {
    let installation = global.open_installation()?;
    let system = installation.system();
    if let SessionCommand::List = command {
        let mut table = Table::new(&["Company", "User", "Computer", "Logged in at"]);
        for session in system.sessions()? {
            table.row(vec![
                session.company_name,
                session.username,
                session.computer_name,
                session.logged_in_at,
            ]);
        }
        table.print_or("Nobody is logged in.");
        return Ok(());
    }
    let user = system.user(&global.user)?;
    let company = installation.company_or_default(global.company.as_deref())?;
    let computer = installation.computer_or_default(global.computer.as_deref())?;
    let (who, company_name, computer_name) = (
        quoted(&user.username),
        quoted(&company.name),
        quoted(&computer.name),
    );
    match command {
        SessionCommand::Login => {
            if system.log_in(&user, &company, &computer)? {
                println!("{who} is now logged in to {company_name} on {computer_name}.");
            } else {
                println!(
                    "{who} was already logged in to {company_name} on {computer_name}; nothing changed."
                );
            }
        }
        SessionCommand::Logout => {
            if system.log_out(&user, &company, &computer)? {
                println!("{who} is now logged out of {company_name} on {computer_name}.");
            } else {
                println!(
                    "{who} was not logged in to {company_name} on {computer_name}; nothing changed."
                );
            }
        }
        SessionCommand::List => {}
    }
    Ok(())
}
