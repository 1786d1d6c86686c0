//! The `FirewallRuleset` resource: desired nf_tables state for the pods a
//! label selector picks in the resource's own namespace.
//!
//! Sizes are bounded in the schema (so the API server's CEL cost estimate
//! stays small and one object cannot grow without limit) and the bounds
//! live in [`limits`] so the validator and the docs use the same numbers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Size limits enforced by the schema and re-checked by the validator.
pub mod limits {
    /// Tables per resource.
    pub const TABLES: usize = 8;
    /// Chains per table.
    pub const CHAINS: usize = 64;
    /// Rules per chain.
    pub const RULES: usize = 512;
    /// Characters per rule.
    pub const RULE_LEN: usize = 1024;
    /// Sets per table, and maps per table.
    pub const SETS: usize = 64;
    /// Elements per set or map.
    pub const ELEMENTS: usize = 4096;
    /// Characters per element (key or value).
    pub const ELEMENT_LEN: usize = 256;
    /// Named objects per table.
    pub const OBJECTS: usize = 64;
    /// Characters of a table, chain, set, map or object name.
    pub const NAME_LEN: usize = 64;
    /// Characters of a comment (nft keeps at most 128 bytes of userdata).
    pub const COMMENT_LEN: usize = 128;
    /// Characters of a whole `nft` text block: 1 MiB, a 10,000-rule file
    /// of long rules (the API server stores objects up to 1.5 MiB).
    pub const NFT_LEN: usize = 1_048_576;
    /// Characters of a set/map type or typeof expression.
    pub const TYPE_LEN: usize = 256;
    /// Set/map flags.
    pub const FLAGS: usize = 8;
    /// Devices of a netdev base chain.
    pub const DEVICES: usize = 16;
    /// Characters of a device name (IFNAMSIZ - 1).
    pub const DEVICE_LEN: usize = 15;
    /// Characters of a named object's definition.
    pub const DEFINITION_LEN: usize = 512;
    /// Pod, service or namespace selectors of one set's source, each.
    pub const SOURCE_PEERS: usize = 16;
    /// Entries of `spec.sources`.
    pub const SOURCES: usize = 64;
}

/// nft identifier: what `nft` accepts unquoted for table, chain, set and object names.
pub(crate) const NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_.\-]*$";

/// Desired nf_tables state for the pods selected in this namespace.
///
/// Give either `tables` (structured: tables, chains with nft rule
/// statements, sets, maps, named objects) or `nft` (one whole ruleset in
/// `nft -f` syntax), not both. Each table belongs to this resource alone in
/// every selected pod: when another FirewallRuleset selecting the same pod
/// declares a table of the same family and name, the older resource
/// (creationTimestamp, then name) keeps it and both report the conflict.
// Several printer columns repeat `type_ = "integer"`; that is not a mistake.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "netfilter.linx.dev",
    version = "v1alpha1",
    kind = "FirewallRuleset",
    plural = "firewallrulesets",
    shortname = "fwr",
    category = "linx",
    namespaced,
    status = "FirewallRulesetStatus",
    doc = "Desired nf_tables rules for the pods a label selector picks in this namespace.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Valid, and every selected pod runs the current generation"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Valid\")].status",
        description = "Whether the ruleset passed validation"
    ),
    printcolumn(
        name = "Matched",
        type_ = "integer",
        json_path = ".status.matchedPods",
        description = "Pods selected, as reported by node agents"
    ),
    printcolumn(
        name = "Applied",
        type_ = "integer",
        json_path = ".status.appliedPods",
        description = "Pods whose rules equal the current generation"
    ),
    printcolumn(
        name = "Failed",
        type_ = "integer",
        json_path = ".status.failedPods",
        description = "Pods where applying failed",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.tables) != has(self.nft)",
        "message": "give exactly one of spec.tables and spec.nft"
    },
    {
        "rule": "!has(self.sources) || has(self.nft)",
        "message": "spec.sources names sets of spec.nft; with spec.tables give each set its own source"
    }
]))]
pub struct FirewallRulesetSpec {
    /// Pods of this namespace the rules apply to. An empty selector (`{}`)
    /// selects every pod of the namespace.
    #[serde(default)]
    pub pod_selector: LabelSelector,

    /// Tables, in the structured form. Each table is owned by this resource
    /// in every selected pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::TABLES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["family", "name"]))]
    pub tables: Option<Vec<TableSpec>>,

    /// A whole ruleset in `nft -f` syntax (tables with their chains, rules,
    /// sets, maps and objects), as an alternative to `tables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::NFT_LEN))]
    pub nft: Option<String>,

    /// `Enforce` (the default): `drop` and `reject` verdicts and `policy
    /// drop` act. `Audit`: each of them instead logs the packet to the node
    /// agent (NFLOG) with the rule's identity, counts it, and accepts it;
    /// the status shows the rules that would have dropped. Switching back
    /// is one edit (see `docs/audit.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,

    /// What the node agent logs about this resource's packets, one JSON
    /// line each (see `docs/audit.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,

    /// With `nft`: sets and maps of that text whose elements come from the
    /// cluster (pods, services, namespaces), named by family, table and set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::SOURCES))]
    pub sources: Vec<NamedSource>,
}

/// Whether a resource's drops act or are only counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Enforcement {
    /// Drops and rejects act.
    #[default]
    Enforce,
    /// Drops and rejects are logged, counted and accepted.
    Audit,
}

/// What the node agent logs about a resource's packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    /// One JSON line per dropped (or, in Audit, would-be dropped) packet:
    /// pod, FirewallRuleset, rule and its source position, verdict,
    /// addresses and ports. Rate-limited per pod by the agent.
    #[serde(default)]
    pub drops: bool,
}

impl FirewallRulesetSpec {
    /// Whether the resource is in `Audit` mode.
    pub fn audit(&self) -> bool {
        self.enforcement == Some(Enforcement::Audit)
    }

    /// Whether drops are logged.
    pub fn log_drops(&self) -> bool {
        self.logging.is_some_and(|l| l.drops)
    }
}

/// Address family of a table.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 and IPv6 (the usual choice).
    #[default]
    Inet,
    /// IPv4 only.
    Ip,
    /// IPv6 only.
    Ip6,
    /// ARP.
    Arp,
    /// Bridged traffic.
    Bridge,
    /// Ingress/egress of a device.
    Netdev,
}

impl Family {
    /// Every family a table can have.
    pub const ALL: [Family; 6] = [
        Family::Inet,
        Family::Ip,
        Family::Ip6,
        Family::Arp,
        Family::Bridge,
        Family::Netdev,
    ];

    /// nft's name of the family.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A table with its chains, sets, maps and named objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.family != 'netdev' || !has(self.chains) || self.chains.all(c, !has(c.hook) || c.hook in ['ingress', 'egress'])",
        "message": "netdev base chains hook ingress or egress"
    },
    {
        "rule": "self.family != 'arp' || !has(self.chains) || self.chains.all(c, !has(c.hook) || c.hook in ['input', 'output'])",
        "message": "arp base chains hook input or output"
    },
    {
        "rule": "!(self.family in ['ip', 'ip6', 'inet', 'bridge']) || !has(self.chains) || self.chains.all(c, !has(c.hook) || c.hook != 'egress')",
        "message": "only netdev base chains hook egress"
    },
    {
        "rule": "!has(self.chains) || self.chains.all(c, !has(c.type) || c.type != 'nat' || self.family in ['ip', 'ip6', 'inet'])",
        "message": "nat chains exist only in the ip, ip6 and inet families"
    },
    {
        "rule": "!has(self.chains) || self.chains.all(c, !has(c.type) || c.type != 'route' || (self.family in ['ip', 'ip6', 'inet'] && c.hook == 'output'))",
        "message": "route chains hook output in the ip, ip6 or inet family"
    }
]))]
pub struct TableSpec {
    /// Table name, unique per family among all tables of the selected pods.
    #[schemars(length(min = 1, max = limits::NAME_LEN), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Address family: inet, ip, ip6, arp, bridge or netdev.
    pub family: Family,
    /// Comment stored with the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::COMMENT_LEN))]
    pub comment: Option<String>,
    /// Chains. A chain with `hook` is a base chain and needs `type` too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::CHAINS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub chains: Vec<ChainSpec>,
    /// Named sets, referred to as `@name` in rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::SETS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub sets: Vec<SetSpec>,
    /// Named maps (including verdict maps), referred to as `@name` in rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::SETS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub maps: Vec<MapSpec>,
    /// Named stateful objects (counters, quotas, limits, ct helpers...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::OBJECTS))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub objects: Vec<ObjectSpec>,
}

/// Netfilter hook a base chain attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
    Ingress,
    Egress,
}

impl Hook {
    /// nft's name of the hook.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
            Hook::Ingress => "ingress",
            Hook::Egress => "egress",
        }
    }
}

/// Kind of base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    /// nft's name of the chain type.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// Verdict for packets that reach the end of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Accept,
    Drop,
}

/// A chain and its rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.hook) == has(self.type)", "message": "a base chain needs both type and hook"},
    {"rule": "!has(self.priority) || has(self.hook)", "message": "priority is only for base chains (set hook)"},
    {"rule": "!has(self.policy) || has(self.hook)", "message": "policy is only for base chains (set hook)"},
    {"rule": "!has(self.devices) || (has(self.hook) && self.hook in ['ingress', 'egress'])", "message": "devices are only for ingress and egress chains"}
]))]
pub struct ChainSpec {
    /// Chain name, unique in its table.
    #[schemars(length(min = 1, max = limits::NAME_LEN), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Base chain type: filter, nat or route. Requires `hook`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub chain_type: Option<ChainType>,
    /// Hook of a base chain: prerouting, input, forward, output,
    /// postrouting, ingress or egress. Requires `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Hook>,
    /// Base chain priority: a number, or a standard name with an optional
    /// offset as nft writes it (`filter`, `dstnat - 10`, `raw + 1`).
    /// Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<IntOrString>,
    /// Base chain policy: accept (default) or drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// Devices of an ingress/egress chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::DEVICES), inner(length(min = 1, max = limits::DEVICE_LEN)))]
    pub devices: Option<Vec<String>>,
    /// Comment stored with the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::COMMENT_LEN))]
    pub comment: Option<String>,
    /// Rules in order, one nft rule statement per entry, as after
    /// `nft add rule <family> <table> <chain>` (e.g. `tcp dport 22 accept`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::RULES), inner(length(min = 1, max = limits::RULE_LEN)))]
    pub rules: Vec<String>,
}

/// Flags of a set or map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SetFlag {
    Constant,
    Interval,
    Timeout,
    Dynamic,
}

impl SetFlag {
    /// nft's name of the flag.
    pub fn as_str(self) -> &'static str {
        match self {
            SetFlag::Constant => "constant",
            SetFlag::Interval => "interval",
            SetFlag::Timeout => "timeout",
            SetFlag::Dynamic => "dynamic",
        }
    }
}

/// A named set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.type) != has(self.typeof)", "message": "give exactly one of type and typeof"}
]))]
pub struct SetSpec {
    /// Set name, unique among the sets and maps of its table.
    #[schemars(length(min = 1, max = limits::NAME_LEN), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Element type, as in nft's `type` (`ipv4_addr`, `ipv4_addr . inet_service`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::TYPE_LEN))]
    pub set_type: Option<String>,
    /// Element type given by an expression, as in nft's `typeof` (`ip saddr`).
    #[serde(default, rename = "typeof", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::TYPE_LEN))]
    pub type_of: Option<String>,
    /// Flags: constant, interval, timeout, dynamic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::FLAGS))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub flags: Vec<SetFlag>,
    /// Default element timeout in nft's syntax (`30s`, `1h`). Requires the timeout flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub timeout: Option<String>,
    /// Maximum number of elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub size: Option<u32>,
    /// Comment stored with the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::COMMENT_LEN))]
    pub comment: Option<String>,
    /// Elements, one per entry, in nft syntax (`10.0.0.1`, `10.0.0.0/8`,
    /// `10.0.0.1 . 443`, `1000-2000`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ELEMENTS), inner(length(min = 1, max = limits::ELEMENT_LEN)))]
    pub elements: Vec<String>,
    /// Elements from the cluster, beside `elements`: the addresses of the
    /// pods, services and namespaces it selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SetSource>,
}

/// A named map; a verdict map when `valueType` is `verdict`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.type) != has(self.typeof)", "message": "give exactly one of type and typeof"}
]))]
pub struct MapSpec {
    /// Map name, unique among the sets and maps of its table.
    #[schemars(length(min = 1, max = limits::NAME_LEN), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Key type, as in nft's `type` before the colon (`ipv4_addr`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::TYPE_LEN))]
    pub key_type: Option<String>,
    /// Key given by an expression, as in nft's `typeof` before the colon (`ip saddr`).
    #[serde(default, rename = "typeof", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::TYPE_LEN))]
    pub key_typeof: Option<String>,
    /// Value type: a data type (`mark`, `ipv4_addr`), `verdict`, or an
    /// expression when the key is given with `typeof` (`meta mark`).
    #[schemars(length(min = 1, max = limits::TYPE_LEN))]
    pub value_type: String,
    /// Flags: constant, interval, timeout, dynamic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::FLAGS))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub flags: Vec<SetFlag>,
    /// Default element timeout in nft's syntax. Requires the timeout flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub timeout: Option<String>,
    /// Maximum number of elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub size: Option<u32>,
    /// Comment stored with the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::COMMENT_LEN))]
    pub comment: Option<String>,
    /// Elements: key and value in nft syntax.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::ELEMENTS))]
    pub elements: Vec<MapElement>,
    /// Keys from the cluster, beside `elements`, each mapped to the
    /// source's `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SetSource>,
}

/// Where a set's or map's elements come from besides its static
/// `elements`: the addresses of the pods, services and namespaces it
/// selects, kept equal to the cluster by the operator. Every entry adds to
/// the set (a union).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.pods) || has(self.services) || has(self.namespaces)",
     "message": "a source selects pods, services or namespaces"}
]))]
pub struct SetSource {
    /// Pods, as NetworkPolicy peers select them: their IPs (`status.podIPs`)
    /// of the set's family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::SOURCE_PEERS))]
    pub pods: Vec<PodPeer>,
    /// Services: their ClusterIPs; with ports when the set's type is
    /// `ipv4_addr . inet_service` (or with `inet_proto` between them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::SOURCE_PEERS))]
    pub services: Vec<ServicePeer>,
    /// Every pod of the namespaces each selector picks (`{}`: every
    /// namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = limits::SOURCE_PEERS))]
    pub namespaces: Vec<LabelSelector>,
    /// Maps only: the value every resolved key maps to, in nft syntax
    /// (`accept`, `jump from_api`, `0x1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::ELEMENT_LEN))]
    pub value: Option<String>,
}

/// Pods picked as a NetworkPolicy peer picks them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodPeer {
    /// Pods by label (`{}`: every pod).
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// The namespaces to look in, by label (`{}`: every namespace). Absent:
    /// the FirewallRuleset's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// Services by name or by label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.name) != has(self.selector)", "message": "give exactly one of name and selector"}
]))]
pub struct ServicePeer {
    /// A Service's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// Services by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The namespaces to look in, by label. Absent: the FirewallRuleset's
    /// own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// A source for a set or map declared in `spec.nft` text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedSource {
    /// Family of the set's table.
    pub family: Family,
    /// The set's table.
    #[schemars(length(min = 1, max = limits::NAME_LEN), regex(pattern = NAME_PATTERN))]
    pub table: String,
    /// The set or map.
    #[schemars(length(min = 1, max = limits::NAME_LEN), regex(pattern = NAME_PATTERN))]
    pub set: String,
    /// Where its elements come from.
    pub source: SetSource,
}

/// One element of a map.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MapElement {
    /// Key in nft syntax (`10.0.0.1`, `22`, `10.0.0.0/8 . 80`).
    #[schemars(length(min = 1, max = limits::ELEMENT_LEN))]
    pub key: String,
    /// Value in nft syntax (`accept`, `jump ssh`, `0x10`).
    #[schemars(length(min = 1, max = limits::ELEMENT_LEN))]
    pub value: String,
}

/// Type of a named object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ObjectType {
    Counter,
    Quota,
    Limit,
    CtHelper,
    CtTimeout,
    CtExpectation,
    Secmark,
    Synproxy,
}

impl ObjectType {
    /// nft's keyword(s) for the object type.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Counter => "counter",
            ObjectType::Quota => "quota",
            ObjectType::Limit => "limit",
            ObjectType::CtHelper => "ct helper",
            ObjectType::CtTimeout => "ct timeout",
            ObjectType::CtExpectation => "ct expectation",
            ObjectType::Secmark => "secmark",
            ObjectType::Synproxy => "synproxy",
        }
    }

    /// The type for the kernel's `NFT_OBJECT_*` number, if it is one of these.
    pub fn from_kernel(ty: u32) -> Option<ObjectType> {
        use linx_netfilter::sys::*;
        Some(match ty {
            NFT_OBJECT_COUNTER => ObjectType::Counter,
            NFT_OBJECT_QUOTA => ObjectType::Quota,
            NFT_OBJECT_LIMIT => ObjectType::Limit,
            NFT_OBJECT_CT_HELPER => ObjectType::CtHelper,
            NFT_OBJECT_CT_TIMEOUT => ObjectType::CtTimeout,
            NFT_OBJECT_CT_EXPECT => ObjectType::CtExpectation,
            NFT_OBJECT_SECMARK => ObjectType::Secmark,
            NFT_OBJECT_SYNPROXY => ObjectType::Synproxy,
            _ => return None,
        })
    }
}

/// A named stateful object, used in rules by name (`counter name "web"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.type == 'counter' || has(self.definition)", "message": "only counters may omit the definition"}
]))]
pub struct ObjectSpec {
    /// Object name, unique among the objects of its table.
    #[schemars(length(min = 1, max = limits::NAME_LEN), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// counter, quota, limit, ctHelper, ctTimeout, ctExpectation, secmark or synproxy.
    #[serde(rename = "type")]
    pub object_type: ObjectType,
    /// The object's body as inside nft's braces (`over 100 mbytes` for a
    /// quota, `rate 10/second` for a limit, `type "ftp" protocol tcp` for a
    /// ct helper). Counters may omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = limits::DEFINITION_LEN))]
    pub definition: Option<String>,
    /// Comment stored with the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = limits::COMMENT_LEN))]
    pub comment: Option<String>,
}

/// Observed state, written by the operator only.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRulesetStatus {
    /// The generation (`metadata.generation`) this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Valid`: the spec passed validation (message names the first errors).
    /// `Applied`: every selected pod runs this generation's rules.
    /// `Conflicted`: a table is also claimed by another resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Pods selected, summed over the node agents' reports.
    #[serde(default)]
    pub matched_pods: i32,
    /// Pods running this generation's rules.
    #[serde(default)]
    pub applied_pods: i32,
    /// Pods where applying this generation failed.
    #[serde(default)]
    pub failed_pods: i32,
    /// Tables this resource declares that another resource also claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub conflicts: Vec<TableConflict>,
    /// Some of the pods where applying failed, with the agent's error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub failures: Vec<crate::report::PodFailure>,
    /// In `Audit` mode: packets the enforced generation would have
    /// dropped, summed over nodes.
    #[serde(default, skip_serializing_if = "crate::report::is_zero")]
    pub would_drop_total: u64,
    /// The rules that would have dropped the most (at most 10), summed
    /// over nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::report::MAX_RULE_COUNTS))]
    pub would_drop: Vec<crate::report::RuleCount>,
    /// The sets and maps with a source, and how many elements each resolved
    /// to (as published for agents in FirewallAddressSets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    pub address_sets: Vec<AddressSetStatus>,
}

/// How many elements a set's source resolved to.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct AddressSetStatus {
    /// `family name` of the set's table.
    pub table: String,
    /// The set or map.
    pub set: String,
    /// Elements resolved from the cluster (static ones not counted).
    pub elements: i32,
}

/// A table claimed by two resources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableConflict {
    /// `family name` of the table.
    pub table: String,
    /// The other resource claiming it.
    pub other: String,
    /// True when this resource owns the table (it is the older one).
    pub owned: bool,
}
