//! What each pod's firewall must hold: computed by a pluggable policy, so
//! the node controller never depends on where desired values come from
//! (FirewallRulesets from the API server, a file, a test's map).

use std::sync::Arc;

use linx_netfilter::Ruleset;

use crate::pod::Pod;

/// Computes a pod's desired ruleset. `None`: nothing selects the pod, and
/// the tables the agent made there are removed.
pub trait Policy: Send + Sync {
    fn desired(&self, pod: &Pod) -> Option<Ruleset>;
    /// [`Policy::desired`], shared: a policy that hands the same value to
    /// many pods returns the same allocation (workers compare by pointer).
    fn desired_shared(&self, pod: &Pod) -> Option<Arc<Ruleset>> {
        self.desired(pod).map(Arc::new)
    }
    /// Whether the tables the agent manages in the pod but `desired` does
    /// not name must be kept as they are rather than removed (a source of
    /// the pod's rules is unknown: removing could drop rules meant to stay).
    fn holds(&self, _pod: &Pod) -> bool {
        false
    }
}

impl<F> Policy for F
where
    F: Fn(&Pod) -> Option<Ruleset> + Send + Sync,
{
    fn desired(&self, pod: &Pod) -> Option<Ruleset> {
        self(pod)
    }
}

/// One pod and the value its firewall must hold.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub pod: Pod,
    pub desired: Option<Arc<Ruleset>>,
    /// See [`Policy::holds`].
    pub hold: bool,
}

impl Target {
    /// A target whose managed tables are exactly `desired`'s.
    pub fn new(pod: Pod, desired: Option<Arc<Ruleset>>) -> Self {
        Target {
            pod,
            desired,
            hold: false,
        }
    }
}

/// The targets for `pods` under `policy`.
///
/// ```
/// use linx_agent::{desired::targets, pod::Pod};
/// use linx_netfilter::Ruleset;
/// let pods = vec![Pod { uid: "u1".into(), ..Default::default() }];
/// let t = targets(&pods, &|_: &Pod| Some(Ruleset::default()));
/// assert!(t[0].desired.is_some());
/// ```
pub fn targets(pods: &[Pod], policy: &dyn Policy) -> Vec<Target> {
    pods.iter()
        .map(|p| {
            if p.never_touched().is_some() {
                return Target::new(p.clone(), None);
            }
            Target {
                pod: p.clone(),
                desired: policy.desired_shared(p),
                hold: policy.holds(p),
            }
        })
        .collect()
}

/// Whether two desired values are the same (cheap when shared).
pub(crate) fn same(a: &Option<Arc<Ruleset>>, b: &Option<Arc<Ruleset>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
        _ => false,
    }
}
