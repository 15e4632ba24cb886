//! Telling a profile from anything else by its content, and reading it.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::error::ProfileError;
use crate::model::HeapProfile;
use crate::pprof;
use crate::profile::Profile;

/// What a file holds, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// DevTools' `.heapprofile` JSON.
    HeapProfile,
    /// A pprof protobuf (gzipped or not).
    Pprof,
    /// A V8 `.heapsnapshot`.
    Snapshot,
    /// A CPU profile (`.cpuprofile`).
    CpuProfile,
    /// Anything else.
    Unknown,
}

impl Kind {
    /// Whether this is a heap profile heapgate reads.
    pub fn is_profile(self) -> bool {
        matches!(self, Kind::HeapProfile | Kind::Pprof)
    }
}

/// Profiles are small (kilobytes to a few megabytes); anything bigger is not one.
const MAX_PROFILE_BYTES: u64 = 1 << 30;
/// V8 records at most 128 frames, two JSON levels each; this leaves room and bounds recursion.
const MAX_JSON_DEPTH: usize = 1024;

/// Tells what `prefix` (the first few KiB of a file, decompressed) holds.
pub fn sniff(prefix: &[u8]) -> Kind {
    let text = prefix
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &prefix[i..]);
    // profile.proto's field 1 (sample_type, length-delimited, tag byte 0x0A) comes first in
    // every encoder seen (Go's, prost, pprof-format); gzip is peeled off by the caller. 0x0A
    // is also a newline, so this is decided before whitespace is skipped.
    if prefix.first() == Some(&0x0A) && !text.starts_with(b"{") {
        return Kind::Pprof;
    }
    if let Some(rest) = text.strip_prefix(b"{") {
        let rest = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(&[][..], |i| &rest[i..]);
        return if rest.starts_with(b"\"head\"") || rest.starts_with(b"\"samples\"") {
            Kind::HeapProfile
        } else if rest.starts_with(b"\"snapshot\"") {
            Kind::Snapshot
        } else if rest.starts_with(b"\"nodes\"") || rest.starts_with(b"\"startTime\"") {
            Kind::CpuProfile
        } else {
            Kind::Unknown
        };
    }
    Kind::Unknown
}

/// Tells what the file at `path` holds from its first bytes (zstd and gzip are looked into).
pub fn sniff_file(path: &Path) -> Result<Kind, ProfileError> {
    sniff_reader(std::fs::File::open(path)?)
}

/// Tells what `reader` holds from its first bytes (zstd and gzip are looked into); a prefix of
/// a compressed file is enough.
pub fn sniff_reader(reader: impl Read + Send) -> Result<Kind, ProfileError> {
    let (_, reader) = heapgate_snapshot::decoded(reader)?;
    let mut prefix = vec![0; 4096];
    let mut filled = 0;
    // Whatever decodes before an error (a cut-off compressed prefix, a damaged file) decides.
    let mut reader = reader;
    while filled < prefix.len() {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    Ok(sniff(&prefix[..filled]))
}

/// Reads a profile from a file in either format, plain, gzip or zstd.
pub fn read(path: &Path) -> Result<Profile, ProfileError> {
    read_from(std::fs::File::open(path)?)
}

/// Reads a profile in either format, plain, gzip or zstd, from `reader`.
pub fn read_from(reader: impl Read + Send) -> Result<Profile, ProfileError> {
    let (_, reader) = heapgate_snapshot::decoded(reader)?;
    let mut bytes = Vec::new();
    reader
        .take(MAX_PROFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ProfileError::garbled("file", format!("cannot decompress: {e}")))?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(ProfileError::Unknown(
            "larger than 1 GiB, far bigger than any heap profile".into(),
        ));
    }
    parse(&bytes)
}

/// Reads a profile from its (decompressed, or gzipped pprof) bytes.
pub fn parse(bytes: &[u8]) -> Result<Profile, ProfileError> {
    let unzipped;
    let plain = if bytes.starts_with(&[0x1F, 0x8B]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| ProfileError::garbled("gzip file", e))?;
        unzipped = out;
        &unzipped[..]
    } else {
        bytes
    };
    match sniff(&plain[..plain.len().min(4096)]) {
        Kind::HeapProfile => Ok(Profile::from_heapprofile(&parse_heapprofile(plain)?, None)),
        Kind::Pprof => pprof::decode(plain),
        Kind::Snapshot => Err(ProfileError::Snapshot),
        Kind::CpuProfile => Err(ProfileError::CpuProfile),
        Kind::Unknown if plain.is_empty() => Err(ProfileError::Unknown("the file is empty".into())),
        Kind::Unknown => Err(ProfileError::Unknown(
            "neither a .heapprofile (JSON with \"head\") nor a pprof profile".into(),
        )),
    }
}

/// Parses DevTools' `.heapprofile` JSON, after checking its nesting is bounded.
pub fn parse_heapprofile(bytes: &[u8]) -> Result<HeapProfile, ProfileError> {
    const FORMAT: &str = ".heapprofile";
    if json_depth(bytes) > MAX_JSON_DEPTH {
        return Err(ProfileError::garbled(
            FORMAT,
            format!("nested deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let profile =
        HeapProfile::deserialize(&mut de).map_err(|e| ProfileError::garbled(FORMAT, e))?;
    de.end().map_err(|e| ProfileError::garbled(FORMAT, e))?;
    Ok(profile)
}

/// The deepest nesting of `[` and `{` in a JSON text (strings skipped).
fn json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}
