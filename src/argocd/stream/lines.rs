//! The stream's body read line by line: each line within a cap, its buffer charged to the
//! watch budget once it outgrows a real server's events.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

use super::{IndexFull, StreamError};
use crate::argocd::budget::{Charge, OverBudget, WatchBudget};
use crate::argocd::decode::MAX_ITEM_BYTES;

/// A line buffer up to this size is not charged to the watch budget (a real Argo CD's
/// projected events are a few hundred bytes); past it, the buffer is charged as it grows.
pub const FREE_LINE_BYTES: usize = 64 * 1024;

/// Lines within [`MAX_ITEM_BYTES`], the buffer charged to the watch budget once it outgrows
/// [`FREE_LINE_BYTES`] (twice: the line is copied out when complete) and dropped once a long
/// line is through, so a stream that once sent a large event does not keep its buffer.
struct ChargedLines {
    codec: LinesCodec,
    charge: Charge,
}

/// Why a line could not be read.
#[derive(Debug)]
enum LineError {
    Codec(LinesCodecError),
    Budget(OverBudget),
}

impl From<std::io::Error> for LineError {
    fn from(e: std::io::Error) -> Self {
        LineError::Codec(LinesCodecError::Io(e))
    }
}

impl ChargedLines {
    fn charge_buffer(&mut self, buf: &bytes::BytesMut) -> Result<(), LineError> {
        let held = if buf.capacity() > FREE_LINE_BYTES { 2 * buf.capacity() } else { 0 };
        self.charge.resize(held).map_err(LineError::Budget)
    }

    fn release_long_buffer(&mut self, buf: &mut bytes::BytesMut) {
        if buf.is_empty() && buf.capacity() > FREE_LINE_BYTES {
            *buf = bytes::BytesMut::new();
            self.charge.resize(0).ok();
        }
    }
}

impl tokio_util::codec::Decoder for ChargedLines {
    type Item = String;
    type Error = LineError;

    fn decode(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<String>, LineError> {
        self.charge_buffer(buf)?;
        let line = self.codec.decode(buf).map_err(LineError::Codec)?;
        self.release_long_buffer(buf);
        Ok(line)
    }

    fn decode_eof(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<String>, LineError> {
        self.charge_buffer(buf)?;
        let line = self.codec.decode_eof(buf).map_err(LineError::Codec)?;
        self.release_long_buffer(buf);
        Ok(line)
    }
}

/// An open stream, read line by line within [`MAX_ITEM_BYTES`] a line.
pub struct AppStream {
    lines: FramedRead<
        StreamReader<BoxStream<'static, std::io::Result<bytes::Bytes>>, bytes::Bytes>,
        ChargedLines,
    >,
    /// Bytes seen at all: a stream that never sends one is likely held by a buffering proxy.
    pub any_bytes: bool,
}

impl AppStream {
    pub(in crate::argocd) fn new(resp: reqwest::Response) -> Self {
        let body: BoxStream<'static, std::io::Result<bytes::Bytes>> =
            resp.bytes_stream().map(|r| r.map_err(std::io::Error::other)).boxed();
        let codec = ChargedLines {
            codec: LinesCodec::new_with_max_length(MAX_ITEM_BYTES),
            charge: Charge::default(),
        };
        AppStream { lines: FramedRead::new(StreamReader::new(body), codec), any_bytes: false }
    }

    /// Charges the line buffer to `budget` from now on.
    pub fn charge_to(&mut self, budget: &Arc<WatchBudget>) {
        self.lines.decoder_mut().charge = Charge::new(budget);
    }

    /// The next line, waiting at most `stall`.
    pub async fn next_line(&mut self, stall: Duration) -> Result<String, StreamError> {
        match tokio::time::timeout(stall, self.lines.next()).await {
            Err(_) => Err(StreamError::Stalled(stall)),
            Ok(None) => Err(StreamError::Ended),
            Ok(Some(Ok(line))) => {
                self.any_bytes = true;
                Ok(line)
            }
            Ok(Some(Err(LineError::Codec(LinesCodecError::MaxLineLengthExceeded)))) => {
                Err(StreamError::Malformed(format!("an event larger than {} KiB", MAX_ITEM_BYTES >> 10)))
            }
            Ok(Some(Err(LineError::Codec(LinesCodecError::Io(e))))) => {
                Err(StreamError::Malformed(format!("reading the stream: {e}")))
            }
            Ok(Some(Err(LineError::Budget(e)))) => Err(StreamError::Full(IndexFull::Budget(e))),
        }
    }
}
