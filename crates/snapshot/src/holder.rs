//! Who holds a group of objects, in one line, read off the group's retainer path.
//!
//! **User code** is a script that is neither Node.js's own (`node:…` names) nor a package
//! (a path with a `node_modules` directory); a location whose script the snapshot does not name
//! counts as user code (eval'd or generated code is the app's). A package is named by the
//! directory after the last `node_modules/` (`lodash`, `@koa/router`).
//!
//! **The collection** is the container whose entries the objects are: the object left by the
//! path's collapsed key edge (`<3000 keys>`) or, failing that, by its last index edge (`[]`).
//!
//! **The holder** is the nearest named edge (a closure's variable or an object's property; never
//! an index, a key, or an engine-internal edge) at or above the collection, on the root side,
//! whose owner is user code: a variable belongs to the closure whose context it is in, a property
//! to its object, and the owner's code is that of the nearest step at or above it that has a
//! location. A property of `global` is a global variable. When no edge has a user-code owner, the
//! nearest named edge is the holder and its package is named. A `WeakMap` never holds anything by
//! itself (its values live only as long as their keys), so the holder is whoever holds the key.

use std::fmt::Write as _;

use serde::Serialize;

use crate::analysis::PathStep;

/// The edge types whose names a program chooses.
const NAMED_EDGES: [&str; 2] = ["property", "context"];

/// Whose code a location is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Code<'a> {
    /// The app's own scripts.
    User,
    /// Node.js's built-in modules (`node:…`).
    Node,
    /// A package under `node_modules`.
    Package(&'a str),
}

/// Whose code `location` (`file:line:column` or `script N:line:column`) is in.
pub(crate) fn code_of(location: &str) -> Code<'_> {
    if location.starts_with("node:") {
        return Code::Node;
    }
    let Some((_, rest)) = location.rsplit_once("node_modules/") else {
        return Code::User;
    };
    let mut parts = rest.splitn(3, '/');
    let first = parts.next().unwrap_or_default();
    let end = if first.starts_with('@') {
        parts
            .next()
            .map_or(first.len(), |p| first.len() + 1 + p.len())
    } else {
        first.len()
    };
    Code::Package(&rest[..end])
}

/// One group's holder: see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// `variable` (a closure's context slot), `global` (a property of the global object) or
    /// `property`.
    pub kind: &'static str,
    /// The variable's or property's name.
    pub name: String,
    /// The index in the path of the step it holds (the value of the variable or property).
    pub step: usize,
    /// Where the code that owns the variable or property is: the nearest location at or above
    /// it (a closure's scope, a class's constructor).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The package whose code manages what the holder refers to (`lodash`), when the path runs
    /// through one between the holder and the objects; or, when no user code owns any edge, the
    /// package of the holder itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The package's function or class on that stretch (`memoized`, `LRUCache`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The collection's class (`Map`, `Array`, `Hash`…), when the objects are entries of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// How many distinct keys the collection holds the objects by (collapsed key edges only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
}

impl Holder {
    /// `variable priceFor (app.js:75:21) → lodash memoized → Hash, 3000 keys`.
    pub fn describe(&self) -> String {
        let mut out = format!("{} {}", self.kind, self.name);
        if let Some(location) = &self.location {
            let _ = write!(out, " ({location})");
        }
        match (&self.package, &self.via) {
            (Some(package), Some(via)) => {
                let _ = write!(out, " → {package} {via}");
            }
            (Some(package), None) => {
                let _ = write!(out, " → {package}");
            }
            _ => {}
        }
        if let Some(collection) = &self.collection {
            let _ = write!(out, " → {collection}");
            if let Some(keys) = self.keys {
                let _ = write!(out, ", {keys} keys");
            }
        }
        out
    }
}

/// Whether the edge into `step` is one a program named (not an index, key or internal edge).
fn named(step: &PathStep) -> bool {
    NAMED_EDGES.contains(&step.edge_type.as_str()) && step.keys.is_none() && step.edge != "[]"
}

/// The nearest location at or above step `i`.
fn owner_location(path: &[PathStep], i: usize) -> Option<&str> {
    path[..=i].iter().rev().find_map(|s| s.location.as_deref())
}

/// The index of the collection step (the container of the objects), if any.
fn collection(path: &[PathStep]) -> Option<usize> {
    let last = path.len().checked_sub(1)?;
    (1..=last)
        .rev()
        .find(|&i| path[i].keys.is_some())
        .or_else(|| (1..=last).rev().find(|&i| path[i].edge == "[]"))
        .map(|i| i - 1)
}

/// Whether a step is the global object.
fn is_global(step: &PathStep) -> bool {
    step.node == "global" || step.node == "Window" || step.node.starts_with("Window /")
}

/// The holder of the objects at the end of `path`; `None` when no edge on it is named.
pub(crate) fn holder(path: &[PathStep]) -> Option<Holder> {
    let container = collection(path);
    let start = container.unwrap_or(path.len().checked_sub(1)?);
    // Steps whose incoming edge may be the holder, nearest first; a WeakMap's entries are not.
    let candidates: Vec<usize> = (1..=start)
        .rev()
        .filter(|&i| named(&path[i]))
        .filter(|&i| path[i - 1].node != "WeakMap")
        .collect();
    let user = |i: usize| {
        is_global(&path[i - 1])
            || owner_location(path, i - 1).is_none_or(|l| code_of(l) == Code::User)
    };
    let (step, owned_by_user) = match candidates.iter().find(|&&i| user(i)) {
        Some(&i) => (i, true),
        None => (*candidates.first()?, false),
    };
    let s = &path[step];
    let kind = if s.edge_type == "context" {
        "variable"
    } else if is_global(&path[step - 1]) {
        "global"
    } else {
        "property"
    };
    // The package on the stretch from the holder to the objects: its first located step.
    let below = path[step..=start].iter().find_map(|p| {
        let location = p.location.as_deref()?;
        match code_of(location) {
            Code::Package(name) => Some((name.to_owned(), p.name.clone().or(Some(p.node.clone())))),
            Code::Node => Some(("node".to_owned(), p.name.clone().or(Some(p.node.clone())))),
            Code::User => None,
        }
    });
    let (package, via) = match below {
        Some((package, via)) => (Some(package), via.filter(|v| !v.is_empty())),
        None if !owned_by_user => {
            let package = owner_location(path, step - 1).and_then(|l| match code_of(l) {
                Code::Package(name) => Some(name.to_owned()),
                Code::Node => Some("node".to_owned()),
                Code::User => None,
            });
            (package, None)
        }
        None => (None, None),
    };
    let location = if kind == "global" {
        None
    } else {
        owner_location(path, step - 1).map(str::to_owned)
    };
    let collection = container.map(|c| {
        // A plain backing object is named by the located class that owns it (`Hash`), if the
        // step right above is one.
        let class = if c > step && path[c].location.is_none() && path[c - 1].location.is_some() {
            &path[c - 1]
        } else {
            &path[c]
        };
        class.node.clone()
    });
    let keys = container.and_then(|c| path[c + 1].keys);
    Some(Holder {
        kind,
        name: s.edge.clone(),
        step,
        location,
        package,
        via,
        collection,
        keys,
    })
}

/// Where the default view of `path` starts: steps before it are the way from the root through
/// Node.js and package internals, shown as one line. The first step located in user code, or the
/// holder's owner, or the start; never more than `max_steps` steps are left.
pub(crate) fn shown_from(path: &[PathStep], holder: Option<&Holder>, max_steps: usize) -> usize {
    let user = path.iter().position(|s| {
        s.location
            .as_deref()
            .is_some_and(|l| code_of(l) == Code::User)
    });
    let mut from = match (user, holder) {
        (Some(u), Some(h)) => u.min(h.step - 1),
        (Some(u), None) => u,
        (None, Some(h)) => h.step - 1,
        (None, None) => 0,
    };
    if path.len() - from > max_steps {
        from = path.len() - max_steps;
    }
    // A cut of one step saves nothing.
    if from <= 1 { 0 } else { from }
}

/// Who the steps `path[..n]` belong to, in order of first appearance: `Node.js`, packages.
pub(crate) fn owners(path: &[PathStep]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for step in path {
        let Some(location) = &step.location else {
            continue;
        };
        let name = match code_of(location) {
            Code::Node => "Node.js".to_owned(),
            Code::Package(p) => p.to_owned(),
            Code::User => "app".to_owned(),
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_named_by_its_script() {
        assert_eq!(code_of("node:internal/timers:246:14"), Code::Node);
        assert_eq!(code_of("/srv/app.js:9:26"), Code::User);
        assert_eq!(code_of("script 12:1:1"), Code::User);
        assert_eq!(
            code_of("/srv/node_modules/lodash/lodash.js:10643:30"),
            Code::Package("lodash")
        );
        assert_eq!(
            code_of("/srv/node_modules/@koa/router/dist/index.js:1:1"),
            Code::Package("@koa/router")
        );
        assert_eq!(
            code_of("/srv/node_modules/a/node_modules/b/x.js:1:1"),
            Code::Package("b")
        );
        assert_eq!(code_of("file:///srv/node_modules/@s"), Code::Package("@s"));
    }
}
