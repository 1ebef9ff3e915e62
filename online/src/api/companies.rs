//! Company registration: binding a licence, a system database and a
//! company database to one online company.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use od_licence::{Licence, ADD_ON_ONLINE_DESKTOP};
use uuid::Uuid;

use super::extract::{
    device_for, ApiJson, Caller, RecentSessionCaller, SessionAuth, SessionCaller,
};
use super::me::company_summaries;
use super::types::{
    time_text, ChangeConnectedByRequest, CompanyList, CompanyView, DisconnectAnswer,
    RegistrationRequest,
};
use super::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::model::{Company, Role};
use crate::store::{HandOver, StoreError, Unregistration};

/// Ids longer than this are not ids.
const MAX_ID_CHARS: usize = 200;

/// The company `id` if the caller may see it; otherwise `not_found`, the
/// same answer as for a company that does not exist, so that nobody learns
/// about other customers' companies.
pub(super) async fn visible_company(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<Company> {
    let id = Uuid::parse_str(id).map_err(|_| ErrorCode::NotFound)?;
    let allowed = match caller {
        Caller::Session(auth) => state.store.role_in(id, auth.account.id).await?.is_some(),
        Caller::Device(device) => device.company_id == id,
    };
    if !allowed {
        return Err(ErrorCode::NotFound.into());
    }
    state
        .store
        .company_by_id(id)
        .await?
        .ok_or_else(|| ErrorCode::NotFound.into())
}

/// The company `id` if the session's Online ID is its super user.
pub(super) async fn administered_company(
    state: &AppState,
    auth: &SessionAuth,
    id: &str,
) -> ApiResult<Company> {
    let company = visible_company(state, &Caller::Session(auth.clone()), id).await?;
    match state.store.role_in(company.id, auth.account.id).await? {
        Some(Role::SuperUser) => Ok(company),
        _ => Err(ApiError::with_message(
            ErrorCode::Forbidden,
            "Only a super user of the company can do this.",
        )),
    }
}

/// `company_not_connected` unless the company is connected: after a
/// disconnect, nothing of its data is reachable online.
pub(super) fn require_connected(company: Company) -> ApiResult<Company> {
    if company.is_connected() {
        Ok(company)
    } else {
        Err(ErrorCode::CompanyNotConnected.into())
    }
}

/// The company `id` if the session's Online ID connected it ("Connected
/// by"): only that Online ID may end the connection.
async fn own_connection(state: &AppState, auth: &SessionAuth, id: &str) -> ApiResult<Company> {
    let company = visible_company(state, &Caller::Session(auth.clone()), id).await?;
    if company.connected_by == auth.account.id {
        return Ok(company);
    }
    let email = state
        .store
        .account_by_id(company.connected_by)
        .await?
        .map(|account| account.email)
        .unwrap_or_default();
    Err(ApiError::with_message(
        ErrorCode::Forbidden,
        format!(
            "Only the Online ID that connected the company (\"Connected by\": {email}) can do \
             this. Log in with that Online ID, or ask its owner."
        ),
    ))
}

async fn view(state: &AppState, company: &Company) -> ApiResult<CompanyView> {
    let email = state
        .store
        .account_by_id(company.connected_by)
        .await?
        .map(|account| account.email)
        .unwrap_or_default();
    Ok(CompanyView::new(company, email))
}

fn check_complete(request: &RegistrationRequest) -> ApiResult<()> {
    let mut missing: Vec<String> = [
        ("licence_document", &request.licence_document),
        ("system_database_id", &request.system_database_id),
        ("company_database_id", &request.company_database_id),
    ]
    .into_iter()
    .filter(|(_, value)| value.trim().is_empty())
    .map(|(field, _)| field.to_owned())
    .collect();
    missing.extend(
        request
            .registration
            .missing_fields()
            .into_iter()
            .map(|field| format!("registration.{field}")),
    );
    if !missing.is_empty() {
        let names: Vec<&str> = missing
            .iter()
            .map(|field| field.trim_start_matches("registration."))
            .collect();
        let mut error = ApiError::with_message(
            ErrorCode::RegistrationIncomplete,
            format!(
                "The company's registration data is incomplete. Fill in: {}. (In the host: the \
                 company settings.)",
                names.join(", ").replace('_', " ")
            ),
        );
        error.fields = Some(missing);
        return Err(error);
    }
    for (field, value) in [
        ("system_database_id", &request.system_database_id),
        ("company_database_id", &request.company_database_id),
    ] {
        if value.trim().chars().count() > MAX_ID_CHARS {
            return Err(ApiError::with_message(
                ErrorCode::InvalidRequest,
                format!("The field \"{field}\" is too long."),
            ));
        }
    }
    Ok(())
}

/// Verifies the licence with od-licence against the keys compiled in and
/// the service's clock.
fn check_licence(state: &AppState, document: &str) -> ApiResult<Licence> {
    let licence = od_licence::verify(document, &state.trusted_keys)
        .map_err(|error| ApiError::with_message(ErrorCode::LicenceInvalid, error.to_string()))?;
    if !licence.grants(ADD_ON_ONLINE_DESKTOP) {
        return Err(ErrorCode::LicenceNotGranted.into());
    }
    if licence.evaluation {
        return Err(ErrorCode::LicenceEvaluation.into());
    }
    let today = state.now().date_naive();
    match &licence.agreement {
        None => Err(ApiError::with_message(
            ErrorCode::LicenceExpired,
            "The licence has no service agreement, which Online Desktop needs. Ask your dealer \
             for a service agreement and register the new licence.",
        )),
        Some(agreement) if !agreement.is_valid_on(today) => Err(ApiError::with_message(
            ErrorCode::LicenceExpired,
            format!(
                "The service agreement of the licence ended on {}. Renew it with your dealer and \
                 register the new licence.",
                agreement.valid_until.format("%Y-%m-%d")
            ),
        )),
        Some(_) => Ok(licence),
    }
}

enum Registered {
    Created(Company),
    Existing(Company),
}

/// The binding rules, decided against what is stored. A concurrent
/// registration that wins the race makes the write fail with a conflict:
/// then `None`, and the caller decides again.
async fn bind(
    state: &AppState,
    auth: &SessionAuth,
    request: &RegistrationRequest,
    licence: &Licence,
    tier: od_licence::Tier,
) -> ApiResult<Option<Registered>> {
    let system_database_id = request.system_database_id.trim();
    let company_database_id = request.company_database_id.trim();
    let now = state.now();
    let by_database = state.store.company_by_database(company_database_id).await?;
    if let Some(company) = &by_database {
        if company.system_database_id != system_database_id {
            return Err(ErrorCode::CompanyConnectedElsewhere.into());
        }
    }
    let by_licence = state
        .store
        .company_by_licence(&licence.licence_number)
        .await?;
    if let Some(company) = &by_licence {
        if by_database.as_ref().map(|c| c.id) != Some(company.id) {
            return Err(ErrorCode::LicenceInUse.into());
        }
    }
    match by_database {
        Some(mut company) => {
            // The same company again: repeated registration, or a renewed
            // licence for it. Only its super users may do that.
            if state.store.role_in(company.id, auth.account.id).await? != Some(Role::SuperUser) {
                return Err(ErrorCode::CompanyAlreadyConnected.into());
            }
            let details = request.registration.trimmed();
            // Registering a disconnected company connects it again, and
            // whoever does it is now "Connected by".
            let reconnecting = !company.is_connected();
            let changed = company.details != details
                || company.licence_number != licence.licence_number
                || company.licence_document != request.licence_document
                || company.tier != tier
                || company.online_users != licence.online_users
                || reconnecting;
            if changed {
                company.details = details;
                company.licence_number = licence.licence_number.clone();
                company.licence_document = request.licence_document.clone();
                company.tier = tier;
                company.online_users = licence.online_users;
                company.updated_at = now;
                if reconnecting {
                    company.disconnected_at = None;
                    company.connected_by = auth.account.id;
                }
                match state.store.update_company(&company).await {
                    Ok(()) => {}
                    Err(StoreError::Conflict) => return Ok(None),
                    Err(error) => return Err(error.into()),
                }
                if reconnecting {
                    tracing::info!(company = %company.id, connected_by = %auth.account.id, "company connected again");
                } else {
                    tracing::info!(company = %company.id, "company registration updated");
                }
            }
            Ok(Some(Registered::Existing(company)))
        }
        None => {
            let company = Company {
                id: Uuid::new_v4(),
                details: request.registration.trimmed(),
                licence_number: licence.licence_number.clone(),
                licence_document: request.licence_document.clone(),
                tier,
                online_users: licence.online_users,
                system_database_id: system_database_id.to_owned(),
                company_database_id: company_database_id.to_owned(),
                connected_by: auth.account.id,
                created_at: now,
                updated_at: now,
                disconnected_at: None,
            };
            match state.store.insert_company(&company).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => return Ok(None),
                Err(error) => return Err(error.into()),
            }
            tracing::info!(
                company = %company.id,
                licence = %company.licence_number,
                connected_by = %auth.account.id,
                "company registered"
            );
            Ok(Some(Registered::Created(company)))
        }
    }
}

/// Register (connect) a company.
///
/// Verifies the licence, binds licence, system database and company
/// database, and makes the caller the company's super user and "Connected
/// by". The same registration again answers 200 with the company.
#[utoipa::path(
    post, path = "/api/v1/companies", operation_id = "register_company", tag = "Companies",
    security(("bearer" = []), ("session_cookie" = [])),
    request_body = RegistrationRequest,
    responses(
        (status = 201, description = "Registered", body = CompanyView),
        (status = 200, description = "Registered before (idempotent)", body = CompanyView),
        (status = 400, description = "`licence_invalid`, `registration_incomplete` (with `fields`), `invalid_request`", body = ErrorBody),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 403, description = "`not_verified`, `csrf_failed`, `forbidden` (device token)", body = ErrorBody),
        (status = 409, description = "`licence_not_granted`, `licence_evaluation`, `licence_expired`, `licence_in_use`, `company_connected_elsewhere`, `company_already_connected`", body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
    ApiJson(request): ApiJson<RegistrationRequest>,
) -> ApiResult<(StatusCode, Json<CompanyView>)> {
    if !auth.account.verified {
        return Err(ErrorCode::NotVerified.into());
    }
    check_complete(&request)?;
    let licence = check_licence(&state, &request.licence_document)?;
    let tier = licence
        .agreement
        .as_ref()
        .map(|agreement| agreement.tier)
        .ok_or(ErrorCode::LicenceExpired)?;
    let mut registered = None;
    for _ in 0..3 {
        if let Some(done) = bind(&state, &auth, &request, &licence, tier).await? {
            registered = Some(done);
            break;
        }
    }
    let registered = registered
        .ok_or_else(|| ApiError::internal("company registration kept racing with another one"))?;
    let (status, company) = match registered {
        Registered::Created(company) => (StatusCode::CREATED, company),
        Registered::Existing(company) => (StatusCode::OK, company),
    };
    Ok((status, Json(view(&state, &company).await?)))
}

/// The companies I can reach.
#[utoipa::path(
    get, path = "/api/v1/companies", operation_id = "list_companies", tag = "Companies",
    security(("bearer" = []), ("session_cookie" = [])),
    responses(
        (status = 200, body = CompanyList),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    SessionCaller(auth): SessionCaller,
) -> ApiResult<Json<CompanyList>> {
    Ok(Json(CompanyList {
        companies: company_summaries(&state, auth.account.id).await?,
    }))
}

/// One company: for its users' sessions and its devices.
#[utoipa::path(
    get, path = "/api/v1/companies/{id}", operation_id = "get_company", tag = "Companies",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    responses(
        (status = 200, body = CompanyView),
        (status = 401, description = "`authentication_required`, `token_invalid`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such company, or not yours", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CompanyView>> {
    let company = visible_company(&state, &caller, &id).await?;
    Ok(Json(view(&state, &company).await?))
}

/// Disconnect the company (PRODUCT.md §5.8): only the Online ID that
/// connected it. Deletes its synchronised data, revokes its devices, closes
/// web access to its data; keeps the company and who may use it. Repeating
/// it changes nothing more.
#[utoipa::path(
    post, path = "/api/v1/companies/{id}/disconnect", operation_id = "disconnect_company", tag = "Companies",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    responses(
        (status = 200, description = "Disconnected (also when it was already)", body = DisconnectAnswer),
        (status = 401, description = "`authentication_required`, `token_invalid`, `reauthentication_required` (the login is more than 10 minutes old)", body = ErrorBody),
        (status = 403, description = "`forbidden` (not \"Connected by\", or a device token), `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn disconnect(
    State(state): State<AppState>,
    RecentSessionCaller(auth): RecentSessionCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<DisconnectAnswer>> {
    let company = own_connection(&state, &auth, &id).await?;
    let done = state
        .store
        .disconnect_company(company.id, state.now())
        .await?
        .ok_or(ErrorCode::NotFound)?;
    // Pulls waiting on the company's news answer now (their devices are
    // revoked: the next request is refused).
    state.sync_events.notify(company.id, 0);
    tracing::info!(
        company = %company.id,
        by = %auth.account.id,
        records = done.records_deleted,
        devices = done.devices_revoked,
        "company disconnected"
    );
    Ok(Json(DisconnectAnswer {
        company_id: company.id.to_string(),
        disconnected_at: time_text(done.disconnected_at),
        records_deleted: done.records_deleted,
        devices_revoked: done.devices_revoked,
    }))
}

/// Undo a registration that was never used (the connect wizard's finish
/// failed after registering): only the Online ID that connected it, and only
/// while no data was ever synchronised and nobody else uses it. Its devices
/// go with it. Otherwise `company_in_use`: disconnect instead.
#[utoipa::path(
    delete, path = "/api/v1/companies/{id}", operation_id = "unregister_company", tag = "Companies",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    responses(
        (status = 204, description = "The registration is undone; the licence is free again"),
        (status = 401, description = "`authentication_required`, `token_invalid`, `reauthentication_required` (the login is more than 10 minutes old)", body = ErrorBody),
        (status = 403, description = "`forbidden` (not \"Connected by\", or a device token), `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found` (also when it is deleted already)", body = ErrorBody),
        (status = 409, description = "`company_in_use`", body = ErrorBody),
    )
)]
pub async fn unregister(
    State(state): State<AppState>,
    RecentSessionCaller(auth): RecentSessionCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let company = own_connection(&state, &auth, &id).await?;
    match state.store.unregister_company(company.id).await? {
        Unregistration::Deleted => {
            tracing::info!(company = %company.id, by = %auth.account.id, "company registration undone");
            Ok(StatusCode::NO_CONTENT)
        }
        Unregistration::InUse => Err(ErrorCode::CompanyInUse.into()),
        Unregistration::NotFound => Err(ErrorCode::NotFound.into()),
    }
}

/// Change user (PRODUCT.md §4): hand "Connected by" to the Online ID of the
/// session. The request must also prove that it comes from the company's
/// sync computer: a current access token of one of the company's devices.
///
/// Why both: the session alone would let any Online ID take over any
/// company whose id it learnt; the device token alone (stolen from the
/// sync computer) would let a thief make *their* Online ID the
/// administrator. Together they mean: a person with an Online ID, at the
/// computer that holds the connection (where the plugin lets only a super
/// user linked to an employee start Change user). The Online ID becomes a
/// super user of the company if it was not; the previous "Connected by"
/// keeps its membership. The devices, their tokens and the lease are not
/// touched: synchronisation goes on. The Online ID that is "Connected by"
/// already gets the company unchanged (200, nothing written).
#[utoipa::path(
    post, path = "/api/v1/companies/{id}/connected-by", operation_id = "change_connected_by", tag = "Companies",
    security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Company id")),
    request_body = ChangeConnectedByRequest,
    responses(
        (status = 200, description = "The session's Online ID is \"Connected by\" now (also when it was already)", body = CompanyView),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 401, description = "`authentication_required`, `token_invalid`, `reauthentication_required` (the login is more than 10 minutes old) (the session)", body = ErrorBody),
        (status = 403, description = "`forbidden` (no valid device token of the company in the body, or a device token as the caller), `not_verified`, `csrf_failed`", body = ErrorBody),
        (status = 404, description = "`not_found` (no such company, or the device token belongs to another company)", body = ErrorBody),
        (status = 409, description = "`company_not_connected`", body = ErrorBody),
    )
)]
pub async fn change_connected_by(
    State(state): State<AppState>,
    RecentSessionCaller(auth): RecentSessionCaller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ChangeConnectedByRequest>,
) -> ApiResult<Json<CompanyView>> {
    let company_id = Uuid::parse_str(&id).map_err(|_| ErrorCode::NotFound)?;
    let Ok(device) = device_for(&state, request.device_access_token.expose()).await else {
        tracing::warn!(company = %company_id, by = %auth.account.id, "change of \"Connected by\" without a valid device token refused");
        // A disconnect revoked the devices: its members learn why; nobody
        // else learns that the company exists.
        if state
            .store
            .role_in(company_id, auth.account.id)
            .await?
            .is_some()
        {
            require_connected(visible_company(&state, &Caller::Session(auth), &id).await?)?;
        }
        return Err(ApiError::with_message(
            ErrorCode::Forbidden,
            "Only the company's sync computer can change who is \"Connected by\": its device \
             token is missing or no longer valid.",
        ));
    };
    // Like every device token on another company's resource: the company
    // does not exist for it.
    if device.company_id != company_id {
        tracing::warn!(company = %company_id, device = %device.id, "change of \"Connected by\" with another company's device refused");
        return Err(ErrorCode::NotFound.into());
    }
    if !auth.account.verified {
        return Err(ErrorCode::NotVerified.into());
    }
    match state
        .store
        .change_connected_by(company_id, auth.account.id, device.id, state.now())
        .await?
    {
        HandOver::Changed {
            previous,
            membership_added,
        } => tracing::info!(
            company = %company_id,
            connected_by = %auth.account.id,
            previous = %previous,
            device = %device.id,
            membership_added,
            "\"Connected by\" changed"
        ),
        HandOver::Unchanged => {}
        HandOver::NotConnected => return Err(ErrorCode::CompanyNotConnected.into()),
        HandOver::DeviceRevoked => {
            return Err(ApiError::with_message(
                ErrorCode::Forbidden,
                "The device token of the sync computer was revoked meanwhile.",
            ))
        }
    }
    let company = state
        .store
        .company_by_id(company_id)
        .await?
        .ok_or(ErrorCode::NotFound)?;
    Ok(Json(view(&state, &company).await?))
}
