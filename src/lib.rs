//! argomap: maps the destination clusters of Argo CD servers to the clusters a platform knows,
//! and reports it as Kubernetes status, metrics, events and a read API.

pub mod argocd;
pub mod check;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod events;
pub mod http;
pub mod leader;
pub mod mapping;
pub mod metrics;
pub mod qovery;
pub mod status;
