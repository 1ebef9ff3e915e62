//! Records between the host's form and the online form
//! (docs/SYNC_PROTOCOL.md §1, §3): references travel as global ids online
//! and as local ids in the host; fields the host owns alone never go back to
//! it.

use super::schema::{Direction, Entity, FieldType};
use serde_json::Value;
use std::collections::BTreeMap;
use thiserror::Error;

/// A record's fields by name.
pub type Fields = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConvertError {
    #[error("{entity}.{field} should refer to a record by its id, but holds {value}")]
    BadReference {
        entity: String,
        field: String,
        value: String,
    },
    #[error("{entity}.{field} refers to {target} {global_id}, which is not in the program (yet)")]
    TargetNotHere {
        entity: String,
        field: String,
        target: String,
        /// The global id of the record referred to.
        global_id: String,
    },
}

/// The text under which a host's local id is kept: its JSON, so that a
/// number stays a number and a text stays a text when it goes back.
pub fn local_key(local_id: &Value) -> Option<String> {
    match local_id {
        Value::Number(_) | Value::String(_) => Some(local_id.to_string()),
        _ => None,
    }
}

/// The host's local id from its key.
pub fn local_id(key: &str) -> Value {
    serde_json::from_str(key).unwrap_or_else(|_| Value::String(key.to_owned()))
}

/// The online form of a host record: every declared field, references as
/// global ids. `global_id` gives (minting when needed) the global id of a
/// host record: a record referred to before it travels gets its id now.
pub fn to_online<E>(
    entity: &Entity,
    host: &Fields,
    global_id: impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<Fields, E>
where
    E: From<ConvertError>,
{
    into_online(entity, host.clone(), global_id)
}

/// [`to_online`] of a record the caller gives away: its names and values
/// move instead of being copied (the first sync converts every record).
pub fn into_online<E>(
    entity: &Entity,
    mut host: Fields,
    mut global_id: impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<Fields, E>
where
    E: From<ConvertError>,
{
    let mut online = Fields::new();
    for field in &entity.fields {
        let (name, value) = host
            .remove_entry(&field.name)
            .unwrap_or_else(|| (field.name.clone(), Value::Null));
        let value = match (field.kind, &value, &field.entity) {
            (FieldType::Reference, Value::Null, _) | (_, _, None) => value,
            (FieldType::Reference, id, Some(target)) => {
                let key = local_key(id).ok_or_else(|| ConvertError::BadReference {
                    entity: entity.name.clone(),
                    field: field.name.clone(),
                    value: id.to_string(),
                })?;
                Value::String(global_id(target, &key)?)
            }
            _ => value,
        };
        online.insert(name, value);
    }
    Ok(online)
}

/// The host form of online fields, for `records.apply`: only fields that
/// may flow to the host (two-way, not assigned by the host), references as
/// local ids. `local_id` finds the host record of a global id.
pub fn to_host(
    entity: &Entity,
    online: &Fields,
    mut local: impl FnMut(&str, &str) -> Option<String>,
) -> Result<Fields, ConvertError> {
    let mut host = Fields::new();
    for field in &entity.fields {
        if field.direction != Direction::TwoWay || field.assigned_by_host {
            continue;
        }
        let Some(value) = online.get(&field.name) else {
            continue;
        };
        let value = match (field.kind, value, &field.entity) {
            (FieldType::Reference, Value::String(global), Some(target)) => {
                let key = local(target, global).ok_or_else(|| ConvertError::TargetNotHere {
                    entity: entity.name.clone(),
                    field: field.name.clone(),
                    target: target.clone(),
                    global_id: global.clone(),
                })?;
                local_id(&key)
            }
            (FieldType::Reference, Value::Null, _) => Value::Null,
            (FieldType::Reference, other, _) => {
                return Err(ConvertError::BadReference {
                    entity: entity.name.clone(),
                    field: field.name.clone(),
                    value: other.to_string(),
                })
            }
            _ => value.clone(),
        };
        host.insert(field.name.clone(), value);
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::schema::tests::sample;
    use serde_json::json;
    use std::collections::HashMap;

    fn fields(value: Value) -> Fields {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn local_ids_keep_their_json_type() {
        assert_eq!(local_key(&json!(17)).as_deref(), Some("17"));
        assert_eq!(local_key(&json!("K-17")).as_deref(), Some("\"K-17\""));
        assert_eq!(local_key(&json!(null)), None);
        assert_eq!(local_id("17"), json!(17));
        assert_eq!(local_id("\"K-17\""), json!("K-17"));
    }

    #[test]
    fn host_records_go_online_with_global_references() {
        let schema = sample();
        let contacts = crate::sync::schema::entity(&schema, "contacts").unwrap();
        let mut minted = HashMap::new();
        let online = to_online::<ConvertError>(
            contacts,
            &fields(
                json!({"number": 10001, "name": "Fjord AS", "balance": 12550, "salesperson_id": 3}),
            ),
            |entity, key| {
                Ok(minted
                    .entry((entity.to_owned(), key.to_owned()))
                    .or_insert_with(|| format!("g-{entity}-{key}"))
                    .clone())
            },
        )
        .unwrap();
        assert_eq!(
            online,
            fields(
                json!({"number": 10001, "name": "Fjord AS", "balance": 12550, "salesperson_id": "g-employees-3"})
            )
        );
        let missing = to_online::<ConvertError>(
            contacts,
            &fields(json!({"name": "Fjord AS"})),
            |_, _| unreachable!(),
        )
        .unwrap();
        assert_eq!(missing["salesperson_id"], Value::Null);
        assert_eq!(missing["number"], Value::Null);
        let bad = to_online::<ConvertError>(
            contacts,
            &fields(json!({"salesperson_id": [1]})),
            |_, _| unreachable!(),
        );
        assert!(matches!(bad, Err(ConvertError::BadReference { .. })));
    }

    #[test]
    fn only_two_way_fields_go_to_the_host() {
        let schema = sample();
        let contacts = crate::sync::schema::entity(&schema, "contacts").unwrap();
        let host = to_host(
            contacts,
            &fields(json!({"number": 5, "name": "Fjord <b>AS</b>", "balance": 1, "salesperson_id": "g-e3"})),
            |entity, global| (entity == "employees" && global == "g-e3").then(|| "3".to_owned()),
        )
        .unwrap();
        assert_eq!(
            host,
            fields(json!({"name": "Fjord <b>AS</b>", "salesperson_id": 3}))
        );
        let waiting = to_host(
            contacts,
            &fields(json!({"salesperson_id": "g-unknown"})),
            |_, _| None,
        );
        assert_eq!(
            waiting.unwrap_err().to_string(),
            "contacts.salesperson_id refers to employees g-unknown, which is not in the program (yet)"
        );
    }
}
