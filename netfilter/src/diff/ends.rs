//! Common ends of two sequences (equal prefix, then equal suffix), the bulk
//! of a diff when little changed: one full comparison of every pair, bound
//! by memory access. Large inputs use both cores: chains split into two
//! halves by size, or a single large chain scanned from both ends at once.
//! Results are always those of the sequential scan.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Lengths of the common prefix and (not overlapping it) common suffix of
/// two sequences of lengths `n` and `m`.
pub(super) fn common_ends(n: usize, m: usize, eq: impl Fn(usize, usize) -> bool) -> (usize, usize) {
    let mut pre = 0;
    while pre < n && pre < m && eq(pre, pre) {
        pre += 1;
    }
    let mut suf = 0;
    while suf < n - pre && suf < m - pre && eq(n - 1 - suf, m - 1 - suf) {
        suf += 1;
    }
    (pre, suf)
}

/// [`common_ends`] of each of `jobs` (pairs of lengths, compared by
/// `eq(job, i, j)`), in order. Single-threaded unless they hold at least
/// `parallel_min` pairs in all.
pub(super) fn common_ends_all(
    jobs: &[(usize, usize)],
    parallel_min: usize,
    eq: impl Fn(usize, usize, usize) -> bool + Sync,
) -> Vec<(usize, usize)> {
    let work = |&(n, m): &(usize, usize)| n.min(m);
    let total: usize = jobs.iter().map(work).sum();
    let sequential = |range: std::ops::Range<usize>| -> Vec<(usize, usize)> {
        range
            .map(|k| common_ends(jobs[k].0, jobs[k].1, |i, j| eq(k, i, j)))
            .collect()
    };
    if total < parallel_min.max(1) || jobs.is_empty() {
        return sequential(0..jobs.len());
    }
    let (big, &biggest) = jobs
        .iter()
        .enumerate()
        .max_by_key(|(_, j)| work(j))
        .expect("not empty");
    if 2 * work(&biggest) > total {
        // One chain holds most rules: scan it from both ends at once.
        let mut out = sequential(0..big);
        out.push(common_ends_two_sided(biggest.0, biggest.1, |i, j| {
            eq(big, i, j)
        }));
        out.extend(sequential(big + 1..jobs.len()));
        return out;
    }
    // Two halves of about equal size, one per core.
    let mut acc = 0;
    let split = jobs
        .iter()
        .position(|j| {
            acc += work(j);
            2 * acc >= total
        })
        .map_or(jobs.len(), |k| k + 1);
    std::thread::scope(|s| {
        let first = s.spawn(|| sequential(0..split));
        let second = sequential(split..jobs.len());
        let mut out = first.join().expect("common ends thread");
        out.extend(second);
        out
    })
}

/// How many steps a scanning side goes between publishing its progress
/// (publishing every step would bounce the cache line between cores).
const PUBLISH_EVERY: usize = 32;

/// [`common_ends`] with the prefix scanned on one core and the suffix on
/// the other, each stopping where the other has already been.
fn common_ends_two_sided(
    n: usize,
    m: usize,
    eq: impl Fn(usize, usize) -> bool + Sync,
) -> (usize, usize) {
    let lim = n.min(m);
    // Pairs each side has found equal so far (published lazily: a stale
    // value only makes a side compare a few pairs more).
    let front = Padded(AtomicUsize::new(0));
    let back = Padded(AtomicUsize::new(0));
    // Each side: (pairs found equal, whether it stopped at an unequal pair).
    let scan = |mine: &AtomicUsize, other: &AtomicUsize, pair: &dyn Fn(usize) -> bool| {
        let mut k = 0;
        loop {
            if k + other.load(Ordering::Relaxed) >= lim {
                mine.store(k, Ordering::Relaxed);
                return (k, false);
            }
            if !pair(k) {
                mine.store(k, Ordering::Relaxed);
                return (k, true);
            }
            k += 1;
            if k % PUBLISH_EVERY == 0 {
                mine.store(k, Ordering::Relaxed);
            }
        }
    };
    let ((p, p_unequal), (s, _)) = std::thread::scope(|sc| {
        let suffix = sc.spawn(|| scan(&back.0, &front.0, &|k| eq(n - 1 - k, m - 1 - k)));
        let prefix = scan(&front.0, &back.0, &|k| eq(k, k));
        (prefix, suffix.join().expect("suffix scan thread"))
    });
    // The prefix is the sequential one if it stopped at an unequal pair.
    // If it stopped where the suffix scan had been: with equal lengths the
    // suffix scan found those very pairs equal, so everything is;
    // otherwise it goes on alone.
    let pre = if p_unequal {
        p
    } else if n == m {
        lim
    } else {
        p + (p..lim).take_while(|&i| eq(i, i)).count()
    };
    // The sequential suffix, bounded so as not to overlap the prefix: the
    // suffix scan found `s` pairs equal and stopped at an unequal pair or
    // at `lim - pre` or beyond.
    (pre, s.min(lim - pre))
}

/// Keeps each side's progress counter on its own cache line.
#[repr(align(64))]
struct Padded(AtomicUsize);
