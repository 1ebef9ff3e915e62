//! The request and response bodies of API v1 (docs/ONLINE_API.md), typed.
//! Answers that do not fit these types are protocol errors.

use crate::secret::Secret;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub status: String,
    /// The service's version; optional so that a stand-in that only says
    /// `{"status": "ok"}` still counts as reachable.
    #[serde(default)]
    pub version: Option<String>,
}

/// The service's "we got it" answer (sign-up, password reset): always the
/// same, whether or not the address has an account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Accepted {
    pub message: String,
}

/// An Online ID.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/v1/accounts/verify`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Verified {
    pub account: Account,
}

/// A session token (`ods_…`) of an Online ID.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SessionToken(pub Secret);

/// `POST /api/v1/sessions`: a logged-in Online ID.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    pub token: SessionToken,
    /// Only for requests authenticated by the cookie; the client always
    /// sends the bearer token instead.
    pub csrf_token: Secret,
    pub expires_at: DateTime<Utc>,
    pub account: Account,
}

/// `GET /api/v1/me`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Me {
    #[serde(flatten)]
    pub account: Account,
    pub companies: Vec<CompanySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CompanySummary {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct CompanyList {
    pub companies: Vec<CompanySummary>,
}

/// The company's registration data as the host keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationData {
    pub name: String,
    pub street: String,
    pub postcode: String,
    pub city: String,
    pub country: String,
    pub phone: String,
    pub email: String,
    pub organisation_number: String,
}

/// `POST /api/v1/companies`: connect a company database to the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// The signed licence document, as the host stores it.
    pub licence_document: String,
    pub system_database_id: String,
    pub company_database_id: String,
    pub registration: RegistrationData,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConnectedBy {
    pub account_id: Uuid,
    pub email: String,
}

/// A company on the service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Company {
    pub id: Uuid,
    pub name: String,
    pub registration: RegistrationData,
    pub licence_number: String,
    pub tier: String,
    pub modules: Vec<String>,
    pub online_users: u32,
    pub connected_by: ConnectedBy,
    pub created_at: DateTime<Utc>,
    /// False after a disconnect, until the company is registered again
    /// (a service that does not say is taken as connected).
    #[serde(default = "connected_by_default")]
    pub connected: bool,
    /// When it was disconnected; `None` while connected.
    #[serde(default)]
    pub disconnected_at: Option<DateTime<Utc>>,
}

fn connected_by_default() -> bool {
    true
}

/// `POST /api/v1/companies/{id}/disconnect`: what the service did.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Disconnected {
    pub company_id: Uuid,
    /// When the company was disconnected (the first time, if repeated).
    pub disconnected_at: DateTime<Utc>,
    /// Records removed by this call (0 when it was disconnected already).
    pub records_deleted: u64,
    /// Devices revoked by this call (0 when it was disconnected already).
    pub devices_revoked: u64,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyRegistration {
    pub company: Company,
    /// False when the same registration had been made before and the
    /// service answered with the existing company.
    pub created: bool,
}

/// `POST /api/v1/companies/{id}/devices`: this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDevice {
    pub computer_id: String,
    pub computer_name: String,
}

/// The tokens of one computer (device) of one company. The plugin keeps
/// them in the OS credential store (G8); they rotate on every refresh.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceCredentials {
    pub device_id: Uuid,
    pub access_token: Secret,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: Secret,
}

/// `GET /api/v1/devices/current`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeviceInfo {
    pub device_id: Uuid,
    pub company_id: Uuid,
    pub computer_id: String,
    pub computer_name: String,
    pub created_at: DateTime<Utc>,
}

/// Request bodies that carry secrets borrow them for the one request.
#[derive(Serialize)]
pub(crate) struct EmailBody<'a> {
    pub email: &'a str,
}

#[derive(Serialize)]
pub(crate) struct LogInBody<'a> {
    pub email: &'a str,
    pub password: &'a str,
}

#[derive(Serialize)]
pub(crate) struct VerifyBody<'a> {
    pub token: &'a str,
    pub password: &'a str,
}

#[derive(Serialize)]
pub(crate) struct ChangeConnectedBy<'a> {
    pub device_access_token: &'a str,
}

#[derive(Serialize)]
pub(crate) struct RefreshBody<'a> {
    pub refresh_token: &'a str,
}

/// The error shape every API error has.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub retry_after: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn me_is_an_account_with_companies() {
        let me: Me = serde_json::from_str(
            r#"{"id": "6f1c2c1e-8d1a-4c39-9a55-0d7b0c1c1d11", "email": "kari@example.com",
                "name": null, "verified": true, "created_at": "2026-01-02T03:04:05Z",
                "companies": [{"id": "0a1c2c1e-8d1a-4c39-9a55-0d7b0c1c1d11", "name": "Demo AS", "role": "super_user"}]}"#,
        )
        .unwrap();
        assert_eq!(me.account.email, "kari@example.com");
        assert_eq!(me.companies[0].name, "Demo AS");
    }

    #[test]
    fn a_company_without_a_connection_state_counts_as_connected() {
        let company: Company = serde_json::from_str(
            r#"{"id": "0a1c2c1e-8d1a-4c39-9a55-0d7b0c1c1d11", "name": "Demo AS",
                "registration": {"name": "Demo AS", "street": "s", "postcode": "p", "city": "c",
                  "country": "n", "phone": "1", "email": "e", "organisation_number": "o"},
                "licence_number": "L-1", "tier": "standard", "modules": [], "online_users": 5,
                "connected_by": {"account_id": "6f1c2c1e-8d1a-4c39-9a55-0d7b0c1c1d11", "email": "a@b"},
                "created_at": "2026-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        assert!(company.connected && company.disconnected_at.is_none());
    }

    #[test]
    fn device_credentials_print_without_their_tokens() {
        let credentials: DeviceCredentials = serde_json::from_str(
            r#"{"device_id": "6f1c2c1e-8d1a-4c39-9a55-0d7b0c1c1d11", "access_token": "oda_secret1",
                "access_expires_at": "2026-01-02T03:04:05Z", "refresh_token": "odr_secret2"}"#,
        )
        .unwrap();
        let printed = format!("{credentials:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert_eq!(credentials.refresh_token.expose(), "odr_secret2");
    }
}
