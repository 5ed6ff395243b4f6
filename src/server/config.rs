//! The servers' knobs ([`HttpConfig`]): every bound and timeout a client meets, with the
//! production values as its `Default`.

use std::sync::Arc;
use std::time::Duration;

use super::auth::DEFAULT_AUDIENCE;
use crate::model::organization;

/// Knobs of the server. `Default` holds the production values.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Review tokens and access. `false` only for local use (`--read-api-insecure-no-auth`):
    /// anyone reaching the port then reads every organization; `serve` warns loudly at start.
    pub auth: bool,
    /// The audiences read-API tokens must be issued for (none: the API server's own).
    pub read_api_audiences: Vec<String>,
    /// Which instances count for their `spec.organizationId` (see `model::organization`).
    pub organization_binding: organization::Binding,
    /// `/metrics` only for callers allowed to `get` that non-resource URL (`--metrics-auth`).
    pub metrics_auth: bool,
    /// The audiences scrape tokens must be issued for (none: the API server's own, which is
    /// what a Prometheus ServiceAccount token has).
    pub metrics_audiences: Vec<String>,
    /// Deadline of one read-API request, reviews included.
    pub request_timeout: Duration,
    /// A client must send its request headers within this (also ends idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// The largest request head (request line and headers) read; beyond, 431 and the
    /// connection is closed. It is also the most a connection buffers of what it reads.
    pub max_header_bytes: usize,
    /// A write of an answer that the client does not read for this long ends the connection.
    pub write_timeout: Duration,
    /// Every answer must be written whole within this, however slowly its client reads.
    pub response_deadline: Duration,
    /// The largest read-API answer (one organization's JSON); beyond, 413.
    pub max_response_bytes: usize,
    /// Read-API answer bytes held at once, until each is written; a request waits for room
    /// (within its deadline), else 503.
    pub max_inflight_response_bytes: usize,
    /// How long a TokenReview or SubjectAccessReview answer is reused.
    pub review_ttl: Duration,
    /// A connected instance is reported as `error` when its last successful check is older
    /// than this many of its intervals (`--stale-after-intervals`).
    pub stale_after_intervals: u32,
    /// `--status-heartbeat`: the status' check times lag by up to this much, which staleness
    /// allows for.
    pub status_heartbeat: Duration,
    /// Entries of each review cache (tokens; token × namespace answers).
    pub review_cache_capacity: u64,
    /// Read-API requests worked on at once; more wait (within their deadline).
    pub max_concurrent_requests: usize,
    /// TokenReviews one client address may cause per second (twice that in a burst); beyond,
    /// requests with tokens not reviewed recently are answered 429.
    pub reviews_per_client: u32,
    /// TokenReviews in flight at once, over all clients; beyond, 429.
    pub max_concurrent_reviews: usize,
    /// Open connections of the read API; when all are taken, the one stalled longest (no byte
    /// moved for a second, no request running) is closed for a new one, else new ones wait in
    /// the listen backlog.
    pub max_connections: usize,
    /// Open connections of the read API one client address may hold (an IPv6 /64 counts as
    /// one address); more are closed at once.
    pub max_connections_per_client: usize,
    /// Open connections of the admin server (probes, metrics), a budget of its own so that
    /// read-API clients can never starve the kubelet's probes or Prometheus.
    pub admin_max_connections: usize,
    /// Open connections of the admin server one client address may hold.
    pub admin_max_connections_per_client: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// The read API's TLS (`--read-api-tls-cert-file` and `--read-api-tls-key-file`); plain
    /// HTTP when `None`.
    pub read_api_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            auth: true,
            read_api_audiences: vec![DEFAULT_AUDIENCE.to_owned()],
            organization_binding: organization::Binding::default(),
            metrics_auth: false,
            metrics_audiences: Vec::new(),
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            write_timeout: Duration::from_secs(10),
            response_deadline: Duration::from_secs(60),
            max_response_bytes: 8 << 20,
            max_inflight_response_bytes: 32 << 20,
            review_ttl: Duration::from_secs(30),
            stale_after_intervals: 3,
            status_heartbeat: Duration::ZERO,
            review_cache_capacity: 10_000,
            max_concurrent_requests: 64,
            reviews_per_client: 5,
            max_concurrent_reviews: 16,
            max_connections: 1024,
            max_connections_per_client: 64,
            admin_max_connections: 64,
            admin_max_connections_per_client: 8,
            shutdown_grace: Duration::from_secs(10),
            read_api_tls: None,
        }
    }
}

/// Default of [`HttpConfig::max_header_bytes`]: a bearer token of a few KiB fits; 1 000
/// connections hold about 16 MiB of heads at most.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper's smallest read buffer; a smaller `max_header_bytes` is raised to it.
pub(super) const MIN_READ_BUFFER: usize = 8 * 1024;
