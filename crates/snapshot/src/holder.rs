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

use crate::model::PathStep;

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
    /// Whether user code owns it (see the module documentation); when not, no edge on the path
    /// has a user-code owner and this is the nearest named one.
    pub user_code: bool,
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
        if !self.user_code {
            // Nothing of the app's own holds them: say whose internals do.
            let owner = match self.location.as_deref().map(code_of) {
                Some(Code::Node) => "Node.js",
                Some(Code::Package(p)) => p,
                _ => "",
            };
            if !owner.is_empty() {
                let _ = write!(out, " of {owner}");
            }
        }
        if let Some(location) = &self.location {
            let _ = write!(out, " ({location})");
        }
        match (&self.package, &self.via) {
            (Some(package), Some(via)) => {
                let _ = write!(out, " → {package} {via}");
            }
            (Some(package), None) if self.user_code => {
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
    // `global`, or `global / ` / `Window / url` as some snapshots name the global object.
    let node = step.node.trim_end();
    node == "global"
        || node.starts_with("global /")
        || node == "Window"
        || node.starts_with("Window /")
}

/// The holder of the objects at the end of `path`; `None` when no edge on it is named.
pub(crate) fn holder(path: &[PathStep]) -> Option<Holder> {
    let last = path.len().checked_sub(1)?;
    // Steps whose incoming edge may be the holder, nearest to `start` first; a WeakMap's
    // entries are not.
    let candidates = |start: usize| -> Vec<usize> {
        (1..=start)
            .rev()
            .filter(|&i| named(&path[i]))
            .filter(|&i| path[i - 1].node != "WeakMap")
            .collect()
    };
    // Owned by user code; a global's property only when its value is not Node's or a package's
    // (`global.clearImmediate` is Node's way in, not the app's variable).
    let user = |i: usize| {
        if is_global(&path[i - 1]) {
            return path[i]
                .location
                .as_deref()
                .is_none_or(|l| code_of(l) == Code::User);
        }
        owner_location(path, i - 1).is_none_or(|l| code_of(l) == Code::User)
    };
    // The collection's holder; else (the objects are not entries of a collection that user code
    // holds, e.g. they are such collections) the nearest from the objects themselves; else the
    // nearest named edge, with its package.
    let mut container = collection(path);
    let from_collection = container.and_then(|c| candidates(c).into_iter().find(|&i| user(i)));
    let (step, owned_by_user) = match from_collection {
        Some(i) => (i, true),
        None => match candidates(last).into_iter().find(|&i| user(i)) {
            Some(i) => {
                container = None;
                (i, true)
            }
            None => (*candidates(container.unwrap_or(last)).first()?, false),
        },
    };
    let start = container.unwrap_or(last);
    let s = &path[step];
    let kind = if s.edge_type == "context" {
        "variable"
    } else if is_global(&path[step - 1]) {
        "global"
    } else {
        "property"
    };
    // The package on the stretch from the holder to the objects: its first located step.
    // Named by the function's name, else its class unless that is just `Function`.
    let what = |p: &PathStep| {
        p.name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| (p.node != "Function").then(|| p.node.clone()))
    };
    let below = path[step..=start].iter().find_map(|p| {
        let location = p.location.as_deref()?;
        match code_of(location) {
            Code::Package(name) => Some((name.to_owned(), what(p))),
            Code::Node => Some(("node".to_owned(), what(p))),
            Code::User => None,
        }
    });
    let (package, via) = match below {
        Some((package, via)) => (Some(package), via),
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
        // A backing store is named by its owner: an engine array by its `Map` or `Set`, a plain
        // object by the located class right above it (`Hash`).
        let backing = path[c].node.starts_with('(')
            || (path[c].node == "Object" && path[c - 1].location.is_some());
        let class = if c > step && backing {
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
        user_code: owned_by_user,
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

    /// A step: `node` held by `edge` of type `ty`, optionally located.
    fn step(edge: &str, ty: &str, node: &str, location: Option<&str>) -> PathStep {
        PathStep {
            node: node.to_owned(),
            edge: edge.to_owned(),
            edge_type: ty.to_owned(),
            name: None,
            location: location.map(str::to_owned),
            keys: None,
        }
    }

    fn keyed(mut s: PathStep, n: u64) -> PathStep {
        s.keys = Some(n);
        s.edge = format!("<{n} keys>");
        s
    }

    const APP: Option<&str> = Some("/srv/app.js:75:21");
    const LODASH: Option<&str> = Some("/srv/node_modules/lodash/lodash.js:10643:30");

    /// The seed's path from the route handler down.
    fn seed() -> Vec<PathStep> {
        vec![
            step("", "", "global", None),
            step(
                "handle",
                "property",
                "Function",
                Some("node:_http_server:1:1"),
            ),
            step("[]", "element", "Function", APP),
            step("context", "internal", "system / Context", None),
            step("priceFor", "context", "Function", LODASH),
            step("cache", "property", "MapCache", LODASH),
            step("__data__", "property", "Object", None),
            step("string", "property", "Hash", LODASH),
            step("__data__", "property", "Object", None),
            keyed(
                step("", "property", "Quote", Some("/srv/app.js:9:26")),
                3000,
            ),
        ]
    }

    #[test]
    fn the_holder_is_the_nearest_variable_user_code_owns() {
        let path = seed();
        let h = holder(&path).unwrap();
        assert_eq!(
            (h.kind, h.name.as_str(), h.step),
            ("variable", "priceFor", 4)
        );
        assert_eq!(h.location.as_deref(), APP);
        assert_eq!(h.package.as_deref(), Some("lodash"));
        assert_eq!(h.collection.as_deref(), Some("Hash"));
        assert_eq!(h.keys, Some(3000));
        assert_eq!(
            h.describe(),
            "variable priceFor (/srv/app.js:75:21) → lodash → Hash, 3000 keys"
        );
        // The prefix up to the first user-code step is cut.
        assert_eq!(shown_from(&path, Some(&h), 21), 2);
        assert_eq!(owners(&path[1..2]), ["Node.js"]);
        // Never more than the maximum.
        assert_eq!(shown_from(&path, Some(&h), 4), path.len() - 4);
    }

    #[test]
    fn without_user_code_the_nearest_named_edge_and_its_package() {
        let path = vec![
            step("", "", "(GC roots)", None),
            step("x", "internal", "Server", Some("node:_http_server:1:1")),
            step("_events", "property", "Object", None),
            step("[]", "element", "Leak", None),
        ];
        let h = holder(&path).unwrap();
        assert_eq!((h.kind, h.name.as_str()), ("property", "_events"));
        assert_eq!(h.package.as_deref(), Some("node"));
        assert_eq!(holder(&path[..1]), None);
    }

    #[test]
    fn a_global_property_is_a_global_variable() {
        let path = vec![
            step("", "", "global", None),
            step("openSessions", "property", "Array", None),
            step("[]", "element", "Quote", APP),
        ];
        let h = holder(&path).unwrap();
        assert_eq!((h.kind, h.name.as_str()), ("global", "openSessions"));
        assert_eq!((h.location, h.collection.as_deref()), (None, Some("Array")));
    }

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
