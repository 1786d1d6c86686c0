//! Reads a ruleset (all of it, or some tables) out of the kernel as one
//! consistent value.
//!
//! ```no_run
//! use linx_netfilter::{pull::{pull, Selector}, Netns, Socket};
//! let mut sock = Socket::open(&"/run/netns/pod1".parse::<Netns>().unwrap())?;
//! let pulled = pull(&mut sock, &Selector::All)?;
//! println!("{} tables at generation {}", pulled.ruleset.tables.len(), pulled.generation);
//! # Ok::<(), linx_netfilter::Error>(())
//! ```

use std::collections::HashMap;

use crate::codec::{self, setref};
use crate::error::{Error, Result};
use crate::model::{Family, Rule, Ruleset, Set, Table};
use crate::netlink::{Dump, Msg, Socket, Writer};
use crate::sys::*;

mod elements;

/// Which tables to pull.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selector {
    /// Every table of every family.
    #[default]
    All,
    /// These tables (family, name); missing ones are simply absent.
    Tables(Vec<(Family, String)>),
}

impl Selector {
    fn wants(&self, family: Family, name: &str) -> bool {
        match self {
            Selector::All => true,
            Selector::Tables(t) => t.iter().any(|(f, n)| *f == family && n == name),
        }
    }
}

/// A pulled ruleset and the generation it is a snapshot of (a push
/// guarded with it fails if anyone committed since).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    pub ruleset: Ruleset,
    pub generation: u32,
}

/// How often a pull is redone when commits keep landing during it. Between
/// attempts it backs off (jittered, doubling from 1 ms to 128 ms), so a busy
/// writer's pauses give it a window; after that it reports contention.
const ATTEMPTS: u32 = 24;

/// Pulls the selected tables with everything in them: chains with their
/// rules, sets with their elements, objects, flowtables. Anonymous sets
/// are attached to the rules that use them (`Rule::sets`).
///
/// Consistency: the generation is read before and after all dumps; if it
/// moved, the whole pull is redone, so the value is one generation's state.
pub fn pull(sock: &mut Socket, which: &Selector) -> Result<Pulled> {
    pull_judged(sock, which, |_, _| Ok(false))
}

/// [`pull`], but when the generation moved from `before` to `after`
/// during the dumps, `unchanged(before, after)` may vouch that the
/// selected tables did not change meanwhile (every commit between touched
/// other tables: see [`crate::events::Journal`]); the value is then the
/// state at `after`, without pulling again. A busy writer in another table
/// would otherwise starve a long pull.
pub fn pull_judged(
    sock: &mut Socket,
    which: &Selector,
    mut unchanged: impl FnMut(u32, u32) -> Result<bool>,
) -> Result<Pulled> {
    let mut jitter = (std::process::id() as u64) | 1;
    for attempt in 0..ATTEMPTS {
        let before = sock.generation()?.id;
        let ruleset = pull_once(sock, which)?;
        let after = sock.generation()?.id;
        if after == before || unchanged(before, after)? {
            return Ok(Pulled {
                ruleset,
                generation: after,
            });
        }
        jitter = jitter
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let base = 1u64 << attempt.min(7);
        std::thread::sleep(std::time::Duration::from_micros(
            base * 1000 + (jitter >> 33) % (base * 1000),
        ));
    }
    Err(Error::Contention { attempts: ATTEMPTS })
}

/// Tables by (family, name) → index in the ruleset.
type Index = HashMap<(u8, String), usize>;

/// The selected tables themselves, without what they hold (one dump): to
/// find tables by what the table says (its userdata, its flags) without
/// pulling their contents. Not tied to a generation.
pub fn tables(sock: &mut Socket, which: &Selector) -> Result<Vec<Table>> {
    let mut out = Vec::new();
    for m in sock
        .dump(NFT_MSG_GETTABLE, NFPROTO_UNSPEC as u8, |_| {})?
        .iter()
    {
        let t = codec::table::decode(&m?)?;
        if which.wants(t.family, &t.name) {
            out.push(t);
        }
    }
    Ok(out)
}

fn pull_once(sock: &mut Socket, which: &Selector) -> Result<Ruleset> {
    let mut rs = Ruleset {
        tables: tables(sock, which)?,
    };
    let index: Index = rs
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.family.into(), t.name.clone()), i))
        .collect();

    let mut counts = Counts::new();
    // Chains, sets, objects, flowtables: one dump each for the whole
    // ruleset, or one per selected table. The kernel does not filter every
    // kind of dump by table (measured: a chain dump naming one table lists
    // the family's chains of every table), so what it sends for another
    // table is dropped here.
    let dumps = [
        (NFT_MSG_GETCHAIN, NFTA_CHAIN_TABLE),
        (NFT_MSG_GETSET, NFTA_SET_TABLE),
        (NFT_MSG_GETOBJ, NFTA_OBJ_TABLE),
        (NFT_MSG_GETFLOWTABLE, NFTA_FLOWTABLE_TABLE),
    ];
    for (msg, table_attr) in dumps {
        let scopes: Vec<(u8, Option<String>)> = match which {
            Selector::All => vec![(NFPROTO_UNSPEC as u8, None)],
            Selector::Tables(_) => rs
                .tables
                .iter()
                .map(|t| (t.family.into(), Some(t.name.clone())))
                .collect(),
        };
        for (family, table) in scopes {
            let dump = sock.dump(msg, family, |w: &mut Writer| {
                if let Some(t) = &table {
                    w.put_str(table_attr, t);
                }
            })?;
            let only = table.as_deref().map(|t| (family, t));
            place(&mut rs, &index, &dump, only, &mut counts)?;
        }
    }

    // Elements, one dump per set (see `elements`); rules meanwhile, one
    // dump per chain (the kernel's dump cost grows with the square of one
    // dump's size).
    elements::pull(sock, &mut rs.tables, &counts, dump_rules)?;
    for t in &mut rs.tables {
        attach_anonymous_sets(t);
    }
    Ok(rs)
}

/// Dumps every chain's rules into it.
fn dump_rules(sock: &mut Socket, tables: &mut [Table]) -> Result<()> {
    for t in tables {
        let family: u8 = t.family.into();
        for c in &mut t.chains {
            let dump = sock.dump(NFT_MSG_GETRULE, family, |w| {
                w.put_str(NFTA_RULE_TABLE, &t.name);
                w.put_str(NFTA_RULE_CHAIN, &c.name);
            })?;
            c.rules.reserve(dump.len());
            for m in dump.iter() {
                let r = codec::rule::decode(&m?)?;
                if r.parent == Some(c.name.as_str()) && r.table == t.name {
                    c.rules.push(r.value);
                }
            }
        }
    }
    Ok(())
}

/// The kernel's element count per set: (family, table, set) → count.
type Counts = HashMap<(u8, String, String), u32>;

/// Files each decoded chain, set, object or flowtable under its table; with
/// `only` = (family, table), only those of that table.
fn place(
    rs: &mut Ruleset,
    index: &Index,
    dump: &Dump,
    only: Option<(u8, &str)>,
    counts: &mut Counts,
) -> Result<()> {
    for m in dump.iter() {
        let m: Msg<'_> = m?;
        let Some(kind) = m.nft_msg() else { continue };
        let (family, _) = m.nfgen()?;
        let find = |name: &str| {
            if only.is_some_and(|(f, t)| f != family || t != name) {
                return None;
            }
            index.get(&(family, name.to_owned())).copied()
        };
        match kind {
            NFT_MSG_NEWCHAIN => {
                let d = codec::chain::decode(&m)?;
                if let Some(i) = find(d.table) {
                    rs.tables[i].chains.push(d.value);
                }
            }
            NFT_MSG_NEWSET => {
                let d = codec::set::decode(&m)?;
                // The count is a kernel fact the value does not keep.
                let (_, attrs) = m.nfgen()?;
                if let Some(n) = attrs
                    .flatten()
                    .find(|a| a.kind() == NFTA_SET_COUNT)
                    .and_then(|a| a.u32_be().ok())
                {
                    counts.insert((family, d.table.to_owned(), d.value.name.clone()), n);
                }
                if let Some(i) = find(d.table) {
                    rs.tables[i].sets.push(d.value);
                }
            }
            NFT_MSG_NEWOBJ => {
                let d = codec::object::decode(&m)?;
                if let Some(i) = find(d.table) {
                    rs.tables[i].objects.push(d.value);
                }
            }
            NFT_MSG_NEWFLOWTABLE => {
                let d = codec::flowtable::decode(&m)?;
                if let Some(i) = find(d.table) {
                    rs.tables[i].flowtables.push(d.value);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Moves each anonymous set from the table into the rule(s) naming it; a
/// set no rule names stays in the table, so nothing is lost.
fn attach_anonymous_sets(t: &mut Table) {
    if !t.sets.iter().any(Set::is_anonymous) {
        return;
    }
    let (anon, named): (Vec<Set>, Vec<Set>) = std::mem::take(&mut t.sets)
        .into_iter()
        .partition(Set::is_anonymous);
    t.sets = named;
    // name → (set, references left)
    let mut anon: HashMap<String, (Option<Set>, usize)> = anon
        .into_iter()
        .map(|s| (s.name.clone(), (Some(s), 0)))
        .collect();
    visit(t, &mut |_, n| {
        if let Some(e) = anon.get_mut(n) {
            e.1 += 1;
        }
    });
    visit(t, &mut |r, n| {
        if let Some((set, left)) = anon.get_mut(n) {
            *left -= 1;
            let s = if *left == 0 { set.take() } else { set.clone() };
            r.sets.extend(s);
        }
    });
    let mut rest: Vec<Set> = anon.into_values().filter_map(|(s, _)| s).collect();
    rest.sort_by(|a, b| a.name.cmp(&b.name));
    t.sets.extend(rest);
}

/// Calls `f(rule, set name)` once per set each rule of `t` names.
fn visit(t: &mut Table, f: &mut dyn FnMut(&mut Rule, &str)) {
    let mut names = Vec::new();
    for c in &mut t.chains {
        for r in &mut c.rules {
            names.clear();
            for e in &mut r.exprs {
                setref::for_each_set_ref(e, |n, _| names.push(n.clone()));
            }
            names.sort_unstable();
            names.dedup();
            for n in &names {
                f(r, n);
            }
        }
    }
}
