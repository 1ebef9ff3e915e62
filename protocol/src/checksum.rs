//! The canonical checksum of the test oracle (docs/SYNC_PROTOCOL.md §7):
//! per entity, the SHA-256 of one canonical line per record, the records
//! sorted by global id as text. The service and the hosts compute it with
//! this code, so equal data gives equal digests.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::fmt::Display;

/// Writes `value` canonically: object keys sorted, no whitespace, strings
/// and numbers as serde_json writes them.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// One record's line of the checksum (docs/SYNC_PROTOCOL.md §7):
/// `["<global id>",{fields without nulls, keys sorted},<deleted>]\n`.
///
/// `global_id` is written as its text (a `Uuid` displays as the lower-case
/// hyphenated form §7 asks for), as a JSON string.
pub fn canonical_line(
    global_id: impl Display,
    fields: &Map<String, Value>,
    deleted: bool,
) -> String {
    let normalised: Map<String, Value> = fields
        .iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut line = String::with_capacity(64 + fields.len() * 16);
    line.push('[');
    line.push_str(&Value::String(global_id.to_string()).to_string());
    line.push(',');
    write_canonical(&Value::Object(normalised), &mut line);
    line.push_str(if deleted { ",true]\n" } else { ",false]\n" });
    line
}

/// A running checksum of one entity; feed it records sorted by global id.
#[derive(Default)]
pub struct Checksum {
    hasher: Sha256,
    pub count: u64,
}

impl Checksum {
    /// Adds one record's [`canonical_line`].
    pub fn add(&mut self, global_id: impl Display, fields: &Map<String, Value>, deleted: bool) {
        self.add_line(&canonical_line(global_id, fields, deleted));
    }

    /// Adds a line already made by [`canonical_line`].
    pub fn add_line(&mut self, line: &str) {
        self.hasher.update(line.as_bytes());
        self.count += 1;
    }

    /// The SHA-256 of the lines, lower-case hex.
    pub fn finish(self) -> String {
        self.hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_lines_sort_keys_and_drop_nulls() {
        let fields =
            json!({"b": 1, "a": "x\"y", "n": null, "o": {"z": [1, {"y": 2, "x": 3}], "c": true}});
        assert_eq!(
            canonical_line(
                "00000000-0000-0000-0000-000000000000",
                fields.as_object().unwrap(),
                false
            ),
            "[\"00000000-0000-0000-0000-000000000000\",{\"a\":\"x\\\"y\",\"b\":1,\"o\":{\"c\":true,\"z\":[1,{\"x\":3,\"y\":2}]}},false]\n"
        );
    }

    #[test]
    fn no_lines_give_the_sha256_of_nothing() {
        let checksum = Checksum::default();
        assert_eq!(checksum.count, 0);
        assert_eq!(
            checksum.finish(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
