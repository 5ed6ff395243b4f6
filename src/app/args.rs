//! The flags of `argomap run`, with their environment variables and defaults: the settings
//! [`super::run`] takes. The command line parses them (flattened at the top level, and as the
//! `run` subcommand); they live here so that the wiring needs nothing from the command line.

use std::time::Duration;

use crate::{argocd, crd};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Watch only these namespaces, comma-separated or the flag repeated (default: all).
    #[arg(long, env = "ARGOMAP_NAMESPACE", value_delimiter = ',', value_parser = namespace_name)]
    pub namespace: Vec<String>,
    /// Checks running at once, over all instances.
    #[arg(long, env = "ARGOMAP_MAX_CONCURRENT_CHECKS", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_checks: u16,
    /// The longest one check of an instance may take, all its requests together; it also caps
    /// spec.timeout. A check past it fails with reason Timeout and frees its slot.
    #[arg(long, env = "ARGOMAP_MAX_CHECK_DURATION", default_value = "60s", value_parser = crd::parse_duration)]
    pub max_check_duration: Duration,
    /// Minimum period between status writes that only refresh lastCheckedAt (0s: every check).
    #[arg(long, env = "ARGOMAP_STATUS_HEARTBEAT", default_value = "0s", value_parser = crd::parse_duration)]
    pub status_heartbeat: Duration,
    /// Largest Argo CD response body accepted, in bytes (after gzip decoding).
    #[arg(long, env = "ARGOMAP_MAX_RESPONSE_BYTES", default_value_t = argocd::DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
    /// Watch mode: bytes every instance's application index and stream hold at most, together.
    /// An instance that does not fit is polled instead (ApplicationStream reason
    /// WatchBudgetExceeded).
    #[arg(long, env = "ARGOMAP_MAX_WATCH_BYTES", default_value_t = argocd::budget::DEFAULT_MAX_WATCH_BYTES)]
    pub max_watch_bytes: usize,
    /// Networks argomap never connects to, whatever an ArgoCdInstance's spec.url says:
    /// CIDRs, comma-separated, checked on every address a name resolves to; empty denies none.
    /// Add the cluster's Service and Pod CIDRs to keep tenants off in-cluster services.
    #[arg(long, env = "ARGOMAP_DENY_URL_CIDRS", default_value = argocd::url_policy::DEFAULT_DENIED, value_parser = argocd::UrlPolicy::parse)]
    pub deny_url_cidrs: argocd::UrlPolicy,
    /// A `connected` status whose last successful check is older than this many check intervals
    /// is stale: Ready turns Unknown (reason Stale) and the read API reports `error`.
    #[arg(long, env = "ARGOMAP_STALE_AFTER_INTERVALS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub stale_after_intervals: u32,
    /// Watch mode: an application stream that sends nothing this long (Argo CD sends a
    /// keepalive every 15s) is treated as dead and opened again.
    #[arg(long, env = "ARGOMAP_STREAM_STALL_TIMEOUT", default_value = "45s", value_parser = crd::parse_duration)]
    pub stream_stall_timeout: Duration,
    /// Address of the read API.
    #[arg(long, env = "ARGOMAP_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: std::net::SocketAddr,
    /// Address of the admin server: /healthz, /readyz and /metrics, apart from the read API.
    #[arg(long, env = "ARGOMAP_ADMIN_ADDR", default_value = "0.0.0.0:8081")]
    pub admin_addr: std::net::SocketAddr,
    /// How long a TokenReview/SubjectAccessReview answer of the read API is reused: a deleted
    /// ServiceAccount or RoleBinding is refused at most this long after.
    #[arg(long, env = "ARGOMAP_READ_API_REVIEW_TTL", default_value = "30s", value_parser = crd::parse_duration)]
    pub read_api_review_ttl: Duration,
    /// TokenReviews one client address may cause per second (twice that in a burst); requests
    /// with new tokens beyond it are answered 429.
    #[arg(long, env = "ARGOMAP_READ_API_REVIEWS_PER_CLIENT", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub read_api_reviews_per_client: u32,
    /// Per ArgoCdInstance, at most this many destinations have per-destination series
    /// (argomap_destination_applications, argomap_destination_info, the counts by health and
    /// sync): those with the most applications; and at most this many argomap_cluster_instances
    /// series in all (the most shared clusters); 0 turns these families off.
    #[arg(long, env = "ARGOMAP_DESTINATION_METRICS_LIMIT", default_value_t = crate::metrics::DEFAULT_DESTINATION_LIMIT)]
    pub destination_metrics_limit: usize,
    /// Open connections of the read API; when all are taken, the one stalled longest gives
    /// way to a new one, else new ones wait in the listen backlog.
    #[arg(long, env = "ARGOMAP_READ_API_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub read_api_max_connections: u64,
    /// Open connections of the read API one client address (an IPv6 /64) may hold; more are
    /// closed at once.
    #[arg(long, env = "ARGOMAP_READ_API_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub read_api_max_connections_per_client: u64,
    /// The largest read-API answer (one organization's JSON); beyond, 413 ResponseTooLarge.
    #[arg(long, env = "ARGOMAP_READ_API_MAX_RESPONSE_BYTES", default_value_t = 8 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub read_api_max_response_bytes: u64,
    /// Read-API answer bytes held at once until their clients have read them; a request
    /// waits for room within its deadline, else 503.
    #[arg(long, env = "ARGOMAP_READ_API_MAX_INFLIGHT_RESPONSE_BYTES", default_value_t = 32 << 20, value_parser = clap::value_parser!(u64).range(1024..))]
    pub read_api_max_inflight_response_bytes: u64,
    /// Open connections of the admin server (probes, metrics), apart from the read API's.
    #[arg(long, env = "ARGOMAP_ADMIN_MAX_CONNECTIONS", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub admin_max_connections: u64,
    /// Open connections of the admin server one client address may hold.
    #[arg(long, env = "ARGOMAP_ADMIN_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub admin_max_connections_per_client: u64,
    /// Both servers: the largest request head (request line and headers); beyond, 431.
    #[arg(long, env = "ARGOMAP_HTTP_MAX_HEADER_BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1 << 20))]
    pub http_max_header_bytes: u64,
    /// Both servers: a request head must arrive within this; an idle keep-alive connection is
    /// closed after it.
    #[arg(long, env = "ARGOMAP_HTTP_IDLE_TIMEOUT", default_value = "10s", value_parser = crd::parse_duration)]
    pub http_idle_timeout: Duration,
    /// Both servers: a write of an answer the client does not read for this long ends the
    /// connection.
    #[arg(long, env = "ARGOMAP_HTTP_WRITE_TIMEOUT", default_value = "10s", value_parser = crd::parse_duration)]
    pub http_write_timeout: Duration,
    /// Both servers: every answer must be written whole within this, however slowly its
    /// client reads.
    #[arg(long, env = "ARGOMAP_HTTP_RESPONSE_DEADLINE", default_value = "60s", value_parser = crd::parse_duration)]
    pub http_response_deadline: Duration,
    /// The audiences read-API tokens must be issued for (`kubectl create token SA --audience
    /// argomap`); an empty value accepts the API server's own audience instead.
    #[arg(long, env = "ARGOMAP_READ_API_AUDIENCE", value_delimiter = ',', default_value = crate::server::DEFAULT_AUDIENCE)]
    pub read_api_audience: Vec<String>,
    /// How organizations are bound to namespaces: `namespace-label` (an instance counts for its
    /// `spec.organizationId` only when its namespace is labelled argomap.io/organization-id with
    /// it; administrators label namespaces) or `none` (trust spec.organizationId as written).
    #[arg(long, env = "ARGOMAP_ORGANIZATION_BINDING", default_value = "namespace-label", value_parser = clap::value_parser!(crate::model::organization::Binding))]
    pub organization_binding: crate::model::organization::Binding,
    /// Read ClusterProfiles (SIG-Multicluster's Cluster Inventory API, every namespace) for
    /// ClusterMappings that reference one and for `spec.autoLink`. Needs get, list and watch on
    /// clusterprofiles.multicluster.x-k8s.io; without their CRD it reads nothing.
    #[arg(long, env = "ARGOMAP_CLUSTER_PROFILES")]
    pub cluster_profiles: bool,
    /// Serve the read API over TLS with this certificate chain (PEM; a mounted
    /// `kubernetes.io/tls` Secret's `tls.crt`). Read again when it changes.
    #[arg(long, env = "ARGOMAP_READ_API_TLS_CERT_FILE", requires = "read_api_tls_key_file")]
    pub read_api_tls_cert_file: Option<std::path::PathBuf>,
    /// The key of --read-api-tls-cert-file (PEM; the Secret's `tls.key`).
    #[arg(long, env = "ARGOMAP_READ_API_TLS_KEY_FILE", requires = "read_api_tls_cert_file")]
    pub read_api_tls_key_file: Option<std::path::PathBuf>,
    /// Serve /metrics only to callers allowed to `get` the non-resource URL /metrics
    /// (TokenReview, then SubjectAccessReview), as kube-rbac-proxy does. The chart turns it on.
    #[arg(long, env = "ARGOMAP_METRICS_AUTH")]
    pub metrics_auth: bool,
    /// With --metrics-auth: the audiences scrape tokens must be issued for; none (the default)
    /// accepts the API server's own, which a Prometheus ServiceAccount token has.
    #[arg(long, env = "ARGOMAP_METRICS_AUDIENCE", value_delimiter = ',')]
    pub metrics_audience: Vec<String>,
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

/// A namespace name (DNS-1123 label), so a typo fails at start and not as a 404 per watch.
fn namespace_name(s: &str) -> Result<String, String> {
    let s = s.trim();
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if valid { Ok(s.to_string()) } else { Err(format!("{s:?} is not a namespace name")) }
}
