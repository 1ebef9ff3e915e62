//! Bulk generation of a company's business records.
//!
//! Built for millions of rows in seconds: every table is filled through one
//! prepared statement inside the caller's transaction, text is formatted
//! into a few reused buffers, and dates are rendered once up front. The
//! output is fully determined by the seed and the "as of" date.
//!
//! Records that refer to a contact or a product need its name (e-mail
//! domains, line descriptions). Instead of keeping every name in memory, the
//! generator derives each contact's and product's shape from its own small
//! RNG seeded with its number, so it can be rebuilt wherever it is needed.

use std::fmt::Write as _;

use chrono::{Days, NaiveDate};
use rusqlite::{params, Transaction};

use super::names::{self, Country};
use crate::error::{HostError, Result};
use crate::text::push_ascii_lower;

/// Days of history the generated data covers, up to the "as of" date.
const HISTORY_DAYS: u64 = 3 * 365;
/// Days after the "as of" date that due dates and planned work can reach.
const FUTURE_DAYS: u64 = 120;
/// Value added tax on all generated sales, in percent.
const VAT_PERCENT: i64 = 25;

/// How many rows each table gets for a requested total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPlan {
    pub employees: i64,
    pub contacts: i64,
    pub contact_persons: i64,
    pub products: i64,
    pub projects: i64,
    pub activities: i64,
    pub sales_documents: i64,
    pub sales_lines: i64,
}

impl RecordPlan {
    /// The smallest total that still gives every kind of record.
    pub const MIN_TOTAL: u64 = 10;
    /// A generous upper limit that keeps a typo from filling the disk.
    pub const MAX_TOTAL: u64 = 100_000_000;

    /// Distributes `total` records the way a real company's data is spread:
    /// contacts ≈ 10 %, contact persons ≈ 15 %, products ≈ 5 %, a small
    /// staff, activities ≈ 20 %, projects ≈ 2 %, sales documents ≈ 10 %
    /// and sales lines the rest. The parts add up to exactly `total`.
    pub fn for_total(total: u64, key_people: usize) -> Result<Self> {
        if !(Self::MIN_TOTAL..=Self::MAX_TOTAL).contains(&total) {
            return Err(HostError::InvalidInput(format!(
                "The demo data can have from {} to {} records (asked for {total}).",
                Self::MIN_TOTAL,
                Self::MAX_TOTAL
            )));
        }
        let total = i64::try_from(total).unwrap_or(i64::MAX);
        let percent = |p: i64| total / 100 * p + total % 100 * p / 100;
        let employees = (total / 250).clamp((key_people as i64).max(2), 500);
        let contacts = percent(10).max(1);
        let contact_persons = percent(15).max(1);
        let products = percent(5).max(1);
        let projects = percent(2);
        let activities = percent(20);
        let sales_documents = percent(10).max(1);
        let fixed = employees
            + contacts
            + contact_persons
            + products
            + projects
            + activities
            + sales_documents;
        let sales_lines = total.checked_sub(fixed).ok_or_else(|| {
            HostError::InvalidInput(format!(
                "The demo data needs at least {fixed} records (asked for {total})."
            ))
        })?;
        Ok(RecordPlan {
            employees,
            contacts,
            contact_persons,
            products,
            projects,
            activities,
            sales_documents,
            sales_lines,
        })
    }

    pub fn total(&self) -> u64 {
        let total = self.employees
            + self.contacts
            + self.contact_persons
            + self.products
            + self.projects
            + self.activities
            + self.sales_documents
            + self.sales_lines;
        u64::try_from(total).unwrap_or(0)
    }
}

/// A person the company must have among its first employees (for example
/// the one the administrator user is linked to).
#[derive(Debug, Clone)]
pub struct KeyPerson {
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub title: &'static str,
    pub email: &'static str,
    pub phone: &'static str,
}

/// What makes one company's data its own.
#[derive(Debug, Clone)]
pub struct Flavour {
    /// The company's e-mail domain, for employee addresses.
    pub email_domain: &'static str,
    /// Employees 1, 2, ... in this order.
    pub key_people: Vec<KeyPerson>,
    pub phone_prefix: &'static str,
}

/// Fills the record tables of a company database inside `tx`.
pub fn fill(
    tx: &Transaction<'_>,
    plan: &RecordPlan,
    flavour: &Flavour,
    seed: u64,
    as_of: NaiveDate,
) -> Result<()> {
    let mut generator = Generator::new(plan, flavour, seed, as_of);
    generator.employees(tx)?;
    generator.contacts(tx)?;
    generator.contact_persons(tx)?;
    generator.products(tx)?;
    generator.projects(tx)?;
    generator.activities(tx)?;
    generator.sales(tx)?;
    Ok(())
}

/// The derived look of one contact (see the module docs).
#[derive(Clone, Copy)]
struct ContactShape {
    country: &'static Country,
    /// Two words of the name before the legal suffix; the second may be
    /// empty.
    first: &'static str,
    joiner: &'static str,
    second: &'static str,
    place: (&'static str, &'static str),
}

/// The derived look of one product.
#[derive(Clone, Copy)]
struct ProductShape {
    item: &'static str,
    model: &'static str,
    unit: &'static str,
    price_cents: i64,
}

/// One sales line before it is written (the document's totals come first).
#[derive(Clone, Copy)]
struct PendingLine {
    product: i64,
    quantity: f64,
    unit_price_cents: i64,
    discount_percent: f64,
    amount_cents: i64,
}

struct Generator<'a> {
    plan: &'a RecordPlan,
    flavour: &'a Flavour,
    seed: u64,
    rng: fastrand::Rng,
    /// `dates[i]` is the ISO date `HISTORY_DAYS - i` days before "as of"
    /// (so `dates[HISTORY_DAYS]` is "as of" itself).
    dates: Vec<String>,
    text: [String; 6],
    lines: Vec<PendingLine>,
}

/// Index of the "as of" date in [`Generator::dates`].
const TODAY: usize = HISTORY_DAYS as usize;

impl<'a> Generator<'a> {
    fn new(plan: &'a RecordPlan, flavour: &'a Flavour, seed: u64, as_of: NaiveDate) -> Self {
        let first = as_of - Days::new(HISTORY_DAYS);
        let dates = (0..=HISTORY_DAYS + FUTURE_DAYS)
            .map(|day| (first + Days::new(day)).format("%Y-%m-%d").to_string())
            .collect();
        Generator {
            plan,
            flavour,
            seed,
            rng: fastrand::Rng::with_seed(seed),
            dates,
            text: Default::default(),
            lines: Vec::with_capacity(16),
        }
    }

    /// A date in the past, at most `HISTORY_DAYS` ago.
    fn past_day(&mut self) -> usize {
        self.rng.usize(0..=TODAY)
    }

    fn employee_id(&mut self) -> i64 {
        self.rng.i64(1..=self.plan.employees)
    }

    fn contact_id(&mut self) -> i64 {
        self.rng.i64(1..=self.plan.contacts)
    }

    fn contact_shape(&self, contact: i64) -> ContactShape {
        let mut rng = fastrand::Rng::with_seed(
            self.seed ^ (contact as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let country = match rng.u8(0..100) {
            0..=79 => &names::NORWAY,
            80..=91 => &names::SWEDEN,
            _ => &names::DENMARK,
        };
        let (first, joiner, second) = match rng.u8(0..3) {
            0 => (
                pick(&mut rng, names::LAST_NAMES),
                " ",
                pick(&mut rng, names::TRADES),
            ),
            1 => (
                pick(&mut rng, names::PLACE_WORDS),
                " ",
                pick(&mut rng, names::TRADES),
            ),
            _ => (
                pick(&mut rng, names::LAST_NAMES),
                " & ",
                pick(&mut rng, names::LAST_NAMES),
            ),
        };
        ContactShape {
            country,
            first,
            joiner,
            second,
            place: country.places[rng.usize(0..country.places.len())],
        }
    }

    fn product_shape(&self, product: i64) -> ProductShape {
        let mut rng = fastrand::Rng::with_seed(
            self.seed ^ (product as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
        );
        let (item, unit, low, high) = names::PRODUCTS[rng.usize(0..names::PRODUCTS.len())];
        ProductShape {
            item,
            model: pick(&mut rng, names::PRODUCT_MODELS),
            unit,
            price_cents: rng.i64(low..=high) * 100,
        }
    }

    fn employees(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut insert = tx.prepare(
            "INSERT INTO employees (id, number, first_name, last_name, title, email, phone, hired_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let key_people = self.flavour.key_people.clone();
        for id in 1..=self.plan.employees {
            let hired = self.rng.usize(0..TODAY);
            let [email, phone, ..] = &mut self.text;
            if let Some(key) = key_people.get(id as usize - 1) {
                insert.execute(params![
                    id,
                    id,
                    key.first_name,
                    key.last_name,
                    key.title,
                    key.email,
                    key.phone,
                    self.dates[hired]
                ])?;
                continue;
            }
            let first_name = pick(&mut self.rng, names::FIRST_NAMES);
            let last_name = pick(&mut self.rng, names::LAST_NAMES);
            let title = pick(&mut self.rng, names::JOB_TITLES);
            // One in ten employees has no e-mail address, as in real life.
            let has_email = self.rng.u8(0..10) != 0;
            email.clear();
            if has_email {
                push_ascii_lower(email, first_name);
                email.push('.');
                push_ascii_lower(email, last_name);
                let _ = write!(email, "{id}@{}", self.flavour.email_domain);
            }
            phone.clear();
            let _ = write!(
                phone,
                "{} {} {:02} {:03}",
                self.flavour.phone_prefix,
                self.rng.u16(400..999),
                self.rng.u8(0..100),
                self.rng.u16(0..1000)
            );
            insert.execute(params![
                id,
                id,
                first_name,
                last_name,
                title,
                has_email.then_some(email.as_str()),
                phone.as_str(),
                self.dates[hired]
            ])?;
        }
        Ok(())
    }

    fn contacts(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut insert = tx.prepare(
            "INSERT INTO contacts (id, number, name, is_customer, is_supplier, organisation_number,
                                   street, postcode, city, country, phone, email, website,
                                   payment_terms_days, our_employee_id, created_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )?;
        for id in 1..=self.plan.contacts {
            let shape = self.contact_shape(id);
            let kind = self.rng.u8(0..100);
            let (is_customer, is_supplier) = (kind < 90, kind >= 75);
            let terms = [10, 14, 14, 30, 30, 45][self.rng.usize(0..6)];
            let employee = self.employee_id();
            let created = self.past_day();
            let has_website = self.rng.bool();
            let street_name = pick(&mut self.rng, names::STREETS);
            let street_number = self.rng.u16(1..200);
            let phone_number = (self.rng.u32(20_000_000..99_999_999), self.rng.bool());
            let org_digits = self.rng.u32(10_000_000..99_999_999);

            let [name, org, street, phone, email, website] = &mut self.text;
            name.clear();
            push_contact_name(name, &shape);
            org.clear();
            push_organisation_number(org, shape.country, org_digits);
            street.clear();
            let _ = write!(street, "{street_name} {street_number}");
            phone.clear();
            let _ = write!(phone, "{} {}", shape.country.phone_prefix, phone_number.0);
            email.clear();
            email.push_str(if phone_number.1 {
                "post@"
            } else {
                "firmapost@"
            });
            push_contact_domain(email, &shape);
            website.clear();
            if has_website {
                website.push_str("www.");
                push_contact_domain(website, &shape);
            }
            insert.execute(params![
                id,
                10_000 + id,
                name.as_str(),
                is_customer,
                is_supplier,
                org.as_str(),
                street.as_str(),
                shape.place.0,
                shape.place.1,
                shape.country.name,
                phone.as_str(),
                email.as_str(),
                has_website.then_some(website.as_str()),
                terms,
                employee,
                self.dates[created]
            ])?;
        }
        Ok(())
    }

    /// Contact person `p` works for contact `(p - 1) % contacts + 1`, so
    /// each contact gets one or two people and person `c` (when it exists)
    /// works for contact `c`.
    fn contact_persons(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut insert = tx.prepare(
            "INSERT INTO contact_persons (id, contact_id, first_name, last_name, title, phone, email)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for id in 1..=self.plan.contact_persons {
            let contact = (id - 1) % self.plan.contacts + 1;
            let shape = self.contact_shape(contact);
            let first_name = pick(&mut self.rng, names::FIRST_NAMES);
            let last_name = pick(&mut self.rng, names::LAST_NAMES);
            let title = pick(&mut self.rng, names::CONTACT_TITLES);
            let mobile = self.rng.u32(40_000_000..99_999_999);
            let [phone, email, ..] = &mut self.text;
            phone.clear();
            let _ = write!(phone, "{} {mobile}", shape.country.phone_prefix);
            email.clear();
            push_ascii_lower(email, first_name);
            email.push('.');
            push_ascii_lower(email, last_name);
            email.push('@');
            push_contact_domain(email, &shape);
            insert.execute(params![
                id,
                contact,
                first_name,
                last_name,
                title,
                phone.as_str(),
                email.as_str()
            ])?;
        }
        Ok(())
    }

    fn products(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut insert = tx.prepare(
            "INSERT INTO products (id, number, name, unit, price_cents, cost_cents, vat_percent,
                                   stock_quantity, is_active)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for id in 1..=self.plan.products {
            let shape = self.product_shape(id);
            let margin_percent = self.rng.i64(20..=55);
            let cost_cents = shape.price_cents * (100 - margin_percent) / 100;
            let stock = match shape.unit {
                "hour" | "month" => None,
                _ => Some(f64::from(self.rng.u16(0..500))),
            };
            let is_active = self.rng.u8(0..20) != 0;
            let [number, name, ..] = &mut self.text;
            number.clear();
            let _ = write!(number, "{}", 100_000 + id);
            name.clear();
            push_product_name(name, &shape);
            insert.execute(params![
                id,
                number.as_str(),
                name.as_str(),
                shape.unit,
                shape.price_cents,
                cost_cents,
                VAT_PERCENT,
                stock,
                is_active
            ])?;
        }
        Ok(())
    }

    fn projects(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut insert = tx.prepare(
            "INSERT INTO projects (id, number, name, contact_id, manager_employee_id, status,
                                   start_date, end_date, budget_cents)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for id in 1..=self.plan.projects {
            let contact = self.contact_id();
            let shape = self.contact_shape(contact);
            let kind = pick(&mut self.rng, names::PROJECT_KINDS);
            let manager = self.employee_id();
            let start = self.rng.usize(0..TODAY + 60);
            let length = self.rng.usize(14..240);
            let end = (start + length).min(self.dates.len() - 1);
            let status = if start > TODAY {
                "planned"
            } else if end < TODAY {
                if self.rng.u8(0..10) == 0 {
                    "cancelled"
                } else {
                    "completed"
                }
            } else {
                "active"
            };
            // Whole thousands of the currency, in cents.
            let budget = self.rng.i64(20..2_000) * 1_000 * 100;
            let [name, ..] = &mut self.text;
            name.clear();
            let _ = write!(name, "{kind} {}", shape.place.1);
            insert.execute(params![
                id,
                1_000 + id,
                name.as_str(),
                contact,
                manager,
                status,
                self.dates[start],
                self.dates[end],
                budget
            ])?;
        }
        Ok(())
    }

    fn activities(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut insert = tx.prepare(
            "INSERT INTO activities (id, kind, subject, contact_id, contact_person_id, employee_id,
                                     project_id, date, duration_minutes, done)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for id in 1..=self.plan.activities {
            let (kind, subjects) = names::ACTIVITIES[self.rng.usize(0..names::ACTIVITIES.len())];
            let subject = pick(&mut self.rng, subjects);
            let contact = self.contact_id();
            let person = (contact <= self.plan.contact_persons).then_some(contact);
            let employee = self.employee_id();
            let project = (self.plan.projects > 0 && self.rng.u8(0..10) == 0)
                .then(|| self.rng.i64(1..=self.plan.projects));
            // Most activities are history; some are planned for the next weeks.
            let day = if self.rng.u8(0..10) == 0 {
                TODAY + self.rng.usize(1..30)
            } else {
                self.past_day()
            };
            let duration = match kind {
                "call" => Some(self.rng.u16(5..45)),
                "meeting" => Some(self.rng.u16(2..9) * 15),
                _ => None,
            };
            let done = day < TODAY || (day == TODAY && self.rng.bool());
            insert.execute(params![
                id,
                kind,
                subject,
                contact,
                person,
                employee,
                project,
                self.dates[day],
                duration,
                done
            ])?;
        }
        Ok(())
    }

    /// Sales documents with their lines. Documents are dated in number
    /// order across the history, as a real company's are; the lines are
    /// spread evenly so their count matches the plan exactly.
    fn sales(&mut self, tx: &Transaction<'_>) -> Result<()> {
        let mut insert_document = tx.prepare(
            "INSERT INTO sales_documents (id, kind, number, contact_id, employee_id, project_id,
                                          document_date, due_date, status, currency, net_cents,
                                          vat_cents, total_cents)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'NOK', ?10, ?11, ?12)",
        )?;
        let mut insert_line = tx.prepare(
            "INSERT INTO sales_lines (document_id, line_no, product_id, description, quantity,
                                      unit_price_cents, discount_percent, amount_cents)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let documents = self.plan.sales_documents;
        let lines = self.plan.sales_lines;
        let mut next_number = [10_000i64, 20_000, 100_000, 900_000];
        for id in 1..=documents {
            let (kind, kind_index) = match self.rng.u8(0..100) {
                0..=19 => ("quote", 0),
                20..=44 => ("order", 1),
                45..=94 => ("invoice", 2),
                _ => ("credit_note", 3),
            };
            let number = next_number[kind_index];
            next_number[kind_index] += 1;
            let contact = self.contact_id();
            let employee = self.employee_id();
            let project = (self.plan.projects > 0 && self.rng.u8(0..10) == 0)
                .then(|| self.rng.i64(1..=self.plan.projects));
            let spread = (id - 1) * HISTORY_DAYS as i64 / documents;
            let day = (spread as usize + self.rng.usize(0..3)).min(TODAY);
            let age = TODAY - day;
            let (due, status) = match kind {
                "quote" => (
                    Some(day + 30),
                    match (age, self.rng.u8(0..10)) {
                        (0..=2, _) => "draft",
                        (3..=30, _) => "sent",
                        (_, 0..=5) => "accepted",
                        _ => "declined",
                    },
                ),
                "order" => (None, if age > 14 { "delivered" } else { "open" }),
                "invoice" => {
                    let due = day + 14;
                    let status = if due >= TODAY {
                        "open"
                    } else if self.rng.u8(0..20) == 0 {
                        "overdue"
                    } else {
                        "paid"
                    };
                    (Some(due), status)
                }
                _ => (None, "settled"),
            };

            // Lines of this document: an even share of all lines.
            let line_count = lines * id / documents - lines * (id - 1) / documents;
            let sign = if kind == "credit_note" { -1.0 } else { 1.0 };
            self.lines.clear();
            let mut net_cents = 0;
            for _ in 0..line_count {
                let product = self.rng.i64(1..=self.plan.products);
                let shape = self.product_shape(product);
                let quantity = sign * f64::from(self.rng.u8(1..=12));
                let discount_percent = [0.0, 0.0, 0.0, 5.0, 10.0][self.rng.usize(0..5)];
                let amount_cents =
                    (quantity * shape.price_cents as f64 * (100.0 - discount_percent) / 100.0)
                        .round() as i64;
                net_cents += amount_cents;
                self.lines.push(PendingLine {
                    product,
                    quantity,
                    unit_price_cents: shape.price_cents,
                    discount_percent,
                    amount_cents,
                });
            }
            let vat_cents = net_cents * VAT_PERCENT / 100;
            insert_document.execute(params![
                id,
                kind,
                number,
                contact,
                employee,
                project,
                self.dates[day],
                due.map(|due| &self.dates[due]),
                status,
                net_cents,
                vat_cents,
                net_cents + vat_cents
            ])?;
            for (line_no, line) in self.lines.iter().enumerate() {
                let shape = self.product_shape(line.product);
                let description = &mut self.text[0];
                description.clear();
                push_product_name(description, &shape);
                insert_line.execute(params![
                    id,
                    line_no as i64 + 1,
                    line.product,
                    description.as_str(),
                    line.quantity,
                    line.unit_price_cents,
                    line.discount_percent,
                    line.amount_cents
                ])?;
            }
        }
        Ok(())
    }
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(0..items.len())]
}

fn push_contact_name(out: &mut String, shape: &ContactShape) {
    out.push_str(shape.first);
    out.push_str(shape.joiner);
    out.push_str(shape.second);
    out.push(' ');
    out.push_str(shape.country.suffix);
}

/// `fjordbygg.no` for "Fjord Bygg AS".
fn push_contact_domain(out: &mut String, shape: &ContactShape) {
    push_ascii_lower(out, shape.first);
    if shape.joiner.contains('&') {
        out.push('-');
    }
    push_ascii_lower(out, shape.second);
    out.push('.');
    out.push_str(shape.country.tld);
}

fn push_product_name(out: &mut String, shape: &ProductShape) {
    out.push_str(shape.item);
    out.push(' ');
    out.push_str(shape.model);
}

/// A plausible registration number in the country's usual form. Norwegian
/// numbers carry a valid modulus-11 check digit.
fn push_organisation_number(out: &mut String, country: &Country, digits: u32) {
    match country.tld {
        "no" => {
            // Norwegian organisation numbers start with 8 or 9.
            let mut base = 80_000_000 + digits % 20_000_000;
            let check = loop {
                if let Some(check) = norwegian_check_digit(base) {
                    break check;
                }
                base = if base >= 99_999_999 {
                    80_000_000
                } else {
                    base + 1
                };
            };
            let full = u64::from(base) * 10 + u64::from(check);
            let _ = write!(
                out,
                "{} {:03} {:03}",
                full / 1_000_000,
                full / 1_000 % 1_000,
                full % 1_000
            );
        }
        "se" => {
            let _ = write!(
                out,
                "55{:04}-{:04}",
                digits / 10_000 % 10_000,
                digits % 10_000
            );
        }
        _ => {
            let _ = write!(out, "DK{digits:08}");
        }
    }
}

/// The modulus-11 check digit of an 8-digit Norwegian organisation number
/// base, or `None` for the bases that have no valid check digit.
fn norwegian_check_digit(base: u32) -> Option<u32> {
    const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
    let sum: u32 = WEIGHTS
        .iter()
        .rev()
        .enumerate()
        .map(|(i, weight)| (base / 10u32.pow(i as u32) % 10) * weight)
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        digit => Some(digit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_adds_up_to_the_requested_total() {
        for total in [10, 20, 137, 1_000, 2_000_000] {
            let plan = RecordPlan::for_total(total, 2).unwrap();
            assert_eq!(plan.total(), total, "{plan:?}");
            assert!(plan.employees >= 2 && plan.contacts >= 1 && plan.products >= 1);
        }
        let plan = RecordPlan::for_total(2_000_000, 2).unwrap();
        assert_eq!(plan.contacts, 200_000);
        assert_eq!(plan.contact_persons, 300_000);
        assert_eq!(plan.products, 100_000);
        assert_eq!(plan.activities, 400_000);
        assert_eq!(plan.projects, 40_000);
        assert_eq!(plan.sales_documents, 200_000);
        assert_eq!(plan.employees, 500);
        assert_eq!(plan.sales_lines, 759_500);
    }

    #[test]
    fn plan_refuses_too_few_records() {
        let message = RecordPlan::for_total(5, 2).unwrap_err().to_string();
        assert!(
            message.contains("from 10 to 100000000 records"),
            "{message}"
        );
    }

    #[test]
    fn norwegian_check_digits_match_known_numbers() {
        assert_eq!(norwegian_check_digit(92345678), Some(3));
        assert_eq!(norwegian_check_digit(91846372), Some(0));
    }
}
