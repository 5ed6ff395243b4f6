//! Shared helpers of the cluster suite: the admin client of the test control plane, one
//! namespace per test, the real `argomap run` process, and polling with deadlines.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argomap::crd::{ArgoCdInstance, CloudProvider, ClusterMapping, KnownCluster, KubernetesType};
pub use argomap_test_support::fake;
use argomap_test_support::fixtures;
use fake_argocd::FakeArgoCd;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

pub fn kubeconfig_path() -> PathBuf {
    match std::env::var("ARGOMAP_TEST_KUBECONFIG") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/controlplane/kubeconfig"),
    }
}

pub async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!("no test control plane ({}: {e}); start one with `make controlplane-up`", path.display())
    });
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig of the test control plane");
    Client::try_from(config).expect("client")
}

/// A fresh namespace named after the test (the control plane has no namespace controller, so
/// namespaces are never deleted: names carry a random suffix), bound to the organization of
/// [`instance_json`]'s instances as an administrator binds a tenant's namespace.
pub async fn namespace(client: &Client, test: &str) -> String {
    namespace_labelled(client, test, Some(fixtures::ORG)).await
}

/// [`namespace`], bound to `organization` (`None`: to none).
pub async fn namespace_labelled(client: &Client, test: &str, organization: Option<&str>) -> String {
    let api = Api::<Namespace>::all(client.clone());
    let labels = organization
        .map(|org| [(argomap::model::organization::ORGANIZATION_LABEL.to_string(), org.to_string())].into());
    for _ in 0..5 {
        let name = format!("{test}-{:06x}", rand::random::<u32>() & 0xff_ffff);
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(name.clone()), labels: labels.clone(), ..Default::default() },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => return name,
            // A suffix drawn before (the control plane outlives test runs): draw again.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("create namespace {name}: {e}"),
        }
    }
    panic!("no free namespace name for {test} in 5 draws");
}

/// The real operator, watching one namespace; killed when dropped. Its log goes to
/// `target/cluster-logs/<namespace>.log`, printed when the test fails.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
    /// Base URL of its read API.
    pub http: String,
    /// Base URL of its admin server (health, readiness, metrics).
    pub admin: String,
}

impl Operator {
    pub fn start(namespace: &str) -> Operator {
        Self::start_with(namespace, &[])
    }

    pub fn start_with(namespace: &str, extra: &[&str]) -> Operator {
        Self::start_env(namespace, extra, &[])
    }

    pub fn start_env(namespace: &str, extra: &[&str], env: &[(&str, &str)]) -> Operator {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/cluster-logs");
        std::fs::create_dir_all(&dir).expect("log dir");
        // Replicas of one namespace are told apart by their POD_NAME.
        let pod =
            env.iter().find(|(k, _)| *k == "POD_NAME").map(|(_, v)| format!("-{v}")).unwrap_or_default();
        let log = dir.join(format!("{namespace}{pod}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        // Port 0: the kernel picks a free port at bind time and argomap logs it. (Picking one
        // here and passing it on races with every other test doing the same.)
        let mut child = Command::new(env!("CARGO_BIN_EXE_argomap"))
            .args([
                "run",
                "--namespace",
                namespace,
                "--http-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            // The fakes listen on loopback, which the URL policy denies by default; the policy's
            // own test passes its networks.
            .args(if extra.iter().any(|a| a.starts_with("--deny-url-cidrs")) {
                &[][..]
            } else {
                &["--deny-url-cidrs="][..]
            })
            .env("KUBECONFIG", kubeconfig_path())
            .env("RUST_LOG", "info,argomap=debug,kube=warn")
            .env("ARGOMAP_LOG_FORMAT", "text")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start argomap run");
        let addrs =
            ["read-api", "admin"].map(|server| listening_address(&log, server, Duration::from_secs(20)));
        let [Ok(http), Ok(admin)] = addrs else {
            let _ = child.kill();
            let _ = child.wait();
            print_log_tail("argomap", &log, 40);
            panic!("argomap run: {addrs:?}");
        };
        Operator { child, log, http: format!("http://{http}"), admin: format!("http://{admin}") }
    }
}

/// The address in argomap's "HTTP server listening addr=… server=<server>" log line, polled
/// for until `deadline`.
fn listening_address(log: &std::path::Path, server: &str, deadline: Duration) -> Result<String, String> {
    let start = Instant::now();
    let tag = format!("server={server}");
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let found = text
            .lines()
            .filter(|l| l.contains("HTTP server listening") && l.split_whitespace().any(|w| w == tag))
            .find_map(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next());
        if let Some(addr) = found {
            return Ok(addr.to_string());
        }
        if start.elapsed() > deadline {
            return Err(format!(
                "no \"HTTP server listening\" line in {} within {deadline:?}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Operator {
    /// SIGTERM, as Kubernetes stops a pod; the process must exit within 30 s (a pod's default
    /// grace period), else it is killed and the test fails.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
        panic!("argomap did not exit within 30 s of SIGTERM (log: {})", self.log.display());
    }

    /// Resident memory of the process now and at its peak, in KiB (`VmRSS`, `VmHWM`).
    #[allow(dead_code, reason = "not every suite sharing this file measures memory")]
    pub fn memory_kib(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Whether the process is still running (it did not crash).
    #[allow(dead_code, reason = "used by the fault matrix, which shares this file")]
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the process.
    #[allow(dead_code, reason = "used by the fault matrix, which shares this file")]
    pub fn signal(&self, signal: &str) {
        let status =
            Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal}");
    }

    /// The log so far (to look only at what follows a point in the test).
    #[allow(dead_code, reason = "used by the fault matrix, which shares this file")]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the process dies without releasing anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            print_log_tail("argomap", &self.log, 40);
        }
    }
}

/// Prints the last `lines` lines of a process's log, for a failing test.
pub fn print_log_tail(what: &str, log: &std::path::Path, lines: usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(lines).collect();
    eprintln!("--- {what} log ({}), last lines ---", log.display());
    for line in tail.into_iter().rev() {
        eprintln!("{line}");
    }
}

/// Polls `probe` every 200 ms until it returns `Some`, or fails after `deadline`, printing
/// what it last saw.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match probe().await {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(start.elapsed() < deadline, "{what}: not within {deadline:?}; last seen: {last}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn token_secret(client: &Client, ns: &str, name: &str, token: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {"argomap.io/credentials": "true"}},
        "stringData": {"token": token}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

/// The cluster suite's instance (the fixture, named for the test's namespace): token Secret
/// `argocd-readonly`, agent cluster `Production EU`, 5 s timeout. JSON, so tests can break it.
pub fn instance_json(name: &str, url: &str, interval: &str) -> serde_json::Value {
    let mut i = fixtures::instance("", name);
    i.metadata = ObjectMeta { name: Some(name.into()), ..Default::default() };
    i.spec.url = url.into();
    i.spec.credentials.secret_ref.name = "argocd-readonly".into();
    i.spec.agent_cluster.id = "0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a".into();
    i.spec.agent_cluster.name = "Production EU".into();
    i.spec.interval = interval.into();
    i.spec.timeout = "5s".into();
    serde_json::to_value(i).expect("instance JSON")
}

/// A mapping of `instance`'s destination `url` to the self-managed GCP cluster `Cluster <name>`.
pub fn mapping_json(name: &str, instance: &str, url: &str) -> serde_json::Value {
    let mut m = fixtures::mapping("", name, instance, url);
    m.metadata = ObjectMeta { name: Some(name.into()), ..Default::default() };
    m.spec.cluster = Some(KnownCluster {
        id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        name: format!("Cluster {name}"),
        cloud_provider: CloudProvider::Gcp,
        kind: KubernetesType::SelfManaged,
    });
    serde_json::to_value(m).expect("mapping JSON")
}

pub async fn create_instance(client: &Client, ns: &str, value: serde_json::Value) -> ArgoCdInstance {
    let i: ArgoCdInstance = serde_json::from_value(value).expect("instance");
    Api::<ArgoCdInstance>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &i)
        .await
        .expect("create instance")
}

pub async fn create_mapping(client: &Client, ns: &str, value: serde_json::Value) -> ClusterMapping {
    let m: ClusterMapping = serde_json::from_value(value).expect("mapping");
    Api::<ClusterMapping>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &m)
        .await
        .expect("create mapping")
}

/// The usual start of a test: its namespace, the standard fake Argo CD with its token Secret,
/// the given ClusterMappings (name, URL) and the ArgoCdInstance `prod` checking every `interval`.
pub struct Setup {
    pub client: Client,
    pub ns: String,
    pub argocd: FakeArgoCd,
    pub token: String,
}

pub async fn setup(test: &str, mappings: &[(&str, &str)], interval: &str) -> Setup {
    let client = client().await;
    let ns = namespace(&client, test).await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    for (name, url) in mappings {
        create_mapping(&client, &ns, mapping_json(name, "prod", url)).await;
    }
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), interval)).await;
    Setup { client, ns, argocd, token }
}

/// Starts the operator on the namespace and waits for `prod` to connect.
pub async fn operator_connected(client: &Client, ns: &str) -> (Operator, ArgoCdInstance) {
    let op = Operator::start(ns);
    let i = instance_where(client, ns, "prod", Duration::from_secs(20), "connected", connected).await;
    (op, i)
}

/// Waits until the instance's status satisfies `check`, returning it.
pub async fn instance_where(
    client: &Client,
    ns: &str,
    name: &str,
    deadline: Duration,
    what: &str,
    check: impl Fn(&ArgoCdInstance) -> bool,
) -> ArgoCdInstance {
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), ns);
    eventually(deadline, what, || {
        let api = api.clone();
        let check = &check;
        async move {
            let i = api.get(name).await.map_err(|e| e.to_string())?;
            if check(&i) { Ok(i) } else { Err(serde_json::to_string(&i.status).unwrap_or_default()) }
        }
    })
    .await
}

pub async fn mapping_state(client: &Client, ns: &str, name: &str) -> Option<String> {
    let m = Api::<ClusterMapping>::namespaced(client.clone(), ns).get(name).await.ok()?;
    m.status.and_then(|s| s.state).map(|s| s.as_str().to_string())
}

pub async fn mapping_where(client: &Client, ns: &str, name: &str, state: &str, deadline: Duration) {
    eventually(deadline, &format!("ClusterMapping {name} becomes {state}"), || async move {
        match mapping_state(client, ns, name).await {
            Some(s) if s == state => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

pub fn connected(i: &ArgoCdInstance) -> bool {
    i.status.as_ref().and_then(|s| s.connection.as_ref()).is_some_and(|c| c.reason.as_str() == "Connected")
}

pub fn reason(i: &ArgoCdInstance) -> Option<String> {
    i.status.as_ref().and_then(|s| s.connection.as_ref()).map(|c| c.reason.as_str().to_string())
}

/// The test control plane's admin token (system:masters: allowed everything, cluster-wide).
pub fn admin_token() -> String {
    let text = std::fs::read_to_string(kubeconfig_path()).expect("kubeconfig");
    let v: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig yaml");
    v["users"][0]["user"]["token"].as_str().expect("admin token").to_string()
}

/// A token for the read API (audience `argomap`) of ServiceAccount `argomap-test-reader` in
/// `default`, which may list ArgoCdInstances cluster-wide (created once, shared by the tests
/// that read every organization). Returns once the API server's authorizer says so.
pub async fn reader_token(client: &Client) -> String {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    const NAME: &str = "argomap-test-reader";
    let ignore_conflict = |r: Result<(), kube::Error>, what: &str| match r {
        Ok(()) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create {what}: {e}"),
    };
    let pp = PostParams::default();
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": NAME}})).expect("sa");
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), "default");
    ignore_conflict(accounts.create(&pp, &sa).await.map(|_| ()), "service account");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "rules": [{"apiGroups": ["argomap.io"], "resources": ["argocdinstances"], "verbs": ["list"]}]
    }))
    .expect("cluster role");
    ignore_conflict(
        Api::<ClusterRole>::all(client.clone()).create(&pp, &role).await.map(|_| ()),
        "cluster role",
    );
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": NAME},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": "default"}]
    }))
    .expect("binding");
    ignore_conflict(
        Api::<ClusterRoleBinding>::all(client.clone()).create(&pp, &binding).await.map(|_| ()),
        "cluster role binding",
    );
    let reviews = Api::<SubjectAccessReview>::all(client.clone());
    eventually(Duration::from_secs(10), "the reader's ClusterRoleBinding takes effect", || {
        let (reviews, pp) = (&reviews, &pp);
        async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(format!("system:serviceaccount:default:{NAME}")),
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some("list".into()),
                        group: Some("argomap.io".into()),
                        resource: Some("argocdinstances".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = reviews.create(pp, &review).await.map_err(|e| e.to_string())?;
            if answer.status.is_some_and(|s| s.allowed) { Ok(()) } else { Err("not yet allowed".into()) }
        }
    })
    .await;
    token_of(&accounts, NAME, &[argomap::server::DEFAULT_AUDIENCE]).await
}

/// A one-hour token of ServiceAccount `name` for `audiences` (none: the API server's own), from
/// the TokenRequest API.
pub async fn token_of(
    accounts: &Api<k8s_openapi::api::core::v1::ServiceAccount>,
    name: &str,
    audiences: &[&str],
) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let answer =
        accounts.create_token_request(name, &PostParams::default(), &request).await.expect("TokenRequest");
    answer.status.expect("TokenRequest status").token
}
