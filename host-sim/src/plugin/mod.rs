//! The plugin, as the host sees it: loading the library ([`loader`]), the
//! host's callbacks ([`host`]), and plugin instances ([`instance`]).

pub mod host;
pub mod instance;
pub mod loader;

pub use instance::{Instance, LicenceView, PrerequisitesView, Row, RowState, Rule, Settings};
pub use loader::{Library, LoadError};
