//! One representation for both formats: live bytes and objects per allocation stack.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::model::HeapProfile;
use crate::scale;

/// DevTools' name for a function without one (V8 sends an empty name).
const ANONYMOUS: &str = "(anonymous)";

/// A place in the code: function, script and 1-based line and column (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Frame {
    pub function: String,
    pub url: String,
    pub line: u32,
    pub column: u32,
}

impl Frame {
    /// A frame from V8's 0-based call frame.
    fn from_call_frame(frame: &crate::model::CallFrame) -> Self {
        let one_based = |n: i64| u32::try_from(n.saturating_add(1)).unwrap_or(0);
        Frame {
            function: if frame.function_name.is_empty() {
                ANONYMOUS.to_owned()
            } else {
                frame.function_name.clone()
            },
            url: frame.url.clone(),
            line: one_based(frame.line_number),
            column: one_based(frame.column_number),
        }
    }

    /// `url:line:col`, or what is known of it (V8's own frames have no script).
    pub fn place(&self) -> String {
        match (self.url.is_empty(), self.line, self.column) {
            (true, _, _) => String::new(),
            (false, 0, _) => self.url.clone(),
            (false, line, 0) => format!("{}:{line}", self.url),
            (false, line, column) => format!("{}:{line}:{column}", self.url),
        }
    }

    /// The function's name as DevTools shows it.
    pub fn name(&self) -> &str {
        if self.function.is_empty() {
            ANONYMOUS
        } else {
            &self.function
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = self.place();
        if place.is_empty() {
            f.write_str(self.name())
        } else {
            write!(f, "{} {place}", self.name())
        }
    }
}

/// Live objects allocated at one stack (and, when known, of one object size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// Indexes into [`Profile::frames`], the allocating frame first, the outermost last.
    pub frames: Vec<usize>,
    pub bytes: u64,
    pub objects: u64,
    /// The size of each object, when the profile says it.
    pub object_size: Option<u64>,
}

/// Which format a profile was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// DevTools' `.heapprofile` JSON (V8's `SamplingHeapProfile`).
    HeapProfile,
    /// pprof's gzipped `profile.proto`.
    Pprof,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::HeapProfile => ".heapprofile",
            Format::Pprof => "pprof",
        }
    }
}

/// A sampling heap profile as live bytes and objects per allocation stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub frames: Vec<Frame>,
    pub stacks: Vec<Stack>,
    /// The sampling interval in bytes, when known or recovered.
    pub interval: Option<u64>,
    pub format: Format,
}

impl Profile {
    /// Live bytes in the whole profile.
    pub fn total_bytes(&self) -> u64 {
        self.stacks.iter().map(|s| s.bytes).sum()
    }

    /// Live objects (estimated by V8's scaling) in the whole profile.
    pub fn total_objects(&self) -> u64 {
        self.stacks.iter().map(|s| s.objects).sum()
    }

    /// Converts V8's profile. Bytes per stack are V8's `selfSize`s exactly; objects are split
    /// by object size and counted with V8's own scaling, under `interval` if given, else the
    /// interval recovered from the samples (see `scale`). Without one, each sample counts as
    /// one object.
    pub fn from_heapprofile(profile: &HeapProfile, interval: Option<u64>) -> Profile {
        let mut by_node: HashMap<u32, Vec<u64>> = HashMap::new();
        for sample in &profile.samples {
            by_node.entry(sample.node_id).or_default().push(sample.size);
        }
        let interval = interval.or_else(|| {
            let sizes: Vec<u64> = profile.samples.iter().map(|s| s.size).collect();
            scale::infer_interval(&sizes)
        });
        let mut frames = Interner::default();
        let mut stacks = Vec::new();
        // Depth-first with the path of frame indexes from the root's child down.
        let mut todo: Vec<(&crate::model::ProfileNode, usize)> =
            profile.head.children.iter().rev().map(|c| (c, 0)).collect();
        let mut path: Vec<usize> = Vec::new();
        while let Some((node, depth)) = todo.pop() {
            path.truncate(depth);
            path.push(frames.intern(Frame::from_call_frame(&node.call_frame)));
            let leaf_first: Vec<usize> = path.iter().rev().copied().collect();
            let samples = by_node.get(&node.id).map_or(&[][..], Vec::as_slice);
            stacks.extend(node_stacks(node.self_size, samples, interval, &leaf_first));
            todo.extend(node.children.iter().rev().map(|c| (c, depth + 1)));
        }
        // The root's own allocations (V8 puts none there, but a file may).
        if profile.head.self_size > 0 {
            let samples = by_node.get(&profile.head.id).map_or(&[][..], Vec::as_slice);
            let root = frames.intern(Frame::from_call_frame(&profile.head.call_frame));
            stacks.extend(node_stacks(
                profile.head.self_size,
                samples,
                interval,
                &[root],
            ));
        }
        Profile {
            frames: frames.frames,
            stacks,
            interval,
            format: Format::HeapProfile,
        }
    }
}

/// One stack per object size found among a node's samples; their bytes add up to `self_size`.
fn node_stacks(
    self_size: u64,
    samples: &[u64],
    interval: Option<u64>,
    frames: &[usize],
) -> Vec<Stack> {
    if self_size == 0 && samples.is_empty() {
        return Vec::new();
    }
    // object size → (samples, their scaled bytes)
    let mut sizes: Vec<(Option<u64>, u64, u64)> = Vec::new();
    for &scaled in samples {
        let size = interval.and_then(|i| scale::object_size(scaled, i));
        match sizes.iter_mut().find(|(s, _, _)| *s == size) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += scaled;
            }
            None => sizes.push((size, 1, scaled)),
        }
    }
    sizes.sort_by_key(|&(size, _, _)| size);
    let mut stacks: Vec<Stack> = sizes
        .into_iter()
        .map(|(size, count, scaled)| {
            let (objects, bytes) = match (size, interval) {
                // V8's `selfSize` is size × ScaleSample(size, count) per size: the same here.
                (Some(size), Some(interval)) => {
                    let objects = scale::scaled_count(size, count, interval);
                    (objects, size * objects)
                }
                _ => (count, scaled),
            };
            Stack {
                frames: frames.to_vec(),
                bytes,
                objects,
                object_size: size,
            }
        })
        .collect();
    // `selfSize` is the authority on bytes: any difference (a sample V8 dropped, a file edited
    // by hand) goes to the biggest entry, or to one of its own when there are no samples.
    let counted: u64 = stacks.iter().map(|s| s.bytes).sum();
    if counted != self_size {
        match stacks.iter_mut().max_by_key(|s| s.bytes) {
            Some(big) if big.bytes + self_size >= counted => {
                big.bytes = big.bytes + self_size - counted;
            }
            _ => {
                stacks.clear();
                stacks.push(Stack {
                    frames: frames.to_vec(),
                    bytes: self_size,
                    objects: samples.len() as u64,
                    object_size: None,
                });
            }
        }
    }
    stacks.retain(|s| s.bytes > 0 || s.objects > 0);
    stacks
}

/// Gives each distinct frame one index.
#[derive(Default)]
pub(crate) struct Interner {
    pub(crate) frames: Vec<Frame>,
    index: HashMap<Frame, usize>,
}

impl Interner {
    pub(crate) fn intern(&mut self, frame: Frame) -> usize {
        if let Some(&i) = self.index.get(&frame) {
            return i;
        }
        let i = self.frames.len();
        self.index.insert(frame.clone(), i);
        self.frames.push(frame);
        i
    }
}
