//! A device's tokens in use: one refresh at a time, proactive when the
//! access token is known to expire, reactive when the service says
//! `token_invalid`.

use crate::api::DeviceCredentials;
use crate::secret::Secret;
use std::fmt;
use std::time::{Duration, Instant};

/// Refresh this long before the access token's end, so that a request does
/// not start with a token that expires on the way.
pub(crate) const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

type RefreshHook = Box<dyn Fn(&DeviceCredentials) + Send + Sync>;

/// The credentials of this computer for one company, shared by everything
/// that talks to the service as the device.
///
/// Refreshes are serialised: a refresh token used twice revokes the device,
/// so when several requests find the access token invalid at once, only the
/// first refreshes and the others use its new token.
///
/// A refresh whose future is dropped after the service answered but before
/// the answer was read loses the new tokens; the next refresh then sends
/// the spent token, the service revokes the device, and the user logs in
/// again. Let a request that may refresh run to its end (or its timeout)
/// rather than cancelling it.
pub struct DeviceSession {
    pub(crate) state: tokio::sync::Mutex<DeviceState>,
    on_refresh: Option<RefreshHook>,
}

pub(crate) struct DeviceState {
    pub(crate) credentials: DeviceCredentials,
    /// Counts refreshes, so that a request can tell whether the token it
    /// used has been replaced meanwhile.
    pub(crate) generation: u64,
    /// When the access token ends by this computer's monotonic clock, if
    /// known (from the service's `Date`, so that clock skew does not
    /// matter). Unknown for credentials loaded from storage: then the
    /// service's `token_invalid` triggers the refresh.
    pub(crate) valid_until: Option<Instant>,
}

impl DeviceSession {
    pub fn new(credentials: DeviceCredentials) -> DeviceSession {
        DeviceSession {
            state: tokio::sync::Mutex::new(DeviceState {
                credentials,
                generation: 0,
                valid_until: None,
            }),
            on_refresh: None,
        }
    }

    /// Called with the new credentials after every successful refresh, while
    /// no other refresh can start: store them (the old refresh token is now
    /// spent).
    pub fn on_refresh(mut self, hook: impl Fn(&DeviceCredentials) + Send + Sync + 'static) -> Self {
        self.on_refresh = Some(Box::new(hook));
        self
    }

    /// A copy of the current credentials.
    pub async fn credentials(&self) -> DeviceCredentials {
        self.state.lock().await.credentials.clone()
    }

    pub(crate) fn refreshed(&self, state: &DeviceState) {
        if let Some(hook) = &self.on_refresh {
            hook(&state.credentials);
        }
    }
}

impl DeviceState {
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|until| now >= until)
    }

    pub(crate) fn access(&self) -> (Secret, u64) {
        (self.credentials.access_token.clone(), self.generation)
    }
}

impl fmt::Debug for DeviceSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSession").finish_non_exhaustive()
    }
}
