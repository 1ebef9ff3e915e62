//! `host-sim record ...`, `host-sim changes` and `host-sim checksum`:
//! changing and viewing synchronised data (also while sync runs), the
//! change log, and the canonical checksum.

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use super::table::Table;
use super::{quoted, GlobalArgs};
use crate::db::company::CompanyDb;
use crate::error::{HostError, Result};
use crate::installation::Installation;
use crate::sync::data::{self, Change, Op, Writer};
use crate::sync::{checksum, schema};

#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Add a record: `record add contacts --set name="Fjord AS" --set city=Bergen`.
    /// Numbers the host assigns are given when not set
    Add {
        /// Entity (table), e.g. contacts
        entity: String,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Change fields of a record; `-` or an empty value clears a field
    Edit {
        entity: String,
        local_id: i64,
        #[command(flatten)]
        set: SetArgs,
    },
    /// Delete a record
    Delete {
        entity: String,
        local_id: i64,
        /// Change data even while the add-on blocks use of the program
        #[arg(long)]
        ignore_block: bool,
    },
    /// Show one record's fields
    Show { entity: String, local_id: i64 },
    /// List records in local id order
    List {
        entity: String,
        /// Start after this local id
        #[arg(long, value_name = "LOCAL_ID")]
        after: Option<i64>,
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: u64,
    },
}

#[derive(Debug, Args)]
pub struct SetArgs {
    /// FIELD=VALUE (repeatable). Decimals with a point (12.50), dates as
    /// YYYY-MM-DD, yes/no, references as local ids
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// Change data even while the add-on blocks use of the program
    #[arg(long)]
    ignore_block: bool,
}

#[derive(Debug, Args)]
pub struct ChangesArgs {
    /// Show entries after this position
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    after: i64,
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: u64,
}

#[derive(Debug, Args)]
pub struct ChecksumArgs {
    /// Only this entity
    #[arg(long, value_name = "ENTITY")]
    entity: Option<String>,
}

fn open(global: &GlobalArgs) -> Result<(Installation, crate::db::system::Company, CompanyDb)> {
    let installation = global.open_installation()?;
    let company = installation.company_or_default(global.company.as_deref())?;
    let db = installation.open_company_db(&company)?;
    Ok((installation, company, db))
}

fn parse_set(entity: &schema::Entity, set: &[String]) -> Result<Map<String, Value>> {
    let mut fields = Map::new();
    for item in set {
        let (name, text) = item.split_once('=').ok_or_else(|| {
            HostError::InvalidInput(format!(
                "{} is not FIELD=VALUE (for example --set city=Bergen).",
                quoted(item)
            ))
        })?;
        let name = name.trim();
        let field = entity.field(name).ok_or_else(|| {
            HostError::InvalidInput(format!(
                "{} have no field {}. Fields: {}.",
                entity.title,
                quoted(name),
                entity
                    .fields
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let value = data::parse_typed(field, text).map_err(HostError::InvalidInput)?;
        fields.insert(name.to_owned(), value);
    }
    Ok(fields)
}

fn check_block(installation: &Installation, company_id: &str, ignore: bool) -> Result<()> {
    if ignore {
        return Ok(());
    }
    match installation.system().company_block(company_id)? {
        Some(block) => Err(HostError::NotAllowed(format!(
            "Use of the program is blocked by Online Desktop since {}: {}. Use --ignore-block to change data anyway.",
            block.blocked_at, block.reason
        ))),
        None => Ok(()),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_record(entity: &schema::Entity, local_id: i64, fields: &Map<String, Value>) {
    println!("{:<22}{local_id}", "local_id:");
    for field in entity.fields {
        let value = fields.get(field.name).unwrap_or(&Value::Null);
        println!("{:<22}{}", format!("{}:", field.name), text(value));
    }
}

pub fn run(global: &GlobalArgs, command: RecordCommand) -> Result<()> {
    let (installation, company, mut db) = open(global)?;
    match command {
        RecordCommand::Add { entity, set } => {
            let entity = data::entity(&entity)?;
            check_block(&installation, &company.id, set.ignore_block)?;
            let fields = parse_set(entity, &set.set)?;
            let applied = apply_one(&mut db, entity, None, Op::Upsert, fields)?;
            println!("Added record {} to {}.", applied.local_id, entity.name);
            for (name, value) in &applied.assigned {
                println!("Assigned {name}: {}", text(value));
            }
        }
        RecordCommand::Edit {
            entity,
            local_id,
            set,
        } => {
            let entity = data::entity(&entity)?;
            check_block(&installation, &company.id, set.ignore_block)?;
            let fields = parse_set(entity, &set.set)?;
            if fields.is_empty() {
                return Err(HostError::InvalidInput(
                    "Nothing to change. Give at least one --set FIELD=VALUE.".into(),
                ));
            }
            apply_one(&mut db, entity, Some(local_id), Op::Upsert, fields)?;
            println!("Changed record {local_id} of {}.", entity.name);
        }
        RecordCommand::Delete {
            entity,
            local_id,
            ignore_block,
        } => {
            let entity = data::entity(&entity)?;
            check_block(&installation, &company.id, ignore_block)?;
            if data::record(db.connection(), entity, local_id)?.is_none() {
                return Err(no_record(entity, local_id));
            }
            apply_one(&mut db, entity, Some(local_id), Op::Delete, Map::new())?;
            println!("Deleted record {local_id} of {}.", entity.name);
        }
        RecordCommand::Show { entity, local_id } => {
            let entity = data::entity(&entity)?;
            let fields = data::record(db.connection(), entity, local_id)?
                .ok_or_else(|| no_record(entity, local_id))?;
            print_record(entity, local_id, &fields);
        }
        RecordCommand::List {
            entity,
            after,
            limit,
        } => {
            let entity = data::entity(&entity)?;
            let (records, _) = data::page(db.connection(), entity, after, limit)?;
            let mut headers: Vec<&'static str> = vec!["local_id"];
            headers.extend(entity.fields.iter().map(|f| f.name));
            let mut table = Table::new(&headers);
            for (local_id, fields) in records {
                let mut row = vec![local_id.to_string()];
                row.extend(entity.fields.iter().map(|f| text(&fields[f.name])));
                table.row(row);
            }
            table.print_or(&format!("No records of {} here.", entity.name));
        }
    }
    Ok(())
}

fn no_record(entity: &schema::Entity, local_id: i64) -> HostError {
    HostError::NotFound {
        kind: "record with the local id",
        query: local_id.to_string(),
        hint: format!(
            " in {}. See `host-sim record list {}`.",
            entity.name, entity.name
        ),
    }
}

fn apply_one(
    db: &mut CompanyDb,
    entity: &schema::Entity,
    local_id: Option<i64>,
    op: Op,
    fields: Map<String, Value>,
) -> Result<data::Applied> {
    let change = Change {
        entity: entity.name.into(),
        local_id,
        global_id: None,
        op,
        fields,
    };
    let mut applied = data::apply(db.connection_mut(), Writer::Host, &[change]).map_err(|e| {
        match e {
            // One change: the "Change 1 (...) was refused" framing says
            // nothing the user does not know.
            HostError::InvalidInput(m) => HostError::InvalidInput(
                m.split_once(", and no change was applied: ")
                    .map_or(m.clone(), |(_, rest)| rest.to_owned()),
            ),
            other => other,
        }
    })?;
    Ok(applied.remove(0))
}

pub fn changes(global: &GlobalArgs, args: ChangesArgs) -> Result<()> {
    let (_, company, db) = open(global)?;
    let entries = data::changes(db.connection(), args.after, args.limit)?;
    let mut table = Table::new(&["Seq", "Entity", "Local id", "Op", "Origin"]);
    for entry in &entries {
        table.row(vec![
            entry.seq.to_string(),
            entry.entity.clone(),
            entry.local_id.to_string(),
            entry.op.clone(),
            entry.origin.clone(),
        ]);
    }
    table.print_or(&format!(
        "The change log of {} has no entries after {}.",
        quoted(&company.name),
        args.after
    ));
    println!("Newest position: {}", data::position(db.connection())?);
    Ok(())
}

pub fn checksum(global: &GlobalArgs, args: ChecksumArgs) -> Result<()> {
    let (_, _, db) = open(global)?;
    let entities: Vec<&schema::Entity> = match &args.entity {
        Some(name) => vec![data::entity(name)?],
        None => schema::ENTITIES.iter().collect(),
    };
    let mut table = Table::new(&["Entity", "Rows", "SHA-256"]);
    for entity in entities {
        let (rows, digest) =
            checksum::entity_digest(db.connection(), entity, &checksum::local_ids)?;
        table.row(vec![entity.name.into(), rows.to_string(), digest]);
    }
    print!("{}", table.render());
    println!("Ids are local ids: compare with another host database, not with the online copy.");
    Ok(())
}
