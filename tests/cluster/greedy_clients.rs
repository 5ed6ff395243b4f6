//! Unauthenticated and greedy clients against the real `argomap run` process: what they can take
//! of its memory, and that the kubelet's probes are answered all along (the probes of issue
//! "Anyone on the pod network", rerun as tests).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// A connection to `to` from the loopback address `127.0.0.<from>`: each its own client.
async fn connect_from(from: u8, to: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(([127, 0, 0, from], 0).into())?;
    socket.connect(to).await
}

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().expect("host:port")
}

/// `GET path` on a new connection: its status line, or `None` if not answered within `within`.
async fn status_line(to: SocketAddr, path: &str, within: Duration) -> Option<String> {
    tokio::time::timeout(within, async {
        let mut s = tokio::net::TcpStream::connect(to).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: argomap\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        String::from_utf8_lossy(&out).lines().next().map(str::to_owned)
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_clients_sending_huge_heads_cost_little_memory() {
    let client = client().await;
    let ns = namespace(&client, "greedy-heads").await;
    let op = Operator::start(&ns);
    let read_api = addr(&op.http);
    let (_, peak_before) = op.memory_kib();
    // 1 000 connections over 25 addresses, each sending 400 KB of a header that never ends,
    // all held open together.
    let chunk = vec![b'a'; 16 * 1024];
    let mut held = Vec::new();
    for n in 0..1000u32 {
        let from = 10 + (n % 25) as u8;
        let Ok(mut s) = connect_from(from, read_api).await else { continue };
        let chunk = chunk.clone();
        held.push(tokio::spawn(async move {
            if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ").await.is_err() {
                return s;
            }
            for _ in 0..25 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            s
        }));
    }
    let mut connections = Vec::new();
    for task in held {
        connections.push(task.await.expect("sender"));
    }
    let (rss, peak) = op.memory_kib();
    let growth_mib = peak.saturating_sub(peak_before) as f64 / 1024.0;
    eprintln!(
        "1 000 × 400 KB heads: peak RSS {:.1} → {:.1} MiB (+{growth_mib:.1}), now {:.1} MiB",
        peak_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    assert!(growth_mib < 64.0, "peak RSS grew {growth_mib:.1} MiB (bound: 64)");
    // Every one was told 431 (or cut off), and the server answers as before.
    assert_eq!(
        status_line(addr(&op.admin), "/healthz", Duration::from_secs(1)).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    drop(connections);
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_clients_that_never_read_metrics_leave_healthz_answering() {
    let client = client().await;
    let ns = namespace(&client, "greedy-readers").await;
    let op = Operator::start(&ns);
    let admin = addr(&op.admin);
    eventually(Duration::from_secs(20), "ready", || async move {
        match status_line(admin, "/readyz", Duration::from_secs(1)).await {
            Some(l) if l == "HTTP/1.1 200 OK" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // As many connections as the admin budget, each from its own address, pipelining
    // `GET /metrics` and never reading.
    let burst = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    let mut attack = Vec::new();
    for n in 0..64u8 {
        let mut s = connect_from(10 + n, admin).await.expect("connect");
        let burst = burst.clone();
        attack.push(tokio::spawn(async move {
            while s.write_all(burst.as_bytes()).await.is_ok() {}
            std::future::pending::<()>().await;
        }));
    }
    // Once the attack's connections stall (their buffers full), every probe is answered within
    // the second the kubelet allows, as long as the attack lasts.
    let started = Instant::now();
    while status_line(admin, "/healthz", Duration::from_secs(1)).await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/healthz not answered within 20 s of the attack"
        );
    }
    for n in 0..4 {
        let answer = status_line(admin, "/healthz", Duration::from_secs(1)).await;
        assert_eq!(answer.as_deref(), Some("HTTP/1.1 200 OK"), "probe {n} within 1 s");
    }
    let (rss, _) = op.memory_kib();
    assert!(rss < 128 * 1024, "RSS {rss} KiB under the attack");
    for task in attack {
        task.abort();
    }
}
