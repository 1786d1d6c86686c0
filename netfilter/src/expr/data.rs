//! `nft_data`: a register value or a verdict, as immediates, comparisons,
//! ranges and set elements carry it.

use serde::{Deserialize, Serialize};

use super::value::{AttrValue, Bytes, RawAttr};
use crate::error::DecodeError;
use crate::netlink::{Attr, Writer};
use crate::sys::*;

/// A verdict: what happens to the packet next.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Break,
    Return,
    Jump(String),
    Goto(String),
    /// Anything else (queue verdicts, chain ids, unknown attributes), as
    /// sent. Boxed: rare, and it would double the size of every [`Data`].
    Other(Box<OtherVerdict>),
}

/// A verdict of a form [`Verdict`] does not name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OtherVerdict {
    pub code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

impl Verdict {
    /// The kernel's verdict code.
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Accept => NF_ACCEPT as i32,
            Verdict::Drop => NF_DROP as i32,
            Verdict::Continue => NFT_CONTINUE,
            Verdict::Break => NFT_BREAK,
            Verdict::Return => NFT_RETURN,
            Verdict::Jump(_) => NFT_JUMP,
            Verdict::Goto(_) => NFT_GOTO,
            Verdict::Other(o) => o.code,
        }
    }
    /// The chain a jump or goto targets.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            Verdict::Other(o) => o.chain.as_deref(),
            _ => None,
        }
    }
    pub fn chain_mut(&mut self) -> Option<&mut String> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            Verdict::Other(o) => o.chain.as_mut(),
            _ => None,
        }
    }
}

impl AttrValue for Verdict {
    fn encode(&self, ty: u16, w: &mut Writer) {
        let start = w.begin_nest(ty);
        w.put_u32_be(NFTA_VERDICT_CODE, self.code() as u32);
        if let Some(c) = self.chain() {
            w.put_str(NFTA_VERDICT_CHAIN, c);
        }
        if let Verdict::Other(o) = self {
            if let Some(id) = o.chain_id {
                w.put_u32_be(NFTA_VERDICT_CHAIN_ID, id);
            }
            o.unknown.iter().for_each(|r| r.encode(w));
        }
        w.end_nest(start);
    }

    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        let (mut code, mut chain, mut chain_id, mut unknown) = (None, None, None, Vec::new());
        for a in a.nested() {
            let a = a?;
            match a.kind() {
                NFTA_VERDICT_CODE => code = Some(a.u32_be()? as i32),
                NFTA_VERDICT_CHAIN => chain = Some(a.str()?.to_owned()),
                NFTA_VERDICT_CHAIN_ID => chain_id = Some(a.u32_be()?),
                _ => unknown.push(RawAttr::from_attr(&a)),
            }
        }
        let code = code.ok_or(DecodeError::Missing {
            object: "verdict",
            attr: "NFTA_VERDICT_CODE",
        })?;
        let simple = chain_id.is_none() && unknown.is_empty();
        Ok(match (code, chain) {
            (c, None) if simple && c == NF_ACCEPT as i32 => Verdict::Accept,
            (c, None) if simple && c == NF_DROP as i32 => Verdict::Drop,
            (NFT_CONTINUE, None) if simple => Verdict::Continue,
            (NFT_BREAK, None) if simple => Verdict::Break,
            (NFT_RETURN, None) if simple => Verdict::Return,
            (NFT_JUMP, Some(c)) if simple => Verdict::Jump(c),
            (NFT_GOTO, Some(c)) if simple => Verdict::Goto(c),
            (code, chain) => Verdict::Other(Box::new(OtherVerdict {
                code,
                chain,
                chain_id,
                unknown,
            })),
        })
    }
}

/// A register's worth of data, or a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Data {
    Value(Bytes),
    Verdict(Verdict),
    /// A data nest of a form this code does not know, as sent.
    Raw(Vec<RawAttr>),
}

impl Data {
    pub fn value(bytes: impl Into<Bytes>) -> Self {
        Data::Value(bytes.into())
    }
    pub fn as_value(&self) -> Option<&[u8]> {
        match self {
            Data::Value(b) => Some(&b.0),
            _ => None,
        }
    }
    pub fn as_verdict(&self) -> Option<&Verdict> {
        match self {
            Data::Verdict(v) => Some(v),
            _ => None,
        }
    }
}

impl AttrValue for Data {
    fn encode(&self, ty: u16, w: &mut Writer) {
        let start = w.begin_nest(ty);
        match self {
            Data::Value(b) => w.put(NFTA_DATA_VALUE, &b.0),
            Data::Verdict(v) => v.encode(NFTA_DATA_VERDICT, w),
            Data::Raw(attrs) => attrs.iter().for_each(|r| r.encode(w)),
        }
        w.end_nest(start);
    }

    fn decode(a: &Attr<'_>) -> Result<Self, DecodeError> {
        let mut it = a.nested();
        let first = it.next().transpose()?;
        let only = it.next().is_none();
        Ok(match first {
            Some(v) if only && v.kind() == NFTA_DATA_VALUE => Data::Value(Bytes::from(v.payload())),
            Some(v) if only && v.kind() == NFTA_DATA_VERDICT => Data::Verdict(Verdict::decode(&v)?),
            _ => Data::Raw(
                a.nested()
                    .map(|r| r.map(|r| RawAttr::from_attr(&r)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}
