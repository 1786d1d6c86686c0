//! How every component watches these resources after an error: a bounded
//! backoff, the one the agent's and the operator's watches all use.
//!
//! kube-runtime's `default_backoff` (client-go's reflector values) waits
//! up to 30 s, doubled by jitter, and keeps growing through every error
//! of an outage, a `410 Gone` included: after a 5 s outage a watch took
//! up to a minute to list again, and the operator's controller, whose
//! own backoff also paused all its watches on any one's error, minutes.
//! A firewall agent must see new pods and edits within seconds of the
//! API server's return, so here the wait is capped at [`MAX_DELAY`]
//! (at most twice that with jitter, so that a fleet's agents do not come
//! back in step), and a `410 Gone` — an answer from a server that is up,
//! asking for a fresh list — starts over from [`MIN_DELAY`].
//!
//! ```
//! use futures::StreamExt;
//! use kube::runtime::watcher;
//! # async fn f(api: kube::Api<linx_crds::FirewallRuleset>) {
//! let mut events = std::pin::pin!(linx_crds::watch::backoff(watcher(api, watcher::Config::default())));
//! while let Some(event) = events.next().await { /* … */ }
//! # }
//! ```

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, ExponentialBackoff};

/// The first wait after an error, and the only one after a `410 Gone`.
pub const MIN_DELAY: Duration = Duration::from_millis(500);

/// The longest wait between two attempts, before jitter (which adds up to
/// as much again).
pub const MAX_DELAY: Duration = Duration::from_secs(4);

/// The waits after successive errors: from [`MIN_DELAY`], doubling, capped
/// at [`MAX_DELAY`], each plus a random jitter of up to itself.
pub fn delays() -> ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// `stream` (a watcher, or anything built on one) that, after an error,
/// waits out the next of [`delays`] before polling again; an item resets
/// the delays, and so does a `410 Gone` (the watcher lists again after it).
/// Errors are passed on, for the caller to log.
pub fn backoff<S, T>(stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send,
    T: Send,
{
    let state = (Box::pin(stream), delays(), None);
    futures::stream::unfold(state, |(mut stream, mut delays, pause)| async move {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let item = stream.next().await?;
        let pause = pause_after(&item, &mut delays);
        Some((item, (stream, delays, pause)))
    })
}

/// The wait before polling again after `item`: none after an item (and
/// the delays start over), the first step after a `410 Gone`, the next
/// step after any other error.
fn pause_after<T>(item: &Result<T, watcher::Error>, delays: &mut impl Backoff) -> Option<Duration> {
    match item {
        Ok(_) => {
            delays.reset();
            None
        }
        Err(e) if gone(e) => {
            delays.reset();
            delays.next()
        }
        Err(_) => delays.next(),
    }
}

/// Whether the server said the watch's resourceVersion is too old.
fn gone(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchError(s) if s.code == 410)
}

/// A backoff that never waits: for a stream that merges watches each
/// already under [`backoff`], so one watch's error does not pause the rest
/// (kube's `Controller` pauses all its triggers on any one's error by
/// default).
pub struct NoWait;

impl Iterator for NoWait {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl Backoff for NoWait {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_minimum_and_stop_growing_at_the_cap() {
        let d: Vec<Duration> = delays().take(8).collect();
        for (i, d) in d.iter().enumerate() {
            let base = (MIN_DELAY * 2u32.pow(i as u32)).min(MAX_DELAY);
            assert!(*d >= base && *d <= base * 2, "step {i}: {d:?} for {base:?}");
        }
    }

    fn status(code: u16) -> watcher::Error {
        watcher::Error::WatchError(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[test]
    fn errors_wait_growing_gone_and_items_start_over() {
        let mut d = delays();
        let mut after = |item: Result<u8, watcher::Error>| pause_after(&item, &mut d);
        let within =
            |d: Option<Duration>, base: Duration| d.is_some_and(|d| d >= base && d <= base * 2);
        assert!(within(after(Err(status(500))), MIN_DELAY));
        assert!(within(after(Err(status(500))), MIN_DELAY * 2));
        assert!(within(after(Err(status(500))), MIN_DELAY * 4));
        // A 410: the first step again, then growing from there.
        assert!(within(after(Err(status(410))), MIN_DELAY));
        assert!(within(after(Err(status(500))), MIN_DELAY * 2));
        // An item: no wait, and the next error waits the first step.
        assert_eq!(after(Ok(1)), None);
        assert!(within(after(Err(status(500))), MIN_DELAY));
    }
}
