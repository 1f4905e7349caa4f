//! Base64 decoding for JSON `event_bytes`, written straight into the batch's payload buffer.
//!
//! One decoder accepts what both JSON dialects send: Go's `encoding/json` (standard alphabet,
//! padded, and Go's decoder skips `\r` and `\n`) and protobuf's canonical JSON (standard or
//! URL-safe alphabet, padded or not). Trailing bits of a final partial group are ignored, as both
//! of those decoders do. Hot path: no allocation, the output goes into the caller's `BytesMut`.

use bytes::BytesMut;
use thiserror::Error;

/// What is wrong with a base64 string. Offsets count bytes of the string as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Base64Error {
    /// A byte that is in neither alphabet.
    #[error("invalid base64 byte 0x{byte:02x} at offset {offset}")]
    InvalidByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the string.
        offset: usize,
    },
    /// The data characters do not make whole bytes (one character left over), or the padding
    /// does not fit them.
    #[error("invalid base64 length: {data} data characters and {padding} padding characters")]
    InvalidLength {
        /// Characters of the alphabet seen.
        data: usize,
        /// `=` characters seen.
        padding: usize,
    },
}

/// Sextet value of each byte in the standard and URL-safe alphabets together; `INVALID` otherwise.
const INVALID: u8 = 0xff;
const PAD: u8 = 0xfe;
const SKIP: u8 = 0xfd;
static DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 26 {
        table[b'A' as usize + i] = i as u8;
        table[b'a' as usize + i] = 26 + i as u8;
        i += 1;
    }
    let mut d = 0;
    while d < 10 {
        table[b'0' as usize + d] = 52 + d as u8;
        d += 1;
    }
    table[b'+' as usize] = 62;
    table[b'-' as usize] = 62;
    table[b'/' as usize] = 63;
    table[b'_' as usize] = 63;
    table[b'=' as usize] = PAD;
    table[b'\r' as usize] = SKIP;
    table[b'\n' as usize] = SKIP;
    table
};

/// Upper bound of the decoded length of `input`.
pub fn decoded_len_bound(input: &[u8]) -> usize {
    input.len().div_ceil(4) * 3
}

/// Decodes `input` and appends the bytes to `out`. On error `out` is left as it was.
pub fn decode_into(input: &[u8], out: &mut BytesMut) -> Result<(), Base64Error> {
    let start = out.len();
    // Writes go to a zeroed window of the upper-bound size, then the unused tail is cut: indexing
    // a slice is much cheaper per group than `put_slice`'s capacity checks.
    out.resize(start + decoded_len_bound(input), 0);
    let result = decode_slice(input, &mut out[start..]);
    out.truncate(start + result.unwrap_or(0));
    result.map(|_| ())
}

/// Decodes `input` into `buf` (at least [`decoded_len_bound`] long); returns the length written.
fn decode_slice(input: &[u8], buf: &mut [u8]) -> Result<usize, Base64Error> {
    let mut written = 0;
    let mut offset = 0;
    // Fast path: whole groups of four data characters with nothing to skip.
    for (chunk, dst) in input.chunks_exact(4).zip(buf.chunks_exact_mut(3)) {
        let (a, b, c, d) = (
            DECODE[chunk[0] as usize],
            DECODE[chunk[1] as usize],
            DECODE[chunk[2] as usize],
            DECODE[chunk[3] as usize],
        );
        if (a | b | c | d) & 0xc0 != 0 {
            break;
        }
        let group = (u32::from(a) << 18) | (u32::from(b) << 12) | (u32::from(c) << 6) | u32::from(d);
        dst.copy_from_slice(&group.to_be_bytes()[1..]);
        written += 3;
        offset += 4;
    }
    // Slow path: the rest, one byte at a time (padding, line breaks, errors, a partial group).
    // Every four data characters make three bytes, so `buf`, sized from the whole input, fits.
    let mut acc: u32 = 0;
    let mut sextets = 0usize; // data characters seen on the slow path
    let mut padding = 0usize;
    for (i, &byte) in input.iter().enumerate().skip(offset) {
        match DECODE[byte as usize] {
            SKIP => {}
            PAD => padding += 1,
            value if value < 64 && padding == 0 => {
                acc = (acc << 6) | u32::from(value);
                sextets += 1;
                if sextets % 4 == 0 {
                    buf[written..written + 3].copy_from_slice(&acc.to_be_bytes()[1..]);
                    written += 3;
                    acc = 0;
                }
            }
            _ => return Err(Base64Error::InvalidByte { byte, offset: i }),
        }
    }
    match (sextets % 4, padding) {
        (0, 0) => {}
        (2, 0 | 2) => {
            buf[written] = (acc >> 4) as u8;
            written += 1;
        }
        (3, 0 | 1) => {
            buf[written..written + 2].copy_from_slice(&((acc >> 2) as u16).to_be_bytes());
            written += 2;
        }
        _ => return Err(Base64Error::InvalidLength { data: offset + sextets, padding }),
    }
    Ok(written)
}

/// Reference encoder for round-trip tests (standard alphabet, padded).
#[cfg(test)]
pub(crate) fn encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(input: &str) -> Result<Vec<u8>, Base64Error> {
        let mut out = BytesMut::new();
        decode_into(input.as_bytes(), &mut out).map(|()| out.to_vec())
    }

    #[test]
    fn standard_padded() {
        assert_eq!(decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode("aGk=").unwrap(), b"hi");
        assert_eq!(decode("aGV5").unwrap(), b"hey");
        assert_eq!(decode("").unwrap(), b"");
    }

    #[test]
    fn unpadded_and_url_safe() {
        assert_eq!(decode("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode("aGk").unwrap(), b"hi");
        assert_eq!(decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn line_breaks_are_skipped_as_go_does() {
        assert_eq!(decode("aGVs\r\nbG8=").unwrap(), b"hello");
        assert_eq!(decode("aGVsbG8=\n").unwrap(), b"hello");
    }

    #[test]
    fn errors_name_the_byte_or_the_length() {
        assert_eq!(decode("aGV!bG8="), Err(Base64Error::InvalidByte { byte: b'!', offset: 3 }));
        assert_eq!(decode("aGk=aGk="), Err(Base64Error::InvalidByte { byte: b'a', offset: 4 }));
        assert_eq!(decode("a"), Err(Base64Error::InvalidLength { data: 1, padding: 0 }));
        assert_eq!(decode("aGk=="), Err(Base64Error::InvalidLength { data: 3, padding: 2 }));
        assert_eq!(decode("aGVs="), Err(Base64Error::InvalidLength { data: 4, padding: 1 }));
        assert_eq!(decode("===="), Err(Base64Error::InvalidLength { data: 0, padding: 4 }));
        assert!(decode("aGV5 ").unwrap_err().to_string().contains("0x20 at offset 4"));
        // A failed decode leaves what was in the buffer before, and nothing else.
        let mut out = BytesMut::from(&b"kept"[..]);
        assert!(decode_into(b"aGVsbG8gd29ybGQ!", &mut out).is_err());
        assert_eq!(&out[..], b"kept");
        decode_into(b"aGk=", &mut out).unwrap();
        assert_eq!(&out[..], b"kepthi");
    }

    proptest! {
        #[test]
        fn round_trips_padded_and_unpadded(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let padded = encode(&data);
            prop_assert_eq!(&decode(&padded).unwrap(), &data);
            let unpadded = padded.trim_end_matches('=');
            prop_assert_eq!(&decode(unpadded).unwrap(), &data);
            let url = unpadded.replace('+', "-").replace('/', "_");
            prop_assert_eq!(decode(&url).unwrap(), data);
        }

        #[test]
        fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = BytesMut::new();
            let _ = decode_into(&input, &mut out);
        }
    }
}
