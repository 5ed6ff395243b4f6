//! Who may read what: the bearer token is checked with a TokenReview (for the audiences of the
//! endpoint asked), then a SubjectAccessReview asks whether its user may `list
//! argocdinstances.argomap.io` (the read API; the contract's "VIEWER role"), first
//! cluster-wide, else per namespace, or `get` the non-resource URL `/metrics` (the admin
//! server's metrics, when authenticated scraping is on, as kube-rbac-proxy does). Answers are
//! kept for a short time in bounded caches keyed by the SHA-256 of the token (never the
//! token), and concurrent requests with one token share one review.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::http::{HeaderMap, header};
use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use secrecy::{ExposeSecret, SecretString};

use std::net::IpAddr;
use std::num::NonZeroU32;

use tokio::sync::Semaphore;

use super::HttpConfig;
use super::connections::client_key;
use super::error::ApiError;
use super::review_error::ReviewError;
use crate::crd::GROUP;

/// The resource a caller must be allowed to `list` to see an instance.
pub const RESOURCE: &str = "argocdinstances";

/// The authenticated user of a token, as TokenReview tells it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct User {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<UserInfo> for User {
    fn from(u: UserInfo) -> Self {
        User {
            username: u.username.unwrap_or_default(),
            uid: u.uid,
            groups: u.groups.unwrap_or_default(),
            extra: u.extra.unwrap_or_default(),
        }
    }
}

/// Authentication and authorization of read-API callers; Kubernetes reviews in production
/// ([`KubeReviewer`]), a fake in tests.
pub trait Reviewer: Send + Sync + 'static {
    /// The token's user; `Ok(None)` when the token is not valid for one of `audiences` (none:
    /// the API server's own).
    fn authenticate<'a>(
        &'a self,
        token: &'a SecretString,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>>;
    /// Whether `user` may do what `question` asks.
    fn can<'a>(&'a self, user: &'a User, question: &'a Question) -> BoxFuture<'a, Result<bool, ReviewError>>;
}

/// What a caller must be allowed to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Question {
    /// `list argocdinstances.argomap.io` in a namespace (`None`: in every namespace).
    ListInstances(Option<String>),
    /// `get` a non-resource URL (`/metrics`).
    GetPath(&'static str),
}

/// TokenReview and SubjectAccessReview against the API server. Needs `create` on
/// `tokenreviews.authentication.k8s.io` and `subjectaccessreviews.authorization.k8s.io`.
#[derive(Clone)]
pub struct KubeReviewer {
    client: kube::Client,
}

impl KubeReviewer {
    pub fn new(client: kube::Client) -> Self {
        KubeReviewer { client }
    }
}

/// The audience read-API tokens are issued for by default (`kubectl create token SA --audience
/// argomap`, or a projected token): such a token is refused by the API server itself, so
/// whoever sees it on its way to argomap cannot use it there.
pub const DEFAULT_AUDIENCE: &str = "argomap";

impl Reviewer for KubeReviewer {
    fn authenticate<'a>(
        &'a self,
        token: &'a SecretString,
        audiences: &'a [String],
    ) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
        Box::pin(async move {
            let audiences = (!audiences.is_empty()).then(|| audiences.to_vec());
            let review = TokenReview {
                // A token of none of these audiences is not authenticated.
                spec: TokenReviewSpec { token: Some(token.expose_secret().to_owned()), audiences },
                ..Default::default()
            };
            let api: Api<TokenReview> = Api::all(self.client.clone());
            let answer =
                api.create(&PostParams::default(), &review).await.map_err(ReviewError::TokenReview)?;
            Ok(answer.status.filter(|s| s.authenticated == Some(true)).and_then(|s| s.user).map(User::from))
        })
    }

    fn can<'a>(&'a self, user: &'a User, question: &'a Question) -> BoxFuture<'a, Result<bool, ReviewError>> {
        Box::pin(async move {
            let (resource_attributes, non_resource_attributes) = match question {
                Question::ListInstances(namespace) => (
                    Some(ResourceAttributes {
                        verb: Some("list".into()),
                        group: Some(GROUP.into()),
                        resource: Some(RESOURCE.into()),
                        namespace: namespace.clone(),
                        ..Default::default()
                    }),
                    None,
                ),
                Question::GetPath(path) => (
                    None,
                    Some(NonResourceAttributes { verb: Some("get".into()), path: Some((*path).into()) }),
                ),
            };
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.username.clone()),
                    uid: user.uid.clone(),
                    groups: Some(user.groups.clone()),
                    extra: Some(user.extra.clone()),
                    resource_attributes,
                    non_resource_attributes,
                },
                ..Default::default()
            };
            let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
            let answer =
                api.create(&PostParams::default(), &review).await.map_err(ReviewError::AccessReview)?;
            Ok(answer.status.is_some_and(|s| s.allowed))
        })
    }
}

/// How long a token that was valid is remembered as such (see [`Access`]'s `known`).
const KNOWN_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The most SubjectAccessReviews one request may cause (one per namespace of the organization,
/// for a caller without a cluster-wide grant).
pub(super) const MAX_NAMESPACE_REVIEWS: usize = 32;

pub(super) type TokenKey = [u8; 32];

/// SHA-256 of the token: the cache key, so no token is kept in memory beyond its request.
pub(super) fn token_key(token: &SecretString) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.expose_secret().as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref()); // SHA-256 is always 32 bytes
    key
}

/// Requests that need a TokenReview, per client: the key is the address, an IPv6 address cut
/// to its /64 (one host can use a whole /64).
type ClientLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// The reviewer behind two short-lived bounded caches. `try_get_with` runs one review per key
/// while concurrent callers of that key wait for its answer; failures are not cached. A token
/// not in the cache costs a TokenReview, so those requests are bounded twice: per client
/// address ([`HttpConfig::reviews_per_client`]) and in flight ([`HttpConfig::max_concurrent_reviews`]).
pub(super) struct Access {
    reviewer: Arc<dyn Reviewer>,
    /// The audiences tokens must be issued for (none: the API server's own).
    audiences: Vec<String>,
    users: moka::future::Cache<TokenKey, Option<Arc<User>>>,
    /// Tokens that were valid at their last review (for [`KNOWN_TOKEN_TTL`]). Their next
    /// review is not charged to the client address: behind a NAT many clients share one, and
    /// one of them sending made-up tokens must not get the others refused when their answers
    /// expire from `users`.
    known: moka::future::Cache<TokenKey, ()>,
    grants: moka::future::Cache<(TokenKey, Question), bool>,
    per_client: ClientLimiter,
    reviews: Semaphore,
}

impl Access {
    pub(super) fn new(reviewer: Arc<dyn Reviewer>, audiences: Vec<String>, config: &HttpConfig) -> Self {
        let (capacity, ttl) = (config.review_cache_capacity, config.review_ttl);
        let rate = NonZeroU32::new(config.reviews_per_client).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(rate.get().saturating_mul(2)).unwrap_or(rate);
        let quota = governor::Quota::per_second(rate).allow_burst(burst);
        Access {
            reviewer,
            audiences,
            users: moka::future::Cache::builder().max_capacity(capacity).time_to_live(ttl).build(),
            known: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(KNOWN_TOKEN_TTL)
                .build(),
            grants: moka::future::Cache::builder().max_capacity(capacity).time_to_live(ttl).build(),
            per_client: governor::RateLimiter::keyed(quota),
            reviews: Semaphore::new(config.max_concurrent_reviews.max(1)),
        }
    }

    /// Forgets clients whose bucket is full again, so the limiter's memory follows the clients
    /// of the last seconds, not every address ever seen. Called periodically by the server.
    pub(super) fn forget_idle_clients(&self) {
        self.per_client.retain_recent();
        self.per_client.shrink_to_fit();
    }

    pub(super) async fn authenticate(
        &self,
        token: &SecretString,
        client: Option<IpAddr>,
    ) -> Result<(TokenKey, Arc<User>), ApiError> {
        let key = token_key(token);
        let user = self
            .users
            .try_get_with(key, async move {
                // Only a token not reviewed recently gets here: it costs a TokenReview.
                if let Some(ip) = client
                    && !self.known.contains_key(&key)
                    && self.per_client.check_key(&client_key(ip)).is_err()
                {
                    return Err(ReviewError::RateLimited);
                }
                let _slot = self.reviews.try_acquire().map_err(|_| ReviewError::Busy)?;
                let user = self.reviewer.authenticate(token, &self.audiences).await?;
                match &user {
                    Some(_) => self.known.insert(key, ()).await,
                    None => self.known.invalidate(&key).await,
                }
                Ok(user.map(Arc::new))
            })
            .await
            .map_err(ApiError::Review)?;
        user.map(|u| (key, u)).ok_or(ApiError::InvalidToken)
    }

    async fn can(&self, key: TokenKey, user: &User, question: Question) -> Result<bool, ApiError> {
        self.grants
            .try_get_with((key, question.clone()), async {
                // Access reviews share the review slots with token reviews; they wait for one
                // (within the request's deadline) rather than fail, since the token is valid.
                let _slot = self.reviews.acquire().await.map_err(|_| ReviewError::Busy)?;
                self.reviewer.can(user, &question).await
            })
            .await
            .map_err(ApiError::Review)
    }

    /// Whether the caller may list instances in every namespace (one cluster-wide answer).
    pub(super) async fn allowed_everywhere(&self, key: TokenKey, user: &User) -> Result<bool, ApiError> {
        self.can(key, user, Question::ListInstances(None)).await
    }

    /// Whether the caller may `get` the non-resource URL `path`.
    pub(super) async fn may_get(
        &self,
        key: TokenKey,
        user: &User,
        path: &'static str,
    ) -> Result<bool, ApiError> {
        self.can(key, user, Question::GetPath(path)).await
    }

    /// The namespaces of `namespaces` where the caller may list instances.
    pub(super) async fn allowed(
        &self,
        key: TokenKey,
        user: &User,
        namespaces: BTreeSet<String>,
    ) -> Result<BTreeSet<String>, ApiError> {
        // One cluster-wide answer (a ClusterRoleBinding) covers every namespace at once.
        if self.allowed_everywhere(key, user).await? {
            return Ok(namespaces);
        }
        // One review per namespace, up to a bound: past it the caller needs a cluster-wide
        // grant. It is told what anyone without access is told (no oracle of an
        // organization's size); the operator learns why from the log.
        if namespaces.len() > MAX_NAMESPACE_REVIEWS {
            tracing::warn!(
                user = %user.username,
                namespaces = namespaces.len(),
                limit = MAX_NAMESPACE_REVIEWS,
                "read API: the organization spans more namespaces than one request reviews; the caller needs list on argocdinstances cluster-wide"
            );
            return Err(ApiError::Forbidden);
        }
        let answers: Vec<Result<(String, bool), ApiError>> = stream::iter(namespaces)
            .map(|ns| async move {
                self.can(key, user, Question::ListInstances(Some(ns.clone()))).await.map(|ok| (ns, ok))
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut allowed = BTreeSet::new();
        for answer in answers {
            let (ns, ok) = answer?;
            if ok {
                allowed.insert(ns);
            }
        }
        Ok(allowed)
    }
}

/// The token of `Authorization: Bearer <token>`. The contract's other scheme, `Token <token>`
/// (its ApiKeyAuth), is accepted too: either way the value is a Kubernetes token to review.
pub(super) fn bearer_token(headers: &HeaderMap) -> Result<SecretString, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(ApiError::MissingToken)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::InvalidToken)?;
    let token = token.trim();
    let known = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    if !known || token.is_empty() || token.contains(char::is_whitespace) {
        return Err(ApiError::InvalidToken);
    }
    Ok(SecretString::from(token))
}
