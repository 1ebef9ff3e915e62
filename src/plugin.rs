//! One plugin instance: the plugin's state for one company database in one
//! host process. Plain Rust; the FFI layer wraps it in a handle.

use crate::events::{Event, EventQueue};
use crate::host::Host;
use crate::logging::{self, LogConfig};
use crate::online::ServiceUrl;
use crate::prerequisites::{self, PrerequisiteList, Reachability};
use crate::runtime::Runtime;
use crate::sync::engine::{Engine, Refusal, Status};
use od_licence::LicenceReport;
use std::path::PathBuf;
use std::sync::Arc;
use tracing::Dispatch;

/// What the host tells the plugin about its surroundings.
pub struct Config {
    pub data_dir: Option<PathBuf>,
    pub service: ServiceUrl,
    pub log: LogConfig,
}

pub struct Plugin {
    host: Host,
    dispatch: Dispatch,
    licence: LicenceReport,
    reachability: Arc<Reachability>,
    events: Arc<EventQueue>,
    runtime: Runtime,
    engine: Engine,
}

impl Plugin {
    /// Creates the instance. Reads the licence data from the host now: a
    /// licence change takes effect at the next start. Does no network work
    /// and starts no thread.
    pub fn new(host: Host, config: Config) -> Plugin {
        let dispatch = logging::dispatch(config.log);
        let licence = tracing::dispatcher::with_default(&dispatch, || {
            let report = crate::licence::check_with_host(&host, chrono::Local::now().date_naive());
            tracing::info!(
                service = config.service.as_str(),
                data_dir = ?config.data_dir,
                ok = report.ok,
                licence = report.licence.as_ref().map(|l| l.licence_number.as_str()).unwrap_or("none"),
                "Online Desktop plugin {} loaded",
                env!("CARGO_PKG_VERSION")
            );
            report
        });
        let events = Arc::new(EventQueue::new(host.clone()));
        Plugin {
            engine: Engine::new(
                config.data_dir,
                config.service.clone(),
                host.clone(),
                Arc::clone(&events),
            ),
            events,
            runtime: Runtime::new(dispatch.clone()),
            reachability: Arc::new(Reachability::new(config.service)),
            host,
            dispatch,
            licence,
        }
    }

    /// The dispatcher every call into this instance runs under.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// The licence check, as read when the plugin was created.
    pub fn licence(&self) -> &LicenceReport {
        &self.licence
    }

    /// The prerequisite rows; starts the reachability probe in the
    /// background when needed (`refresh` forces a new one).
    pub fn prerequisites(&self, refresh: bool) -> PrerequisiteList {
        prerequisites::check(
            &prerequisites::Context {
                host: &self.host,
                licence: &self.licence,
                reachability: &self.reachability,
                runtime: &self.runtime,
                events: &self.events,
            },
            refresh,
        )
    }

    /// Stores the connection to the online service (device credentials).
    pub fn set_connection(&self, json: &str) -> Result<(), Refusal> {
        self.engine.set_connection(json)
    }

    /// Starts synchronising in the background; `now` ignores a schedule.
    pub fn start_sync(&self, now: bool) -> Result<(), Refusal> {
        self.engine.start(&self.runtime, now)
    }

    /// Asks synchronisation to stop at its next safe point.
    pub fn stop_sync(&self) {
        self.engine.stop();
    }

    /// Schedules the first synchronisation (RFC 3339), or clears it.
    pub fn schedule_sync(&self, at: Option<&str>) -> Result<(), Refusal> {
        self.engine.schedule(at)
    }

    /// The host committed changes.
    pub fn notify_sync(&self) {
        self.engine.notify();
    }

    pub fn sync_status(&self) -> Status {
        self.engine.status()
    }

    pub fn sync_history(&self) -> Result<String, Refusal> {
        self.engine.history_json()
    }

    /// The events queued for the host's UI thread.
    pub fn take_events(&self) -> Vec<Event> {
        self.events.drain()
    }

    /// Stops all background work and joins its threads. Returns false when
    /// work did not stop within the deadline.
    pub fn shut_down(&self) -> bool {
        let stopped = self.runtime.shut_down();
        tracing::dispatcher::with_default(&self.dispatch, || {
            if stopped {
                tracing::info!("Online Desktop plugin stopped");
            } else {
                tracing::error!("background work did not stop in time");
            }
        });
        stopped
    }
}
