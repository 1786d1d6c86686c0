//! `linx-agent pull` / `linx-agent apply`: a ruleset value out of, or into,
//! one network namespace, as YAML or JSON. `linx-agent run`: the node
//! agent itself (see [`crate::run`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::{Parser, Subcommand, ValueEnum};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::reconcile::{Mode, Options, Reconciler};
use linx_netfilter::syntax::{compile, compile_source, Includes};
use linx_netfilter::{Family, Netns, Ruleset, Socket};

pub use crate::outcome::{CliError, Done};

#[derive(Debug, Parser)]
#[command(name = "linx-agent", version, about = "Linx node agent")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the ruleset of a network namespace.
    Pull {
        /// Namespace: a path (`/run/netns/x`, `/proc/N/ns/net`) or `pid:N`.
        #[arg(long)]
        netns: Netns,
        /// Only these tables (`FAMILY:NAME`, repeatable); default all.
        #[arg(long = "table", value_name = "FAMILY:NAME")]
        tables: Vec<TableName>,
        #[arg(long, value_enum, default_value_t = Output::Yaml)]
        output: Output,
    },
    /// Make a namespace's tables equal to FILE, pushing only the difference
    /// in one generation-guarded transaction; prints the operations applied.
    Apply {
        #[arg(long)]
        netns: Netns,
        /// nft syntax (`.nft`), or a ruleset value as YAML/JSON (`-`: stdin).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = ApplyMode::Reconcile)]
        mode: ApplyMode,
        /// Print the patch without applying it.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: also have the kernel validate the patch (nothing is committed).
        #[arg(long)]
        check: bool,
        /// Take over same-named tables that Linx did not create.
        #[arg(long)]
        adopt: bool,
    },
    /// Print the patch that `apply` would push. Exit status: 0 nothing to
    /// do, 1 changes, 2 error.
    Diff {
        #[arg(long)]
        netns: Netns,
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        #[arg(long)]
        adopt: bool,
    },
    /// Keep every pod of this node reconciled until SIGTERM.
    Run(crate::run::RunArgs),
    /// Chain linx-cni into the node's CNI configuration and keep it there
    /// (the DaemonSet's sidecar); see docs/cni.md.
    InstallCni(crate::install::InstallArgs),
    /// Trace packets matching an nft expression: each packet's path
    /// through the chains, one step per line, and the verdict.
    Trace(crate::observe::TraceArgs),
    /// Print the packets a `log group N` rule sends, one per line.
    Log(crate::observe::LogArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ApplyMode {
    /// Push the minimal patch.
    Reconcile,
    /// Delete and recreate the file's tables, atomically.
    Replace,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
    /// As `nft list ruleset` prints it.
    Nft,
}

/// `FAMILY:NAME`.
#[derive(Clone, Debug)]
pub struct TableName(pub Family, pub String);

impl FromStr for TableName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (family, name) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected FAMILY:NAME"))?;
        let family =
            Family::from_name(family).ok_or_else(|| format!("{family:?}: unknown family"))?;
        if name.is_empty() {
            return Err(format!("{s:?}: empty table name"));
        }
        Ok(TableName(family, name.to_owned()))
    }
}

/// A ruleset as YAML. (Through a JSON value: serde_yaml cannot write an
/// enum nested in an enum, such as a verdict inside data, directly.)
pub fn to_yaml(rs: &Ruleset) -> Result<String, CliError> {
    let v = serde_json::to_value(rs).map_err(|e| CliError::Encode(e.to_string()))?;
    serde_yaml::to_string(&v).map_err(|e| CliError::Encode(e.to_string()))
}

/// A ruleset from YAML or JSON (JSON is read as YAML).
pub fn from_text(text: &str) -> Result<Ruleset, String> {
    let v: serde_json::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<Done, CliError> {
    match cli.command {
        Command::Run(args) => {
            crate::run::main(args)?;
            Ok(Done::ok(String::new()))
        }
        Command::InstallCni(args) => {
            crate::install::main(args)?;
            Ok(Done::ok(String::new()))
        }
        Command::Trace(args) => crate::observe::trace(args),
        Command::Log(args) => crate::observe::log(args),
        Command::Pull {
            netns,
            tables,
            output,
        } => {
            let which = if tables.is_empty() {
                Selector::All
            } else {
                Selector::Tables(tables.into_iter().map(|t| (t.0, t.1)).collect())
            };
            let err = |source| CliError::Netfilter {
                netns: netns.to_string(),
                source,
            };
            let mut sock = Socket::open(&netns).map_err(err)?;
            let pulled = pull(&mut sock, &which).map_err(err)?;
            match output {
                Output::Yaml => to_yaml(&pulled.ruleset),
                Output::Json => serde_json::to_string_pretty(&pulled.ruleset)
                    .map(|s| s + "\n")
                    .map_err(|e| CliError::Encode(e.to_string())),
                Output::Nft => Ok(linx_netfilter::print::ruleset(
                    &pulled.ruleset,
                    &Default::default(),
                )),
            }
            .map(Done::ok)
        }
        Command::Apply {
            netns,
            file,
            mode,
            dry_run,
            check,
            adopt,
        } => {
            let mode = match mode {
                ApplyMode::Reconcile => Mode::Reconcile,
                ApplyMode::Replace => Mode::Replace,
            };
            let err = |source| CliError::Netfilter {
                netns: netns.to_string(),
                source,
            };
            let (desired, mut r) = load_beside_pull(
                &file,
                &netns,
                Options {
                    mode,
                    adopt,
                    // One shot: no state is kept after the push.
                    remember: false,
                    ..Default::default()
                },
            )?;
            if dry_run {
                let (patch, generation) = r
                    .plan(&desired, check)
                    .map_err(|e| refused_at(&netns, &file, &desired, e).unwrap_or_else(err))?;
                let verdict = if check {
                    ", validated by the kernel"
                } else {
                    ""
                };
                return Ok(Done::ok(format!(
                    "{}dry run: {} operation(s) against generation {generation}{verdict}; nothing applied\n{}",
                    patch.render(&desired),
                    patch.len(),
                    recreated(&patch)
                )));
            }
            // The patch is printed on another core while the kernel
            // commits it (for a whole table, printing takes about a fifth
            // of the commit's time); if a concurrent writer made the push
            // differ from the plan, what was pushed is printed instead.
            let (planned, _) = r.plan(&desired, false).map_err(err)?;
            let (out, printed) = std::thread::scope(|s| {
                let printing = (!planned.is_empty()).then(|| s.spawn(|| planned.render(&desired)));
                let out = r.reconcile(&desired);
                (
                    out,
                    printing.map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
                )
            });
            let out =
                out.map_err(|e| refused_at(&netns, &file, &desired, e).unwrap_or_else(err))?;
            let printed = match printed {
                Some(text) if out.patch == planned => text,
                _ => out.patch.render(&desired),
            };
            let summary = if out.patch.is_empty() {
                format!(
                    "nothing to do: the namespace already matches (generation {})\n",
                    out.generation
                )
            } else {
                format!(
                    "applied {} operation(s) in one transaction ({} messages), now at generation {}{}\n",
                    out.patch.len(),
                    out.messages,
                    out.generation,
                    if out.conflicts > 0 { format!(", after {} generation conflict(s)", out.conflicts) } else { String::new() }
                )
            };
            Ok(Done::ok(printed + &summary + &recreated(&out.patch)))
        }
        Command::Diff { netns, file, adopt } => {
            let err = |source| CliError::Netfilter {
                netns: netns.to_string(),
                source,
            };
            let (desired, mut r) = load_beside_pull(
                &file,
                &netns,
                Options {
                    adopt,
                    ..Default::default()
                },
            )?;
            let (patch, _) = r.plan(&desired, false).map_err(err)?;
            Ok(Done {
                status: if patch.is_empty() { 0 } else { 1 },
                stdout: patch.render(&desired),
            })
        }
    }
}

/// `file`'s desired value, and a reconciler for `netns` that already holds
/// the namespace's state: the file is read and compiled on this thread
/// while another opens the namespace and pulls every table of it, so a
/// cold `apply` or `diff` pays the longer of the two, not their sum. A bad
/// file is reported before a bad namespace.
fn load_beside_pull(
    file: &Path,
    netns: &Netns,
    opts: Options,
) -> Result<(Ruleset, Reconciler), CliError> {
    std::thread::scope(|s| {
        let opened = s.spawn(|| {
            let mut r = Reconciler::new(Socket::open(netns)?, opts);
            // Only a head start: if the whole namespace cannot be pulled
            // (say another program's table holds what Linx cannot read),
            // the reconcile pulls just the tables the file names, as
            // without it, and reports what that finds.
            let _ = r.prefetch();
            Ok(r)
        });
        let desired = load_desired(file);
        let opened = opened
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        let desired = desired?;
        let r = opened.map_err(|source| CliError::Netfilter {
            netns: netns.to_string(),
            source,
        })?;
        Ok((desired, r))
    })
}

/// A line saying what a patch recreates (and so resets), if anything.
fn recreated(patch: &linx_netfilter::diff::Patch) -> String {
    match patch.recreated() {
        0 => String::new(),
        n => format!(
            "{n} deletion(s) above recreate what the kernel cannot change in place: their counters, quotas and set contents start over\n"
        ),
    }
}

/// The desired value in `file`: nft syntax (`.nft`, or any text that is
/// not YAML/JSON), a `FirewallRuleset` resource (its tables; the pod
/// selector is ignored), or a ruleset value as YAML/JSON.
pub fn load_desired(file: &Path) -> Result<Ruleset, CliError> {
    let path = file.display().to_string();
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|source| CliError::Read {
        path: path.clone(),
        source,
    })?;
    let is_nft = file.extension().is_some_and(|e| e == "nft");
    if is_nft {
        // `include` resolves as `nft -f` resolves it (no `-I`).
        return compile_source(Some(&path), &text, &Includes::nft_default())
            .map_err(|d| syntax_error(path, &d));
    }
    if let Some(resource) = firewall_ruleset(&text) {
        let fr = resource.map_err(|message| CliError::Parse {
            path: path.clone(),
            message,
        })?;
        // Without a cluster the pod selector has nothing to select: the
        // resource's tables are applied to the namespace given, under the
        // same verdict as in a cluster.
        return linx_crds::compile(&fr.spec).map_err(|errs| {
            let diagnostics = errs
                .iter()
                .map(|d| format!("{path}: {d}"))
                .collect::<Vec<_>>()
                .join("\n");
            CliError::Syntax { path, diagnostics }
        });
    }
    match from_text(&text) {
        Ok(rs) => Ok(rs),
        // Not a value: try nft syntax before giving up, and report the
        // error of the form the text most resembles.
        Err(message) => match compile(&text) {
            Ok(rs) => Ok(rs),
            Err(d) if text.trim_start().starts_with("table") => Err(syntax_error(path, &d)),
            Err(_) => Err(CliError::Parse { path, message }),
        },
    }
}

/// When the kernel refused rules of the nft file `file` (the reconciler
/// names each by its text), each at its place in the file, as nft shows
/// it; `Err(e)` unchanged when there is nothing to place.
fn refused_at(
    netns: &Netns,
    file: &Path,
    desired: &Ruleset,
    e: linx_netfilter::Error,
) -> Result<CliError, linx_netfilter::Error> {
    let linx_netfilter::Error::Batch(failure) = &e else {
        return Err(e);
    };
    if file.extension().is_none_or(|x| x != "nft") {
        return Err(e);
    }
    let path = file.display().to_string();
    let Ok(text) = std::fs::read_to_string(file) else {
        return Err(e);
    };
    let written =
        linx_netfilter::syntax::written_rules(Some(&path), &text, &Includes::nft_default());
    let opts = linx_netfilter::print::PrintOptions::default();
    let mut located = Vec::new();
    for f in failure.0.iter().filter(|f| f.op.ends_with("rule")) {
        let place = written.iter().find(|w| {
            let Some(t) = desired
                .tables
                .iter()
                .find(|t| t.family == w.family && t.name == w.table)
            else {
                return false;
            };
            let head = format!("{} {} {} ", w.family.name(), w.table, w.chain);
            f.object.strip_prefix(&head).is_some_and(|text| {
                text == linx_netfilter::print::rule(w.family, t, &w.rule, &opts)
            })
        });
        if let Some(w) = place {
            let mut d = w.at.clone();
            // The whole rule underlined, to the end of its line.
            let rest = d.source_line.chars().skip(d.column.saturating_sub(1));
            d.len = d
                .len
                .max(rest.collect::<String>().trim_end().chars().count());
            d.message = format!(
                "the kernel refused this rule: {}",
                std::io::Error::from_raw_os_error(f.errno)
            );
            if let Some(x) = &f.extack {
                d.message.push_str(&format!(" ({x})"));
            }
            located.push(d);
        }
    }
    if located.is_empty() {
        return Err(e);
    }
    Ok(CliError::Refused {
        netns: netns.to_string(),
        located: in_file(&path, &linx_netfilter::syntax::Diagnostics(located)),
        source: e,
    })
}

/// A `kind: FirewallRuleset` document, if `text` is one.
fn firewall_ruleset(text: &str) -> Option<Result<linx_crds::FirewallRuleset, String>> {
    let v: serde_json::Value = serde_yaml::from_str(text).ok()?;
    (v.get("kind")?.as_str()? == "FirewallRuleset")
        .then(|| serde_json::from_value(v).map_err(|e| e.to_string()))
}

fn syntax_error(path: String, d: &linx_netfilter::syntax::Diagnostics) -> CliError {
    CliError::Syntax {
        diagnostics: in_file(&path, d),
        path,
    }
}

/// The diagnostics, each `LINE:COLUMN:` prefixed with the file, as
/// compilers do.
fn in_file(path: &str, d: &linx_netfilter::syntax::Diagnostics) -> String {
    let mut out = String::new();
    for line in d.to_string().lines() {
        let located = line
            .split(':')
            .take(2)
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if located {
            out.push_str(path);
            out.push(':');
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_owned()
}
