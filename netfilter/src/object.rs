//! Bodies of named objects (`NFTA_OBJ_DATA`), by object type.

use serde::{Deserialize, Serialize};

use crate::expr::{Bytes, RawAttr};

/// The attributes of a named object, by its type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectData {
    Counter(crate::expr::counter::Counter),
    /// Any object type not decoded here, kept as its raw attributes.
    Raw(Vec<RawAttr>),
    /// An object whose data nest could not be split into attributes.
    Bytes(Bytes),
}
