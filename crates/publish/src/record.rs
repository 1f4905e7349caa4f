//! What a Kafka record carries besides the event's bytes: its key (`PUBLISHER_KAFKA_RECORD_KEY`),
//! its headers (`PUBLISHER_KAFKA_RECORD_HEADERS`), and the headers that make a dead-letter
//! record (`PUBLISHER_DEAD_LETTER_TOPIC`). Rendered once per batch on the publisher thread;
//! only the event's index differs between the records of one batch.
//!
//! Every header value is text (UTF-8), so that a consumer in any language, or `kcat`, reads it
//! without a schema.

use std::ffi::CStr;

use raccoon_core::handoff::{Origin, SentTime};

use crate::settings::{RecordKey, Records};

/// The connection's id (`SERVER_WEBSOCKET_CONN_ID_HEADER`; empty when none was named).
pub(crate) const CONN_ID: &CStr = c"raccoon-conn-id";
/// The connection's group.
pub(crate) const CONN_GROUP: &CStr = c"raccoon-conn-group";
/// The batch's `req_guid`.
pub(crate) const REQ_GUID: &CStr = c"raccoon-req-guid";
/// The batch's `sent_time`, RFC 3339 in UTC with nine fraction digits; absent when the batch has
/// none (or one outside the years 0001 to 9999).
pub(crate) const SENT_TIME: &CStr = c"raccoon-sent-time";
/// The event's position in its batch, from 0, in decimal.
pub(crate) const EVENT_INDEX: &CStr = c"raccoon-event-index";
/// On a dead-letter record: the topic the event was meant for.
pub(crate) const DEAD_LETTER_TOPIC: &CStr = c"raccoon-topic";
/// On a dead-letter record: why Kafka rejected it, as librdkafka names the error
/// (`MSG_SIZE_TOO_LARGE`, `TOPIC_AUTHORIZATION_FAILED`, ...).
pub(crate) const DEAD_LETTER_ERROR: &CStr = c"raccoon-error";

/// The key and headers of one batch's records.
pub(crate) struct BatchRecords<'b> {
    /// The key of each record, if the settings ask for one and its value is not empty (with a
    /// hashing partitioner such as `murmur2`, empty keys would all land on one partition;
    /// librdkafka's default, `consistent_random`, treats them as no key anyway).
    pub(crate) key: Option<&'b [u8]>,
    /// The headers, if the settings ask for them.
    pub(crate) headers: Option<BatchHeaders<'b>>,
}

impl<'b> BatchRecords<'b> {
    /// What `records` asks of the batch `req_guid` sent by `origin` at `sent_time`.
    pub(crate) fn new(records: &Records, origin: &'b Origin, req_guid: &'b str, sent_time: Option<SentTime>) -> Self {
        let key = match records.key {
            RecordKey::None => None,
            RecordKey::ConnId => Some(origin.conn_id.as_bytes()),
            RecordKey::ConnGroup => Some(origin.group.as_bytes()),
            RecordKey::ReqGuid => Some(req_guid.as_bytes()),
        }
        .filter(|key| !key.is_empty());
        let headers = records.headers.then(|| BatchHeaders::new(origin, req_guid, sent_time));
        BatchRecords { key, headers }
    }
}

/// The header values every record of one batch shares.
pub(crate) struct BatchHeaders<'b> {
    conn_id: &'b str,
    group: &'b str,
    req_guid: &'b str,
    sent_time: Option<String>,
}

impl<'b> BatchHeaders<'b> {
    pub(crate) fn new(origin: &'b Origin, req_guid: &'b str, sent_time: Option<SentTime>) -> Self {
        let sent_time = sent_time.and_then(|t| raccoon_protocol::timestamp::format_rfc3339(t.seconds, t.nanos));
        BatchHeaders { conn_id: &origin.conn_id, group: &origin.group, req_guid, sent_time }
    }

    /// Every header of the record of event `index` (its index only if known), in a fixed order.
    pub(crate) fn each<'s>(&'s self, index: Option<&'s EventIndex>, mut header: impl FnMut(&'static CStr, &'s [u8])) {
        header(CONN_ID, self.conn_id.as_bytes());
        header(CONN_GROUP, self.group.as_bytes());
        header(REQ_GUID, self.req_guid.as_bytes());
        if let Some(sent_time) = &self.sent_time {
            header(SENT_TIME, sent_time.as_bytes());
        }
        if let Some(index) = index {
            header(EVENT_INDEX, index.as_bytes());
        }
    }

    /// How many headers [`BatchHeaders::each`] gives at most.
    pub(crate) const MAX: usize = 5;
}

/// An event's index in its batch, as the decimal text of its header (written here: ten digits
/// on the stack, no allocation per record).
pub(crate) struct EventIndex {
    digits: [u8; 10],
    start: usize,
}

impl EventIndex {
    pub(crate) fn new(mut index: u32) -> Self {
        let (mut digits, mut start) = ([0u8; 10], 10);
        loop {
            start -= 1;
            digits[start] = b'0' + (index % 10) as u8;
            index /= 10;
            if index == 0 {
                break;
            }
        }
        EventIndex { digits, start }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { conn_id: "user-1".into(), group: "ios".into() }
    }

    #[test]
    fn each_key_choice_takes_its_value_and_an_empty_value_gives_no_key() {
        let origin = origin();
        let key = |key| {
            BatchRecords::new(&Records { key, headers: false, dead_letter_topic: None }, &origin, "g-1", None).key
        };
        assert_eq!(key(RecordKey::None), None);
        assert_eq!(key(RecordKey::ConnId), Some(&b"user-1"[..]));
        assert_eq!(key(RecordKey::ConnGroup), Some(&b"ios"[..]));
        assert_eq!(key(RecordKey::ReqGuid), Some(&b"g-1"[..]));
        let anonymous = Origin { conn_id: "".into(), group: "ios".into() };
        let records = Records { key: RecordKey::ConnId, headers: false, dead_letter_topic: None };
        assert_eq!(BatchRecords::new(&records, &anonymous, "g-1", None).key, None);
        assert!(BatchRecords::new(&records, &origin, "g-1", None).headers.is_none(), "headers are off by default");
    }

    #[test]
    fn headers_name_the_connection_the_batch_and_the_event() {
        let origin = origin();
        let sent = SentTime { seconds: 1_690_020_000, nanos: 5 };
        let headers = BatchHeaders::new(&origin, "g-1", Some(sent));
        let index = EventIndex::new(12);
        let mut seen = Vec::new();
        headers.each(Some(&index), |name, value| {
            seen.push((name.to_str().unwrap(), String::from_utf8(value.to_vec()).unwrap()))
        });
        let want = [
            ("raccoon-conn-id", "user-1"),
            ("raccoon-conn-group", "ios"),
            ("raccoon-req-guid", "g-1"),
            ("raccoon-sent-time", "2023-07-22T10:00:00.000000005Z"),
            ("raccoon-event-index", "12"),
        ];
        assert_eq!(seen, want.map(|(n, v)| (n, v.to_owned())));
        assert_eq!(seen.len(), BatchHeaders::MAX);
        let mut names = Vec::new();
        BatchHeaders::new(&origin, "", None).each(None, |name, _| names.push(name));
        assert_eq!(names, [CONN_ID, CONN_GROUP, REQ_GUID], "no sent_time, no index: no header for them");
    }

    #[test]
    fn indices_are_written_in_decimal() {
        for (index, text) in [(0, "0"), (9, "9"), (10, "10"), (4_294_967_295, "4294967295")] {
            assert_eq!(EventIndex::new(index).as_bytes(), text.as_bytes());
        }
    }
}
