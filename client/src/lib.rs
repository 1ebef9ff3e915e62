//! `od-client`: the typed async client of the Online Desktop online service,
//! API v1 (docs/ONLINE_API.md).
//!
//! - [`ServiceUrl`]: `https://` anywhere, `http://` only to this computer.
//! - [`Client`]: one method per endpoint; reqwest with rustls (ring, web
//!   roots, optionally one more root), no global state.
//! - [`ClientError`]: the five kinds of the contract's error table, each
//!   with its `od_result` ([`ClientError::status_code`]).
//! - Retries with backoff and jitter, honouring `Retry-After`, for requests
//!   that may be repeated ([`Idempotency`], [`RetryPolicy`]).
//! - [`DeviceSession`]: a device's tokens, refreshed once when expired or
//!   refused.
//! - Synchronisation as the sync computer ([`Client::lease`],
//!   [`Client::push`], [`Client::changes`], …): typed bodies, gzip for
//!   large pushes, long-poll pulls, pushes retried under their idempotency
//!   key; a computer taking over downloads the records with their host
//!   keys ([`Client::sync_records`]) and pulls after
//!   [`SyncStatus::last_acknowledged`].
//! - The connection's life: [`Client::disconnect_company`],
//!   [`Client::unregister_company`] (undo a registration never used), Update
//!   connection ([`Client::create_device`] for the same computer), and the
//!   host marker of restore detection ([`Client::push_with_host_position`],
//!   [`Client::set_host_marker`], [`SyncStatus::host`]).
//! - [`Secret`]: passwords and tokens print as `[REDACTED]` and are zeroed
//!   when dropped.
//!
//! The plugin, the host simulator and the tests use it alike; see
//! docs/adr/0006-online-client-crate.md.

mod api;
mod client;
mod device;
mod error;
mod retry;
mod secret;
mod service_url;
mod sync;

pub use api::{
    Accepted, Account, Company, CompanyRegistration, CompanySummary, ConnectedBy,
    DeviceCredentials, DeviceInfo, Disconnected, Health, Me, NewDevice, Registration,
    RegistrationData, Session, SessionToken,
};
pub use client::{Client, ClientConfig, ConfigError};
pub use device::DeviceSession;
pub use error::{ClientError, UnreachableCause, AUTH_CODES};
pub use retry::{parse_retry_after, Idempotency, RetryPolicy, Timer, TokioTimer};
pub use secret::Secret;
pub use service_url::{ServiceUrl, ServiceUrlError};
pub use sync::{
    Change, ChangeOp, ChangesPage, Conflict, Direction, EntityChecksum, EntityCounts, EntityDef,
    FieldDef, FieldType, Fields, HostMarker, Lease, LeaseState, OnlineAccess, OnlineRecord,
    PushAnswer, PushMode, PushRequest, PushResult, RemoteChange, Schema, SchemaStored, SyncRecord,
    SyncRecordsPage, SyncStatus, WebChange, GZIP_THRESHOLD, MAX_WAIT,
};
pub use uuid::Uuid;
