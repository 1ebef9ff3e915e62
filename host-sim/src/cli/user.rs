//! `host-sim user ...`.

use clap::Subcommand;

use super::table::Table;
use super::{or_dash, quoted, yes_no, GlobalArgs, Switch};
use crate::db::system::{EmployeeLink, User};
use crate::error::Result;
use crate::installation::Installation;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List the users
    List,
    /// Add a user
    Add {
        username: String,
        /// Make the new user a super user
        #[arg(long)]
        super_user: bool,
    },
    /// Remove a user
    Remove { username: String },
    /// Make a user a super user (on) or an ordinary user (off)
    SetSuper { username: String, value: Switch },
    /// Link a user to an employee of a company database (--company)
    LinkEmployee {
        username: String,
        /// Employee number (see `host-sim employee list`)
        #[arg(long, value_name = "NUMBER")]
        employee: i64,
    },
    /// Remove a user's link to an employee
    Unlink { username: String },
}

pub fn run(global: &GlobalArgs, command: UserCommand) -> Result<()> {
    let installation = global.open_installation()?;
    let system = installation.system();
    match command {
        UserCommand::List => {
            let mut table = Table::new(&["User", "Super user", "Employee", "Company", "E-mail"]);
            for user in system.users()? {
                let (employee, company, email) = describe_link(&installation, &user);
                table.row(vec![
                    user.username,
                    yes_no(user.is_super_user).into(),
                    employee,
                    company,
                    email,
                ]);
            }
            table.print_or("There are no users.");
        }
        UserCommand::Add {
            username,
            super_user,
        } => {
            let user = system.add_user(&username, super_user)?;
            let kind = if user.is_super_user {
                "super user"
            } else {
                "user"
            };
            println!("Added the {kind} {}.", quoted(&user.username));
        }
        UserCommand::Remove { username } => {
            let user = system.remove_user(&username)?;
            println!(
                "Removed the user {} (and their sessions).",
                quoted(&user.username)
            );
        }
        UserCommand::SetSuper { username, value } => {
            let user = system.set_super_user(&username, value.is_on())?;
            if user.is_super_user {
                println!("{} is now a super user.", quoted(&user.username));
            } else {
                println!("{} is no longer a super user.", quoted(&user.username));
            }
        }
        UserCommand::LinkEmployee { username, employee } => {
            let company = installation.company_or_default(global.company.as_deref())?;
            let employee = installation
                .open_company_db(&company)?
                .employee_by_number(employee)?;
            let user = system.link_employee(
                &username,
                &EmployeeLink {
                    company_id: company.id.clone(),
                    employee_id: employee.id,
                },
            )?;
            println!(
                "{} is now linked to the employee {} in {}.",
                quoted(&user.username),
                employee,
                quoted(&company.name)
            );
            if employee.email.is_none() {
                println!(
                    "Note: this employee has no e-mail address (see `host-sim employee set-email`)."
                );
            }
        }
        UserCommand::Unlink { username } => {
            let before = system.user(&username)?;
            let user = system.unlink_employee(&username)?;
            if before.employee.is_some() {
                println!(
                    "{} is no longer linked to an employee.",
                    quoted(&user.username)
                );
            } else {
                println!(
                    "{} was not linked to an employee; nothing changed.",
                    quoted(&user.username)
                );
            }
        }
    }
    Ok(())
}

/// (employee, company, e-mail) columns for a user; a link to an employee
/// that no longer exists is shown as such.
fn describe_link(installation: &Installation, user: &User) -> (String, String, String) {
    let Some(EmployeeLink {
        company_id,
        employee_id,
    }) = &user.employee
    else {
        return ("-".into(), "-".into(), "-".into());
    };
    let Ok(Some(company)) = installation.system().company(company_id) else {
        return ("(missing company)".into(), company_id.clone(), "-".into());
    };
    let employee = installation
        .open_company_db(&company)
        .and_then(|db| db.employee(*employee_id));
    match employee {
        Ok(Some(employee)) => (
            employee.to_string(),
            company.name,
            or_dash(employee.email.as_deref()).to_owned(),
        ),
        _ => ("(missing employee)".into(), company.name, "-".into()),
    }
}
