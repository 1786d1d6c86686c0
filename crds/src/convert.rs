//! A spec as nft text, and as the engine's values (`linx_netfilter::Ruleset`).
//!
//! Structured tables are rendered to nft text one declaration per line
//! ([`render`]), so that a compiler error's line maps back to the spec field
//! it came from. `spec.nft` is compiled as written; [`NftOrigins`] maps its
//! rules back to their lines. The nft compiler (`linx_netfilter::syntax`)
//! is called from the [`compiler`] module below and nowhere else.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use linx_netfilter::syntax::ast::{Object as AstObject, Op};
use linx_netfilter::syntax::Span;
use linx_netfilter::{Rule, Ruleset, Table};

use crate::diagnostic::Diagnostic;
use crate::references::{self, Place};
use crate::resource::{
    limits, ChainSpec, Family, FirewallRulesetSpec, Hook, MapSpec, ObjectSpec, Policy, SetSpec,
    TableSpec,
};

/// The only calls into the nft compiler (`linx_netfilter::syntax`): a
/// script (what it leaves in an empty namespace), one rule in a table's
/// context, and the parse that [`NftOrigins`] reads.
mod compiler {
    use linx_netfilter::syntax::{ast::Script, Diagnostics};
    use linx_netfilter::{Family, Rule, Ruleset, Table};

    /// `(line, column, message)` of each compiler diagnostic.
    pub(super) type Errors = Vec<(u32, u32, String)>;

    fn errors(d: Diagnostics) -> Errors {
        d.0.into_iter()
            .map(|d| (d.line as u32, d.column as u32, d.summary()))
            .collect()
    }

    pub(super) fn compile(src: &str) -> Result<Ruleset, Errors> {
        linx_netfilter::syntax::compile(src).map_err(errors)
    }

    pub(super) fn compile_rule(family: Family, table: &Table, rule: &str) -> Result<Rule, Errors> {
        linx_netfilter::syntax::compile_rule(family, table, rule).map_err(errors)
    }

    pub(super) fn parse(src: &str) -> Option<Script> {
        linx_netfilter::syntax::parse(src).ok()
    }
}

/// The spec family of an engine family.
pub fn crd_family(f: linx_netfilter::Family) -> Option<Family> {
    Family::ALL.into_iter().find(|c| c.as_str() == f.name())
}

/// Where the tables and rules an nft script leaves came from: the script's
/// commands replayed in order for what they add and remove (tables, chains,
/// rules; `flush ruleset`, `delete table`, `flush chain` ...), so the rule
/// `i` of a compiled chain is named by its line and column. A test checks
/// it against the compiler's own result on every good file and the corpus.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftOrigins {
    tables: Vec<TableOrigin>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct TableOrigin {
    family: linx_netfilter::Family,
    name: String,
    /// Chains in declaration order, each with its rules' starts.
    chains: Vec<(String, Vec<Span>)>,
}

impl NftOrigins {
    /// The origins of `src`; `None` when it does not parse.
    pub fn of(src: &str) -> Option<NftOrigins> {
        let script = compiler::parse(src)?;
        let mut o = NftOrigins::default();
        for cmd in &script.commands {
            if let AstObject::Ruleset = cmd.object {
                if cmd.op == Op::Flush {
                    o.tables.clear();
                }
                continue;
            }
            let Some(family) = linx_netfilter::Family::from_name(&cmd.family) else {
                continue;
            };
            let ti = o
                .tables
                .iter()
                .position(|t| t.family == family && t.name == cmd.table);
            let removes = matches!(cmd.op, Op::Delete | Op::Destroy);
            let flushes = cmd.op == Op::Flush;
            match (&cmd.object, ti) {
                (AstObject::Table { .. }, Some(ti)) if removes => {
                    o.tables.remove(ti);
                }
                (AstObject::Table { .. }, Some(ti)) if flushes => {
                    o.tables[ti].chains.iter_mut().for_each(|c| c.1.clear());
                }
                (AstObject::Table { .. }, None) if !removes && !flushes => {
                    o.tables.push(TableOrigin {
                        family,
                        name: cmd.table.clone(),
                        chains: Vec::new(),
                    })
                }
                (AstObject::Chain(d), Some(ti)) => {
                    let chains = &mut o.tables[ti].chains;
                    let ci = chains.iter().position(|c| c.0 == d.name);
                    match ci {
                        Some(ci) if removes => {
                            chains.remove(ci);
                        }
                        Some(ci) if flushes => chains[ci].1.clear(),
                        None if !removes && !flushes => chains.push((d.name.clone(), Vec::new())),
                        _ => {}
                    }
                }
                (AstObject::Rule { chain, .. }, Some(ti)) if !removes => {
                    if let Some(c) = o.tables[ti].chains.iter_mut().find(|c| &c.0 == chain) {
                        if cmd.op == Op::Insert {
                            c.1.insert(0, cmd.span);
                        } else {
                            c.1.push(cmd.span);
                        }
                    }
                }
                _ => {}
            }
        }
        Some(o)
    }

    /// The tables the script leaves, sorted.
    pub fn tables(&self) -> Vec<(Family, String)> {
        let mut v: Vec<(Family, String)> = self
            .tables
            .iter()
            .filter_map(|t| Some((crd_family(t.family)?, t.name.clone())))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Where rule `index` of `chain` in table `family name` starts.
    pub fn rule(
        &self,
        family: linx_netfilter::Family,
        table: &str,
        chain: &str,
        index: usize,
    ) -> Option<Span> {
        let t = self
            .tables
            .iter()
            .find(|t| t.family == family && t.name == table)?;
        let (_, rules) = t.chains.iter().find(|c| c.0 == chain)?;
        rules.get(index).copied()
    }

    /// Rules per chain, `(family, table, chain) -> count`, as the replay
    /// found them (for the test that holds this to the compiler).
    pub fn rule_counts(&self) -> HashMap<(linx_netfilter::Family, String, String), usize> {
        let mut m = HashMap::new();
        for t in &self.tables {
            for (c, rules) in &t.chains {
                m.insert((t.family, t.name.clone(), c.clone()), rules.len());
            }
        }
        m
    }
}

/// The engine's family for a spec family.
pub fn family(f: Family) -> linx_netfilter::Family {
    match f {
        Family::Inet => linx_netfilter::Family::Inet,
        Family::Ip => linx_netfilter::Family::Ip,
        Family::Ip6 => linx_netfilter::Family::Ip6,
        Family::Arp => linx_netfilter::Family::Arp,
        Family::Bridge => linx_netfilter::Family::Bridge,
        Family::Netdev => linx_netfilter::Family::Netdev,
    }
}

/// Where a rendered line came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub field: String,
    pub table: Option<String>,
    pub chain: Option<String>,
    pub item: Option<String>,
    /// Columns (1-based, first and last) of the line that hold the field's
    /// own text, so a compiler position maps back into the field.
    pub span: Option<(u32, u32)>,
}

/// nft text for structured tables, and the origin of each line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// `origins[i]` describes line `i + 1`.
    pub origins: Vec<Origin>,
}

impl Rendered {
    fn line(&mut self, indent: usize, text: &str, origin: &Origin) {
        for _ in 0..indent {
            self.text.push('\t');
        }
        self.text.push_str(text);
        self.text.push('\n');
        self.origins.push(origin.clone());
    }

    /// A line `prefix text suffix` whose `text` is a field's own text.
    fn field_line(
        &mut self,
        indent: usize,
        prefix: &str,
        text: &str,
        suffix: &str,
        origin: &Origin,
    ) {
        let first = (indent + prefix.chars().count() + 1) as u32;
        let span = Some((first, first + text.chars().count() as u32));
        self.line(
            indent,
            &format!("{prefix}{text}{suffix}"),
            &Origin {
                span,
                ..origin.clone()
            },
        );
    }

    /// A compiler error at `line:column` of the rendered text, named by its origin.
    fn diagnostic(&self, line: u32, column: u32, message: String) -> Diagnostic {
        let o = self
            .origins
            .get(line.saturating_sub(1) as usize)
            .cloned()
            .unwrap_or_default();
        // Positions count inside the field's own text; elsewhere (keywords
        // linx wrote) only the field is named.
        let position = o
            .span
            .filter(|(first, end)| (*first..=*end).contains(&column))
            .map(|(first, _)| (1, column - first + 1));
        Diagnostic {
            field: o.field,
            table: o.table,
            chain: o.chain,
            item: o.item,
            position,
            message,
        }
    }
}

/// Renders structured tables as an `nft -f` file, rules included when
/// `with_rules`. Comments and names are written as given; the validator
/// has checked them.
///
/// ```
/// use linx_crds::{convert::render, FirewallRulesetSpec};
/// let spec: FirewallRulesetSpec = serde_yaml::from_str(r#"
/// tables:
/// - {name: fw, family: inet, chains: [{name: input, type: filter, hook: input, policy: drop, rules: ["accept"]}]}
/// "#).unwrap();
/// assert_eq!(
///     render(spec.tables.as_deref().unwrap(), true).text,
///     "table inet fw {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t\taccept\n\t}\n}\n"
/// );
/// ```
pub fn render(tables: &[TableSpec], with_rules: bool) -> Rendered {
    let mut r = Rendered::default();
    for (ti, t) in tables.iter().enumerate() {
        let label = format!("{} {}", t.family, t.name);
        let o = Origin {
            field: format!("spec.tables[{ti}]"),
            table: Some(label.clone()),
            ..Default::default()
        };
        r.line(0, &format!("table {} {} {{", t.family, t.name), &o);
        if let Some(c) = &t.comment {
            r.line(
                1,
                &format!("comment \"{c}\""),
                &Origin {
                    field: format!("{}.comment", o.field),
                    ..o.clone()
                },
            );
        }
        for (oi, obj) in t.objects.iter().enumerate() {
            let oo = Origin {
                field: format!("{}.objects[{oi}]", o.field),
                item: Some(format!("object {}", obj.name)),
                ..o.clone()
            };
            render_object(&mut r, obj, &oo);
        }
        for (si, s) in t.sets.iter().enumerate() {
            let so = Origin {
                field: format!("{}.sets[{si}]", o.field),
                item: Some(format!("set {}", s.name)),
                ..o.clone()
            };
            render_set(&mut r, s, &so);
        }
        for (mi, m) in t.maps.iter().enumerate() {
            let mo = Origin {
                field: format!("{}.maps[{mi}]", o.field),
                item: Some(format!("map {}", m.name)),
                ..o.clone()
            };
            render_map(&mut r, m, &mo);
        }
        for (ci, c) in t.chains.iter().enumerate() {
            let co = Origin {
                field: format!("{}.chains[{ci}]", o.field),
                chain: Some(c.name.clone()),
                ..o.clone()
            };
            render_chain(&mut r, t.family, c, &co, with_rules);
        }
        r.line(0, "}", &o);
    }
    r
}

fn render_object(r: &mut Rendered, obj: &ObjectSpec, o: &Origin) {
    r.line(
        1,
        &format!("{} {} {{", obj.object_type.as_str(), obj.name),
        o,
    );
    if let Some(d) = &obj.definition {
        r.field_line(
            2,
            "",
            d,
            "",
            &Origin {
                field: format!("{}.definition", o.field),
                ..o.clone()
            },
        );
    }
    if let Some(c) = &obj.comment {
        r.line(
            2,
            &format!("comment \"{c}\""),
            &Origin {
                field: format!("{}.comment", o.field),
                ..o.clone()
            },
        );
    }
    r.line(1, "}", o);
}

#[allow(clippy::too_many_arguments)]
fn render_set_body(
    r: &mut Rendered,
    o: &Origin,
    type_line: (&str, &str, String, String),
    flags: &[crate::resource::SetFlag],
    timeout: Option<&str>,
    size: Option<u32>,
    comment: Option<&str>,
    elements: Vec<String>,
) {
    let sub = |f: &str| Origin {
        field: format!("{}.{f}", o.field),
        ..o.clone()
    };
    let (field, prefix, text, suffix) = type_line;
    r.field_line(2, prefix, &text, &suffix, &sub(field));
    if !flags.is_empty() {
        let names: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
        r.line(2, &format!("flags {}", names.join(",")), &sub("flags"));
    }
    if let Some(t) = timeout {
        r.line(2, &format!("timeout {t}"), &sub("timeout"));
    }
    if let Some(s) = size {
        r.line(2, &format!("size {s}"), &sub("size"));
    }
    if let Some(c) = comment {
        r.line(2, &format!("comment \"{c}\""), &sub("comment"));
    }
    if !elements.is_empty() {
        // One element per line, so an error's line names the element.
        r.line(2, "elements = {", &sub("elements"));
        let n = elements.len();
        for (i, e) in elements.into_iter().enumerate() {
            let sep = if i + 1 < n { "," } else { "" };
            r.field_line(3, "", &e, sep, &sub(&format!("elements[{i}]")));
        }
        r.line(2, "}", &sub("elements"));
    }
}

fn render_set(r: &mut Rendered, s: &SetSpec, o: &Origin) {
    r.line(1, &format!("set {} {{", s.name), o);
    let ty = match (&s.set_type, &s.type_of) {
        (Some(t), _) => ("type", "type ", t.clone(), String::new()),
        (None, Some(t)) => ("typeof", "typeof ", t.clone(), String::new()),
        (None, None) => ("type", "", String::new(), String::new()),
    };
    let comment = s.comment.as_deref();
    render_set_body(
        r,
        o,
        ty,
        &s.flags,
        s.timeout.as_deref(),
        s.size,
        comment,
        s.elements.clone(),
    );
    r.line(1, "}", o);
}

fn render_map(r: &mut Rendered, m: &MapSpec, o: &Origin) {
    r.line(1, &format!("map {} {{", m.name), o);
    let ty = match (&m.key_type, &m.key_typeof) {
        (Some(t), _) => ("type", "type ", t.clone(), format!(" : {}", m.value_type)),
        (None, Some(t)) => (
            "typeof",
            "typeof ",
            t.clone(),
            format!(" : {}", m.value_type),
        ),
        (None, None) => ("type", "", String::new(), String::new()),
    };
    let elements = m
        .elements
        .iter()
        .map(|e| format!("{} : {}", e.key, e.value))
        .collect();
    let comment = m.comment.as_deref();
    render_set_body(
        r,
        o,
        ty,
        &m.flags,
        m.timeout.as_deref(),
        m.size,
        comment,
        elements,
    );
    r.line(1, "}", o);
}

fn render_chain(r: &mut Rendered, family: Family, c: &ChainSpec, o: &Origin, with_rules: bool) {
    r.line(1, &format!("chain {} {{", c.name), o);
    if let (Some(ty), Some(hook)) = (c.chain_type, c.hook) {
        let mut line = format!("type {} hook {}", ty.as_str(), hook.as_str());
        if let Some(devs) = &c.devices {
            let quoted: Vec<String> = devs.iter().map(|d| format!("\"{d}\"")).collect();
            line.push_str(&format!(" devices = {{ {} }}", quoted.join(", ")));
        }
        let prio = match &c.priority {
            None => "0".to_string(),
            Some(p) => {
                priority_value(family, hook, p).map_or_else(|_| "0".into(), |v| v.to_string())
            }
        };
        line.push_str(&format!(" priority {prio};"));
        if let Some(p) = c.policy {
            line.push_str(if p == Policy::Drop {
                " policy drop;"
            } else {
                " policy accept;"
            });
        }
        r.line(2, &line, o);
    }
    if let Some(cm) = &c.comment {
        r.line(
            2,
            &format!("comment \"{cm}\""),
            &Origin {
                field: format!("{}.comment", o.field),
                ..o.clone()
            },
        );
    }
    if with_rules {
        for (ri, rule) in c.rules.iter().enumerate() {
            let ro = Origin {
                field: format!("{}.rules[{ri}]", o.field),
                item: Some(format!("rule {ri}")),
                ..o.clone()
            };
            r.line(2, rule, &ro);
        }
    }
    r.line(1, "}", o);
}

/// The spec as the engine's values: what an agent pushes into each pod.
/// Needs the compiler; every error is named by field, table, chain, rule
/// and line:column. Callers decide validity with [`crate::compile`], which
/// checks the structure first.
pub fn to_ruleset(spec: &FirewallRulesetSpec) -> Result<Ruleset, Vec<Diagnostic>> {
    if let Some(src) = &spec.nft {
        let rs = compiler::compile(src).map_err(|errs| {
            errs.into_iter()
                .map(|(l, c, m)| Diagnostic::new("spec.nft", m).at(l, c))
                .collect::<Vec<_>>()
        })?;
        if rs.tables.is_empty() {
            return Err(vec![Diagnostic::new(
                "spec.nft",
                "the text leaves no table: declare the tables this resource owns (e.g. table inet fw { ... })",
            )]);
        }
        let problems = references::check(&rs);
        return if problems.is_empty() {
            Ok(rs)
        } else {
            Err(locate(spec, &rs, problems))
        };
    }
    let (rs, mut diags) = structured(spec.tables.as_deref().unwrap_or_default());
    let Some(rs) = rs else { return Err(diags) };
    // References are checked even when some rules failed (those hold an
    // empty placeholder), so every error is reported at once.
    diags.extend(locate(spec, &rs, references::check(&rs)));
    if diags.is_empty() {
        return Ok(rs);
    }
    diags.sort_by_cached_key(|d| natural_key(&d.field));
    Err(diags)
}

/// A field path ordered as the spec lists it (`rules[2]` before `rules[10]`).
fn natural_key(field: &str) -> Vec<Result<u64, String>> {
    let mut key = Vec::new();
    let mut rest = field;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            key.push(Ok(rest[..digits].parse().unwrap_or(u64::MAX)));
            rest = &rest[digits..];
        } else {
            let text = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
            key.push(Err(rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    key
}

/// Problems found on `rs` (compiled from `spec`) as diagnostics naming
/// the spec field, table, chain and item, and for `spec.nft` the line.
pub(crate) fn locate(
    spec: &FirewallRulesetSpec,
    rs: &Ruleset,
    problems: Vec<references::Problem>,
) -> Vec<Diagnostic> {
    if problems.is_empty() {
        return Vec::new();
    }
    match (&spec.nft, &spec.tables) {
        (Some(src), _) => {
            let origins = NftOrigins::of(src).unwrap_or_default();
            problems
                .into_iter()
                .map(|p| nft_problem(rs, &origins, p))
                .collect()
        }
        (None, tables) => {
            let tables = tables.as_deref().unwrap_or_default();
            problems
                .into_iter()
                .map(|p| structured_problem(rs, tables, p))
                .collect()
        }
    }
}

fn label(t: &Table) -> String {
    format!("{} {}", t.family.name(), t.name)
}

/// A reference problem in `spec.nft`, at the line of the rule it is in.
fn nft_problem(rs: &Ruleset, origins: &NftOrigins, p: references::Problem) -> Diagnostic {
    let t = &rs.tables[p.table];
    let d = Diagnostic::new("spec.nft", p.message).table(label(t));
    match p.place {
        Place::Rule { chain, index } => {
            let at = origins.rule(t.family, &t.name, &chain, index);
            let d = d.chain(chain).item(format!("rule {index}"));
            match at {
                Some(s) => d.at(s.line, s.column),
                None => d,
            }
        }
        Place::Element { set, .. } => d.item(format!("map {set}")),
        Place::Chain { chain } => d.chain(chain),
    }
}

/// A reference problem of structured tables, named by its spec field.
fn structured_problem(rs: &Ruleset, tables: &[TableSpec], p: references::Problem) -> Diagnostic {
    let t = &rs.tables[p.table];
    let ti = tables
        .iter()
        .position(|x| family(x.family) == t.family && x.name == t.name);
    let Some(ti) = ti else {
        return Diagnostic::new("spec.tables", p.message).table(label(t));
    };
    let spec = &tables[ti];
    let field = format!("spec.tables[{ti}]");
    match p.place {
        Place::Chain { chain } => match spec.chains.iter().position(|c| c.name == chain) {
            Some(ci) => Diagnostic::new(format!("{field}.chains[{ci}]"), p.message),
            None => Diagnostic::new(field, p.message),
        }
        .table(label(t))
        .chain(chain),
        Place::Rule { chain, index } => {
            match spec.chains.iter().position(|c| c.name == chain) {
                Some(ci) => {
                    Diagnostic::new(format!("{field}.chains[{ci}].rules[{index}]"), p.message)
                        .item(format!("rule {index}"))
                }
                // A chain the compiler made (bound to a rule's `jump { ... }`).
                None => Diagnostic::new(field, p.message),
            }
            .table(label(t))
            .chain(chain)
        }
        Place::Element { set, index } => {
            let (kind, list) = match spec.maps.iter().position(|m| m.name == set) {
                Some(mi) => ("map", format!("maps[{mi}]")),
                None => match spec.sets.iter().position(|s| s.name == set) {
                    Some(si) => ("set", format!("sets[{si}]")),
                    None => ("set", String::new()),
                },
            };
            let f = if list.is_empty() {
                field
            } else {
                format!("{field}.{list}.elements[{index}].value")
            };
            Diagnostic::new(f, p.message)
                .table(label(t))
                .item(format!("{kind} {set}"))
        }
    }
}

/// Structured tables compiled: declarations first (tables, chains, sets,
/// maps, objects), then each rule on its own, so a rule's error carries
/// the rule's own line:column and every rule's error is found. A rule that
/// fails leaves an empty rule in its place (rule indices stay the spec's);
/// no value at all when the declarations fail.
fn structured(tables: &[TableSpec]) -> (Option<Ruleset>, Vec<Diagnostic>) {
    let decls = render(tables, false);
    let mut rs = match compiler::compile(&decls.text) {
        Ok(rs) => rs,
        Err(errs) => {
            let d = errs.into_iter().map(|(l, c, m)| decls.diagnostic(l, c, m));
            return (None, d.collect());
        }
    };
    let mut diags = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let fam = family(t.family);
        let Some(table) = rs
            .tables
            .iter()
            .position(|x| x.family == fam && x.name == t.name)
        else {
            diags.push(Diagnostic::new(
                format!("spec.tables[{ti}]"),
                "the compiler produced no such table",
            ));
            continue;
        };
        for (ci, c) in t.chains.iter().enumerate() {
            let mut rules: Vec<Rule> = Vec::with_capacity(c.rules.len().min(limits::RULES));
            for (ri, rule) in c.rules.iter().enumerate() {
                let snapshot: &Table = &rs.tables[table];
                match compiler::compile_rule(fam, snapshot, rule) {
                    Ok(r) => rules.push(r),
                    Err(errs) => {
                        rules.push(Rule::new(Vec::new()));
                        diags.extend(errs.into_iter().map(|(l, col, m)| {
                            Diagnostic::new(
                                format!("spec.tables[{ti}].chains[{ci}].rules[{ri}]"),
                                m,
                            )
                            .table(format!("{} {}", t.family, t.name))
                            .chain(c.name.clone())
                            .item(format!("rule {ri}"))
                            .at(l, col)
                        }))
                    }
                }
            }
            if let Some(chain) = rs.tables[table]
                .chains
                .iter_mut()
                .find(|x| x.name == c.name)
            {
                chain.rules = rules.into();
            }
        }
    }
    (Some(rs), diags)
}

/// A standard priority name's value on a base chain of `family` on `hook`:
/// nft's own names, from the engine's vocabulary (one table for this
/// check, the compiler and the printer).
fn standard_priority(family: Family, hook: Hook, name: &str) -> Result<i32, String> {
    use linx_netfilter::syntax::vocab::priority_names;
    let engine = self::family(family);
    if let Some((_, v)) = priority_names(engine, hook_number(family, hook))
        .iter()
        .find(|(n, _)| *n == name)
    {
        return Ok(*v);
    }
    // Where else in this family the name is valid, for the message.
    let hooks = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];
    let valid_on: Vec<&str> = hooks
        .iter()
        .filter(|h| {
            priority_names(engine, hook_number(family, **h))
                .iter()
                .any(|(n, _)| *n == name)
        })
        .map(|h| h.as_str())
        .collect();
    if !valid_on.is_empty() {
        return Err(format!(
            "priority {name} is only valid for {} chains, not {}",
            valid_on.join(", "),
            hook.as_str()
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for h in hooks {
        for (n, _) in priority_names(engine, hook_number(family, h)) {
            if !names.contains(n) {
                names.push(n);
            }
        }
    }
    Err(format!(
        "unknown priority {name:?} in the {family} family ({})",
        names.join(", ")
    ))
}

/// The kernel's number of `hook` in `family` (`NF_INET_*`, `NF_ARP_*`,
/// `NF_NETDEV_*`, `NF_BR_*`).
fn hook_number(family: Family, hook: Hook) -> u32 {
    match (family, hook) {
        (Family::Netdev, Hook::Ingress) => 0,
        (Family::Netdev, Hook::Egress) => 1,
        (Family::Arp, Hook::Input) => 0,
        (Family::Arp, Hook::Output) => 1,
        (Family::Arp, _) => 2,
        (_, Hook::Prerouting) => 0,
        (_, Hook::Input) => 1,
        (_, Hook::Forward) => 2,
        (_, Hook::Output) => 3,
        (_, Hook::Postrouting) => 4,
        (_, Hook::Ingress) => 5,
        (_, Hook::Egress) => 6,
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
}
