//! Streaming redaction of the string *values* in a `.heapsnapshot`, with bounded memory.
//!
//! V8 writes `snapshot` (the meta), then `nodes` and `edges`, and the `strings` table last. A
//! node of a string type (`string`, `concatenated string`, `sliced string`, … as listed in
//! `meta.node_types[0]`) is named by its contents, so by the time the table streams past, the
//! redactor knows which entries are string values and which are names: of other nodes (classes,
//! functions, code), of edges (properties, variables), of traced functions and scripts. Entries
//! used only as string values are replaced by [`PLACEHOLDER`]; every other byte passes through
//! unchanged, so counts, sizes, ids, class and property names — what `heapgate diff`, retainer
//! paths and DevTools need — stay as V8 wrote them.
//!
//! V8 stores each distinct text once, so one entry can be both a string value and a name (a
//! property called `email` and a string `"email"`). Such an entry is **kept**: the text is in the
//! file as a name anyway, and blanking it would break the names diffs and retainer paths rely on.
//! What survives, then: every name (including object keys that came from user data), the length
//! of every string (its node's self size), and string values equal to some name.
//!
//! Memory: two bits per string index (a 10-million-entry table needs 2.5 MB) plus the meta.

use std::io::{self, Read, Write};

/// What a redacted string value reads as.
pub const PLACEHOLDER: &str = "<redacted>";

/// Whether nodes of this type are string values (`string`, `concatenated string`, `sliced
/// string`, …): their name is their content, which redaction replaces.
pub(crate) fn is_string_type(type_name: &str) -> bool {
    type_name == "string" || type_name.ends_with(" string")
}

/// The largest `snapshot` meta object accepted (V8's is a few kilobytes).
const MAX_META: usize = 1 << 20;
/// The largest string index accepted: 268 million strings, far beyond any real snapshot, and
/// bitsets of at most 32 MiB each however hostile the input.
const MAX_STRING_INDEX: u64 = 1 << 28;

/// Why a stream could not be redacted. Nothing should be trusted of the output then.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("{0}")]
    Format(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn format_error<T>(why: impl Into<String>) -> Result<T, RedactError> {
    Err(RedactError::Format(why.into()))
}

/// What a redaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedactStats {
    /// Entries in the `strings` table.
    pub strings: u64,
    /// Entries replaced by the placeholder.
    pub redacted: u64,
    /// String values kept because the same entry is also a name.
    pub shared_kept: u64,
}

/// Which top-level member the scanner is inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Meta,
    Nodes,
    Edges,
    FunctionInfos,
    Strings,
    Other,
}

/// How the integer arrays name strings, from the meta.
#[derive(Debug)]
struct Layout {
    node_fields: usize,
    node_type: usize,
    node_name: usize,
    /// Per node type: whether its name is a string value.
    string_types: Vec<bool>,
    edge_fields: usize,
    edge_type: usize,
    edge_name: usize,
    /// Per edge type: whether `name_or_index` is a string index (not an element index).
    named_edges: Vec<bool>,
    function_fields: usize,
    /// Positions of string indices in a trace function info record.
    function_names: Vec<usize>,
}

#[derive(serde::Deserialize)]
struct MetaDoc {
    meta: Meta,
}

#[derive(serde::Deserialize)]
struct Meta {
    node_fields: Vec<String>,
    node_types: Vec<serde_json::Value>,
    edge_fields: Vec<String>,
    edge_types: Vec<serde_json::Value>,
    #[serde(default)]
    trace_function_info_fields: Vec<String>,
}

impl Layout {
    fn from_meta(bytes: &[u8]) -> Result<Layout, RedactError> {
        let doc: MetaDoc = serde_json::from_slice(bytes)
            .map_err(|e| RedactError::Format(format!("snapshot meta: {e}")))?;
        let meta = doc.meta;
        let position = |fields: &[String], name: &str| {
            fields
                .iter()
                .position(|f| f == name)
                .ok_or_else(|| RedactError::Format(format!("snapshot meta: no {name} field")))
        };
        let type_names = |types: &[serde_json::Value], what: &str| {
            types
                .first()
                .and_then(serde_json::Value::as_array)
                .map(|names| {
                    names
                        .iter()
                        .map(|n| n.as_str().unwrap_or_default().to_owned())
                        .collect::<Vec<_>>()
                })
                .ok_or_else(|| RedactError::Format(format!("snapshot meta: no {what} types")))
        };
        let node_types = type_names(&meta.node_types, "node")?;
        let edge_types = type_names(&meta.edge_types, "edge")?;
        let function_names = meta
            .trace_function_info_fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.as_str() == "name" || f.as_str() == "script_name")
            .map(|(i, _)| i)
            .collect();
        Ok(Layout {
            node_fields: meta.node_fields.len(),
            node_type: position(&meta.node_fields, "type")?,
            node_name: position(&meta.node_fields, "name")?,
            string_types: node_types.iter().map(|t| is_string_type(t)).collect(),
            edge_fields: meta.edge_fields.len(),
            edge_type: position(&meta.edge_fields, "type")?,
            edge_name: position(&meta.edge_fields, "name_or_index")?,
            named_edges: edge_types
                .iter()
                .map(|t| t != "element" && t != "hidden")
                .collect(),
            function_fields: meta.trace_function_info_fields.len(),
            function_names,
        })
    }
}

/// A growable bitset over string indices.
#[derive(Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn set(&mut self, index: u64) -> Result<(), RedactError> {
        if index >= MAX_STRING_INDEX {
            return format_error(format!("string index {index} out of range"));
        }
        let word = usize::try_from(index / 64).unwrap_or(usize::MAX);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << (index % 64);
        Ok(())
    }

    fn get(&self, index: u64) -> bool {
        usize::try_from(index / 64)
            .ok()
            .and_then(|w| self.0.get(w))
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }
}

/// Redacts a snapshot fed in pieces of any size; see the module docs.
pub struct Redactor {
    depth: u32,
    in_string: bool,
    escape: bool,
    /// The last string completed at depth 1 (the current member's key), truncated.
    key: Vec<u8>,
    collecting_key: bool,
    section: Section,
    meta: Vec<u8>,
    layout: Option<Layout>,
    /// The integer being read in an integer array, if any.
    number: Option<u64>,
    record: Vec<u64>,
    /// Indices named by string-type nodes, and by anything else.
    values: Bits,
    names: Bits,
    /// The next entry of the `strings` table, and whether the current one is being dropped.
    string_index: u64,
    dropping: bool,
    seen_nodes: bool,
    seen_edges: bool,
    seen_strings: bool,
    closed: bool,
    stats: RedactStats,
}

impl Default for Redactor {
    fn default() -> Self {
        Redactor::new()
    }
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor {
            depth: 0,
            in_string: false,
            escape: false,
            key: Vec::new(),
            collecting_key: false,
            section: Section::None,
            meta: Vec::new(),
            layout: None,
            number: None,
            record: Vec::new(),
            values: Bits::default(),
            names: Bits::default(),
            string_index: 0,
            dropping: false,
            seen_nodes: false,
            seen_edges: false,
            seen_strings: false,
            closed: false,
            stats: RedactStats::default(),
        }
    }

    /// Redacts `input`, the next piece of the snapshot, appending the result to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), RedactError> {
        // Bytes are copied in runs; a dropped string's contents are left out of the run.
        let mut run_start = 0;
        for (i, &byte) in input.iter().enumerate() {
            if self.section == Section::Meta {
                if self.meta.len() >= MAX_META {
                    return format_error("the snapshot meta is implausibly large");
                }
                self.meta.push(byte);
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if byte == b'\\' {
                    self.escape = true;
                } else if byte == b'"' {
                    self.in_string = false;
                    self.collecting_key = false;
                    if self.section == Section::Strings && self.depth == 2 {
                        if self.dropping {
                            self.dropping = false;
                            run_start = i;
                        }
                        self.string_index += 1;
                    }
                } else if self.collecting_key && self.key.len() < 32 {
                    self.key.push(byte);
                }
                continue;
            }
            if let Some(n) = self.number {
                if byte.is_ascii_digit() {
                    self.number = Some(
                        n.checked_mul(10)
                            .and_then(|n| n.checked_add(u64::from(byte - b'0')))
                            .ok_or_else(|| RedactError::Format("integer out of range".into()))?,
                    );
                    continue;
                }
                self.number = None;
                self.integer(n)?;
            }
            match byte {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 {
                        self.key.clear();
                        self.collecting_key = true;
                    } else if self.section == Section::Strings && self.depth == 2 {
                        let index = self.string_index;
                        self.stats.strings += 1;
                        if self.values.get(index) {
                            if self.names.get(index) {
                                self.stats.shared_kept += 1;
                            } else {
                                self.stats.redacted += 1;
                                self.dropping = true;
                                out.extend_from_slice(&input[run_start..=i]);
                                out.extend_from_slice(PLACEHOLDER.as_bytes());
                            }
                        }
                    }
                }
                b'{' | b'[' => {
                    if self.depth == 0 && self.closed {
                        return format_error("data after the end of the snapshot");
                    }
                    self.depth += 1;
                    if self.depth == 2 {
                        self.enter(byte)?;
                    }
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        return format_error("unbalanced brackets");
                    }
                    if self.depth == 2 {
                        self.leave()?;
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.closed = true;
                    }
                }
                b'0'..=b'9' if self.depth == 2 && self.integers() => {
                    self.number = Some(u64::from(byte - b'0'));
                }
                _ => {}
            }
        }
        if !self.dropping {
            out.extend_from_slice(&input[run_start..]);
        }
        Ok(())
    }

    /// Checks the snapshot ended whole and in V8's order; returns what was done.
    pub fn finish(&self) -> Result<RedactStats, RedactError> {
        if !self.closed || self.in_string {
            return format_error("the snapshot ended early");
        }
        if !self.seen_strings {
            return format_error("the snapshot has no strings table");
        }
        Ok(self.stats)
    }

    /// Whether the current section is an integer array the redactor reads.
    fn integers(&self) -> bool {
        matches!(
            self.section,
            Section::Nodes | Section::Edges | Section::FunctionInfos
        )
    }

    /// A container opens at depth 2: the value of member `key`.
    fn enter(&mut self, byte: u8) -> Result<(), RedactError> {
        self.section = match (self.key.as_slice(), byte) {
            (b"snapshot", b'{') => {
                self.meta.clear();
                self.meta.push(b'{');
                // The meta object itself is captured from here on (this byte included above).
                Section::Meta
            }
            (b"nodes", b'[') => Section::Nodes,
            (b"edges", b'[') => Section::Edges,
            (b"trace_function_infos", b'[') => Section::FunctionInfos,
            (b"strings", b'[') => {
                if self.layout.is_none() || !self.seen_nodes || !self.seen_edges {
                    return format_error(
                        "the strings table comes before the meta, nodes or edges; \
                         not a V8 snapshot in V8's order, cannot redact in one pass",
                    );
                }
                Section::Strings
            }
            _ => Section::Other,
        };
        if self.integers() && self.layout.is_none() {
            return format_error("nodes or edges come before the snapshot meta");
        }
        self.record.clear();
        Ok(())
    }

    /// The depth-2 container closes.
    fn leave(&mut self) -> Result<(), RedactError> {
        match self.section {
            Section::Meta => {
                // The closing byte was captured already.
                let doc = [br#"{"meta":"#.as_slice(), &self.meta_object()?, b"}"].concat();
                self.layout = Some(Layout::from_meta(&doc)?);
                self.meta = Vec::new();
            }
            Section::Nodes | Section::Edges | Section::FunctionInfos => {
                if !self.record.is_empty() {
                    return format_error("an integer array ends mid-record");
                }
                match self.section {
                    Section::Nodes => self.seen_nodes = true,
                    Section::Edges => self.seen_edges = true,
                    _ => {}
                }
            }
            Section::Strings => self.seen_strings = true,
            Section::None | Section::Other => {}
        }
        self.section = Section::None;
        Ok(())
    }

    /// The `meta` member of the captured `snapshot` object.
    fn meta_object(&self) -> Result<Vec<u8>, RedactError> {
        let snapshot: serde_json::Value = serde_json::from_slice(&self.meta)
            .map_err(|e| RedactError::Format(format!("snapshot meta: {e}")))?;
        let meta = snapshot
            .get("meta")
            .ok_or_else(|| RedactError::Format("snapshot: no meta".into()))?;
        serde_json::to_vec(meta).map_err(|e| RedactError::Format(e.to_string()))
    }

    /// One integer of `nodes`, `edges` or `trace_function_infos`.
    fn integer(&mut self, value: u64) -> Result<(), RedactError> {
        let Some(layout) = &self.layout else {
            return format_error("integers before the snapshot meta");
        };
        let fields = match self.section {
            Section::Nodes => layout.node_fields,
            Section::Edges => layout.edge_fields,
            _ => layout.function_fields,
        };
        self.record.push(value);
        if self.record.len() < fields.max(1) {
            return Ok(());
        }
        let record = std::mem::take(&mut self.record);
        let flag =
            |types: &[bool], t: u64| usize::try_from(t).ok().and_then(|t| types.get(t)).copied();
        match self.section {
            Section::Nodes => {
                let name = record[layout.node_name];
                match flag(&layout.string_types, record[layout.node_type]) {
                    Some(true) => self.values.set(name)?,
                    Some(false) => self.names.set(name)?,
                    None => return format_error("a node of an unknown type"),
                }
            }
            Section::Edges => match flag(&layout.named_edges, record[layout.edge_type]) {
                Some(true) => self.names.set(record[layout.edge_name])?,
                Some(false) => {}
                None => return format_error("an edge of an unknown type"),
            },
            _ => {
                for &field in &layout.function_names {
                    self.names.set(record[field])?;
                }
            }
        }
        self.record = record;
        self.record.clear();
        Ok(())
    }
}

/// Redacts the snapshot read from `input` into `output`, streaming.
pub fn redact(mut input: impl Read, mut output: impl Write) -> Result<RedactStats, RedactError> {
    let mut redactor = Redactor::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut out = Vec::with_capacity(256 << 10);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        out.clear();
        redactor.feed(&buf[..n], &mut out)?;
        output.write_all(&out)?;
    }
    output.flush()?;
    redactor.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny snapshot in V8's layout: a string node "s3cret" (index 1), an object named
    /// "Thing" (2) with a property edge "email" (3), a string node whose text is also a property
    /// name ("email", 3), and a concatenated string "a@b.c" (4).
    const SNAPSHOT: &str = r#"{"snapshot":{"meta":{"node_fields":["type","name","id","self_size","edge_count","trace_node_id","detachedness"],"node_types":[["hidden","array","string","object","code","closure","regexp","number","native","synthetic","concatenated string","sliced string","symbol","bigint","object shape"],"string","number","number","number","number","number"],"edge_fields":["type","name_or_index","to_node"],"edge_types":[["context","element","property","internal","hidden","shortcut","weak"],"string_or_number","node"],"trace_function_info_fields":["function_id","name","script_name","script_id","line","column"],"location_fields":["object_index","script_id","line","column"]},"node_count":4,"edge_count":2},
"nodes":[3,2,1,32,2,0,0
,2,1,3,24,0,0,0
,2,3,5,24,0,0,0
,10,4,7,32,0,0,0],
"edges":[2,3,7
,1,3,14],
"trace_function_infos":[],"trace_tree":[],"samples":[],"locations":[],
"strings":["<dummy>",
"s3cret",
"Thing",
"email",
"a@b.c \"quoted\" \\ \u00e9"]}"#;

    fn run(pieces: usize) -> (String, RedactStats) {
        let mut redactor = Redactor::new();
        let mut out = Vec::new();
        let bytes = SNAPSHOT.as_bytes();
        let size = bytes.len().div_ceil(pieces);
        for piece in bytes.chunks(size.max(1)) {
            redactor.feed(piece, &mut out).unwrap();
        }
        (String::from_utf8(out).unwrap(), redactor.finish().unwrap())
    }

    #[test]
    fn values_go_names_stay_whatever_the_piece_size() {
        let (whole, stats) = run(1);
        for pieces in [2, 7, 50, SNAPSHOT.len()] {
            assert_eq!(run(pieces).0, whole, "{pieces} pieces");
        }
        assert_eq!(
            stats,
            RedactStats {
                strings: 5,
                redacted: 2,
                shared_kept: 1
            }
        );
        assert!(!whole.contains("s3cret") && !whole.contains("a@b.c"));
        let json: serde_json::Value = serde_json::from_str(&whole).unwrap();
        assert_eq!(
            json["strings"],
            serde_json::json!(["<dummy>", "<redacted>", "Thing", "email", "<redacted>"])
        );
        // Everything but the two entries is byte for byte as it was.
        let expected = SNAPSHOT
            .replace("\"s3cret\"", "\"<redacted>\"")
            .replace(r#""a@b.c \"quoted\" \\ \u00e9""#, "\"<redacted>\"");
        assert_eq!(whole, expected);
    }

    #[test]
    fn out_of_order_or_broken_input_is_refused() {
        let strings_first = r#"{"strings":["x"],"snapshot":{"meta":{}}}"#;
        let mut out = Vec::new();
        assert!(
            Redactor::new()
                .feed(strings_first.as_bytes(), &mut out)
                .is_err()
        );
        let cut = &SNAPSHOT[..SNAPSHOT.len() - 10];
        let mut redactor = Redactor::new();
        redactor.feed(cut.as_bytes(), &mut out).unwrap();
        assert!(redactor.finish().is_err());
        let unknown_type = SNAPSHOT.replace("[3,2,1,32", "[99,2,1,32");
        let mut redactor = Redactor::new();
        assert!(redactor.feed(unknown_type.as_bytes(), &mut out).is_err());
        assert!(redact(&b"not json"[..], Vec::new()).is_err());
    }

    /// Mangled input is an error or a redaction, never a panic or a runaway allocation.
    #[test]
    fn mangled_input_never_panics() {
        let bytes = SNAPSHOT.as_bytes();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"0123456789[]{},:\" \\x";
        for _ in 0..20_000 {
            let mut mangled = bytes.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() % mangled.len() as u64) as usize;
                match next() % 3 {
                    0 => mangled[at] = alphabet[(next() % alphabet.len() as u64) as usize],
                    1 => {
                        mangled.remove(at);
                    }
                    _ => mangled.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                }
            }
            let mut redactor = Redactor::new();
            let mut out = Vec::new();
            let split = (next() % mangled.len() as u64) as usize;
            if redactor.feed(&mangled[..split], &mut out).is_ok()
                && redactor.feed(&mangled[split..], &mut out).is_ok()
            {
                let _ = redactor.finish();
            }
        }
        let huge = SNAPSHOT.replace("[3,2,1,32", "[3,99999999999999,1,32");
        assert!(redact(huge.as_bytes(), Vec::new()).is_err());
    }

    #[test]
    fn leading_keepalive_whitespace_passes_through() {
        let spaced = format!("   {SNAPSHOT}");
        let mut out = Vec::new();
        let stats = redact(spaced.as_bytes(), &mut out).unwrap();
        assert_eq!(stats.redacted, 2);
        assert!(out.starts_with(b"   {\"snapshot\""));
    }
}
