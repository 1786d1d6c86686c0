//! Netlink attributes (type-length-value): a zero-copy reader and an
//! appending writer that builds whole messages (and whole batches) in one
//! contiguous buffer, so encoding a ruleset allocates once, not per object.

use crate::error::DecodeError;

pub const NLA_HDRLEN: usize = 4;
pub const NLA_F_NESTED: u16 = 1 << 15;
pub const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;

/// Rounds up to the 4-byte alignment netlink uses for headers and attributes.
#[inline]
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One attribute, borrowed from a received buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    raw_type: u16,
    payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// Attribute type without the nested / byte-order flags.
    #[inline]
    pub fn kind(&self) -> u16 {
        self.raw_type & NLA_TYPE_MASK
    }
    /// Attribute type exactly as sent, flags included.
    #[inline]
    pub fn raw_type(&self) -> u16 {
        self.raw_type
    }
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
    pub fn u8(&self) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>()?[0])
    }
    pub fn u16_be(&self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.fixed::<2>()?))
    }
    pub fn u32_be(&self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.fixed::<4>()?))
    }
    pub fn u64_be(&self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.fixed::<8>()?))
    }
    pub fn u32_ne(&self) -> Result<u32, DecodeError> {
        Ok(u32::from_ne_bytes(self.fixed::<4>()?))
    }
    /// A NUL-terminated string (the NUL is required, as the kernel sends it).
    pub fn str(&self) -> Result<&'a str, DecodeError> {
        let bytes = match self.payload.split_last() {
            Some((0, rest)) => rest,
            _ => self.payload,
        };
        std::str::from_utf8(bytes).map_err(|_| DecodeError::BadString { attr: self.kind() })
    }
    /// The attributes nested inside this one.
    #[inline]
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }
    fn fixed<const N: usize>(&self) -> Result<[u8; N], DecodeError> {
        self.payload.try_into().map_err(|_| DecodeError::BadLength {
            attr: self.kind(),
            len: self.payload.len(),
            expected: N,
        })
    }
}

/// Iterator over consecutive attributes; yields an error (once) on a
/// truncated or overlong attribute instead of reading out of bounds.
#[derive(Clone, Debug)]
pub struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Attrs<'a> {
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    /// Remaining undecoded bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        if self.buf.len() < NLA_HDRLEN {
            let have = self.buf.len();
            self.buf = &[];
            return Some(Err(DecodeError::Truncated {
                what: "attribute header",
                need: NLA_HDRLEN,
                have,
            }));
        }
        let len = u16::from_ne_bytes([self.buf[0], self.buf[1]]) as usize;
        let raw_type = u16::from_ne_bytes([self.buf[2], self.buf[3]]);
        if len < NLA_HDRLEN || len > self.buf.len() {
            let have = self.buf.len();
            self.buf = &[];
            return Some(Err(DecodeError::Truncated {
                what: "attribute",
                need: len.max(NLA_HDRLEN),
                have,
            }));
        }
        let payload = &self.buf[NLA_HDRLEN..len];
        self.buf = self.buf.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(Attr { raw_type, payload }))
    }
}

/// An appending netlink writer: messages, attributes and nests.
///
/// Lengths are patched in when a message or nest is closed, so callers
/// never compute sizes up front.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn clear(&mut self) {
        self.buf.clear()
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    #[cfg_attr(not(feature = "kernel"), allow(dead_code))] // used by the kernel's side only
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Opens an nfnetlink message (nlmsghdr + nfgenmsg); close it with
    /// [`Writer::end_msg`]. Returns the message's start offset.
    pub fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    pub fn end_msg(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Appends one attribute with a raw payload (padding added).
    #[inline]
    pub fn put(&mut self, ty: u16, payload: &[u8]) {
        let len = NLA_HDRLEN + payload.len();
        debug_assert!(len <= u16::MAX as usize, "attribute too long");
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }
    #[inline]
    pub fn put_u8(&mut self, ty: u16, v: u8) {
        self.put(ty, &[v])
    }
    #[inline]
    pub fn put_u16_be(&mut self, ty: u16, v: u16) {
        self.put(ty, &v.to_be_bytes())
    }
    #[inline]
    pub fn put_u32_be(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes())
    }
    #[inline]
    pub fn put_u64_be(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes())
    }
    /// A string attribute, NUL-terminated as the kernel expects.
    pub fn put_str(&mut self, ty: u16, s: &str) {
        let len = NLA_HDRLEN + s.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
    }
    /// Opens a nested attribute; close it with [`Writer::end_nest`].
    /// `ty` is written as given: pass `NLA_F_NESTED` in it where wanted.
    pub fn begin_nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        start
    }
    pub fn end_nest(&mut self, start: usize) {
        let len = self.buf.len() - start;
        debug_assert!(len <= u16::MAX as usize, "nested attribute too long");
        self.buf[start..start + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    }
    /// Writes `f`'s attributes inside a nest of type `ty`.
    #[inline]
    pub fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Self)) {
        let start = self.begin_nest(ty);
        f(self);
        self.end_nest(start);
    }
    /// Appends bytes already in attribute form (e.g. attributes kept raw).
    pub fn put_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.pad();
    }
    #[inline]
    fn pad(&mut self) {
        let n = align4(self.buf.len()) - self.buf.len();
        self.buf.extend_from_slice(&[0u8; 3][..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back_attributes() {
        let mut w = Writer::new();
        w.put_str(1, "filter");
        w.put_u32_be(2, 0x1234_5678);
        w.nest(3 | NLA_F_NESTED, |w| w.put_u64_be(1, 7));
        assert_eq!(w.len() % 4, 0);
        let got: Vec<_> = Attrs::new(w.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].str().unwrap(), "filter");
        assert_eq!(got[0].payload(), b"filter\0");
        assert_eq!(got[1].u32_be().unwrap(), 0x1234_5678);
        assert_eq!(got[2].kind(), 3);
        assert_eq!(got[2].raw_type(), 3 | NLA_F_NESTED);
        let inner: Vec<_> = got[2].nested().collect::<Result<_, _>>().unwrap();
        assert_eq!(inner[0].u64_be().unwrap(), 7);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut w = Writer::new();
        w.put_str(1, "abcdef");
        let bytes = w.as_bytes();
        for cut in 0..bytes.len() {
            for a in Attrs::new(&bytes[..cut]).flatten() {
                let _ = a.str();
            }
        }
        let mut bad = bytes.to_vec();
        bad[0] = 200; // length beyond the buffer
        let first = Attrs::new(&bad).next().unwrap();
        assert!(matches!(first, Err(DecodeError::Truncated { .. })));
        assert!(Attr {
            raw_type: 1,
            payload: &[1, 2]
        }
        .u32_be()
        .is_err());
    }
}
