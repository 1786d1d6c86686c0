//! Compiling nft text: Linx's compiler against `nft -c -f` (which parses,
//! evaluates and encodes without loading) on the same files, in the same
//! run. `nft -c` runs inside a throwaway namespace.
//!
//! `cargo bench -p linx-netfilter --bench compile` (`-- quick`: 1,000 and
//! 10,000 rules only). Also compiles nftables' conformance corpus when it
//! is present (`$LINX_CONFORMANCE` or `../shared/conformance`), and says
//! so when it is not.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use linx_netfilter::model::Family;
use linx_netfilter::syntax::{self, Includes};
use linx_netfilter::testing::{realistic_ruleset, TestNetns};
use linx_netfilter::Table;

/// Median, minimum and maximum of `n` timed runs of `f`.
fn spread(n: usize, mut f: impl FnMut() -> Duration) -> (Duration, Duration, Duration) {
    let mut v: Vec<Duration> = (0..n).map(|_| f()).collect();
    v.sort();
    (v[n / 2], v[0], v[n - 1])
}

fn us_per(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 50_000]
    };
    let ns = TestNetns::new();
    let dir = std::env::temp_dir().join(format!("linx-bench-compile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!(
        "Compiling nft text: realistic mix (testing::realistic_ruleset), medians of 5 (min–max)."
    );
    println!("CPU time (user + system) is the figure compared: it holds on a loaded machine; wall time beside it.");
    println!("| rules | Linx CPU | Linx µs/rule | Linx wall | nft -c -f CPU | nft µs/rule | nft wall | Linx/nft |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        let text = realistic_ruleset(n);
        let path = dir.join(format!("realistic-{n}.nft"));
        std::fs::write(&path, &text).expect("write file");
        let runs = 5;
        let rs = syntax::compile(&text).expect("the realistic ruleset compiles");
        let compiled: usize = rs.tables[0].chains.iter().map(|c| c.rules.len()).sum();
        assert!(compiled > n, "every rule compiled");
        let mut wall = Vec::new();
        let linx = spread(runs, || {
            let (t, c) = (Instant::now(), cpu_self());
            let rs = syntax::compile(&text).expect("compiles");
            let d = cpu_self() - c;
            wall.push(t.elapsed());
            drop(rs);
            d
        });
        let p = path.to_str().expect("utf-8 path");
        let mut nft_wall = Vec::new();
        let nft = spread(runs, || {
            let (t, c) = (Instant::now(), cpu_children());
            ns.nft(&["-c", "-f", p]).expect("nft -c accepts the file");
            nft_wall.push(t.elapsed());
            cpu_children() - c
        });
        wall.sort();
        nft_wall.sort();
        println!(
            "| {n} | {:.1} ms ({:.1}–{:.1}) | {:.2} | {:.1} ms | {:.1} ms ({:.1}–{:.1}) | {:.2} | {:.1} ms | {:.3} |",
            ms(linx.0),
            ms(linx.1),
            ms(linx.2),
            us_per(linx.0, n),
            ms(wall[runs / 2]),
            ms(nft.0),
            ms(nft.1),
            ms(nft.2),
            us_per(nft.0, n),
            ms(nft_wall[runs / 2]),
            linx.0.as_secs_f64() / nft.0.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    corpus();
}

/// CPU time this process has used (all threads).
fn cpu_self() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of the children waited for so far (`nsenter` and `nft`).
fn cpu_children() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn corpus_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LINX_CONFORMANCE") {
        return Some(PathBuf::from(d));
    }
    let beside = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance");
    beside.join("rules.tsv").exists().then_some(beside)
}

/// The whole corpus: every accepted rule of `rules.tsv` that needs no
/// set or object declared first (compiled alone in an empty table), and
/// every whole-file dump.
fn corpus() {
    let Some(dir) = corpus_dir() else {
        println!("corpus: skipped (nftables' conformance corpus is absent: set LINX_CONFORMANCE or put it at ../shared/conformance)");
        return;
    };
    let tsv = std::fs::read_to_string(dir.join("rules.tsv")).expect("rules.tsv");
    let mut rows: Vec<(Family, String)> = Vec::new();
    for line in tsv.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 14 || f[5] != "yes" || !f[3].is_empty() || !f[13].is_empty() {
            continue;
        }
        if let Some(fam) = Family::from_name(f[1]) {
            rows.push((fam, f[4].to_owned()));
        }
    }
    let tables: Vec<Table> = Family::ALL.iter().map(|f| Table::new(*f, "t")).collect();
    let table = |f: Family| tables.iter().find(|t| t.family == f).expect("family");
    let mut ok = 0;
    let rules = spread(5, || {
        ok = 0;
        let c = cpu_self();
        for (fam, rule) in &rows {
            ok += syntax::compile_rule(*fam, table(*fam), rule).is_ok() as usize;
        }
        cpu_self() - c
    });
    println!(
        "corpus rules.tsv: {} rules ({ok} compiled alone): CPU {:.1} ms ({:.1}–{:.1}), {:.2} µs/rule",
        rows.len(),
        ms(rules.0),
        ms(rules.1),
        ms(rules.2),
        us_per(rules.0, rows.len())
    );
    let mut files = Vec::new();
    collect(&dir.join("dumps"), &mut files);
    files.sort();
    let texts: Vec<(String, String)> = files
        .iter()
        .filter_map(|p| Some((p.to_str()?.to_owned(), std::fs::read_to_string(p).ok()?)))
        .collect();
    let mut nrules = 0;
    let whole = spread(5, || {
        nrules = 0;
        let c = cpu_self();
        for (name, text) in &texts {
            if let Ok(rs) = syntax::compile_source(Some(name), text, &Includes::Refuse) {
                nrules += rs
                    .tables
                    .iter()
                    .flat_map(|t| &t.chains)
                    .map(|c| c.rules.len())
                    .sum::<usize>();
            }
        }
        cpu_self() - c
    });
    println!(
        "corpus dumps: {} files, {nrules} rules: CPU {:.1} ms ({:.1}–{:.1}), {:.2} µs/rule",
        texts.len(),
        ms(whole.0),
        ms(whole.1),
        ms(whole.2),
        us_per(whole.0, nrules.max(1))
    );
}

fn collect(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "nft") {
            out.push(p);
        }
    }
}
