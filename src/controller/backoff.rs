//! Every wait after a failure, and every jitter, in one place: how soon a failed check, a failed
//! reconcile, a failed application stream and a failed Kubernetes watch are tried again, and
//! how periodic work is spread so that instances do not move in step.

use std::time::Duration;

/// `first` after one failure, doubling with each further one, at most `cap`.
pub fn doubling(first: Duration, failures: u32, cap: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    first.saturating_mul(1 << exp).min(cap)
}

/// The next check after `failures` failed checks in a row: 5 s doubling, at most the interval.
pub fn check_retry(failures: u32, interval: Duration) -> Duration {
    doubling(Duration::from_secs(5), failures, interval)
}

/// After a refused login, the next attempt (a check's or a stream's) waits for a change of the
/// Secret or this long: Argo CD locks an account out for 300 s after 5 failed logins, for
/// everyone using it.
pub const LOGIN_RETRY: Duration = Duration::from_secs(300);

/// The next reconcile after `failures` failed reconciles (the Kubernetes API failing): 5 s
/// doubling, at most `cap`.
pub fn reconcile_retry(failures: u32, cap: Duration) -> Duration {
    doubling(Duration::from_secs(5), failures, cap)
}

/// The application stream opened again after `failures` failures: 1 s doubling, at most the
/// interval (polling covers the gap meanwhile).
pub fn stream_retry(failures: u32, interval: Duration) -> Duration {
    doubling(Duration::from_secs(1), failures, interval)
}

/// `period` ±10%, so that instances checked or relisted at the same period spread out.
pub fn spread(period: Duration) -> Duration {
    period.mul_f64(rand::random_range(0.9..1.1))
}

/// How a failed Kubernetes watch is retried: 0.8 s doubling up to 10 s, ±20%, back to 0.8 s
/// after a minute without failure. kube-runtime's default (client-go's) goes up to 30 s and
/// keeps that for two minutes, and after an API server restart every watch needs two attempts
/// (the first finds its resourceVersion expired): a minute and more of blindness for a handful
/// of watches that cost the server little.
pub fn watch_retry() -> kube::runtime::utils::ResetTimerBackoff<WatchRetry> {
    kube::runtime::utils::ResetTimerBackoff::new(WatchRetry::default(), Duration::from_secs(60))
}

#[derive(Debug)]
pub struct WatchRetry {
    next: Duration,
}

impl WatchRetry {
    const FIRST: Duration = Duration::from_millis(800);
    const MAX: Duration = Duration::from_secs(10);
}

impl Default for WatchRetry {
    fn default() -> Self {
        WatchRetry { next: Self::FIRST }
    }
}

impl Iterator for WatchRetry {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(wait.mul_f64(rand::random_range(0.8..1.2)))
    }
}

impl kube::runtime::utils::Backoff for WatchRetry {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// The controllers' own backoff on their merged watches (`trigger_backoff`): none. Each watch
/// already backs off on its own ([`watch_retry`]); kube's default, client-go's up to 30 s and
/// jittered, sleeps over every watch of a controller at once, so after an API server outage it
/// kept them all blind for half a minute once the server was back, and longer when the outage
/// had produced many errors.
pub struct NoWait;

impl Iterator for NoWait {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoWait {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_back_off_from_five_seconds_up_to_the_interval() {
        let i = Duration::from_secs(60);
        let got: Vec<u64> = (1..=6).map(|n| check_retry(n, i).as_secs()).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(check_retry(1000, i), i);
    }

    #[test]
    fn streams_back_off_from_one_second_up_to_the_interval() {
        let i = Duration::from_secs(30);
        let got: Vec<u64> = (1..=7).map(|n| stream_retry(n, i).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn watch_retries_double_up_to_ten_seconds_and_reset() {
        use kube::runtime::utils::Backoff;
        let mut b = WatchRetry::default();
        let waits: Vec<f64> = (0..8).map(|_| b.next().map(|d| d.as_secs_f64()).unwrap_or_default()).collect();
        for (wait, base) in waits.iter().zip([0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0, 10.0]) {
            assert!((base * 0.8..=base * 1.2).contains(wait), "{wait} for {base}");
        }
        b.reset();
        assert!(b.next().is_some_and(|d| d <= Duration::from_millis(960)));
    }

    #[test]
    fn spread_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = spread(Duration::from_secs(100)).as_secs_f64();
            assert!((90.0..=110.0).contains(&j), "{j}");
        }
    }
}
