//! The HTTP client: one method per endpoint, retries, the device token's
//! refresh.

use crate::api::{
    Accepted, ChangeConnectedBy, Company, CompanyList, CompanyRegistration, CompanySummary,
    DeviceCredentials, DeviceInfo, Disconnected, EmailBody, Health, LogInBody, Me, NewDevice,
    RefreshBody, Registration, Session, SessionToken, Verified, VerifyBody,
};
use crate::device::{DeviceSession, DeviceState, EXPIRY_MARGIN};
use crate::error::{any_cause, body_problem, ClientError, UnreachableCause};
use crate::retry::{parse_retry_after, Idempotency, RetryPolicy, Timer, TokioTimer};
use crate::secret::Secret;
use crate::service_url::ServiceUrl;
use crate::Account;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use thiserror::Error;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Answers larger than this are refused as protocol errors: no endpoint
/// the client uses sends anywhere near as much (sync pulls have their own,
/// larger bound: [`Call::max_answer`]).
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// How the client connects and retries.
#[derive(Clone)]
pub struct ClientConfig {
    /// Time to set up the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Time for one attempt in all: connecting, sending, the whole answer.
    pub request_timeout: Duration,
    pub user_agent: String,
    /// One more trusted root certificate (PEM), besides the built-in web
    /// roots: for a private deployment with its own authority, and tests
    /// with a self-signed service. Verification itself is never turned off.
    pub extra_root_certificate: Option<Vec<u8>>,
    pub retry: RetryPolicy,
    pub timer: Arc<dyn Timer>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            user_agent: concat!("od-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            extra_root_certificate: None,
            retry: RetryPolicy::default(),
            timer: Arc::new(TokioTimer),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("user_agent", &self.user_agent)
            .field(
                "extra_root_certificate",
                &self.extra_root_certificate.is_some(),
            )
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The client could not be set up.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("the extra root certificate for the online service is not a PEM certificate")]
    Certificate,
    #[error("the add-on could not prepare its network connection")]
    Http(#[source] reqwest::Error),
}

/// The typed client of API v1. Cheap to clone (clones share connections).
/// Every method is cancellation-safe in the sense that dropping its future
/// stops the request and any retry; nothing runs on in the background.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    service: ServiceUrl,
    retry: RetryPolicy,
    timer: Arc<dyn Timer>,
    /// The configured time for one attempt (long polls add their wait).
    pub(crate) request_timeout: Duration,
}

/// One request, as often as the policy allows.
pub(crate) struct Call {
    method: Method,
    path: String,
    /// The query string, without `?`.
    query: Option<String>,
    bearer: Option<Secret>,
    body: Option<Zeroizing<Vec<u8>>>,
    /// Further headers (`X-Fencing`, `Idempotency-Key`, `Content-Encoding`).
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Replaces the client's total time for one attempt (long polls).
    timeout: Option<Duration>,
    /// The largest answer accepted.
    max_answer: usize,
    idempotency: Idempotency,
}

impl Call {
    pub(crate) fn new(method: Method, path: impl Into<String>, idempotency: Idempotency) -> Call {
        Call {
            method,
            path: path.into(),
            query: None,
            bearer: None,
            body: None,
            headers: Vec::new(),
            timeout: None,
            max_answer: MAX_ANSWER_BYTES,
            idempotency,
        }
    }

    pub(crate) fn get(path: impl Into<String>) -> Call {
        Call::new(Method::GET, path, Idempotency::Idempotent)
    }

    fn bearer(mut self, token: &Secret) -> Call {
        self.bearer = Some(token.clone());
        self
    }

    pub(crate) fn json(mut self, body: &impl Serialize) -> Call {
        // Serialising these plain structs of strings cannot fail; an empty
        // body would be refused by the service as a protocol matter.
        self.body = Some(Zeroizing::new(serde_json::to_vec(body).unwrap_or_default()));
        self
    }

    /// A JSON body already serialised (and possibly compressed: then with
    /// its `Content-Encoding` among the headers).
    pub(crate) fn body(mut self, body: Vec<u8>) -> Call {
        self.body = Some(Zeroizing::new(body));
        self
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Call {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn query(mut self, query: String) -> Call {
        self.query = Some(query);
        self
    }

    pub(crate) fn timeout(mut self, timeout: Duration) -> Call {
        self.timeout = Some(timeout);
        self
    }

    pub(crate) fn max_answer(mut self, bytes: usize) -> Call {
        self.max_answer = bytes;
        self
    }
}

/// A complete answer.
pub(crate) struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    date: Option<SystemTime>,
    body: Zeroizing<Vec<u8>>,
}

/// One attempt that brought no usable answer.
enum Failure {
    /// No answer; `sent` when the request may have reached the service.
    Transport { cause: UnreachableCause, sent: bool },
    /// Final, whatever the policy (an answer that is too large or cannot
    /// be decoded, a token that cannot go into a header).
    Final(ClientError),
}

impl Client {
    pub fn new(service: ServiceUrl, config: ClientConfig) -> Result<Client, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .https_only(false)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(config.user_agent);
        if let Some(pem) = &config.extra_root_certificate {
            let certificates =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|_| ConfigError::Certificate)?;
            if certificates.is_empty() {
                return Err(ConfigError::Certificate);
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if service.is_loopback() {
            // A service on this computer is never reached through a proxy,
            // and "localhost" never goes to a name server.
            builder = builder.no_proxy().resolve_to_addrs(
                "localhost",
                &[
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ],
            );
        }
        let http = builder.build().map_err(ConfigError::Http)?;
        Ok(Client {
            http,
            service,
            retry: config.retry,
            timer: config.timer,
            request_timeout: config.request_timeout,
        })
    }

    pub fn service(&self) -> &ServiceUrl {
        &self.service
    }

    /// `GET /api/v1/health`: is the service up?
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json_of(&self.send(&Call::get("api/v1/health")).await?)
    }

    /// `POST /api/v1/accounts`: asks for a verification e-mail. The answer
    /// is the same whether or not the address has an account.
    pub async fn sign_up(&self, email: &str) -> Result<Accepted, ClientError> {
        let call = Call::new(Method::POST, "api/v1/accounts", Idempotency::Once)
            .json(&EmailBody { email });
        self.json_of(&self.send(&call).await?)
    }

    /// `POST /api/v1/accounts/verify`: sets the password with the one-time
    /// token from the verification e-mail.
    pub async fn verify_account(
        &self,
        token: &Secret,
        password: &Secret,
    ) -> Result<Account, ClientError> {
        let call = Call::new(Method::POST, "api/v1/accounts/verify", Idempotency::Once).json(
            &VerifyBody {
                token: token.expose(),
                password: password.expose(),
            },
        );
        Ok(self.json_of::<Verified>(&self.send(&call).await?)?.account)
    }

    /// `POST /api/v1/sessions`: log in with an Online ID. The password is
    /// only borrowed for this request.
    pub async fn log_in(&self, email: &str, password: &Secret) -> Result<Session, ClientError> {
        let call = Call::new(Method::POST, "api/v1/sessions", Idempotency::Once).json(&LogInBody {
            email,
            password: password.expose(),
        });
        self.json_of(&self.send(&call).await?)
    }

    /// `DELETE /api/v1/sessions/current`. A session the service no longer
    /// knows counts as ended.
    pub async fn log_out(&self, session: &SessionToken) -> Result<(), ClientError> {
        let call = Call::new(
            Method::DELETE,
            "api/v1/sessions/current",
            Idempotency::Idempotent,
        )
        .bearer(&session.0);
        match self.send(&call).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_token_invalid() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `GET /api/v1/me`: the Online ID and the companies it can reach.
    pub async fn me(&self, session: &SessionToken) -> Result<Me, ClientError> {
        self.json_of(
            &self
                .send(&Call::get("api/v1/me").bearer(&session.0))
                .await?,
        )
    }

    /// `POST /api/v1/companies`: connects a company database. Making the
    /// same registration again answers with the existing company.
    pub async fn register_company(
        &self,
        session: &SessionToken,
        registration: &Registration,
    ) -> Result<CompanyRegistration, ClientError> {
        // Idempotent by contract, so a lost answer may be asked for again.
        let call = Call::new(Method::POST, "api/v1/companies", Idempotency::Idempotent)
            .bearer(&session.0)
            .json(registration);
        let answer = self.send(&call).await?;
        Ok(CompanyRegistration {
            company: self.json_of(&answer)?,
            created: answer.status == StatusCode::CREATED,
        })
    }

    /// `GET /api/v1/companies`: the companies the Online ID can reach.
    pub async fn companies(
        &self,
        session: &SessionToken,
    ) -> Result<Vec<CompanySummary>, ClientError> {
        let call = Call::get("api/v1/companies").bearer(&session.0);
        Ok(self
            .json_of::<CompanyList>(&self.send(&call).await?)?
            .companies)
    }

    /// `GET /api/v1/companies/{id}` as the Online ID.
    pub async fn company(&self, session: &SessionToken, id: Uuid) -> Result<Company, ClientError> {
        let call = Call::get(format!("api/v1/companies/{id}")).bearer(&session.0);
        self.json_of(&self.send(&call).await?)
    }

    /// `POST /api/v1/companies/{id}/disconnect` (PRODUCT.md §5.8): only the
    /// Online ID that connected the company ("Connected by"; another super
    /// user is refused with `forbidden`, naming it). The service deletes the
    /// company's synchronised data, revokes its devices and closes web
    /// access to its data; the company and its users are kept. Repeating it
    /// is harmless (the counts are then 0). Connect again with
    /// [`Client::register_company`] and a new device.
    ///
    /// Needs a login of the last 10 minutes: an older session is refused
    /// (`is_reauthentication_required()`: log in again and repeat).
    pub async fn disconnect_company(
        &self,
        session: &SessionToken,
        company_id: Uuid,
    ) -> Result<Disconnected, ClientError> {
        let call = Call::new(
            Method::POST,
            format!("api/v1/companies/{company_id}/disconnect"),
            Idempotency::Idempotent,
        )
        .bearer(&session.0);
        self.json_of(&self.send(&call).await?)
    }

    /// `POST /api/v1/companies/{id}/sync-computer` (the Sync computer
    /// choice, PRODUCT.md §4): `computer_id` becomes the company's sync
    /// computer at once — the current holder's lease ends and its writes
    /// are refused from then on; `None` lets the next computer that asks
    /// take it. A super user's session. Moving to the same computer again
    /// is harmless (the fencing number grows). A disconnected company:
    /// `company_not_connected`.
    ///
    /// Needs a login of the last 10 minutes: an older session is refused
    /// (`is_reauthentication_required()`: log in again and repeat).
    pub async fn move_sync_computer(
        &self,
        session: &SessionToken,
        company_id: Uuid,
        computer_id: Option<&str>,
    ) -> Result<crate::sync::LeaseState, ClientError> {
        let call = Call::new(
            Method::POST,
            format!("api/v1/companies/{company_id}/sync-computer"),
            Idempotency::Idempotent,
        )
        .bearer(&session.0)
        .json(&serde_json::json!({ "computer_id": computer_id }));
        self.json_of(&self.send(&call).await?)
    }

    /// `POST /api/v1/companies/{id}/connected-by` (Change user, PRODUCT.md
    /// §4): the Online ID of `session` becomes "Connected by" of the
    /// company, and a super user of it if it was not. `device_access_token`
    /// is a current access token of the company's device on this computer
    /// (the sync computer): the service wants both. It is not refreshed
    /// here: the caller owns the device's refresh token (a refresh token
    /// used twice revokes the device). A missing, expired or revoked token
    /// is `forbidden`; a device of another company `not_found`; a
    /// disconnected company `forbidden` or `company_not_connected`. The
    /// Online ID that is "Connected by" already gets the company unchanged.
    ///
    /// Needs a login of the last 10 minutes: an older session is refused
    /// (`is_reauthentication_required()`: log in again and repeat).
    pub async fn change_connected_by(
        &self,
        session: &SessionToken,
        company_id: Uuid,
        device_access_token: &Secret,
    ) -> Result<Company, ClientError> {
        let call = Call::new(
            Method::POST,
            format!("api/v1/companies/{company_id}/connected-by"),
            Idempotency::Idempotent,
        )
        .bearer(&session.0)
        .json(&ChangeConnectedBy {
            device_access_token: device_access_token.expose(),
        });
        self.json_of(&self.send(&call).await?)
    }

    /// `DELETE /api/v1/companies/{id}`: undoes a registration that was never
    /// used (the connect wizard's finish failed after registering), devices
    /// included; only "Connected by". A company that was used is refused
    /// (`is_company_in_use()`: disconnect it instead). A company that is gone
    /// already (`not_found`, e.g. the answer to an earlier try was lost)
    /// counts as undone.
    ///
    /// Needs a login of the last 10 minutes: an older session is refused
    /// (`is_reauthentication_required()`: log in again and repeat).
    pub async fn unregister_company(
        &self,
        session: &SessionToken,
        company_id: Uuid,
    ) -> Result<(), ClientError> {
        let call = Call::new(
            Method::DELETE,
            format!("api/v1/companies/{company_id}"),
            Idempotency::Idempotent,
        )
        .bearer(&session.0);
        match self.send(&call).await {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("not_found") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `POST /api/v1/companies/{id}/devices`: makes this computer a device
    /// of the company and returns its tokens (store them safely, G8).
    ///
    /// Also **Update connection**: for a computer registered before, the
    /// new device replaces the old one (whose tokens stop working) and goes
    /// on where it was: the same lease, its acknowledged cursor, its earlier
    /// pushes still left out of pulls. A disconnected company is refused
    /// (`is_company_not_connected()`: register it again first).
    ///
    /// Needs a login of the last 10 minutes: an older session is refused
    /// (`is_reauthentication_required()`: log in again and repeat).
    pub async fn create_device(
        &self,
        session: &SessionToken,
        company_id: Uuid,
        device: &NewDevice,
    ) -> Result<DeviceCredentials, ClientError> {
        // Registering the same computer again replaces the device whose
        // answer was lost, so a retry leaves exactly one device.
        let call = Call::new(
            Method::POST,
            format!("api/v1/companies/{company_id}/devices"),
            Idempotency::Idempotent,
        )
        .bearer(&session.0)
        .json(device);
        self.json_of(&self.send(&call).await?)
    }

    /// `POST /api/v1/devices/refresh`: exchanges the refresh token for new
    /// credentials. Sent at most once when it may have reached the service:
    /// a refresh token used twice revokes the device. Prefer the
    /// [`DeviceSession`] methods, which refresh on their own.
    pub async fn refresh_device(
        &self,
        refresh_token: &Secret,
    ) -> Result<DeviceCredentials, ClientError> {
        Ok(self.refresh(refresh_token).await?.0)
    }

    /// `GET /api/v1/devices/current` as the device.
    pub async fn current_device(&self, device: &DeviceSession) -> Result<DeviceInfo, ClientError> {
        let mut call = Call::get("api/v1/devices/current");
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `GET /api/v1/companies/{id}` as the device (its own company only).
    pub async fn company_as_device(
        &self,
        device: &DeviceSession,
        id: Uuid,
    ) -> Result<Company, ClientError> {
        let mut call = Call::get(format!("api/v1/companies/{id}"));
        self.json_of(&self.send_as_device(device, &mut call).await?)
    }

    /// `GET /api/v1/companies/{id}` with a device's access token as it is,
    /// never refreshed: for a reader that does not own the device's
    /// refresh token (the sync engine does; a refresh token used twice
    /// revokes the device). An expired token is `Auth`.
    pub async fn company_with_access_token(
        &self,
        access_token: &Secret,
        id: Uuid,
    ) -> Result<Company, ClientError> {
        let call = Call::get(format!("api/v1/companies/{id}")).bearer(access_token);
        self.json_of(&self.send(&call).await?)
    }

    /// `DELETE /api/v1/devices/current`: this computer stops being a device.
    /// Credentials the service no longer accepts count as revoked.
    pub async fn revoke_device(&self, device: &DeviceSession) -> Result<(), ClientError> {
        let mut call = Call::new(
            Method::DELETE,
            "api/v1/devices/current",
            Idempotency::Idempotent,
        );
        match self.send_as_device(device, &mut call).await {
            Ok(_) => Ok(()),
            Err(ClientError::Auth { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn refresh(
        &self,
        refresh_token: &Secret,
    ) -> Result<(DeviceCredentials, Option<SystemTime>), ClientError> {
        let call = Call::new(Method::POST, "api/v1/devices/refresh", Idempotency::Once).json(
            &RefreshBody {
                refresh_token: refresh_token.expose(),
            },
        );
        let answer = self.send(&call).await?;
        Ok((self.json_of(&answer)?, answer.date))
    }

    /// Sends `call` with the device's access token: refreshes first when the
    /// token is known to have expired, and once more when the service says
    /// `token_invalid`. A failed refresh is `Auth`: the user must log in
    /// again (Update connection).
    pub(crate) async fn send_as_device(
        &self,
        device: &DeviceSession,
        call: &mut Call,
    ) -> Result<Answer, ClientError> {
        let (token, generation) = {
            let mut state = device.state.lock().await;
            if state.expired(self.timer.now()) {
                tracing::debug!("device access token expired; refreshing");
                self.refresh_locked(device, &mut state).await?;
            }
            state.access()
        };
        call.bearer = Some(token);
        match self.send(call).await {
            Err(error) if error.is_token_invalid() => {
                let token = {
                    let mut state = device.state.lock().await;
                    // Another request may have refreshed meanwhile; its new
                    // token is good, and refreshing again would spend it.
                    if state.generation == generation {
                        tracing::debug!("device access token refused; refreshing");
                        self.refresh_locked(device, &mut state).await?;
                    }
                    state.access().0
                };
                call.bearer = Some(token);
                self.send(call).await
            }
            other => other,
        }
    }

    async fn refresh_locked(
        &self,
        device: &DeviceSession,
        state: &mut DeviceState,
    ) -> Result<(), ClientError> {
        let received = self.timer.now();
        let (credentials, date) = match self.refresh(&state.credentials.refresh_token).await {
            Ok(answer) => answer,
            Err(ClientError::Auth { code, .. }) => {
                return Err(ClientError::Auth {
                    code,
                    message: "This computer's connection to Online Desktop has ended. Log in again with your \
                              Online ID (Update connection)."
                        .to_owned(),
                })
            }
            Err(error) => return Err(error),
        };
        state.valid_until = date.and_then(|date| {
            let lifetime = (credentials.access_expires_at
                - chrono::DateTime::<chrono::Utc>::from(date))
            .to_std()
            .ok()?;
            received.checked_add(lifetime.checked_sub(EXPIRY_MARGIN)?)
        });
        state.credentials = credentials;
        state.generation += 1;
        device.refreshed(state);
        tracing::info!(device_id = %state.credentials.device_id, "device credentials refreshed");
        Ok(())
    }

    pub(crate) fn json_of<T: DeserializeOwned>(&self, answer: &Answer) -> Result<T, ClientError> {
        serde_json::from_slice(&answer.body)
            .map_err(|e| ClientError::protocol(self.service.as_str(), body_problem(&e)))
    }

    /// Sends `call` until it succeeds, fails for good, or the policy's
    /// attempts or time run out.
    async fn send(&self, call: &Call) -> Result<Answer, ClientError> {
        let started = self.timer.now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let (error, retryable) = match self.attempt(call).await {
                Ok(answer) if answer.status.is_success() => return Ok(answer),
                Ok(answer) => {
                    let retryable = answer.status == StatusCode::TOO_MANY_REQUESTS
                        || (answer.status.is_server_error()
                            && call.idempotency == Idempotency::Idempotent);
                    let error = ClientError::from_answer(
                        self.service.as_str(),
                        answer.status,
                        answer.retry_after,
                        &answer.body,
                    );
                    (error, retryable)
                }
                Err(Failure::Transport { cause, sent }) => {
                    // A certificate does not change by asking again.
                    let retryable = cause != UnreachableCause::Tls
                        && (!sent || call.idempotency == Idempotency::Idempotent);
                    let error = ClientError::Unreachable {
                        service: self.service.as_str().to_owned(),
                        cause,
                    };
                    (error, retryable)
                }
                Err(Failure::Final(error)) => return Err(error),
            };
            if !retryable || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let delay = match &error {
                ClientError::Unavailable {
                    retry_after: Some(wait),
                    ..
                } => *wait,
                _ => self.retry.backoff(attempt - 1, fastrand::f64()),
            };
            let elapsed = self.timer.now().saturating_duration_since(started);
            if elapsed.saturating_add(delay) > self.retry.max_total {
                tracing::debug!(path = %call.path, ?delay, "no time left to retry");
                return Err(error);
            }
            tracing::debug!(path = %call.path, attempt, ?delay, error = %error, "retrying");
            self.timer.sleep(delay).await;
        }
    }

    async fn attempt(&self, call: &Call) -> Result<Answer, Failure> {
        let mut url = self.service.join(&call.path);
        url.set_query(call.query.as_deref());
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .header(ACCEPT, "application/json");
        if let Some(token) = &call.bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| {
                    Failure::Final(ClientError::Auth {
                        code: "token_invalid".to_owned(),
                        message: "The stored credentials of this computer are damaged. Log in again with your \
                                  Online ID (Update connection)."
                            .to_owned(),
                    })
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        if let Some(timeout) = call.timeout {
            request = request.timeout(timeout);
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport(&e, e.is_connect()))?;
        let status = response.status();
        let (retry_after, date) = answer_times(response.headers());
        tracing::debug!(method = %call.method, path = %call.path, status = status.as_u16(), "answer");
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport(&e, false))?
        {
            if body.len() + chunk.len() > call.max_answer {
                return Err(Failure::Final(ClientError::protocol(
                    self.service.as_str(),
                    "the answer is far too large",
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            retry_after,
            date,
            body,
        })
    }

    fn transport(&self, error: &reqwest::Error, connecting: bool) -> Failure {
        // With compression on, reqwest reports every body failure as a
        // decoding error; only those not caused by the connection are the
        // answer's fault.
        if error.is_decode() && !connection_failed(error) {
            return Failure::Final(ClientError::protocol(
                self.service.as_str(),
                "the answer could not be decoded",
            ));
        }
        let cause = UnreachableCause::of(error);
        tracing::debug!(%cause, error = %error, "no answer");
        Failure::Transport {
            cause,
            sent: !connecting,
        }
    }
}

/// Whether the connection (rather than the answer's content) failed: a
/// timeout, or an I/O error of the connection among the causes.
fn connection_failed(error: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    error.is_timeout()
        || any_cause(error, |cause| {
            cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    ErrorKind::UnexpectedEof
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                        | ErrorKind::TimedOut
                        | ErrorKind::NotConnected
                )
            })
        })
}

fn answer_times(headers: &HeaderMap) -> (Option<Duration>, Option<SystemTime>) {
    let now = SystemTime::now();
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now));
    let date = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    (retry_after, date)
}
