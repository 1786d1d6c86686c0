//! Label selectors as Kubernetes matches them, for the agent (which
//! FirewallRulesets select a pod) and the operator (which pods, services
//! and namespaces a set's source picks).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::diagnostic::Diagnostic;

/// Whether a label selector matches labels (Kubernetes semantics; an empty
/// selector matches everything; an unknown operator matches nothing).
///
/// ```
/// use linx_crds::selector::selects;
/// let sel = serde_json::from_str(r#"{"matchLabels": {"app": "api"}}"#).unwrap();
/// let labels = [("app".to_string(), "api".to_string())].into();
/// assert!(selects(&sel, &labels));
/// ```
pub fn selects(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
}

/// Checks a label selector's expressions; `at` is its field path.
pub(crate) fn check_selector(at: &str, sel: &LabelSelector, out: &mut Vec<Diagnostic>) {
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let field = format!("{at}.matchExpressions[{i}]");
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" if n == 0 => out.push(Diagnostic::new(
                field,
                format!("operator {} needs values", e.operator),
            )),
            "Exists" | "DoesNotExist" if n > 0 => out.push(Diagnostic::new(
                field,
                format!("operator {} takes no values", e.operator),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            op => out.push(Diagnostic::new(
                field,
                format!("unknown operator {op:?} (In, NotIn, Exists, DoesNotExist)"),
            )),
        }
    }
}
