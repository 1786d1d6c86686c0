//! `linx-agent pull` / `linx-agent apply`: a ruleset value out of, or into,
//! one network namespace, as YAML or JSON.

use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand, ValueEnum};
use linx_netfilter::pull::{pull, Selector};
use linx_netfilter::push::{push, Existing, PushOptions, Pushed};
use linx_netfilter::{Family, Netns, Ruleset, Socket};

#[derive(Debug, Parser)]
#[command(name = "linx-agent", version, about = "Linx node agent")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the ruleset of a network namespace as a value.
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
    /// Push a ruleset value (YAML or JSON) into a namespace, as one transaction.
    Apply {
        #[arg(long)]
        netns: Netns,
        /// The value file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// What to do with tables that already exist.
        #[arg(long, value_enum, default_value_t = OnExisting::Fail)]
        existing: OnExisting,
        /// Apply only if the ruleset is still at this generation.
        #[arg(long)]
        generation: Option<u32>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OnExisting {
    /// Refuse (nothing applied).
    Fail,
    /// Add into it, as `nft -f` does.
    Merge,
    /// Replace it whole, atomically.
    Replace,
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
        let family = [
            Family::Inet,
            Family::Ip,
            Family::Ip6,
            Family::Arp,
            Family::Bridge,
            Family::Netdev,
        ]
        .into_iter()
        .find(|f| f.name() == family)
        .ok_or_else(|| format!("{family:?}: unknown family"))?;
        if name.is_empty() {
            return Err(format!("{s:?}: empty table name"));
        }
        Ok(TableName(family, name.to_owned()))
    }
}

/// Errors of the CLI: what failed, and on what.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{netns}: {source}")]
    Netfilter {
        netns: String,
        #[source]
        source: linx_netfilter::Error,
    },
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a ruleset value: {message}")]
    Parse { path: String, message: String },
    #[error("encoding the value: {0}")]
    Encode(String),
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

/// Runs one command; returns what to print on standard output.
pub fn run(cli: Cli) -> Result<String, CliError> {
    match cli.command {
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
            }
        }
        Command::Apply {
            netns,
            file,
            existing,
            generation,
        } => {
            let path = file.display().to_string();
            let text = if path == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            }
            .map_err(|source| CliError::Read {
                path: path.clone(),
                source,
            })?;
            let rs = from_text(&text).map_err(|message| CliError::Parse { path, message })?;
            let err = |source| CliError::Netfilter {
                netns: netns.to_string(),
                source,
            };
            let mut sock = Socket::open(&netns).map_err(err)?;
            let opts = PushOptions {
                generation,
                existing: match existing {
                    OnExisting::Fail => Existing::Fail,
                    OnExisting::Merge => Existing::Merge,
                    OnExisting::Replace => Existing::Replace,
                },
            };
            let pushed = push(&mut sock, &rs, &opts).map_err(err)?;
            Ok(summary(&pushed))
        }
    }
}

fn summary(p: &Pushed) -> String {
    format!(
        "applied in one transaction ({} messages): {} tables, {} chains, {} rules, {} sets, {} elements, {} objects, {} flowtables\n",
        p.messages, p.tables, p.chains, p.rules, p.sets, p.elements, p.objects, p.flowtables
    )
}
