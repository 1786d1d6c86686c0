//! Reconcile at the speed of the change: Linx against nft on the same
//! rulesets, measured in the same run, in throwaway namespaces.
//!
//! `cargo bench -p linx-netfilter --bench reconcile` (quick run with smaller
//! sizes: `-- quick`).

use std::time::{Duration, Instant};

use linx_netfilter::diff::{diff, diff_from, diff_single_threaded, Baseline};
use linx_netfilter::expr::{Bytes, Data, Expr};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{encode_patch, push_patch};
use linx_netfilter::reconcile::{Options, Outcome, Reconciler};
use linx_netfilter::testing::{
    synthetic_chain, synthetic_interval_set, synthetic_ruleset, unshared, TestNetns,
};
use linx_netfilter::{Element, Ruleset, Socket};

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// The run with the median time of `n`.
fn median<T>(n: usize, mut f: impl FnMut() -> (T, Duration)) -> (T, Duration) {
    let mut runs: Vec<(T, Duration)> = (0..n).map(|_| f()).collect();
    runs.sort_by_key(|r| r.1);
    runs.swap_remove(n / 2)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

struct Table(Vec<[String; 5]>);

impl Table {
    fn row(
        &mut self,
        case: impl Into<String>,
        linx: Duration,
        nft: Option<(Duration, &str)>,
        note: impl Into<String>,
    ) {
        let (nft_s, ratio) = match nft {
            Some((d, what)) => (
                format!("{} ({what})", ms(d)),
                format!("{:.4}", linx.as_secs_f64() / d.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        let r = [case.into(), ms(linx), nft_s, ratio, note.into()];
        println!("| {} | {} | {} | {} | {} |", r[0], r[1], r[2], r[3], r[4]);
        self.0.push(r);
    }
}

/// The value nft makes of `script`, loaded into `ns` and pulled back.
fn load_and_pull(ns: &TestNetns, script: &str) -> Ruleset {
    ns.load(script);
    pull(&mut Socket::open(&ns.netns()).unwrap(), &Selector::All)
        .unwrap()
        .ruleset
}

/// Changes the destination port compared by the rule at `index` of chain `chain`.
fn change_one_rule(v: &mut Ruleset, chain: &str, index: usize) {
    let c = v.tables[0]
        .chains
        .iter_mut()
        .find(|c| c.name == chain)
        .unwrap();
    let rule = &mut c.rules[index];
    let cmp = rule
        .exprs
        .iter_mut()
        .rev()
        .find_map(|e| if let Expr::Cmp(c) = e { Some(c) } else { None })
        .unwrap();
    cmp.data = Some(Data::value(vec![0xfe, 0xfe]));
}

fn reconcile(r: &mut Reconciler, v: &Ruleset) -> (Outcome, Duration) {
    timed(|| r.reconcile(v).expect("reconcile"))
}

/// How the synthetic rules are laid out.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// Chains of 1,000 rules reached by jumps from the base chain.
    Chains,
    /// All rules in the one base chain (a plain pod firewall's input chain).
    OneChain,
}

impl Shape {
    fn script(self, n: usize) -> String {
        match self {
            Shape::Chains => synthetic_ruleset(n, PER_CHAIN),
            Shape::OneChain => synthetic_chain(n),
        }
    }

    fn label(self, n: usize) -> String {
        match self {
            Shape::Chains => format!("{n} rules (1,000-rule chains)"),
            Shape::OneChain => format!("{n} rules (one chain)"),
        }
    }

    /// The chain and index of the rule the one-rule change edits: rule n/2.
    fn middle(self, n: usize) -> (String, usize) {
        match self {
            Shape::Chains => (format!("c{}", n / 2 / PER_CHAIN), n / 2 % PER_CHAIN),
            Shape::OneChain => ("input".into(), n / 2),
        }
    }
}

const PER_CHAIN: usize = 1000;

fn rules_case(t: &mut Table, n: usize, shape: Shape) {
    let script = shape.script(n);
    let label = shape.label(n);
    // A: managed by Linx. B: the same ruleset, managed by nft.
    let a = TestNetns::new();
    let b = TestNetns::new();
    let value = load_and_pull(&a, &script);
    b.load(&script);
    let mut r = Reconciler::new(
        Socket::open(&a.netns()).unwrap(),
        Options {
            adopt: true,
            ..Default::default()
        },
    );
    let (first, d) = reconcile(&mut r, &value);
    assert!(first.patch.is_empty());
    t.row(
        format!("adopt {label} (first pull)"),
        d,
        None,
        format!("{} pulls", first.pulls),
    );

    // Cheap and noisy on a shared machine: the median of several.
    let (same, d) = median(7, || reconcile(&mut r, &value));
    t.row(
        format!("no-change reconcile, {label}"),
        d,
        None,
        format!(
            "{} batch messages sent, {} pulls (one GETGEN)",
            same.messages, same.pulls
        ),
    );
    assert_eq!((same.messages, same.pulls), (0, 0));

    let mut changed = value.clone();
    let (chain, index) = shape.middle(n);
    change_one_rule(&mut changed, &chain, index);
    // Back and forth, each a one-rule change: the median of 21. The first
    // few commits after a load cost the kernel up to 2.5 times the later
    // ones (10k rules in one chain: 11 ms, then 4 ms); the median is the
    // steady cost. Odd, so the kernel ends holding `changed`.
    let mut forth = false;
    let (one, d) = median(21, || {
        forth = !forth;
        reconcile(&mut r, if forth { &changed } else { &value })
    });
    // nft: the same change as a full reload of the file, atomically.
    // (The first rule comparing this port is rule n/2, the one changed.)
    let new_script = script.replacen(
        &format!("tcp dport {} counter", 1 + (n / 2) % 65535),
        "tcp dport 65278 counter",
        1,
    );
    let reload = format!("delete table inet scale\n{new_script}");
    let (_, nft_reload) = median(3, || timed(|| b.load(&reload)));
    t.row(
        format!("one-rule change, {label}, known state"),
        d,
        Some((nft_reload, "nft -f full reload")),
        format!(
            "{} ops, {} messages, {} pulls",
            one.patch.len(),
            one.messages,
            one.pulls
        ),
    );
    let (_, nft_add) = median(5, || {
        timed(|| {
            b.nft(&[
                "add", "rule", "inet", "scale", &chain, "ip", "saddr", "10.9.9.9", "tcp", "dport",
                "9", "accept",
            ])
            .unwrap()
        })
    });
    t.row(
        format!("one-rule change, {label}, known state"),
        d,
        Some((nft_add, "nft add rule")),
        "",
    );
    breakdown(t, &a, &label, &changed, &value);

    // The same change when the known state is stale: pull + diff + push.
    r.forget();
    let (back, d) = reconcile(&mut r, &value);
    t.row(
        format!("one-rule change, {label}, after a pull"),
        d,
        Some((nft_reload, "nft -f full reload")),
        format!("{} pulls", back.pulls),
    );
}

/// CPU time this thread has spent in the kernel.
fn thread_sys_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    Duration::new(u.ru_stime.tv_sec as u64, u.ru_stime.tv_usec as u32 * 1000)
}

/// Where a one-rule change with known state spends its time: the same
/// steps as [`Reconciler::reconcile`], timed one by one, turning the
/// kernel's `from` (pulled here, untimed) into `to`.
fn breakdown(t: &mut Table, ns: &TestNetns, label: &str, from: &Ruleset, to: &Ruleset) {
    let mut sock = Socket::open(&ns.netns()).unwrap();
    let pulled = pull(&mut sock, &Selector::All).unwrap();
    let mut state = pulled.ruleset;
    assert_eq!(diff(&state, from).len(), 0, "the kernel holds `from`");
    // As the reconciler does: the state was last made equal to `from`.
    let baseline = Baseline::of(from);
    let (g, d_gen) = timed(|| sock.generation().unwrap().id);
    let (patch, d_diff) = timed(|| diff_from(&state, to, &baseline));
    let (enc, d_enc) = timed(|| encode_patch(&patch));
    drop(enc);
    let sys = thread_sys_time();
    let (pushed, d_push) = timed(|| push_patch(&mut sock, &patch, Some(g)).unwrap());
    let d_sys = thread_sys_time() - sys;
    let (_, d_apply) = timed(|| patch.apply_to(&mut state, &pushed.handles).unwrap());
    let (_, d_drop) = timed(|| drop(state));
    let total = d_gen + d_diff + d_push + d_apply;
    let part = |what: &str, d: Duration| {
        format!(
            "{what} {} ({:.0}%)",
            ms(d),
            100.0 * d.as_secs_f64() / total.as_secs_f64()
        )
    };
    t.row(
        format!("one-rule change, {label}, known state, step by step"),
        total,
        None,
        [
            part("GETGEN", d_gen),
            part("diff", d_diff),
            format!(
                "{} of which encode {}, kernel CPU {}",
                part("push", d_push),
                ms(d_enc),
                ms(d_sys)
            ),
            part("apply_to", d_apply),
            format!("(dropping the state after: {})", ms(d_drop)),
        ]
        .join("; "),
    );
}

fn diff_case(t: &mut Table, n: usize, shape: Shape) {
    let a = TestNetns::new();
    let value = load_and_pull(&a, &shape.script(n));
    let (chain, index) = shape.middle(n);
    let label = shape.label(n);
    // What the reconciler diffs with known state: the desired value is the
    // one last pushed, edited (copy on write: the other chains still shared).
    let mut edited = value.clone();
    change_one_rule(&mut edited, &chain, index);
    let state = unshared(&value);
    let baseline = Baseline::of(&value);
    let (p, d) = median(7, || timed(|| diff_from(&state, &edited, &baseline)));
    t.row(
        format!("diff from the last pushed value, {label}, one rule edited"),
        d,
        None,
        format!("{} ops", p.len()),
    );
    // Two values sharing nothing (a pull against a fresh compile): every
    // rule is compared.
    let other = unshared(&edited);
    let value = unshared(&value);
    // Interleaved, so both see the same load.
    let mut one_core = Vec::new();
    let (p, d) = median(7, || {
        one_core.push(timed(|| diff_single_threaded(&value, &other)).1);
        timed(|| diff(&value, &other))
    });
    one_core.sort();
    t.row(
        format!("diff, {label}, one rule apart"),
        d,
        None,
        format!(
            "{} ops; {} on one core",
            p.len(),
            ms(one_core[one_core.len() / 2])
        ),
    );
    let same = unshared(&value);
    let (_, d) = median(7, || timed(|| diff(&value, &same)));
    t.row(
        format!("diff, {label}, equal"),
        d,
        None,
        format!(
            "{} on one core",
            ms(median(7, || timed(|| diff_single_threaded(&value, &same))).1)
        ),
    );
}

fn interval_case(t: &mut Table, n: usize) {
    // Build the value from a small nft-made set, scaled up: same element
    // shapes (start, and end with the interval-end flag) for n ranges.
    let small = TestNetns::new();
    let mut value = load_and_pull(&small, &synthetic_interval_set(2));
    let set = &mut value.tables[0].sets[0];
    let template: Vec<Element> = set.elements.to_vec();
    let key_of =
        |e: &Element| u32::from_be_bytes(e.key.as_ref().unwrap().0[..4].try_into().unwrap());
    let base = 10u32 << 24;
    let (starts, rest): (Vec<&Element>, Vec<&Element>) =
        template.iter().partition(|e| key_of(e) == base);
    let start = starts[0].clone();
    let end = rest
        .iter()
        .find(|e| key_of(e) == base + 1)
        .cloned()
        .unwrap()
        .clone();
    let fixed: Vec<Element> = rest
        .iter()
        .filter(|e| !(base..base + 4).contains(&key_of(e)))
        .map(|e| (*e).clone())
        .collect();
    let mut elements = fixed;
    for i in 0..n as u32 {
        let a = base + 2 * i;
        let mut s = start.clone();
        s.key = Some(Bytes::from(a.to_be_bytes()));
        let mut e = end.clone();
        e.key = Some(Bytes::from((a + 1).to_be_bytes()));
        elements.push(s);
        elements.push(e);
    }
    set.elements = elements.into();

    let ns = TestNetns::new();
    let mut r = Reconciler::new(Socket::open(&ns.netns()).unwrap(), Options::default());
    let (_, d) = reconcile(&mut r, &value);
    t.row(
        format!("push a {n}-range interval set"),
        d,
        None,
        "whole set, one transaction",
    );

    let mut plus = value.clone();
    let a = base + 2 * n as u32 + 8;
    let mut s = start.clone();
    s.key = Some(Bytes::from(a.to_be_bytes()));
    let mut e = end.clone();
    e.key = Some(Bytes::from((a + 1).to_be_bytes()));
    plus.tables[0].sets[0].elements.extend([s, e]);
    let (out, d) = reconcile(&mut r, &plus);
    let addr = format!("{}.{}.{}.{}", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255);
    let (_, nft_add) = timed(|| {
        ns.nft(&[
            "add",
            "element",
            "inet",
            "scale",
            "big",
            &format!("{{ {addr}/32 }}"),
        ])
        .unwrap()
    });
    t.row(
        format!("one element into a {n}-range interval set, known state"),
        d,
        Some((nft_add, "nft add element")),
        format!("{} ops, {} messages", out.patch.len(), out.messages),
    );
    let (_, nft_list) = timed(|| ns.nft(&["list", "set", "inet", "scale", "big"]).unwrap());
    let (_, d) = timed(|| pull(&mut Socket::open(&ns.netns()).unwrap(), &Selector::All).unwrap());
    t.row(
        format!("pull a {n}-range interval set"),
        d,
        Some((nft_list, "nft list set")),
        "",
    );
}

fn profile(n: usize, runs: u32) {
    let a = TestNetns::new();
    let value = load_and_pull(&a, &synthetic_chain(n));
    let mut changed = value.clone();
    change_one_rule(&mut changed, "input", n / 2);
    let mut r = Reconciler::new(
        Socket::open(&a.netns()).unwrap(),
        Options {
            adopt: true,
            ..Default::default()
        },
    );
    reconcile(&mut r, &value);
    let (_, d) = timed(|| {
        for i in 0..runs {
            let (o, _) = reconcile(&mut r, if i % 2 == 0 { &changed } else { &value });
            assert_eq!(o.pulls, 0);
        }
    });
    println!(
        "{runs} one-rule changes on {n} rules in one chain: {} each",
        ms(d / runs)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "quick");
    // `rules N`: only the rule cases at N rules (for profiling).
    let only_rules: Option<usize> = args
        .iter()
        .position(|a| a == "rules")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    // `profile N`: one-rule changes back and forth on N rules in one chain,
    // with known state, for `perf record`.
    if let Some(n) = args
        .iter()
        .position(|a| a == "profile")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
    {
        let runs = args.last().and_then(|a| a.parse().ok()).unwrap_or(20);
        profile(n, runs);
        return;
    }
    let mut t = Table(Vec::new());
    println!("| case | linx | nft | linx/nft | notes |");
    println!("| --- | --- | --- | --- | --- |");
    // `diff N`: only the diffs at N rules.
    if let Some(n) = args
        .iter()
        .position(|a| a == "diff")
        .and_then(|i| args.get(i + 1)?.parse().ok())
    {
        for shape in [Shape::Chains, Shape::OneChain] {
            diff_case(&mut t, n, shape);
        }
        return;
    }
    if let Some(n) = only_rules {
        for shape in [Shape::Chains, Shape::OneChain] {
            diff_case(&mut t, n, shape);
            rules_case(&mut t, n, shape);
        }
        return;
    }
    for shape in [Shape::Chains, Shape::OneChain] {
        diff_case(&mut t, if quick { 10_000 } else { 100_000 }, shape);
    }
    for n in if quick {
        vec![10_000]
    } else {
        vec![10_000, 100_000]
    } {
        for shape in [Shape::Chains, Shape::OneChain] {
            rules_case(&mut t, n, shape);
        }
    }
    interval_case(&mut t, if quick { 100_000 } else { 1_000_000 });
}
