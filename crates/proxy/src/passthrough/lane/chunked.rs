//! The chunked framing of an answer body (RFC 9112 §7.1), as one byte-at-a-time state machine:
//! where the body ends, and its data without sizes, extensions or trailers.

/// Finds where a chunked body ends, checking its framing on the way (RFC 9112 §7.1).
#[derive(Debug, Default)]
pub(super) struct Chunks {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// In a chunk size, with its value so far.
    #[default]
    SizeStart,
    Size(u64),
    /// In chunk extensions, the size known.
    Extension(u64),
    SizeLf(u64),
    /// This many data bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

impl Chunks {
    pub(super) fn done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// How many of `bytes` belong to the body (all, unless it ends within them); `data` gets
    /// the chunks' data bytes, in order.
    pub(super) fn scan(&mut self, bytes: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, ()> {
        use ChunkState as S;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                S::Done => return Ok(i),
                S::Data(left) => {
                    let take = (bytes.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    data(&bytes[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { S::DataCr } else { S::Data(left) };
                    continue;
                }
                S::SizeStart => S::Size(hex(b).map(u64::from).ok_or(())?),
                S::Size(size) => match (b, hex(b)) {
                    // Any number of digits (leading zeros too), as long as the value fits.
                    (_, Some(d)) => S::Size(
                        size.checked_mul(16)
                            .and_then(|n| n.checked_add(u64::from(d)))
                            .ok_or(())?,
                    ),
                    (b';' | b' ' | b'\t', _) => S::Extension(size),
                    (b'\r', _) => S::SizeLf(size),
                    _ => return Err(()),
                },
                S::Extension(size) => match b {
                    b'\r' => S::SizeLf(size),
                    b'\n' => return Err(()),
                    _ => S::Extension(size),
                },
                S::SizeLf(size) => match (b, size) {
                    (b'\n', 0) => S::TrailerStart,
                    (b'\n', size) => S::Data(size),
                    _ => return Err(()),
                },
                S::DataCr if b == b'\r' => S::DataLf,
                S::DataLf if b == b'\n' => S::SizeStart,
                S::TrailerStart if b == b'\r' => S::EndLf,
                S::TrailerStart | S::TrailerLine if b != b'\r' && b != b'\n' => S::TrailerLine,
                S::TrailerLine if b == b'\r' => S::TrailerLf,
                S::TrailerLf if b == b'\n' => S::TrailerStart,
                S::EndLf if b == b'\n' => S::Done,
                _ => return Err(()),
            };
            i += 1;
        }
        Ok(i)
    }
}

/// `n` as 8 hex digits, zero-padded (a read is far below 4 GiB).
pub(super) fn hex8(n: usize) -> [u8; 8] {
    let mut digits = [b'0'; 8];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[(n >> (4 * (7 - i))) & 0xf];
    }
    digits
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(parts: &[&[u8]]) -> Result<(usize, bool), ()> {
        let mut chunks = Chunks::default();
        let mut total = 0;
        for part in parts {
            total += chunks.scan(part, |_| {})?;
        }
        Ok((total, chunks.done()))
    }

    #[test]
    fn chunked_bodies_end_where_their_framing_says() {
        let body: &[u8] = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n";
        assert_eq!(scan_all(&[body]), Ok((body.len(), true)));
        // The data alone, without sizes, extensions or trailers.
        let mut decoded = Vec::new();
        let mut chunks = Chunks::default();
        for byte in body.chunks(1) {
            chunks
                .scan(byte, |data| decoded.extend_from_slice(data))
                .unwrap();
        }
        assert_eq!(decoded, b"hello world");
        // Split at every byte: the same end.
        for at in 0..body.len() {
            assert_eq!(
                scan_all(&[&body[..at], &body[at..]]),
                Ok((body.len(), true)),
                "{at}"
            );
        }
        // Bytes after the end are not the body's.
        let mut extra = body.to_vec();
        extra.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(scan_all(&[&extra]), Ok((body.len(), true)));
        assert_eq!(scan_all(&[b"0\r\n\r\n"]), Ok((5, true)));
        assert_eq!(scan_all(&[b"a\r\n0123456789"]), Ok((13, false)));
    }

    #[test]
    fn malformed_chunk_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"5\r\nhelloX",
            b"\r\n",
            b"0\r\n\n",
            b"1234567890abcdef0\r\n",
        ] {
            assert_eq!(
                scan_all(&[bad]),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunk_sizes_are_eight_hex_digits() {
        assert_eq!(hex8(0x4000), *b"00004000");
        assert_eq!(hex8(11), *b"0000000b");
    }
}
