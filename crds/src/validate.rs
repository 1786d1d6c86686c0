//! The one verdict on a FirewallRuleset spec: [`compile`] decides whether
//! it is valid and, when it is, gives the value every agent pushes. The
//! operator, the admission webhook and the agent all call it, so they
//! cannot disagree.
//!
//! Two layers, in order:
//!
//! 1. **Structure** ([`check_structure`]): what the fields alone decide —
//!    sizes, names, hooks per family, chain types, priorities, policies,
//!    devices, set flags, one element per list entry, duplicates. No nft
//!    text is read here.
//! 2. **The engine's compiler** ([`crate::convert::to_ruleset`]): nft syntax
//!    and types of every rule, set, map and object, on exactly the text the
//!    agent compiles; then what the kernel would refuse about references
//!    ([`crate::references`]: jump targets, loops, named objects). Errors
//!    are mapped back to the spec field they came from.
//!
//! [`validate`] adds warnings ([`crate::lint`]) to the verdict: valid
//! things that are almost surely wrong.

use std::collections::{BTreeMap, BTreeSet};

use linx_netfilter::Ruleset;

use crate::convert::priority_value;
use crate::diagnostic::Diagnostic;
use crate::resource::{
    limits, ChainSpec, ChainType, Family, FirewallRulesetSpec, Hook, MapSpec, ObjectSpec,
    ObjectType, SetFlag, SetSpec, TableSpec,
};
use crate::selector::check_selector;

/// The outcome of validating one spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validation {
    /// Every error, in spec order; empty when the spec is valid.
    pub diagnostics: Vec<Diagnostic>,
    /// Valid but almost surely wrong (only computed for a valid spec).
    pub warnings: Vec<Diagnostic>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// The spec as the engine's value, or every error that makes it invalid:
/// structure first, then (when the structure is sound) the compiler and
/// the reference checks. What this accepts is what agents apply.
///
/// ```
/// use linx_crds::{compile, FirewallRulesetSpec};
/// let spec: FirewallRulesetSpec = serde_yaml::from_str(r#"
/// nft: |
///   flush ruleset
///   table inet fw {
///     chain input { type filter hook input priority 0; counter reject with tcp reset; }
///   }
/// "#).unwrap();
/// let value = compile(&spec).unwrap();
/// assert_eq!(value.tables[0].name, "fw");
/// ```
pub fn compile(spec: &FirewallRulesetSpec) -> Result<Ruleset, Vec<Diagnostic>> {
    let structure = check_structure(spec);
    if !structure.is_empty() {
        return Err(structure);
    }
    let value = crate::convert::to_ruleset(spec)?;
    // Sources are checked against the compiled sets' types.
    let sources = crate::source::check(spec, &value);
    if !sources.is_empty() {
        return Err(sources);
    }
    Ok(value)
}

/// [`compile`]'s verdict, with warnings when the spec is valid.
///
/// ```
/// use linx_crds::{validate, FirewallRulesetSpec};
/// let spec: FirewallRulesetSpec = serde_yaml::from_str(r#"
/// tables:
/// - name: fw
///   family: inet
///   chains:
///   - name: input
///     type: filter
///     hook: input
///     rules: ["jump nowhere"]
/// "#).unwrap();
/// let v = validate(&spec);
/// assert_eq!(v.diagnostics[0].message, "jump to unknown chain \"nowhere\"");
/// ```
pub fn validate(spec: &FirewallRulesetSpec) -> Validation {
    match compile(spec) {
        Ok(value) => Validation {
            diagnostics: Vec::new(),
            warnings: crate::lint::warnings(spec, &value),
        },
        Err(diagnostics) => Validation {
            diagnostics,
            warnings: Vec::new(),
        },
    }
}

/// The checks that need no compiler: what the fields alone decide.
pub fn check_structure(spec: &FirewallRulesetSpec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_selector("spec.podSelector", &spec.pod_selector, &mut out);
    match (&spec.tables, &spec.nft) {
        (Some(_), Some(_)) | (None, None) => out.push(Diagnostic::new(
            "spec",
            "give exactly one of spec.tables and spec.nft",
        )),
        (Some(tables), None) => check_tables(tables, &mut out),
        (None, Some(nft)) => check_len(
            "spec.nft",
            "characters",
            nft.len(),
            limits::NFT_LEN,
            &mut out,
        ),
    }
    out
}

fn check_name(field: &str, what: &str, name: &str, out: &mut Vec<Diagnostic>) -> bool {
    let ok_chars = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (i > 0 && (c.is_ascii_digit() || matches!(c, '.' | '-')))
    });
    if name.is_empty() || name.len() > limits::NAME_LEN || !ok_chars {
        out.push(Diagnostic::new(
            field,
            format!(
                "invalid {what} name {name:?}: 1 to {} characters, a letter or '_' then letters, digits, '_', '.', '-'",
                limits::NAME_LEN
            ),
        ));
        return false;
    }
    true
}

/// Comments are written into nft text between quotes: bounded, one line, no quotes.
fn check_comment(field: &str, comment: Option<&str>, out: &mut Vec<Diagnostic>) {
    let Some(c) = comment else { return };
    check_len(
        field,
        "characters of comment",
        c.len(),
        limits::COMMENT_LEN,
        out,
    );
    if c.contains(['"', '\n']) {
        out.push(Diagnostic::new(
            field,
            "a comment cannot contain '\"' or a line break",
        ));
    }
}

fn check_len(field: &str, what: &str, n: usize, max: usize, out: &mut Vec<Diagnostic>) {
    if n > max {
        out.push(Diagnostic::new(
            field,
            format!("{n} {what}, at most {max} allowed"),
        ));
    }
}

fn check_tables(tables: &[TableSpec], out: &mut Vec<Diagnostic>) {
    if tables.is_empty() {
        out.push(Diagnostic::new(
            "spec.tables",
            "no table: declare at least one",
        ));
    }
    check_len("spec.tables", "tables", tables.len(), limits::TABLES, out);
    let mut seen = BTreeSet::new();
    for (ti, t) in tables.iter().enumerate() {
        let field = format!("spec.tables[{ti}]");
        if !seen.insert((t.family, t.name.as_str())) {
            out.push(Diagnostic::new(
                &field,
                format!("duplicate table {} {}", t.family, t.name),
            ));
        }
        if check_name(&format!("{field}.name"), "table", &t.name, out) {
            TableCheck::new(t, field, out).run();
        }
    }
}

/// Checks of one structured table.
struct TableCheck<'a, 'o> {
    t: &'a TableSpec,
    field: String,
    label: String,
    out: &'o mut Vec<Diagnostic>,
}

impl<'a, 'o> TableCheck<'a, 'o> {
    fn new(t: &'a TableSpec, field: String, out: &'o mut Vec<Diagnostic>) -> Self {
        let label = format!("{} {}", t.family, t.name);
        TableCheck {
            t,
            field,
            label,
            out,
        }
    }

    fn push(&mut self, d: Diagnostic) {
        self.out.push(d.table(self.label.clone()));
    }

    fn run(mut self) {
        let t = self.t;
        let f = self.field.clone();
        check_comment(&format!("{f}.comment"), t.comment.as_deref(), self.out);
        check_len(
            &format!("{f}.chains"),
            "chains",
            t.chains.len(),
            limits::CHAINS,
            self.out,
        );
        check_len(
            &format!("{f}.sets"),
            "sets",
            t.sets.len(),
            limits::SETS,
            self.out,
        );
        check_len(
            &format!("{f}.maps"),
            "maps",
            t.maps.len(),
            limits::SETS,
            self.out,
        );
        check_len(
            &format!("{f}.objects"),
            "objects",
            t.objects.len(),
            limits::OBJECTS,
            self.out,
        );

        let mut chains = BTreeSet::new();
        for (ci, c) in t.chains.iter().enumerate() {
            if !chains.insert(c.name.as_str()) {
                let d = Diagnostic::new(
                    format!("{f}.chains[{ci}]"),
                    format!("duplicate chain {}", c.name),
                );
                self.push(d);
            }
        }
        // Sets and maps share one namespace in a table.
        let mut sets: BTreeMap<&str, &str> = BTreeMap::new();
        for (si, s) in t.sets.iter().enumerate() {
            if sets.insert(&s.name, "set").is_some() {
                let d = Diagnostic::new(
                    format!("{f}.sets[{si}]"),
                    format!("duplicate set {}", s.name),
                );
                self.push(d);
            }
        }
        for (mi, m) in t.maps.iter().enumerate() {
            if let Some(prev) = sets.insert(&m.name, "map") {
                let d = Diagnostic::new(
                    format!("{f}.maps[{mi}]"),
                    format!("duplicate name {}: also a {prev}", m.name),
                );
                self.push(d);
            }
        }
        let mut objects = BTreeSet::new();
        for (oi, o) in t.objects.iter().enumerate() {
            if !objects.insert(o.name.as_str()) {
                let d = Diagnostic::new(
                    format!("{f}.objects[{oi}]"),
                    format!("duplicate object {}", o.name),
                );
                self.push(d);
            }
        }

        for (ci, c) in t.chains.iter().enumerate() {
            self.chain(ci, c);
        }
        for (si, s) in t.sets.iter().enumerate() {
            self.set(si, s);
        }
        for (mi, m) in t.maps.iter().enumerate() {
            self.map(mi, m);
        }
        for (oi, o) in t.objects.iter().enumerate() {
            self.object(oi, o);
        }
    }

    fn chain(&mut self, ci: usize, c: &'a ChainSpec) {
        let field = format!("{}.chains[{ci}]", self.field);
        let ctx = |d: Diagnostic| d.chain(c.name.clone());
        if !check_name(&format!("{field}.name"), "chain", &c.name, self.out) {
            return;
        }
        let family = self.t.family;
        match (c.hook, c.chain_type) {
            (Some(hook), Some(ty)) => {
                for msg in base_chain_errors(family, hook, ty, c.devices.as_deref()) {
                    self.push(ctx(Diagnostic::new(&field, msg)));
                }
                if let Some(p) = &c.priority {
                    if let Err(msg) = priority_value(family, hook, p) {
                        self.push(ctx(Diagnostic::new(format!("{field}.priority"), msg)));
                    }
                }
            }
            (None, None) => {
                for (what, set) in [
                    ("priority", c.priority.is_some()),
                    ("policy", c.policy.is_some()),
                    ("devices", c.devices.is_some()),
                ] {
                    if set {
                        let msg = format!("{what} is only for base chains (set type and hook)");
                        self.push(ctx(Diagnostic::new(format!("{field}.{what}"), msg)));
                    }
                }
            }
            (Some(_), None) => self.push(ctx(Diagnostic::new(
                &field,
                "a base chain needs a type (filter, nat, route)",
            ))),
            (None, Some(_)) => self.push(ctx(Diagnostic::new(&field, "a base chain needs a hook"))),
        }
        check_comment(&format!("{field}.comment"), c.comment.as_deref(), self.out);
        check_len(
            &format!("{field}.rules"),
            "rules",
            c.rules.len(),
            limits::RULES,
            self.out,
        );
        for (ri, rule) in c.rules.iter().enumerate() {
            let rfield = format!("{field}.rules[{ri}]");
            let at = |d: Diagnostic| d.chain(c.name.clone()).item(format!("rule {ri}"));
            if rule.len() > limits::RULE_LEN {
                let msg = format!(
                    "rule has {} characters, at most {} allowed",
                    rule.len(),
                    limits::RULE_LEN
                );
                self.push(at(Diagnostic::new(&rfield, msg)));
                continue;
            }
            if rule.trim().is_empty() {
                self.push(at(Diagnostic::new(&rfield, "empty rule")));
            }
        }
    }

    fn set_common(
        &mut self,
        field: &str,
        item: &str,
        flags: &[SetFlag],
        timeout: Option<&str>,
        size: Option<u32>,
        count: usize,
    ) {
        let at = |d: Diagnostic| d.item(item.to_string());
        let mut seen = BTreeSet::new();
        for f in flags {
            if !seen.insert(f.as_str()) {
                self.push(at(Diagnostic::new(
                    format!("{field}.flags"),
                    format!("flag {} given twice", f.as_str()),
                )));
            }
        }
        if flags.contains(&SetFlag::Constant)
            && (flags.contains(&SetFlag::Dynamic) || flags.contains(&SetFlag::Timeout))
        {
            let msg = "a constant set cannot also be dynamic or have timeouts";
            self.push(at(Diagnostic::new(format!("{field}.flags"), msg)));
        }
        if let Some(to) = timeout {
            if let Some(msg) = one_line_error("timeout", to) {
                self.push(at(Diagnostic::new(format!("{field}.timeout"), msg)));
            }
        }
        check_len(
            &format!("{field}.elements"),
            "elements",
            count,
            limits::ELEMENTS,
            self.out,
        );
        if let Some(size) = size {
            if count > size as usize {
                let msg = format!("{count} elements exceed the declared size {size}");
                self.push(at(Diagnostic::new(format!("{field}.elements"), msg)));
            }
        }
    }

    fn set(&mut self, si: usize, s: &SetSpec) {
        let field = format!("{}.sets[{si}]", self.field);
        let item = format!("set {}", s.name);
        if !check_name(&format!("{field}.name"), "set", &s.name, self.out) {
            return;
        }
        let at = |d: Diagnostic| d.item(item.clone());
        match (&s.set_type, &s.type_of) {
            (Some(ty), None) => {
                if let Some(msg) = one_line_error("type", ty) {
                    self.push(at(Diagnostic::new(format!("{field}.type"), msg)));
                }
            }
            (None, Some(e)) => {
                if let Some(msg) = one_line_error("typeof", e) {
                    self.push(at(Diagnostic::new(format!("{field}.typeof"), msg)));
                }
            }
            _ => self.push(at(Diagnostic::new(
                &field,
                "give exactly one of type and typeof",
            ))),
        }
        check_comment(&format!("{field}.comment"), s.comment.as_deref(), self.out);
        self.set_common(
            &field,
            &item,
            &s.flags,
            s.timeout.as_deref(),
            s.size,
            s.elements.len(),
        );
        for (ei, e) in s.elements.iter().enumerate() {
            if let Some(msg) = element_error(e, true) {
                self.push(at(Diagnostic::new(format!("{field}.elements[{ei}]"), msg)));
            }
        }
    }

    fn map(&mut self, mi: usize, m: &MapSpec) {
        let field = format!("{}.maps[{mi}]", self.field);
        let item = format!("map {}", m.name);
        if !check_name(&format!("{field}.name"), "map", &m.name, self.out) {
            return;
        }
        let at = |d: Diagnostic| d.item(item.clone());
        for (f, text) in [
            ("type", m.key_type.as_deref()),
            ("typeof", m.key_typeof.as_deref()),
            ("valueType", Some(m.value_type.as_str())),
        ] {
            if let Some(msg) = text.and_then(|t| one_line_error(f, t)) {
                self.push(at(Diagnostic::new(format!("{field}.{f}"), msg)));
            }
        }
        match (&m.key_type, &m.key_typeof) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => self.push(at(Diagnostic::new(
                &field,
                "give exactly one of type and typeof",
            ))),
        }
        check_comment(&format!("{field}.comment"), m.comment.as_deref(), self.out);
        self.set_common(
            &field,
            &item,
            &m.flags,
            m.timeout.as_deref(),
            m.size,
            m.elements.len(),
        );
        let mut keys = BTreeMap::new();
        for (ei, e) in m.elements.iter().enumerate() {
            let efield = format!("{field}.elements[{ei}]");
            if let Some(msg) = element_error(&e.key, true) {
                self.push(at(Diagnostic::new(format!("{efield}.key"), msg)));
            }
            if let Some(prev) = keys.insert(e.key.trim(), ei) {
                let msg = format!("duplicate key {:?} (also elements[{prev}])", e.key);
                self.push(at(Diagnostic::new(format!("{efield}.key"), msg)));
            }
            if let Some(msg) = element_error(&e.value, false) {
                self.push(at(Diagnostic::new(format!("{efield}.value"), msg)));
            }
        }
    }

    fn object(&mut self, oi: usize, o: &ObjectSpec) {
        let field = format!("{}.objects[{oi}]", self.field);
        if !check_name(&format!("{field}.name"), "object", &o.name, self.out) {
            return;
        }
        check_comment(&format!("{field}.comment"), o.comment.as_deref(), self.out);
        let at = |d: Diagnostic| d.item(format!("object {}", o.name));
        match &o.definition {
            None if o.object_type != ObjectType::Counter => {
                let msg = format!("a {} object needs a definition", o.object_type.as_str());
                self.push(at(Diagnostic::new(&field, msg)));
            }
            Some(def) => {
                if let Some(i) = def.find(['{', '}']) {
                    let msg = format!(
                        "unexpected {:?} at column {}: a definition is the body of one object",
                        &def[i..i + 1],
                        def[..i].chars().count() + 1
                    );
                    self.push(at(Diagnostic::new(format!("{field}.definition"), msg)));
                }
            }
            None => {}
        }
    }
}

/// Fields rendered into one declaration line may not end it early: each
/// is compiled as part of the line the spec field names.
fn one_line_error(what: &str, text: &str) -> Option<String> {
    let i = text.find(['{', '}', ';', '\n'])?;
    Some(format!(
        "unexpected {:?} at column {} of the {what}: give one {what}, without braces or separators",
        &text[i..i + 1],
        text[..i].chars().count() + 1
    ))
}

/// One set element or map key/value per list entry: not empty, bounded,
/// and nothing that would end the element (`,` between elements, braces,
/// separators) — so an error's element index names the entry it is in.
fn element_error(e: &str, key: bool) -> Option<String> {
    if e.trim().is_empty() {
        return Some("empty element".into());
    }
    if e.len() > limits::ELEMENT_LEN {
        return Some(format!(
            "element has {} characters, at most {} allowed",
            e.len(),
            limits::ELEMENT_LEN
        ));
    }
    let stops: &[char] = if key {
        &[',', '{', '}', ';', '\n']
    } else {
        &['{', '}', ';', '\n']
    };
    let i = e.find(stops)?;
    Some(format!(
        "one element per entry: unexpected {:?} at column {}",
        &e[i..i + 1],
        e[..i].chars().count() + 1
    ))
}

/// Errors of a base chain's family/hook/type/devices combination, as the
/// kernel and nft decide them.
fn base_chain_errors(
    family: Family,
    hook: Hook,
    ty: ChainType,
    devices: Option<&[String]>,
) -> Vec<String> {
    use Hook::*;
    let mut errs = Vec::new();
    let hooks: &[Hook] = match family {
        Family::Ip | Family::Ip6 => &[Prerouting, Input, Forward, Output, Postrouting],
        Family::Inet => &[Prerouting, Input, Forward, Output, Postrouting, Ingress],
        Family::Bridge => &[Prerouting, Input, Forward, Output, Postrouting],
        Family::Arp => &[Input, Output],
        Family::Netdev => &[Ingress, Egress],
    };
    if !hooks.contains(&hook) {
        let names: Vec<&str> = hooks.iter().map(|h| h.as_str()).collect();
        errs.push(format!(
            "hook {} is not available in the {family} family ({})",
            hook.as_str(),
            names.join(", ")
        ));
        return errs;
    }
    match ty {
        ChainType::Filter => {}
        ChainType::Nat => {
            if !matches!(family, Family::Ip | Family::Ip6 | Family::Inet) {
                errs.push(format!(
                    "nat chains are not available in the {family} family"
                ));
            } else if !matches!(hook, Prerouting | Input | Output | Postrouting) {
                errs.push(format!(
                    "nat chains hook prerouting, input, output or postrouting, not {}",
                    hook.as_str()
                ));
            }
        }
        ChainType::Route => {
            if !matches!(family, Family::Ip | Family::Ip6 | Family::Inet) || hook != Output {
                errs.push(format!(
                    "route chains hook output in the ip, ip6 or inet family, not {} in {family}",
                    hook.as_str()
                ));
            }
        }
    }
    let needs_device = matches!(hook, Ingress | Egress);
    match devices {
        None if needs_device => errs.push(format!("{} chains need devices", hook.as_str())),
        Some(_) if !needs_device => errs.push(format!(
            "devices are only for ingress and egress chains, not {}",
            hook.as_str()
        )),
        Some(devs) => {
            check_len_msg(&mut errs, "devices", devs.len(), limits::DEVICES);
            for d in devs {
                if d.is_empty()
                    || d.len() > limits::DEVICE_LEN
                    || d.contains(['/', ' ', '\t', '\n'])
                    || d == "."
                    || d == ".."
                {
                    errs.push(format!(
                        "invalid device name {d:?}: 1 to {} characters, no '/' or spaces",
                        limits::DEVICE_LEN
                    ));
                }
            }
        }
        None => {}
    }
    errs
}

fn check_len_msg(errs: &mut Vec<String>, what: &str, n: usize, max: usize) {
    if n > max {
        errs.push(format!("{n} {what}, at most {max} allowed"));
    }
}

/// The tables a spec declares (structured, or what its nft text leaves;
/// none when the text does not parse).
pub fn declared_tables(spec: &FirewallRulesetSpec) -> Vec<(Family, String)> {
    if let Some(tables) = &spec.tables {
        return tables.iter().map(|t| (t.family, t.name.clone())).collect();
    }
    spec.nft
        .as_deref()
        .and_then(crate::convert::NftOrigins::of)
        .map(|o| o.tables())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_nft_text_leaves() {
        let spec = |nft: &str| FirewallRulesetSpec {
            nft: Some(nft.into()),
            ..Default::default()
        };
        let src = "flush ruleset\ntable inet a {\n chain c { jump d; }\n chain d { }\n}\ntable b { }\nadd table ip6 c\ndelete table ip b\n";
        assert_eq!(
            declared_tables(&spec(src)),
            vec![(Family::Inet, "a".into()), (Family::Ip6, "c".into())]
        );
        assert_eq!(declared_tables(&spec("table inet a {")), vec![]);
    }
}
