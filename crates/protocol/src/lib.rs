//! Raccoon's sans-IO codecs: batch decoding (protobuf in [`batch`], JSON in [`json`], with its
//! helpers [`base64`] and [`timestamp`]), reply encoding ([`reply`]), each transport's answer to a
//! batch that was not published ([`refusal`]), HTTP [`routing`], the heads
//! of the WebSocket [`handshake`], who a request belongs to ([`identity`]), [`origin`]s and
//! [`cors`], [`grpc`] framing and [`websocket`] framing, and [`rawproto`], which renders a protobuf
//! payload of unknown type as text.
//!
//! Nothing here knows a runtime, a socket, a thread or Kafka (this crate's manifest has none of
//! them to use); everything is a function of bytes (or `http` crate types) in, bytes or
//! [`raccoon_core`] types out.

pub mod base64;
pub mod batch;
pub mod cors;
pub mod grpc;
pub mod handshake;
pub mod identity;
pub mod json;
pub mod origin;
pub mod rawproto;
pub mod refusal;
pub mod reply;
pub mod routing;
pub mod timestamp;
pub mod websocket;

/// How a batch and its reply are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Protobuf: WebSocket binary frames, REST `application/proto`, gRPC.
    Proto,
    /// JSON in Raccoon's shape: WebSocket text frames, REST `application/json`.
    Json,
}

impl Encoding {
    /// Decodes a batch sent in this encoding ([`batch::decode_batch`] or
    /// [`json::decode_json_batch`]).
    pub fn decode(
        self,
        bytes: bytes::Bytes,
        pattern: &raccoon_core::topic::TopicPattern,
    ) -> Result<batch::DecodedBatch, batch::BatchError> {
        match self {
            Encoding::Proto => batch::decode_batch(bytes, pattern),
            Encoding::Json => json::decode_json_batch(&bytes, pattern),
        }
    }
}

/// The wire contract `raystack.raccoon.v1beta1` ([`raccoon_proto`]).
pub use raccoon_proto as pb;
