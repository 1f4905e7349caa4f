//! A decoded batch, why one is refused (in either encoding), and decoding a protobuf
//! [`SendEventRequest`] without copying its payloads; JSON is [`crate::json`]'s.
//!
//! Hot path: runs once per WebSocket frame. The frame arrives as a [`Bytes`] (the frame reader splits
//! it off the bytes it read, see [`super::websocket`]), and prost, decoding from a `Bytes`, hands out `event_bytes` as slices of
//! it. prost would copy `Event.type` into a `String` (one allocation per event), so the server
//! decodes through [`RequestView`], a prost message with the same field numbers whose `type` is
//! `bytes`: protobuf's wire format does not distinguish the two, and the UTF-8 and topic-name checks
//! are done here instead. The only allocations per batch are the event vector and the `req_guid`.
//!
//! [`SendEventRequest`]: crate::pb::SendEventRequest

use bytes::Bytes;
use prost::Message;
use thiserror::Error;

use raccoon_core::handoff::{EventRecord, SentTime};
use raccoon_core::topic::{TopicError, TopicPattern};

/// [`SendEventRequest`] as the server decodes it (field numbers from the wire contract).
///
/// [`SendEventRequest`]: crate::pb::SendEventRequest
#[derive(Clone, PartialEq, Message)]
struct RequestView {
    #[prost(string, tag = "1")]
    req_guid: String,
    #[prost(message, optional, tag = "2")]
    sent_time: Option<prost_types::Timestamp>,
    #[prost(message, repeated, tag = "3")]
    events: Vec<EventView>,
}

/// [`Event`] with `type` kept as bytes (see the module docs).
///
/// [`Event`]: crate::pb::Event
#[derive(Clone, PartialEq, Message)]
struct EventView {
    #[prost(bytes = "bytes", tag = "1")]
    event_bytes: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    r#type: Bytes,
}

/// A decoded, validated batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedBatch {
    /// The client's batch id.
    pub req_guid: String,
    /// Client send time, if given (latency metrics only).
    pub sent_time: Option<prost_types::Timestamp>,
    /// The events; payloads are slices of the input buffer.
    pub events: Vec<EventRecord>,
}

impl DecodedBatch {
    /// The client's send time as the publisher carries it.
    pub fn client_sent_time(&self) -> Option<SentTime> {
        self.sent_time.map(|t| SentTime { seconds: t.seconds, nanos: t.nanos })
    }
}

/// Why a frame was refused. Either way the client gets `CODE_BAD_REQUEST` and the connection
/// stays open.
#[derive(Debug, Error)]
pub enum BatchError {
    /// Not a `SendEventRequest`.
    #[error("cannot deserialize request: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// Not a JSON `SendEventRequest` (text frames, REST `application/json`).
    #[error("cannot deserialize request: {0}")]
    MalformedJson(#[from] JsonError),
    /// An event's `type` is not UTF-8 or would not make a valid Kafka topic name.
    #[error("invalid event type at index {index}: {source}")]
    InvalidType {
        /// The batch id (known, since the frame decoded), echoed in the reply.
        req_guid: String,
        /// Index of the first offending event.
        index: usize,
        /// What is wrong with its type.
        source: TypeError,
    },
}

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

/// What is wrong with an event's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TypeError {
    /// proto3 `string` fields must be UTF-8.
    #[error("type is not valid UTF-8")]
    NotUtf8,
    /// The resulting topic name would be refused by Kafka.
    #[error(transparent)]
    Topic(#[from] TopicError),
}

impl BatchError {
    /// The `req_guid` to echo in the reply: what was decoded, or `""` when nothing was
    /// (Raccoon answers undecodable frames with `data: {"req_guid": ""}`).
    pub fn req_guid(&self) -> &str {
        match self {
            BatchError::Malformed(_) | BatchError::MalformedJson(_) => "",
            BatchError::InvalidType { req_guid, .. } => req_guid,
        }
    }
}

/// Decodes one [`SendEventRequest`] from `frame`, slicing payloads out of it, and checks every
/// event's `type` against `pattern`.
///
/// [`SendEventRequest`]: crate::pb::SendEventRequest
pub fn decode_batch(frame: Bytes, pattern: &TopicPattern) -> Result<DecodedBatch, BatchError> {
    let view = RequestView::decode(frame)?;
    let mut events = Vec::with_capacity(view.events.len());
    for (index, event) in view.events.into_iter().enumerate() {
        let checked = std::str::from_utf8(&event.r#type)
            .map_err(|_| TypeError::NotUtf8)
            .and_then(|_| pattern.check_type(&event.r#type).map_err(TypeError::from));
        if let Err(source) = checked {
            return Err(BatchError::InvalidType { req_guid: view.req_guid, index, source });
        }
        events.push(EventRecord { event_type: event.r#type, payload: event.event_bytes });
    }
    Ok(DecodedBatch { req_guid: view.req_guid, sent_time: view.sent_time, events })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use proptest::prelude::*;

    fn pattern() -> TopicPattern {
        TopicPattern::parse("clickstream-%s-log").unwrap()
    }

    fn request(req_guid: &str, events: &[(&str, &[u8])]) -> pb::SendEventRequest {
        pb::SendEventRequest {
            req_guid: req_guid.to_owned(),
            sent_time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5 }),
            events: events
                .iter()
                .map(|(t, b)| pb::Event { event_bytes: Bytes::copy_from_slice(b), r#type: (*t).to_owned() })
                .collect(),
        }
    }

    #[test]
    fn payloads_are_slices_of_the_receive_buffer() {
        let frame = Bytes::from(request("g-1", &[("page", b"event_1"), ("click", &[0u8, 1, 2, 255])]).encode_to_vec());
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        let batch = decode_batch(frame, &pattern()).unwrap();
        assert_eq!(batch.events.len(), 2);
        for event in &batch.events {
            let start = event.payload.as_ptr() as usize;
            assert!(
                range.contains(&start) && start + event.payload.len() <= range.end,
                "payload at {start:#x} is not inside the frame {range:x?}"
            );
            let type_start = event.event_type.as_ptr() as usize;
            assert!(range.contains(&type_start), "type was copied");
        }
        assert_eq!(&batch.events[0].payload[..], b"event_1");
        assert_eq!(&batch.events[1].payload[..], &[0u8, 1, 2, 255]);
    }

    #[test]
    fn empty_frame_is_an_empty_request() {
        let batch = decode_batch(Bytes::new(), &pattern()).unwrap();
        assert_eq!(batch.req_guid, "");
        assert!(batch.events.is_empty());
    }

    #[test]
    fn garbage_is_malformed_with_empty_req_guid() {
        let err = decode_batch(Bytes::from_static(&[0x01]), &pattern()).unwrap_err();
        assert!(matches!(err, BatchError::Malformed(_)));
        assert_eq!(err.req_guid(), "");
        assert!(err.to_string().starts_with("cannot deserialize request: "));
    }

    #[test]
    fn bad_type_names_the_event_and_keeps_req_guid() {
        let frame = request("g-2", &[("ok", b"a"), ("not ok", b"b")]).encode_to_vec();
        let err = decode_batch(Bytes::from(frame), &pattern()).unwrap_err();
        assert_eq!(err.req_guid(), "g-2");
        let text = err.to_string();
        assert!(text.contains("index 1"), "{text}");
        assert!(text.contains("0x20"), "{text}");
    }

    #[test]
    fn non_utf8_type_is_rejected() {
        // Hand-built: Event{type (field 2) = [0xff]} inside SendEventRequest.events (field 3).
        let event = [0x12, 0x01, 0xff];
        let mut frame = vec![0x1a, event.len() as u8];
        frame.extend_from_slice(&event);
        let err = decode_batch(Bytes::from(frame), &pattern()).unwrap_err();
        assert!(matches!(err, BatchError::InvalidType { source: TypeError::NotUtf8, .. }));
    }

    proptest! {
        // The view decoder agrees with the generated message on every valid request.
        #[test]
        fn view_agrees_with_generated_types(
            req_guid in "[a-z0-9-]{0,40}",
            events in proptest::collection::vec(("[a-zA-Z0-9._-]{0,20}", proptest::collection::vec(any::<u8>(), 0..64)), 0..20),
        ) {
            let events: Vec<(&str, &[u8])> = events.iter().map(|(t, b)| (t.as_str(), b.as_slice())).collect();
            let req = request(&req_guid, &events);
            let frame = Bytes::from(req.encode_to_vec());
            let batch = decode_batch(frame, &pattern()).unwrap();
            prop_assert_eq!(&batch.req_guid, &req.req_guid);
            prop_assert_eq!(batch.sent_time, req.sent_time);
            prop_assert_eq!(batch.events.len(), req.events.len());
            for (got, want) in batch.events.iter().zip(&req.events) {
                prop_assert_eq!(&got.payload, &want.event_bytes);
                prop_assert_eq!(&got.event_type[..], want.r#type.as_bytes());
            }
        }

        // Arbitrary bytes never panic the decoder.
        #[test]
        fn arbitrary_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_batch(Bytes::from(frame), &pattern());
        }
    }
}
