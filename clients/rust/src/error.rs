//! The client's one error type, and which errors are retried.
//!
//! Retried (with the same `req_guid`, as [`RetryPolicy`](crate::RetryPolicy) allows):
//! transport failures ([`Error::Connect`], [`Error::Transport`], [`Error::Timeout`]), replies with
//! `CODE_INTERNAL_ERROR` (3: Kafka failed the batch, or the server is shutting down), gRPC
//! `UNAVAILABLE`, and HTTP 502/503/504 answers that carry no reply (a proxy's).
//! Not retried: `CODE_BAD_REQUEST` (2: the same bytes would fail again), the connection
//! refusals `CODE_MAX_CONNECTION_LIMIT_REACHED` (4) and `CODE_MAX_USER_LIMIT_REACHED` (5), other
//! gRPC statuses, undecodable replies and configuration errors. A retried batch may be published
//! twice when the first attempt reached Kafka but its reply was lost: delivery is at least once,
//! and consumers can drop duplicates by `req_guid`.

use std::time::Duration;

use crate::wire::Response;
use crate::Code;

/// Everything a client call can fail with. `Clone`, so one outcome can go both to a waiting
/// caller and to the WebSocket ack stream.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection or the WebSocket upgrade failed.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Where to.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The connection failed or closed while a batch was on it.
    #[error("transport error with {addr}: {reason}")]
    Transport {
        /// The server's address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// No reply within the configured timeout.
    #[error("no reply from {addr} within {timeout:?}")]
    Timeout {
        /// The server's address.
        addr: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The server answered the batch with an error (`STATUS_ERROR`).
    #[error("the server refused batch {req_guid:?}: code {} ({:?}), reason {:?}", response.code as i32, response.code, response.reason)]
    Reply {
        /// The batch's guid.
        req_guid: String,
        /// The server's reply.
        response: Box<Response>,
    },
    /// The server refused the WebSocket connection after the upgrade (codes 4 and 5), or closed it
    /// with 1008 (policy violation). Terminal: the client does not reconnect.
    #[error("the server refused the connection: code {} ({code:?}), reason {reason:?}", *code as i32)]
    Rejected {
        /// `CODE_MAX_CONNECTION_LIMIT_REACHED`, `CODE_MAX_USER_LIMIT_REACHED`, or unspecified for
        /// a bare close 1008.
        code: Code,
        /// The server's reason.
        reason: String,
    },
    /// A gRPC call ended with a status other than `OK`.
    #[error("gRPC status {code:?}: {message}")]
    Grpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// An HTTP answer that is not a [`SendEventResponse`].
    ///
    /// [`SendEventResponse`]: crate::pb::SendEventResponse
    #[error("HTTP {status} without a reply: {body:?}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A reply that does not decode.
    #[error("cannot decode the reply: {0}")]
    Decode(String),
    /// The builder's settings do not make a client.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The client was closed, or its connection ended for good (it gave up reconnecting).
    #[error("the client is closed: {0}")]
    Closed(String),
}

impl Error {
    /// Whether the client retries a batch that failed with this error.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Reply { response, .. } => response.code == Code::InternalError,
            Error::Grpc { code, .. } => *code == tonic::Code::Unavailable,
            Error::Http { status, .. } => matches!(status, 502..=504),
            Error::Rejected { .. } | Error::Decode(_) | Error::Config(_) | Error::Closed(_) => false,
        }
    }

    /// The Raccoon code of a reply or refusal, if the error is one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Reply { response, .. } => Some(response.code),
            Error::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `Ok` for a successful reply, [`Error::Reply`] otherwise.
pub(crate) fn check(req_guid: &str, response: Response) -> Result<Response, Error> {
    if response.is_success() {
        Ok(response)
    } else {
        Err(Error::Reply { req_guid: req_guid.to_owned(), response: Box::new(response) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    fn reply(code: Code) -> Error {
        let response =
            Response { status: Status::Error, code, sent_time: 0, reason: "r".into(), data: Default::default() };
        Error::Reply { req_guid: "g".into(), response: Box::new(response) }
    }

    #[test]
    fn transport_failures_and_code_3_are_retried_code_2_4_5_are_not() {
        assert!(Error::Transport { addr: "a".into(), reason: "reset".into() }.is_retryable());
        assert!(Error::Timeout { addr: "a".into(), timeout: Duration::from_secs(1) }.is_retryable());
        assert!(reply(Code::InternalError).is_retryable());
        assert!(!reply(Code::BadRequest).is_retryable());
        assert!(!Error::Rejected { code: Code::MaxConnectionLimitReached, reason: String::new() }.is_retryable());
        assert!(!Error::Rejected { code: Code::MaxUserLimitReached, reason: String::new() }.is_retryable());
        assert!(Error::Grpc { code: tonic::Code::Unavailable, message: String::new() }.is_retryable());
        assert!(!Error::Grpc { code: tonic::Code::Unknown, message: String::new() }.is_retryable());
        assert!(Error::Http { status: 503, body: String::new() }.is_retryable());
        assert!(!Error::Http { status: 404, body: String::new() }.is_retryable());
    }

    #[test]
    fn messages_name_the_code_and_reason() {
        assert_eq!(
            reply(Code::BadRequest).to_string(),
            r#"the server refused batch "g": code 2 (BadRequest), reason "r""#
        );
        assert_eq!(reply(Code::BadRequest).code(), Some(Code::BadRequest));
    }
}
