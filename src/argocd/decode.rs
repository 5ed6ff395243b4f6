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
mod tests {
    use super::*;

    /// Keeps every item as a generic value.
    #[derive(Default)]
    struct Values(Vec<serde_json::Value>);

    impl ItemSink for Values {
        type Item<'de> = serde_json::Value;
        type Output = Option<Vec<serde_json::Value>>;
        fn add(&mut self, item: serde_json::Value) -> Result<(), String> {
            if item == serde_json::json!("refused") {
                return Err("the sink refused an item".into());
            }
            self.0.push(item);
            Ok(())
        }
        fn finish(self, items_seen: bool) -> Self::Output {
            items_seen.then_some(self.0)
        }
    }

    fn decode_in(body: &str, chunks: &[usize]) -> Result<Option<Vec<serde_json::Value>>, String> {
        let mut d = ListDecoder::<Values>::default();
        let mut rest = body.as_bytes();
        for &n in chunks {
            let (now, later) = rest.split_at(n.min(rest.len()));
            d.feed(now)?;
            rest = later;
        }
        d.feed(rest)?;
        d.finish()
    }

    /// The body decoded whole, byte by byte, and cut in two at every position.
    fn decode_every_way(body: &str) -> Result<Option<Vec<serde_json::Value>>, String> {
        let whole = decode_in(body, &[]);
        assert_eq!(decode_in(body, &vec![1; body.len()]), whole, "byte by byte: {body}");
        for cut in 0..=body.len() {
            assert_eq!(decode_in(body, &[cut]), whole, "cut at {cut}: {body}");
        }
        whole
    }

    #[test]
    fn a_list_decodes_the_same_however_it_is_cut() {
        let body = r#" { "metadata" : {"resourceVersion":"12","x":[1,{"y":"]}"}]} , "items" : [
            {"a":"b\"],{"}, {"n":12345}, {"s":"\u00e9\\"} ,{}
        ], "after": 123456 , "nulls": null } "#;
        let items = decode_every_way(body).expect("decodes").expect("items");
        assert_eq!(
            items,
            vec![
                serde_json::json!({"a": "b\"],{"}),
                serde_json::json!({"n": 12345}),
                serde_json::json!({"s": "é\\"}),
                serde_json::json!({}),
            ]
        );
        // `items` first, an escaped key that reads `items`, an empty list.
        let items = decode_every_way(r#"{"it\u0065ms":[{"a":1}],"metadata":{}}"#).expect("decodes");
        assert_eq!(items, Some(vec![serde_json::json!({"a": 1})]));
        assert_eq!(decode_every_way(r#"{"items":[ ]}"#).expect("empty"), Some(vec![]));
    }

    #[test]
    fn null_or_absent_items_are_no_list() {
        assert_eq!(decode_every_way(r#"{"metadata":{},"items":null}"#).expect("null"), None);
        assert_eq!(decode_every_way(r#"{"metadata":{}}"#).expect("absent"), None);
        assert_eq!(decode_every_way("{}").expect("empty object"), None);
    }

    #[test]
    fn what_is_no_list_answer_is_refused() {
        for bad in [
            "",
            "[]",
            "null",
            r#"{"items":{"a":1}}"#,
            r#"{"items":"x"}"#,
            r#"{"items":[{"a":1}"#,
            r#"{"items":[{"a":1}]"#,
            r#"{"items":[{"a":1},]}"#,
            r#"{"items":[,{"a":1}]}"#,
            r#"{"items":[{"a":1} {"b":2}]}"#,
            r#"{"items":[{"a":1}}]}"#,
            r#"{"items":[{"a":[1}]]}"#,
            r#"{"items":[] "metadata":{}}"#,
            r#"{"items":[]}}"#,
            r#"{"items":[]} x"#,
            r#"{"items" [] }"#,
            r#"{items:[]}"#,
            r#"{"metadata":{"a":tru},"items":[]}"#,
            r#"{"items":["refused"]}"#,
        ] {
            let whole = decode_in(bad, &[]);
            assert!(whole.is_err(), "accepted: {bad:?} as {whole:?}");
            assert!(decode_in(bad, &vec![1; bad.len()]).is_err(), "accepted byte by byte: {bad:?}");
        }
        let err = decode_in(r#"{"metadata":{},"items":[{"a":1},{"a":"#, &[]).expect_err("cut off");
        assert_eq!(err, "an item of the list: EOF while parsing a value (at byte 32 of the body)");
        // What the server sent is never quoted back.
        let e = serde_json::from_str::<u64>(r#""<script>evil</script>""#).expect_err("shape");
        assert!(e.to_string().contains("evil"), "serde_json quotes it: {e}");
        assert_eq!(message(&e), "JSON of another shape than Argo CD's");
    }

    #[test]
    fn an_item_or_the_rest_past_its_cap_is_refused_without_holding_more() {
        let big = format!(r#"{{"items":[{{"a":"{}"}}]}}"#, "x".repeat(MAX_ITEM_BYTES));
        let mut d = ListDecoder::<Values>::default();
        let mut refused = None;
        for (i, chunk) in big.as_bytes().chunks(64 * 1024).enumerate() {
            if let Err(e) = d.feed(chunk) {
                refused = Some((i, e));
                break;
            }
        }
        let (at, e) = refused.expect("refused while arriving");
        assert!(e.contains("an item of the list larger than 4096 KiB"), "{e}");
        assert!(at * 64 * 1024 <= MAX_ITEM_BYTES + 64 * 1024, "held no more than the cap");
        let other = format!(r#"{{"metadata":{{"a":"{}"}},"items":[]}}"#, "x".repeat(MAX_OTHER_BYTES));
        let e = decode_in(&other, &[1000; 2000]).expect_err("too large");
        assert!(e.contains("other fields larger than 1024 KiB"), "{e}");
    }

    #[test]
    fn a_long_item_arriving_in_small_chunks_is_parsed_a_few_times_only() {
        // 1 MiB in 1 KiB chunks: parsed again only when the bytes at hand doubled.
        let body = format!(r#"{{"items":[{{"a":"{}"}}]}}"#, "x".repeat(1 << 20));
        let mut d = ListDecoder::<Values>::default();
        let mut attempts = 0;
        let mut last_threshold = None;
        for chunk in body.as_bytes().chunks(1024) {
            d.feed(chunk).expect("feeds");
            // A parse that ran past the end sets a new threshold; none is set in between.
            if d.at == At::FirstItem && last_threshold != Some(d.retry_at) {
                attempts += 1;
                last_threshold = Some(d.retry_at);
                assert_eq!(d.retry_at, 2 * d.buf.len(), "the next attempt waits for twice the bytes");
            }
        }
        assert!(attempts <= 12, "{attempts} attempts for 1 025 chunks: not linear");
        let items = d.finish().expect("decodes").expect("items");
        assert_eq!(items.len(), 1);
    }

    #[test]
    fn small_answers_are_read_whole_within_their_cap() {
        let v: serde_json::Value = decode_whole(br#"{"Version":"v3.6.1"}"#).expect("small");
        assert_eq!(v["Version"], "v3.6.1");
        let mut d = Whole::<serde_json::Value>::default();
        let e = d.feed(&vec![b' '; MAX_OTHER_BYTES + 1]).expect_err("too large");
        assert!(e.contains("larger than 1024 KiB"), "{e}");
    }

    fn decode_whole<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
        let mut d = Whole::<T>::default();
        d.feed(body)?;
        d.finish()
    }
}
