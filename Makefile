# argomap developer commands. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test lint fmt-check clippy unit cluster-test controlplane-up controlplane-down demo crds build bench

# Where tests/controlplane/up.sh keeps its state (and the kubeconfig the cluster suite uses).
CONTROLPLANE_DIR ?= $(or $(ARGOMAP_CONTROLPLANE_DIR),$(CURDIR)/target/controlplane)
export ARGOMAP_CONTROLPLANE_DIR := $(CONTROLPLANE_DIR)

## Everything CI checks: formatting, lints, unit tests, then the suite on a real kube-apiserver.
test: lint unit cluster-test

lint: fmt-check clippy

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Unit, contract, client, mocked-controller and CLI tests (no cluster needed).
unit:
	$(CARGO) test --workspace --locked

## Builds (once, cached) and starts kube-apiserver + etcd on loopback; installs the CRDs.
controlplane-up:
	bash tests/controlplane/up.sh

## Stops exactly what controlplane-up started.
controlplane-down:
	bash tests/controlplane/down.sh

## The cluster suite against the real apiserver (starts the control plane if needed).
cluster-test: controlplane-up
	set -a; . "$(CONTROLPLANE_DIR)/env"; set +a; \
	$(CARGO) test --locked --features cluster-tests --test cluster

## Regenerates crds/ from the Rust types (a test fails when they drift).
crds:
	$(CARGO) run --quiet --locked -- crds --dir crds

build:
	$(CARGO) build --release --locked

## Decode + attribution throughput (figures in BENCHMARKS.md).
bench:
	$(CARGO) bench --bench attribution
