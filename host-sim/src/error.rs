//! The one error type of the host simulator's library modules.
//!
//! Messages are written for the person at the keyboard (a bookkeeper or a
//! tester), not for a programmer: they say what is wrong and what to do.

use std::path::PathBuf;

/// Everything that can go wrong while managing the simulated installation.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("No host installation was found in {}. Create one with `host-sim init`.", .0.display())]
    NoInstallation(PathBuf),

    #[error(
        "An installation already exists in {}. Use --force to replace it (this deletes all its data).",
        .0.display()
    )]
    InstallationExists(PathBuf),

    #[error("There is no {kind} \u{201c}{query}\u{201d}.{hint}")]
    NotFound {
        kind: &'static str,
        query: String,
        /// Either empty or a sentence (with a leading space) listing what exists.
        hint: String,
    },

    #[error(
        "\u{201c}{query}\u{201d} matches more than one {kind}: {matches}. Type more of the name, or use the id."
    )]
    Ambiguous {
        kind: &'static str,
        query: String,
        matches: String,
    },

    /// The request is understood but the host's rules do not allow it.
    #[error("{0}")]
    NotAllowed(String),

    /// A value given by the user cannot be used.
    #[error("{0}")]
    InvalidInput(String),

    #[error("The database file {} could not be opened: {source}", path.display())]
    OpenDatabase {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("A database operation failed: {0}")]
    Database(#[from] rusqlite::Error),

    /// The plugin library could not be loaded or is not compatible.
    #[error(transparent)]
    AddOnLoad(#[from] crate::plugin::LoadError),

    /// A call into the plugin failed.
    #[error("The Online Desktop add-on reported an error: {0}")]
    AddOn(crate::plugin::instance::CallError),

    /// The add-on refused a request and said why in words meant for the
    /// person at the keyboard (its message is shown as it is).
    #[error("{0}")]
    AddOnRefused(String),

    /// Talking to the online service failed; the message says why and
    /// what to do.
    #[error("{0}")]
    Online(String),

    /// "Connect" was chosen while a requirement is not met (exit code 3).
    #[error("{0}")]
    RequirementsNotMet(String),

    /// A check did not pass (for example the lifecycle check).
    #[error("{0}")]
    CheckFailed(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl From<crate::plugin::instance::CallError> for HostError {
    fn from(error: crate::plugin::instance::CallError) -> HostError {
        // An add-on too old for a feature is a loading matter, said as such.
        if error.code == od_abi::OD_RESULT_ABI_VERSION {
            HostError::AddOnRefused(error.message)
        } else {
            HostError::AddOn(error)
        }
    }
}

impl HostError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HostError::Io {
            context: context.into(),
            source,
        }
    }
}

impl HostError {
    /// The process exit code for this error: 3 when requirements for
    /// connecting are not met, so scripts can tell it from other failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            HostError::RequirementsNotMet(_) => 3,
            _ => 1,
        }
    }
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;
