//! "Connect to Online Desktop" and "Company settings → Online Desktop" as a
//! new user meets them (PRODUCT.md §1–2): the built `host-sim` loads the
//! real plugin and checks against the real online service, started from
//! the same target folder on 127.0.0.1.
//!
//! Every test has its own installation in a temporary folder, so they can
//! run in parallel; the tests running at the same time share one service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

// ---------------------------------------------------------------------------
// The rows and rules as the user reads them.

const LICENCE_ROW: &str = "The Online Desktop licence check passes";
const SUPER_USER_ROW: &str = "You are logged in as a super user";
const EMPLOYEE_ROW: &str = "Your user is linked to an employee with an e-mail address";
const REGISTRATION_ROW: &str = "The company's registration data is complete";
const REAL_COMPANY_ROW: &str =
    "This is a real company database, not the sample database or an evaluation installation";
const OTHER_CONNECTED_ROW: &str = "No other company database of this installation is connected";
const REACHABLE_ROW: &str = "The online service can be reached from this computer";
const LOGGED_IN_ROW: &str = "No other users or API integrations are logged in \
                             (needed when the first synchronisation starts)";

const ALL_ROWS: [&str; 8] = [
    LICENCE_ROW,
    SUPER_USER_ROW,
    EMPLOYEE_ROW,
    REGISTRATION_ROW,
    REAL_COMPANY_ROW,
    OTHER_CONNECTED_ROW,
    REACHABLE_ROW,
    LOGGED_IN_ROW,
];

const REGISTERED_RULE: &str = "An Online Desktop licence is registered";
const GENUINE_RULE: &str = "The licence is genuine and unchanged";
const ADD_ON_RULE: &str = "The licence includes the Online Desktop add-on";
const BOUND_RULE: &str = "Online Desktop is registered for this company database";
const NOT_SAMPLE_RULE: &str = "This is not the sample database";
const NOT_EVALUATION_RULE: &str = "The licence is not an evaluation licence";
const AGREEMENT_RULE: &str = "The service agreement is valid";
const HOLDER_RULE: &str =
    "The licence names the licence holder, a contact person and a phone number";

const ALL_RULES: [&str; 8] = [
    REGISTERED_RULE,
    GENUINE_RULE,
    ADD_ON_RULE,
    BOUND_RULE,
    NOT_SAMPLE_RULE,
    NOT_EVALUATION_RULE,
    AGREEMENT_RULE,
    HOLDER_RULE,
];

const PASSED: char = '✔';
const FAILED: char = '✘';
const WARNING: char = '!';

const LICENCE_FIX: &str = "Fix it in: Help → About → Administer licence information → \
                           Add-on products → Online Desktop → Add";
const ALL_MET: &str = "All requirements are met: Connect is available.";
const NOT_POSSIBLE_ERROR: &str =
    "Error: Connecting is not possible yet: see the items marked ✘ above.";
const RESTART: &str = "The change takes effect the next time the program starts.";
const STANDARD_MODULES: &str = "Online modules: Contacts and contact persons, Activities, \
     Sales documents (quotes, orders, invoices, credit notes), Products, Employees, \
     Dashboard with key figures";

/// Fixed so that the demo data never depends on the day.
const AS_OF: &str = "2026-03-31";

mod programs;
use programs::{plugin_library, shared_service, Service};

/// A loopback port nothing listens on, reserved while this lives: the
/// address of a service that is not running.
struct ClosedPort {
    _socket: socket2::Socket,
    url: String,
}

impl ClosedPort {
    fn new() -> ClosedPort {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        // Bound but never listening: connections are refused at once and
        // no other program can take the port meanwhile.
        socket.bind(&any.into()).expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        ClosedPort {
            _socket: socket,
            url: format!("http://{addr}"),
        }
    }
}

// ---------------------------------------------------------------------------
// The host simulator.

/// What one `host-sim` command did, as plain text.
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host-sim {:?} exited with {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    /// Whether `line` (without trailing spaces, leading spaces ignored) is
    /// one of the lines printed on standard output.
    fn has_line(&self, line: &str) -> bool {
        self.stdout.lines().any(|l| l.trim() == line)
    }

    #[track_caller]
    fn assert_line(&self, line: &str) {
        assert!(self.has_line(line), "expected the line {line:?}\n{self}");
    }

    #[track_caller]
    fn assert_code(&self, code: i32) {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
    }
}

/// Removes colour codes, in case a terminal setting forces them.
fn plain(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A demo installation in a temporary folder, whose add-on uses `service`.
struct Host {
    dir: tempfile::TempDir,
    service_url: String,
}

impl Host {
    /// A small demo installation (no licence yet).
    fn with_demo(service: &Service) -> Host {
        let host = Host {
            dir: tempfile::tempdir().expect("a temporary folder"),
            service_url: service.url.clone(),
        };
        host.ok(&["init", "--records", "60", "--seed", "5", "--as-of", AS_OF]);
        host
    }

    /// A demo installation with a valid licence registered and bound to
    /// the demo company: everything is met for `admin`.
    fn licensed(service: &Service) -> Host {
        let host = Host::with_demo(service);
        let file = host.issue("nordlys.licence", &["--valid-until", "2099-12-31"]);
        host.ok(&["licence", "add", &file]);
        host.ok(&["licence", "bind", "--company", "nordlys"]);
        host
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_host-sim"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env_remove("OD_HOST_DATA")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("CLICOLOR")
            .env("NO_COLOR", "1")
            .env("OD_PLUGIN_PATH", plugin_library())
            .env("OD_SERVICE_URL", &self.service_url)
            .stdin(Stdio::null())
            .output()
            .expect("host-sim runs");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: output.status.code(),
            stdout: plain(&output.stdout),
            stderr: plain(&output.stderr),
        }
    }

    /// Runs a command that must succeed; returns what it printed.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        run.assert_code(0);
        run.stdout
    }

    /// Runs a command that must fail with exit code 1; returns its error
    /// message.
    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args);
        run.assert_code(1);
        assert!(run.stderr.starts_with("Error: "), "{run}");
        run.stderr
    }

    /// `licence issue --out FILE ARGS`; returns the file's path.
    #[track_caller]
    fn issue(&self, file: &str, args: &[&str]) -> String {
        let path = self.path(file).display().to_string();
        let mut all = vec!["licence", "issue", "--out", path.as_str()];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        assert!(out.contains("Issued licence OD-100001"), "{out}");
        path
    }

    /// "Connect to Online Desktop" (a new start of the program).
    fn connect(&self, args: &[&str]) -> Connect {
        let mut all = vec!["connect", "--wait", "60"];
        all.extend_from_slice(args);
        Connect::parse(self.run(&all))
    }

    /// The demo company's id, as the host tells the plugin.
    fn company_id(&self, company: &str) -> String {
        let out = self.ok(&["channel", "company.identity", "--company", company]);
        let identity: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        identity["id"].as_str().expect("an id").to_owned()
    }

    /// The id of the computer the host runs on by default (the one that
    /// holds the system database), as the host tells the plugin.
    fn computer_id(&self) -> String {
        let out = self.ok(&["channel", "system.computers"]);
        let computers: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        computers["computers"]
            .as_array()
            .expect("a list of computers")
            .iter()
            .find(|c| c["holds_system_database"] == true)
            .and_then(|c| c["id"].as_str())
            .expect("the computer that holds the system database")
            .to_owned()
    }
}

/// One licence rule or prerequisite row: its mark, its title and the lines
/// printed under it (the reason, then "Fix it in: …" for a failed row).
#[derive(Debug, Clone)]
struct Check {
    mark: char,
    title: String,
    details: Vec<String>,
}

impl Check {
    fn detail(&self) -> String {
        self.details.join("\n")
    }
}

/// The output of `connect`, split into the licence rules and the rows.
struct Connect {
    run: Run,
    rules: Vec<Check>,
    rows: Vec<Check>,
}

impl Connect {
    fn parse(run: Run) -> Connect {
        #[derive(PartialEq)]
        enum Section {
            Other,
            Licence,
            Rows,
        }
        let mut section = Section::Other;
        let mut rules = Vec::new();
        let mut rows: Vec<Check> = Vec::new();
        for line in run.stdout.lines() {
            match line {
                "Licence" => section = Section::Licence,
                "Requirements for connecting" => section = Section::Rows,
                "" => section = Section::Other,
                _ => {}
            }
            let list = match section {
                Section::Licence => &mut rules,
                Section::Rows => &mut rows,
                Section::Other => continue,
            };
            if let Some(detail) = line.strip_prefix("      ") {
                if let Some(last) = list.last_mut() {
                    last.details.push(detail.to_owned());
                }
            } else if let Some(rest) = line.strip_prefix("  ") {
                let mut chars = rest.chars();
                let mark = chars.next().unwrap_or(' ');
                if ['✔', '✘', '!', '…'].contains(&mark) && chars.next() == Some(' ') {
                    list.push(Check {
                        mark,
                        title: chars.as_str().to_owned(),
                        details: Vec::new(),
                    });
                }
            }
        }
        let connect = Connect { run, rules, rows };
        let titles = |list: &[Check]| list.iter().map(|c| c.title.clone()).collect::<Vec<_>>();
        assert_eq!(
            titles(&connect.rules),
            ALL_RULES,
            "the licence rules\n{}",
            connect.run
        );
        assert_eq!(
            titles(&connect.rows),
            ALL_ROWS,
            "the requirement rows\n{}",
            connect.run
        );
        connect
    }

    fn rule(&self, title: &str) -> &Check {
        self.rules.iter().find(|c| c.title == title).unwrap()
    }

    fn row(&self, title: &str) -> &Check {
        self.rows.iter().find(|c| c.title == title).unwrap()
    }

    fn failed_rules(&self) -> Vec<&str> {
        let failed = self.rules.iter().filter(|r| r.mark != PASSED);
        failed.map(|r| r.title.as_str()).collect()
    }

    /// Rows not passed, with their mark.
    fn unmet_rows(&self) -> Vec<(char, &str)> {
        let unmet = self.rows.iter().filter(|r| r.mark != PASSED);
        unmet.map(|r| (r.mark, r.title.as_str())).collect()
    }

    /// Exit 3, the closing sentence with the number of failed rows, and
    /// the error on standard error.
    #[track_caller]
    fn assert_refused(&self, failed: usize) {
        self.run.assert_code(3);
        let verdict = if failed == 1 {
            "Connect is not available: 1 requirement is not met. Fix the red items and check again."
                .to_owned()
        } else {
            format!(
                "Connect is not available: {failed} requirements are not met. Fix the red \
                 items and check again."
            )
        };
        self.run.assert_line(&verdict);
        assert_eq!(
            self.run.stderr.trim_end(),
            NOT_POSSIBLE_ERROR,
            "{}",
            self.run
        );
        assert!(!self.run.has_line(ALL_MET), "{}", self.run);
    }

    /// Exit 0, every blocking row passed, Connect available.
    #[track_caller]
    fn assert_available(&self) {
        self.run.assert_code(0);
        assert!(
            self.run.stdout.contains(ALL_MET),
            "expected {ALL_MET:?}\n{}",
            self.run
        );
        assert!(self.run.stderr.is_empty(), "{}", self.run);
        assert!(
            self.rows
                .iter()
                .all(|r| r.mark == PASSED || r.mark == WARNING),
            "{}",
            self.run
        );
    }

    /// Asserts that a failed row shows `reason` and where to fix it.
    #[track_caller]
    fn assert_row_fails(&self, title: &str, reason: &str, fix: &str) {
        let row = self.row(title);
        assert_eq!(row.mark, FAILED, "{title}\n{}", self.run);
        assert_eq!(
            row.details,
            [reason.to_owned(), format!("Fix it in: {fix}")],
            "{title}\n{}",
            self.run
        );
    }

    #[track_caller]
    fn assert_rule_fails(&self, title: &str, reason: &str) {
        let rule = self.rule(title);
        assert_eq!(rule.mark, FAILED, "{title}\n{}", self.run);
        assert_eq!(rule.detail(), reason, "{title}\n{}", self.run);
    }
}

/// Asserts that from `before` to `after` exactly the row `title` changed,
/// and that it now has the mark `now`.
#[track_caller]
fn assert_only_changed(before: &Connect, after: &Connect, title: &str, now: char) {
    for (old, new) in before.rows.iter().zip(&after.rows) {
        if old.title == title {
            assert_ne!(old.mark, now, "{title} already had {now}\n{}", before.run);
            assert_eq!(new.mark, now, "{title} should now be {now}\n{}", after.run);
        } else {
            assert_eq!(
                old.mark, new.mark,
                "only {title:?} should have changed, but {:?} did too\nbefore: {}\nafter: {}",
                old.title, before.run, after.run
            );
        }
    }
}

fn timed<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let value = f();
    eprintln!("{name}: {:.1} s", start.elapsed().as_secs_f64());
    value
}

// ---------------------------------------------------------------------------
// 1. Fixing each requirement turns it green.

#[test]
fn fixing_each_requirement_turns_it_green() {
    timed("fixing_each_requirement_turns_it_green", || {
        let service = shared_service();
        let host = Host::with_demo(&service);

        // A fresh installation has no licence: the licence rules say so and
        // the licence row fails; everything else is met for admin.
        let start = host.connect(&[]);
        start
            .run
            .assert_line("Connect to Online Desktop — Nordlys Handel AS");
        assert!(
            start
                .run
                .stdout
                .contains("Logged in as admin · Online Desktop add-on "),
            "{}",
            start.run
        );
        start.assert_rule_fails(
            REGISTERED_RULE,
            "No licence is registered in the system database. Register the Online Desktop \
             licence file under Help → About → Administer licence information → Add-on \
             products → Online Desktop → Add.",
        );
        assert_eq!(
            start.failed_rules(),
            ALL_RULES
                .iter()
                .copied()
                .filter(|r| *r != NOT_SAMPLE_RULE)
                .collect::<Vec<_>>(),
            "{}",
            start.run
        );
        start.run.assert_line("Service agreement: none");
        let licence_row = start.row(LICENCE_ROW);
        assert_eq!(licence_row.mark, FAILED, "{}", start.run);
        assert!(
            licence_row.details[0].starts_with(
                "The licence check failed: No licence is registered in the system database."
            ),
            "{}",
            start.run
        );
        assert_eq!(licence_row.details.last().unwrap(), LICENCE_FIX);
        assert_eq!(start.unmet_rows(), [(FAILED, LICENCE_ROW)]);
        start.assert_refused(1);

        // Issue, register and bind a licence: the licence row turns green.
        let file = host.issue("nordlys.licence", &[]);
        let out = host.ok(&["licence", "add", &file]);
        assert!(out.contains("Registered licence OD-100001."), "{out}");
        let out = host.ok(&["licence", "bind", "--company", "nordlys"]);
        assert!(out.contains(RESTART), "{out}");
        let licensed = host.connect(&[]);
        assert_only_changed(&start, &licensed, LICENCE_ROW, PASSED);
        assert!(licensed.failed_rules().is_empty(), "{}", licensed.run);
        licensed.run.assert_line(
            "Licence OD-100001 for Nordlys Handel AS (contact Ingrid Solberg, phone +47 22 33 44 55)",
        );
        assert!(
            licensed
                .run
                .stdout
                .contains("Service agreement: Standard, valid until "),
            "{}",
            licensed.run
        );
        licensed.run.assert_line(STANDARD_MODULES);
        licensed.assert_available();

        // A new user, per: no super user and not linked to an employee.
        let out = host.ok(&["user", "add", "per"]);
        assert!(out.contains("Added the user \u{201c}per\u{201d}."), "{out}");
        let per = host.connect(&["--user", "per"]);
        per.run
            .assert_line("Connect to Online Desktop — Nordlys Handel AS");
        assert!(
            per.run.stdout.contains("Logged in as per · "),
            "{}",
            per.run
        );
        per.assert_row_fails(
            SUPER_USER_ROW,
            "per is not a super user. Only a super user can connect the company.",
            "System → Users → (your user) → Super user",
        );
        let employee_fix = "System → Users → (your user) → Employee, and Employees → \
                            (the employee) → E-mail";
        per.assert_row_fails(
            EMPLOYEE_ROW,
            "per is not linked to an employee. Link the user to an employee.",
            employee_fix,
        );
        assert_eq!(
            per.unmet_rows(),
            [(FAILED, SUPER_USER_ROW), (FAILED, EMPLOYEE_ROW)]
        );
        per.assert_refused(2);

        // Make per a super user: only that row turns green.
        host.ok(&["user", "set-super", "per", "on"]);
        let super_user = host.connect(&["--user", "per"]);
        assert_only_changed(&per, &super_user, SUPER_USER_ROW, PASSED);
        super_user.assert_refused(1);

        // Link per to an employee without an e-mail address: the row still
        // fails, now naming the employee.
        let out = host.ok(&[
            "employee",
            "add",
            "--first-name",
            "Per",
            "--last-name",
            "Olsen",
            "--title",
            "Accountant",
        ]);
        assert!(out.contains("Per Olsen (no. 3)"), "{out}");
        let out = host.ok(&["user", "link-employee", "per", "--employee", "3"]);
        assert!(out.contains("this employee has no e-mail address"), "{out}");
        let linked = host.connect(&["--user", "per"]);
        linked.assert_row_fails(
            EMPLOYEE_ROW,
            "The employee Per Olsen has no e-mail address. Enter one on the employee.",
            employee_fix,
        );
        assert_eq!(linked.unmet_rows(), [(FAILED, EMPLOYEE_ROW)]);
        linked.assert_refused(1);

        // Give the employee an e-mail address: all met.
        host.ok(&["employee", "set-email", "3", "per.olsen@nordlyshandel.no"]);
        let email = host.connect(&["--user", "per"]);
        assert_only_changed(&linked, &email, EMPLOYEE_ROW, PASSED);
        email.assert_available();
        assert!(
            email.run.stdout.lines().any(|l| l == ALL_MET),
            "no warnings, so the sentence stands alone\n{}",
            email.run
        );

        // Clear the street of the registration data: that row fails and
        // names it; restoring it turns the row green again.
        let out = host.ok(&["company", "set-registration", "--street", ""]);
        assert!(out.contains("Still missing: Street address."), "{out}");
        let no_street = host.connect(&["--user", "per"]);
        assert_only_changed(&email, &no_street, REGISTRATION_ROW, FAILED);
        no_street.assert_row_fails(
            REGISTRATION_ROW,
            "Missing: street.",
            "View → Settings → Company → Company information",
        );
        no_street.assert_refused(1);
        host.ok(&["company", "set-registration", "--street", "Storgata 12"]);
        let street = host.connect(&["--user", "per"]);
        assert_only_changed(&no_street, &street, REGISTRATION_ROW, PASSED);
        street.assert_available();

        // The online service is not running (nothing listens on the port):
        // the reachability row fails and says what to check.
        let closed = ClosedPort::new();
        let offline = host.connect(&["--user", "per", "--service-url", &closed.url]);
        assert_only_changed(&street, &offline, REACHABLE_ROW, FAILED);
        offline.assert_row_fails(
            REACHABLE_ROW,
            &format!(
                "The online service at {}/ cannot be reached from this computer: no connection \
                 could be made. Check the internet connection and any firewall or proxy, then \
                 check again.",
                closed.url
            ),
            "This computer's internet connection, firewall and proxy settings",
        );
        offline.assert_refused(1);
        // With the service running, it passes again.
        let online = host.connect(&["--user", "per", "--service-url", &service.url]);
        assert_only_changed(&offline, &online, REACHABLE_ROW, PASSED);
        online.assert_available();

        // per's own session on this computer is not "someone else".
        host.ok(&["session", "login", "--user", "per"]);
        let own = host.connect(&["--user", "per"]);
        assert_eq!(own.row(LOGGED_IN_ROW).mark, PASSED, "{}", own.run);
        own.assert_available();

        // Another user logged in: a warning naming them, not a refusal.
        let out = host.ok(&[
            "session",
            "login",
            "--user",
            "lars",
            "--computer",
            "LAPTOP-LARS",
        ]);
        assert!(out.contains("is now logged in"), "{out}");
        let lars = host.connect(&["--user", "per"]);
        assert_only_changed(&own, &lars, LOGGED_IN_ROW, WARNING);
        let logged_in_fix = "Fix it in: File → Users logged in, and Settings → API integrations";
        assert_eq!(
            lars.row(LOGGED_IN_ROW).details,
            [
                "Logged in now: user lars on LAPTOP-LARS. They must log out before the first \
                 synchronisation starts.",
                logged_in_fix
            ],
            "{}",
            lars.run
        );
        lars.assert_available();
        lars.run.assert_line(
            "All requirements are met: Connect is available. The warnings above must be \
             resolved before the first synchronisation starts.",
        );

        // And an API integration: the warning names both.
        host.ok(&["integration", "login", "Webshop Connector"]);
        let webshop = host.connect(&["--user", "per"]);
        assert_eq!(webshop.row(LOGGED_IN_ROW).mark, WARNING, "{}", webshop.run);
        assert_eq!(
            webshop.row(LOGGED_IN_ROW).details,
            [
                "Logged in now: user lars on LAPTOP-LARS, API integration Webshop Connector. \
                 They must log out before the first synchronisation starts.",
                logged_in_fix
            ],
            "{}",
            webshop.run
        );
        webshop.assert_available();

        // Only the integration left: the warning names only it.
        host.ok(&[
            "session",
            "logout",
            "--user",
            "lars",
            "--computer",
            "LAPTOP-LARS",
        ]);
        let integration = host.connect(&["--user", "per"]);
        assert_eq!(
            integration.row(LOGGED_IN_ROW).details[0],
            "Logged in now: API integration Webshop Connector. They must log out before the \
             first synchronisation starts.",
            "{}",
            integration.run
        );
        integration.assert_available();

        // Everyone else logged out: every row green, no warning.
        host.ok(&["integration", "logout", "Webshop Connector"]);
        let done = host.connect(&["--user", "per"]);
        assert_only_changed(&integration, &done, LOGGED_IN_ROW, PASSED);
        assert!(done.unmet_rows().is_empty(), "{}", done.run);
        done.assert_available();
        assert!(
            done.run.stdout.lines().any(|l| l == ALL_MET),
            "{}",
            done.run
        );
    });
}

// ---------------------------------------------------------------------------
// 2. Refusals, each with a clear reason.

#[test]
fn the_sample_database_is_refused() {
    let service = shared_service();
    let host = Host::licensed(&service);
    let sample = host.connect(&["--company", "sample"]);
    sample
        .run
        .assert_line("Connect to Online Desktop — Sample Company");
    sample.assert_rule_fails(
        NOT_SAMPLE_RULE,
        "This is the sample database, which is for trying the program out. Online Desktop \
         cannot be used with it; open your own company database.",
    );
    // The licence is bound to the demo company, not to the sample.
    assert_eq!(
        sample.failed_rules(),
        [BOUND_RULE, NOT_SAMPLE_RULE],
        "{}",
        sample.run
    );
    assert!(
        sample.rule(BOUND_RULE).detail().contains(
            "One system database can have Online Desktop for one company only; more companies \
             need a different licence."
        ),
        "{}",
        sample.run
    );
    sample.assert_row_fails(
        REAL_COMPANY_ROW,
        "This is the sample database, which cannot be connected. Open your own company database.",
        "File → Open company (your own company database)",
    );
    assert_eq!(
        sample.unmet_rows(),
        [(FAILED, LICENCE_ROW), (FAILED, REAL_COMPANY_ROW)]
    );
    sample.assert_refused(2);
}

#[test]
fn an_evaluation_licence_is_refused() {
    let service = shared_service();
    let host = Host::with_demo(&service);
    let file = host.issue("evaluation.licence", &["--evaluation"]);
    let out = host.ok(&["licence", "add", &file]);
    assert!(out.contains("Evaluation licence:   yes"), "{out}");
    host.ok(&["licence", "bind", "--company", "nordlys"]);

    let connect = host.connect(&[]);
    connect.assert_rule_fails(
        NOT_EVALUATION_RULE,
        "Licence OD-100001 is an evaluation licence. Online Desktop needs a full licence; ask \
         your dealer for one.",
    );
    assert_eq!(connect.failed_rules(), [NOT_EVALUATION_RULE]);
    assert_eq!(connect.row(LICENCE_ROW).mark, FAILED, "{}", connect.run);
    assert_eq!(
        connect.row(LICENCE_ROW).details,
        [
            "The licence check failed: Licence OD-100001 is an evaluation licence. Online \
             Desktop needs a full licence; ask your dealer for one.",
            LICENCE_FIX
        ],
        "{}",
        connect.run
    );
    // An evaluation licence is not an evaluation installation.
    assert_eq!(connect.unmet_rows(), [(FAILED, LICENCE_ROW)]);
    connect.assert_refused(1);
}

#[test]
fn an_expired_service_agreement_is_refused() {
    let service = shared_service();
    let host = Host::with_demo(&service);
    let file = host.issue(
        "expired.licence",
        &["--issued-on", "2019-02-01", "--valid-until", "2020-01-31"],
    );
    host.ok(&["licence", "add", &file]);
    host.ok(&["licence", "bind", "--company", "nordlys"]);

    let connect = host.connect(&[]);
    connect.assert_rule_fails(
        AGREEMENT_RULE,
        "The Standard service agreement ended on 2020-01-31. Renew it with your dealer, then \
         register the new licence file under Help → About → Administer licence information → \
         Add-on products → Online Desktop → Add.",
    );
    assert_eq!(connect.failed_rules(), [AGREEMENT_RULE]);
    connect
        .run
        .assert_line("Service agreement: Standard, valid until 2020-01-31; 5 online users");
    assert_eq!(connect.unmet_rows(), [(FAILED, LICENCE_ROW)]);
    connect.assert_refused(1);
}

#[test]
fn a_licence_without_service_agreement_is_refused() {
    let service = shared_service();
    let host = Host::with_demo(&service);
    let file = host.issue("no-agreement.licence", &["--no-agreement"]);
    host.ok(&["licence", "add", &file]);
    host.ok(&["licence", "bind", "--company", "nordlys"]);

    let connect = host.connect(&[]);
    connect.assert_rule_fails(
        AGREEMENT_RULE,
        "Licence OD-100001 has no service agreement. Online Desktop needs one; ask your dealer \
         for a service agreement and a new licence file.",
    );
    assert_eq!(connect.failed_rules(), [AGREEMENT_RULE]);
    connect.run.assert_line("Service agreement: none");
    connect.assert_refused(1);

    let settings = host.run(&["settings"]);
    settings.assert_code(0);
    settings.assert_line("OD-100001 · no service agreement · 5 online users");
    settings.assert_line("The licence check does not pass (see Connect to Online Desktop).");
}

#[test]
fn a_changed_licence_is_refused() {
    let service = shared_service();
    let host = Host::with_demo(&service);
    let file = host.issue("nordlys.licence", &[]);

    // Change the licensee's name inside the signed payload.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let payload = document["payload"].as_str().unwrap().to_owned();
    assert!(payload.contains(r#""licensee_name":"Nordlys Handel AS""#));
    document["payload"] = payload
        .replace("Nordlys Handel AS", "Nordlys Handel ASA")
        .into();
    let changed = host.path("changed.licence");
    std::fs::write(&changed, serde_json::to_string_pretty(&document).unwrap()).unwrap();

    // Registering it warns but stores it; the plugin refuses it.
    let out = host.ok(&["licence", "add", changed.to_str().unwrap()]);
    assert!(
        out.contains(
            "Warning: The licence document has been changed after it was issued (its signature \
             does not match). Ask your dealer for a new licence file."
        ),
        "{out}"
    );
    host.ok(&["licence", "bind", "--company", "nordlys"]);

    let connect = host.connect(&[]);
    connect.assert_rule_fails(
        GENUINE_RULE,
        "Licence OD-100001: The licence document has been changed after it was issued (its \
         signature does not match). Ask your dealer for a new licence file.",
    );
    assert_eq!(connect.failed_rules(), [GENUINE_RULE]);
    assert_eq!(connect.unmet_rows(), [(FAILED, LICENCE_ROW)]);
    connect.assert_refused(1);

    // The original file is accepted again (a renewal replaces it).
    host.ok(&["licence", "add", &file]);
    host.connect(&[]).assert_available();
}

#[test]
fn a_second_company_cannot_be_bound() {
    let service = shared_service();
    let host = Host::licensed(&service);
    let out = host.ok(&["company", "add", "Fjord Test AS"]);
    assert!(out.contains("Created the company database"), "{out}");

    let error = host.fails(&["licence", "bind", "--company", "fjord"]);
    let nordlys = host.company_id("nordlys");
    assert_eq!(
        error.trim_end(),
        format!(
            "Error: Online Desktop is already registered for company \u{201c}Nordlys Handel \
             AS\u{201d} (id {nordlys}). One system database can have Online Desktop for one \
             company only; more companies need a different licence."
        )
    );
    // Nothing changed: the demo company still has Online Desktop, and the
    // new one is still refused by the licence check.
    host.connect(&["--company", "nordlys"]).assert_available();
    let fjord = host.connect(&["--company", "fjord"]);
    assert_eq!(fjord.failed_rules(), [BOUND_RULE], "{}", fjord.run);
    assert_eq!(
        fjord.rule(BOUND_RULE).detail(),
        "Online Desktop is registered for company \u{201c}Nordlys Handel AS\u{201d}, not for \
         this company database (\u{201c}Fjord Test AS\u{201d}). One system database can have \
         Online Desktop for one company only; more companies need a different licence.",
        "{}",
        fjord.run
    );
    fjord.run.assert_code(3);
}

#[test]
fn an_evaluation_installation_is_refused() {
    let service = shared_service();
    let host = Host::licensed(&service);
    let before = host.connect(&[]);
    before.assert_available();

    let out = host.ok(&["installation", "set-evaluation", "on"]);
    assert!(
        out.contains("This is now an evaluation installation."),
        "{out}"
    );
    let evaluation = host.connect(&[]);
    assert_only_changed(&before, &evaluation, REAL_COMPANY_ROW, FAILED);
    evaluation.assert_row_fails(
        REAL_COMPANY_ROW,
        "This is an evaluation installation. Online Desktop needs a full installation: register \
         the full licence you bought.",
        "Help → About → Administer licence information (the full licence)",
    );
    evaluation.assert_refused(1);

    host.ok(&["installation", "set-evaluation", "off"]);
    let after = host.connect(&[]);
    assert_only_changed(&evaluation, &after, REAL_COMPANY_ROW, PASSED);
    after.assert_available();
}

/// PRODUCT.md §1.4: the plugin reads licence data when it is loaded, so a
/// binding change shows at the next start of the program — each `connect`
/// is one.
#[test]
fn a_binding_change_takes_effect_at_the_next_start() {
    let service = shared_service();
    let host = Host::licensed(&service);
    host.connect(&[]).assert_available();

    let out = host.ok(&["licence", "unbind", "--company", "nordlys"]);
    assert!(
        out.contains(
            "Online Desktop is no longer registered for \u{201c}Nordlys Handel AS\u{201d}."
        ),
        "{out}"
    );
    assert!(out.contains(RESTART), "{out}");
    let unbound = host.connect(&[]);
    unbound.assert_rule_fails(
        BOUND_RULE,
        "Online Desktop is not registered for this company database. Register it under Help → \
         About → Administer licence information → Add-on products → Online Desktop → Add, \
         choose this company database, then restart the program.",
    );
    assert_eq!(unbound.failed_rules(), [BOUND_RULE]);
    unbound.assert_refused(1);

    // With the demo company unbound, another company may have it.
    host.ok(&["company", "add", "Fjord Test AS"]);
    let out = host.ok(&["licence", "bind", "--company", "fjord"]);
    assert!(out.contains(RESTART), "{out}");
    let fjord = host.connect(&["--company", "fjord"]);
    assert!(fjord.failed_rules().is_empty(), "{}", fjord.run);
    assert_eq!(fjord.row(LICENCE_ROW).mark, PASSED, "{}", fjord.run);
    // The new company has only its name registered.
    fjord.assert_row_fails(
        REGISTRATION_ROW,
        "Missing: street, postcode, city, country, phone, e-mail, organisation number.",
        "View → Settings → Company → Company information",
    );
    fjord.assert_refused(1);

    // And back: the demo company is green again at its next start.
    host.ok(&["licence", "unbind", "--company", "fjord"]);
    host.ok(&["licence", "bind", "--company", "nordlys"]);
    host.connect(&["--company", "nordlys"]).assert_available();
}

// ---------------------------------------------------------------------------
// 3. Company settings → Online Desktop.

#[test]
fn settings_show_status_licence_and_trace_log() {
    let service = shared_service();
    let host = Host::licensed(&service);
    let run = host.run(&["settings"]);
    run.assert_code(0);
    assert!(run.stderr.is_empty(), "{run}");
    run.assert_line("Company settings → Online Desktop — Nordlys Handel AS");
    run.assert_line("Requirement status: all requirements are met");
    run.assert_line("Connected: no");
    run.assert_line("Connect: available");
    run.assert_line("Connected by: -");
    run.assert_line(
        "OD-100001 · Standard service agreement, valid until 2099-12-31 · 5 online users",
    );
    run.assert_line(STANDARD_MODULES);
    run.assert_line("Sync computer: not chosen yet (chosen when connecting). Installed computers:");
    run.assert_line("- OFFICE-SERVER (holds the system database; recommended)");
    run.assert_line("- LAPTOP-LARS");

    let trace_log = host
        .data_dir()
        .join("online-desktop")
        .join(host.computer_id())
        .join(host.company_id("nordlys"))
        .join("trace.log");
    run.assert_line(&format!("Trace log: {}", trace_log.display()));
    let log = std::fs::read_to_string(&trace_log)
        .unwrap_or_else(|e| panic!("the trace log {}: {e}", trace_log.display()));
    let has = |text: &str| log.lines().any(|l| l.contains(text));
    assert!(has("Online Desktop plugin "), "{log}");
    assert!(has(r#"licence="OD-100001""#), "{log}");
    assert!(
        has(&format!("online service {}/ is reachable", service.url)),
        "{log}"
    );
    assert!(has("Online Desktop plugin stopped"), "{log}");
}

#[test]
fn settings_list_the_requirements_not_met() {
    let service = shared_service();
    let host = Host::with_demo(&service);
    let run = host.run(&["settings", "--user", "lars"]);
    // Showing the settings is not an error, whatever they show.
    run.assert_code(0);
    run.assert_line("Requirement status: 2 not met");
    run.assert_line(&format!("✘ {LICENCE_ROW}"));
    run.assert_line(&format!("✘ {SUPER_USER_ROW}"));
    run.assert_line("Connected: no");
    run.assert_line("Connect: not available until every requirement is met");
    run.assert_line("No Online Desktop licence is registered.");
    run.assert_line("The licence check does not pass (see Connect to Online Desktop).");
    assert!(!run.stdout.contains("Online modules:"), "{run}");
    assert!(run.stdout.contains("Trace log: "), "{run}");
}

// ---------------------------------------------------------------------------
// 4. Loading the plugin.

#[test]
fn a_missing_add_on_library_says_how_to_build_it() {
    let service = shared_service();
    let host = Host::licensed(&service);
    let missing = host.path("no-such-folder").join("libonline_desktop.so");
    for command in ["connect", "settings"] {
        let run = host.run(&[command, "--plugin", missing.to_str().unwrap()]);
        run.assert_code(1);
        assert!(
            run.stderr.starts_with(&format!(
                "Error: The Online Desktop add-on was not found at {}.",
                missing.display()
            )),
            "{run}"
        );
        assert!(
            run.stderr.contains(
                "Build it with `cargo build -p online-desktop`, or say where it is with \
                 --plugin or OD_PLUGIN_PATH."
            ),
            "{run}"
        );
    }
}

/// A shared library of the system that is certainly not our add-on.
fn foreign_library() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if cfg!(target_os = "linux") {
        if let Ok(out) = Command::new("ldconfig").arg("-p").output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let line = line.trim();
                if ["libz.so.1 ", "libm.so.6 "]
                    .iter()
                    .any(|name| line.starts_with(name))
                {
                    if let Some((_, path)) = line.split_once(" => ") {
                        candidates.push(PathBuf::from(path.trim()));
                    }
                }
            }
        }
        for dir in [
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib64",
            "/usr/lib64",
        ] {
            candidates.push(Path::new(dir).join("libz.so.1"));
            candidates.push(Path::new(dir).join("libm.so.6"));
        }
    } else if cfg!(target_os = "macos") {
        candidates.push("/usr/lib/libz.dylib".into());
    } else if cfg!(windows) {
        candidates.push(r"C:\Windows\System32\version.dll".into());
    }
    candidates.into_iter().find(|p| p.is_file())
}

#[test]
fn a_library_that_is_not_the_add_on_is_refused() {
    let Some(library) = foreign_library() else {
        eprintln!("skipped: no system shared library found to load");
        return;
    };
    let service = shared_service();
    let host = Host::licensed(&service);
    let run = host.run(&["connect", "--plugin", library.to_str().unwrap()]);
    // Refused with a message, not a crash (a signal has no exit code).
    run.assert_code(1);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "Error: {} is not an Online Desktop add-on (it has no entry point `od_entry`).",
            library.display()
        ),
        "{run}"
    );
    assert!(!run.stdout.contains("Requirements for connecting"), "{run}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let service = shared_service();
    let host = Host::licensed(&service);
    let fake = host.path(&format!(
        "{}online_desktop{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::write(&fake, "this is not a library\n").unwrap();
    for command in ["connect", "settings", "lifecycle"] {
        let run = host.run(&[command, "--plugin", fake.to_str().unwrap()]);
        run.assert_code(1);
        assert!(
            run.stderr.starts_with(&format!(
                "Error: The Online Desktop add-on could not be loaded from {}: ",
                fake.display()
            )),
            "{run}"
        );
        // Regression: the build hint was shown for a file that exists but
        // is not a library, where building would not help.
        assert!(!run.stderr.contains("Build it with"), "{run}");
    }
}
