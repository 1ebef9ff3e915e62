//! The sync computer's endpoints (docs/SYNC_PROTOCOL.md §4): schema, lease,
//! push, pull (long-poll), ack, status, the records with their host keys
//! (for a computer taking over) and the checksum of the test oracle.
//! All need a device token; the device's company is the only one reached.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::DeviceCaller;
use super::types::time_text;
use super::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::model::Device;
use crate::store::{Fence, Fenced, HostMarker, Lease, LeaseOutcome, PushOutcome};
use crate::sync::{
    wire_number, ChangesPage, PushAnswer, PushRequest, RemoteChange, Schema, StoredRecord,
    SyncRecord, SyncRecordsPage, WebChange, DEFAULT_PAGE, LEASE_SECONDS, MAX_BASE_VERSION,
    MAX_HOST_KEY_CHARS, MAX_PAGE, MAX_WAIT_SECONDS, SYNC_BODY_LIMIT,
};

/// Per company, the newest sequence number written; pulls waiting for
/// news watch it (no polling of the database).
#[derive(Default)]
pub struct SyncEvents(Mutex<HashMap<Uuid, watch::Sender<i64>>>);

impl SyncEvents {
    pub fn subscribe(&self, company: Uuid) -> watch::Receiver<i64> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(company)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Ends every waiting pull (they answer "nothing new"): at shutdown,
    /// so that graceful shutdown does not wait out long polls.
    pub fn close_all(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub fn notify(&self, company: Uuid, seq: i64) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = map.get(&company) {
            sender.send_replace(seq);
        }
    }
}

/// A JSON body of a sync endpoint: `Content-Type: application/json`,
/// optionally `Content-Encoding: gzip`, at most 16 MiB (compressed and
/// decompressed). Decompressing and parsing run on the blocking pool.
pub struct SyncJson<T>(pub T);

fn too_large() -> ApiError {
    ApiError::with_message(
        ErrorCode::BodyTooLarge,
        format!(
            "The request is too large: at most {} MiB are accepted.",
            SYNC_BODY_LIMIT / (1024 * 1024)
        ),
    )
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for SyncJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &AppState) -> Result<Self, ApiError> {
        let headers = request.headers();
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().to_ascii_lowercase());
        let gzip = match encoding.as_deref() {
            None | Some("identity") => false,
            Some("gzip") => true,
            Some(_) => {
                return Err(ApiError::with_message(
                    ErrorCode::UnsupportedMediaType,
                    "The request body must be JSON, plain or gzip-compressed.",
                ))
            }
        };
        if !is_json {
            return Err(ErrorCode::UnsupportedMediaType.into());
        }
        let bytes: Bytes = axum::body::to_bytes(request.into_body(), SYNC_BODY_LIMIT)
            .await
            .map_err(|_| too_large())?;
        tokio::task::spawn_blocking(move || {
            let plain = if gzip {
                let mut plain = Vec::with_capacity(bytes.len() * 4);
                flate2::read::GzDecoder::new(&bytes[..])
                    .take(SYNC_BODY_LIMIT as u64 + 1)
                    .read_to_end(&mut plain)
                    .map_err(|_| {
                        ApiError::with_message(
                            ErrorCode::InvalidRequest,
                            "The request body is not valid gzip.",
                        )
                    })?;
                if plain.len() > SYNC_BODY_LIMIT {
                    return Err(too_large());
                }
                plain
            } else {
                bytes.to_vec()
            };
            serde_json::from_slice(&plain)
                .map(SyncJson)
                .map_err(|error| {
                    let message = if error.is_data() {
                        "The request is not valid: a field is missing or has the wrong type."
                    } else {
                        "The request is not valid JSON."
                    };
                    ApiError::with_message(ErrorCode::InvalidRequest, message)
                })
        })
        .await
        .map_err(ApiError::internal)?
    }
}

/// The lease this request claims (`X-Fencing`).
fn fence(state: &AppState, device: &Device, headers: &HeaderMap) -> ApiResult<Fence> {
    let fencing = headers
        .get("x-fencing")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            ApiError::with_message(
                ErrorCode::InvalidRequest,
                "The header X-Fencing (the lease's fencing number) is missing or not a number.",
            )
        })?;
    Ok(Fence {
        computer_id: device.computer_id.clone(),
        fencing,
        now: state.now(),
    })
}

fn stale() -> ApiError {
    ErrorCode::StaleFencing.into()
}

/// The company's schema, parsed; `schema_missing` when none was sent.
pub(super) async fn company_schema(state: &AppState, company: Uuid) -> ApiResult<Schema> {
    let text = state
        .store
        .sync_schema(company)
        .await?
        .ok_or(ErrorCode::SchemaMissing)?;
    serde_json::from_str(&text).map_err(ApiError::internal)
}

#[derive(Serialize, ToSchema)]
pub struct SchemaAnswer {
    pub version: u32,
    pub entities: usize,
}

/// Store the company's schema (as declared by the host). Needs the lease.
#[utoipa::path(
    put, path = "/api/v1/sync/schema", tag = "Sync",
    security(("bearer" = [])),
    params(("X-Fencing" = i64, Header, description = "The lease's fencing number")),
    request_body = Schema,
    responses(
        (status = 200, body = SchemaAnswer),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a device token)", body = ErrorBody),
        (status = 409, description = "`stale_fencing`", body = ErrorBody),
    )
)]
pub async fn put_schema(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
    headers: HeaderMap,
    SyncJson(schema): SyncJson<Schema>,
) -> ApiResult<Json<SchemaAnswer>> {
    let fence = fence(&state, &device, &headers)?;
    schema
        .check()
        .map_err(|message| ApiError::with_message(ErrorCode::InvalidRequest, message))?;
    let text = serde_json::to_string(&schema).map_err(ApiError::internal)?;
    match state
        .store
        .put_sync_schema(device.company_id, fence, text)
        .await?
    {
        Fenced::Done(()) => {
            tracing::info!(company = %device.company_id, entities = schema.entities.len(), "sync schema stored");
            Ok(Json(SchemaAnswer {
                version: schema.version,
                entities: schema.entities.len(),
            }))
        }
        Fenced::Stale => Err(stale()),
    }
}

/// The schema last sent.
#[utoipa::path(
    get, path = "/api/v1/sync/schema", operation_id = "get_sync_schema", tag = "Sync",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Schema),
        (status = 409, description = "`schema_missing`", body = ErrorBody),
    )
)]
pub async fn get_schema(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
) -> ApiResult<Json<Schema>> {
    Ok(Json(company_schema(&state, device.company_id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct LeaseRequest {
    /// The device's computer; must be the one it was registered for.
    #[serde(default)]
    pub computer_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LeaseView {
    /// The sync computer (null: none designated).
    pub computer_id: Option<String>,
    pub fencing: i64,
    /// Null when no lease is active.
    pub expires_at: Option<String>,
}

impl From<&Lease> for LeaseView {
    fn from(lease: &Lease) -> Self {
        LeaseView {
            computer_id: lease.computer_id.clone(),
            fencing: lease.fencing,
            expires_at: lease.expires_at.map(time_text),
        }
    }
}

/// Acquire or renew the company's sync lease (60 seconds).
#[utoipa::path(
    post, path = "/api/v1/sync/lease", tag = "Sync",
    security(("bearer" = [])),
    request_body = LeaseRequest,
    responses(
        (status = 200, body = LeaseView),
        (status = 400, description = "`invalid_request` (another computer id than the device's)", body = ErrorBody),
        (status = 409, description = "`lease_held`: another computer is the sync computer; `company_not_connected`", body = ErrorBody),
    )
)]
pub async fn lease(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
    SyncJson(request): SyncJson<LeaseRequest>,
) -> ApiResult<Json<LeaseView>> {
    if request
        .computer_id
        .as_deref()
        .is_some_and(|computer| computer != device.computer_id)
    {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            "The computer id is not the one this device was registered for.",
        ));
    }
    let now = state.now();
    let until = now + chrono::Duration::seconds(LEASE_SECONDS);
    match state
        .store
        .acquire_lease(device.company_id, &device.computer_id, now, until)
        .await?
    {
        LeaseOutcome::Granted(lease) => Ok(Json((&lease).into())),
        LeaseOutcome::Held(_) => {
            tracing::info!(company = %device.company_id, device = %device.id, "lease refused: another sync computer");
            Err(ErrorCode::LeaseHeld.into())
        }
        LeaseOutcome::NotConnected => Err(ErrorCode::CompanyNotConnected.into()),
    }
}

/// Push a batch of changes (initial snapshot or incremental), once per
/// idempotency key.
#[utoipa::path(
    post, path = "/api/v1/sync/push", tag = "Sync",
    security(("bearer" = [])),
    params(
        ("X-Fencing" = i64, Header, description = "The lease's fencing number"),
        ("Idempotency-Key" = String, Header, description = "The same key again returns the stored answer and applies nothing"),
        ("X-Host-Position" = Option<i64>, Header, description = "Optional: the host change-log position this push reaches (docs/SYNC_PROTOCOL.md §9). Below the newest one pushed before: `host_restored`, nothing applied"),
    ),
    request_body(content = PushRequest, description = "JSON, optionally `Content-Encoding: gzip`; at most 16 MiB"),
    responses(
        (status = 200, body = PushAnswer),
        (status = 400, description = "`invalid_request` (unknown entity, missing header, a `host_key` longer than 200 characters)", body = ErrorBody),
        (status = 409, description = "`stale_fencing`, `schema_missing`, `host_restored`", body = ErrorBody),
        (status = 413, description = "`body_too_large`", body = ErrorBody),
    )
)]
pub async fn push(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
    headers: HeaderMap,
    SyncJson(request): SyncJson<PushRequest>,
) -> ApiResult<Json<PushAnswer>> {
    let fence = fence(&state, &device, &headers)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.len() <= 200)
        .ok_or_else(|| {
            ApiError::with_message(
                ErrorCode::InvalidRequest,
                "The header Idempotency-Key (at most 200 characters) is missing.",
            )
        })?
        .to_owned();
    let host_position = host_position(&headers)?;
    let schema = company_schema(&state, device.company_id).await?;
    if let Some(change) = request
        .changes
        .iter()
        .find(|change| schema.entity(&change.entity).is_none())
    {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            format!("The entity {:?} is not in the schema.", change.entity),
        ));
    }
    // Versions are stored as i64, so a larger base version names none; it
    // is refused like any other value of the wrong type.
    if request.changes.iter().any(|change| {
        change
            .base_version
            .is_some_and(|base| base > MAX_BASE_VERSION)
    }) {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            "The request is not valid: a field is missing or has the wrong type.",
        ));
    }
    if let Some(change) = request.changes.iter().find(|change| {
        change
            .host_key
            .as_ref()
            .is_some_and(|key| key.chars().count() > MAX_HOST_KEY_CHARS)
    }) {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            format!(
                "The host_key of {} is longer than {MAX_HOST_KEY_CHARS} characters.",
                change.global_id
            ),
        ));
    }
    let count = request.changes.len();
    match state
        .store
        .push(
            device.company_id,
            device.id,
            fence,
            key,
            request,
            host_position,
        )
        .await?
    {
        PushOutcome::Applied(answer) => {
            tracing::debug!(company = %device.company_id, count, conflicts = answer.conflicts.len(), "push applied");
            let newest = i64::try_from(answer.cursor).unwrap_or(i64::MAX);
            state.sync_events.notify(device.company_id, newest);
            Ok(Json(answer))
        }
        PushOutcome::Replayed(answer) => {
            tracing::info!(company = %device.company_id, count, "push repeated: stored answer");
            Ok(Json(answer))
        }
        PushOutcome::StaleFencing => Err(stale()),
        PushOutcome::HostBehind(stored) => {
            tracing::warn!(
                company = %device.company_id,
                device = %device.id,
                pushed = host_position.unwrap_or_default(),
                stored,
                "push refused: the host's change log is behind what was pushed (restored?)"
            );
            Err(host_restored(stored))
        }
    }
}

fn host_restored(stored: i64) -> ApiError {
    ApiError::with_message(
        ErrorCode::HostRestored,
        format!(
            "{} (The online copy has changes up to position {stored} of the company database's \
             change log; this database is behind that.)",
            ErrorCode::HostRestored.default_message()
        ),
    )
}

/// The optional `X-Host-Position` header: a whole number ≥ 0.
fn host_position(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(value) = headers.get("x-host-position") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|value| value.trim().parse::<i64>().ok())
        .filter(|position| *position >= 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::with_message(
                ErrorCode::InvalidRequest,
                "The header X-Host-Position (the host's change-log position) is not a whole \
                 number of at least 0.",
            )
        })
}

/// The host marker as it travels (docs/SYNC_PROTOCOL.md §9).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct HostMarkerView {
    /// The newest host change-log position pushed (or set); null until the
    /// plugin reports one.
    pub position: Option<i64>,
    /// The plugin's generation marker (opaque to the service, at most 200
    /// characters); null until set.
    pub generation: Option<String>,
}

impl From<HostMarker> for HostMarkerView {
    fn from(marker: HostMarker) -> Self {
        HostMarkerView {
            position: marker.position,
            generation: marker.generation,
        }
    }
}

/// Set the company's host marker (docs/SYNC_PROTOCOL.md §9): a new
/// generation (first sync, rotation), and the position when Update
/// connection has reconciled a restored host. A value given replaces the
/// stored one (the position may go down); null keeps it. Needs the lease.
#[utoipa::path(
    put, path = "/api/v1/sync/host", operation_id = "put_host_marker", tag = "Sync",
    security(("bearer" = [])),
    params(("X-Fencing" = i64, Header, description = "The lease's fencing number")),
    request_body = HostMarkerView,
    responses(
        (status = 200, description = "As stored", body = HostMarkerView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a device token)", body = ErrorBody),
        (status = 409, description = "`stale_fencing`", body = ErrorBody),
    )
)]
pub async fn put_host_marker(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
    headers: HeaderMap,
    SyncJson(request): SyncJson<HostMarkerView>,
) -> ApiResult<Json<HostMarkerView>> {
    let fence = fence(&state, &device, &headers)?;
    if request.position.is_some_and(|position| position < 0) {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            "The position must be a whole number of at least 0.",
        ));
    }
    let generation = request.generation.map(|text| text.trim().to_owned());
    if generation.as_deref().is_some_and(|text| {
        text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control)
    }) {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            "The generation must be one line of 1 to 200 characters.",
        ));
    }
    let marker = HostMarker {
        position: request.position,
        generation,
    };
    match state
        .store
        .set_host_marker(device.company_id, fence, marker)
        .await?
    {
        Fenced::Done(stored) => {
            tracing::info!(company = %device.company_id, position = stored.position, "host marker set");
            Ok(Json(stored.into()))
        }
        Fenced::Stale => Err(stale()),
    }
}

#[derive(Deserialize, IntoParams)]
pub struct ChangesQuery {
    /// The cursor: changes with a larger sequence number (default 0).
    pub after: Option<i64>,
    /// At most this many (default 1000, at most 5000).
    pub limit: Option<usize>,
    /// Seconds to wait when there is nothing new (default 0, at most 30).
    pub wait: Option<u64>,
}

/// Changes after the cursor (long-poll with `wait`), without the device's
/// own pushes.
#[utoipa::path(
    get, path = "/api/v1/sync/changes", tag = "Sync",
    security(("bearer" = [])),
    params(ChangesQuery),
    responses(
        (status = 200, body = ChangesPage),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
    )
)]
pub async fn changes(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ChangesPage>> {
    let Query(query) = query.map_err(|_| {
        ApiError::with_message(
            ErrorCode::InvalidRequest,
            "after, limit and wait must be whole numbers.",
        )
    })?;
    let after = query.after.unwrap_or(0).max(0);
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(MAX_WAIT_SECONDS));
    let deadline = tokio::time::Instant::now() + wait;
    let mut news = state.sync_events.subscribe(device.company_id);
    loop {
        news.borrow_and_update();
        let page = state
            .store
            .changes(device.company_id, device.id, after, limit)
            .await?;
        let nothing_new = page.cursor == after;
        if !nothing_new || wait.is_zero() {
            return Ok(Json(ChangesPage {
                changes: page.records.into_iter().map(RemoteChange::from).collect(),
                cursor: wire_number(page.cursor),
            }));
        }
        match tokio::time::timeout_at(deadline, news.changed()).await {
            Ok(Ok(())) => continue,
            _ => {
                return Ok(Json(ChangesPage {
                    changes: Vec::new(),
                    cursor: wire_number(after),
                }))
            }
        }
    }
}

#[derive(Deserialize, IntoParams)]
pub struct SyncRecordsQuery {
    /// The entity (as in the schema).
    pub entity: String,
    /// Records with a larger global id (compared as text); from the start
    /// when absent.
    pub after: Option<String>,
    /// At most this many (default 1000, at most 5000).
    pub limit: Option<usize>,
}

/// The stored record as `GET /api/v1/sync/records` lists it.
fn sync_record(record: StoredRecord) -> SyncRecord {
    SyncRecord {
        web_fields: record
            .web_fields()
            .into_iter()
            .map(|(name, meta)| {
                let change = WebChange {
                    seq: wire_number(meta.seq()),
                    version: wire_number(meta.version()),
                };
                (name, change)
            })
            .collect(),
        global_id: record.global_id,
        host_key: record.host_key,
        version: wire_number(record.version),
        deleted: record.deleted,
        fields: record.fields.into_iter().collect(),
    }
}

/// The company's records of one entity with their host keys, tombstones
/// included, by global id: for a computer taking over synchronisation, to
/// match the host's rows to the online records instead of sending
/// everything again. Only reads: no lease needed.
#[utoipa::path(
    get, path = "/api/v1/sync/records", operation_id = "sync_records", tag = "Sync",
    security(("bearer" = [])),
    params(SyncRecordsQuery),
    responses(
        (status = 200, body = SyncRecordsPage),
        (status = 400, description = "`invalid_request` (entity not in the schema, `after` not a UUID, a parameter missing or not a number)", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a device token)", body = ErrorBody),
        (status = 409, description = "`schema_missing`", body = ErrorBody),
    )
)]
pub async fn records(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
    query: Result<Query<SyncRecordsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<SyncRecordsPage>> {
    let Query(query) = query.map_err(|_| {
        ApiError::with_message(
            ErrorCode::InvalidRequest,
            "entity is needed; after must be a global id and limit a whole number.",
        )
    })?;
    let after = query
        .after
        .as_deref()
        .map(|text| {
            Uuid::parse_str(text.trim()).map_err(|_| {
                ApiError::with_message(ErrorCode::InvalidRequest, "after must be a global id.")
            })
        })
        .transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let schema = company_schema(&state, device.company_id).await?;
    let Some(entity) = schema.entity(&query.entity) else {
        return Err(ApiError::with_message(
            ErrorCode::InvalidRequest,
            format!("The entity {:?} is not in the schema.", query.entity),
        ));
    };
    // One more than asked for tells whether another page follows.
    let mut records = state
        .store
        .records_with_tombstones(device.company_id, &entity.name, after, limit + 1)
        .await?;
    let more = records.len() > limit;
    records.truncate(limit);
    let next = more
        .then(|| records.last().map(|record| record.global_id.to_string()))
        .flatten();
    Ok(Json(SyncRecordsPage {
        records: records.into_iter().map(sync_record).collect(),
        next,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct AckRequest {
    pub cursor: i64,
}

#[derive(Serialize, ToSchema)]
pub struct AckAnswer {
    /// The acknowledged cursor as stored (it never goes back).
    pub cursor: i64,
}

/// The device has durably applied everything up to `cursor`.
#[utoipa::path(
    post, path = "/api/v1/sync/ack", tag = "Sync",
    security(("bearer" = [])),
    params(("X-Fencing" = i64, Header, description = "The lease's fencing number")),
    request_body = AckRequest,
    responses(
        (status = 200, body = AckAnswer),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 409, description = "`stale_fencing`", body = ErrorBody),
    )
)]
pub async fn ack(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
    headers: HeaderMap,
    SyncJson(request): SyncJson<AckRequest>,
) -> ApiResult<Json<AckAnswer>> {
    let fence = fence(&state, &device, &headers)?;
    let beyond = || {
        ApiError::with_message(
            ErrorCode::InvalidRequest,
            "The cursor is beyond the newest change.",
        )
    };
    if request.cursor < 0 {
        return Err(beyond());
    }
    match state
        .store
        .ack(device.company_id, device.id, fence, request.cursor)
        .await?
    {
        Fenced::Done(Some(cursor)) => Ok(Json(AckAnswer { cursor })),
        Fenced::Done(None) => Err(beyond()),
        Fenced::Stale => Err(stale()),
    }
}

#[derive(Serialize, ToSchema)]
pub struct EntityCounts {
    pub entity: String,
    pub records: i64,
    pub deleted: i64,
}

#[derive(Serialize, ToSchema)]
pub struct SyncStatusView {
    /// The company's newest sequence number.
    pub sequence: i64,
    /// This device's acknowledged cursor.
    pub acknowledged: i64,
    /// The highest cursor any device of the company has acknowledged (0 if
    /// none): a computer taking over synchronisation pulls after it.
    pub last_acknowledged: i64,
    pub schema: bool,
    pub lease: LeaseView,
    /// The host marker (docs/SYNC_PROTOCOL.md §9).
    pub host: HostMarkerView,
    pub entities: Vec<EntityCounts>,
}

/// Where synchronisation stands for this device.
#[utoipa::path(
    get, path = "/api/v1/sync/status", tag = "Sync",
    security(("bearer" = [])),
    responses((status = 200, body = SyncStatusView))
)]
pub async fn status(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
) -> ApiResult<Json<SyncStatusView>> {
    let counts = state
        .store
        .sync_counts(device.company_id, device.id)
        .await?;
    Ok(Json(SyncStatusView {
        sequence: counts.sequence,
        acknowledged: counts.acknowledged,
        last_acknowledged: counts.last_acknowledged,
        schema: counts.has_schema,
        lease: (&counts.lease).into(),
        host: counts.host.into(),
        entities: counts
            .entities
            .into_iter()
            .map(|(entity, records, deleted)| EntityCounts {
                entity,
                records,
                deleted,
            })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct EntityChecksum {
    pub entity: String,
    /// Live records.
    pub count: u64,
    /// SHA-256 (hex) of the canonical lines (docs/SYNC_PROTOCOL.md §7).
    pub sha256: String,
}

#[derive(Serialize, ToSchema)]
pub struct ChecksumAnswer {
    pub entities: Vec<EntityChecksum>,
}

/// The canonical checksum of the online copy, per entity (the test oracle).
#[utoipa::path(
    get, path = "/api/v1/sync/checksum", tag = "Sync",
    security(("bearer" = [])),
    responses((status = 200, body = ChecksumAnswer))
)]
pub async fn checksum(
    State(state): State<AppState>,
    DeviceCaller(device): DeviceCaller,
) -> ApiResult<Json<ChecksumAnswer>> {
    let sums = state.store.checksums(device.company_id).await?;
    Ok(Json(ChecksumAnswer {
        entities: sums
            .into_iter()
            .map(|(entity, count, sha256)| EntityChecksum {
                entity,
                count,
                sha256,
            })
            .collect(),
    }))
}
