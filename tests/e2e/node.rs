//! The node as a user meets it: `kubectl` and `helm` against the kubeconfig that
//! tests/node/up.sh wrote, and the images that tests/node/images.sh imported.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The organization the test namespaces are bound to (label argomap.io/organization-id).
pub const ORG: &str = "0b4a0f54-2b5e-4d0c-9a57-6f0c5f7e0d11";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `make node-test`"))
}

/// The reference of an image images.sh imported (NAME: argomap, argomap-next, fake-argocd, curl).
pub fn image(name: &str) -> String {
    let path = PathBuf::from(env("ARGOMAP_NODE_IMAGES")).join(format!("{name}.ref"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

/// `repository` and `tag` of an image reference.
pub fn split(reference: &str) -> (String, String) {
    let (repo, tag) = reference.rsplit_once(':').expect("a tagged image");
    (repo.to_string(), tag.to_string())
}

/// Runs a command; its stdout, or its stderr as the error.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut cmd = Command::new(program);
    cmd.args(args).env("KUBECONFIG", env("ARGOMAP_NODE_KUBECONFIG"));
    cmd.stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() });
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

pub fn kubectl(args: &[&str]) -> Result<String, String> {
    run("kubectl", args, None)
}

pub fn must(args: &[&str]) -> String {
    kubectl(args).unwrap_or_else(|e| panic!("{e}"))
}

pub fn helm(args: &[&str]) -> Result<String, String> {
    run(&env("ARGOMAP_NODE_HELM"), args, None)
}

pub fn json(ns: &str, what: &str) -> Result<Value, String> {
    let out = kubectl(&["-n", ns, "get", what, "-o", "json"])?;
    serde_json::from_str(&out).map_err(|e| e.to_string())
}

/// Polls `probe` every 200 ms until it answers, failing the test after `deadline`.
pub fn eventually<T>(deadline: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) => {
                assert!(start.elapsed() < deadline, "{what}: not within {deadline:?}; last seen: {last}")
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Who holds Lease `lease` (the release's name) in `ns`; None while nobody does.
pub fn holder(ns: &str, lease: &str) -> Option<String> {
    let lease = json(ns, &format!("lease/{lease}")).ok()?;
    lease["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(str::to_string)
}

/// The scenario instance's `status.connection.lastCheckedAt`.
pub fn last_checked(ns: &str) -> Option<String> {
    let i = json(ns, "argocdinstance/staging").ok()?;
    i["status"]["connection"]["lastCheckedAt"].as_str().map(str::to_string)
}

/// A namespace with the scenario and one release of the chart in it; uninstalled on drop.
pub struct Release {
    pub ns: String,
    pub name: String,
}

impl Release {
    /// `helm install --wait` of charts/argomap with its defaults, the local image, this
    /// namespace watched, the helm test's image, and the reader allowed to read /metrics;
    /// then the scenario.
    pub fn install(test: &str, extra: &[&str]) -> Release {
        let ns = format!("e2e-{test}");
        let name = format!("argomap-{test}");
        let _ = kubectl(&["delete", "namespace", &ns, "--wait=true", "--timeout=60s"]);
        must(&["create", "namespace", &ns]);
        must(&["label", "namespace", &ns, &format!("argomap.io/organization-id={ORG}")]);
        let release = Release { ns, name };
        let (repo, tag) = split(&image("argomap"));
        let (test_repo, test_tag) = split(&image("curl"));
        let chart = format!("{}/charts/argomap", env!("CARGO_MANIFEST_DIR"));
        let sets = [
            format!("image.repository={repo}"),
            format!("image.tag={tag}"),
            format!("watchNamespaces={{{}}}", release.ns),
            format!("helmTest.image.repository={test_repo}"),
            format!("helmTest.image.tag={test_tag}"),
            format!("metricsAuth.readers[0].name=reader,metricsAuth.readers[0].namespace={}", release.ns),
        ];
        let mut args =
            vec!["install", &release.name, &chart, "-n", &release.ns, "--wait", "--timeout", "180s"];
        for s in &sets {
            args.extend(["--set", s.as_str()]);
        }
        args.extend(extra);
        helm(&args).unwrap_or_else(|e| panic!("{e}\n{}", release.describe()));
        // As a user would: the chart (and with it the CRDs) first, then the manifests.
        release.apply_scenario();
        release
    }

    fn apply_scenario(&self) {
        let seed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/demo/argocd-staging.json"))
                .expect("seed");
        let seed: Value = serde_json::from_str(&seed).expect("seed json");
        let manifests = include_str!("scenario.yaml")
            .replace("@NS@", &self.ns)
            .replace("@ORG@", ORG)
            .replace("@FAKE_IMAGE@", &image("fake-argocd"))
            .replace("@SEED@", &seed.to_string());
        run("kubectl", &["apply", "-f", "-"], Some(&manifests)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The release's argomap pods (name, ready, restarts).
    pub fn pods(&self) -> Vec<(String, bool, u64)> {
        let selector = format!("app.kubernetes.io/instance={},app.kubernetes.io/component!=test", self.name);
        let list =
            kubectl(&["-n", &self.ns, "get", "pods", "-l", &selector, "-o", "json"]).unwrap_or_default();
        let list: Value = serde_json::from_str(&list).unwrap_or(Value::Null);
        list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                    .map(|p| {
                        let status = &p["status"]["containerStatuses"][0];
                        (
                            p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                            status["ready"].as_bool().unwrap_or(false),
                            status["restartCount"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Who holds the release's Lease (None while nobody does).
    pub fn holder(&self) -> Option<String> {
        holder(&self.ns, &self.name)
    }

    /// Runs a pod of the curl image with the reader's tokens (the API's audience and
    /// argomap's) and returns its output: `script` runs under `sh -c`.
    pub fn client(&self, name: &str, script: &str) -> Result<String, String> {
        let pod = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "restartPolicy": "Never",
                "serviceAccountName": "reader",
                "securityContext": {"runAsNonRoot": true, "runAsUser": 100, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "client", "image": image("curl"), "command": ["sh", "-c", script],
                    "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "argomap-token", "mountPath": "/var/run/argomap", "readOnly": true}]
                }],
                "volumes": [{"name": "argomap-token", "projected": {"sources": [
                    {"serviceAccountToken": {"audience": "argomap", "expirationSeconds": 3600, "path": "token"}}
                ]}}]
            }
        });
        let _ = kubectl(&["-n", &self.ns, "delete", "pod", name, "--wait=true"]);
        run("kubectl", &["apply", "-f", "-"], Some(&pod.to_string()))?;
        let phase = eventually(Duration::from_secs(90), &format!("pod {name} done"), || {
            let p = json(&self.ns, &format!("pod/{name}"))?;
            match p["status"]["phase"].as_str() {
                Some(done @ ("Succeeded" | "Failed")) => Ok(done.to_string()),
                other => Err(format!("{other:?}")),
            }
        });
        let logs = kubectl(&["-n", &self.ns, "logs", name])?;
        if phase == "Succeeded" { Ok(logs) } else { Err(logs) }
    }

    /// What a failed step needs to be understood: pods, events, the argomap pods' last logs.
    pub fn describe(&self) -> String {
        let mut out =
            kubectl(&["-n", &self.ns, "get", "pods,argocdinstances,clustermappings,lease", "-o", "wide"])
                .unwrap_or_else(|e| e);
        out += &kubectl(&["-n", &self.ns, "get", "events", "--sort-by=.lastTimestamp"]).unwrap_or_else(|e| e);
        for (pod, ..) in self.pods() {
            out += &format!("--- logs of {pod} (tail)\n");
            out += &kubectl(&["-n", &self.ns, "logs", &pod, "--tail=30"]).unwrap_or_else(|e| e);
        }
        out
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
        let _ = helm(&["uninstall", &self.name, "-n", &self.ns, "--wait", "--timeout", "60s"]);
        let _ = kubectl(&["delete", "namespace", &self.ns, "--wait=false"]);
    }
}
