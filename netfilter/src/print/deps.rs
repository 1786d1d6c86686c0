//! Protocol context: which header a packet load reads, given the
//! protocol matches before it, and which of those matches are the
//! dependencies nft adds on its own (and leaves out of listings).

use crate::expr::payload::PayloadBase;
use crate::proto::datatype as dt;
use crate::proto::{header, keys, ByteOrder, Format, Header};

use crate::model::Family;
use crate::sys::*;

use super::decompiler::Decompiler;
use super::regs::{int_of, layer_of, mask_bits, raw_text, Layer, Reg};
use super::value::{self};

impl<'a> Decompiler<'a> {
    pub(super) fn meta_reg(&mut self, key: u32) -> Reg {
        let Some(k) = keys::meta_by_key(key) else {
            return Reg::new(format!("meta {key}"), &dt::INTEGER, ByteOrder::Host, 4);
        };
        let text = if k.unqualified {
            k.name.to_string()
        } else {
            format!("meta {}", k.name)
        };
        let mut r = Reg::new(text, k.dtype, k.dtype.byteorder, k.bits.div_ceil(8));
        r.vt.bits = k.bits;
        if k.key == NFT_META_L4PROTO {
            r.defines = Some(Layer::Transport);
        }
        if matches!(k.key, NFT_META_NFPROTO | NFT_META_PROTOCOL) {
            r.defines = Some(Layer::Network);
        }
        if k.key == NFT_META_IIFTYPE {
            r.defines = Some(Layer::Link);
        }
        r
    }

    pub(super) fn ct_reg(&mut self, key: u32, dir: Option<u8>) -> Reg {
        let Some(k) = keys::ct_by_key(key) else {
            return Reg::new(format!("ct {key}"), &dt::INTEGER, ByteOrder::Host, 4);
        };
        let d = dir
            .and_then(keys::ct_dir_name)
            .map(|d| format!("{d} "))
            .unwrap_or_default();
        let mut name = k.name.to_string();
        let (dtype, bits) = if matches!(key, NFT_CT_SRC | NFT_CT_DST) {
            // Printed with the family the context (or its dependency) gives.
            let net = self.ctx[Layer::Network as usize];
            if let Some(h) = net {
                self.used(Layer::Network, h);
            }
            let v6 = net.map(|h| h.name) == Some("ip6");
            name = format!("{} {}", if v6 { "ip6" } else { "ip" }, k.name);
            if v6 {
                (&dt::IPV6_ADDR, 128)
            } else {
                (&dt::IPV4_ADDR, 32)
            }
        } else {
            (k.dtype, k.bits)
        };
        let bo = if key == NFT_CT_ID {
            ByteOrder::Big
        } else {
            dtype.byteorder
        };
        let mut r = Reg::new(format!("ct {d}{name}"), dtype, bo, bits.div_ceil(8));
        r.vt.bits = bits;
        r
    }

    /// A packet load, resolved against the protocol context.
    pub(super) fn payload_reg(&mut self, base: PayloadBase, off: u32, len: u32) -> Reg {
        let layer = layer_of(base);
        let (boff, blen) = (off * 8, len * 8);
        if let Some((h, f)) = self.icmp_field(layer, boff, blen) {
            return self.field_reg(h, f, len, 0);
        }
        if let Some((h, f)) = self.resolve_field(layer, boff, blen) {
            // `vlan type` alone keeps its `ether type 8021q` in nft's
            // listing; any other vlan field leaves it out.
            if !(h.name == "vlan" && f.name == "type") {
                self.used(layer, h);
            }
            return self.field_reg(h, f, len, 0);
        }
        // A load of a field's leading bytes: nft's shortcut for a prefix.
        if let Some(h) = self.ctx[layer as usize] {
            if let Some(f) = h.fields.iter().find(|f| {
                f.offset == boff
                    && f.len > blen
                    && f.len % 8 == 0
                    && f.dtype.format != Format::Bitmask
            }) {
                self.used(layer, h);
                let mut r = self.field_reg(h, f, len, 0);
                r.vt.bits = blen;
                r.prefix_of = Some(f.len / 8);
                r.raw = Some((base, off, len));
                return r;
            }
        }
        let mut r = Reg::new(
            raw_text(base, boff, blen),
            &dt::BITMASK,
            ByteOrder::Big,
            len,
        );
        r.raw = Some((base, off, len));
        r
    }

    /// `load; bitwise (& keep) ^ new; write back`: how nft sets a field
    /// narrower than the bytes it lives in. Prints `FIELD set VALUE`.
    pub(super) fn mangled_set(&mut self, sreg: u32, base: PayloadBase, off: u32, len: u32) -> bool {
        let Some(r) = self.get_reg(sreg, None) else {
            return false;
        };
        let Some((mask, xor)) = r.mangle.clone() else {
            return false;
        };
        if mask.len() as u32 != len {
            return false;
        }
        let inv: Vec<u8> = mask.iter().map(|b| !b).collect();
        let layer = layer_of(base);
        let field = mask_bits(&inv)
            .and_then(|(lo, n)| Some((lo, n, self.resolve_field(layer, off * 8 + lo, n)?)));
        let Some((lo, n, (h, f))) = field else {
            // No header field there: the raw bits, masked and or-ed.
            let raw = raw_text(base, off * 8, len * 8);
            // nft 1.0.6 writes the cleared bits when nothing is or-ed in,
            // else the mask with the new bits.
            let (m, x) = (int_of(&mask, ByteOrder::Big), int_of(&xor, ByteOrder::Big));
            let t = if x == 0 {
                format!("{raw} set {raw} & 0x{:x}", !m & value::low_mask(len * 8))
            } else {
                format!("{raw} set {raw} & 0x{:x} | 0x{x:x}", m | x)
            };
            self.push_action(t);
            return true;
        };
        self.used(layer, h);
        let shift = len * 8 - lo - n;
        let fr = self.field_reg(h, f, len, shift);
        let v = self.fmt(&fr, &xor);
        self.push_action(format!("{} set {v}", fr.text));
        true
    }

    /// ICMP fields after the type word overlap; the type matched before
    /// tells which one is meant, and that match is then implied.
    pub(super) fn icmp_field(
        &mut self,
        layer: Layer,
        boff: u32,
        blen: u32,
    ) -> Option<(&'static Header, &'static header::Field)> {
        let h = self.ctx[layer as usize].filter(|h| matches!(h.name, "icmp" | "icmpv6"))?;
        if layer != Layer::Transport || boff < 32 {
            return None;
        }
        let (ty, idx) = self.icmp_type?;
        let name = match (h.name, ty, boff, blen) {
            ("icmp", 5, 32, 32) => "gateway",
            ("icmp", 3, 48, 16) => "mtu",
            ("icmp", 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18, 32, 16) => "id",
            ("icmp", 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18, 48, 16) => "sequence",
            ("icmpv6", 2, 32, 32) => "mtu",
            ("icmpv6", 4, 32, 32) => "param-problem",
            ("icmpv6", 128 | 129, 32, 16) => "id",
            ("icmpv6", 128 | 129, 48, 16) => "sequence",
            ("icmpv6", 130..=132, 32, 16) => "max-delay",
            _ => return None,
        };
        let f = h.field(name)?;
        // The echo fields' dependency is a set of types: kept in listings.
        if !matches!(name, "id" | "sequence") {
            if let Some(s) = self.stmts.get_mut(idx) {
                s.elided = true;
            }
        }
        self.used(layer, h);
        Some((h, f))
    }

    pub(super) fn resolve_field(
        &self,
        layer: Layer,
        boff: u32,
        blen: u32,
    ) -> Option<(&'static Header, &'static header::Field)> {
        let ctx = self.ctx[layer as usize];
        let mut cands: Vec<&'static Header> = Vec::new();
        if let Some(h) = ctx {
            cands.push(h);
        }
        match layer {
            Layer::Link => cands.extend([&header::ETHER, &header::VLAN]),
            Layer::Transport if ctx.is_none() => cands.push(&header::TH),
            _ => {}
        }
        for h in cands {
            let off = if h.name == "vlan" {
                boff.checked_sub(self.vlan_shift)?
            } else {
                boff
            };
            if let Some(f) = h
                .fields
                .iter()
                .find(|f| f.offset == off && f.len == blen && self.allowed(h, f))
            {
                return Some((h, f));
            }
        }
        None
    }

    /// Whether `f` fits what is known about the packet (ICMP fields that
    /// share bytes depend on the ICMP type matched before).
    pub(super) fn allowed(&self, h: &Header, f: &header::Field) -> bool {
        let Some((ty, _)) = self.icmp_type else {
            return true;
        };
        match (h.name, f.name) {
            ("icmp", "gateway") => ty == 5,
            ("icmp", "mtu") => ty == 3,
            ("icmpv6", "mtu") => ty == 2,
            ("icmpv6", "param-problem") => ty == 4,
            ("icmpv6", "max-delay") => (130..=132).contains(&ty),
            _ => true,
        }
    }

    pub(super) fn field_reg(
        &self,
        h: &'static Header,
        f: &'static header::Field,
        len: u32,
        shift: u32,
    ) -> Reg {
        let text = format!("{} {}", h.name, f.name);
        let mut r = Reg::new(text, f.dtype, ByteOrder::Big, len);
        r.vt.bits = f.len;
        r.shift = shift;
        let is = |name: &str| f.name == name;
        r.defines = match h.name {
            "ip" | "ip6" if is("protocol") || is("nexthdr") => Some(Layer::Transport),
            "ether" if is("type") => Some(Layer::Network),
            "vlan" if is("type") => Some(Layer::Network),
            _ => None,
        };
        r
    }

    /// A header at `layer` was used: the match that established it is a
    /// dependency nft leaves out of the listing.
    pub(super) fn used(&mut self, layer: Layer, h: &Header) {
        let li = layer as usize;
        if self.ctx[li].is_some_and(|c| std::ptr::eq(c, h)) {
            if let Some(d) = self.dep[li].take() {
                self.elide(d);
                // `ether type ip` left out goes with the `meta iiftype
                // ether` that guarded it (netdev: nft lists `ip saddr x`).
                if layer == Layer::Network && self.stmts[d].text.starts_with("ether type") {
                    if let Some(i) = self.iiftype {
                        self.stmts[i].elided = true;
                    }
                }
            }
        }
        // vlan fields live at the link layer: an `ether type vlan` match is their dependency.
        if h.name == "vlan" {
            if let Some(d) = self.dep[Layer::Link as usize].take() {
                self.elide(d);
            }
        }
        if matches!(h.name, "vlan" | "ether") {
            if let Some(d) = self.iiftype {
                self.stmts[d].elided = true;
            }
        }
        // ICMP and IGMP only exist over one network protocol.
        let net = match h.name {
            "icmp" | "igmp" => Some(&header::IP),
            "icmpv6" => Some(&header::IP6),
            _ => None,
        };
        if let Some(n) = net {
            if self.ctx[1].is_some_and(|c| std::ptr::eq(c, n)) {
                if let Some(d) = self.dep[1].take() {
                    self.elide(d);
                }
            }
        }
    }

    /// An equality match on a protocol-selecting expression: sets the
    /// context for the next layer and remembers the statement as a
    /// possible dependency.
    pub(super) fn define(&mut self, layer: Layer, r: &Reg, data: &[u8]) {
        let v = int_of(data, r.vt.byteorder);
        let h = match layer {
            Layer::Transport => header::by_ip_protocol(v as u8),
            Layer::Network => {
                if r.vt.dtype.id == dt::NFPROTO.id {
                    match v {
                        2 => Some(&header::IP),
                        10 => Some(&header::IP6),
                        _ => None,
                    }
                } else {
                    header::by_ether_type(v as u16)
                }
            }
            // `meta iiftype ether` guards link-layer header matches.
            Layer::Link => (v == 1).then_some(&header::ETHER),
        };
        let idx = self.stmts.len() - 1;
        // Any other transport protocol still has ports at the usual place.
        let h = match (layer, h) {
            (Layer::Transport, None) => Some(&header::TH),
            (_, h) => h,
        };
        match h {
            Some(h) if layer == Layer::Link => {
                self.ctx[0] = Some(h);
                self.dep[0] = Some(idx);
                self.iiftype = Some(idx);
            }
            Some(h) if h.name == "vlan" => {
                if r.text == "vlan type" {
                    self.vlan_shift += 32;
                }
                self.dep[Layer::Link as usize] =
                    (v == 0x8100 && r.text == "ether type").then_some(idx);
            }
            Some(h) => {
                let prev = self.ctx[layer as usize];
                let changed = prev.is_some_and(|c| !std::ptr::eq(c, h));
                self.ctx[layer as usize] = Some(h);
                // nft's own dependency there is `meta l4proto`: an explicit
                // `ip protocol` stays in the listing.
                let explicit = matches!(r.text.as_str(), "ip protocol" | "ip6 nexthdr")
                    && matches!(self.family, Family::Inet | Family::Bridge | Family::Netdev);
                self.dep[layer as usize] = (!explicit).then_some(idx);
                self.explicit_dep[layer as usize] = explicit.then_some(idx);
                // A new network protocol resets the transport context.
                if layer == Layer::Network && changed {
                    self.ctx[Layer::Transport as usize] = None;
                    self.dep[Layer::Transport as usize] = None;
                }
            }
            None => {}
        }
    }

    /// Marks the dependency for `layer` as elided if `h` is what it set.
    pub fn use_header(&mut self, layer: Layer, h: &Header) {
        self.used(layer, h);
    }

    /// A header option of `h` (`tcp option maxseg`): even an explicit
    /// match of its protocol is left out, as nft lists it.
    pub fn use_header_option(&mut self, layer: Layer, h: &Header) {
        self.used(layer, h);
        let li = layer as usize;
        if self.ctx[li].is_some_and(|c| std::ptr::eq(c, h)) {
            // What that match needed stays out too (`meta protocol ip`).
            if let Some(d) = self.explicit_dep[li].take() {
                if let Some(s) = self.stmts.get_mut(d) {
                    s.elided = true;
                }
            }
        }
    }

    /// The protocol header in context at `layer`.
    pub fn context(&self, layer: Layer) -> Option<&'static Header> {
        self.ctx[layer as usize]
    }

    /// Drops statement `i` as a dependency; what only it needed comes back.
    pub(super) fn elide(&mut self, i: usize) {
        if i >= self.stmts.len() {
            return;
        }
        self.stmts[i].elided = true;
        for j in std::mem::take(&mut self.stmts[i].elides) {
            if let Some(s) = self.stmts.get_mut(j) {
                s.elided = false;
            }
        }
        self.pending_elides.retain(|&j| j != i);
        self.pending_elides.push(i);
    }
}
