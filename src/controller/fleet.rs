//! The fleet in metrics: `argomap_cluster_instances` counts, at each scrape, the instances
//! deploying to each platform cluster, from the instance store (`model::fleet`), while this
//! process leads and once its watches have listed (a standby exports no fleet series, as it
//! exports no per-instance ones).

use std::sync::Arc;

use super::Context;
use crate::metrics::fleet::ClusterCount;
use crate::model::fleet;

/// Makes the metrics count the clusters of `ctx`'s instance store.
pub fn export(ctx: &Arc<Context>) {
    let (instances, leadership, synced) =
        (ctx.stores.instances.clone(), ctx.leadership.clone(), ctx.synced.clone());
    ctx.metrics.cluster_instances.count_with(Box::new(move || {
        if !leadership.may_write() || !synced.all() {
            return None;
        }
        let all = instances.state();
        let clusters = fleet::clusters(all.iter().map(|i| i.as_ref()));
        Some(
            clusters
                .into_iter()
                .map(|c| ClusterCount {
                    id: c.cluster.id,
                    name: c.cluster.name,
                    instances: c.instances.len() as u64,
                })
                .collect(),
        )
    }));
}
