//! What the kernel would refuse about the names a compiled ruleset refers
//! to, decided on the value the compiler made (no text is read here):
//! jumps and gotos to chains that do not exist or are base chains, jump
//! loops (also through verdict maps), and named objects that do not exist
//! or have another type. The compiler itself refuses unknown sets; the
//! kernel would refuse these only at commit time (ENOENT, EOPNOTSUPP,
//! ELOOP), so they are found here, before any agent tries.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use linx_netfilter::expr::{Expr, Verdict};
use linx_netfilter::sys::{NFT_DATA_VERDICT, NFT_REG_VERDICT};
use linx_netfilter::{Ruleset, Set, Table};

use crate::resource::ObjectType;

/// Where in a table a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The chain itself (its declaration, hook, policy).
    Chain { chain: String },
    /// Rule `index` (0-based) of `chain`.
    Rule { chain: String, index: usize },
    /// Element `index` of the named set or map `set`.
    Element { set: String, index: usize },
}

/// One problem found on a compiled value (a reference the kernel would
/// refuse, or a lint warning), placed in its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Index into `Ruleset::tables`.
    pub table: usize,
    pub place: Place,
    pub message: String,
}

/// Every reference problem of `rs`, table by table, in chain and rule order.
pub fn check(rs: &Ruleset) -> Vec<Problem> {
    let mut out = Vec::new();
    for (ti, t) in rs.tables.iter().enumerate() {
        TableRefs {
            ti,
            t,
            out: &mut out,
        }
        .run();
    }
    out
}

struct TableRefs<'a, 'o> {
    ti: usize,
    t: &'a Table,
    out: &'o mut Vec<Problem>,
}

/// The chain a verdict sends packets to and the keyword that does.
fn target(v: &Verdict) -> Option<(&'static str, &str)> {
    match v {
        Verdict::Jump(c) => Some(("jump", c)),
        Verdict::Goto(c) => Some(("goto", c)),
        _ => None,
    }
}

/// Verdicts held by the elements of a verdict map.
fn map_verdicts(s: &Set) -> impl Iterator<Item = (usize, &Verdict)> {
    let verdicts = s.data_type == Some(NFT_DATA_VERDICT);
    s.elements
        .iter()
        .enumerate()
        .filter(move |_| verdicts)
        .filter_map(|(i, e)| Some((i, e.data.as_ref()?.as_verdict()?)))
}

impl<'a> TableRefs<'a, '_> {
    fn problem(&mut self, place: Place, message: String) {
        self.out.push(Problem {
            table: self.ti,
            place,
            message,
        });
    }
}

/// Problems of one jump/goto target in `t`.
fn target_error(t: &Table, kw: &str, name: &str) -> Option<String> {
    match t.chain(name) {
        None => Some(format!("{kw} to unknown chain {name:?}")),
        Some(c) if c.hook.is_some() => Some(format!(
            "{kw} to base chain {name:?}: only regular chains can be jumped to"
        )),
        Some(_) => None,
    }
}

/// The verdict map a rule's expression dispatches through, if any: a
/// named map of the table or one of the rule's anonymous maps.
fn vmap<'r>(t: &'r Table, rule_sets: &'r [Set], e: &Expr) -> Option<&'r Set> {
    let Expr::Lookup(l) = e else { return None };
    if l.dreg != Some(NFT_REG_VERDICT) {
        return None;
    }
    let name = l.set.as_deref()?;
    rule_sets
        .iter()
        .find(|s| s.name == name)
        .or_else(|| t.set(name))
}

impl<'a> TableRefs<'a, '_> {
    fn run(mut self) {
        let t = self.t;
        // Chains each chain can send packets to: (to, rule index).
        let mut edges: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
        for c in &t.chains {
            for (ri, r) in c.rules.iter().enumerate() {
                let place = || Place::Rule {
                    chain: c.name.clone(),
                    index: ri,
                };
                for e in r.exprs.iter() {
                    match e {
                        Expr::Immediate(i) => {
                            let Some((kw, to)) = i
                                .data
                                .as_ref()
                                .and_then(|d| d.as_verdict())
                                .and_then(target)
                            else {
                                continue;
                            };
                            match target_error(t, kw, to) {
                                Some(msg) => self.problem(place(), msg),
                                None => edges.entry(&c.name).or_default().push((to, ri)),
                            }
                        }
                        Expr::Objref(o) => {
                            if let (Some(ty), Some(name)) = (o.imm_type, o.imm_name.as_deref()) {
                                if let Some(msg) = object_error(t, ty, name) {
                                    self.problem(place(), msg);
                                }
                            }
                        }
                        _ => {
                            if let Some(m) = vmap(t, &r.sets, e) {
                                for (_, v) in map_verdicts(m) {
                                    if let Some((kw, to)) = target(v) {
                                        if target_error(t, kw, to).is_none() {
                                            edges.entry(&c.name).or_default().push((to, ri));
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                // Anonymous verdict maps of the rule: their targets are checked here.
                for s in &r.sets {
                    for (_, v) in map_verdicts(s) {
                        if let Some(msg) = target(v).and_then(|(kw, to)| target_error(t, kw, to)) {
                            self.problem(place(), msg);
                        }
                    }
                }
            }
        }
        for s in &t.sets {
            for (ei, v) in map_verdicts(s) {
                if let Some(msg) = target(v).and_then(|(kw, to)| target_error(t, kw, to)) {
                    let place = Place::Element {
                        set: s.name.clone(),
                        index: ei,
                    };
                    self.problem(place, msg);
                }
            }
            let Some(ty) = s.obj_type else { continue };
            for (ei, e) in s.elements.iter().enumerate() {
                if let Some(msg) = e.objref.as_deref().and_then(|n| object_error(t, ty, n)) {
                    let place = Place::Element {
                        set: s.name.clone(),
                        index: ei,
                    };
                    self.problem(place, msg);
                }
            }
        }
        self.loops(&edges);
    }

    /// Chains reachable from themselves make the kernel refuse the whole
    /// table (ELOOP). Each cycle is reported once, at the first rule (in
    /// chain order) closing it.
    fn loops(&mut self, edges: &BTreeMap<&str, Vec<(&str, usize)>>) {
        let mut reported = BTreeSet::new();
        for c in &self.t.chains {
            for (to, ri) in edges.get(c.name.as_str()).into_iter().flatten() {
                let Some(path) = path_between(edges, to, &c.name) else {
                    continue;
                };
                let mut cycle = path.clone();
                cycle.sort_unstable();
                cycle.dedup();
                if !reported.insert(cycle) {
                    continue;
                }
                let mut shown = vec![c.name.as_str()];
                shown.extend(path);
                let place = Place::Rule {
                    chain: c.name.clone(),
                    index: *ri,
                };
                self.problem(place, format!("jump loop: {}", shown.join(" -> ")));
            }
        }
    }
}

/// Why a reference to object `name` of kernel type `ty` fails, if it does.
fn object_error(t: &Table, ty: u32, name: &str) -> Option<String> {
    let kind = |ty: u32| ObjectType::from_kernel(ty).map_or("object", ObjectType::as_str);
    let same_name: Vec<&linx_netfilter::Object> =
        t.objects.iter().filter(|o| o.name == name).collect();
    if same_name.iter().any(|o| o.obj_type == ty) {
        return None;
    }
    Some(match same_name.first() {
        None => format!("unknown {} object {name:?}", kind(ty)),
        Some(o) => format!(
            "object {name:?} is a {}, not a {}",
            kind(o.obj_type),
            kind(ty)
        ),
    })
}

/// Chains from `from` to `to` following `edges` (both included), if any.
fn path_between<'a>(
    edges: &BTreeMap<&'a str, Vec<(&'a str, usize)>>,
    from: &'a str,
    to: &str,
) -> Option<Vec<&'a str>> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut path = vec![n];
            let mut cur = n;
            while let Some(p) = prev.get(cur) {
                path.push(p);
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for (next, _) in edges.get(n).into_iter().flatten() {
            if seen.insert(next) {
                prev.insert(next, n);
                queue.push_back(next);
            }
        }
    }
    None
}
