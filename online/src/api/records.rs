//! The online copy for the web desktop (and tests): records of a company,
//! validated against the schema the sync computer sent; the conflict
//! history; moving synchronisation to another computer. Session-
//! authenticated; another company's data is `not_found`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::companies::{administered_company, require_connected, visible_company};
use super::extract::{ApiJson, Caller, RecentSessionCaller, SessionCaller};
use super::sync::{company_schema as load_schema, LeaseView};
use super::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::model::Company;
use crate::store::{WebOutcome, WebWrite};
use crate::sync::{
    validate_web_fields, Conflict, EntityDef, Schema, StoredRecord, DEFAULT_PAGE, MAX_PAGE,
};

/// A connected company the session's Online ID is a member of; after a
/// disconnect, `company_not_connected`.
async fn member_company(
    state: &AppState,
    auth: &super::extract::SessionAuth,
    id: &str,
) -> ApiResult<Company> {
    require_connected(visible_company(state, &Caller::Session(auth.clone()), id).await?)
}

/// The entity's definition; `not_found` when the schema does not have it.
async fn entity_of(state: &AppState, company: &Company, entity: &str) -> ApiResult<EntityDef> {
    let schema = load_schema(state, company.id)
        .await
        .map_err(|_| ApiError::new(ErrorCode::NotFound))?;
    schema
        .entity(entity)
        .cloned()
        .ok_or_else(|| ErrorCode::NotFound.into())
}

fn parse_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| ErrorCode::NotFound.into())
}

fn invalid(problems: Vec<(String, String)>) -> ApiError {
    let message = problems
        .iter()
        .map(|(field, reason)| format!("\"{field}\" {reason}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut error = ApiError::with_message(
        ErrorCode::ValidationFailed,
        format!("Some fields are not valid: {message}."),
    );
    error.fields = Some(problems.into_iter().map(|(field, _)| field).collect());
    error
}

#[derive(Serialize, ToSchema)]
pub struct RecordView {
    pub entity: String,
    pub global_id: String,
    pub version: i64,
    /// Values as stored; text is never interpreted as markup here.
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

impl From<StoredRecord> for RecordView {
    fn from(record: StoredRecord) -> Self {
        RecordView {
            entity: record.entity,
            global_id: record.global_id.to_string(),
            version: record.version,
            fields: record.fields,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RecordList {
    pub records: Vec<RecordView>,
    /// Pass as `after` for the next page; null at the end.
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct ListQuery {
    /// Records with a larger global id.
    pub after: Option<String>,
    /// Default 1000, at most 5000.
    pub limit: Option<usize>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateRecord {
    /// Optional: the record's global id (a UUID); made by the service when absent.
    #[serde(default)]
    pub global_id: Option<String>,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct PatchRecord {
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    /// When given, the edit is refused (`version_conflict`) unless the
    /// record still has this version.
    #[serde(default)]
    pub base_version: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct MoveRequest {
    /// The computer to synchronise from now on; null: the next one that asks.
    #[serde(default)]
    pub computer_id: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct ConflictsQuery {
    /// How many days back (default 7).
    pub days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ConflictList {
    pub conflicts: Vec<Conflict>,
}

/// Move synchronisation to another computer (super user). The current
/// lease ends at once and its fencing number becomes stale.
#[utoipa::path(
    post, path = "/api/v1/companies/{id}/sync-computer", tag = "Sync",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    request_body = MoveRequest,
    responses(
        (status = 200, body = LeaseView),
        (status = 401, description = "`authentication_required`, `token_invalid`, `reauthentication_required` (the login is more than 10 minutes old)", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a super user), `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`company_not_connected`", body = ErrorBody),
    )
)]
pub async fn move_sync_computer(
    State(state): State<AppState>,
    RecentSessionCaller(auth): RecentSessionCaller,
    Path(company_id): Path<String>,
    ApiJson(request): ApiJson<MoveRequest>,
) -> ApiResult<Json<LeaseView>> {
    let company = require_connected(administered_company(&state, &auth, &company_id).await?)?;
    let computer = request
        .computer_id
        .map(|computer| computer.trim().to_owned())
        .filter(|computer| !computer.is_empty());
    let lease = state
        .store
        .move_sync_computer(company.id, computer.clone())
        .await?;
    tracing::info!(company = %company.id, fencing = lease.fencing, "sync computer moved");
    Ok(Json((&lease).into()))
}

/// The schema the sync computer sent (for the web desktop's forms).
#[utoipa::path(
    get, path = "/api/v1/companies/{id}/sync/schema", tag = "Records",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    responses(
        (status = 200, body = Schema),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`schema_missing`, `company_not_connected`", body = ErrorBody),
    )
)]
pub async fn company_schema(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path(company_id): Path<String>,
) -> ApiResult<Json<Schema>> {
    let company = member_company(&state, &auth, &company_id).await?;
    Ok(Json(load_schema(&state, company.id).await?))
}

/// The conflict history (G7): both values and the outcome.
#[utoipa::path(
    get, path = "/api/v1/companies/{id}/sync/conflicts", tag = "Records",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id"), ConflictsQuery),
    responses(
        (status = 200, body = ConflictList),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`company_not_connected`", body = ErrorBody),
    )
)]
pub async fn conflicts(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path(company_id): Path<String>,
    Query(query): Query<ConflictsQuery>,
) -> ApiResult<Json<ConflictList>> {
    let company = member_company(&state, &auth, &company_id).await?;
    let days = query
        .days
        .unwrap_or(7)
        .clamp(1, crate::sync::CONFLICT_RETENTION_DAYS);
    let since = state.now() - chrono::Duration::days(days);
    Ok(Json(ConflictList {
        conflicts: state.store.conflicts(company.id, since).await?,
    }))
}

/// Live records of an entity, by global id.
#[utoipa::path(
    get, path = "/api/v1/companies/{id}/records/{entity}", operation_id = "list_records", tag = "Records",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path), ("entity" = String, Path), ListQuery),
    responses(
        (status = 200, body = RecordList),
        (status = 404, description = "`not_found` (company or entity)", body = ErrorBody),
        (status = 409, description = "`company_not_connected`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path((company_id, entity)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<RecordList>> {
    let company = member_company(&state, &auth, &company_id).await?;
    let entity = entity_of(&state, &company, &entity).await?;
    let after = query.after.as_deref().map(parse_id).transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let records = state
        .store
        .records(company.id, &entity.name, after, limit)
        .await?;
    let next = (records.len() == limit)
        .then(|| records.last().map(|record| record.global_id.to_string()))
        .flatten();
    Ok(Json(RecordList {
        records: records.into_iter().map(RecordView::from).collect(),
        next,
    }))
}

async fn written(
    state: &AppState,
    company: &Company,
    outcome: WebOutcome,
) -> ApiResult<StoredRecord> {
    match outcome {
        WebOutcome::Written(record) => {
            state.sync_events.notify(company.id, record.seq);
            Ok(record)
        }
        WebOutcome::NotFound => Err(ErrorCode::NotFound.into()),
        WebOutcome::NotConnected => Err(ErrorCode::CompanyNotConnected.into()),
        WebOutcome::Exists => Err(ErrorCode::RecordExists.into()),
        WebOutcome::VersionMismatch(version) => Err(ApiError::with_message(
            ErrorCode::VersionConflict,
            format!(
                "The record was changed in the meantime (it is now version {version}). Reload \
                 it and make your change again."
            ),
        )),
    }
}

/// Create a record online (validated against the schema).
#[utoipa::path(
    post, path = "/api/v1/companies/{id}/records/{entity}", operation_id = "create_record", tag = "Records",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path), ("entity" = String, Path)),
    request_body = CreateRecord,
    responses(
        (status = 201, body = RecordView),
        (status = 400, description = "`validation_failed` (with `fields`), `invalid_request`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`entity_read_only`, `record_exists`, `company_not_connected`", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path((company_id, entity)): Path<(String, String)>,
    ApiJson(request): ApiJson<CreateRecord>,
) -> ApiResult<(StatusCode, Json<RecordView>)> {
    let company = member_company(&state, &auth, &company_id).await?;
    let entity = entity_of(&state, &company, &entity).await?;
    if !entity.online_create {
        return Err(ErrorCode::EntityReadOnly.into());
    }
    let problems = validate_web_fields(&entity, &request.fields, true);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let global_id = match request.global_id.as_deref() {
        Some(text) => Uuid::parse_str(text).map_err(|_| {
            ApiError::with_message(ErrorCode::InvalidRequest, "global_id must be a UUID.")
        })?,
        None => Uuid::new_v4(),
    };
    let fields = request
        .fields
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .collect();
    let outcome = state
        .store
        .write_record(
            company.id,
            &entity.name,
            global_id,
            WebWrite::Create(fields),
            state.now(),
        )
        .await?;
    let record = written(&state, &company, outcome).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// One live record.
#[utoipa::path(
    get, path = "/api/v1/companies/{id}/records/{entity}/{global_id}", operation_id = "get_record", tag = "Records",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path), ("entity" = String, Path), ("global_id" = String, Path)),
    responses(
        (status = 200, body = RecordView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`company_not_connected`", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path((company_id, entity, global_id)): Path<(String, String, String)>,
) -> ApiResult<Json<RecordView>> {
    let company = member_company(&state, &auth, &company_id).await?;
    let entity = entity_of(&state, &company, &entity).await?;
    let global_id = parse_id(&global_id)?;
    let record = state
        .store
        .record(company.id, &entity.name, global_id)
        .await?
        .filter(|record| !record.deleted)
        .ok_or(ErrorCode::NotFound)?;
    Ok(Json(record.into()))
}

/// Change fields of a record (only fields writable online).
#[utoipa::path(
    patch, path = "/api/v1/companies/{id}/records/{entity}/{global_id}", operation_id = "patch_record", tag = "Records",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path), ("entity" = String, Path), ("global_id" = String, Path)),
    request_body = PatchRecord,
    responses(
        (status = 200, body = RecordView),
        (status = 400, description = "`validation_failed` (with `fields`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`version_conflict`, `company_not_connected`", body = ErrorBody),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path((company_id, entity, global_id)): Path<(String, String, String)>,
    ApiJson(request): ApiJson<PatchRecord>,
) -> ApiResult<Json<RecordView>> {
    let company = member_company(&state, &auth, &company_id).await?;
    let entity = entity_of(&state, &company, &entity).await?;
    let global_id = parse_id(&global_id)?;
    let problems = validate_web_fields(&entity, &request.fields, false);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let outcome = state
        .store
        .write_record(
            company.id,
            &entity.name,
            global_id,
            WebWrite::Patch {
                fields: request.fields,
                base_version: request.base_version,
            },
            state.now(),
        )
        .await?;
    Ok(Json(written(&state, &company, outcome).await?.into()))
}

/// Delete a record online (not for entities maintained in the host only).
#[utoipa::path(
    delete, path = "/api/v1/companies/{id}/records/{entity}/{global_id}", operation_id = "delete_record", tag = "Records",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path), ("entity" = String, Path), ("global_id" = String, Path)),
    responses(
        (status = 204, description = "Deleted (a tombstone goes to the host)"),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`entity_read_only`, `company_not_connected`", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    Path((company_id, entity, global_id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let company = member_company(&state, &auth, &company_id).await?;
    let entity = entity_of(&state, &company, &entity).await?;
    if !entity.online_create {
        return Err(ErrorCode::EntityReadOnly.into());
    }
    let global_id = parse_id(&global_id)?;
    let outcome = state
        .store
        .write_record(
            company.id,
            &entity.name,
            global_id,
            WebWrite::Delete,
            state.now(),
        )
        .await?;
    written(&state, &company, outcome).await?;
    Ok(StatusCode::NO_CONTENT)
}
