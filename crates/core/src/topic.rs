//! Topic routing: `EVENT_DISTRIBUTION_PUBLISHER_PATTERN` with its first `%s` replaced by the
//! event's `type`, exactly as Raccoon does it (`strings.Replace(pattern, "%s", type, 1)`).
//!
//! The pattern is split once at startup into a prefix and a suffix, so building a topic name is
//! two `push_str`s into a reused buffer on the publisher thread, with no allocation per event.
//!
//! Unlike Raccoon, which lets a bad `type` reach Kafka and fail there (silently, with the default
//! `EVENT_ACK=0`), the shard checks each `type` at decode time against Kafka's topic-name rules and
//! rejects the batch with `CODE_BAD_REQUEST` before anything is acknowledged or published.

use thiserror::Error;

/// Kafka refuses topic names longer than this.
pub const MAX_TOPIC_LEN: usize = 249;

/// Why a topic name (or the part of it an event's `type` supplies) is not acceptable to Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// A byte outside `[a-zA-Z0-9._-]`.
    #[error("byte 0x{byte:02x} at offset {offset} is not allowed in a Kafka topic name (allowed: a-z A-Z 0-9 . _ -)")]
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the checked text.
        offset: usize,
    },
    /// The whole topic name would be too long.
    #[error("topic name of {len} bytes exceeds Kafka's limit of {MAX_TOPIC_LEN}")]
    TooLong {
        /// Length of the topic name that would result.
        len: usize,
    },
    /// Empty, `.` or `..`: names Kafka reserves or rejects.
    #[error("topic name {0:?} is reserved by Kafka")]
    Reserved(&'static str),
}

/// The parsed publisher pattern.
///
/// Lives on: every publisher thread and shard holds its own clone (immutable after start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    prefix: String,
    /// `None` for a static pattern (no `%s`): every event goes to `prefix`.
    suffix: Option<String>,
}

impl TopicPattern {
    /// Parses a pattern; only the first `%s` is a placeholder, as in Raccoon.
    pub fn parse(pattern: &str) -> Result<Self, TopicError> {
        let parsed = match pattern.split_once("%s") {
            Some((prefix, suffix)) => TopicPattern { prefix: prefix.to_owned(), suffix: Some(suffix.to_owned()) },
            None => TopicPattern { prefix: pattern.to_owned(), suffix: None },
        };
        check_fragment(parsed.prefix.as_bytes())?;
        if let Some(suffix) = &parsed.suffix {
            check_fragment(suffix.as_bytes())?;
        }
        if parsed.suffix.is_none() {
            match parsed.prefix.as_str() {
                "" => return Err(TopicError::Reserved("")),
                "." => return Err(TopicError::Reserved(".")),
                ".." => return Err(TopicError::Reserved("..")),
                _ => {}
            }
        }
        let fixed = parsed.fixed_len();
        if fixed > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong { len: fixed });
        }
        Ok(parsed)
    }

    /// True when the pattern has no `%s`: every event goes to the same topic.
    pub fn is_static(&self) -> bool {
        self.suffix.is_none()
    }

    fn fixed_len(&self) -> usize {
        self.prefix.len() + self.suffix.as_ref().map_or(0, String::len)
    }

    /// Checks that `event_type` yields a valid topic name. Always `Ok` for a static pattern,
    /// whose topic does not depend on the type.
    pub fn check_type(&self, event_type: &[u8]) -> Result<(), TopicError> {
        if self.is_static() {
            return Ok(());
        }
        check_fragment(event_type)?;
        let len = self.fixed_len() + event_type.len();
        if len > MAX_TOPIC_LEN {
            return Err(TopicError::TooLong { len });
        }
        if len <= 2 {
            // Only an empty prefix and suffix can get here; the whole name is the type.
            match event_type {
                b"" => return Err(TopicError::Reserved("")),
                b"." => return Err(TopicError::Reserved(".")),
                b".." => return Err(TopicError::Reserved("..")),
                _ => {}
            }
        }
        Ok(())
    }

    /// Writes the topic for `event_type` into `out` (cleared first). The type must have passed
    /// [`TopicPattern::check_type`], which guarantees it is ASCII.
    pub fn render_into<'a>(&self, event_type: &[u8], out: &'a mut String) -> &'a str {
        out.clear();
        out.push_str(&self.prefix);
        if let Some(suffix) = &self.suffix {
            // check_type admitted only ASCII bytes, so the checked conversion (fast for ASCII)
            // succeeds; the lossy one is there only so that a bug cannot panic.
            match std::str::from_utf8(event_type) {
                Ok(text) => out.push_str(text),
                Err(_) => out.push_str(&String::from_utf8_lossy(event_type)),
            }
            out.push_str(suffix);
        }
        out.as_str()
    }
}

impl TopicPattern {
    /// The event type a topic of this pattern was rendered from: the part between prefix and
    /// suffix. A static pattern (or a foreign topic) gives `"NA"`.
    pub fn event_type_of<'a>(&self, topic: &'a str) -> &'a str {
        let Some(suffix) = &self.suffix else { return "NA" };
        topic.strip_prefix(self.prefix.as_str()).and_then(|rest| rest.strip_suffix(suffix.as_str())).unwrap_or("NA")
    }
}

fn check_fragment(text: &[u8]) -> Result<(), TopicError> {
    match text.iter().position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))) {
        Some(offset) => Err(TopicError::InvalidByte { byte: text[offset], offset }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(pattern: &str, event_type: &str) -> String {
        let pattern = TopicPattern::parse(pattern).unwrap();
        pattern.check_type(event_type.as_bytes()).unwrap();
        let mut out = String::new();
        pattern.render_into(event_type.as_bytes(), &mut out).to_owned()
    }

    #[test]
    fn first_placeholder_is_replaced() {
        assert_eq!(topic("clickstream-%s-log", "page"), "clickstream-page-log");
        assert_eq!(topic("pre-%s-post", "click"), "pre-click-post");
        assert_eq!(topic("%s", "click"), "click");
    }

    #[test]
    fn empty_type_gives_raccoons_double_dash_topic() {
        assert_eq!(topic("clickstream-%s-log", ""), "clickstream--log");
    }

    #[test]
    fn event_types_are_recovered_from_topics() {
        let pattern = TopicPattern::parse("clickstream-%s-log").unwrap();
        let mut topic = String::new();
        assert_eq!(pattern.event_type_of(pattern.render_into(b"page_view", &mut topic)), "page_view");
        assert_eq!(pattern.event_type_of("other-topic"), "NA");
        assert_eq!(TopicPattern::parse("all-events").unwrap().event_type_of("all-events"), "NA");
    }

    #[test]
    fn static_pattern_ignores_type() {
        let pattern = TopicPattern::parse("all-events").unwrap();
        assert!(pattern.is_static());
        assert_eq!(pattern.check_type(b"not a topic!"), Ok(()));
        let mut out = String::new();
        assert_eq!(pattern.render_into(b"whatever", &mut out), "all-events");
    }

    #[test]
    fn only_first_placeholder_counts_and_second_is_rejected() {
        // Raccoon replaces only the first %s; the second stays literally and '%' is not a
        // topic character, so such a pattern is refused at startup.
        assert_eq!(TopicPattern::parse("a-%s-%s"), Err(TopicError::InvalidByte { byte: b'%', offset: 1 }));
    }

    #[test]
    fn invalid_types_are_rejected_with_position() {
        let pattern = TopicPattern::parse("clickstream-%s-log").unwrap();
        assert_eq!(pattern.check_type(b"page view"), Err(TopicError::InvalidByte { byte: b' ', offset: 4 }));
        assert!(pattern.check_type("é".as_bytes()).is_err());
        let long = vec![b'a'; MAX_TOPIC_LEN];
        assert_eq!(
            pattern.check_type(&long),
            Err(TopicError::TooLong { len: MAX_TOPIC_LEN + "clickstream--log".len() })
        );
    }

    #[test]
    fn bare_placeholder_rejects_reserved_names() {
        let pattern = TopicPattern::parse("%s").unwrap();
        assert_eq!(pattern.check_type(b""), Err(TopicError::Reserved("")));
        assert_eq!(pattern.check_type(b".."), Err(TopicError::Reserved("..")));
        assert_eq!(pattern.check_type(b"a"), Ok(()));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        assert!(TopicPattern::parse("").is_err());
        assert!(TopicPattern::parse("topic with space").is_err());
        assert!(TopicPattern::parse(&"x".repeat(250)).is_err());
    }
}
