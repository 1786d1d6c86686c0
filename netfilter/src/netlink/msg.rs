//! Netlink messages as received: header, nfgenmsg, and the kernel's error /
//! acknowledgement messages with their extended-ack TLVs.

use super::attr::{align4, Attrs, NFGENMSG_LEN, NLMSG_HDRLEN};
use crate::error::DecodeError;
use crate::sys;

/// One netlink message, borrowed from a receive buffer.
#[derive(Clone, Copy, Debug)]
pub struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// Everything after the 16-byte netlink header.
    pub payload: &'a [u8],
    /// The whole message, header included (without trailing padding).
    pub bytes: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The nf_tables message number (`NFT_MSG_*`) when this is an
    /// nf_tables message.
    pub fn nft_msg(&self) -> Option<u32> {
        ((self.ty >> 8) as u32 == sys::NFNL_SUBSYS_NFTABLES).then_some((self.ty & 0xff) as u32)
    }
    /// The nfgenmsg's family and the attributes after it.
    pub fn nfgen(&self) -> Result<(u8, Attrs<'a>), DecodeError> {
        if self.payload.len() < NFGENMSG_LEN {
            return Err(DecodeError::Truncated {
                what: "nfgenmsg",
                need: NFGENMSG_LEN,
                have: self.payload.len(),
            });
        }
        Ok((self.payload[0], Attrs::new(&self.payload[NFGENMSG_LEN..])))
    }
    /// The attribute bytes after the nfgenmsg.
    pub fn attr_bytes(&self) -> &'a [u8] {
        self.payload.get(NFGENMSG_LEN..).unwrap_or(&[])
    }
    /// For an NLMSG_ERROR message: the error (0 for an acknowledgement).
    pub fn error(&self) -> Result<Option<KernelError>, DecodeError> {
        if self.ty != sys::NLMSG_ERROR {
            return Ok(None);
        }
        KernelError::parse(self).map(Some)
    }
}

/// Iterator over the messages in one receive buffer.
#[derive(Clone, Debug)]
pub struct Msgs<'a> {
    buf: &'a [u8],
}

impl<'a> Msgs<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl<'a> Iterator for Msgs<'a> {
    type Item = Result<Msg<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let b = self.buf;
        if b.len() < NLMSG_HDRLEN {
            self.buf = &[];
            return Some(Err(DecodeError::Truncated {
                what: "netlink header",
                need: NLMSG_HDRLEN,
                have: b.len(),
            }));
        }
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            self.buf = &[];
            return Some(Err(DecodeError::Truncated {
                what: "netlink message",
                need: len.max(NLMSG_HDRLEN),
                have: b.len(),
            }));
        }
        let msg = Msg {
            ty: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            pid: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
            payload: &b[NLMSG_HDRLEN..len],
            bytes: &b[..len],
        };
        self.buf = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(msg))
    }
}

/// What the kernel said in an NLMSG_ERROR message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    /// Positive errno; 0 means success (a plain acknowledgement).
    pub errno: i32,
    /// Sequence number of the request this answers.
    pub seq: u32,
    /// The kernel's extended-ack text (`NLMSGERR_ATTR_MSG`).
    pub message: Option<String>,
    /// Byte offset of the offending attribute within the request message
    /// (`NLMSGERR_ATTR_OFFS`), counted from the start of its netlink header.
    pub offset: Option<u32>,
    /// Type of a missing attribute (`NLMSGERR_ATTR_MISS_TYPE`).
    pub missing_attr: Option<u16>,
}

impl KernelError {
    fn parse(msg: &Msg<'_>) -> Result<Self, DecodeError> {
        let p = msg.payload;
        if p.len() < 4 + NLMSG_HDRLEN {
            return Err(DecodeError::Truncated {
                what: "nlmsgerr",
                need: 4 + NLMSG_HDRLEN,
                have: p.len(),
            });
        }
        let err = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
        let req_len = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as usize;
        let seq = u32::from_ne_bytes([p[12], p[13], p[14], p[15]]);
        // The request is echoed whole unless capped (NETLINK_CAP_ACK) or an ack.
        let echoed = if msg.flags & sys::NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align4(req_len)
        };
        let mut out = KernelError {
            errno: -err,
            seq,
            message: None,
            offset: None,
            missing_attr: None,
        };
        if msg.flags & sys::NLM_F_ACK_TLVS != 0 {
            let tlvs = p.get(4 + echoed..).unwrap_or(&[]);
            for a in Attrs::new(tlvs) {
                let a = a?;
                match a.kind() {
                    sys::NLMSGERR_ATTR_MSG => out.message = Some(a.str()?.to_owned()),
                    sys::NLMSGERR_ATTR_OFFS => out.offset = Some(a.u32_ne()?),
                    sys::NLMSGERR_ATTR_MISS_TYPE => out.missing_attr = Some(a.u32_ne()? as u16),
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// `strerror` text for the errno.
    pub fn errno_text(&self) -> String {
        std::io::Error::from_raw_os_error(self.errno).to_string()
    }
}
