//! The Online Desktop online service (`online-desktop serve`).
//!
//! Online IDs (sign-up, verification, login, passwords, profile), company
//! registration with licence verification, and device tokens for the
//! plugin, as JSON API v1 (docs/ONLINE_API.md) over HTTP or HTTPS, stored in
//! one SQLite file. docs/ONLINE_SERVICE.md says how to run it and how it is
//! built.
//!
//! ```no_run
//! # async fn example() -> Result<(), od_online::ServiceError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let service = od_online::Service::new(od_online::Config::default(), listener).await?;
//! println!("listening on {}", service.url());
//! service.serve(std::future::pending()).await
//! # }
//! ```

pub mod api;
pub mod clock;
pub mod config;
pub mod error;
pub mod mail;
pub mod model;
pub mod pages;
pub mod password;
pub mod secret;
pub mod store;
pub mod sync;
pub mod throttle;
pub mod tls;
pub mod tokens;

#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use od_licence::TrustedKeys;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use api::extract::ClientAddr;
use api::{AppState, Shared, SESSION_IDLE};
use mail::{MailError, Mailer};
use password::{PasswordError, Passwords};
use store::{SqliteStore, Store, StoreError};
use tls::{TlsError, TlsListener};

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, TlsFiles};
pub use password::PasswordHashing;
pub use secret::SecretString;
pub use throttle::Limits;

/// How often expired sessions, links, tokens and old throttling events
/// are deleted.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(600);

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot open the database: {0}")]
    Database(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot set up the mail: {0}")]
    Mail(#[from] MailError),
    #[error("cannot set up password hashing: {0}")]
    Passwords(#[from] PasswordError),
    #[error("the public URL {0:?} is not an http:// or https:// URL")]
    PublicUrl(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The service, ready to serve on its listener.
pub struct Service {
    router: Router,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    local_addr: SocketAddr,
    url: String,
    state: AppState,
}

impl Service {
    /// Opens (and if needed creates and migrates) the database, reads the
    /// TLS files, sets up mail and builds the application. Nothing is
    /// served until [`Service::serve`].
    pub async fn new(config: Config, listener: TcpListener) -> Result<Service, ServiceError> {
        let store = open_store(&config).await?;
        Service::with_store(config, listener, store).await
    }

    /// As [`Service::new`], with a storage backend of the caller's choice.
    pub async fn with_store(
        config: Config,
        listener: TcpListener,
        store: Arc<dyn Store>,
    ) -> Result<Service, ServiceError> {
        let local_addr = listener.local_addr()?;
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{local_addr}");
        let public_url = match &config.public_url {
            Some(public) => {
                let public = public.trim().trim_end_matches('/').to_owned();
                if !(public.starts_with("http://") || public.starts_with("https://")) {
                    return Err(ServiceError::PublicUrl(public));
                }
                public
            }
            None => url.clone(),
        };
        let mailer = match &config.smtp_url {
            Some(smtp_url) => Mailer::smtp(smtp_url, &config.mail_from)?,
            None => Mailer::outbox(config.outbox.clone(), &config.mail_from)?,
        };
        let passwords = {
            let settings = config.password_hashing;
            tokio::task::spawn_blocking(move || Passwords::new(settings))
                .await
                .map_err(|error| PasswordError::Task(error.to_string()))??
        };
        let trusted_keys = TrustedKeys::compiled_in();
        if trusted_keys.is_empty() {
            tracing::warn!(
                "this build trusts no licence issuer key: every registration will be refused"
            );
        }
        tracing::info!(
            database = %config.database.display(),
            mail = %mailer.describe(),
            public_url = %public_url,
            "service configured"
        );
        let state = AppState::new(Shared {
            store,
            clock: config.clock.clone(),
            passwords,
            mailer,
            limits: config.limits.clone(),
            secure_cookies: tls.is_some() || public_url.starts_with("https://"),
            public_url,
            trusted_keys,
            trusted_proxies: config.trusted_proxies.clone(),
            sync_events: Default::default(),
        });
        Ok(Service {
            router: api::router(state.clone()),
            listener,
            tls,
            local_addr,
            url,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR` or `https://ADDR`: where the service listens.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves until `shutdown` completes, then finishes the requests in
    /// flight and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let housekeeping = tokio::spawn(housekeeping(self.state.clone()));
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            state.sync_events.close_all();
        };
        let app = self
            .router
            .into_make_service_with_connect_info::<ClientAddr>();
        tracing::info!(url = %self.url, "listening");
        let served = match self.tls {
            None => {
                axum::serve(self.listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            Some(acceptor) => {
                axum::serve(TlsListener::new(self.listener, acceptor)?, app)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        housekeeping.abort();
        tracing::info!("stopped");
        served.map_err(ServiceError::Io)
    }
}

/// Opens the SQLite database of `config` on the blocking pool.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServiceError> {
    let path = config.database.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
        .await
        .map_err(|error| StoreError::Database(error.to_string()))??;
    Ok(Arc::new(store))
}

/// Starts the service on `listener` and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    Service::new(config, listener).await?.serve(shutdown).await
}

async fn housekeeping(state: AppState) {
    let mut interval = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    loop {
        interval.tick().await;
        let now = state.now();
        let pruned = state
            .store
            .prune(now, now - SESSION_IDLE, now - state.limits.longest_window())
            .await;
        if let Err(error) = pruned {
            tracing::warn!(%error, "housekeeping failed");
        }
        let conflicts_before = now - chrono::Duration::days(sync::CONFLICT_RETENTION_DAYS);
        let keys_before = now - chrono::Duration::days(sync::IDEMPOTENCY_RETENTION_DAYS);
        let pruned = state.store.prune_sync(conflicts_before, keys_before).await;
        if let Err(error) = pruned {
            tracing::warn!(%error, "sync housekeeping failed");
        }
    }
}
