//! Leader election with a `coordination.k8s.io` Lease (kube-lease-manager): only the leader
//! checks Argo CD and writes; a standby keeps its watches (and so its caches, health and read
//! API) warm and takes over when the Lease expires. SIGTERM releases the Lease at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::task::JoinHandle;

/// Seconds a Lease stays valid after its last renewal.
pub const LEASE_DURATION: u64 = 15;
/// The holder renews this many seconds before the Lease would expire.
pub const LEASE_GRACE: u64 = 5;

/// Whether this process leads, as the reconcilers see it.
#[derive(Clone, Debug)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    /// Without election the only process always leads.
    pub fn always() -> Self {
        Leadership(Arc::new(AtomicBool::new(true)))
    }

    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum LeaderError {
    #[error("leader election needs the Lease namespace (--lease-namespace or POD_NAMESPACE)")]
    #[strum(serialize = "ConfigError")]
    NoNamespace,
    #[error("cannot set up the Lease: {0}")]
    #[strum(serialize = "LeaseError")]
    Lease(#[from] LeaseManagerError),
}

impl LeaderError {
    /// Fixed label for logs.
    pub fn category(&self) -> &'static str {
        self.into()
    }
}

/// Joins the election. Returns the leadership flag and the task that follows the Lease; the
/// task ends (releasing the Lease) when `shutdown` resolves.
pub async fn elect(
    client: kube::Client,
    namespace: &str,
    lease: &str,
    identity: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Leadership, JoinHandle<()>), LeaderError> {
    let manager = LeaseManagerBuilder::new(client, lease)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_DURATION)
        .with_grace(LEASE_GRACE)
        .with_field_manager(crate::crd::MANAGER)
        .build()
        .await?;
    let (mut changes, manager_task) = manager.watch().await;
    let leadership = Leadership(Arc::new(AtomicBool::new(false)));
    let flag = leadership.0.clone();
    let identity = identity.to_string();
    let task = tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let leading = *changes.borrow_and_update();
                    flag.store(leading, Ordering::SeqCst);
                    if leading {
                        tracing::info!(%identity, "leading: checking Argo CD and writing statuses");
                    } else {
                        tracing::info!(%identity, "standing by: another replica leads");
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        flag.store(false, Ordering::SeqCst);
        // Closing the channel makes the manager release the Lease.
        drop(changes);
        match manager_task.await {
            Ok(Ok(_)) => tracing::info!(%identity, "Lease released"),
            Ok(Err(e)) => tracing::warn!(error = %e, "Lease not released; it expires on its own"),
            Err(e) => tracing::warn!(error = %e, "Lease task failed"),
        }
    });
    Ok((leadership, task))
}

/// This process's name in the election: the pod name, else host name and process id.
pub fn identity() -> String {
    std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "argomap".into());
        format!("{host}-{}", std::process::id())
    })
}
