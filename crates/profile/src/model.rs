//! V8's `HeapProfiler.SamplingHeapProfile`, exactly as the inspector sends it and as DevTools'
//! Memory tab saves and loads a `.heapprofile` file.

use serde::{Deserialize, Serialize};

/// A sampling heap profile: the allocation call tree and the sampled objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeapProfile {
    /// The root of the call tree; V8 names it `(root)`.
    pub head: ProfileNode,
    /// One entry per sampled object (live ones only, unless sampling was started with the
    /// `includeObjectsCollectedBy…` flags). Absent in profiles from old V8 versions.
    #[serde(default)]
    pub samples: Vec<ProfileSample>,
}

/// One node of the call tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileNode {
    pub call_frame: CallFrame,
    /// Bytes of sampled objects allocated at exactly this stack, scaled by V8 to estimate all
    /// objects (sampled or not).
    pub self_size: u64,
    pub id: u32,
    #[serde(default)]
    pub children: Vec<ProfileNode>,
}

/// `Runtime.CallFrame`: line and column are **0-based** here (DevTools shows them plus one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallFrame {
    pub function_name: String,
    pub script_id: String,
    pub url: String,
    pub line_number: i64,
    pub column_number: i64,
}

/// One sampled object: `size` is its size times V8's scale factor for that size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSample {
    pub size: u64,
    pub node_id: u32,
    /// Grows with each sample taken since sampling started: a sample id.
    #[serde(serialize_with = "integral")]
    pub ordinal: f64,
}

/// Writes a whole number without `.0`, as `JSON.stringify` does, so a file read and written
/// again is byte for byte what V8 sent.
fn integral<S: serde::Serializer>(n: &f64, out: S) -> Result<S::Ok, S::Error> {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        out.serialize_i64(*n as i64)
    } else {
        out.serialize_f64(*n)
    }
}

impl HeapProfile {
    /// Every node of the tree, parents before children, with its depth (the root is 0).
    pub fn nodes(&self) -> Vec<(usize, &ProfileNode)> {
        let mut out = Vec::new();
        let mut stack = vec![(0, &self.head)];
        while let Some((depth, node)) = stack.pop() {
            out.push((depth, node));
            stack.extend(node.children.iter().rev().map(|c| (depth + 1, c)));
        }
        out
    }

    /// The sum of every node's `selfSize`: the total DevTools shows.
    pub fn total_self_size(&self) -> u64 {
        self.nodes().iter().map(|(_, n)| n.self_size).sum()
    }
}
