//! The host's declaration of what is synchronised (`schema.entities`,
//! docs/SYNC_PROTOCOL.md §1), and the order entities travel in.
//!
//! The plugin knows no ERP table: everything here comes from the host.

pub use od_client::{Direction, EntityDef as Entity, FieldType, Schema};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    #[error("the program declares the entity \"{0}\" twice")]
    DuplicateEntity(String),
    #[error(
        "the field {entity}.{field} refers to \"{target}\", which the program does not declare"
    )]
    UnknownReference {
        entity: String,
        field: String,
        target: String,
    },
    #[error("the field {entity}.{field} is a reference but names no entity")]
    ReferenceWithoutEntity { entity: String, field: String },
    #[error("the entity \"{entity}\" names \"{parent}\" as its parent, which the program does not declare")]
    UnknownParent { entity: String, parent: String },
    #[error("the entities {0} refer to each other in a circle through required fields; one of them must be optional")]
    Cycle(String),
}

/// The declaration of `name`.
pub fn entity<'a>(schema: &'a Schema, name: &str) -> Option<&'a Entity> {
    schema.entities.iter().find(|e| e.name == name)
}

/// Checks the declaration and returns the entities in the order records
/// must travel: every entity after the ones its parent and its required
/// references point to, so a record never arrives before what it needs.
/// Optional references may point forward (they are filled in when the
/// target arrives). Ties keep the host's order.
pub fn travel_order(schema: &Schema) -> Result<Vec<&Entity>, SchemaError> {
    let mut names = BTreeSet::new();
    for entity in &schema.entities {
        if !names.insert(entity.name.as_str()) {
            return Err(SchemaError::DuplicateEntity(entity.name.clone()));
        }
    }
    let mut needs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for entity in &schema.entities {
        let entry = needs.entry(entity.name.as_str()).or_default();
        if let Some(parent) = &entity.parent {
            if !names.contains(parent.as_str()) {
                return Err(SchemaError::UnknownParent {
                    entity: entity.name.clone(),
                    parent: parent.clone(),
                });
            }
            if parent != &entity.name {
                entry.insert(parent.as_str());
            }
        }
        for field in entity
            .fields
            .iter()
            .filter(|f| f.kind == FieldType::Reference)
        {
            let Some(target) = &field.entity else {
                return Err(SchemaError::ReferenceWithoutEntity {
                    entity: entity.name.clone(),
                    field: field.name.clone(),
                });
            };
            if !names.contains(target.as_str()) {
                return Err(SchemaError::UnknownReference {
                    entity: entity.name.clone(),
                    field: field.name.clone(),
                    target: target.clone(),
                });
            }
            if field.required && target != &entity.name {
                entry.insert(target.as_str());
            }
        }
    }
    let mut order: Vec<&Entity> = Vec::with_capacity(schema.entities.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while order.len() < schema.entities.len() {
        let next = schema.entities.iter().find(|e| {
            !placed.contains(e.name.as_str())
                && needs[e.name.as_str()].iter().all(|n| placed.contains(n))
        });
        match next {
            Some(entity) => {
                placed.insert(entity.name.as_str());
                order.push(entity);
            }
            None => {
                let left: Vec<&str> = schema
                    .entities
                    .iter()
                    .map(|e| e.name.as_str())
                    .filter(|n| !placed.contains(n))
                    .collect();
                return Err(SchemaError::Cycle(left.join(", ")));
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use od_client::{FieldDef as Field, OnlineAccess as Online};
    use serde_json::json;

    /// A schema shaped like the host simulator's, small.
    pub(crate) fn sample() -> Schema {
        serde_json::from_value(json!({"version": 1, "entities": [
            {"name": "contact_persons", "title": "Contact persons", "parent": "contacts", "fields": [
                {"name": "contact_id", "type": "reference", "entity": "contacts", "required": true, "online": "read_write", "direction": "two_way"},
                {"name": "name", "type": "text", "required": true, "online": "read_write", "direction": "two_way"}]},
            {"name": "contacts", "title": "Contacts", "fields": [
                {"name": "number", "type": "integer", "required": true, "online": "read_only", "direction": "host_to_online", "assigned_by_host": true},
                {"name": "name", "type": "text", "required": true, "online": "read_write", "direction": "two_way"},
                {"name": "balance", "type": "decimal", "scale": 2, "online": "read_only", "direction": "host_to_online"},
                {"name": "salesperson_id", "type": "reference", "entity": "employees", "online": "read_write", "direction": "two_way"}]},
            {"name": "employees", "title": "Employees", "online_create": false, "fields": [
                {"name": "name", "type": "text", "required": true, "online": "read_only", "direction": "host_to_online"}]}
        ]}))
        .unwrap()
    }

    #[test]
    fn parents_and_required_references_travel_first() {
        let schema = sample();
        let order: Vec<&str> = travel_order(&schema)
            .unwrap()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        // contacts' reference to employees is optional, so the host's order
        // stands there; contact persons need their contact first.
        assert_eq!(order, ["contacts", "contact_persons", "employees"]);
        assert!(entity(&schema, "employees").is_some_and(|e| !e.online_create));
        assert!(entity(&schema, "contacts").is_some_and(|e| e.online_create));
    }

    #[test]
    fn broken_declarations_are_explained() {
        let mut schema = sample();
        schema.entities[0].fields[0].entity = Some("people".into());
        assert_eq!(
            travel_order(&schema).unwrap_err().to_string(),
            "the field contact_persons.contact_id refers to \"people\", which the program does not declare"
        );
        let mut schema = sample();
        schema.entities[1].fields[3].required = true;
        schema.entities[2].fields.push(Field {
            name: "contact_id".into(),
            kind: FieldType::Reference,
            required: true,
            online: Online::ReadOnly,
            direction: Direction::HostToOnline,
            entity: Some("contacts".into()),
            scale: None,
            assigned_by_host: false,
            choices: None,
        });
        assert!(matches!(travel_order(&schema), Err(SchemaError::Cycle(_))));
        let mut schema = sample();
        schema.entities.push(schema.entities[2].clone());
        assert_eq!(
            travel_order(&schema).unwrap_err(),
            SchemaError::DuplicateEntity("employees".into())
        );
    }
}
