//! Bodies of named objects (`NFTA_OBJ_DATA`), by object type. Objects that
//! share attributes with an expression (counter, quota, limit, connlimit,
//! synproxy) reuse its struct.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::expr::connlimit::Connlimit;
use crate::expr::counter::Counter;
use crate::expr::limit::Limit;
use crate::expr::quota::Quota;
use crate::expr::synproxy::Synproxy;
use crate::expr::{AttrValue, Bytes, RawAttr};
use crate::netlink::attr::NLA_F_NESTED;
use crate::netlink::{Attr, Attrs, Writer};
use crate::sys::*;

crate::attr_struct! {
    /// A conntrack helper assigned to matching connections.
    pub struct CtHelper {
        name: String = NFTA_CT_HELPER_NAME,
        l4proto: u8 = NFTA_CT_HELPER_L4PROTO,
        l3proto: u16 = NFTA_CT_HELPER_L3PROTO,
    }
}

crate::attr_struct! {
    /// A conntrack timeout policy for one L4 protocol.
    pub struct CtTimeout {
        l4proto: u8 = NFTA_CT_TIMEOUT_L4PROTO,
        l3proto: u16 = NFTA_CT_TIMEOUT_L3PROTO,
        policy: TimeoutPolicy = NFTA_CT_TIMEOUT_DATA,
    }
}

/// Timeouts in seconds by protocol state: attribute type = state + 1
/// (`CTA_TIMEOUT_TCP_*`, ...), as the kernel lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeoutPolicy(pub Vec<(u16, u32)>);

impl AttrValue for TimeoutPolicy {
    fn encode(&self, ty: u16, w: &mut Writer) {
        // The kernel flags this nest (and only this one) as nested.
        w.nest(ty | NLA_F_NESTED, |w| {
            for (state, secs) in &self.0 {
                w.put_u32_be(*state, *secs);
            }
        });
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        a.nested()
            .map(|s| {
                let s = s?;
                Ok((s.raw_type(), s.u32_be()?))
            })
            .collect::<Result<_, _>>()
            .map(TimeoutPolicy)
    }
}

crate::attr_struct! {
    /// Expectations created for related connections (`timeout` in ms).
    pub struct CtExpect {
        l3proto: u16 = NFTA_CT_EXPECT_L3PROTO,
        l4proto: u8 = NFTA_CT_EXPECT_L4PROTO,
        dport: u16 = NFTA_CT_EXPECT_DPORT,
        timeout: u32 = NFTA_CT_EXPECT_TIMEOUT,
        size: u8 = NFTA_CT_EXPECT_SIZE,
    }
}

crate::attr_struct! {
    /// An LSM security context for `meta/ct secmark set`.
    pub struct Secmark {
        ctx: String = NFTA_SECMARK_CTX,
    }
}

crate::attr_struct! {
    /// Outer IPv4 addresses of a tunnel (network byte order).
    pub struct TunnelIp {
        src: Bytes = NFTA_TUNNEL_KEY_IP_SRC,
        dst: Bytes = NFTA_TUNNEL_KEY_IP_DST,
    }
}

crate::attr_struct! {
    /// Outer IPv6 addresses and flow label of a tunnel.
    pub struct TunnelIp6 {
        src: Bytes = NFTA_TUNNEL_KEY_IP6_SRC,
        dst: Bytes = NFTA_TUNNEL_KEY_IP6_DST,
        flowlabel: u32 = NFTA_TUNNEL_KEY_IP6_FLOWLABEL,
    }
}

crate::attr_struct! {
    /// Tunnel metadata to attach to packets (`tunnel` object).
    pub struct TunnelObj {
        id: u32 = NFTA_TUNNEL_KEY_ID,
        ip: TunnelIp = NFTA_TUNNEL_KEY_IP,
        ip6: TunnelIp6 = NFTA_TUNNEL_KEY_IP6,
        sport: u16 = NFTA_TUNNEL_KEY_SPORT,
        dport: u16 = NFTA_TUNNEL_KEY_DPORT,
        flags: u32 = NFTA_TUNNEL_KEY_FLAGS,
        tos: u8 = NFTA_TUNNEL_KEY_TOS,
        ttl: u8 = NFTA_TUNNEL_KEY_TTL,
        opts: TunnelOpts = NFTA_TUNNEL_KEY_OPTS,
    }
}

crate::attr_struct! {
    /// vxlan options: group-based policy id.
    pub struct TunnelVxlan {
        gbp: u32 = NFTA_TUNNEL_KEY_VXLAN_GBP,
    }
}

crate::attr_struct! {
    /// erspan options: version 1 uses `index`, version 2 `hwid` / `dir`.
    pub struct TunnelErspan {
        version: u32 = NFTA_TUNNEL_KEY_ERSPAN_VERSION,
        v1_index: u32 = NFTA_TUNNEL_KEY_ERSPAN_V1_INDEX,
        v2_hwid: u8 = NFTA_TUNNEL_KEY_ERSPAN_V2_HWID,
        v2_dir: u8 = NFTA_TUNNEL_KEY_ERSPAN_V2_DIR,
    }
}

crate::attr_struct! {
    /// One geneve option (class, type, data).
    pub struct TunnelGeneve {
        class: u16 = NFTA_TUNNEL_KEY_GENEVE_CLASS,
        opt_type: u8 = NFTA_TUNNEL_KEY_GENEVE_TYPE,
        data: Bytes = NFTA_TUNNEL_KEY_GENEVE_DATA,
    }
}

/// A tunnel's options: one vxlan or erspan nest, or any number of geneve
/// option nests (the kernel takes one kind per tunnel).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TunnelOpts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<TunnelVxlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erspan: Option<TunnelErspan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub geneve: Vec<TunnelGeneve>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

impl AttrValue for TunnelOpts {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.nest(ty, |w| {
            if let Some(v) = &self.vxlan {
                v.encode(NFTA_TUNNEL_KEY_OPTS_VXLAN, w);
            }
            if let Some(e) = &self.erspan {
                e.encode(NFTA_TUNNEL_KEY_OPTS_ERSPAN, w);
            }
            // The kernel refuses geneve nests without NLA_F_NESTED, yet dumps
            // them without it: we write what it accepts.
            for g in &self.geneve {
                g.encode(NFTA_TUNNEL_KEY_OPTS_GENEVE | NLA_F_NESTED, w);
            }
            self.unknown.iter().for_each(|r| r.encode(w));
        });
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        let mut out = TunnelOpts::default();
        for a in a.nested() {
            let a = a?;
            match a.kind() {
                NFTA_TUNNEL_KEY_OPTS_VXLAN => out.vxlan = Some(AttrValue::decode(&a)?),
                NFTA_TUNNEL_KEY_OPTS_ERSPAN => out.erspan = Some(AttrValue::decode(&a)?),
                NFTA_TUNNEL_KEY_OPTS_GENEVE => out.geneve.push(AttrValue::decode(&a)?),
                _ => out.unknown.push(RawAttr::from_attr(&a)),
            }
        }
        Ok(out)
    }
}

/// The attributes of a named object, by its type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectData {
    Counter(Counter),
    Quota(Quota),
    Limit(Limit),
    Connlimit(Connlimit),
    CtHelper(CtHelper),
    CtTimeout(CtTimeout),
    CtExpect(CtExpect),
    Synproxy(Synproxy),
    Secmark(Secmark),
    Tunnel(Box<TunnelObj>),
    /// Any object type not decoded here, kept as its raw attributes.
    Raw(Vec<RawAttr>),
    /// An object whose data nest could not be split into attributes.
    Bytes(Bytes),
}

impl ObjectData {
    /// Decodes the `NFTA_OBJ_DATA` attributes of an object of `obj_type`
    /// (`NFT_OBJECT_*`); unknown types are kept raw.
    pub fn decode(obj_type: u32, attrs: Attrs<'_>) -> Result<Self, DecodeError> {
        Ok(match obj_type {
            NFT_OBJECT_COUNTER => ObjectData::Counter(Counter::decode_attrs(attrs)?),
            NFT_OBJECT_QUOTA => ObjectData::Quota(Quota::decode_attrs(attrs)?),
            NFT_OBJECT_LIMIT => ObjectData::Limit(Limit::decode_attrs(attrs)?),
            NFT_OBJECT_CONNLIMIT => ObjectData::Connlimit(Connlimit::decode_attrs(attrs)?),
            NFT_OBJECT_CT_HELPER => ObjectData::CtHelper(CtHelper::decode_attrs(attrs)?),
            NFT_OBJECT_CT_TIMEOUT => ObjectData::CtTimeout(CtTimeout::decode_attrs(attrs)?),
            NFT_OBJECT_CT_EXPECT => ObjectData::CtExpect(CtExpect::decode_attrs(attrs)?),
            NFT_OBJECT_SYNPROXY => ObjectData::Synproxy(Synproxy::decode_attrs(attrs)?),
            NFT_OBJECT_SECMARK => ObjectData::Secmark(Secmark::decode_attrs(attrs)?),
            NFT_OBJECT_TUNNEL => ObjectData::Tunnel(Box::new(TunnelObj::decode_attrs(attrs)?)),
            _ => {
                let bytes = attrs.rest();
                match attrs
                    .map(|a| a.map(|a| RawAttr::from_attr(&a)))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(raw) => ObjectData::Raw(raw),
                    Err(_) => ObjectData::Bytes(Bytes::from(bytes)),
                }
            }
        })
    }

    /// Writes the attributes (not the enclosing `NFTA_OBJ_DATA` nest).
    pub fn encode_attrs(&self, w: &mut Writer) {
        match self {
            ObjectData::Counter(o) => o.encode_attrs(w),
            ObjectData::Quota(o) => o.encode_attrs(w),
            ObjectData::Limit(o) => o.encode_attrs(w),
            ObjectData::Connlimit(o) => o.encode_attrs(w),
            ObjectData::CtHelper(o) => o.encode_attrs(w),
            ObjectData::CtTimeout(o) => o.encode_attrs(w),
            ObjectData::CtExpect(o) => o.encode_attrs(w),
            ObjectData::Synproxy(o) => o.encode_attrs(w),
            ObjectData::Secmark(o) => o.encode_attrs(w),
            ObjectData::Tunnel(o) => o.encode_attrs(w),
            ObjectData::Raw(attrs) => attrs.iter().for_each(|a| a.encode(w)),
            ObjectData::Bytes(b) => w.put_raw(&b.0),
        }
    }

    /// The `NFT_OBJECT_*` type of a typed body (`None` for raw ones).
    pub fn obj_type(&self) -> Option<u32> {
        Some(match self {
            ObjectData::Counter(_) => NFT_OBJECT_COUNTER,
            ObjectData::Quota(_) => NFT_OBJECT_QUOTA,
            ObjectData::Limit(_) => NFT_OBJECT_LIMIT,
            ObjectData::Connlimit(_) => NFT_OBJECT_CONNLIMIT,
            ObjectData::CtHelper(_) => NFT_OBJECT_CT_HELPER,
            ObjectData::CtTimeout(_) => NFT_OBJECT_CT_TIMEOUT,
            ObjectData::CtExpect(_) => NFT_OBJECT_CT_EXPECT,
            ObjectData::Synproxy(_) => NFT_OBJECT_SYNPROXY,
            ObjectData::Secmark(_) => NFT_OBJECT_SECMARK,
            ObjectData::Tunnel(_) => NFT_OBJECT_TUNNEL,
            ObjectData::Raw(_) | ObjectData::Bytes(_) => return None,
        })
    }

    /// Zeroes runtime state (counter values, quota consumed) so bodies
    /// compare on configuration alone.
    pub fn clear_state(&mut self) {
        match self {
            ObjectData::Counter(c) => c.clear_state(),
            ObjectData::Quota(q) => q.clear_state(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(ty: u32, o: &ObjectData) {
        let mut w = Writer::new();
        o.encode_attrs(&mut w);
        let back = ObjectData::decode(ty, Attrs::new(w.as_bytes())).unwrap();
        assert_eq!(&back, o);
        let mut again = Writer::new();
        back.encode_attrs(&mut again);
        assert_eq!(again.as_bytes(), w.as_bytes());
    }

    #[test]
    fn secmark_and_unknown_types_roundtrip() {
        let s = ObjectData::Secmark(Secmark {
            ctx: Some("system_u:object_r:ssh_server_packet_t:s0".into()),
            ..Default::default()
        });
        roundtrip(NFT_OBJECT_SECMARK, &s);
        assert_eq!(s.obj_type(), Some(NFT_OBJECT_SECMARK));
        let raw = ObjectData::Raw(vec![RawAttr {
            ty: 1,
            data: Bytes::from(vec![0, 0, 0, 9]),
        }]);
        roundtrip(99, &raw);
        assert_eq!(raw.obj_type(), None);
        // A body that is not attributes at all is kept as bytes.
        let odd = ObjectData::decode(99, Attrs::new(&[1, 2, 3])).unwrap();
        assert_eq!(odd, ObjectData::Bytes(Bytes::from(vec![1, 2, 3])));
    }

    #[test]
    fn clear_state_zeroes_counter_and_quota_usage() {
        let mut q = ObjectData::Quota(Quota {
            bytes: Some(100),
            consumed: Some(40),
            flags: Some(0),
            ..Default::default()
        });
        q.clear_state();
        assert!(
            matches!(&q, ObjectData::Quota(q) if q.consumed == Some(0) && q.bytes == Some(100))
        );
        let mut c = ObjectData::Counter(Counter {
            bytes: Some(5),
            packets: Some(1),
            ..Default::default()
        });
        c.clear_state();
        assert!(matches!(&c, ObjectData::Counter(c) if c.bytes == Some(0) && c.packets == Some(0)));
    }
}
