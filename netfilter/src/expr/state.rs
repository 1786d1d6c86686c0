//! Interim: runtime-state and set-reference access for the expressions
//! defined so far (replaced by the complete version from the expr branch).

use super::Expr;

impl Expr {
    /// Zeroes runtime state (counter values) so values compare by intent.
    pub fn clear_state(&mut self) {
        if let Expr::Counter(c) = self {
            c.bytes = c.bytes.map(|_| 0);
            c.packets = c.packets.map(|_| 0);
        }
    }

    /// The set name and batch-local set id an expression refers to.
    pub fn set_refs_mut(&mut self) -> Option<(&mut Option<String>, &mut Option<u32>)> {
        match self {
            Expr::Lookup(l) => Some((&mut l.set, &mut l.set_id)),
            _ => None,
        }
    }
}
