//! Watch mode's condition: where an instance's application stream stands, in the words of
//! the `ApplicationStream` condition (absent in poll mode). Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

pub use super::conditions::APPLICATION_STREAM;
use super::conditions::{Conditions, Status};

/// Where an instance's application stream stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// Listing applications and opening the stream (polling meanwhile).
    Connecting,
    /// Open: application changes come from it.
    Streaming,
    /// It failed and is opened again with backoff (polling meanwhile); why it failed.
    Reconnecting(String),
    /// This server or a proxy before it cannot stream; applications are polled until the next
    /// attempt. Why.
    Unavailable(String),
    /// More applications than a watch keeps: polled instead.
    TooManyApplications(String),
    /// The watches together hold what `--max-watch-bytes` allows, and this one did not fit:
    /// polled instead.
    OverBudget(String),
}

impl StreamState {
    /// Whether applications come from the stream (else the interval's check lists them).
    pub fn is_streaming(&self) -> bool {
        *self == StreamState::Streaming
    }

    pub fn reason(&self) -> &'static str {
        match self {
            StreamState::Connecting => "Connecting",
            StreamState::Streaming => "Streaming",
            StreamState::Reconnecting(_) => "Reconnecting",
            StreamState::Unavailable(_) => "StreamUnavailable",
            StreamState::TooManyApplications(_) => "TooManyApplications",
            StreamState::OverBudget(_) => "WatchBudgetExceeded",
        }
    }
}

/// The `ApplicationStream` condition. Its message never holds a time or a count, so a steady
/// stream writes nothing.
pub fn stream_condition(
    prev: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
    state: &StreamState,
    relist_every: u32,
) -> Condition {
    let polled = "applications are listed every interval meanwhile";
    let (status, message) = match state {
        StreamState::Connecting => {
            (Status::Unknown, format!("opening Argo CD's application stream; {polled}"))
        }
        StreamState::Streaming => (
            Status::True,
            format!(
                "following Argo CD's application stream; applications are listed again every {relist_every} intervals"
            ),
        ),
        StreamState::Reconnecting(why) => (Status::False, format!("{why}; reconnecting, and {polled}")),
        StreamState::Unavailable(why) => (
            Status::False,
            format!(
                "Argo CD's application stream cannot be used ({why}); applications are listed every interval, and the stream is tried again every {relist_every} intervals"
            ),
        ),
        StreamState::TooManyApplications(why) | StreamState::OverBudget(why) => (
            Status::False,
            format!(
                "{why}; applications are listed every interval instead, and the stream is tried again every {relist_every} intervals"
            ),
        ),
    };
    Conditions::new(prev, generation, now).make(APPLICATION_STREAM, status, state.reason(), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn each_state_has_its_reason_and_status() {
        let now = t("2026-12-02T10:00:00Z");
        let cases = [
            (StreamState::Connecting, "Unknown", "Connecting"),
            (StreamState::Streaming, "True", "Streaming"),
            (StreamState::Reconnecting("the stream ended".into()), "False", "Reconnecting"),
            (StreamState::Unavailable("404".into()), "False", "StreamUnavailable"),
            (StreamState::TooManyApplications("too many".into()), "False", "TooManyApplications"),
            (StreamState::OverBudget("no room".into()), "False", "WatchBudgetExceeded"),
        ];
        for (state, status, reason) in cases {
            let c = stream_condition(&[], Some(3), now, &state, 10);
            assert_eq!(
                (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
                (APPLICATION_STREAM, status, reason)
            );
            assert_eq!(c.observed_generation, Some(3));
            assert_eq!(state.is_streaming(), status == "True");
        }
        let c = stream_condition(&[], None, now, &StreamState::Unavailable("HTTP 404".into()), 10);
        assert!(c.message.contains("HTTP 404") && c.message.contains("every 10 intervals"), "{}", c.message);
    }

    #[test]
    fn a_steady_stream_keeps_its_condition_unchanged() {
        let first = stream_condition(&[], Some(1), t("2026-12-02T10:00:00Z"), &StreamState::Streaming, 10);
        let later = stream_condition(
            std::slice::from_ref(&first),
            Some(1),
            t("2026-12-02T11:00:00Z"),
            &StreamState::Streaming,
            10,
        );
        assert_eq!(first, later, "no time or count in it");
        let broken = stream_condition(
            std::slice::from_ref(&first),
            Some(1),
            t("2026-12-02T11:00:00Z"),
            &StreamState::Reconnecting("x".into()),
            10,
        );
        assert_ne!(broken.last_transition_time, first.last_transition_time);
    }
}
