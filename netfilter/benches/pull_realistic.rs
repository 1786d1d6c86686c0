//! Pulling `testing::realistic_ruleset(n)` (5% of rules with an anonymous
//! set, so one element dump per such set) against `nft list ruleset` on the
//! same namespace, alternating.
//!
//! `cargo bench -p linx-netfilter --features testing --bench pull_realistic`
//! (sizes can be given: `... -- 10000 100000`; `netns=PATH` measures an
//! existing namespace instead, e.g. one kept loaded for profiling).

use std::time::{Duration, Instant};

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::testing::{nft_in, realistic_ruleset, TestNetns};
use linx_netfilter::{syntax, Netns, Socket};

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn spread((m, lo, hi): (Duration, Duration, Duration)) -> String {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    format!("{} ({}–{})", ms(m), ms(lo), ms(hi))
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

/// This process's CPU time so far (every thread, user and system).
fn cpu() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Times `runs` pulls and `nft list ruleset`s of the namespace at `path`.
fn measure(label: &str, path: &std::path::Path, runs: usize) {
    let netns: Netns = path.to_str().expect("utf-8 path").parse().expect("netns");
    let mut sock = Socket::open(&netns).expect("socket");
    let first = pull(&mut sock, &Selector::All).expect("pull").ruleset;
    let sets: usize = first
        .tables
        .iter()
        .map(|t| {
            t.sets.len()
                + t.chains
                    .iter()
                    .flat_map(|c| &c.rules)
                    .map(|r| r.sets.len())
                    .sum::<usize>()
        })
        .sum();
    let (mut pulls, mut cpus, mut lists) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        let c = cpu();
        let (p, d) = timed(|| pull(&mut sock, &Selector::All).expect("pull").ruleset);
        cpus.push(cpu() - c);
        assert_eq!(p, first, "every pull reads the same value");
        pulls.push(d);
        lists.push(timed(|| nft_in(path, &["list", "ruleset"], None).expect("nft list")).1);
    }
    let (p, l) = (median(pulls), median(lists));
    println!(
        "| {label} | {sets} | {} | {} | {} | {:.2} |",
        spread(p),
        spread(median(cpus)),
        spread(l),
        p.0.as_secs_f64() / l.0.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("| rules | sets | pull ms | pull CPU ms | nft list ruleset ms | ratio |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    if let Some(path) = args.iter().find_map(|a| a.strip_prefix("netns=")) {
        measure(path, std::path::Path::new(path), 3);
        return;
    }
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10_000, 100_000];
    }
    for n in sizes {
        let ns = TestNetns::new();
        let value = syntax::compile(&realistic_ruleset(n)).expect("compiles");
        let mut s = Socket::open(&ns.netns()).expect("socket");
        push(&mut s, &value, &PushOptions::default()).expect("push");
        drop(s);
        measure(&n.to_string(), &ns.path(), if n >= 100_000 { 3 } else { 5 });
    }
    println!(
        "(median (min–max); pull and nft alternate on the same namespace; ratio = ours / nft)"
    );
}
