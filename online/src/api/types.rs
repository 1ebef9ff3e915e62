//! Request and response bodies of API v1, as docs/ONLINE_API.md names them.
//! The OpenAPI description is derived from these types.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Account, Company, CompanyDetails, Device, Role};
use crate::secret::SecretString;

/// RFC 3339, UTC, whole seconds: `2025-01-02T03:04:05Z`.
pub fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the service answers.
    pub status: String,
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

#[derive(Deserialize, ToSchema)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The token from the link in the verification mail.
    #[schema(value_type = String)]
    pub token: SecretString,
    /// 8 to 128 characters.
    #[schema(value_type = String)]
    pub password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String)]
    pub password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(value_type = String)]
    pub current_password: SecretString,
    #[schema(value_type = String)]
    pub new_password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordResetConfirmRequest {
    /// The token from the link in the reset mail.
    #[schema(value_type = String)]
    pub token: SecretString,
    #[schema(value_type = String)]
    pub new_password: SecretString,
}

#[derive(Deserialize, ToSchema)]
pub struct ProfileUpdate {
    /// The person's name, at most 200 characters.
    pub name: String,
}

/// An Online ID.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub verified: bool,
    pub created_at: String,
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        AccountView {
            id: account.id.to_string(),
            email: account.email.clone(),
            name: account.name.clone(),
            verified: account.verified,
            created_at: time_text(account.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct VerifyResponse {
    pub account: AccountView,
}

/// "My profile": the Online ID and the companies it can reach.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub verified: bool,
    pub created_at: String,
    pub companies: Vec<CompanySummary>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionCreated {
    /// The session token (`ods_…`), for `Authorization: Bearer`.
    pub token: String,
    /// Send as `X-CSRF-Token` with state changes authenticated by the cookie.
    pub csrf_token: String,
    pub expires_at: String,
    pub account: AccountView,
}

#[derive(Serialize, ToSchema)]
pub struct CompanySummary {
    pub id: String,
    pub name: String,
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
pub struct CompanyList {
    pub companies: Vec<CompanySummary>,
}

#[derive(Deserialize, ToSchema)]
pub struct RegistrationRequest {
    /// The licence document as the vendor issued it (the whole text).
    #[serde(default)]
    pub licence_document: String,
    #[serde(default)]
    pub system_database_id: String,
    #[serde(default)]
    pub company_database_id: String,
    #[serde(default)]
    pub registration: CompanyDetails,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectedBy {
    pub account_id: String,
    pub email: String,
}

#[derive(Serialize, ToSchema)]
pub struct CompanyView {
    pub id: String,
    pub name: String,
    pub registration: CompanyDetails,
    pub licence_number: String,
    /// `basic`, `standard` or `premium`.
    pub tier: String,
    /// Module ids the tier grants (docs/LICENSING.md).
    pub modules: Vec<String>,
    pub online_users: u32,
    pub connected_by: ConnectedBy,
    pub created_at: String,
    /// False after a disconnect (PRODUCT.md §5.8) until the company is
    /// registered again.
    pub connected: bool,
    /// When it was disconnected; null while connected.
    pub disconnected_at: Option<String>,
}

impl CompanyView {
    pub fn new(company: &Company, connected_by_email: String) -> CompanyView {
        CompanyView {
            id: company.id.to_string(),
            name: company.details.name.clone(),
            registration: company.details.clone(),
            licence_number: company.licence_number.clone(),
            tier: company.tier.id().to_owned(),
            modules: company
                .tier
                .modules()
                .iter()
                .map(|module| module.id().to_owned())
                .collect(),
            online_users: company.online_users,
            connected_by: ConnectedBy {
                account_id: company.connected_by.to_string(),
                email: connected_by_email,
            },
            created_at: time_text(company.created_at),
            connected: company.is_connected(),
            disconnected_at: company.disconnected_at.map(time_text),
        }
    }
}

/// `POST /api/v1/companies/{id}/connected-by` (Change user).
#[derive(Deserialize, ToSchema)]
pub struct ChangeConnectedByRequest {
    /// A current access token (`oda_…`) of a device of this company: the
    /// proof that the request comes from the company's sync computer.
    #[schema(value_type = String)]
    pub device_access_token: SecretString,
}

/// `POST /api/v1/companies/{id}/disconnect`'s answer.
#[derive(Serialize, ToSchema)]
pub struct DisconnectAnswer {
    pub company_id: String,
    /// When the company was disconnected (the first time, if repeated).
    pub disconnected_at: String,
    /// Records (deleted ones included) removed now; 0 when repeated.
    pub records_deleted: u64,
    /// Devices revoked now; 0 when repeated.
    pub devices_revoked: u64,
}

#[derive(Deserialize, ToSchema)]
pub struct DeviceRequest {
    /// The host's id of the computer (stable across restarts).
    #[serde(default)]
    pub computer_id: String,
    #[serde(default)]
    pub computer_name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceTokens {
    pub device_id: String,
    /// `oda_…`, valid 1 hour.
    pub access_token: String,
    pub access_expires_at: String,
    /// `odr_…`, valid 180 days; exchange it once.
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceView {
    pub device_id: String,
    pub company_id: String,
    pub computer_id: String,
    pub computer_name: String,
    pub created_at: String,
}

impl From<&Device> for DeviceView {
    fn from(device: &Device) -> Self {
        DeviceView {
            device_id: device.id.to_string(),
            company_id: device.company_id.to_string(),
            computer_id: device.computer_id.clone(),
            computer_name: device.computer_name.clone(),
            created_at: time_text(device.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
}
