//! One comparable form of ruleset values, for tests that compare what
//! two routes made of the same configuration (two namespaces, or the
//! kernel and the compiler).

use linx_netfilter::expr::{Data, Expr};
use linx_netfilter::sys::{NFT_CHAIN_BASE, NFT_CHAIN_BINDING};
use linx_netfilter::{Ruleset, Set};

/// Removes what two holders of the same configuration may differ in:
/// kernel state, the order of hash set elements (the kernel's), the
/// numbers picked for anonymous sets and bound chains, the order of hook
/// devices, the base-chain flag and empty set descriptions the kernel
/// reports of its own.
pub fn canonical(rs: &mut Ruleset) {
    rs.clear_kernel_state();
    for t in &mut rs.tables {
        let mut n = 0;
        for c in &mut t.chains {
            for r in &mut c.rules {
                // Numbered in the order the rule uses them.
                let mut names: Vec<String> = Vec::new();
                for e in &mut r.exprs {
                    if let Some((Some(name), _)) = e.set_refs_mut() {
                        if !r.sets.iter().any(|s| s.name == *name) {
                            continue;
                        }
                        let i = match names.iter().position(|x| x == name) {
                            Some(i) => i,
                            None => {
                                names.push(name.clone());
                                names.len() - 1
                            }
                        };
                        *name = format!("__anon{}", n + i);
                    }
                }
                for s in &mut r.sets {
                    if let Some(i) = names.iter().position(|x| *x == s.name) {
                        s.name = format!("__anon{}", n + i);
                    }
                }
                n += names.len();
                r.sets.sort_by(|a, b| a.name.cmp(&b.name));
                r.sets.iter_mut().for_each(sort_elements);
            }
        }
        t.sets.iter_mut().for_each(sort_elements);
        for s in t.sets.iter_mut().chain(
            t.chains
                .iter_mut()
                .flat_map(|c| c.rules.iter_mut().flat_map(|r| r.sets.iter_mut())),
        ) {
            if s.desc.as_ref().is_some_and(|d| *d == Default::default()) {
                s.desc = None;
            }
        }
        let bound: Vec<String> = t
            .chains
            .iter()
            .filter(|c| c.flags.unwrap_or(0) & NFT_CHAIN_BINDING != 0)
            .map(|c| c.name.clone())
            .collect();
        let rename = |name: &mut String| {
            if let Some(i) = bound.iter().position(|b| b == name) {
                *name = format!("__bound{i}");
            }
        };
        for c in &mut t.chains {
            rename(&mut c.name);
            // Hook devices are a set; nft prints them in its own order.
            if let Some(h) = &mut c.hook {
                h.devices.sort();
            }
            let flags = c.flags.unwrap_or(0) & !NFT_CHAIN_BASE;
            c.flags = (flags != 0).then_some(flags);
            for e in c.rules.iter_mut().flat_map(|r| r.exprs.iter_mut()) {
                if let Expr::Immediate(i) = e {
                    if let Some(Data::Verdict(v)) = &mut i.data {
                        v.chain_mut().map(rename);
                    }
                }
            }
        }
        for s in t.sets.iter_mut() {
            for e in &mut s.elements {
                if let Some(Data::Verdict(v)) = &mut e.data {
                    v.chain_mut().map(rename);
                }
            }
        }
    }
}

fn sort_elements(s: &mut Set) {
    s.elements
        .sort_by(|a, b| (&a.key, &a.key_end, a.flags).cmp(&(&b.key, &b.key_end, b.flags)));
}

/// The first difference of two values as pretty JSON, with context.
pub fn first_difference(want: &Ruleset, got: &Ruleset) -> Option<String> {
    let w = serde_json::to_string_pretty(want).unwrap_or_default();
    let g = serde_json::to_string_pretty(got).unwrap_or_default();
    let first = w
        .lines()
        .zip(g.lines())
        .position(|(x, y)| x != y)
        .or_else(|| {
            (w.lines().count() != g.lines().count())
                .then(|| w.lines().count().min(g.lines().count()))
        })?;
    let ctx = |s: &str| {
        s.lines()
            .skip(first.saturating_sub(8))
            .take(16)
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some(format!(
        "differ at line {first}\n--- want ---\n{}\n--- got ---\n{}",
        ctx(&w),
        ctx(&g)
    ))
}
