//! `host-sim installation ...`.

use clap::Subcommand;

use super::{yes_no, GlobalArgs, Switch};
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum InstallationCommand {
    /// Show the installation's settings and contents
    Show,
    /// Mark the installation as an evaluation installation (on) or a
    /// licensed one (off)
    SetEvaluation { value: Switch },
}

pub fn run(global: &GlobalArgs, command: InstallationCommand) -> Result<()> {
    let installation = global.open_installation()?;
    let system = installation.system();
    match command {
        InstallationCommand::Show => {
            println!(
                "Data directory:          {}",
                installation.dir().root().display()
            );
            println!(
                "Evaluation installation: {}",
                yes_no(system.evaluation_installation()?)
            );
            println!("Company databases:       {}", system.companies()?.len());
            println!("Users:                   {}", system.users()?.len());
            println!("Computers:               {}", system.computers()?.len());
            println!(
                "Licence documents:       {}",
                system.licence_documents()?.len()
            );
        }
        InstallationCommand::SetEvaluation { value } => {
            system.set_evaluation_installation(value.is_on())?;
            if value.is_on() {
                println!("This is now an evaluation installation.");
            } else {
                println!("This is no longer an evaluation installation.");
            }
        }
    }
    Ok(())
}
