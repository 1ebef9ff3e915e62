//! The host's declared schema (docs/SYNC_PROTOCOL.md §1), as it travels in
//! `PUT`/`GET /api/v1/sync/schema`.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Integer,
    /// Integer minor units (cents).
    Decimal,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339.
    Datetime,
    Boolean,
    /// The referenced record's global id.
    Reference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnlineAccess {
    #[default]
    ReadWrite,
    ReadOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    TwoWay,
    HostToOnline,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub online: OnlineAccess,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub assigned_by_host: bool,
    /// For `reference` fields: the referenced entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// For `decimal` fields: minor units are 10^-scale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// For text fields with a fixed set of values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

impl FieldDef {
    /// Whether a web user may set this field.
    pub fn writable_online(&self) -> bool {
        self.online == OnlineAccess::ReadWrite
            && self.direction == Direction::TwoWay
            && !self.assigned_by_host
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntityDef {
    pub name: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub parent: Option<String>,
    /// `false`: records are created (and deleted) in the host only.
    #[serde(default = "yes")]
    pub online_create: bool,
    pub fields: Vec<FieldDef>,
}

impl EntityDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// What `PUT /api/v1/sync/schema` takes (docs/SYNC_PROTOCOL.md §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schema {
    pub version: u32,
    pub entities: Vec<EntityDef>,
}

impl Schema {
    pub fn entity(&self, name: &str) -> Option<&EntityDef> {
        self.entities.iter().find(|entity| entity.name == name)
    }

    /// Names are non-empty and unique, references name declared entities.
    pub fn check(&self) -> Result<(), String> {
        let mut entities = HashSet::new();
        for entity in &self.entities {
            if !valid_name(&entity.name) {
                return Err(format!("The entity name {:?} is not valid.", entity.name));
            }
            if !entities.insert(entity.name.as_str()) {
                return Err(format!("The entity {:?} is declared twice.", entity.name));
            }
            let mut fields = HashSet::new();
            for field in &entity.fields {
                if !valid_name(&field.name) {
                    return Err(format!(
                        "The field name {:?} of {:?} is not valid.",
                        field.name, entity.name
                    ));
                }
                if !fields.insert(field.name.as_str()) {
                    return Err(format!(
                        "The field {:?} of {:?} is declared twice.",
                        field.name, entity.name
                    ));
                }
            }
        }
        for entity in &self.entities {
            if let Some(parent) = &entity.parent {
                if !entities.contains(parent.as_str()) {
                    return Err(format!("The parent {parent:?} is not declared."));
                }
            }
            for field in &entity.fields {
                if field.kind == FieldType::Reference {
                    match &field.entity {
                        Some(target) if entities.contains(target.as_str()) => {}
                        _ => {
                            return Err(format!(
                                "The reference field {:?} of {:?} names no declared entity.",
                                field.name, entity.name
                            ))
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// 1 to 64 characters of `[A-Za-z0-9_-]` (they appear in paths).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_optional_fields_keep_the_wire_format() {
        let schema: Schema = serde_json::from_value(json!({
            "version": 1,
            "entities": [{"name": "contacts", "fields": [
                {"name": "name", "type": "text"},
                {"name": "amount", "type": "decimal", "scale": 2},
            ]}],
        }))
        .unwrap();
        let entity = schema.entity("contacts").unwrap();
        assert!(entity.online_create);
        assert!(entity.field("name").unwrap().writable_online());
        assert_eq!(entity.field("amount").unwrap().scale, Some(2));
        assert_eq!(
            serde_json::to_value(entity.field("name").unwrap()).unwrap(),
            json!({"name": "name", "type": "text", "required": false,
                   "online": "read_write", "direction": "two_way",
                   "assigned_by_host": false})
        );
        assert_eq!(schema.check(), Ok(()));
    }
}
