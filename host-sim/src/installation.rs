//! An installation of the host on disk: the data directory with its system
//! database and company database files, and finding things in it by the
//! names people type.

use std::path::{Path, PathBuf};

use rusqlite::Transaction;

use crate::db::company::{CompanyDb, CompanyInfo, Registration};
use crate::db::system::{Company, Computer, SystemDb};
use crate::error::{HostError, Result};
use crate::text::slug;

/// File name of the system database inside the data directory.
pub const SYSTEM_DB_FILE: &str = "system.db";
/// Folder (inside the data directory) holding the company database files.
pub const COMPANIES_DIR: &str = "companies";
/// Folder (inside the data directory) holding the add-on's local folders.
pub const ADD_ON_DIR: &str = "online-desktop";

/// Paths inside a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn system_db(&self) -> PathBuf {
        self.root.join(SYSTEM_DB_FILE)
    }

    pub fn companies(&self) -> PathBuf {
        self.root.join(COMPANIES_DIR)
    }

    pub fn company_db(&self, file: &str) -> PathBuf {
        self.companies().join(file)
    }

    /// Whether an installation (a system database) exists here.
    pub fn has_installation(&self) -> bool {
        self.system_db().is_file()
    }

    /// The add-on's local folder for `company_id` on the computer
    /// `computer_id` (its state, connection and trace log). Each computer
    /// has its own, as on a real installation, where the add-on folder is
    /// on the computer's own disk and only the databases are shared.
    pub fn add_on_folder(&self, computer_id: &str, company_id: &str) -> PathBuf {
        self.root
            .join(ADD_ON_DIR)
            .join(computer_id)
            .join(company_id)
    }

    /// [`DataDir::add_on_folder`], after moving a folder of the old layout
    /// (`online-desktop/<company id>`, one per company, made before each
    /// computer had its own) to the computer that holds the system
    /// database, which is the computer the old layout served by default.
    pub fn add_on_folder_moving_old(
        &self,
        computer: &Computer,
        company_id: &str,
    ) -> Result<PathBuf> {
        let folder = self.add_on_folder(&computer.id, company_id);
        let old = self.root.join(ADD_ON_DIR).join(company_id);
        if computer.holds_system_database && old.is_dir() && !folder.exists() {
            let moved = folder
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::rename(&old, &folder));
            moved.map_err(|e| {
                HostError::io(
                    format!(
                        "moving the add-on folder {} to {}",
                        old.display(),
                        folder.display()
                    ),
                    e,
                )
            })?;
        }
        Ok(folder)
    }
}

/// An opened installation.
#[derive(Debug)]
pub struct Installation {
    dir: DataDir,
    system: SystemDb,
}

impl Installation {
    /// Opens the installation in `root`, which must have been created by
    /// `host-sim init`.
    pub fn open(root: &Path) -> Result<Self> {
        let dir = DataDir::new(root);
        if !dir.has_installation() {
            return Err(HostError::NoInstallation(root.to_path_buf()));
        }
        let system = SystemDb::open(&dir.system_db())?;
        Ok(Installation { dir, system })
    }

    /// Wraps a system database that was just created in `dir`.
    pub fn from_parts(dir: DataDir, system: SystemDb) -> Self {
        Installation { dir, system }
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    pub fn system(&self) -> &SystemDb {
        &self.system
    }

    pub fn system_mut(&mut self) -> &mut SystemDb {
        &mut self.system
    }

    pub fn open_company_db(&self, company: &Company) -> Result<CompanyDb> {
        let path = self.dir.company_db(&company.file);
        if !path.is_file() {
            return Err(HostError::NotAllowed(format!(
                "The database file of {} ({}) is missing.",
                company.name,
                path.display()
            )));
        }
        CompanyDb::open(&path)
    }

    /// Creates a new company database file, lets `fill` load its records,
    /// and lists it in the system database. The company gets a new random
    /// id, as a real installation's company would.
    pub fn create_company<T>(
        &self,
        name: &str,
        is_sample: bool,
        registration: Registration,
        fill: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<(Company, T)> {
        let name = name.trim();
        if name.is_empty() {
            return Err(HostError::InvalidInput(
                "A company database needs a name.".into(),
            ));
        }
        let existing = self.system.companies()?;
        if let Some(same) = existing
            .iter()
            .find(|c| c.name.to_lowercase() == name.to_lowercase())
        {
            return Err(HostError::NotAllowed(format!(
                "A company database called \u{201c}{}\u{201d} already exists.",
                same.name
            )));
        }
        let companies_dir = self.dir.companies();
        std::fs::create_dir_all(&companies_dir).map_err(|e| {
            HostError::io(format!("Could not create {}", companies_dir.display()), e)
        })?;
        let base = slug(name);
        let file = (1..)
            .map(|n| match n {
                1 => format!("{base}.db"),
                n => format!("{base}-{n}.db"),
            })
            .find(|file| {
                !self.dir.company_db(file).exists() && existing.iter().all(|c| &c.file != file)
            })
            .unwrap_or_else(|| format!("{base}.db"));
        let company = Company {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            file,
            is_sample,
            online_desktop_connected: false,
        };
        let info = CompanyInfo {
            id: company.id.clone(),
            is_sample,
            currency: "NOK".into(),
            registration,
        };
        let path = self.dir.company_db(&company.file);
        let created = CompanyDb::create_with(&path, &info, fill)
            .and_then(|(_, filled)| self.system.add_company(&company).map(|()| filled));
        match created {
            Ok(filled) => Ok((company, filled)),
            Err(error) => {
                // A half-made file would be picked up by the next attempt.
                let _ = std::fs::remove_file(&path);
                Err(error)
            }
        }
    }

    /// Finds a company database by id or name (see [`find_by_name_or_id`]).
    pub fn find_company(&self, query: &str) -> Result<Company> {
        let companies = self.system.companies()?;
        find_by_name_or_id(&companies, query, "company database", |c| {
            (c.id.as_str(), c.name.as_str())
        })
        .cloned()
    }

    /// The company named by `query`, or when none is named, the only
    /// company database that is not the sample database.
    pub fn company_or_default(&self, query: Option<&str>) -> Result<Company> {
        if let Some(query) = query {
            return self.find_company(query);
        }
        let companies = self.system.companies()?;
        let mut candidates = companies.iter().filter(|c| !c.is_sample);
        match (candidates.next(), candidates.next()) {
            (Some(only), None) => Ok(only.clone()),
            _ => Err(HostError::InvalidInput(format!(
                "Choose a company database with --company. Company databases: {}.",
                names(companies.iter().map(|c| c.name.as_str()))
            ))),
        }
    }

    /// Finds an installed computer by id or name.
    pub fn find_computer(&self, query: &str) -> Result<Computer> {
        let computers = self.system.computers()?;
        find_by_name_or_id(&computers, query, "computer", |c| {
            (c.id.as_str(), c.name.as_str())
        })
        .cloned()
    }

    /// The computer named by `query`, or when none is named, the computer
    /// that holds the system database.
    pub fn computer_or_default(&self, query: Option<&str>) -> Result<Computer> {
        if let Some(query) = query {
            return self.find_computer(query);
        }
        self.system
            .computers()?
            .into_iter()
            .find(|c| c.holds_system_database)
            .ok_or_else(|| {
                HostError::InvalidInput(
                    "No computer holds the system database. Choose one with --computer, or set one with `host-sim computer set-system-db-holder`.".into(),
                )
            })
    }
}

/// Finds the one item that `query` names, trying in turn: the exact id, the
/// exact name (ignoring case), then a unique beginning of the name or of the
/// id (ignoring case). Several matches give [`HostError::Ambiguous`].
pub fn find_by_name_or_id<'a, T>(
    items: &'a [T],
    query: &str,
    kind: &'static str,
    key: impl Fn(&T) -> (&str, &str),
) -> Result<&'a T> {
    let query = query.trim();
    let wanted = query.to_lowercase();
    if let Some(item) = items.iter().find(|item| key(item).0 == query) {
        return Ok(item);
    }
    if let Some(item) = items
        .iter()
        .find(|item| key(item).1.to_lowercase() == wanted)
    {
        return Ok(item);
    }
    let matches: Vec<&T> = if wanted.is_empty() {
        Vec::new()
    } else {
        items
            .iter()
            .filter(|item| {
                let (id, name) = key(item);
                name.to_lowercase().starts_with(&wanted) || id.to_lowercase().starts_with(&wanted)
            })
            .collect()
    };
    match matches.as_slice() {
        [only] => Ok(only),
        [] => Err(HostError::NotFound {
            kind,
            query: query.to_owned(),
            hint: if items.is_empty() {
                String::new()
            } else {
                format!(" Known: {}.", names(items.iter().map(|item| key(item).1)))
            },
        }),
        several => Err(HostError::Ambiguous {
            kind,
            query: query.to_owned(),
            matches: several
                .iter()
                .map(|item| {
                    let (id, name) = key(item);
                    format!("{name} (id {id})")
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<(String, String)> {
        vec![
            ("a1b2".into(), "Nordlys Handel AS".into()),
            ("c3d4".into(), "Nordic Test AB".into()),
            ("e5f6".into(), "Sample Company".into()),
        ]
    }

    fn find<'a>(items: &'a [(String, String)], query: &str) -> Result<&'a (String, String)> {
        find_by_name_or_id(items, query, "company database", |(id, name)| {
            (id.as_str(), name.as_str())
        })
    }

    #[test]
    fn finds_by_exact_id_name_and_unique_prefix() {
        let items = items();
        assert_eq!(find(&items, "c3d4").unwrap().1, "Nordic Test AB");
        assert_eq!(find(&items, "sample company").unwrap().0, "e5f6");
        assert_eq!(find(&items, "nordl").unwrap().0, "a1b2");
        assert_eq!(find(&items, "E5").unwrap().1, "Sample Company");
    }

    #[test]
    fn explains_ambiguity_with_names_and_ids() {
        let items = items();
        let message = find(&items, "nord").unwrap_err().to_string();
        assert!(
            message.contains("matches more than one company database"),
            "{message}"
        );
        assert!(message.contains("Nordlys Handel AS (id a1b2)"), "{message}");
        assert!(message.contains("Nordic Test AB (id c3d4)"), "{message}");
    }

    #[test]
    fn unknown_name_lists_what_exists() {
        let items = items();
        let message = find(&items, "Acme").unwrap_err().to_string();
        assert!(
            message.contains("There is no company database \u{201c}Acme\u{201d}"),
            "{message}"
        );
        assert!(message.contains("Sample Company"), "{message}");
        assert!(find(&items, "").is_err());
    }
}
