//! One rule's statements → kernel expressions, with protocol
//! dependencies, byte order, masks, anonymous sets and maps.

use super::emit;
use super::fields::{field, Field, Load, Proto, L3};
pub use super::sets::MapData;
use super::sets::{build_elements, KeyLayout};
use super::types::{self, *};
use super::values::{self, Val};
use crate::expr::{Expr, Verdict};
use crate::model::{Family, Rule, Set, Table, Userdata, UDATA_COMMENT};
use crate::syntax::ast::{self, Arg, BinOp, Elem, RelOp, Stmt};
use crate::syntax::diag::{Diagnostic, Span};
use crate::syntax::parser::parse_u64;
use crate::sys::*;

type R<T> = Result<T, Diagnostic>;

const REG1: u32 = NFT_REG_1;

pub struct RuleCx<'a> {
    pub family: Family,
    pub table: &'a Table,
    pub exprs: Vec<Expr>,
    pub sets: Vec<Set>,
    /// Network protocol known to be matched so far.
    l3: Option<u32>,
    /// Transport protocol known to be matched so far.
    l4: Option<u8>,
    /// Link-layer protocol context (bridge: `ether type`, `vlan type`).
    ll_proto: Option<u16>,
    /// VLAN headers known present (by a dependency, `ether type 8021q`,
    /// `vlan type 8021ad`): vlan fields refer to the innermost one and the
    /// network protocol is read after them.
    vlan_depth: u32,
    set_counter: &'a mut u32,
    /// The expressions an anonymous set about to be built is keyed by
    /// (for the `typeof` userdata nft records).
    anon_key: Vec<ast::Expr>,
    /// Left shift of the sub-byte field keying the next anonymous set.
    anon_shift: u32,
    /// The ICMP type matched (fields of some types need one).
    icmp_type: Option<u8>,
    /// The ICMP type was matched against a set: nft then adds no type
    /// dependency for fields of some types.
    icmp_type_set: bool,
    /// A transport protocol was matched (maybe against a set).
    l4_any: bool,
    /// The transport protocol was matched against a set of several.
    l4_set: bool,
    /// The link-layer type matched with `ether type`.
    ether_type: Option<u16>,
    /// Parts of the concatenation just loaded: where each load ends in
    /// `exprs`, its register, type and length (host-order parts of
    /// interval keys are byte-swapped there).
    /// The flag marks `meta l4proto`, host order by its expression.
    concat_loads: Vec<(usize, u32, Dtype, usize, bool)>,
}

/// A loaded selector: its field and the number of bytes now in the register.
struct Loaded {
    dt: Dtype,
    len: usize,
    /// Mask and shift for fields narrower than the bytes loaded.
    mask: Option<(Vec<u8>, u32)>,
}

impl Loaded {
    /// A value filling the bytes of its type, unmasked.
    fn whole(dt: Dtype) -> Self {
        Loaded {
            dt,
            len: dt.bytes(),
            mask: None,
        }
    }
}

pub fn compile_rule_ast(
    family: Family,
    table: &Table,
    rule: &ast::RuleAst,
    set_counter: &mut u32,
) -> R<Rule> {
    let mut cx = RuleCx {
        family,
        table,
        exprs: Vec::new(),
        sets: Vec::new(),
        l3: match family {
            Family::Ip => Some(NFPROTO_IPV4),
            Family::Ip6 => Some(NFPROTO_IPV6),
            Family::Arp => Some(NFPROTO_ARP),
            _ => None,
        },
        l4: None,
        ll_proto: None,
        vlan_depth: 0,
        set_counter,
        anon_key: Vec::new(),
        icmp_type: None,
        icmp_type_set: false,
        anon_shift: 0,
        ether_type: None,
        l4_any: false,
        l4_set: false,
        concat_loads: Vec::new(),
    };
    let mut terminal = false;
    for (i, s) in rule.stmts.iter().enumerate() {
        if terminal {
            return err(
                stmt_span(s),
                "Statement after terminal statement has no effect",
            );
        }
        if i + 1 < rule.stmts.len() && own_protocol_match(family, s) {
            continue;
        }
        cx.stmt(s)?;
        terminal = is_terminal(s);
    }
    super::merge::merge_first_pair(&mut cx.exprs);
    super::merge::merge_payloads(&mut cx.exprs);
    let mut r = Rule::new(cx.exprs);
    r.sets = cx.sets;
    if let Some(c) = &rule.comment {
        r.userdata = Some(Userdata::with_comment(UDATA_COMMENT, c));
    }
    Ok(r)
}

/// `meta protocol ip` in an ip table (`ip6` in ip6): always true, so nft
/// drops it unless it is the rule's last statement.
fn own_protocol_match(family: Family, s: &Stmt) -> bool {
    let Stmt::Match {
        left: ast::Expr::Sel(path, _),
        op: RelOp::Implicit | RelOp::Eq,
        right: ast::Expr::Word(w, _),
        ..
    } = s
    else {
        return false;
    };
    path == &["meta", "protocol"]
        && matches!(
            (family, w.as_str()),
            (Family::Ip, "ip") | (Family::Ip6, "ip6")
        )
}

/// The register of a concatenation part `off` bytes in: nft names it by
/// its 16-byte register when aligned to one, else by its 32-bit one.
pub(super) fn concat_reg(off: usize) -> u32 {
    if off % 16 == 0 {
        NFT_REG_1 + (off / 16) as u32
    } else {
        NFT_REG32_00 + (off / 4) as u32
    }
}

/// Statements after which nothing runs: verdicts and NAT.
fn is_terminal(s: &Stmt) -> bool {
    match s {
        Stmt::Verdict(..) | Stmt::Bound { .. } => true,
        Stmt::Keyword { name, .. } => {
            matches!(name.as_str(), "masquerade" | "redirect" | "snat" | "dnat")
        }
        _ => false,
    }
}

pub(super) fn stmt_span(s: &Stmt) -> Span {
    match s {
        Stmt::Verdict(_, span)
        | Stmt::Match { span, .. }
        | Stmt::Vmap { span, .. }
        | Stmt::Assign { span, .. }
        | Stmt::Keyword { span, .. }
        | Stmt::Bound { span, .. }
        | Stmt::SetOp { span, .. } => *span,
    }
}

fn err<T>(span: Span, msg: impl Into<String>) -> R<T> {
    Err(Diagnostic::new(span, msg))
}

impl RuleCx<'_> {
    fn family_l3(&self) -> Option<L3> {
        match self.l3 {
            Some(NFPROTO_IPV4) => Some(L3::Ip),
            Some(NFPROTO_IPV6) => Some(L3::Ip6),
            _ => None,
        }
    }

    fn resolve(&self, path: &[String], span: Span) -> R<Field> {
        field(path, self.family_l3()).ok_or_else(|| {
            Diagnostic::new(span, format!("unknown expression '{}'", path.join(" ")))
        })
    }

    // ---- dependencies -------------------------------------------------

    fn need_l3(&mut self, want: u32, span: Span) -> R<()> {
        self.need_l3_via(want, span, false)
    }

    /// [`Self::need_l3`]; `from_packet`: in a bridge, test the Ethernet
    /// type in the packet rather than the packet's protocol (as nft does
    /// for ICMP).
    fn need_l3_via(&mut self, want: u32, span: Span, from_packet: bool) -> R<()> {
        if let Some(have) = self.l3 {
            if have == want {
                return Ok(());
            }
            if !matches!(self.family, Family::Inet | Family::Bridge | Family::Netdev)
                || self.l3.is_some()
            {
                return err(
                    span,
                    format!(
                        "conflicting protocols specified: {} vs. {}",
                        l3_name(have),
                        l3_name(want)
                    ),
                );
            }
        }
        match self.family {
            Family::Inet if self.ll_proto.is_none() || want == NFPROTO_ARP => {
                let v = if want == NFPROTO_ARP {
                    return err(span, "arp is not supported in inet tables");
                } else {
                    want as u8
                };
                self.exprs.push(emit::meta(NFT_META_NFPROTO, REG1));
                self.exprs.push(emit::cmp(REG1, NFT_CMP_EQ, &[v]));
            }
            Family::Inet | Family::Bridge | Family::Netdev => {
                let et: u16 = match want {
                    NFPROTO_IPV4 => 0x0800,
                    NFPROTO_IPV6 => 0x86dd,
                    _ => 0x0806,
                };
                // After a match on the Ethernet header (not in bridges), or
                // within VLAN headers, the type is read from the packet.
                // (nft reads it from the packet for ARP in bridges too.)
                let ether_known = if self.family == Family::Bridge {
                    from_packet || want == NFPROTO_ARP
                } else {
                    self.ll_proto.is_some()
                };
                if self.vlan_depth > 0 || ether_known {
                    let off = 12 + 4 * self.vlan_depth;
                    self.exprs
                        .push(emit::payload(REG1, NFT_PAYLOAD_LL_HEADER, off, 2));
                } else {
                    self.exprs.push(emit::meta(NFT_META_PROTOCOL, REG1));
                }
                self.exprs
                    .push(emit::cmp(REG1, NFT_CMP_EQ, &et.to_be_bytes()));
            }
            _ => {
                return err(
                    span,
                    format!(
                        "conflicting protocols specified: {} vs. {}",
                        self.family.name(),
                        l3_name(want)
                    ),
                )
            }
        }
        self.l3 = Some(want);
        Ok(())
    }

    fn dependency(&mut self, proto: Proto, span: Span) -> R<()> {
        match proto {
            Proto::None => Ok(()),
            Proto::Ip => self.need_l3(NFPROTO_IPV4, span),
            Proto::Ip6 => self.need_l3(NFPROTO_IPV6, span),
            Proto::Arp => self.need_l3(NFPROTO_ARP, span),
            Proto::Ether => {
                if matches!(self.family, Family::Bridge) || self.ll_proto.is_some() {
                    return Ok(());
                }
                self.exprs.push(emit::meta(NFT_META_IIFTYPE, REG1));
                self.exprs
                    .push(emit::cmp(REG1, NFT_CMP_EQ, &1u16.to_ne_bytes()));
                self.ll_proto = Some(1);
                Ok(())
            }
            Proto::Vlan => {
                if self.ether_type.is_some_and(|t| t != 0x8100 && t != 0x88a8) {
                    return err(span, "conflicting protocols specified: ether vs. vlan");
                }
                if self.vlan_depth == 0 {
                    if !matches!(self.family, Family::Bridge) {
                        self.dependency(Proto::Ether, span)?;
                    }
                    self.exprs
                        .push(emit::payload(REG1, NFT_PAYLOAD_LL_HEADER, 12, 2));
                    self.exprs
                        .push(emit::cmp(REG1, NFT_CMP_EQ, &0x8100u16.to_be_bytes()));
                    self.vlan_depth = 1;
                }
                Ok(())
            }
            Proto::Th => Ok(()),
            Proto::L4(n, l3) => {
                // A protocol matched already (`meta l4proto ipv6-icmp icmpv6
                // type …`) needs no dependency at all, as in nft.
                if self.l4 == Some(n) {
                    return Ok(());
                }
                // nft adds the network protocol only when none is known:
                // `icmp type` in an ip6 table just tests the protocol number.
                if let Some(l3) = l3.filter(|_| self.l3.is_none()) {
                    self.need_l3_via(
                        if l3 == L3::Ip {
                            NFPROTO_IPV4
                        } else {
                            NFPROTO_IPV6
                        },
                        span,
                        true,
                    )?;
                }
                if self.l4_set && self.l4.is_none() {
                    return err(
                        span,
                        format!(
                            "conflicting protocols specified: several vs. {}",
                            proto_name(n)
                        ),
                    );
                }
                if let Some(have) = self.l4 {
                    if have == n {
                        return Ok(());
                    }
                    return err(
                        span,
                        format!(
                            "conflicting protocols specified: {} vs. {}",
                            proto_name(have),
                            proto_name(n)
                        ),
                    );
                }
                self.exprs.push(emit::meta(NFT_META_L4PROTO, REG1));
                self.exprs.push(emit::cmp(REG1, NFT_CMP_EQ, &[n]));
                self.l4 = Some(n);
                Ok(())
            }
        }
    }

    /// ICMP fields that exist only in some message types need the type
    /// matched first (`icmp id` → echo request or reply), unless the rule
    /// already matched the type.
    fn icmp_type_dependency(&mut self, path: &[String], span: Span) -> R<()> {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let (proto, types): (&str, &[u8]) = match p.as_slice() {
            ["icmp", "id" | "sequence"] => ("icmp", &[0, 8]),
            ["icmp", "gateway"] => ("icmp", &[5]),
            ["icmp", "mtu"] => ("icmp", &[3]),
            ["icmpv6", "id" | "sequence"] => ("icmpv6", &[128, 129]),
            ["icmpv6", "mtu" | "packet-too-big"] => ("icmpv6", &[2]),
            ["icmpv6", "parameter-problem"] => ("icmpv6", &[4]),
            ["icmpv6", "max-delay"] => ("icmpv6", &[130]),
            _ => return Ok(()),
        };
        if self.icmp_type_set {
            return Ok(());
        }
        if let Some(t) = self.icmp_type {
            if types.contains(&t) {
                return Ok(());
            }
            return err(
                span,
                format!("incompatible icmp match: rule has {t}, need {}", types[0]),
            );
        }
        self.icmp_type = Some(types[0]);
        self.exprs
            .push(emit::payload(REG1, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1));
        if let [t] = types {
            self.exprs.push(emit::cmp(REG1, NFT_CMP_EQ, &[*t]));
            return Ok(());
        }
        let dt = if proto == "icmp" {
            ICMP_TYPE
        } else {
            ICMP6_TYPE
        };
        let elems: Vec<Elem> = types
            .iter()
            .map(|t| Elem::new(ast::Expr::Word(t.to_string(), span), span))
            .collect();
        let saved = std::mem::replace(
            &mut self.anon_key,
            vec![ast::Expr::Sel(vec![proto.into(), "type".into()], span)],
        );
        let name = self.anon_set(&elems, &[dt], &[1], None)?;
        self.anon_key = saved;
        self.exprs.push(emit::lookup(&name, REG1, None, 0));
        Ok(())
    }

    /// Records protocol context established by an explicit equality match.
    fn learn(&mut self, path: &[String], val: &[u8]) {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["icmp" | "icmpv6", "type"] if val.len() == 1 => self.icmp_type = Some(val[0]),
            ["meta", "l4proto"] | ["ip", "protocol"] | ["ip6", "nexthdr"] if val.len() == 1 => {
                self.l4 = Some(val[0])
            }
            ["meta", "nfproto"] if val.len() == 1 => self.l3 = Some(val[0] as u32),
            ["ether", "type"] if val.len() == 2 && self.vlan_depth == 0 => {
                let t = u16::from_be_bytes([val[0], val[1]]);
                self.ether_type = Some(t);
                if is_vlan_type(t) {
                    self.vlan_depth = 1;
                }
                self.learn(&["meta".into(), "protocol".into()], val);
            }
            ["vlan", "type"] if val.len() == 2 && self.vlan_depth > 0 => {
                if is_vlan_type(u16::from_be_bytes([val[0], val[1]])) {
                    self.vlan_depth += 1;
                } else {
                    self.learn(&["meta".into(), "protocol".into()], val);
                }
            }
            ["meta", "iiftype"] | ["iiftype"] if val == 1u16.to_ne_bytes() => {
                self.ll_proto = Some(1)
            }
            ["meta", "protocol"] | ["ether", "type"] if val.len() == 2 => {
                self.l3 = match u16::from_be_bytes([val[0], val[1]]) {
                    0x0800 => Some(NFPROTO_IPV4),
                    0x86dd => Some(NFPROTO_IPV6),
                    0x0806 => Some(NFPROTO_ARP),
                    _ => self.l3,
                }
            }
            _ => {}
        }
    }

    // ---- loading ------------------------------------------------------

    /// Emits what loads `e` into `reg`; returns its type and length.
    fn load(&mut self, e: &ast::Expr, reg: u32) -> R<Loaded> {
        match e {
            ast::Expr::Sel(path, span) if path[0] == "symhash" => {
                self.load_hash(&path[1..], None, reg, *span)
            }
            ast::Expr::Map(h, key, _) if is_jhash(e) => match &**h {
                ast::Expr::Sel(path, span) => self.load_hash(&path[1..], Some(key), reg, *span),
                _ => err(h.span(), "expected jhash"),
            },
            ast::Expr::Sel(path, span) => {
                // `ct original saddr` names no address family: nft takes it
                // from the table or a match before, else refuses.
                if path.len() == 3
                    && path[0] == "ct"
                    && matches!(path[2].as_str(), "saddr" | "daddr")
                    && self.l3.is_none()
                {
                    return err(
                        *span,
                        format!("cannot determine ip protocol version, use \"ct {} ip {}\" or \"ct {} ip6 {}\" instead", path[1], path[2], path[1], path[2]),
                    );
                }
                let f = self.resolve(path, *span)?;
                self.dependency(f.proto, *span)?;
                let f = self.in_vlan(f);
                self.icmp_type_dependency(path, *span)?;
                self.load_field(&f, reg)
            }
            ast::Expr::Binop(op, l, r, span) => {
                let left = self.load(l, reg)?;
                let len = left.len;
                match op {
                    BinOp::Shl | BinOp::Shr => {
                        let n = self.const_u64(r)? as u32;
                        let bop = if *op == BinOp::Shl {
                            NFT_BITWISE_LSHIFT
                        } else {
                            NFT_BITWISE_RSHIFT
                        };
                        self.exprs.push(emit::shift(reg, reg, len as u32, bop, n));
                    }
                    _ => {
                        let v = self.value_bytes(r, &left.dt, len)?;
                        let (mut mask, mut xor) = match op {
                            BinOp::And => (v, vec![0; len]),
                            BinOp::Or => (v.iter().map(|x| !x).collect(), v),
                            _ => (vec![0xff; len], v),
                        };
                        // nft folds a chain of these on one value into one
                        // bitwise: `(x & m1) ^ k1`, then `& m2 ^ k2`, is
                        // `x & (m1 & m2) ^ ((k1 & m2) ^ k2)`.
                        let chained = matches!(
                            &**l,
                            ast::Expr::Binop(BinOp::And | BinOp::Or | BinOp::Xor, ..)
                        );
                        if let Some(Expr::Bitwise(b)) = self.exprs.last().filter(|_| chained) {
                            use crate::expr::Data;
                            if let (Some(Data::Value(m1)), Some(Data::Value(k1))) =
                                (&b.mask, &b.xor)
                            {
                                if m1.0.len() == len && k1.0.len() == len {
                                    let (m1, k1) = (m1.0.to_vec(), k1.0.to_vec());
                                    xor = (0..len).map(|i| (k1[i] & mask[i]) ^ xor[i]).collect();
                                    mask = (0..len).map(|i| m1[i] & mask[i]).collect();
                                    self.exprs.pop();
                                }
                            }
                        }
                        self.exprs.push(emit::bitwise(reg, reg, &mask, &xor));
                    }
                }
                let _ = span;
                Ok(Loaded { mask: None, ..left })
            }
            other => err(
                other.span(),
                "expected an expression such as 'tcp dport' here",
            ),
        }
    }

    /// `jhash KEY mod N [seed S] [offset O]` (the key loaded from register
    /// 2 on, as nft does) or `symhash mod N [offset O]`, into `reg`.
    fn load_hash(
        &mut self,
        args: &[String],
        key: Option<&ast::Expr>,
        reg: u32,
        span: Span,
    ) -> R<Loaded> {
        // The kernel dumps a seed only when one was given, an offset only
        // when not 0.
        let (mut modulus, mut seed, mut offset) = (None, None, 0u64);
        for kv in args.chunks(2) {
            let n = kv.get(1).and_then(|n| parse_u64(n));
            match (kv[0].as_str(), n) {
                ("mod", Some(n)) => modulus = Some(n),
                ("seed", Some(n)) => seed = Some(n),
                ("offset", Some(n)) => offset = n,
                _ => return err(span, format!("unexpected '{}' in hash", kv[0])),
            }
        }
        let modulus = modulus
            .filter(|m| (1..=u32::MAX as u64).contains(m))
            .ok_or_else(|| Diagnostic::new(span, "hash needs 'mod N' (1 to 2^32-1)"))?;
        let (seed, offset) = match (seed.map(u32::try_from).transpose(), u32::try_from(offset)) {
            (Ok(s), Ok(o)) => (s, o),
            _ => return err(span, "hash seed and offset are 32-bit"),
        };
        let Some(key) = key else {
            self.exprs.push(emit::raw("hash", |w| {
                w.put_u32_be(NFTA_HASH_DREG, reg);
                w.put_u32_be(NFTA_HASH_MODULUS, modulus as u32);
                if offset != 0 {
                    w.put_u32_be(NFTA_HASH_OFFSET, offset);
                }
                w.put_u32_be(NFTA_HASH_TYPE, NFT_HASH_SYM);
            }));
            return Ok(Loaded {
                dt: INTEGER,
                len: 4,
                mask: None,
            });
        };
        let parts = match key {
            ast::Expr::Concat(parts, _) => parts.as_slice(),
            k => std::slice::from_ref(k),
        };
        let (_, lens) = self.load_concat_from(parts, NFT_REG_2)?;
        let len: usize = match lens.as_slice() {
            [one] => *one,
            all => all.iter().map(|l| l.div_ceil(4) * 4).sum(),
        };
        self.exprs.push(emit::raw("hash", |w| {
            w.put_u32_be(NFTA_HASH_SREG, NFT_REG_2);
            w.put_u32_be(NFTA_HASH_DREG, reg);
            w.put_u32_be(NFTA_HASH_LEN, len as u32);
            w.put_u32_be(NFTA_HASH_MODULUS, modulus as u32);
            if let Some(seed) = seed {
                w.put_u32_be(NFTA_HASH_SEED, seed);
            }
            if offset != 0 {
                w.put_u32_be(NFTA_HASH_OFFSET, offset);
            }
            w.put_u32_be(NFTA_HASH_TYPE, NFT_HASH_JENKINS);
        }));
        Ok(Loaded {
            dt: INTEGER,
            len: 4,
            mask: None,
        })
    }

    fn load_field(&mut self, f: &Field, reg: u32) -> R<Loaded> {
        let dt = f.dt;
        match &f.load {
            Load::Payload { base, off, len } => {
                let start = off / 8;
                let end = (off + len).div_ceil(8);
                let nbytes = (end - start) as usize;
                self.exprs
                    .push(emit::payload(reg, *base, start, nbytes as u32));
                let mask = if off % 8 != 0 || len % 8 != 0 {
                    let shift = end * 8 - (off + len);
                    let m: u128 = ((1u128 << len) - 1) << shift;
                    Some((types::int_bytes(m, nbytes, true).unwrap_or_default(), shift))
                } else {
                    None
                };
                Ok(Loaded {
                    dt,
                    len: nbytes,
                    mask,
                })
            }
            Load::Exthdr {
                op,
                ty,
                off,
                len,
                flags,
            } => {
                let start = off / 8;
                let end = (off + len).div_ceil(8);
                let nbytes = (end - start) as usize;
                self.exprs.push(emit::raw("exthdr", |w| {
                    w.put_u32_be(NFTA_EXTHDR_DREG, reg);
                    w.put_u8(NFTA_EXTHDR_TYPE, *ty);
                    w.put_u32_be(NFTA_EXTHDR_OFFSET, start);
                    w.put_u32_be(NFTA_EXTHDR_LEN, nbytes as u32);
                    w.put_u32_be(NFTA_EXTHDR_FLAGS, *flags);
                    w.put_u32_be(NFTA_EXTHDR_OP, *op);
                }));
                let mask = if off % 8 != 0 || len % 8 != 0 {
                    let shift = end * 8 - (off + len);
                    let m: u128 = ((1u128 << len) - 1) << shift;
                    Some((types::int_bytes(m, nbytes, true).unwrap_or_default(), shift))
                } else {
                    None
                };
                Ok(Loaded {
                    dt,
                    len: nbytes,
                    mask,
                })
            }
            Load::Meta(key) => {
                self.exprs.push(emit::meta(*key, reg));
                Ok(Loaded::whole(dt))
            }
            Load::Ct { key, dir } => {
                self.exprs.push(emit::ct(*key, *dir, reg));
                Ok(Loaded::whole(dt))
            }
            Load::Xfrm { key, dir, spnum } => {
                self.exprs.push(emit::raw("xfrm", |w| {
                    w.put_u32_be(NFTA_XFRM_DREG, reg);
                    w.put_u32_be(NFTA_XFRM_KEY, *key);
                    w.put_u8(NFTA_XFRM_DIR, *dir);
                    w.put_u32_be(NFTA_XFRM_SPNUM, *spnum);
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Rt(key) => {
                self.exprs.push(emit::raw("rt", |w| {
                    w.put_u32_be(NFTA_RT_KEY, *key);
                    w.put_u32_be(NFTA_RT_DREG, reg);
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Socket { key, level } => {
                self.exprs.push(emit::raw("socket", |w| {
                    w.put_u32_be(NFTA_SOCKET_KEY, *key);
                    w.put_u32_be(NFTA_SOCKET_DREG, reg);
                    if let Some(l) = level {
                        w.put_u32_be(3, *l);
                    }
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Numgen {
                mode,
                modulus,
                offset,
            } => {
                self.exprs.push(emit::raw("numgen", |w| {
                    w.put_u32_be(NFTA_NG_DREG, reg);
                    w.put_u32_be(NFTA_NG_MODULUS, *modulus);
                    w.put_u32_be(NFTA_NG_TYPE, *mode);
                    w.put_u32_be(NFTA_NG_OFFSET, *offset);
                }));
                Ok(Loaded {
                    dt,
                    len: 4,
                    mask: None,
                })
            }
            Load::Osf { ttl, flags } => {
                self.exprs.push(emit::raw("osf", |w| {
                    w.put_u32_be(NFTA_OSF_DREG, reg);
                    w.put_u8(NFTA_OSF_TTL, *ttl as u8);
                    w.put_u32_be(NFTA_OSF_FLAGS, *flags);
                }));
                Ok(Loaded::whole(dt))
            }
            Load::Fib { flags, result } => {
                self.exprs.push(emit::raw("fib", |w| {
                    w.put_u32_be(NFTA_FIB_DREG, reg);
                    w.put_u32_be(NFTA_FIB_RESULT, *result);
                    w.put_u32_be(NFTA_FIB_FLAGS, *flags);
                }));
                Ok(Loaded::whole(dt))
            }
        }
    }

    fn const_u64(&self, e: &ast::Expr) -> R<u64> {
        match e {
            ast::Expr::Word(w, s) => parse_u64(w)
                .ok_or_else(|| Diagnostic::new(*s, format!("expected a number, got '{w}'"))),
            other => err(other.span(), "expected a number"),
        }
    }

    fn value_bytes(&self, e: &ast::Expr, dt: &Dtype, len: usize) -> R<Vec<u8>> {
        match values::value(e, dt, len, self.table)? {
            Val::Bytes(v) => Ok(v),
            _ => err(e.span(), "expected a single value"),
        }
    }

    // ---- statements ---------------------------------------------------

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::Verdict(v, _) => {
                self.exprs.push(emit::verdict(&verdict(v)));
                Ok(())
            }
            Stmt::Match {
                left,
                op,
                right,
                span,
            } => self.relational(left, *op, right, *span),
            Stmt::Vmap { left, map, span } => self.map_lookup(left, map, None, *span),
            Stmt::Assign { left, value, span } => self.assign(left, value, *span),
            Stmt::Keyword { name, args, span } => super::stmts::keyword(self, name, args, *span),
            Stmt::SetOp {
                op,
                set,
                key,
                data,
                stmts,
                span,
            } => super::stmts::dynset(self, op, set, key, data.as_ref(), stmts, *span),
            // Files move these into chains first (see `bind_chains`).
            Stmt::Bound { span, .. } => err(*span, "anonymous chains need a whole file"),
        }
    }

    fn relational(&mut self, left: &ast::Expr, op: RelOp, right: &ast::Expr, span: Span) -> R<()> {
        if op == RelOp::Not && matches!(left, ast::Expr::Binop(..)) {
            return err(span, "cannot combine negation with binary expression");
        }
        // `tcp flags & (syn | ack) syn`: after a mask, a bare value is an
        // equality, not a test of any of its flags.
        let op = match (left, op) {
            (ast::Expr::Binop(BinOp::And, ..), RelOp::Implicit) => RelOp::Eq,
            _ => op,
        };
        // nft matches a one-element anonymous set as that element (and
        // drops the element's statements).
        if let ast::Expr::Set(elems, _) = right {
            if let [e] = elems.as_slice() {
                if e.data.is_none()
                    && !matches!(left, ast::Expr::Concat(..))
                    && !matches!(e.key, ast::Expr::Concat(..) | ast::Expr::Wildcard(_))
                    && matches!(op, RelOp::Implicit | RelOp::Eq | RelOp::Ne)
                {
                    return self.relational(left, op, &e.key, span);
                }
            }
        }
        // `fib daddr oif exists`: a presence test of the lookup result.
        if let (ast::Expr::Sel(path, ps), ast::Expr::Word(w, _)) = (left, right) {
            if path.first().is_some_and(|h| h == "fib")
                && path.last().is_some_and(|l| l != "present")
                && (w == "exists" || w == "missing")
            {
                let mut p = path.clone();
                p.push("present".into());
                let sel = ast::Expr::Sel(p, *ps);
                return self.relational(&sel, op, right, span);
            }
        }
        // `x xor C == V` is `x == V xor C`, as nft folds it.
        if let ast::Expr::Binop(BinOp::Xor, l, c, _) = left {
            let single = |e: &ast::Expr| {
                is_const(e)
                    && !matches!(
                        e,
                        ast::Expr::Set(..) | ast::Expr::List(..) | ast::Expr::Range(..)
                    )
            };
            if matches!(**l, ast::Expr::Sel(..))
                && single(c)
                && single(right)
                && matches!(op, RelOp::Implicit | RelOp::Eq | RelOp::Ne)
            {
                let ld = self.load(l, REG1)?;
                if ld.mask.is_none() {
                    let a = self.value_bytes(right, &ld.dt, ld.len)?;
                    let b = self.value_bytes(c, &ld.dt, ld.len)?;
                    let v: Vec<u8> = a.iter().zip(&b).map(|(x, y)| x ^ y).collect();
                    self.exprs.push(emit::cmp(REG1, cmp_op(op, span)?, &v));
                    return Ok(());
                }
                return err(span, "cannot fold xor on a partial field");
            }
        }
        if let ast::Expr::Sel(path, _) = left {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            match p.as_slice() {
                ["meta", "l4proto"] | ["ip", "protocol"] | ["ip6", "nexthdr"] => {
                    self.l4_any = true;
                    // Several protocols: a later header of one of them conflicts.
                    if let ast::Expr::Set(elems, _) = right {
                        if elems.len() > 1 && self.l4.is_none() {
                            self.l4_set = true;
                        }
                    }
                }
                ["th", _] => self.l4_any = true,
                ["icmp" | "icmpv6", "type"]
                    if matches!(right, ast::Expr::Set(..) | ast::Expr::List(..)) =>
                {
                    self.icmp_type_set = true
                }
                ["meta", "nfproto"] if self.family != Family::Inet => {
                    return err(span, "meta nfproto is only useful in the inet family")
                }
                ["ct", _, "ip" | "ip6", _] => {
                    let want = if p[2] == "ip" { NFPROTO_IPV4 } else { NFPROTO_IPV6 };
                    if self.l3.is_some_and(|h| h != want) {
                        return err(
                            span,
                            format!(
                                "conflicting protocols specified: {} vs. {}",
                                l3_name(self.l3.unwrap_or(0)),
                                p[2]
                            ),
                        );
                    }
                }
                ["rt", "nexthop"] if self.family == Family::Inet && self.l3.is_none() => {
                    return err(span, "cannot determine ip protocol version, use \"ip nexthop\" or \"ip6 nexthop\" instead")
                }
                ["rt", "ip6", "nexthop"] if self.family == Family::Ip => {
                    return err(span, "ip6 nexthop will not match")
                }
                _ => {}
            }
        }
        // Concatenations load into consecutive registers.
        self.anon_key = match left {
            ast::Expr::Concat(parts, _) => parts.clone(),
            e => vec![e.clone()],
        };
        if let ast::Expr::Concat(parts, _) = left {
            let (dts, lens) = self.load_concat(parts)?;
            return self.lookup_match(right, &dts, &lens, op, span);
        }
        let ld = self.load(left, REG1)?;
        let dt = ld.dt;
        let len = ld.len;
        match right {
            ast::Expr::Set(..) | ast::Expr::SetRef(..) => {
                let named = matches!(right, ast::Expr::SetRef(..));
                let len = self.key_mask(&ld, named, REG1);
                return self.lookup_match(right, &[dt], &[len], op, span);
            }
            ast::Expr::List(items, _) if dt.kind != Kind::Bitmask => {
                let set = ast::Expr::Set(
                    items
                        .iter()
                        .map(|k| Elem::new(k.clone(), k.span()))
                        .collect(),
                    right.span(),
                );
                return self.lookup_match(&set, &[dt], &[len], op, span);
            }
            _ => {}
        }
        let shift = ld.mask.as_ref().map(|m| m.1).unwrap_or(0);
        let wrapped = values::hour_wrap(right, &dt, self.table);
        let (right, op) = match &wrapped {
            Some(r) => (
                r,
                match op {
                    RelOp::Ne => RelOp::Eq,
                    _ => RelOp::Ne,
                },
            ),
            None => (right, op),
        };
        let val = values::value_shifted(right, &dt, len, shift, self.table)?;
        match val {
            Val::Bytes(v) => {
                if let ast::Expr::Sel(path, _) = left {
                    if matches!(op, RelOp::Implicit | RelOp::Eq) {
                        self.learn(path, &v);
                    }
                }
                if dt.kind == Kind::Bitmask
                    && matches!(op, RelOp::Implicit | RelOp::Not)
                    && !is_zero_literal(right)
                {
                    let zero = vec![0; len];
                    self.exprs.push(emit::bitwise(REG1, REG1, &v, &zero));
                    let cop = if op == RelOp::Not {
                        NFT_CMP_EQ
                    } else {
                        NFT_CMP_NEQ
                    };
                    self.exprs.push(emit::cmp(REG1, cop, &zero));
                    return Ok(());
                }
                if let Some((m, _)) = &ld.mask {
                    self.exprs.push(emit::bitwise(REG1, REG1, m, &vec![0; len]));
                }
                let cop = cmp_op(op, span)?;
                if !dt.be
                    && matches!(cop, NFT_CMP_LT | NFT_CMP_LTE | NFT_CMP_GT | NFT_CMP_GTE)
                    && len > 1
                {
                    self.exprs
                        .push(emit::byteorder(REG1, len as u32, len as u32));
                    let mut v = v;
                    v.reverse();
                    self.exprs.push(emit::cmp(REG1, cop, &v));
                } else {
                    self.exprs.push(emit::cmp(REG1, cop, &v));
                }
                Ok(())
            }
            Val::Prefix(v, plen) => {
                let full = len * 8;
                // `/0` keeps the whole load, masked to nothing.
                if plen as usize % 8 == 0
                    && plen != 0
                    && ld.mask.is_none()
                    && matches!(left, ast::Expr::Sel(..))
                {
                    // Whole bytes: load fewer bytes instead of masking.
                    let n = plen as usize / 8;
                    if let Some(Expr::Payload(_)) = self.exprs.last() {
                        let last = self.exprs.pop();
                        if let Some(Load::Payload { base, off, .. }) = self.sel_load(left) {
                            self.exprs
                                .push(emit::payload(REG1, base, off / 8, n as u32));
                        } else if let Some(l) = last {
                            self.exprs.push(l);
                        }
                    } else if n != len
                        && !(dt.be
                            && matches!(self.exprs.last(), Some(Expr::Ct(_) | Expr::Xfrm(_))))
                    {
                        // Network-order ct and ipsec (xfrm) addresses
                        // compare their first bytes only; anything else is
                        // masked.
                        let mask = values::prefix_mask_ordered(len, plen, dt.be);
                        self.exprs
                            .push(emit::bitwise(REG1, REG1, &mask, &vec![0; len]));
                        let cop = cmp_op(op, span)?;
                        self.exprs.push(emit::cmp(REG1, cop, &v));
                        return Ok(());
                    }
                    let cop = cmp_op(op, span)?;
                    self.exprs.push(emit::cmp(REG1, cop, &v[..n.min(v.len())]));
                    return Ok(());
                }
                let _ = full;
                let mask = values::prefix_mask_ordered(len, plen, dt.be);
                self.exprs
                    .push(emit::bitwise(REG1, REG1, &mask, &vec![0; len]));
                let cop = cmp_op(op, span)?;
                self.exprs.push(emit::cmp(REG1, cop, &v));
                Ok(())
            }
            Val::Range(lo, hi) => {
                if let Some((m, _)) = &ld.mask {
                    self.exprs.push(emit::bitwise(REG1, REG1, m, &vec![0; len]));
                }
                let (mut lo, mut hi) = (lo, hi);
                if !dt.be && len > 1 {
                    self.exprs
                        .push(emit::byteorder(REG1, len as u32, len as u32));
                    lo.reverse();
                    hi.reverse();
                }
                match op {
                    RelOp::Implicit | RelOp::Eq => {
                        self.exprs.push(emit::cmp(REG1, NFT_CMP_GTE, &lo));
                        self.exprs.push(emit::cmp(REG1, NFT_CMP_LTE, &hi));
                    }
                    RelOp::Ne => self.exprs.push(emit::range(REG1, NFT_RANGE_NEQ, &lo, &hi)),
                    _ => return err(span, "ranges support only == and !="),
                }
                Ok(())
            }
        }
    }

    /// A vlan field of the innermost VLAN header known present.
    fn in_vlan(&self, mut f: Field) -> Field {
        if let (Proto::Vlan, Load::Payload { off, .. }) = (f.proto, &mut f.load) {
            *off += 32 * self.vlan_depth.saturating_sub(1);
        }
        f
    }

    fn sel_load(&self, e: &ast::Expr) -> Option<Load> {
        match e {
            ast::Expr::Sel(p, _) => field(p, self.family_l3()).map(|f| f.load),
            _ => None,
        }
    }

    /// Emits the protocol dependencies of the selectors in `parts` before
    /// any of them is loaded (a later one would overwrite registers).
    pub(super) fn hoist_dependencies(&mut self, parts: &[ast::Expr]) -> R<()> {
        for p in parts {
            if let ast::Expr::Sel(path, span) = p {
                let f = self.resolve(path, *span)?;
                self.dependency(f.proto, *span)?;
            }
        }
        Ok(())
    }

    fn load_concat(&mut self, parts: &[ast::Expr]) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.load_concat_at(parts, &[], REG1)
    }

    /// Loads a concatenation from 16-byte register `first` on.
    fn load_concat_from(&mut self, parts: &[ast::Expr], first: u32) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.load_concat_at(parts, &[], first)
    }

    /// [`Self::load_concat`] where parts may be constants, of the types in
    /// `types` (a dynamic set's key: `add @s { ip saddr . 10002 }`).
    pub(super) fn load_concat_typed(
        &mut self,
        parts: &[ast::Expr],
        types: &[Dtype],
    ) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.load_concat_at(parts, types, REG1)
    }

    fn load_concat_at(
        &mut self,
        parts: &[ast::Expr],
        types: &[Dtype],
        first: u32,
    ) -> R<(Vec<Dtype>, Vec<usize>)> {
        for p in parts {
            if let ast::Expr::Sel(path, span) = p {
                if path.len() == 3
                    && path[0] == "ct"
                    && matches!(path[2].as_str(), "saddr" | "daddr")
                {
                    return err(*span, "specify either ip or ip6 for address matching");
                }
            }
        }
        // Dependencies first, as nft hoists them before the loads.
        self.hoist_dependencies(parts)?;
        let mut off = 0usize;
        let (mut dts, mut lens) = (Vec::new(), Vec::new());
        // Offsets count from the first register of the 16-byte bank.
        let base = (first - NFT_REG_1) as usize * 16;
        let mut loads = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let reg = concat_reg(base + off);
            if let (true, Some(dt)) = (is_const(p), types.get(i)) {
                let len = dt.bytes().max(1);
                let v = self.const_value(p, dt, len)?;
                self.exprs.push(emit::immediate(reg, &v));
                off += len.div_ceil(4) * 4;
                dts.push(*dt);
                lens.push(len);
                continue;
            }
            let ld = self.load(p, reg)?;
            if let Some((m, shift)) = &ld.mask {
                self.exprs
                    .push(emit::bitwise(reg, reg, m, &vec![0; ld.len]));
                // Sub-byte fields of a concatenation are shifted down.
                if *shift != 0 {
                    self.exprs.push(emit::shift(
                        reg,
                        reg,
                        ld.len as u32,
                        NFT_BITWISE_RSHIFT,
                        *shift,
                    ));
                }
            }
            off += ld.len.div_ceil(4) * 4;
            let l4proto = matches!(p, ast::Expr::Sel(q, _) if q == &["meta", "l4proto"]);
            loads.push((self.exprs.len(), reg, ld.dt, ld.len, l4proto));
            dts.push(ld.dt);
            lens.push(ld.len);
        }
        self.concat_loads = loads;
        Ok((dts, lens))
    }

    /// Masks a sub-byte single key loaded into register 1. Anonymous sets
    /// hold their values shifted up to the field; named sets hold plain
    /// values, so the key is shifted down and is as long as its type.
    /// Returns the key's length.
    fn key_mask(&mut self, ld: &Loaded, named: bool, reg: u32) -> usize {
        let Some((m, shift)) = &ld.mask else {
            return ld.len;
        };
        self.exprs
            .push(emit::bitwise(reg, reg, m, &vec![0; ld.len]));
        if !named || *shift == 0 {
            self.anon_shift = *shift;
            return ld.len;
        }
        self.exprs.push(emit::shift(
            reg,
            reg,
            ld.len as u32,
            NFT_BITWISE_RSHIFT,
            *shift,
        ));
        ld.dt.bytes().clamp(1, ld.len)
    }

    /// `left { ... }` / `left @set`: a lookup, anonymous set made as needed.
    fn lookup_match(
        &mut self,
        right: &ast::Expr,
        dts: &[Dtype],
        lens: &[usize],
        op: RelOp,
        span: Span,
    ) -> R<()> {
        let flags = match op {
            RelOp::Implicit | RelOp::Eq => 0,
            RelOp::Ne => NFT_LOOKUP_F_INV,
            _ => return err(span, "sets support only == and !="),
        };
        let name = match right {
            ast::Expr::SetRef(name, s) => {
                let set = self
                    .table
                    .set(name)
                    .ok_or_else(|| crate::syntax::refuse::unknown_set(self.table, name, *s))?;
                let want: u32 = lens
                    .iter()
                    .map(|l| {
                        if lens.len() > 1 {
                            l.div_ceil(4) * 4
                        } else {
                            *l
                        }
                    })
                    .sum::<usize>() as u32;
                if set.key_len != want {
                    let expr_ty = dts.iter().map(|d| d.name).collect::<Vec<_>>().join(" . ");
                    let set_ty =
                        crate::proto::datatype::type_names(set.key_type, set.field_count());
                    return err(
                        *s,
                        format!("datatype mismatch: the expression is {expr_ty}, set @{name} holds {set_ty}"),
                    );
                }
                // A map's keys can be looked up as a set's.
                name.clone()
            }
            ast::Expr::Set(elems, _) => self.anon_set(elems, dts, lens, None)?,
            _ => {
                return err(
                    right.span(),
                    "expected a set: use concatenations with sets and maps, not singleton values",
                )
            }
        };
        self.swap_for_interval(&name, dts, lens, REG1);
        self.exprs.push(emit::lookup(&name, REG1, None, flags));
        Ok(())
    }

    /// Builds an anonymous set (or map when `data` gives the value type).
    pub(super) fn anon_set(
        &mut self,
        elems: &[Elem],
        dts: &[Dtype],
        lens: &[usize],
        data: Option<&MapData>,
    ) -> R<String> {
        let shift = std::mem::take(&mut self.anon_shift);
        let key = KeyLayout { dts, lens, shift };
        let (elements, interval) = build_elements(self.table, elems, &key, data, None, false)?;
        let anon_key = std::mem::take(&mut self.anon_key);
        // A masked field (`vlan id`) keys the set through a bitwise
        // expression, which nft does not record.
        let masked = match anon_key.as_slice() {
            [e] => {
                matches!(self.sel_load(e), Some(Load::Payload { off, len, .. }) if off % 8 != 0 || len % 8 != 0)
            }
            _ => false,
        };
        let key_typeof = super::sets::typeof_of(self.family, &anon_key).filter(|_| !masked);
        let mut userdata = super::sets::anon_udata(&key, key_typeof.as_deref(), data, interval);
        // nft takes the key's byte order from the expression: `meta
        // l4proto` is in host order, though its type is not.
        if matches!(anon_key.as_slice(), [ast::Expr::Sel(p, _)] if p == &["meta", "l4proto"]) {
            super::sets::set_key_byteorder(&mut userdata, 1);
        }
        let concat = dts.len() > 1;
        let desc = crate::model::SetDesc {
            size: Some(super::sets::anon_size(&elements, data.is_some(), interval)),
            concat: if concat && interval {
                lens.iter().map(|l| *l as u32).collect()
            } else {
                vec![]
            },
            unknown: vec![],
        };
        let concat = dts.len() > 1;
        let is_map = data.is_some();
        // Numbered as the kernel would (push sends `__set%d` and lets it
        // pick): a rule with two anonymous sets must name each apart.
        let name = format!(
            "{}{}",
            if is_map { "__map" } else { "__set" },
            *self.set_counter
        );
        let mut flags = NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
        if interval {
            flags |= NFT_SET_INTERVAL;
        }
        if is_map {
            flags |= NFT_SET_MAP;
        }
        if concat && interval {
            flags |= NFT_SET_CONCAT;
        }
        let (data_type, data_len) = data.map_or((None, None), MapData::type_len);
        *self.set_counter += 1;
        self.sets.push(Set {
            name: name.clone(),
            flags,
            key_type: key.type_id(),
            key_len: key.len() as u32,
            data_type,
            data_len,
            obj_type: None,
            policy: None,
            desc: Some(desc),
            timeout: None,
            gc_interval: None,
            userdata: Some(userdata),
            exprs: vec![],
            elements,
            handle: None,
            unknown: vec![],
        });
        Ok(name)
    }

    /// Host-order keys of interval sets are looked up byte-swapped
    /// (see [`KeyLayout::swapped`]).
    fn swap_for_interval(&mut self, set: &str, dts: &[Dtype], lens: &[usize], reg: u32) {
        let interval = match self.sets.last() {
            Some(s) if s.name == set => s.is_interval(),
            _ => self.table.set(set).is_some_and(|s| s.is_interval()),
        };
        let loads = std::mem::take(&mut self.concat_loads);
        if interval && dts.len() > 1 {
            // Each host-order part right after its load, last first so
            // the earlier positions stay valid.
            for (at, reg, dt, len, l4proto) in loads.into_iter().rev() {
                if super::sets::host_order_part(&dt, len) {
                    self.exprs
                        .insert(at, emit::byteorder(reg, len as u32, len as u32));
                } else if l4proto {
                    // Host order by its expression, though one byte: nft
                    // converts it as a 16-bit value.
                    self.exprs.insert(at, emit::byteorder(reg, 1, 2));
                }
            }
            return;
        }
        if interval
            && (KeyLayout {
                dts,
                lens,
                shift: 0,
            })
            .swapped()
        {
            self.exprs
                .push(emit::byteorder(reg, lens[0] as u32, lens[0] as u32));
        }
    }

    /// `key vmap {...}` (dreg = verdict) or `key map {...}` into `dreg`.
    pub(super) fn map_lookup(
        &mut self,
        key: &ast::Expr,
        map: &ast::Expr,
        value: Option<(Dtype, usize, u32)>,
        span: Span,
    ) -> R<()> {
        let (md, dreg) = match value {
            None => (MapData::Verdict, NFT_REG_VERDICT),
            Some((dt, len, reg)) => (MapData::Value(dt, len), reg),
        };
        self.map_lookup_data(key, map, md, dreg, span)
    }

    /// [`Self::map_lookup`] with any kind of value (`md`) into `dreg`.
    pub(super) fn map_lookup_data(
        &mut self,
        key: &ast::Expr,
        map: &ast::Expr,
        md: MapData,
        dreg: u32,
        span: Span,
    ) -> R<()> {
        self.anon_key = match key {
            ast::Expr::Concat(parts, _) => parts.clone(),
            e => vec![e.clone()],
        };
        if let ast::Expr::Sel(path, span) = key {
            if path.len() == 3 && path[0] == "ct" && matches!(path[2].as_str(), "saddr" | "daddr") {
                return err(*span, "specify either ip or ip6 for address matching");
            }
        }
        // A single key is computed in the value's register, as nft does
        // (register 1 may already hold a NAT or tproxy address).
        let kreg = match key {
            ast::Expr::Concat(..) => REG1,
            _ if (NFT_REG_1..=NFT_REG_4).contains(&dreg) => dreg,
            _ => REG1,
        };
        let (dts, lens) = match key {
            ast::Expr::Concat(parts, _) => self.load_concat(parts)?,
            k => {
                let ld = self.load(k, kreg)?;
                let len = self.key_mask(&ld, matches!(map, ast::Expr::SetRef(..)), kreg);
                (vec![ld.dt], vec![len])
            }
        };
        let name = match map {
            ast::Expr::Set(elems, _) => self.anon_set(elems, &dts, &lens, Some(&md))?,
            ast::Expr::SetRef(name, s) => {
                let set = self
                    .table
                    .set(name)
                    .ok_or_else(|| Diagnostic::new(*s, format!("unknown map @{name}")))?;
                if !set.is_map() {
                    return err(*s, format!("@{name} is not a map"));
                }
                name.clone()
            }
            other => return err(other.span(), "expected a map"),
        };
        self.swap_for_interval(&name, &dts, &lens, kreg);
        let _ = span;
        self.exprs.push(emit::lookup(&name, kreg, Some(dreg), 0));
        Ok(())
    }

    /// Computes a value expression into `reg` (for `set` statements and NAT).
    pub(super) fn eval_into(&mut self, v: &ast::Expr, dt: &Dtype, len: usize, reg: u32) -> R<()> {
        match v {
            _ if is_jhash(v) => {
                self.load(v, reg)?;
                Ok(())
            }
            ast::Expr::Sel(..) | ast::Expr::Binop(..) if !is_const(v) => {
                self.load(v, reg)?;
                Ok(())
            }
            ast::Expr::Map(key, m, s) => self.map_lookup(key, m, Some((*dt, len, reg)), *s),
            _ => {
                let bytes = self.const_value(v, dt, len)?;
                self.exprs.push(emit::immediate(reg, &bytes));
                Ok(())
            }
        }
    }

    /// Folds constant expressions (`0x11 xor 0x1331`, `new | related`).
    fn const_value(&self, v: &ast::Expr, dt: &Dtype, len: usize) -> R<Vec<u8>> {
        match v {
            ast::Expr::Binop(op, l, r, _) => {
                let a = self.const_value(l, dt, len)?;
                let c = self.const_value(r, dt, len)?;
                Ok(a.iter()
                    .zip(&c)
                    .map(|(x, y)| match op {
                        BinOp::And => x & y,
                        BinOp::Or => x | y,
                        _ => x ^ y,
                    })
                    .collect())
            }
            _ => self.value_bytes(v, dt, len),
        }
    }

    fn assign(&mut self, left: &ast::Expr, value: &ast::Expr, span: Span) -> R<()> {
        let ast::Expr::Sel(path, lspan) = left else {
            return err(left.span(), "cannot assign to this expression");
        };
        // `ct helper set "ftp"`: a reference to a named object.
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let obj = match p.as_slice() {
            ["ct", "helper"] => Some(NFT_OBJECT_CT_HELPER),
            ["ct", "timeout"] => Some(NFT_OBJECT_CT_TIMEOUT),
            ["ct", "expectation"] => Some(NFT_OBJECT_CT_EXPECT),
            _ => None,
        };
        if let Some(ty) = obj {
            return super::stmts::object_ref(self, ty, value);
        }
        let f = self.resolve(path, *lspan)?;
        match &f.load {
            Load::Meta(key) => {
                let len = f.dt.bytes();
                self.eval_into(value, &f.dt, len, REG1)?;
                self.exprs.push(emit::meta_set(*key, REG1));
                Ok(())
            }
            Load::Ct { key, dir } => {
                let len = f.dt.bytes();
                self.eval_into(value, &f.dt, len, REG1)?;
                self.exprs.push(emit::ct_set(*key, *dir, REG1));
                Ok(())
            }
            Load::Payload { base, off, len } => {
                self.dependency(f.proto, *lspan)?;
                let csum = payload_csum(*base, path);
                let (mut start, mut end) = (off / 8, (off + len).div_ceil(8));
                // Checksummed headers are rewritten in whole 16-bit words,
                // so the checksum can be updated incrementally.
                let inner = *base == NFT_PAYLOAD_INNER_HEADER;
                if inner || csum.is_some_and(|(t, _)| t == NFT_PAYLOAD_CSUM_INET) {
                    start &= !1;
                    end = end.div_ceil(2) * 2;
                }
                let n = (end - start) as usize;
                if off % 8 != 0
                    || len % 8 != 0
                    || off / 8 != start
                    || (off + len).div_ceil(8) != end
                {
                    let shift = end * 8 - (off + len);
                    let v = values::value_shifted(value, &f.dt, n, shift, self.table)?;
                    let Val::Bytes(v) = v else {
                        return err(value.span(), "expected a value");
                    };
                    let m: u128 = ((1u128 << len) - 1) << shift;
                    let mask = types::int_bytes(m, n, true).unwrap_or_default();
                    let inv: Vec<u8> = mask.iter().map(|x| !x).collect();
                    self.exprs.push(emit::payload(REG1, *base, start, n as u32));
                    self.exprs.push(emit::bitwise(REG1, REG1, &inv, &v));
                } else {
                    self.eval_into(value, &f.dt, n, REG1)?;
                }
                // Fields of the transport checksum's pseudo-header: nft
                // asks for that checksum to be updated too.
                let pseudo = inner
                    || matches!(
                        p.as_slice(),
                        ["ip", "saddr" | "daddr" | "protocol"]
                            | ["ip6", "saddr" | "daddr" | "nexthdr"]
                    );
                let flags = if pseudo {
                    NFT_PAYLOAD_L4CSUM_PSEUDOHDR
                } else {
                    0
                };
                self.exprs.push(emit::payload_write(
                    REG1, *base, start, n as u32, csum, flags,
                ));
                let _ = span;
                Ok(())
            }
            Load::Exthdr {
                op, ty, off, len, ..
            } if *op == NFT_EXTHDR_OP_TCPOPT && off % 8 == 0 && len % 8 == 0 => {
                let n = (len / 8) as usize;
                self.eval_into(value, &f.dt, n, REG1)?;
                // A host-order value (`rt mtu`) is written in network order.
                let host = match value {
                    ast::Expr::Sel(p, _) => field(p, self.family_l3()).is_some_and(|v| !v.dt.be),
                    _ => false,
                };
                if host && f.dt.be && n > 1 {
                    self.exprs.push(emit::byteorder(REG1, n as u32, n as u32));
                }
                self.exprs.push(emit::raw("exthdr", |w| {
                    w.put_u32_be(NFTA_EXTHDR_SREG, REG1);
                    w.put_u8(NFTA_EXTHDR_TYPE, *ty);
                    w.put_u32_be(NFTA_EXTHDR_OFFSET, off / 8);
                    w.put_u32_be(NFTA_EXTHDR_LEN, n as u32);
                    w.put_u32_be(NFTA_EXTHDR_FLAGS, 0);
                    w.put_u32_be(NFTA_EXTHDR_OP, *op);
                }));
                Ok(())
            }
            _ => err(*lspan, "cannot assign to this expression"),
        }
    }
}

fn payload_csum(base: u32, path: &[String]) -> Option<(u32, u32)> {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    match (base, p.first().copied()) {
        (NFT_PAYLOAD_NETWORK_HEADER, Some("ip")) => Some((NFT_PAYLOAD_CSUM_INET, 10)),
        (NFT_PAYLOAD_TRANSPORT_HEADER, Some("tcp")) => Some((NFT_PAYLOAD_CSUM_INET, 16)),
        (NFT_PAYLOAD_TRANSPORT_HEADER, Some("udp")) => Some((NFT_PAYLOAD_CSUM_INET, 6)),
        (NFT_PAYLOAD_TRANSPORT_HEADER, Some("icmp" | "icmpv6")) => Some((NFT_PAYLOAD_CSUM_INET, 2)),
        _ => None,
    }
}

fn is_const(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Binop(_, l, r, _) => is_const(l) && is_const(r),
        ast::Expr::Sel(..) | ast::Expr::Map(..) => false,
        _ => true,
    }
}

/// `jhash KEY mod N`, which the parser gives as a map of the hash
/// parameters over the key.
fn is_jhash(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Map(h, ..) if matches!(&**h, ast::Expr::Sel(p, _) if p[0] == "jhash"))
}

/// 802.1Q and 802.1ad: a VLAN header follows.
fn is_vlan_type(t: u16) -> bool {
    t == 0x8100 || t == 0x88a8
}

fn is_zero_literal(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Word(w, _) if parse_u64(w) == Some(0))
}

pub(super) fn incr(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = v.to_vec();
    for i in (0..out.len()).rev() {
        if out[i] == 0xff {
            out[i] = 0;
        } else {
            out[i] += 1;
            return Some(out);
        }
    }
    None
}

pub fn prefix_mask(len: usize, plen: u32) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let bits = (plen as i64 - (i as i64) * 8).clamp(0, 8) as u32;
            if bits == 0 {
                0
            } else {
                0xffu8 << (8 - bits)
            }
        })
        .collect()
}

pub fn verdict(v: &ast::Verdict) -> Verdict {
    match v {
        ast::Verdict::Accept => Verdict::Accept,
        ast::Verdict::Drop => Verdict::Drop,
        ast::Verdict::Continue => Verdict::Continue,
        ast::Verdict::Return => Verdict::Return,
        ast::Verdict::Jump(c) => Verdict::Jump(c.clone()),
        ast::Verdict::Goto(c) => Verdict::Goto(c.clone()),
    }
}

fn cmp_op(op: RelOp, span: Span) -> R<u32> {
    Ok(match op {
        RelOp::Implicit | RelOp::Eq => NFT_CMP_EQ,
        RelOp::Ne => NFT_CMP_NEQ,
        RelOp::Lt => NFT_CMP_LT,
        RelOp::Gt => NFT_CMP_GT,
        RelOp::Le => NFT_CMP_LTE,
        RelOp::Ge => NFT_CMP_GTE,
        RelOp::Not => return err(span, "'!' applies only to flags"),
    })
}

fn l3_name(p: u32) -> &'static str {
    match p {
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        NFPROTO_ARP => "arp",
        _ => "?",
    }
}

fn proto_name(n: u8) -> String {
    INET_PROTO
        .syms
        .iter()
        .find(|s| s.value == n as u64)
        .map(|s| s.name.to_string())
        .unwrap_or_else(|| n.to_string())
}

pub(super) fn arg_words(args: &[Arg]) -> Vec<(String, Span)> {
    args.iter()
        .filter_map(|a| match a {
            Arg::Word(w, s) | Arg::Str(w, s) => Some((w.clone(), *s)),
            Arg::Punct(p, s) => Some((p.to_string(), *s)),
            Arg::Expr(_) => None,
        })
        .collect()
}

impl RuleCx<'_> {
    pub(super) fn push(&mut self, e: Expr) {
        self.exprs.push(e);
    }
    pub(super) fn family(&self) -> Family {
        self.family
    }
    /// Makes the anonymous set just built an object map of `obj_type`.
    pub(super) fn make_objmap(&mut self, obj_type: u32) -> Option<String> {
        let s = self.sets.last_mut()?;
        s.flags = (s.flags & !NFT_SET_MAP) | NFT_SET_OBJECT;
        s.obj_type = Some(obj_type);
        s.data_type = None;
        s.data_len = None;
        let number = s.name.trim_start_matches(|c: char| !c.is_ascii_digit());
        s.name = format!("__objmap{number}");
        Some(s.name.clone())
    }
    /// Loads a map key (a selector or concatenation) into register 1.
    pub(super) fn load_key(&mut self, key: &ast::Expr) -> R<(Vec<Dtype>, Vec<usize>)> {
        self.anon_key = match key {
            ast::Expr::Concat(parts, _) => parts.clone(),
            e => vec![e.clone()],
        };
        match key {
            ast::Expr::Concat(parts, _) => self.load_concat(parts),
            k => {
                let ld = self.load(k, REG1)?;
                if let Some((m, shift)) = &ld.mask {
                    self.exprs
                        .push(emit::bitwise(REG1, REG1, m, &vec![0; ld.len]));
                    self.anon_shift = *shift;
                }
                Ok((vec![ld.dt], vec![ld.len]))
            }
        }
    }
    /// Loads a meter's key into register 1 and adds the meter's own set
    /// to the rule (see [`super::stmts::meter`]).
    pub(super) fn meter_set(
        &mut self,
        name: &str,
        key: &ast::Expr,
        size: u32,
        timeout: bool,
    ) -> R<()> {
        let (dts, lens) = self.load_key(key)?;
        self.anon_key.clear();
        self.anon_shift = 0;
        let layout = KeyLayout {
            dts: &dts,
            lens: &lens,
            shift: 0,
        };
        let mut flags = NFT_SET_ANONYMOUS | NFT_SET_EVAL;
        if timeout {
            flags |= NFT_SET_TIMEOUT;
        }
        let mut s = Set::new(name, layout.type_id(), layout.len() as u32);
        s.flags = flags;
        // nft records a byte order (none: mixed) for concatenated keys only.
        if dts.len() > 1 {
            s.userdata = Some(Userdata(crate::expr::Bytes::from(vec![0u8, 4, 0, 0, 0, 0])));
        }
        s.desc = Some(crate::model::SetDesc {
            size: Some(size),
            ..Default::default()
        });
        self.sets.push(s);
        Ok(())
    }
    /// Loads the selector keying a set statement into register 1, masked
    /// (and shifted down) as for lookups in named sets.
    pub(super) fn load_set_key(&mut self, key: &ast::Expr) -> R<()> {
        let ld = self.load(key, REG1)?;
        self.key_mask(&ld, true, REG1);
        Ok(())
    }
    /// The network protocol matched so far, if known.
    pub(super) fn l3_known(&self) -> Option<u32> {
        self.l3
    }
    /// The transport protocol matched so far, if known.
    pub(super) fn l4(&self) -> Option<u8> {
        self.l4.or(self.l4_any.then_some(0))
    }
    pub(super) fn dep(&mut self, p: Proto, span: Span) -> R<()> {
        self.dependency(p, span)
    }
    pub(super) fn table(&self) -> &Table {
        self.table
    }
}

impl RuleCx<'_> {
    pub(super) fn stmt_pub(&mut self, s: &Stmt) -> R<()> {
        self.stmt(s)
    }
}
