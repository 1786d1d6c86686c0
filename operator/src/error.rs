//! The operator's errors.

/// What went wrong while reconciling one FirewallRuleset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing status of {object}: {source}")]
    WriteStatus {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("publishing event for {object}: {source}")]
    PublishEvent {
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing the pods of namespace {namespace} selected by {object}: {source}")]
    ListPods {
        namespace: String,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("FirewallRuleset {0} has no namespace")]
    MissingNamespace(String),
    #[error(
        "lost the leader lease {0}: another replica holds it, or it could not be renewed in time"
    )]
    LostLease(String),
    #[error("lease {lease}: {source}")]
    Lease {
        lease: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A low-cardinality label for the error metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::WriteStatus { .. } => "write_status",
            Error::PublishEvent { .. } => "publish_event",
            Error::ListPods { .. } => "list_pods",
            Error::MissingNamespace(_) => "missing_namespace",
            Error::Lease { .. } => "lease",
            Error::LostLease(_) => "lost_lease",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
