//! Creating the demo installation: a system database with users,
//! computers and an API integration, a demo company with generated
//! business records, and the small sample database.

mod names;
pub mod records;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::db::company::Registration;
use crate::db::system::{Company, EmployeeLink, SystemDb};
use crate::error::{HostError, Result};
use crate::installation::{DataDir, Installation};
use records::{Flavour, KeyPerson, RecordPlan};

/// Name of the demo company database.
pub const DEMO_COMPANY: &str = "Nordlys Handel AS";
/// Name of the sample database shipped for evaluation.
pub const SAMPLE_COMPANY: &str = "Sample Company";
/// Records in the sample database (always the same data).
pub const SAMPLE_RECORDS: u64 = 200;
const SAMPLE_SEED: u64 = 1;

/// The super user created by `init`.
pub const ADMIN_USER: &str = "admin";
/// The computer that holds the system database.
pub const SERVER_COMPUTER: &str = "OFFICE-SERVER";
pub const LAPTOP_COMPUTER: &str = "LAPTOP-LARS";
pub const WEBSHOP_INTEGRATION: &str = "Webshop Connector";

/// What `host-sim init` was asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Total business records in the demo company.
    pub records: u64,
    pub seed: u64,
    /// Replace an existing installation.
    pub force: bool,
    /// The day the generated history ends ("today" of the data).
    pub as_of: NaiveDate,
}

/// One generated company database.
#[derive(Debug, Clone)]
pub struct CompanySummary {
    pub company: Company,
    pub counts: Vec<(&'static str, u64)>,
    pub elapsed: Duration,
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct InitSummary {
    pub companies: Vec<CompanySummary>,
    pub users: usize,
    pub computers: usize,
    pub integrations: usize,
    pub elapsed: Duration,
}

/// Creates the demo installation in `root`.
pub fn init(root: &Path, options: &InitOptions) -> Result<(Installation, InitSummary)> {
    let started = Instant::now();
    let demo = demo_recipe(options);
    // Refuse a bad size before anything on disk is touched.
    demo.plan()?;
    let dir = DataDir::new(root);
    prepare_data_dir(&dir, options.force)?;
    let system = SystemDb::create(&dir.system_db(), false)?;
    let installation = Installation::from_parts(dir, system);

    let demo = generate_company(&installation, demo, options.as_of)?;
    let sample = generate_company(&installation, sample_recipe(), options.as_of)?;
    let demo_company = demo.company.clone();

    let system = installation.system();
    let admin = system.add_user(ADMIN_USER, true)?;
    system.link_employee(
        &admin.username,
        &EmployeeLink {
            company_id: demo_company.id.clone(),
            employee_id: 1,
        },
    )?;
    let lars = system.add_user("lars", false)?;
    system.link_employee(
        &lars.username,
        &EmployeeLink {
            company_id: demo_company.id.clone(),
            employee_id: 2,
        },
    )?;
    system.add_user("reception", false)?;

    let server = system.add_computer(&uuid::Uuid::new_v4().to_string(), SERVER_COMPUTER)?;
    system.add_computer(&uuid::Uuid::new_v4().to_string(), LAPTOP_COMPUTER)?;
    let mut installation = installation;
    installation
        .system_mut()
        .set_system_database_holder(&server)?;
    installation
        .system()
        .add_integration(WEBSHOP_INTEGRATION, &demo_company)?;

    let summary = InitSummary {
        companies: vec![demo, sample],
        users: 3,
        computers: 2,
        integrations: 1,
        elapsed: started.elapsed(),
    };
    Ok((installation, summary))
}

/// Makes sure `dir` can take a new installation, removing the old one when
/// `force` is set. Only the host's own files are removed.
fn prepare_data_dir(dir: &DataDir, force: bool) -> Result<()> {
    let companies = dir.companies();
    let has_company_files = std::fs::read_dir(&companies)
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false);
    if dir.has_installation() || has_company_files {
        if !force {
            return Err(HostError::InstallationExists(dir.root().to_path_buf()));
        }
        let system_db = dir.system_db();
        if system_db.exists() {
            std::fs::remove_file(&system_db).map_err(|e| {
                HostError::io(format!("Could not remove {}", system_db.display()), e)
            })?;
        }
        if companies.exists() {
            std::fs::remove_dir_all(&companies).map_err(|e| {
                HostError::io(format!("Could not remove {}", companies.display()), e)
            })?;
        }
    }
    std::fs::create_dir_all(&companies)
        .map_err(|e| HostError::io(format!("Could not create {}", companies.display()), e))
}

/// Everything that decides one generated company database.
struct CompanyRecipe {
    name: &'static str,
    is_sample: bool,
    registration: Registration,
    flavour: Flavour,
    records: u64,
    seed: u64,
}

fn demo_recipe(options: &InitOptions) -> CompanyRecipe {
    let registration = Registration {
        name: Some(DEMO_COMPANY.into()),
        street: Some("Storgata 12".into()),
        postcode: Some("0155".into()),
        city: Some("Oslo".into()),
        country: Some("Norway".into()),
        phone: Some("+47 22 33 44 55".into()),
        email: Some("post@nordlyshandel.no".into()),
        organisation_number: Some("923 456 783".into()),
    };
    let flavour = Flavour {
        email_domain: "nordlyshandel.no",
        phone_prefix: "+47",
        key_people: vec![
            KeyPerson {
                first_name: "Ingrid",
                last_name: "Solberg",
                title: "Managing Director",
                email: "ingrid.solberg@nordlyshandel.no",
                phone: "+47 912 34 567",
            },
            KeyPerson {
                first_name: "Lars",
                last_name: "Haugen",
                title: "Sales Manager",
                email: "lars.haugen@nordlyshandel.no",
                phone: "+47 934 56 789",
            },
        ],
    };
    CompanyRecipe {
        name: DEMO_COMPANY,
        is_sample: false,
        registration,
        flavour,
        records: options.records,
        seed: options.seed,
    }
}

fn sample_recipe() -> CompanyRecipe {
    let registration = Registration {
        name: Some("Eksempelfirma AS".into()),
        street: Some("Eksempelveien 1".into()),
        postcode: Some("0001".into()),
        city: Some("Oslo".into()),
        country: Some("Norway".into()),
        phone: Some("+47 00 00 00 00".into()),
        email: Some("post@eksempelfirma.no".into()),
        organisation_number: Some("918 463 720".into()),
    };
    let flavour = Flavour {
        email_domain: "eksempelfirma.no",
        phone_prefix: "+47",
        key_people: vec![
            KeyPerson {
                first_name: "Ola",
                last_name: "Nordmann",
                title: "Managing Director",
                email: "ola.nordmann@eksempelfirma.no",
                phone: "+47 900 00 001",
            },
            KeyPerson {
                first_name: "Kari",
                last_name: "Nordmann",
                title: "Accountant",
                email: "kari.nordmann@eksempelfirma.no",
                phone: "+47 900 00 002",
            },
        ],
    };
    CompanyRecipe {
        name: SAMPLE_COMPANY,
        is_sample: true,
        registration,
        flavour,
        records: SAMPLE_RECORDS,
        seed: SAMPLE_SEED,
    }
}

impl CompanyRecipe {
    fn plan(&self) -> Result<RecordPlan> {
        RecordPlan::for_total(self.records, self.flavour.key_people.len())
    }
}

fn generate_company(
    installation: &Installation,
    recipe: CompanyRecipe,
    as_of: NaiveDate,
) -> Result<CompanySummary> {
    let started = Instant::now();
    let plan = recipe.plan()?;
    let (company, ()) =
        installation.create_company(recipe.name, recipe.is_sample, recipe.registration, |tx| {
            records::fill(tx, &plan, &recipe.flavour, recipe.seed, as_of)
        })?;
    let counts = installation.open_company_db(&company)?.record_counts()?;
    Ok(CompanySummary {
        company,
        counts,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::company::RECORD_TABLES;

    fn options(records: u64, seed: u64) -> InitOptions {
        InitOptions {
            records,
            seed,
            force: false,
            as_of: NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        }
    }

    /// Every record of the demo company, as text.
    fn dump(installation: &Installation) -> Vec<String> {
        let company = installation.find_company(DEMO_COMPANY).unwrap();
        let db = installation.open_company_db(&company).unwrap();
        let mut rows = Vec::new();
        for table in RECORD_TABLES {
            let mut stmt = db
                .connection()
                .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
                .unwrap();
            let columns = stmt.column_count();
            let mut query = stmt.query([]).unwrap();
            while let Some(row) = query.next().unwrap() {
                let cells: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                    .collect();
                rows.push(format!("{table}: {}", cells.join(" | ")));
            }
        }
        rows
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let (first, _) = init(a.path(), &options(500, 3)).unwrap();
        let (second, _) = init(b.path(), &options(500, 3)).unwrap();
        let (third, _) = init(c.path(), &options(500, 4)).unwrap();
        assert_eq!(dump(&first).len(), 500);
        assert_eq!(dump(&first), dump(&second));
        assert_ne!(dump(&first), dump(&third));
    }

    #[test]
    fn generated_records_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let (installation, _) = init(dir.path(), &options(5_000, 11)).unwrap();
        let company = installation.find_company(DEMO_COMPANY).unwrap();
        let db = installation.open_company_db(&company).unwrap();
        let conn = db.connection();
        let broken_references: i64 = conn
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(broken_references, 0);
        let wrong_totals: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sales_documents d
                 WHERE net_cents != (SELECT COALESCE(SUM(amount_cents), 0)
                                     FROM sales_lines WHERE document_id = d.id)
                    OR total_cents != net_cents + vat_cents",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(wrong_totals, 0);
        let persons_elsewhere: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM activities a JOIN contact_persons p
                 ON p.id = a.contact_person_id WHERE p.contact_id != a.contact_id",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(persons_elsewhere, 0);
    }

    #[test]
    fn demo_installation_has_the_promised_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (installation, summary) = init(dir.path(), &options(1_000, 1)).unwrap();
        let system = installation.system();
        assert!(!system.evaluation_installation().unwrap());

        let total: u64 = summary.companies[0].counts.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 1_000);
        let companies = system.companies().unwrap();
        assert_eq!(companies.len(), 2);
        let sample = installation.find_company(SAMPLE_COMPANY).unwrap();
        assert!(sample.is_sample);
        let demo = installation.find_company(DEMO_COMPANY).unwrap();
        assert!(!demo.is_sample);
        let info = installation.open_company_db(&demo).unwrap().info().unwrap();
        assert_eq!(info.id, demo.id);
        assert!(info.registration.missing().is_empty());

        let users = system.users().unwrap();
        let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["admin", "lars", "reception"]);
        let admin = &users[0];
        assert!(admin.is_super_user);
        let link = admin.employee.as_ref().unwrap();
        assert_eq!(link.company_id, demo.id);
        let employee = installation
            .open_company_db(&demo)
            .unwrap()
            .employee(link.employee_id)
            .unwrap()
            .unwrap();
        assert_eq!(
            employee.email.as_deref(),
            Some("ingrid.solberg@nordlyshandel.no")
        );
        assert!(!users[1].is_super_user && users[1].employee.is_some());
        assert!(users[2].employee.is_none());

        let computers = system.computers().unwrap();
        assert_eq!(computers.len(), 2);
        assert_eq!(
            computers.iter().filter(|c| c.holds_system_database).count(),
            1
        );
        let integrations = system.integrations().unwrap();
        assert_eq!(integrations.len(), 1);
        assert!(!integrations[0].logged_in);
        assert!(system.sessions().unwrap().is_empty());
    }

    #[test]
    fn an_existing_installation_is_replaced_only_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = init(dir.path(), &options(20, 1)).unwrap();
        let old_id = first.find_company(DEMO_COMPANY).unwrap().id;
        drop(first);

        let error = init(dir.path(), &options(20, 1)).unwrap_err();
        assert!(matches!(error, HostError::InstallationExists(_)));

        // A size that cannot be made leaves the old installation alone.
        let mut too_small = options(3, 1);
        too_small.force = true;
        assert!(init(dir.path(), &too_small).is_err());
        let kept = Installation::open(dir.path()).unwrap();
        assert_eq!(kept.find_company(DEMO_COMPANY).unwrap().id, old_id);
        drop(kept);

        let mut forced = options(20, 1);
        forced.force = true;
        let (second, _) = init(dir.path(), &forced).unwrap();
        assert_ne!(second.find_company(DEMO_COMPANY).unwrap().id, old_id);
        assert_eq!(second.system().companies().unwrap().len(), 2);
    }
}
