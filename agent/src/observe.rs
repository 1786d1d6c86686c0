//! `linx-agent trace` and `linx-agent log`: what the firewall does to
//! packets, printed as it happens, one namespace at a time.
//!
//! Both print to stdout as results come (one path or packet at a time,
//! flushed) and stop on Ctrl-C or SIGTERM, leaving the namespace as it
//! was: the trace session's table is deleted (and would vanish with the
//! process anyway: it is owned by the session's socket), the NFLOG group
//! is unbound. Exit status: 0 when the count or the timeout ended the
//! command, 130 when a signal did.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::ValueEnum;
use linx_netfilter::netlink::stream::Feed;
use linx_netfilter::nflog::{LogConfig, LogItem, Nflog};
use linx_netfilter::trace::{Next, Session, SessionConfig, TraceError};
use linx_netfilter::Netns;

use crate::outcome::{CliError, Done};

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// `linx-agent trace` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct TraceArgs {
    /// Namespace: a path (`/run/netns/x`, `/proc/N/ns/net`) or `pid:N`.
    #[arg(long)]
    pub netns: Netns,
    /// The packets to trace, as an nft match (`tcp dport 5432`); empty: all.
    #[arg(long = "match", default_value = "")]
    pub matching: String,
    /// Stop after this many packets (0: no limit).
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Stop after this long (`10s`, `500ms`, `2m`; 0: no limit).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// `linx-agent log` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    #[arg(long)]
    pub netns: Netns,
    /// The NFLOG group (`log group N` in a rule).
    #[arg(long)]
    pub group: u16,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// `10s`, `250ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 10s or 500ms"))?;
    Ok(match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    })
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM set a flag instead of killing the process, so the
/// command can clean up. Without SA_RESTART: a wait in progress returns.
fn catch_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        let _ = unsafe { sigaction(sig, &action) };
    }
}

fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// How often a wait looks at the stop flag (a signal also ends it at once).
const TICK: Duration = Duration::from_millis(200);

/// Writes one result; `false` when stdout is gone (e.g. `| head`).
fn emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").and_then(|_| out.flush()).is_ok()
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, CliError> {
    serde_json::to_string(v).map_err(|e| CliError::Encode(e.to_string()))
}

fn netfilter_error(netns: &Netns, e: TraceError) -> CliError {
    match e {
        TraceError::Netfilter(source) => CliError::Netfilter {
            netns: netns.to_string(),
            source,
        },
        other => CliError::Trace(other.to_string()),
    }
}

/// `linx-agent trace`.
pub fn trace(args: TraceArgs) -> Result<Done, CliError> {
    catch_signals();
    let cfg = SessionConfig {
        count: (args.count > 0).then_some(args.count),
        timeout: (!args.timeout.is_zero()).then_some(args.timeout),
        ..SessionConfig::new(args.matching.clone())
    };
    let mut session =
        Session::start(&args.netns, &cfg).map_err(|e| netfilter_error(&args.netns, e))?;
    let mut status = 0;
    loop {
        if stopped() {
            status = 130;
            break;
        }
        match session
            .next(TICK)
            .map_err(|e| netfilter_error(&args.netns, e))?
        {
            Next::Path(p) => {
                let text = match args.output {
                    Format::Text => format!("{p}\n"),
                    Format::Json => json(&p)?,
                };
                if !emit(&text) {
                    break;
                }
            }
            Next::Pending => {}
            Next::Done => break,
        }
    }
    session
        .stop()
        .map_err(|e| netfilter_error(&args.netns, e))?;
    Ok(Done {
        stdout: String::new(),
        status,
    })
}

/// `linx-agent log`.
pub fn log(args: LogArgs) -> Result<Done, CliError> {
    catch_signals();
    let err = |source| CliError::Netfilter {
        netns: args.netns.to_string(),
        source,
    };
    let mut log = Nflog::bind(&args.netns, &LogConfig::group(args.group)).map_err(err)?;
    while !stopped() {
        let Some(item) = log.next_timeout(TICK).map_err(err)? else {
            continue;
        };
        let text = match (&item, args.output) {
            (LogItem::Packet(p), Format::Text) => p.to_string(),
            (LogItem::Lost(n), Format::Text) => format!("lost {n} packet(s): read too slowly"),
            (_, Format::Json) => json(&item)?,
        };
        if !emit(&text) {
            break;
        }
    }
    drop(log); // unbinds the group
    Ok(Done {
        stdout: String::new(),
        status: if stopped() { 130 } else { 0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
