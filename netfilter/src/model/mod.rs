//! A ruleset as plain values: tables → chains → ordered rules, plus sets
//! and maps with their elements, named objects and flowtables.
//!
//! The kernel's answer decodes into these same types, so a pulled value
//! and a built one compare with `==`. Kernel-assigned facts (handles, the
//! owner's port id) are kept for information and ignored when pushing.

use serde::{Deserialize, Serialize};

use crate::expr::{Bytes, Data, Expr, RawAttr};
use crate::sys::*;

mod shared;
pub use shared::SharedVec;

crate::kernel_enum! {
    /// Address family of a table (`NFPROTO_*`).
    pub enum Family: u8 {
        Inet = NFPROTO_INET,
        Ip = NFPROTO_IPV4,
        Arp = NFPROTO_ARP,
        Netdev = NFPROTO_NETDEV,
        Bridge = NFPROTO_BRIDGE,
        Ip6 = NFPROTO_IPV6,
    }
}

impl Family {
    /// Every family a table can have.
    pub const ALL: [Family; 6] = [
        Family::Inet,
        Family::Ip,
        Family::Ip6,
        Family::Arp,
        Family::Bridge,
        Family::Netdev,
    ];

    /// nft's name for the family.
    pub fn name(self) -> &'static str {
        family_name(self.into())
    }

    /// The family nft calls `name`.
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A whole ruleset, or the part of it that names some tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruleset {
    #[serde(default)]
    pub tables: Vec<Table>,
}

impl Ruleset {
    /// Forgets what only the kernel knows or changes by itself: handles,
    /// use counts, the owner's port id, elements' time to expiry, and
    /// runtime state in expressions and objects (counter values, quota
    /// consumed, ...). Two namespaces holding the same configuration
    /// compare equal after this.
    pub fn clear_kernel_state(&mut self) {
        use crate::expr::clear_state_all;
        for t in &mut self.tables {
            (t.handle, t.use_count, t.owner) = (None, None, None);
            for c in &mut t.chains {
                (c.handle, c.use_count) = (None, None);
                for r in &mut c.rules {
                    r.handle = None;
                    clear_state_all(&mut r.exprs);
                    r.sets.iter_mut().for_each(Set::clear_kernel_state);
                }
            }
            t.sets.iter_mut().for_each(Set::clear_kernel_state);
            for o in &mut t.objects {
                (o.handle, o.use_count) = (None, None);
                o.data.clear_state();
            }
            for f in &mut t.flowtables {
                (f.handle, f.use_count) = (None, None);
            }
        }
    }
}

/// Userdata TLV types nft uses for comments (type 0 for tables, chains,
/// rules, objects and elements; sets use 7).
pub const UDATA_COMMENT: u8 = 0;
pub const UDATA_SET_COMMENT: u8 = 7;

/// nft's userdata: a list of one-byte-type, one-byte-length values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Userdata(pub Bytes);

impl Userdata {
    /// Userdata holding one comment TLV of type `ty` (the NUL counted, as nft does).
    pub fn with_comment(ty: u8, comment: &str) -> Self {
        let mut v = Vec::with_capacity(comment.len() + 3);
        v.push(ty);
        v.push((comment.len() + 1).min(255) as u8);
        v.extend_from_slice(&comment.as_bytes()[..comment.len().min(254)]);
        v.push(0);
        Userdata(Bytes::from(v))
    }
    /// Iterates the (type, value) pairs; stops at a malformed one.
    pub fn tlvs(&self) -> impl Iterator<Item = (u8, &[u8])> {
        crate::proto::udata::tlvs(&self.0 .0)
    }
    /// The comment stored under TLV type `ty`, without its NUL.
    pub fn comment(&self, ty: u8) -> Option<&str> {
        let (_, v) = self.tlvs().find(|(t, _)| *t == ty)?;
        std::str::from_utf8(v.strip_suffix(&[0]).unwrap_or(v)).ok()
    }
}

/// A table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub family: Family,
    pub name: String,
    /// `NFT_TABLE_F_*`: dormant 0x1, owner 0x2, persist 0x4.
    #[serde(default)]
    pub flags: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userdata: Option<Userdata>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<Chain>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<Set>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<Object>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flowtables: Vec<Flowtable>,
    /// Kernel-assigned; ignored when pushing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// Number of references the kernel counts (`NFTA_*_USE`); kernel's, never sent.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_count: Option<u32>,
    /// Netlink port id of the owning socket, for owned tables (kernel's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

impl Table {
    pub fn new(family: Family, name: impl Into<String>) -> Self {
        Table {
            family,
            name: name.into(),
            flags: 0,
            userdata: None,
            chains: Vec::new(),
            sets: Vec::new(),
            objects: Vec::new(),
            flowtables: Vec::new(),
            handle: None,
            use_count: None,
            owner: None,
            unknown: Vec::new(),
        }
    }
    pub fn comment(&self) -> Option<&str> {
        self.userdata.as_ref()?.comment(UDATA_COMMENT)
    }
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }
}

/// Where a base chain attaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// `NF_INET_*` / `NF_NETDEV_*` hook number.
    pub num: u32,
    pub priority: i32,
    /// Devices (netdev family, and inet ingress).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// True when the kernel reported the device list with
    /// `NFTA_HOOK_DEVS` rather than a single `NFTA_HOOK_DEV`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub device_list: bool,
}

/// A chain: regular, or a base chain when `hook` is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Hook>,
    /// `filter`, `nat` or `route` (base chains).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    pub chain_type: Option<String>,
    /// `NF_ACCEPT` (1) or `NF_DROP` (0) (base chains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<u32>,
    /// `NFT_CHAIN_*` flags as the kernel reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userdata: Option<Userdata>,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// Number of references the kernel counts (`NFTA_*_USE`); kernel's, never sent.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

impl Chain {
    pub fn new(name: impl Into<String>) -> Self {
        Chain {
            name: name.into(),
            hook: None,
            chain_type: None,
            policy: None,
            flags: None,
            userdata: None,
            rules: Rules::default(),
            handle: None,
            use_count: None,
            unknown: Vec::new(),
        }
    }
    pub fn comment(&self) -> Option<&str> {
        self.userdata.as_ref()?.comment(UDATA_COMMENT)
    }
}

/// A chain's rules: shared by clones until one of them changes (see
/// [`SharedVec`]). A diff tells a rule list that is still the very
/// allocation it last pushed ([`SharedVec::same`]) without comparing a
/// single rule: the reconciler's one-rule change costs the changed chain,
/// not the ruleset.
pub type Rules = SharedVec<Rule>;

/// A rule's expressions: shared by clones, so the rules a reconciler adds
/// and then holds as the kernel's state share them with the desired value
/// (one copy for every pod given the same ruleset), and a diff recognises
/// an unchanged rule by its allocation.
pub type Exprs = SharedVec<Expr>;

/// A set's elements: shared by clones (see [`SharedVec`]), so every pod
/// given one compiled value holds one list, a reconciler's known state
/// keeps the very list it pushed, and a diff tells an unchanged list by its
/// allocation and takes the delta between two lists it has seen once for
/// all the namespaces that make the same change.
pub type Elements = SharedVec<Element>;

/// A rule: expressions evaluated in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub exprs: Exprs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userdata: Option<Userdata>,
    /// Anonymous sets and maps this rule's expressions refer to (by the
    /// kernel's `__set%d` / `__map%d` names); created with the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<Set>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

impl Rule {
    pub fn new(exprs: Vec<Expr>) -> Self {
        Rule {
            exprs: exprs.into(),
            userdata: None,
            sets: Vec::new(),
            handle: None,
            unknown: Vec::new(),
        }
    }
    pub fn comment(&self) -> Option<&str> {
        self.userdata.as_ref()?.comment(UDATA_COMMENT)
    }
}

/// Size hints and concatenation layout (`NFTA_SET_DESC`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SetDesc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Byte length of each field of a concatenated key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concat: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

/// A set or a map (named, or anonymous inside a rule).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Set {
    pub name: String,
    /// `NFT_SET_*`: anonymous, constant, interval, map, timeout, eval, object, concat, expr.
    #[serde(default)]
    pub flags: u32,
    pub key_type: u32,
    pub key_len: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_len: Option<u32>,
    /// For object maps: `NFT_OBJECT_*` of the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obj_type: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<SetDesc>,
    /// Default element timeout, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Garbage collection interval, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc_interval: Option<u32>,
    /// nft's userdata: key/data byte order, `typeof` expressions, comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userdata: Option<Userdata>,
    /// Expressions attached to every element (`counter`, `limit`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exprs: Vec<Expr>,
    #[serde(default)]
    pub elements: Elements,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

impl Set {
    /// A set of `key_len`-byte keys of nft type `key_type`, without elements.
    pub fn new(name: impl Into<String>, key_type: u32, key_len: u32) -> Self {
        Set {
            name: name.into(),
            flags: 0,
            key_type,
            key_len,
            data_type: None,
            data_len: None,
            obj_type: None,
            policy: None,
            desc: None,
            timeout: None,
            gc_interval: None,
            userdata: None,
            exprs: Vec::new(),
            elements: Elements::default(),
            handle: None,
            unknown: Vec::new(),
        }
    }

    /// See [`Ruleset::clear_kernel_state`].
    pub fn clear_kernel_state(&mut self) {
        self.handle = None;
        crate::expr::clear_state_all(&mut self.exprs);
        for e in &mut self.elements {
            e.expiration = None;
            crate::expr::clear_state_all(&mut e.exprs);
        }
    }
    pub fn is_anonymous(&self) -> bool {
        self.flags & NFT_SET_ANONYMOUS != 0
    }
    pub fn is_map(&self) -> bool {
        self.flags & NFT_SET_MAP != 0
    }
    pub fn is_interval(&self) -> bool {
        self.flags & NFT_SET_INTERVAL != 0
    }
    /// How many fields the key has (a concatenation's parts, else 1).
    pub fn field_count(&self) -> usize {
        match self.desc.as_ref().map(|d| d.concat.len()) {
            Some(n) if n > 1 => n,
            _ => crate::proto::datatype::concat_len(self.key_type),
        }
    }
}

/// One element of a set or map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Element {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Bytes>,
    /// End of an interval (for interval sets using `NFTA_SET_ELEM_KEY_END`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_end: Option<Bytes>,
    /// The mapped value (maps) or verdict (verdict maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    /// Object name (object maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objref: Option<String>,
    /// `NFT_SET_ELEM_INTERVAL_END` (0x1), `NFT_SET_ELEM_CATCHALL` (0x2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Milliseconds left (kernel state; ignored when comparing desired state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userdata: Option<Userdata>,
    /// Per-element expressions (e.g. a counter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exprs: Vec<Expr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

/// A named stateful object: counter, quota, limit, ct helper, ...
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub name: String,
    /// `NFT_OBJECT_*`.
    pub obj_type: u32,
    /// The object's own attributes (`NFTA_OBJ_DATA`), decoded by type.
    pub data: ObjectData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userdata: Option<Userdata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// Number of references the kernel counts (`NFTA_*_USE`); kernel's, never sent.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}

/// The typed body of a named object. Filled in by `crate::object`.
pub use crate::object::ObjectData;

/// A flowtable (modelled; this kernel lacks them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flowtable {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<Hook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// Number of references the kernel counts (`NFTA_*_USE`); kernel's, never sent.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttr>,
}
