//! Decoding a JSON [`SendEventRequest`] (WebSocket text frames, REST `application/json`) into the
//! same [`DecodedBatch`] that [`decode_batch`](crate::batch::decode_batch) makes from
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
//! is frozen and each event gets `Bytes` slices of it. Allocations per batch: that buffer (plus
//! the small shared header `bytes` adds when it is first sliced), the `req_guid`, and two event
//! vectors. Nothing is allocated per event; a failure adds its error text.
//!
//! [`SendEventRequest`]: crate::pb::SendEventRequest

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, BytesMut};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::base64;
use crate::batch::{BatchError, DecodedBatch, JsonError, TypeError};
use crate::timestamp::parse_rfc3339;
use raccoon_core::handoff::EventRecord;
use raccoon_core::topic::TopicPattern;

/// Decodes one JSON [`SendEventRequest`] from `body` and checks every event's `type` against
/// `pattern`, exactly as [`decode_batch`] does for protobuf.
///
/// [`SendEventRequest`]: crate::pb::SendEventRequest
/// [`decode_batch`]: crate::batch::decode_batch
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
mod tests;
