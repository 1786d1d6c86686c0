//! Set and map elements that come from the cluster: the pods, services and
//! namespaces a set's `source` selects (see `docs/selectors.md`).
//!
//! * The resource's types (declared with the others in `resource`):
//!   [`SetSource`] with its [`PodPeer`]s and
//!   [`ServicePeer`]s, on a set or map of `spec.tables`, or named by a
//!   [`NamedSource`] in `spec.sources` when the tables are `spec.nft` text.
//! * Which sets of a spec have a source ([`sources_of`]) and what their
//!   key can hold ([`KeyKind`]): the set's type decides, as compiled.
//! * Their validation against the compiled value ([`check`]).
//! * The spec with resolved elements beside the static ones
//!   ([`with_elements`]): what an agent compiles, so the elements are
//!   encoded by the one compiler, exactly as static ones are.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::diagnostic::Diagnostic;
use crate::resource::{Family, FirewallRulesetSpec, MapElement};
use linx_netfilter::proto::datatype::{self, INET_PROTO, INET_SERVICE, IPV4_ADDR, IPV6_ADDR};
use linx_netfilter::sys::{NFT_SET_CONSTANT, NFT_SET_EVAL, NFT_SET_INTERVAL, NFT_SET_TIMEOUT};
use linx_netfilter::{Ruleset, Set};

pub use crate::resource::{NamedSource, PodPeer, ServicePeer, SetSource};

/// A named set or map of one table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetRef {
    pub family: Family,
    pub table: String,
    pub set: String,
}

impl SetRef {
    pub fn new(family: Family, table: impl Into<String>, set: impl Into<String>) -> Self {
        SetRef {
            family,
            table: table.into(),
            set: set.into(),
        }
    }

    /// `family table`, as diagnostics and the status name a table.
    pub fn table_label(&self) -> String {
        format!("{} {}", self.family, self.table)
    }
}

/// `inet fw api`
impl fmt::Display for SetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.family, self.table, self.set)
    }
}

/// A set of a spec that has a source.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<'a> {
    pub at: SetRef,
    /// JSON path of the source (`spec.tables[0].sets[1].source`).
    pub field: String,
    pub source: &'a SetSource,
}

/// Every set and map of `spec` with a source, in spec order.
pub fn sources_of(spec: &FirewallRulesetSpec) -> Vec<Sourced<'_>> {
    let mut out = Vec::new();
    for (ti, t) in spec.tables.iter().flatten().enumerate() {
        for (si, s) in t.sets.iter().enumerate() {
            if let Some(source) = &s.source {
                out.push(Sourced {
                    at: SetRef::new(t.family, &t.name, &s.name),
                    field: format!("spec.tables[{ti}].sets[{si}].source"),
                    source,
                });
            }
        }
        for (mi, m) in t.maps.iter().enumerate() {
            if let Some(source) = &m.source {
                out.push(Sourced {
                    at: SetRef::new(t.family, &t.name, &m.name),
                    field: format!("spec.tables[{ti}].maps[{mi}].source"),
                    source,
                });
            }
        }
    }
    for (i, n) in spec.sources.iter().enumerate() {
        out.push(Sourced {
            at: SetRef::new(n.family, &n.table, &n.set),
            field: format!("spec.sources[{i}].source"),
            source: &n.source,
        });
    }
    out
}

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrFamily {
    V4,
    V6,
}

impl AddrFamily {
    pub fn of(ip: &IpAddr) -> AddrFamily {
        match ip {
            IpAddr::V4(_) => AddrFamily::V4,
            IpAddr::V6(_) => AddrFamily::V6,
        }
    }
}

/// What one element of a sourced set holds besides the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyShape {
    /// `ipv4_addr`: the address alone.
    Address,
    /// `ipv4_addr . inet_service`: address and port.
    AddressService,
    /// `ipv4_addr . inet_proto . inet_service`: address, protocol, port.
    AddressProtoService,
}

/// What a set's key can hold, when it can hold cluster addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyKind {
    pub family: AddrFamily,
    pub shape: KeyShape,
}

impl KeyKind {
    /// The kind of `set`'s key, decided by its type as compiled (`type`
    /// and `typeof` alike); `None` for a key no source can fill.
    pub fn of(set: &Set) -> Option<KeyKind> {
        let fields = datatype::concat_len(set.key_type);
        let ids: Vec<u32> = datatype::split_concat(set.key_type, fields)?
            .iter()
            .map(|d| d.id)
            .collect();
        let family = match ids.first()? {
            id if *id == IPV4_ADDR.id => AddrFamily::V4,
            id if *id == IPV6_ADDR.id => AddrFamily::V6,
            _ => return None,
        };
        let shape = match &ids[1..] {
            [] => KeyShape::Address,
            [s] if *s == INET_SERVICE.id => KeyShape::AddressService,
            [p, s] if *p == INET_PROTO.id && *s == INET_SERVICE.id => KeyShape::AddressProtoService,
            _ => return None,
        };
        Some(KeyKind { family, shape })
    }
}

/// nft's name of a set's key type (`ipv4_addr . inet_service`).
fn type_name(set: &Set) -> String {
    let fields = datatype::concat_len(set.key_type);
    match datatype::split_concat(set.key_type, fields) {
        Some(types) => types.iter().map(|d| d.name).collect::<Vec<_>>().join(" . "),
        None => format!("type {}", set.key_type),
    }
}

fn find_set<'v>(value: &'v Ruleset, at: &SetRef) -> Option<&'v Set> {
    let fam = crate::convert::family(at.family);
    value
        .tables
        .iter()
        .find(|t| t.family == fam && t.name == at.table)?
        .sets
        .iter()
        .find(|s| s.name == at.set && !s.is_anonymous())
}

/// Checks every source of `spec` against `value`, the spec as compiled:
/// the set exists, can change (not constant, dynamic or with timeouts),
/// and its type can hold what the source yields; maps give the value their
/// keys map to (and it compiles), sets give none.
pub fn check(spec: &FirewallRulesetSpec, value: &Ruleset) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if spec.tables.is_some() && !spec.sources.is_empty() {
        out.push(Diagnostic::new(
            "spec.sources",
            "spec.sources names sets of spec.nft; with spec.tables give each set its own source",
        ));
    }
    let mut seen = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for s in sources_of(spec) {
        let diag = |field: String, msg: String| {
            Diagnostic::new(field, msg)
                .table(s.at.table_label())
                .item(format!("set {}", s.at.set))
        };
        if !seen.insert(s.at.clone()) {
            out.push(diag(s.field.clone(), "a second source for this set".into()));
            continue;
        }
        check_peers(&s, &mut out);
        let Some(set) = find_set(value, &s.at) else {
            out.push(diag(
                s.field.clone(),
                format!("no set or map {} in table {}", s.at.set, s.at.table_label()),
            ));
            continue;
        };
        let fixed = [
            (NFT_SET_CONSTANT, "constant"),
            (NFT_SET_TIMEOUT, "timeout"),
            (NFT_SET_EVAL, "dynamic"),
        ];
        if let Some((_, flag)) = fixed.iter().find(|(f, _)| set.flags & f != 0) {
            out.push(diag(
                s.field.clone(),
                format!(
                    "a set with a source changes with the cluster: it cannot have the {flag} flag"
                ),
            ));
            continue;
        }
        let Some(kind) = KeyKind::of(set) else {
            out.push(diag(
                s.field.clone(),
                format!(
                    "its type {} cannot hold cluster addresses (use ipv4_addr or ipv6_addr, \
                     optionally `. inet_service` for services' ports)",
                    type_name(set)
                ),
            ));
            continue;
        };
        let addresses_only = !s.source.pods.is_empty() || !s.source.namespaces.is_empty();
        if addresses_only && kind.shape != KeyShape::Address {
            out.push(diag(
                s.field.clone(),
                format!(
                    "pods and namespaces yield addresses only; type {} needs ports, which only services give",
                    type_name(set)
                ),
            ));
            continue;
        }
        match (set.is_map(), &s.source.value) {
            (true, None) => {
                out.push(diag(
                    format!("{}.value", s.field),
                    "a map's source needs the value its keys map to".into(),
                ));
                continue;
            }
            (false, Some(_)) => {
                out.push(diag(
                    format!("{}.value", s.field),
                    "only a map's source has a value".into(),
                ));
                continue;
            }
            _ => {}
        }
        samples.insert(s.at.clone(), Arc::from(vec![sample(kind)]));
    }
    // One element of each kind through the compiler: a map's value must
    // compile, and the element must fit the set as the agent will write it.
    if out.is_empty() && !samples.is_empty() {
        if let Err(d) = crate::convert::to_ruleset(&with_elements(spec, value, &samples)) {
            out.extend(d.into_iter().take(1).map(|mut d| {
                d.message = format!("a resolved element would not compile: {}", d.message);
                d
            }));
        }
    }
    out
}

fn check_peers(s: &Sourced<'_>, out: &mut Vec<Diagnostic>) {
    use crate::selector::check_selector;
    for (i, p) in s.source.pods.iter().enumerate() {
        let f = format!("{}.pods[{i}]", s.field);
        check_selector(&format!("{f}.podSelector"), &p.pod_selector, out);
        if let Some(n) = &p.namespace_selector {
            check_selector(&format!("{f}.namespaceSelector"), n, out);
        }
    }
    for (i, p) in s.source.services.iter().enumerate() {
        let f = format!("{}.services[{i}]", s.field);
        if p.name.is_some() == p.selector.is_some() {
            out.push(Diagnostic::new(
                f.clone(),
                "give exactly one of name and selector",
            ));
        }
        if let Some(sel) = &p.selector {
            check_selector(&format!("{f}.selector"), sel, out);
        }
        if let Some(n) = &p.namespace_selector {
            check_selector(&format!("{f}.namespaceSelector"), n, out);
        }
    }
    for (i, n) in s.source.namespaces.iter().enumerate() {
        check_selector(&format!("{}.namespaces[{i}]", s.field), n, out);
    }
}

/// An element of `kind` from the documentation ranges.
fn sample(kind: KeyKind) -> String {
    let addr = match kind.family {
        AddrFamily::V4 => "192.0.2.1",
        AddrFamily::V6 => "2001:db8::1",
    };
    match kind.shape {
        KeyShape::Address => addr.into(),
        KeyShape::AddressService => format!("{addr} . 1"),
        KeyShape::AddressProtoService => format!("{addr} . tcp . 1"),
    }
}

/// Resolved elements per set, each list sorted (as published).
pub type Resolved = BTreeMap<SetRef, Arc<[String]>>;

/// `spec` with the `resolved` elements of each sourced set added beside
/// its static ones: in the set's `elements` (maps: with the source's
/// value), or as `add element` commands after `spec.nft`. `value` is
/// `spec` compiled without them: resolved addresses a static element of
/// the set already holds (the same address, or inside a static interval
/// of an interval set) are left out, since the kernel refuses overlapping
/// intervals. Lists for sets without a source are ignored.
pub fn with_elements(
    spec: &FirewallRulesetSpec,
    value: &Ruleset,
    resolved: &Resolved,
) -> FirewallRulesetSpec {
    let mut out = spec.clone();
    let mut commands = String::new();
    for s in sources_of(spec) {
        let Some(list) = resolved.get(&s.at).filter(|l| !l.is_empty()) else {
            continue;
        };
        let held = find_set(value, &s.at).map(Held::of).unwrap_or_default();
        let elements: Vec<&str> = list
            .iter()
            .map(String::as_str)
            .filter(|e| !held.covers(e))
            .collect();
        if elements.is_empty() {
            continue;
        }
        let map_value = s.source.value.as_deref();
        if let Some(tables) = out.tables.as_mut() {
            let Some(t) = tables
                .iter_mut()
                .find(|t| t.family == s.at.family && t.name == s.at.table)
            else {
                continue;
            };
            if let Some(set) = t.sets.iter_mut().find(|x| x.name == s.at.set) {
                set.elements.extend(elements.iter().map(|e| e.to_string()));
            } else if let Some(map) = t.maps.iter_mut().find(|x| x.name == s.at.set) {
                let v = map_value.unwrap_or_default();
                map.elements.extend(elements.iter().map(|e| MapElement {
                    key: e.to_string(),
                    value: v.to_string(),
                }));
            }
        } else {
            commands.push_str(&format!(
                "add element {} {} {} {{ ",
                s.at.family, s.at.table, s.at.set
            ));
            for (i, e) in elements.iter().enumerate() {
                if i > 0 {
                    commands.push_str(", ");
                }
                commands.push_str(e);
                if let Some(v) = map_value {
                    commands.push_str(" : ");
                    commands.push_str(v);
                }
            }
            commands.push_str(" }\n");
        }
    }
    if let Some(nft) = out.nft.as_mut().filter(|_| !commands.is_empty()) {
        if !nft.ends_with('\n') {
            nft.push('\n');
        }
        nft.push_str(&commands);
    }
    out
}

/// What a set's static elements already hold, for single-address keys:
/// exact keys, and for interval sets `[start, end)` ranges.
#[derive(Default)]
struct Held {
    keys: BTreeSet<Vec<u8>>,
    ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Held {
    fn of(set: &Set) -> Held {
        let mut held = Held::default();
        if KeyKind::of(set).map(|k| k.shape) != Some(KeyShape::Address) {
            return held;
        }
        if set.flags & NFT_SET_INTERVAL == 0 {
            held.keys = set
                .elements
                .iter()
                .filter_map(|e| e.key.as_ref().map(|k| k.0.to_vec()))
                .collect();
            return held;
        }
        // Interval sets hold a start element, then an end marker one past
        // the range (none when the range runs to the last address).
        let mut marks: Vec<(Vec<u8>, bool)> = set
            .elements
            .iter()
            .filter_map(|e| {
                let end = e.flags.unwrap_or(0) & 1 != 0;
                Some((e.key.as_ref()?.0.to_vec(), end))
            })
            .collect();
        marks.sort();
        let mut open: Option<Vec<u8>> = None;
        for (key, end) in marks {
            match (end, open.take()) {
                (true, Some(start)) => held.ranges.push((start, Some(key))),
                (false, prev) => {
                    if let Some(p) = prev {
                        held.ranges.push((p, Some(key.clone())));
                    }
                    open = Some(key);
                }
                (true, None) => {}
            }
        }
        if let Some(start) = open {
            held.ranges.push((start, None));
        }
        held
    }

    fn covers(&self, element: &str) -> bool {
        let Ok(ip) = element.parse::<IpAddr>() else {
            return false;
        };
        let key = match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        self.keys.contains(&key)
            || self.ranges.iter().any(|(start, end)| {
                start.len() == key.len() && *start <= key && end.as_ref().is_none_or(|e| key < *e)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> FirewallRulesetSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn compiled(s: &FirewallRulesetSpec) -> Ruleset {
        crate::convert::to_ruleset(s).unwrap()
    }

    fn resolved(set: &str, elements: &[&str]) -> Resolved {
        BTreeMap::from([(
            SetRef::new(Family::Inet, "fw", set),
            Arc::from(elements.iter().map(|e| e.to_string()).collect::<Vec<_>>()),
        )])
    }

    const STRUCTURED: &str = r#"
tables:
- name: fw
  family: inet
  sets:
  - name: api
    type: ipv4_addr
    flags: [interval]
    elements: [10.0.0.0/16]
    source: {pods: [{podSelector: {matchLabels: {app: api}}}]}
  - name: svc
    type: ipv4_addr . inet_service
    source: {services: [{name: db}]}
  maps:
  - name: verdicts
    typeof: ip saddr
    valueType: verdict
    source: {pods: [{podSelector: {}}], value: accept}
  chains:
  - {name: input, type: filter, hook: input, policy: drop,
     rules: ["ip saddr @api tcp dport 5432 accept", "ip saddr vmap @verdicts"]}
"#;

    #[test]
    fn resolved_elements_compile_beside_static_ones_in_both_forms() {
        let s = spec(STRUCTURED);
        assert_eq!(check(&s, &compiled(&s)), vec![]);
        let mut lists = resolved("api", &["10.0.3.4", "10.1.0.1", "10.1.0.2"]);
        lists.extend(resolved("svc", &["10.96.0.10 . 5432"]));
        lists.extend(resolved("verdicts", &["10.1.0.1"]));
        let with = with_elements(&s, &compiled(&s), &lists);
        let t = &with.tables.as_ref().unwrap()[0];
        assert_eq!(
            t.sets[0].elements,
            ["10.0.0.0/16", "10.1.0.1", "10.1.0.2"],
            "10.0.3.4 is inside the static interval: left out"
        );
        assert_eq!(t.sets[1].elements, ["10.96.0.10 . 5432"]);
        assert_eq!(t.maps[0].elements[0].value, "accept");
        let got = compiled(&with);

        // The same set written by hand as nft text: the same value.
        let text = spec(
            r#"
nft: |
  table inet fw {
    set api { type ipv4_addr; flags interval; elements = { 10.0.0.0/16 } }
    chain input { type filter hook input priority 0; policy drop; ip saddr @api tcp dport 5432 accept; }
  }
sources:
- {family: inet, table: fw, set: api, source: {pods: [{podSelector: {matchLabels: {app: api}}}]}}
"#,
        );
        assert_eq!(check(&text, &compiled(&text)), vec![]);
        let nft = with_elements(&text, &compiled(&text), &lists);
        assert!(nft
            .nft
            .as_deref()
            .unwrap()
            .ends_with("\nadd element inet fw api { 10.1.0.1, 10.1.0.2 }\n"));
        let by_hand = linx_netfilter::syntax::compile(
            "table inet fw { set api { type ipv4_addr; flags interval; \
             elements = { 10.0.0.0/16, 10.1.0.1, 10.1.0.2 } } }",
        )
        .unwrap();
        assert_eq!(
            compiled(&nft).tables[0].sets[0].elements,
            by_hand.tables[0].sets[0].elements
        );
        assert_eq!(got.tables[0].sets[0], compiled(&nft).tables[0].sets[0]);
    }

    #[test]
    fn an_address_a_plain_set_holds_statically_is_not_added_twice() {
        let s = spec(
            r#"
tables:
- name: fw
  family: inet
  sets: [{name: api, type: ipv6_addr, elements: ["2001:db8::1"], source: {namespaces: [{}]}}]
"#,
        );
        let with = with_elements(
            &s,
            &compiled(&s),
            &resolved("api", &["2001:db8::1", "2001:db8::2"]),
        );
        assert_eq!(
            with.tables.unwrap()[0].sets[0].elements,
            ["2001:db8::1", "2001:db8::2"]
        );
    }

    fn errors(yaml: &str) -> Vec<String> {
        let s = spec(yaml);
        check(&s, &compiled(&s))
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn a_source_whose_set_cannot_hold_what_it_yields_is_refused() {
        let table = |set: &str| {
            format!("tables: [{{name: fw, family: inet, sets: [{set}], maps: [{{name: m, type: ipv4_addr, valueType: verdict}}]}}]")
        };
        assert_eq!(
            errors(&table(
                "{name: s, type: inet_service, source: {services: [{name: db}]}}"
            )),
            [
                "table inet fw, set s: its type inet_service cannot hold cluster addresses \
              (use ipv4_addr or ipv6_addr, optionally `. inet_service` for services' ports) \
              (spec.tables[0].sets[0].source)"
            ]
        );
        assert_eq!(
            errors(&table(
                "{name: s, type: ipv4_addr . inet_service, source: {pods: [{podSelector: {}}]}}"
            )),
            [
                "table inet fw, set s: pods and namespaces yield addresses only; type \
              ipv4_addr . inet_service needs ports, which only services give \
              (spec.tables[0].sets[0].source)"
            ]
        );
        assert_eq!(
            errors(&table(
                "{name: s, type: ipv4_addr, flags: [timeout], source: {namespaces: [{}]}}"
            )),
            [
                "table inet fw, set s: a set with a source changes with the cluster: it cannot \
              have the timeout flag (spec.tables[0].sets[0].source)"
            ]
        );
        assert_eq!(
            errors(&table(
                "{name: s, type: ipv4_addr, source: {namespaces: [{}], value: accept}}"
            )),
            ["table inet fw, set s: only a map's source has a value (spec.tables[0].sets[0].source.value)"]
        );
        assert_eq!(
            errors(
                "tables: [{name: fw, family: inet, maps: [{name: m, type: ipv4_addr, valueType: verdict, \
                 source: {namespaces: [{}], value: jmup x}}]}]"
            )
            .len(),
            1,
            "a map value that does not compile"
        );
        assert_eq!(
            errors(
                "tables: [{name: fw, family: inet, sets: [{name: s, type: ipv4_addr, source: \
                 {services: [{name: a, selector: {}}], pods: [{podSelector: {matchExpressions: \
                 [{key: a, operator: In}]}}]}}]}]"
            ),
            [
                "spec.tables[0].sets[0].source.pods[0].podSelector.matchExpressions[0]: operator In needs values",
                "spec.tables[0].sets[0].source.services[0]: give exactly one of name and selector",
            ]
        );
        assert_eq!(
            errors(
                "nft: 'table ip t { set s { type ipv4_addr; } }'\nsources: [{family: ip, table: t, set: x, source: {namespaces: [{}]}}]"
            ),
            ["table ip t, set x: no set or map x in table ip t (spec.sources[0].source)"]
        );
    }

    #[test]
    fn typeof_and_concatenated_keys_decide_the_kind() {
        let s = spec(
            r#"
nft: |
  table inet t {
    set a { typeof ip6 saddr; }
    set b { type ipv4_addr . inet_proto . inet_service; }
    set c { typeof ip daddr . tcp dport; }
  }
"#,
        );
        let v = compiled(&s);
        let kinds: Vec<Option<KeyKind>> = v.tables[0].sets.iter().map(KeyKind::of).collect();
        let k = |family, shape| Some(KeyKind { family, shape });
        assert_eq!(
            kinds,
            [
                k(AddrFamily::V6, KeyShape::Address),
                k(AddrFamily::V4, KeyShape::AddressProtoService),
                k(AddrFamily::V4, KeyShape::AddressService),
            ]
        );
    }
}
