//! The one place that declares which company tables synchronise, and how.
//!
//! Everything else — the `schema.entities` answer, the change-log
//! triggers, reading rows as field maps, validating `records.apply`, the
//! `record` commands and the checksum — is driven by [`ENTITIES`].
//! A field's name is its column name.

use serde_json::{json, Value};

/// How a field's value is stored and travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Integer,
    /// A fixed-point number travelling as an integer of `scale` decimal
    /// places (money in cents has scale 2). `real` means the column holds
    /// a floating-point value that is scaled and rounded on the way out.
    Decimal {
        scale: u32,
        real: bool,
    },
    /// ISO `YYYY-MM-DD`.
    Date,
    Boolean,
    /// The local id of a row of the named entity.
    Reference(&'static str),
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Decimal { .. } => "decimal",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
            FieldType::Reference(_) => "reference",
        }
    }
}

/// What the host gives a record created online.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    /// The next number: one more than the largest in the table.
    NextNumber,
    /// The next number among rows with the same value of this field
    /// (sales documents are numbered per kind).
    NextNumberPer(&'static str),
    /// The host's date today.
    Today,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub ty: FieldType,
    /// A value is needed when a record is created (and null is refused).
    pub required: bool,
    /// Web users cannot change it.
    pub online_read_only: bool,
    /// Never written back to the host (also true for every field of a
    /// host-to-online entity).
    pub host_to_online: bool,
    pub assigned: Option<Assigned>,
    /// The values a text field may have, when the host restricts them.
    pub choices: Option<&'static [&'static str]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    pub name: &'static str,
    pub title: &'static str,
    /// The owning entity of line records.
    pub parent: Option<&'static str>,
    /// Maintained in the host only: read-only online, never written back,
    /// not created online.
    pub host_to_online: bool,
    pub fields: &'static [Field],
}

impl Entity {
    /// The table holding the entity's rows (the same name).
    pub fn table(&self) -> &'static str {
        self.name
    }

    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn online_create(&self) -> bool {
        !self.host_to_online
    }

    /// `SELECT id, f1, f2, ... FROM table`.
    pub fn select_sql(&self) -> String {
        let columns: Vec<&str> = self.fields.iter().map(|f| f.name).collect();
        format!("SELECT id, {} FROM {}", columns.join(", "), self.table())
    }
}

const fn field(name: &'static str, ty: FieldType) -> Field {
    Field {
        name,
        ty,
        required: false,
        online_read_only: false,
        host_to_online: false,
        assigned: None,
        choices: None,
    }
}

const fn text(name: &'static str) -> Field {
    field(name, FieldType::Text)
}
const fn integer(name: &'static str) -> Field {
    field(name, FieldType::Integer)
}
const fn cents(name: &'static str) -> Field {
    field(
        name,
        FieldType::Decimal {
            scale: 2,
            real: false,
        },
    )
}
const fn real(name: &'static str, scale: u32) -> Field {
    field(name, FieldType::Decimal { scale, real: true })
}
const fn date(name: &'static str) -> Field {
    field(name, FieldType::Date)
}
const fn boolean(name: &'static str) -> Field {
    field(name, FieldType::Boolean)
}
const fn reference(name: &'static str, entity: &'static str) -> Field {
    field(name, FieldType::Reference(entity))
}

impl Field {
    const fn required(mut self) -> Field {
        self.required = true;
        self
    }
    /// Given by the host: read-only online, never written back.
    const fn assigned(mut self, how: Assigned) -> Field {
        self.assigned = Some(how);
        self.online_read_only = true;
        self.host_to_online = true;
        self
    }
    const fn choices(mut self, values: &'static [&'static str]) -> Field {
        self.choices = Some(values);
        self
    }
    /// A field of a host-to-online entity.
    const fn host_only(mut self) -> Field {
        self.online_read_only = true;
        self.host_to_online = true;
        self
    }
}

pub const ACTIVITY_KINDS: &[&str] = &["call", "meeting", "email", "task", "note"];
pub const PROJECT_STATUSES: &[&str] = &["planned", "active", "completed", "cancelled"];
pub const SALES_DOCUMENT_KINDS: &[&str] = &["quote", "order", "invoice", "credit_note"];

/// Every synchronised entity, parents before the entities that refer to
/// them.
pub const ENTITIES: &[Entity] = &[
    Entity {
        name: "employees",
        title: "Employees",
        parent: None,
        host_to_online: true,
        fields: &[
            integer("number").required().host_only(),
            text("first_name").required().host_only(),
            text("last_name").required().host_only(),
            text("title").host_only(),
            text("email").host_only(),
            text("phone").host_only(),
            date("hired_on").host_only(),
        ],
    },
    Entity {
        name: "contacts",
        title: "Contacts",
        parent: None,
        host_to_online: false,
        fields: &[
            integer("number").required().assigned(Assigned::NextNumber),
            text("name").required(),
            boolean("is_customer"),
            boolean("is_supplier"),
            text("organisation_number"),
            text("street"),
            text("postcode"),
            text("city"),
            text("country"),
            text("phone"),
            text("email"),
            text("website"),
            integer("payment_terms_days"),
            reference("our_employee_id", "employees"),
            date("created_on").required().assigned(Assigned::Today),
        ],
    },
    Entity {
        name: "contact_persons",
        title: "Contact persons",
        parent: Some("contacts"),
        host_to_online: false,
        fields: &[
            reference("contact_id", "contacts").required(),
            text("first_name").required(),
            text("last_name").required(),
            text("title"),
            text("phone"),
            text("email"),
        ],
    },
    Entity {
        name: "products",
        title: "Products",
        parent: None,
        host_to_online: true,
        fields: &[
            text("number").required().host_only(),
            text("name").required().host_only(),
            text("unit").required().host_only(),
            cents("price_cents").required().host_only(),
            cents("cost_cents").required().host_only(),
            integer("vat_percent").host_only(),
            real("stock_quantity", 3).host_only(),
            boolean("is_active").host_only(),
        ],
    },
    Entity {
        name: "projects",
        title: "Projects",
        parent: None,
        host_to_online: false,
        fields: &[
            integer("number").required().assigned(Assigned::NextNumber),
            text("name").required(),
            reference("contact_id", "contacts"),
            reference("manager_employee_id", "employees"),
            text("status").required().choices(PROJECT_STATUSES),
            date("start_date"),
            date("end_date"),
            cents("budget_cents"),
        ],
    },
    Entity {
        name: "activities",
        title: "Activities",
        parent: None,
        host_to_online: false,
        fields: &[
            text("kind").required().choices(ACTIVITY_KINDS),
            text("subject").required(),
            reference("contact_id", "contacts"),
            reference("contact_person_id", "contact_persons"),
            reference("employee_id", "employees"),
            reference("project_id", "projects"),
            date("date").required(),
            integer("duration_minutes"),
            boolean("done"),
        ],
    },
    Entity {
        name: "sales_documents",
        title: "Sales documents",
        parent: None,
        host_to_online: false,
        fields: &[
            text("kind").required().choices(SALES_DOCUMENT_KINDS),
            integer("number")
                .required()
                .assigned(Assigned::NextNumberPer("kind")),
            reference("contact_id", "contacts").required(),
            reference("employee_id", "employees"),
            reference("project_id", "projects"),
            date("document_date").required(),
            date("due_date"),
            text("status").required(),
            text("currency"),
            cents("net_cents"),
            cents("vat_cents"),
            cents("total_cents"),
        ],
    },
    Entity {
        name: "sales_lines",
        title: "Sales lines",
        parent: Some("sales_documents"),
        host_to_online: false,
        fields: &[
            reference("document_id", "sales_documents").required(),
            integer("line_no").required(),
            reference("product_id", "products"),
            text("description").required(),
            real("quantity", 3).required(),
            cents("unit_price_cents").required(),
            real("discount_percent", 2),
            cents("amount_cents").required(),
        ],
    },
];

/// Version of the `schema.entities` answer's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// The declared entity called `name`.
pub fn entity(name: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.name == name)
}

/// Names of the declared entities, for messages.
pub fn entity_names() -> String {
    ENTITIES
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn field_json(entity: &Entity, field: &Field) -> Value {
    let host_to_online = entity.host_to_online || field.host_to_online;
    let read_only = entity.host_to_online || field.online_read_only;
    let mut out = json!({
        "name": field.name,
        "type": field.ty.name(),
        "required": field.required,
        "online": if read_only { "read_only" } else { "read_write" },
        "direction": if host_to_online { "host_to_online" } else { "two_way" },
    });
    let map = out.as_object_mut().expect("object");
    if let FieldType::Reference(target) = field.ty {
        map.insert("entity".into(), json!(target));
    }
    if let FieldType::Decimal { scale, .. } = field.ty {
        map.insert("scale".into(), json!(scale));
    }
    if field.assigned.is_some() {
        map.insert("assigned_by_host".into(), json!(true));
    }
    if let Some(choices) = field.choices {
        map.insert("choices".into(), json!(choices));
    }
    out
}

/// The `schema.entities` answer (docs/SYNC_PROTOCOL.md §1).
pub fn schema_json() -> Value {
    let entities: Vec<Value> = ENTITIES
        .iter()
        .map(|entity| {
            let fields: Vec<Value> = entity
                .fields
                .iter()
                .map(|f| field_json(entity, f))
                .collect();
            json!({
                "name": entity.name,
                "title": entity.title,
                "parent": entity.parent,
                "online_create": entity.online_create(),
                "fields": fields,
            })
        })
        .collect();
    json!({ "version": SCHEMA_VERSION, "entities": entities })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_parents_name_declared_entities_declared_earlier() {
        for (i, entity) in ENTITIES.iter().enumerate() {
            let earlier = |name: &str| ENTITIES[..=i].iter().any(|e| e.name == name);
            if let Some(parent) = entity.parent {
                assert!(earlier(parent) && parent != entity.name, "{}", entity.name);
                assert!(entity
                    .fields
                    .iter()
                    .any(|f| f.ty == FieldType::Reference(parent) && f.required));
            }
            for field in entity.fields {
                if let FieldType::Reference(target) = field.ty {
                    assert!(
                        super::entity(target).is_some(),
                        "{}.{}",
                        entity.name,
                        field.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_declaration_matches_the_company_tables() {
        let dir = tempfile::tempdir().unwrap();
        let info = crate::db::company::CompanyInfo {
            id: "c".into(),
            is_sample: false,
            currency: "NOK".into(),
            registration: Default::default(),
        };
        let (db, ()) =
            crate::db::company::CompanyDb::create_with(&dir.path().join("c.db"), &info, |_| Ok(()))
                .unwrap();
        for entity in ENTITIES {
            let mut stmt = db
                .connection()
                .prepare(&format!("PRAGMA table_info({})", entity.table()))
                .unwrap();
            let columns: Vec<String> = stmt
                .query_map([], |row| row.get::<_, String>(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let declared: Vec<&str> = std::iter::once("id")
                .chain(entity.fields.iter().map(|f| f.name))
                .collect();
            assert_eq!(columns, declared, "{}", entity.name);
        }
        assert_eq!(
            crate::db::company::RECORD_TABLES.len(),
            ENTITIES.len(),
            "every record table is declared"
        );
    }

    #[test]
    fn schema_answer_has_the_protocol_shape() {
        let schema = schema_json();
        assert_eq!(schema["version"], 1);
        let contacts = &schema["entities"][1];
        assert_eq!(contacts["name"], "contacts");
        assert_eq!(contacts["parent"], Value::Null);
        assert_eq!(contacts["online_create"], true);
        assert_eq!(
            contacts["fields"][0],
            json!({"name": "number", "type": "integer", "required": true,
                   "online": "read_only", "direction": "host_to_online",
                   "assigned_by_host": true})
        );
        assert_eq!(
            contacts["fields"][13],
            json!({"name": "our_employee_id", "type": "reference", "entity": "employees",
                   "required": false, "online": "read_write", "direction": "two_way"})
        );
        let products = &schema["entities"][3];
        assert_eq!(products["online_create"], false);
        assert!(products["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["direction"] == "host_to_online" && f["online"] == "read_only"));
        assert_eq!(schema["entities"][7]["parent"], "sales_documents");
        assert_eq!(schema["entities"][2]["parent"], "contacts");
    }
}
