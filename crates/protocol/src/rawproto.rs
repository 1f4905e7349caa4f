//! Schemaless protobuf as text, for the log publisher: the wire format read without a schema and
//! rendered as `field-number:value` pairs, e.g. `1:"x" 2:420 3:{1:7}`.
//!
//! * varint: unsigned decimal (`2:420`; a negative `int32` shows as its 64-bit two's complement,
//!   since the schema that would say "signed" is unknown).
//! * fixed32 / fixed64: hexadecimal (`5:0x3f800000`), which reads for floats and ints alike.
//! * length-delimited: a quoted string when the bytes are UTF-8 without control characters;
//!   otherwise a nested message in braces when they parse as one (up to [`MAX_DEPTH`] levels);
//!   otherwise a quoted string, control characters and bytes that are not UTF-8 escaped
//!   (`\n`, `\x00`).
//! * groups (deprecated wire types 3 and 4): braces, like a nested message.
//!
//! Bytes that are not a protobuf message (a truncated varint or length, wire type 6 or 7, field
//! number 0, an unmatched group end) are a [`RawProtoError`] saying what and at which byte.
//! Never panics, whatever the input; nesting is bounded, so the stack is too.
//!
//! Runs on: log publisher threads. Pure functions, no I/O.

use std::fmt::Write as _;

use thiserror::Error;

/// Deepest nesting of messages or groups rendered; a deeper length-delimited field is shown as
/// bytes, a deeper group is an error.
pub const MAX_DEPTH: usize = 32;

/// Largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Why bytes are not a protobuf message. `at` is the byte offset, from the start of the input,
/// of the tag or value at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RawProtoError {
    /// The input ends inside a varint, a fixed-width value or a length-delimited field.
    #[error("truncated field at byte {at}")]
    Truncated {
        /// Offset of the field's tag.
        at: usize,
    },
    /// A varint longer than 10 bytes.
    #[error("varint longer than 10 bytes at byte {at}")]
    VarintTooLong {
        /// Offset of the varint.
        at: usize,
    },
    /// Wire type 6 or 7, which do not exist.
    #[error("invalid wire type {wire_type} at byte {at}")]
    WireType {
        /// The wire type.
        wire_type: u8,
        /// Offset of the tag.
        at: usize,
    },
    /// Field number 0 or above 2^29 - 1.
    #[error("invalid field number {field} at byte {at}")]
    FieldNumber {
        /// The field number.
        field: u64,
        /// Offset of the tag.
        at: usize,
    },
    /// A group that ends with another field number than it started with, or an end without start.
    #[error("unmatched group end for field {field} at byte {at}")]
    GroupEnd {
        /// The field number of the end tag.
        field: u64,
        /// Offset of the end tag.
        at: usize,
    },
    /// A group nested deeper than [`MAX_DEPTH`].
    #[error("groups nested deeper than {MAX_DEPTH} at byte {at}")]
    TooDeep {
        /// Offset of the group's start tag.
        at: usize,
    },
}

/// Renders `bytes` as text into `out` (appending). On error `out` may hold part of the text.
pub fn decode_to_text(bytes: &[u8], out: &mut String) -> Result<(), RawProtoError> {
    let mut reader = Reader { bytes, pos: 0 };
    render_fields(&mut reader, 0, None, out)
}

/// A cursor over the whole input (offsets in errors are absolute).
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn varint(&mut self, field_at: usize) -> Result<u64, RawProtoError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(RawProtoError::Truncated { at: field_at });
            };
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RawProtoError::VarintTooLong { at: start })
    }

    fn take(&mut self, len: u64, field_at: usize) -> Result<&[u8], RawProtoError> {
        let left = self.bytes.len() - self.pos;
        let len =
            usize::try_from(len).ok().filter(|&len| len <= left).ok_or(RawProtoError::Truncated { at: field_at })?;
        let taken = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(taken)
    }
}

/// Renders fields until the input ends or, inside a group (`group = Some(field)`), until that
/// group's end tag.
fn render_fields(
    reader: &mut Reader<'_>,
    depth: usize,
    group: Option<u64>,
    out: &mut String,
) -> Result<(), RawProtoError> {
    let mut first = true;
    while !reader.at_end() {
        let at = reader.pos;
        let tag = reader.varint(at)?;
        let (field, wire_type) = (tag >> 3, (tag & 7) as u8);
        if field == 0 || field > MAX_FIELD_NUMBER {
            return Err(RawProtoError::FieldNumber { field, at });
        }
        if wire_type == 4 {
            return match group {
                Some(open) if open == field => Ok(()),
                _ => Err(RawProtoError::GroupEnd { field, at }),
            };
        }
        if !first {
            out.push(' ');
        }
        first = false;
        // Writing into a String cannot fail.
        let _ = write!(out, "{field}:");
        match wire_type {
            0 => {
                let value = reader.varint(at)?;
                let _ = write!(out, "{value}");
            }
            1 => {
                let raw = reader.take(8, at)?;
                let value = u64::from_le_bytes(raw.try_into().expect("invariant: take(8) returns 8 bytes"));
                let _ = write!(out, "{value:#x}");
            }
            5 => {
                let raw = reader.take(4, at)?;
                let value = u32::from_le_bytes(raw.try_into().expect("invariant: take(4) returns 4 bytes"));
                let _ = write!(out, "{value:#x}");
            }
            2 => {
                let len = reader.varint(at)?;
                let value_at = reader.pos;
                let value_len = reader.take(len, at)?.len();
                render_length_delimited(reader.bytes, value_at, value_len, depth, out);
            }
            3 => {
                if depth + 1 > MAX_DEPTH {
                    return Err(RawProtoError::TooDeep { at });
                }
                out.push('{');
                render_fields(reader, depth + 1, Some(field), out)?;
                out.push('}');
            }
            wire_type => return Err(RawProtoError::WireType { wire_type, at }),
        }
    }
    match group {
        // The input ended inside a group.
        Some(_) => Err(RawProtoError::Truncated { at: reader.pos }),
        None => Ok(()),
    }
}

/// A length-delimited value at `bytes[at..at + len]`: text, nested message or escaped bytes.
fn render_length_delimited(bytes: &[u8], at: usize, len: usize, depth: usize, out: &mut String) {
    let value = &bytes[at..at + len];
    let text = std::str::from_utf8(value).ok();
    // Text without control characters is taken for a string even when it would also parse as a
    // message ("hi" is field 13 = 105): strings are what people log.
    if let Some(text) = text.filter(|t| !t.chars().any(char::is_control)) {
        push_quoted_text(text, out);
        return;
    }
    if !value.is_empty() && depth < MAX_DEPTH {
        // Offsets stay absolute: the nested reader sees the whole input, bounded to this field.
        let mut nested = Reader { bytes: &bytes[..at + len], pos: at };
        let mark = out.len();
        out.push('{');
        if render_fields(&mut nested, depth + 1, None, out).is_ok() {
            out.push('}');
            return;
        }
        out.truncate(mark);
    }
    match text {
        Some(text) => push_quoted_text(text, out),
        None => push_quoted_bytes(value, out),
    }
}

fn push_quoted_text(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_quoted_bytes(value: &[u8], out: &mut String) {
    out.push('"');
    for &b in value {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            b => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message as _;

    fn text(bytes: &[u8]) -> Result<String, RawProtoError> {
        let mut out = String::new();
        decode_to_text(bytes, &mut out).map(|()| out)
    }

    #[test]
    fn scalars_strings_and_fixed_widths() {
        // 1: "x", 2: 420 (varint 0xa4 0x03), 3: fixed32 1.0f32, 4: fixed64 1.
        let mut bytes = vec![0x0a, 0x01, b'x', 0x10, 0xa4, 0x03, 0x1d];
        bytes.extend_from_slice(&1.0f32.to_le_bytes());
        bytes.push(0x21);
        bytes.extend_from_slice(&1u64.to_le_bytes());
        assert_eq!(text(&bytes).unwrap(), r#"1:"x" 2:420 3:0x3f800000 4:0x1"#);
        assert_eq!(text(&[]).unwrap(), "");
        assert_eq!(text(&[0x0a, 0x00]).unwrap(), r#"1:"""#);
    }

    #[test]
    fn a_generated_message_renders_nested_in_braces() {
        let request = pb::SendEventRequest {
            req_guid: "g-1".into(),
            sent_time: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 5 }),
            events: vec![
                pb::Event { event_bytes: Bytes::from_static(b"hi \"there\"\n"), r#type: "click".into() },
                pb::Event { event_bytes: Bytes::from_static(&[0x00, 0xff]), r#type: "page".into() },
            ],
        };
        assert_eq!(
            text(&request.encode_to_vec()).unwrap(),
            r#"1:"g-1" 2:{1:1700000000 2:5} 3:{1:"hi \"there\"\n" 2:"click"} 3:{1:"\x00\xff" 2:"page"}"#
        );
    }

    #[test]
    fn negative_int32_shows_as_its_varint() {
        let event = prost_types::Timestamp { seconds: -1, nanos: 0 };
        assert_eq!(text(&event.encode_to_vec()).unwrap(), "1:18446744073709551615");
    }

    #[test]
    fn groups_render_in_braces() {
        // 1: group { 2: 7 }, then 3: 1.
        assert_eq!(text(&[0x0b, 0x10, 0x07, 0x0c, 0x18, 0x01]).unwrap(), "1:{2:7} 3:1");
    }

    #[test]
    fn malformed_input_says_what_and_where() {
        assert_eq!(text(&[0x08]), Err(RawProtoError::Truncated { at: 0 }));
        assert_eq!(text(&[0xff, 0xff]), Err(RawProtoError::Truncated { at: 0 }));
        assert_eq!(text(&[0x08, 0x01, 0x0a, 0x05, b'a']), Err(RawProtoError::Truncated { at: 2 }));
        assert_eq!(text(&[0x08, 0x01, 0x0e]), Err(RawProtoError::WireType { wire_type: 6, at: 2 }));
        assert_eq!(text(&[0x00]), Err(RawProtoError::FieldNumber { field: 0, at: 0 }));
        assert_eq!(text(&[0x0c]), Err(RawProtoError::GroupEnd { field: 1, at: 0 }));
        assert_eq!(text(&[0x0b, 0x14]), Err(RawProtoError::GroupEnd { field: 2, at: 1 }));
        assert_eq!(text(&[0x0b, 0x10, 0x01]), Err(RawProtoError::Truncated { at: 3 }));
        assert_eq!(
            text(&[0x08; 1].iter().chain(&[0x80; 11]).copied().collect::<Vec<_>>()),
            Err(RawProtoError::VarintTooLong { at: 1 })
        );
        let huge_len = [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(text(&huge_len), Err(RawProtoError::Truncated { at: 0 }));
        assert_eq!(RawProtoError::WireType { wire_type: 7, at: 3 }.to_string(), "invalid wire type 7 at byte 3");
    }

    #[test]
    fn nesting_is_bounded() {
        // Groups nested past MAX_DEPTH are refused.
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, MAX_DEPTH + 1).collect();
        assert_eq!(text(&deep), Err(RawProtoError::TooDeep { at: MAX_DEPTH }));
        // Messages nested past MAX_DEPTH become bytes at the bottom instead.
        let mut message = vec![0x08, 0x01];
        for _ in 0..MAX_DEPTH + 5 {
            let mut outer = vec![0x0a, message.len() as u8];
            outer.extend_from_slice(&message);
            message = outer;
        }
        let rendered = text(&message).unwrap();
        assert_eq!(rendered.matches('{').count(), MAX_DEPTH, "{rendered}");
        assert!(rendered.contains('"'), "the deepest level is shown as bytes: {rendered}");
    }

    #[test]
    fn bytes_that_are_no_message_are_quoted_with_escapes() {
        // 1: [0x01, 0xff] is neither text nor a message (0x01 is field 0).
        assert_eq!(text(&[0x0a, 0x02, 0x01, 0xff]).unwrap(), r#"1:"\x01\xff""#);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut out = String::new();
            let _ = decode_to_text(&bytes, &mut out);
        }

        #[test]
        fn every_encoded_event_decodes(event_type in "[a-z]{0,12}", payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let event = pb::Event { event_bytes: Bytes::from(payload), r#type: event_type };
            prop_assert!(text(&event.encode_to_vec()).is_ok());
        }
    }
}
