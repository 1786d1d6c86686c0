//! A patch: operations in an order the kernel takes in one transaction.

use serde::{Deserialize, Serialize};

use crate::model::{Chain, Element, Family, Flowtable, Object, Rule, Set, Table};

/// Where an added rule goes in its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// At the end of the chain.
    Append,
    /// Right after the existing rule with this handle.
    After(u64),
    /// Right before the existing rule with this handle.
    Before(u64),
    /// Right after the rule added by this patch with this id.
    AfterAdded(u32),
}

/// One operation of a patch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Op {
    AddTable {
        table: Table,
    },
    UpdateTable {
        table: Table,
    },
    DeleteTable {
        family: Family,
        name: String,
        /// Why, when the table is added back in the same patch (what it
        /// held is lost).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    AddChain {
        family: Family,
        table: String,
        chain: Chain,
    },
    UpdateChain {
        family: Family,
        table: String,
        chain: Chain,
    },
    /// Deletes every rule of a chain (`flush chain`): a chain about to go
    /// first lets go of the sets, objects and chains its rules use.
    FlushChain {
        family: Family,
        table: String,
        chain: String,
    },
    DeleteChain {
        family: Family,
        table: String,
        name: String,
        /// Why, when the chain is added back in the same patch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    AddSet {
        family: Family,
        table: String,
        set: Set,
    },
    DeleteSet {
        family: Family,
        table: String,
        name: String,
        /// Why, when the set is added back in the same patch (its elements,
        /// and their counters and timeouts, start over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    AddElements {
        family: Family,
        table: String,
        set: String,
        elements: Vec<Element>,
    },
    DeleteElements {
        family: Family,
        table: String,
        set: String,
        elements: Vec<Element>,
        /// Why, when the elements are added back in the same patch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    AddObject {
        family: Family,
        table: String,
        object: Object,
    },
    /// Changes an object's parameters in place, keeping its state (the
    /// kernel updates quotas and synproxy objects so; a quota keeps what it
    /// has used).
    UpdateObject {
        family: Family,
        table: String,
        object: Object,
    },
    DeleteObject {
        family: Family,
        table: String,
        name: String,
        obj_type: u32,
        /// Why, when the object is added back in the same patch (its
        /// counter or quota state starts over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    AddFlowtable {
        family: Family,
        table: String,
        flowtable: Flowtable,
    },
    DeleteFlowtable {
        family: Family,
        table: String,
        name: String,
        /// Why, when the flowtable is added back in the same patch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
    /// `id` is this rule's batch-local id (`NFTA_RULE_ID`), so later
    /// additions can be positioned after it. `bound`: the chains the rule
    /// binds (`jump { … }`, and those their rules bind, innermost first),
    /// with their rules — created with it, gone with it.
    AddRule {
        family: Family,
        table: String,
        chain: String,
        rule: Rule,
        position: Position,
        id: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bound: Vec<Chain>,
    },
    DeleteRule {
        family: Family,
        table: String,
        chain: String,
        handle: u64,
        /// Why, when the same rule is added back in the same patch (its
        /// counters start over).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recreate: Option<String>,
    },
}

impl Op {
    /// The table this operation is about.
    pub fn table(&self) -> (Family, &str) {
        match self {
            Op::AddTable { table } | Op::UpdateTable { table } => (table.family, &table.name),
            Op::DeleteTable { family, name, .. } => (*family, name),
            Op::AddChain { family, table, .. }
            | Op::UpdateChain { family, table, .. }
            | Op::FlushChain { family, table, .. }
            | Op::DeleteChain { family, table, .. }
            | Op::AddSet { family, table, .. }
            | Op::DeleteSet { family, table, .. }
            | Op::AddElements { family, table, .. }
            | Op::DeleteElements { family, table, .. }
            | Op::AddObject { family, table, .. }
            | Op::UpdateObject { family, table, .. }
            | Op::DeleteObject { family, table, .. }
            | Op::AddFlowtable { family, table, .. }
            | Op::DeleteFlowtable { family, table, .. }
            | Op::AddRule { family, table, .. }
            | Op::DeleteRule { family, table, .. } => (*family, table),
        }
    }

    /// Why this operation deletes something the same patch adds back,
    /// losing the kernel state it held; `None` for every other operation.
    pub fn recreate(&self) -> Option<&str> {
        match self {
            Op::DeleteTable { recreate, .. }
            | Op::DeleteChain { recreate, .. }
            | Op::DeleteSet { recreate, .. }
            | Op::DeleteElements { recreate, .. }
            | Op::DeleteObject { recreate, .. }
            | Op::DeleteFlowtable { recreate, .. }
            | Op::DeleteRule { recreate, .. } => recreate.as_deref(),
            _ => None,
        }
    }
}

/// An ordered list of operations the kernel accepts in one transaction:
/// nothing deleted while still referenced, nothing used before it exists.
/// Its text (`render`, `Display`) is the printer's: `crate::print::patch`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Patch {
    pub ops: Vec<Op>,
}

impl Patch {
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Operations that delete something to add it back (see [`Op::recreate`]).
    pub fn recreated(&self) -> usize {
        self.ops.iter().filter(|o| o.recreate().is_some()).count()
    }
}
