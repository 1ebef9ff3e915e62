//! Storage. Handlers depend only on the [`Store`] trait, so a PostgreSQL
//! backend can be added beside [`SqliteStore`] without touching them
//! (docs/ONLINE_SERVICE.md, "Storage").
//!
//! Each method is one transaction. Where a decision must be atomic with its
//! write (consuming a one-time token, rotating a refresh token), the method
//! makes it, and its documentation is the rule every backend must follow.

mod migrations;
mod sqlite;
mod sqlite_sync;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{
    Account, AccountLogin, Company, Device, DeviceToken, EmailLink, LinkPurpose, Role, Session,
};
use crate::sync::{Conflict, PushAnswer, PushRequest, StoredRecord};
use crate::tokens::TokenHash;

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is taken (an e-mail address, a licence number, ...).
    #[error("a record with the same key exists already")]
    Conflict,
    #[error("database error: {0}")]
    Database(String),
    #[error("the database holds a value this version cannot read: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Throttling events of one kind and key inside a time window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventWindow {
    pub count: u32,
    pub oldest: Option<DateTime<Utc>>,
    pub newest: Option<DateTime<Utc>>,
}

/// What exchanging a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The old refresh token is used up and the new tokens are stored.
    Rotated(Device),
    /// The token had been exchanged before: the device is now revoked.
    Reused { device_id: Uuid },
    /// Unknown, expired, not a refresh token, or the device is revoked.
    Invalid,
}

/// A company an Online ID can reach, with the Online ID's role there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub company: Company,
    pub role: Role,
}

/// A company's sync computer and lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The designated sync computer; `None` until one asks (or after a move
    /// that named none).
    pub computer_id: Option<String>,
    /// Only grows: a new holder always gets a larger one.
    pub fencing: i64,
    /// `None`: no active lease.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What asking for the lease did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    Granted(Lease),
    /// Another computer is the sync computer.
    Held(Lease),
    /// The company is disconnected (a request that raced the disconnect).
    NotConnected,
}

/// The lease a sync write claims: it must be the current one.
#[derive(Clone, Debug)]
pub struct Fence {
    pub computer_id: String,
    pub fencing: i64,
    pub now: DateTime<Utc>,
}

/// A sync write that may be refused for a stale fencing number.
#[derive(Clone, Debug, PartialEq)]
pub enum Fenced<T> {
    Done(T),
    Stale,
}

/// What a push did.
#[derive(Clone, Debug)]
pub enum PushOutcome {
    Applied(PushAnswer),
    /// The idempotency key was used before: its stored answer, nothing applied.
    Replayed(PushAnswer),
    StaleFencing,
    /// The push's host change-log position is below the newest one pushed
    /// before (the host's database was restored; docs/SYNC_PROTOCOL.md
    /// §9): nothing applied. Holds the stored position.
    HostBehind(i64),
}

/// Where the host's change log stood, as the plugin reported it
/// (docs/SYNC_PROTOCOL.md §9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostMarker {
    /// The newest host change-log position pushed (or set); `None` until
    /// the plugin reports one.
    pub position: Option<i64>,
    /// The plugin's generation marker, opaque to the service.
    pub generation: Option<String>,
}

/// What disconnecting a company did (counts are 0 when it was
/// disconnected already).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnection {
    /// When the company was disconnected (the first time, if repeated).
    pub disconnected_at: DateTime<Utc>,
    /// Records (tombstones included) deleted.
    pub records_deleted: u64,
    /// Devices revoked.
    pub devices_revoked: u64,
}

/// What handing "Connected by" to another Online ID did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOver {
    /// "Connected by" was `previous`; `membership_added` when the new
    /// Online ID was not a member of the company before.
    Changed {
        previous: Uuid,
        membership_added: bool,
    },
    /// The Online ID is "Connected by" already: nothing was written.
    Unchanged,
    /// The company does not exist or is disconnected.
    NotConnected,
    /// The device that proved the sync computer was revoked meanwhile.
    DeviceRevoked,
}

/// What asking to delete a company's registration did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unregistration {
    Deleted,
    /// It has been used: data was synchronised (a schema or any record,
    /// ever), or other Online IDs are its users. Nothing deleted.
    InUse,
    NotFound,
}

/// One page of changes after a cursor.
#[derive(Clone, Debug)]
pub struct StoredChanges {
    /// Without the device's own echoes.
    pub records: Vec<StoredRecord>,
    /// The last sequence number looked at (echoes included).
    pub cursor: i64,
}

/// Counts for `GET /sync/status`.
#[derive(Clone, Debug)]
pub struct SyncCounts {
    pub sequence: i64,
    pub acknowledged: i64,
    /// The highest cursor any device of the company (revoked ones
    /// included) has acknowledged; 0 if none.
    pub last_acknowledged: i64,
    pub has_schema: bool,
    pub lease: Lease,
    pub host: HostMarker,
    /// (entity, live records, tombstones), by entity name.
    pub entities: Vec<(String, i64, i64)>,
}

/// A web edit.
#[derive(Clone, Debug)]
pub enum WebWrite {
    Create(serde_json::Map<String, serde_json::Value>),
    Patch {
        fields: serde_json::Map<String, serde_json::Value>,
        base_version: Option<i64>,
    },
    Delete,
}

/// What a web edit did.
#[derive(Clone, Debug)]
pub enum WebOutcome {
    /// Written (or unchanged: nothing differed).
    Written(StoredRecord),
    NotFound,
    /// Create with a global id that is taken.
    Exists,
    /// `base_version` is not the record's version (the current one).
    VersionMismatch(i64),
    /// The company is disconnected (an edit that raced the disconnect).
    NotConnected,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- Online IDs --------------------------------------------------------

    /// `email` is normalised by the caller.
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<AccountLogin>>;
    async fn account_by_id(&self, id: Uuid) -> StoreResult<Option<Account>>;
    /// [`StoreError::Conflict`] when the address has an account already.
    async fn insert_account(&self, account: &Account) -> StoreResult<()>;
    async fn set_account_name(&self, id: Uuid, name: &str) -> StoreResult<()>;
    /// Sets the password hash and, in the same transaction, ends every
    /// session of the account except `keep_session` (none when `None`).
    async fn set_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<Uuid>,
    ) -> StoreResult<()>;

    // --- One-time e-mail links ---------------------------------------------

    async fn insert_email_link(&self, link: &EmailLink) -> StoreResult<()>;
    /// The account of a link that is unused and has not expired at `now`.
    async fn email_link_account(
        &self,
        hash: &TokenHash,
        purpose: LinkPurpose,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>>;
    /// Consumes a valid link (unused, not expired at `now`, of `purpose`)
    /// and, in the same transaction, sets the password, and: for
    /// [`LinkPurpose::Verify`] marks the address verified and uses up the
    /// account's other verification links; for [`LinkPurpose::Reset`] uses
    /// up its other reset links and ends all its sessions. `None` (and no
    /// change) when the link is not valid, also when a concurrent call
    /// consumed it first.
    async fn consume_email_link(
        &self,
        hash: &TokenHash,
        purpose: LinkPurpose,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Account>>;

    // --- Sessions ----------------------------------------------------------

    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    async fn session_by_token(&self, hash: &TokenHash) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;
    async fn delete_session(&self, id: Uuid) -> StoreResult<()>;

    // --- Throttling ----------------------------------------------------------

    async fn record_event(&self, kind: &str, key: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Events of `kind` and `key` after `since` (so an event leaves the
    /// window exactly one window length after it happened).
    async fn event_window(
        &self,
        kind: &str,
        key: &str,
        since: DateTime<Utc>,
    ) -> StoreResult<EventWindow>;
    async fn clear_events(&self, kind: &str, key: &str) -> StoreResult<()>;

    // --- Companies -----------------------------------------------------------

    async fn company_by_id(&self, id: Uuid) -> StoreResult<Option<Company>>;
    async fn company_by_licence(&self, licence_number: &str) -> StoreResult<Option<Company>>;
    async fn company_by_database(&self, company_database_id: &str) -> StoreResult<Option<Company>>;
    /// Inserts the company and makes `connected_by` its super user.
    /// [`StoreError::Conflict`] when the licence number or the company
    /// database is taken (a concurrent registration).
    async fn insert_company(&self, company: &Company) -> StoreResult<()>;
    /// Updates the registration data, licence, "Connected by" and
    /// connection state of an existing company (same id);
    /// [`StoreError::Conflict`] when the new licence number is taken by
    /// another company.
    async fn update_company(&self, company: &Company) -> StoreResult<()>;
    /// Disconnects the company (PRODUCT.md §5.8), in one transaction: marks
    /// it disconnected at `now` (kept if it was already), revokes its
    /// devices, deletes its synchronised data (records and tombstones,
    /// conflicts, idempotency keys, cursors, schema, lease and sync
    /// computer, host marker). Kept: the company, its memberships, its
    /// devices' history, and the sequence and fencing numbers, which only
    /// grow. `None` when the company does not exist.
    async fn disconnect_company(
        &self,
        company_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Disconnection>>;
    /// Deletes a company that was never used (undoing a registration), in
    /// one transaction with the check: refused ([`Unregistration::InUse`])
    /// when data was ever synchronised (a schema was stored or the sequence
    /// number is above 0) or an Online ID other than "Connected by" is a
    /// member. Its devices (never used for data) go with it.
    async fn unregister_company(&self, company_id: Uuid) -> StoreResult<Unregistration>;
    /// Change user: makes `account_id` "Connected by" of a connected
    /// company, in one transaction with the checks. The Online ID becomes
    /// a super user of the company (a membership is added, or its role
    /// raised); the previous "Connected by" keeps its membership. An
    /// audit event (`connected_by_changed`, by `account_id`, naming the
    /// previous Online ID and `device_id`, the proof of the sync computer)
    /// is written with it.
    async fn change_connected_by(
        &self,
        company_id: Uuid,
        account_id: Uuid,
        device_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<HandOver>;
    async fn role_in(&self, company_id: Uuid, account_id: Uuid) -> StoreResult<Option<Role>>;
    /// The companies an Online ID can reach, by name.
    async fn memberships(&self, account_id: Uuid) -> StoreResult<Vec<Membership>>;

    // --- Devices -------------------------------------------------------------

    /// Stores a new device and its tokens, revoking (at `device.created_at`)
    /// every active device of the same company and computer; the new device
    /// takes over their acknowledged sync cursor (Update connection: the
    /// same computer goes on where it was).
    async fn insert_device(&self, device: &Device, tokens: &[DeviceToken]) -> StoreResult<()>;
    async fn device_token(&self, hash: &TokenHash) -> StoreResult<Option<(DeviceToken, Device)>>;
    /// Exchanges the refresh token `old` for `new` tokens, atomically:
    /// [`Rotation::Rotated`] when `old` is a refresh token, unused, not
    /// expired at `now`, of an active device; [`Rotation::Reused`] (and the
    /// device is revoked) when it was exchanged before; otherwise
    /// [`Rotation::Invalid`].
    async fn rotate_refresh_token(
        &self,
        old: &TokenHash,
        new: &[DeviceToken],
        now: DateTime<Utc>,
    ) -> StoreResult<Rotation>;
    /// Active (not revoked) devices of a company, oldest first.
    async fn devices_of_company(&self, company_id: Uuid) -> StoreResult<Vec<Device>>;
    async fn device_by_id(&self, id: Uuid) -> StoreResult<Option<Device>>;
    /// Revokes the device; false when it was revoked already or is unknown.
    async fn revoke_device(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;

    // --- Synchronisation (docs/SYNC_PROTOCOL.md §4) -------------------------
    //
    // Rules every backend follows: a company's sequence number only grows,
    // each change gets the next one; the fencing number only grows; a push
    // checks the fence, applies every change, records its conflicts
    // (deleting the company's conflicts older than
    // `sync::CONFLICT_RETENTION_DAYS` when it records any) and stores its
    // idempotency key with the answer in ONE transaction.

    /// The schema the plugin sent (JSON text).
    async fn sync_schema(&self, company_id: Uuid) -> StoreResult<Option<String>>;
    async fn put_sync_schema(
        &self,
        company_id: Uuid,
        fence: Fence,
        schema: String,
    ) -> StoreResult<Fenced<()>>;
    async fn sync_lease(&self, company_id: Uuid) -> StoreResult<Lease>;
    /// Grants or renews the lease for `computer_id` until `until`: granted
    /// when no computer is designated (it becomes the sync computer) or it
    /// is the designated one; renewing an unexpired lease keeps the fencing
    /// number, otherwise it grows.
    async fn acquire_lease(
        &self,
        company_id: Uuid,
        computer_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<LeaseOutcome>;
    /// Designates another sync computer (`None`: whichever asks next): the
    /// lease ends at once and the fencing number grows, so the old holder
    /// can no longer write.
    async fn move_sync_computer(
        &self,
        company_id: Uuid,
        computer_id: Option<String>,
    ) -> StoreResult<Lease>;
    /// With `host_position`: after the fence and the key, a position below
    /// the stored one is refused ([`PushOutcome::HostBehind`]); otherwise
    /// the stored position becomes the larger of the two, in the push's
    /// transaction.
    async fn push(
        &self,
        company_id: Uuid,
        device_id: Uuid,
        fence: Fence,
        idempotency_key: String,
        request: PushRequest,
        host_position: Option<i64>,
    ) -> StoreResult<PushOutcome>;
    /// Sets the company's host marker (docs/SYNC_PROTOCOL.md §9): each
    /// value given replaces the stored one (the position may go down, after
    /// a restore was reconciled); a `None` keeps it.
    async fn set_host_marker(
        &self,
        company_id: Uuid,
        fence: Fence,
        marker: HostMarker,
    ) -> StoreResult<Fenced<HostMarker>>;
    /// Changes after `after`, leaving out records whose newest change was
    /// pushed by a device of the same computer as `device_id` (echoes; a
    /// computer registered again keeps its echoes suppressed).
    async fn changes(
        &self,
        company_id: Uuid,
        device_id: Uuid,
        after: i64,
        limit: usize,
    ) -> StoreResult<StoredChanges>;
    /// Stores the device's acknowledged cursor (it never goes back) and
    /// answers it; `None` (nothing stored) when `cursor` is beyond the
    /// company's newest sequence number.
    async fn ack(
        &self,
        company_id: Uuid,
        device_id: Uuid,
        fence: Fence,
        cursor: i64,
    ) -> StoreResult<Fenced<Option<i64>>>;
    async fn sync_counts(&self, company_id: Uuid, device_id: Uuid) -> StoreResult<SyncCounts>;
    /// (entity, live records, SHA-256) of the canonical checksum
    /// (docs/SYNC_PROTOCOL.md §7), by entity name.
    async fn checksums(&self, company_id: Uuid) -> StoreResult<Vec<(String, u64, String)>>;
    /// Live records of an entity by global id, after `after`.
    async fn records(
        &self,
        company_id: Uuid,
        entity: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>>;
    /// Records of an entity by global id, after `after`, tombstones
    /// included (`GET /api/v1/sync/records`: a new sync computer matches
    /// the host's rows by their host keys).
    async fn records_with_tombstones(
        &self,
        company_id: Uuid,
        entity: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>>;
    async fn record(
        &self,
        company_id: Uuid,
        entity: &str,
        global_id: Uuid,
    ) -> StoreResult<Option<StoredRecord>>;
    /// A web edit (validated by the caller), with the next sequence number.
    async fn write_record(
        &self,
        company_id: Uuid,
        entity: &str,
        global_id: Uuid,
        write: WebWrite,
        now: DateTime<Utc>,
    ) -> StoreResult<WebOutcome>;
    /// Conflicts recorded at or after `since`, newest first.
    async fn conflicts(&self, company_id: Uuid, since: DateTime<Utc>)
        -> StoreResult<Vec<Conflict>>;
    /// Deletes conflicts recorded before `conflicts_before` and idempotency
    /// keys stored before `keys_before`, of every company.
    async fn prune_sync(
        &self,
        conflicts_before: DateTime<Utc>,
        keys_before: DateTime<Utc>,
    ) -> StoreResult<()>;

    // --- Housekeeping --------------------------------------------------------

    /// Deletes what can no longer be used at `now`: expired links and
    /// device tokens, sessions expired or idle since before `idle_before`,
    /// throttling events older than `events_before`.
    async fn prune(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        events_before: DateTime<Utc>,
    ) -> StoreResult<()>;
}
