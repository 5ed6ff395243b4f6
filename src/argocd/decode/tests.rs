//! The decoders' tests: a list cut at every place, caps, and what is no list.

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
