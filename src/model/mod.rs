//! The pure core: everything argomap concludes from what it fetched. No I/O, no clock, no
//! Kubernetes or HTTP client here; the controller and `argomap check` feed it and write out
//! what it returns.
//!
//! - `url`: the one normal form of a cluster URL;
//! - `destinations`: Argo CD's destinations and the applications aimed at each;
//! - `linkage`: ClusterMappings against destinations (linked, unlinked, orphaned, conflict);
//! - `status`: the statuses and conditions argomap writes, and whether a write is due;
//! - `visibility`: what a token lets argomap see (ClustersVisible, ApplicationsVisible);
//! - `size`: the caps on a status' lists, and the minimal status when one is refused;
//! - `stream`: watch mode's `ApplicationStream` condition;
//! - `staleness`: when a connected status no longer tells the truth;
//! - `evaluate`: one check's outcome turned into those statuses;
//! - `events`: the transitions worth a Kubernetes Event;
//! - `organization`: whether an instance's namespace is bound to its organization;
//! - `profiles`: ClusterProfiles (the Cluster Inventory API) as mappings and automatic links read them;
//! - `resolve`: a ClusterMapping's URL and cluster, from its spec or its ClusterProfile;
//! - `qovery`: the read API's view (Qovery's response shape);
//! - `fleet`: one platform cluster seen across instances: which instances deploy to it.

pub mod conditions;
pub mod destinations;
pub mod evaluate;
pub mod events;
pub mod fleet;
pub mod linkage;
pub mod organization;
pub mod profiles;
pub mod qovery;
pub mod resolve;
pub mod size;
pub mod staleness;
pub mod status;
pub mod stream;
pub mod url;
pub mod visibility;
