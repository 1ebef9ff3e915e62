//! The plugin, as the host sees it: loading the library ([`loader`]), the
//! host's callbacks ([`host`]), and plugin instances ([`instance`]).

pub mod host;
pub mod instance;
pub mod loader;
pub mod wizard;

pub use host::{Event, Wake};
pub use instance::{
    Instance, LicenceView, PrerequisitesView, Row, RowState, Rule, Settings, SyncProgress,
    SyncState, SyncStatusView,
};
pub use loader::{Library, LoadError};
pub use wizard::{WizardAction, WizardField, WizardMode, WizardPage, WizardRow};
