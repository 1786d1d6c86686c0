//! What the agent knows of a pod on its node.

use std::collections::BTreeMap;
use std::fmt;

/// A pod scheduled on this node, as the API server (or a test) describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The pod shares the node's network namespace: never touched.
    pub host_network: bool,
}

impl fmt::Display for Pod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
