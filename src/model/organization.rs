//! Which organization an instance may speak for. `spec.organizationId` is written by whoever
//! may edit the instance, so on its own it would let any namespace put its instance into any
//! organization's read-API answer. Administrators bind a namespace to one organization with a
//! label on the Namespace (tenants cannot label their namespace); an instance counts for its
//! organization only when its namespace carries it. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::conditions::{Conditions, Status, reason};

/// The Namespace label that binds a namespace to an organization (its UUID).
pub const ORGANIZATION_LABEL: &str = "argomap.io/organization-id";

pub use super::conditions::ORGANIZATION_BOUND;

/// How organizations are bound to namespaces (`--organization-binding`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "kebab-case")]
pub enum Binding {
    /// An instance counts for its organization only when its namespace carries
    /// [`ORGANIZATION_LABEL`] with that organization.
    #[default]
    NamespaceLabel,
    /// `spec.organizationId` is trusted as written: for a cluster where only administrators
    /// create ArgoCdInstances.
    None,
}

/// The organization a namespace's labels bind it to.
pub fn label_of(labels: Option<&std::collections::BTreeMap<String, String>>) -> Option<&str> {
    labels?.get(ORGANIZATION_LABEL).map(String::as_str)
}

/// Whether an instance of `organization` in a namespace labelled `label` counts for it.
pub fn is_bound(binding: Binding, organization: &str, label: Option<&str>) -> bool {
    match binding {
        Binding::None => true,
        Binding::NamespaceLabel => label.is_some_and(|l| l.eq_ignore_ascii_case(organization)),
    }
}

/// The `OrganizationBound` condition of an instance of `organization` in `namespace`, whose
/// label is `label`.
pub fn bound_condition(
    prev: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
    binding: Binding,
    organization: &str,
    namespace: &str,
    label: Option<&str>,
) -> Condition {
    let bound = is_bound(binding, organization, label);
    let (status, reason, message) = match (binding, bound, label) {
        (Binding::None, _, _) => (
            Status::True,
            reason::NOT_ENFORCED,
            "organizations are not bound to namespaces (--organization-binding=none): the read API trusts spec.organizationId".to_string(),
        ),
        (Binding::NamespaceLabel, true, _) => (
            Status::True,
            reason::NAMESPACE_LABELLED,
            format!("namespace {namespace} is labelled {ORGANIZATION_LABEL}={organization}"),
        ),
        (Binding::NamespaceLabel, false, None) => (
            Status::False,
            reason::NAMESPACE_NOT_IN_ORGANIZATION,
            format!(
                "the read API leaves this instance out: namespace {namespace} has no {ORGANIZATION_LABEL} label; an administrator binds it with `kubectl label namespace {namespace} {ORGANIZATION_LABEL}={organization}`"
            ),
        ),
        (Binding::NamespaceLabel, false, Some(other)) => (
            Status::False,
            reason::NAMESPACE_IN_OTHER_ORGANIZATION,
            format!(
                // A label value: at most 63 characters of [A-Za-z0-9._-], Kubernetes checks it.
                "the read API leaves this instance out: namespace {namespace} is labelled {ORGANIZATION_LABEL}={other}, not {organization}"
            ),
        ),
    };
    Conditions::new(prev, generation, now).make(ORGANIZATION_BOUND, status, reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "5e1c0e4e-8f5a-4c36-9d38-1f0d9c7c2b11";
    const OTHER: &str = "5e1c0e4e-0000-4000-8000-00000000ffff";

    fn now() -> Timestamp {
        "2026-12-07T10:00:00Z".parse().expect("time")
    }

    #[test]
    fn only_a_namespace_labelled_with_the_organization_binds_it() {
        let b = Binding::NamespaceLabel;
        assert!(is_bound(b, ORG, Some(ORG)));
        assert!(is_bound(b, ORG, Some(&ORG.to_uppercase())), "UUIDs compare ignoring case");
        assert!(!is_bound(b, ORG, None));
        assert!(!is_bound(b, ORG, Some(OTHER)));
        assert!(!is_bound(b, ORG, Some("")));
        assert!(is_bound(Binding::None, ORG, None));
        assert!(is_bound(Binding::None, ORG, Some(OTHER)));
    }

    #[test]
    fn the_condition_says_why_and_how_to_bind() {
        let c = |label| bound_condition(&[], Some(3), now(), Binding::NamespaceLabel, ORG, "team-a", label);
        let bound = c(Some(ORG));
        assert_eq!((bound.status.as_str(), bound.reason.as_str()), ("True", "NamespaceLabelled"));
        assert_eq!(bound.observed_generation, Some(3));
        let none = c(None);
        assert_eq!((none.status.as_str(), none.reason.as_str()), ("False", "NamespaceNotInOrganization"));
        assert!(none.message.contains(&format!("kubectl label namespace team-a {ORGANIZATION_LABEL}={ORG}")));
        let other = c(Some(OTHER));
        assert_eq!(other.reason, "NamespaceInOtherOrganization");
        assert!(other.message.contains(OTHER));
        let off = bound_condition(&[], None, now(), Binding::None, ORG, "team-a", None);
        assert_eq!((off.status.as_str(), off.reason.as_str()), ("True", "NotEnforced"));
    }

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let first = bound_condition(&[], None, now(), Binding::NamespaceLabel, ORG, "a", None);
        let later: Timestamp = "2026-12-07T11:00:00Z".parse().expect("time");
        let same = bound_condition(
            std::slice::from_ref(&first),
            None,
            later,
            Binding::NamespaceLabel,
            ORG,
            "a",
            Some(OTHER),
        );
        assert_eq!(same.last_transition_time, first.last_transition_time, "still False");
        let flipped = bound_condition(&[first], None, later, Binding::NamespaceLabel, ORG, "a", Some(ORG));
        assert_eq!(flipped.last_transition_time.0, later);
    }
}
