//! Whole-ruleset printing against nft: every loadable dump of the corpus
//! is loaded with `nft -f` into a throwaway namespace, pulled, printed
//! with `print::ruleset`, and compared line by line with what
//! `nft list ruleset` prints in that namespace.

use std::collections::HashMap;
use std::sync::Mutex;

use linx_netfilter::print::{self, PrintOptions};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::testing::TestNetns;
use linx_netfilter::Socket;

mod common;
use common::corpus::{conformance_dir, loadable_dumps};

#[derive(Default)]
struct Tally {
    files: usize,
    equal: usize,
    /// First differing line (want → got) → (count, example file).
    causes: HashMap<String, (usize, String)>,
}

fn check(file: &str, tally: &Mutex<Tally>) {
    let path = conformance_dir().join(file);
    let Ok(script) = std::fs::read_to_string(&path) else {
        return;
    };
    let ns = TestNetns::new();
    if ns.nft_load(&script).is_err() {
        return;
    }
    let want = ns.ruleset();
    let mut sock = Socket::open(&ns.netns()).expect("open socket");
    let rs = pull(&mut sock, &Selector::All).expect("pull").ruleset;
    let got = print::ruleset(&rs, &PrintOptions::default());
    // Damaged sets (odd key types and lengths, cut keys) must not make
    // the printer panic.
    for variant in 0..3u32 {
        let mut bad = rs.clone();
        for t in &mut bad.tables {
            for s in &mut t.sets {
                s.key_type = [0xffff_ffff, 0, s.key_type ^ 0x3f][variant as usize];
                s.key_len = [0, 200, 3][variant as usize];
                for e in &mut s.elements {
                    if let Some(k) = &mut e.key {
                        k.0.truncate(variant as usize);
                    }
                }
            }
        }
        let ok =
            std::panic::catch_unwind(|| print::ruleset(&bad, &PrintOptions::default())).is_ok();
        assert!(ok, "printing a damaged copy of {file} panicked");
    }
    let mut t = tally.lock().unwrap();
    t.files += 1;
    if got == want {
        t.equal += 1;
        return;
    }
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let i = w.iter().zip(&g).take_while(|(a, b)| a == b).count();
    let cause = format!(
        "want `{}`\n      got  `{}`",
        w.get(i).map_or("<end>", |s| s.trim()),
        g.get(i).map_or("<end>", |s| s.trim())
    );
    let e = t.causes.entry(cause).or_insert((0, file.to_owned()));
    e.0 += 1;
}

#[test]
fn printed_rulesets_match_nft_list_ruleset() {
    if common::corpus::require().is_none() {
        return;
    }
    let files = loadable_dumps();
    assert!(!files.is_empty(), "no loadable dumps in dumps.tsv");
    let tally = Mutex::new(Tally::default());
    let queue = Mutex::new(files);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let Some(f) = queue.lock().unwrap().pop() else {
                    break;
                };
                check(&f, &tally);
            });
        }
    });
    let t = tally.lock().unwrap();
    let share = 100.0 * t.equal as f64 / t.files.max(1) as f64;
    println!(
        "{}/{} dumps print exactly as `nft list ruleset` ({share:.1}%)",
        t.equal, t.files
    );
    let mut causes: Vec<_> = t.causes.iter().collect();
    causes.sort_by_key(|c| std::cmp::Reverse(c.1 .0));
    for (c, (n, ex)) in causes.iter().take(60) {
        println!("{n:>4}  {c}\n      e.g. {ex}");
    }
    let min: f64 = std::env::var("LINX_PRINT_DUMPS_MIN_SHARE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(97.0);
    assert!(share >= min, "only {share:.1}% of dumps print as nft does");
}
