//! One plugin instance: the plugin's state for one company database in one
//! host process. Plain Rust; the FFI layer wraps it in a handle.

use crate::events::{Event, EventKind, EventQueue};
use crate::host::Host;
use crate::logging::{self, LogConfig};
use crate::online::ServiceUrl;
use crate::prerequisites::{self, PrerequisiteList, Reachability};
use crate::runtime::Runtime;
use crate::sync::engine::{Engine, Refusal, Status};
use crate::wizard::{self, Action, Mode, Wizard};
use od_licence::LicenceReport;
use parking_lot::Mutex;
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
    engine: Arc<Engine>,
    service: ServiceUrl,
    /// The connect wizard, while it is open.
    wizard: Mutex<Option<Arc<Wizard>>>,
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
            engine: Arc::new(Engine::new(
                config.data_dir,
                config.service.clone(),
                host.clone(),
                Arc::clone(&events),
            )),
            wizard: Mutex::new(None),
            service: config.service.clone(),
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

    /// The events queued for the host's UI thread. A change of the
    /// prerequisites is a change of the wizard's page while it shows them.
    pub fn take_events(&self) -> Vec<Event> {
        let mut events = self.events.drain();
        let wizard_shows_prerequisites = self
            .wizard
            .lock()
            .as_ref()
            .is_some_and(|w| w.shows_prerequisites());
        if wizard_shows_prerequisites
            && events
                .iter()
                .any(|e| e.kind == EventKind::PrerequisitesChanged)
            && !events.iter().any(|e| e.kind == EventKind::WizardChanged)
        {
            events.push(Event {
                kind: EventKind::WizardChanged,
                payload: None,
            });
        }
        events
    }

    fn wizard_context(&self) -> wizard::Context<'_> {
        wizard::Context {
            host: &self.host,
            licence: &self.licence,
            reachability: &self.reachability,
            runtime: &self.runtime,
            events: &self.events,
            engine: &self.engine,
            service: &self.service,
        }
    }

    fn open_wizard(&self) -> Result<Arc<Wizard>, Refusal> {
        self.wizard.lock().clone().ok_or_else(|| Refusal {
            code: od_abi::OD_RESULT_BAD_STATE,
            message: "The connect wizard is not open; open it with od_plugin_wizard_open."
                .to_owned(),
        })
    }

    /// Opens the connect wizard on its first page.
    pub fn wizard_open(&self) -> Result<(), Refusal> {
        self.wizard_open_for(Mode::Connect)
    }

    /// The restore guard (PRODUCT.md §5.9): a connected company's database
    /// must not be restored from a backup.
    pub fn restore_check(&self) -> Result<(), Refusal> {
        if self.engine.status().state == crate::sync::engine::SyncState::NotConnected {
            return Ok(());
        }
        Err(Refusal {
            code: od_abi::OD_RESULT_BAD_STATE,
            message: "This company is connected to Online Desktop. Restoring a backup would set its data back \
                      behind what is online, and changes would be lost or undone. Disconnect it first (Company \
                      settings → Online Desktop → Disconnect), or restore it as a new company."
                .to_owned(),
        })
    }

    /// Opens the wizard for `mode`.
    pub fn wizard_open_for(&self, mode: Mode) -> Result<(), Refusal> {
        if self.wizard.lock().is_some() {
            return Err(Refusal {
                code: od_abi::OD_RESULT_BAD_STATE,
                message:
                    "The connect wizard is open already; close it first (od_plugin_wizard_close)."
                        .to_owned(),
            });
        }
        let opened = Wizard::open_for(&self.wizard_context(), mode)?;
        let mut slot = self.wizard.lock();
        if slot.is_some() {
            return Err(Refusal {
                code: od_abi::OD_RESULT_BAD_STATE,
                message: "The connect wizard is open already.".to_owned(),
            });
        }
        *slot = Some(opened);
        Ok(())
    }

    /// The wizard's current page as JSON.
    pub fn wizard_page(&self) -> Result<String, Refusal> {
        Ok(self.open_wizard()?.page(&self.wizard_context()))
    }

    pub fn wizard_set(&self, field: &str, value: &str) -> Result<(), Refusal> {
        self.open_wizard()?.set(field, value)
    }

    pub fn wizard_action(&self, action: Action) -> Result<(), Refusal> {
        self.open_wizard()?.act(&self.wizard_context(), action)
    }

    /// Closes the wizard (cancelling what is not finished).
    pub fn wizard_close(&self) -> Result<(), Refusal> {
        let mut slot = self.wizard.lock();
        if let Some(wizard) = slot.as_ref() {
            wizard.close()?;
        }
        *slot = None;
        Ok(())
    }

    /// Stops all background work and joins its threads. Returns false when
    /// work did not stop within the deadline.
    pub fn shut_down(&self) -> bool {
        // An open wizard goes with the instance: its password and session
        // are dropped (zeroed) with it.
        self.wizard.lock().take();
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
