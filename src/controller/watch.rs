//! The controllers' watches: how they start again after losing the API server, and how often
//! they retry.

use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::Resource;
use kube::runtime::watcher::{self, Event};

/// A watcher that lists afresh when its connection to the API server fails, instead of
/// resuming from the resourceVersion it had: a restarted API server answers that with 410
/// Gone, but only once its watch cache is ready (20-80 s measured), which would leave argomap
/// blind that long. A fresh list is answered at once; the store swaps to it at `InitDone`.
pub(super) fn watch<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> impl futures::Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    type Inner<K> = futures::stream::BoxStream<'static, watcher::Result<Event<K>>>;
    futures::stream::unfold(None::<Inner<K>>, move |current| {
        let (api, wc) = (api.clone(), wc.clone());
        async move {
            let mut inner = current.unwrap_or_else(|| watcher::watcher(api, wc).boxed());
            let item = inner.next().await?;
            let lost =
                matches!(item, Err(watcher::Error::WatchStartFailed(_) | watcher::Error::WatchFailed(_)));
            Some((item, if lost { None } else { Some(inner) }))
        }
    })
}

/// How long the API server keeps one watch open before argomap watches again from where it was.
pub const WATCH_SECONDS: u32 = 50;

/// How a failed watch is retried: 0.8 s doubling up to 10 s, with jitter, back to 0.8 s after a
/// minute without failure. kube-runtime's default (client-go's) goes up to 30 s and keeps that
/// for two minutes, and after an API server restart every watch needs two attempts (the first
/// finds its resourceVersion expired): a minute and more of blindness for a handful of watches
/// that cost the server little.
pub(super) fn watch_backoff() -> kube::runtime::utils::ResetTimerBackoff<WatchBackoff> {
    kube::runtime::utils::ResetTimerBackoff::new(WatchBackoff::default(), Duration::from_secs(60))
}

#[derive(Debug)]
pub(super) struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(800);
    const MAX: Duration = Duration::from_secs(10);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(wait.mul_f64(rand::random_range(0.8..1.2)))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_retries_double_up_to_ten_seconds_and_reset() {
        use kube::runtime::utils::Backoff;
        let mut b = WatchBackoff::default();
        let waits: Vec<f64> = (0..8).map(|_| b.next().map(|d| d.as_secs_f64()).unwrap_or_default()).collect();
        for (wait, base) in waits.iter().zip([0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0, 10.0]) {
            assert!((base * 0.8..=base * 1.2).contains(wait), "{wait} for {base}");
        }
        b.reset();
        assert!(b.next().is_some_and(|d| d <= Duration::from_millis(960)));
    }
}
