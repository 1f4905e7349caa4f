//! Building [`SendEventResponse`] replies, the same ones Raccoon sends (spec section 1.6).
//!
//! [`SendEventResponse`]: crate::pb::SendEventResponse

use std::time::{SystemTime, UNIX_EPOCH};

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

use crate::pb::{Code, Status};
use crate::Encoding;

/// The prefix Raccoon puts before a publish failure; kept for clients that match on it.
pub const PUBLISH_FAILURE_PREFIX: &str = "cannot publish events: ";

/// One reply to a client, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `STATUS_SUCCESS` or `STATUS_ERROR`.
    pub status: Status,
    /// What happened.
    pub code: Code,
    /// Human-readable reason; empty on success.
    pub reason: String,
    /// `Some` on per-batch replies (echoed as `data["req_guid"]`), `None` on connection-level
    /// rejections, which carry no `data`.
    pub req_guid: Option<String>,
}

impl Reply {
    /// The batch was accepted (`EVENT_ACK=0`) or delivered (`EVENT_ACK=1`).
    pub fn success(req_guid: String) -> Self {
        Reply { status: Status::Success, code: Code::Ok, reason: String::new(), req_guid: Some(req_guid) }
    }

    /// The frame could not be used; nothing was published.
    pub fn bad_request(req_guid: String, reason: String) -> Self {
        Reply { status: Status::Error, code: Code::BadRequest, reason, req_guid: Some(req_guid) }
    }

    /// Connection refused after the upgrade because the server is at its connection limit
    /// (reason text as Raccoon's).
    pub fn max_connections() -> Self {
        Reply {
            status: Status::Error,
            code: Code::MaxConnectionLimitReached,
            reason: "max connection reached".to_owned(),
            req_guid: None,
        }
    }

    /// A request-level refusal that carries no `data` (REST: bad content type, undecodable
    /// body, body too large; as Raccoon's REST handler answers them).
    pub fn request_error(code: Code, reason: String) -> Self {
        Reply { status: Status::Error, code, reason, req_guid: None }
    }

    /// The reply in `encoding`, with `sent_time` set to `now_unix_secs`.
    pub fn encode(&self, encoding: Encoding, now_unix_secs: i64) -> Vec<u8> {
        match encoding {
            Encoding::Proto => self.encode_proto(now_unix_secs),
            Encoding::Json => self.encode_json(now_unix_secs).into_bytes(),
        }
    }

    /// Connection refused after the upgrade because a connection with the same identifier
    /// (`group`, `id`) is open. The reason is Raccoon's, trailing comma included.
    pub fn duplicate_connection(group: &str, id: &str) -> Self {
        Reply {
            status: Status::Error,
            code: Code::MaxUserLimitReached,
            reason: format!("duplicated connection: [{group}] {id},"),
            req_guid: None,
        }
    }

    /// The protobuf encoding, with `sent_time` set to `now_unix_secs`.
    pub fn encode_proto(&self, now_unix_secs: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.proto_len(now_unix_secs));
        self.encode_proto_into(now_unix_secs, &mut out);
        out
    }

    /// The length of [`Reply::encode_proto`]'s bytes.
    pub fn proto_len(&self, now_unix_secs: i64) -> usize {
        let enum_len = |v: i32| if v == 0 { 0 } else { 1 + encoded_len_varint(v as u64) };
        let sent = if now_unix_secs == 0 { 0 } else { 1 + encoded_len_varint(now_unix_secs as u64) };
        let reason = if self.reason.is_empty() { 0 } else { 1 + delimited_len(self.reason.len()) };
        let data = self.req_guid.as_ref().map_or(0, |guid| 1 + delimited_len(data_entry_len(guid)));
        enum_len(self.status as i32) + enum_len(self.code as i32) + sent + reason + data
    }

    /// Appends [`Reply::encode_proto`]'s bytes to `out`: the bytes prost writes for the
    /// [`SendEventResponse`] (a test checks they are the same), without building the message and
    /// its `data` map per reply.
    ///
    /// [`SendEventResponse`]: crate::pb::SendEventResponse
    pub fn encode_proto_into(&self, now_unix_secs: i64, out: &mut Vec<u8>) {
        for (tag, value) in [(1, self.status as i32), (2, self.code as i32)] {
            if value != 0 {
                encode_key(tag, WireType::Varint, out);
                encode_varint(value as u64, out);
            }
        }
        if now_unix_secs != 0 {
            encode_key(3, WireType::Varint, out);
            encode_varint(now_unix_secs as u64, out);
        }
        if !self.reason.is_empty() {
            encode_key(4, WireType::LengthDelimited, out);
            encode_varint(self.reason.len() as u64, out);
            out.extend_from_slice(self.reason.as_bytes());
        }
        if let Some(guid) = &self.req_guid {
            // One `data` map entry: key 1 = "req_guid", value 2 = the guid (left out when empty,
            // as prost leaves out default values in map entries).
            encode_key(5, WireType::LengthDelimited, out);
            encode_varint(data_entry_len(guid) as u64, out);
            encode_key(1, WireType::LengthDelimited, out);
            encode_varint(REQ_GUID_KEY.len() as u64, out);
            out.extend_from_slice(REQ_GUID_KEY.as_bytes());
            if !guid.is_empty() {
                encode_key(2, WireType::LengthDelimited, out);
                encode_varint(guid.len() as u64, out);
                out.extend_from_slice(guid.as_bytes());
            }
        }
    }
}

/// The key of the one `data` entry per-batch replies carry.
const REQ_GUID_KEY: &str = "req_guid";

/// A length-delimited field's length prefix and bytes.
fn delimited_len(len: usize) -> usize {
    encoded_len_varint(len as u64) + len
}

/// The length of the `data` map entry holding `guid`.
fn data_entry_len(guid: &str) -> usize {
    1 + delimited_len(REQ_GUID_KEY.len()) + if guid.is_empty() { 0 } else { 1 + delimited_len(guid.len()) }
}

impl Reply {
    /// The JSON encoding Raccoon uses (Go `encoding/json` over the generated struct): snake_case
    /// names, numeric enums, empty fields left out, no trailing newline. Written straight into one
    /// `String`, with strings escaped as Go escapes them (see `push_json_string`).
    pub fn encode_json(&self, now_unix_secs: i64) -> String {
        use std::fmt::Write;
        let guid_len = self.req_guid.as_ref().map_or(0, String::len);
        let mut out = String::with_capacity(64 + self.reason.len() + guid_len);
        // Writing into a String cannot fail.
        let _ = write!(out, "{{\"status\":{},\"code\":{}", self.status as i32, self.code as i32);
        if now_unix_secs != 0 {
            let _ = write!(out, ",\"sent_time\":{now_unix_secs}");
        }
        if !self.reason.is_empty() {
            out.push_str(",\"reason\":");
            push_json_string(&mut out, &self.reason);
        }
        if let Some(guid) = &self.req_guid {
            out.push_str(",\"data\":{\"req_guid\":");
            push_json_string(&mut out, guid);
            out.push('}');
        }
        out.push('}');
        out
    }
}

/// Appends `text` as a JSON string the way Go's `encoding/json` writes one: `\"`, `\\`, short
/// escapes for `\b \f \n \r \t`, `\u00XX` for other control characters, and, Go's HTML-safe
/// default, `\u003c \u003e \u0026` for `< > &` and `\u2028 \u2029` for the line separators.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, ch) in text.char_indices() {
        let short = match ch {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c < ' ' || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if short.is_empty() {
            let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04x}", u32::from(ch)));
        } else {
            out.push_str(short);
        }
        start = i + ch.len_utf8();
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// Seconds since the Unix epoch, as Raccoon's `time.Now().Unix()`.
pub fn unix_now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::SendEventResponse;
    use prost::Message;
    use std::collections::HashMap;

    /// What prost writes for the same reply: the bytes `encode_proto_into` must match.
    fn prost_bytes(reply: &Reply, now: i64) -> Vec<u8> {
        let data = match &reply.req_guid {
            Some(guid) => HashMap::from([("req_guid".to_owned(), guid.clone())]),
            None => HashMap::new(),
        };
        SendEventResponse {
            status: reply.status as i32,
            code: reply.code as i32,
            sent_time: now,
            reason: reply.reason.clone(),
            data,
        }
        .encode_to_vec()
    }

    #[test]
    fn hand_encoding_is_byte_for_byte_prost() {
        let long = "r".repeat(300);
        let replies = [
            Reply::success("1234".into()),
            Reply::success(String::new()),
            Reply::success("g".repeat(200)),
            Reply::bad_request("abc".into(), "cannot decode".into()),
            Reply::bad_request(String::new(), long.clone()),
            crate::refusal::reply(
                "x".into(),
                &raccoon_core::handoff::Failure {
                    refusal: raccoon_core::handoff::Refusal::Retriable,
                    persistence: raccoon_core::handoff::Persistence::NotPublished,
                    failed: 1,
                    total: 1,
                    error_code: -192,
                    detail: long,
                },
            ),
            Reply::max_connections(),
            Reply::duplicate_connection("group", "id"),
        ];
        for reply in &replies {
            for now in [0, 1, 1_690_000_000, -5, i64::MAX] {
                let ours = reply.encode_proto(now);
                assert_eq!(ours, prost_bytes(reply, now), "{reply:?} at {now}");
                assert_eq!(reply.proto_len(now), ours.len(), "{reply:?} at {now}");
            }
        }
    }

    #[test]
    fn success_round_trips_with_req_guid() {
        let bytes = Reply::success("1234".into()).encode_proto(1_690_000_000);
        let resp = SendEventResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(resp.status(), Status::Success);
        assert_eq!(resp.code(), Code::Ok);
        assert_eq!(resp.sent_time, 1_690_000_000);
        assert_eq!(resp.reason, "");
        assert_eq!(resp.data.get("req_guid").map(String::as_str), Some("1234"));
    }

    #[test]
    fn empty_req_guid_is_still_echoed() {
        let bytes = Reply::bad_request(String::new(), "x".into()).encode_proto(1);
        let resp = SendEventResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(resp.code(), Code::BadRequest);
        assert_eq!(resp.data.get("req_guid").map(String::as_str), Some(""));
    }

    #[test]
    fn connection_rejection_has_no_data() {
        let bytes = Reply::max_connections().encode_proto(1);
        let resp = SendEventResponse::decode(bytes.as_slice()).unwrap();
        assert_eq!(resp.code(), Code::MaxConnectionLimitReached);
        assert_eq!(resp.reason, "max connection reached");
        assert!(resp.data.is_empty());
    }

    #[test]
    fn duplicate_connection_is_code_5_with_raccoons_reason() {
        let resp =
            SendEventResponse::decode(Reply::duplicate_connection("--default--", "1234").encode_proto(1).as_slice())
                .unwrap();
        assert_eq!(resp.status(), Status::Error);
        assert_eq!(resp.code(), Code::MaxUserLimitReached);
        assert_eq!(resp.reason, "duplicated connection: [--default--] 1234,");
        assert!(resp.data.is_empty());
        assert_eq!(Reply::duplicate_connection("g", "").reason, "duplicated connection: [g] ,");
    }

    #[test]
    fn json_shape_is_raccoons() {
        assert_eq!(
            Reply::success("1234".into()).encode_json(1_690_000_000),
            r#"{"status":1,"code":1,"sent_time":1690000000,"data":{"req_guid":"1234"}}"#
        );
        assert_eq!(
            Reply::bad_request(String::new(), "bad".into()).encode_json(7),
            r#"{"status":2,"code":2,"sent_time":7,"reason":"bad","data":{"req_guid":""}}"#
        );
    }

    #[test]
    fn json_strings_are_escaped_as_go_escapes_them() {
        let reason = "a\"b\\c\n\r\t\u{8}\u{c}\u{1}<>&\u{2028}\u{2029}é😀";
        let json = Reply::bad_request("g\"1".into(), reason.into()).encode_json(7);
        assert_eq!(
            json,
            r#"{"status":2,"code":2,"sent_time":7,"reason":"a\"b\\c\n\r\t\b\f\u0001\u003c\u003e\u0026\u2028\u2029é😀","data":{"req_guid":"g\"1"}}"#
        );
        // Any JSON parser reads back the original text.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["reason"], reason);
        assert_eq!(value["data"]["req_guid"], "g\"1");
        assert_eq!(
            Reply::max_connections().encode_json(0),
            r#"{"status":2,"code":4,"reason":"max connection reached"}"#
        );
    }
}
