//! One object of a loaded snapshot, by id (`@12345`, as DevTools writes it): what it is, what it
//! holds and what holds it. The numbers are DevTools' own (retained size, distance, the
//! retainers and their order); the shared result types of drill-down live here too.
//!
//! **Strings.** The reader never keeps the contents of string (or number) nodes, so no string
//! value from the heap can appear in an answer. What can still be data is a *name*: the keys of
//! a dictionary-mode object or a hash table are property names. With [`Strings::Hidden`] (the
//! default), a property name that does not read like a JavaScript identifier is shown as
//! `<key>`; [`Strings::Shown`] shows names as the snapshot has them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::analysis::{NONE, RetainerGroup, Snapshot, Walk};
use crate::error::SnapshotError;
use crate::holder;
use crate::model::PathStep;
use crate::parse::EDGE_TARGET_MASK;

/// Whether names that may be data (property keys) leave the engine as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strings {
    /// Property names that are not identifiers read `<key>` (see the module documentation).
    #[default]
    Hidden,
    /// Names as the snapshot has them.
    Shown,
}

/// What a name that may be data reads when [`Strings::Hidden`].
pub const HIDDEN_KEY: &str = "<key>";

impl Strings {
    /// `name` as it may be shown: unchanged when shown, when it reads like an identifier
    /// (`user`, `_cache`, `$el`, `#private`) or is one of V8's labels (`<symbol x>`, `[]`, an
    /// index); `<key>` otherwise.
    pub fn filter(self, name: &str) -> String {
        if self == Strings::Shown || is_code_name(name) {
            name.to_owned()
        } else {
            HIDDEN_KEY.to_owned()
        }
    }
}

/// Whether `name` is a name from code rather than from data: an identifier of at most 64
/// characters, a V8 label, `[]` or a number.
fn is_code_name(name: &str) -> bool {
    if name.is_empty() || name == "[]" || name.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if name.starts_with('<') && name.ends_with('>') && name.len() <= 64 {
        return true;
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or(' ');
    name.chars().count() <= 64
        && (first.is_ascii_alphabetic() || matches!(first, '_' | '$' | '#'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$'))
}

/// Which slice of a long list to return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paging {
    /// Items to skip.
    pub offset: usize,
    /// Items to return at most.
    pub limit: usize,
}

impl Paging {
    /// The first `limit` items.
    pub fn first(limit: usize) -> Paging {
        Paging { offset: 0, limit }
    }
}

/// A slice of a longer list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    /// The items, from `offset` on.
    pub items: Vec<T>,
    /// Where this page starts in the whole list.
    pub offset: usize,
    /// How many items the whole list has.
    pub total: usize,
    /// The `offset` of the next page; `None` on the last.
    pub next: Option<usize>,
}

impl<T> Page<T> {
    /// The page `paging` asks for of `all`.
    pub(crate) fn of(mut all: Vec<T>, paging: Paging) -> Page<T> {
        let total = all.len();
        let offset = paging.offset.min(total);
        let end = offset.saturating_add(paging.limit).min(total);
        all.truncate(end);
        let items = all.split_off(offset);
        Page {
            items,
            offset,
            total,
            next: (end < total).then_some(end),
        }
    }
}

/// An object in a list: enough to pick it and ask about it (`@id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    /// The node id, as DevTools shows it after `@`.
    pub id: u32,
    /// Its class, as the Summary view names it (`Map`, `(string)`, `{id, url}`…).
    pub class: String,
    /// Where its constructor (or, for a closure, the function) is defined: `file:line:column`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Self size in bytes, after DevTools folds singly-owned arrays and internals into their
    /// owner (0 for what was folded).
    pub self_size: u64,
    /// Retained size in bytes.
    pub retained_size: u64,
    /// DevTools' distance from the roots (`-5` none; 100,000,000 and up: only the root
    /// reaches it).
    pub distance: i32,
}

/// An edge, seen from one end: its name and type, and the node at the other end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EdgeView {
    /// The property name, variable name or index (`[]` collapsing is not applied here).
    pub name: String,
    /// `property`, `element`, `context`, `internal`, `hidden`, `shortcut`, `weak`…
    pub edge_type: String,
    /// The node at the other end (the target of an outgoing edge, the holder of a retainer).
    pub node: ObjectRef,
}

/// How much of an object to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectOptions {
    /// Which outgoing edges, in the snapshot's order.
    pub edges: Paging,
    /// Which retainers, nearest to the roots first (DevTools' Retainers order).
    pub retainers: Paging,
    /// How many retainer paths, grouped; 0 for none.
    pub paths: usize,
    /// Whether names that may be data are shown.
    pub strings: Strings,
}

impl Default for ObjectOptions {
    fn default() -> ObjectOptions {
        ObjectOptions {
            edges: Paging::first(20),
            retainers: Paging::first(20),
            paths: 5,
            strings: Strings::Hidden,
        }
    }
}

/// One object: [`Snapshot::object`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectView {
    /// The object itself.
    #[serde(flatten)]
    pub object: ObjectRef,
    /// The V8 node type: `object`, `closure`, `array`, `string`, `hidden`, `native`…
    pub node_type: String,
    /// A function's name (closures) or an internal node's name; never a string's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The immediate dominator: the object that, freed, would free this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dominator: Option<ObjectRef>,
    /// Outgoing edges.
    pub edges: Page<EdgeView>,
    /// Incoming edges, their holders nearest to the roots first.
    pub retainers: Page<EdgeView>,
    /// The paths from the roots through each retainer, grouped as `diff` groups them: `count`
    /// retainers share a path; `retained_size` is this object's.
    pub paths: Vec<RetainerGroup>,
}

impl Snapshot {
    /// The object with id `id`: [`SnapshotError::NoSuchObject`] if this snapshot has none (an
    /// id from another snapshot, or a typo).
    pub fn object(&self, id: u32, options: &ObjectOptions) -> Result<ObjectView, SnapshotError> {
        let ordinal = self
            .ordinal_of(id)
            .ok_or_else(|| SnapshotError::NoSuchObject {
                path: self.origin.clone(),
                id,
            })?;
        let strings = options.strings;
        let types = self.types;
        let type_names = &self.heap.layout.edges.type_names;
        let edge_name = |e: usize| {
            let ty = self.heap.edge_type[e];
            if types.has_string_name(ty) {
                let name = self.heap.string(self.heap.edge_name[e]);
                if type_names[usize::from(ty)] == "property" {
                    strings.filter(name)
                } else {
                    name.to_owned()
                }
            } else {
                self.heap.edge_name[e].to_string()
            }
        };
        let edge_type = |e: usize| type_names[usize::from(self.heap.edge_type[e])].clone();

        let (from, to) = (
            self.heap.first_edge[ordinal] as usize,
            self.heap.first_edge[ordinal + 1] as usize,
        );
        let edges = if self.heap.edges.len() == self.heap.edge_type.len() {
            let all: Vec<usize> = (from..to).collect();
            let page = Page::of(all, options.edges);
            Page {
                items: page
                    .items
                    .iter()
                    .map(|&e| EdgeView {
                        name: edge_name(e),
                        edge_type: edge_type(e),
                        node: self.object_ref((self.heap.edges[e] & EDGE_TARGET_MASK) as usize),
                    })
                    .collect(),
                offset: page.offset,
                total: page.total,
                next: page.next,
            }
        } else {
            // Opened without the edges' targets (a comparison's last file): none to show.
            Page::of(Vec::new(), options.edges)
        };

        let retainers = self.retainers_of(ordinal);
        let page = Page::of(retainers.clone(), options.retainers);
        let retainers_page = Page {
            items: page
                .items
                .iter()
                .map(|&(source, e)| EdgeView {
                    name: edge_name(e),
                    edge_type: edge_type(e),
                    node: self.object_ref(source),
                })
                .collect(),
            offset: page.offset,
            total: page.total,
            next: page.next,
        };

        let paths = if options.paths == 0 {
            Vec::new()
        } else {
            self.paths_of(ordinal, &retainers, options.paths, strings)
        };
        let node_type =
            self.heap.layout.nodes.type_names[usize::from(self.heap.node_type[ordinal])].clone();
        let step = self.step(ordinal, None);
        let dominator = self
            .graph
            .dominator
            .get(ordinal)
            .map(|&d| d as usize)
            .filter(|&d| d != ordinal)
            .map(|d| self.object_ref(d));
        Ok(ObjectView {
            object: self.object_ref(ordinal),
            node_type,
            name: step.name,
            dominator,
            edges,
            retainers: retainers_page,
            paths,
        })
    }

    /// The object at `ordinal` in a list.
    pub(crate) fn object_ref(&self, ordinal: usize) -> ObjectRef {
        let step = self.step(ordinal, None);
        ObjectRef {
            id: self.heap.node_id[ordinal],
            class: step.node,
            location: step.location,
            self_size: u64::from(self.shallow_size(ordinal)),
            retained_size: self.graph.retained[ordinal],
            distance: self.graph.distance.get(ordinal).copied().unwrap_or(-5),
        }
    }

    /// The shallow size of the node at `ordinal` after folding.
    pub(crate) fn shallow_size(&self, ordinal: usize) -> u32 {
        match self.node_group[ordinal] {
            NONE => 0,
            group => {
                let members = &self.summary.groups[group as usize].members;
                let id = self.heap.node_id[ordinal];
                members
                    .binary_search_by_key(&id, |m| m.id)
                    .map_or(0, |i| members[i].size)
            }
        }
    }

    /// The retainers of the node at `ordinal` as DevTools' Retainers pane lists them: weak and
    /// invisible edges and the root left out, nearest to the roots first, then by the
    /// retainer's name, then in retainer-list order. `(retainer, edge)` each.
    fn retainers_of(&self, ordinal: usize) -> Vec<(usize, usize)> {
        let g = &self.graph;
        let types = self.types;
        let (start, end) = (
            g.first_retainer[ordinal] as usize,
            g.first_retainer[ordinal + 1] as usize,
        );
        let mut out: Vec<(i32, String, usize, usize)> = (start..end)
            .filter_map(|r| {
                let e = g.retainer_edge(r);
                let source = self.source_of(e);
                let ty = u16::from(self.heap.edge_type[e]);
                if source == self.root || ty == types.weak || ty == types.invisible {
                    return None;
                }
                let distance = g.distance.get(source).copied().unwrap_or(-5);
                Some((distance, self.js_name(source), source, e))
            })
            .collect();
        // Stable: equal keys keep the retainer-list order.
        out.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| crate::classify::cmp_utf16(&a.1, &b.1))
        });
        out.into_iter().map(|(_, _, s, e)| (s, e)).collect()
    }

    /// The retainer paths through each retainer of the object at `ordinal` (weak and invisible
    /// edges and the root left out), identical paths grouped, most retainers first.
    fn paths_of(
        &self,
        ordinal: usize,
        retainers: &[(usize, usize)],
        limit: usize,
        strings: Strings,
    ) -> Vec<RetainerGroup> {
        /// Retainers followed at most: a string shared by a million objects has as many.
        const MAX_RETAINERS: usize = 1000;
        let types = self.types;
        let mut walk = Walk {
            through_keys: true,
            ..Walk::default()
        };
        let mut groups: HashMap<Vec<PathStep>, (u64, usize)> = HashMap::new();
        for &(source, e) in retainers.iter().take(MAX_RETAINERS) {
            let ty = u16::from(self.heap.edge_type[e]);
            if source == self.root || ty == types.weak || ty == types.invisible {
                continue;
            }
            let mut chain = vec![(source, e)];
            if !chain.iter().any(|c| c.0 == ordinal) && source != ordinal {
                chain.extend(self.retainer_chain(source, &mut walk));
            }
            let mut path = self.steps(ordinal, &chain);
            if strings == Strings::Hidden {
                for step in &mut path {
                    if step.edge_type == "property" {
                        step.edge = strings.filter(&step.edge);
                    }
                }
            }
            let seen = groups.len();
            groups.entry(path).or_insert((0, seen)).0 += 1;
        }
        let retained = self.graph.retained[ordinal];
        let mut out: Vec<(usize, RetainerGroup)> = groups
            .into_iter()
            .map(|(path, (count, first))| {
                (
                    first,
                    RetainerGroup {
                        count,
                        retained_size: retained,
                        holder: holder::holder(&path),
                        path,
                    },
                )
            })
            .collect();
        out.sort_by(|(fa, a), (fb, b)| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.path.len().cmp(&b.path.len()))
                .then_with(|| fa.cmp(fb))
        });
        out.truncate(limit);
        out.into_iter().map(|(_, g)| g).collect()
    }
}
