//! Statements and register-loading expressions other than the core
//! match patterns: counters, logging, limits, NAT, reject, objects,
//! dynamic set updates, and the less common value sources (fib, rt,
//! socket, numgen, hash, osf, ipsec, exthdr).

use crate::expr::Expr;
use crate::model::Family;
use crate::proto::datatype::{self as dt, Datatype};
use crate::proto::{exthdr, ByteOrder};
use crate::sys::*;

use super::decompiler::Decompiler;
use super::options::PrintOptions;
use super::regs::{exthdr_field, Layer, Reg};
use super::stateful::{bytes_unit, inline_exprs, limit};
use super::value::{self, ValueType};

fn vt(d: &'static Datatype) -> ValueType {
    ValueType {
        dtype: d,
        byteorder: d.byteorder,
        bits: d.bits,
    }
}

// `NF_NAT_RANGE_*` (linux/netfilter/nf_nat.h).
const NF_NAT_RANGE_PROTO_RANDOM: u32 = 0x4;
const NF_NAT_RANGE_PERSISTENT: u32 = 0x8;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 0x10;
const NF_NAT_RANGE_NETMAP: u32 = 0x40;

const LOG_LEVELS: [&str; 9] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit",
];

/// Prints one non-core expression; returns how many expressions it used.
pub(super) fn statement(d: &mut Decompiler<'_>, _rest: &[Expr], e: &Expr) -> usize {
    let s = match e {
        Expr::Counter(c) => {
            if d.opts.stateless {
                "counter".to_string()
            } else {
                format!(
                    "counter packets {} bytes {}",
                    c.packets.unwrap_or(0),
                    c.bytes.unwrap_or(0)
                )
            }
        }
        Expr::Log(l) => {
            let mut s = "log".to_string();
            if let Some(p) = &l.prefix {
                s += &format!(" prefix \"{p}\"");
            }
            if let Some(g) = l.group {
                s += &format!(" group {g}");
            }
            if let Some(n) = l.snaplen {
                s += &format!(" snaplen {n}");
            }
            if let Some(q) = l.qthreshold {
                s += &format!(" queue-threshold {q}");
            }
            if let Some(lv) = l.level {
                if lv != 4 {
                    s += &format!(
                        " level {}",
                        LOG_LEVELS.get(lv as usize).copied().unwrap_or("?")
                    );
                }
            }
            let f = l.flags.unwrap_or(0);
            if f & 0x2f == 0x2f {
                s += " flags all";
            } else {
                match f & 3 {
                    1 => s += " flags tcp sequence",
                    2 => s += " flags tcp options",
                    3 => s += " flags tcp sequence,options",
                    _ => {}
                }
                if f & 4 != 0 {
                    s += " flags ip options";
                }
                if f & 8 != 0 {
                    s += " flags skuid";
                }
                if f & 0x20 != 0 {
                    s += " flags ether";
                }
            }
            s
        }
        Expr::Limit(l) => limit(l),
        Expr::Quota(q) => {
            let over = if q.flags.unwrap_or(0) & 1 != 0 {
                "over "
            } else {
                ""
            };
            let mut s = format!("quota {over}{}", bytes_unit(q.bytes.unwrap_or(0)));
            if !d.opts.stateless {
                if let Some(c) = q.consumed.filter(|c| *c > 0) {
                    s += &format!(" used {}", bytes_unit(c));
                }
            }
            s
        }
        Expr::Connlimit(c) => {
            let over = if c.flags.unwrap_or(0) & 1 != 0 {
                "over "
            } else {
                ""
            };
            format!("ct count {over}{}", c.count.unwrap_or(0))
        }
        Expr::Reject(r) => reject(d, r),
        Expr::Nat(n) => nat(d, n),
        Expr::Masq(m) => {
            let mut s = "masquerade".to_string();
            s += &ports(d, m.reg_proto_min, m.reg_proto_max);
            s += &nat_flags(m.flags.unwrap_or(0));
            s
        }
        Expr::Redir(m) => {
            let mut s = "redirect".to_string();
            s += &ports(d, m.reg_proto_min, m.reg_proto_max);
            s += &nat_flags(m.flags.unwrap_or(0));
            s
        }
        Expr::Notrack(_) => "notrack".into(),
        Expr::FlowOffload(f) => format!("flow add @{}", f.table_name.as_deref().unwrap_or("")),
        Expr::Objref(o) => objref(d, o),
        Expr::Dynset(ds) => dynset(d, ds),
        Expr::Exthdr(x) => {
            exthdr_expr(d, x);
            return 1;
        }
        Expr::Fib(f) => {
            fib(d, f);
            return 1;
        }
        Expr::Rt(r) => {
            let key: u32 = r.key.map(u32::from).unwrap_or(0);
            let (name, dtype, len) = match key {
                NFT_RT_CLASSID => ("rt classid".to_string(), &dt::REALM, 4),
                NFT_RT_NEXTHOP4 => (rt_nexthop(d, "ip"), &dt::IPV4_ADDR, 4),
                NFT_RT_NEXTHOP6 => (rt_nexthop(d, "ip6"), &dt::IPV6_ADDR, 16),
                NFT_RT_TCPMSS => ("rt mtu".to_string(), &dt::INTEGER, 2),
                NFT_RT_XFRM => ("rt ipsec".to_string(), &dt::BOOLEAN, 1),
                k => (format!("rt {k}"), &dt::INTEGER, 4),
            };
            // The route's MSS is a host-order u16 (measured: 1500 is dc 05).
            let bo = if key == NFT_RT_TCPMSS {
                ByteOrder::Host
            } else {
                dtype.byteorder
            };
            let mut r2 = Reg::new(name, dtype, bo, len);
            r2.vt.bits = len * 8;
            if let Some(dreg) = r.dreg {
                d.set_reg(dreg, r2);
            }
            return 1;
        }
        Expr::Socket(s) => {
            let key: u32 = s.key.map(u32::from).unwrap_or(0);
            let (name, dtype, len) = match key {
                NFT_SOCKET_TRANSPARENT => ("socket transparent".to_string(), &dt::INTEGER, 1),
                NFT_SOCKET_MARK => ("socket mark".to_string(), &dt::MARK, 4),
                NFT_SOCKET_WILDCARD => ("socket wildcard".to_string(), &dt::INTEGER, 1),
                NFT_SOCKET_CGROUPV2 => (
                    format!("socket cgroupv2 level {}", s.level.unwrap_or(0)),
                    &dt::CGROUPV2,
                    8,
                ),
                k => (format!("socket {k}"), &dt::INTEGER, 4),
            };
            let mut r = Reg::new(name, dtype, dtype.byteorder, len);
            r.vt.bits = len * 8;
            if let Some(dreg) = s.dreg {
                d.set_reg(dreg, r);
            }
            return 1;
        }
        Expr::Numgen(n) => {
            let mode = match n.ng_type {
                Some(crate::expr::numgen::NumgenType::Random) => "random",
                _ => "inc",
            };
            let mut t = format!("numgen {mode} mod {}", n.modulus.unwrap_or(0));
            if let Some(o) = n.offset.filter(|o| *o != 0) {
                t += &format!(" offset {o}");
            }
            let mut r = Reg::new(t, &dt::INTEGER, ByteOrder::Host, 4);
            r.binop = true;
            if let Some(dreg) = n.dreg {
                d.set_reg(dreg, r);
            }
            return 1;
        }
        Expr::Hash(h) => {
            let mut t = match h.hash_type {
                Some(crate::expr::hash::HashType::Sym) => "symhash".to_string(),
                _ => {
                    let src = h
                        .sreg
                        .and_then(|s| d.get_reg(s, h.len))
                        .map(|r| r.text)
                        .unwrap_or_default();
                    format!("jhash {src}")
                }
            };
            t += &format!(" mod {}", h.modulus.unwrap_or(0));
            if let Some(seed) = h.seed {
                if seed != 0 || h.sreg.is_some() {
                    t += &format!(" seed 0x{seed:x}");
                }
            }
            if let Some(o) = h.offset.filter(|o| *o != 0) {
                t += &format!(" offset {o}");
            }
            let mut r = Reg::new(t, &dt::INTEGER, ByteOrder::Host, 4);
            r.binop = true;
            if let Some(dreg) = h.dreg {
                d.set_reg(dreg, r);
            }
            return 1;
        }
        Expr::Osf(o) => {
            let ttl = match o.ttl {
                Some(1) => "ttl loose ",
                Some(2) => "ttl skip ",
                _ => "",
            };
            let what = if o.flags.unwrap_or(0) & 1 != 0 {
                "version"
            } else {
                "name"
            };
            let r = Reg::new(format!("osf {ttl}{what}"), &dt::STRING, ByteOrder::Host, 16);
            if let Some(dreg) = o.dreg {
                d.set_reg(dreg, r);
            }
            return 1;
        }
        Expr::Xfrm(x) => {
            let dir = if x.dir.unwrap_or(0) == 0 { "in" } else { "out" };
            let sp = match x.spnum {
                Some(n) if n != 0 => format!(" spnum {n}"),
                _ => String::new(),
            };
            let (k, dtype, bo, len) = xfrm_key(x.key.map(u32::from).unwrap_or(0));
            let mut r = Reg::new(format!("ipsec {dir}{sp} {k}"), dtype, bo, len);
            r.vt.bits = len * 8;
            if let Some(dreg) = x.dreg {
                d.set_reg(dreg, r);
            }
            return 1;
        }
        Expr::Fwd(f) => {
            let dev = f
                .sreg_dev
                .map(|r| d.value_text(r, Some(vt(&dt::IFACE_INDEX))))
                .unwrap_or_default();
            match f.sreg_addr {
                Some(a) => {
                    let fam = f.nfproto.unwrap_or(2);
                    let (kw, t) = if fam == 10 {
                        ("ip6", &dt::IPV6_ADDR)
                    } else {
                        ("ip", &dt::IPV4_ADDR)
                    };
                    let addr = d.value_text(a, Some(vt(t)));
                    format!("fwd {kw} to {addr} device {dev}")
                }
                None => format!("fwd to {dev}"),
            }
        }
        Expr::Dup(x) => {
            let ipv6 = d.family == Family::Ip6;
            let t = if ipv6 { &dt::IPV6_ADDR } else { &dt::IPV4_ADDR };
            let mut s = "dup".to_string();
            match x.sreg_addr {
                Some(a) => {
                    s += &format!(" to {}", d.value_text(a, Some(vt(t))));
                    if let Some(dv) = x.sreg_dev {
                        s += &format!(" device {}", d.value_text(dv, Some(vt(&dt::IFACE_INDEX))));
                    }
                }
                None => {
                    if let Some(dv) = x.sreg_dev {
                        s += &format!(" to {}", d.value_text(dv, Some(vt(&dt::IFACE_INDEX))));
                    }
                }
            }
            s
        }
        Expr::Synproxy(sp) => {
            let mut s = "synproxy".to_string();
            let f = sp.flags.unwrap_or(0);
            if f & 1 != 0 {
                s += &format!(" mss {}", sp.mss.unwrap_or(0));
            }
            if f & 2 != 0 {
                s += &format!(" wscale {}", sp.wscale.unwrap_or(0));
            }
            if f & 8 != 0 {
                s += " timestamp";
            }
            if f & 4 != 0 {
                s += " sack-perm";
            }
            s
        }
        Expr::Tproxy(t) => {
            let fam = t.family.unwrap_or(0);
            let (kw, at) = match fam {
                2 => (" ip", &dt::IPV4_ADDR),
                10 => (" ip6", &dt::IPV6_ADDR),
                _ => ("", &dt::IPV4_ADDR),
            };
            let kw = if d.family == Family::Inet { kw } else { "" };
            let addr = t.reg_addr.map(|r| d.value_text(r, Some(vt(at))));
            let port = t
                .reg_port
                .map(|r| d.value_text(r, Some(vt(&dt::INET_SERVICE))));
            let addr = match (addr, fam) {
                (Some(a), 10) => format!("[{a}]"),
                (Some(a), _) => a,
                (None, _) => String::new(),
            };
            match port {
                Some(p) => format!("tproxy{kw} to {addr}:{p}"),
                None => format!("tproxy{kw} to {addr}"),
            }
        }
        Expr::Queue(q) => {
            let mut s = "queue".to_string();
            let f = q.flags.unwrap_or(0);
            let mut fl = Vec::new();
            if f & 1 != 0 {
                fl.push("bypass");
            }
            if f & 2 != 0 {
                fl.push("fanout");
            }
            if !fl.is_empty() {
                s += &format!(" flags {}", fl.join(","));
            }
            let num = q.num.unwrap_or(0);
            let total = q.total.unwrap_or(1);
            if total > 1 {
                s += &format!(" num {}-{}", num, num + total - 1);
            } else if let Some(r) = q.sreg_qnum {
                s += &format!(" num {}", d.value_text(r, None));
            } else {
                s += &format!(" num {num}");
            }
            s
        }
        Expr::Last(l) => match l.set {
            Some(1) if !d.opts.stateless => format!("last used {}ms", l.msecs.unwrap_or(0)),
            _ => "last".into(),
        },
        Expr::Immediate(_) | Expr::Cmp(_) | Expr::Payload(_) => String::new(),
        other => format!("# {}", other.name()),
    };
    d.push_action(s);
    1
}

/// An `NFT_XFRM_KEY_*`: nft's name, datatype, byte order, length.
pub fn xfrm_key(key: u32) -> (&'static str, &'static Datatype, ByteOrder, u32) {
    match key {
        1 => ("ip daddr", &dt::IPV4_ADDR, ByteOrder::Big, 4),
        2 => ("ip6 daddr", &dt::IPV6_ADDR, ByteOrder::Big, 16),
        3 => ("ip saddr", &dt::IPV4_ADDR, ByteOrder::Big, 4),
        4 => ("ip6 saddr", &dt::IPV6_ADDR, ByteOrder::Big, 16),
        5 => ("reqid", &dt::INTEGER, ByteOrder::Host, 4),
        6 => ("spi", &dt::INTEGER, ByteOrder::Big, 4),
        _ => ("?", &dt::INTEGER, ByteOrder::Host, 4),
    }
}

fn rt_nexthop(_d: &Decompiler<'_>, fam: &str) -> String {
    format!("rt {fam} nexthop")
}

fn reject(d: &mut Decompiler<'_>, r: &crate::expr::reject::Reject) -> String {
    use crate::expr::reject::RejectType;
    let code = r.icmp_code.unwrap_or(0) as u64;
    match r.reject_type {
        Some(RejectType::TcpRst) => {
            if matches!(d.family, Family::Ip | Family::Ip6) {
                d.use_header(Layer::Transport, &crate::proto::header::TCP);
            }
            "reject with tcp reset".into()
        }
        Some(RejectType::IcmpxUnreach) => {
            if code == 1 {
                "reject".into()
            } else {
                format!(
                    "reject with icmpx {}",
                    dt::ICMPX_CODE
                        .symbol(code)
                        .map(str::to_string)
                        .unwrap_or(code.to_string())
                )
            }
        }
        _ => {
            let net = d.context(Layer::Network).map(|h| h.name);
            let v6 = match d.family {
                Family::Ip6 => true,
                Family::Ip => false,
                _ => net == Some("ip6"),
            };
            let (kw, t, default) = if v6 {
                ("icmpv6", &dt::ICMPV6_CODE, 4)
            } else {
                ("icmp", &dt::ICMP_CODE, 3)
            };
            if matches!(d.family, Family::Inet | Family::Bridge | Family::Netdev) {
                if let Some(h) = d.context(Layer::Network) {
                    d.use_header(Layer::Network, h);
                }
            }
            let name = t
                .symbol(code)
                .map(str::to_string)
                .unwrap_or(code.to_string());
            if code == default && matches!(d.family, Family::Ip | Family::Ip6) {
                "reject".into()
            } else {
                format!("reject with {kw} {name}")
            }
        }
    }
}

fn nat_flags(f: u32) -> String {
    let mut v = Vec::new();
    if f & NF_NAT_RANGE_PROTO_RANDOM != 0 {
        v.push("random");
    }
    if f & NF_NAT_RANGE_PROTO_RANDOM_FULLY != 0 {
        v.push("fully-random");
    }
    if f & NF_NAT_RANGE_PERSISTENT != 0 {
        v.push("persistent");
    }
    if v.is_empty() {
        String::new()
    } else {
        format!(" {}", v.join(","))
    }
}

fn ports(d: &mut Decompiler<'_>, min: Option<u32>, max: Option<u32>) -> String {
    let Some(min) = min else {
        return String::new();
    };
    let p = d.value_text(min, Some(vt(&dt::INET_SERVICE)));
    match max {
        Some(m) if m != min => {
            let q = d.value_text(m, Some(vt(&dt::INET_SERVICE)));
            if p == q {
                format!(" to :{p}")
            } else {
                format!(" to :{p}-{q}")
            }
        }
        _ => format!(" to :{p}"),
    }
}

fn nat(d: &mut Decompiler<'_>, n: &crate::expr::nat::Nat) -> String {
    use crate::expr::nat::NatType;
    let kind = match n.nat_type {
        Some(NatType::Snat) => "snat",
        _ => "dnat",
    };
    let fam = n.family.unwrap_or(0);
    let v6 = fam == 10;
    let at = if v6 { &dt::IPV6_ADDR } else { &dt::IPV4_ADDR };
    let kw = if d.family == Family::Inet {
        if v6 {
            " ip6"
        } else {
            " ip"
        }
    } else {
        ""
    };
    let flags = n.flags.unwrap_or(0);
    let prefix = if flags & NF_NAT_RANGE_NETMAP != 0 {
        " prefix"
    } else {
        ""
    };
    let mut addr = String::new();
    let mut is_map = false;
    let mut concat_map = false;
    let addr_len = if v6 { 16 } else { 4 };
    if let Some(a) = n.reg_addr_min {
        if let Some(r) = d.get_reg(a, None) {
            is_map = r.constant.is_none();
            concat_map = is_map && r.len > addr_len;
        }
        addr = d.value_text(a, Some(vt(at)));
        if let Some(b) = n.reg_addr_max.filter(|b| *b != a && !concat_map) {
            let hi = d.value_text(b, Some(vt(at)));
            if hi != addr {
                addr = match netmask(&addr, &hi, v6) {
                    Some(p) => p,
                    None if v6 && n.reg_proto_min.is_some() => format!("{addr}]-[{hi}"),
                    None => format!("{addr}-{hi}"),
                };
            }
        }
    }
    let mut port = String::new();
    if let Some(p) = n.reg_proto_min.filter(|_| !concat_map) {
        let lo = d.value_text(p, Some(vt(&dt::INET_SERVICE)));
        port = lo.clone();
        if let Some(q) = n.reg_proto_max.filter(|q| *q != p) {
            let hi = d.value_text(q, Some(vt(&dt::INET_SERVICE)));
            if hi != lo {
                port = format!("{lo}-{hi}");
            }
        }
    }
    // A map yielding address and port: nft names the family even in ip tables.
    let kw = if concat_map {
        if v6 {
            " ip6"
        } else {
            " ip"
        }
    } else {
        kw
    };
    let kw = if addr.is_empty() { "" } else { kw };
    let target = match (addr.is_empty(), port.is_empty()) {
        (false, true) => addr,
        (true, false) => format!(":{port}"),
        (false, false) if v6 && !is_map => format!("[{addr}]:{port}"),
        (false, false) => format!("{addr}:{port}"),
        (true, true) => String::new(),
    };
    let to = if target.is_empty() {
        String::new()
    } else {
        format!(" to {target}")
    };
    format!("{kind}{kw}{prefix}{to}{}", nat_flags(flags))
}

/// `a-b` as a prefix when it is one (netmap NAT ranges).
fn netmask(lo: &str, hi: &str, v6: bool) -> Option<String> {
    if v6 {
        let a: std::net::Ipv6Addr = lo.parse().ok()?;
        let b: std::net::Ipv6Addr = hi.parse().ok()?;
        let x = u128::from(a) ^ u128::from(b);
        let p = x.leading_zeros();
        let aligned = u128::from(a) & x == 0 && u128::from(b) & x == x;
        (x.count_ones() + p == 128 && aligned).then(|| format!("{lo}/{p}"))
    } else {
        let a: std::net::Ipv4Addr = lo.parse().ok()?;
        let b: std::net::Ipv4Addr = hi.parse().ok()?;
        let x = u32::from(a) ^ u32::from(b);
        let p = x.leading_zeros();
        let aligned = u32::from(a) & x == 0 && u32::from(b) & x == x;
        (x.count_ones() + p == 32 && aligned).then(|| format!("{lo}/{p}"))
    }
}

fn objref(d: &mut Decompiler<'_>, o: &crate::expr::objref::Objref) -> String {
    let ty = o.imm_type.unwrap_or(0);
    let kw = match ty {
        NFT_OBJECT_COUNTER => "counter name",
        NFT_OBJECT_QUOTA => "quota name",
        NFT_OBJECT_CT_HELPER => "ct helper set",
        NFT_OBJECT_LIMIT => "limit name",
        NFT_OBJECT_CT_TIMEOUT => "ct timeout set",
        NFT_OBJECT_SECMARK => "meta secmark set",
        NFT_OBJECT_CT_EXPECT => "ct expectation set",
        NFT_OBJECT_SYNPROXY => "synproxy name",
        _ => "",
    };
    if let Some(n) = &o.imm_name {
        return format!("{kw} \"{n}\"");
    }
    if let (Some(sreg), Some(name)) = (o.set_sreg, &o.set_name) {
        let set = d.find_set(name);
        let kw = match set.and_then(|s| s.obj_type).unwrap_or(0) {
            NFT_OBJECT_COUNTER => "counter name",
            NFT_OBJECT_QUOTA => "quota name",
            NFT_OBJECT_CT_HELPER => "ct helper set",
            NFT_OBJECT_LIMIT => "limit name",
            NFT_OBJECT_CT_TIMEOUT => "ct timeout set",
            NFT_OBJECT_SECMARK => "meta secmark set",
            NFT_OBJECT_CT_EXPECT => "ct expectation set",
            NFT_OBJECT_SYNPROXY => "synproxy name",
            _ => "objref",
        };
        let key_len = set.map(|s| s.key_len);
        let Some(r) = d.get_reg(sreg, key_len) else {
            return kw.into();
        };
        let body = match set {
            Some(s) if s.is_anonymous() => super::set::anon_elements(d, s, &r),
            _ => format!("@{name}"),
        };
        return format!("{kw} {} map {body}", r.text);
    }
    kw.into()
}

fn dynset(d: &mut Decompiler<'_>, ds: &crate::expr::dynset::Dynset) -> String {
    use crate::expr::dynset::DynsetOp;
    let op = match ds.op {
        Some(DynsetOp::Update) => "update",
        Some(DynsetOp::Delete) => "delete",
        _ => "add",
    };
    let name = ds.set_name.clone().unwrap_or_default();
    let set = d.find_set(&name);
    let key = match ds.sreg_key {
        Some(r) => typed_value(d, r, set.map(|s| s.key_type), set.map(|s| s.key_len)),
        None => String::new(),
    };
    let mut inner = key;
    if let Some(t) = ds.timeout.filter(|t| *t != 0) {
        inner += &format!(" timeout {}", value::time_ms(t));
    }
    let exprs: Vec<&Expr> = ds
        .expr
        .iter()
        .map(|e| &**e)
        .chain(ds.exprs.iter().flatten())
        .collect();
    let stateless = PrintOptions {
        stateless: true,
        ..*d.opts
    };
    let t = inline_exprs(exprs, &stateless);
    if !t.is_empty() {
        inner += &format!(" {t}");
    }
    if let Some(dr) = ds.sreg_data {
        let v = typed_value(
            d,
            dr,
            set.and_then(|s| s.data_type),
            set.and_then(|s| s.data_len),
        );
        inner += &format!(" : {v}");
    }
    // A set of the rule's own that it fills: nft's `meter`.
    if let Some(s) = set.filter(|s| s.is_anonymous() && d.rule_owns(&s.name)) {
        let size = s.desc.as_ref().and_then(|d| d.size).unwrap_or(0);
        return format!("meter {name} size {size} {{ {inner} }}");
    }
    format!("{op} @{name} {{ {inner} }}")
}

/// The value in `reg` (`len` bytes, possibly several registers), with
/// constants written as the set's type `type_id` says.
fn typed_value(d: &mut Decompiler<'_>, reg: u32, type_id: Option<u32>, len: Option<u32>) -> String {
    let id = type_id.unwrap_or(dt::INTEGER.id);
    let types = dt::split_concat(id, dt::concat_len(id)).unwrap_or_default();
    let Some(r) = d.get_reg(reg, len) else {
        return "?".into();
    };
    let fmt = |p: &Reg, t: &&'static Datatype| match &p.constant {
        Some(c) => value::format(c, vt(t), d.opts),
        None => p.text.clone(),
    };
    match (r.parts.len(), types.as_slice()) {
        (0, [t]) => fmt(&r, t),
        (n, ts) if n == ts.len() => r
            .parts
            .iter()
            .zip(ts)
            .map(|(p, t)| fmt(p, t))
            .collect::<Vec<_>>()
            .join(" . "),
        _ => r.text,
    }
}

fn exthdr_expr(d: &mut Decompiler<'_>, x: &crate::expr::exthdr::Exthdr) {
    let op_n: u32 = x.op.map(u32::from).unwrap_or(0);
    let Some(op) = exthdr::ExthdrOp::from_u32(op_n) else {
        return;
    };
    let ty = x.exthdr_type.unwrap_or(0);
    let off = x.offset.unwrap_or(0);
    let len = x.len.unwrap_or(0);
    let present = x.flags.unwrap_or(0) & NFT_EXTHDR_F_PRESENT != 0;
    // The header list implies its protocol: that match is a dependency.
    match op {
        exthdr::ExthdrOp::Ipv6 => d.use_header(Layer::Network, &crate::proto::header::IP6),
        exthdr::ExthdrOp::Ipv4 => d.use_header(Layer::Network, &crate::proto::header::IP),
        exthdr::ExthdrOp::TcpOpt => {
            d.use_header_option(Layer::Transport, &crate::proto::header::TCP)
        }
        exthdr::ExthdrOp::Sctp => d.use_header(Layer::Transport, &crate::proto::header::SCTP),
        exthdr::ExthdrOp::Dccp => d.use_header(Layer::Transport, &crate::proto::header::DCCP),
    }
    let named = |h: &exthdr::Exthdr| match op {
        exthdr::ExthdrOp::Ipv6 => h.name.to_string(),
        _ => format!("{} {}", op.prefix(), h.name),
    };
    let generic = |what: &str| match op {
        exthdr::ExthdrOp::Ipv6 => format!("exthdr {what}"),
        _ => format!("{} {what}", op.prefix()),
    };
    let r = if present {
        let name = exthdr::by_type(op, ty)
            .map(|h| match op {
                exthdr::ExthdrOp::Ipv6 => format!("exthdr {}", h.name),
                _ => named(h),
            })
            .unwrap_or_else(|| generic(&ty.to_string()));
        let mut r = Reg::new(name, &dt::BOOLEAN, ByteOrder::Host, 1);
        r.vt.bits = 8;
        r
    } else if let Some((h, f)) = exthdr_field(op, ty, off, len) {
        let mut r = Reg::new(
            format!("{} {}", named(h), f.name),
            f.dtype,
            ByteOrder::Big,
            len,
        );
        r.vt.bits = f.len;
        r
    } else {
        // Sub-byte fields (frag offset, mptcp subtype) come as a wider load plus a mask.
        let h = exthdr::by_type(op, ty);
        let mut r = Reg::new(
            match h {
                Some(h) if len == 0 => named(h),
                None if len == 0 => generic(&ty.to_string()),
                _ => generic(&format!("@{ty},{},{}", off * 8, len * 8)),
            },
            &dt::INTEGER,
            ByteOrder::Big,
            len,
        );
        r.exthdr = Some((op, ty, off));
        r
    };
    if let Some(sreg) = x.sreg {
        let v = d.value_text(sreg, Some(r.vt));
        d.push_action(format!("{} set {v}", r.text));
        return;
    }
    if let Some(dreg) = x.dreg {
        d.set_reg(dreg, r);
    } else {
        // No register: `reset` of a TCP option.
        d.push_action(format!("reset {}", r.text));
    }
}

/// `fib` key words of `NFTA_FIB_F_*` flags, as nft joins them.
pub(super) fn fib_keys(flags: u16) -> String {
    let mut keys = Vec::new();
    if flags & NFTA_FIB_F_SADDR != 0 {
        keys.push("saddr");
    }
    if flags & NFTA_FIB_F_DADDR != 0 {
        keys.push("daddr");
    }
    if flags & NFTA_FIB_F_MARK != 0 {
        keys.push("mark");
    }
    if flags & NFTA_FIB_F_IIF != 0 {
        keys.push("iif");
    }
    if flags & NFTA_FIB_F_OIF != 0 {
        keys.push("oif");
    }
    keys.join(" . ")
}

fn fib(d: &mut Decompiler<'_>, f: &crate::expr::fib::Fib) {
    use crate::expr::fib::FibResult;
    let flags = f.flags.unwrap_or(0) as u16;
    let (res, dtype, len) = match f.result {
        Some(FibResult::Oif) => ("oif", &dt::IFACE_INDEX, 4),
        Some(FibResult::Oifname) => ("oifname", &dt::IFNAME, 16),
        Some(FibResult::Addrtype) => ("type", &dt::FIB_ADDRTYPE, 4),
        _ => ("?", &dt::INTEGER, 4),
    };
    let mut r = Reg::new(
        format!("fib {} {res}", fib_keys(flags)),
        dtype,
        dtype.byteorder,
        len,
    );
    if flags & NFTA_FIB_F_PRESENT != 0 {
        r.vt = vt(&dt::BOOLEAN);
        r.vt.bits = 8;
        r.len = 1;
    }
    if let Some(dreg) = f.dreg {
        d.set_reg(dreg, r);
    }
}
