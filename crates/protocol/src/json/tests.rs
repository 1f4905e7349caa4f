//! Unit tests of the JSON batch decoder (a sibling file: with them `json.rs` would pass 800 lines).

use super::*;
use crate::base64::encode;
use crate::batch::decode_batch;
use crate::pb;
use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;

fn pattern() -> TopicPattern {
    TopicPattern::parse("clickstream-%s-log").unwrap()
}

fn decode(body: &str) -> Result<DecodedBatch, BatchError> {
    decode_json_batch(body.as_bytes(), &pattern())
}

/// The events as (type, payload) pairs.
fn events(batch: &DecodedBatch) -> Vec<(&str, &[u8])> {
    batch.events.iter().map(|e| (std::str::from_utf8(&e.event_type).unwrap(), &e.payload[..])).collect()
}

/// The error text, after checking what every JSON error shares.
fn error(body: &str) -> String {
    let err = decode(body).unwrap_err();
    assert!(matches!(err, BatchError::MalformedJson(_)), "{body}: {err:?}");
    assert_eq!(err.req_guid(), "");
    let text = err.to_string();
    assert!(text.starts_with("cannot deserialize request: "), "{text}");
    text
}

fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

#[test]
fn raccoons_shape() {
    let batch = decode(
        r#"{"req_guid":"1234","sent_time":{"seconds":1690000000,"nanos":5},
           "events":[{"event_bytes":"aGVsbG8=","type":"page"},{"event_bytes":"","type":"click"}]}"#,
    )
    .unwrap();
    assert_eq!(batch.req_guid, "1234");
    assert_eq!(batch.sent_time, ts(1_690_000_000, 5));
    assert_eq!(events(&batch), [("page", &b"hello"[..]), ("click", b"")]);
}

#[test]
fn protojson_shape() {
    let batch = decode(
        r#"{"reqGuid":"g","sentTime":"2023-07-22T10:00:00.123Z",
           "events":[{"eventBytes":"-_8","type":"page"},{"eventBytes":"+/8=","type":"page"}]}"#,
    )
    .unwrap();
    assert_eq!(batch.req_guid, "g");
    assert_eq!(batch.sent_time, ts(1_690_020_000, 123_000_000));
    assert_eq!(events(&batch), [("page", &[0xfb, 0xff][..]), ("page", &[0xfb, 0xff][..])]);
    // int64 as a string, and an RFC 3339 offset.
    assert_eq!(decode(r#"{"sent_time":{"seconds":"-5","nanos":1}}"#).unwrap().sent_time, ts(-5, 1));
    assert_eq!(decode(r#"{"sentTime":"2023-07-22T12:00:00+02:00"}"#).unwrap().sent_time, ts(1_690_020_000, 0));
    assert_eq!(decode(r#"{"sentTime":"2023-07-22T04:30:00-05:30"}"#).unwrap().sent_time, ts(1_690_020_000, 0));
    // Integral floats are integers.
    assert_eq!(decode(r#"{"sent_time":{"seconds":1e3}}"#).unwrap().sent_time, ts(1000, 0));
}

#[test]
fn keys_match_case_insensitively_as_go_does() {
    let batch = decode(
        r#"{"REQ_GUID":"a","Sent_Time":{"SECONDS":7,"Nanos":8},
           "EVENTS":[{"Event_Bytes":"aGk=","TYPE":"page"},{"EVENTBYTES":"aGk=","Type":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(batch.req_guid, "a");
    assert_eq!(batch.sent_time, ts(7, 8));
    assert_eq!(events(&batch), [("page", &b"hi"[..]), ("x", b"hi")]);
    // Go folds the long s and the Kelvin sign onto ASCII letters, and nothing else.
    let batch = decode("{\"events\":[{\"event_byte\u{17f}\":\"aGk=\",\"type\":\"p\"}]}").unwrap();
    assert_eq!(events(&batch), [("p", &b"hi"[..])]);
    assert!(folds_to("\u{212a}ey", "key"));
    assert!(!folds_to("req_gu\u{131}d", "req_guid"));
    // Near misses are unknown keys.
    assert_eq!(decode(r#"{"req-guid":"a","req_guid_":"b"}"#).unwrap().req_guid, "");
}

#[test]
fn unknown_fields_are_skipped_whatever_their_value() {
    let batch = decode(
        r#"{"x":{"a":[1,{"b":null}],"c":"d"},"req_guid":"g","y":[[]],"z":1.5,
           "sent_time":{"seconds":1,"extra":{"k":[true]}},
           "events":[{"meta":{"n":[1,2]},"type":"page","event_bytes":"aGk=","w":false}]}"#,
    )
    .unwrap();
    assert_eq!(batch.req_guid, "g");
    assert_eq!(batch.sent_time, ts(1, 0));
    assert_eq!(events(&batch), [("page", &b"hi"[..])]);
}

#[test]
fn null_is_an_absent_field() {
    let batch = decode(r#"{"req_guid":null,"sent_time":null,"events":null}"#).unwrap();
    assert_eq!((batch.req_guid.as_str(), batch.sent_time, batch.events.len()), ("", None, 0));
    let batch =
        decode(r#"{"events":[{"event_bytes":null,"type":"page"}],"sent_time":{"seconds":null,"nanos":null}}"#).unwrap();
    assert_eq!(events(&batch), [("page", &b""[..])]);
    assert_eq!(batch.sent_time, ts(0, 0));
    // null keeps what an earlier spelling of the key set; otherwise the last value wins.
    assert_eq!(decode(r#"{"req_guid":"a","reqGuid":null}"#).unwrap().req_guid, "a");
    let batch = decode(r#"{"req_guid":"a","REQ_GUID":"b","events":[{"type":"x"}],"events":[{"type":"y"}]}"#).unwrap();
    assert_eq!(batch.req_guid, "b");
    assert_eq!(events(&batch), [("y", &b""[..])]);
}

#[test]
fn empty_body_is_an_error_and_empty_object_an_empty_batch() {
    for body in ["", "  \r\n\t"] {
        let err = decode(body).unwrap_err();
        assert!(matches!(err, BatchError::MalformedJson(JsonError::Empty)), "{err:?}");
        assert_eq!(err.to_string(), "cannot deserialize request: empty json body");
        assert_eq!(err.req_guid(), "");
    }
    for body in ["{}", " { } \n", "null"] {
        let batch = decode(body).unwrap();
        assert_eq!((batch.req_guid.as_str(), batch.sent_time, batch.events.len()), ("", None, 0), "{body}");
    }
    let batch = decode(r#"{"events":[]}"#).unwrap();
    assert!(batch.events.is_empty());
}

#[test]
fn event_bytes_as_an_array_of_byte_numbers() {
    let batch =
        decode(r#"{"events":[{"event_bytes":[104,105,0,255],"type":"p"},{"event_bytes":[],"type":"q"}]}"#).unwrap();
    assert_eq!(events(&batch), [("p", &[104, 105, 0, 255][..]), ("q", b"")]);
    let text = error(r#"{"events":[{"event_bytes":[1,2,256]}]}"#);
    assert!(text.contains("events[0].event_bytes[2]: 256 is out of range 0..=255"), "{text}");
    let text = error(r#"{"events":[{},{"event_bytes":[-1]}]}"#);
    assert!(text.contains("events[1].event_bytes[0]: -1 is out of range"), "{text}");
    for element in ["1.5", "\"1\"", "null", "[1]"] {
        let text = error(&format!(r#"{{"events":[{{"event_bytes":[{element}]}}]}}"#));
        assert!(text.contains("expected a byte number 0..=255 for events[0].event_bytes[0]"), "{text}");
    }
}

#[test]
fn type_is_checked_like_protobuf_batches() {
    // req_guid comes after the events and is still echoed.
    let err = decode(r#"{"events":[{"type":"ok"},{"type":"not ok"}],"req_guid":"g-2"}"#).unwrap_err();
    assert_eq!(err.req_guid(), "g-2");
    assert!(matches!(err, BatchError::InvalidType { index: 1, source: TypeError::Topic(_), .. }), "{err:?}");
    assert!(err.to_string().contains("0x20"), "{err}");
    // An escaped type is unescaped first.
    let batch = decode(r#"{"events":[{"type":"p\u0061ge"}]}"#).unwrap();
    assert_eq!(events(&batch), [("page", &b""[..])]);
}

#[test]
fn static_pattern_takes_any_type() {
    let pattern = TopicPattern::parse("clickstream-log").unwrap();
    let body = r#"{"events":[{"type":"not ok!","event_bytes":"aGk="},{"event_bytes":"aGk="}]}"#;
    let batch = decode_json_batch(body.as_bytes(), &pattern).unwrap();
    assert_eq!(events(&batch), [("not ok!", &b"hi"[..]), ("", b"hi")]);
}

#[test]
fn payloads_and_types_share_one_buffer() {
    let batch = decode(r#"{"events":[{"event_bytes":"aGVsbG8=","type":"page"},{"type":"click","event_bytes":[1,2]}]}"#)
        .unwrap();
    let parts =
        [&batch.events[0].payload, &batch.events[0].event_type, &batch.events[1].event_type, &batch.events[1].payload];
    for pair in parts.windows(2) {
        // In parse order, each slice starts where the one before ended.
        assert_eq!(pair[0].as_ptr() as usize + pair[0].len(), pair[1].as_ptr() as usize);
    }
}

#[test]
fn wrong_types_name_the_field() {
    let cases = [
        (r#"[]"#, "expected an object for the request"),
        (r#""x""#, "expected an object for the request"),
        (r#"{"req_guid":5}"#, "expected a string for req_guid"),
        (r#"{"sent_time":true}"#, "expected an object or an rfc 3339 string for sent_time"),
        (r#"{"sent_time":{"seconds":"x"}}"#, "sent_time.seconds: \"x\" is not an int64"),
        (r#"{"sent_time":{"seconds":1.5}}"#, "sent_time.seconds: 1.5 is not an int64"),
        (
            r#"{"sent_time":{"seconds":9223372036854775808}}"#,
            "sent_time.seconds: 9223372036854775808 is out of the int64 range",
        ),
        (r#"{"sent_time":{"seconds":[]}}"#, "expected an integer for sent_time.seconds"),
        (r#"{"sent_time":{"nanos":-1}}"#, "sent_time.nanos: -1 is out of range 0..=999999999"),
        (r#"{"sent_time":{"nanos":1000000000}}"#, "sent_time.nanos: 1000000000 is out of range"),
        (r#"{"sent_time":"2023-07-22"}"#, "sent_time: not an rfc 3339 timestamp: unexpected end of text at offset 10"),
        (r#"{"events":{}}"#, "expected an array for events"),
        (r#"{"events":[{},null]}"#, "expected an object for events[1]"),
        (r#"{"events":[7]}"#, "expected an object for events[0]"),
        (
            r#"{"events":[{"event_bytes":5}]}"#,
            "expected a base64 string or an array of byte numbers for events[0].event_bytes",
        ),
        (r#"{"events":[{"event_bytes":"aGk!"}]}"#, "events[0].event_bytes: invalid base64 byte 0x21 at offset 3"),
        (r#"{"events":[{"event_bytes":"a"}]}"#, "events[0].event_bytes: invalid base64 length"),
        (r#"{"events":[{"type":5}]}"#, "expected a string for events[0].type"),
        (r#"{"events":[{"type":["a"]}]}"#, "expected a string for events[0].type"),
    ];
    for (body, want) in cases {
        let text = error(body);
        assert!(text.contains(want), "{body}: {text}");
        assert!(text.contains(" at line 1 column "), "{body}: {text}");
    }
}

#[test]
fn syntax_errors_give_the_position() {
    assert!(error(r#"{"req_guid":"a",}"#).contains("line 1 column 17"));
    assert!(error("{\n\"events\": [1,").contains("line 2"));
    assert!(error("{} x").contains("trailing characters"));
    assert!(error(r#"{"req_guid":"a""#).contains("EOF"));
    // JSON needs UTF-8 (a WebSocket text frame is UTF-8 already; a REST body may not be).
    assert!(decode_json_batch(b"{\"req_guid\":\"\xff\"}", &pattern()).is_err());
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM` for a timestamp shown at a UTC offset of `offset_min`:
/// the wall clock there is UTC's shifted by the offset.
fn rfc3339(time: &prost_types::Timestamp, offset_min: i64) -> String {
    let local = crate::timestamp::format_rfc3339(time.seconds + offset_min * 60, time.nanos).expect("years 0001-9999");
    let sign = if offset_min < 0 { '-' } else { '+' };
    let (oh, om) = (offset_min.abs() / 60, offset_min.abs() % 60);
    format!("{}{sign}{oh:02}:{om:02}", local.trim_end_matches('Z'))
}

fn raccoon_json(req: &pb::SendEventRequest) -> String {
    let events: Vec<_> = req
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            // Go sends base64; the JS client sends byte arrays. Alternate both.
            let bytes = if i % 2 == 0 {
                serde_json::json!(encode(&e.event_bytes))
            } else {
                serde_json::json!(e.event_bytes.to_vec())
            };
            serde_json::json!({ "event_bytes": bytes, "type": e.r#type })
        })
        .collect();
    let time = req.sent_time.as_ref().unwrap();
    serde_json::json!({
        "req_guid": req.req_guid,
        "sent_time": { "seconds": time.seconds, "nanos": time.nanos },
        "events": events,
    })
    .to_string()
}

fn protojson(req: &pb::SendEventRequest, offset_min: i64) -> String {
    let events: Vec<_> = req
        .events
        .iter()
        .map(|e| {
            let url = encode(&e.event_bytes).trim_end_matches('=').replace('+', "-").replace('/', "_");
            serde_json::json!({ "type": e.r#type, "eventBytes": url })
        })
        .collect();
    serde_json::json!({
        "events": events,
        "sentTime": rfc3339(req.sent_time.as_ref().unwrap(), offset_min),
        "reqGuid": req.req_guid,
    })
    .to_string()
}

proptest! {
    // Both JSON shapes decode to what the protobuf encoding of the same request decodes to.
    #[test]
    fn json_shapes_agree_with_protobuf(
        req_guid in "\\PC{0,40}",
        seconds in -62_135_510_400i64..253_402_214_400,
        nanos in 0i32..1_000_000_000,
        offset_min in -1439i64..1440,
        events in proptest::collection::vec(("[a-zA-Z0-9._-]{1,20}", proptest::collection::vec(any::<u8>(), 0..64)), 0..20),
    ) {
        let req = pb::SendEventRequest {
            req_guid,
            sent_time: Some(prost_types::Timestamp { seconds, nanos }),
            events: events.into_iter().map(|(t, b)| pb::Event { event_bytes: Bytes::from(b), r#type: t }).collect(),
        };
        let want = decode_batch(Bytes::from(req.encode_to_vec()), &pattern()).unwrap();
        let raccoon = decode(&raccoon_json(&req)).unwrap();
        prop_assert_eq!(&raccoon, &want);
        let proto_json = decode(&protojson(&req, offset_min)).unwrap();
        prop_assert_eq!(&proto_json, &want);
    }

    // Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_json_batch(&body, &pattern());
    }

    // Nor do near-valid bodies: valid JSON of the right shape with a few bytes changed.
    #[test]
    fn mutated_bodies_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut body = br#"{"req_guid":"g","sent_time":"2023-07-22T10:00:00.5+01:00","events":[{"event_bytes":"aGVsbG8=","type":"page"},{"eventBytes":[1,2,3],"type":"x"}]}"#.to_vec();
        for (at, byte) in edits {
            let i = at.index(body.len());
            body[i] = byte;
        }
        let _ = decode_json_batch(&body, &pattern());
    }
}
