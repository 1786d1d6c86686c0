//! Pull and push against nft on the same rulesets, in throwaway namespaces.
//!
//! `cargo bench -p linx-netfilter --features testing --bench pull_push`
//! (sizes can be given: `... -- 1000 10000`).

use std::time::{Duration, Instant};

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::testing::{synthetic_ruleset, TestNetns};
use linx_netfilter::Socket;

/// Best of `runs` timings of `f`.
fn best(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed())
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    println!(
        "{:>8} | {:>10} {:>12} {:>6} | {:>10} {:>10} {:>6}",
        "rules", "pull", "nft list", "ratio", "push", "nft -f", "ratio"
    );
    for n in sizes {
        let script = synthetic_ruleset(n, 1_000);
        let runs = if n >= 100_000 { 1 } else { 3 };
        let a = TestNetns::new();
        a.load(&script);
        let mut sock = Socket::open(&a.netns()).expect("socket");
        let value = pull(&mut sock, &Selector::All).expect("pull").ruleset;
        let t_pull = best(runs, || {
            timed(|| pull(&mut sock, &Selector::All).expect("pull")).1
        });
        let t_list = best(runs, || timed(|| a.ruleset()).1);
        let t_push = best(runs, || {
            let b = TestNetns::new();
            let mut s = Socket::open(&b.netns()).expect("socket");
            timed(|| push(&mut s, &value, &PushOptions::default()).expect("push")).1
        });
        let t_nft = best(runs, || {
            let b = TestNetns::new();
            timed(|| b.load(&script)).1
        });
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let ratio = |a: Duration, b: Duration| format!("{:.2}", a.as_secs_f64() / b.as_secs_f64());
        println!(
            "{:>8} | {:>10} {:>12} {:>6} | {:>10} {:>10} {:>6}",
            n,
            ms(t_pull),
            ms(t_list),
            ratio(t_pull, t_list),
            ms(t_push),
            ms(t_nft),
            ratio(t_push, t_nft)
        );
    }
    println!("(ratio = ours / nft; lower is better; best of 3 runs, 1 at 100,000)");
}
