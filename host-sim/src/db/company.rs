//! A company database: the company's identity and registration data, and
//! its business records (contacts, products, employees, sales, ...).
//!
//! Conventions: integer primary keys; dates are ISO 8601 text
//! (`YYYY-MM-DD`); money is integer cents (`*_cents`, in the company's
//! currency) so sums are exact; quantities and percentages are REAL.

use std::fmt;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::error::{HostError, Result};

// CHECK constraints spell out `a = x OR a = y` rather than `a IN (x, y)`:
// SQLite builds a temporary index for an IN list on every row it checks,
// which tripled the time to load activities.
const TABLES: &str = "
-- Exactly one row: who this company database is.
CREATE TABLE company_info (
    id                  TEXT PRIMARY KEY,
    is_sample           INTEGER NOT NULL DEFAULT 0,
    currency            TEXT NOT NULL DEFAULT 'NOK',
    name                TEXT,
    street              TEXT,
    postcode            TEXT,
    city                TEXT,
    country             TEXT,
    phone               TEXT,
    email               TEXT,
    organisation_number TEXT
);

CREATE TABLE employees (
    id         INTEGER PRIMARY KEY,
    number     INTEGER NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name  TEXT NOT NULL,
    title      TEXT,
    email      TEXT,
    phone      TEXT,
    hired_on   TEXT
);

CREATE TABLE contacts (
    id                   INTEGER PRIMARY KEY,
    number               INTEGER NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    is_customer          INTEGER NOT NULL DEFAULT 1,
    is_supplier          INTEGER NOT NULL DEFAULT 0,
    organisation_number  TEXT,
    street               TEXT,
    postcode             TEXT,
    city                 TEXT,
    country              TEXT,
    phone                TEXT,
    email                TEXT,
    website              TEXT,
    payment_terms_days   INTEGER NOT NULL DEFAULT 14,
    our_employee_id      INTEGER REFERENCES employees(id),
    created_on           TEXT NOT NULL
);

CREATE TABLE contact_persons (
    id         INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    first_name TEXT NOT NULL,
    last_name  TEXT NOT NULL,
    title      TEXT,
    phone      TEXT,
    email      TEXT
);

CREATE TABLE products (
    id             INTEGER PRIMARY KEY,
    number         TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    unit           TEXT NOT NULL,
    price_cents    INTEGER NOT NULL,
    cost_cents     INTEGER NOT NULL,
    vat_percent    INTEGER NOT NULL DEFAULT 25,
    stock_quantity REAL,
    is_active      INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE projects (
    id                  INTEGER PRIMARY KEY,
    number              INTEGER NOT NULL UNIQUE,
    name                TEXT NOT NULL,
    contact_id          INTEGER REFERENCES contacts(id),
    manager_employee_id INTEGER REFERENCES employees(id),
    status              TEXT NOT NULL
        CHECK (status = 'planned' OR status = 'active' OR status = 'completed' OR status = 'cancelled'),
    start_date          TEXT,
    end_date            TEXT,
    budget_cents        INTEGER
);

CREATE TABLE activities (
    id                INTEGER PRIMARY KEY,
    kind              TEXT NOT NULL
        CHECK (kind = 'call' OR kind = 'meeting' OR kind = 'email' OR kind = 'task' OR kind = 'note'),
    subject           TEXT NOT NULL,
    contact_id        INTEGER REFERENCES contacts(id),
    contact_person_id INTEGER REFERENCES contact_persons(id),
    employee_id       INTEGER REFERENCES employees(id),
    project_id        INTEGER REFERENCES projects(id),
    date              TEXT NOT NULL,
    duration_minutes  INTEGER,
    done              INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE sales_documents (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL
        CHECK (kind = 'quote' OR kind = 'order' OR kind = 'invoice' OR kind = 'credit_note'),
    number        INTEGER NOT NULL,
    contact_id    INTEGER NOT NULL REFERENCES contacts(id),
    employee_id   INTEGER REFERENCES employees(id),
    project_id    INTEGER REFERENCES projects(id),
    document_date TEXT NOT NULL,
    due_date      TEXT,
    status        TEXT NOT NULL,
    currency      TEXT NOT NULL DEFAULT 'NOK',
    net_cents     INTEGER NOT NULL DEFAULT 0,
    vat_cents     INTEGER NOT NULL DEFAULT 0,
    total_cents   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (kind, number)
);

CREATE TABLE sales_lines (
    id               INTEGER PRIMARY KEY,
    document_id      INTEGER NOT NULL REFERENCES sales_documents(id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    product_id       INTEGER REFERENCES products(id),
    description      TEXT NOT NULL,
    quantity         REAL NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    discount_percent REAL NOT NULL DEFAULT 0,
    amount_cents     INTEGER NOT NULL,
    UNIQUE (document_id, line_no)
);
";

/// Secondary indexes, created after bulk loading (building them once is
/// much faster than maintaining them row by row). They serve the ways the
/// data is navigated: from a contact to its people, activities, projects
/// and documents, from an employee to their work, from a product to the
/// lines that sold it, and documents by date. Building them is about a
/// third of the generation time, so references nobody navigates by (an
/// activity's project, a document's employee) have none.
const INDEXES: &str = "
CREATE INDEX contact_persons_contact ON contact_persons (contact_id);
CREATE INDEX projects_contact ON projects (contact_id);
CREATE INDEX projects_manager ON projects (manager_employee_id);
CREATE INDEX activities_contact ON activities (contact_id);
CREATE INDEX activities_employee ON activities (employee_id);
CREATE INDEX sales_documents_contact ON sales_documents (contact_id);
CREATE INDEX sales_documents_date ON sales_documents (document_date);
CREATE INDEX sales_lines_product ON sales_lines (product_id);
";

/// The tables holding business records, in the order they are filled.
pub const RECORD_TABLES: [&str; 8] = [
    "employees",
    "contacts",
    "contact_persons",
    "products",
    "projects",
    "activities",
    "sales_documents",
    "sales_lines",
];

/// One field of the company's registration data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationField {
    Name,
    Street,
    Postcode,
    City,
    Country,
    Phone,
    Email,
    OrganisationNumber,
}

impl RegistrationField {
    pub const ALL: [RegistrationField; 8] = [
        RegistrationField::Name,
        RegistrationField::Street,
        RegistrationField::Postcode,
        RegistrationField::City,
        RegistrationField::Country,
        RegistrationField::Phone,
        RegistrationField::Email,
        RegistrationField::OrganisationNumber,
    ];

    /// The column in `company_info` (also the key in the data channel).
    pub fn column(self) -> &'static str {
        match self {
            RegistrationField::Name => "name",
            RegistrationField::Street => "street",
            RegistrationField::Postcode => "postcode",
            RegistrationField::City => "city",
            RegistrationField::Country => "country",
            RegistrationField::Phone => "phone",
            RegistrationField::Email => "email",
            RegistrationField::OrganisationNumber => "organisation_number",
        }
    }

    /// How the host's company settings label the field.
    pub fn label(self) -> &'static str {
        match self {
            RegistrationField::Name => "Company name",
            RegistrationField::Street => "Street address",
            RegistrationField::Postcode => "Postcode",
            RegistrationField::City => "City",
            RegistrationField::Country => "Country",
            RegistrationField::Phone => "Phone",
            RegistrationField::Email => "E-mail",
            RegistrationField::OrganisationNumber => "Organisation number",
        }
    }
}

/// The company's registration data; `None` means the field is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registration {
    pub name: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub organisation_number: Option<String>,
}

impl Registration {
    pub fn get(&self, field: RegistrationField) -> Option<&str> {
        let value = match field {
            RegistrationField::Name => &self.name,
            RegistrationField::Street => &self.street,
            RegistrationField::Postcode => &self.postcode,
            RegistrationField::City => &self.city,
            RegistrationField::Country => &self.country,
            RegistrationField::Phone => &self.phone,
            RegistrationField::Email => &self.email,
            RegistrationField::OrganisationNumber => &self.organisation_number,
        };
        value.as_deref()
    }

    /// The fields that are empty.
    pub fn missing(&self) -> Vec<RegistrationField> {
        RegistrationField::ALL
            .into_iter()
            .filter(|field| self.get(*field).is_none())
            .collect()
    }
}

/// The single `company_info` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyInfo {
    pub id: String,
    pub is_sample: bool,
    pub currency: String,
    pub registration: Registration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub id: i64,
    pub number: i64,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

impl Employee {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

impl fmt::Display for Employee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} (no. {})",
            self.first_name, self.last_name, self.number
        )
    }
}

/// What is needed to add an employee.
#[derive(Debug, Clone, Default)]
pub struct NewEmployee {
    /// `None` takes the next free number.
    pub number: Option<i64>,
    pub first_name: String,
    pub last_name: String,
    pub title: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// An open company database.
#[derive(Debug)]
pub struct CompanyDb {
    conn: Connection,
}

impl CompanyDb {
    /// Creates a company database at `path` (which must not exist), lets
    /// `fill` load its records in one transaction, then builds the indexes.
    ///
    /// While `fill` runs the file has no journal and is not synced: a crash
    /// leaves a half-written file, which is acceptable for a file that did
    /// not exist before and is recreated by running the command again.
    pub fn create_with<T>(
        path: &Path,
        info: &CompanyInfo,
        fill: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<(CompanyDb, T)> {
        let mut conn = super::create_new(path)?;
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        // Records are generated consistent; checking every reference row by
        // row would double the load time.
        conn.pragma_update(None, "foreign_keys", false)?;
        conn.pragma_update(None, "cache_size", -262_144)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.execute_batch(TABLES)?;

        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO company_info (id, is_sample, currency, name, street, postcode, city,
                                       country, phone, email, organisation_number)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                info.id,
                info.is_sample,
                info.currency,
                info.registration.name,
                info.registration.street,
                info.registration.postcode,
                info.registration.city,
                info.registration.country,
                info.registration.phone,
                info.registration.email,
                info.registration.organisation_number,
            ],
        )?;
        let filled = fill(&tx)?;
        tx.commit()?;

        conn.execute_batch(INDEXES)?;
        conn.pragma_update(None, "journal_mode", "DELETE")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // After the bulk load: the generated rows are not logged (the first
        // sync reads whole tables), and loading stays as fast as before.
        crate::sync::tracking::install(&conn)?;
        Ok((CompanyDb { conn }, filled))
    }

    /// Opens a company database, adding change tracking to one made
    /// before it existed.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = super::open_existing(path)?;
        crate::sync::tracking::migrate(&conn)?;
        Ok(CompanyDb { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn info(&self) -> Result<CompanyInfo> {
        Ok(self.conn.query_row(
            "SELECT id, is_sample, currency, name, street, postcode, city, country, phone,
                    email, organisation_number
             FROM company_info",
            [],
            |row| {
                Ok(CompanyInfo {
                    id: row.get(0)?,
                    is_sample: row.get(1)?,
                    currency: row.get(2)?,
                    registration: Registration {
                        name: row.get(3)?,
                        street: row.get(4)?,
                        postcode: row.get(5)?,
                        city: row.get(6)?,
                        country: row.get(7)?,
                        phone: row.get(8)?,
                        email: row.get(9)?,
                        organisation_number: row.get(10)?,
                    },
                })
            },
        )?)
    }

    /// Sets registration fields; `None` (or text that is only blanks) clears
    /// the field.
    pub fn set_registration(
        &mut self,
        changes: &[(RegistrationField, Option<&str>)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (field, value) in changes {
            let value = value.map(str::trim).filter(|v| !v.is_empty());
            if *field == RegistrationField::Email {
                check_email(value)?;
            }
            // The column name comes from a fixed list, never from the user.
            let sql = format!("UPDATE company_info SET {} = ?1", field.column());
            tx.execute(&sql, params![value])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Number of rows in each record table, in [`RECORD_TABLES`] order.
    pub fn record_counts(&self) -> Result<Vec<(&'static str, u64)>> {
        RECORD_TABLES
            .iter()
            .map(|table| {
                let sql = format!("SELECT COUNT(*) FROM {table}");
                let count: i64 = self.conn.query_row(&sql, [], |row| row.get(0))?;
                Ok((*table, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }

    // --- employees --------------------------------------------------------

    /// All employees, sorted by number.
    pub fn employees(&self) -> Result<Vec<Employee>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, number, first_name, last_name, title, email, phone
             FROM employees ORDER BY number",
        )?;
        let rows = stmt.query_map([], employee_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn employee(&self, id: i64) -> Result<Option<Employee>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, number, first_name, last_name, title, email, phone
                 FROM employees WHERE id = ?1",
                params![id],
                employee_from_row,
            )
            .optional()?)
    }

    pub fn employee_by_number(&self, number: i64) -> Result<Employee> {
        self.conn
            .query_row(
                "SELECT id, number, first_name, last_name, title, email, phone
                 FROM employees WHERE number = ?1",
                params![number],
                employee_from_row,
            )
            .optional()?
            .ok_or_else(|| HostError::NotFound {
                kind: "employee with the number",
                query: number.to_string(),
                hint: " See `host-sim employee list`.".into(),
            })
    }

    pub fn add_employee(&self, new: &NewEmployee) -> Result<Employee> {
        let first_name = new.first_name.trim();
        let last_name = new.last_name.trim();
        if first_name.is_empty() || last_name.is_empty() {
            return Err(HostError::InvalidInput(
                "An employee needs both a first name and a last name.".into(),
            ));
        }
        let number = match new.number {
            Some(number) => {
                if self.employee_by_number(number).is_ok() {
                    return Err(HostError::NotAllowed(format!(
                        "Employee number {number} is already in use."
                    )));
                }
                number
            }
            None => self.conn.query_row(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM employees",
                [],
                |row| row.get(0),
            )?,
        };
        check_email(
            new.email
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty()),
        )?;
        let blank_to_none = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        self.conn.execute(
            "INSERT INTO employees (number, first_name, last_name, title, email, phone)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                number,
                first_name,
                last_name,
                blank_to_none(&new.title),
                blank_to_none(&new.email),
                blank_to_none(&new.phone)
            ],
        )?;
        self.employee_by_number(number)
    }

    /// Sets (or with `None` or blanks, clears) an employee's e-mail address.
    pub fn set_employee_email(&self, number: i64, email: Option<&str>) -> Result<Employee> {
        let employee = self.employee_by_number(number)?;
        let email = email.map(str::trim).filter(|v| !v.is_empty());
        check_email(email)?;
        self.conn.execute(
            "UPDATE employees SET email = ?2 WHERE id = ?1",
            params![employee.id, email],
        )?;
        self.employee_by_number(number)
    }
}

/// Refuses text that cannot be an e-mail address (`None` is fine: the
/// field is being cleared). Deliberately loose: one `@` with something on
/// each side, a dot in the domain, no spaces.
fn check_email(email: Option<&str>) -> Result<()> {
    let Some(email) = email else {
        return Ok(());
    };
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(HostError::InvalidInput(format!(
            "\u{201c}{email}\u{201d} is not an e-mail address (expected something like name@example.no)."
        )))
    }
}

fn employee_from_row(row: &Row<'_>) -> rusqlite::Result<Employee> {
    Ok(Employee {
        id: row.get(0)?,
        number: row.get(1)?,
        first_name: row.get(2)?,
        last_name: row.get(3)?,
        title: row.get(4)?,
        email: row.get(5)?,
        phone: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(dir: &Path) -> CompanyDb {
        let info = CompanyInfo {
            id: "c-1".into(),
            is_sample: false,
            currency: "NOK".into(),
            registration: Registration {
                name: Some("Alfa AS".into()),
                ..Registration::default()
            },
        };
        let (db, ()) = CompanyDb::create_with(&dir.join("alfa.db"), &info, |_| Ok(())).unwrap();
        db
    }

    #[test]
    fn registration_fields_are_set_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = create(dir.path());
        assert_eq!(db.info().unwrap().registration.missing().len(), 7);
        db.set_registration(&[
            (RegistrationField::City, Some(" Bergen ")),
            (RegistrationField::Email, Some("post@alfa.no")),
        ])
        .unwrap();
        let registration = db.info().unwrap().registration;
        assert_eq!(registration.city.as_deref(), Some("Bergen"));
        assert_eq!(registration.email.as_deref(), Some("post@alfa.no"));
        db.set_registration(&[(RegistrationField::City, Some(""))])
            .unwrap();
        assert_eq!(db.info().unwrap().registration.city, None);
    }

    #[test]
    fn a_bad_e_mail_address_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = create(dir.path());
        let error = db
            .set_registration(&[
                (RegistrationField::City, Some("Bergen")),
                (RegistrationField::Email, Some("post at alfa")),
            ])
            .unwrap_err();
        assert!(
            error.to_string().contains("is not an e-mail address"),
            "{error}"
        );
        assert_eq!(db.info().unwrap().registration.city, None);
        for bad in ["a@b", "@alfa.no", "a b@alfa.no", "a@@alfa.no", "a@alfa."] {
            assert!(check_email(Some(bad)).is_err(), "{bad}");
        }
        assert!(check_email(Some("ola.nordmann@alfa.no")).is_ok());
    }

    #[test]
    fn employees_get_the_next_number_and_keep_it_unique() {
        let dir = tempfile::tempdir().unwrap();
        let db = create(dir.path());
        let new = |first: &str, number: Option<i64>| NewEmployee {
            number,
            first_name: first.into(),
            last_name: "Berg".into(),
            email: Some(" ".into()),
            ..NewEmployee::default()
        };
        assert_eq!(db.add_employee(&new("Anna", None)).unwrap().number, 1);
        assert_eq!(db.add_employee(&new("Bo", Some(10))).unwrap().number, 10);
        let third = db.add_employee(&new("Cato", None)).unwrap();
        assert_eq!((third.number, third.email), (11, None));
        let error = db.add_employee(&new("Dag", Some(10))).unwrap_err();
        assert!(error.to_string().contains("already in use"), "{error}");
        assert!(db.add_employee(&new(" ", None)).is_err());

        let anna = db.set_employee_email(1, Some("anna@alfa.no")).unwrap();
        assert_eq!(anna.email.as_deref(), Some("anna@alfa.no"));
        assert_eq!(db.set_employee_email(1, Some("")).unwrap().email, None);
        let error = db.set_employee_email(99, Some("x@alfa.no")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no employee with the number \u{201c}99\u{201d}"),
            "{error}"
        );
    }
}
