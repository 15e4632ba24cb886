//! pprof's `profile.proto`, gzipped, as `go tool pprof`, Pyroscope and speedscope read it.
//!
//! Written with two sample types, `objects/count` and `space/bytes` (the default), like the
//! heap profiles of Go and of Datadog's and Google's Node.js profilers; the sampling interval is
//! the period (`space/bytes`). One sample per allocation stack and object size, the size as a
//! numeric label `bytes` (Go's convention). Lines carry the column (profile.proto's
//! `Line.column`).

use std::collections::HashMap;
use std::io::{Read, Write};

use prost::Message;

use crate::error::ProfileError;
use crate::pprof_proto as proto;
use crate::profile::{Format, Frame, Interner, Profile, Stack};

const FORMAT: &str = "pprof profile";

/// Builds the string table; index 0 is the empty string, as pprof requires.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// `profile` as gzipped pprof. `time_nanos`: when it was taken (Unix nanoseconds), if known.
pub fn encode(profile: &Profile, time_nanos: Option<i64>) -> Vec<u8> {
    let mut strings = Strings::new();
    let value_type = |strings: &mut Strings, kind: &str, unit: &str| proto::ValueType {
        r#type: strings.get(kind),
        unit: strings.get(unit),
    };
    let sample_type = vec![
        value_type(&mut strings, "objects", "count"),
        value_type(&mut strings, "space", "bytes"),
    ];
    let period_type = Some(value_type(&mut strings, "space", "bytes"));

    // One function per (name, script); one location per frame (ids are 1-based).
    let mut functions: Vec<proto::Function> = Vec::new();
    let mut function_ids: HashMap<(&str, &str), u64> = HashMap::new();
    let mut locations: Vec<proto::Location> = Vec::with_capacity(profile.frames.len());
    for (i, frame) in profile.frames.iter().enumerate() {
        let key = (frame.function.as_str(), frame.url.as_str());
        let function_id = match function_ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = functions.len() as u64 + 1;
                let name = strings.get(frame.name());
                functions.push(proto::Function {
                    id,
                    name,
                    system_name: name,
                    filename: strings.get(&frame.url),
                    start_line: 0,
                });
                function_ids.insert(key, id);
                id
            }
        };
        locations.push(proto::Location {
            id: i as u64 + 1,
            line: vec![proto::Line {
                function_id,
                line: i64::from(frame.line),
                column: i64::from(frame.column),
            }],
            ..Default::default()
        });
    }
    let bytes_key = strings.get("bytes");
    let samples = profile
        .stacks
        .iter()
        .map(|stack| proto::Sample {
            location_id: stack.frames.iter().map(|&f| f as u64 + 1).collect(),
            value: vec![clamp(stack.objects), clamp(stack.bytes)],
            label: stack
                .object_size
                .map(|size| proto::Label {
                    key: bytes_key,
                    num: clamp(size),
                    num_unit: bytes_key,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
        })
        .collect();
    let default_sample_type = strings.get("space");
    let message = proto::Profile {
        sample_type,
        sample: samples,
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos: time_nanos.unwrap_or(0),
        period_type,
        period: profile.interval.map_or(0, clamp),
        default_sample_type,
        ..Default::default()
    };
    let raw = message.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    gz.write_all(&raw).expect("in-memory gzip");
    gz.finish().expect("in-memory gzip")
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Reads a pprof heap profile, gzipped or not. It must have a bytes sample type (`space`,
/// `inuse_space` or `alloc_space`…, unit `bytes`); an object count type is used when present.
pub fn decode(bytes: &[u8]) -> Result<Profile, ProfileError> {
    let raw;
    let bytes = if bytes.starts_with(&[0x1F, 0x8B]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| ProfileError::garbled(FORMAT, format!("gzip: {e}")))?;
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    let message = proto::Profile::decode(bytes).map_err(|e| ProfileError::garbled(FORMAT, e))?;
    let string = |i: i64| -> Result<&str, ProfileError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| message.string_table.get(i))
            .map(String::as_str)
            .ok_or_else(|| ProfileError::garbled(FORMAT, format!("string index {i} out of range")))
    };
    if message.string_table.first().is_some_and(|s| !s.is_empty()) {
        return Err(ProfileError::garbled(
            FORMAT,
            "string table does not start with \"\"",
        ));
    }
    let mut bytes_index = None;
    let mut objects_index = None;
    for (i, vt) in message.sample_type.iter().enumerate() {
        let (kind, unit) = (string(vt.r#type)?, string(vt.unit)?);
        // Live data first: `inuse_*` wins over `alloc_*` in Go's four-type heap profiles.
        let live = !kind.starts_with("alloc");
        if unit == "bytes" && (bytes_index.is_none() || live) {
            bytes_index = Some(i);
        } else if (unit == "count" || kind.ends_with("objects"))
            && (objects_index.is_none() || live)
        {
            objects_index = Some(i);
        }
    }
    let Some(bytes_index) = bytes_index else {
        return Err(ProfileError::Unknown(
            "a pprof profile without a bytes sample type (a CPU or wall-time profile?)".into(),
        ));
    };

    let functions: HashMap<u64, &proto::Function> =
        message.function.iter().map(|f| (f.id, f)).collect();
    let mut frames = Interner::default();
    // location id → frame indexes, innermost first (inlined frames expand in place).
    let mut locations: HashMap<u64, Vec<usize>> = HashMap::new();
    for location in &message.location {
        let mut expanded = Vec::with_capacity(location.line.len().max(1));
        for line in &location.line {
            let function = functions.get(&line.function_id).ok_or_else(|| {
                ProfileError::garbled(FORMAT, format!("unknown function id {}", line.function_id))
            })?;
            expanded.push(frames.intern(Frame {
                function: string(function.name)?.to_owned(),
                url: string(function.filename)?.to_owned(),
                line: u32::try_from(line.line).unwrap_or(0),
                column: u32::try_from(line.column).unwrap_or(0),
            }));
        }
        if location.line.is_empty() {
            expanded.push(frames.intern(Frame {
                function: format!("0x{:x}", location.address),
                url: String::new(),
                line: 0,
                column: 0,
            }));
        }
        locations.insert(location.id, expanded);
    }
    let bytes_key = message.string_table.iter().position(|s| s == "bytes");
    let mut stacks = Vec::with_capacity(message.sample.len());
    for sample in &message.sample {
        if sample.value.len() != message.sample_type.len() {
            return Err(ProfileError::garbled(
                FORMAT,
                "a sample's values do not match the sample types",
            ));
        }
        let mut stack_frames = Vec::new();
        for id in &sample.location_id {
            let frames = locations.get(id).ok_or_else(|| {
                ProfileError::garbled(FORMAT, format!("unknown location id {id}"))
            })?;
            stack_frames.extend_from_slice(frames);
        }
        let value = |i: usize| u64::try_from(sample.value[i]).unwrap_or(0);
        let object_size = sample
            .label
            .iter()
            .find(|l| bytes_key.is_some_and(|k| l.key == k as i64))
            .and_then(|l| u64::try_from(l.num).ok());
        stacks.push(Stack {
            frames: stack_frames,
            bytes: value(bytes_index),
            objects: objects_index.map_or(0, value),
            object_size,
        });
    }
    let period_is_bytes = message
        .period_type
        .as_ref()
        .is_some_and(|vt| string(vt.unit).is_ok_and(|u| u == "bytes"));
    Ok(Profile {
        frames: frames.frames,
        stacks,
        interval: (period_is_bytes && message.period > 0).then_some(message.period as u64),
        format: Format::Pprof,
    })
}
