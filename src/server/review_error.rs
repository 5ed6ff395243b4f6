//! Why a review of a read-API caller (its TokenReview or SubjectAccessReview) has no answer.
//! A module of its own so that `auth`, which makes the reviews, and `error`, which turns a
//! failed one into a response, both read it and neither imports the other.

#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
pub enum ReviewError {
    #[error("TokenReview failed: {0}")]
    #[strum(serialize = "ReviewFailed")]
    TokenReview(#[source] kube::Error),
    #[error("SubjectAccessReview failed: {0}")]
    #[strum(serialize = "ReviewFailed")]
    AccessReview(#[source] kube::Error),
    /// This client asked for more token reviews than its share.
    #[error("too many requests with new tokens from this address; retry later")]
    #[strum(serialize = "TooManyRequests")]
    RateLimited,
    /// Every review slot is taken.
    #[error("too many token reviews in flight; retry later")]
    #[strum(serialize = "TooManyRequests")]
    Busy,
}

impl ReviewError {
    /// Fixed label, the `error` member of the response body.
    pub fn category(&self) -> &'static str {
        self.into()
    }
}
