//! The host's Online Desktop screens: rendering the plugin's reports, the
//! interactive desktop, and the add-on lifecycle check.

pub mod interactive;
pub mod lifecycle;
pub mod render;
