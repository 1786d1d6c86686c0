//! How typed fields map to attribute payloads, shared by every expression
//! and object codec: integers big-endian as the kernel wants, strings
//! NUL-terminated, binary as-is, nested expressions and data as nests.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use crate::error::DecodeError;
use crate::netlink::{Attr, Attrs, Writer};

/// Binary data (register values, set keys, userdata), shown as hex.
///
/// Up to [`Bytes::INLINE`] bytes are held inline, in the value itself: the
/// addresses, ports and marks rules compare and set keys hold (and short
/// comments) cost no heap block, so a ruleset is smaller and a diff reads
/// one place per rule instead of one per value. The size is that of a `Vec`.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub SmallVec<[u8; Bytes::INLINE]>);

impl Bytes {
    /// Bytes held without a heap block (an IPv6 address).
    pub const INLINE: usize = 16;

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("0x")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        // `from_vec` keeps a short vector's spare capacity on the heap.
        if v.len() <= Bytes::INLINE {
            Bytes(SmallVec::from_slice(&v))
        } else {
            Bytes(SmallVec::from_vec(v))
        }
    }
}
impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(SmallVec::from_slice(v))
    }
}
impl<const N: usize> From<[u8; N]> for Bytes {
    fn from(v: [u8; N]) -> Self {
        Bytes(SmallVec::from_slice(&v))
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(2 + self.0.len() * 2);
        out.push_str("0x");
        for b in &self.0 {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let hex = s.strip_prefix("0x").unwrap_or(&s);
        if hex.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect::<Result<SmallVec<_>, _>>()
            .map(Bytes)
    }
}

/// An attribute this code does not know, kept verbatim (type with its
/// flags, payload) and sent back unchanged: a newer kernel never makes a
/// pull lossy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawAttr {
    #[serde(rename = "type")]
    pub ty: u16,
    pub data: Bytes,
}

impl RawAttr {
    pub fn from_attr(a: &Attr<'_>) -> Self {
        RawAttr {
            ty: a.raw_type(),
            data: Bytes::from(a.payload()),
        }
    }
    pub fn encode(&self, w: &mut Writer) {
        w.put(self.ty, &self.data.0);
    }
}

/// A typed field stored in one attribute.
pub trait AttrValue: Sized {
    fn encode(&self, ty: u16, w: &mut Writer);
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError>;
}

impl AttrValue for u8 {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.put_u8(ty, *self)
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        a.u8()
    }
}
impl AttrValue for u16 {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.put_u16_be(ty, *self)
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        a.u16_be()
    }
}
impl AttrValue for u32 {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.put_u32_be(ty, *self)
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        a.u32_be()
    }
}
impl AttrValue for i32 {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.put_u32_be(ty, *self as u32)
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        a.u32_be().map(|v| v as i32)
    }
}
impl AttrValue for u64 {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.put_u64_be(ty, *self)
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        a.u64_be()
    }
}
impl AttrValue for String {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.put_str(ty, self)
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        a.str().map(str::to_owned)
    }
}
impl AttrValue for Bytes {
    fn encode(&self, ty: u16, w: &mut Writer) {
        w.put(ty, &self.0)
    }
    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        Ok(Bytes::from(a.payload()))
    }
}

/// Reads all attributes of a nest, handing each to `f`; stops at the first
/// malformed one.
pub fn for_each_attr<'a>(
    attrs: Attrs<'a>,
    mut f: impl FnMut(Attr<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    for a in attrs {
        f(a?)?;
    }
    Ok(())
}

/// Defines a kernel enumeration once, with conversions both ways; numbers
/// this code does not know decode to `Unknown(n)` instead of failing.
#[macro_export]
macro_rules! kernel_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this code does not know.
            Unknown($repr),
        }

        impl From<$repr> for $name {
            fn from(v: $repr) -> Self {
                #[allow(non_upper_case_globals, unreachable_patterns)]
                match v {
                    $( x if x == ($value) as $repr => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                match v {
                    $( $name::$variant => ($value) as $repr, )+
                    $name::Unknown(n) => n,
                }
            }
        }

        impl $crate::expr::AttrValue for $name {
            fn encode(&self, ty: u16, w: &mut $crate::netlink::Writer) {
                <$repr as $crate::expr::AttrValue>::encode(&(*self).into(), ty, w)
            }
            fn decode(a: &$crate::netlink::Attr<'_>) -> Result<Self, $crate::error::DecodeError> {
                <$repr as $crate::expr::AttrValue>::decode(a).map(Into::into)
            }
        }
    };
}

/// Defines a struct whose fields are optional attributes of one nest, in
/// the order the kernel dumps them, with its encoder and decoder. Unknown
/// attributes land in `unknown` and are written back after the known ones.
///
/// ```ignore
/// attr_struct! {
///     /// Doc.
///     pub struct Counter {
///         bytes: u64 = NFTA_COUNTER_BYTES,
///         packets: u64 = NFTA_COUNTER_PACKETS,
///     }
/// }
/// ```
#[macro_export]
macro_rules! attr_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $attr:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Attributes this code does not know, kept verbatim.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            pub unknown: Vec<$crate::expr::RawAttr>,
        }

        impl $name {
            /// Writes the attributes (not the enclosing nest).
            pub fn encode_attrs(&self, w: &mut $crate::netlink::Writer) {
                $( if let Some(v) = &self.$field {
                    $crate::expr::AttrValue::encode(v, ($attr) as u16, w);
                } )*
                for raw in &self.unknown {
                    raw.encode(w);
                }
            }

            /// Reads the attributes of a nest.
            pub fn decode_attrs(attrs: $crate::netlink::Attrs<'_>) -> Result<Self, $crate::error::DecodeError> {
                let mut out = Self::default();
                for a in attrs {
                    let a = a?;
                    #[allow(unreachable_patterns)]
                    match a.kind() {
                        $( k if k == ($attr) as u16 => out.$field = Some($crate::expr::AttrValue::decode(&a)?), )*
                        _ => out.unknown.push($crate::expr::RawAttr::from_attr(&a)),
                    }
                }
                Ok(out)
            }
        }

        impl $crate::expr::AttrValue for $name {
            fn encode(&self, ty: u16, w: &mut $crate::netlink::Writer) {
                let start = w.begin_nest(ty);
                self.encode_attrs(w);
                w.end_nest(start);
            }
            fn decode(a: &$crate::netlink::Attr<'_>) -> Result<Self, $crate::error::DecodeError> {
                Self::decode_attrs(a.nested())
            }
        }
    };
}
