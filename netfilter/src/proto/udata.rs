//! The userdata nft attaches to sets and maps: TLVs of one-byte type and
//! one-byte length, integers in host order. They carry what the kernel
//! does not keep: key/data byte order, the `typeof` expressions a set was
//! declared with, and the comment.

use super::header::{self, Field, Header};
use super::keys::{self, Key};

pub const KEYBYTEORDER: u8 = 0;
pub const DATABYTEORDER: u8 = 1;
pub const MERGE_ELEMENTS: u8 = 2;
pub const KEY_TYPEOF: u8 = 3;
pub const DATA_TYPEOF: u8 = 4;
pub const EXPR: u8 = 5;
pub const DATA_INTERVAL: u8 = 6;
pub const COMMENT: u8 = 7;

/// Element userdata: flags (type 1), of which bit 0 marks a range open
/// at the top (it runs to the largest value, so it has no end element).
pub const ELEM_FLAGS: u8 = 1;
pub const ELEM_F_INTERVAL_OPEN: u32 = 1;

/// Inside a `typeof` TLV: the expression kind, then its nested data.
pub const TYPEOF_EXPR: u8 = 0;
pub const TYPEOF_DATA: u8 = 1;

/// Expression kinds nft records in `typeof` userdata.
pub const EXPR_PAYLOAD: u32 = 7;
pub const EXPR_EXTHDR: u32 = 8;
pub const EXPR_META: u32 = 9;
pub const EXPR_OSF: u32 = 11;
pub const EXPR_CT: u32 = 12;
pub const EXPR_CONCAT: u32 = 13;
pub const EXPR_NUMGEN: u32 = 23;
pub const EXPR_FIB: u32 = 26;
pub const EXPR_XFRM: u32 = 27;

/// One expression of a `typeof` declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeofExpr {
    Payload(&'static Header, &'static Field),
    /// A raw payload (`@ih,32,32`): nft's base (1 ll, 2 nh, 3 th, 4 ih),
    /// bit offset, bit length.
    RawPayload {
        base: u32,
        offset: u32,
        len: u32,
    },
    /// `ipsec in|out [spnum N] KEY`: xfrm key, direction, policy number.
    Xfrm {
        key: u32,
        dir: u32,
        spnum: u32,
    },
    Meta(&'static Key),
    /// ct key and direction (`None`: no direction).
    Ct(&'static Key, Option<u8>),
    /// exthdr kind, type number and field index as nft stores them.
    Exthdr {
        op: u32,
        ty: u32,
        field: u32,
    },
    Osf,
    /// `numgen inc|random mod N offset M`.
    Numgen {
        mode: u32,
        modulus: u32,
        offset: u32,
    },
    Concat(Vec<TypeofExpr>),
    /// `fib KEYS RESULT`: result (`NFT_FIB_RESULT_*`) and key flags.
    Fib {
        result: u32,
        flags: u32,
    },
    /// A kind this code does not know.
    Unknown(u32),
}

/// Iterates TLVs of a userdata blob (stops at a malformed one).
pub fn tlvs(b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let ty = *b.get(i)?;
        let len = *b.get(i + 1)? as usize;
        let v = b.get(i + 2..i + 2 + len)?;
        i += 2 + len;
        Some((ty, v))
    })
}

/// The TLV of type `ty`.
pub fn get(b: &[u8], ty: u8) -> Option<&[u8]> {
    tlvs(b).find(|(t, _)| *t == ty).map(|(_, v)| v)
}

/// A host-order u32 TLV value.
pub fn u32_of(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.try_into().ok()?))
}

fn u32_at(b: &[u8], ty: u8) -> Option<u32> {
    u32_of(get(b, ty)?)
}

/// Decodes a `typeof` TLV value (`KEY_TYPEOF` / `DATA_TYPEOF`).
pub fn decode_typeof(v: &[u8]) -> Option<TypeofExpr> {
    let kind = u32_at(v, TYPEOF_EXPR)?;
    let data = get(v, TYPEOF_DATA).unwrap_or(&[]);
    Some(match kind {
        EXPR_PAYLOAD if u32_at(data, 0) == Some(0) => TypeofExpr::RawPayload {
            base: u32_at(data, 2)?,
            offset: u32_at(data, 3)?,
            len: u32_at(data, 4)?,
        },
        EXPR_XFRM => TypeofExpr::Xfrm {
            key: u32_at(data, 0)?,
            dir: u32_at(data, 1).unwrap_or(0),
            spnum: u32_at(data, 2).unwrap_or(0),
        },
        EXPR_PAYLOAD => {
            let h = header::by_desc_id(u32_at(data, 0)?)?;
            let idx = u32_at(data, 1)?;
            TypeofExpr::Payload(h, h.fields.get(idx.checked_sub(1)? as usize)?)
        }
        EXPR_META => TypeofExpr::Meta(keys::meta_by_key(u32_at(data, 0)?)?),
        EXPR_CT => {
            let dir = u32_at(data, 1).and_then(|d| u8::try_from(d).ok());
            TypeofExpr::Ct(keys::ct_by_key(u32_at(data, 0)?)?, dir)
        }
        EXPR_EXTHDR => TypeofExpr::Exthdr {
            op: u32_at(data, 0)?,
            ty: u32_at(data, 1)?,
            field: u32_at(data, 2)?,
        },
        EXPR_OSF => TypeofExpr::Osf,
        EXPR_FIB => TypeofExpr::Fib {
            result: u32_at(data, 0)?,
            flags: u32_at(data, 1)?,
        },
        EXPR_NUMGEN => TypeofExpr::Numgen {
            mode: u32_at(data, 0)?,
            modulus: u32_at(data, 1)?,
            offset: u32_at(data, 2).unwrap_or(0),
        },
        EXPR_CONCAT => {
            // Members are TLVs numbered 0, 1, ... each a nested typeof.
            let parts = tlvs(data)
                .map(|(_, m)| decode_typeof(m))
                .collect::<Option<Vec<_>>>()?;
            TypeofExpr::Concat(parts)
        }
        other => TypeofExpr::Unknown(other),
    })
}

/// One TLV: type, length, value (values longer than 255 bytes are cut,
/// as the format cannot say more).
pub fn tlv(ty: u8, value: &[u8]) -> Vec<u8> {
    let v = &value[..value.len().min(255)];
    let mut out = Vec::with_capacity(2 + v.len());
    out.push(ty);
    out.push(v.len() as u8);
    out.extend_from_slice(v);
    out
}

fn u32_tlv(ty: u8, v: u32) -> Vec<u8> {
    tlv(ty, &v.to_ne_bytes())
}

/// Encodes a `typeof` expression as nft writes it (the value of a
/// `KEY_TYPEOF` / `DATA_TYPEOF` TLV); [`decode_typeof`] reads it back.
pub fn encode_typeof(t: &TypeofExpr) -> Vec<u8> {
    let (kind, data): (u32, Vec<u8>) = match t {
        TypeofExpr::Payload(h, f) => {
            let mut d = [
                u32_tlv(0, h.desc_id),
                u32_tlv(1, h.field_index(f).unwrap_or(0)),
            ]
            .concat();
            // nft records the bit length of plain integer fields.
            if f.dtype.id == super::datatype::INTEGER.id {
                d.extend(u32_tlv(4, f.len));
            }
            (EXPR_PAYLOAD, d)
        }
        TypeofExpr::RawPayload { base, offset, len } => (
            EXPR_PAYLOAD,
            [
                u32_tlv(0, 0),
                u32_tlv(1, 0),
                u32_tlv(2, *base),
                u32_tlv(3, *offset),
                u32_tlv(4, *len),
            ]
            .concat(),
        ),
        TypeofExpr::Xfrm { key, dir, spnum } => (
            EXPR_XFRM,
            [u32_tlv(0, *key), u32_tlv(1, *dir), u32_tlv(2, *spnum)].concat(),
        ),
        TypeofExpr::Meta(k) => (EXPR_META, u32_tlv(0, k.key)),
        TypeofExpr::Ct(k, dir) => (
            EXPR_CT,
            [
                u32_tlv(0, k.key),
                u32_tlv(1, dir.map_or(u32::MAX, u32::from)),
            ]
            .concat(),
        ),
        TypeofExpr::Exthdr { op, ty, field } => (
            EXPR_EXTHDR,
            [u32_tlv(0, *op), u32_tlv(1, *ty), u32_tlv(2, *field)].concat(),
        ),
        TypeofExpr::Osf => (EXPR_OSF, Vec::new()),
        TypeofExpr::Fib { result, flags } => {
            (EXPR_FIB, [u32_tlv(0, *result), u32_tlv(1, *flags)].concat())
        }
        TypeofExpr::Numgen {
            mode,
            modulus,
            offset,
        } => (
            EXPR_NUMGEN,
            [u32_tlv(0, *mode), u32_tlv(1, *modulus), u32_tlv(2, *offset)].concat(),
        ),
        TypeofExpr::Concat(parts) => (
            EXPR_CONCAT,
            parts
                .iter()
                .enumerate()
                .flat_map(|(i, p)| tlv(i as u8, &encode_typeof(p)))
                .collect(),
        ),
        TypeofExpr::Unknown(k) => (*k, Vec::new()),
    };
    [u32_tlv(TYPEOF_EXPR, kind), tlv(TYPEOF_DATA, &data)].concat()
}

/// A set's userdata as nft writes it: key byte order, data byte order
/// (maps), `typeof` of key and data, comment.
pub fn encode_set(
    key_order: Option<super::ByteOrder>,
    data_order: Option<super::ByteOrder>,
    key_typeof: Option<&TypeofExpr>,
    data_typeof: Option<&TypeofExpr>,
    comment: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(o) = key_order {
        out.extend(u32_tlv(KEYBYTEORDER, o.udata_value()));
    }
    if let Some(o) = data_order {
        out.extend(u32_tlv(DATABYTEORDER, o.udata_value()));
    }
    if let Some(t) = key_typeof {
        out.extend(tlv(KEY_TYPEOF, &encode_typeof(t)));
    }
    if let Some(t) = data_typeof {
        out.extend(tlv(DATA_TYPEOF, &encode_typeof(t)));
    }
    if let Some(c) = comment {
        let mut v = c.as_bytes().to_vec();
        v.push(0);
        out.extend(tlv(COMMENT, &v));
    }
    out
}

/// Key byte order recorded in a set's userdata.
pub fn key_byteorder(b: &[u8]) -> Option<super::ByteOrder> {
    super::ByteOrder::from_udata_value(u32_at(b, KEYBYTEORDER)?)
}

/// Data byte order recorded in a map's userdata.
pub fn data_byteorder(b: &[u8]) -> Option<super::ByteOrder> {
    super::ByteOrder::from_udata_value(u32_at(b, DATABYTEORDER)?)
}

/// The set's comment.
pub fn comment(b: &[u8]) -> Option<&str> {
    let v = get(b, COMMENT)?;
    std::str::from_utf8(v.strip_suffix(&[0]).unwrap_or(v)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn typeof_round_trips_nft_bytes() {
        // Key `typeof` TLV values nft 1.0.6 sent (x86, host order):
        // `tcp dport . ip saddr`, `meta mark`, `ct state`, `osf name`.
        for sample in [
            "00 04 0d 00 00 00 01 2c 00 14 00 04 07 00 00 00 01 0c 00 04 08 00 00 00 01 04 02 00 00 00 \
             01 14 00 04 07 00 00 00 01 0c 00 04 0c 00 00 00 01 04 0b 00 00 00",
            "00 04 09 00 00 00 01 06 00 04 03 00 00 00",
            "00 04 0c 00 00 00 01 0c 00 04 00 00 00 00 01 04 ff ff ff ff",
            "00 04 0b 00 00 00 01 00",
            // `fib daddr type`
            "00 04 1a 00 00 00 01 0c 00 04 03 00 00 00 01 04 02 00 00 00",
        ] {
            let bytes = hex(sample);
            let t = decode_typeof(&bytes).expect("decodes");
            assert_eq!(encode_typeof(&t), bytes, "{t:?}");
        }
        let whole = encode_set(
            Some(crate::proto::ByteOrder::Big),
            None,
            Some(&TypeofExpr::Meta(
                crate::proto::keys::meta_by_name("mark").unwrap(),
            )),
            None,
            Some("hi"),
        );
        assert_eq!(key_byteorder(&whole), Some(crate::proto::ByteOrder::Big));
        assert_eq!(comment(&whole), Some("hi"));
    }

    #[test]
    fn decodes_typeof_as_nft_wrote_it() {
        // `typeof tcp dport . ip saddr; comment "hi"` as nft 1.0.6 sent it.
        let mut ud: Vec<u8> = vec![0, 4];
        ud.extend(0u32.to_ne_bytes());
        let leaf = |desc: u32, field: u32| {
            let mut d = vec![0, 4];
            d.extend(desc.to_ne_bytes());
            d.extend([1, 4]);
            d.extend(field.to_ne_bytes());
            let mut t = vec![0, 4];
            t.extend(EXPR_PAYLOAD.to_ne_bytes());
            t.extend([1, d.len() as u8]);
            t.extend(d);
            t
        };
        let (a, b) = (leaf(8, 2), leaf(12, 11));
        let mut data = vec![0, a.len() as u8];
        data.extend(a);
        data.extend([1, b.len() as u8]);
        data.extend(b);
        let mut top = vec![0, 4];
        top.extend(EXPR_CONCAT.to_ne_bytes());
        top.extend([1, data.len() as u8]);
        top.extend(data);
        ud.extend([KEY_TYPEOF, top.len() as u8]);
        ud.extend(top);
        ud.extend([COMMENT, 3, b'h', b'i', 0]);

        let t = decode_typeof(get(&ud, KEY_TYPEOF).unwrap()).unwrap();
        let TypeofExpr::Concat(parts) = t else {
            panic!("{t:?}")
        };
        assert_eq!(
            parts[0],
            TypeofExpr::Payload(&header::TCP, header::TCP.field("dport").unwrap())
        );
        assert_eq!(
            parts[1],
            TypeofExpr::Payload(&header::IP, header::IP.field("saddr").unwrap())
        );
        assert_eq!(comment(&ud), Some("hi"));
        assert_eq!(key_byteorder(&ud), None);
    }
}
