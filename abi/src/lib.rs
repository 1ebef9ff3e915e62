//! C ABI types.
