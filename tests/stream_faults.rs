//! Watch mode's faults, against the fake Argo CD's application stream (the same framing as
//! argocd-server v3.6.1: `data: {json} ` and three newlines, `:` keepalives, nothing before
//! the first event), broken on demand: a stream that stalls, a line cut in half, an error
//! chunk (401 mid-stream, with a token and with a login session), a proxy that does not route
//! the stream or buffers it whole. The task following it must say so in its state, relist
//! after every reconnect (healing what it missed), renew a login session, and never repeat a
//! credential. The real server's behaviour is in `tests/argocd_real/watch.rs`.

use std::sync::Arc;
use std::time::Duration;

use argomap::argocd::budget::{DEFAULT_MAX_WATCH_BYTES, WatchBudget};
use argomap::argocd::{Client, ClientConfig, Credentials};
use argomap::controller::follow::{self, Followed, Shared, TaskConfig};
use argomap::leader::Leadership;
use argomap::metrics::Metrics;
use argomap::model::stream::StreamState;
use fake_argocd::{App, Endpoint, FakeArgoCd, Options, StreamFault, jwt};
use kube::runtime::reflector::ObjectRef;

const USER: &str = "argomap";
const PASSWORD: &str = "correct horse battery staple";

fn apps(second: &str) -> Vec<App> {
    vec![App::to_server("web", "https://a.example.com"), App::to_server("api", second)]
}

/// A fake with two applications and 100 ms keepalives, and a follower of it with a 1 s stall
/// timeout and a 10 s interval, logged in with a token or (`login`) with a username and
/// password.
async fn follow(login: bool) -> (FakeArgoCd, follow::Follower, Arc<Metrics>, String) {
    follow_every(login, Duration::from_secs(10)).await
}

async fn follow_every(
    login: bool,
    interval: Duration,
) -> (FakeArgoCd, follow::Follower, Arc<Metrics>, String) {
    follow_as(login.then_some(PASSWORD), interval).await
}

/// [`follow_every`], logging in with `password` (`None`: with a token).
async fn follow_as(
    password: Option<&str>,
    interval: Duration,
) -> (FakeArgoCd, follow::Follower, Arc<Metrics>, String) {
    let shared = Shared::detached(WatchBudget::new(DEFAULT_MAX_WATCH_BYTES));
    let fake = fake_with(apps("https://b.example.com")).await;
    let (follower, metrics, token) = follow_on(&fake, &shared, password, interval, "prod");
    (fake, follower, metrics, token)
}

/// A fake with `apps` and 100 ms keepalives.
async fn fake_with(apps: Vec<App>) -> FakeArgoCd {
    let users = vec![(USER.to_owned(), PASSWORD.to_owned())];
    let fake = FakeArgoCd::start(Options {
        stream_keepalive: Duration::from_millis(100),
        users,
        ..Options::default()
    })
    .await;
    fake.set_applications(apps);
    fake
}

/// A follower of `fake` named `name`, on `shared`.
fn follow_on(
    fake: &FakeArgoCd,
    shared: &Shared,
    password: Option<&str>,
    interval: Duration,
    name: &str,
) -> (follow::Follower, Arc<Metrics>, String) {
    let token = jwt("argomap:apiKey", None);
    fake.add_token(&token);
    let credentials = match password {
        Some(password) => {
            Credentials::Login { username: USER.to_owned(), password: password.to_owned().into() }
        }
        None => Credentials::Token(token.clone().into()),
    };
    let client = Client::new(
        ClientConfig::new(fake.url(), credentials, Duration::from_secs(5)).with_max_response_bytes(1 << 20),
    )
    .expect("client");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let config = TaskConfig {
        key: ObjectRef::new(name).within("faults"),
        client: Arc::new(client),
        interval,
        stall: Duration::from_secs(1),
        metrics: metrics.clone(),
        leadership: Leadership::always(),
    };
    (follow::start(config, shared), metrics, token)
}

/// Polls the follower until `want` says yes, within 15 s.
async fn until(f: &follow::Follower, what: &str, want: impl Fn(&Followed) -> bool) -> Followed {
    until_within(f, what, Duration::from_secs(15), want).await
}

async fn until_within(
    f: &follow::Follower,
    what: &str,
    within: Duration,
    want: impl Fn(&Followed) -> bool,
) -> Followed {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = f.current();
        if want(&now) {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: still {:?}", now.state);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reconnecting(f: &Followed) -> Option<&str> {
    match &f.state {
        StreamState::Reconnecting(m) => Some(m),
        _ => None,
    }
}

/// Streaming, with `server`'s count as given.
fn streaming_with(server: &'static str, count: u64) -> impl Fn(&Followed) -> bool {
    move |f| f.state.is_streaming() && f.tally.server_count(server) == Some(count)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_stream_brings_changes_and_keepalives_keep_it_open() {
    let (fake, f, _, _) = follow(false).await;
    until(&f, "streaming", streaming_with("https://b.example.com", 1)).await;
    // A change arrives as an event: no new list, no new stream.
    fake.set_applications(apps("https://c.example.com"));
    let s = until(&f, "the change", streaming_with("https://c.example.com", 1)).await;
    assert_eq!(s.tally.server_count("https://b.example.com"), None);
    // Keepalives only, for three stall timeouts: still the same stream.
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < quiet_until {
        assert!(f.current().state.is_streaming(), "{:?}", f.current().state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.requests(Endpoint::ApplicationStream), 1);
    assert_eq!(fake.requests(Endpoint::Applications), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_stream_is_dead_and_the_relist_heals_what_it_missed() {
    let (fake, f, metrics, _) = follow(false).await;
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    fake.break_streams(StreamFault::Stall);
    // Made while the stream is silent: only the relist after the reconnect can bring it.
    fake.set_applications(apps("https://missed.example.com"));
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    assert!(reconnecting(&s).is_some_and(|m| m.contains("sent nothing for 1s")), "{:?}", s.state);
    until(&f, "streaming again, healed", streaming_with("https://missed.example.com", 1)).await;
    assert!(fake.requests(Endpoint::Applications) >= 2, "a relist after the reconnect");
    let text = metrics.encode().expect("metrics");
    assert!(
        text.contains(
            r#"argomap_stream_reconnects_total{instance="prod",namespace="faults",reason="Stalled"}"#
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_periodic_relist_heals_a_dropped_event_and_keeps_the_stream() {
    // A 1 s interval: the relist comes every 9 to 11 s.
    let (fake, f, metrics, _) = follow_every(false, Duration::from_secs(1)).await;
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    fake.set_applications_dropping_events(apps("https://dropped.example.com"));
    until_within(
        &f,
        "healed by the relist",
        Duration::from_secs(30),
        streaming_with("https://dropped.example.com", 1),
    )
    .await;
    // Events still flow on the same stream after the relist.
    fake.set_applications(apps("https://after.example.com"));
    until(&f, "an event after the relist", streaming_with("https://after.example.com", 1)).await;
    assert_eq!(fake.requests(Endpoint::ApplicationStream), 1, "the stream stayed open");
    assert!(fake.requests(Endpoint::Applications) >= 2, "the first list and a relist");
    let text = metrics.encode().expect("metrics");
    assert!(!text.contains("argomap_stream_reconnects_total{"), "no reconnect: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_cut_in_half_ends_the_stream() {
    let (fake, f, _, _) = follow(false).await;
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    fake.break_streams(StreamFault::CutLine);
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    assert!(reconnecting(&s).is_some_and(|m| m.contains("not an event")), "{:?}", s.state);
    until(&f, "streaming again", |f| f.state.is_streaming()).await;
    assert_eq!(fake.requests(Endpoint::ApplicationStream), 2);
    // The half line changed nothing: the tally is the list's.
    assert_eq!(f.current().tally.total, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_chunk_that_repeats_the_token_is_reported_without_it() {
    let (fake, f, _, token) = follow(false).await;
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    fake.set_stream_fault(Some(StreamFault::EchoError));
    fake.break_streams(StreamFault::EchoError);
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    let m = reconnecting(&s).unwrap_or_default();
    assert!(m.contains("HTTP 401"), "{m}");
    assert!(!m.contains(&token) && m.contains("[redacted]"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_mid_stream_renews_the_login_session() {
    let (fake, f, _, _) = follow(true).await;
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    assert_eq!(fake.requests(Endpoint::Session), 1, "one login so far");
    // The session ends (revoked server-side) and the stream says so.
    fake.revoke_tokens();
    fake.break_streams(StreamFault::Error(401));
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    let m = reconnecting(&s).unwrap_or_default();
    assert!(m.contains("HTTP 401") && m.contains("token is expired"), "{m}");
    // The old session is refused everywhere now: only a new login brings the stream back.
    fake.set_applications(apps("https://after.example.com"));
    until(&f, "streaming on a new session", streaming_with("https://after.example.com", 1)).await;
    assert_eq!(fake.requests(Endpoint::Session), 2, "exactly one new login");
    let m = format!("{:?}", f.current().state);
    assert!(!m.contains(PASSWORD), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_that_does_not_route_the_stream_means_polling() {
    let (fake, f, _, _) = follow(false).await;
    fake.set_stream_fault(Some(StreamFault::NotRouted));
    let s = until(&f, "unavailable", |f| matches!(f.state, StreamState::Unavailable(_))).await;
    let StreamState::Unavailable(why) = &s.state else { unreachable!() };
    assert!(why.contains("404"), "{why}");
    // Not retried before the next relist period (10 intervals): the follower's state stays.
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < quiet_until {
        assert!(matches!(f.current().state, StreamState::Unavailable(_)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fake.requests(Endpoint::ApplicationStream), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_that_buffers_the_stream_means_polling() {
    let (fake, f, _, _) = follow(false).await;
    fake.set_stream_fault(Some(StreamFault::Unanswered));
    let s = until(&f, "unavailable", |f| matches!(f.state, StreamState::Unavailable(_))).await;
    let StreamState::Unavailable(why) = &s.state else { unreachable!() };
    assert!(why.contains("buffering"), "{why}");
    assert_eq!(fake.requests(Endpoint::ApplicationStream), 2, "two silent streams, then polling");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_ends_every_stream_at_once_gets_one_round_an_interval() {
    let interval = Duration::from_secs(4);
    let (fake, f, _, _) = follow_every(false, interval).await;
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    // From now on every stream sends its ADDED events, then half a line, and ends.
    fake.set_stream_fault(Some(StreamFault::CutLine));
    fake.break_streams(StreamFault::CutLine);
    let before = fake.requests(Endpoint::Applications) + fake.requests(Endpoint::ApplicationStream);
    let started = tokio::time::Instant::now();
    let window = interval * 4;
    // At any moment: at most a list and a stream an interval, after a burst of two rounds.
    // (Polling costs an application list and a cluster list an interval; the reconcile adds
    // its own two while the stream is down: twice polling in all.)
    while started.elapsed() < window {
        let spent =
            fake.requests(Endpoint::Applications) + fake.requests(Endpoint::ApplicationStream) - before;
        let intervals = started.elapsed().as_secs_f64() / interval.as_secs_f64();
        let bound = 2 * (intervals.floor() as u64 + 2);
        assert!(spent <= bound, "{spent} requests in {:?} (bound {bound})", started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reconnecting(&f.current()).is_some(), "{:?}", f.current().state);
}

/// Peak resident memory of this test process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_padded_events_during_a_held_relist_holds_no_lines() {
    // A 1 s interval: the first relist comes after 9 to 11 s.
    let (fake, f, _, _) = follow_every(false, Duration::from_secs(1)).await;
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    let lists = fake.requests(Endpoint::Applications);
    // Every list from now on is held open; the open stream is not.
    fake.set_fault(Some(fake_argocd::Fault::Latency(Duration::from_secs(120))));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fake.requests(Endpoint::Applications) == lists {
        assert!(tokio::time::Instant::now() < deadline, "no relist within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = peak_rss();
    // 300 MB of events while the relist is in flight, a megabyte each.
    fake.break_streams(StreamFault::Flood { lines: 300, pad: 1 << 20 });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // The flood is read (the stream stays open, its events are applied) ...
    loop {
        let now = f.current();
        assert!(now.state.is_streaming(), "{:?}", now.state);
        if fake.open_streams() == 1 && fake.bytes_sent(Endpoint::ApplicationStream) > 300 << 20 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the flood was not sent within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and what was kept for the replay is one entry per application, not the lines.
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 100 << 20, "peak RSS grew {} MiB during the flood", grown >> 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_login_is_not_tried_again_for_five_minutes() {
    // A 1 s interval: without the wait, a login every second or two (Argo CD locks the account
    // out after 5 failures in a row, for everyone using it, and the lockout would never end).
    let (fake, f, _, _) = follow_as(Some("wrong password"), Duration::from_secs(1)).await;
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    assert!(!format!("{:?}", s.state).contains("wrong password"), "{:?}", s.state);
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < quiet_until {
        assert_eq!(fake.requests(Endpoint::Session), 1, "one refused login, and no other");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn over_budget(f: &Followed) -> Option<&str> {
    match &f.state {
        StreamState::OverBudget(m) => Some(m),
        _ => None,
    }
}

/// 2 000 applications with names of about 100 bytes.
fn many_apps() -> Vec<App> {
    (0..2000)
        .map(|i| {
            App::to_server(
                format!("app-{i:04}-{}", "n".repeat(90)),
                format!("https://c{}.example.com", i % 10),
            )
        })
        .collect()
}

/// What one follower of `fake` charges to the budget once streaming.
async fn charge_of_one(fake: &FakeArgoCd) -> usize {
    let budget = WatchBudget::new(DEFAULT_MAX_WATCH_BYTES);
    let shared = Shared::detached(budget.clone());
    let (f, _, _) = follow_on(fake, &shared, None, Duration::from_secs(10), "probe");
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    budget.used()
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_past_the_process_budget_are_polled_and_say_so() {
    let fake = fake_with(many_apps()).await;
    let one = charge_of_one(&fake).await;
    assert!(one > 2000 * 100, "2 000 entries of 100 bytes charged {one} bytes");
    // Room for one index and a half: the second watch does not fit.
    let budget = WatchBudget::new(one + one / 2);
    let shared = Shared::detached(budget.clone());
    let interval = Duration::from_secs(1);
    let (first, _, _) = follow_on(&fake, &shared, None, interval, "first");
    until(&first, "the first streams", |f| f.state.is_streaming()).await;
    let (second, metrics, _) = follow_on(&fake, &shared, None, interval, "second");
    let s = until(&second, "the second is over the budget", |f| over_budget(f).is_some()).await;
    let why = over_budget(&s).unwrap_or_default();
    assert!(why.contains("--max-watch-bytes"), "{why}");
    assert!(budget.used() <= budget.limit(), "{} of {}", budget.used(), budget.limit());
    assert!(first.current().state.is_streaming(), "the first keeps its stream");
    let text = metrics.encode().expect("metrics");
    assert!(text.contains(r#"reason="WatchBudgetExceeded""#), "{text}");
    // The first goes: its charge is given back, and the second streams at its next attempt
    // (ten intervals on).
    drop(first);
    let second =
        until_within(&second, "the second streams", Duration::from_secs(20), |f| f.state.is_streaming())
            .await;
    assert_eq!(second.tally.total, 2000);
    assert!(budget.used() <= one + one / 10, "{} charged for one index of {one}", budget.used());
}

#[tokio::test(flavor = "multi_thread")]
async fn large_lines_are_charged_to_the_budget() {
    let fake = fake_with(apps("https://b.example.com")).await;
    let one = charge_of_one(&fake).await;
    // Room for the index and half a megabyte of lines: a flood of 1 MiB events does not fit.
    let budget = WatchBudget::new(one + (512 << 10));
    let shared = Shared::detached(budget.clone());
    let (f, _, _) = follow_on(&fake, &shared, None, Duration::from_secs(10), "flooded");
    until(&f, "streaming", |f| f.state.is_streaming()).await;
    fake.break_streams(StreamFault::Flood { lines: 50, pad: 1 << 20 });
    let s = until(&f, "over the budget", |f| over_budget(f).is_some()).await;
    assert!(over_budget(&s).is_some_and(|why| why.contains("in all (--max-watch-bytes)")), "{:?}", s.state);
    assert!(budget.used() <= budget.limit());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_stream_is_published_at_most_three_times_in_fifteen_seconds() {
    let (fake, f, _, _) = follow(false).await;
    until(&f, "streaming", streaming_with("https://b.example.com", 1)).await;
    let before = f.current().version;
    // Thirty changes in three seconds, each one a client must see.
    for n in 0..30 {
        let server = format!("https://moved-{n}.example.com");
        fake.update_application("argocd", "api", |a| a.dest_server = Some(server));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = f.current().version - before;
    assert!((1..=3).contains(&during), "{during} publications in the burst's 3 s");
    // The last word is published once the window allows, well within the next one.
    let s = until_within(
        &f,
        "the last change",
        Duration::from_secs(20),
        streaming_with("https://moved-29.example.com", 1),
    )
    .await;
    assert!(s.version - before <= 4, "{} publications for the burst", s.version - before);
}
