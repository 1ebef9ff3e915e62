//! The Online Desktop plugin: a library with a C ABI that a desktop ERP (the
//! host) loads to put a company's data online.
//!
//! The C face lives in [`ffi`]; everything else is plain Rust that knows
//! nothing of C. See `docs/ARCHITECTURE.md` for the parts and the ABI rules.

mod events;
pub mod ffi;
mod host;
mod licence;
mod logging;
mod online;
mod plugin;
mod prerequisites;
mod runtime;
mod sync;
mod wizard;
