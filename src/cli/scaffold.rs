//! `argomap check -o mappings`: one ClusterMapping manifest per unlinked destination, to fill
//! in and commit. The `cluster` fields are `<...>` placeholders that the CRD's schema refuses
//! (the id pattern, the enums, a rule on the name), so a scaffold cannot be applied half-done.

use std::collections::BTreeSet;

use serde_json::json;

use crate::crd::{CloudProvider, KubernetesType, UnlinkedCluster};

/// Longest name produced: a DNS-1123 label, which is also a valid object name.
const NAME_MAX: usize = 63;

/// Placeholders of the `cluster` fields.
pub const ID_PLACEHOLDER: &str = "<the platform's cluster UUID>";
pub const NAME_PLACEHOLDER: &str = "<the platform's cluster name>";
/// Of `instanceRef.name`, when no ArgoCdInstance was given with -f.
pub const INSTANCE_PLACEHOLDER: &str = "<argocdinstance-name>";

/// Where the scaffolds go: the instance they reference, its namespace (`None`: omitted) and the
/// names already taken by mappings in the -f file.
pub struct Target<'a> {
    pub instance: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub taken: BTreeSet<String>,
}

/// The manifests as one multi-document YAML stream; empty when nothing is unlinked.
pub fn manifests(unlinked: &[UnlinkedCluster], target: Target<'_>) -> Result<String, String> {
    let mut taken = target.taken;
    let mut out = String::new();
    let cloud = format!("<one of {}>", variants::<CloudProvider>().join(", "));
    let kind = format!("<one of {}>", variants::<KubernetesType>().join(", "));
    for u in unlinked {
        let name = unique(base_name(u.argocd_cluster_name.as_deref(), &u.argocd_cluster_url), &mut taken);
        let mut metadata = json!({ "name": name });
        if let Some(ns) = target.namespace {
            metadata["namespace"] = json!(ns);
        }
        let mut spec = json!({
            "instanceRef": { "name": target.instance.unwrap_or(INSTANCE_PLACEHOLDER) },
            "argocdClusterUrl": u.argocd_cluster_url,
        });
        // The ClusterProfile the destination's identity names, filled in; the cluster then comes
        // from the profile when it carries argomap's annotations.
        let suggested = u.details.suggested_mapping.as_ref();
        if let Some(r) = suggested.and_then(|s| s.cluster_profile_ref.as_ref()) {
            spec["clusterProfileRef"] = json!({ "namespace": r.namespace, "name": r.name });
        }
        if !suggested.is_some_and(|s| s.profile_gives_cluster && s.cluster_profile_ref.is_some()) {
            spec["cluster"] = json!({ "id": ID_PLACEHOLDER, "name": NAME_PLACEHOLDER, "cloudProvider": cloud, "type": kind });
        }
        let doc = json!({
            "apiVersion": "argomap.io/v1alpha1",
            "kind": "ClusterMapping",
            "metadata": metadata,
            "spec": spec,
        });
        let yaml = serde_yaml::to_string(&doc).map_err(|e| e.to_string())?;
        out.push_str("---\n");
        // Names and URLs come from Argo CD: one line each, so nothing escapes the comment.
        let label =
            u.argocd_cluster_name.as_deref().map(|n| format!(" ({})", one_line(n))).unwrap_or_default();
        out.push_str(&format!(
            "# Argo CD destination {}{label}: {} applications. Fill in spec.cluster, then commit.\n",
            one_line(&u.argocd_cluster_url),
            u.applications_count
        ));
        // What its registrar says it is: where to look the platform's cluster up.
        for i in &u.details.identity {
            out.push_str(&format!("# identity: {}={}\n", one_line(&i.key), one_line(&i.value)));
        }
        if u.details.dangling {
            out.push_str("# dangling: Argo CD has no cluster registered for this server.\n");
        }
        out.push_str(&yaml);
    }
    Ok(out)
}

/// A DNS-1123 label from the Argo CD cluster name, else from the URL's host, else `destination`.
pub fn base_name(cluster_name: Option<&str>, url: &str) -> String {
    let from_host = || url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned));
    cluster_name
        .map(dns_label)
        .filter(|n| !n.is_empty())
        .or_else(|| from_host().map(|h| dns_label(&h)).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "destination".into())
}

/// Lower-case letters, digits and single `-` between them, at most [`NAME_MAX`] characters.
fn dns_label(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(NAME_MAX);
    out.trim_end_matches('-').to_string()
}

/// `base`, or `base-2`, `base-3`, … when taken (kept within [`NAME_MAX`]); marks it taken.
fn unique(base: String, taken: &mut BTreeSet<String>) -> String {
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        let suffix = format!("-{n}");
        let mut stem = base.clone();
        stem.truncate(NAME_MAX - suffix.len());
        name = format!("{}{suffix}", stem.trim_end_matches('-'));
        n += 1;
    }
    taken.insert(name.clone());
    name
}

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The values the CRD admits for an enum, read from its schema.
fn variants<T: schemars::JsonSchema>() -> Vec<String> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    schema["enum"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unlinked(url: &str, name: Option<&str>) -> UnlinkedCluster {
        UnlinkedCluster {
            argocd_cluster_url: url.into(),
            argocd_cluster_name: name.map(str::to_owned),
            applications_count: 3,
            argocd_connection_state: None,
            details: Default::default(),
        }
    }

    #[test]
    fn names_are_dns_labels_from_the_cluster_name_or_the_host() {
        assert_eq!(base_name(Some("Prod EKS (eu-west-1)"), "https://x"), "prod-eks-eu-west-1");
        assert_eq!(
            base_name(Some("--__--"), "https://API.Staging.example.com:6443/k"),
            "api-staging-example-com"
        );
        assert_eq!(base_name(None, "https://10.0.0.1:6443"), "10-0-0-1");
        assert_eq!(base_name(None, "not a url"), "destination");
        let long = base_name(Some(&"a".repeat(100)), "https://x");
        assert_eq!(long.len(), NAME_MAX);
        assert_eq!(base_name(Some(&format!("{}-b", "a".repeat(62))), "https://x"), "a".repeat(62));
    }

    #[test]
    fn colliding_names_get_a_suffix() {
        let mut taken = BTreeSet::from(["prod".to_string()]);
        assert_eq!(unique("prod".into(), &mut taken), "prod-2");
        assert_eq!(unique("prod".into(), &mut taken), "prod-3");
        let long = "a".repeat(NAME_MAX);
        assert_eq!(unique(long.clone(), &mut taken), long);
        let second = unique(long.clone(), &mut taken);
        assert!(second.len() <= NAME_MAX && second.ends_with("-2"), "{second}");
    }

    #[test]
    fn manifests_reference_the_instance_and_hold_placeholders() {
        let text = manifests(
            &[
                unlinked("https://a.example.com", Some("prod")),
                unlinked("https://b.example.com", Some("Prod")),
            ],
            Target { instance: Some("prod-argocd"), namespace: Some("platform"), taken: BTreeSet::new() },
        )
        .expect("yaml");
        let docs: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("doc"))
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["metadata"], json!({"name": "prod", "namespace": "platform"}));
        assert_eq!(docs[1]["metadata"]["name"], "prod-2");
        assert_eq!(docs[1]["spec"]["instanceRef"]["name"], "prod-argocd");
        assert_eq!(docs[1]["spec"]["argocdClusterUrl"], "https://b.example.com");
        assert_eq!(docs[0]["spec"]["cluster"]["id"], ID_PLACEHOLDER);
        let cloud = docs[0]["spec"]["cluster"]["cloudProvider"].as_str().unwrap_or_default();
        assert!(cloud.starts_with("<one of AWS,") && cloud.contains("ON_PREMISE"), "{cloud}");
        assert!(
            text.contains("# Argo CD destination https://a.example.com (prod): 3 applications"),
            "{text}"
        );
        let none = manifests(&[], Target { instance: None, namespace: None, taken: BTreeSet::new() });
        assert_eq!(none.as_deref(), Ok(""));
    }

    #[test]
    fn a_suggested_profile_is_filled_in() {
        let suggested = |gives: bool| {
            let mut u = unlinked("https://spoke", Some("spoke"));
            u.details.suggested_mapping = Some(crate::crd::SuggestedMapping {
                identity: crate::crd::IdentityLabel {
                    key: "clusterprofile.x-k8s.io/origin".into(),
                    value: "fleet/spoke".into(),
                },
                cluster_profile_ref: Some(crate::crd::ProfileRef {
                    namespace: "fleet".into(),
                    name: "spoke".into(),
                }),
                profile_gives_cluster: gives,
                note: String::new(),
                duplicates: Vec::new(),
            });
            let text =
                manifests(&[u], Target { instance: Some("prod"), namespace: None, taken: BTreeSet::new() })
                    .expect("yaml");
            let doc: serde_json::Value = serde_yaml::Deserializer::from_str(&text)
                .map(|d| serde::Deserialize::deserialize(d).expect("doc"))
                .next()
                .expect("one");
            doc["spec"].clone()
        };
        let spec = suggested(true);
        assert_eq!(spec["clusterProfileRef"], json!({"namespace": "fleet", "name": "spoke"}));
        assert!(spec.get("cluster").is_none(), "the profile gives it: {spec}");
        let spec = suggested(false);
        assert_eq!(spec["cluster"]["id"], ID_PLACEHOLDER, "{spec}");
    }

    #[test]
    fn identity_and_dangling_are_commented() {
        let mut u = unlinked("https://gke.example.com", Some("gke"));
        u.details.identity = vec![
            crate::crd::IdentityLabel {
                key: "clusterprofile.x-k8s.io/origin".into(),
                value: "fleet/gke\nkind: x".into(),
            },
            crate::crd::IdentityLabel {
                key: "multicluster.x-k8s.io/inventory-member-id".into(),
                value: "m-1".into(),
            },
        ];
        u.details.dangling = true;
        let text = manifests(&[u], Target { instance: None, namespace: None, taken: BTreeSet::new() })
            .expect("yaml");
        assert!(text.contains("# identity: clusterprofile.x-k8s.io/origin=fleet/gke kind: x\n"), "{text}");
        assert!(text.contains("# identity: multicluster.x-k8s.io/inventory-member-id=m-1\n"), "{text}");
        assert!(text.contains("# dangling: "), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("kind: x")), "{text}");
    }

    #[test]
    fn argo_cd_text_cannot_leave_the_comment() {
        let text = manifests(
            &[unlinked("https://a", Some("x\nkind: Secret"))],
            Target { instance: None, namespace: None, taken: BTreeSet::new() },
        )
        .expect("yaml");
        assert!(!text.lines().any(|l| l.starts_with("kind: Secret")), "{text}");
    }
}
