//! The host bridge: how the plugin reads (and, in later versions, writes)
//! the host's data.
//!
//! The host answers named requests with JSON documents (see
//! `docs/HOST_CHANNEL.md`). This module knows nothing of C: the FFI layer
//! implements [`HostChannel`] over the host's callback table, and tests
//! implement it over in-memory data.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use thiserror::Error;

/// Largest answer the plugin accepts from one host request. Company data is
/// read in batches, so a larger answer means the host misbehaves.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What went wrong when asking the host for data.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The host's callback reported failure, with its own message.
    #[error("the program could not answer \"{method}\": {message}")]
    Failed { method: String, message: String },
    /// The host answered, but not with what the method promises.
    #[error("the program answered \"{method}\" with data the add-on cannot read: {reason}")]
    InvalidData { method: String, reason: String },
}

/// The raw channel to the host. Implementations must be callable from any
/// thread: background work reads host data too.
pub trait HostChannel: Send + Sync {
    /// Sends one request; returns the host's JSON answer.
    fn request(&self, method: &str, params_json: &[u8]) -> Result<Vec<u8>, HostError>;
    /// Asks the host to call the plugin's pump on its UI thread soon.
    fn request_pump(&self);
}

/// Typed access to the host channel.
#[derive(Clone)]
pub struct Host {
    channel: Arc<dyn HostChannel>,
}

impl Host {
    pub fn new(channel: Arc<dyn HostChannel>) -> Host {
        Host { channel }
    }

    pub fn request_pump(&self) {
        self.channel.request_pump();
    }

    /// Calls `method` with `params` and parses the answer as `R`.
    pub fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, HostError> {
        let params = serde_json::to_vec(params).map_err(|e| HostError::InvalidData {
            method: method.to_owned(),
            reason: format!("parameters could not be encoded: {e}"),
        })?;
        let answer = self.channel.request(method, &params)?;
        // serde_json does not check the UTF-8 of values it skips; the whole
        // answer must be valid.
        let text = std::str::from_utf8(&answer).map_err(|e| HostError::InvalidData {
            method: method.to_owned(),
            reason: format!(
                "the answer is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ),
        })?;
        serde_json::from_str(text).map_err(|e| HostError::InvalidData {
            method: method.to_owned(),
            reason: e.to_string(),
        })
    }

    fn get<R: DeserializeOwned>(&self, method: &str) -> Result<R, HostError> {
        self.call(method, &serde_json::Value::Object(Default::default()))
    }

    pub fn host_info(&self) -> Result<HostInfo, HostError> {
        self.get("host.info")
    }

    pub fn licence_documents(&self) -> Result<LicenceDocuments, HostError> {
        self.get("licence.documents")
    }

    pub fn bindings(&self) -> Result<Bindings, HostError> {
        self.get("system.bindings")
    }

    pub fn companies(&self) -> Result<Companies, HostError> {
        self.get("system.companies")
    }

    pub fn company_identity(&self) -> Result<CompanyIdentity, HostError> {
        self.get("company.identity")
    }

    pub fn company_registration(&self) -> Result<CompanyRegistration, HostError> {
        self.get("company.registration")
    }

    pub fn current_user(&self) -> Result<CurrentUser, HostError> {
        self.get("user.current")
    }

    pub fn active_sessions(&self) -> Result<ActiveSessions, HostError> {
        self.get("sessions.active")
    }

    /// `system.identity` (ABI 1.2): the system database's id, which the
    /// online service binds the company to.
    pub fn system_identity(&self) -> Result<SystemIdentity, HostError> {
        self.get("system.identity")
    }

    /// `connection.record` (ABI 1.2): tells the host this company database
    /// is now connected (the last step of the connect wizard's finish).
    pub fn record_connection(&self, record: &ConnectionRecord) -> Result<(), HostError> {
        self.call::<_, serde_json::Value>("connection.record", record)
            .map(drop)
    }

    /// `system.computers`: the installed computers of the system database.
    pub fn computers(&self) -> Result<Vec<Computer>, HostError> {
        #[derive(Deserialize)]
        struct Answer {
            computers: Vec<Computer>,
        }
        Ok(self.get::<Answer>("system.computers")?.computers)
    }

    /// `connection.get` (ABI 1.3): what `connection.record` noted for this
    /// company database, as every computer of the installation sees it;
    /// `None` when it is not connected.
    pub fn recorded_connection(&self) -> Result<Option<RecordedConnection>, HostError> {
        #[derive(Deserialize)]
        struct Answer {
            connection: Option<RecordedConnection>,
        }
        Ok(self.get::<Answer>("connection.get")?.connection)
    }

    /// `connection.forget` (ABI 1.2): tells the host this company database
    /// is no longer connected (the last step of Disconnect).
    pub fn forget_connection(&self, forget: &ConnectionForget) -> Result<(), HostError> {
        self.call::<_, serde_json::Value>("connection.forget", forget)
            .map(drop)
    }
}

/// The parameters of `connection.forget` (ABI 1.2): this company database
/// is no longer connected (Disconnect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionForget {
    pub company_id: String,
    pub online_company_id: String,
}

/// `system.identity`: the system database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemIdentity {
    pub id: String,
}

/// `connection.get`'s connection: what the host noted (never a token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedConnection {
    pub company_id: String,
    pub online_company_id: String,
    pub service_url: String,
    pub connected_by: String,
    pub connected_at: String,
    /// The sync computer (none from a host that noted none).
    #[serde(default)]
    pub computer_id: Option<String>,
}

/// The parameters of `connection.record`: what the host keeps about the
/// connection (never a token or password).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub company_id: String,
    pub online_company_id: String,
    pub service_url: String,
    pub connected_by: String,
    pub connected_at: String,
    pub licence_number: String,
    pub computer_id: String,
}

/// `host.info`: the installation and this computer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub host_name: String,
    pub host_version: String,
    pub evaluation_installation: bool,
    pub computer: Computer,
}

/// An installed computer of the system database (`host.info` names this one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Computer {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub holds_system_database: bool,
}

/// `licence.documents`: every licence document registered in the system
/// database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenceDocuments {
    pub documents: Vec<String>,
}

/// `system.bindings`: which add-on is registered for which company database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bindings {
    pub bindings: Vec<Binding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub add_on: String,
    pub licence_number: String,
    pub company_id: String,
}

/// `system.companies`: the company databases of the system database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Companies {
    pub companies: Vec<CompanySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanySummary {
    pub id: String,
    pub name: String,
    pub is_sample: bool,
    pub online_desktop_connected: bool,
}

/// `company.identity`: the company database the plugin runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyIdentity {
    pub id: String,
    pub name: String,
    pub is_sample: bool,
}

/// `company.registration`: the company's registration data, as entered in
/// the host's company settings. Missing values are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyRegistration {
    pub name: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub organisation_number: Option<String>,
}

/// `user.current`: the host user the plugin acts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub username: String,
    pub is_super_user: bool,
    pub employee: Option<Employee>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Employee {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
}

/// `sessions.active`: who else uses this company database right now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveSessions {
    pub users: Vec<UserSession>,
    pub integrations: Vec<Integration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSession {
    pub username: String,
    pub computer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Integration {
    pub name: String,
}

#[cfg(test)]
pub(crate) mod testing {
    //! An in-memory host for unit tests.
    use super::*;
    use parking_lot::Mutex;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    pub struct FakeHost {
        pub answers: Mutex<HashMap<String, Result<serde_json::Value, String>>>,
        pub pumps: AtomicUsize,
        /// Every method asked, in order.
        pub asked: Mutex<Vec<String>>,
    }

    impl FakeHost {
        pub fn set(&self, method: &str, answer: serde_json::Value) {
            self.answers.lock().insert(method.to_owned(), Ok(answer));
        }

        pub fn fail(&self, method: &str, message: &str) {
            self.answers
                .lock()
                .insert(method.to_owned(), Err(message.to_owned()));
        }

        pub fn pump_requests(&self) -> usize {
            self.pumps.load(Ordering::SeqCst)
        }
    }

    impl HostChannel for FakeHost {
        fn request(&self, method: &str, _params: &[u8]) -> Result<Vec<u8>, HostError> {
            self.asked.lock().push(method.to_owned());
            match self.answers.lock().get(method) {
                Some(Ok(value)) => Ok(value.to_string().into_bytes()),
                Some(Err(message)) => Err(HostError::Failed {
                    method: method.to_owned(),
                    message: message.clone(),
                }),
                None => Err(HostError::Failed {
                    method: method.to_owned(),
                    message: "unknown method".to_owned(),
                }),
            }
        }

        fn request_pump(&self) {
            self.pumps.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::FakeHost;
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_answers_are_parsed() {
        let fake = Arc::new(FakeHost::default());
        fake.set("user.current", json!({"username": "admin", "is_super_user": true, "employee": {"id": "7", "name": "Ada", "email": null}}));
        let host = Host::new(fake);
        let user = host.current_user().unwrap();
        assert_eq!(user.username, "admin");
        assert_eq!(user.employee.unwrap().email, None);
    }

    #[test]
    fn malformed_answer_names_the_method() {
        let fake = Arc::new(FakeHost::default());
        fake.set("company.identity", json!({"id": 5}));
        let err = Host::new(fake).company_identity().unwrap_err();
        assert!(
            matches!(&err, HostError::InvalidData { method, .. } if method == "company.identity"),
            "{err}"
        );
    }

    /// Regression: invalid UTF-8 in a field the plugin does not read was
    /// accepted, because serde_json skips such values unchecked.
    #[test]
    fn invalid_utf8_anywhere_in_an_answer_is_refused() {
        struct Raw;
        impl HostChannel for Raw {
            fn request(&self, _: &str, _: &[u8]) -> Result<Vec<u8>, HostError> {
                Ok(
                    b"{\"id\":\"c1\",\"name\":\"A\",\"is_sample\":false,\"extra\":\"\xff\"}"
                        .to_vec(),
                )
            }
            fn request_pump(&self) {}
        }
        let err = Host::new(Arc::new(Raw)).company_identity().unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn host_failure_keeps_the_hosts_message() {
        let fake = Arc::new(FakeHost::default());
        fake.fail("host.info", "database locked");
        let err = Host::new(fake).host_info().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the program could not answer \"host.info\": database locked"
        );
    }
}
