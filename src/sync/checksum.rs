//! The test oracle of GUARANTEES.md, host side: per entity, the canonical
//! checksum (docs/SYNC_PROTOCOL.md §7) of the host's records as they should
//! be online, to compare with the service's `GET /api/v1/sync/checksum`.
//!
//! Test-only for now; the serialisation is the one the service uses
//! (`od_protocol::Checksum`, shared), so both sides hash the same bytes for
//! the same data.

use super::convert::{self, Fields};
use super::first_sync::HostRecords;
use super::schema::{travel_order, Schema};
use super::state::State;
use od_client::Uuid;
use od_protocol::Checksum;
use std::collections::BTreeMap;

/// One entity's count and digest, and the host records that have no
/// global id (never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDigest {
    pub count: u64,
    pub sha256: String,
    pub unsent: Vec<String>,
}

/// The host's checksum per entity, by reading every record through
/// `records.page` and mapping ids with the plugin's state.
pub fn host_checksums<H: HostRecords>(
    schema: &Schema,
    host: &H,
    state: &State,
) -> BTreeMap<String, HostDigest> {
    let mut digests = BTreeMap::new();
    for entity in travel_order(schema).expect("a valid schema") {
        let mut lines: Vec<(Uuid, serde_json::Map<String, serde_json::Value>)> = Vec::new();
        let mut unsent = Vec::new();
        let mut after = None;
        loop {
            let page = host
                .page(&entity.name, after.as_ref(), 1_000)
                .unwrap_or_else(|e| panic!("records.page: {e}"));
            for (local_id, fields) in &page.records {
                let key = convert::local_key(local_id).expect("a local id");
                let Some(global) = state.global_id(&entity.name, &key).expect("state") else {
                    unsent.push(key);
                    continue;
                };
                let online: Fields = convert::to_online::<convert::ConvertError>(
                    entity,
                    fields,
                    |target, target_key| {
                        Ok(state
                            .global_id(target, target_key)
                            .expect("state")
                            .unwrap_or_else(|| format!("unsent:{target_key}")))
                    },
                )
                .expect("convertible");
                lines.push((
                    Uuid::parse_str(&global).expect("a UUID"),
                    online.into_iter().collect(),
                ));
            }
            after = page.records.last().map(|(id, _)| id.clone());
            if page.done || page.records.is_empty() {
                break;
            }
        }
        lines.sort_by_key(|(id, _)| id.hyphenated().to_string());
        let mut checksum = Checksum::default();
        for (id, fields) in &lines {
            checksum.add(id, fields, false);
        }
        let count = checksum.count;
        digests.insert(
            entity.name.clone(),
            HostDigest {
                count,
                sha256: checksum.finish(),
                unsent,
            },
        );
    }
    digests
}
