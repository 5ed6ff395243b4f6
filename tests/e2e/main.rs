//! The Helm chart on a real node (tests/node/), installed and operated with `helm` and
//! `kubectl` as a user would: the image built from the Dockerfile, the chart's pods with their
//! security context, in-cluster config with a projected token, probes called by the kubelet,
//! leader election between pods, rolling updates, the PodDisruptionBudget, `helm test`.
//! `make node-test` starts the node, builds and imports the images, and runs this; each test
//! has its own namespace and release. See README.md here for what cannot run on this node.

mod node;

use std::fmt::Write as _;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;

use node::*;

/// The scenario's statuses, as argomap writes them from inside the cluster.
fn scenario_reconciled(r: &Release) {
    eventually(Duration::from_secs(120), "the instance connected with its linked cluster", || {
        let i = json(&r.ns, "argocdinstance/staging")?;
        let reason = i["status"]["connection"]["reason"].as_str().unwrap_or_default();
        let linked = i["status"]["summary"]["linkedClusters"].as_u64().unwrap_or(0);
        if reason == "Connected" && linked >= 1 { Ok(()) } else { Err(format!("{reason} linked={linked}")) }
    });
    for (mapping, want) in [("staging-par", "Linked"), ("retired", "Orphaned")] {
        eventually(Duration::from_secs(60), &format!("mapping {mapping} {want}"), || {
            let m = json(&r.ns, &format!("clustermapping/{mapping}"))?;
            let state = m["status"]["state"].as_str().unwrap_or_default().to_string();
            if state == want { Ok(()) } else { Err(state) }
        });
    }
}

fn two_ready_pods(r: &Release) -> Vec<String> {
    eventually(Duration::from_secs(120), "two argomap pods Running and Ready", || {
        let pods = r.pods();
        if pods.len() == 2 && pods.iter().all(|(_, ready, _)| *ready) {
            Ok(pods.into_iter().map(|(name, ..)| name).collect())
        } else {
            Err(format!("{pods:?}"))
        }
    })
}

fn timestamp(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The Lease holders seen (when, who) and the distinct `lastCheckedAt` values, in order.
type Seen = (Vec<(Instant, Option<String>)>, Vec<String>);

/// Follows `lastCheckedAt` and the Lease holder every 100 ms while `during` runs; returns the
/// longest time without a Lease holder and the longest gap between two checks seen.
fn watch_handover(r: &Release, during: impl FnOnce()) -> (Duration, Duration, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let poller = {
        let (stop, seen) = (stop.clone(), seen.clone());
        let (ns, name) = (r.ns.clone(), r.name.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let holder = holder(&ns, &name);
                let checked = last_checked(&ns);
                let mut seen = seen.lock().expect("lock");
                seen.0.push((Instant::now(), holder));
                if let Some(c) = checked.filter(|c| seen.1.last() != Some(c)) {
                    seen.1.push(c);
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    during();
    // Past the rollout: one more check is seen after it.
    std::thread::sleep(Duration::from_secs(12));
    stop.store(true, Ordering::SeqCst);
    poller.join().expect("poller");
    let (holders, checks) = std::mem::take(&mut *seen.lock().expect("lock"));
    let mut leaderless = Duration::ZERO;
    let mut since: Option<Instant> = None;
    let mut sequence: Vec<String> = Vec::new();
    for (at, holder) in &holders {
        match holder {
            None => {
                since.get_or_insert(*at);
            }
            Some(h) => {
                if let Some(start) = since.take() {
                    leaderless = leaderless.max(at.duration_since(start));
                }
                if sequence.last() != Some(h) {
                    sequence.push(h.clone());
                }
            }
        }
    }
    if let Some(start) = since {
        leaderless = leaderless.max(start.elapsed());
    }
    let gap = checks
        .windows(2)
        .map(|w| {
            Duration::from_secs(timestamp(&w[1]).duration_since(timestamp(&w[0])).as_secs().max(0) as u64)
        })
        .max()
        .unwrap_or_default();
    (leaderless, gap, sequence)
}

#[test]
fn installed_with_defaults_reconciles_and_serves() {
    let r = Release::install("install", &[]);
    two_ready_pods(&r);
    scenario_reconciled(&r);

    // helm test: the chart's test Pod asks the Service for /readyz (through cluster DNS).
    helm(&["test", &r.name, "-n", &r.ns, "--timeout", "120s"]).unwrap_or_else(|e| panic!("helm test: {e}"));

    // The read API through the Service, with a projected token for argomap's audience.
    let url =
        format!("http://{}.{}.svc:8080/organization/{ORG}/argoCdDestinationClusterMapping", r.name, r.ns);
    let body = r
        .client(
            "read-api",
            &format!(
                r#"curl -sS --fail-with-body -H "Authorization: Bearer $(cat /var/run/argomap/token)" {url}"#
            ),
        )
        .unwrap_or_else(|e| panic!("read API: {e}"));
    let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(body.contains("d1809da7-220f-4a81-bd95-c8459b07f2fd"), "the linked cluster: {answer}");
    let status = r
        .client("read-api-anonymous", &format!("curl -sS -o /dev/null -w '%{{http_code}}' {url}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.trim(), "401", "no token, no answer");

    // /metrics through the Service, for a reader bound by metricsAuth.readers (the API
    // audience's token that every pod gets).
    let metrics = r
        .client(
            "metrics",
            &format!(
                r#"curl -sS --fail-with-body -H "Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" http://{}.{}.svc:8081/metrics"#,
                r.name, r.ns
            ),
        )
        .unwrap_or_else(|e| panic!("/metrics: {e}"));
    // The Service picks either replica; per-instance series are the leader's only.
    assert!(metrics.contains("argomap_build_info{"), "{}", &metrics[..metrics.len().min(500)]);
    for (pod, _, restarts) in r.pods() {
        assert_eq!(restarts, 0, "{pod} restarted");
    }
}

#[test]
fn deleting_the_leader_pod_hands_over() {
    let r = Release::install("leader", &[]);
    let pods = two_ready_pods(&r);
    scenario_reconciled(&r);
    let leader = eventually(Duration::from_secs(30), "a leader pod", || r.holder().ok_or("none".to_string()));
    assert!(pods.contains(&leader), "the Lease names a pod: {leader} of {pods:?}");
    let (leaderless, gap, sequence) = watch_handover(&r, || {
        must(&["-n", &r.ns, "delete", "pod", &leader, "--wait=false"]);
        eventually(Duration::from_secs(30), "another pod leads", || match r.holder() {
            Some(h) if h != leader => Ok(()),
            other => Err(format!("{other:?}")),
        });
    });
    eprintln!(
        "leader deleted: leaderless for {leaderless:?}, longest gap between checks {gap:?}, holders {sequence:?}"
    );
    assert!(leaderless <= Duration::from_secs(2), "no leader for {leaderless:?}");
    // interval 10s: the new leader checks as soon as it leads.
    assert!(gap <= Duration::from_secs(15), "lastCheckedAt gap {gap:?}");
    two_ready_pods(&r);
}

#[test]
fn upgrade_to_a_new_tag_rolls_with_one_leader_at_a_time() {
    let r = Release::install("upgrade", &[]);
    two_ready_pods(&r);
    scenario_reconciled(&r);
    let (_, next) = split(&image("argomap-next"));
    let chart = format!("{}/charts/argomap", env!("CARGO_MANIFEST_DIR"));
    let (leaderless, gap, sequence) = watch_handover(&r, || {
        helm(&[
            "upgrade",
            &r.name,
            &chart,
            "-n",
            &r.ns,
            "--reuse-values",
            "--set",
            &format!("image.tag={next}"),
            "--wait",
            "--timeout",
            "180s",
        ])
        .unwrap_or_else(|e| panic!("helm upgrade: {e}"));
    });
    eprintln!(
        "upgrade: leaderless for {leaderless:?}, longest gap between checks {gap:?}, holders {sequence:?}"
    );
    let pods = two_ready_pods(&r);
    for pod in &pods {
        let image =
            json(&r.ns, &format!("pod/{pod}")).expect("pod")["spec"]["containers"][0]["image"].clone();
        assert!(image.as_str().is_some_and(|i| i.ends_with(&next)), "{pod} runs {image}");
    }
    assert!(pods.contains(sequence.last().expect("a holder")), "a new pod leads: {sequence:?} of {pods:?}");
    assert!(leaderless <= Duration::from_secs(2), "no leader for {leaderless:?} (holders {sequence:?})");
    assert!(gap <= Duration::from_secs(15), "lastCheckedAt gap {gap:?}");
}

#[test]
fn eviction_through_the_disruption_budget_leaves_one_replica() {
    let r = Release::install("pdb", &[]);
    let pods = two_ready_pods(&r);
    let evict = |pod: &str| {
        let body = serde_json::json!({
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": r.ns}
        });
        node::run(
            "kubectl",
            &["create", "--raw", &format!("/api/v1/namespaces/{}/pods/{pod}/eviction", r.ns), "-f", "-"],
            Some(&body.to_string()),
        )
    };
    evict(&pods[0]).unwrap_or_else(|e| panic!("the first eviction: {e}"));
    let refused = evict(&pods[1]).expect_err("the second eviction must be refused");
    assert!(refused.contains("disruption budget"), "{refused}");
    let ready = r.pods().into_iter().filter(|(name, ready, _)| *ready && name == &pods[1]).count();
    assert_eq!(ready, 1, "the replica the budget kept still serves");
    two_ready_pods(&r);
}

#[test]
fn non_reading_clients_on_the_admin_port_do_not_restart_a_pod() {
    let r = Release::install("greedy", &[]);
    let pods = two_ready_pods(&r);
    let ip = json(&r.ns, &format!("pod/{}", pods[0])).expect("pod")["status"]["podIP"]
        .as_str()
        .expect("pod IP")
        .to_string();
    // 64 connections pipelining GET /metrics and never reading, held for longer than the
    // liveness probe needs to fail three times (3 x 10 s).
    let request = b"GET /metrics HTTP/1.1\r\nHost: argomap\r\n\r\n".repeat(64);
    let mut held = Vec::new();
    for _ in 0..64 {
        let Ok(mut c) =
            TcpStream::connect_timeout(&format!("{ip}:8081").parse().expect("addr"), Duration::from_secs(2))
        else {
            continue; // refused or closed by the per-client cap: that is the bound working
        };
        let _ = c.set_write_timeout(Some(Duration::from_millis(200)));
        for _ in 0..16 {
            if c.write_all(&request).is_err() {
                break;
            }
        }
        held.push(c);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(45) {
        for (pod, _, restarts) in r.pods() {
            assert_eq!(restarts, 0, "{pod} was restarted while non-reading clients held its admin port");
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(held);
    let events = kubectl(&["-n", &r.ns, "get", "events", "-o", "json"]).unwrap_or_default();
    assert!(!events.contains("Liveness probe failed"), "the kubelet saw a failed liveness probe");
    two_ready_pods(&r);
}

/// A JWT-shaped token the hostile servers accept (`{"sub":"argomap:apiKey"}`, no expiry).
const HOSTILE_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcmdvbWFwOmFwaUtleSJ9.aG9zdGlsZQ";

/// Peak memory of a pod's argomap container on this host: the most its memory cgroup (v1)
/// was charged, and the peak resident set of its process (`VmHWM`), in bytes.
fn peak_memory(ns: &str, pod: &str) -> Option<(u64, u64)> {
    let p = json(ns, &format!("pod/{pod}")).ok()?;
    let uid = p["metadata"]["uid"].as_str()?.to_string();
    let status = &p["status"]["containerStatuses"][0];
    let container = status["containerID"].as_str()?.trim_start_matches("containerd://").to_string();
    let qos = p["status"]["qosClass"].as_str()?.to_lowercase();
    let dir = format!("/sys/fs/cgroup/memory/kubepods/{qos}/pod{uid}/{container}");
    let charged =
        std::fs::read_to_string(format!("{dir}/memory.max_usage_in_bytes")).ok()?.trim().parse().ok()?;
    let pid = std::fs::read_to_string(format!("{dir}/cgroup.procs")).ok()?.lines().next()?.trim().to_string();
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some((charged, hwm * 1024))
}

#[test]
fn hostile_instances_at_the_caps_stay_under_the_memory_limit() {
    // The worst case a tenant can make with the chart's defaults (maxResponseBytes 128 MiB,
    // 8 concurrent checks, 512Mi limit): 8 Poll instances whose Argo CD answers every list
    // with 120 MiB, and 8 Watch instances whose Argo CD holds every list open 3 s and floods
    // each stream with events just under the 4 MiB line cap.
    let r = Release::install("memory", &[]);
    two_ready_pods(&r);
    let mut manifests = String::new();
    for (mode, args) in [("poll", "poll:125829120"), ("watch", "watch:24:4000000:3")] {
        manifests += &include_str!("hostile.yaml")
            .replace("@NS@", &r.ns)
            .replace("@FAKE_IMAGE@", &image("fake-argocd"))
            .replace("@HOSTILE@", mode)
            .replace("@ARGS@", args)
            .replace("@TOKEN@", HOSTILE_TOKEN);
        manifests += "\n---\n";
        for n in 0..8 {
            let _ = write!(
                manifests,
                "apiVersion: argomap.io/v1alpha1\nkind: ArgoCdInstance\nmetadata: {{name: {mode}-{n}, namespace: {ns}}}\n\
                 spec:\n  url: http://hostile-{mode}.{ns}.svc:8080\n  interval: 30s\n  \
                 agentCluster: {{id: 6a0f2c4e-{n:04}-4b7d-9e1f-3c5a7b9d1e2f, name: hostile, cloudProvider: SCW, type: MANAGED}}\n  \
                 applications: {{mode: {m}}}\n  credentials: {{secretRef: {{name: hostile-token}}}}\n---\n",
                ns = r.ns,
                m = if mode == "poll" { "Poll" } else { "Watch" },
            );
        }
    }
    manifests += &format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: hostile-token, namespace: {}, labels: {{argomap.io/credentials: \"true\"}}}}\n\
         stringData: {{token: {HOSTILE_TOKEN}}}\n",
        r.ns
    );
    node::run("kubectl", &["apply", "-f", "-"], Some(&manifests)).unwrap_or_else(|e| panic!("{e}"));

    // Three minutes: several rounds of every instance, and the Watch instances' relists.
    let start = Instant::now();
    let (mut peak, mut peak_rss) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(180) {
        let pods = json(&r.ns, "pods").expect("pods");
        for p in pods["items"].as_array().into_iter().flatten() {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            if !name.starts_with(&r.name) {
                continue;
            }
            let status = &p["status"]["containerStatuses"][0];
            assert_eq!(status["restartCount"].as_u64(), Some(0), "{name} restarted: {}", status["lastState"]);
            if let Some((charged, rss)) = peak_memory(&r.ns, name) {
                peak = peak.max(charged);
                peak_rss = peak_rss.max(rss);
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let reasons: Vec<String> = (0..8)
        .flat_map(|n| [format!("poll-{n}"), format!("watch-{n}")])
        .map(|i| {
            let reason = json(&r.ns, &format!("argocdinstance/{i}"))
                .map(|o| o["status"]["connection"]["reason"].as_str().unwrap_or("none").to_string())
                .unwrap_or_else(|e| e);
            format!("{i}: {reason}")
        })
        .collect();
    // The floods reached argomap: the leader counted the Watch instances' stream events.
    let leader = r.holder().expect("a leader");
    let ip = json(&r.ns, &format!("pod/{leader}")).expect("leader pod")["status"]["podIP"]
        .as_str()
        .expect("pod IP")
        .to_string();
    let metrics = r
        .client(
            "hostile-metrics",
            &format!(
                r#"curl -sS --fail-with-body -H "Authorization: Bearer $(cat /var/run/secrets/kubernetes.io/serviceaccount/token)" http://{ip}:8081/metrics"#
            ),
        )
        .unwrap_or_else(|e| panic!("/metrics of the leader: {e}"));
    let flooded: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("argomap_stream_events_total{") && l.contains("instance=\"watch-"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    eprintln!(
        "16 hostile instances for 180 s: peak {:.1} MiB charged to the container's cgroup of the 512 MiB limit, peak RSS {:.1} MiB; {flooded} stream events read from the Watch instances; {reasons:?}",
        peak as f64 / 1048576.0,
        peak_rss as f64 / 1048576.0
    );
    assert!(peak > 0 && peak_rss > 0, "the pods' memory cgroups and processes were read");
    assert!(peak < 512 << 20, "peak {peak} bytes");
    assert!(flooded >= 24.0, "the floods reached argomap ({flooded} events)");
    assert!(
        !reasons.iter().any(|r| r.ends_with(": none")),
        "every hostile instance was checked: {reasons:?}"
    );
}
