//! `host-sim computer ...`.

use clap::Subcommand;

use super::table::Table;
use super::{quoted, yes_no, GlobalArgs};
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum ComputerCommand {
    /// List the computers the program is installed on
    List,
    /// Install the program on another computer
    Add { name: String },
    /// Remove a computer (by name or id)
    Remove { computer: String },
    /// Make a computer the one that holds the system database
    SetSystemDbHolder { computer: String },
}

pub fn run(global: &GlobalArgs, command: ComputerCommand) -> Result<()> {
    let mut installation = global.open_installation()?;
    match command {
        ComputerCommand::List => {
            let mut table = Table::new(&["Name", "Id", "Holds the system database"]);
            for computer in installation.system().computers()? {
                table.row(vec![
                    computer.name,
                    computer.id,
                    yes_no(computer.holds_system_database).into(),
                ]);
            }
            table.print_or("No computers are installed.");
        }
        ComputerCommand::Add { name } => {
            let computer = installation
                .system()
                .add_computer(&uuid::Uuid::new_v4().to_string(), &name)?;
            println!(
                "Added the computer {} (id {}).",
                quoted(&computer.name),
                computer.id
            );
        }
        ComputerCommand::Remove { computer } => {
            let computer = installation.find_computer(&computer)?;
            installation.system().remove_computer(&computer)?;
            println!(
                "Removed the computer {} (and its sessions).",
                quoted(&computer.name)
            );
        }
        ComputerCommand::SetSystemDbHolder { computer } => {
            let computer = installation.find_computer(&computer)?;
            if computer.holds_system_database {
                println!(
                    "{} already holds the system database; nothing changed.",
                    quoted(&computer.name)
                );
            } else {
                installation
                    .system_mut()
                    .set_system_database_holder(&computer)?;
                println!("{} now holds the system database.", quoted(&computer.name));
            }
        }
    }
    Ok(())
}
