//! Command line: `argomap run` (the controller, default), `argomap crds`, `argomap check`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use secrecy::SecretString;
use serde::Serialize;

use crate::argocd::{self, ClientConfig, Credentials, TlsSettings};
use crate::check::{self, Observed, Outcome};
use crate::crd::{
    self, ArgoCdInstance, ArgoCdInstanceSpec, ArgoCdInstanceStatus, CloudProvider, ClusterMapping,
    ClusterMappingStatus, ConnectionState, CredentialsSpec, KnownCluster, KubernetesType, LocalRef,
};
use crate::{controller, http, leader, metrics};
use kube::runtime::reflector;

#[derive(Parser, Debug)]
#[command(
    name = "argomap",
    version,
    about = "Maps the destination clusters of Argo CD servers to known clusters"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ARGOMAP_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller (the default).
    Run(RunArgs),
    /// Print both CRDs as YAML, or write one file per CRD into a directory.
    Crds {
        /// Write `argocdinstances.yaml` and `clustermappings.yaml` here instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check one Argo CD from here, exactly as the controller would, and print the status.
    Check(Box<CheckArgs>),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "ARGOMAP_NAMESPACE")]
    pub namespace: Option<String>,
    /// Checks running at once, over all instances.
    #[arg(long, env = "ARGOMAP_MAX_CONCURRENT_CHECKS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_checks: u16,
    /// Minimum period between status writes that only refresh lastCheckedAt (0s: every check).
    #[arg(long, env = "ARGOMAP_STATUS_HEARTBEAT", default_value = "0s", value_parser = parse_duration)]
    pub status_heartbeat: Duration,
    /// Largest Argo CD response body accepted, in bytes (after gzip decoding).
    #[arg(long, env = "ARGOMAP_MAX_RESPONSE_BYTES", default_value_t = argocd::DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
    /// Address of the HTTP server (health, metrics, read API).
    #[arg(long, env = "ARGOMAP_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: std::net::SocketAddr,
    /// Serve the read API without TokenReview/SubjectAccessReview. Local use only.
    #[arg(long, env = "ARGOMAP_READ_API_INSECURE_NO_AUTH")]
    pub read_api_insecure_no_auth: bool,
    /// Elect a leader with a Lease, so several replicas can run; only the leader checks and writes.
    #[arg(long, env = "ARGOMAP_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "ARGOMAP_LEASE_NAME", default_value = "argomap")]
    pub lease_name: String,
    /// Namespace of the Lease (in a pod: its own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Argo CD base URL (default: spec.url of the instance in -f).
    #[arg(long)]
    pub url: Option<String>,
    /// File holding an Argo CD API token.
    #[arg(long, conflicts_with_all = ["username", "password_file"])]
    pub token_file: Option<PathBuf>,
    /// Log in with this user (with --password-file).
    #[arg(long, requires = "password_file")]
    pub username: Option<String>,
    #[arg(long, requires = "username")]
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Verify the server certificate against this name.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Do not verify the server certificate.
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// Per-request timeout (default: spec.timeout, else 10s).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// YAML with an ArgoCdInstance and ClusterMappings (multi-document); the mappings used are
    /// those whose instanceRef names the instance.
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// Which ArgoCdInstance of the file, when it holds several.
    #[arg(long)]
    pub instance: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[arg(long, default_value_t = argocd::DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    check::parse_duration(s)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // One TLS provider for the whole process (kube and reqwest both use rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("argomap: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        None => match Cli::try_parse_from(["argomap", "run"]) {
            Ok(Cli { command: Some(Command::Run(args)), .. }) => runtime.block_on(run(args)),
            _ => ExitCode::FAILURE,
        },
        Some(Command::Run(args)) => runtime.block_on(run(args)),
        Some(Command::Crds { dir }) => crds(dir),
        Some(Command::Check(args)) => runtime.block_on(check_command(*args)),
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    use std::io::IsTerminal;
    // Colour only for a person at a terminal, never into a log file or collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes configuration (kubeconfig or in-cluster)");
            return ExitCode::FAILURE;
        }
    };
    let metrics = match metrics::Metrics::new() {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!(error = %e, "cannot register metrics");
            return ExitCode::FAILURE;
        }
    };
    let settings = controller::Settings {
        namespace: args.namespace,
        max_concurrent_checks: args.max_concurrent_checks,
        status_heartbeat: args.status_heartbeat,
        max_response_bytes: args.max_response_bytes,
    };
    tracing::info!(?settings, http_addr = %args.http_addr, version = env!("CARGO_PKG_VERSION"), "argomap starting");

    // The controllers fill these caches; the HTTP server reads them.
    let (instances, instance_writer) = reflector::store();
    let (_, mapping_writer) = reflector::store();
    let (secrets, secret_writer) = reflector::store();
    let readiness = http::Readiness::default();
    let config = http::HttpConfig { auth: !args.read_api_insecure_no_auth, ..Default::default() };
    let state = http::AppState::new(
        config,
        metrics.clone(),
        readiness.clone(),
        instances.clone(),
        Arc::new(secrets.clone()),
        Arc::new(http::KubeReviewer::new(client.clone())),
    );
    let listener = match http::bind(args.http_addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the HTTP server");
            return ExitCode::FAILURE;
        }
    };
    let server = tokio::spawn(http::serve(listener, state, shutdown_signal()));
    let (leadership, lease_task) = if args.leader_election {
        let elected = match args.lease_namespace.as_deref().filter(|ns| !ns.is_empty()) {
            Some(ns) => {
                leader::elect(client.clone(), ns, &args.lease_name, &leader::identity(), shutdown_signal())
                    .await
            }
            None => Err(leader::LeaderError::NoNamespace),
        };
        match elected {
            Ok((leadership, task)) => (leadership, Some(task)),
            Err(e) => {
                tracing::error!(error = %e, category = e.category(), "cannot join the leader election");
                return ExitCode::FAILURE;
            }
        }
    } else {
        (leader::Leadership::always(), None)
    };

    let writers =
        controller::Writers { instances: instance_writer, mappings: mapping_writer, secrets: secret_writer };
    // Ready once every watch has listed what exists (set by the controller's streams).
    let synced = Arc::new(controller::Synced::new(readiness));
    // The controllers stop on the same signals; a signal that comes before their first list
    // completes can leave kube-runtime waiting for a store that never fills, so give them a
    // bounded time and exit regardless.
    let controllers = controller::run(client, settings, metrics, writers, leadership, synced);
    tokio::select! {
        _ = controllers => {},
        _ = async {
            shutdown_signal().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!(grace = ?SHUTDOWN_GRACE, "controllers did not stop in time after the signal; exiting"),
    }
    if let Some(task) = lease_task {
        let _ = task.await;
    }
    let _ = server.await;
    tracing::info!("argomap stopped");
    ExitCode::SUCCESS
}

/// How long the controllers get to finish their reconciles after SIGTERM or SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Resolves on SIGTERM or SIGINT (the controllers listen for the same signals themselves).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

fn crds(dir: Option<PathBuf>) -> ExitCode {
    let result = match dir {
        None => crd::crds_yaml()
            .map_err(|e| e.to_string())
            .and_then(|y| std::io::stdout().write_all(y.as_bytes()).map_err(|e| e.to_string())),
        Some(dir) => crd::crd_files().map_err(|e| e.to_string()).and_then(|files| {
            files.into_iter().try_for_each(|(name, yaml)| {
                std::fs::write(dir.join(name), yaml).map_err(|e| format!("{}: {e}", dir.join(name).display()))
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("argomap crds: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `argomap check -o json` prints.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub status: ArgoCdInstanceStatus,
    pub cluster_mappings: std::collections::BTreeMap<String, ClusterMappingStatus>,
}

async fn check_command(args: CheckArgs) -> ExitCode {
    match check_report(&args).await {
        Ok(report) => {
            let connected =
                report.status.connection.as_ref().is_some_and(|c| c.status == ConnectionState::Connected);
            let text = match args.output {
                Output::Json => serde_json::to_string_pretty(&report).map(|mut s| {
                    s.push('\n');
                    s
                }),
                Output::Table => Ok(table(&report)),
            };
            match text {
                Ok(text) => {
                    let _ = std::io::stdout().write_all(text.as_bytes());
                }
                Err(e) => eprintln!("argomap check: {e}"),
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
pub async fn check_report(args: &CheckArgs) -> Result<CheckReport, String> {
    let (mut instance, mappings) = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            load_manifests(&text, args.instance.as_deref())?
        }
        None => (placeholder_instance(), Vec::new()),
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
        None => check::parse_duration(&instance.spec.timeout)?,
    };
    let config = ClientConfig {
        url: instance.spec.url.clone(),
        credentials,
        timeout,
        tls,
        max_response_bytes: args.max_response_bytes,
    };
    let result: Result<Observed, argocd::ArgoCdError> = match argocd::Client::new(config) {
        Ok(client) => check::fetch(&client, &()).await,
        Err(e) => Err(e),
    };
    let outcome = match result {
        Ok(observed) => Outcome::Observed { observed: Arc::new(observed), fresh: true },
        Err(e) => Outcome::Failed { reason: e.reason(), message: e.to_string(), fresh: true },
    };
    let mine = check::mappings_of(&instance, &mappings);
    let now = Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH);
    let eval = check::evaluate(&instance, &mine, &outcome, None, now);
    Ok(CheckReport { status: eval.instance, cluster_mappings: eval.mappings.into_iter().collect() })
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
    let mut i = ArgoCdInstance::new(
        "check",
        ArgoCdInstanceSpec {
            url: String::new(),
            credentials: CredentialsSpec {
                secret_ref: LocalRef { name: "(command line)".into() },
                ..Default::default()
            },
            agent_cluster: KnownCluster {
                id: "00000000-0000-0000-0000-000000000000".into(),
                name: "(agent cluster)".into(),
                cloud_provider: CloudProvider::OnPremise,
                kind: KubernetesType::Managed,
            },
            organization_id: None,
            interval: "60s".into(),
            timeout: "10s".into(),
            tls: None,
            suspend: false,
        },
    );
    i.metadata.namespace = Some("default".into());
    i
}

/// Parses a multi-document YAML stream of ArgoCdInstances and ClusterMappings (other kinds
/// are ignored) and picks the instance.
pub fn load_manifests(
    text: &str,
    pick: Option<&str>,
) -> Result<(ArgoCdInstance, Vec<ClusterMapping>), String> {
    let mut instances = Vec::new();
    let mut mappings = Vec::new();
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
    Ok((instance, mappings))
}

use serde::Deserialize as _;

/// The destinations table of `argomap check`.
pub fn table(report: &CheckReport) -> String {
    let s = &report.status;
    let mut out = String::new();
    if let Some(c) = &s.connection {
        let version = c.argocd_version.as_deref().unwrap_or("unknown version");
        let state = match c.status {
            ConnectionState::Connected => "connected".to_string(),
            ConnectionState::Error => format!("error ({}): {}", c.reason, c.message),
        };
        out.push_str(&format!("Argo CD {version}: {state}\n"));
        if let Some(exp) = &c.credentials_expire_at {
            out.push_str(&format!("Token expires at {}\n", exp.0));
        }
    }
    let mut rows = vec![
        ["DESTINATION", "NAME", "APPS", "STATE", "MAPPING", "CLUSTER", "ARGOCD-STATE"].map(String::from),
    ];
    for l in &s.linked_clusters {
        rows.push([
            l.argocd_cluster_url.clone(),
            l.argocd_cluster_name.clone().unwrap_or_default(),
            l.applications_count.to_string(),
            "linked".into(),
            l.mapping.clone().unwrap_or_else(|| "(agent cluster)".into()),
            l.cluster.name.clone(),
            l.argocd_connection_state.clone().unwrap_or_default(),
        ]);
    }
    for u in &s.unlinked_clusters {
        rows.push([
            u.argocd_cluster_url.clone(),
            u.argocd_cluster_name.clone().unwrap_or_default(),
            u.applications_count.to_string(),
            "unlinked".into(),
            String::new(),
            String::new(),
            u.argocd_connection_state.clone().unwrap_or_default(),
        ]);
    }
    if rows.len() > 1 {
        let widths: Vec<usize> =
            (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    for (name, m) in &report.cluster_mappings {
        if let Some(state) = m.state.filter(|s| *s != crd::MappingState::Linked) {
            let why = m.conditions.first().map(|c| c.message.as_str()).unwrap_or("");
            out.push_str(&format!("ClusterMapping {name}: {} ({why})\n", state.as_str()));
        }
    }
    if let Some(sum) = &s.summary {
        out.push_str(&format!(
            "{} linked, {} unlinked, {} orphaned mappings, {} applications ({} unresolved)\n",
            sum.linked_clusters,
            sum.unlinked_clusters,
            sum.orphaned_mappings,
            sum.applications,
            sum.unresolved_applications
        ));
    }
    for c in s.conditions.iter().filter(|c| c.type_ == "ClustersVisible" && c.status == "False") {
        out.push_str(&format!("Warning: {}\n", c.message));
    }
    if s.truncated {
        out.push_str("(lists truncated)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFESTS: &str = r#"
apiVersion: argomap.io/v1alpha1
kind: ArgoCdInstance
metadata: {name: prod-argocd, namespace: platform}
spec:
  url: https://argocd.example.com
  credentials: {secretRef: {name: argocd-readonly}}
  agentCluster: {id: 0b9f6a1e-0000-4000-8000-000000000001, name: Production EU, cloudProvider: AWS}
---
apiVersion: argomap.io/v1alpha1
kind: ClusterMapping
metadata: {name: prod-eks, namespace: platform}
spec:
  instanceRef: {name: prod-argocd}
  argocdClusterUrl: https://10.0.0.1:6443
  cluster: {id: 0b9f6a1e-0000-4000-8000-000000000002, name: Prod EKS, cloudProvider: AWS}
---
apiVersion: v1
kind: Secret
metadata: {name: ignored}
"#;

    #[test]
    fn manifests_give_the_instance_and_its_mappings() {
        let (i, m) = load_manifests(MANIFESTS, None).expect("manifests");
        assert_eq!(i.metadata.name.as_deref(), Some("prod-argocd"));
        assert_eq!(i.spec.interval, "60s", "defaults apply");
        assert_eq!(m.len(), 1);
        assert!(load_manifests(MANIFESTS, Some("other")).is_err());
        assert!(load_manifests("kind: ClusterMapping\n", None).is_err());
        let err = load_manifests("kind: ArgoCdInstance\nspec: 3\n", None).expect_err("bad");
        assert!(err.contains("document 1"), "{err}");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "argomap",
            "check",
            "--url",
            "https://a",
            "--token-file",
            "t",
            "-o",
            "json",
        ])
        .expect("parse");
        assert!(matches!(cli.command, Some(Command::Check(_))));
        assert!(Cli::try_parse_from(["argomap", "check", "--token-file", "t", "--username", "u"]).is_err());
    }
}
