//! Decoding a JSON `SendEventRequest` (WebSocket text frames, REST `application/json`) into the
//! same [`DecodedBatch`] that [`decode_batch`](crate::protocol::batch::decode_batch) makes from
//! protobuf, so the shard treats both alike (spec sections 1.4 and 1.5).
//!
//! Two dialects are accepted at once, key by key, with no mode switch:
//! * Raccoon's own (Go `encoding/json` over the generated structs): snake_case keys matched
//!   case-insensitively as Go does, `sent_time` as `{"seconds": N, "nanos": N}`, `event_bytes`
//!   as standard base64 or as an array of byte numbers (what the JS client sends);
//! * protobuf's canonical JSON (Raccoon issue #67): camelCase keys (`reqGuid`, `sentTime`,
//!   `eventBytes`), `sentTime` as an RFC 3339 string, int64 `seconds` as a JSON string, base64 in
//!   either alphabet, padded or not.
//!
//! Unknown keys are skipped whatever their value; `null` counts as an absent field; a repeated key
//! takes its last value. `null` as the whole body is an empty request, as in Go; an empty body is
//! an error, `{}` an empty batch.
//!
//! Hot path: runs once per JSON frame. The parse is serde over `serde_json` (chosen by a bench
//! against `sonic-rs`, perf-results/2026-12-01-json-decode.md) with visitors that write every
//! payload and every `type` into one `BytesMut` per batch, sized from the body; after the parse it
//! is frozen and each event gets `Bytes` slices of it. Allocations per batch: that buffer, the
//! `req_guid`, and two event vectors. Nothing is allocated per event, and nothing but the error
//! text on failure.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, BytesMut};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

use crate::protocol::base64;
use crate::protocol::batch::{BatchError, DecodedBatch, TypeError};
use crate::protocol::timestamp::parse_rfc3339;
use crate::topic::TopicPattern;
use crate::types::EventRecord;

/// Why a body is not a JSON `SendEventRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JsonError {
    /// Nothing but whitespace (Raccoon refuses an empty JSON body too).
    #[error("empty json body")]
    Empty,
    /// Bad syntax, a wrong type or a bad value. The text says what, names the field
    /// (`events[2].event_bytes`) and ends with the position (`at line 1 column 57`).
    #[error("{0}")]
    Invalid(Box<str>),
}

/// Decodes one JSON `SendEventRequest` from `body` and checks every event's `type` against
/// `pattern`, exactly as `decode_batch` does for protobuf.
pub fn decode_json_batch(body: &[u8], pattern: &TopicPattern) -> Result<DecodedBatch, BatchError> {
    if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        return Err(JsonError::Empty.into());
    }
    let mut parsed = Parsed::new(body.len());
    let mut de = serde_json::Deserializer::from_slice(body);
    RequestSeed(&mut parsed).deserialize(&mut de).and_then(|()| de.end()).map_err(invalid)?;
    parsed.finish(pattern)
}

/// The same visitors over any serde deserializer, for `benches/codec.rs` to compare JSON
/// parsers on equal terms. `body_len` sizes the payload buffer. Unlike [`decode_json_batch`] it
/// does not refuse an empty body nor check for trailing bytes: that is the caller's business.
#[doc(hidden)]
pub fn decode_json_batch_from<'de, D: Deserializer<'de>>(
    deserializer: D,
    body_len: usize,
    pattern: &TopicPattern,
) -> Result<DecodedBatch, BatchError> {
    let mut parsed = Parsed::new(body_len);
    RequestSeed(&mut parsed).deserialize(deserializer).map_err(invalid)?;
    parsed.finish(pattern)
}

fn invalid(err: impl fmt::Display) -> BatchError {
    BatchError::MalformedJson(JsonError::Invalid(err.to_string().into_boxed_str()))
}

/// The request as parsed, before the type check: events are ranges of `arena`.
struct Parsed {
    arena: BytesMut,
    req_guid: String,
    sent_time: Option<prost_types::Timestamp>,
    events: Vec<RawEvent>,
}

#[derive(Default)]
struct RawEvent {
    event_type: Range<usize>,
    payload: Range<usize>,
}

impl Parsed {
    fn new(body_len: usize) -> Self {
        // Decoded payloads and unescaped types are never longer than the JSON text they come
        // from, so one buffer of the body's size holds them all.
        Parsed {
            arena: BytesMut::with_capacity(body_len),
            req_guid: String::new(),
            sent_time: None,
            events: Vec::new(),
        }
    }

    fn finish(self, pattern: &TopicPattern) -> Result<DecodedBatch, BatchError> {
        let arena = self.arena.freeze();
        let mut events = Vec::with_capacity(self.events.len());
        for (index, raw) in self.events.into_iter().enumerate() {
            // serde hands out `str`, so the type is UTF-8 already; the topic check remains.
            let event_type = arena.slice(raw.event_type);
            if let Err(err) = pattern.check_type(&event_type) {
                return Err(BatchError::InvalidType { req_guid: self.req_guid, index, source: TypeError::Topic(err) });
            }
            events.push(EventRecord { event_type, payload: arena.slice(raw.payload) });
        }
        Ok(DecodedBatch { req_guid: self.req_guid, sent_time: self.sent_time, events })
    }
}

/// Where in the request a value sits, for error messages.
#[derive(Debug, Clone, Copy)]
enum Field {
    Request,
    ReqGuid,
    SentTime,
    Seconds,
    Nanos,
    Events,
    Event(usize),
    EventBytes(usize),
    EventByte(usize, usize),
    Type(usize),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Request => f.write_str("the request"),
            Field::ReqGuid => f.write_str("req_guid"),
            Field::SentTime => f.write_str("sent_time"),
            Field::Seconds => f.write_str("sent_time.seconds"),
            Field::Nanos => f.write_str("sent_time.nanos"),
            Field::Events => f.write_str("events"),
            Field::Event(i) => write!(f, "events[{i}]"),
            Field::EventBytes(i) => write!(f, "events[{i}].event_bytes"),
            Field::EventByte(i, k) => write!(f, "events[{i}].event_bytes[{k}]"),
            Field::Type(i) => write!(f, "events[{i}].type"),
        }
    }
}

fn field_error<E: de::Error>(field: Field, problem: impl fmt::Display) -> E {
    E::custom(format_args!("{field}: {problem}"))
}

/// Key spellings per field, lowercase; a key matches under Go's case folding (see [`folds_to`]).
const REQUEST_KEYS: &[&[&str]] = &[&["req_guid", "reqguid"], &["sent_time", "senttime"], &["events"]];
const EVENT_KEYS: &[&[&str]] = &[&["event_bytes", "eventbytes"], &["type"]];
const TIMESTAMP_KEYS: &[&[&str]] = &[&["seconds"], &["nanos"]];

/// Go's `encoding/json` key match: equal under simple case folding. The names are ASCII, so a key
/// matches when each of its characters folds onto the name's byte: an ASCII letter in either
/// case, or one of the two non-ASCII letters that fold onto ASCII ones, `ſ` (s) and the Kelvin
/// sign (k).
fn folds_to(key: &str, name: &str) -> bool {
    let mut name = name.bytes();
    key.chars().all(|ch| {
        let folded = match ch {
            '\u{17f}' => b's',
            '\u{212a}' => b'k',
            c if c.is_ascii() => (c as u8).to_ascii_lowercase(),
            _ => return false,
        };
        name.next() == Some(folded)
    }) && name.next().is_none()
}

/// A map key: the index of the field in `names` it spells, `None` for an unknown key.
struct KeySeed(&'static [&'static [&'static str]]);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|spellings| spellings.iter().any(|name| folds_to(key, name))))
    }
}

/// The whole request, into a [`Parsed`].
struct RequestSeed<'p>(&'p mut Parsed);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object for {}", Field::Request)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let parsed = self.0;
        while let Some(key) = map.next_key_seed(KeySeed(REQUEST_KEYS))? {
            match key {
                Some(0) => {
                    if let Some(guid) = map.next_value_seed(GuidSeed)? {
                        parsed.req_guid = guid;
                    }
                }
                Some(1) => {
                    if let Some(time) = map.next_value_seed(TimestampSeed)? {
                        parsed.sent_time = Some(time);
                    }
                }
                Some(_) => map.next_value_seed(EventsSeed(parsed))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// `req_guid`: a string, or `null`.
struct GuidSeed;

impl<'de> DeserializeSeed<'de> for GuidSeed {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for GuidSeed {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string for {}", Field::ReqGuid)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
}

/// `sent_time`: `{"seconds", "nanos"}` (Raccoon), an RFC 3339 string (protojson), or `null`.
struct TimestampSeed;

impl<'de> DeserializeSeed<'de> for TimestampSeed {
    type Value = Option<prost_types::Timestamp>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimestampSeed {
    type Value = Option<prost_types::Timestamp>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object or an rfc 3339 string for {}", Field::SentTime)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        parse_rfc3339(v).map(Some).map_err(|err| field_error(Field::SentTime, err))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut time = prost_types::Timestamp::default();
        while let Some(key) = map.next_key_seed(KeySeed(TIMESTAMP_KEYS))? {
            match key {
                Some(0) => {
                    if let Some(seconds) = map.next_value_seed(IntSeed(Field::Seconds))? {
                        time.seconds = seconds;
                    }
                }
                Some(_) => {
                    if let Some(nanos) = map.next_value_seed(IntSeed(Field::Nanos))? {
                        time.nanos =
                            i32::try_from(nanos).ok().filter(|n| (0..=999_999_999).contains(n)).ok_or_else(|| {
                                field_error(Field::Nanos, format_args!("{nanos} is out of range 0..=999999999"))
                            })?;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(time))
    }
}

/// An integer: a JSON number without fraction, or a decimal string (protojson writes int64 so).
struct IntSeed(Field);

impl<'de> DeserializeSeed<'de> for IntSeed {
    type Value = Option<i64>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for IntSeed {
    type Value = Option<i64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer for {}", self.0)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v).map(Some).map_err(|_| field_error(self.0, format_args!("{v} is out of the int64 range")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // i64::MIN is exactly representable; the upper bound is exclusive.
        if v.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v) {
            return Ok(Some(v as i64));
        }
        Err(field_error(self.0, format_args!("{v} is not an int64")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.parse().map(Some).map_err(|_| field_error(self.0, format_args!("{v:?} is not an int64")))
    }
}

/// `events`: an array of events, or `null`.
struct EventsSeed<'p>(&'p mut Parsed);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array for {}", Field::Events)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let parsed = self.0;
        parsed.events.clear();
        parsed.events.reserve(seq.size_hint().unwrap_or(16));
        let mut index = 0;
        while let Some(event) = seq.next_element_seed(EventSeed { arena: &mut parsed.arena, index })? {
            parsed.events.push(event);
            index += 1;
        }
        Ok(())
    }
}

/// One event: an object with `event_bytes` and `type`.
struct EventSeed<'a> {
    arena: &'a mut BytesMut,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = RawEvent;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawEvent, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = RawEvent;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object for {}", Field::Event(self.index))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent, A::Error> {
        let mut event = RawEvent::default();
        while let Some(key) = map.next_key_seed(KeySeed(EVENT_KEYS))? {
            let field = match key {
                Some(0) => Field::EventBytes(self.index),
                Some(_) => Field::Type(self.index),
                None => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(range) = map.next_value_seed(ArenaSeed { arena: &mut *self.arena, field })? {
                match field {
                    Field::EventBytes(_) => event.payload = range,
                    _ => event.event_type = range,
                }
            }
        }
        Ok(event)
    }
}

/// A value appended to the arena, returned as its range there: for `event_bytes`, base64 text or
/// an array of byte numbers; for `type`, the string itself. `null` gives `None`.
struct ArenaSeed<'a> {
    arena: &'a mut BytesMut,
    field: Field,
}

impl<'de> DeserializeSeed<'de> for ArenaSeed<'_> {
    type Value = Option<Range<usize>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArenaSeed<'_> {
    type Value = Option<Range<usize>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Field::EventBytes(_) => write!(f, "a base64 string or an array of byte numbers for {}", self.field),
            _ => write!(f, "a string for {}", self.field),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let start = self.arena.len();
        match self.field {
            Field::EventBytes(_) => {
                base64::decode_into(v.as_bytes(), self.arena).map_err(|err| field_error(self.field, err))?;
            }
            _ => self.arena.put_slice(v.as_bytes()),
        }
        Ok(Some(start..self.arena.len()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Field::EventBytes(index) = self.field else {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        };
        let start = self.arena.len();
        while let Some(byte) = seq.next_element_seed(ByteSeed(Field::EventByte(index, self.arena.len() - start)))? {
            self.arena.put_u8(byte);
        }
        Ok(Some(start..self.arena.len()))
    }
}

/// One element of a byte-number array: an integer in `0..=255`.
struct ByteSeed(Field);

impl<'de> DeserializeSeed<'de> for ByteSeed {
    type Value = u8;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u8, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for ByteSeed {
    type Value = u8;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a byte number 0..=255 for {}", self.0)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u8, E> {
        u8::try_from(v).map_err(|_| field_error(self.0, format_args!("{v} is out of range 0..=255")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u8, E> {
        u8::try_from(v).map_err(|_| field_error(self.0, format_args!("{v} is out of range 0..=255")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::base64::encode;
    use crate::protocol::batch::decode_batch;
    use crate::protocol::pb;
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
            decode(r#"{"events":[{"event_bytes":null,"type":"page"}],"sent_time":{"seconds":null,"nanos":null}}"#)
                .unwrap();
        assert_eq!(events(&batch), [("page", &b""[..])]);
        assert_eq!(batch.sent_time, ts(0, 0));
        // null keeps what an earlier spelling of the key set; otherwise the last value wins.
        assert_eq!(decode(r#"{"req_guid":"a","reqGuid":null}"#).unwrap().req_guid, "a");
        let batch =
            decode(r#"{"req_guid":"a","REQ_GUID":"b","events":[{"type":"x"}],"events":[{"type":"y"}]}"#).unwrap();
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
        let batch =
            decode(r#"{"events":[{"event_bytes":"aGVsbG8=","type":"page"},{"type":"click","event_bytes":[1,2]}]}"#)
                .unwrap();
        let parts = [
            &batch.events[0].payload,
            &batch.events[0].event_type,
            &batch.events[1].event_type,
            &batch.events[1].payload,
        ];
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
            (
                r#"{"sent_time":"2023-07-22"}"#,
                "sent_time: not an rfc 3339 timestamp: unexpected end of text at offset 10",
            ),
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

    /// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM` for a timestamp shown at a UTC offset of `offset_min`.
    fn rfc3339(time: &prost_types::Timestamp, offset_min: i64) -> String {
        let local = time.seconds + offset_min * 60;
        let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
        // Civil date from days since 1970-01-01 (proleptic Gregorian).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let sign = if offset_min < 0 { '-' } else { '+' };
        let (oh, om) = (offset_min.abs() / 60, offset_min.abs() % 60);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}{sign}{oh:02}:{om:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            time.nanos
        )
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
}
