//! The sync computer's endpoints (docs/SYNC_PROTOCOL.md §4–§7,
//! docs/ONLINE_API.md "Synchronisation"): lease, schema, push, pull
//! (long-poll), ack, status, the records download (taking over) and
//! checksum, all as the device.

use crate::client::{Call, Client};
use crate::device::DeviceSession;
use crate::error::ClientError;
use crate::retry::Idempotency;
use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_ENCODING};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::time::Duration;

/// Push bodies larger than this go gzip-compressed
/// (`Content-Encoding: gzip`); smaller ones are not worth the CPU.
pub const GZIP_THRESHOLD: usize = 8 * 1024;

/// The longest long-poll wait the service grants (`wait` ≤ 30 s).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// A page of changes may be far larger than any other answer (5,000 whole
/// records at most); still bounded.
const MAX_CHANGES_ANSWER_BYTES: usize = 64 * 1024 * 1024;

const X_FENCING: HeaderName = HeaderName::from_static("x-fencing");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const X_HOST_POSITION: HeaderName = HeaderName::from_static("x-host-position");

// --- Lease --------------------------------------------------------------------------

/// `POST /api/v1/sync/lease`: this computer is the company's sync computer
/// until `expires_at` (60 s; renew by asking again). Every sync write
/// carries `fencing`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Lease {
    pub computer_id: String,
    pub fencing: u64,
    pub expires_at: DateTime<Utc>,
}

/// The company's lease as `GET /api/v1/sync/status` reports it: there may
/// be no sync computer (`computer_id` null) or no active lease
/// (`expires_at` null).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LeaseState {
    pub computer_id: Option<String>,
    pub fencing: u64,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct LeaseBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    computer_id: Option<&'a str>,
}

// --- Schema -------------------------------------------------------------------------

/// The host's declared schema (docs/SYNC_PROTOCOL.md §1): the wire types
/// are shared with the service (od-protocol).
pub use od_protocol::{Direction, EntityDef, FieldDef, FieldType, OnlineAccess, Schema};

/// `PUT /api/v1/sync/schema`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SchemaStored {
    pub version: u32,
    /// How many entities were stored.
    pub entities: usize,
}

// --- Push and pull -----------------------------------------------------------------

/// The push and pull bodies (docs/SYNC_PROTOCOL.md §4–§5): one definition
/// with the service (od-protocol), so both sides write and read the same
/// JSON. The service additionally refuses a `base_version` above
/// `i64::MAX` (it stores versions as SQLite integers); no answer ever
/// names one.
pub use od_protocol::{
    Change, ChangeOp, ChangesPage, Conflict, Fields, PushAnswer, PushMode, PushRequest, PushResult,
    RemoteChange,
};

// --- Ack, status, checksum ------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct CursorBody {
    cursor: u64,
}

/// `GET /api/v1/sync/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SyncStatus {
    /// The company's newest sequence number.
    pub sequence: u64,
    /// This device's acknowledged cursor.
    pub acknowledged: u64,
    /// The highest cursor any device of the company has acknowledged (0 if
    /// none; also 0 from a service that predates the field). A computer
    /// taking over synchronisation pulls after it: the old sync computer
    /// applied everything up to there.
    #[serde(default)]
    pub last_acknowledged: u64,
    /// Whether a schema has been stored.
    pub schema: bool,
    pub lease: LeaseState,
    /// The host marker of restore detection (docs/SYNC_PROTOCOL.md §9).
    #[serde(default)]
    pub host: HostMarker,
    pub entities: Vec<EntityCounts>,
}

/// What the service keeps of the host for restore detection
/// (docs/SYNC_PROTOCOL.md §9): the newest host change-log position pushed
/// (or set) and the plugin's generation marker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMarker {
    pub position: Option<u64>,
    /// Opaque to the service; 1 to 200 characters, one line.
    pub generation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntityCounts {
    pub entity: String,
    pub records: u64,
    pub deleted: u64,
}

/// The canonical checksum of one entity's live records online
/// (docs/SYNC_PROTOCOL.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntityChecksum {
    pub entity: String,
    pub count: u64,
    /// Lower-case hex SHA-256 of the canonical lines.
    pub sha256: String,
}

#[derive(Deserialize)]
struct ChecksumAnswer {
    entities: Vec<EntityChecksum>,
}

// --- Records (taking over) ---------------------------------------------------------

/// `GET /api/v1/sync/records`' page and records: one definition with the
/// service (od-protocol). A record's `web_fields` lists the fields — and
/// `"*"` for the deleted flag — whose last change came from a web user
/// rather than a push, each as a [`WebChange`] (its company sequence
/// number and the record version it produced).
pub use od_protocol::{SyncRecord, SyncRecordsPage, WebChange};

/// The name this crate gave [`SyncRecord`] first; kept for compatibility.
pub type OnlineRecord = SyncRecord;

// --- Wire helpers -------------------------------------------------------------------

/// The body as sent: gzip-compressed when it is larger than
/// [`GZIP_THRESHOLD`] (then `true`), otherwise as it is.
pub(crate) fn encode_body(json: Vec<u8>) -> (Vec<u8>, bool) {
    if json.len() <= GZIP_THRESHOLD {
        return (json, false);
    }
    let mut encoder = GzEncoder::new(Vec::with_capacity(json.len() / 4), Compression::fast());
    // Writing into a Vec cannot fail.
    match encoder.write_all(&json).and_then(|()| encoder.finish()) {
        Ok(compressed) => (compressed, true),
        Err(_) => (json, false),
    }
}

/// The long-poll wait asked of the service (whole seconds, at most
/// [`MAX_WAIT`]) and the time allowed for the whole attempt: that wait
/// plus the client's normal time for a request, so that a long poll is not
/// cut off by the timeout meant for ordinary requests.
pub(crate) fn long_poll_timing(wait: Duration, request_timeout: Duration) -> (u64, Duration) {
    let seconds = wait.min(MAX_WAIT).as_secs();
    (
        seconds,
        Duration::from_secs(seconds).saturating_add(request_timeout),
    )
}

fn fencing_header(fencing: u64) -> HeaderValue {
    HeaderValue::from(fencing)
}

/// A key the service accepts: 1 to 200 visible ASCII characters.
fn idempotency_header(key: &str) -> Result<HeaderValue, ClientError> {
    let valid =
        !key.is_empty() && key.len() <= 200 && key.bytes().all(|byte| byte.is_ascii_graphic());
    valid
        .then(|| HeaderValue::from_str(key).ok())
        .flatten()
        .ok_or_else(|| ClientError::Refused {
            code: "invalid_request".to_owned(),
            message: "The idempotency key of a push must be 1 to 200 visible ASCII characters."
                .to_owned(),
        })
}

impl ClientError {
    /// The service refused the lease: another computer is the company's
    /// sync computer (until a super user moves synchronisation).
    pub fn is_lease_held(&self) -> bool {
        self.is_refused_with("lease_held")
    }

    /// The service refused a sync write: the fencing number is not the
    /// current lease's (expired, or synchronisation was moved). Ask for the
    /// lease again before writing.
    pub fn is_stale_fencing(&self) -> bool {
        self.is_refused_with("stale_fencing")
    }

    /// No schema has been stored yet (push or `GET` schema).
    pub fn is_schema_missing(&self) -> bool {
        self.is_refused_with("schema_missing")
    }

    /// The push's host position is behind the newest one pushed before:
    /// the company database was restored (docs/SYNC_PROTOCOL.md §9).
    /// Synchronisation must stop until Update connection reconciles.
    pub fn is_host_restored(&self) -> bool {
        self.is_refused_with("host_restored")
    }

    /// The company was disconnected: nothing of its data is online and no
    /// device can be made until it is registered again.
    pub fn is_company_not_connected(&self) -> bool {
        self.is_refused_with("company_not_connected")
    }

    /// The registration cannot be undone: the company was used (data
    /// synchronised, or other users). Disconnect it instead.
    pub fn is_company_in_use(&self) -> bool {
        self.is_refused_with("company_in_use")
    }

    fn is_refused_with(&self, wanted: &str) -> bool {
        matches!(self, ClientError::Refused { code, .. } if code == wanted)
    }
}

impl Client {
    /// `POST /api/v1/sync/lease`: acquires or renews the company's sync
    /// lease for this device's computer (`computer_id`, if given, must be
    /// the device's own). Another computer holding it: `is_lease_held()`.
    pub async fn lease(
        &self,
        device: &DeviceSession,
        computer_id: Option<&str>,
    ) -> Result<Lease, ClientError> {
        // Asking twice renews the same lease (same fencing number).
        let mut call = Call::new(Method::POST, "api/v1/sync/lease", Idempotency::Idempotent)
            .json(&LeaseBody { computer_id });
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `PUT /api/v1/sync/schema` under the lease `fencing`.
    pub async fn put_schema(
        &self,
        device: &DeviceSession,
        fencing: u64,
        schema: &Schema,
    ) -> Result<SchemaStored, ClientError> {
        let mut call = Call::new(Method::PUT, "api/v1/sync/schema", Idempotency::Idempotent)
            .header(X_FENCING, fencing_header(fencing))
            .json(schema);
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `GET /api/v1/sync/schema`; none stored yet: `is_schema_missing()`.
    pub async fn schema(&self, device: &DeviceSession) -> Result<Schema, ClientError> {
        let mut call = Call::get("api/v1/sync/schema");
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `POST /api/v1/sync/push` under the lease `fencing`, once per
    /// `idempotency_key` (1–200 visible ASCII characters). Bodies above
    /// [`GZIP_THRESHOLD`] are sent gzip-compressed.
    pub async fn push(
        &self,
        device: &DeviceSession,
        fencing: u64,
        idempotency_key: &str,
        request: &PushRequest,
    ) -> Result<PushAnswer, ClientError> {
        self.push_inner(device, fencing, idempotency_key, request, None)
            .await
    }

    /// [`Client::push`] that also tells the service the host change-log
    /// position this batch reaches (`X-Host-Position`,
    /// docs/SYNC_PROTOCOL.md §9): the service keeps the newest, and refuses
    /// a push behind it (`is_host_restored()`, nothing applied) — after
    /// the fence and the idempotency key, so a batch sent again still gets
    /// its stored answer.
    pub async fn push_with_host_position(
        &self,
        device: &DeviceSession,
        fencing: u64,
        idempotency_key: &str,
        request: &PushRequest,
        host_position: u64,
    ) -> Result<PushAnswer, ClientError> {
        self.push_inner(
            device,
            fencing,
            idempotency_key,
            request,
            Some(host_position),
        )
        .await
    }

    async fn push_inner(
        &self,
        device: &DeviceSession,
        fencing: u64,
        idempotency_key: &str,
        request: &PushRequest,
        host_position: Option<u64>,
    ) -> Result<PushAnswer, ClientError> {
        let key = idempotency_header(idempotency_key)?;
        // Straight from the typed request; it has only strings, numbers and
        // JSON values, so serialising cannot fail.
        let json = serde_json::to_vec(request).unwrap_or_default();
        let (body, gzip) = encode_body(json);
        // Safe to send again after a lost answer (connection broken, timeout,
        // 5xx): the service stores the idempotency key and its answer in the
        // same transaction as the data, so a repeat either finds the key and
        // returns the stored answer, applying nothing, or finds no key
        // because nothing was committed — and applies the batch once.
        let mut call = Call::new(Method::POST, "api/v1/sync/push", Idempotency::Idempotent)
            .header(X_FENCING, fencing_header(fencing))
            .header(IDEMPOTENCY_KEY, key)
            .body(body);
        if gzip {
            call = call.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        if let Some(position) = host_position {
            call = call.header(X_HOST_POSITION, HeaderValue::from(position));
        }
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `GET /api/v1/sync/changes`: at most `limit` records changed after
    /// the cursor `after` (other devices' pushes and web edits; this
    /// device's own pushes are left out). With a non-zero `wait` (at most
    /// 30 s) the service holds the request until something changes or the
    /// wait is over (then no changes, `cursor` = `after`); this attempt's
    /// time limit is the wait plus the client's normal request time.
    ///
    /// Cancellation-safe: it only reads, so dropping the future (e.g. at
    /// shutdown) loses nothing; ask again with the same cursor.
    pub async fn changes(
        &self,
        device: &DeviceSession,
        after: u64,
        limit: u32,
        wait: Duration,
    ) -> Result<ChangesPage, ClientError> {
        let (seconds, timeout) = long_poll_timing(wait, self.request_timeout);
        let mut call = Call::get("api/v1/sync/changes")
            .query(format!("after={after}&limit={limit}&wait={seconds}"))
            .timeout(timeout)
            .max_answer(MAX_CHANGES_ANSWER_BYTES);
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `POST /api/v1/sync/ack` under the lease `fencing`: everything up to
    /// `cursor` is applied durably on the host. Answers the stored cursor
    /// (it never goes back).
    pub async fn ack(
        &self,
        device: &DeviceSession,
        fencing: u64,
        cursor: u64,
    ) -> Result<u64, ClientError> {
        // The stored cursor only moves forward: repeating is harmless.
        let mut call = Call::new(Method::POST, "api/v1/sync/ack", Idempotency::Idempotent)
            .header(X_FENCING, fencing_header(fencing))
            .json(&CursorBody { cursor });
        Ok(self
            .json_of::<CursorBody>(&self.send_as_device(device, &mut call).await?)?
            .cursor)
    }

    /// `PUT /api/v1/sync/host` under the lease `fencing`: sets the
    /// company's host marker (docs/SYNC_PROTOCOL.md §9) — a value given
    /// replaces the stored one (the position may go down, when Update
    /// connection has reconciled a restored host), `None` keeps it (a new
    /// generation alone). Answers the marker as stored.
    pub async fn set_host_marker(
        &self,
        device: &DeviceSession,
        fencing: u64,
        marker: &HostMarker,
    ) -> Result<HostMarker, ClientError> {
        // Setting the same values again changes nothing.
        let mut call = Call::new(Method::PUT, "api/v1/sync/host", Idempotency::Idempotent)
            .header(X_FENCING, fencing_header(fencing))
            .json(marker);
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `GET /api/v1/sync/status`.
    pub async fn sync_status(&self, device: &DeviceSession) -> Result<SyncStatus, ClientError> {
        let mut call = Call::get("api/v1/sync/status");
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `GET /api/v1/sync/records`: at most `limit` (1–5000; the service
    /// caps it) records of `entity` with their host keys, tombstones
    /// included, ordered by global id, after the global id `after` (from
    /// the start when `None`). For a computer taking over synchronisation:
    /// it matches the host's rows to the online records instead of sending
    /// everything again. Page on with `next` until it is `None`. Needs no
    /// lease. An entity not in the schema: `Refused` (`invalid_request`);
    /// no schema yet: `is_schema_missing()`.
    pub async fn sync_records(
        &self,
        device: &DeviceSession,
        entity: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<SyncRecordsPage, ClientError> {
        // Finished before the request: the serializer is not `Send`.
        let query = {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("entity", entity);
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            query.append_pair("limit", &limit.to_string());
            query.finish()
        };
        let mut call = Call::get("api/v1/sync/records")
            .query(query)
            .max_answer(MAX_CHANGES_ANSWER_BYTES);
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `GET /api/v1/sync/checksum`: per entity with live records online.
    pub async fn checksum(
        &self,
        device: &DeviceSession,
    ) -> Result<Vec<EntityChecksum>, ClientError> {
        let mut call = Call::get("api/v1/sync/checksum");
        Ok(self
            .json_of::<ChecksumAnswer>(&self.send_as_device(device, &mut call).await?)?
            .entities)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use uuid::Uuid;

    #[test]
    fn small_bodies_go_plain_large_ones_gzip() {
        let small = vec![b'x'; GZIP_THRESHOLD];
        assert_eq!(encode_body(small.clone()), (small, false));
        let request = PushRequest {
            mode: PushMode::Initial,
            changes: (0..200)
                .map(|n| Change {
                    entity: "contacts".into(),
                    global_id: Uuid::new_v4(),
                    op: ChangeOp::Upsert,
                    base_version: None,
                    fields: Fields::from([("name".into(), format!("Contact {n}").into())]),
                    changed: None,
                    host_key: None,
                })
                .collect(),
        };
        let json = serde_json::to_vec(&request).unwrap();
        assert!(json.len() > GZIP_THRESHOLD);
        let (sent, gzip) = encode_body(json.clone());
        assert!(gzip);
        assert!(
            sent.len() < json.len() / 2,
            "{} of {}",
            sent.len(),
            json.len()
        );
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&sent[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, json);
    }

    #[test]
    fn a_long_poll_gets_its_wait_on_top_of_the_request_time() {
        let normal = Duration::from_secs(10);
        assert_eq!(
            long_poll_timing(Duration::from_secs(25), normal),
            (25, Duration::from_secs(35))
        );
        assert_eq!(long_poll_timing(Duration::ZERO, normal), (0, normal));
        // The service waits at most 30 s; so does the client.
        assert_eq!(
            long_poll_timing(Duration::from_secs(600), normal),
            (30, Duration::from_secs(40))
        );
        assert_eq!(
            long_poll_timing(Duration::from_millis(2900), normal),
            (2, Duration::from_secs(12))
        );
    }

    #[test]
    fn the_status_of_an_older_service_has_last_acknowledged_zero() {
        let status: SyncStatus = serde_json::from_value(serde_json::json!({
            "sequence": 5, "acknowledged": 3, "schema": true,
            "lease": {"computer_id": null, "fencing": 0, "expires_at": null},
            "entities": []
        }))
        .unwrap();
        assert_eq!(status.last_acknowledged, 0);
    }

    #[test]
    fn a_records_page_reads_the_documented_shape() {
        let id = Uuid::new_v4();
        let page: SyncRecordsPage = serde_json::from_value(serde_json::json!({
            "records": [{"global_id": id, "host_key": null, "version": 2, "deleted": true,
                         "fields": {"name": "Ann"},
                         "web_fields": {"name": {"seq": 42, "version": 2},
                                        "*": {"seq": 50, "version": 3}}}],
            "next": null
        }))
        .unwrap();
        let record = &page.records[0];
        assert_eq!(record.global_id, id);
        assert_eq!(record.host_key, None);
        assert!(record.deleted);
        assert_eq!(
            record.web_fields["*"],
            WebChange {
                seq: 50,
                version: 3
            }
        );
        assert_eq!(record.web_fields["name"].version, 2);
        assert_eq!(page.next, None);
    }

    #[test]
    fn idempotency_keys_are_checked_before_sending() {
        assert!(idempotency_header("contacts:1-1000").is_ok());
        for bad in ["", "with space", "ä", &"k".repeat(201)] {
            let error = idempotency_header(bad).unwrap_err();
            assert_eq!(error.code(), Some("invalid_request"), "{bad:?}");
        }
    }

    #[test]
    fn sync_refusals_are_recognised_by_code() {
        let refused = |code: &str| ClientError::Refused {
            code: code.into(),
            message: "x".into(),
        };
        assert!(refused("lease_held").is_lease_held());
        assert!(!refused("lease_held").is_stale_fencing());
        assert!(refused("stale_fencing").is_stale_fencing());
        assert!(refused("schema_missing").is_schema_missing());
        assert!(refused("host_restored").is_host_restored());
        assert!(refused("company_not_connected").is_company_not_connected());
        assert!(refused("company_in_use").is_company_in_use());
        assert!(!refused("company_in_use").is_company_not_connected());
        assert!(!ClientError::Auth {
            code: "stale_fencing".into(),
            message: "x".into()
        }
        .is_stale_fencing());
    }
}
