//! The elements the operator resolved for sets with a source, as the
//! agent assembles them from `FirewallAddressSet` watch events into an
//! [`AddressBook`]: one entry per FirewallRuleset (by namespace and UID),
//! rebuilt only for the ruleset an event concerns, and kept as the same
//! allocation while its lists do not change (so the policy recompiles
//! only the rulesets whose elements changed).
//!
//! A chunk counts only in its own namespace and for the UID it names: an
//! object elsewhere cannot add addresses to a ruleset. A list whose chunks
//! do not all agree yet (mid-update) keeps its previous value.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::watcher;
use linx_crds::addressset::assemble;
use linx_crds::source::Resolved;
use linx_crds::{FirewallAddressSet, FirewallAddressSetSpec};

use crate::rulesets::AddressBook;

type Group = (String, String);

/// Chunks by ruleset, and the book made of them.
#[derive(Debug, Default)]
pub struct AddressChunks {
    groups: BTreeMap<Group, BTreeMap<String, FirewallAddressSetSpec>>,
    /// Object (namespace, name) → its ruleset UID, to move a chunk whose
    /// UID changed (a ruleset deleted and made again with the same name).
    owner: BTreeMap<(String, String), String>,
    /// A full list in progress.
    relist: Option<Vec<FirewallAddressSet>>,
    /// A full list completed at least once.
    pub ready: bool,
    book: AddressBook,
}

impl AddressChunks {
    /// The lists as last assembled.
    pub fn book(&self) -> &AddressBook {
        &self.book
    }

    /// Applies one watch event; true when the book changed (or the first
    /// full list completed).
    pub fn apply(&mut self, event: watcher::Event<FirewallAddressSet>) -> bool {
        match event {
            watcher::Event::Apply(o) => self.put(&o, false),
            watcher::Event::Delete(o) => self.put(&o, true),
            watcher::Event::Init => {
                self.relist = Some(Vec::new());
                false
            }
            watcher::Event::InitApply(o) => {
                self.relist.get_or_insert_with(Vec::new).push(o);
                false
            }
            watcher::Event::InitDone => {
                let all = self.relist.take().unwrap_or_default();
                let before = std::mem::take(&mut self.book);
                let first = !self.ready;
                *self = AddressChunks {
                    ready: true,
                    ..Default::default()
                };
                for o in &all {
                    self.insert(o);
                }
                let groups: Vec<Group> = self.groups.keys().cloned().collect();
                for g in groups {
                    self.rebuild(&g, before.get(&g));
                }
                first || self.book != before
            }
        }
    }

    fn insert(&mut self, o: &FirewallAddressSet) -> Option<Group> {
        let (Some(ns), Some(name)) = (o.metadata.namespace.clone(), o.metadata.name.clone()) else {
            return None;
        };
        let group = (ns.clone(), o.spec.ruleset_uid.clone());
        self.owner.insert((ns, name.clone()), group.1.clone());
        self.groups
            .entry(group.clone())
            .or_default()
            .insert(name, o.spec.clone());
        Some(group)
    }

    fn put(&mut self, o: &FirewallAddressSet, deleted: bool) -> bool {
        let (Some(ns), Some(name)) = (o.metadata.namespace.clone(), o.metadata.name.clone()) else {
            return false;
        };
        let mut touched = Vec::new();
        if let Some(uid) = self.owner.remove(&(ns.clone(), name.clone())) {
            let g = (ns.clone(), uid);
            if let Some(chunks) = self.groups.get_mut(&g) {
                chunks.remove(&name);
            }
            touched.push(g);
        }
        if !deleted {
            touched.extend(self.insert(o));
        }
        let mut changed = false;
        for g in touched {
            let old = self.book.get(&g).cloned();
            changed |= self.rebuild(&g, old.as_ref());
        }
        changed
    }

    /// Assembles one ruleset's lists; keeps `old`'s allocation when equal.
    fn rebuild(&mut self, g: &Group, old: Option<&Arc<Resolved>>) -> bool {
        let chunks = self.groups.get(g).filter(|c| !c.is_empty());
        let Some(chunks) = chunks else {
            self.groups.remove(g);
            return self.book.remove(g).is_some();
        };
        let mut lists: Resolved = assemble(chunks.values())
            .into_iter()
            .map(|(at, l)| (at, Arc::from(l)))
            .collect();
        // A list mid-update (chunks disagreeing) keeps its last value.
        if let Some(old) = old {
            for (at, l) in old.iter() {
                let whole = chunks.values().any(|c| c.set_ref() == *at);
                if whole && !lists.contains_key(at) {
                    lists.insert(at.clone(), l.clone());
                }
            }
        }
        match old {
            Some(o) if **o == lists => {
                self.book.insert(g.clone(), o.clone());
                false
            }
            _ => {
                self.book.insert(g.clone(), Arc::new(lists));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linx_crds::source::SetRef;
    use linx_crds::Family;

    fn chunk(
        ns: &str,
        uid: &str,
        set: &str,
        chunk: u32,
        chunks: u32,
        els: &[&str],
    ) -> FirewallAddressSet {
        let mut o = FirewallAddressSet::new(
            &format!("db-{uid}-{set}-{chunk}"),
            FirewallAddressSetSpec {
                ruleset: "db".into(),
                ruleset_uid: uid.into(),
                family: Family::Inet,
                table: "fw".into(),
                set: set.into(),
                chunk,
                chunks,
                elements: els.iter().map(|e| e.to_string()).collect(),
            },
        );
        o.metadata.namespace = Some(ns.into());
        o
    }

    fn list(b: &AddressChunks, ns: &str, uid: &str, set: &str) -> Option<Vec<String>> {
        b.book()
            .get(&(ns.into(), uid.into()))?
            .get(&SetRef::new(Family::Inet, "fw", set))
            .map(|l| l.to_vec())
    }

    #[test]
    fn chunks_assemble_per_ruleset_and_a_list_mid_update_keeps_its_value() {
        use watcher::Event as E;
        let mut b = AddressChunks::default();
        assert!(!b.apply(E::Init));
        assert!(!b.apply(E::InitApply(chunk("db", "u1", "api", 0, 1, &["10.0.0.1"]))));
        assert!(b.apply(E::InitDone), "the first full list");
        assert_eq!(list(&b, "db", "u1", "api").unwrap(), ["10.0.0.1"]);
        let before = b.book()[&("db".into(), "u1".into())].clone();
        // Another ruleset's chunk leaves this one's allocation alone.
        assert!(b.apply(E::Apply(chunk("db", "u2", "api", 0, 1, &["10.0.0.9"]))));
        assert!(Arc::ptr_eq(&before, &b.book()[&("db".into(), "u1".into())]));
        // Growing to two chunks: until both are there, the old list stays.
        assert!(!b.apply(E::Apply(chunk("db", "u1", "api", 1, 2, &["10.0.0.2"]))));
        assert_eq!(list(&b, "db", "u1", "api").unwrap(), ["10.0.0.1"]);
        assert!(b.apply(E::Apply(chunk(
            "db",
            "u1",
            "api",
            0,
            2,
            &["10.0.0.1", "10.0.0.3"]
        ))));
        assert_eq!(
            list(&b, "db", "u1", "api").unwrap(),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
        // The same content again: nothing changed.
        assert!(!b.apply(E::Apply(chunk(
            "db",
            "u1",
            "api",
            0,
            2,
            &["10.0.0.1", "10.0.0.3"]
        ))));
        // A chunk in another namespace claiming the UID is its own group.
        b.apply(E::Apply(chunk("evil", "u1", "api", 0, 1, &["192.0.2.66"])));
        assert_eq!(
            list(&b, "db", "u1", "api").unwrap(),
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        );
        // Every chunk deleted: no list.
        b.apply(E::Delete(chunk("db", "u1", "api", 0, 2, &[])));
        b.apply(E::Delete(chunk("db", "u1", "api", 1, 2, &[])));
        assert_eq!(list(&b, "db", "u1", "api"), None);
    }
}
