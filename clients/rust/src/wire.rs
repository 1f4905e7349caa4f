//! Request encodings and replies.
//!
//! A [`Batch`] goes on the wire as one [`SendEventRequest`] with `sent_time` set to the time of its
//! first attempt: protobuf ([`Encoding::Proto`]: REST `Content-Type: application/proto`,
//! WebSocket binary frames, always over gRPC) or JSON ([`Encoding::Json`]: REST
//! `application/json`, WebSocket text frames) in Raccoon's shape, `event_bytes` as standard
//! base64. Replies come back in the request's encoding and become a [`Response`].
//!
//! [`SendEventRequest`]: crate::pb::SendEventRequest

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;

use crate::event::Batch;
use crate::pb;
use crate::{Code, Status};

/// How a request is encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Protobuf [`SendEventRequest`] (the default).
    ///
    /// [`SendEventRequest`]: crate::pb::SendEventRequest
    #[default]
    Proto,
    /// JSON [`SendEventRequest`] in Raccoon's shape.
    ///
    /// [`SendEventRequest`]: crate::pb::SendEventRequest
    Json,
}

impl Encoding {
    /// The protobuf encoding under its former name.
    #[deprecated(note = "use `Encoding::Proto`, the name the server and the Go client use")]
    #[allow(non_upper_case_globals)]
    pub const Protobuf: Encoding = Encoding::Proto;

    /// The REST `Content-Type` of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/proto",
            Encoding::Json => "application/json",
        }
    }
}

impl std::str::FromStr for Encoding {
    type Err = String;

    /// `proto`/`protobuf` or `json`, in any letter case.
    fn from_str(s: &str) -> Result<Encoding, String> {
        match s.to_ascii_lowercase().as_str() {
            "proto" | "protobuf" => Ok(Encoding::Proto),
            "json" => Ok(Encoding::Json),
            other => Err(format!("unknown encoding {other:?} (want json or proto)")),
        }
    }
}

/// The server's reply to one batch ([`SendEventResponse`]).
///
/// [`SendEventResponse`]: crate::pb::SendEventResponse
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Success or error.
    pub status: Status,
    /// What happened, in more detail.
    pub code: Code,
    /// Server time, Unix seconds.
    pub sent_time: i64,
    /// Why it failed; empty on success.
    pub reason: String,
    /// `{"req_guid": ...}` on per-batch replies; empty on connection-level refusals.
    pub data: HashMap<String, String>,
}

impl Response {
    /// The `req_guid` the reply names, if any.
    pub fn req_guid(&self) -> Option<&str> {
        self.data.get("req_guid").map(String::as_str)
    }

    /// Whether the batch was accepted (`STATUS_SUCCESS`).
    pub fn is_success(&self) -> bool {
        self.status == Status::Success
    }
}

impl From<pb::SendEventResponse> for Response {
    fn from(r: pb::SendEventResponse) -> Response {
        Response { status: r.status(), code: r.code(), sent_time: r.sent_time, reason: r.reason, data: r.data }
    }
}

/// Unix time now, as the `sent_time` of a request.
pub(crate) fn now() -> prost_types::Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

/// The protobuf message of `batch`, stamped with the current time.
pub(crate) fn request(batch: &Batch) -> pb::SendEventRequest {
    pb::SendEventRequest {
        req_guid: batch.req_guid().to_owned(),
        sent_time: Some(now()),
        events: batch
            .events()
            .iter()
            .map(|e| pb::Event { event_bytes: e.data.clone(), r#type: e.event_type.clone() })
            .collect(),
    }
}

/// `batch` encoded once, stamped with the current time.
pub(crate) fn encode(batch: &Batch, encoding: Encoding) -> Bytes {
    let req = request(batch);
    match encoding {
        Encoding::Proto => Bytes::from(req.encode_to_vec()),
        Encoding::Json => Bytes::from(encode_json(&req)),
    }
}

fn encode_json(req: &pb::SendEventRequest) -> String {
    let ts = req.sent_time.unwrap_or_default();
    let events: Vec<_> = req
        .events
        .iter()
        .map(|e| {
            serde_json::json!({
                "event_bytes": base64::engine::general_purpose::STANDARD.encode(&e.event_bytes),
                "type": e.r#type,
            })
        })
        .collect();
    serde_json::json!({
        "req_guid": req.req_guid,
        "sent_time": {"seconds": ts.seconds, "nanos": ts.nanos},
        "events": events,
    })
    .to_string()
}

/// The reply as JSON, in Raccoon's shape (numeric enums, fields left out when empty).
#[derive(serde::Deserialize)]
struct JsonReply {
    #[serde(default)]
    status: i32,
    #[serde(default)]
    code: i32,
    #[serde(default)]
    sent_time: i64,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    data: HashMap<String, String>,
}

/// Decodes a protobuf reply.
pub(crate) fn decode_proto(bytes: &[u8]) -> Result<Response, String> {
    pb::SendEventResponse::decode(bytes).map(Response::from).map_err(|e| e.to_string())
}

/// Decodes a JSON reply.
pub(crate) fn decode_json(bytes: &[u8]) -> Result<Response, String> {
    let r: JsonReply = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(Response {
        status: Status::try_from(r.status).unwrap_or(Status::Unspecified),
        code: Code::try_from(r.code).unwrap_or(Code::Unspecified),
        sent_time: r.sent_time,
        reason: r.reason,
        data: r.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    #[test]
    fn json_requests_have_raccoons_shape() {
        let batch = Batch::new([Event::new("page", &b"\x00hi"[..])]).with_req_guid("g-1");
        let json: serde_json::Value = serde_json::from_slice(&encode(&batch, Encoding::Json)).unwrap();
        assert_eq!(json["req_guid"], "g-1");
        assert_eq!(json["events"][0]["type"], "page");
        assert_eq!(json["events"][0]["event_bytes"], "AGhp");
        assert!(json["sent_time"]["seconds"].as_i64().unwrap() > 1_700_000_000);
    }

    #[test]
    fn protobuf_requests_round_trip() {
        let batch = Batch::new([Event::new("a", "1"), Event::new("b", "2")]);
        let req = pb::SendEventRequest::decode(encode(&batch, Encoding::Proto)).unwrap();
        assert_eq!(req.req_guid, batch.req_guid());
        assert_eq!(req.events.len(), 2);
        assert_eq!(req.events[1].r#type, "b");
    }

    #[test]
    fn json_replies_decode_with_fields_left_out() {
        let ok = decode_json(br#"{"status":1,"code":1,"sent_time":5,"data":{"req_guid":"g"}}"#).unwrap();
        assert!(ok.is_success());
        assert_eq!(ok.req_guid(), Some("g"));
        let bad = decode_json(br#"{"status":2,"code":2,"sent_time":5,"reason":"invalid content type"}"#).unwrap();
        assert_eq!((bad.code, bad.reason.as_str(), bad.req_guid()), (Code::BadRequest, "invalid content type", None));
        assert!(decode_json(b"not json").is_err());
    }

    #[test]
    fn encodings_parse_from_their_names() {
        assert_eq!("JSON".parse::<Encoding>(), Ok(Encoding::Json));
        assert_eq!("proto".parse::<Encoding>(), Ok(Encoding::Proto));
        assert!("xml".parse::<Encoding>().is_err());
    }

    #[test]
    #[allow(deprecated)]
    fn the_former_name_protobuf_is_proto() {
        assert_eq!(Encoding::Protobuf, Encoding::Proto);
        assert_eq!(Encoding::default(), Encoding::Protobuf);
        assert!(matches!(Encoding::Proto, Encoding::Protobuf));
        assert_eq!(Encoding::Protobuf.content_type(), "application/proto");
    }
}
