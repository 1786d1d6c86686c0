//! nft's bytecode text — what `nft --debug=netlink list ruleset` prints —
//! both ways: [`ruleset_text`] writes a value in that form (learnt from
//! nft 1.0.6's output), [`Bytecode::parse`] reads it into a form two
//! namespaces (or nft and our compiler) can be compared in: rules per
//! chain, each anonymous set's elements and each bound chain's rules
//! written into the rule that uses them (their kernel-chosen names and
//! numbering differ between runs), named sets' elements sorted (the
//! kernel's element order is its own).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use linx_netfilter::expr::exthdr::ExthdrOp;
use linx_netfilter::expr::*;
use linx_netfilter::model::{Element, Rule, Ruleset, Set};
use linx_netfilter::sys::{
    NFT_BREAK, NFT_CONTINUE, NFT_GOTO, NFT_JUMP, NFT_RETURN, NF_ACCEPT, NF_DROP,
};

/// `(family, table, chain or set)`.
pub type Key = (String, String, String);

/// A ruleset's bytecode, comparable.
#[derive(Debug, Default, PartialEq)]
pub struct Bytecode {
    /// Every chain's rules in order, each as its lines (`[ ... ]`
    /// expressions, `userdata = { ... }`), anonymous sets and bound
    /// chains written into the lines that name them.
    pub chains: BTreeMap<Key, Vec<Vec<String>>>,
    /// Every named set's element lines, sorted.
    pub sets: BTreeMap<Key, Vec<String>>,
}

fn is_anonymous(name: &str) -> bool {
    name.starts_with("__")
}

impl Bytecode {
    /// Reads nft's text: `family table @set` blocks of `\telement` lines,
    /// `family table chain [handle [position]]` blocks of rule lines.
    /// Anything else (comments, nft's own debug lines) is skipped.
    pub fn parse(text: &str) -> Self {
        let mut sets: HashMap<Key, Vec<String>> = HashMap::new();
        let mut chains: HashMap<Key, Vec<Vec<String>>> = HashMap::new();
        enum At {
            Nothing,
            Set(Key),
            Rule(Key),
        }
        let mut at = At::Nothing;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix('\t') {
                if let At::Set(k) = &at {
                    sets.entry(k.clone()).or_default().push(rest.to_owned());
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("  ") {
                if let At::Rule(k) = &at {
                    if let Some(rule) = chains.get_mut(k).and_then(|r| r.last_mut()) {
                        rule.push(rest.to_owned());
                    }
                }
                continue;
            }
            let words: Vec<&str> = line.split(' ').collect();
            at = match words.as_slice() {
                [fam, table, set] if set.starts_with('@') => {
                    let k = (fam.to_string(), table.to_string(), set[1..].to_owned());
                    sets.entry(k.clone()).or_default();
                    At::Set(k)
                }
                [fam, table, chain, rest @ ..]
                    if rest.len() <= 2
                        && rest.iter().all(|w| w.parse::<u64>().is_ok())
                        && !line.starts_with('#') =>
                {
                    let k = (fam.to_string(), table.to_string(), chain.to_string());
                    chains.entry(k.clone()).or_default().push(Vec::new());
                    At::Rule(k)
                }
                _ => At::Nothing,
            };
        }
        // Write anonymous sets and bound chains into the rules naming
        // them; what is left are the named ones.
        let anon_sets: HashMap<Key, String> = sets
            .iter()
            .filter(|(k, _)| is_anonymous(&k.2))
            .map(|(k, lines)| {
                let mut lines = lines.clone();
                lines.sort();
                (k.clone(), lines.join(" | "))
            })
            .collect();
        let bound: HashMap<Key, Vec<Vec<String>>> = chains
            .iter()
            .filter(|(k, _)| is_anonymous(&k.2))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Bytecode::default();
        for (k, rules) in chains {
            if is_anonymous(&k.2) {
                continue;
            }
            let rules = rules
                .into_iter()
                .map(|r| inline_rule(&k, r, &anon_sets, &bound, 0))
                .collect();
            out.chains.insert(k, rules);
        }
        for (k, mut lines) in sets {
            if !is_anonymous(&k.2) {
                lines.sort();
                out.sets.insert(k, lines);
            }
        }
        out
    }

    /// Our value as nft prints it, read back by [`Bytecode::parse`].
    pub fn of(rs: &Ruleset) -> Self {
        Self::parse(&ruleset_text(rs))
    }
}

/// A rule's lines with `set __x` replaced by the anonymous set's
/// elements and `-> __chainN` by the bound chain's rules.
fn inline_rule(
    at: &Key,
    rule: Vec<String>,
    sets: &HashMap<Key, String>,
    bound: &HashMap<Key, Vec<Vec<String>>>,
    depth: usize,
) -> Vec<String> {
    rule.into_iter()
        .map(|line| {
            let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
            for i in 1..words.len() {
                let name = words[i].clone();
                if !is_anonymous(&name) {
                    continue;
                }
                let key = (at.0.clone(), at.1.clone(), name.clone());
                if words[i - 1] == "set" {
                    if let Some(elements) = sets.get(&key) {
                        words[i] = format!("{{ {elements} }}");
                    }
                } else if words[i - 1] == "->" && depth < 8 {
                    if let Some(rules) = bound.get(&key) {
                        let body: Vec<String> = rules
                            .iter()
                            .map(|r| inline_rule(at, r.clone(), sets, bound, depth + 1).join(" "))
                            .collect();
                        words[i] = format!("{{ {} }}", body.join(" ; "));
                    }
                }
            }
            words.join(" ")
        })
        .collect()
}

/// The value as `nft --debug=netlink list ruleset` prints what the kernel
/// holds: each table's sets with their elements, then every chain's
/// rules. Anonymous sets, which a compiled value leaves for the kernel to
/// number, get names here (`__set0`, ...), in the order rules use them.
pub fn ruleset_text(rs: &Ruleset) -> String {
    let mut out = String::new();
    for t in &rs.tables {
        let fam = t.family.name();
        let mut anon = 0;
        let mut rules = String::new();
        let mut anon_sets = String::new();
        for c in &t.chains {
            for r in c.rules.iter() {
                let _ = writeln!(rules, "{fam} {} {} 0", t.name, c.name);
                let names = name_anonymous(r, &mut anon);
                for (s, name) in r.sets.iter().zip(&names) {
                    set_text(&mut anon_sets, fam, &t.name, name, s);
                }
                rule_lines(&mut rules, r, &names);
                rules.push('\n');
            }
        }
        for s in &t.sets {
            set_text(&mut out, fam, &t.name, &s.name, s);
        }
        out.push_str(&anon_sets);
        out.push_str(&rules);
    }
    out
}

/// Names for the sets a rule carries, unique within the table: an
/// anonymous one (`__set%d` compiled, `__set3` pulled) is numbered anew,
/// a named one (a meter) keeps its name.
fn name_anonymous(r: &Rule, n: &mut usize) -> Vec<String> {
    r.sets
        .iter()
        .map(|s| {
            if !is_anonymous(&s.name) {
                return s.name.clone();
            }
            let stem = s.name.trim_end_matches("%d");
            let stem = stem.trim_end_matches(|c: char| c.is_ascii_digit());
            *n += 1;
            format!("{stem}{}", *n - 1)
        })
        .collect()
}

fn set_text(out: &mut String, fam: &str, table: &str, name: &str, s: &Set) {
    let _ = writeln!(out, "{fam} {table} @{name}");
    for e in &s.elements {
        out.push('\t');
        element_text(out, e);
        out.push('\n');
    }
}

fn element_text(out: &mut String, e: &Element) {
    out.push_str("element ");
    if let Some(k) = &e.key {
        push_words(out, k, "");
    }
    if let Some(k) = &e.key_end {
        out.push_str(" - ");
        push_words(out, k, "");
    }
    out.push_str(" : ");
    match &e.data {
        Some(Data::Value(v)) => push_words(out, v, ""),
        Some(Data::Verdict(v)) => {
            out.push_str(&verdict(v));
            out.push(' ');
        }
        Some(d) => {
            let _ = write!(out, "{d:?} ");
        }
        None => {}
    }
    let _ = write!(out, "{} [end]", e.flags.unwrap_or(0));
    if let Some(u) = &e.userdata {
        let _ = write!(out, "  userdata = {{ {} }}", escaped(&u.0));
    }
}

/// Bytes as nft prints register contents: 32-bit words in host order,
/// each `PREFIX%08x` and a space.
fn push_words(out: &mut String, b: &[u8], prefix: &str) {
    for chunk in b.chunks(4) {
        let mut w = [0u8; 4];
        w[..chunk.len()].copy_from_slice(chunk);
        let _ = write!(out, "{prefix}{:08x} ", u32::from_ne_bytes(w));
    }
}

fn words(d: &Option<Data>) -> String {
    let mut s = String::new();
    match d {
        Some(Data::Value(v)) => push_words(&mut s, v, "0x"),
        Some(Data::Verdict(v)) => s = verdict(v) + " ",
        Some(d) => s = format!("{d:?} "),
        None => {}
    }
    s.pop();
    s
}

/// A verdict as nft's bytecode text names it: by its kernel code, with
/// `-> chain` for jumps and gotos.
fn verdict(v: &Verdict) -> String {
    let word = match v.code() {
        c if c == NF_ACCEPT as i32 => "accept",
        c if c == NF_DROP as i32 => "drop",
        NFT_CONTINUE => "continue",
        NFT_BREAK => "break",
        NFT_RETURN => "return",
        NFT_JUMP => "jump",
        NFT_GOTO => "goto",
        _ => return format!("{v:?}"),
    };
    match v.chain() {
        Some(c) => format!("{word} -> {c}"),
        None => word.to_owned(),
    }
}

/// Userdata bytes: printable ASCII as is, the rest `\xNN`.
fn escaped(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, &c| {
        if c.is_ascii_graphic() || c == b' ' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
        s
    })
}

fn rule_lines(out: &mut String, r: &Rule, anon: &[String]) {
    let mut next = anon.iter();
    for e in r.exprs.iter() {
        let mut line = expr_text(e);
        // The k-th anonymous set a rule names is the k-th it carries.
        if let Some(name) = e.set_name().filter(|n| is_anonymous(n)) {
            if let Some(real) = next.next() {
                line = line.replacen(&format!("set {name}"), &format!("set {real}"), 1);
            }
        }
        let _ = writeln!(out, "  [ {line} ]");
    }
    if let Some(u) = &r.userdata {
        let _ = writeln!(out, "  userdata = {{ {} }}", escaped(&u.0));
    }
}

fn n<T: Copy + Into<u64>>(v: Option<T>) -> u64 {
    v.map_or(0, Into::into)
}

fn family_word(f: Option<u32>) -> &'static str {
    match f {
        Some(2) => "ip",
        Some(10) => "ip6",
        Some(1) => "inet",
        _ => "unknown",
    }
}

/// One expression, the text between nft's `[ ` and ` ]`.
pub fn expr_text(e: &Expr) -> String {
    let mut s = String::new();
    match e {
        Expr::Immediate(i) => {
            let _ = write!(s, "immediate reg {} {}", n(i.dreg), words(&i.data));
        }
        Expr::Cmp(c) => {
            let op = match c.op {
                Some(cmp::CmpOp::Eq) => "eq",
                Some(cmp::CmpOp::Neq) => "neq",
                Some(cmp::CmpOp::Lt) => "lt",
                Some(cmp::CmpOp::Lte) => "lte",
                Some(cmp::CmpOp::Gt) => "gt",
                Some(cmp::CmpOp::Gte) => "gte",
                _ => "?",
            };
            let _ = write!(s, "cmp {op} reg {} {}", n(c.sreg), words(&c.data));
        }
        Expr::Range(r) => {
            let op = match r.op {
                Some(range::RangeOp::Eq) => "eq",
                Some(range::RangeOp::Neq) => "neq",
                _ => "?",
            };
            let _ = write!(
                s,
                "range {op} reg {} {} {}",
                n(r.sreg),
                words(&r.from),
                words(&r.to)
            );
        }
        Expr::Payload(p) => {
            let base = match p.base {
                Some(payload::PayloadBase::LinkLayer) => "link",
                Some(payload::PayloadBase::Network) => "network",
                Some(payload::PayloadBase::Transport) => "transport",
                Some(payload::PayloadBase::Inner) => "inner",
                Some(payload::PayloadBase::Tunnel) => "tunnel",
                _ => "unknown",
            };
            let at = format!("{}b @ {base} header + {}", n(p.len), n(p.offset));
            if let Some(sreg) = p.sreg {
                let _ = write!(
                    s,
                    "payload write reg {sreg} => {at} csum_type {} csum_off {} csum_flags 0x{:x}",
                    n(p.csum_type),
                    n(p.csum_offset),
                    n(p.csum_flags)
                );
            } else {
                let _ = write!(s, "payload load {at} => reg {}", n(p.dreg));
            }
        }
        Expr::Meta(m) => {
            let key = meta_key(m.key);
            match m.sreg {
                Some(sreg) => {
                    let _ = write!(s, "meta set {key} with reg {sreg}");
                }
                None => {
                    let _ = write!(s, "meta load {key} => reg {}", n(m.dreg));
                }
            }
        }
        Expr::Bitwise(b) => {
            let (sreg, dreg) = (n(b.sreg), n(b.dreg));
            match b.op {
                Some(bitwise::BitwiseOp::Lshift) => {
                    let _ = write!(
                        s,
                        "bitwise reg {dreg} = ( reg {sreg} << {} )",
                        words(&b.data)
                    );
                }
                Some(bitwise::BitwiseOp::Rshift) => {
                    let _ = write!(
                        s,
                        "bitwise reg {dreg} = ( reg {sreg} >> {} )",
                        words(&b.data)
                    );
                }
                _ => {
                    let _ = write!(
                        s,
                        "bitwise reg {dreg} = ( reg {sreg} & {} ) ^ {}",
                        words(&b.mask),
                        words(&b.xor)
                    );
                }
            }
        }
        Expr::Lookup(l) => {
            let _ = write!(
                s,
                "lookup reg {} set {}",
                n(l.sreg),
                l.set.as_deref().unwrap_or("")
            );
            if let Some(d) = l.dreg {
                let _ = write!(s, " dreg {d}");
            }
            if let Some(f) = l.flags {
                let _ = write!(s, " 0x{f:x}");
            }
        }
        Expr::Counter(c) => {
            let _ = write!(s, "counter pkts {} bytes {}", n(c.packets), n(c.bytes));
        }
        Expr::Byteorder(b) => {
            let op = match b.op {
                Some(byteorder::ByteorderOp::Hton) => "hton",
                Some(byteorder::ByteorderOp::Ntoh) => "ntoh",
                _ => "?",
            };
            let _ = write!(
                s,
                "byteorder reg {} = {op}(reg {}, {}, {})",
                n(b.dreg),
                n(b.sreg),
                n(b.size),
                n(b.len)
            );
        }
        Expr::Dynset(d) => {
            let op = match d.op {
                Some(dynset::DynsetOp::Add) => "add",
                Some(dynset::DynsetOp::Update) => "update",
                Some(dynset::DynsetOp::Delete) => "delete",
                _ => "?",
            };
            let _ = write!(
                s,
                "dynset {op} reg_key {} set {}",
                n(d.sreg_key),
                d.set_name.as_deref().unwrap_or("")
            );
            if let Some(r) = d.sreg_data {
                let _ = write!(s, " sreg_data {r}");
            }
            if let Some(t) = d.timeout {
                let _ = write!(s, " timeout {t}ms");
            }
            for x in d.expr.iter().map(|b| &**b).chain(d.exprs.iter().flatten()) {
                let _ = write!(s, " expr [ {} ]", expr_text(x));
            }
        }
        Expr::Ct(c) => {
            let key = ct_key(c.key);
            let dir = match c.direction {
                Some(0) => " , dir original",
                Some(1) => " , dir reply",
                _ => "",
            };
            match c.sreg {
                Some(sreg) => {
                    let _ = write!(s, "ct set {key} with reg {sreg}{dir}");
                }
                None => {
                    let _ = write!(s, "ct load {key} => reg {}{dir}", n(c.dreg));
                }
            }
        }
        Expr::Limit(l) => {
            let unit = match n(l.unit) {
                1 => "second",
                60 => "minute",
                3600 => "hour",
                86400 => "day",
                604800 => "week",
                _ => "?",
            };
            let ty = match l.limit_type {
                Some(limit::LimitType::Bytes) => "bytes",
                _ => "packets",
            };
            let _ = write!(
                s,
                "limit rate {}/{unit} burst {} type {ty} flags 0x{:x}",
                n(l.rate),
                n(l.burst),
                n(l.flags)
            );
        }
        Expr::Quota(q) => {
            let _ = write!(
                s,
                "quota bytes {} consumed {} flags {}",
                n(q.bytes),
                n(q.consumed),
                n(q.flags)
            );
        }
        Expr::Connlimit(c) => {
            let _ = write!(s, "connlimit count {} flags {:x}", n(c.count), n(c.flags));
        }
        Expr::Log(l) => {
            s.push_str("log ");
            if let Some(p) = &l.prefix {
                let _ = write!(s, "prefix {p} ");
            }
            if let Some(g) = l.group {
                let _ = write!(
                    s,
                    "group {g} snaplen {} qthreshold {} ",
                    n(l.snaplen),
                    n(l.qthreshold)
                );
            } else if let Some(level) = l.level {
                let _ = write!(s, "level {level} ");
            }
            let flags = n(l.flags);
            for (bit, name) in [
                (0x1, "tcpseq"),
                (0x2, "tcpopt"),
                (0x4, "ipopt"),
                (0x8, "uid"),
                (0x20, "macdecode"),
            ] {
                if flags & bit != 0 {
                    let _ = write!(s, "{name} ");
                }
            }
            s.pop();
        }
        Expr::Nat(x) => {
            let ty = match x.nat_type {
                Some(nat::NatType::Snat) => "snat",
                Some(nat::NatType::Dnat) => "dnat",
                _ => "?",
            };
            let _ = write!(s, "nat {ty} {}", family_word(x.family));
            for (name, reg) in [
                ("addr_min", x.reg_addr_min),
                ("addr_max", x.reg_addr_max),
                ("proto_min", x.reg_proto_min),
                ("proto_max", x.reg_proto_max),
            ] {
                if let Some(r) = reg {
                    let _ = write!(s, " {name} reg {r}");
                }
            }
            if let Some(f) = x.flags {
                let _ = write!(s, " flags 0x{f:x}");
            }
        }
        Expr::Masq(m) => port_range(&mut s, "masq", m.reg_proto_min, m.reg_proto_max, m.flags),
        Expr::Redir(r) => port_range(&mut s, "redir", r.reg_proto_min, r.reg_proto_max, r.flags),
        Expr::Reject(r) => {
            let ty: u32 = r.reject_type.map_or(0, Into::into);
            let _ = write!(s, "reject type {ty} code {}", n(r.icmp_code));
        }
        Expr::Fib(f) => {
            let flags = n(f.flags);
            let on: Vec<&str> = [
                (0x1, "saddr"),
                (0x2, "daddr"),
                (0x4, "mark"),
                (0x8, "iif"),
                (0x10, "oif"),
            ]
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| *name)
            .collect();
            let result = match f.result {
                Some(fib::FibResult::Oif) => "oif",
                Some(fib::FibResult::Oifname) => "oifname",
                Some(fib::FibResult::Addrtype) => "type",
                _ => "unknown",
            };
            let present = if flags & 0x20 != 0 { " present" } else { "" };
            let _ = write!(
                s,
                "fib {} {result}{present} => reg {}",
                on.join(" . "),
                n(f.dreg)
            );
        }
        Expr::Exthdr(x) => {
            let op = match x.op {
                Some(ExthdrOp::Ipv6) | None => "ipv6 ",
                Some(ExthdrOp::TcpOpt) => "tcpopt ",
                Some(ExthdrOp::Ipv4) => "ipv4 ",
                _ => "",
            };
            let at = format!("{}b @ {} + {}", n(x.len), n(x.exthdr_type), n(x.offset));
            if let Some(sreg) = x.sreg {
                let _ = write!(s, "exthdr write {op}reg {sreg} => {at}");
            } else if let Some(dreg) = x.dreg {
                let present = if n(x.flags) & 1 != 0 { " present" } else { "" };
                let _ = write!(s, "exthdr load {op}{at}{present} => reg {dreg}");
            } else {
                let _ = write!(s, "exthdr reset {op}{}", n(x.exthdr_type));
            }
        }
        Expr::Rt(r) => {
            let key = match r.key {
                Some(rt::RtKey::Classid) => "classid",
                Some(rt::RtKey::Nexthop4) => "nexthop4",
                Some(rt::RtKey::Nexthop6) => "nexthop6",
                Some(rt::RtKey::Tcpmss) => "tcpmss",
                Some(rt::RtKey::Xfrm) => "ipsec",
                _ => "unknown",
            };
            let _ = write!(s, "rt load {key} => reg {}", n(r.dreg));
        }
        Expr::Socket(x) => {
            let key = match x.key {
                Some(socket::SocketKey::Transparent) => "transparent",
                Some(socket::SocketKey::Mark) => "mark",
                Some(socket::SocketKey::Wildcard) => "wildcard",
                Some(socket::SocketKey::Cgroupv2) => "cgroupv2",
                _ => "unknown",
            };
            let _ = write!(s, "socket load {key} => reg {}", n(x.dreg));
        }
        Expr::Tproxy(t) => {
            s.push_str("tproxy ");
            match t.family {
                Some(2) => s.push_str("ip "),
                Some(10) => s.push_str("ip6 "),
                _ => {}
            }
            if let Some(r) = t.reg_addr {
                let _ = write!(s, "addr reg {r} ");
            }
            if let Some(r) = t.reg_port {
                let _ = write!(s, "port reg {r} ");
            }
            s.pop();
        }
        Expr::Hash(h) => {
            match h.hash_type {
                Some(hash::HashType::Sym) => {
                    let _ = write!(
                        s,
                        "hash reg {} = symhash() % mod {}",
                        n(h.dreg),
                        n(h.modulus)
                    );
                }
                _ => {
                    let _ = write!(
                        s,
                        "hash reg {} = jhash(reg {}, {}, 0x{:x}) % mod {}",
                        n(h.dreg),
                        n(h.sreg),
                        n(h.len),
                        n(h.seed),
                        n(h.modulus)
                    );
                }
            }
            if let Some(o) = h.offset {
                let _ = write!(s, " offset {o}");
            }
        }
        Expr::Numgen(g) => {
            let ty = match g.ng_type {
                Some(numgen::NumgenType::Incremental) => "inc",
                Some(numgen::NumgenType::Random) => "random",
                _ => "?",
            };
            let _ = write!(s, "numgen reg {} = {ty} mod {}", n(g.dreg), n(g.modulus));
            // The kernel reports offset 0; nft prints only another.
            if let Some(o) = g.offset.filter(|o| *o != 0) {
                let _ = write!(s, " offset {o}");
            }
        }
        Expr::Osf(o) => {
            let _ = write!(s, "osf dreg {}", n(o.dreg));
        }
        Expr::Xfrm(x) => {
            let dir = match x.dir {
                Some(0) => "in",
                Some(1) => "out",
                _ => "?",
            };
            let key = match x.key {
                Some(xfrm::XfrmKey::DaddrIp4) => "daddr4",
                Some(xfrm::XfrmKey::DaddrIp6) => "daddr6",
                Some(xfrm::XfrmKey::SaddrIp4) => "saddr4",
                Some(xfrm::XfrmKey::SaddrIp6) => "saddr6",
                Some(xfrm::XfrmKey::Reqid) => "reqid",
                Some(xfrm::XfrmKey::Spi) => "spi",
                _ => "unknown",
            };
            let _ = write!(
                s,
                "xfrm load {dir} {} {key} => reg {}",
                n(x.spnum),
                n(x.dreg)
            );
        }
        Expr::Fwd(f) => {
            let _ = write!(s, "fwd sreg_dev {}", n(f.sreg_dev));
            if let Some(a) = f.sreg_addr {
                let _ = write!(s, " sreg_addr {a} nfproto {}", n(f.nfproto));
            }
        }
        Expr::Dup(d) => {
            let mut parts = Vec::new();
            if let Some(a) = d.sreg_addr {
                parts.push(format!("sreg_addr {a}"));
            }
            if let Some(r) = d.sreg_dev {
                parts.push(format!("sreg_dev {r}"));
            }
            let _ = write!(s, "dup {}", parts.join(" "));
        }
        Expr::Synproxy(x) => {
            let _ = write!(s, "synproxy mss {} wscale {}", n(x.mss), n(x.wscale));
        }
        Expr::Objref(o) => match (&o.imm_name, &o.set_name) {
            (Some(name), _) => {
                let _ = write!(s, "objref type {} name {name}", n(o.imm_type));
            }
            (None, set) => {
                let _ = write!(
                    s,
                    "objref sreg {} set {}",
                    n(o.set_sreg),
                    set.as_deref().unwrap_or("")
                );
            }
        },
        Expr::Notrack(_) => s.push_str("notrack"),
        Expr::Last(l) => match l.msecs {
            Some(ms) if n(l.set) != 0 => {
                let _ = write!(s, "last {ms}");
            }
            _ => s.push_str("last never"),
        },
        Expr::Queue(q) => {
            match q.sreg_qnum {
                Some(r) => {
                    let _ = write!(s, "queue sreg_qnum {r}");
                }
                None => {
                    let (num, total) = (n(q.num), n(q.total).max(1));
                    let _ = write!(s, "queue num {num}");
                    if total > 1 {
                        let _ = write!(s, "-{}", num + total - 1);
                    }
                }
            }
            let flags = n(q.flags);
            if flags & 1 != 0 {
                s.push_str(" bypass");
            }
            if flags & 2 != 0 {
                s.push_str(" fanout");
            }
        }
        Expr::FlowOffload(f) => {
            let _ = write!(
                s,
                "flow_offload flowtable {}",
                f.table_name.as_deref().unwrap_or("")
            );
        }
        Expr::Match(m) => {
            let _ = write!(
                s,
                "match name {} rev {}",
                m.name.as_deref().unwrap_or(""),
                n(m.rev)
            );
        }
        Expr::Target(t) => {
            let _ = write!(
                s,
                "target name {} rev {}",
                t.name.as_deref().unwrap_or(""),
                n(t.rev)
            );
        }
        other => {
            let _ = write!(s, "{} {other:?}", other.name());
        }
    }
    s
}

/// `masq` and `redir`: optional port registers, then flags.
fn port_range(s: &mut String, name: &str, min: Option<u32>, max: Option<u32>, flags: Option<u32>) {
    s.push_str(name);
    if let Some(r) = min {
        let _ = write!(s, " proto_min reg {r}");
    }
    if let Some(r) = max {
        let _ = write!(s, " proto_max reg {r}");
    }
    if let Some(f) = flags {
        let _ = write!(s, " flags 0x{f:x}");
    }
}

fn meta_key(k: Option<meta::MetaKey>) -> String {
    use meta::MetaKey as M;
    let Some(k) = k else {
        return "unknown".into();
    };
    let name = match k {
        M::Len => "len",
        M::Protocol => "protocol",
        M::Priority => "priority",
        M::Mark => "mark",
        M::Iif => "iif",
        M::Oif => "oif",
        M::Iifname => "iifname",
        M::Oifname => "oifname",
        M::Iiftype => "iiftype",
        M::Oiftype => "oiftype",
        M::Skuid => "skuid",
        M::Skgid => "skgid",
        M::Nftrace => "nftrace",
        M::Rtclassid => "rtclassid",
        M::Secmark => "secmark",
        M::Nfproto => "nfproto",
        M::L4proto => "l4proto",
        M::BriIifname => "bri_iifname",
        M::BriOifname => "bri_oifname",
        M::Pkttype => "pkttype",
        M::Cpu => "cpu",
        M::Iifgroup => "iifgroup",
        M::Oifgroup => "oifgroup",
        M::Cgroup => "cgroup",
        M::Prandom => "prandom",
        M::Secpath => "secpath",
        M::Iifkind => "iifkind",
        M::Oifkind => "oifkind",
        M::BriIifpvid => "bri_iifpvid",
        M::BriIifvproto => "bri_iifvproto",
        M::TimeNs => "time",
        M::TimeDay => "day",
        M::TimeHour => "hour",
        M::Sdif => "sdif",
        M::Sdifname => "sdifname",
        M::BriBroute => "broute",
        M::Unknown(_) => "unknown",
    };
    name.into()
}

fn ct_key(k: Option<ct::CtKey>) -> &'static str {
    use ct::CtKey as C;
    match k {
        Some(C::State) => "state",
        Some(C::Direction) => "direction",
        Some(C::Status) => "status",
        Some(C::Mark) => "mark",
        Some(C::Secmark) => "secmark",
        Some(C::Expiration) => "expiration",
        Some(C::Helper) => "helper",
        Some(C::L3protocol) => "l3protocol",
        Some(C::Src) => "src",
        Some(C::Dst) => "dst",
        Some(C::Protocol) => "protocol",
        Some(C::ProtoSrc) => "proto_src",
        Some(C::ProtoDst) => "proto_dst",
        Some(C::Labels) => "label",
        Some(C::Pkts) => "packets",
        Some(C::Bytes) => "bytes",
        Some(C::Avgpkt) => "avgpkt",
        Some(C::Zone) => "zone",
        Some(C::Eventmask) => "event",
        Some(C::SrcIp) => "src_ip",
        Some(C::DstIp) => "dst_ip",
        Some(C::SrcIp6) => "src_ip6",
        Some(C::DstIp6) => "dst_ip6",
        // nft 1.0.6 has no name for the connection id.
        _ => "unknown",
    }
}
