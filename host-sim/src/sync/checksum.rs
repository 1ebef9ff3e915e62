//! The canonical checksum of GUARANTEES.md ("the test oracle"), host side.
//!
//! A row is serialised canonically from its **global** id, its normalised
//! fields and its deleted flag ([`canonical_row`]); an entity's digest is
//! the SHA-256 of its rows' serialisations sorted by id ([`digest`]).
//! The online side serialises its rows the same way, so equal data gives
//! equal digests.
//!
//! The host does not know global ids: the plugin keeps the map from local
//! to global ids. [`entity_rows`] therefore takes the mapping as a
//! function, applied to the row's own id and to every reference field.
//! `host-sim checksum` passes the identity (the local id as text), which
//! is useful for comparing two host databases but not for comparing with
//! the online copy; the engine's tests pass the plugin's id map.
//!
//! Normalisation: fields are sorted by name; a null field is left out (so
//! "absent" and "null" are equal); numbers are integers (decimals travel in
//! minor units), booleans are `true`/`false`, text is kept exactly.

use std::fmt::Write as _;

use rusqlite::Connection;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::data::{self, Fields};
use super::schema::{Entity, FieldType};
use crate::error::Result;

/// The canonical text of one row: compact JSON with sorted keys,
/// `{"deleted":b,"fields":{...},"id":"..."}`.
pub fn canonical_row(global_id: &str, fields: &Fields, deleted: bool) -> String {
    let mut names: Vec<&String> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k)
        .collect();
    names.sort();
    let mut out = String::with_capacity(64 + 16 * names.len());
    let _ = write!(out, "{{\"deleted\":{deleted},\"fields\":{{");
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String((*name).clone()).to_string());
        out.push(':');
        out.push_str(&canonical_value(&fields[name.as_str()]));
    }
    out.push_str("},\"id\":");
    out.push_str(&Value::String(global_id.to_owned()).to_string());
    out.push('}');
    out
}

fn canonical_value(value: &Value) -> String {
    match value {
        // An integral float (1.0) and an integer (1) are the same number.
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
            _ => n.to_string(),
        },
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        canonical_value(&map[k.as_str()])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical_value).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

/// Row count and SHA-256 (lower-case hex) over `(id, canonical row)`
/// pairs, sorted by id (then by text, so duplicates are counted and
/// hashed deterministically). Each row is hashed followed by a newline.
pub fn digest(mut rows: Vec<(String, String)>) -> (u64, String) {
    rows.sort();
    let mut hasher = Sha256::new();
    for (_, row) in &rows {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
    }
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    (rows.len() as u64, hex)
}

/// Every row of `entity` as `(global id, canonical row)`, with the row's id
/// and every reference field mapped by `global_id(entity, local_id)`.
pub fn entity_rows(
    conn: &Connection,
    entity: &Entity,
    global_id: &dyn Fn(&str, i64) -> String,
) -> Result<Vec<(String, String)>> {
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let (page, done) = data::page(conn, entity, after, data::MAX_BATCH)?;
        for (local_id, mut fields) in page {
            after = Some(local_id);
            for field in entity.fields {
                if let FieldType::Reference(target) = field.ty {
                    if let Some(id) = fields.get(field.name).and_then(Value::as_i64) {
                        fields.insert(field.name.to_owned(), Value::String(global_id(target, id)));
                    }
                }
            }
            let id = global_id(entity.name, local_id);
            let row = canonical_row(&id, &fields, false);
            rows.push((id, row));
        }
        if done {
            return Ok(rows);
        }
    }
}

/// Count and digest of one entity, ids mapped by `global_id`.
pub fn entity_digest(
    conn: &Connection,
    entity: &Entity,
    global_id: &dyn Fn(&str, i64) -> String,
) -> Result<(u64, String)> {
    Ok(digest(entity_rows(conn, entity, global_id)?))
}

/// The mapping `host-sim checksum` uses: the local id as text.
pub fn local_ids(_entity: &str, local_id: i64) -> String {
    local_id.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> Fields {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn canonical_rows_sort_fields_and_drop_nulls() {
        let a = fields(json!({"name": "Å \"AS\"", "city": null, "number": 7, "active": true}));
        let b = fields(json!({"number": 7.0, "active": true, "name": "Å \"AS\""}));
        let text = canonical_row("g-1", &a, false);
        assert_eq!(
            text,
            r#"{"deleted":false,"fields":{"active":true,"name":"Å \"AS\"","number":7},"id":"g-1"}"#
        );
        assert_eq!(text, canonical_row("g-1", &b, false));
        assert_ne!(text, canonical_row("g-1", &a, true));
        assert_ne!(text, canonical_row("g-2", &a, false));
        let c = fields(json!({"number": 8, "active": true, "name": "Å \"AS\""}));
        assert_ne!(text, canonical_row("g-1", &c, false));
    }

    #[test]
    fn digest_is_independent_of_order_and_sees_duplicates() {
        let row = |id: &str| (id.to_owned(), canonical_row(id, &Fields::new(), false));
        let (n, one) = digest(vec![row("a"), row("b")]);
        let (m, two) = digest(vec![row("b"), row("a")]);
        assert_eq!((n, &one), (m, &two));
        assert_eq!(one.len(), 64);
        let (k, three) = digest(vec![row("b"), row("a"), row("a")]);
        assert_eq!(k, 3);
        assert_ne!(three, one);
        // The empty set has the SHA-256 of nothing.
        assert_eq!(
            digest(Vec::new()),
            (
                0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
            )
        );
    }
}
