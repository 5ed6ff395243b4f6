//! Leader election with a `coordination.k8s.io` Lease (kube-lease-manager): only the leader
//! checks Argo CD and writes; a standby keeps its watches (and so its caches, health and read
//! API) warm and takes over when the Lease expires. The Lease is released on shutdown, after
//! the controllers stopped.
//!
//! Leading is not enough to write: the manager's flag stays true while renewals fail (the API
//! unreachable, the process frozen). Every write first asks [`Leadership::may_write`], which
//! holds only while the Lease, as last read back from the API, names this process and has not
//! expired by this process's clock.
//!
//! Why the Lease is read back rather than known from the renewals (the "claim with an expiry,
//! current for its holder" shape of kubert's lease module): kube-lease-manager tells only
//! whether this process leads, never when it last renewed or until when the Lease holds, so
//! the expiry can only come from the Lease itself. Replacing the manager to get it would
//! change the election that the cluster tests cover; one small GET a second is the price.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::task::JoinHandle;

/// Seconds a Lease stays valid after its last renewal.
pub const LEASE_DURATION: u64 = 15;
/// The holder renews this many seconds before the Lease would expire.
pub const LEASE_GRACE: u64 = 5;

/// How often a leader reads its Lease back to confirm it still holds it.
const CONFIRM_EVERY: Duration = Duration::from_secs(1);
/// Writes stop this long before the confirmed Lease would expire (time for the write itself).
const EXPIRY_MARGIN_MS: i64 = 2_000;

/// Whether this process leads, as the reconcilers see it.
#[derive(Clone, Debug)]
pub struct Leadership {
    leading: Arc<AtomicBool>,
    /// Unix milliseconds until which the Lease is confirmed ours.
    confirmed_until: Arc<AtomicI64>,
}

impl Leadership {
    /// Without election the only process always leads.
    pub fn always() -> Self {
        Leadership {
            leading: Arc::new(AtomicBool::new(true)),
            confirmed_until: Arc::new(AtomicI64::new(i64::MAX)),
        }
    }

    fn standby() -> Self {
        Leadership { leading: Arc::new(AtomicBool::new(false)), confirmed_until: Arc::new(AtomicI64::new(0)) }
    }

    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Whether a write may go out now: leading, with a Lease confirmed and not expired.
    pub fn may_write(&self) -> bool {
        self.write_window().is_some()
    }

    /// How long a write that starts now may take: until the confirmed Lease ends (less the
    /// margin, before any other replica could take the Lease over); `None` when no write may
    /// start. A write still running then is abandoned, so none goes out under a Lease another
    /// replica may hold.
    pub fn write_window(&self) -> Option<std::time::Duration> {
        if !self.is_leader() {
            return None;
        }
        let left = self.confirmed_until.load(Ordering::SeqCst) - Timestamp::now().as_millisecond();
        // Without election the window never ends (a day stands for that).
        u64::try_from(left)
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| std::time::Duration::from_millis(ms.min(86_400_000)))
    }

    fn confirm(&self, until_ms: i64) {
        self.confirmed_until.store(until_ms, Ordering::SeqCst);
    }
}

/// Until when (unix ms, less the margin) `lease` confirms `identity` as its holder; 0 when it
/// names another holder or lacks a renew time.
pub fn confirmed_until(lease: &Lease, identity: &str) -> i64 {
    let Some(spec) = &lease.spec else { return 0 };
    if spec.holder_identity.as_deref() != Some(identity) {
        return 0;
    }
    let (Some(renewed), Some(duration)) = (&spec.renew_time, spec.lease_duration_seconds) else { return 0 };
    renewed.0.as_millisecond() + i64::from(duration) * 1000 - EXPIRY_MARGIN_MS
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
/// `on_standby` runs whenever this process stops leading (to drop what only a leader exports).
///
/// A standby also watches the Lease: the manager alone would wait for a released Lease to
/// expire (its last renewal plus [`LEASE_DURATION`]) before taking it, which during a rolling
/// update leaves no leader for that long. When the watch shows the Lease without a holder,
/// the standby starts over with a fresh manager, which takes a free Lease at once.
pub async fn elect(
    client: kube::Client,
    namespace: &str,
    lease: &str,
    identity: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_standby: impl Fn() + Send + 'static,
) -> Result<(Leadership, JoinHandle<()>), LeaderError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let builder = {
        let (client, namespace, lease, identity) =
            (client.clone(), namespace.to_string(), lease.to_string(), identity.to_string());
        move || {
            LeaseManagerBuilder::new(client.clone(), lease.clone())
                .with_namespace(namespace.clone())
                .with_identity(identity.clone())
                .with_duration(LEASE_DURATION)
                .with_grace(LEASE_GRACE)
                .with_field_manager(crate::crd::MANAGER)
                .build()
        }
    };
    let first = builder().await?;
    let leadership = Leadership::standby();
    let flag = leadership.clone();
    let identity = identity.to_string();
    let lease_name = lease.to_string();
    let task = tokio::spawn(async move {
        tokio::pin!(shutdown);
        let released = watcher::watcher(
            leases.clone(),
            watcher::Config::default().fields(&format!("metadata.name={lease_name}")),
        )
        .default_backoff()
        .applied_objects()
        .filter_map(|lease| std::future::ready(lease.ok().filter(is_free)));
        tokio::pin!(released);
        let mut confirm = tokio::time::interval(CONFIRM_EVERY);
        confirm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut manager = Some(first);
        'election: loop {
            let Some(current) = manager.take() else { break };
            let (mut changes, manager_task) = current.watch().await;
            let stop = loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            break true;
                        }
                        let leading = *changes.borrow_and_update();
                        flag.leading.store(leading, Ordering::SeqCst);
                        if leading {
                            tracing::info!(%identity, "leading: checking Argo CD and writing statuses");
                        } else {
                            flag.confirm(0);
                            on_standby();
                            tracing::info!(%identity, "standing by: another replica leads");
                        }
                    }
                    _ = confirm.tick(), if flag.is_leader() => {
                        // A failed read confirms nothing: the last confirmation runs out on its own.
                        match tokio::time::timeout(CONFIRM_EVERY * 2, leases.get(&lease_name)).await {
                            Ok(Ok(l)) => flag.confirm(confirmed_until(&l, &identity)),
                            Ok(Err(e)) => tracing::debug!(error = %e, "cannot read the Lease back"),
                            Err(_) => tracing::debug!("reading the Lease back timed out"),
                        }
                    }
                    Some(_) = released.next(), if !flag.is_leader() => {
                        tracing::debug!(%identity, "the Lease was released: trying to take it now");
                        break false;
                    }
                    _ = &mut shutdown => break true,
                }
            };
            if stop {
                flag.leading.store(false, Ordering::SeqCst);
                flag.confirm(0);
            }
            // Closing the channel makes the manager release the Lease (if it holds it).
            drop(changes);
            match manager_task.await {
                Ok(Ok(_)) if stop => tracing::info!(%identity, "Lease released"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "Lease not released; it expires on its own"),
                Err(e) => tracing::warn!(error = %e, "Lease task failed"),
            }
            if stop {
                break 'election;
            }
            // A fresh manager reads the Lease anew (the old one would wait for its expiry).
            while manager.is_none() {
                tokio::select! {
                    built = builder() => match built {
                        Ok(m) => manager = Some(m),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot set up the Lease; retrying");
                            tokio::time::sleep(CONFIRM_EVERY).await;
                        }
                    },
                    _ = &mut shutdown => break 'election,
                }
            }
        }
    });
    Ok((leadership, task))
}

/// A Lease nobody holds: released by its holder (or never taken).
fn is_free(lease: &Lease) -> bool {
    lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_none_or(str::is_empty)
}

/// This process's name in the election: the pod name, else host name and process id.
pub fn identity() -> String {
    std::env::var("POD_NAME").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "argomap".into());
        format!("{host}-{}", std::process::id())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: Timestamp) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed)),
                lease_duration_seconds: Some(15),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_without_a_holder_is_free() {
        let held = lease("a", Timestamp::now());
        assert!(!is_free(&held));
        let mut released = held.clone();
        released.spec.as_mut().expect("spec").holder_identity = None;
        assert!(is_free(&released));
        released.spec.as_mut().expect("spec").holder_identity = Some(String::new());
        assert!(is_free(&released));
        assert!(is_free(&Lease::default()));
    }

    #[test]
    fn a_lease_confirms_only_its_holder_until_it_expires() {
        let renewed: Timestamp = "2026-12-02T10:00:00Z".parse().expect("time");
        let until = confirmed_until(&lease("a", renewed), "a");
        assert_eq!(until, renewed.as_millisecond() + 13_000, "15 s less the margin");
        assert_eq!(confirmed_until(&lease("b", renewed), "a"), 0);
        assert_eq!(confirmed_until(&Lease::default(), "a"), 0);
    }

    #[test]
    fn a_leader_whose_lease_ran_out_may_not_write() {
        let l = Leadership::standby();
        assert!(!l.may_write());
        l.leading.store(true, Ordering::SeqCst);
        assert!(!l.may_write(), "leading without a confirmed Lease");
        l.confirm(Timestamp::now().as_millisecond() + 10_000);
        assert!(l.may_write());
        l.confirm(Timestamp::now().as_millisecond() - 1);
        assert!(!l.may_write(), "expired (renewals failed, or the process was frozen)");
        assert!(Leadership::always().may_write());
        l.confirm(Timestamp::now().as_millisecond() + 5_000);
        let window = l.write_window().expect("a window");
        assert!(
            window <= std::time::Duration::from_secs(5) && window > std::time::Duration::from_secs(4),
            "{window:?}"
        );
    }
}
