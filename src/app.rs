//! The wiring of `argomap run`, and its shutdown order. The HTTP server and the controllers
//! share the watch caches. On SIGTERM or SIGINT (caught once, before anything starts): the
//! server stops accepting and drains; the controllers finish their reconciles (at most
//! [`SHUTDOWN_GRACE`]); only then is the Lease released, so no standby writes while this
//! replica still does. What it takes is [`RunArgs`], the flags of `argomap run` (`args`).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

mod args;
pub use args::RunArgs;

use crate::readiness::{Readiness, Synced};
use crate::{controller, leader, metrics, server, shutdown};
use std::process::ExitCode;

/// `argomap run`: the controllers, the HTTP server and (optionally) the leader election,
/// until SIGTERM or SIGINT.
pub async fn run(args: RunArgs) -> ExitCode {
    let shutdown = match shutdown::on_signals() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT");
            return ExitCode::FAILURE;
        }
    };
    let (client, watch_client) = match kube_clients().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no Kubernetes configuration (kubeconfig or in-cluster)");
            return ExitCode::FAILURE;
        }
    };
    // Read once, off the runtime's threads, before any client is built.
    let _ = tokio::task::spawn_blocking(crate::argocd::tls::load_system_roots).await;
    let metrics = match metrics::Metrics::with_destination_limit(args.destination_metrics_limit) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!(error = %e, "cannot register metrics");
            return ExitCode::FAILURE;
        }
    };
    let settings = controller::Settings {
        namespaces: args.namespace,
        max_concurrent_checks: args.max_concurrent_checks,
        max_check_duration: args.max_check_duration,
        status_heartbeat: args.status_heartbeat,
        max_response_bytes: args.max_response_bytes,
        max_watch_bytes: args.max_watch_bytes,
        url_policy: args.deny_url_cidrs,
        stale_after_intervals: args.stale_after_intervals,
        stream_stall: args.stream_stall_timeout,
        organization_binding: args.organization_binding,
        cluster_profiles: args.cluster_profiles,
    };
    tracing::info!(?settings, http_addr = %args.http_addr, admin_addr = %args.admin_addr, version = env!("CARGO_PKG_VERSION"), "argomap starting");

    // The controllers fill these caches; the HTTP server reads them.
    let (stores, writers) = controller::stores();
    let readiness = Readiness::default();
    let read_api_tls = match (args.read_api_tls_cert_file, args.read_api_tls_key_file) {
        (Some(cert), Some(key)) => match server::tls_server_config(server::TlsFiles { cert, key }) {
            Ok(tls) => Some(tls),
            Err(e) => {
                tracing::error!(error = %e, "cannot serve the read API over TLS");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let config = server::HttpConfig {
        read_api_tls,
        auth: !args.read_api_insecure_no_auth,
        organization_binding: args.organization_binding,
        read_api_audiences: args.read_api_audience.into_iter().filter(|a| !a.is_empty()).collect(),
        metrics_auth: args.metrics_auth,
        metrics_audiences: args.metrics_audience.into_iter().filter(|a| !a.is_empty()).collect(),
        review_ttl: args.read_api_review_ttl,
        stale_after_intervals: args.stale_after_intervals,
        status_heartbeat: args.status_heartbeat,
        reviews_per_client: args.read_api_reviews_per_client,
        max_connections: usize_of(args.read_api_max_connections),
        max_connections_per_client: usize_of(args.read_api_max_connections_per_client),
        max_response_bytes: usize_of(args.read_api_max_response_bytes),
        max_inflight_response_bytes: usize_of(args.read_api_max_inflight_response_bytes),
        admin_max_connections: usize_of(args.admin_max_connections),
        admin_max_connections_per_client: usize_of(args.admin_max_connections_per_client),
        max_header_bytes: usize_of(args.http_max_header_bytes),
        header_read_timeout: args.http_idle_timeout,
        write_timeout: args.http_write_timeout,
        response_deadline: args.http_response_deadline,
        ..Default::default()
    };
    let state = server::AppState::new(
        config,
        metrics.clone(),
        readiness.clone(),
        stores.instances.clone(),
        stores.namespaces.clone(),
        stores.secrets.clone(),
        Arc::new(server::KubeReviewer::new(client.clone())),
    );
    // Two servers, each with its own port and connection budget: probes and metrics for the
    // kubelet and Prometheus; the read API for its clients.
    let (admin, read_api) = match (server::bind(args.admin_addr).await, server::bind(args.http_addr).await) {
        (Ok(admin), Ok(read_api)) => (admin, read_api),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot start the HTTP servers");
            return ExitCode::FAILURE;
        }
    };
    let admin = tokio::spawn(server::serve(
        server::Role::Admin,
        admin,
        state.clone(),
        shutdown.clone().cancelled_owned(),
    ));
    let read_api = tokio::spawn(server::serve(
        server::Role::ReadApi,
        read_api,
        state,
        shutdown.clone().cancelled_owned(),
    ));
    // Fired once the controllers have stopped: the Lease is released after them.
    let controllers_stopped = CancellationToken::new();
    let (leadership, lease_task) = if args.leader_election {
        let elected = match args.lease_namespace.as_deref().filter(|ns| !ns.is_empty()) {
            Some(ns) => {
                // A standby exports no per-instance series: only the leader's are true.
                let metrics = metrics.clone();
                let on_standby = move || metrics.forget_instances_except(|_, _| false);
                leader::elect(
                    client.clone(),
                    ns,
                    &args.lease_name,
                    &leader::identity(),
                    controllers_stopped.clone().cancelled_owned(),
                    on_standby,
                )
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

    // Ready once every watch has listed what exists (set by the controller's streams).
    let synced = Arc::new(Synced::new(readiness));
    let (ctx, wakes) = controller::Context::new(client, settings, stores, metrics, shutdown.clone());
    let ctx = ctx.led_by(leadership, synced);
    // A signal that comes before the controllers' first list completes can leave kube-runtime
    // waiting for a store that never fills: they get a bounded time, then the process exits.
    let controllers = controller::run(ctx, wakes, watch_client, writers);
    tokio::select! {
        _ = controllers => {},
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!(grace = ?SHUTDOWN_GRACE, "controllers did not stop in time after the signal; exiting"),
    }
    controllers_stopped.cancel();
    if let Some(task) = lease_task {
        let _ = task.await;
    }
    let _ = tokio::join!(admin, read_api);
    tracing::info!("argomap stopped");
    ExitCode::SUCCESS
}

/// The longest any single request to the Kubernetes API may take (status writes, Secret reads,
/// events, reviews, the Lease), so that a hanging API server holds no reconcile. Watches use a
/// client of their own without it: their requests stay open by design.
pub const KUBE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The client for requests (under [`KUBE_CALL_TIMEOUT`]) and the client for watches.
async fn kube_clients() -> Result<(kube::Client, kube::Client), String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    let mut watches = config.clone();
    // A request on a connection that died with its server can hang forever without a read
    // timeout; watches are ended by the server after WATCH_SECONDS, so this never cuts one.
    watches.connect_timeout = Some(KUBE_CALL_TIMEOUT);
    watches.read_timeout = Some(Duration::from_secs(u64::from(controller::WATCH_SECONDS) + 15));
    let watch = kube::Client::try_from(watches).map_err(|e| e.to_string())?;
    let mut calls = config;
    calls.connect_timeout = Some(KUBE_CALL_TIMEOUT);
    calls.read_timeout = Some(KUBE_CALL_TIMEOUT);
    calls.write_timeout = Some(KUBE_CALL_TIMEOUT);
    let client = kube::Client::try_from(calls).map_err(|e| e.to_string())?;
    Ok((client, watch))
}

/// A count from a flag (`u64` for clap's range check) as a `usize`, saturating.
fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// How long the controllers get to finish their reconciles after SIGTERM or SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
