//! Answers that are already encoded (the read API's JSON, the metrics text), sent in small
//! frames so that what a slow client has not read yet stays accounted for: an answer holds its
//! share of the in-flight byte budget until its last frame is taken or the connection goes,
//! and the whole answer must be written within a deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

/// One frame of an answer: hyper asks for the next only once it has room to write it.
const FRAME: usize = 16 * 1024;

/// An encoded answer.
pub(super) struct Encoded {
    rest: Bytes,
    deadline: Pin<Box<Sleep>>,
    /// The answer's share of the in-flight byte budget, if it has one.
    _share: Option<OwnedSemaphorePermit>,
}

impl Encoded {
    /// `bytes` to be written within `deadline`, holding `share` until then.
    pub(super) fn new(bytes: Bytes, deadline: Duration, share: Option<OwnedSemaphorePermit>) -> Self {
        Encoded { rest: bytes, deadline: Box::pin(tokio::time::sleep(deadline)), _share: share }
    }

    /// A `200` with this body and `content_type`.
    pub(super) fn into_response_with(self, content_type: &'static str) -> Response {
        let mut response = Body::new(self).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

/// The answer was not written within its deadline: the connection is closed.
#[derive(Debug, thiserror::Error)]
#[error("the answer was not written within its deadline")]
pub(super) struct TooSlow;

impl http_body::Body for Encoded {
    type Data = Bytes;
    type Error = TooSlow;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TooSlow>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(TooSlow)));
        }
        let n = self.rest.len().min(FRAME);
        Poll::Ready(Some(Ok(Frame::data(self.rest.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    #[tokio::test]
    async fn frames_carry_the_whole_answer_and_the_share_is_held_until_the_end() {
        let budget = Arc::new(Semaphore::new(10));
        let share = budget.clone().try_acquire_many_owned(4).expect("share");
        let bytes = Bytes::from(vec![7u8; FRAME * 2 + 5]);
        let mut body = Encoded::new(bytes.clone(), Duration::from_secs(60), Some(share));
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(bytes.len() as u64));
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            assert_eq!(budget.available_permits(), 6, "held while frames remain");
            got.extend_from_slice(&frame.expect("frame").into_data().expect("data"));
        }
        assert_eq!(got, bytes);
        drop(body);
        assert_eq!(budget.available_permits(), 10, "given back with the body");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_past_its_deadline_fails() {
        let mut body = Encoded::new(Bytes::from(vec![0u8; FRAME * 3]), Duration::from_secs(5), None);
        body.frame().await.expect("first frame").expect("in time");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(body.frame().await.expect("a frame").is_err());
    }
}
