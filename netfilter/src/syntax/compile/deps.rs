//! Protocol dependencies: the matches nft adds before a selector so it
//! reads a header the packet has (`meta l4proto tcp` before `tcp dport`),
//! and the protocol context a rule's own matches establish.

use super::cx::{is_vlan_type, l3_name, proto_name, RuleCx, REG1};
use super::emit;
use super::fields::{Proto, L3};
use super::types::*;
use crate::model::Family;
use crate::syntax::ast::{self, Elem};
use crate::syntax::diag::{err, Span};
use crate::syntax::Result as R;
use crate::sys::*;

impl RuleCx<'_> {
    pub(super) fn dep(&mut self, p: Proto, span: Span) -> R<()> {
        self.dependency(p, span)
    }

    pub(super) fn need_l3(&mut self, want: u32, span: Span) -> R<()> {
        self.need_l3_via(want, span, false)
    }

    /// [`Self::need_l3`]; `from_packet`: in a bridge, test the Ethernet
    /// type in the packet rather than the packet's protocol (as nft does
    /// for ICMP).
    pub(super) fn need_l3_via(&mut self, want: u32, span: Span, from_packet: bool) -> R<()> {
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

    pub(super) fn dependency(&mut self, proto: Proto, span: Span) -> R<()> {
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
    pub(super) fn icmp_type_dependency(&mut self, path: &[String], span: Span) -> R<()> {
        let p = super::fields::words(path);
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
    pub(super) fn learn(&mut self, path: &[String], val: &[u8]) {
        let p = super::fields::words(path);
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
}
