//! `argomap_cluster_instances{cluster_id, cluster_name}`: how many ArgoCdInstances deploy to
//! each platform cluster. Counted at each scrape from what a source (the controller's, over
//! the instances' statuses) says, so the series of a cluster no instance deploys to any more is
//! gone at the next scrape, and nothing is kept between scrapes. At most `limit` series
//! (`--destination-metrics-limit`): the clusters with the most instances first, then by id.

use std::sync::{Arc, Mutex, OnceLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts, Registry};

use crate::text::printable;

/// One platform cluster and how many instances deploy to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterCount {
    pub id: String,
    pub name: String,
    pub instances: u64,
}

/// Where the counts come from, asked at each scrape; `None`: nothing to export now (this
/// process stands by, or its watches have not listed yet).
pub type Source = Box<dyn Fn() -> Option<Vec<ClusterCount>> + Send + Sync>;

/// Longest `cluster_id` label in bytes (ids are UUIDs, 36 bytes).
const ID_MAX: usize = 64;
/// Longest `cluster_name` label in bytes (the schema admits 253; the id tells clusters apart).
const NAME_MAX: usize = 128;

/// The family, registered once; cheap to clone.
#[derive(Clone)]
pub struct ClusterInstances(Arc<Inner>);

struct Inner {
    gauge: IntGaugeVec,
    source: OnceLock<Source>,
    limit: usize,
    /// One scrape fills the gauge at a time.
    collecting: Mutex<()>,
}

impl ClusterInstances {
    /// The family, registered in `registry`, exporting at most `limit` series.
    pub(super) fn registered(registry: &Registry, limit: usize) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "argomap_cluster_instances",
                "ArgoCdInstances whose status links a destination to this platform cluster",
            ),
            &["cluster_id", "cluster_name"],
        )?;
        let family = ClusterInstances(Arc::new(Inner {
            gauge,
            source: OnceLock::new(),
            limit,
            collecting: Mutex::new(()),
        }));
        registry.register(Box::new(family.clone()))?;
        Ok(family)
    }

    /// Counts with `source` from now on. Set once: a second source is ignored.
    pub fn count_with(&self, source: Source) {
        let _ = self.0.source.set(source);
    }
}

impl Collector for ClusterInstances {
    fn desc(&self) -> Vec<&Desc> {
        self.0.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _one = self.0.collecting.lock().unwrap_or_else(|e| e.into_inner());
        self.0.gauge.reset();
        let mut counts = self.0.source.get().and_then(|count| count()).unwrap_or_default();
        counts.sort_by(|a, b| b.instances.cmp(&a.instances).then_with(|| a.id.cmp(&b.id)));
        for c in counts.iter().take(self.0.limit) {
            let labels = [printable(&c.id, ID_MAX), printable(&c.name, NAME_MAX)];
            self.0
                .gauge
                .with_label_values(&[labels[0].as_str(), labels[1].as_str()])
                .set(i64::try_from(c.instances).unwrap_or(i64::MAX));
        }
        self.0.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(id: &str, name: &str, instances: u64) -> ClusterCount {
        ClusterCount { id: id.into(), name: name.into(), instances }
    }

    fn series(registry: &Registry) -> Vec<String> {
        let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).expect("encode");
        text.lines().filter(|l| l.starts_with("argomap_cluster_instances{")).map(str::to_owned).collect()
    }

    #[test]
    fn counted_at_each_scrape_so_a_cluster_that_goes_loses_its_series() {
        let registry = Registry::new();
        let family = ClusterInstances::registered(&registry, 10).expect("family");
        assert!(series(&registry).is_empty(), "no source yet: no series");
        let now = Arc::new(Mutex::new(Some(vec![count("b", "Beta", 1), count("a", "Alpha", 2)])));
        let source = now.clone();
        family.count_with(Box::new(move || source.lock().expect("lock").clone()));
        assert_eq!(
            series(&registry),
            [
                "argomap_cluster_instances{cluster_id=\"a\",cluster_name=\"Alpha\"} 2",
                "argomap_cluster_instances{cluster_id=\"b\",cluster_name=\"Beta\"} 1",
            ]
        );
        *now.lock().expect("lock") = Some(vec![count("a", "Alpha", 1)]);
        assert_eq!(
            series(&registry),
            ["argomap_cluster_instances{cluster_id=\"a\",cluster_name=\"Alpha\"} 1"]
        );
        *now.lock().expect("lock") = None;
        assert!(series(&registry).is_empty(), "a standby exports none");
        family.count_with(Box::new(|| Some(vec![count("x", "X", 9)])));
        assert!(series(&registry).is_empty(), "the first source stays");
    }

    #[test]
    fn at_most_limit_series_the_most_shared_first_and_labels_printable() {
        let registry = Registry::new();
        let family = ClusterInstances::registered(&registry, 2).expect("family");
        let long = "n".repeat(300);
        let counts = vec![count("c", "C", 1), count("b", "B\nforged 1", 3), count("a", &long, 3)];
        family.count_with(Box::new(move || Some(counts.clone())));
        let got = series(&registry);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("argomap_cluster_instances{cluster_id=\"a\",cluster_name=\"nnn"),
            "{got:?}"
        );
        assert!(got[0].len() < 200, "name cut: {got:?}");
        assert_eq!(got[1], "argomap_cluster_instances{cluster_id=\"b\",cluster_name=\"Bforged 1\"} 3");

        let off = Registry::new();
        let none = ClusterInstances::registered(&off, 0).expect("family");
        none.count_with(Box::new(|| Some(vec![count("a", "A", 2)])));
        assert!(series(&off).is_empty(), "0 turns the family off");
    }
}
