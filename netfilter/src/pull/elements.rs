//! A pull's set elements, many sets at once.
//!
//! The kernel lists elements one set per dump, and finds that set by walking
//! the table's sets from the first, three times per set (the request's
//! lookup by name, then each of the dump's two passes; the second pass ends
//! it and carries the catch-all element, so it cannot be skipped). Elements
//! therefore cost the square of a table's set count: measured with `perf` at
//! 100,000 rules holding 5,000 anonymous sets, 62% of a pull's samples were
//! those walks, about 77 ns a step. Dumps cannot share a socket (measured:
//! a dump request sent while another dump of the socket runs, e.g. in the
//! same `sendmsg`, is refused with `EBUSY`), so many sets are spread over
//! sockets of their own, one per thread, while the caller's socket dumps
//! the rules and then takes sets too.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Counts;
use crate::codec;
use crate::error::Result;
use crate::model::{Element, Elements, Table};
use crate::netlink::Socket;
use crate::sys::*;

/// Below this many sets, one socket: another thread and socket cost more
/// than the walks they share (a few microseconds per set at 500 sets).
const PARALLEL_MIN: usize = 64;
/// At most this many sockets besides the caller's.
const MAX_HELPERS: usize = 3;

/// One set whose elements are wanted.
struct Job {
    table: usize,
    set: usize,
    family: u8,
    table_name: String,
    name: String,
    interval: bool,
    /// The kernel's element count, when it gave one.
    expected: Option<u32>,
}

/// Fills every set of `tables` with its elements, calling `rules` with the
/// caller's socket meanwhile (it must not touch the sets).
pub(super) fn pull(
    sock: &mut Socket,
    tables: &mut [Table],
    counts: &Counts,
    rules: impl FnOnce(&mut Socket, &mut [Table]) -> Result<()>,
) -> Result<()> {
    let mut jobs = Vec::new();
    for (ti, t) in tables.iter().enumerate() {
        let family: u8 = t.family.into();
        for (si, s) in t.sets.iter().enumerate() {
            jobs.push(Job {
                table: ti,
                set: si,
                family,
                table_name: t.name.clone(),
                name: s.name.clone(),
                interval: s.is_interval(),
                expected: counts
                    .get(&(family, t.name.clone(), s.name.clone()))
                    .copied(),
            });
        }
    }
    let helpers = if jobs.len() < PARALLEL_MIN {
        0
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .saturating_sub(1)
            .min(MAX_HELPERS)
    };
    let next = AtomicUsize::new(0);
    let done = std::thread::scope(|scope| -> Result<Vec<(usize, Elements)>> {
        let mut handles = Vec::new();
        // A helper's socket is opened by entering the namespace, which
        // needs more privilege than reading it: without, one socket does all.
        let netns = if helpers > 0 { sock.netns().ok() } else { None };
        for _ in 0..helpers {
            let Some(mut own) = netns.as_ref().and_then(|n| Socket::open(n).ok()) else {
                break;
            };
            let (jobs, next) = (&jobs, &next);
            handles.push(scope.spawn(move || take(&mut own, jobs, next)));
        }
        let mut done = rules(sock, tables).and_then(|()| take(sock, &jobs, &next));
        if done.is_err() {
            next.store(jobs.len(), Ordering::Relaxed); // stop the helpers
        }
        for h in handles {
            let theirs = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            match (&mut done, theirs) {
                (Ok(all), Ok(more)) => all.extend(more),
                (Ok(_), Err(e)) => done = Err(e),
                (Err(_), _) => {}
            }
        }
        done
    })?;
    for (i, elements) in done {
        let j = &jobs[i];
        tables[j.table].sets[j.set].elements = elements;
    }
    Ok(())
}

/// Dumps sets from the shared queue until it is empty.
fn take(sock: &mut Socket, jobs: &[Job], next: &AtomicUsize) -> Result<Vec<(usize, Elements)>> {
    let mut out = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(j) = jobs.get(i) else {
            return Ok(out);
        };
        out.push((i, dump(sock, j)?));
    }
}

/// Dumps a set's elements. A hash set resizes in the background after a
/// burst of insertions, and a dump meanwhile can skip or repeat elements
/// without any commit; the kernel's element count (`NFTA_SET_COUNT`, which
/// counts exactly the non-catch-all elements of non-interval sets) and
/// distinct keys tell, and the dump is redone until both agree.
fn dump(sock: &mut Socket, j: &Job) -> Result<Elements> {
    const ATTEMPTS: u32 = 20;
    let mut elements = Vec::new();
    for attempt in 1..=ATTEMPTS {
        elements.clear();
        let dump = sock.dump(NFT_MSG_GETSETELEM, j.family, |w| {
            w.put_str(NFTA_SET_ELEM_LIST_TABLE, &j.table_name);
            w.put_str(NFTA_SET_ELEM_LIST_SET, &j.name);
        })?;
        // Elements stay in the kernel's order: nft lists some sets in it
        // (tcp flags, say), so a value pushed elsewhere keeps its listing.
        // Comparisons never depend on it (see `diff::eq`).
        for m in dump.iter() {
            codec::element::decode_into(&m?, &mut elements)?;
        }
        let Some(expected) = j.expected.filter(|_| !j.interval) else {
            break;
        };
        let (counted, distinct) = tally(&elements);
        let agrees = distinct && counted == expected as usize;
        if agrees || attempt == ATTEMPTS {
            if !agrees {
                tracing::warn!(set = %j.name, counted, expected, distinct, "set dump disagrees with the kernel's element count");
            }
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5 * attempt as u64));
    }
    Ok(elements.into())
}

/// The non-catch-all elements' count, and whether their keys are distinct
/// (measured: mid-resize, a dump can return exactly the right number of
/// elements with some repeated in place of others).
fn tally(elements: &[Element]) -> (usize, bool) {
    let mut keys = rustc_hash::FxHashSet::default();
    let mut counted = 0;
    let mut distinct = true;
    for e in elements
        .iter()
        .filter(|e| e.flags.unwrap_or(0) & NFT_SET_ELEM_CATCHALL == 0)
    {
        counted += 1;
        distinct &= keys.insert((e.key.as_ref(), e.key_end.as_ref()));
    }
    (counted, distinct)
}
