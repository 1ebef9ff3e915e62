//! The canonical checksum of GUARANTEES.md ("the test oracle"), host side.
//!
//! A row is serialised canonically from its **global** id, its normalised
//! fields and its deleted flag (`od_protocol::canonical_line`,
//! docs/SYNC_PROTOCOL.md §7); an entity's digest is the SHA-256 of its rows'
//! lines sorted by id ([`digest`]). The service serialises its rows with the
//! same code, so equal data gives equal digests.
//!
//! The host does not know global ids: the plugin keeps the map from local
//! to global ids. [`entity_rows`] therefore takes the mapping as a
//! function, applied to the row's own id and to every reference field.
//! `host-sim checksum` passes the identity (the local id as text), which
//! is useful for comparing two host databases but not for comparing with
//! the online copy; the engine's tests pass the plugin's id map.
//!
//! Normalisation (§7): fields are sorted by name; a null field is left out
//! (so "absent" and "null" are equal); numbers as serde_json writes them
//! (decimals travel as integer minor units), booleans are `true`/`false`,
//! text is kept exactly.

use od_protocol::{canonical_line, Checksum};
use rusqlite::Connection;
use serde_json::Value;

use super::data;
use super::schema::{Entity, FieldType};
use crate::error::Result;

/// Row count and SHA-256 (lower-case hex) over `(id, canonical line)`
/// pairs, sorted by id (then by text, so duplicates are counted and
/// hashed deterministically).
pub fn digest(mut rows: Vec<(String, String)>) -> (u64, String) {
    rows.sort();
    let mut checksum = Checksum::default();
    for (_, line) in &rows {
        checksum.add_line(line);
    }
    (checksum.count, checksum.finish())
}

/// Every row of `entity` as `(global id, canonical line)`, with the row's id
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
            let row = canonical_line(&id, &fields, false);
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
    use crate::sync::data::Fields;
    use serde_json::json;

    fn fields(value: Value) -> Fields {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn canonical_rows_sort_fields_and_drop_nulls() {
        let a = fields(json!({"name": "Å \"AS\"", "city": null, "number": 7, "active": true}));
        let b = fields(json!({"number": 7, "active": true, "name": "Å \"AS\""}));
        let text = canonical_line("g-1", &a, false);
        assert_eq!(
            text,
            "[\"g-1\",{\"active\":true,\"name\":\"Å \\\"AS\\\"\",\"number\":7},false]\n"
        );
        assert_eq!(text, canonical_line("g-1", &b, false));
        assert_ne!(text, canonical_line("g-1", &a, true));
        assert_ne!(text, canonical_line("g-2", &a, false));
        let c = fields(json!({"number": 8, "active": true, "name": "Å \"AS\""}));
        assert_ne!(text, canonical_line("g-1", &c, false));
    }

    #[test]
    fn digest_is_independent_of_order_and_sees_duplicates() {
        let row = |id: &str| (id.to_owned(), canonical_line(id, &Fields::new(), false));
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
