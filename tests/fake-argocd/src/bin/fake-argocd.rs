//! `fake-argocd`: serves one fake Argo CD, seeded from a JSON file, until SIGINT or SIGTERM.
//! Used by `make demo` (tests/demo/); handy to try `argomap check` or `argomap run` by hand.
//!
//! ```text
//! fake-argocd --seed tests/demo/argocd-prod.json [--addr 127.0.0.1:0]
//!             [--url-file PATH] [--token-file PATH] [--ca-file PATH] [--stats-file PATH]
//!             [--churn-per-minute N] [--hostile poll:BYTES | watch:LINES:PAD:HOLD_SECS]
//! ```
//!
//! It prints `url=...` on stdout once it listens (and writes the URL, with the root path and
//! no trailing newline, to `--url-file`). With `"account"` in the seed it mints an API token
//! for `<account>:apiKey`, accepts it, and writes it to `--token-file`. With `"tls": true`
//! it serves HTTPS with a fresh self-signed certificate whose PEM goes to `--ca-file`.
//! Files are written before `url=` is printed, so waiting for the URL file is enough.
//!
//! `--stats-file` gets the number of requests per endpoint, and under `"bytes"` the bytes each
//! sent on the wire, as JSON: rewritten every second while running (a benchmark reads it at the
//! start and end of its window) and once more on stopping.
//!
//! `--churn-per-minute N` changes N applications a minute, evenly spaced and in a fixed order
//! (round robin over the seed's applications): each moves to the cluster after its own in the
//! seed's `clusters` (its URL read with a trailing `/` ignored, as Argo CD does, or its name), so
//! every change is one a client must see; open application streams get a `MODIFIED` event. It
//! needs two clusters in the seed. `--health-churn-per-minute N` changes N applications' health
//! and sync a minute (round robin: Degraded and OutOfSync, then back to Healthy and Synced).
//!
//! `--hostile` makes it a hostile server at argomap's caps, for the memory test on a real node:
//! `poll:BYTES` answers every application list with a valid list of at least BYTES;
//! `watch:LINES:PAD:HOLD_SECS` holds every application list HOLD_SECS before answering (a
//! relist held open) and floods every application stream with LINES `MODIFIED` events of PAD
//! bytes each. Other requests (login, version, clusters) answer as usual.
//!
//! The seed (unknown keys are rejected):
//!
//! ```json
//! {
//!   "version": "v3.5.1+109ca7c", "rootPath": "", "tls": false,
//!   "account": "argomap", "tokenExpiresInDays": 30, "tokens": [],
//!   "users": [{"username": "argomap", "password": "..."}],
//!   "inClusterEnabled": true,
//!   "clusters": [{"server": "https://10.0.0.1:6443", "name": "prod", "connectionStatus": "Successful",
//!                 "applicationsCount": 3, "serverVersion": "v1.33.1", "project": null, "namespaces": [],
//!                 "labels": {}, "annotations": {}, "connectionMessage": null}],
//!   "applications": [{"name": "web", "namespace": "argocd", "project": "default",
//!                     "destServer": "https://10.0.0.1:6443", "destName": null, "destNamespace": "web",
//!                     "multiSource": false, "sync": "Synced", "health": "Healthy", "healthMessage": null}]
//! }
//! ```
//!
//! Every key is optional; a cluster needs `server`, an application `name`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use fake_argocd::{
    App, CONTROL_PLANE_NAMESPACE, Cluster, Endpoint, FakeArgoCd, Fault, Options, StreamFault, jwt,
};
use serde::Deserialize;

const USAGE: &str = "usage: fake-argocd --seed FILE [--addr HOST:PORT] [--url-file PATH] \
                     [--token-file PATH] [--ca-file PATH] [--stats-file PATH] [--churn-per-minute N] [--health-churn-per-minute N] \
                     [--hostile poll:BYTES | watch:LINES:PAD:HOLD_SECS]";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Seed {
    version: Option<String>,
    #[serde(default)]
    root_path: String,
    #[serde(default)]
    tls: bool,
    /// Local account whose API token (`<account>:apiKey`) is minted and accepted.
    account: Option<String>,
    token_expires_in_days: Option<u32>,
    /// Further bearer tokens accepted verbatim (must be JWT-shaped to be looked at).
    #[serde(default)]
    tokens: Vec<String>,
    #[serde(default)]
    users: Vec<User>,
    #[serde(default = "yes")]
    in_cluster_enabled: bool,
    #[serde(default)]
    clusters: Vec<SeedCluster>,
    #[serde(default)]
    applications: Vec<SeedApp>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedCluster {
    server: String,
    #[serde(default)]
    name: String,
    connection_status: Option<String>,
    #[serde(default)]
    applications_count: i64,
    server_version: Option<String>,
    project: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    connection_message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedApp {
    name: String,
    namespace: Option<String>,
    project: Option<String>,
    dest_server: Option<String>,
    dest_name: Option<String>,
    dest_namespace: Option<String>,
    #[serde(default)]
    multi_source: bool,
    sync: Option<String>,
    health: Option<String>,
    health_message: Option<String>,
}

impl From<SeedCluster> for Cluster {
    fn from(c: SeedCluster) -> Cluster {
        let base = Cluster::new(c.server, c.name);
        Cluster {
            connection_status: c.connection_status.unwrap_or(base.connection_status.clone()),
            applications_count: c.applications_count,
            server_version: c.server_version.or(base.server_version.clone()),
            project: c.project,
            namespaces: c.namespaces,
            labels: c.labels,
            annotations: c.annotations,
            connection_message: c.connection_message,
            ..base
        }
    }
}

impl From<SeedApp> for App {
    fn from(a: SeedApp) -> App {
        let dest_namespace = a.dest_namespace.or_else(|| Some(a.name.clone()));
        App {
            name: a.name,
            namespace: a.namespace.unwrap_or_else(|| CONTROL_PLANE_NAMESPACE.to_owned()),
            project: a.project.unwrap_or_else(|| "default".to_owned()),
            dest_server: a.dest_server,
            dest_name: a.dest_name,
            dest_namespace,
            multi_source: a.multi_source,
            sync_status: a.sync.unwrap_or_else(|| "Synced".to_owned()),
            health_status: a.health.unwrap_or_else(|| "Healthy".to_owned()),
            health_message: a.health_message.unwrap_or_default(),
        }
    }
}

#[derive(Default)]
struct Args {
    seed: Option<PathBuf>,
    addr: Option<SocketAddr>,
    url_file: Option<PathBuf>,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    /// Requests and bytes per endpoint, as JSON (the benchmarks count them).
    stats_file: Option<PathBuf>,
    /// Applications moved to another destination per minute.
    churn_per_minute: u32,
    /// Applications whose health and sync change per minute.
    health_churn_per_minute: u32,
    /// The faults of a hostile server (`--hostile`).
    hostile: Option<(Fault, Option<StreamFault>)>,
}

/// `poll:BYTES` or `watch:LINES:PAD:HOLD_SECS` (see the module's doc).
fn hostile(value: &str) -> Result<(Fault, Option<StreamFault>), String> {
    let number = |s: &str| s.parse::<usize>().map_err(|e| format!("--hostile {value}: {e}"));
    match value.split(':').collect::<Vec<_>>().as_slice() {
        ["poll", bytes] => Ok((Fault::Oversized(number(bytes)?), None)),
        ["watch", lines, pad, hold] => Ok((
            Fault::Latency(std::time::Duration::from_secs(number(hold)? as u64)),
            Some(StreamFault::Flood { lines: number(lines)?, pad: number(pad)? }),
        )),
        _ => Err(format!("--hostile {value}: expected poll:BYTES or watch:LINES:PAD:HOLD_SECS")),
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(format!("{name} needs a value")),
        };
        match name.as_str() {
            "--seed" => args.seed = Some(value.into()),
            "--addr" => args.addr = Some(value.parse().map_err(|e| format!("--addr {value}: {e}"))?),
            "--url-file" => args.url_file = Some(value.into()),
            "--token-file" => args.token_file = Some(value.into()),
            "--ca-file" => args.ca_file = Some(value.into()),
            "--stats-file" => args.stats_file = Some(value.into()),
            "--churn-per-minute" => {
                args.churn_per_minute =
                    value.parse().map_err(|e| format!("--churn-per-minute {value}: {e}"))?;
            }
            "--health-churn-per-minute" => {
                args.health_churn_per_minute =
                    value.parse().map_err(|e| format!("--health-churn-per-minute {value}: {e}"))?;
            }
            "--hostile" => args.hostile = Some(hostile(&value)?),
            _ => return Err(format!("unknown argument {name}")),
        }
    }
    if args.seed.is_none() {
        return Err("--seed is required".to_owned());
    }
    Ok(args)
}

fn write(path: &Option<PathBuf>, what: &str, content: &str) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    // Write to a temporary name, then rename: a reader never sees a partial file.
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    std::fs::write(&tmp, content)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("writing the {what} to {}: {e}", path.display()))
}

async fn run(args: Args) -> Result<(), String> {
    let seed_path = args.seed.expect("checked");
    let text = std::fs::read_to_string(&seed_path).map_err(|e| format!("{}: {e}", seed_path.display()))?;
    let seed: Seed = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", seed_path.display()))?;

    let defaults = Options::default();
    let opts = Options {
        tls: seed.tls,
        version: seed.version.unwrap_or(defaults.version.clone()),
        root_path: seed.root_path,
        users: seed.users.into_iter().map(|u| (u.username, u.password)).collect(),
        addr: Some(args.addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))),
        ..defaults
    };
    let fake = FakeArgoCd::start(opts).await;
    fake.set_in_cluster_enabled(seed.in_cluster_enabled);
    let clusters: Vec<Cluster> = seed.clusters.into_iter().map(Cluster::from).collect();
    fake.set_clusters(clusters.clone());
    let apps: Vec<App> = seed.applications.into_iter().map(App::from).collect();
    fake.set_applications(apps.clone());
    for token in &seed.tokens {
        fake.add_token(token);
    }

    if let Some(account) = &seed.account {
        let exp = seed.token_expires_in_days.map(|days| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            i64::try_from(now.as_secs()).unwrap_or(0) + i64::from(days) * 24 * 60 * 60
        });
        let token = jwt(&format!("{account}:apiKey"), exp);
        fake.add_token(&token);
        write(&args.token_file, "token", &token)?;
    } else if args.token_file.is_some() {
        return Err("--token-file needs \"account\" in the seed".to_owned());
    }
    match (fake.ca_pem(), &args.ca_file) {
        (Some(pem), file) => write(file, "CA certificate", &pem)?,
        (None, Some(_)) => return Err("--ca-file needs \"tls\": true in the seed".to_owned()),
        (None, None) => {}
    }
    let fake = std::sync::Arc::new(fake);
    if args.churn_per_minute > 0 && clusters.len() < 2 {
        return Err("--churn-per-minute needs two clusters in the seed".to_owned());
    }
    if args.churn_per_minute > 0 || args.health_churn_per_minute > 0 {
        tokio::spawn(churn(
            fake.clone(),
            clusters,
            apps,
            args.churn_per_minute,
            args.health_churn_per_minute,
        ));
    }
    if let Some((fault, stream_fault)) = args.hostile {
        // On the application list only: logins, version and clusters answer as usual, so
        // argomap reaches the list (and the stream).
        fake.set_fault_on(fault, &[Endpoint::Applications]);
        fake.set_stream_fault(stream_fault);
    }
    let url = fake.url();
    write(&args.url_file, "URL", &url)?;
    println!("url={url}");

    let mut every_second = tokio::time::interval(std::time::Duration::from_secs(1));
    let stopping = shutdown_signal();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            () = &mut stopping => break,
            _ = every_second.tick() => write(&args.stats_file, "request counts", &stats(&fake))?,
        }
    }
    eprintln!("fake-argocd: {url}: stopping");
    write(&args.stats_file, "request counts", &stats(&fake))?;
    Ok(())
}

/// Requests per endpoint, and under `"bytes"` the bytes each sent.
fn stats(fake: &FakeArgoCd) -> String {
    const ENDPOINTS: [(&str, Endpoint); 8] = [
        ("version", Endpoint::Version),
        ("session", Endpoint::Session),
        ("userinfo", Endpoint::UserInfo),
        ("clusters", Endpoint::Clusters),
        ("applications", Endpoint::Applications),
        ("stream", Endpoint::ApplicationStream),
        ("canI", Endpoint::CanI),
        ("other", Endpoint::Other),
    ];
    let mut counts: serde_json::Map<String, serde_json::Value> =
        ENDPOINTS.iter().map(|(name, ep)| ((*name).to_owned(), fake.requests(*ep).into())).collect();
    let bytes =
        ENDPOINTS.iter().map(|(name, ep)| ((*name).to_owned(), fake.bytes_sent(*ep).into())).collect();
    counts.insert("bytes".to_owned(), serde_json::Value::Object(bytes));
    serde_json::Value::Object(counts).to_string()
}

/// `per_minute` moves a minute, round robin over `apps`, each to the cluster after its own in
/// the seed's cluster list (found by URL, a trailing `/` ignored as Argo CD does, or by name), so
/// that every move changes which cluster the application counts for; and `health_per_minute`
/// health changes, round robin too, each application turning Degraded and OutOfSync, then back.
async fn churn(
    fake: std::sync::Arc<FakeArgoCd>,
    clusters: Vec<Cluster>,
    mut apps: Vec<App>,
    per_minute: u32,
    health_per_minute: u32,
) {
    if apps.is_empty() {
        return;
    }
    let cluster_of = |app: &App| {
        clusters.iter().position(|c| match (&app.dest_server, &app.dest_name) {
            (Some(url), _) => c.server.trim_end_matches('/') == url.trim_end_matches('/'),
            (None, Some(name)) => c.name == *name,
            (None, None) => false,
        })
    };
    let period = |n: u32| (n > 0).then(|| std::time::Duration::from_secs(60) / n);
    let ticker = |p: Option<std::time::Duration>| {
        let mut t = tokio::time::interval(p.unwrap_or(std::time::Duration::from_secs(3600)));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    };
    let (mut moves, mut flips) = (ticker(period(per_minute)), ticker(period(health_per_minute)));
    // The first ticks are immediate: start one period later.
    moves.tick().await;
    flips.tick().await;
    let (mut moved, mut flipped) = (0usize, 0usize);
    let mut degraded = vec![false; apps.len()];
    loop {
        tokio::select! {
            _ = moves.tick(), if per_minute > 0 => {
                let i = moved % apps.len();
                moved += 1;
                let at = cluster_of(&apps[i]).unwrap_or(i);
                let app = &mut apps[i];
                app.dest_server = Some(clusters[(at + 1) % clusters.len()].server.clone());
                app.dest_name = None;
                let to = app.dest_server.clone();
                fake.update_application(&app.namespace, &app.name, |a| {
                    a.dest_server = to;
                    a.dest_name = None;
                });
            }
            _ = flips.tick(), if health_per_minute > 0 => {
                let i = flipped % apps.len();
                flipped += 1;
                degraded[i] = !degraded[i];
                let (sync, health, message) = if degraded[i] {
                    ("OutOfSync", "Degraded", "Deployment does not have minimum availability")
                } else {
                    ("Synced", "Healthy", "")
                };
                fake.set_application_status(&apps[i].namespace, &apps[i].name, sync, health, message);
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake-argocd: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-argocd: {e}");
            ExitCode::FAILURE
        }
    }
}
