//! WebSocket framing (RFC 6455), the server's side, sans-IO: bytes read from a client in,
//! messages out ([`FrameReader`]); frames to a client out ([`encode`], [`encode_close`]).
//! tungstenite parses and formats the frame headers; this module adds what a server reading
//! with a shared buffer needs and tungstenite's own reader does not offer: it holds no buffer
//! while a connection is idle.
//!
//! Why not tungstenite's `WebSocket` reader: it keeps a read buffer per connection for the
//! connection's life (at least `read_buffer_size`, and the whole last frame while the tail of
//! its allocation is referenced), which was most of an idle connection's memory. Here the socket
//! is read into one buffer per shard, and a connection keeps bytes only while a frame is
//! incomplete: [`FrameReader::push`] copies the bytes read (unmasking happens in that copy's
//! allocation, in place), complete frames are split off it without a further copy, and once
//! nothing is left over the allocation goes with the last frame.
//!
//! What is checked, as tungstenite's reader checks it: client frames are masked; no reserved bits
//! (no extension is negotiated); no reserved opcodes; control frames are final and at most 125
//! bytes; continuation frames follow a started message and a new message does not start inside
//! one; a frame's or message's size is refused from its header, before its payload is read;
//! text messages are UTF-8; close frames carry no 1-byte payload, an allowed code and a UTF-8
//! reason.

use std::io::Cursor;

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Largest control frame payload (RFC 6455 section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A message or control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A binary message (protobuf batches).
    Binary(Bytes),
    /// A text message, checked to be UTF-8 (JSON batches).
    Text(Bytes),
    /// A ping and its payload, for the pong.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client closes, with its code and reason if it gave one.
    Close(Option<(CloseCode, String)>),
}

/// Why a client's bytes are not acceptable; the connection closes with [`FrameError::close_code`].
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FrameError {
    /// A frame, or a fragmented message so far, is larger than the limit.
    #[error("frame of {size} bytes exceeds max_frame_bytes {max}")]
    TooLarge {
        /// The frame's (or message's) size from its header(s).
        size: u64,
        /// `SERVER_WEBSOCKET_MAX_FRAME_BYTES`.
        max: usize,
    },
    /// A text message or close reason is not UTF-8.
    #[error("text frame is not valid UTF-8")]
    Utf8,
    /// The client broke the framing rules.
    #[error("{0}")]
    Protocol(&'static str),
}

impl FrameError {
    /// The close code RFC 6455 gives this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            FrameError::TooLarge { .. } => CloseCode::Size,
            FrameError::Utf8 => CloseCode::Invalid,
            FrameError::Protocol(_) => CloseCode::Protocol,
        }
    }
}

/// Reads one connection's frames out of the bytes it sends.
///
/// Holds no allocation between frames: `buf` is empty and unallocated unless a frame is
/// incomplete, and `message` only while a fragmented message is being assembled.
#[derive(Debug)]
pub struct FrameReader {
    /// Bytes read and not yet split into frames.
    buf: BytesMut,
    /// The header of the frame whose payload is arriving, and the payload's length.
    header: Option<(FrameHeader, usize)>,
    /// A fragmented message being assembled: whether it is text, and its payload so far.
    message: Option<(bool, BytesMut)>,
    /// `SERVER_WEBSOCKET_MAX_FRAME_BYTES`, for frames and messages alike.
    max_message: usize,
}

impl FrameReader {
    /// A reader that refuses frames and messages larger than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        FrameReader { buf: BytesMut::new(), header: None, message: None, max_message }
    }

    /// Whether nothing is buffered: no partial frame, no partial message.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.header.is_none() && self.message.is_none()
    }

    /// Takes bytes read from the client. They are copied: the caller's buffer can be reused
    /// at once (the shard reads every socket into one).
    pub fn push(&mut self, input: &[u8]) {
        if input.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            // One fresh allocation for everything `input` starts: its whole frames, and all of
            // the frame it ends inside of, so that the rest of that frame is appended without
            // growing (a grown buffer would be copied again). The previous allocation, if any,
            // now belongs to the frames split off it.
            let want = match &self.header {
                Some((_, len)) => (*len).max(input.len()),
                None => frames_extent(input, self.max_message),
            };
            self.buf = BytesMut::with_capacity(want);
        }
        self.buf.extend_from_slice(input);
    }

    /// The next message or control frame, `None` until more bytes are pushed. After an error
    /// the connection must close; the reader is not to be used again.
    pub fn next_message(&mut self) -> Result<Option<Incoming>, FrameError> {
        loop {
            let len = match &self.header {
                Some((_, len)) => *len,
                None => match self.parse_header()? {
                    Some(len) => len,
                    None => return Ok(None),
                },
            };
            if self.buf.len() < len {
                return Ok(None);
            }
            let Some((header, _)) = self.header.take() else { return Ok(None) };
            let mut payload = self.buf.split_to(len);
            if self.buf.is_empty() {
                // Let the allocation go with the frame (and be freed with it).
                self.buf = BytesMut::new();
            }
            if let Some(mask) = header.mask {
                unmask(&mut payload, mask);
            }
            if let Some(incoming) = self.frame(&header, payload)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// Parses and checks the next header if the buffer holds all of it. Returns the payload
    /// length; the header is kept in `self.header`.
    fn parse_header(&mut self) -> Result<Option<usize>, FrameError> {
        let mut cursor = Cursor::new(&self.buf[..]);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            Err(_) => return Err(FrameError::Protocol("invalid frame header")),
        };
        let header_len = cursor.position() as usize;
        self.check(&header, len)?;
        let _ = self.buf.split_to(header_len);
        // Checked against max_message (a usize) above.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        } else if self.buf.len() < len {
            self.buf.reserve(len - self.buf.len());
        }
        self.header = Some((header, len));
        Ok(Some(len))
    }

    fn check(&self, header: &FrameHeader, len: u64) -> Result<(), FrameError> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(FrameError::Protocol("reserved bits are set"));
        }
        if header.mask.is_none() {
            return Err(FrameError::Protocol("client frame is not masked"));
        }
        match header.opcode {
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                Err(FrameError::Protocol("reserved opcode"))
            }
            OpCode::Control(_) if !header.is_final => Err(FrameError::Protocol("fragmented control frame")),
            OpCode::Control(_) if len > MAX_CONTROL_PAYLOAD as u64 => {
                Err(FrameError::Protocol("control frame payload exceeds 125 bytes"))
            }
            OpCode::Control(_) => Ok(()),
            OpCode::Data(Data::Continue) if self.message.is_none() => {
                Err(FrameError::Protocol("continuation frame without a message to continue"))
            }
            OpCode::Data(Data::Text | Data::Binary) if self.message.is_some() => {
                Err(FrameError::Protocol("new message inside a fragmented message"))
            }
            OpCode::Data(_) => {
                let so_far = self.message.as_ref().map_or(0, |(_, m)| m.len() as u64);
                let size = so_far.saturating_add(len);
                if size > self.max_message as u64 {
                    return Err(FrameError::TooLarge { size, max: self.max_message });
                }
                Ok(())
            }
        }
    }

    /// What a complete, unmasked frame means; `None` for a fragment that does not end its message.
    fn frame(&mut self, header: &FrameHeader, payload: BytesMut) -> Result<Option<Incoming>, FrameError> {
        let (text, payload) = match header.opcode {
            OpCode::Control(Control::Ping) => return Ok(Some(Incoming::Ping(payload.freeze()))),
            OpCode::Control(Control::Pong) => return Ok(Some(Incoming::Pong)),
            OpCode::Control(Control::Close) => return close_payload(&payload).map(|c| Some(Incoming::Close(c))),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(FrameError::Protocol("reserved opcode"))
            }
            OpCode::Data(Data::Continue) => {
                let Some((text, mut message)) = self.message.take() else {
                    return Err(FrameError::Protocol("continuation frame without a message to continue"));
                };
                message.extend_from_slice(&payload);
                if !header.is_final {
                    self.message = Some((text, message));
                    return Ok(None);
                }
                (text, message)
            }
            OpCode::Data(data) => {
                let text = data == Data::Text;
                if !header.is_final {
                    self.message = Some((text, payload));
                    return Ok(None);
                }
                (text, payload)
            }
        };
        let payload = payload.freeze();
        if text {
            if std::str::from_utf8(&payload).is_err() {
                return Err(FrameError::Utf8);
            }
            return Ok(Some(Incoming::Text(payload)));
        }
        Ok(Some(Incoming::Binary(payload)))
    }
}

/// How many bytes the frames that `input` starts take: `input`'s length, or more when it ends
/// inside a frame whose header it holds. A header that does not parse, or a frame over `max`
/// bytes, ends the walk (the reader refuses them; nothing is reserved for them).
fn frames_extent(input: &[u8], max: usize) -> usize {
    let mut at = 0usize;
    while at < input.len() {
        let mut cursor = Cursor::new(&input[at..]);
        let Ok(Some((_, len))) = FrameHeader::parse(&mut cursor) else { break };
        match usize::try_from(len) {
            Ok(len) if len <= max => at += cursor.position() as usize + len,
            _ => break,
        }
    }
    at.max(input.len())
}

/// A close frame's code and reason.
fn close_payload(payload: &[u8]) -> Result<Option<(CloseCode, String)>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("close frame payload of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
            if !code.is_allowed() {
                return Err(FrameError::Protocol("close code not allowed"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::Utf8)?;
            Ok(Some((code, reason.to_owned())))
        }
    }
}

/// Unmasks a payload in place (RFC 6455 section 5.3), eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3]]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so the mask starts over at its first byte.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// Appends one final, unmasked frame (a server's) to `out`.
pub fn encode(opcode: OpCode, payload: &[u8], out: &mut Vec<u8>) {
    let header = FrameHeader { is_final: true, opcode, ..FrameHeader::default() };
    out.reserve(header.len(payload.len() as u64) + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Appends one final, unmasked frame whose `len` payload bytes `payload` appends to `out`, so
/// that a reply is encoded straight into the write buffer. `payload` must append exactly `len`
/// bytes.
pub fn encode_with(opcode: OpCode, len: usize, out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let header = FrameHeader { is_final: true, opcode, ..FrameHeader::default() };
    out.reserve(header.len(len as u64) + len);
    // Writing into a Vec cannot fail.
    let _ = header.format(len as u64, out);
    let start = out.len();
    payload(out);
    debug_assert_eq!(out.len() - start, len, "payload length differs from the frame header's");
}

/// Appends a close frame with `code` and `reason` (cut to fit a control frame, at a character
/// boundary) to `out`.
pub fn encode_close(code: CloseCode, reason: &str, out: &mut Vec<u8>) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&u16::from(code).to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(OpCode::Control(Control::Close), &payload, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::Frame;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client's frame, as tungstenite builds and masks it.
    fn client(opcode: OpCode, payload: &[u8], is_final: bool) -> Vec<u8> {
        let header = FrameHeader { is_final, opcode, mask: Some(MASK), ..FrameHeader::default() };
        let frame = Frame::from_payload(header, Bytes::copy_from_slice(payload));
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    fn all(reader: &mut FrameReader) -> Result<Vec<Incoming>, FrameError> {
        let mut out = Vec::new();
        while let Some(incoming) = reader.next_message()? {
            out.push(incoming);
        }
        Ok(out)
    }

    const BINARY: OpCode = OpCode::Data(Data::Binary);
    const TEXT: OpCode = OpCode::Data(Data::Text);
    const CONTINUE: OpCode = OpCode::Data(Data::Continue);
    const PING: OpCode = OpCode::Control(Control::Ping);
    const CLOSE: OpCode = OpCode::Control(Control::Close);

    #[test]
    fn frames_split_at_every_byte_come_out_whole_and_unmasked() {
        let payload: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let mut wire = client(BINARY, &payload, true);
        wire.extend(client(TEXT, "héllo".as_bytes(), true));
        wire.extend(client(PING, b"p", true));
        for split in 0..wire.len() {
            let mut reader = FrameReader::new(1 << 20);
            reader.push(&wire[..split]);
            let mut got = all(&mut reader).unwrap();
            reader.push(&wire[split..]);
            got.extend(all(&mut reader).unwrap());
            assert_eq!(
                got,
                vec![
                    Incoming::Binary(Bytes::from(payload.clone())),
                    Incoming::Text(Bytes::from("héllo")),
                    Incoming::Ping(Bytes::from_static(b"p")),
                ],
                "split at {split}"
            );
            assert!(reader.is_idle());
        }
    }

    #[test]
    fn idle_reader_holds_no_allocation() {
        let mut reader = FrameReader::new(1 << 20);
        reader.push(&client(BINARY, &[1; 5000], true));
        let Some(Incoming::Binary(frame)) = reader.next_message().unwrap() else { panic!("no frame") };
        assert_eq!(frame.len(), 5000);
        assert_eq!(reader.buf.capacity(), 0);
        assert!(reader.is_idle());
    }

    #[test]
    fn a_frame_split_across_reads_is_appended_without_growing() {
        let mut wire = client(BINARY, &[1; 100], true);
        let second = client(BINARY, &[2; 5000], true);
        wire.extend_from_slice(&second[..1000]);
        let mut reader = FrameReader::new(1 << 20);
        reader.push(&wire);
        let capacity = reader.buf.capacity();
        assert!(capacity >= wire.len() + second.len() - 1000, "sized for both frames: {capacity}");
        assert_eq!(reader.next_message().unwrap(), Some(Incoming::Binary(Bytes::from(vec![1; 100]))));
        assert_eq!(reader.next_message().unwrap(), None);
        let spare = reader.buf.capacity();
        reader.push(&second[1000..]);
        assert_eq!(reader.buf.capacity(), spare, "the rest fit in what was reserved");
        assert_eq!(reader.next_message().unwrap(), Some(Incoming::Binary(Bytes::from(vec![2; 5000]))));
        assert!(reader.is_idle());
        // Nothing is reserved for a frame over the limit: its header alone is kept, then refused.
        let huge = [0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4];
        assert_eq!(frames_extent(&huge, 1 << 20), huge.len());
        let mut reader = FrameReader::new(1 << 20);
        reader.push(&huge);
        assert!(reader.buf.capacity() < 64, "{}", reader.buf.capacity());
        assert!(matches!(reader.next_message(), Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn fragments_are_joined() {
        let mut wire = client(TEXT, b"{\"a\":", false);
        wire.extend(client(PING, b"", true));
        wire.extend(client(CONTINUE, b"1", false));
        wire.extend(client(CONTINUE, b"}", true));
        let mut reader = FrameReader::new(100);
        reader.push(&wire);
        let got = all(&mut reader).unwrap();
        assert_eq!(got, vec![Incoming::Ping(Bytes::new()), Incoming::Text(Bytes::from_static(b"{\"a\":1}"))]);
    }

    #[test]
    fn oversized_frames_are_refused_from_the_header() {
        let mut reader = FrameReader::new(2048);
        let wire = client(BINARY, &[0; 4096], true);
        reader.push(&wire[..8]);
        assert_eq!(reader.next_message(), Err(FrameError::TooLarge { size: 4096, max: 2048 }));
        assert_eq!(
            FrameError::TooLarge { size: 4096, max: 2048 }.to_string(),
            "frame of 4096 bytes exceeds max_frame_bytes 2048"
        );
    }

    #[test]
    fn oversized_fragmented_messages_are_refused() {
        let mut reader = FrameReader::new(100);
        let mut wire = client(BINARY, &[0; 60], false);
        wire.extend(client(CONTINUE, &[0; 60], true));
        reader.push(&wire);
        assert_eq!(reader.next_message(), Err(FrameError::TooLarge { size: 120, max: 100 }));
    }

    #[test]
    fn rule_breaking_frames_get_their_close_codes() {
        let mut unmasked = Vec::new();
        encode(BINARY, b"x", &mut unmasked);
        let mut reserved_bit = client(BINARY, b"x", true);
        reserved_bit[0] |= 0x40;
        let mut reserved_opcode = client(BINARY, b"x", true);
        reserved_opcode[0] = (reserved_opcode[0] & 0xf0) | 0x3;
        let long_ping = client(PING, &[0; 126], true);
        let fragmented_ping = client(PING, b"", false);
        let lone_continuation = client(CONTINUE, b"x", true);
        let mut nested = client(BINARY, b"x", false);
        nested.extend(client(BINARY, b"y", true));
        let bad_text = client(TEXT, &[0xff, 0xfe], true);
        let short_close = client(CLOSE, &[3], true);
        let bad_code = client(CLOSE, &1005u16.to_be_bytes(), true);
        let cases = [
            (unmasked, CloseCode::Protocol),
            (reserved_bit, CloseCode::Protocol),
            (reserved_opcode, CloseCode::Protocol),
            (long_ping, CloseCode::Protocol),
            (fragmented_ping, CloseCode::Protocol),
            (lone_continuation, CloseCode::Protocol),
            (nested, CloseCode::Protocol),
            (bad_text, CloseCode::Invalid),
            (short_close, CloseCode::Protocol),
            (bad_code, CloseCode::Protocol),
        ];
        for (i, (wire, code)) in cases.into_iter().enumerate() {
            let mut reader = FrameReader::new(1 << 20);
            reader.push(&wire);
            let error = all(&mut reader).expect_err(&format!("case {i} accepted"));
            assert_eq!(error.close_code(), code, "case {i}: {error}");
        }
    }

    #[test]
    fn close_frames_carry_code_and_reason() {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let mut reader = FrameReader::new(100);
        reader.push(&client(CLOSE, &payload, true));
        reader.push(&client(CLOSE, b"", true));
        let got = all(&mut reader).unwrap();
        assert_eq!(got, vec![Incoming::Close(Some((CloseCode::Normal, "bye".to_owned()))), Incoming::Close(None)]);
    }

    #[test]
    fn server_frames_parse_back_with_tungstenite() {
        let mut out = Vec::new();
        encode(BINARY, &[9; 70_000], &mut out);
        encode_close(CloseCode::Size, &"é".repeat(100), &mut out);
        let mut cursor = Cursor::new(&out[..]);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert_eq!((header.opcode, len, header.mask, header.is_final), (BINARY, 70_000, None, true));
        cursor.set_position(cursor.position() + len);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert_eq!(header.opcode, CLOSE);
        assert!(len <= MAX_CONTROL_PAYLOAD as u64 && len >= MAX_CONTROL_PAYLOAD as u64 - 1);
        let start = cursor.position() as usize;
        let body = &out[start..start + len as usize];
        assert_eq!(u16::from_be_bytes([body[0], body[1]]), 1009);
        assert!(std::str::from_utf8(&body[2..]).is_ok());
    }

    #[test]
    fn unmask_matches_the_byte_by_byte_rule() {
        for len in 0..40 {
            let original: Vec<u8> = (0..len as u8).collect();
            let mut fast = original.clone();
            unmask(&mut fast, MASK);
            let slow: Vec<u8> = original.iter().enumerate().map(|(i, b)| b ^ MASK[i & 3]).collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }
}
