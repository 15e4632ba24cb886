//! Which class a node is counted under, by DevTools' rules (`calculateObjectNames`,
//! `inferInterfaceDefinitions`, `applyInterfaceDefinitions` in devtools-frontend's
//! `HeapSnapshot.ts`).
//!
//! - `object` and `native` nodes: their name (the constructor name, or the embedder's label),
//!   with `Detached ` in front for detached natives. HTML-like names are cut at the first space:
//!   `<div id="a">` counts as `<div>`, `Detached <div class="x">` as `Detached <div>`.
//! - Plain objects (`object` nodes named `Object`) are grouped by shape instead: an
//!   [`InterfaceDefinition`] such as `{method, url}` when one fits, else `Object`.
//! - `hidden` → `(system)`, `code` → `(compiled code)`, `closure` → `Function`, `regexp` →
//!   `RegExp`; every other type → its name in parentheses: `(string)`, `(array)`,
//!   `(concatenated string)`, `(number)`, `(object shape)`, ….
//!
//! DevTools compares strings the JavaScript way (UTF-16 code units, lengths in code units), so
//! property sorting and name-length limits here do too.

use std::{borrow::Cow, cmp::Ordering, collections::HashMap};

use crate::fxhash::{FastMap, FastSet};
use crate::layout::NodeKind;
use crate::model::InterfaceDefinition;
use crate::parse::Heap;

/// At most this many UTF-16 units in an inferred interface name (beyond its first property).
const MAX_INTERFACE_NAME_LENGTH: usize = 120;
/// An interface must match at least this many objects…
const MIN_OBJECTS_PER_INTERFACE: f64 = 2.0;
/// …and at least one plain object in this many.
const MIN_PROPORTION_PER_INTERFACE: f64 = 1000.0;

/// The class of a node that is not a plain object, or `None` for a plain object.
pub(crate) fn class_name<'a>(
    heap: &'a Heap,
    ordinal: usize,
    detached: bool,
) -> Option<Cow<'a, str>> {
    let kind = heap.kind(ordinal);
    Some(match kind {
        NodeKind::Hidden => Cow::Borrowed("(system)"),
        NodeKind::Code => Cow::Borrowed("(compiled code)"),
        NodeKind::Closure => Cow::Borrowed("Function"),
        NodeKind::RegExp => Cow::Borrowed("RegExp"),
        NodeKind::Object | NodeKind::Native => {
            let raw = heap.raw_name(ordinal);
            if kind == NodeKind::Object && raw == "Object" {
                return None;
            }
            if detached {
                Cow::Owned(short_tag_name(&format!("Detached {raw}")).into_owned())
            } else {
                short_tag_name(raw)
            }
        }
        NodeKind::Array | NodeKind::Synthetic | NodeKind::Other => {
            let type_name = &heap.layout.nodes.type_names[usize::from(heap.node_type[ordinal])];
            Cow::Owned(format!("({type_name})"))
        }
    })
}

/// `<div id="a">` → `<div>`; `Detached <div id="a">` → `Detached <div>`; others unchanged.
fn short_tag_name(name: &str) -> Cow<'_, str> {
    const DETACHED: &str = "Detached <";
    let cut = if name.starts_with('<') {
        name.find(' ')
    } else if name.starts_with(DETACHED) {
        name.strip_prefix(DETACHED)
            .and_then(|rest| rest.find(' '))
            .map(|i| i + DETACHED.len())
    } else {
        None
    };
    match cut {
        Some(i) => Cow::Owned(format!("{}>", &name[..i])),
        None => Cow::Borrowed(name),
    }
}

/// JavaScript's default string order (by UTF-16 code unit).
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A property name as DevTools prints it in an interface name: quoted and escaped the way
/// `JSON.stringify` does when it holds `,`, `'`, `"`, `{` or `}`.
pub(crate) fn format_property_name(name: &str) -> Cow<'_, str> {
    if name.contains([',', '\'', '"', '{', '}']) {
        Cow::Owned(serde_json::to_string(name).unwrap_or_else(|_| name.to_owned()))
    } else {
        Cow::Borrowed(name)
    }
}

/// What plain objects contribute to a summary.
pub(crate) struct PlainObjects {
    /// Inferred from this snapshot's plain objects.
    pub(crate) interfaces: Vec<InterfaceDefinition>,
    /// Every property name of a plain object, sorted the JavaScript way, without duplicates.
    pub(crate) property_names: Vec<Box<str>>,
    /// Distinct shapes: sorted indexes into `property_names`.
    pub(crate) shapes: Vec<Box<[u32]>>,
    /// The shape of each plain object, in the order given.
    pub(crate) shape_of: Vec<u32>,
}

/// Interface definitions and shapes for the plain objects `plain` (node ordinals) of `heap`.
pub(crate) fn plain_objects(heap: &Heap, plain: &[u32]) -> PlainObjects {
    let properties_of = |i: usize| heap.property_names(plain[i] as usize);
    // Rank every property name once, in JavaScript order (equal contents, equal rank).
    let mut names: Vec<u32> = (0..plain.len())
        .flat_map(properties_of)
        .collect::<FastSet<u32>>()
        .into_iter()
        .collect();
    names.sort_unstable_by(|&a, &b| cmp_utf16(heap.string(a), heap.string(b)));
    let mut property_names: Vec<Box<str>> = Vec::new();
    let mut rank: FastMap<u32, u32> = FastMap::default();
    for s in names {
        let text = heap.string(s);
        if property_names.last().is_none_or(|last| **last != *text) {
            property_names.push(text.into());
        }
        rank.insert(s, property_names.len() as u32 - 1);
    }
    let is_proto: FastSet<u32> = rank
        .keys()
        .copied()
        .filter(|&s| heap.string(s) == "__proto__")
        .collect();

    // Candidates are counted by the sequence of property strings their name is made of; names
    // are only built for distinct sequences.
    struct Candidate {
        properties: Box<[u32]>,
        count: u64,
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut candidate_of: FastMap<Box<[u32]>, usize> = FastMap::default();
    let mut formatted_len: FastMap<u32, usize> = FastMap::default();
    let mut shape_index: FastMap<Box<[u32]>, u32> = FastMap::default();
    let mut shapes: Vec<Box<[u32]>> = Vec::new();
    let mut shape_of = Vec::with_capacity(plain.len());
    let (mut sequence, mut ranks) = (Vec::new(), Vec::new());
    for i in 0..plain.len() {
        let properties = properties_of(i);

        sequence.clear();
        let mut name_len = 1;
        for s in properties.clone() {
            if is_proto.contains(&s) {
                continue;
            }
            let len = *formatted_len
                .entry(s)
                .or_insert_with(|| utf16_len(&format_property_name(heap.string(s))));
            // Always one property; more only while the name stays short.
            if name_len > 1 && name_len + len > MAX_INTERFACE_NAME_LENGTH {
                break;
            }
            name_len += len + if name_len == 1 { 0 } else { 2 };
            sequence.push(s);
        }
        if !sequence.is_empty() {
            match candidate_of.get(sequence.as_slice()) {
                Some(&c) => candidates[c].count += 1,
                None => {
                    candidate_of.insert(sequence.clone().into_boxed_slice(), candidates.len());
                    candidates.push(Candidate {
                        properties: sequence.clone().into_boxed_slice(),
                        count: 1,
                    });
                }
            }
        }

        ranks.clear();
        ranks.extend(properties.map(|s| rank[&s]));
        ranks.sort_unstable();
        let shape = match shape_index.get(ranks.as_slice()) {
            Some(&shape) => shape,
            None => {
                let shape = shapes.len() as u32;
                shapes.push(ranks.clone().into_boxed_slice());
                shape_index.insert(ranks.clone().into_boxed_slice(), shape);
                shape
            }
        };
        shape_of.push(shape);
    }

    // DevTools counts by name: merge sequences that print the same (first-seen order kept).
    let mut by_name: Vec<(String, &[u32], u64)> = Vec::new();
    let mut name_at: HashMap<String, usize> = HashMap::new();
    for c in &candidates {
        let name = interface_name(heap, &c.properties);
        match name_at.get(&name) {
            Some(&i) => by_name[i].2 += c.count,
            None => {
                name_at.insert(name.clone(), by_name.len());
                by_name.push((name, &c.properties, c.count));
            }
        }
    }
    // Stable, like JavaScript's sort: equally common shapes keep first-seen order.
    by_name.sort_by_key(|c| std::cmp::Reverse(c.2));
    let min_count =
        MIN_OBJECTS_PER_INTERFACE.max(plain.len() as f64 / MIN_PROPORTION_PER_INTERFACE);
    let interfaces = by_name
        .into_iter()
        .take_while(|c| c.2 as f64 >= min_count)
        .map(|(name, properties, _)| InterfaceDefinition {
            name,
            properties: properties
                .iter()
                .map(|&s| heap.string(s).to_owned())
                .collect(),
        })
        .collect();

    PlainObjects {
        interfaces,
        property_names,
        shapes,
        shape_of,
    }
}

/// `{a, b, "c,d"}` for the property strings `properties`.
fn interface_name(heap: &Heap, properties: &[u32]) -> String {
    let mut name = String::from("{");
    for &s in properties {
        // As DevTools: no separator while nothing printable was added (an empty name).
        if name.len() != 1 {
            name.push_str(", ");
        }
        name.push_str(&format_property_name(heap.string(s)));
    }
    name.push('}');
    name
}

/// Finds, for a plain object's sorted property set, the definition DevTools picks: among those
/// whose properties it has all of, the one with the most properties, then the earliest.
pub(crate) struct InterfaceMatcher<'a> {
    /// `(index, sorted property ranks, name)`
    definitions: Vec<(usize, Vec<u32>, &'a str)>,
    /// Definitions by their lowest-ranked property.
    by_first: HashMap<u32, Vec<usize>>,
}

impl<'a> InterfaceMatcher<'a> {
    /// `rank` gives a property name's position in the summary's sorted property table; a
    /// definition naming a property no object here has can never match and is left out.
    pub(crate) fn new(
        definitions: &'a [InterfaceDefinition],
        rank: impl Fn(&str) -> Option<u32>,
    ) -> InterfaceMatcher<'a> {
        let mut matcher = InterfaceMatcher {
            definitions: Vec::new(),
            by_first: HashMap::new(),
        };
        for (index, definition) in definitions.iter().enumerate() {
            let ranks: Option<Vec<u32>> = definition.properties.iter().map(|p| rank(p)).collect();
            let Some(mut ranks) = ranks else { continue };
            if ranks.is_empty() {
                continue;
            }
            ranks.sort_unstable();
            matcher
                .by_first
                .entry(ranks[0])
                .or_default()
                .push(matcher.definitions.len());
            matcher
                .definitions
                .push((index, ranks, definition.name.as_str()));
        }
        matcher
    }

    /// The interface name for an object with these (sorted) property ranks, if any fits.
    pub(crate) fn best(&self, shape: &[u32]) -> Option<&'a str> {
        let mut best: Option<&(usize, Vec<u32>, &'a str)> = None;
        for (at, property) in shape.iter().enumerate() {
            if at > 0 && shape[at - 1] == *property {
                continue;
            }
            let Some(candidates) = self.by_first.get(property) else {
                continue;
            };
            for &c in candidates {
                let definition = &self.definitions[c];
                if !is_sub_multiset(&definition.1, &shape[at..]) {
                    continue;
                }
                let better = match best {
                    None => true,
                    Some(b) => {
                        definition.1.len() > b.1.len()
                            || (definition.1.len() == b.1.len() && definition.0 < b.0)
                    }
                };
                if better {
                    best = Some(definition);
                }
            }
        }
        best.map(|b| b.2)
    }
}

/// Whether sorted `small` is contained (with multiplicity) in sorted `big`.
fn is_sub_multiset(small: &[u32], big: &[u32]) -> bool {
    let mut j = 0;
    for &x in small {
        while j < big.len() && big[j] < x {
            j += 1;
        }
        if j == big.len() || big[j] != x {
            return false;
        }
        j += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_cut_at_the_first_space() {
        assert_eq!(short_tag_name("<div id=\"a\">"), "<div>");
        assert_eq!(short_tag_name("<div>"), "<div>");
        assert_eq!(short_tag_name("Detached <li class=\"x\">"), "Detached <li>");
        assert_eq!(
            short_tag_name("Detached Node / BindingData"),
            "Detached Node / BindingData"
        );
        assert_eq!(short_tag_name("Foo <bar baz>"), "Foo <bar baz>");
    }

    #[test]
    fn property_names_are_quoted_like_json_stringify() {
        assert_eq!(format_property_name("url"), "url");
        assert_eq!(format_property_name("a,b"), "\"a,b\"");
        assert_eq!(
            format_property_name("say \"hi\"\n{}"),
            "\"say \\\"hi\\\"\\n{}\""
        );
    }

    #[test]
    fn utf16_order_differs_from_utf8_above_the_bmp() {
        // U+FF61 sorts after U+1F600 in UTF-8 bytes order, before it in UTF-16 units.
        assert_eq!(cmp_utf16("\u{1F600}", "\u{FF61}"), Ordering::Less);
        assert_eq!("\u{1F600}".cmp("\u{FF61}"), Ordering::Greater);
    }

    #[test]
    fn sub_multisets() {
        assert!(is_sub_multiset(&[1, 3], &[1, 2, 3]));
        assert!(!is_sub_multiset(&[1, 1], &[1, 2]));
        assert!(is_sub_multiset(&[], &[1]));
        assert!(!is_sub_multiset(&[4], &[1, 2, 3]));
    }
}
