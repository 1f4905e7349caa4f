//! The one place where a batch that was not published becomes each transport's answer.
//!
//! The publisher decides what a failure means ([`Refusal`], in `raccoon-publish`'s
//! classification table); this module decides what each transport says for it:
//!
//! | Refusal | reply code (WebSocket, REST and gRPC bodies) | REST status | gRPC |
//! |---|---|---|---|
//! | [`Refusal::Retriable`] | 3 `CODE_INTERNAL_ERROR`, reason ending "retry: ..." | 503, `Retry-After: 1` | `UNAVAILABLE`, no body |
//! | [`Refusal::UnknownTopic`] | 3 `CODE_INTERNAL_ERROR` (Raccoon's) | 500 (Raccoon's) | `OK` with the reply (Raccoon's) |
//! | [`Refusal::Rejected`] | 2 `CODE_BAD_REQUEST`: do not resend | 400 | `OK` with the reply |
//!
//! Raccoon's clients resend a batch answered code 3 and drop one answered code 2, which is what
//! each refusal asks of them. A WebSocket stays open whatever the refusal: it concerns the batch,
//! not the connection. The metric label of a refusal is [`Refusal::as_label`].

use http::StatusCode;

use raccoon_core::handoff::{Failure, Persistence, Refusal};

use crate::grpc::GrpcCode;
use crate::pb::{Code, Status};
use crate::reply::{Reply, PUBLISH_FAILURE_PREFIX};

/// `Retry-After` on a REST 503: seconds before sending the batch again.
pub const RETRY_AFTER_SECS: &str = "1";

/// The reply to a batch that failed: Raccoon's `cannot publish events: ` prefix, what happened,
/// and, for a retriable failure, what sending the batch again does.
pub fn reply(req_guid: String, failure: &Failure) -> Reply {
    let code = match failure.refusal {
        Refusal::Retriable | Refusal::UnknownTopic => Code::InternalError,
        Refusal::Rejected => Code::BadRequest,
    };
    let advice = match (failure.refusal, failure.persistence) {
        (Refusal::UnknownTopic, _) => "",
        (Refusal::Rejected, _) => " (rejected: do not send these events again as they are)",
        (Refusal::Retriable, Persistence::NotPublished) if failure.failed == failure.total => {
            " (retry: none of the batch was published)"
        }
        (Refusal::Retriable, Persistence::NotPublished) => {
            " (retry: the failed events were not published; the others were, and sending the batch again repeats them)"
        }
        (Refusal::Retriable, Persistence::MaybePublished) => {
            " (retry: some failed events may have been published; sending the batch again may repeat them)"
        }
        (Refusal::Retriable, Persistence::StillPending) => {
            " (retry: its events are still queued for Kafka and may yet be published; sending the batch again may repeat them)"
        }
    };
    Reply {
        status: Status::Error,
        code,
        reason: format!("{PUBLISH_FAILURE_PREFIX}{}{advice}", failure.detail),
        req_guid: Some(req_guid),
    }
}

/// The reply to a copy of a batch (same `req_guid`, same WebSocket, deduplication on) whose
/// first copy was answered "retry" while its events are still queued for Kafka: this copy is not
/// published, so nothing is published twice, and the client is told to try again later, when
/// the first copy's outcome is known (a delivered batch's next copy is answered success).
pub fn copy_still_pending(req_guid: String) -> Reply {
    Reply {
        status: Status::Error,
        code: Code::InternalError,
        reason: format!(
            "{PUBLISH_FAILURE_PREFIX}an earlier copy of this batch is still queued for Kafka; this copy was not published (retry later)"
        ),
        req_guid: Some(req_guid),
    }
}

/// The REST status of a failed batch.
pub fn http_status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::Retriable => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::UnknownTopic => StatusCode::INTERNAL_SERVER_ERROR,
        Refusal::Rejected => StatusCode::BAD_REQUEST,
    }
}

/// How a gRPC call ends for a failed batch: with a status and no message (`Some`), or with
/// the [`reply`] and status `OK` (`None`), as Raccoon answers every failure.
pub fn grpc_status(refusal: Refusal) -> Option<GrpcCode> {
    match refusal {
        Refusal::Retriable => Some(GrpcCode::Unavailable),
        Refusal::UnknownTopic | Refusal::Rejected => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(refusal: Refusal, persistence: Persistence, failed: usize) -> Failure {
        Failure { refusal, persistence, failed, total: 4, error_code: 0, detail: "what happened".into() }
    }

    #[test]
    fn each_refusal_has_its_answer_on_every_transport() {
        let retry = reply("g".into(), &failure(Refusal::Retriable, Persistence::NotPublished, 4));
        assert_eq!((retry.status, retry.code), (Status::Error, Code::InternalError));
        assert_eq!(retry.reason, "cannot publish events: what happened (retry: none of the batch was published)");
        assert_eq!(retry.req_guid.as_deref(), Some("g"));
        assert_eq!(http_status(Refusal::Retriable), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(grpc_status(Refusal::Retriable), Some(GrpcCode::Unavailable));

        let rejected = reply("g".into(), &failure(Refusal::Rejected, Persistence::NotPublished, 1));
        assert_eq!(rejected.code, Code::BadRequest, "clients stop resending");
        assert!(rejected.reason.ends_with("(rejected: do not send these events again as they are)"));
        assert_eq!(http_status(Refusal::Rejected), StatusCode::BAD_REQUEST);
        assert_eq!(grpc_status(Refusal::Rejected), None);

        // Raccoon's answer to a missing topic, unchanged.
        let missing = reply("g".into(), &failure(Refusal::UnknownTopic, Persistence::NotPublished, 4));
        assert_eq!(missing.code, Code::InternalError);
        assert_eq!(missing.reason, "cannot publish events: what happened");
        assert_eq!(http_status(Refusal::UnknownTopic), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(grpc_status(Refusal::UnknownTopic), None);
    }

    #[test]
    fn a_retriable_reason_says_what_sending_again_does() {
        let reason =
            |persistence, failed| reply(String::new(), &failure(Refusal::Retriable, persistence, failed)).reason;
        assert!(
            reason(Persistence::NotPublished, 2).contains("the others were, and sending the batch again repeats them")
        );
        assert!(reason(Persistence::MaybePublished, 4).contains("may have been published"));
        assert!(reason(Persistence::StillPending, 4).contains("still queued for Kafka and may yet be published"));
    }
}
