//! Which cluster an Argo CD cluster is, in the words of whoever registered it: cluster
//! managers stamp their identity onto the cluster Secret's labels and annotations, and Argo CD
//! passes both through in `/api/v1/clusters`. Only the keys below are kept; any other label,
//! however many or long, is skipped while decoding.

use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::text::printable;

/// argocd-agent's label on an agent's cluster Secret on the principal.
pub const AGENT_NAME: &str = "argocd-agent.argoproj-labs.io/agent-name";

/// The identity keys argomap recognises, most specific first (the order status lists them in).
pub const KEYS: &[&str] = &[
    // The ClusterProfile integration for Argo CD: `<namespace>-<name>` of the profile.
    "argocd.argoproj.io/cluster-profile-origin",
    // GKE's ClusterProfile syncer (an annotation): `<namespace>/<name>` of the profile.
    "clusterprofile.x-k8s.io/origin",
    // The Cluster Inventory API's member id, copied from the profile's labels.
    "multicluster.x-k8s.io/inventory-member-id",
    // Open Cluster Management's GitOpsCluster: the managed cluster's name.
    "apps.open-cluster-management.io/cluster-name",
    // Cluster API to Argo CD: the CAPI cluster's namespace and its kubeconfig Secret.
    "capi-to-argocd/cluster-namespace",
    "capi-to-argocd/cluster-secret-name",
    AGENT_NAME,
];

/// Longest value kept (a Kubernetes label value is 63 bytes, an annotation's is unbounded).
pub const VALUE_CAP: usize = 253;

/// The recognised identity keys of one label or annotation map, in [`KEYS`] order, each value
/// printable and at most [`VALUE_CAP`] bytes. At most one entry per key, so it is bounded by
/// `KEYS.len()` whatever the server sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recognised(Vec<(&'static str, String)>);

impl Recognised {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of the values kept.
    pub fn bytes(&self) -> usize {
        self.0.iter().map(|(_, v)| v.len()).sum()
    }

    /// Keeps `value` under `key` if `key` is recognised and not kept yet.
    pub fn insert(&mut self, key: &str, value: &str) {
        let Some(&key) = KEYS.iter().find(|k| **k == key) else { return };
        let value = printable(value.trim(), VALUE_CAP);
        if value.is_empty() || self.get(key).is_some() {
            return;
        }
        self.0.push((key, value));
        self.0.sort_by_key(|(k, _)| KEYS.iter().position(|x| x == k));
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Recognised {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        let mut r = Recognised::default();
        for (k, v) in iter {
            r.insert(k, v);
        }
        r
    }
}

impl<'de> Deserialize<'de> for Recognised {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Recognised;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings, or null")
            }
            fn visit_unit<E>(self) -> Result<Recognised, E> {
                Ok(Recognised::default())
            }
            fn visit_none<E>(self) -> Result<Recognised, E> {
                Ok(Recognised::default())
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Recognised, D2::Error> {
                d.deserialize_map(self)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Recognised, A::Error> {
                let mut out = Recognised::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if KEYS.contains(&key.as_ref()) {
                        let value: Option<String> = map.next_value()?;
                        out.insert(&key, value.as_deref().unwrap_or(""));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_option(V)
    }
}

/// The agent an Argo CD cluster stands for on an argocd-agent principal: its agent-name label,
/// or else the `agentName` query of its resource-proxy URL.
pub fn agent_name<'a>(labels: &'a Recognised, server: &'a str) -> Option<&'a str> {
    labels.get(AGENT_NAME).or_else(|| {
        let (_, query) = server.split_once('?')?;
        query.split('&').find_map(|kv| kv.strip_prefix("agentName=")).filter(|n| !n.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recognised_keys_are_kept_in_order_and_bounded() {
        let r: Recognised = serde_json::from_str(&format!(
            r#"{{"team":"x","argocd-agent.argoproj-labs.io/agent-name":"prod",
                "argocd.argoproj.io/cluster-profile-origin":"fleet-prod\n{}",
                "capi-to-argocd/owned":"true","clusterprofile.x-k8s.io/origin":null,
                "huge":"{}"}}"#,
            "p".repeat(1000),
            "h".repeat(100_000)
        ))
        .expect("decode");
        let kept: Vec<_> = r.iter().map(|(k, _)| k).collect();
        assert_eq!(kept, vec!["argocd.argoproj.io/cluster-profile-origin", AGENT_NAME]);
        let origin = r.get("argocd.argoproj.io/cluster-profile-origin").expect("origin");
        assert!(origin.len() <= VALUE_CAP && origin.starts_with("fleet-prodp") && !origin.contains('\n'));
        assert_eq!(r.get(AGENT_NAME), Some("prod"));
        assert!(r.bytes() <= KEYS.len() * VALUE_CAP);
    }

    #[test]
    fn null_missing_and_repeated_keys() {
        assert!(serde_json::from_str::<Recognised>("null").expect("null").is_empty());
        let r: Recognised = serde_json::from_str(
            r#"{"apps.open-cluster-management.io/cluster-name":"a","apps.open-cluster-management.io/cluster-name":"b"}"#,
        )
        .expect("repeated");
        assert_eq!(r.get("apps.open-cluster-management.io/cluster-name"), Some("a"), "the first one stays");
        assert!(serde_json::from_str::<Recognised>(r#"["not a map"]"#).is_err());
    }

    #[test]
    fn the_agent_comes_from_the_label_or_the_proxy_url() {
        let labelled: Recognised = [(AGENT_NAME, "edge-1")].into_iter().collect();
        assert_eq!(agent_name(&labelled, "https://proxy:9090?agentName=other"), Some("edge-1"));
        let none = Recognised::default();
        assert_eq!(agent_name(&none, "https://proxy:9090?x=1&agentName=edge-2"), Some("edge-2"));
        assert_eq!(agent_name(&none, "https://proxy:9090?agentName="), None);
        assert_eq!(agent_name(&none, "https://10.0.0.1:6443"), None);
    }
}
