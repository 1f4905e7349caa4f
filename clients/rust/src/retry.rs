//! The retry loop REST and gRPC share: attempts with the same encoded batch (so the same
//! `req_guid`) while the error is retryable and the policy allows.

use std::future::Future;
use std::time::Instant;

use crate::error::check;
use crate::options::Options;
use crate::{Error, Response};

/// Runs `attempt(retry)` (`retry` is 0 for the first attempt) until it succeeds, fails with an
/// error that is not retryable, or the policy's retries are spent. Records the batch's stats.
pub(crate) async fn with_retries<F, Fut>(opts: &Options, req_guid: &str, mut attempt: F) -> Result<Response, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Response, Error>>,
{
    let start = Instant::now();
    let mut retry = 0;
    loop {
        let tried = Instant::now();
        let result = attempt(retry).await.and_then(|r| check(req_guid, r));
        match result {
            Err(e) if e.is_retryable() && retry < opts.retry.max_retries => {
                retry += 1;
                let wait = opts.retry.backoff(retry);
                tracing::debug!(req_guid, retry, ?wait, error = %e, "retrying batch");
                tokio::time::sleep(wait).await;
            }
            result => {
                opts.stats.sent_in(start.elapsed());
                opts.stats.finished(result.is_ok(), tried.elapsed());
                if let Err(e) = &result {
                    tracing::debug!(req_guid, retries = retry, error = %e, "batch failed");
                }
                return result;
            }
        }
    }
}
