//! gRPC over HTTP/2, the unary part Raccoon's `EventService/SendEvent` needs: the method paths,
//! the 5-byte message prefix (compressed flag, big-endian length), status codes, and the
//! `grpc-message` and `grpc-timeout` headers. hyper carries the HTTP/2 frames; this module only
//! turns bodies into messages and outcomes into trailers.
//!
//! Written here rather than taken from tonic: tonic's server needs tokio's runtime and `Send`
//! services, and the shards run `!Send` tasks on glommio; the unary framing is a few dozen lines.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// `SendEvent`'s path under the current package, and the older ones Raccoon served
/// (the binary contract never changed, only the package name).
pub const SEND_EVENT_PATHS: [&str; 3] = [
    "/raystack.raccoon.v1beta1.EventService/SendEvent",
    "/odpf.raccoon.v1beta1.EventService/SendEvent",
    "/odpf.raccoon.EventService/SendEvent",
];

/// The `UNIMPLEMENTED` message for a path that is not [`SEND_EVENT_PATHS`], in grpc-go's words
/// (Raccoon's server is grpc-go): an unknown method of a known service, an unknown service, or
/// a path that names no method.
pub fn unknown_method_message(path: &str) -> String {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.rsplit_once('/')) else {
        return format!("malformed method name: {path:?}");
    };
    let known = SEND_EVENT_PATHS.iter().any(|known| known[1..].rsplit_once('/').is_some_and(|(s, _)| s == service));
    if known {
        format!("unknown method {method} for service {service}")
    } else {
        format!("unknown service {service}")
    }
}

/// Length of the prefix before every message.
pub const PREFIX_BYTES: usize = 5;

/// The gRPC status codes this server answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    /// 0: the call completed (the reply's own `status`/`code` say how the batch fared).
    Ok = 0,
    /// 2: Raccoon's answer to a call without the connection id metadata.
    Unknown = 2,
    /// 4: `grpc-timeout` passed before the batch's outcome was known.
    DeadlineExceeded = 4,
    /// 8: the message is larger than `SERVER_GRPC_MAX_MESSAGE_BYTES`.
    ResourceExhausted = 8,
    /// 12: unknown method, or a compressed message.
    Unimplemented = 12,
    /// 13: the body is not one [`SendEventRequest`].
    ///
    /// [`SendEventRequest`]: crate::pb::SendEventRequest
    Internal = 13,
    /// 14: the server is shutting down, or the publisher has stopped.
    Unavailable = 14,
}

impl GrpcCode {
    /// The `grpc-status` header value.
    pub fn as_header(self) -> &'static str {
        match self {
            GrpcCode::Ok => "0",
            GrpcCode::Unknown => "2",
            GrpcCode::DeadlineExceeded => "4",
            GrpcCode::ResourceExhausted => "8",
            GrpcCode::Unimplemented => "12",
            GrpcCode::Internal => "13",
            GrpcCode::Unavailable => "14",
        }
    }
}

/// Why a request body is not one usable message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Fewer bytes than the prefix, or than the prefix declares.
    #[error("grpc: request body of {got} bytes ends inside a message of {want} bytes")]
    Truncated {
        /// Bytes present.
        got: usize,
        /// Bytes the prefix (or the prefix itself) needs.
        want: usize,
    },
    /// The message is over the limit.
    #[error("grpc: received message larger than max ({len} vs. {max})")]
    TooLarge {
        /// Declared length.
        len: usize,
        /// `SERVER_GRPC_MAX_MESSAGE_BYTES`.
        max: usize,
    },
    /// The compressed flag is set; this server announces no `grpc-accept-encoding`.
    #[error("grpc: compressed messages are not supported; send them uncompressed")]
    Compressed,
    /// Bytes after the first message: a unary call carries exactly one.
    #[error("grpc: {extra} bytes after the request message; a unary call carries one message")]
    Trailing {
        /// Bytes beyond the first message.
        extra: usize,
    },
}

impl FrameError {
    /// The status to end the call with.
    pub fn code(&self) -> GrpcCode {
        match self {
            FrameError::TooLarge { .. } => GrpcCode::ResourceExhausted,
            FrameError::Compressed => GrpcCode::Unimplemented,
            FrameError::Truncated { .. } | FrameError::Trailing { .. } => GrpcCode::Internal,
        }
    }
}

/// Checks a message prefix as soon as its 5 bytes are in, so an oversized message is refused
/// before it is buffered. Returns the declared length.
pub fn check_prefix(prefix: &[u8], max: usize) -> Result<usize, FrameError> {
    if prefix.len() < PREFIX_BYTES {
        return Err(FrameError::Truncated { got: prefix.len(), want: PREFIX_BYTES });
    }
    if prefix[0] != 0 {
        return Err(FrameError::Compressed);
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// The one message of a unary request body (a slice of it, not a copy).
pub fn decode_unary(body: Bytes, max: usize) -> Result<Bytes, FrameError> {
    let len = check_prefix(&body, max)?;
    let want = PREFIX_BYTES + len;
    match body.len() {
        got if got < want => Err(FrameError::Truncated { got, want }),
        got if got > want => Err(FrameError::Trailing { extra: got - want }),
        _ => Ok(body.slice(PREFIX_BYTES..)),
    }
}

/// A message with its prefix, as the response body carries it.
pub fn encode_message(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX_BYTES + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// `grpc-message` encoding: printable ASCII except `%` as is, every other byte as `%XX`.
pub fn encode_grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Parses `grpc-timeout` (`<up to 8 digits><H|M|S|m|u|n>`). `None` for a malformed value,
/// which is ignored (no deadline).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    // The unit is one ASCII letter; checking that first keeps the split on a char boundary.
    if !value.as_bytes().last()?.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unknown_methods_are_named_as_grpc_go_names_them() {
        assert_eq!(
            unknown_method_message("/raystack.raccoon.v1beta1.EventService/Nope"),
            "unknown method Nope for service raystack.raccoon.v1beta1.EventService"
        );
        assert_eq!(
            unknown_method_message("/odpf.raccoon.EventService/X").split(" for ").nth(1),
            Some("service odpf.raccoon.EventService")
        );
        assert_eq!(unknown_method_message("/grpc.health.v1.Health/Check"), "unknown service grpc.health.v1.Health");
        assert_eq!(unknown_method_message("/nothing"), "malformed method name: \"/nothing\"");
    }

    #[test]
    fn one_message_round_trips_as_a_slice() {
        let body = encode_message(b"hello");
        assert_eq!(&body[..5], &[0, 0, 0, 0, 5]);
        let message = decode_unary(body.clone(), 1024).unwrap();
        assert_eq!(&message[..], b"hello");
        assert_eq!(message.as_ptr(), body[5..].as_ptr(), "the message is a slice of the body");
        assert_eq!(decode_unary(encode_message(b""), 0).unwrap().len(), 0);
    }

    #[test]
    fn framing_errors_map_to_grpc_codes() {
        let big = FrameError::TooLarge { len: 5_000_000, max: 4_194_304 };
        assert_eq!(check_prefix(&[0, 0, 0x4c, 0x4b, 0x40], 4_194_304), Err(big));
        assert_eq!(big.code(), GrpcCode::ResourceExhausted);
        assert_eq!(big.to_string(), "grpc: received message larger than max (5000000 vs. 4194304)");
        assert_eq!(check_prefix(&[1, 0, 0, 0, 1], 10), Err(FrameError::Compressed));
        assert_eq!(FrameError::Compressed.code(), GrpcCode::Unimplemented);
        assert_eq!(decode_unary(Bytes::from_static(&[0, 0, 0]), 10), Err(FrameError::Truncated { got: 3, want: 5 }));
        assert_eq!(
            decode_unary(Bytes::from_static(&[0, 0, 0, 0, 2, 1]), 10),
            Err(FrameError::Truncated { got: 6, want: 7 })
        );
        let two = [encode_message(b"a"), encode_message(b"b")].concat();
        assert_eq!(decode_unary(Bytes::from(two), 10), Err(FrameError::Trailing { extra: 6 }));
        assert_eq!(FrameError::Trailing { extra: 1 }.code(), GrpcCode::Internal);
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(encode_grpc_message("connection id header missing"), "connection id header missing");
        assert_eq!(encode_grpc_message("100% é\n"), "100%25 %C3%A9%0A");
    }

    #[test]
    fn timeouts_parse_every_unit() {
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_timeout("40m"), Some(Duration::from_millis(40)));
        assert_eq!(parse_timeout("5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse_timeout("6n"), Some(Duration::from_nanos(6)));
        for bad in ["", "S", "123456789S", "1s", "-1S", "1.5S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..64), max in 0usize..100) {
            let _ = decode_unary(Bytes::from(body), max);
        }

        #[test]
        fn timeouts_never_panic(value in "\\PC{0,12}") {
            let _ = parse_timeout(&value);
        }
    }
}
