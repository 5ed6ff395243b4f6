//! The connection budget of one server: how many connections it holds, how many one client
//! address may hold, how long a write may wait for its client to read, and which connection
//! gives way when the budget is full.
//!
//! A fixed budget alone can be held by clients that connect and then do nothing useful (never
//! finish their headers, never read their answer). So when the budget is full, the connection
//! that has moved no byte for the longest time (at least [`EVICT_AFTER`]) and runs no request
//! handler is closed to make room: a client that reads and writes keeps its connection, a
//! stalled one gives way, and the kubelet's next probe is answered.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

/// The kernel send buffer of an accepted connection. Linux would grow it up to 4 MiB for a
/// client that does not read (kernel memory, charged to the pod's cgroup), and a write only
/// stalls once it is full: fixed, a non-reading client stalls after a few answers, and 1 024
/// connections hold at most 1 024 × 2 × this in the kernel. In-cluster round trips keep a
/// window this size well above 100 MB/s.
pub(super) const SEND_BUFFER: usize = 64 * 1024;

/// Fixes the send buffer of an accepted connection (best effort: the default stays on error).
pub(super) fn fix_send_buffer(stream: &tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(stream).set_send_buffer_size(SEND_BUFFER) {
        tracing::debug!(error = %e, "cannot set the send buffer of an HTTP connection");
    }
}

/// A connection must have moved no byte for this long before it may be closed for another.
pub(super) const EVICT_AFTER: Duration = Duration::from_secs(1);

/// Why a connection was closed by the budget (the `reason` label of
/// `argomap_http_connections_refused_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub(super) enum Refusal {
    /// Its client address already holds its share, none of it stalled.
    PerClient,
    /// It was stalled while the budget was full, and made room for a new one.
    Evicted,
}

/// The open connections of one server.
pub(super) struct Budget {
    max: usize,
    per_client: usize,
    epoch: Instant,
    table: Mutex<Table>,
    freed: Notify,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Activity>>,
    per_client: HashMap<IpAddr, usize>,
}

/// What the budget knows of one open connection.
pub(super) struct Activity {
    /// Milliseconds since the budget's epoch of its last byte read or written.
    last_progress: AtomicU64,
    /// Request handlers running on it (an answer being computed is not a stall).
    handling: AtomicUsize,
    evict: CancellationToken,
    /// Its client's budget key.
    client: IpAddr,
}

impl Activity {
    /// Marks a request handler as running until the guard is dropped.
    pub(super) fn handling(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::Relaxed);
        Handling(self.clone())
    }
}

/// A running request handler (see [`Activity::handling`]).
pub(super) struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One admitted connection: its place in the budget, given back on drop.
pub(super) struct Admission {
    budget: Arc<Budget>,
    id: u64,
    client: IpAddr,
    pub(super) activity: Arc<Activity>,
}

impl Admission {
    /// Completes when the budget closes this connection to make room for another.
    pub(super) async fn evicted(&self) {
        self.activity.evict.cancelled().await
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut table = self.budget.lock();
        table.open.remove(&self.id);
        if let Some(n) = table.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                table.per_client.remove(&self.client);
            }
        }
        drop(table);
        self.budget.freed.notify_one();
    }
}

impl Budget {
    pub(super) fn new(max: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Budget {
            max: max.max(1),
            per_client: per_client.max(1),
            epoch: Instant::now(),
            table: Mutex::new(Table::default()),
            freed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections open now.
    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Admits a connection from `client`, waiting while the budget is full and nothing can be
    /// evicted. A client that holds its share gives way with its own longest-stalled
    /// connection: a kubelet probing from the node's address, which a greedy client on that
    /// address shares, still gets in. `Err` when the client holds its share and none of it is
    /// stalled: the caller closes it at once. Every eviction made to admit it is passed to
    /// `on_evict`.
    pub(super) async fn admit(
        self: &Arc<Self>,
        client: IpAddr,
        on_evict: impl Fn(),
    ) -> Result<Admission, Refusal> {
        let client = client_key(client);
        loop {
            // Registered before the check, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            {
                let mut table = self.lock();
                if table.per_client.get(&client).copied().unwrap_or(0) >= self.per_client {
                    // One of its own on the way out is enough; else evict one, or refuse.
                    let leaving = table.open.values().any(|a| a.client == client && a.evict.is_cancelled());
                    if !leaving {
                        let Some(victim) = self.stalled_longest(&table, Some(client)) else {
                            return Err(Refusal::PerClient);
                        };
                        victim.evict.cancel();
                        on_evict();
                    }
                } else if table.open.len() < self.max {
                    let id = table.next_id;
                    table.next_id += 1;
                    let activity = Arc::new(Activity {
                        last_progress: AtomicU64::new(self.now_ms()),
                        handling: AtomicUsize::new(0),
                        evict: CancellationToken::new(),
                        client,
                    });
                    table.open.insert(id, activity.clone());
                    *table.per_client.entry(client).or_default() += 1;
                    return Ok(Admission { budget: self.clone(), id, client, activity });
                } else if let Some(victim) = self.stalled_longest(&table, None) {
                    victim.evict.cancel();
                    on_evict();
                }
            }
            // Either the victim's task gives its place back, or a stall becomes old enough.
            let _ = tokio::time::timeout(EVICT_AFTER / 4, freed).await;
        }
    }

    /// The connection (of `client`, when given) that has moved no byte for the longest time,
    /// at least [`EVICT_AFTER`], and runs no handler; not one already told to go.
    fn stalled_longest(&self, table: &Table, client: Option<IpAddr>) -> Option<Arc<Activity>> {
        // Nothing can have stalled that long before the budget is that old.
        let limit = self.now_ms().checked_sub(EVICT_AFTER.as_millis() as u64)?;
        table
            .open
            .values()
            .filter(|a| client.is_none_or(|c| a.client == c))
            .filter(|a| !a.evict.is_cancelled() && a.handling.load(Ordering::Relaxed) == 0)
            .map(|a| (a.last_progress.load(Ordering::Relaxed), a))
            .filter(|(at, _)| *at <= limit)
            .min_by_key(|(at, _)| *at)
            .map(|(_, a)| a.clone())
    }
}

/// The budget key of a client address: an IPv6 address cut to its /64 (one host can use a
/// whole /64), an IPv4-mapped one as IPv4.
pub(super) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// A connection's socket that records its progress for the budget and ends a write that
/// makes no progress for `write_timeout` (a client that does not read its answer).
pub(super) struct Metered<IO> {
    io: IO,
    budget: Arc<Budget>,
    activity: Arc<Activity>,
    write_timeout: Duration,
    /// Running while a write waits for the client.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> Metered<IO> {
    pub(super) fn new(io: IO, admission: &Admission, write_timeout: Duration) -> Self {
        Metered {
            io,
            budget: admission.budget.clone(),
            activity: admission.activity.clone(),
            write_timeout,
            stalled: None,
        }
    }

    fn progressed(&mut self) {
        self.activity.last_progress.store(self.budget.now_ms(), Ordering::Relaxed);
        self.stalled = None;
    }

    /// After a write returned `Pending`: `Err` once it has waited `write_timeout`.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let timeout = self.write_timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing of the answer for {timeout:?}"),
        )))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Metered<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.io).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() > before {
            self.activity.last_progress.store(self.budget.now_ms(), Ordering::Relaxed);
        }
        Poll::Ready(result)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Metered<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stall(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stall(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stall(cx).map_ok(|_| ()),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
