//! The settings of `argomap run` that shape the controllers, and their defaults.

use std::time::Duration;

use super::follow;
use crate::argocd;
use crate::crd::ArgoCdInstance;
use crate::model::organization;

/// Settings of `argomap run` that shape the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only these namespaces; empty watches all.
    pub namespaces: Vec<String>,
    pub max_concurrent_checks: u16,
    /// The longest one check may take, all its requests together; it also caps the
    /// per-request `spec.timeout`, so no check holds a slot longer.
    pub max_check_duration: Duration,
    /// Minimum period between writes that only refresh `lastCheckedAt` (zero: every check).
    pub status_heartbeat: Duration,
    pub max_response_bytes: usize,
    /// What every watch's index and stream hold at most, together.
    pub max_watch_bytes: usize,
    /// Networks argomap never connects to (`--deny-url-cidrs`; none by default here, the CLI
    /// denies loopback and link-local).
    pub url_policy: argocd::UrlPolicy,
    /// Intervals after the last successful check at which a connected status is stale.
    pub stale_after_intervals: u32,
    /// Watch mode: a stream silent this long is dead (Argo CD sends a keepalive every 15 s).
    pub stream_stall: Duration,
    /// How organizations are bound to namespaces (the `OrganizationBound` condition).
    pub organization_binding: organization::Binding,
    /// Read ClusterProfiles (`--cluster-profiles`), when their CRD is installed.
    pub cluster_profiles: bool,
}

impl Settings {
    /// When `instance`'s data counts as stale.
    pub fn stale_after(&self, instance: &ArgoCdInstance) -> jiff::SignedDuration {
        crate::model::staleness::stale_limit(instance, self.stale_after_intervals, self.status_heartbeat)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespaces: Vec::new(),
            max_concurrent_checks: 8,
            max_check_duration: Duration::from_secs(60),
            status_heartbeat: Duration::ZERO,
            max_response_bytes: argocd::DEFAULT_MAX_RESPONSE_BYTES,
            max_watch_bytes: argocd::budget::DEFAULT_MAX_WATCH_BYTES,
            url_policy: argocd::UrlPolicy::default(),
            stale_after_intervals: 3,
            stream_stall: follow::DEFAULT_STALL,
            organization_binding: organization::Binding::default(),
            cluster_profiles: false,
        }
    }
}
