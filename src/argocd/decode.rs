//! Answers decoded while they arrive. A list answer (`{"metadata":…,"items":[…]}`) is cut
//! into its items as the bytes come in; each item is decoded from the buffer by serde_json
//! (its strings borrowed, not copied), handed to a sink and dropped before the next, so a
//! list of any length holds one item and one chunk at a time. The cutting needs no scanner
//! of its own: serde_json parses every value, and a value that runs past the bytes received
//! so far is parsed again once more have arrived. Small answers are read whole, within a cap.

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::de::SliceRead;

/// Cap on one item of a list: a projected application is a few hundred bytes, a whole one
/// (a server that ignores the projection) rarely more than a few hundred KiB.
pub const MAX_ITEM_BYTES: usize = 4 * 1024 * 1024;
/// Cap on everything of a list answer but its items (Argo CD sends `metadata` only), and on
/// a small answer (version, session, can-i).
pub const MAX_OTHER_BYTES: usize = 1024 * 1024;

/// An answer's body, decoded as it arrives.
pub trait BodyDecoder: Default + Send {
    type Output;
    /// The next bytes of the body (after gzip).
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String>;
    /// The body ended.
    fn finish(self) -> Result<Self::Output, String>;
}

/// A type an answer decodes into, and the decoder that builds it.
pub trait Decoded: Sized {
    type Decoder: BodyDecoder<Output = Self>;
}

/// A small answer, decoded once it is complete (at most [`MAX_OTHER_BYTES`]).
pub struct Whole<T> {
    body: Vec<u8>,
    _into: std::marker::PhantomData<fn() -> T>,
}

impl<T> Default for Whole<T> {
    fn default() -> Self {
        Whole { body: Vec::new(), _into: std::marker::PhantomData }
    }
}

impl<T: DeserializeOwned> BodyDecoder for Whole<T> {
    type Output = T;
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        if self.body.len() + chunk.len() > MAX_OTHER_BYTES {
            return Err(format!("the answer is larger than {} KiB", MAX_OTHER_BYTES >> 10));
        }
        self.body.extend_from_slice(chunk);
        Ok(())
    }
    fn finish(self) -> Result<T, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("{} (at line {} column {})", message(&e), e.line(), e.column()))
    }
}

/// Where the items of a list go, one at a time.
pub trait ItemSink: Default + Send {
    /// One item as decoded, borrowing from the body's bytes.
    type Item<'de>: Deserialize<'de>;
    type Output;
    /// Takes one item; an error ends the decoding (e.g. a list past its bound).
    fn add(&mut self, item: Self::Item<'_>) -> Result<(), String>;
    /// The list: `None` when `items` was `null` or absent (older servers send `null` for an
    /// empty projected list).
    fn finish(self, items_seen: bool) -> Self::Output;
}

/// Where the list decoder stands: the grammar of `{"key": value, …, "items": [item, …]}`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum At {
    /// Before the opening `{`.
    Start,
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,`: a key.
    Key,
    /// After a key: `:`. `items` tells whether the key was `items`.
    Colon { items: bool },
    /// A value; the `items` one may be an array, decoded item by item.
    Value { items: bool },
    /// After `[` of `items`: an item or `]`.
    FirstItem,
    /// After `,` in `items`: an item.
    Item,
    /// After an item: `,` or `]`.
    AfterItem,
    /// After a value: `,` or `}`.
    AfterValue,
    /// After the closing `}`: nothing but whitespace.
    End,
}

/// A list answer decoded item by item into `S`.
pub struct ListDecoder<S> {
    /// Bytes received and not consumed yet (an item or value in progress, then a chunk).
    buf: Vec<u8>,
    /// Bytes of the body consumed before `buf` (for messages).
    consumed: usize,
    at: At,
    /// Length `buf` must reach before a value that ran past its end is parsed again: twice
    /// what the last attempt saw, so a large value costs linear time, not quadratic.
    retry_at: usize,
    /// The cap on the value being waited for ([`MAX_ITEM_BYTES`] or [`MAX_OTHER_BYTES`]).
    waiting_cap: usize,
    /// Bytes of the answer that were not items, bounded by [`MAX_OTHER_BYTES`].
    other_bytes: usize,
    items_seen: bool,
    sink: S,
}

impl<S: ItemSink> Default for ListDecoder<S> {
    fn default() -> Self {
        ListDecoder {
            buf: Vec::new(),
            consumed: 0,
            at: At::Start,
            retry_at: 0,
            waiting_cap: usize::MAX,
            other_bytes: 0,
            items_seen: false,
            sink: S::default(),
        }
    }
}

/// What parsing one value from the bytes at hand gave.
enum Parsed<T> {
    /// The value, and the bytes it took.
    Done(T, usize),
    /// The bytes at hand end inside the value.
    Incomplete,
}

fn parse<'de, T: Deserialize<'de>>(bytes: &'de [u8], last: bool) -> Result<Parsed<T>, serde_json::Error> {
    let mut values = serde_json::Deserializer::new(SliceRead::new(bytes)).into_iter::<T>();
    match values.next() {
        // A value ending exactly where the bytes end may go on (a number, `1` then `2`).
        Some(Ok(_)) if !last && values.byte_offset() == bytes.len() => Ok(Parsed::Incomplete),
        Some(Ok(v)) => Ok(Parsed::Done(v, values.byte_offset())),
        Some(Err(e)) if e.is_eof() && !last => Ok(Parsed::Incomplete),
        Some(Err(e)) => Err(e),
        None if last => Err(serde::de::Error::custom("the body ended inside the list")),
        None => Ok(Parsed::Incomplete),
    }
}

/// What was wrong, in argomap's words: serde_json's own messages quote what the server sent
/// (`invalid type: string "…"`), which would carry a hostile server's text into status, Events
/// and logs. The position is left out too (it counts from where the value began: the decoder
/// names the position in the body instead).
fn message(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => "EOF while parsing a value".to_string(),
        serde_json::error::Category::Syntax => "not valid JSON".to_string(),
        serde_json::error::Category::Data => "JSON of another shape than Argo CD's".to_string(),
        serde_json::error::Category::Io => "unreadable".to_string(),
    }
}

impl<S: ItemSink> ListDecoder<S> {
    /// Decodes what `buf` holds as far as it goes; `last`: no more bytes will come.
    fn advance(&mut self, last: bool) -> Result<(), String> {
        if !last && self.buf.len() < self.retry_at {
            // Not parsed yet, but never held past its cap.
            return self.check_cap(0, self.waiting_cap);
        }
        self.retry_at = 0;
        self.waiting_cap = usize::MAX;
        let mut pos = 0;
        let result = self.advance_from(&mut pos, last);
        self.consumed += pos;
        self.buf.drain(..pos);
        result
    }

    fn advance_from(&mut self, pos: &mut usize, last: bool) -> Result<(), String> {
        loop {
            while self.buf.get(*pos).is_some_and(|b| b.is_ascii_whitespace()) {
                *pos += 1;
            }
            let Some(&byte) = self.buf.get(*pos) else {
                return match (last, self.at) {
                    (false, _) | (true, At::End) => Ok(()),
                    (true, _) => Err(self.error(*pos, "the body ended inside the list")),
                };
            };
            let rest = &self.buf[*pos..];
            let (next, used) = match self.at {
                At::Start if byte == b'{' => (At::FirstKey, 1),
                At::FirstKey if byte == b'}' => (At::End, 1),
                At::FirstKey | At::Key => {
                    match parse::<String>(rest, last).map_err(|e| self.error(*pos, &message(&e)))? {
                        Parsed::Done(key, used) => (At::Colon { items: key == "items" }, used),
                        Parsed::Incomplete => return self.wait(*pos, MAX_OTHER_BYTES),
                    }
                }
                At::Colon { items } if byte == b':' => (At::Value { items }, 1),
                At::Value { items: true } if byte == b'[' => {
                    self.items_seen = true;
                    (At::FirstItem, 1)
                }
                At::Value { items: true } if byte != b'n' => {
                    return Err(self.error(*pos, "`items` is neither a list nor null"));
                }
                // `items: null`, or another key's value: parsed (so the body is valid JSON) and
                // dropped.
                At::Value { .. } => {
                    match parse::<IgnoredAny>(rest, last).map_err(|e| self.error(*pos, &message(&e)))? {
                        Parsed::Done(_, used) => (At::AfterValue, used),
                        Parsed::Incomplete => return self.wait(*pos, MAX_OTHER_BYTES),
                    }
                }
                At::FirstItem if byte == b']' => (At::AfterValue, 1),
                At::FirstItem | At::Item => {
                    let used = match parse::<S::Item<'_>>(rest, last) {
                        Ok(Parsed::Done(item, used)) => {
                            let at = self.consumed + *pos;
                            self.sink.add(item).map_err(|e| format!("{e} (at byte {at} of the body)"))?;
                            Some(used)
                        }
                        Ok(Parsed::Incomplete) => None,
                        Err(e) => {
                            return Err(self.error(*pos, &format!("an item of the list: {}", message(&e))));
                        }
                    };
                    match used {
                        Some(used) => (At::AfterItem, used),
                        None => return self.wait(*pos, MAX_ITEM_BYTES),
                    }
                }
                At::AfterItem if byte == b',' => (At::Item, 1),
                At::AfterItem if byte == b']' => (At::AfterValue, 1),
                At::AfterValue if byte == b',' => (At::Key, 1),
                At::AfterValue if byte == b'}' => (At::End, 1),
                at => {
                    let expected = match at {
                        At::Start => "`{`",
                        At::Colon { .. } => "`:`",
                        At::AfterItem => "`,` or `]`",
                        At::AfterValue => "`,` or `}`",
                        _ => "nothing more",
                    };
                    return Err(
                        self.error(*pos, &format!("expected {expected}, found {:?}", char::from(byte)))
                    );
                }
            };
            if matches!(self.at, At::FirstKey | At::Key | At::Value { .. }) {
                self.count_other(used, *pos)?;
            }
            self.at = next;
            *pos += used;
        }
    }

    /// The bytes from `pos` end inside a value: keep them, up to `cap`, and parse again once
    /// twice as many are at hand.
    fn wait(&mut self, pos: usize, cap: usize) -> Result<(), String> {
        self.check_cap(pos, cap)?;
        // Counted from the start of `buf` once `advance` drained it up to `pos`.
        self.retry_at = 2 * (self.buf.len() - pos);
        self.waiting_cap = cap;
        Ok(())
    }

    fn check_cap(&self, pos: usize, cap: usize) -> Result<(), String> {
        if self.buf.len() - pos > cap {
            let what = if cap == MAX_ITEM_BYTES { "an item of the list" } else { "the list's other fields" };
            return Err(self.error(pos, &format!("{what} larger than {} KiB", cap >> 10)));
        }
        Ok(())
    }

    fn count_other(&mut self, used: usize, pos: usize) -> Result<(), String> {
        self.other_bytes += used;
        if self.other_bytes > MAX_OTHER_BYTES {
            let message = format!("the list's other fields larger than {} KiB", MAX_OTHER_BYTES >> 10);
            return Err(self.error(pos, &message));
        }
        Ok(())
    }

    fn error(&self, pos: usize, what: &str) -> String {
        format!("{what} (at byte {} of the body)", self.consumed + pos)
    }
}

impl<S: ItemSink> BodyDecoder for ListDecoder<S> {
    type Output = S::Output;
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.buf.extend_from_slice(chunk);
        self.advance(false)
    }
    fn finish(mut self) -> Result<S::Output, String> {
        self.advance(true)?;
        Ok(self.sink.finish(self.items_seen))
    }
}

/// Decodes a whole body at once (tests, benchmarks).
pub fn decode_slice<T: Decoded>(body: impl AsRef<[u8]>) -> Result<T, String> {
    let mut d = T::Decoder::default();
    d.feed(body.as_ref())?;
    d.finish()
}

#[cfg(test)]
mod tests;
