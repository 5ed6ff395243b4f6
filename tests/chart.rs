//! The Helm chart and the Dockerfile against the crate (no cluster, no helm needed):
//! - the chart's CRDs are byte for byte `crds/` (which `argomap crds` generates);
//! - the chart's appVersion and the image's version label are the crate version;
//! - the Dockerfile builds with the same `cargo build` as `make build`;
//! - charts/argomap/README.md has a row for every value in values.yaml, and no other.
//!
//! Rendering, `helm lint` and the apiserver checks are in tests/chart/render-test.sh.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn yaml_files(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect()
}

#[test]
fn chart_crds_are_the_repository_crds() {
    let fix = "run `make chart-crds` (copies crds/*.yaml into charts/argomap/crds/; run `make crds` \
               first if the Rust types changed)";
    let repo = root().join("crds");
    let chart = root().join("charts/argomap/crds");
    let (want, got) = (yaml_files(&repo), yaml_files(&chart));
    assert!(!want.is_empty(), "crds/ holds no CRD");
    assert_eq!(got, want, "charts/argomap/crds/ must hold exactly the files of crds/: {fix}");
    for name in &want {
        let (a, b) = (fs::read(repo.join(name)).expect("read"), fs::read(chart.join(name)).expect("read"));
        assert!(a == b, "charts/argomap/crds/{name} differs from crds/{name}: {fix}");
    }
}

/// The value of a top-level `key: value` line of a YAML file, unquoted.
fn top_level(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"').to_string())
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart = read(&root().join("charts/argomap/Chart.yaml"));
    assert_eq!(
        top_level(&chart, "appVersion").as_deref(),
        Some(env!("CARGO_PKG_VERSION")),
        "charts/argomap/Chart.yaml appVersion must be the crate version (Cargo.toml); bump the chart's `version` too"
    );
}

#[test]
fn dockerfile_builds_like_make_build() {
    let dockerfile = read(&root().join("Dockerfile"));
    let makefile = read(&root().join("Makefile"));
    // `make build` (what the tests and CI build) ...
    let build = makefile
        .split("\nbuild:")
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .map(str::trim)
        .expect("Makefile has a build: target with a recipe");
    assert_eq!(
        build, "$(CARGO) build --release --locked",
        "Makefile build recipe changed: update the Dockerfile too"
    );
    // ... is what the image ships, restricted to the one binary.
    assert!(
        dockerfile.contains("cargo build --release --locked --bin argomap"),
        "the Dockerfile must build with `cargo build --release --locked --bin argomap`, as make build does"
    );
    assert!(dockerfile.contains("ENTRYPOINT [\"/argomap\"]"), "ENTRYPOINT must be /argomap");
    assert!(
        dockerfile.contains("USER 65532:65532"),
        "the image must run as 65532, as the chart's securityContext says"
    );
    let version = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG VERSION="))
        .expect("Dockerfile has ARG VERSION=");
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "Dockerfile ARG VERSION (OCI label) must be the crate version"
    );
}

/// Objects whose content is a Kubernetes type, documented as one value.
const OPAQUE: &[&str] =
    &["podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe"];

fn value_paths(prefix: &str, value: &serde_yaml::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_yaml::Value::Mapping(m) if !m.is_empty() && !OPAQUE.contains(&prefix) => {
            for (k, v) in m {
                let k = k.as_str().expect("string keys in values.yaml");
                let path = if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
                value_paths(&path, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

#[test]
fn chart_readme_documents_every_value() {
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read(&root().join("charts/argomap/values.yaml"))).expect("values.yaml parses");
    let mut want = BTreeSet::new();
    value_paths("", &values, &mut want);
    let readme = read(&root().join("charts/argomap/README.md"));
    // Rows of the table under "## Values": | `path` | type | default | description |
    let section = readme.split_once("\n## Values\n").map(|(_, s)| s).expect("README has a ## Values section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(path, _)| path.to_string())
        .collect();
    let missing: Vec<_> = want.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&want).collect();
    assert!(missing.is_empty(), "values without a row in charts/argomap/README.md: {missing:?}");
    assert!(stale.is_empty(), "rows in charts/argomap/README.md for values that do not exist: {stale:?}");
}
