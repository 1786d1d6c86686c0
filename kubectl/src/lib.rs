//! `kubectl linx`, the kubectl plugin (binary `kubectl-linx` on the PATH):
//!
//! * `kubectl linx trace pod/NAME --match 'tcp dport 5432' [--count N]`
//!   creates a FirewallTrace, prints each packet's path as the agent on the
//!   pod's node writes it (every step: FirewallRuleset, table, chain, rule
//!   index and line:column), then deletes the trace.
//! * `kubectl linx status fwr/NAME`: the resource's conditions, each
//!   selected pod (node, state, generation applied, would-be drops), the
//!   rules that would have dropped (Audit) and the failures.
//! * `kubectl linx explain pod/NAME`: which FirewallRulesets select the pod
//!   and which tables each owns there, and what the node's agent reports.
//!
//! It talks to the API server only (no engine, no sockets): what happens
//! in a pod is the agents' to tell. When no agent answers, it says why it
//! thinks so (no agent pod on the node, one not running, no node report).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use linx_crds::addressset::assemble;
use linx_crds::conflict::{resolve, Claim};
use linx_crds::source::SetRef;
use linx_crds::trace::TracePhase;
use linx_crds::validate::declared_tables;
use linx_crds::{
    FirewallAddressSet, FirewallAddressSetSpec, FirewallNodeReport, FirewallRuleset, FirewallTrace,
    FirewallTraceSpec,
};

/// How long `trace` waits for an agent to take the trace before looking
/// for a reason.
pub const PICKUP: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-linx",
    bin_name = "kubectl linx",
    version,
    about = "Linx pod firewalls: trace a pod's packets, a FirewallRuleset's state per pod, what selects a pod"
)]
pub struct Cli {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Where Linx runs (its agents' DaemonSet).
    #[arg(long, global = true, default_value = "linx-system")]
    pub linx_namespace: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trace packets of a pod: each packet's path through its firewall.
    Trace {
        /// `pod/NAME` (or `NAME`).
        target: String,
        /// The packets, as an nft match (`tcp dport 5432`); empty: any.
        #[arg(long = "match", default_value = "")]
        matching: String,
        /// Packets to trace (1 to 20).
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Longest the trace runs, seconds (1 to 300).
        #[arg(long, default_value_t = 10)]
        timeout: u32,
        /// Keep the FirewallTrace afterwards (the operator deletes it later).
        #[arg(long)]
        keep: bool,
    },
    /// A FirewallRuleset per pod: applied generation, failures, would-be drops.
    Status {
        /// `fwr/NAME` (or `NAME`).
        target: String,
    },
    /// Which FirewallRulesets select a pod, and which tables each owns there.
    Explain {
        /// `pod/NAME` (or `NAME`).
        target: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

/// `pod/NAME`, `pods/NAME`, `po/NAME` or `NAME`, for the given kinds.
pub fn target<'a>(t: &'a str, kinds: &[&str]) -> Result<&'a str, Error> {
    match t.split_once('/') {
        None => Ok(t),
        Some((k, name)) if kinds.contains(&k) && !name.is_empty() => Ok(name),
        Some(_) => Err(Error::Usage(format!(
            "{t}: expected {}/NAME",
            kinds.first().copied().unwrap_or("KIND")
        ))),
    }
}

/// Runs the command; the exit status.
pub async fn run(cli: Cli) -> Result<i32, Error> {
    let client = client(cli.kubeconfig.as_deref()).await?;
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    match cli.command {
        Command::Trace {
            target: t,
            matching,
            count,
            timeout,
            keep,
        } => {
            let name = target(&t, &["pod", "pods", "po"])?;
            let spec = FirewallTraceSpec {
                pod: name.to_owned(),
                matching,
                count: Some(count),
                timeout_seconds: Some(timeout),
                ttl_seconds_after_finished: None,
            };
            trace(&client, &ns, &cli.linx_namespace, spec, keep).await
        }
        Command::Status { target: t } => {
            let name = target(&t, &["fwr", "firewallruleset", "firewallrulesets"])?;
            status(&client, &ns, name).await
        }
        Command::Explain { target: t } => {
            let name = target(&t, &["pod", "pods", "po"])?;
            explain(&client, &ns, name).await
        }
    }
}

async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, Error> {
    let cfg = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| Error::Usage(format!("reading kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| Error::Usage(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| Error::Usage(format!("no Kubernetes configuration: {e}")))?,
    };
    Client::try_from(cfg).map_err(kube_err("connecting to the API server"))
}

/// `kubectl linx trace`: 0 when the trace completed, 1 when it failed,
/// 130 on Ctrl-C (the trace is deleted in every case, unless `keep`).
pub async fn trace(
    c: &Client,
    ns: &str,
    linx_ns: &str,
    spec: FirewallTraceSpec,
    keep: bool,
) -> Result<i32, Error> {
    spec.check_match()
        .map_err(|e| Error::Usage(format!("--match {:?}: {e}", spec.matching)))?;
    let name = spec.pod.clone();
    let pod = Api::<Pod>::namespaced(c.clone(), ns)
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("reading pod {ns}/{name}")))?
        .ok_or_else(|| Error::Failed(format!("pod {ns}/{name} not found")))?;
    let ps = pod.spec.unwrap_or_default();
    if ps.host_network == Some(true) {
        return Err(Error::Failed(format!(
            "pod {ns}/{name} uses its node's network namespace (hostNetwork): Linx neither changes nor traces it"
        )));
    }
    let node = ps
        .node_name
        .ok_or_else(|| Error::Failed(format!("pod {ns}/{name} is not on a node yet")))?;
    let timeout = spec.timeout_seconds();
    let api: Api<FirewallTrace> = Api::namespaced(c.clone(), ns);
    let mut t = FirewallTrace::new("", spec);
    t.metadata.name = None;
    t.metadata.generate_name = Some(format!("{name}-"));
    let made = api
        .create(&PostParams::default(), &t)
        .await
        .map_err(kube_err(format!("creating a FirewallTrace in {ns}")))?;
    let tname = made.name_any();
    let outcome = follow(c, &api, &tname, linx_ns, &node, timeout).await;
    if !keep {
        let _ = api.delete(&tname, &DeleteParams::default()).await;
    }
    outcome
}

/// Prints the packets as the status gains them, until the trace ends.
async fn follow(
    c: &Client,
    api: &Api<FirewallTrace>,
    name: &str,
    linx_ns: &str,
    node: &str,
    timeout: u32,
) -> Result<i32, Error> {
    let started = tokio::time::Instant::now();
    let deadline = started + PICKUP + Duration::from_secs(u64::from(timeout) + 15);
    let mut printed = 0;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = &mut ctrl_c => return Ok(130),
        }
        let t = api
            .get(name)
            .await
            .map_err(kube_err(format!("reading FirewallTrace {name}")))?;
        let st = t.status.unwrap_or_default();
        for p in st.packets.iter().skip(printed) {
            println!("{p}\n");
        }
        printed = printed.max(st.packets.len());
        let cond = st.current();
        let why = || {
            cond.map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_default()
        };
        match st.phase {
            Some(TracePhase::Completed) => {
                if st.packets.is_empty() {
                    eprintln!("no packet of pod {} matched within {timeout} s", t.spec.pod);
                }
                return Ok(0);
            }
            Some(TracePhase::Failed) => {
                return Err(Error::Failed(format!("the trace failed: {}", why())))
            }
            None if started.elapsed() >= PICKUP => {
                return Err(Error::Failed(no_agent(c, linx_ns, node).await))
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Failed(format!(
                "the trace did not end in time (agent on node {node}): {}",
                why()
            )));
        }
    }
}

/// Why no agent seems to have taken a trace of a pod on `node`.
pub async fn no_agent(c: &Client, linx_ns: &str, node: &str) -> String {
    let head = format!("no linx agent took the trace within {} s", PICKUP.as_secs());
    let lp = ListParams::default()
        .labels("app.kubernetes.io/component=agent")
        .fields(&format!("spec.nodeName={node}"));
    match Api::<Pod>::namespaced(c.clone(), linx_ns).list(&lp).await {
        Err(kube::Error::Api(e)) if e.code == 403 => format!(
            "{head}; the agents in {linx_ns} cannot be listed with your rights: is the linx-agent DaemonSet running on node {node}?"
        ),
        Err(e) => format!("{head}; listing the agents in {linx_ns} failed: {e}"),
        Ok(l) => match l.items.first() {
            None => format!(
                "{head}: no linx agent runs on node {node} (no pod of DaemonSet {linx_ns}/linx-agent there). Is Linx installed, and does the DaemonSet tolerate that node?"
            ),
            Some(p) => {
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_else(|| "Unknown".into());
                if phase == "Running" {
                    format!(
                        "{head}: the agent on node {node} ({linx_ns}/{}) is running but did not answer; see `kubectl -n {linx_ns} logs {}`",
                        p.name_any(),
                        p.name_any()
                    )
                } else {
                    format!(
                        "{head}: the agent on node {node} ({linx_ns}/{}) is {phase}, not running",
                        p.name_any()
                    )
                }
            }
        },
    }
}

/// `kubectl linx status`.
pub async fn status(c: &Client, ns: &str, name: &str) -> Result<i32, Error> {
    let r = Api::<FirewallRuleset>::namespaced(c.clone(), ns)
        .get_opt(name)
        .await
        .map_err(kube_err(format!("reading FirewallRuleset {ns}/{name}")))?
        .ok_or_else(|| Error::Failed(format!("FirewallRuleset {ns}/{name} not found")))?;
    let reports = match Api::<FirewallNodeReport>::all(c.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => Ok(l.items),
        Err(kube::Error::Api(e)) if e.code == 403 => Err(
            "node reports are not readable with your rights (ClusterRole linx-report-reader): per-pod detail is not shown".to_owned(),
        ),
        Err(e) => return Err(kube_err("listing FirewallNodeReports")(e)),
    };
    print!(
        "{}",
        status_text(&r, reports.as_deref().map_err(String::as_str))
    );
    Ok(0)
}

/// The text of `kubectl linx status`.
pub fn status_text(r: &FirewallRuleset, reports: Result<&[FirewallNodeReport], &str>) -> String {
    let mut out = String::new();
    let ns = r.namespace().unwrap_or_default();
    let uid = r.uid().unwrap_or_default();
    let mode = if r.spec.audit() { "Audit" } else { "Enforce" };
    let logging = if r.spec.log_drops() {
        ", drops logged"
    } else {
        ""
    };
    out.push_str(&format!(
        "FirewallRuleset {ns}/{} generation {} ({mode}{logging})\n",
        r.name_any(),
        r.metadata.generation.unwrap_or(0)
    ));
    let st = r.status.clone().unwrap_or_default();
    for c in &st.conditions {
        out.push_str(&format!(
            "  {:<10} {:<7} {:<12} {}\n",
            c.type_, c.status, c.reason, c.message
        ));
    }
    out.push_str(&format!(
        "  pods: {} matched, {} applied, {} failed\n",
        st.matched_pods, st.applied_pods, st.failed_pods
    ));
    match reports {
        Err(note) => out.push_str(&format!("\n{note}\n")),
        Ok(reports) => {
            let mut rows = Vec::new();
            for rep in reports {
                for e in rep
                    .spec
                    .rulesets
                    .iter()
                    .filter(|e| e.namespace == ns && e.name == r.name_any() && e.uid == uid)
                {
                    for p in &e.pods {
                        rows.push([
                            rep.spec.node_name.clone(),
                            p.pod.clone(),
                            p.state.clone(),
                            p.applied_generation.map_or("-".into(), |g| g.to_string()),
                            p.would_drop.to_string(),
                        ]);
                    }
                }
            }
            if rows.is_empty() {
                out.push_str(
                    "\nno agent reports a pod of this resource: it selects none, or no linx agent runs on their nodes\n",
                );
            } else {
                rows.sort();
                out.push('\n');
                out.push_str(&table(
                    &["NODE", "POD", "STATE", "GENERATION", "WOULD-DROP"],
                    &rows,
                ));
            }
        }
    }
    if r.spec.audit() || st.would_drop_total > 0 {
        out.push_str(&format!("\nwould-be drops: {}\n", st.would_drop_total));
        if !st.would_drop.is_empty() {
            let rows: Vec<[String; 3]> = st
                .would_drop
                .iter()
                .map(|w| {
                    [
                        w.rule.clone(),
                        w.source.clone().unwrap_or_else(|| "-".into()),
                        w.count.to_string(),
                    ]
                })
                .collect();
            out.push_str(&table(&["RULE", "SOURCE", "COUNT"], &rows));
        }
    }
    if !st.failures.is_empty() {
        out.push_str("\nfailures:\n");
        for f in &st.failures {
            out.push_str(&format!("  {}/{}: {}\n", f.node, f.pod, f.message));
        }
    }
    out
}

/// Columns padded to their widest cell.
fn table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) -> String {
    let mut w = [0; N];
    for (i, h) in head.iter().enumerate() {
        w[i] = h.len();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        l.push('\n');
        l
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `kubectl linx explain`.
pub async fn explain(c: &Client, ns: &str, name: &str) -> Result<i32, Error> {
    print!("{}", explain_report(c, ns, name).await?);
    Ok(0)
}

/// What `kubectl linx explain` prints, from the API server's answers.
pub async fn explain_report(c: &Client, ns: &str, name: &str) -> Result<String, Error> {
    let pod = Api::<Pod>::namespaced(c.clone(), ns)
        .get_opt(name)
        .await
        .map_err(kube_err(format!("reading pod {ns}/{name}")))?
        .ok_or_else(|| Error::Failed(format!("pod {ns}/{name} not found")))?;
    let all = Api::<FirewallRuleset>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .map_err(kube_err(format!("listing FirewallRulesets in {ns}")))?;
    // The agents' own reading of selectors: what is enforced is explained.
    let no_labels = Default::default();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&no_labels);
    let selecting: Vec<FirewallRuleset> = all
        .items
        .into_iter()
        .filter(|r| linx_crds::selector::selects(&r.spec.pod_selector, labels))
        .collect();
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let report = match &node {
        Some(n) => match Api::<FirewallNodeReport>::all(c.clone()).get_opt(n).await {
            Ok(r) => Ok(r),
            Err(kube::Error::Api(e)) if e.code == 403 => Err(
                "node reports are not readable with your rights (ClusterRole linx-report-reader)"
                    .to_owned(),
            ),
            Err(e) => return Err(kube_err(format!("reading FirewallNodeReport {n}"))(e)),
        },
        None => Ok(None),
    };
    let ips = pod_ips(&pod);
    let mut sets = AddressSets::default();
    if !ips.is_empty() && !host_network(&pod) {
        sets = address_sets(c, ns).await?;
        sets.keep_live(c, &ips).await?;
    }
    Ok(explain_text(&pod, &selecting, report, &sets))
}

fn denied(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// The FirewallAddressSets a reader may see: every namespace's, or (when
/// cluster-wide reading is not granted) those of `ns`, with a note.
async fn address_sets(c: &Client, ns: &str) -> Result<AddressSets, Error> {
    let lp = ListParams::default();
    match Api::<FirewallAddressSet>::all(c.clone()).list(&lp).await {
        Ok(l) => return Ok(AddressSets::of(&l.items, vec![])),
        Err(e) if !denied(&e) => return Err(kube_err("listing FirewallAddressSets")(e)),
        Err(_) => {}
    }
    match Api::<FirewallAddressSet>::namespaced(c.clone(), ns)
        .list(&lp)
        .await
    {
        Ok(l) => Ok(AddressSets::of(&l.items, vec![format!(
            "address sets of other namespaces are not readable with your rights (ClusterRole linx-report-reader): only those of {ns} were searched"
        )])),
        Err(e) if denied(&e) => Ok(AddressSets::of(&[], vec![
            "address sets are not readable with your rights (ClusterRole linx-report-reader)".to_owned(),
        ])),
        Err(e) => Err(kube_err(format!("listing FirewallAddressSets in {ns}"))(e)),
    }
}

/// The FirewallRuleset a published list was made for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListOwner {
    pub namespace: String,
    pub ruleset: String,
    pub uid: String,
}

/// The lists that selectors' sets resolved to, as agents assemble them
/// from the operator's chunks, and what could not be read.
#[derive(Debug, Default)]
pub struct AddressSets {
    pub lists: BTreeMap<(ListOwner, SetRef), Vec<String>>,
    pub notes: Vec<String>,
}

impl AddressSets {
    pub fn of(chunks: &[FirewallAddressSet], notes: Vec<String>) -> AddressSets {
        let mut by_owner: BTreeMap<ListOwner, Vec<&FirewallAddressSetSpec>> = BTreeMap::new();
        for c in chunks {
            let owner = ListOwner {
                namespace: c.namespace().unwrap_or_default(),
                ruleset: c.spec.ruleset.clone(),
                uid: c.spec.ruleset_uid.clone(),
            };
            by_owner.entry(owner).or_default().push(&c.spec);
        }
        let mut lists = BTreeMap::new();
        for (owner, parts) in by_owner {
            for (set, list) in assemble(parts) {
                lists.insert((owner.clone(), set), list);
            }
        }
        AddressSets { lists, notes }
    }

    /// Keeps, of the lists holding one of `ips`, those an agent uses: made
    /// for the FirewallRuleset of that name and UID that exists now (a
    /// list left from a deleted resource, or one naming a UID that is not
    /// the resource's, is ignored by agents too).
    pub async fn keep_live(&mut self, c: &Client, ips: &[String]) -> Result<(), Error> {
        let owners: std::collections::BTreeSet<ListOwner> =
            self.holding(ips).map(|((o, _), _)| o.clone()).collect();
        for o in owners {
            let api = Api::<FirewallRuleset>::namespaced(c.clone(), &o.namespace);
            let live = match api.get_opt(&o.ruleset).await {
                Ok(r) => r.is_some_and(|r| r.uid().as_deref() == Some(o.uid.as_str())),
                Err(e) if denied(&e) => {
                    self.notes.push(format!(
                        "FirewallRuleset {}/{} is not readable with your rights: its sets are shown as published",
                        o.namespace, o.ruleset
                    ));
                    true
                }
                Err(e) => {
                    let what = format!("reading FirewallRuleset {}/{}", o.namespace, o.ruleset);
                    return Err(kube_err(what)(e));
                }
            };
            if !live {
                self.lists.retain(|(owner, _), _| *owner != o);
            }
        }
        Ok(())
    }

    /// Each set holding one of `ips` (an element's first part: `10.0.0.7`
    /// or `10.0.0.7 . 5432`), with the element.
    pub fn holding<'a>(
        &'a self,
        ips: &'a [String],
    ) -> impl Iterator<Item = (&'a (ListOwner, SetRef), &'a str)> + 'a {
        self.lists.iter().flat_map(move |(at, list)| {
            list.iter()
                .filter(|e| {
                    ips.iter()
                        .any(|ip| e.split(" . ").next() == Some(ip.as_str()))
                })
                .map(move |e| (at, e.as_str()))
        })
    }
}

fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

/// The pod's addresses (`status.podIPs`, else `status.podIP`).
fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(st) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<String> = st.pod_ips.iter().flatten().map(|p| p.ip.clone()).collect();
    if ips.is_empty() {
        ips.extend(st.pod_ip.clone());
    }
    ips
}

/// The text of `kubectl linx explain`.
pub fn explain_text(
    pod: &Pod,
    selecting: &[FirewallRuleset],
    report: Result<Option<FirewallNodeReport>, String>,
    sets: &AddressSets,
) -> String {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut out = format!(
        "pod {ns}/{name} on node {}\n",
        spec.node_name.as_deref().unwrap_or("(none yet)")
    );
    if host_network(pod) {
        out.push_str(
            "  hostNetwork: it shares its node's network namespace; Linx never touches it, and no selector puts its address in a set\n",
        );
        return out;
    }
    if selecting.is_empty() {
        out.push_str(
            "no FirewallRuleset of its namespace selects it: Linx leaves its firewall empty\n",
        );
    } else {
        out.push_str(&selected_text(&ns, &name, &spec, selecting, report));
    }
    out.push_str(&membership_text(&pod_ips(pod), sets));
    out
}

/// Which rulesets own which tables in the pod, and what the agent says.
fn selected_text(
    ns: &str,
    name: &str,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    selecting: &[FirewallRuleset],
    report: Result<Option<FirewallNodeReport>, String>,
) -> String {
    let mut out = String::new();
    let claims: Vec<Claim> = selecting
        .iter()
        .map(|r| Claim {
            name: r.name_any(),
            created: r.metadata.creation_timestamp.clone(),
            tables: declared_tables(&r.spec),
        })
        .collect();
    let res = resolve(&claims);
    out.push_str("FirewallRulesets selecting it:\n");
    for (r, claim) in selecting.iter().zip(&claims) {
        let mode = if r.spec.audit() { ", Audit" } else { "" };
        out.push_str(&format!(
            "  {} (generation {}{mode})\n",
            r.name_any(),
            r.metadata.generation.unwrap_or(0)
        ));
        for (f, t) in &claim.tables {
            let owner = res.owners.get(&(*f, t.clone()));
            match owner {
                Some(o) if *o != claim.name => out.push_str(&format!(
                    "    table {f} {t}: not applied here, owned by {o} (the older resource)\n"
                )),
                _ => out.push_str(&format!("    table {f} {t}: owned\n")),
            }
        }
    }
    match report {
        Err(note) => out.push_str(&format!("{note}\n")),
        Ok(None) => out.push_str(&format!(
            "no FirewallNodeReport for node {}: no linx agent has reported from that node (is the linx-agent DaemonSet running there?)\n",
            spec.node_name.as_deref().unwrap_or("?")
        )),
        Ok(Some(rep)) => {
            out.push_str(&format!("the agent on node {} reports:\n", rep.spec.node_name));
            let mut any = false;
            for e in rep.spec.rulesets.iter().filter(|e| e.namespace == ns) {
                for p in e.pods.iter().filter(|p| p.pod == name) {
                    any = true;
                    let generation = p
                        .applied_generation
                        .map_or(String::new(), |g| format!(" generation {g}"));
                    out.push_str(&format!("  {}: {}{generation}\n", e.name, p.state));
                }
            }
            if !any {
                out.push_str("  nothing about this pod yet\n");
            }
        }
    }
    out
}

/// The sets (fed by selectors) holding the pod's addresses.
fn membership_text(ips: &[String], sets: &AddressSets) -> String {
    let mut out = String::new();
    for note in &sets.notes {
        out.push_str(&format!("{note}\n"));
    }
    if ips.is_empty() {
        out.push_str("no address yet: in no set fed by a selector\n");
        return out;
    }
    let (what, verb) = if ips.len() == 1 {
        ("its address", "is")
    } else {
        ("its addresses", "are")
    };
    let list = ips.join(", ");
    let mut rows: Vec<String> = sets
        .holding(ips)
        .map(|((owner, set), element)| {
            let shown = if ips.iter().any(|ip| ip == element) {
                String::new()
            } else {
                format!(" as {element}")
            };
            let (ns, ruleset) = (&owner.namespace, &owner.ruleset);
            format!("  set {set} of FirewallRuleset {ns}/{ruleset}{shown}\n")
        })
        .collect();
    rows.dedup();
    if rows.is_empty() {
        out.push_str(&format!(
            "{what} {list} {verb} in no set fed by a selector (FirewallAddressSet)\n"
        ));
    } else {
        out.push_str(&format!("{what} {list} {verb} in:\n"));
        out.extend(rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use linx_crds::{PodRuleset, RuleCount, RulesetReport};

    #[test]
    fn targets_name_their_kind() {
        assert_eq!(target("pod/web-0", &["pod"]).unwrap(), "web-0");
        assert_eq!(target("web-0", &["pod"]).unwrap(), "web-0");
        assert!(target("svc/web", &["pod"]).is_err());
    }

    #[test]
    fn status_lists_pods_and_would_be_drops() {
        let mut r: FirewallRuleset = serde_json::from_value(serde_json::json!({
            "apiVersion": "netfilter.linx.dev/v1alpha1", "kind": "FirewallRuleset",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1", "generation": 2},
            "spec": {"nft": "table inet fw {}", "enforcement": "Audit"},
        }))
        .unwrap();
        r.status = Some(linx_crds::FirewallRulesetStatus {
            matched_pods: 1,
            applied_pods: 1,
            would_drop_total: 3,
            would_drop: vec![RuleCount {
                rule: "inet fw input #1".into(),
                source: Some("5:3".into()),
                count: 3,
            }],
            ..Default::default()
        });
        let rep = FirewallNodeReport::for_node(
            "node-a",
            vec![RulesetReport {
                namespace: "shop".into(),
                name: "web".into(),
                uid: "u1".into(),
                generation: 2,
                pods: vec![PodRuleset {
                    pod: "web-0".into(),
                    state: "Applied".into(),
                    applied_generation: Some(2),
                    would_drop: 3,
                }],
                ..Default::default()
            }],
        );
        assert_eq!(
            status_text(&r, Ok(&[rep])),
            "FirewallRuleset shop/web generation 2 (Audit)\n\
             \x20 pods: 1 matched, 1 applied, 0 failed\n\
             \n\
             NODE    POD    STATE    GENERATION  WOULD-DROP\n\
             node-a  web-0  Applied  2           3\n\
             \n\
             would-be drops: 3\n\
             RULE              SOURCE  COUNT\n\
             inet fw input #1  5:3     3\n"
        );
    }
}
