//! Where each rule of a compiled FirewallRuleset was written: the origin
//! map that turns a rule in a pod's kernel (family, table, chain, index in
//! the chain) back into a line and column of `spec.nft`, or a field of
//! `spec.tables`.
//!
//! The compiler keeps positions only in its diagnostics, so the map is made
//! here, beside the conversion, from the same spec: the structured form
//! names each rule's field; for nft text, the script's rule commands are
//! followed in order (`add` appends, `insert` prepends, `index N` places,
//! `flush` and `delete` empty) and each chain's result is checked against
//! the compiled chain's length. A chain whose rules the walk cannot place
//! (a form it does not follow) keeps no positions rather than wrong ones.

use std::collections::{HashMap, HashSet};
use std::fmt;

use linx_netfilter::syntax::ast::{Command, Object, Op};
use linx_netfilter::{Family, Ruleset};

use crate::resource::FirewallRulesetSpec;

/// Where a rule, or a chain (its policy), is written in the resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// `spec.nft`, or the rule's field (`spec.tables[0].chains[1].rules[2]`).
    pub field: String,
    /// 1-based line and column inside `spec.nft`.
    pub position: Option<(u32, u32)>,
}

impl fmt::Display for Source {
    /// `5:3` for a position in `spec.nft`, else the field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((l, c)) => write!(f, "{l}:{c}"),
            None => f.write_str(&self.field),
        }
    }
}

/// A rule of a pod's kernel, by position: what the kernel's trace and the
/// agent's counts name. `index` is the rule's place in its chain (0
/// first); `None` stands for the chain's policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    pub family: Family,
    pub table: String,
    pub chain: String,
    pub index: Option<usize>,
}

impl fmt::Display for RuleRef {
    /// `inet fw input #2`, `inet fw input policy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} ", self.family.name(), self.table, self.chain)?;
        match self.index {
            Some(i) => write!(f, "#{i}"),
            None => f.write_str("policy"),
        }
    }
}

/// The sources of one chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainSources {
    /// Where the chain is declared (its policy, for a base chain).
    pub chain: Option<Source>,
    /// One entry per rule of the compiled chain, in order.
    pub rules: Vec<Option<Source>>,
}

type ChainKey = (Family, String, String);

/// The origin map of one compiled resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    chains: HashMap<ChainKey, ChainSources>,
}

impl Origins {
    /// The map for `spec`, whose compiled value is `compiled`.
    ///
    /// ```
    /// use linx_crds::{origin::Origins, FirewallRulesetSpec};
    /// use linx_netfilter::Family;
    /// let spec = FirewallRulesetSpec {
    ///     nft: Some("table inet fw {\n  chain input {\n    type filter hook input priority 0; policy drop;\n    tcp dport 22 accept\n  }\n}\n".into()),
    ///     ..Default::default()
    /// };
    /// let rs = linx_crds::convert::to_ruleset(&spec).unwrap();
    /// let o = Origins::of(&spec, &rs);
    /// assert_eq!(o.rule(Family::Inet, "fw", "input", 0).unwrap().to_string(), "4:5");
    /// ```
    pub fn of(spec: &FirewallRulesetSpec, compiled: &Ruleset) -> Origins {
        let (mut o, unplaceable) = match (&spec.nft, &spec.tables) {
            (Some(src), _) => from_script(src),
            (None, Some(tables)) => (from_tables(tables), HashSet::new()),
            (None, None) => Default::default(),
        };
        o.fit(compiled, &unplaceable);
        o
    }

    /// Where rule `index` of a chain comes from.
    pub fn rule(&self, family: Family, table: &str, chain: &str, index: usize) -> Option<&Source> {
        self.sources(family, table, chain)?
            .rules
            .get(index)?
            .as_ref()
    }

    /// Where a chain (its policy) is declared.
    pub fn chain(&self, family: Family, table: &str, chain: &str) -> Option<&Source> {
        self.sources(family, table, chain)?.chain.as_ref()
    }

    /// Where `r` comes from: the rule's own source, or the chain's for its
    /// policy.
    pub fn of_rule(&self, r: &RuleRef) -> Option<&Source> {
        match r.index {
            Some(i) => self.rule(r.family, &r.table, &r.chain, i),
            None => self.chain(r.family, &r.table, &r.chain),
        }
    }

    fn sources(&self, family: Family, table: &str, chain: &str) -> Option<&ChainSources> {
        self.chains
            .get(&(family, table.to_owned(), chain.to_owned()))
    }

    /// Appends the source of a rule added after the spec's own (the
    /// instrumentation's policy rule).
    pub(crate) fn push_rule(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        s: Option<Source>,
    ) {
        self.chains
            .entry((family, table.to_owned(), chain.to_owned()))
            .or_default()
            .rules
            .push(s);
    }

    /// Makes every chain's list as long as the compiled chain: a chain the
    /// walk counted differently, or could not place, keeps no rule positions.
    fn fit(&mut self, compiled: &Ruleset, unplaceable: &HashSet<ChainKey>) {
        let mut fitted = HashMap::with_capacity(self.chains.len());
        for t in &compiled.tables {
            for c in t.chains.iter() {
                let key = (t.family, t.name.clone(), c.name.clone());
                let mut s = self.chains.remove(&key).unwrap_or_default();
                if s.rules.len() != c.rules.len() || unplaceable.contains(&key) {
                    s.rules = vec![None; c.rules.len()];
                }
                fitted.insert(key, s);
            }
        }
        self.chains = fitted;
    }
}

fn from_tables(tables: &[crate::resource::TableSpec]) -> Origins {
    let mut o = Origins::default();
    for (ti, t) in tables.iter().enumerate() {
        let family = crate::convert::family(t.family);
        for (ci, c) in t.chains.iter().enumerate() {
            let field = format!("spec.tables[{ti}].chains[{ci}]");
            let rules = (0..c.rules.len())
                .map(|ri| {
                    Some(Source {
                        field: format!("{field}.rules[{ri}]"),
                        position: None,
                    })
                })
                .collect();
            o.chains.insert(
                (family, t.name.clone(), c.name.clone()),
                ChainSources {
                    chain: Some(Source {
                        field,
                        position: None,
                    }),
                    rules,
                },
            );
        }
    }
    o
}

/// Follows the script's commands: the position of each rule command, in
/// the order the rules end up in their chain.
fn from_script(src: &str) -> (Origins, HashSet<ChainKey>) {
    let mut o = Origins::default();
    let mut unplaceable = HashSet::new();
    // Text that does not parse has no compiled value to map either.
    let Ok(script) = linx_netfilter::syntax::parse(src) else {
        return (o, unplaceable);
    };
    let at = |line: u32, column: u32| Source {
        field: "spec.nft".into(),
        position: Some((line, column)),
    };
    for cmd in &script.commands {
        let Some(family) = Family::from_name(&cmd.family) else {
            continue;
        };
        walk(&mut o, &mut unplaceable, family, cmd, &at);
    }
    (o, unplaceable)
}

fn walk(
    o: &mut Origins,
    unplaceable: &mut HashSet<ChainKey>,
    family: Family,
    cmd: &Command,
    at: &impl Fn(u32, u32) -> Source,
) {
    let in_table = |k: &ChainKey| k.0 == family && k.1 == cmd.table;
    match (&cmd.object, cmd.op) {
        (Object::Ruleset, Op::Flush) => o.chains.values_mut().for_each(|c| c.rules.clear()),
        (Object::Table { .. }, Op::Flush) => o
            .chains
            .iter_mut()
            .filter(|(k, _)| in_table(k))
            .for_each(|(_, c)| c.rules.clear()),
        (Object::Table { .. }, Op::Delete | Op::Destroy) => o.chains.retain(|k, _| !in_table(k)),
        (Object::Chain(d), op) => {
            let key = (family, cmd.table.clone(), d.name.clone());
            match op {
                Op::Delete | Op::Destroy => {
                    o.chains.remove(&key);
                }
                Op::Flush => {
                    if let Some(c) = o.chains.get_mut(&key) {
                        c.rules.clear();
                    }
                }
                _ => {
                    let c = o.chains.entry(key).or_default();
                    // The declaration that gives the policy names it; else the first.
                    if c.chain.is_none() || d.policy.is_some() {
                        c.chain = Some(at(d.span.line, d.span.column));
                    }
                }
            }
        }
        (
            Object::Rule {
                chain, position, ..
            },
            op,
        ) => {
            let key = (family, cmd.table.clone(), chain.clone());
            let s = Some(at(cmd.span.line, cmd.span.column));
            let c = o.chains.entry(key.clone()).or_default();
            match (op, position) {
                (Op::Add | Op::Create, None) => c.rules.push(s),
                (Op::Insert, None) => c.rules.insert(0, s),
                (Op::Add | Op::Create, Some((kind, n))) if kind == "index" => {
                    let i = (*n as usize + 1).min(c.rules.len());
                    c.rules.insert(i, s)
                }
                (Op::Insert, Some((kind, n))) if kind == "index" => {
                    let i = (*n as usize).min(c.rules.len());
                    c.rules.insert(i, s)
                }
                _ => {
                    unplaceable.insert(key);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nft(src: &str) -> (FirewallRulesetSpec, Ruleset) {
        let spec = FirewallRulesetSpec {
            nft: Some(src.into()),
            ..Default::default()
        };
        let rs = crate::convert::to_ruleset(&spec).unwrap();
        (spec, rs)
    }

    fn positions(o: &Origins, chain: &str, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                o.rule(Family::Inet, "fw", chain, i)
                    .map_or("?".into(), |s| s.to_string())
            })
            .collect()
    }

    #[test]
    fn block_rules_insert_and_add_commands_map_to_their_lines() {
        let src = "table inet fw {\n\
                   \tchain input {\n\
                   \t\ttype filter hook input priority 0; policy drop;\n\
                   \t\tct state established accept\n\
                   \t\ttcp dport 22 drop\n\
                   \t}\n\
                   }\n\
                   add rule inet fw input udp dport 53 accept\n\
                   insert rule inet fw input iif lo accept\n";
        let (spec, rs) = nft(src);
        let o = Origins::of(&spec, &rs);
        assert_eq!(
            positions(&o, "input", 4),
            ["9:1", "4:3", "5:3", "8:1"],
            "insert first, the block's rules, then the added one"
        );
        assert_eq!(
            o.chain(Family::Inet, "fw", "input").unwrap().to_string(),
            "2:8"
        );
        let r = RuleRef {
            family: Family::Inet,
            table: "fw".into(),
            chain: "input".into(),
            index: Some(2),
        };
        assert_eq!(r.to_string(), "inet fw input #2");
        assert_eq!(o.of_rule(&r).unwrap().to_string(), "5:3");
    }

    #[test]
    fn flush_and_delete_forget_what_they_remove() {
        let src = "table inet fw {\n\tchain c {\n\t\ttcp dport 1 accept\n\t}\n}\n\
                   flush chain inet fw c\n\
                   add rule inet fw c tcp dport 2 accept\n\
                   table inet gone {\n\tchain x {\n\t\taccept\n\t}\n}\n\
                   delete table inet gone\n";
        let (spec, rs) = nft(src);
        let o = Origins::of(&spec, &rs);
        assert_eq!(positions(&o, "c", 1), ["7:1"]);
        assert!(o.chain(Family::Inet, "gone", "x").is_none());
    }

    #[test]
    fn structured_rules_name_their_fields() {
        let spec: FirewallRulesetSpec = serde_yaml::from_str(
            "tables:\n- {name: fw, family: inet, chains: [{name: input, type: filter, hook: input, policy: drop, rules: [\"accept\", \"tcp dport 22 drop\"]}]}\n",
        )
        .unwrap();
        let rs = crate::convert::to_ruleset(&spec).unwrap();
        let o = Origins::of(&spec, &rs);
        assert_eq!(
            positions(&o, "input", 2),
            [
                "spec.tables[0].chains[0].rules[0]",
                "spec.tables[0].chains[0].rules[1]"
            ]
        );
    }
}
