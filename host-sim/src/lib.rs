//! The host simulator: a realistic stand-in for the desktop ERP ("host")
//! that loads the Online Desktop plugin.
//!
//! The library holds everything the `host-sim` binary does, so that later
//! phases (loading the plugin, menu actions, an interactive mode) and tests
//! can reuse it:
//!
//! - [`installation`]: the data directory and finding things by name;
//! - [`db::system`] and [`db::company`]: the two kinds of SQLite database;
//! - [`demo`]: creating the demo installation and generating records;
//! - [`licensing`]: issuing, registering and binding licences;
//! - [`channel`]: the host's answers to the plugin's data channel;
//! - [`sync`]: the host side of synchronisation (schema, change log,
//!   records, checksum);
//! - [`plugin`]: loading the plugin library and the host's callbacks;
//! - [`desktop`]: the host's Online Desktop actions and the interactive mode;
//! - [`cli`]: the command line.

pub mod channel;
pub mod cli;
pub mod db;
pub mod demo;
pub mod desktop;
pub mod error;
pub mod installation;
pub mod licensing;
pub mod plugin;
pub mod sync;
mod text;
