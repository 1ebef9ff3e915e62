//! `host-sim employee ...` (in the company database chosen with --company).

use clap::Subcommand;

use super::table::Table;
use super::{or_dash, quoted, GlobalArgs};
use crate::db::company::NewEmployee;
use crate::error::Result;

#[derive(Debug, Subcommand)]
pub enum EmployeeCommand {
    /// List the employees
    List,
    /// Add an employee
    Add {
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// Employee number. Default: the next free number
        #[arg(long)]
        number: Option<i64>,
    },
    /// Set an employee's e-mail address; an empty address clears it
    SetEmail {
        /// Employee number
        number: i64,
        email: String,
    },
}

pub fn run(global: &GlobalArgs, command: EmployeeCommand) -> Result<()> {
    let installation = global.open_installation()?;
    let company = installation.company_or_default(global.company.as_deref())?;
    let db = installation.open_company_db(&company)?;
    match command {
        EmployeeCommand::List => {
            let mut table = Table::new(&["Number", "Name", "Title", "E-mail", "Phone"]);
            for employee in db.employees()? {
                table.row(vec![
                    employee.number.to_string(),
                    employee.full_name(),
                    or_dash(employee.title.as_deref()).into(),
                    or_dash(employee.email.as_deref()).into(),
                    or_dash(employee.phone.as_deref()).into(),
                ]);
            }
            table.print_or(&format!("{} has no employees.", quoted(&company.name)));
        }
        EmployeeCommand::Add {
            first_name,
            last_name,
            title,
            email,
            phone,
            number,
        } => {
            let employee = db.add_employee(&NewEmployee {
                number,
                first_name,
                last_name,
                title,
                email,
                phone,
            })?;
            println!(
                "Added the employee {employee} to {}.",
                quoted(&company.name)
            );
        }
        EmployeeCommand::SetEmail { number, email } => {
            let employee = db.set_employee_email(number, Some(&email))?;
            match &employee.email {
                Some(email) => println!("The e-mail address of {employee} is now {email}."),
                None => println!("The e-mail address of {employee} was cleared."),
            }
        }
    }
    Ok(())
}
