//! `host-sim init`.

use chrono::NaiveDate;
use clap::Args;

use super::GlobalArgs;
use crate::demo::{self, InitOptions};
use crate::error::Result;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Total business records in the demo company (contacts, contact
    /// persons, products, employees, activities, projects, sales documents
    /// and lines), from 10 to millions
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    records: u64,

    /// Seed of the generated data: the same seed gives the same data
    #[arg(long, default_value_t = 42, value_name = "S")]
    seed: u64,

    /// Replace an existing installation in the data directory (deletes it)
    #[arg(long)]
    force: bool,

    /// The day the generated history ends, YYYY-MM-DD. Default: today
    #[arg(long, value_name = "DATE")]
    as_of: Option<NaiveDate>,
}

pub fn run(global: &GlobalArgs, args: InitArgs) -> Result<()> {
    let options = InitOptions {
        records: args.records,
        seed: args.seed,
        force: args.force,
        as_of: args
            .as_of
            .unwrap_or_else(|| chrono::Local::now().date_naive()),
    };
    let (_, summary) = demo::init(&global.data_dir, &options)?;
    println!(
        "Created the demo installation in {}.",
        global.data_dir.display()
    );
    for company in &summary.companies {
        let total: u64 = company.counts.iter().map(|(_, count)| count).sum();
        let sample = if company.company.is_sample {
            " (sample database)"
        } else {
            ""
        };
        println!();
        println!(
            "{}{sample}: {total} records in {:.2} s, file companies/{}",
            company.company.name,
            company.elapsed.as_secs_f64(),
            company.company.file
        );
        for (table, count) in &company.counts {
            println!("  {table:<16} {count:>10}");
        }
    }
    println!();
    println!(
        "System database: {} users, {} computers, {} API integration.",
        summary.users, summary.computers, summary.integrations
    );
    println!("Done in {:.2} s.", summary.elapsed.as_secs_f64());
    Ok(())
}
