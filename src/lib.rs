//! Online Desktop plugin.
