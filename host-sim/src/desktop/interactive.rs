//! The interactive desktop: the host as a person uses it, with menus,
//! prompts and colour. The add-on is loaded when the program starts and
//! again on "Restart the program", so licence changes take effect then, as
//! in the real host.
//!
//! Management actions run the same code as the scripted commands: each menu
//! entry builds the command line it stands for and runs it.

use std::time::Duration;

use clap::Parser;
use console::{style, Term};
use dialoguer::theme::ColorfulTheme;
use dialoguer::{Input, Select};

use crate::cli::{self, Cli, GlobalArgs};
use crate::desktop::render;
use crate::error::{HostError, Result};
use crate::plugin::Instance;

enum After {
    Stay,
    Restart,
    Exit,
}

pub fn run(global: &GlobalArgs) -> Result<()> {
    if !Term::stdout().is_term() || !Term::stderr().is_term() {
        return Err(HostError::InvalidInput(
            "The desktop needs a terminal. In scripts use the commands listed by `host-sim --help`.".into(),
        ));
    }
    let mut global = global.clone();
    // Fail early, with the usual message, if there is no installation.
    global.host_context()?;
    loop {
        println!("\n{}", style("Starting the program …").dim());
        let library = global.load_add_on();
        let instance = match &library {
            Ok(library) => global
                .add_on_settings()
                .and_then(|s| Ok(Instance::create(library, s)?)),
            Err(e) => Err(HostError::CheckFailed(e.to_string())),
        };
        if let Err(e) = &instance {
            println!(
                "{} {e}",
                style("The Online Desktop add-on is not available:")
                    .red()
                    .bold()
            );
        }
        let mut after = After::Stay;
        while let After::Stay = after {
            after = match menu(&mut global, instance.as_ref().ok()) {
                Ok(next) => next,
                Err(e) => {
                    println!("{} {e}", style("Error:").red().bold());
                    After::Stay
                }
            };
        }
        drop(instance);
        drop(library);
        if let After::Exit = after {
            return Ok(());
        }
    }
}

fn theme() -> ColorfulTheme {
    ColorfulTheme::default()
}

fn menu(global: &mut GlobalArgs, add_on: Option<&Instance>) -> Result<After> {
    let context = global.host_context()?;
    let installation = global.open_installation()?;
    let company = installation.company_or_default(global.company.as_deref())?;
    let computer = installation.computer_or_default(global.computer.as_deref())?;
    println!(
        "\n{} {} · user {} · computer {}",
        style("Host Simulator —").bold(),
        style(&company.name).bold().cyan(),
        context.username,
        computer.name
    );
    let entries = [
        "Connect to Online Desktop",
        "Company settings → Online Desktop",
        "Company settings → Company information",
        "Users and employees",
        "Help → About → Administer licence information",
        "Who is logged in (users and API integrations)",
        "File → Open another company / log in as another user",
        "Restart the program (reloads the add-on)",
        "Exit",
    ];
    let choice = Select::with_theme(&theme())
        .with_prompt("Menu")
        .items(entries)
        .default(0)
        .interact_opt()
        .map_err(prompt_error)?;
    Ok(match choice {
        Some(0) => {
            connect(global, add_on)?;
            After::Stay
        }
        Some(1) => {
            command(global, &["settings"]);
            After::Stay
        }
        Some(2) => {
            company_information(global)?;
            After::Stay
        }
        Some(3) => {
            users(global)?;
            After::Stay
        }
        Some(4) => {
            licences(global)?;
            After::Stay
        }
        Some(5) => {
            sessions(global)?;
            After::Stay
        }
        Some(6) => {
            switch(global)?;
            After::Restart
        }
        Some(7) => After::Restart,
        _ => After::Exit,
    })
}

fn prompt_error(e: dialoguer::Error) -> HostError {
    HostError::InvalidInput(format!("the prompt failed: {e}"))
}

/// Runs a scripted command for the current company, user and computer.
fn command(global: &GlobalArgs, args: &[&str]) -> bool {
    let mut argv: Vec<String> = vec![
        "host-sim".into(),
        "--data-dir".into(),
        global.data_dir.display().to_string(),
    ];
    if let Some(company) = &global.company {
        argv.extend(["--company".into(), company.clone()]);
    }
    argv.extend(["--user".into(), global.user.clone()]);
    if let Some(computer) = &global.computer {
        argv.extend(["--computer".into(), computer.clone()]);
    }
    if let Some(plugin) = &global.add_on.plugin {
        argv.extend(["--plugin".into(), plugin.display().to_string()]);
    }
    if let Some(url) = &global.add_on.service_url {
        argv.extend(["--service-url".into(), url.clone()]);
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    let outcome = Cli::try_parse_from(&argv)
        .map_err(|e| HostError::InvalidInput(e.to_string()))
        .and_then(cli::run);
    match outcome {
        Ok(()) => true,
        Err(e) => {
            println!("{} {e}", style("Error:").red().bold());
            false
        }
    }
}

fn ask(prompt: &str) -> Result<String> {
    Input::<String>::with_theme(&theme())
        .with_prompt(prompt)
        .allow_empty(true)
        .interact_text()
        .map_err(prompt_error)
}

fn pick(prompt: &str, items: &[&str]) -> Result<Option<usize>> {
    Select::with_theme(&theme())
        .with_prompt(prompt)
        .items(items)
        .default(0)
        .interact_opt()
        .map_err(prompt_error)
}

/// "Connect to Online Desktop" with the add-on loaded at start-up.
fn connect(global: &GlobalArgs, add_on: Option<&Instance>) -> Result<()> {
    let Some(instance) = add_on else {
        println!(
            "{}",
            style("The add-on is not loaded; see the message at start-up.").red()
        );
        return Ok(());
    };
    println!("{}", render::licence(&instance.licence()?));
    let mut refresh = false;
    loop {
        let first = instance.prerequisites(refresh)?;
        let view = if first.pending {
            println!(
                "{}",
                style("Checking the connection to the online service …").cyan()
            );
            instance.prerequisites_settled(false, Duration::from_secs(10))?
        } else {
            first
        };
        println!("{}", render::prerequisites(&view));
        println!("{}\n", render::verdict(&view));
        let mut options = vec!["Check again", "Close"];
        if view.can_connect {
            options.insert(0, "Connect");
        }
        match pick("Connect to Online Desktop", &options)?.map(|i| options[i]) {
            Some("Connect") => {
                // The connect wizard, as `host-sim connect` shows it.
                command(global, &["connect"]);
                return Ok(());
            }
            Some("Check again") => refresh = true,
            _ => return Ok(()),
        }
    }
}

fn company_information(global: &GlobalArgs) -> Result<()> {
    command(global, &["company", "show"]);
    let fields = [
        ("Company name", "--name"),
        ("Street", "--street"),
        ("Postcode", "--postcode"),
        ("City", "--city"),
        ("Country", "--country"),
        ("Phone", "--phone"),
        ("E-mail", "--email"),
        ("Organisation number", "--organisation-number"),
    ];
    let labels: Vec<&str> = fields
        .iter()
        .map(|(label, _)| *label)
        .chain(["Back"])
        .collect();
    while let Some(i) = pick("Change which field?", &labels)? {
        let Some((label, flag)) = fields.get(i) else {
            break;
        };
        let value = ask(&format!("{label} (empty clears it)"))?;
        command(global, &["company", "set-registration", flag, &value]);
    }
    Ok(())
}

fn users(global: &GlobalArgs) -> Result<()> {
    let options = [
        "List users",
        "Make a user a super user",
        "Make a user an ordinary user",
        "Link a user to an employee",
        "List employees",
        "Set an employee's e-mail address",
        "Back",
    ];
    loop {
        match pick("Users and employees", &options)? {
            Some(0) => {
                command(global, &["user", "list"]);
            }
            Some(choice @ (1 | 2)) => {
                let user = ask("User name")?;
                let switch = if choice == 1 { "on" } else { "off" };
                command(global, &["user", "set-super", &user, switch]);
            }
            Some(3) => {
                command(global, &["employee", "list"]);
                let user = ask("User name")?;
                let number = ask("Employee number")?;
                command(
                    global,
                    &["user", "link-employee", &user, "--employee", &number],
                );
            }
            Some(4) => {
                command(global, &["employee", "list"]);
            }
            Some(5) => {
                command(global, &["employee", "list"]);
                let number = ask("Employee number")?;
                let email = ask("E-mail address (empty clears it)")?;
                command(global, &["employee", "set-email", &number, &email]);
            }
            _ => return Ok(()),
        }
    }
}

fn licences(global: &GlobalArgs) -> Result<()> {
    let options = [
        "List registered licences",
        "Add a licence file",
        "Add-on products → Online Desktop → Add (register for this company)",
        "Remove the Online Desktop registration of this company",
        "Issue a demo licence file (vendor's tool, development key)",
        "Back",
    ];
    loop {
        match pick("Administer licence information", &options)? {
            Some(0) => {
                command(global, &["licence", "list"]);
            }
            Some(1) => {
                let file = ask("Licence file")?;
                command(global, &["licence", "add", &file]);
            }
            Some(2) => {
                let company = current_company(global)?;
                command(global, &["licence", "bind", "--company", &company]);
            }
            Some(3) => {
                let company = current_company(global)?;
                command(global, &["licence", "unbind", "--company", &company]);
            }
            Some(4) => {
                let file = ask("Write the licence to file")?;
                command(global, &["licence", "issue", "--out", &file]);
            }
            _ => return Ok(()),
        }
    }
}

fn current_company(global: &GlobalArgs) -> Result<String> {
    Ok(global
        .open_installation()?
        .company_or_default(global.company.as_deref())?
        .id)
}

fn sessions(global: &GlobalArgs) -> Result<()> {
    let options = [
        "List who is logged in",
        "Log a user out",
        "Log an API integration out",
        "Back",
    ];
    loop {
        match pick("Who is logged in", &options)? {
            Some(0) => {
                command(global, &["session", "list"]);
                command(global, &["integration", "list"]);
            }
            Some(1) => {
                let user = ask("User name")?;
                let computer = ask("Computer")?;
                let mut other = global.clone();
                other.user = user;
                other.computer = Some(computer);
                command(&other, &["session", "logout"]);
            }
            Some(2) => {
                let name = ask("Integration name")?;
                command(global, &["integration", "logout", &name]);
            }
            _ => return Ok(()),
        }
    }
}

/// "File → Open company" and "Log in as": changes who works where; the
/// program restarts, as the real one does when the company changes.
fn switch(global: &mut GlobalArgs) -> Result<()> {
    let installation = global.open_installation()?;
    let companies = installation.system().companies()?;
    let names: Vec<String> = companies
        .iter()
        .map(|c| {
            if c.is_sample {
                format!("{} (sample database)", c.name)
            } else {
                c.name.clone()
            }
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    if let Some(i) = pick("Open company", &refs)? {
        global.company = Some(companies[i].id.clone());
    }
    let users = installation.system().users()?;
    let user_names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    if let Some(i) = pick("Log in as", &user_names)? {
        global.user = users[i].username.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripted_commands_parse() {
        use clap::Parser;
        for args in [
            vec!["host-sim", "settings"],
            vec![
                "host-sim",
                "settings",
                "update-connection",
                "--email",
                "a@b.example",
            ],
            vec![
                "host-sim",
                "settings",
                "disconnect",
                "--email",
                "a@b.example",
            ],
            vec![
                "host-sim",
                "--user",
                "kari",
                "settings",
                "change-user",
                "--email",
                "a@b.example",
                "--cancel-at",
                "confirm",
            ],
            vec!["host-sim", "company", "backup", "--out", "b.db"],
            vec!["host-sim", "company", "restore", "b.db", "--force"],
            vec!["host-sim", "company", "set-registration", "--street", ""],
            vec!["host-sim", "user", "set-super", "admin", "on"],
            vec![
                "host-sim",
                "user",
                "link-employee",
                "admin",
                "--employee",
                "1",
            ],
            vec!["host-sim", "employee", "set-email", "1", "a@b.example"],
            vec!["host-sim", "licence", "bind", "--company", "x"],
            vec!["host-sim", "integration", "logout", "Webshop"],
            vec!["host-sim", "session", "logout"],
        ] {
            super::Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }
}
