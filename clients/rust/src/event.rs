//! Events, batches and serializers.
//!
//! An [`Event`] is a type (the server routes it to the Kafka topic named after it) and its bytes
//! (published as the record value, byte for byte). The bytes come from anywhere: [`Event::new`]
//! takes them as they are, [`Event::json`] and [`Event::protobuf`] serialize a value with the
//! built-in [`Json`] and [`Protobuf`] serializers, and [`Event::serialize`] takes any
//! [`Serializer`], including a closure `Fn(&T) -> Result<Vec<u8>, E>`. Serializing when the event
//! is made, not when it is sent, lets a caller (a load generator) build a batch once and send it
//! many times.
//!
//! A [`Batch`] is the events of one request plus its `req_guid`: generated (UUID v4) unless
//! supplied with [`Batch::with_req_guid`]. Retries send the same `req_guid`.

use bytes::Bytes;

/// One event: a type and its serialized data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's type; the server publishes to the topic its pattern makes of it.
    pub event_type: String,
    /// The event's bytes, published as the Kafka record value.
    pub data: Bytes,
}

impl Event {
    /// An event with bytes that are already serialized (or any text).
    pub fn new(event_type: impl Into<String>, data: impl Into<Bytes>) -> Event {
        Event { event_type: event_type.into(), data: data.into() }
    }

    /// An event whose data is `data` serialized by `serializer`.
    pub fn serialize<T: ?Sized, S: Serializer<T>>(
        event_type: impl Into<String>,
        data: &T,
        serializer: &S,
    ) -> Result<Event, SerializeError> {
        Ok(Event::new(event_type, serializer.serialize(data)?))
    }

    /// An event whose data is `data` as JSON (the built-in [`Json`] serializer).
    pub fn json<T: serde::Serialize + ?Sized>(
        event_type: impl Into<String>,
        data: &T,
    ) -> Result<Event, SerializeError> {
        Event::serialize(event_type, data, &Json)
    }

    /// An event whose data is the protobuf encoding of `message` (the built-in [`Protobuf`]
    /// serializer, which cannot fail).
    pub fn protobuf<M: prost::Message>(event_type: impl Into<String>, message: &M) -> Event {
        Event::new(event_type, message.encode_to_vec())
    }
}

/// Turns a `T` into event bytes.
///
/// Implemented by [`Json`] (any [`serde::Serialize`]), [`Protobuf`] (any [`prost::Message`]) and every
/// closure `Fn(&T) -> Result<Vec<u8>, E>` whose error converts into a boxed error:
///
/// ```
/// use raccoon_client::Event;
///
/// let csv = |row: &(u32, &str)| Ok::<_, std::fmt::Error>(format!("{},{}", row.0, row.1).into_bytes());
/// let event = Event::serialize("row", &(7, "seven"), &csv).unwrap();
/// assert_eq!(&event.data[..], b"7,seven");
/// ```
pub trait Serializer<T: ?Sized> {
    /// The bytes of `data`.
    fn serialize(&self, data: &T) -> Result<Vec<u8>, SerializeError>;
}

/// A serializer failed; its message says why.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialize event data: {0}")]
pub struct SerializeError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The built-in JSON serializer (`serde_json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl<T: serde::Serialize + ?Sized> Serializer<T> for Json {
    fn serialize(&self, data: &T) -> Result<Vec<u8>, SerializeError> {
        serde_json::to_vec(data).map_err(|e| SerializeError(Box::new(e)))
    }
}

/// The built-in protobuf serializer (`prost`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Protobuf;

impl<T: prost::Message> Serializer<T> for Protobuf {
    fn serialize(&self, data: &T) -> Result<Vec<u8>, SerializeError> {
        Ok(data.encode_to_vec())
    }
}

impl<T: ?Sized, F, E> Serializer<T> for F
where
    F: Fn(&T) -> Result<Vec<u8>, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn serialize(&self, data: &T) -> Result<Vec<u8>, SerializeError> {
        self(data).map_err(|e| SerializeError(e.into()))
    }
}

/// The events of one request and its `req_guid`.
///
/// `Vec<Event>` and [`Event`] convert into a batch with a generated guid, so `send(vec![...])`
/// works wherever a batch is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    req_guid: String,
    events: Vec<Event>,
}

impl Batch {
    /// A batch with a generated `req_guid` (UUID v4).
    pub fn new(events: impl IntoIterator<Item = Event>) -> Batch {
        Batch { req_guid: uuid::Uuid::new_v4().to_string(), events: events.into_iter().collect() }
    }

    /// The same batch with the caller's `req_guid`.
    pub fn with_req_guid(mut self, req_guid: impl Into<String>) -> Batch {
        self.req_guid = req_guid.into();
        self
    }

    /// The batch's `req_guid`, known before it is sent.
    pub fn req_guid(&self) -> &str {
        &self.req_guid
    }

    /// The batch's events.
    pub fn events(&self) -> &[Event] {
        &self.events
    }
}

impl From<Vec<Event>> for Batch {
    fn from(events: Vec<Event>) -> Batch {
        Batch::new(events)
    }
}

impl From<Event> for Batch {
    fn from(event: Event) -> Batch {
        Batch::new([event])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_serializers_and_closures_make_event_bytes() {
        let json = Event::json("page", &serde_json::json!({"name": "home"})).unwrap();
        assert_eq!(&json.data[..], br#"{"name":"home"}"#);
        let proto = Event::protobuf("ts", &prost_types::Timestamp { seconds: 1, nanos: 0 });
        assert_eq!(&proto.data[..], &[0x08, 0x01]);
        let failing = |_: &u8| Err::<Vec<u8>, _>("no bytes for you");
        let err = Event::serialize("x", &1u8, &failing).unwrap_err();
        assert_eq!(err.to_string(), "cannot serialize event data: no bytes for you");
    }

    #[test]
    fn batches_get_a_fresh_uuid_unless_given_one() {
        let a = Batch::new([Event::new("a", "1")]);
        let b = Batch::from(Event::new("a", "1"));
        assert_ne!(a.req_guid(), b.req_guid());
        assert_eq!(uuid::Uuid::parse_str(a.req_guid()).unwrap().get_version_num(), 4);
        assert_eq!(a.with_req_guid("mine").req_guid(), "mine");
    }
}
