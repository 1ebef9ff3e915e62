//! What the service keeps: Online IDs, sessions, companies, devices. Plain
//! data shared by the handlers and every storage backend.

use chrono::{DateTime, Utc};
use od_licence::Tier;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::secret::SecretString;
use crate::tokens::TokenHash;

/// An Online ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    /// Normalised: trimmed, lower case.
    pub email: String,
    pub name: String,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
}

/// An Online ID with its password hash, as read for a login. The hash is
/// wrapped so that it never ends up in a log by accident either.
#[derive(Clone, Debug)]
pub struct AccountLogin {
    pub account: Account,
    /// `None` until the person has chosen a password (verification link).
    pub password_hash: Option<SecretString>,
}

/// What a one-time e-mail link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Verify the address and choose the first password (24 hours).
    Verify,
    /// Choose a new password (1 hour).
    Reset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Verify => "verify",
            LinkPurpose::Reset => "reset",
        }
    }
}

/// A one-time link sent by e-mail; only its hash is stored.
#[derive(Clone, Debug)]
pub struct EmailLink {
    pub hash: TokenHash,
    pub account_id: Uuid,
    pub purpose: LinkPurpose,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A logged-in Online ID.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: Uuid,
    pub account_id: Uuid,
    pub token_hash: TokenHash,
    pub csrf_hash: TokenHash,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    /// The absolute end (30 days after the login); the idle limit (12 hours
    /// after `last_used_at`) comes on top.
    pub expires_at: DateTime<Utc>,
}

/// What a company is in the Online ID's eyes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Administers the company online; the one who connected it is one.
    SuperUser,
    /// An invited user (issue 4).
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperUser => "super_user",
            Role::User => "user",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "super_user" => Some(Role::SuperUser),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// The company's registration data, as the host has it (PRODUCT.md §2.4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompanyDetails {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub postcode: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub organisation_number: String,
}

impl CompanyDetails {
    /// The names of the fields that are blank.
    pub fn missing_fields(&self) -> Vec<&'static str> {
        [
            ("name", &self.name),
            ("street", &self.street),
            ("postcode", &self.postcode),
            ("city", &self.city),
            ("country", &self.country),
            ("phone", &self.phone),
            ("email", &self.email),
            ("organisation_number", &self.organisation_number),
        ]
        .into_iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(field, _)| field)
        .collect()
    }

    /// The same data with surrounding blanks removed.
    pub fn trimmed(&self) -> CompanyDetails {
        let trim = |text: &String| text.trim().to_owned();
        CompanyDetails {
            name: trim(&self.name),
            street: trim(&self.street),
            postcode: trim(&self.postcode),
            city: trim(&self.city),
            country: trim(&self.country),
            phone: trim(&self.phone),
            email: trim(&self.email),
            organisation_number: trim(&self.organisation_number),
        }
    }
}

/// A company put online: bound to one licence, one system database and one
/// company database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Company {
    pub id: Uuid,
    pub details: CompanyDetails,
    pub licence_number: String,
    /// The licence document as registered (kept for seats and audits).
    pub licence_document: String,
    pub tier: Tier,
    pub online_users: u32,
    pub system_database_id: String,
    pub company_database_id: String,
    /// The Online ID that connected the company ("Connected by").
    pub connected_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the company was disconnected (PRODUCT.md §5.8): its synchronised
    /// data is deleted, its users are kept; `None` while connected.
    pub disconnected_at: Option<DateTime<Utc>>,
}

impl Company {
    pub fn is_connected(&self) -> bool {
        self.disconnected_at.is_none()
    }
}

/// A computer that synchronises a company (the plugin on the sync computer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: Uuid,
    pub company_id: Uuid,
    pub computer_id: String,
    pub computer_name: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTokenKind {
    Access,
    Refresh,
}

impl DeviceTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceTokenKind::Access => "access",
            DeviceTokenKind::Refresh => "refresh",
        }
    }

    pub fn parse(text: &str) -> Option<DeviceTokenKind> {
        match text {
            "access" => Some(DeviceTokenKind::Access),
            "refresh" => Some(DeviceTokenKind::Refresh),
            _ => None,
        }
    }
}

/// A device token; only its hash is stored.
#[derive(Clone, Debug)]
pub struct DeviceToken {
    pub hash: TokenHash,
    pub device_id: Uuid,
    pub kind: DeviceTokenKind,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// For refresh tokens: when it was exchanged. A second exchange is theft.
    pub used_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_names_blank_ones() {
        let details = CompanyDetails {
            name: "Acme".into(),
            street: " ".into(),
            postcode: "0150".into(),
            city: "Oslo".into(),
            country: "NO".into(),
            phone: String::new(),
            email: "post@acme.example".into(),
            organisation_number: "123".into(),
        };
        assert_eq!(details.missing_fields(), ["street", "phone"]);
        assert_eq!(details.trimmed().street, "");
    }
}
