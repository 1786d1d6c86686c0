//! Validation of a FirewallRuleset spec without a kernel.
//!
//! Checks what the structure alone decides (sizes, names, hooks, chain
//! types, priorities, policies, devices, set types and flags, map values),
//! what the references decide (jump/goto targets, `@set` names, named
//! objects, jump loops, duplicates), and the text's shape (balanced braces
//! and strings). Then, when all that passed, the nft compiler
//! (through [`crate::convert::to_ruleset`]) checks syntax and types.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::diagnostic::Diagnostic;
use crate::resource::{
    limits, ChainSpec, ChainType, Family, FirewallRulesetSpec, Hook, MapSpec, ObjectSpec,
    ObjectType, SetFlag, SetSpec, TableSpec,
};
use crate::scan::{scan, Token, TokenKind};

/// The outcome of validating one spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validation {
    /// Every finding, in spec order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// Validates `spec` fully: structure, references, then the nft syntax and
/// types of every rule, set, map and object (by compiling it).
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
    let mut out = check_structure(spec);
    if out.is_empty() {
        match crate::convert::to_ruleset(spec) {
            Err(d) => out.extend(d),
            Ok(value) => out.extend(crate::source::check(spec, &value)),
        }
    }
    Validation { diagnostics: out }
}

/// The checks that need no compiler: structure, references, text shape.
pub fn check_structure(spec: &FirewallRulesetSpec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_selector("spec.podSelector", &spec.pod_selector, &mut out);
    match (&spec.tables, &spec.nft) {
        (Some(_), Some(_)) | (None, None) => out.push(Diagnostic::new(
            "spec",
            "give exactly one of spec.tables and spec.nft",
        )),
        (Some(tables), None) => check_tables(tables, &mut out),
        (None, Some(nft)) => check_nft(nft, &mut out),
    }
    out
}

/// Checks a label selector's expressions; `at` is its field path.
pub(crate) fn check_selector(at: &str, sel: &LabelSelector, out: &mut Vec<Diagnostic>) {
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let field = format!("{at}.matchExpressions[{i}]");
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" if n == 0 => out.push(Diagnostic::new(
                field,
                format!("operator {} needs values", e.operator),
            )),
            "Exists" | "DoesNotExist" if n > 0 => out.push(Diagnostic::new(
                field,
                format!("operator {} takes no values", e.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => out.push(Diagnostic::new(
                field,
                format!("unknown operator {op:?} (In, NotIn, Exists, DoesNotExist)"),
            )),
        }
    }
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
    /// Jump/goto edges between chains, for loop detection.
    edges: BTreeMap<&'a str, Vec<(&'a str, String, usize)>>,
}

impl<'a, 'o> TableCheck<'a, 'o> {
    fn new(t: &'a TableSpec, field: String, out: &'o mut Vec<Diagnostic>) -> Self {
        let label = format!("{} {}", t.family, t.name);
        TableCheck {
            t,
            field,
            label,
            out,
            edges: BTreeMap::new(),
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
        self.loops();
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
                continue;
            }
            match scan(rule) {
                Err(e) => self.push(at(Diagnostic::new(&rfield, e.message).at(e.line, e.column))),
                Ok(tokens) => {
                    if let Some(t) = tokens
                        .iter()
                        .find(|t| t.kind == TokenKind::Punct && (t.text == ";" || t.text == "\n"))
                    {
                        let msg = "one rule per entry: split the statements into separate rules";
                        self.push(at(Diagnostic::new(&rfield, msg).at(t.line, t.column)));
                        continue;
                    }
                    for (msg, t) in self.references(&tokens) {
                        self.push(at(Diagnostic::new(&rfield, msg).at(t.line, t.column)));
                    }
                    for (target, _) in jump_targets(&tokens) {
                        self.edges
                            .entry(&c.name)
                            .or_default()
                            .push((target, rfield.clone(), ri));
                    }
                }
            }
        }
    }

    /// Errors for names in a rule's or map value's tokens that refer to
    /// nothing declared in this table.
    fn references<'t>(&self, tokens: &'t [Token<'t>]) -> Vec<(String, &'t Token<'t>)> {
        let mut errs = Vec::new();
        for (target, t) in jump_targets(tokens) {
            match self.t.chains.iter().find(|c| c.name == target) {
                None => errs.push((format!("{} to unknown chain {target:?}", t.text), t)),
                Some(c) if c.hook.is_some() => errs.push((
                    format!(
                        "{} to base chain {target:?}: only regular chains can be jumped to",
                        t.text
                    ),
                    t,
                )),
                Some(_) => {}
            }
        }
        for t in tokens.iter().filter(|t| t.kind == TokenKind::SetRef) {
            if !self.t.sets.iter().any(|s| s.name == t.text)
                && !self.t.maps.iter().any(|m| m.name == t.text)
            {
                errs.push((format!("unknown set or map @{}", t.text), t));
            }
        }
        for (ty, name, t) in object_refs(tokens) {
            match self.t.objects.iter().find(|o| o.name == name) {
                None => errs.push((format!("unknown {} object {name:?}", ty.as_str()), t)),
                Some(o) if o.object_type != ty => errs.push((
                    format!(
                        "object {name:?} is a {}, not a {}",
                        o.object_type.as_str(),
                        ty.as_str()
                    ),
                    t,
                )),
                Some(_) => {}
            }
        }
        errs
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
            if !is_duration(to) {
                let msg =
                    format!("invalid timeout {to:?}: use nft durations like 30s, 5m, 1h30m, 2d");
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
                if let Err(msg) = check_type(ty, false) {
                    self.push(at(Diagnostic::new(format!("{field}.type"), msg)));
                }
            }
            (None, Some(e)) => {
                if let Err(e) = scan(e) {
                    self.push(at(
                        Diagnostic::new(format!("{field}.typeof"), e.message).at(e.line, e.column)
                    ));
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
            if let Some(msg) = element_error(e) {
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
        match (&m.key_type, &m.key_typeof) {
            (Some(ty), None) => {
                if let Err(msg) = check_type(ty, false) {
                    self.push(at(Diagnostic::new(format!("{field}.type"), msg)));
                }
                if let Err(msg) = check_type(&m.value_type, true) {
                    self.push(at(Diagnostic::new(format!("{field}.valueType"), msg)));
                }
            }
            (None, Some(_)) => {}
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
        let verdict = m.value_type.trim() == "verdict";
        let mut keys = BTreeMap::new();
        for (ei, e) in m.elements.iter().enumerate() {
            let efield = format!("{field}.elements[{ei}]");
            if let Some(msg) = element_error(&e.key) {
                self.push(at(Diagnostic::new(format!("{efield}.key"), msg)));
            }
            if let Some(prev) = keys.insert(e.key.trim(), ei) {
                let msg = format!("duplicate key {:?} (also elements[{prev}])", e.key);
                self.push(at(Diagnostic::new(format!("{efield}.key"), msg)));
            }
            if verdict {
                match scan(&e.value) {
                    Err(err) => {
                        self.push(at(Diagnostic::new(format!("{efield}.value"), err.message)
                            .at(err.line, err.column)))
                    }
                    Ok(tokens) => {
                        if let Some(msg) = verdict_error(&tokens) {
                            self.push(at(Diagnostic::new(format!("{efield}.value"), msg)));
                        }
                        for (msg, t) in self.references(&tokens) {
                            self.push(at(Diagnostic::new(format!("{efield}.value"), msg)
                                .at(t.line, t.column)));
                        }
                    }
                }
            } else if let Some(msg) = element_error(&e.value) {
                self.push(at(Diagnostic::new(format!("{efield}.value"), msg)));
            }
        }
        // Jumps from a verdict map count from every chain that uses the map;
        // they are followed in `loops` through the chains' `@map` references.
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
                if let Err(e) = scan(def) {
                    self.push(at(Diagnostic::new(
                        format!("{field}.definition"),
                        e.message,
                    )
                    .at(e.line, e.column)));
                } else if let Some(msg) = object_definition_error(o.object_type, def) {
                    self.push(at(Diagnostic::new(format!("{field}.definition"), msg)));
                }
            }
            None => {}
        }
    }

    /// Chains reachable from themselves through jump/goto (directly or via
    /// verdict maps) make the kernel refuse the whole table (ELOOP).
    fn loops(&mut self) {
        let t = self.t;
        // Edges through verdict maps: a rule naming @map jumps wherever the map does.
        let mut map_targets: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for m in &t.maps {
            for e in &m.elements {
                if let Ok(tokens) = scan(&e.value) {
                    for (target, _) in jump_targets(&tokens) {
                        if let Some(c) = t.chains.iter().find(|c| c.name == target) {
                            map_targets.entry(&m.name).or_default().push(&c.name);
                        }
                    }
                }
            }
        }
        for (ci, c) in t.chains.iter().enumerate() {
            for (ri, rule) in c.rules.iter().enumerate() {
                if let Ok(tokens) = scan(rule) {
                    for r in tokens.iter().filter(|t| t.kind == TokenKind::SetRef) {
                        for target in map_targets.get(r.text).into_iter().flatten() {
                            let rf = format!("{}.chains[{ci}].rules[{ri}]", self.field);
                            self.edges
                                .entry(&c.name)
                                .or_default()
                                .push((target, rf, ri));
                        }
                    }
                }
            }
        }
        // Report each cycle once, at the first rule (in spec order) closing it.
        let mut reported = BTreeSet::new();
        for c in &t.chains {
            let Some(edges) = self.edges.get(c.name.as_str()) else {
                continue;
            };
            for (target, field, ri) in edges {
                if let Some(path) = path_between(&self.edges, target, &c.name) {
                    let mut cycle: Vec<&str> = path.clone();
                    cycle.sort_unstable();
                    cycle.dedup();
                    if !reported.insert(cycle) {
                        continue;
                    }
                    let mut shown = vec![c.name.as_str()];
                    shown.extend(path);
                    let msg = format!("jump loop: {}", shown.join(" -> "));
                    let d = Diagnostic::new(field.clone(), msg)
                        .chain(c.name.clone())
                        .item(format!("rule {ri}"));
                    self.out.push(d.table(self.label.clone()));
                }
            }
        }
    }
}

/// Chains from `from` to `to` following edges (inclusive), if any.
fn path_between<'a>(
    edges: &BTreeMap<&'a str, Vec<(&'a str, String, usize)>>,
    from: &'a str,
    to: &str,
) -> Option<Vec<&'a str>> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(n) = queue.pop_front() {
        if n == to {
            let mut path = vec![n];
            let mut cur = n;
            while let Some(p) = prev.get(cur) {
                path.push(p);
                cur = p;
            }
            path.reverse();
            return Some(path);
        }
        for (next, _, _) in edges.get(n).into_iter().flatten() {
            if seen.insert(next) {
                prev.insert(next, n);
                queue.push_back(next);
            }
        }
    }
    None
}

/// `jump X` / `goto X` pairs in tokens.
fn jump_targets<'s, 't>(tokens: &'t [Token<'s>]) -> impl Iterator<Item = (&'s str, &'t Token<'s>)> {
    tokens
        .windows(2)
        .filter(|w| w[0].is("jump") || w[0].is("goto"))
        .filter(|w| w[1].is_name())
        .map(|w| (w[1].text, &w[0]))
}

/// Named-object references: `counter name X`, `quota name X`,
/// `limit name X`, `ct helper set X`, `ct timeout set X`,
/// `ct expectation set X`, `synproxy name X`, `meta secmark set X`.
fn object_refs<'t>(tokens: &'t [Token<'t>]) -> Vec<(ObjectType, &'t str, &'t Token<'t>)> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let next = |k: usize| tokens.get(i + k);
        let named = |k: usize, kw: &str| {
            next(k).is_some_and(|t| t.is(kw)) && next(k + 1).is_some_and(|t| t.is_name())
        };
        let ty = match t.text {
            "counter" if t.kind == TokenKind::Word && named(1, "name") => {
                Some((ObjectType::Counter, 2))
            }
            "quota" if t.kind == TokenKind::Word && named(1, "name") => {
                Some((ObjectType::Quota, 2))
            }
            "limit" if t.kind == TokenKind::Word && named(1, "name") => {
                Some((ObjectType::Limit, 2))
            }
            "synproxy" if t.kind == TokenKind::Word && named(1, "name") => {
                Some((ObjectType::Synproxy, 2))
            }
            "ct" if t.kind == TokenKind::Word => match next(1).map(|t| t.text) {
                Some("helper") if named(2, "set") => Some((ObjectType::CtHelper, 3)),
                Some("timeout") if named(2, "set") => Some((ObjectType::CtTimeout, 3)),
                Some("expectation") if named(2, "set") => Some((ObjectType::CtExpectation, 3)),
                _ => None,
            },
            "secmark"
                if t.kind == TokenKind::Word
                    && i > 0
                    && tokens[i - 1].is("meta")
                    && named(1, "set") =>
            {
                Some((ObjectType::Secmark, 2))
            }
            _ => None,
        };
        if let Some((ty, k)) = ty {
            let name_tok = &tokens[i + k];
            out.push((ty, name_tok.text, t));
        }
    }
    out
}

/// Data types nft knows for set keys and map values.
const DATA_TYPES: &[&str] = &[
    "ipv4_addr",
    "ipv6_addr",
    "ether_addr",
    "inet_proto",
    "inet_service",
    "mark",
    "ifname",
    "iface_index",
    "iface_type",
    "ct_state",
    "ct_status",
    "ct_dir",
    "ct_label",
    "ct_event",
    "tcp_flag",
    "icmp_type",
    "icmp_code",
    "icmpv6_type",
    "icmpv6_code",
    "icmpx_code",
    "dscp",
    "ecn",
    "pkttype",
    "arp_op",
    "ether_type",
    "nf_proto",
    "realm",
    "classid",
    "uid",
    "gid",
    "time",
    "day",
    "hour",
    "boolean",
    "devgroup",
    "cgroupsv2",
    "integer",
    "string",
    "ip_option",
    "ipsec",
    "fib_addrtype",
    "bitmask",
    "tcp_option",
    "sctp_chunk",
    "vlan_id",
    "8021q_pcp",
    "ipv6_exthdr",
    "mh_type",
    "igmp_type",
    "queue",
    "secmark",
    "dccp_pkttype",
    "frag_off",
    "ttl",
    "hoplimit",
];

/// Checks a `type` expression: data types joined with ` . `; `verdict`
/// only as a map value.
fn check_type(ty: &str, is_value: bool) -> Result<(), String> {
    let ty = ty.trim();
    if is_value && ty == "verdict" {
        return Ok(());
    }
    for part in ty.split(" . ").map(str::trim) {
        if part == "verdict" {
            return Err("verdict is only a map value type".into());
        }
        if !DATA_TYPES.contains(&part) {
            return Err(format!(
                "unknown data type {part:?} in {ty:?} (e.g. ipv4_addr, ipv6_addr, inet_service, inet_proto, ifname, mark; concatenate with \" . \")"
            ));
        }
    }
    Ok(())
}

/// One set element or map key/value: no braces, commas or colons at the
/// top level (one element per list entry), balanced text.
fn element_error(e: &str) -> Option<String> {
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
    match scan(e) {
        Err(err) => Some(format!("{} at {}:{}", err.message, err.line, err.column)),
        Ok(tokens) => tokens
            .iter()
            .find(|t| t.kind == TokenKind::Punct && matches!(t.text, "," | "{" | "}" | ";" | "\n"))
            .map(|t| {
                format!(
                    "one element per entry: unexpected {:?} at column {}",
                    t.text, t.column
                )
            }),
    }
}

/// A verdict map value: accept, drop, continue, return, jump X, goto X.
fn verdict_error(tokens: &[Token<'_>]) -> Option<String> {
    match tokens {
        [t] if ["accept", "drop", "continue", "return"]
            .iter()
            .any(|v| t.is(v)) =>
        {
            None
        }
        [t, n] if (t.is("jump") || t.is("goto")) && n.is_name() => None,
        _ => Some(
            "verdict map value must be accept, drop, continue, return, jump CHAIN or goto CHAIN"
                .into(),
        ),
    }
}

/// Light shape checks of named object bodies (the compiler checks the rest).
fn object_definition_error(ty: ObjectType, def: &str) -> Option<String> {
    let words: Vec<&str> = def.split_whitespace().collect();
    let first = *words.first()?;
    let ok = match ty {
        ObjectType::Counter => words
            .chunks(2)
            .all(|w| matches!(w, ["packets" | "bytes", n] if n.parse::<u64>().is_ok())),
        ObjectType::Quota => matches!(first, "over" | "until") || first.parse::<u64>().is_ok(),
        ObjectType::Limit => first == "rate",
        ObjectType::CtHelper | ObjectType::CtTimeout | ObjectType::CtExpectation => [
            "type", "protocol", "l3proto", "policy", "dport", "timeout", "size",
        ]
        .contains(&first),
        ObjectType::Secmark | ObjectType::Synproxy => true,
    };
    (!ok).then(|| match ty {
        ObjectType::Counter => {
            format!("counter definition must be \"packets N bytes N\", got {def:?}")
        }
        ObjectType::Quota => {
            format!("quota definition must start with over, until or a number, got {def:?}")
        }
        ObjectType::Limit => format!("limit definition must start with rate, got {def:?}"),
        _ => format!("{} definition cannot start with {first:?}", ty.as_str()),
    })
}

/// nft durations: one or more `<number><unit>` with units d, h, m, s, ms.
fn is_duration(s: &str) -> bool {
    let mut rest = s.trim();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "d", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
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

/// Standard priority names by family, with the hook each is limited to.
fn standard_priority(family: Family, hook: Hook, name: &str) -> Result<i32, String> {
    use Hook::*;
    let table: &[(&str, i32, Option<Hook>)] = match family {
        Family::Ip | Family::Ip6 | Family::Inet => &[
            ("raw", -300, None),
            ("mangle", -150, None),
            ("dstnat", -100, Some(Prerouting)),
            ("filter", 0, None),
            ("security", 50, None),
            ("srcnat", 100, Some(Postrouting)),
        ],
        Family::Bridge => &[
            ("dstnat", -300, Some(Prerouting)),
            ("filter", -200, None),
            ("out", 100, Some(Output)),
            ("srcnat", 300, Some(Postrouting)),
        ],
        Family::Arp | Family::Netdev => &[("filter", 0, None)],
    };
    match table.iter().find(|(n, _, _)| *n == name) {
        None => {
            let names: Vec<&str> = table.iter().map(|(n, _, _)| *n).collect();
            Err(format!(
                "unknown priority {name:?} in the {family} family ({})",
                names.join(", ")
            ))
        }
        Some((_, _, Some(only))) if *only != hook => Err(format!(
            "priority {name} is only valid for {} chains, not {}",
            only.as_str(),
            hook.as_str()
        )),
        Some((_, v, _)) => Ok(*v),
    }
}

/// The numeric value of a chain priority: a number, or a standard name
/// with an optional `+ N` / `- N` offset.
pub fn priority_value(family: Family, hook: Hook, p: &IntOrString) -> Result<i32, String> {
    let s = match p {
        IntOrString::Int(v) => return Ok(*v),
        IntOrString::String(s) => s.trim(),
    };
    if let Ok(v) = s.parse::<i32>() {
        return Ok(v);
    }
    let (name, offset) = match s.find(['+', '-']) {
        None => (s, 0i64),
        Some(i) => {
            let sign = if &s[i..i + 1] == "-" { -1 } else { 1 };
            let n = s[i + 1..].trim();
            match n.parse::<i64>() {
                Ok(n) if n >= 0 => (s[..i].trim(), sign * n),
                _ => {
                    return Err(format!(
                        "invalid priority {s:?}: expected NAME, NAME + N or NAME - N"
                    ))
                }
            }
        }
    };
    let base = standard_priority(family, hook, name)?;
    i32::try_from(base as i64 + offset).map_err(|_| format!("priority {s:?} is out of range"))
}

/// Light checks of a whole `nft` text block: size, balanced text, and at
/// least one table declaration. The compiler checks the rest.
fn check_nft(src: &str, out: &mut Vec<Diagnostic>) {
    if src.len() > limits::NFT_LEN {
        let msg = format!(
            "{} characters, at most {} allowed",
            src.len(),
            limits::NFT_LEN
        );
        out.push(Diagnostic::new("spec.nft", msg));
        return;
    }
    match scan(src) {
        Err(e) => out.push(Diagnostic::new("spec.nft", e.message).at(e.line, e.column)),
        Ok(tokens) => {
            if nft_tables(&tokens).is_empty() {
                out.push(Diagnostic::new(
                    "spec.nft",
                    "no table declared (e.g. table inet fw { ... })",
                ));
            }
            for t in &tokens {
                if t.kind == TokenKind::Word
                    && matches!(t.text, "flush" | "delete" | "destroy" | "reset" | "rename")
                {
                    let msg = format!(
                        "{:?} is not allowed: declare the desired tables only",
                        t.text
                    );
                    out.push(Diagnostic::new("spec.nft", msg).at(t.line, t.column));
                }
            }
        }
    }
}

/// `(family, name)` of each `table [family] name` declaration in nft text.
pub fn nft_tables(tokens: &[Token<'_>]) -> Vec<(Family, String)> {
    let family = |s: &str| match s {
        "inet" => Some(Family::Inet),
        "ip" => Some(Family::Ip),
        "ip6" => Some(Family::Ip6),
        "arp" => Some(Family::Arp),
        "bridge" => Some(Family::Bridge),
        "netdev" => Some(Family::Netdev),
        _ => None,
    };
    let mut out = Vec::new();
    let mut depth = 0;
    for (i, t) in tokens.iter().enumerate() {
        match t.text {
            "{" if t.kind == TokenKind::Punct => depth += 1,
            "}" if t.kind == TokenKind::Punct => depth -= 1,
            "table" if depth == 0 && t.kind == TokenKind::Word => {
                let (fam, name) = match (tokens.get(i + 1), tokens.get(i + 2)) {
                    (Some(f), Some(n)) if n.is_name() && family(f.text).is_some() => {
                        (family(f.text), n.text)
                    }
                    // nft's default family is ip.
                    (Some(n), _) if n.is_name() => (Some(Family::Ip), n.text),
                    _ => continue,
                };
                if let Some(f) = fam {
                    out.push((f, name.to_string()));
                }
            }
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The tables a spec declares (structured or in its nft text).
pub fn declared_tables(spec: &FirewallRulesetSpec) -> Vec<(Family, String)> {
    if let Some(tables) = &spec.tables {
        return tables.iter().map(|t| (t.family, t.name.clone())).collect();
    }
    spec.nft
        .as_deref()
        .and_then(|s| scan(s).ok())
        .map(|t| nft_tables(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities() {
        let p = |s: &str| priority_value(Family::Inet, Hook::Input, &IntOrString::String(s.into()));
        assert_eq!(p("filter"), Ok(0));
        assert_eq!(p("raw + 5"), Ok(-295));
        assert_eq!(p("mangle-1"), Ok(-151));
        assert_eq!(p("-7"), Ok(-7));
        assert_eq!(
            p("dstnat"),
            Err("priority dstnat is only valid for prerouting chains, not input".into())
        );
        assert!(p("filter + x").is_err());
        assert_eq!(
            priority_value(
                Family::Bridge,
                Hook::Input,
                &IntOrString::String("filter".into())
            ),
            Ok(-200)
        );
    }

    #[test]
    fn durations() {
        for ok in ["30s", "1h30m", "2d", "500ms"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["", "30", "s", "1x", "1h 30m"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn finds_tables_in_nft_text() {
        let src = "table inet a {\n chain c { jump d; }\n}\ntable b { }\nadd table ip6 c\n";
        let tokens = scan(src).unwrap();
        assert_eq!(
            nft_tables(&tokens),
            vec![
                (Family::Inet, "a".into()),
                (Family::Ip, "b".into()),
                (Family::Ip6, "c".into())
            ]
        );
    }
}
