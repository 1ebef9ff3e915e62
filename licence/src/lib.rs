//! Licence documents.
