//! The connection budget's tests: shares, eviction of stalled connections, write timeouts.

use super::*;
use std::net::Ipv4Addr;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[tokio::test]
async fn a_client_address_holds_at_most_its_share() {
    let budget = Budget::new(10, 2);
    let a = budget.admit(ip(1), || {}).await.expect("first");
    let _b = budget.admit(ip(1), || {}).await.expect("second");
    assert_eq!(budget.admit(ip(1), || {}).await.err(), Some(Refusal::PerClient));
    let _other = budget.admit(ip(2), || {}).await.expect("another address has its own share");
    drop(a);
    let _again = budget.admit(ip(1), || {}).await.expect("a place given back is free again");
    assert_eq!(budget.open(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_client_at_its_share_gives_way_with_its_own_stalled_connection() {
    // A greedy client and the kubelet's probes share the node's address.
    let budget = Budget::new(10, 2);
    let stalled = budget.admit(ip(1), || {}).await.expect("stalled");
    tokio::time::advance(EVICT_AFTER / 2).await;
    let younger = budget.admit(ip(1), || {}).await.expect("younger");
    let other = budget.admit(ip(2), || {}).await.expect("another address");
    tokio::time::advance(EVICT_AFTER * 2).await;

    let evictions = AtomicUsize::new(0);
    let probe = budget.admit(ip(1), || {
        evictions.fetch_add(1, Ordering::Relaxed);
    });
    let (admitted, ()) = tokio::join!(probe, async {
        stalled.evicted().await;
        drop(stalled);
    });
    let probe = admitted.expect("admitted in place of its own stalled connection");
    assert_eq!(evictions.load(Ordering::Relaxed), 1, "one eviction, not one per retry");
    assert!(!younger.activity.evict.is_cancelled(), "only the longest stalled one went");
    assert!(!other.activity.evict.is_cancelled(), "never another address's connection");

    // Its share busy (a handler running on each): refused at once, as before.
    let _h1 = younger.activity.handling();
    let _h2 = probe.activity.handling();
    assert_eq!(budget.admit(ip(1), || {}).await.err(), Some(Refusal::PerClient));
}

#[tokio::test]
async fn ipv6_clients_share_one_share_per_64() {
    let a: IpAddr = "2001:db8::1".parse().expect("ip");
    let b: IpAddr = "2001:db8::ffff:2".parse().expect("ip");
    let c: IpAddr = "2001:db8:0:1::1".parse().expect("ip");
    assert_eq!(client_key(a), client_key(b));
    assert_ne!(client_key(a), client_key(c));
    let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
    assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().expect("ip"));
}

#[tokio::test(start_paused = true)]
async fn a_full_budget_evicts_the_longest_stalled_connection_not_a_busy_one() {
    let budget = Budget::new(3, 10);
    let busy = budget.admit(ip(1), || {}).await.expect("busy");
    let _handler = busy.activity.handling();
    let old = budget.admit(ip(2), || {}).await.expect("old");
    tokio::time::advance(Duration::from_millis(500)).await;
    let newer = budget.admit(ip(3), || {}).await.expect("newer");
    tokio::time::advance(EVICT_AFTER * 2).await;

    let evictions = AtomicUsize::new(0);
    let waiting = budget.admit(ip(4), || {
        evictions.fetch_add(1, Ordering::Relaxed);
    });
    // The task of the evicted connection gives its place back once told.
    let (admitted, ()) = tokio::join!(waiting, async {
        old.evicted().await;
        drop(old);
    });
    admitted.expect("admitted after the eviction");
    assert_eq!(evictions.load(Ordering::Relaxed), 1);
    assert!(!busy.activity.evict.is_cancelled(), "a connection running a handler stays");
    assert!(!newer.activity.evict.is_cancelled(), "only the longest stalled one went");
}

#[tokio::test(start_paused = true)]
async fn a_full_budget_of_active_connections_makes_the_next_wait() {
    let budget = Budget::new(1, 10);
    let only = budget.admit(ip(1), || {}).await.expect("only");
    let _handler = only.activity.handling();
    tokio::time::advance(EVICT_AFTER * 5).await;
    let next = tokio::time::timeout(Duration::from_secs(3), budget.admit(ip(2), || {})).await;
    assert!(next.is_err(), "nothing to evict: the new connection waits");
    assert!(!only.activity.evict.is_cancelled());
}

#[tokio::test(start_paused = true)]
async fn a_write_the_client_never_reads_ends_after_the_write_timeout() {
    let budget = Budget::new(4, 4);
    let admission = budget.admit(ip(1), || {}).await.expect("admit");
    // A duplex pipe whose reader never reads: writes stop once its 64 bytes are full.
    let (ours, _theirs) = tokio::io::duplex(64);
    let mut socket = Metered::new(ours, &admission, Duration::from_secs(10));
    let started = tokio::time::Instant::now();
    let result = tokio::io::AsyncWriteExt::write_all(&mut socket, &[0u8; 4096]).await;
    let err = result.expect_err("the write must end");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_that_keeps_reading_is_not_cut() {
    let budget = Budget::new(4, 4);
    let admission = budget.admit(ip(1), || {}).await.expect("admit");
    let (ours, mut theirs) = tokio::io::duplex(64);
    let mut socket = Metered::new(ours, &admission, Duration::from_secs(10));
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let mut total = 0;
        while total < 1024 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            total += tokio::io::AsyncReadExt::read(&mut theirs, &mut buf).await.expect("read");
        }
    });
    tokio::io::AsyncWriteExt::write_all(&mut socket, &[0u8; 1024]).await.expect("written, slowly");
    reader.await.expect("reader");
}
