//! What the cluster adapter last handed to the node controller, read by
//! the node report, the readiness gate and FirewallTraces.

use std::collections::HashMap;
use std::sync::Arc;

use crate::pod::Pod;
use crate::rulesets::RulesetPolicy;

/// The pods and policy last given to the controller, with each pod's
/// desired revision: what the report is computed from.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub pods: Vec<Pod>,
    pub policy: Arc<RulesetPolicy>,
    /// Pod UID → revision of its current desired value.
    pub revisions: HashMap<String, u64>,
}
