//! The health check's question to Kafka: which brokers are there? Asked with librdkafka's
//! DescribeCluster, which rust-rdkafka does not wrap.
//!
//! `fetch_metadata(None, ..)`, the wrapped call, asks for the metadata of every topic:
//! librdkafka's `rd_kafka_metadata` has no brokers-only form (with no topic it sends an empty
//! topic list, which the protocol reads as "all"). Against this machine's test broker, 1,947
//! topics, that answer was 181 KB, every [`super::CHECK_PERIOD`], for a yes or a no, built by the
//! broker each time (perf-results/2026-12-01-issue14.md, section 6). DescribeCluster is, in
//! librdkafka, a Metadata request with a null topic list: brokers and controller only. Any broker
//! answers it (Metadata v1, Kafka 0.10; on v0 librdkafka asks for all topics, as before).
//!
//! Runs on: the health-check thread.

use std::ffi::{c_void, CStr};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use rdkafka::bindings as rdsys;
use rdkafka::client::Client;
use rdkafka::ClientContext;

/// A client and the result queue of its DescribeCluster requests (destroyed when dropped).
///
/// Crosses threads: no (made and used by the health-check thread).
pub(super) struct ClusterProbe<'c, C: ClientContext> {
    client: &'c Client<C>,
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Tags each request, so that an answer which came after its check gave up is told apart
    /// from the current one and dropped.
    sequence: usize,
}

impl<'c, C: ClientContext> ClusterProbe<'c, C> {
    /// A probe that asks through `client`.
    #[allow(unsafe_code)]
    pub(super) fn new(client: &'c Client<C>) -> Self {
        // SAFETY: the client's handle is valid while `client` lives; `rd_kafka_queue_new` never
        // returns null (it aborts on allocation failure).
        let queue = unsafe { rdsys::rd_kafka_queue_new(client.native_ptr()) };
        ClusterProbe { client, queue: NonNull::new(queue).expect("rd_kafka_queue_new returned null"), sequence: 0 }
    }

    /// How many brokers the cluster reports, asked with a request timeout of `timeout`. An error
    /// says why there is no answer (no broker reachable in time, an error from the broker).
    pub(super) fn brokers(&mut self, timeout: Duration) -> Result<usize, String> {
        let tag = self.ask(timeout)?;
        // librdkafka answers every admin request by its request timeout (with an error if need
        // be); the margin covers its own scheduling.
        self.answer(tag, Instant::now() + timeout + Duration::from_secs(1))
    }

    /// Sends one DescribeCluster request, answered on the probe's queue; returns its tag.
    #[allow(unsafe_code)]
    fn ask(&mut self, timeout: Duration) -> Result<*mut c_void, String> {
        // Never 0: events without an opaque carry a null one.
        self.sequence = self.sequence.wrapping_add(1).max(1);
        let tag = self.sequence as *mut c_void;
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let rk = self.client.native_ptr();
        // SAFETY: `rk` is the live client; the options are copied into the request by
        // `rd_kafka_DescribeCluster` and destroyed right after it; the queue is ours and alive.
        unsafe {
            let options =
                rdsys::rd_kafka_AdminOptions_new(rk, rdsys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER);
            if options.is_null() {
                return Err("librdkafka refused DescribeCluster's options".into());
            }
            let mut errstr = [0 as std::ffi::c_char; 256];
            let err = rdsys::rd_kafka_AdminOptions_set_request_timeout(
                options,
                timeout_ms,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                rdsys::rd_kafka_AdminOptions_destroy(options);
                return Err(CStr::from_ptr(errstr.as_ptr()).to_string_lossy().into_owned());
            }
            rdsys::rd_kafka_AdminOptions_set_opaque(options, tag);
            rdsys::rd_kafka_DescribeCluster(rk, options, self.queue.as_ptr());
            rdsys::rd_kafka_AdminOptions_destroy(options);
        }
        Ok(tag)
    }

    /// Waits until `deadline` for the answer to the request tagged `tag`. Older answers, from
    /// checks that gave up before theirs came, are dropped on the way.
    #[allow(unsafe_code)]
    fn answer(&mut self, tag: *mut c_void, deadline: Instant) -> Result<usize, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("no answer to DescribeCluster in time".into());
            }
            let left_ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            // SAFETY: the queue is ours and alive; an event it returns is ours to destroy, which
            // `Event`'s drop does once.
            let Some(event) = NonNull::new(unsafe { rdsys::rd_kafka_queue_poll(self.queue.as_ptr(), left_ms) }) else {
                continue;
            };
            if let Some(answer) = Event(event).answer_to(tag) {
                return answer;
            }
        }
    }
}

impl<C: ClientContext> Drop for ClusterProbe<'_, C> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the queue came from `rd_kafka_queue_new` and is destroyed once, here, while its
        // client lives (the probe borrows it).
        unsafe { rdsys::rd_kafka_queue_destroy(self.queue.as_ptr()) }
    }
}

/// An event taken off the probe's queue, destroyed when dropped.
struct Event(NonNull<rdsys::rd_kafka_event_t>);

impl Event {
    /// The broker count or error this event carries, if it answers the request tagged `tag`;
    /// `None` for anything else (an older answer).
    #[allow(unsafe_code)]
    fn answer_to(&self, tag: *mut c_void) -> Option<Result<usize, String>> {
        let event = self.0.as_ptr();
        // SAFETY: the event is alive until `self` drops; strings and arrays it hands out live as
        // long as it, and are copied out or counted before that.
        unsafe {
            if rdsys::rd_kafka_event_type(event) != rdsys::RD_KAFKA_EVENT_DESCRIBECLUSTER_RESULT
                || rdsys::rd_kafka_event_opaque(event) != tag
            {
                return None;
            }
            if rdsys::rd_kafka_event_error(event) != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                let reason = rdsys::rd_kafka_event_error_string(event);
                let reason = if reason.is_null() {
                    "unknown error".into()
                } else {
                    CStr::from_ptr(reason).to_string_lossy().into_owned()
                };
                return Some(Err(reason));
            }
            let result = rdsys::rd_kafka_event_DescribeCluster_result(event);
            if result.is_null() {
                return Some(Err("DescribeCluster answered without a result".into()));
            }
            let mut count = 0usize;
            rdsys::rd_kafka_DescribeCluster_result_nodes(result, &mut count);
            Some(Ok(count))
        }
    }
}

impl Drop for Event {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the event came from `rd_kafka_queue_poll` and is destroyed once, here.
        unsafe { rdsys::rd_kafka_event_destroy(self.0.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, Producer};

    /// A client whose only broker address refuses connections (port 1 on loopback).
    fn unreachable_client() -> BaseProducer {
        ClientConfig::new().set("bootstrap.servers", "127.0.0.1:1").set("log_level", "0").create().expect("client")
    }

    #[test]
    fn no_broker_is_an_error_by_the_timeout_not_a_hang() {
        let producer = unreachable_client();
        let mut probe = ClusterProbe::new(producer.client());
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let answer = probe.brokers(Duration::from_millis(300));
            assert!(answer.is_err(), "no broker, yet an answer: {answer:?}");
            assert!(started.elapsed() < Duration::from_millis(1300), "took {:?}", started.elapsed());
        }
    }

    #[test]
    fn an_answer_left_by_a_check_that_gave_up_is_not_taken_for_the_next() {
        let producer = unreachable_client();
        let mut probe = ClusterProbe::new(producer.client());
        // The first request gives up after 100 ms; nobody waits for its answer. The second one
        // may take 800 ms: waiting for it must skip the first one's answer, which comes first.
        probe.ask(Duration::from_millis(100)).expect("first request");
        let started = Instant::now();
        let tag = probe.ask(Duration::from_millis(800)).expect("second request");
        let answer = probe.answer(tag, Instant::now() + Duration::from_secs(3));
        assert!(answer.is_err(), "no broker, yet an answer: {answer:?}");
        assert!(started.elapsed() >= Duration::from_millis(700), "took the first answer: {:?}", started.elapsed());
    }
}
