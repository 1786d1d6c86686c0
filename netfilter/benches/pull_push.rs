//! Pull and push against nft on the same rulesets, in throwaway namespaces.
//!
//! `cargo bench -p linx-netfilter --features testing --bench pull_push`
//! (sizes can be given: `... -- 1000 10000`).

use std::time::{Duration, Instant};

use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, PushOptions};
use linx_netfilter::testing::{synthetic_ruleset, TestNetns};
use linx_netfilter::Socket;

/// Median and spread (min, max) of a series.
fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// `median ms (min–max)`.
fn spread((m, lo, hi): (Duration, Duration, Duration)) -> String {
    format!("{} ({}–{})", ms(m), ms(lo), ms(hi))
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
        "| rules | pull | nft list ruleset | ratio | whole push | nft -f | ratio (each run) |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for n in sizes {
        let script = synthetic_ruleset(n, 1_000);
        let runs = if n >= 100_000 { 3 } else { 7 };
        let a = TestNetns::new();
        a.load(&script);
        let mut sock = Socket::open(&a.netns()).expect("socket");
        let value = pull(&mut sock, &Selector::All).expect("pull").ruleset;
        let (mut pulls, mut lists) = (vec![], vec![]);
        for _ in 0..runs {
            pulls.push(timed(|| pull(&mut sock, &Selector::All).expect("pull")).1);
            lists.push(timed(|| a.ruleset()).1);
        }
        // Push and nft's load alternate, each into a fresh namespace, so
        // load on the machine falls on both alike; the ratio of each pair
        // shows how steady the comparison is.
        let (mut pushes, mut loads) = (vec![], vec![]);
        for _ in 0..runs {
            let b = TestNetns::new();
            let mut s = Socket::open(&b.netns()).expect("socket");
            pushes.push(timed(|| push(&mut s, &value, &PushOptions::default()).expect("push")).1);
            drop(b);
            let b = TestNetns::new();
            loads.push(timed(|| b.load(&script)).1);
        }
        let mut pairs: Vec<f64> = pushes
            .iter()
            .zip(&loads)
            .map(|(p, l)| p.as_secs_f64() / l.as_secs_f64())
            .collect();
        pairs.sort_by(f64::total_cmp);
        let (p, l, push_, load) = (median(pulls), median(lists), median(pushes), median(loads));
        println!(
            "| {n} | {} | {} | {:.2} | {} | {} | {:.2} ({:.2}–{:.2}) |",
            spread(p),
            spread(l),
            p.0.as_secs_f64() / l.0.as_secs_f64(),
            spread(push_),
            spread(load),
            push_.0.as_secs_f64() / load.0.as_secs_f64(),
            pairs[0],
            pairs[pairs.len() - 1],
        );
    }
    println!("(ms, median (min–max) of 7 runs, 3 at 100,000; ratio = ours / nft, lower is better)");
}
