//! The nftables conformance corpus (`rules.tsv`, `rules_fail.tsv`,
//! `dumps.tsv` and the dumps): accepted rows, grouped per .t file, and the
//! nft script that sets up their tables, chains, sets and objects.
//!
//! The corpus is GPL test data kept outside this repository: it is found
//! at `$LINX_CONFORMANCE`, else at `shared/conformance` beside the
//! repository (as CI lays it out). A clone without it still passes
//! `cargo test`: every test that needs it starts with
//!
//! ```ignore
//! if common::corpus::require().is_none() {
//!     return; // printed why
//! }
//! ```
//!
//! which, when the corpus is absent, prints one `skipped` line naming the
//! test and the reason ([`optional`] for a test that has inputs of its own
//! too). The other functions here expect it present.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use linx_netfilter::testing::TestNetns;

/// Where the corpus is, if it is anywhere. `$LINX_CONFORMANCE` set to a
/// folder without the corpus is an error, not a reason to skip.
fn locate() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LINX_CONFORMANCE") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("rules.tsv").exists(),
            "LINX_CONFORMANCE={} holds no rules.tsv",
            dir.display()
        );
        return Some(dir);
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    beside.join("rules.tsv").exists().then_some(beside)
}

const ABSENT: &str = "needs nftables' conformance corpus, absent here \
     (set LINX_CONFORMANCE, or put it at ../shared/conformance beside the repository)";

/// The corpus folder, or `None` after printing that the calling test
/// skips because the corpus is absent.
pub fn require() -> Option<PathBuf> {
    let found = locate();
    if found.is_none() {
        super::skip(ABSENT);
    }
    found
}

/// Like [`require`], for a test that also checks inputs of its own: when
/// the corpus is absent it says that only the corpus part is skipped.
pub fn optional() -> Option<PathBuf> {
    let found = locate();
    if found.is_none() {
        let thread = std::thread::current();
        super::say(&format!(
            "{}: corpus part skipped: {ABSENT}",
            thread.name().unwrap_or("a test")
        ));
    }
    found
}

/// The corpus folder; call [`require`] first.
pub fn conformance_dir() -> PathBuf {
    locate()
        .expect("the conformance corpus is absent: start the test with common::corpus::require()")
}

/// [`conformance_dir`] as a string, for building paths.
pub fn corpus() -> String {
    conformance_dir().display().to_string()
}

/// One accepted row of rules.tsv.
#[derive(Clone, Debug)]
pub struct Row {
    pub file: String,
    pub family: String,
    pub chain_spec: String,
    pub set_specs: String,
    pub rule: String,
    pub lineno: String,
    pub table: String,
    pub chain: String,
    pub obj_specs: String,
    /// What `nft -s -p list` printed for it.
    pub listed: String,
}

impl Row {
    pub fn what(&self) -> String {
        format!(
            "{}:{} [{} {} {}] {}",
            self.file, self.lineno, self.family, self.table, self.chain, self.rule
        )
    }
}

pub fn read_rows() -> Vec<Row> {
    let path = conformance_dir().join("rules.tsv");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("rules.tsv has no column {name}"))
    };
    let (file, family, chain_spec, set_specs, rule, accepted, lineno, table, chain, obj_specs) = (
        col("file"),
        col("family"),
        col("chain_spec"),
        col("set_specs"),
        col("rule"),
        col("accepted"),
        col("lineno"),
        col("table"),
        col("chain"),
        col("obj_specs"),
    );
    let listed = col("listed");
    lines
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.get(accepted) == Some(&"yes"))
        .map(|f| {
            let g = |i: usize| f.get(i).copied().unwrap_or("").to_owned();
            Row {
                file: g(file),
                family: g(family),
                chain_spec: g(chain_spec),
                set_specs: g(set_specs),
                rule: g(rule),
                lineno: g(lineno),
                table: g(table),
                chain: g(chain),
                obj_specs: g(obj_specs),
                listed: g(listed),
            }
        })
        .collect()
}

/// `spec;ok` -> `spec`; object specs may carry `;` inside their braces.
pub fn strip_status(body: &str) -> &str {
    if let Some(b) = body.rfind('}') {
        if body[b + 1..].starts_with(';') {
            return &body[..=b];
        }
    }
    body.rsplit_once(';').map_or(body, |(s, _)| s)
}

/// A `!` / `?` / `%` directive of a .t file as an nft command for one table.
pub fn spec_command(line: &str, family: &str, table: &str) -> Option<String> {
    let (head, body) = line.split_at(1);
    let spec = strip_status(body).trim();
    let (name, rest) = spec.split_once(' ').unwrap_or((spec, ""));
    match head {
        "!" => {
            // Trailing `timeout X` / `flags X` become set options.
            let mut toks: Vec<&str> = rest.split_whitespace().collect();
            let mut opts = Vec::new();
            while toks.len() >= 2 && matches!(toks[toks.len() - 2], "timeout" | "flags") {
                let n = toks.len();
                opts.insert(0, format!("{} {};", toks[n - 2], toks[n - 1]));
                toks.truncate(n - 2);
            }
            let key = toks.join(" ");
            let kind = if key.contains(" : ") { "map" } else { "set" };
            Some(format!(
                "add {kind} {family} {table} {name} {{ {key}; {} }}",
                opts.join(" ")
            ))
        }
        "?" => Some(format!(
            "add element {family} {table} {name} {{ {} }}",
            rest.trim()
        )),
        "%" => {
            let rest = rest.trim().strip_prefix("type")?.trim_start();
            let (otype, args) = if let Some(r) = rest.strip_prefix("ct ") {
                let (k, a) = r.trim_start().split_once(' ').unwrap_or((r, ""));
                (format!("ct {k}"), a)
            } else {
                let (k, a) = rest.split_once(' ').unwrap_or((rest, ""));
                (k.to_owned(), a)
            };
            Some(format!("add {otype} {family} {table} {name} {args}"))
        }
        _ => None,
    }
}

/// All rows of one .t file: tables, their chains, and the rows per chain.
pub struct FileGroup {
    pub file: String,
    /// (family, table) -> setup lines (sets, elements, objects), in order.
    pub tables: BTreeMap<(String, String), Vec<String>>,
    /// (family, table, chain) -> (chain spec, rows in load order).
    pub chains: BTreeMap<(String, String, String), (String, Vec<Row>)>,
}

pub fn group(rows: Vec<Row>) -> Vec<FileGroup> {
    let mut by_file: BTreeMap<String, FileGroup> = BTreeMap::new();
    for r in rows {
        let g = by_file.entry(r.file.clone()).or_insert_with(|| FileGroup {
            file: r.file.clone(),
            tables: BTreeMap::new(),
            chains: BTreeMap::new(),
        });
        let setup = g
            .tables
            .entry((r.family.clone(), r.table.clone()))
            .or_default();
        let specs = r
            .set_specs
            .split(" ; ")
            .chain(r.obj_specs.split(" | "))
            .filter(|s| !s.is_empty());
        for s in specs {
            if let Some(cmd) = spec_command(s, &r.family, &r.table) {
                if !setup.contains(&cmd) {
                    setup.push(cmd);
                }
            }
        }
        let spec = r
            .chain_spec
            .split_once(';')
            .map_or("", |(_, s)| s)
            .to_owned();
        g.chains
            .entry((r.family.clone(), r.table.clone(), r.chain.clone()))
            .or_insert_with(|| (spec, Vec::new()))
            .1
            .push(r);
    }
    by_file.into_values().collect()
}

pub fn setup_script(g: &FileGroup) -> String {
    let mut s = String::new();
    for ((fam, table), setup) in &g.tables {
        let _ = writeln!(s, "add table {fam} {table}");
        for ((f, t, c), (spec, _)) in &g.chains {
            if f == fam && t == table {
                let _ = writeln!(s, "add chain {f} {t} {c} {{ {spec}; }}");
            }
        }
        for line in setup {
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

pub fn rule_line(r: &Row) -> String {
    format!("add rule {} {} {} {}\n", r.family, r.table, r.chain, r.rule)
}

/// Runs `f` on every group, on as many threads as there are cores times
/// two (the work is mostly waiting for nft and the kernel).
pub fn for_each_parallel<T: Send + 'static>(
    groups: Vec<FileGroup>,
    state: Arc<Mutex<T>>,
    f: fn(&FileGroup, &Mutex<T>),
) {
    let queue = Arc::new(Mutex::new(groups));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, state) = (queue.clone(), state.clone());
            std::thread::spawn(move || loop {
                let Some(g) = queue.lock().unwrap().pop() else {
                    break;
                };
                f(&g, &state);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker panicked");
    }
}

/// What loading a group into a namespace achieved.
pub struct Loaded<'g> {
    /// Rows in the kernel, per (family, table, chain), in load order.
    pub rows: HashMap<(String, String, String), Vec<&'g Row>>,
    /// Setup lines and rows nft refused here: (the row, if a row; message).
    pub refused: Vec<(Option<&'g Row>, String)>,
    /// Whether everything went in as one batch.
    pub batch_ok: bool,
}

/// Loads a group's setup and rules: in one batch when nft takes it,
/// else the setup line by line and one rule per load.
pub fn load_group<'g>(ns: &TestNetns, g: &'g FileGroup) -> Loaded<'g> {
    let setup = setup_script(g);
    let mut script = setup.clone();
    for (_, rows) in g.chains.values() {
        for r in rows {
            script.push_str(&rule_line(r));
        }
    }
    let mut out = Loaded {
        rows: HashMap::new(),
        refused: Vec::new(),
        batch_ok: ns.nft_load(&script).is_ok(),
    };
    if out.batch_ok {
        for (k, (_, rows)) in &g.chains {
            out.rows.insert(k.clone(), rows.iter().collect());
        }
        return out;
    }
    if ns.nft_load(&setup).is_err() {
        for line in setup.lines() {
            if let Err(e) = ns.nft_load(line) {
                out.refused.push((
                    None,
                    format!("{}: setup `{line}` failed: {}", g.file, e.trim()),
                ));
            }
        }
    }
    for (k, (_, rows)) in &g.chains {
        for r in rows {
            match ns.nft_load(&rule_line(r)) {
                Ok(_) => out.rows.entry(k.clone()).or_default().push(r),
                Err(e) => out
                    .refused
                    .push((Some(r), format!("{}: nft refused: {}", r.what(), e.trim()))),
            }
        }
    }
    out
}

/// The dumps (`dumps/...nft`, relative to the corpus) that dumps.tsv
/// says nft loads on this machine.
/// Files of dumps.tsv that nft 1.0.6 loads (paths relative to the corpus).
pub fn loadable_dumps() -> Vec<String> {
    let tsv = std::fs::read_to_string(conformance_dir().join("dumps.tsv")).expect("read dumps.tsv");
    tsv.lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let file = cols.next()?;
            (cols.next()? == "yes").then(|| file.to_owned())
        })
        .collect()
}

/// Blanks what two namespaces holding the same ruleset may differ in, in
/// an `nft list ruleset` listing (see `testing::masked_listing`).
pub fn mask_listing(listing: &str) -> String {
    linx_netfilter::testing::masked_listing(listing)
}

/// Runs `check` on every file on four threads (the work is mostly
/// waiting for nft and the kernel); the failures, sorted, with why.
pub fn failures_parallel(
    files: &[String],
    check: impl Fn(&str) -> Result<(), String> + Sync,
) -> Vec<(String, String)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                if let Err(e) = check(f) {
                    failures.lock().unwrap().push((f.clone(), e));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    failures
}
