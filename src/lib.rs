//! argomap: maps the destination clusters of Argo CD servers to the clusters a platform knows,
//! and reports it as Kubernetes status, metrics, events and a read API.
//!
//! Layers, each importing only those below it:
//! - `app` (the `run` wiring) and `cli` (the subcommands);
//! - `controller` (watches, reconciles, status writes) and `server` (HTTP);
//! - `model`, the pure core: attribution, linkage, statuses, events, the Qovery view;
//! - `argocd` (the REST client, which knows nothing of CRDs) and `crd` (the two kinds);
//! - `metrics` (the Prometheus series, fed from model types);
//! - small leaves: `readiness`, `leader`, `shutdown`, `text`.
//!
//! `fixtures`, the builders tests start from, is compiled only for this crate's unit tests and
//! with the `test-support` feature, which the `argomap-test-support` crate (`tests/support`,
//! the integration suites' helpers) turns on: `cargo build` of the operator never has it.

pub mod app;
pub mod argocd;
pub mod cli;
pub mod controller;
pub mod crd;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod leader;
pub mod metrics;
pub mod model;
pub mod readiness;
pub mod server;
pub mod shutdown;
pub mod text;
