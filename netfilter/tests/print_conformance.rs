//! Printer conformance against nft itself: every rule the corpus says
//! nft 1.0.6 accepts is loaded with nft into a throwaway namespace,
//! dumped back over netlink (rule expressions, anonymous sets and their
//! elements), printed with `print::rule` as `nft -s -p` would, and
//! compared with the listing nft printed (`listed` in rules.tsv).
//! As upstream does, elements inside `{ ... }` may come in any order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use linx_netfilter::expr::{decode_list, Bytes, Data};
use linx_netfilter::model::{Element, Family, Rule, Set, SetDesc, Table, Userdata};
use linx_netfilter::netlink::Attr;
use linx_netfilter::print::{self, PrintOptions};
use linx_netfilter::sys::*;
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Socket;

mod common;
use common::corpus::{group, read_rows, rule_line, setup_script, FileGroup, Row};

const OPTS: PrintOptions = PrintOptions {
    stateless: true,
    numeric_protocol: true,
};

fn family(n: u8) -> Option<Family> {
    Some(match n as u32 {
        NFPROTO_IPV4 => Family::Ip,
        NFPROTO_IPV6 => Family::Ip6,
        NFPROTO_INET => Family::Inet,
        NFPROTO_ARP => Family::Arp,
        NFPROTO_BRIDGE => Family::Bridge,
        NFPROTO_NETDEV => Family::Netdev,
        _ => return None,
    })
}

fn data(a: &Attr<'_>) -> Option<Data> {
    use linx_netfilter::expr::AttrValue;
    Data::decode(a).ok()
}

fn value(a: &Attr<'_>) -> Option<Bytes> {
    match data(a)? {
        Data::Value(b) => Some(b),
        _ => None,
    }
}

/// What one namespace holds: tables with their sets (elements filled in),
/// and rules per (family, table, chain) in chain order.
struct Dumped {
    tables: HashMap<(Family, String), Table>,
    rules: HashMap<(Family, String, String), Vec<Rule>>,
}

fn dump(ns: &TestNetns) -> Dumped {
    let mut sock = Socket::open(&ns.netns()).expect("open socket");
    let mut tables: HashMap<(Family, String), Table> = HashMap::new();
    for m in sock
        .dump(NFT_MSG_GETSET, NFPROTO_UNSPEC as u8, |_| {})
        .expect("dump sets")
        .iter()
    {
        let m = m.expect("message");
        let (fam, attrs) = m.nfgen().expect("nfgenmsg");
        let Some(fam) = family(fam) else { continue };
        let mut s = Set {
            name: String::new(),
            flags: 0,
            key_type: 0,
            key_len: 0,
            data_type: None,
            data_len: None,
            obj_type: None,
            policy: None,
            desc: None,
            timeout: None,
            gc_interval: None,
            userdata: None,
            exprs: Vec::new(),
            elements: Vec::new(),
            handle: None,
            unknown: Vec::new(),
        };
        let mut table = String::new();
        for a in attrs {
            let a = a.expect("attribute");
            match a.kind() {
                NFTA_SET_TABLE => table = a.str().unwrap_or("").to_owned(),
                NFTA_SET_NAME => s.name = a.str().unwrap_or("").to_owned(),
                NFTA_SET_FLAGS => s.flags = a.u32_be().unwrap_or(0),
                NFTA_SET_KEY_TYPE => s.key_type = a.u32_be().unwrap_or(0),
                NFTA_SET_KEY_LEN => s.key_len = a.u32_be().unwrap_or(0),
                NFTA_SET_DATA_TYPE => s.data_type = a.u32_be().ok(),
                NFTA_SET_DATA_LEN => s.data_len = a.u32_be().ok(),
                NFTA_SET_OBJ_TYPE => s.obj_type = a.u32_be().ok(),
                NFTA_SET_TIMEOUT => s.timeout = a.u64_be().ok(),
                NFTA_SET_USERDATA => s.userdata = Some(Userdata(Bytes(a.payload().to_vec()))),
                NFTA_SET_DESC => {
                    let mut d = SetDesc::default();
                    for x in a.nested().flatten() {
                        match x.kind() {
                            NFTA_SET_DESC_SIZE => d.size = x.u32_be().ok(),
                            NFTA_SET_DESC_CONCAT => {
                                for f in x.nested().flatten() {
                                    for l in f.nested().flatten() {
                                        if l.kind() == NFTA_SET_FIELD_LEN {
                                            d.concat.push(l.u32_be().unwrap_or(0));
                                        }
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    s.desc = Some(d);
                }
                _ => {}
            }
        }
        let t = tables
            .entry((fam, table.clone()))
            .or_insert_with(|| Table::new(fam, table.clone()));
        t.sets.push(s);
    }
    for ((fam, tname), t) in tables.iter_mut() {
        for s in t.sets.iter_mut() {
            let d = sock
                .dump(NFT_MSG_GETSETELEM, u8::from(*fam), |w| {
                    w.put_str(NFTA_SET_ELEM_LIST_TABLE, tname);
                    w.put_str(NFTA_SET_ELEM_LIST_SET, &s.name);
                })
                .expect("dump set elements");
            for m in d.iter() {
                let m = m.expect("message");
                let (_, attrs) = m.nfgen().expect("nfgenmsg");
                for a in attrs.flatten() {
                    if a.kind() != NFTA_SET_ELEM_LIST_ELEMENTS {
                        continue;
                    }
                    for el in a.nested().flatten() {
                        let mut e = Element::default();
                        for x in el.nested().flatten() {
                            match x.kind() {
                                NFTA_SET_ELEM_KEY => e.key = value(&x),
                                NFTA_SET_ELEM_KEY_END => e.key_end = value(&x),
                                NFTA_SET_ELEM_DATA => e.data = data(&x),
                                NFTA_SET_ELEM_FLAGS => e.flags = x.u32_be().ok(),
                                NFTA_SET_ELEM_TIMEOUT => e.timeout = x.u64_be().ok(),
                                NFTA_SET_ELEM_OBJREF => e.objref = x.str().ok().map(str::to_owned),
                                NFTA_SET_ELEM_USERDATA => {
                                    e.userdata = Some(Userdata(Bytes(x.payload().to_vec())))
                                }
                                _ => {}
                            }
                        }
                        s.elements.push(e);
                    }
                }
            }
        }
    }
    let mut rules: HashMap<(Family, String, String), Vec<Rule>> = HashMap::new();
    for m in sock
        .dump(NFT_MSG_GETRULE, NFPROTO_UNSPEC as u8, |_| {})
        .expect("dump rules")
        .iter()
    {
        let m = m.expect("message");
        let (fam, attrs) = m.nfgen().expect("nfgenmsg");
        let Some(fam) = family(fam) else { continue };
        let (mut table, mut chain) = (String::new(), String::new());
        let mut r = Rule::new(Vec::new());
        for a in attrs {
            let a = a.expect("attribute");
            match a.kind() {
                NFTA_RULE_TABLE => table = a.str().unwrap_or("").to_owned(),
                NFTA_RULE_CHAIN => chain = a.str().unwrap_or("").to_owned(),
                NFTA_RULE_EXPRESSIONS => r.exprs = decode_list(a.nested()).expect("decode"),
                NFTA_RULE_USERDATA => r.userdata = Some(Userdata(Bytes(a.payload().to_vec()))),
                _ => {}
            }
        }
        // Anonymous sets travel with the rule, as a pull delivers them.
        if let Some(t) = tables.get(&(fam, table.clone())) {
            r.sets = t
                .sets
                .iter()
                .filter(|s| s.is_anonymous())
                .cloned()
                .collect();
        }
        rules.entry((fam, table, chain)).or_default().push(r);
    }
    Dumped { tables, rules }
}

/// Text with every `{ ... }` element list sorted and whitespace collapsed:
/// upstream accepts any element order.
fn normalize(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let mut depth = 0;
        let mut close = None;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let mut items: Vec<String> = rest[open + 1..close]
            .split(',')
            .map(|x| x.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        items.sort();
        out.push('{');
        out.push_str(&items.join(","));
        out.push('}');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A short name for why `got` differs from `want`: the first differing words.
fn cause(want: &str, got: &str) -> String {
    let w: Vec<&str> = want.split_whitespace().collect();
    let g: Vec<&str> = got.split_whitespace().collect();
    let i = w.iter().zip(&g).take_while(|(a, b)| a == b).count();
    let ctx = if i > 0 { w[i - 1] } else { "^" };
    format!(
        "after `{ctx}`: want `{}` got `{}`",
        w.get(i).copied().unwrap_or("$"),
        g.get(i).copied().unwrap_or("$")
    )
}

#[derive(Default)]
struct Tally {
    /// family -> (rows, equal)
    per_family: BTreeMap<String, (usize, usize)>,
    /// cause -> (count, example)
    causes: HashMap<String, (usize, String)>,
}

impl Tally {
    fn fail(&mut self, cause: String, example: String) {
        let e = self.causes.entry(cause).or_insert((0, example));
        e.0 += 1;
    }
}

fn run_file(g: &FileGroup, tally: &Mutex<Tally>) {
    let ns = TestNetns::new();
    let setup = setup_script(g);
    let mut script = setup.clone();
    for (_, rows) in g.chains.values() {
        for r in rows {
            script.push_str(&rule_line(r));
        }
    }
    let mut loaded: HashMap<(String, String, String), Vec<&Row>> = HashMap::new();
    let mut refused: Vec<&Row> = Vec::new();
    if ns.nft_load(&script).is_ok() {
        for (k, (_, rows)) in &g.chains {
            loaded.insert(k.clone(), rows.iter().collect());
        }
    } else {
        if ns.nft_load(&setup).is_err() {
            for line in setup.lines() {
                let _ = ns.nft_load(line);
            }
        }
        for (k, (_, rows)) in &g.chains {
            for r in rows {
                match ns.nft_load(&rule_line(r)) {
                    Ok(_) => loaded.entry(k.clone()).or_default().push(r),
                    Err(_) => refused.push(r),
                }
            }
        }
    }
    let d = dump(&ns);
    let mut t = tally.lock().unwrap();
    for r in refused {
        t.per_family.entry(r.family.clone()).or_default().0 += 1;
        t.fail("nft refused the rule here".into(), r.what());
    }
    for ((fam, table, chain), rows) in &loaded {
        let f = family_of(fam);
        let key = (f, table.clone(), chain.clone());
        let got = d.rules.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        let tbl = d
            .tables
            .get(&(f, table.clone()))
            .cloned()
            .unwrap_or_else(|| Table::new(f, table.clone()));
        for (i, r) in rows.iter().enumerate() {
            let e = t.per_family.entry(r.family.clone()).or_default();
            e.0 += 1;
            let Some(rule) = got.get(i) else {
                t.fail("rule missing from dump".into(), r.what());
                continue;
            };
            let text = print::rule(f, &tbl, rule, &OPTS);
            if normalize(&text) == normalize(&r.listed) {
                t.per_family.get_mut(&r.family).unwrap().1 += 1;
            } else {
                let c = cause(&normalize(&r.listed), &normalize(&text));
                t.fail(
                    c,
                    format!(
                        "{}\n      want: {}\n      got:  {}",
                        r.what(),
                        r.listed,
                        text
                    ),
                );
            }
        }
    }
}

fn family_of(name: &str) -> Family {
    match name {
        "ip" => Family::Ip,
        "ip6" => Family::Ip6,
        "inet" => Family::Inet,
        "arp" => Family::Arp,
        "bridge" => Family::Bridge,
        _ => Family::Netdev,
    }
}

#[test]
fn printed_rules_match_nft_listing() {
    let groups = group(read_rows());
    assert!(!groups.is_empty(), "no accepted rows in rules.tsv");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let queue = Arc::new(Mutex::new(groups));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, tally) = (queue.clone(), tally.clone());
            std::thread::spawn(move || loop {
                let Some(g) = queue.lock().unwrap().pop() else {
                    break;
                };
                run_file(&g, &tally);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
    let t = tally.lock().unwrap();
    let (mut all, mut ok) = (0, 0);
    let mut worst = 100.0f64;
    for (fam, (rows, equal)) in &t.per_family {
        let share = 100.0 * *equal as f64 / (*rows).max(1) as f64;
        println!("{fam:>7}: {equal}/{rows} rows print as nft lists them ({share:.1}%)");
        all += rows;
        ok += equal;
        worst = worst.min(share);
    }
    println!("  total: {ok}/{all}");
    let mut causes: Vec<_> = t.causes.iter().collect();
    causes.sort_by(|a, b| b.1 .0.cmp(&a.1 .0));
    for (c, (n, ex)) in causes.iter().take(80) {
        println!("{n:>5}  {c}\n      e.g. {ex}");
    }
    let min: f64 = std::env::var("LINX_PRINT_MIN_SHARE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(95.0);
    assert!(
        worst >= min,
        "a family prints below {min}% of rows as nft does ({ok}/{all} overall)"
    );
}
