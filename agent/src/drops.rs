//! Drops, would-be drops and logged packets, read from each pod's NFLOG
//! group and told back to people: counted per rule for the node report
//! and Prometheus, and written as one JSON line per packet.
//!
//! The rules that log to the agent are the ones `linx_crds::instrument`
//! made: Audit rules, drop logs (`logging.drops`) and a rule's own `log`.
//! Each logs with a tag as prefix; the agent knows, per pod, which
//! FirewallRuleset, rule and source line each tag stands for ([`PodRules`]).
//!
//! * **Counts.** Would-be drops (Audit) per rule and per pod, for the
//!   generation each resource has enforced since this agent started (an
//!   edit starts them again); the node report carries them.
//! * **Metrics.** `linx_audit_would_drop_total` and
//!   `linx_dropped_packets_total` by `namespace`, `ruleset` and `rule`
//!   (`inet fw input #2`: the rule by index), at most [`MAX_RULE_LABELS`]
//!   rules per resource (further ones count as `other`); pods are never a
//!   label.
//! * **JSON lines** (stdout): one per packet of a drop log or an own
//!   `log`, and per would-be drop of a resource with `logging.drops` —
//!   at most `rate` per second per pod (a token bucket holding one
//!   second's worth). What the limit holds back is counted exactly and
//!   said once a second per pod (`{"suppressed": N, …}`), so lines plus
//!   suppressed counts equal the packets read; packets the kernel could
//!   not hand over are said as `{"lost": N, …}` (NFLOG's sequence numbers).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use linx_crds::instrument::{LogKind, Tag};
use linx_crds::origin::{RuleRef, Source};
use linx_crds::report::{RuleCount, MAX_RULE_COUNTS};
use linx_netfilter::expr::Expr;
use linx_netfilter::nflog::{CopyMode, LogConfig, LogItem, LoggedPacket, Nflog};
use linx_netfilter::packet::Transport;
use linx_netfilter::{Netns, Ruleset};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::pod::Pod;
use crate::rulesets::{RuleMap, RulesetPolicy};

/// Rules of one resource that get a label of their own.
pub const MAX_RULE_LABELS: usize = 32;

/// Bytes of each logged packet the kernel copies: IPv6 and a full TCP
/// header fit.
const COPY_RANGE: u32 = 128;

/// How drops are read and logged.
#[derive(Clone, Debug)]
pub struct DropConfig {
    /// The NFLOG group read in every pod that logs to it.
    pub group: u16,
    /// JSON lines per second per pod; 0: no limit.
    pub rate: u32,
    /// This node's name, in every line.
    pub node: String,
}

/// The resources of one pod whose rules log to the agent.
#[derive(Clone, Debug, Default)]
pub struct PodRules {
    pub rulesets: Vec<RulesetRules>,
}

/// One resource as enforced in a pod.
#[derive(Clone, Debug)]
pub struct RulesetRules {
    pub name: String,
    pub uid: String,
    pub generation: i64,
    pub rules: Arc<RuleMap>,
}

impl PodRules {
    /// The resources `policy` enforces in `pod` (each once).
    pub fn of(policy: &RulesetPolicy, pod: &Pod) -> PodRules {
        let mut rulesets: Vec<RulesetRules> = Vec::new();
        for o in policy.owners(pod) {
            if rulesets.iter().any(|r| r.uid == o.compiled.uid) {
                continue;
            }
            rulesets.push(RulesetRules {
                name: o.compiled.name.clone(),
                uid: o.compiled.uid.clone(),
                generation: o.enforced.generation,
                rules: o.enforced.rules.clone(),
            });
        }
        PodRules { rulesets }
    }

    fn lookup(&self, prefix: &str) -> Option<(&RulesetRules, &Tag)> {
        self.rulesets
            .iter()
            .find_map(|r| r.rules.tags.get(prefix).map(|t| (r, t)))
    }

    /// Whether any of its rules logs to the agent.
    pub fn logs(&self) -> bool {
        self.rulesets.iter().any(|r| !r.rules.tags.is_empty())
    }
}

/// Whether `value` holds a rule logging to NFLOG group `group`.
pub fn logs_to(value: &Ruleset, group: u16) -> bool {
    value.tables.iter().any(|t| {
        t.chains.iter().any(|c| {
            c.rules.iter().any(|r| {
                r.exprs
                    .iter()
                    .any(|e| matches!(e, Expr::Log(l) if l.group == Some(group)))
            })
        })
    })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub namespace: String,
    pub ruleset: String,
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub namespace: String,
}

/// Prometheus metrics of drops; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DropMetrics {
    pub dropped: Family<RuleLabels, Counter>,
    pub would_drop: Family<RuleLabels, Counter>,
    pub suppressed: Family<NamespaceLabels, Counter>,
    pub lost: Family<NamespaceLabels, Counter>,
    /// Logged packets whose tag no resource of the pod has (a rule being
    /// replaced, or a `log group` of the agent's group written by hand).
    pub unattributed: Counter,
}

impl DropMetrics {
    /// New metrics, registered under `linx_`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = DropMetrics::default();
        let r = registry.sub_registry_with_prefix("linx");
        r.register(
            "dropped_packets",
            "Packets dropped by rules with drop logging (logging.drops), by rule",
            m.dropped.clone(),
        );
        r.register(
            "audit_would_drop",
            "Packets Audit-mode rules would have dropped (and accepted), by rule",
            m.would_drop.clone(),
        );
        r.register(
            "drop_log_suppressed",
            "JSON log lines held back by the per-pod rate limit",
            m.suppressed.clone(),
        );
        r.register(
            "nflog_lost",
            "Logged packets the kernel could not hand to the agent (socket full)",
            m.lost.clone(),
        );
        r.register(
            "nflog_unattributed",
            "Logged packets with a tag no resource of the pod has",
            m.unattributed.clone(),
        );
        m
    }
}

/// Counts of one resource's enforced generation on this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesetCounts {
    pub generation: i64,
    pub would_drop_total: u64,
    pub would_drop: HashMap<RuleRef, (Option<Source>, u64)>,
    /// Would-be drops by pod UID.
    pub pods: HashMap<String, u64>,
}

impl RulesetCounts {
    /// The rules that would have dropped the most (then by rule), at most
    /// [`MAX_RULE_COUNTS`].
    pub fn top(&self) -> Vec<RuleCount> {
        let mut v: Vec<(&RuleRef, &(Option<Source>, u64))> = self.would_drop.iter().collect();
        v.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then_with(|| a.0.cmp(b.0)));
        v.into_iter()
            .take(MAX_RULE_COUNTS)
            .map(|(r, (s, n))| RuleCount {
                rule: r.to_string(),
                source: s.as_ref().map(|s| s.to_string()),
                count: *n,
            })
            .collect()
    }
}

/// Lines a pod may write now: a bucket of one second's worth.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: u32) -> Self {
        Bucket {
            tokens: f64::from(rate.max(1)),
            last: Instant::now(),
        }
    }

    fn take(&mut self, rate: u32, now: Instant) -> bool {
        if rate == 0 {
            return true;
        }
        let cap = f64::from(rate);
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * cap).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct PodEntry {
    pod: Pod,
    rules: Arc<PodRules>,
    bucket: Bucket,
    /// Lines held back since the last `suppressed` line.
    suppressed: u64,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, PodEntry>,
    /// By resource UID.
    counts: HashMap<String, RulesetCounts>,
    /// Rule labels in use, by (namespace, resource).
    labels: HashMap<(String, String), HashSet<String>>,
}

/// The node's drop accounting; shared by the pods' readers, the report
/// and the metrics.
pub struct Drops {
    cfg: DropConfig,
    state: Mutex<State>,
    metrics: DropMetrics,
    out: Mutex<Box<dyn Write + Send>>,
    version: watch::Sender<u64>,
}

impl Drops {
    /// Lines go to stdout.
    pub fn new(cfg: DropConfig, metrics: DropMetrics) -> Self {
        Self::with_output(cfg, metrics, Box::new(std::io::stdout()))
    }

    pub fn with_output(cfg: DropConfig, metrics: DropMetrics, out: Box<dyn Write + Send>) -> Self {
        Drops {
            cfg,
            state: Mutex::default(),
            metrics,
            out: Mutex::new(out),
            version: watch::Sender::new(0),
        }
    }

    pub fn group(&self) -> u16 {
        self.cfg.group
    }

    /// Bumped whenever counts change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every pod of the node and what its rules' tags stand for. A
    /// resource's counts start again when its enforced generation changes,
    /// and go with it.
    pub fn set_pods(&self, pods: impl IntoIterator<Item = (Pod, PodRules)>) {
        let rate = self.cfg.rate;
        let mut st = self.lock();
        let mut old = std::mem::take(&mut st.pods);
        let mut live: HashMap<String, i64> = HashMap::new();
        for (pod, rules) in pods {
            for r in &rules.rulesets {
                live.insert(r.uid.clone(), r.generation);
            }
            let entry = match old.remove(&pod.uid) {
                Some(mut e) => {
                    e.pod = pod;
                    e.rules = Arc::new(rules);
                    e
                }
                None => PodEntry {
                    pod,
                    rules: Arc::new(rules),
                    bucket: Bucket::full(rate),
                    suppressed: 0,
                },
            };
            st.pods.insert(entry.pod.uid.clone(), entry);
        }
        st.counts
            .retain(|uid, c| live.get(uid).is_some_and(|g| *g == c.generation));
        for (uid, generation) in live {
            st.counts.entry(uid).or_insert_with(|| RulesetCounts {
                generation,
                ..Default::default()
            });
        }
        drop(st);
        self.version.send_modify(|v| *v += 1);
    }

    /// The counts of resource `uid`.
    pub fn counts(&self, uid: &str) -> Option<RulesetCounts> {
        self.lock().counts.get(uid).cloned()
    }

    /// One item read from the NFLOG group of pod `uid`.
    pub fn record(&self, uid: &str, item: LogItem) {
        match item {
            LogItem::Packet(p) => self.packet(uid, &p),
            LogItem::Lost(n) => {
                let st = self.lock();
                let Some(e) = st.pods.get(uid) else { return };
                let ns = e.pod.namespace.clone();
                let line = json!({"lost": n, "node": self.cfg.node, "pod": pod_json(&e.pod)});
                drop(st);
                self.metrics
                    .lost
                    .get_or_create(&NamespaceLabels { namespace: ns })
                    .inc_by(n);
                self.write(&line);
            }
        }
    }

    fn packet(&self, uid: &str, p: &LoggedPacket) {
        let now = Instant::now();
        let mut st = self.lock();
        let State {
            pods,
            counts,
            labels,
        } = &mut *st;
        let Some(e) = pods.get_mut(uid) else {
            debug!(uid, "logged packet of a pod no longer known");
            return;
        };
        let found = p.prefix.as_deref().and_then(|x| e.rules.lookup(x));
        let Some((rs, tag)) = found else {
            self.metrics.unattributed.inc();
            let line = packet_json(&self.cfg.node, &e.pod, None, p);
            if e.bucket.take(self.cfg.rate, now) {
                drop(st);
                self.write(&line);
            } else {
                e.suppressed += 1;
            }
            return;
        };
        let ns = e.pod.namespace.clone();
        let mut rule_label = || {
            let used = labels.entry((ns.clone(), rs.name.clone())).or_default();
            let r = tag.rule.to_string();
            if used.contains(&r) || used.len() < MAX_RULE_LABELS {
                used.insert(r.clone());
                r
            } else {
                "other".to_owned()
            }
        };
        let logged = match tag.kind {
            LogKind::Audit => {
                let c = counts.entry(rs.uid.clone()).or_default();
                c.would_drop_total += 1;
                c.would_drop
                    .entry(tag.rule.clone())
                    .or_insert_with(|| (tag.source.clone(), 0))
                    .1 += 1;
                *c.pods.entry(uid.to_owned()).or_default() += 1;
                self.metrics
                    .would_drop
                    .get_or_create(&RuleLabels {
                        namespace: ns.clone(),
                        ruleset: rs.name.clone(),
                        rule: rule_label(),
                    })
                    .inc();
                self.version.send_modify(|v| *v += 1);
                rs.rules.log_drops
            }
            LogKind::Drop => {
                self.metrics
                    .dropped
                    .get_or_create(&RuleLabels {
                        namespace: ns.clone(),
                        ruleset: rs.name.clone(),
                        rule: rule_label(),
                    })
                    .inc();
                true
            }
            LogKind::Log => true,
        };
        if !logged {
            return;
        }
        if !e.bucket.take(self.cfg.rate, now) {
            e.suppressed += 1;
            self.metrics
                .suppressed
                .get_or_create(&NamespaceLabels { namespace: ns })
                .inc();
            return;
        }
        let line = packet_json(&self.cfg.node, &e.pod, Some((rs, tag)), p);
        drop(st);
        self.write(&line);
    }

    /// Says, for each pod whose lines were held back, how many (then
    /// starts counting again). Called once a second.
    pub fn tick(&self) {
        let lines: Vec<Value> = {
            let mut st = self.lock();
            st.pods
                .values_mut()
                .filter(|e| e.suppressed > 0)
                .map(|e| {
                    let n = std::mem::take(&mut e.suppressed);
                    json!({"suppressed": n, "node": self.cfg.node, "pod": pod_json(&e.pod)})
                })
                .collect()
        };
        for l in &lines {
            self.write(l);
        }
    }

    /// Says every pending `suppressed` count once a second until the
    /// task is dropped.
    pub async fn run_ticks(self: Arc<Self>) {
        let mut t = tokio::time::interval(Duration::from_secs(1));
        loop {
            t.tick().await;
            self.tick();
        }
    }

    fn write(&self, line: &Value) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = serde_json::to_writer(&mut *out, line);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    }
}

fn pod_json(p: &Pod) -> Value {
    json!({"namespace": p.namespace, "name": p.name, "uid": p.uid})
}

fn packet_json(
    node: &str,
    pod: &Pod,
    rule: Option<(&RulesetRules, &Tag)>,
    p: &LoggedPacket,
) -> Value {
    let time = jiff::Timestamp::try_from(
        p.timestamp
            .map_or_else(SystemTime::now, |d| SystemTime::UNIX_EPOCH + d),
    )
    .map(|t| t.to_string())
    .unwrap_or_default();
    let mut v = json!({
        "time": time,
        "node": node,
        "pod": pod_json(pod),
        "family": p.family.name(),
        "hook": p.hook_name(),
    });
    match rule {
        Some((rs, tag)) => {
            v["ruleset"] = json!(rs.name);
            v["kind"] = json!(tag.kind);
            v["verdict"] = json!(tag.verdict);
            v["rule"] = json!({
                "table": format!("{} {}", tag.rule.family.name(), tag.rule.table),
                "chain": tag.rule.chain,
                "index": tag.rule.index,
                "source": tag.source.as_ref().map(|s| s.to_string()),
            });
            if let Some(prefix) = &tag.prefix {
                v["prefix"] = json!(prefix);
            }
        }
        None => v["prefix"] = json!(p.prefix),
    }
    if let Some(n) = &p.headers.network {
        v["protocol"] = json!(protocol_name(n.protocol()));
        v["saddr"] = json!(n.src().to_string());
        v["daddr"] = json!(n.dst().to_string());
    }
    if let Some((sport, dport)) = p.headers.transport.as_ref().and_then(Transport::ports) {
        v["sport"] = json!(sport);
        v["dport"] = json!(dport);
    }
    for (key, dev) in [("iif", &p.indev), ("oif", &p.outdev)] {
        if let Some(d) = dev {
            v[key] = match &d.name {
                Some(n) => json!(n),
                None => json!(d.index),
            };
        }
    }
    v
}

fn protocol_name(p: u8) -> Value {
    match p {
        6 => json!("tcp"),
        17 => json!("udp"),
        1 => json!("icmp"),
        58 => json!("icmpv6"),
        132 => json!("sctp"),
        n => json!(n),
    }
}

/// A pod's NFLOG group, read while its worker holds the namespace and
/// its rules log to the agent; stops when dropped.
#[derive(Default)]
pub(crate) struct Reader {
    task: Option<JoinHandle<()>>,
    /// The value last checked for logging rules.
    checked: Option<Arc<Ruleset>>,
    wanted: bool,
}

impl Reader {
    /// Starts or stops reading as `value` needs.
    pub(crate) async fn ensure(
        &mut self,
        drops: &Arc<Drops>,
        netns: &Netns,
        pod: &Pod,
        value: Option<&Arc<Ruleset>>,
    ) {
        let same = match (&self.checked, value) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            self.wanted = value.is_some_and(|v| logs_to(v, drops.group()));
            self.checked = value.cloned();
        }
        let running = self.task.as_ref().is_some_and(|t| !t.is_finished());
        match (self.wanted, running) {
            (false, _) => self.stop(),
            (true, true) => {}
            (true, false) => self.start(drops, netns, pod).await,
        }
    }

    async fn start(&mut self, drops: &Arc<Drops>, netns: &Netns, pod: &Pod) {
        let cfg = LogConfig {
            copy: CopyMode::Packet { range: COPY_RANGE },
            ..LogConfig::group(drops.group())
        };
        let ns = netns.clone();
        let bound = tokio::task::spawn_blocking(move || Nflog::bind(&ns, &cfg)).await;
        let stream = match bound.map(|r| r.and_then(Nflog::into_stream)) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(pod = %pod, error = %e, "cannot read the pod's drop log (retried at the next reconcile)");
                return;
            }
            Err(e) => {
                warn!(pod = %pod, error = %e, "drop log task failed");
                return;
            }
        };
        let (drops, uid, name) = (drops.clone(), pod.uid.clone(), pod.to_string());
        self.task = Some(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(item) => drops.record(&uid, item),
                    Err(e) => {
                        warn!(pod = %name, error = %e, "reading the drop log failed");
                        break;
                    }
                }
            }
        }));
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_one_seconds_worth() {
        let t0 = Instant::now();
        let mut b = Bucket::full(10);
        b.last = t0;
        let taken = (0..25).filter(|_| b.take(10, t0)).count();
        assert_eq!(taken, 10);
        assert!(!b.take(10, t0 + Duration::from_millis(50)));
        assert!(b.take(10, t0 + Duration::from_millis(150)));
        assert!((0..100).all(|_| b.take(0, t0)), "0: no limit");
    }
}
