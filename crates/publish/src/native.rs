//! librdkafka's batch produce call, which rust-rdkafka does not wrap: the events of one batch
//! that go to one topic are handed over in one `rd_kafka_produce_batch`.
//!
//! [`BaseProducer::send`](rdkafka::producer::BaseProducer::send), one call per message (what `raccoon-cli ceiling`'s bare producer does),
//! allocates a C string of the topic name, and librdkafka then parses its argument list, looks
//! the topic up by name (a scan of the client's topic list, under the client's write lock), takes
//! and drops a reference to it and reads the monotonic clock, all for each message.
//! `rd_kafka_produce_batch` takes an array of messages for one topic handle: one clock read
//! (monotonic and wall) and one topic lock per call. (librdkafka's sticky partitioner still reads
//! the monotonic clock once per message, to know when to move on to another partition; that read
//! is librdkafka's own and stays.) Payloads are copied by librdkafka
//! (`RD_KAFKA_MSG_F_COPY`), as `send` has them copied; each message's partition is chosen by the
//! configured partitioner, as with `send`. The delivery opaque is an `Arc<InFlight>` in the
//! form rust-rdkafka's delivery callback takes back (`IntoOpaque` for `Arc`), so delivery
//! reports are served by [`super::delivery`] unchanged.
//!
//! `rd_kafka_produce_batch` takes keys but no headers: records with headers
//! (`PUBLISHER_KAFKA_RECORD_HEADERS=true`) go one `rd_kafka_produceva` each (see [`TopicBatch`]).
//!
//! Runs on: a publisher thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::Arc;

use rdkafka::bindings as rdsys;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer};

use std::time::{SystemTime, UNIX_EPOCH};

use super::delivery::{DeliveryContext, InFlight};
use crate::record::{BatchHeaders, EventIndex};

/// Most topic handles a publisher keeps. Event types are chosen by clients, so the cache is
/// emptied when it reaches this size rather than growing with whatever types arrive.
const MAX_TOPIC_HANDLES: usize = 1024;
/// librdkafka's "any partition": the partitioner decides.
const PARTITION_UA: i32 = -1;

/// One librdkafka topic handle (`rd_kafka_topic_t`), destroyed when dropped.
struct TopicHandle(NonNull<rdsys::rd_kafka_topic_t>);

impl Drop for TopicHandle {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_topic_new` and is destroyed once, here; the
        // producer it belongs to outlives it (see `TopicHandles`).
        unsafe { rdsys::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

/// A publisher's topic handles, by topic name. Must be dropped before the producer they were
/// made with: a publisher keeps them for the length of its loop only.
///
/// Handles are added through a shared borrow (the map sits in a [`RefCell`]), so that the
/// [`Topic`]s of one batch can be alive together; each borrows the cache, so neither emptying it
/// ([`TopicHandles::start_batch`], `&mut self`) nor dropping it can happen while one is in use.
/// Adding a handle does not move the others: they are librdkafka's pointers, not the map's
/// storage.
#[derive(Default)]
pub(super) struct TopicHandles {
    handles: RefCell<HashMap<Box<str>, TopicHandle>>,
}

/// A topic as [`TopicBatch::produce`] takes it: a handle of the [`TopicHandles`] it borrows,
/// and so valid for as long as it exists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Topic<'h> {
    raw: NonNull<rdsys::rd_kafka_topic_t>,
    cache: PhantomData<&'h TopicHandles>,
}

impl Topic<'_> {
    /// The topic's name, as librdkafka holds it.
    #[allow(unsafe_code)]
    pub(super) fn name(&self) -> String {
        // SAFETY: the handle is alive while its cache is borrowed (`'h`); librdkafka returns a
        // NUL-terminated string that lives as long as the handle, copied here.
        unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(self.raw.as_ptr())) }.to_string_lossy().into_owned()
    }
}

impl TopicHandles {
    /// Called before each batch: empties the cache once it is full. Takes `&mut self`, so no
    /// [`Topic`] of it can be in use.
    pub(super) fn start_batch(&mut self) {
        let handles = self.handles.get_mut();
        if handles.len() >= MAX_TOPIC_HANDLES {
            handles.clear();
        }
    }

    /// The handle of topic `name`, made on first use. `Err` with librdkafka's error when it
    /// cannot make one (the name is not a valid C string or topic).
    #[allow(unsafe_code)]
    pub(super) fn get(
        &self,
        producer: &BaseProducer<DeliveryContext>,
        name: &str,
    ) -> Result<Topic<'_>, RDKafkaErrorCode> {
        let topic = |raw| Topic { raw, cache: PhantomData };
        if let Some(handle) = self.handles.borrow().get(name) {
            return Ok(topic(handle.0));
        }
        let c_name = CString::new(name).map_err(|_| RDKafkaErrorCode::InvalidTopic)?;
        // SAFETY: the client's handle is valid while `producer` is borrowed; a null
        // configuration means the producer's default topic configuration, as `send` uses.
        let raw =
            unsafe { rdsys::rd_kafka_topic_new(producer.client().native_ptr(), c_name.as_ptr(), std::ptr::null_mut()) };
        let Some(raw) = NonNull::new(raw) else {
            // SAFETY: reads the calling thread's last librdkafka error, which topic_new just set.
            return Err(unsafe { rdsys::rd_kafka_last_error() }.into());
        };
        self.handles.borrow_mut().insert(name.into(), TopicHandle(raw));
        Ok(topic(raw))
    }
}

/// An event librdkafka refused (or that was not offered to it): its batch's bookkeeping, why,
/// and what a dead letter of it needs.
pub(super) struct Refused<'a> {
    pub(super) opaque: Arc<InFlight>,
    pub(super) code: RDKafkaErrorCode,
    pub(super) payload: &'a [u8],
    pub(super) index: u32,
}

/// The messages of one batch for one topic, not yet handed to librdkafka. Borrows their
/// payloads and keys; owns one `Arc<InFlight>` per message until librdkafka takes it.
///
/// Without headers, the messages go in one `rd_kafka_produce_batch` (keys included: librdkafka
/// copies each into its message's allocation and partitions by it). That call takes no
/// headers, so with headers each message goes in its own `rd_kafka_produceva`, still on the
/// cached topic handle (no lookup by name) and with one timestamp per call to
/// [`TopicBatch::produce`], as the batch call reads it once.
///
/// Each message's event index in its batch rides in its `offset`, which neither call reads (it
/// is an output of delivery reports only): no second array per topic of a batch.
pub(super) struct TopicBatch<'a> {
    pub(super) topic: Topic<'a>,
    messages: Vec<rdsys::rd_kafka_message_t>,
    headers: Option<&'a BatchHeaders<'a>>,
    payloads: PhantomData<&'a [u8]>,
}

impl<'a> TopicBatch<'a> {
    /// An empty batch for `topic`, with room for `capacity` messages, each with `headers` (and
    /// its index) when given.
    pub(super) fn with_capacity(topic: Topic<'a>, capacity: usize, headers: Option<&'a BatchHeaders<'a>>) -> Self {
        TopicBatch { topic, messages: Vec::with_capacity(capacity), headers, payloads: PhantomData }
    }

    /// Adds event `index` of its batch: `payload` (copied by librdkafka) under `key`, delivered
    /// with `opaque`.
    pub(super) fn push(&mut self, payload: &'a [u8], key: Option<&'a [u8]>, index: u32, opaque: Arc<InFlight>) {
        let (key, key_len) =
            key.map_or((std::ptr::null_mut(), 0), |k| (k.as_ptr().cast_mut().cast::<c_void>(), k.len()));
        self.messages.push(rdsys::rd_kafka_message_t {
            err: rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            rkt: std::ptr::null_mut(),
            partition: PARTITION_UA,
            payload: payload.as_ptr().cast_mut().cast::<c_void>(),
            len: payload.len(),
            key,
            key_len,
            offset: i64::from(index),
            _private: Arc::into_raw(opaque).cast_mut().cast::<c_void>(),
        });
    }

    /// Hands the messages to librdkafka. Those it refused go to `refused` with the reason,
    /// except when its queue is full: from the first such message on, the rest stay here, in
    /// order, for the caller to offer again (`true` when some stayed).
    #[allow(unsafe_code)]
    pub(super) fn produce(
        &mut self,
        producer: &BaseProducer<DeliveryContext>,
        mut refused: impl FnMut(Refused<'a>),
    ) -> bool {
        if self.messages.is_empty() {
            return false;
        }
        match self.headers {
            None => self.produce_batch(),
            Some(headers) => self.produce_each(producer, headers),
        }
        let queue_full = rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL;
        let mut kept = 0;
        let mut full = false;
        for i in 0..self.messages.len() {
            let err = self.messages[i].err;
            if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                // librdkafka owns the opaque now; its delivery report gives it back.
                continue;
            }
            if err == queue_full || full {
                full = true;
                let mut message = self.messages[i];
                message.err = rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
                self.messages[kept] = message;
                kept += 1;
                continue;
            }
            // SAFETY: a message of this batch, removed from it by the `truncate` below (it is
            // not among the `kept`).
            refused(unsafe { Self::refusal(&self.messages[i], err.into()) });
        }
        self.messages.truncate(kept);
        full
    }

    /// Every message in one `rd_kafka_produce_batch`; each message's `err` says how it fared.
    #[allow(unsafe_code)]
    fn produce_batch(&mut self) {
        // Beyond i32::MAX messages (not a batch this server accepts), the rest wait for the
        // next call as if the queue were full.
        let count = i32::try_from(self.messages.len()).unwrap_or(i32::MAX);
        // SAFETY: the topic handle is alive while `self.topic` borrows its cache; `messages` holds `count` initialised
        // messages whose payloads and keys outlive this call (`'a`), and librdkafka copies them
        // (`RD_KAFKA_MSG_F_COPY`; keys always) before it returns; it writes only each message's `err`.
        unsafe {
            rdsys::rd_kafka_produce_batch(
                self.topic.raw.as_ptr(),
                PARTITION_UA,
                rdsys::RD_KAFKA_MSG_F_COPY,
                self.messages.as_mut_ptr(),
                count,
            );
        }
        for message in self.messages.iter_mut().skip(count as usize) {
            message.err = rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL;
        }
    }

    /// Each message in its own `rd_kafka_produceva`, with `headers` and its index; stops at the
    /// first full queue (the rest are marked so). Sets each message's `err` as
    /// [`TopicBatch::produce_batch`] does.
    #[allow(unsafe_code)]
    fn produce_each(&mut self, producer: &BaseProducer<DeliveryContext>, headers: &BatchHeaders<'_>) {
        use rdsys::rd_kafka_vtype_t as V;
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let queue_full = rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__QUEUE_FULL;
        let mut full = false;
        for message in &mut self.messages {
            if full {
                message.err = queue_full;
                continue;
            }
            let index = EventIndex::new(index_of(message));
            // Topic, value, key, opaque, flags, timestamp, and the headers: at most 6 + MAX.
            let mut vus = [Vu::END; 6 + BatchHeaders::MAX];
            let mut n = 0;
            let mut add = |vu: rdsys::rd_kafka_vu_t| {
                vus[n] = vu;
                n += 1;
            };
            add(Vu::of(V::RD_KAFKA_VTYPE_RKT, U { rkt: self.topic.raw.as_ptr() }));
            add(Vu::of(V::RD_KAFKA_VTYPE_VALUE, U { mem: Mem { ptr: message.payload, size: message.len } }));
            if !message.key.is_null() {
                add(Vu::of(V::RD_KAFKA_VTYPE_KEY, U { mem: Mem { ptr: message.key, size: message.key_len } }));
            }
            add(Vu::of(V::RD_KAFKA_VTYPE_OPAQUE, U { ptr: message._private }));
            add(Vu::of(V::RD_KAFKA_VTYPE_MSGFLAGS, U { i: rdsys::RD_KAFKA_MSG_F_COPY }));
            add(Vu::of(V::RD_KAFKA_VTYPE_TIMESTAMP, U { i64_: timestamp }));
            headers.each(Some(&index), |name, value| {
                let header =
                    Header { name: name.as_ptr(), val: value.as_ptr().cast::<c_void>(), size: value.len() as isize };
                add(Vu::of(V::RD_KAFKA_VTYPE_HEADER, U { header }));
            });
            // SAFETY: the client's handle is valid while `producer` is borrowed, the topic's while
            // `self.topic` borrows its cache; the first `n` entries are initialised, and every
            // pointer in them (payload, key, header names and values) outlives this call, in which
            // librdkafka copies what it keeps. On success it owns the opaque; on failure it keeps
            // nothing of this call (headers it made are freed) and returns an error we free.
            let error = unsafe { rdsys::rd_kafka_produceva(producer.client().native_ptr(), vus.as_ptr(), n) };
            if error.is_null() {
                message.err = rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
            } else {
                // SAFETY: a non-null result is an error object, read once and freed once, here.
                message.err = unsafe { rdsys::rd_kafka_error_code(error) };
                unsafe { rdsys::rd_kafka_error_destroy(error) };
                full = message.err == queue_full;
            }
        }
    }

    /// Gives up on the messages still here: each goes to `refused` with `reason`.
    #[allow(unsafe_code)]
    pub(super) fn refuse_all(&mut self, reason: RDKafkaErrorCode, mut refused: impl FnMut(Refused<'a>)) {
        for message in self.messages.drain(..) {
            // SAFETY: a message of this batch, drained from it.
            refused(unsafe { Self::refusal(&message, reason) });
        }
    }

    /// A message librdkafka did not take (refused, or never offered), with its opaque reclaimed.
    ///
    /// # Safety
    ///
    /// `message` is one of this batch's that librdkafka did not take, and the caller removes it
    /// from the batch: its opaque is still the `Arc::into_raw` of `push`, reclaimed here once,
    /// and its payload is the `&'a [u8]` `push` was given.
    #[allow(unsafe_code)]
    unsafe fn refusal(message: &rdsys::rd_kafka_message_t, code: RDKafkaErrorCode) -> Refused<'a> {
        // SAFETY: the caller's promise, above.
        let opaque = unsafe { Arc::from_raw(message._private.cast_const().cast::<InFlight>()) };
        let payload = if message.len == 0 {
            &[][..]
        } else {
            // SAFETY: `push` set the pointer and length from a `&'a [u8]` (the caller's promise).
            unsafe { std::slice::from_raw_parts(message.payload.cast_const().cast::<u8>(), message.len) }
        };
        Refused { opaque, code, payload, index: index_of(message) }
    }
}

/// The event index `push` put in a message's `offset`.
fn index_of(message: &rdsys::rd_kafka_message_t) -> u32 {
    // `push` stored a u32.
    message.offset as u32
}

type U = rdsys::rd_kafka_vu_s__bindgen_ty_1;
type Mem = rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1;
type Header = rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2;

/// Building `rd_kafka_vu_t`s (one argument of `rd_kafka_produceva` each).
struct Vu;

impl Vu {
    const END: rdsys::rd_kafka_vu_t =
        rdsys::rd_kafka_vu_t { vtype: rdsys::rd_kafka_vtype_t::RD_KAFKA_VTYPE_END, u: U { _pad: [0; 64] } };

    fn of(vtype: rdsys::rd_kafka_vtype_t, u: U) -> rdsys::rd_kafka_vu_t {
        rdsys::rd_kafka_vu_t { vtype, u }
    }
}

impl Drop for TopicBatch<'_> {
    fn drop(&mut self) {
        // Only on a panic between push and produce: release the opaques rather than leak them.
        self.refuse_all(RDKafkaErrorCode::Fail, |_| {});
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raccoon_core::handoff::{AckToken, Batch, EventRecord, Seq, ShardId, SinkId};
    use raccoon_core::topic::TopicPattern;
    use rdkafka::config::ClientConfig;
    use std::time::Instant;

    /// A producer with room for `room` messages and no broker (nothing listens on port 1 of
    /// 127.0.0.1): what it takes stays queued, so its queue can be filled on purpose.
    fn producer(room: usize) -> BaseProducer<DeliveryContext> {
        let (tx, _rx) = async_channel::bounded(1);
        let pattern = TopicPattern::parse("native-%s").unwrap();
        let context =
            DeliveryContext::new(Arc::from(vec![tx]), pattern, Arc::new(raccoon_core::health::Health::default()), None);
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("queue.buffering.max.messages", room.to_string())
            .set("log_level", "0")
            .create_with_context(context)
            .unwrap()
    }

    fn in_flight(events: usize) -> Arc<InFlight> {
        let batch = Batch {
            token: AckToken { shard: ShardId(0), sink: SinkId(1), seq: Seq(2) },
            req_guid: "guid".into(),
            events: (0..events)
                .map(|_| EventRecord { event_type: bytes::Bytes::from_static(b"t"), payload: bytes::Bytes::new() })
                .collect(),
            wants_ack: true,
            received_at: Instant::now(),
            origin: Arc::new(raccoon_core::handoff::Origin { conn_id: "c".into(), group: "g".into() }),
            sent_time: None,
        };
        InFlight::new(batch).0
    }

    /// With and without headers (one batch call, or one call per message): librdkafka takes
    /// what fits, the rest stays in order, and what is given up on comes back with its payload
    /// and index.
    #[test]
    fn a_full_queue_keeps_the_rest_in_order_and_refusals_give_the_opaque_back() {
        let origin = raccoon_core::handoff::Origin { conn_id: "c".into(), group: "g".into() };
        let headers = BatchHeaders::new(&origin, "guid", None);
        for headers in [None, Some(&headers)] {
            let producer = producer(2);
            let handles = TopicHandles::default();
            let topic = handles.get(&producer, "native-t").unwrap();
            assert!(handles.get(&producer, "native-t").unwrap() == topic, "one handle per name");
            assert_eq!(topic.name(), "native-t");
            let batch = in_flight(5);
            let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 3]).collect();
            let mut messages = TopicBatch::with_capacity(topic, 5, headers);
            for (i, payload) in payloads.iter().enumerate() {
                messages.push(payload, Some(b"key"), i as u32, Arc::clone(&batch));
            }
            assert_eq!(Arc::strong_count(&batch), 6);
            let mut refused = Vec::new();
            let mut keep = |r: Refused<'_>| refused.push((r.opaque, r.code, r.payload.to_vec(), r.index));
            assert!(messages.produce(&producer, &mut keep), "room for 2 of 5");
            assert!(messages.produce(&producer, &mut keep), "still full");
            messages.refuse_all(RDKafkaErrorCode::QueueFull, &mut keep);
            // The three that stayed were the last three, in order; a full queue was no refusal
            // until given up on.
            let given_up: Vec<_> =
                refused.iter().map(|(_, code, payload, index)| (*code, payload[0], *index)).collect();
            let q = RDKafkaErrorCode::QueueFull;
            assert_eq!(given_up, [(q, 2, 2), (q, 3, 3), (q, 4, 4)], "headers: {}", headers.is_some());
            drop(refused);
            // Two clones ride in librdkafka's queue; the refused three were given back and dropped.
            assert_eq!(Arc::strong_count(&batch), 3);
            assert!(
                !messages.produce(&producer, |_| panic!("nothing left")),
                "an empty batch has nothing to hand over"
            );
            drop(messages);
            drop(handles);
            // The two queued messages are purged when the producer goes; their reports are served
            // by nobody here, so the clones they hold are not checked.
        }
    }

    #[test]
    fn bad_names_are_errors_and_a_full_cache_is_emptied_between_batches() {
        let producer = producer(10);
        let mut handles = TopicHandles::default();
        assert_eq!(handles.get(&producer, "nul\0inside").err(), Some(RDKafkaErrorCode::InvalidTopic));
        for i in 0..MAX_TOPIC_HANDLES {
            handles.get(&producer, &format!("native-{i}")).unwrap();
        }
        assert_eq!(handles.handles.borrow().len(), MAX_TOPIC_HANDLES);
        handles.start_batch();
        assert!(handles.handles.borrow().is_empty(), "a full cache is emptied between batches");
    }
}
