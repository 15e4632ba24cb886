//! Questions over the objects of one loaded snapshot: which objects match (class, location,
//! an edge name, a minimum retained size), the largest instances of the largest classes, and
//! who holds one class.
//!
//! Objects are the ones DevTools' Summary view lists: self size above zero after folding.

use serde::{Deserialize, Serialize};

use crate::analysis::{NONE, RetainerGroup, Snapshot};
use crate::error::SnapshotError;
use crate::model::ClassSummary;
use crate::object::{ObjectRef, Page, Paging, Strings};

/// Which objects [`Snapshot::query`] returns. Every filter given must hold.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Query {
    /// The class, as the Summary view names it (`Map`, `LeakedContext`, `{id, url}`); exact.
    pub class: Option<String>,
    /// Part of the constructor's location as shown (`app.js:12`, `script 41:3:17`).
    pub location: Option<String>,
    /// The object has an outgoing edge (property, variable, internal field) with this name.
    pub edge: Option<String>,
    /// Retained size at least this many bytes.
    pub min_retained_size: u64,
    /// Which matches to return, largest retained size first.
    pub paging: Paging,
    /// Whether names that may be data are shown.
    pub strings: Strings,
}

impl Default for Paging {
    fn default() -> Paging {
        Paging::first(20)
    }
}

/// What [`Snapshot::query`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueryAnswer {
    /// The matches, largest retained size first (ties by id).
    pub objects: Page<ObjectRef>,
}

/// A class and its largest objects: [`Snapshot::largest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassInstances {
    /// The class, as the Summary view shows it.
    pub class: ClassSummary,
    /// Its largest objects by retained size.
    pub largest: Vec<ObjectRef>,
}

/// Who holds the objects of one class: [`Snapshot::holders`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holders {
    /// The class name.
    pub class: String,
    /// The class's rows in the Summary view (one per constructor location that matched).
    pub rows: Vec<ClassSummary>,
    /// Objects of the class.
    pub count: u64,
    /// Their retainer paths, grouped with keys collapsed as `diff` groups them, largest
    /// retained size first.
    pub groups: Vec<RetainerGroup>,
}

impl Snapshot {
    /// Class key indexes that `class` and `location` select (all keys when both are `None`).
    fn keys_matching(&self, class: Option<&str>, location: Option<&str>) -> Vec<bool> {
        self.keys
            .iter()
            .map(|(name, at)| {
                class.is_none_or(|c| c == name)
                    && location.is_none_or(|want| {
                        at.is_some_and(|l| self.summary.format_location(l).contains(want))
                    })
            })
            .collect()
    }

    /// The objects matching `query`, largest retained size first.
    pub fn query(&self, query: &Query) -> Result<QueryAnswer, SnapshotError> {
        let keys = self.keys_matching(query.class.as_deref(), query.location.as_deref());
        if let Some(name) = &query.class
            && !keys.iter().any(|&k| k)
        {
            return Err(SnapshotError::NoSuchClass {
                path: self.origin.clone(),
                name: name.clone(),
            });
        }
        let types = self.types;
        let has_edge = |o: usize, name: &str| {
            (self.heap.first_edge[o] as usize..self.heap.first_edge[o + 1] as usize).any(|e| {
                types.has_string_name(self.heap.edge_type[e])
                    && self.heap.string(self.heap.edge_name[e]) == name
            })
        };
        // From an index, only the blocks of nodes that may retain enough are read.
        let mut found: Vec<(u64, u32, usize)> = (self.graph.retained)
            .ranges_reaching(query.min_retained_size)
            .into_iter()
            .flatten()
            .filter(|&o| {
                self.graph.retained[o] >= query.min_retained_size
                    && self.node_group[o] != NONE
                    && self.key_of(o).is_some_and(|k| keys[k as usize])
                    && query.edge.as_deref().is_none_or(|name| has_edge(o, name))
            })
            .map(|o| (self.graph.retained[o], self.heap.node_id[o], o))
            .collect();
        found.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let page = Page::of(found, query.paging);
        Ok(QueryAnswer {
            objects: Page {
                items: page
                    .items
                    .iter()
                    .map(|&(_, _, o)| self.object_ref(o))
                    .collect(),
                offset: page.offset,
                total: page.total,
                next: page.next,
            },
        })
    }

    /// The `classes` classes with the largest retained size (the Summary view's order), each
    /// with its `per_class` largest objects.
    pub fn largest(&self, classes: usize, per_class: usize) -> Vec<ClassInstances> {
        let rows: Vec<ClassSummary> = self.summary.classes().into_iter().take(classes).collect();
        let index: std::collections::HashMap<(&str, Option<crate::Location>), usize> = rows
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.name.as_str(), c.location), i))
            .collect();
        let key_row: Vec<Option<usize>> = self
            .keys
            .iter()
            .map(|(n, l)| index.get(&(n.as_str(), *l)).copied())
            .collect();
        let mut best: Vec<Vec<(u64, u32, usize)>> = vec![Vec::new(); rows.len()];
        for o in 0..self.heap.node_count() {
            let Some(row) = self.key_of(o).and_then(|k| key_row[k as usize]) else {
                continue;
            };
            let entry = (self.graph.retained[o], self.heap.node_id[o], o);
            let list = &mut best[row];
            list.push(entry);
            // Keep the lists short: sort and cut when they double.
            if list.len() >= per_class.max(1) * 2 + 16 {
                list.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                list.truncate(per_class);
            }
        }
        rows.into_iter()
            .zip(best)
            .map(|(class, mut list)| {
                list.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                list.truncate(per_class);
                ClassInstances {
                    class,
                    largest: list.iter().map(|&(_, _, o)| self.object_ref(o)).collect(),
                }
            })
            .collect()
    }

    /// Who holds the objects of class `class` (at a location containing `location`, if
    /// given): their retainer paths grouped as `diff` groups the new objects', at most
    /// `groups` groups.
    pub fn holders(
        &self,
        class: &str,
        location: Option<&str>,
        groups: usize,
    ) -> Result<Holders, SnapshotError> {
        let keys = self.keys_matching(Some(class), location);
        if !keys.iter().any(|&k| k) {
            return Err(SnapshotError::NoSuchClass {
                path: self.origin.clone(),
                name: class.to_owned(),
            });
        }
        let objects: Vec<usize> = (0..self.heap.node_count())
            .filter(|&o| self.key_of(o).is_some_and(|k| keys[k as usize]))
            .collect();
        let rows: Vec<ClassSummary> = self
            .summary
            .classes()
            .into_iter()
            .filter(|c| {
                c.name == class
                    && location.is_none_or(|want| {
                        c.location
                            .is_some_and(|l| self.summary.format_location(l).contains(want))
                    })
            })
            .collect();
        Ok(Holders {
            class: class.to_owned(),
            rows,
            count: objects.len() as u64,
            groups: self.retainer_groups_of(&objects, groups),
        })
    }
}
