//! What a `linx-agent` command ends with: what it printed and its exit
//! status, or what failed and on what. Shared by the commands ([`crate::cli`],
//! [`crate::observe`]).

/// What a command printed, and the process exit status.
pub struct Done {
    pub stdout: String,
    pub status: i32,
}

impl Done {
    pub(crate) fn ok(stdout: String) -> Self {
        Done { stdout, status: 0 }
    }
}

/// Errors of the CLI: what failed, and on what.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{netns}: {source}")]
    Netfilter {
        netns: String,
        #[source]
        source: linx_netfilter::Error,
    },
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a ruleset value: {message}")]
    Parse { path: String, message: String },
    /// Diagnostics, each line `FILE:LINE:COLUMN: message` with the source
    /// line and a caret under it.
    #[error("{diagnostics}")]
    Syntax { path: String, diagnostics: String },
    /// The kernel refused rules of an nft file: each at its place
    /// (`FILE:LINE:COLUMN: the kernel refused this rule: …`, the source
    /// line, a caret), then the transaction's error.
    #[error("{located}\n{netns}: {source}")]
    Refused {
        netns: String,
        located: String,
        #[source]
        source: linx_netfilter::Error,
    },
    #[error("encoding the value: {0}")]
    Encode(String),
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Install(#[from] crate::install::InstallError),
    #[error("{0}")]
    Trace(String),
}
