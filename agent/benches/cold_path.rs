//! The cold path (#20): what a user runs, `linx-agent apply -f FILE.nft` from
//! a fresh process, against `nft -f FILE.nft`, on `testing::realistic_ruleset`
//! (10 chains; counters, comments, IPv6, ranges, `iifname`; 5% of rules with
//! an anonymous set), each case in fresh throwaway namespaces:
//!
//! - whole apply into an empty namespace;
//! - a one-rule change, the namespace holding the file: `linx-agent apply`
//!   of the edited file (compile, pull, diff, push) against nft's full
//!   reload (`delete table` + the edited file, one transaction);
//! - where Linx's time goes, measured in this process on the same files:
//!   compile, pull, diff, encode, the kernel's commit, printing the patch
//!   (as `apply` does); and the children's user and system (kernel) time.
//!
//! Each figure is the median of RUNS (5; 3 at 100,000 rules) with the
//! spread (min–max); Linx's and nft's runs alternate, so load on the
//! machine falls on both alike. nft runs under `nsenter --net=…`, as a user
//! must run it; its start (measured alone and printed) is in nft's figures.
//!
//! `cargo bench -p linx-agent --bench cold_path [-- quick | SIZES…]` (root).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use linx_netfilter::diff::diff;
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{encode, encode_named_patch, name_patch, PushOptions};
use linx_netfilter::syntax::compile;
use linx_netfilter::testing::{realistic_ruleset, TestNetns};
use linx_netfilter::{Family, Socket};

const AGENT: &str = env!("CARGO_BIN_EXE_linx-agent");

/// One child's wall time and its user and system CPU time.
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    wall: Duration,
    user: Duration,
    sys: Duration,
}

fn children() -> (Duration, Duration) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Runs `cmd` to completion; it must succeed.
fn run(cmd: &mut Command) -> Cost {
    let (u0, s0) = children();
    let t = Instant::now();
    let out = cmd.output().expect("spawn");
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (u1, s1) = children();
    Cost {
        wall,
        user: u1 - u0,
        sys: s1 - s0,
    }
}

fn apply(ns: &TestNetns, file: &Path) -> Cost {
    run(Command::new(AGENT)
        .args(["apply", "--netns"])
        .arg(ns.path())
        .arg("-f")
        .arg(file))
}

fn nft(ns: &TestNetns, file: &Path) -> Cost {
    run(Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["nft", "-f"])
        .arg(file))
}

/// Median and spread of a series.
struct Stat {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn stat(mut v: Vec<Duration>) -> Stat {
    v.sort();
    Stat {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms:.1}")
    }
}

fn spread(s: &Stat) -> String {
    format!("{} ms ({}–{})", ms(s.median), ms(s.min), ms(s.max))
}

fn median_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    stat((0..runs).map(|_| f()).collect()).median
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// A row: Linx's and nft's series, the ratio of medians, and the children's
/// CPU (medians) so the kernel's share shows.
fn row(case: &str, ours: &[Cost], theirs: &[Cost], target: &str) {
    let (o, t) = (
        stat(ours.iter().map(|c| c.wall).collect()),
        stat(theirs.iter().map(|c| c.wall).collect()),
    );
    let cpu = |c: &[Cost]| {
        format!(
            "{}/{}",
            ms(stat(c.iter().map(|c| c.user).collect()).median),
            ms(stat(c.iter().map(|c| c.sys).collect()).median)
        )
    };
    let ratio = o.median.as_secs_f64() / t.median.as_secs_f64();
    let limit: Option<f64> = target.trim_start_matches("≤ ").parse().ok();
    let verdict = match limit {
        Some(l) if ratio <= l => "✓",
        Some(_) => "✗",
        None => "",
    };
    println!(
        "| {case} | {} | {} | {} | {} | {ratio:.2} | {target} | {verdict} |",
        spread(&o),
        spread(&t),
        cpu(ours),
        cpu(theirs)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "quick");
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = if quick {
            vec![10_000]
        } else {
            vec![10_000, 100_000]
        };
    }
    let dir = std::env::temp_dir().join(format!("linx-cold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // Process start.
    let version = |c: &mut Command| run(c).wall;
    let start = stat(
        (0..50)
            .map(|_| version(Command::new(AGENT).arg("--version")))
            .collect(),
    );
    let nft_start = stat(
        (0..50)
            .map(|_| version(Command::new("nft").arg("--version")))
            .collect(),
    );
    let ns = TestNetns::new();
    let nsenter_start = stat(
        (0..50)
            .map(|_| {
                version(
                    Command::new("nsenter")
                        .arg(format!("--net={}", ns.path().display()))
                        .arg("true"),
                )
            })
            .collect(),
    );
    drop(ns);
    println!(
        "process start (50 runs): `linx-agent --version` {}; `nft --version` {}; `nsenter --net=… true` {}",
        spread(&start),
        spread(&nft_start),
        spread(&nsenter_start)
    );
    println!();
    println!(
        "| case | Linx wall | nft wall | Linx user/sys | nft user/sys | Linx / nft | target | |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |");

    let mut phases = Vec::new();
    for &n in &sizes {
        let runs = if quick || n >= 100_000 { 3 } else { 5 };
        let text = realistic_ruleset(n);
        // One rule's verdict changed, near the middle.
        let i = (n / 2) / 20 * 20 + 4;
        let needle = format!("counter accept comment \"svc {i}\"");
        assert!(text.contains(&needle), "rule {i} not in the file");
        let edited = text.replace(&needle, &format!("counter drop comment \"svc {i}\""));
        let file = dir.join(format!("realistic-{n}.nft"));
        let edited_file = dir.join(format!("realistic-{n}-edited.nft"));
        let reload = dir.join(format!("realistic-{n}-reload.nft"));
        let reload_back = dir.join(format!("realistic-{n}-reload-back.nft"));
        std::fs::write(&file, &text).unwrap();
        std::fs::write(&edited_file, &edited).unwrap();
        std::fs::write(&reload, format!("delete table inet realistic\n{edited}")).unwrap();
        std::fs::write(&reload_back, format!("delete table inet realistic\n{text}")).unwrap();

        // Whole apply into an empty namespace.
        let (mut ours, mut theirs) = (vec![], vec![]);
        for _ in 0..runs {
            let a = TestNetns::new();
            ours.push(apply(&a, &file));
            drop(a);
            let b = TestNetns::new();
            theirs.push(nft(&b, &file));
        }
        let target = if n >= 100_000 { "≤ 0.1" } else { "≤ 0.5" };
        row(
            &format!("whole apply, {n} rules, empty namespace"),
            &ours,
            &theirs,
            target,
        );

        // A one-rule change, back and forth, the namespace holding the file.
        let (a, b) = (TestNetns::new(), TestNetns::new());
        apply(&a, &file);
        let _ = nft(&b, &file);
        let (mut ours, mut theirs) = (vec![], vec![]);
        for k in 0..runs {
            let (to, back) = if k % 2 == 0 {
                (&edited_file, &reload)
            } else {
                (&file, &reload_back)
            };
            ours.push(apply(&a, to));
            theirs.push(nft(&b, back));
        }
        let target = if n >= 100_000 { "≤ 0.1" } else { "≤ 0.25" };
        row(
            &format!("one-rule change, {n} rules, cold process vs `nft -f` full reload"),
            &ours,
            &theirs,
            target,
        );

        // Where it goes, in this process (the namespace `a` holds `file`
        // or `edited` after the runs above: change it to the other).
        let to_text = if runs % 2 == 1 { &text } else { &edited };
        let compile_t = median_of(runs, || timed(|| compile(to_text).unwrap()).1);
        // As the agent compares: its tables carry its ownership marker.
        let mut value = compile(to_text).unwrap();
        value
            .tables
            .iter_mut()
            .for_each(linx_netfilter::reconcile::mark);
        let mut sock = Socket::open(&a.netns()).unwrap();
        let which = Selector::Tables(vec![(Family::Inet, "realistic".into())]);
        let pull_t = median_of(runs, || timed(|| pull(&mut sock, &which).unwrap()).1);
        let state = pull(&mut sock, &which).unwrap().ruleset;
        let diff_t = median_of(runs, || timed(|| diff(&state, &value)).1);
        let mut patch = diff(&state, &value);
        let encode_t = median_of(runs, || {
            timed(|| {
                let mut p = patch.clone();
                name_patch(&mut p, &state);
                encode_named_patch(&p)
            })
            .1
        });
        name_patch(&mut patch, &state);
        let mut enc = encode_named_patch(&patch);
        let (_, commit_t) = timed(|| sock.commit(&mut enc.batch, None).unwrap());
        let render_t = median_of(runs, || timed(|| patch.render(&value)).1);
        let full = compile(&text).unwrap();
        // `apply` prints what it pushed: for a whole apply, every rule.
        let whole_patch = diff(&linx_netfilter::Ruleset::default(), &full);
        let whole_render_t = median_of(runs, || timed(|| whole_patch.render(&full)).1);
        let whole_encode_t = median_of(runs, || timed(|| encode(&full, &PushOptions::default())).1);
        let whole_compile_t = median_of(runs, || timed(|| compile(&text).unwrap()).1);
        let c = TestNetns::new();
        let mut csock = Socket::open(&c.netns()).unwrap();
        let mut enc = encode(&full, &PushOptions::default());
        let (_, whole_commit_t) = timed(|| csock.commit(&mut enc.batch, None).unwrap());
        phases.push((
            n,
            [
                ("compile", whole_compile_t, compile_t),
                ("pull", Duration::ZERO, pull_t),
                ("diff", Duration::ZERO, diff_t),
                ("encode", whole_encode_t, encode_t),
                ("commit (kernel)", whole_commit_t, commit_t),
                ("print the patch", whole_render_t, render_t),
            ],
            patch.len(),
        ));
    }
    println!();
    println!(
        "Where Linx's time goes (this process, medians; the process start above comes on top):"
    );
    println!();
    println!("| rules | phase | whole apply | one-rule change |");
    println!("| ---: | --- | ---: | ---: |");
    for (n, ph, ops) in phases {
        for (name, whole, change) in ph {
            let w = if whole.is_zero() {
                "–".to_owned()
            } else {
                format!("{} ms", ms(whole))
            };
            println!("| {n} | {name} | {w} | {} ms |", ms(change));
        }
        println!("| {n} | operations in the change | | {ops} |");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
