//! The cluster as set sources see it (the pure index): namespaces with
//! their labels, pods with their labels and addresses, services with their
//! ClusterIPs and ports, kept from watch events, and resolution of a
//! source to its sorted element list. No I/O: `publish` feeds it and
//! writes what it computes.
//!
//! Which pods give addresses (see `docs/selectors.md`):
//! * **without an IP yet**: none, until `status.podIPs` is set; the
//!   change that sets it adds them.
//! * **terminating** (`deletionTimestamp` set): kept until the pod is gone
//!   or reaches Succeeded/Failed, as an EndpointSlice keeps a terminating
//!   endpoint: a pod draining connections may still open new ones (a last
//!   write to its database). The kubelet releases the IP only when the
//!   sandbox is torn down, after the containers stopped.
//! * **hostNetwork**: never (the watch does not even list them): their
//!   address is the node's, shared by every host-network pod and the
//!   kubelet, so allowing it would allow all of them.
//! * **Succeeded or Failed**: never: their sandbox is gone and their IP
//!   may already be another pod's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use linx_crds::selector::selects;
use linx_crds::source::{AddrFamily, KeyKind, KeyShape, SetSource};

type Labels = BTreeMap<String, String>;

/// What resolution needs of a pod that gives addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodEntry {
    pub labels: Labels,
    pub ips: Vec<IpAddr>,
}

impl PodEntry {
    /// `(namespace, name, entry)` of a pod, or `None` when it gives no
    /// addresses (hostNetwork, Succeeded, Failed; see the module doc).
    pub fn of(pod: &Pod) -> Option<(String, String, PodEntry)> {
        let m = &pod.metadata;
        let (ns, name) = (m.namespace.clone()?, m.name.clone()?);
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            return None;
        }
        let status = pod.status.as_ref();
        if matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            return None;
        }
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if ips.is_empty() {
            // Clusters without dual-stack fields set only `podIP`.
            ips.extend(
                status
                    .and_then(|s| s.pod_ip.as_deref())
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        Some((
            ns,
            name,
            PodEntry {
                labels: m.labels.clone().unwrap_or_default(),
                ips,
            },
        ))
    }
}

/// A service port: protocol name as nft writes it, and number.
pub type Port = (&'static str, u16);

/// What resolution needs of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEntry {
    pub labels: Labels,
    /// `spec.clusterIPs` (none for headless and ExternalName services).
    pub ips: Vec<IpAddr>,
    pub ports: Vec<Port>,
}

impl ServiceEntry {
    pub fn of(svc: &Service) -> Option<(String, String, ServiceEntry)> {
        let m = &svc.metadata;
        let (ns, name) = (m.namespace.clone()?, m.name.clone()?);
        let spec = svc.spec.as_ref();
        let mut ips: Vec<IpAddr> = spec
            .and_then(|s| s.cluster_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if ips.is_empty() {
            // "None" (headless) does not parse: no address.
            ips.extend(
                spec.and_then(|s| s.cluster_ip.as_deref())
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        let ports = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let proto = match p.protocol.as_deref().unwrap_or("TCP") {
                    "TCP" => "tcp",
                    "UDP" => "udp",
                    "SCTP" => "sctp",
                    _ => return None,
                };
                Some((proto, u16::try_from(p.port).ok()?))
            })
            .collect();
        Some((
            ns,
            name,
            ServiceEntry {
                labels: m.labels.clone().unwrap_or_default(),
                ips,
                ports,
            },
        ))
    }
}

/// The namespaces a peer looks in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The FirewallRuleset's own namespace.
    Own(String),
    /// Namespaces chosen by label: any may matter.
    Any,
}

impl Scope {
    fn of(own: &str, namespace_selector: Option<&LabelSelector>) -> Scope {
        match namespace_selector {
            None => Scope::Own(own.to_string()),
            Some(_) => Scope::Any,
        }
    }

    fn covers(&self, ns: &str) -> bool {
        match self {
            Scope::Own(o) => o == ns,
            Scope::Any => true,
        }
    }
}

/// What changed in the index since it was last asked: which sources must
/// be resolved again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Namespaces where pods changed.
    pub pods: BTreeSet<String>,
    /// Namespaces where services changed.
    pub services: BTreeSet<String>,
    /// Some namespace's labels changed, or a namespace came or went.
    pub namespaces: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.services.is_empty() && !self.namespaces
    }

    /// Whether a source of a ruleset in `own` may resolve differently now.
    pub fn affect(&self, own: &str, source: &SetSource) -> bool {
        let pod_scopes = source
            .pods
            .iter()
            .map(|p| Scope::of(own, p.namespace_selector.as_ref()))
            .chain(source.namespaces.iter().map(|_| Scope::Any));
        let service_scopes = source
            .services
            .iter()
            .map(|s| Scope::of(own, s.namespace_selector.as_ref()));
        let by_labels = |s: &Scope| self.namespaces && *s == Scope::Any;
        pod_scopes
            .into_iter()
            .any(|s| by_labels(&s) || self.pods.iter().any(|ns| s.covers(ns)))
            || service_scopes
                .into_iter()
                .any(|s| by_labels(&s) || self.services.iter().any(|ns| s.covers(ns)))
    }
}

/// Namespaces, pods and services, by namespace then name.
#[derive(Clone, Debug, Default)]
pub struct Index {
    namespaces: BTreeMap<String, Labels>,
    pods: BTreeMap<String, BTreeMap<String, PodEntry>>,
    services: BTreeMap<String, BTreeMap<String, ServiceEntry>>,
    changes: Changes,
}

fn put<E: PartialEq>(
    map: &mut BTreeMap<String, BTreeMap<String, E>>,
    ns: String,
    name: String,
    entry: Option<E>,
) -> Option<String> {
    let in_ns = map.entry(ns.clone()).or_default();
    let changed = match entry {
        Some(e) if in_ns.get(&name) == Some(&e) => false,
        Some(e) => {
            in_ns.insert(name, e);
            true
        }
        None => in_ns.remove(&name).is_some(),
    };
    if in_ns.is_empty() {
        map.remove(&ns);
    }
    changed.then_some(ns)
}

impl Index {
    /// Takes the changes recorded since the last call.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// A pod was added or changed (or is gone, with `deleted`).
    pub fn pod(&mut self, pod: &Pod, deleted: bool) {
        let m = &pod.metadata;
        let (Some(ns), Some(name)) = (m.namespace.clone(), m.name.clone()) else {
            return;
        };
        let entry = if deleted {
            None
        } else {
            PodEntry::of(pod).map(|(_, _, e)| e)
        };
        if let Some(ns) = put(&mut self.pods, ns, name, entry) {
            self.changes.pods.insert(ns);
        }
    }

    /// A service was added or changed (or is gone, with `deleted`).
    pub fn service(&mut self, svc: &Service, deleted: bool) {
        let m = &svc.metadata;
        let (Some(ns), Some(name)) = (m.namespace.clone(), m.name.clone()) else {
            return;
        };
        let entry = if deleted {
            None
        } else {
            ServiceEntry::of(svc).map(|(_, _, e)| e)
        };
        if let Some(ns) = put(&mut self.services, ns, name, entry) {
            self.changes.services.insert(ns);
        }
    }

    /// A namespace was added or changed (or is gone, with `deleted`).
    pub fn namespace(&mut self, ns: &Namespace, deleted: bool) {
        let Some(name) = ns.metadata.name.clone() else {
            return;
        };
        let changed = if deleted {
            self.namespaces.remove(&name).is_some()
        } else {
            let labels = ns.metadata.labels.clone().unwrap_or_default();
            self.namespaces.insert(name, labels.clone()) != Some(labels)
        };
        self.changes.namespaces |= changed;
    }

    /// Replaces every pod (after a full list) by `(namespace, name, entry)`s.
    pub fn replace_pods(&mut self, pods: impl IntoIterator<Item = (String, String, PodEntry)>) {
        let mut fresh: BTreeMap<String, BTreeMap<String, PodEntry>> = BTreeMap::new();
        for (ns, name, e) in pods {
            fresh.entry(ns).or_default().insert(name, e);
        }
        self.changes
            .pods
            .extend(changed_namespaces(&self.pods, &fresh));
        self.pods = fresh;
    }

    /// Replaces every service (after a full list) by `(namespace, name, entry)`s.
    pub fn replace_services(
        &mut self,
        services: impl IntoIterator<Item = (String, String, ServiceEntry)>,
    ) {
        let mut fresh: BTreeMap<String, BTreeMap<String, ServiceEntry>> = BTreeMap::new();
        for (ns, name, e) in services {
            fresh.entry(ns).or_default().insert(name, e);
        }
        self.changes
            .services
            .extend(changed_namespaces(&self.services, &fresh));
        self.services = fresh;
    }

    /// Replaces every namespace (after a full list).
    pub fn replace_namespaces<'a>(&mut self, namespaces: impl IntoIterator<Item = &'a Namespace>) {
        let fresh: BTreeMap<String, Labels> = namespaces
            .into_iter()
            .filter_map(|n| {
                Some((
                    n.metadata.name.clone()?,
                    n.metadata.labels.clone().unwrap_or_default(),
                ))
            })
            .collect();
        self.changes.namespaces |= fresh != self.namespaces;
        self.namespaces = fresh;
    }

    /// Namespaces (other than by name, `own`) a selector picks.
    fn namespaces_for<'a>(
        &'a self,
        own: &'a str,
        selector: Option<&'a LabelSelector>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        let picked: Vec<&str> = match selector {
            None => vec![own],
            Some(sel) => self
                .namespaces
                .iter()
                .filter(|(_, labels)| selects(sel, labels))
                .map(|(n, _)| n.as_str())
                .collect(),
        };
        picked.into_iter()
    }

    /// The elements `source` resolves to for a ruleset in namespace `own`
    /// whose set has key `kind`: sorted, without duplicates. Addresses of
    /// the other family are left out (dual stack is one set per family).
    pub fn resolve(&self, own: &str, source: &SetSource, kind: KeyKind) -> Vec<String> {
        let fam = |ip: &IpAddr| AddrFamily::of(ip) == kind.family;
        let mut out: BTreeSet<String> = BTreeSet::new();
        if kind.shape == KeyShape::Address {
            let mut pods_in = |ns: &str, sel: Option<&LabelSelector>| {
                for e in self.pods.get(ns).into_iter().flat_map(|m| m.values()) {
                    if sel.is_none_or(|s| selects(s, &e.labels)) {
                        out.extend(e.ips.iter().filter(|ip| fam(ip)).map(|ip| ip.to_string()));
                    }
                }
            };
            for p in &source.pods {
                for ns in self.namespaces_for(own, p.namespace_selector.as_ref()) {
                    pods_in(ns, Some(&p.pod_selector));
                }
            }
            for n in &source.namespaces {
                for ns in self.namespaces_for(own, Some(n)) {
                    pods_in(ns, None);
                }
            }
        }
        for s in &source.services {
            for ns in self.namespaces_for(own, s.namespace_selector.as_ref()) {
                let in_ns = self.services.get(ns).into_iter().flat_map(|m| m.iter());
                for (name, e) in in_ns {
                    let picked = match (&s.name, &s.selector) {
                        (Some(n), _) => n == name,
                        (None, Some(sel)) => selects(sel, &e.labels),
                        (None, None) => false,
                    };
                    if !picked {
                        continue;
                    }
                    for ip in e.ips.iter().filter(|ip| fam(ip)) {
                        match kind.shape {
                            KeyShape::Address => {
                                out.insert(ip.to_string());
                            }
                            KeyShape::AddressService => {
                                out.extend(e.ports.iter().map(|(_, p)| format!("{ip} . {p}")));
                            }
                            KeyShape::AddressProtoService => out.extend(
                                e.ports
                                    .iter()
                                    .map(|(proto, p)| format!("{ip} . {proto} . {p}")),
                            ),
                        }
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Pods known (giving addresses or not yet), for logs and tests.
    pub fn pod_count(&self) -> usize {
        self.pods.values().map(BTreeMap::len).sum()
    }
}

fn changed_namespaces<E: PartialEq>(
    old: &BTreeMap<String, BTreeMap<String, E>>,
    new: &BTreeMap<String, BTreeMap<String, E>>,
) -> Vec<String> {
    old.keys()
        .chain(new.keys())
        .filter(|ns| old.get(*ns) != new.get(*ns))
        .cloned()
        .collect()
}
