//! Snapshot files as they are kept: plain JSON, zstd or gzip, told apart by their first bytes
//! (never by the file name), and decoded while read.

use std::io::{self, Read};

/// How a snapshot's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Zstd,
    Gzip,
}

impl Encoding {
    /// Recognises a zstd frame (`28 B5 2F FD`) or a gzip member (`1F 8B`) by its magic bytes;
    /// anything else is taken as plain JSON (and fails there if it is not).
    pub fn sniff(prefix: &[u8]) -> Encoding {
        if prefix.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Encoding::Zstd
        } else if prefix.starts_with(&[0x1F, 0x8B]) {
            Encoding::Gzip
        } else {
            Encoding::Plain
        }
    }

    /// The usual file name suffix after `.heapsnapshot`.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Plain => "",
            Encoding::Zstd => ".zst",
            Encoding::Gzip => ".gz",
        }
    }
}

/// `inner`'s bytes decoded according to what its first bytes say, and what that was.
/// Concatenated zstd frames and gzip members decode as one stream.
pub fn decoded<'a, R: Read + Send + 'a>(
    mut inner: R,
) -> io::Result<(Encoding, Box<dyn Read + Send + 'a>)> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        match inner.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let encoding = Encoding::sniff(&prefix[..filled]);
    let whole = io::Cursor::new(prefix).take(filled as u64).chain(inner);
    let reader: Box<dyn Read + Send + 'a> = match encoding {
        Encoding::Plain => Box::new(whole),
        Encoding::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
    };
    Ok((encoding, reader))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const JSON: &[u8] = br#"  {"snapshot":{"meta":{}},"nodes":[1,2,3]}"#;

    fn read_all(bytes: &[u8]) -> (Encoding, Vec<u8>) {
        // One byte per read, so the sniffing copes with short reads.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(out.len()).min(1);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let (encoding, mut reader) = decoded(Trickle(bytes)).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        (encoding, out)
    }

    #[test]
    fn each_encoding_is_recognised_and_decoded() {
        let zstd = zstd::encode_all(JSON, 1).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(JSON).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(read_all(JSON), (Encoding::Plain, JSON.to_vec()));
        assert_eq!(read_all(&zstd), (Encoding::Zstd, JSON.to_vec()));
        assert_eq!(read_all(&gz), (Encoding::Gzip, JSON.to_vec()));
        assert_eq!(read_all(b"{}"), (Encoding::Plain, b"{}".to_vec()));
        assert_eq!(read_all(b""), (Encoding::Plain, Vec::new()));
    }

    #[test]
    fn concatenated_frames_are_one_stream() {
        let mut zstd = zstd::encode_all(&JSON[..10], 1).unwrap();
        zstd.extend(zstd::encode_all(&JSON[10..], 1).unwrap());
        assert_eq!(read_all(&zstd), (Encoding::Zstd, JSON.to_vec()));
    }

    #[test]
    fn a_truncated_stream_is_an_error() {
        let zstd = zstd::encode_all(JSON, 1).unwrap();
        let (_, mut reader) = decoded(&zstd[..zstd.len() - 3]).unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
    }
}
