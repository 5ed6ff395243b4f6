//! `argomap check`: one check from the command line, exactly as the controller runs it, with
//! the status it would write as a table or JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use jiff::Timestamp;
use secrecy::SecretString;
use serde::{Deserialize as _, Serialize};

use super::{CheckArgs, Output, scaffold, table};
use crate::argocd::{self, ClientConfig, Credentials, TlsSettings};
use crate::crd::cluster_profile::ClusterProfile;
use crate::crd::{
    self, ArgoCdInstance, ArgoCdInstanceSpec, ArgoCdInstanceStatus, CloudProvider, ClusterMapping,
    ClusterMappingStatus, ConnectionState, KnownCluster, KubernetesType,
};
use crate::model::evaluate::{self, Observed, Outcome};
use crate::model::profiles::{Profile, Profiles};
use crate::model::status::to_second;

/// What `argomap check -o json` prints.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub status: ArgoCdInstanceStatus,
    pub cluster_mappings: std::collections::BTreeMap<String, ClusterMappingStatus>,
    /// The instance the scaffolds reference (from -f), and the mapping names taken there.
    #[serde(skip)]
    scaffold: ScaffoldTarget,
}

#[derive(Debug, Default)]
struct ScaffoldTarget {
    instance: Option<String>,
    namespace: Option<String>,
    taken: std::collections::BTreeSet<String>,
}

impl Report {
    /// A report of `status` alone (no mappings, no -f file).
    pub fn of_status(status: ArgoCdInstanceStatus) -> Self {
        Report { status, cluster_mappings: Default::default(), scaffold: Default::default() }
    }

    fn target(&self) -> scaffold::Target<'_> {
        scaffold::Target {
            instance: self.scaffold.instance.as_deref(),
            namespace: self.scaffold.namespace.as_deref(),
            taken: self.scaffold.taken.clone(),
        }
    }
}

pub async fn run(args: CheckArgs) -> ExitCode {
    match report(&args).await {
        Ok(report) => {
            let connected =
                report.status.connection.as_ref().is_some_and(|c| c.status == ConnectionState::Connected);
            let text = match args.output {
                Output::Json => serde_json::to_string_pretty(&report)
                    .map(|mut s| {
                        s.push('\n');
                        s
                    })
                    .map_err(|e| e.to_string()),
                Output::Table => Ok(table::table(&report)),
                Output::Mappings => scaffold::manifests(&report.status.unlinked_clusters, report.target()),
            };
            match text {
                Ok(text) => {
                    let _ = std::io::stdout().write_all(text.as_bytes());
                }
                Err(e) => eprintln!("argomap check: {e}"),
            }
            if args.output == Output::Mappings && !connected {
                // Nothing to scaffold from: say why, not only through the exit code.
                if let Some(c) = &report.status.connection {
                    eprintln!("argomap check: {} ({}): no destinations to scaffold", c.message, c.reason);
                }
            }
            if connected { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("argomap check: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs one check as the controller does and returns the statuses it would write. `Err` is
/// reserved for unusable input (files, flags); a failed check is a report with an error.
pub async fn report(args: &CheckArgs) -> Result<Report, String> {
    let Manifests { mut instance, mappings, profiles } = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            load_manifests(&text, args.instance.as_deref())?
        }
        None => Manifests { instance: placeholder_instance(), mappings: Vec::new(), profiles: Vec::new() },
    };
    if let Some(url) = &args.url {
        instance.spec.url = url.clone();
    }
    if instance.spec.url.is_empty() {
        return Err("no Argo CD URL: give --url or an ArgoCdInstance with -f".into());
    }
    let credentials = match (&args.token_file, &args.username, &args.password_file) {
        (Some(path), _, _) => Credentials::Token(SecretString::from(read_secret(path)?)),
        (None, Some(username), Some(path)) => Credentials::Login {
            username: username.clone(),
            password: SecretString::from(read_secret(path)?),
        },
        _ => return Err("no credentials: give --token-file, or --username with --password-file".into()),
    };
    let spec_tls = instance.spec.tls.clone().unwrap_or_default();
    let ca_pem = match &args.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?),
        None => None,
    };
    let tls = TlsSettings {
        insecure_skip_verify: args.insecure_skip_verify || spec_tls.insecure_skip_verify,
        ca_pem,
        server_name: args.server_name.clone().or(spec_tls.server_name),
    };
    if args.insecure_skip_verify {
        let t = instance.spec.tls.get_or_insert_with(Default::default);
        t.insecure_skip_verify = true;
    }
    let timeout = match args.timeout {
        Some(t) => t,
        None => crd::parse_duration(&instance.spec.timeout)?,
    };
    let config = ClientConfig::new(instance.spec.url.clone(), credentials, timeout)
        .with_tls(tls)
        .with_max_response_bytes(args.max_response_bytes)
        .with_health(instance.spec.applications.health);
    let snapshot = match argocd::Client::new(config) {
        Ok(client) => client.snapshot(&()).await,
        Err(e) => Err(e),
    };
    let outcome = match snapshot {
        Ok(s) => Outcome::Observed { observed: Arc::new(Observed::from_snapshot(s)), fresh: true },
        Err(e) => Outcome::failed(&e),
    };
    let mine = evaluate::mappings_of(&instance, &mappings);
    // ClusterProfiles in the file stand in for those the controller would read.
    let circumstances = evaluate::Circumstances {
        profiles: Arc::new(Profiles::new(profiles.iter().map(Profile::from_object))),
        ..Default::default()
    };
    let eval = evaluate::evaluate(&instance, &mine, &outcome, &circumstances, to_second(Timestamp::now()));
    let mut status = eval.instance;
    // The status on the cluster is capped to fit etcd; here the lists are whole unless --limit.
    if let Some(linkage) = eval.linkage {
        let limit = args.limit.unwrap_or(usize::MAX);
        status.truncated =
            [linkage.linked.len(), linkage.unlinked.len(), linkage.orphaned.len()].iter().any(|n| *n > limit);
        status.linked_clusters = linkage.linked.into_iter().take(limit).collect();
        status.unlinked_clusters = linkage.unlinked.into_iter().take(limit).collect();
        status.orphaned_mappings = linkage.orphaned.into_iter().take(limit).collect();
    }
    let scaffold = ScaffoldTarget {
        instance: args.file.as_ref().and_then(|_| instance.metadata.name.clone()),
        namespace: args.file.as_ref().and_then(|_| instance.metadata.namespace.clone()),
        taken: mappings
            .iter()
            .filter(|m| m.metadata.namespace == instance.metadata.namespace)
            .filter_map(|m| m.metadata.name.clone())
            .collect(),
    };
    Ok(Report { status, cluster_mappings: eval.mappings.into_iter().collect(), scaffold })
}

fn read_secret(path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text.to_string())
}

/// Without -f there is no agent cluster: in-cluster links to this stand-in.
fn placeholder_instance() -> ArgoCdInstance {
    let agent = KnownCluster {
        id: "00000000-0000-0000-0000-000000000000".into(),
        name: "(agent cluster)".into(),
        cloud_provider: CloudProvider::OnPremise,
        kind: KubernetesType::Managed,
    };
    let mut i = ArgoCdInstance::new("check", ArgoCdInstanceSpec::new("", "(command line)", agent));
    i.metadata.namespace = Some("default".into());
    i
}

/// What `-f` gives: the instance, the mappings and the ClusterProfiles of the file.
#[derive(Debug)]
pub struct Manifests {
    pub instance: ArgoCdInstance,
    pub mappings: Vec<ClusterMapping>,
    pub profiles: Vec<ClusterProfile>,
}

/// Parses a multi-document YAML stream of ArgoCdInstances, ClusterMappings and ClusterProfiles
/// (other kinds are ignored) and picks the instance.
pub fn load_manifests(text: &str, pick: Option<&str>) -> Result<Manifests, String> {
    let mut instances = Vec::new();
    let mut mappings = Vec::new();
    let mut profiles = Vec::new();
    for (n, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| format!("document {}: {e}", n + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("").to_string();
        match kind.as_str() {
            "ArgoCdInstance" => {
                let mut i: ArgoCdInstance = serde_yaml::from_value(value)
                    .map_err(|e| format!("document {} (ArgoCdInstance): {e}", n + 1))?;
                i.metadata.namespace.get_or_insert_with(|| "default".into());
                instances.push(i);
            }
            "ClusterMapping" => {
                let mut m: ClusterMapping = serde_yaml::from_value(value)
                    .map_err(|e| format!("document {} (ClusterMapping): {e}", n + 1))?;
                m.metadata.namespace.get_or_insert_with(|| "default".into());
                mappings.push(m);
            }
            "ClusterProfile" => {
                let mut p: ClusterProfile = serde_yaml::from_value(value)
                    .map_err(|e| format!("document {} (ClusterProfile): {e}", n + 1))?;
                p.metadata.namespace.get_or_insert_with(|| "default".into());
                profiles.push(p);
            }
            _ => {}
        }
    }
    let instance = match pick {
        Some(name) => instances
            .into_iter()
            .find(|i| i.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| format!("no ArgoCdInstance named {name} in the file"))?,
        None if instances.len() == 1 => instances.remove(0),
        None if instances.is_empty() => return Err("the file holds no ArgoCdInstance".into()),
        None => return Err("the file holds several ArgoCdInstances: pick one with --instance".into()),
    };
    Ok(Manifests { instance, mappings, profiles })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::MANIFESTS;

    #[test]
    fn manifests_give_the_instance_and_its_mappings() {
        let Manifests { instance: i, mappings: m, .. } = load_manifests(MANIFESTS, None).expect("manifests");
        assert_eq!(i.metadata.name.as_deref(), Some("prod-argocd"));
        assert_eq!(i.spec.interval, "60s", "defaults apply");
        assert_eq!(m.len(), 2);
        assert!(load_manifests(MANIFESTS, Some("other")).is_err());
        assert!(load_manifests("kind: ClusterMapping\n", None).is_err());
        let err = load_manifests("kind: ArgoCdInstance\nspec: 3\n", None).expect_err("bad");
        assert!(err.contains("document 1"), "{err}");
    }
}
