//! The code reads one way (#14): no import circle between modules at any
//! folder level, in the engine or any other crate of the repository, the
//! engine's layers in their documented order, and no source file over
//! 1,000 lines but the generated tables.
//!
//! The checker parses each crate with `syn` from its root (`lib.rs`,
//! `main.rs`, `src/bin/*.rs`), following `mod` declarations, and collects
//! every module path a module names: `use crate::a::b`, `use super::…`,
//! grouped uses, paths in code and in macro bodies, names imported and
//! re-exported (`super::Op` is the module `Op` is re-exported from). An edge
//! from `a::x::y` to `a::z` is an edge `a::x → a::z` among the children of
//! `a`; a circle among the children of any module is a failure naming its
//! modules and the uses that close it. Code under `#[cfg(test)]` is left
//! out: a test may use anything.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Generated tables, allowed over 1,000 lines.
const GENERATED: &[&str] = &["netfilter/src/sys/generated.rs"];

/// Files over 1,000 lines being split right now, named with their issue;
/// remove each as its split lands (empty since #14's compiler and e2e
/// splits landed).
const BEING_SPLIT: &[&str] = &[];

/// Folders whose children still import each other in a circle, being
/// broken right now (empty since #14's compiler split landed), as
/// (crate root, module; "" for the root). Remove each as it lands.
const CIRCLES_BEING_BROKEN: &[(&str, &str)] = &[];

/// The engine's top-level modules by layer: a module may use only modules
/// of its own layer or the layers before it (`docs/architecture.md`).
/// Within a layer, the circle check keeps the order one way.
const ENGINE_LAYERS: &[(&str, &[&str])] = &[
    ("kernel constants", &["sys"]),
    ("errors", &["error"]),
    ("transport", &["netns", "netlink"]),
    ("values", &["expr", "proto", "object", "model"]),
    ("codec", &["codec"]),
    ("state", &["diff", "pull", "push"]),
    ("language", &["syntax", "print"]),
    ("control", &["events", "reconcile"]),
    ("observation", &["interfaces", "packet", "nflog", "trace"]),
    ("tests", &["testing"]),
];

#[test]
fn the_engines_layers_read_one_way() {
    let root = repo().join("netfilter/src/lib.rs");
    let krate = Crate::load(&root).unwrap();
    let mut wrong = Vec::new();
    let rank = |m: &str| {
        ENGINE_LAYERS
            .iter()
            .position(|(_, ms)| ms.contains(&m))
            .unwrap_or_else(|| panic!("engine module `{m}` is in no layer of ENGINE_LAYERS"))
    };
    for m in &krate.modules {
        let Some(top) = m.path.first() else { continue };
        for (to, why) in krate.targets(m) {
            match to.first() {
                Some(t) if t != top && rank(t) > rank(top) => wrong.push(format!(
                    "{top} ({}) uses {t} ({}): {why}",
                    ENGINE_LAYERS[rank(top)].0,
                    ENGINE_LAYERS[rank(t)].0
                )),
                _ => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the engine's layers must read one way:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_crate_has_an_import_circle() {
    let mut report = String::new();
    let mut seen = BTreeSet::new();
    for (name, root) in crate_roots() {
        let krate = Crate::load(&root).unwrap();
        for c in krate.circles() {
            let level = c.level.join("::");
            if CIRCLES_BEING_BROKEN.contains(&(name.as_str(), level.as_str())) {
                seen.insert((name.clone(), level));
                continue;
            }
            let _ = writeln!(report, "{name}: {c}");
        }
    }
    for (k, level) in CIRCLES_BEING_BROKEN {
        if !seen.contains(&(k.to_string(), level.to_string())) {
            eprintln!(
                "layers: {k} {level} has no circle any more: take it off CIRCLES_BEING_BROKEN"
            );
        }
    }
    assert!(report.is_empty(), "import circles:\n{report}");
}

#[test]
fn no_source_file_over_1000_lines() {
    let repo = repo();
    let mut files = Vec::new();
    rust_files(&repo, &mut files);
    let mut over = Vec::new();
    let mut split = BTreeSet::new();
    for f in files {
        let rel = f
            .strip_prefix(&repo)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let lines = std::fs::read_to_string(&f).unwrap().lines().count();
        if lines <= 1000 || GENERATED.contains(&rel.as_str()) {
            continue;
        }
        if BEING_SPLIT.contains(&rel.as_str()) {
            split.insert(rel);
            continue;
        }
        over.push(format!("{rel}: {lines} lines"));
    }
    for f in BEING_SPLIT.iter().filter(|f| !split.contains(**f)) {
        eprintln!("layers: {f} is no longer over 1,000 lines: take it off BEING_SPLIT");
    }
    assert!(
        over.is_empty(),
        "source files over 1,000 lines:\n{}",
        over.join("\n")
    );
}

#[test]
fn the_checker_finds_seeded_circles() {
    let dir = Scratch::new("circles");
    dir.write(
        "lib.rs",
        "mod a;\nmod b;\nmod c;\nmod deep;\n#[cfg(test)]\nmod tests;\n",
    );
    // a → b through a grouped use, b → a through a path in code.
    dir.write("a.rs", "use crate::{c::C, b::{self, B}};\npub struct A;\n");
    dir.write(
        "b.rs",
        "pub struct B;\nfn f() -> crate::a::A { crate::a::A }\n",
    );
    // Test code is left out: this would close a → c → a.
    dir.write(
        "c.rs",
        "pub struct C;\n#[cfg(test)]\nfn t() -> crate::a::A { crate::a::A }\n",
    );
    // In deep/: x → y through `super`, y → z in a macro body, z → x
    // through an item re-exported by deep/mod.rs.
    dir.write("deep/mod.rs", "mod x;\nmod y;\nmod z;\npub use x::X;\n");
    dir.write(
        "deep/x.rs",
        "use super::y;\npub struct X;\nfn f() { y::g(); }\n",
    );
    dir.write(
        "deep/y.rs",
        "pub fn g() { println!(\"{}\", super::z::Z); }\n",
    );
    dir.write("deep/z.rs", "pub struct Z;\nfn h(_: super::X) {}\n");
    let krate = Crate::load(&dir.0.join("lib.rs")).unwrap();
    let circles: Vec<String> = krate.circles().iter().map(|c| c.to_string()).collect();
    let names: Vec<(String, Vec<String>)> = krate
        .circles()
        .iter()
        .map(|c| {
            (
                c.level.join("::"),
                c.members.iter().map(|m| m.join("::")).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("".into(), vec!["a".into(), "b".into()]),
            (
                "deep".into(),
                vec!["deep::x".into(), "deep::y".into(), "deep::z".into()]
            ),
        ],
        "{circles:#?}"
    );
    assert!(
        circles[0].contains("a.rs") && circles[0].contains("b.rs"),
        "{circles:#?}"
    );
}

#[test]
fn the_checker_passes_a_clean_tree() {
    let dir = Scratch::new("clean");
    dir.write("lib.rs", "pub mod low;\npub mod high;\npub use high::H;\n");
    dir.write("low/mod.rs", "mod base;\nmod top;\npub use base::L;\n");
    // Test code is left out: this would close high → low → high.
    dir.write(
        "low/base.rs",
        "pub struct L;\n#[cfg(test)]\nmod tests {\n    use crate::high::H;\n}\n",
    );
    dir.write("low/top.rs", "use super::L;\npub struct T(L);\n");
    dir.write(
        "high.rs",
        "use crate::low::{self, L};\npub struct H(L, low::L);\n",
    );
    let krate = Crate::load(&dir.0.join("lib.rs")).unwrap();
    assert!(krate.modules.len() == 5, "{:?}", krate.modules);
    let circles: Vec<String> = krate.circles().iter().map(|c| c.to_string()).collect();
    assert!(circles.is_empty(), "{circles:#?}");
    // The edges it saw: high → low, and top → base through mod.rs's re-export.
    let edges: BTreeSet<(String, String)> = krate
        .modules
        .iter()
        .flat_map(|m| {
            krate
                .targets(m)
                .into_keys()
                .map(|t| (m.path.join("::"), t.join("::")))
        })
        .collect();
    assert!(
        edges.contains(&("high".into(), "low::base".into())),
        "{edges:?}"
    );
    assert!(
        edges.contains(&("low::top".into(), "low::base".into())),
        "{edges:?}"
    );
}

// ---- the checker ----

type ModPath = Vec<String>;

#[derive(Debug)]
struct Module {
    path: ModPath,
    file: PathBuf,
    /// Names this module imports (`use`), as absolute paths.
    imports: HashMap<String, ModPath>,
    /// Child modules declared here.
    children: BTreeSet<String>,
    /// Paths named, as written (resolved once every module is known).
    paths: Vec<ModPath>,
}

struct Crate {
    modules: Vec<Module>,
    index: HashMap<ModPath, usize>,
}

/// A circle among the children of `level`.
struct Circle {
    level: ModPath,
    members: Vec<ModPath>,
    /// One use for each edge inside the circle.
    uses: Vec<String>,
}

impl std::fmt::Display for Circle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = if self.level.is_empty() {
            "the crate root".to_owned()
        } else {
            self.level.join("::")
        };
        let members: Vec<String> = self.members.iter().map(|m| m.join("::")).collect();
        write!(f, "in {level}: {}", members.join(" ↔ "))?;
        for u in &self.uses {
            write!(f, "\n    {u}")?;
        }
        Ok(())
    }
}

impl Crate {
    fn load(root: &Path) -> Result<Crate, String> {
        let mut modules = Vec::new();
        let dir = root.parent().unwrap().to_path_buf();
        load_file(Vec::new(), root, &dir, &mut modules)?;
        let index = modules
            .iter()
            .enumerate()
            .map(|(i, m)| (m.path.clone(), i))
            .collect();
        Ok(Crate { modules, index })
    }

    /// The modules `m` uses (not itself, its ancestors or descendants),
    /// each with where (file and path written).
    fn targets(&self, m: &Module) -> BTreeMap<ModPath, String> {
        let mut out = BTreeMap::new();
        for p in &m.paths {
            let Some(abs) = self.absolute(m, p) else {
                continue;
            };
            let to = self.module_of(abs);
            let related = to.len().min(m.path.len());
            if to[..related] == m.path[..related] {
                continue;
            }
            out.entry(to).or_insert_with(|| {
                let file = m.file.strip_prefix(repo()).unwrap_or(&m.file);
                format!("{} names {}", file.display(), p.join("::"))
            });
        }
        out
    }

    /// `p` as written in `m`, from the crate root; `None` for other crates'
    /// and local names.
    fn absolute(&self, m: &Module, p: &[String]) -> Option<ModPath> {
        let first = p.first()?;
        let mut base = m.path.clone();
        let rest = match first.as_str() {
            "crate" => {
                base.clear();
                &p[1..]
            }
            "self" | "super" => {
                let mut i = 0;
                while i < p.len() && (p[i] == "self" || p[i] == "super") {
                    if p[i] == "super" {
                        base.pop()?;
                    }
                    i += 1;
                }
                &p[i..]
            }
            name if m.imports.contains_key(name) => {
                base = m.imports[name].clone();
                &p[1..]
            }
            name if m.children.contains(name) => p,
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The module an absolute path leads to, following imports and
    /// re-exports (`crate::diff::Op` is `diff::patch`'s).
    fn module_of(&self, mut path: ModPath) -> ModPath {
        for _ in 0..16 {
            let n = (0..=path.len())
                .rev()
                .find(|&n| self.index.contains_key(&path[..n]))
                .unwrap_or(0);
            let m = &self.modules[self.index[&path[..n]]];
            match path.get(n).and_then(|next| m.imports.get(next)) {
                Some(to) if *to != path[..=n] => {
                    let mut p = to.clone();
                    p.extend(path[n + 1..].iter().cloned());
                    path = p;
                }
                _ => return path[..n].to_vec(),
            }
        }
        path
    }

    /// Circles among the children of every module.
    fn circles(&self) -> Vec<Circle> {
        // level → (child → (child → one use))
        let mut levels: BTreeMap<ModPath, BTreeMap<ModPath, BTreeMap<ModPath, String>>> =
            BTreeMap::new();
        for m in &self.modules {
            for (to, why) in self.targets(m) {
                let common = m.path.iter().zip(&to).take_while(|(a, b)| a == b).count();
                let (a, b) = (m.path[..=common].to_vec(), to[..=common].to_vec());
                let level = levels.entry(m.path[..common].to_vec()).or_default();
                level.entry(a).or_default().entry(b).or_insert(why);
            }
        }
        let mut out = Vec::new();
        for (level, graph) in levels {
            for members in strongly_connected(&graph) {
                let mut uses = Vec::new();
                for a in &members {
                    for (b, why) in &graph[a] {
                        if members.contains(b) {
                            uses.push(format!("{} → {}: {why}", a.join("::"), b.join("::")));
                        }
                    }
                }
                out.push(Circle {
                    level: level.clone(),
                    members,
                    uses,
                });
            }
        }
        out
    }
}

/// Tarjan's algorithm: the components of more than one node, each sorted.
fn strongly_connected(g: &BTreeMap<ModPath, BTreeMap<ModPath, String>>) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        g: &'a BTreeMap<ModPath, BTreeMap<ModPath, String>>,
        index: HashMap<&'a ModPath, (usize, usize)>,
        stack: Vec<&'a ModPath>,
        on: BTreeSet<&'a ModPath>,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        let i = s.index.len();
        s.index.insert(v, (i, i));
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.index[w].1.min(s.index[v].1);
                s.index.get_mut(v).unwrap().1 = low;
            } else if s.on.contains(w) {
                let low = s.index[w].0.min(s.index[v].1);
                s.index.get_mut(v).unwrap().1 = low;
            }
        }
        if s.index[v].0 == s.index[v].1 {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                c.push(w.clone());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                s.out.push(c);
            }
        }
    }
    let mut s = State {
        g,
        index: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// Parses the module in `file` (its children's files under `dir`).
fn load_file(path: ModPath, file: &Path, dir: &Path, out: &mut Vec<Module>) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let ast = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    load_items(path, file, dir, &ast.items, out)
}

fn load_items(
    path: ModPath,
    file: &Path,
    dir: &Path,
    items: &[syn::Item],
    out: &mut Vec<Module>,
) -> Result<(), String> {
    let mut m = Collector {
        module: Module {
            path: path.clone(),
            file: file.to_path_buf(),
            imports: HashMap::new(),
            children: BTreeSet::new(),
            paths: Vec::new(),
        },
    };
    let items: Vec<&syn::Item> = items.iter().filter(|i| !is_test(attrs(i))).collect();
    let mut children = Vec::new();
    for item in &items {
        if let syn::Item::Mod(md) = item {
            m.module.children.insert(md.ident.to_string());
            children.push((md.ident.to_string(), md));
        }
    }
    for item in items.iter().filter(|i| !matches!(i, syn::Item::Mod(_))) {
        m.visit_item(item);
    }
    out.push(m.module);
    for (name, md) in children {
        let mut child = path.clone();
        child.push(name.clone());
        let sub = dir.join(&name);
        match &md.content {
            Some((_, items)) => load_items(child, file, &sub, items, out)?,
            None => {
                let flat = dir.join(format!("{name}.rs"));
                if flat.exists() {
                    load_file(child, &flat, &sub, out)?;
                } else {
                    load_file(child, &sub.join("mod.rs"), &sub, out)?;
                }
            }
        }
    }
    Ok(())
}

fn attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

/// `#[cfg(test)]` or `#[cfg(all(.., test, ..))]`: compiled only for tests.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    let is_test = |t: &TokenStream| {
        let t: Vec<TokenTree> = t.clone().into_iter().collect();
        match t.as_slice() {
            [TokenTree::Ident(i)] => i == "test",
            [TokenTree::Ident(all), TokenTree::Group(g)] if all == "all" => g
                .stream()
                .into_iter()
                .any(|t| matches!(t, TokenTree::Ident(i) if i == "test")),
            _ => false,
        }
    };
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.meta.require_list().is_ok_and(|l| is_test(&l.tokens))
    })
}

/// Collects the paths one module names.
struct Collector {
    module: Module,
}

impl Collector {
    fn use_tree(&mut self, prefix: &mut ModPath, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                if name == "self" {
                    self.import(prefix.last().cloned(), prefix.clone());
                } else {
                    let mut full = prefix.clone();
                    full.push(name.clone());
                    self.import(Some(name), full);
                }
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                if r.ident != "self" {
                    full.push(r.ident.to_string());
                }
                self.import(Some(r.rename.to_string()), full);
            }
            syn::UseTree::Glob(_) => self.module.paths.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// A `use` of `full` as `name`: kept as written (`super::x` stays
    /// relative to this module) when it is in the crate.
    fn import(&mut self, name: Option<String>, full: ModPath) {
        let first = full.first().map(String::as_str);
        let local = matches!(first, Some("crate" | "self" | "super"))
            || first.is_some_and(|f| self.module.children.contains(f));
        if !local {
            return;
        }
        self.module.paths.push(full.clone());
        if let Some(name) = name {
            let abs = absolute_in(&self.module.path, &full);
            if let Some(abs) = abs {
                self.module.imports.insert(name, abs);
            }
        }
    }

    /// `a::b::c` sequences in a macro's tokens (`format!("{}", crate::x::y())`).
    fn tokens(&mut self, tokens: TokenStream) {
        let mut path: ModPath = Vec::new();
        let mut colons = 0;
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => {
                    if colons == 2 || path.is_empty() {
                        path.push(i.to_string());
                    } else {
                        self.macro_path(std::mem::take(&mut path));
                        path.push(i.to_string());
                    }
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' => colons += 1,
                TokenTree::Group(g) => {
                    self.macro_path(std::mem::take(&mut path));
                    colons = 0;
                    self.tokens(g.stream());
                }
                _ => {
                    self.macro_path(std::mem::take(&mut path));
                    colons = 0;
                }
            }
        }
        self.macro_path(path);
    }

    fn macro_path(&mut self, p: ModPath) {
        if p.len() > 1 {
            self.module.paths.push(p);
        }
    }
}

/// `full` (a `use` path) from the crate root, for `crate`/`self`/`super`
/// paths and this module's children.
fn absolute_in(module: &[String], full: &[String]) -> Option<ModPath> {
    let mut base = module.to_vec();
    let mut i = 0;
    match full.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            i = 1;
        }
        Some("self" | "super") => {
            while i < full.len() && (full[i] == "self" || full[i] == "super") {
                if full[i] == "super" {
                    base.pop()?;
                }
                i += 1;
            }
        }
        _ => {}
    }
    base.extend(full[i..].iter().cloned());
    Some(base)
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        if !is_test(attrs(i)) {
            syn::visit::visit_item(self, i);
        }
    }

    fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
        if !is_test(&i.attrs) {
            syn::visit::visit_impl_item_fn(self, i);
        }
    }

    fn visit_item_use(&mut self, i: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &i.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: ModPath = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 {
            self.module.paths.push(segs);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

// ---- the repository ----

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every crate root of the workspace's members: (name, file).
fn crate_roots() -> Vec<(String, PathBuf)> {
    let repo = repo();
    let manifest = std::fs::read_to_string(repo.join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .expect("workspace members");
    let mut out = Vec::new();
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() {
            continue;
        }
        let src = repo.join(member).join("src");
        for root in ["lib.rs", "main.rs"] {
            if src.join(root).exists() {
                out.push((format!("{member}/src/{root}"), src.join(root)));
            }
        }
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            let mut bins: Vec<PathBuf> = bins.map(|b| b.unwrap().path()).collect();
            bins.sort();
            for b in bins
                .into_iter()
                .filter(|b| b.extension().is_some_and(|e| e == "rs"))
            {
                let name = format!(
                    "{member}/src/bin/{}",
                    b.file_name().unwrap().to_string_lossy()
                );
                out.push((name, b));
            }
        }
    }
    assert!(out.len() >= 7, "crate roots: {out:?}");
    out
}

/// Every `.rs` file of the repository (not build output).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() {
            if !(name.starts_with('.') || name == "target") {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// A throwaway source tree.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("linx-layers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, file: &str, text: &str) {
        let p = self.0.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
