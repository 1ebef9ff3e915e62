//! Support for the end-to-end tests of the Online Desktop plugin.
//!
//! The tests load the *built* cdylib exactly as a host program would: they
//! find the library ([`paths`]), open it and call through the table that
//! `od_entry` returns ([`plugin`]), and answer the plugin's callbacks with an
//! in-memory host whose every answer a test can set ([`host`]). [`fixtures`]
//! has a complete, valid company (with a licence signed by the development
//! key), and [`net`] the loopback endpoints the reachability check talks to.
//!
//! Nothing here touches the internet: every socket binds 127.0.0.1.

pub mod fixtures;
pub mod host;
pub mod net;
pub mod paths;
pub mod plugin;
