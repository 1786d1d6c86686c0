//! The deployment manifests (`deploy/`), generated from code so the RBAC
//! rules sit next to the API calls that need them. The Helm chart
//! (`helm/linx/`) carries the same rules and shapes; tests compare both
//! with this module (see `tests/manifests.rs`).

use serde_json::{json, Value};

/// Namespace of the plain manifests (the chart uses the release namespace).
pub const NAMESPACE: &str = "linx-system";
pub const OPERATOR: &str = "linx-operator";
pub const AGENT: &str = "linx-agent";
pub const IMAGE: &str = "linx/linx-operator:0.1.0";
pub const METRICS_PORT: i32 = 8080;
/// The webhook's HTTPS port in the pod; the Service exposes it on 443.
pub const WEBHOOK_PORT: i32 = 8443;
/// The Secret with the webhook's certificates.
pub const WEBHOOK_SECRET: &str = "linx-operator-webhook-tls";
/// Seconds the API server waits for the webhook (the maximum is 30).
pub const WEBHOOK_TIMEOUT_SECONDS: i32 = 5;
pub const AGENT_IMAGE: &str = "linx/linx-agent:0.1.0";
pub const AGENT_METRICS_PORT: i32 = 9464;
/// Where the agent serves `linx-cni` on the node (see `docs/cni.md`).
pub const AGENT_SOCKET: &str = "/run/linx/agent.sock";

/// What the operator may do cluster-wide: read rulesets and reports, write
/// ruleset status (server-side apply = patch), publish events, keep its
/// own webhook configuration's `caBundle`; read pods (does a selector match
/// any: admission warnings, `Ready` without reports), namespaces and
/// services, and publish what set sources resolve to (address sets:
/// written, and deleted when stale).
pub fn operator_cluster_rules() -> Value {
    json!([
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewallrulesets", "firewallnodereports"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods", "namespaces", "services"], "verbs": ["list", "watch"]},
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewalladdresssets"],
         "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewallrulesets/status"], "verbs": ["patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"],
         "resourceNames": [OPERATOR], "verbs": ["get", "list", "watch", "update"]},
        // Finished traces are deleted after their TTL; lost ones failed.
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewalltraces"], "verbs": ["get", "list", "watch", "delete"]},
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewalltraces/status"], "verbs": ["patch"]}
    ])
}

/// What the operator may do in its own namespace: hold its Lease, and
/// keep the webhook's certificates in their Secret (no other Secret).
pub fn operator_lease_rules() -> Value {
    json!([
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [OPERATOR],
         "verbs": ["get", "update"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [WEBHOOK_SECRET],
         "verbs": ["get", "list", "watch", "update"]}
    ])
}

/// The validating webhook: FirewallRuleset creates and updates, outside
/// the operator's own namespace; `Ignore` when unreachable (the operator
/// and agents re-validate), a bounded wait. `caBundle` is filled by the
/// operator (or cert-manager's CA injector).
pub fn webhook_configuration() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": meta(OPERATOR, "operator", false),
        "webhooks": [{
            "name": crate::webhook::NAME,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Ignore",
            "timeoutSeconds": WEBHOOK_TIMEOUT_SECONDS,
            "matchPolicy": "Equivalent",
            "clientConfig": {"service": {"name": OPERATOR, "namespace": NAMESPACE,
                                         "path": crate::webhook::PATH, "port": 443}},
            "rules": [{"apiGroups": ["netfilter.linx.dev"], "apiVersions": ["*"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["firewallrulesets"],
                       "scope": "Namespaced"}],
            "namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NAMESPACE]}]}
        }]
    })
}

/// What a node agent may do: read pods, rulesets and address sets, read its node (for
/// the report's owner reference), write reports, and publish Events (a pod
/// that `linx-cni` let start unprotected). Which report — only its own
/// node's — is enforced by the admission policy below. (With the chart's
/// `cni.readinessGate`, also `patch` on `pods/status`.)
pub fn agent_cluster_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewallrulesets", "firewalladdresssets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewallnodereports"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        // Traces of the node's pods: run them and write their status.
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewalltraces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewalltraces/status"], "verbs": ["patch"]}
    ])
}

/// What the agent's `install-cni` sidecar may do in its namespace: read
/// its own DaemonSet, to tell an uninstall from a restart on SIGTERM.
pub fn agent_install_rules() -> Value {
    json!([
        {"apiGroups": ["apps"], "resources": ["daemonsets"], "resourceNames": [AGENT], "verbs": ["get"]}
    ])
}

/// ClusterRole `linx-tracer`, for users: bound in a namespace (RoleBinding),
/// it lets them trace that namespace's pods (`kubectl linx trace`). A trace
/// shows packets' addresses and ports, so tracing is a permission of its
/// own, not implied by rights on FirewallRulesets.
pub const TRACER: &str = "linx-tracer";
pub fn tracer_rules() -> Value {
    json!([
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewalltraces"],
         "verbs": ["create", "get", "list", "watch", "delete"]}
    ])
}

/// ClusterRole `linx-report-reader`, for users: bound cluster-wide, it lets
/// `kubectl linx status` and `explain` show each pod's state from the
/// node reports, and `explain` find the sets of any namespace that hold a
/// pod's address (the published lists, checked against the live
/// FirewallRuleset they were made for).
pub const REPORT_READER: &str = "linx-report-reader";
pub fn report_reader_rules() -> Value {
    json!([
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewallnodereports", "firewalladdresssets"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["netfilter.linx.dev"], "resources": ["firewallrulesets"], "verbs": ["get"]}
    ])
}

/// The CEL expression that ties an agent's writes to its own node's report.
pub const OWN_NODE_RULE: &str =
    "object.metadata.name == request.userInfo.extra['authentication.kubernetes.io/node-name'][0] && object.spec.nodeName == object.metadata.name";

fn labels(component: &str) -> Value {
    json!({"app.kubernetes.io/name": "linx", "app.kubernetes.io/component": component})
}

fn meta(name: &str, component: &str, namespaced: bool) -> Value {
    let mut m = json!({"name": name, "labels": labels(component)});
    if namespaced {
        m["namespace"] = json!(NAMESPACE);
    }
    m
}

/// The operator Deployment's pod template spec.
pub fn operator_pod_spec() -> Value {
    json!({
        "serviceAccountName": OPERATOR,
        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "operator",
            "image": IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "args": ["--metrics-addr", format!("0.0.0.0:{METRICS_PORT}"), "--lease-name", OPERATOR,
                     "--webhook-addr", format!("0.0.0.0:{WEBHOOK_PORT}"), "--webhook-secret", WEBHOOK_SECRET,
                     "--webhook-configuration", OPERATOR, "--webhook-service", OPERATOR],
            "env": [
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "RUST_LOG", "value": "info,kube=warn"}
            ],
            "ports": [{"name": "metrics", "containerPort": METRICS_PORT},
                      {"name": "webhook", "containerPort": WEBHOOK_PORT}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]}}
        }]
    })
}

/// The agent DaemonSet's pod template spec. The agent enters pods' network
/// namespaces: it sees their processes (hostPID), opens their namespaces
/// (SYS_PTRACE: the processes may run as other users; SYS_ADMIN: setns)
/// and changes their firewalls (NET_ADMIN). It stays out of the node's
/// network namespace (no hostNetwork; the node's namespace is never touched).
///
/// `install-cni`, a native sidecar (an init container that keeps running),
/// chains `linx-cni` into the node's CNI configuration before the agent
/// starts and keeps it there; the agent serves the plugin on a socket in
/// the node's `/run/linx`, where the plugin also keeps its start records.
pub fn agent_pod_spec() -> Value {
    let restricted = |caps: Value| {
        json!({"runAsUser": 0, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "capabilities": caps})
    };
    let host_dir = |name: &str, path: &str| json!({"name": name, "hostPath": {"path": path, "type": "DirectoryOrCreate"}});
    json!({
        "serviceAccountName": AGENT,
        "hostPID": true,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "tolerations": [{"operator": "Exists"}],
        "initContainers": [{
            "name": "install-cni",
            "image": AGENT_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "restartPolicy": "Always",
            "args": ["install-cni", "--failure-policy", "failClosed", "--timeout-secs", "10",
                     "--exclude-namespace", "kube-system"],
            "env": [
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "RUST_LOG", "value": "linx_agent=info,kube=warn"}
            ],
            "volumeMounts": [
                {"name": "cni-conf", "mountPath": "/host/etc/cni/net.d"},
                {"name": "cni-bin", "mountPath": "/host/opt/cni/bin"}
            ],
            "resources": {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            "securityContext": restricted(json!({"drop": ["ALL"]}))
        }],
        "containers": [{
            "name": "agent",
            "image": AGENT_IMAGE,
            "imagePullPolicy": "IfNotPresent",
            "args": ["run", "--metrics-addr", format!("0.0.0.0:{AGENT_METRICS_PORT}"), "--cni-socket", AGENT_SOCKET],
            "env": [
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "RUST_LOG", "value": "linx_agent=info,kube=warn"}
            ],
            "ports": [{"name": "metrics", "containerPort": AGENT_METRICS_PORT}],
            "volumeMounts": [{"name": "run-linx", "mountPath": "/run/linx"}],
            "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
            "securityContext": restricted(json!({"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]}))
        }],
        "volumes": [
            host_dir("cni-conf", "/etc/cni/net.d"),
            host_dir("cni-bin", "/opt/cni/bin"),
            host_dir("run-linx", "/run/linx")
        ]
    })
}

/// Every object of `deploy/linx.yaml`, in apply order (CRDs are in `deploy/crds/`).
pub fn objects() -> Vec<Value> {
    let sa = |name: &str, component: &str| json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(name, component, true)});
    let binding = |kind: &str, role_kind: &str, name: &str, component: &str, namespaced: bool| {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta(name, component, namespaced),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
        })
    };
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels("namespace")}}),
        sa(OPERATOR, "operator"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": meta(OPERATOR, "operator", false), "rules": operator_cluster_rules()}),
        binding(
            "ClusterRoleBinding",
            "ClusterRole",
            OPERATOR,
            "operator",
            false,
        ),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": meta(OPERATOR, "operator", true), "rules": operator_lease_rules()}),
        binding("RoleBinding", "Role", OPERATOR, "operator", true),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(OPERATOR, "operator", true),
               "spec": {"replicas": 2,
                        "selector": {"matchLabels": labels("operator")},
                        "template": {"metadata": {"labels": labels("operator")}, "spec": operator_pod_spec()}}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(OPERATOR, "operator", true),
               "spec": {"selector": labels("operator"),
                        "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
                                  {"name": "webhook", "port": 443, "targetPort": "webhook"}]}}),
        webhook_configuration(),
        sa(AGENT, "agent"),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": meta(AGENT, "agent", false), "rules": agent_cluster_rules()}),
        binding("ClusterRoleBinding", "ClusterRole", AGENT, "agent", false),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": meta(AGENT, "agent", true), "rules": agent_install_rules()}),
        binding("RoleBinding", "Role", AGENT, "agent", true),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
               "metadata": meta("linx-agent-own-report", "agent", false),
               "spec": {"failurePolicy": "Fail",
                        "matchConstraints": {"resourceRules": [{"apiGroups": ["netfilter.linx.dev"], "apiVersions": ["*"],
                            "operations": ["CREATE", "UPDATE"], "resources": ["firewallnodereports"]}]},
                        "matchConditions": [{"name": "is-agent",
                            "expression": format!("request.userInfo.username == 'system:serviceaccount:{NAMESPACE}:{AGENT}'")}],
                        "validations": [{"expression": OWN_NODE_RULE,
                            "message": "a linx agent may write only the report named after its own node"}]}}),
        json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": meta("linx-agent-own-report", "agent", false),
               "spec": {"policyName": "linx-agent-own-report", "validationActions": ["Deny"]}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": meta(TRACER, "users", false), "rules": tracer_rules()}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": meta(REPORT_READER, "users", false), "rules": report_reader_rules()}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta(AGENT, "agent", true),
               "spec": {"selector": {"matchLabels": labels("agent")},
                        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                        "template": {"metadata": {"labels": labels("agent")}, "spec": agent_pod_spec()}}}),
    ]
}

/// `deploy/linx.yaml`.
pub fn deploy_yaml() -> String {
    let mut out =
        String::from("# Generated by `cargo run -p linx-operator --bin manifests`; do not edit.\n");
    for o in objects() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o).expect("JSON values serialize to YAML"));
    }
    out
}

/// Where `deploy_yaml` is committed, relative to the workspace root.
pub const DEPLOY_PATH: &str = "deploy/linx.yaml";
