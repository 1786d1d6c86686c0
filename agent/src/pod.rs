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

impl Pod {
    /// Why Linx must never enter this pod's network namespace, if so: the
    /// one decision that the policy, the worker, the resolver, the CNI
    /// endpoint and traces all consult (each refuses on its own, so that no
    /// single path can be the one that forgets).
    pub fn never_touched(&self) -> Option<&'static str> {
        self.host_network.then_some("hostNetwork")
    }
}

impl fmt::Display for Pod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
