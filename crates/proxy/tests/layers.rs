//! The proxy's modules import each other in one direction only: no module reaches, through any
//! chain of `crate::` or `super::` paths in its code (doc links aside), back to itself. (`lib.rs`, the façade that re-exports the API, and
//! `main.rs`, the binary, are outside the graph.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `source/spill.rs` → `source::spill`, `handlers/mod.rs` → `handlers`.
fn module_of(relative: &Path) -> String {
    let text = relative
        .with_extension("")
        .to_string_lossy()
        .replace('/', "::");
    text.strip_suffix("::mod").unwrap_or(&text).to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b…` and `super::…` in the code of `text`, the file of module `module`
/// (comments and doc links aside), resolved to the longest known module it names. A `super::`
/// inside an inline module (`mod tests { use super::*; }`) names the file's own module.
fn references(module: &str, text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let parent = |module: &str| module.rsplit_once("::").map_or("", |(p, _)| p).to_owned();
    let mut found = BTreeSet::new();
    let mut inline = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        // An inline module at the file's top level, until its closing brace.
        if !line.starts_with(' ') && trimmed.contains("mod ") && trimmed.ends_with('{') {
            inline = true;
        } else if line == "}" {
            inline = false;
        }
        for (keyword, start) in [
            ("crate::", String::new()),
            ("super::", String::from("super")),
        ] {
            for (at, _) in line.match_indices(keyword) {
                // `crate::` inside `super::crate::`-like text, or an identifier ending in it.
                let before = line[..at].chars().next_back();
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &line[at + keyword.len()..];
                let mut path: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !start.is_empty() {
                    // `super::super::x`: one level up per `super`.
                    let mut base = if inline {
                        module.to_owned()
                    } else {
                        parent(module)
                    };
                    while let Some(more) = path.strip_prefix("super::") {
                        base = parent(&base);
                        path = more.to_owned();
                    }
                    path = if base.is_empty() {
                        path
                    } else {
                        format!("{base}::{path}")
                    };
                }
                found.extend(longest_module(&path, modules));
            }
        }
    }
    found
}

/// The longest module of `modules` that `path` (`a::b::Item`) starts with.
fn longest_module(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    {
        let mut best = None;
        let mut prefix = String::new();
        for segment in path.split("::").filter(|s| !s.is_empty()) {
            if !prefix.is_empty() {
                prefix.push_str("::");
            }
            prefix.push_str(segment);
            if modules.contains(&prefix) {
                best = Some(prefix.clone());
            }
        }
        best
    }
}

#[test]
fn proxy_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources: BTreeMap<String, String> = files
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).expect("under src");
            (
                module_of(relative),
                std::fs::read_to_string(path).expect("readable"),
            )
        })
        .filter(|(module, _)| module != "lib" && module != "main")
        .collect();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    assert!(modules.len() > 10, "found only {modules:?}");
    let graph: BTreeMap<&str, BTreeSet<String>> = sources
        .iter()
        .map(|(module, text)| {
            let mut targets = references(module, text, &modules);
            targets.remove(module);
            (module.as_str(), targets)
        })
        .collect();

    // Depth-first search; a grey node met again closes a cycle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> =
                    stack[start..].iter().map(|n| (*n).to_owned()).collect();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node, false);
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node, true);
        None
    }
    let mut state = BTreeMap::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut state, &mut Vec::new()) {
            panic!("module cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_check_reads_crate_and_super_paths() {
    let modules: BTreeSet<String> = [
        "app",
        "handlers",
        "handlers::snapshot",
        "passthrough",
        "passthrough::lane",
        "passthrough::lane::buffers",
        "passthrough::rules",
    ]
    .map(str::to_owned)
    .into();
    let of = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        references(
            "handlers",
            "use crate::handlers::snapshot::{self, X};\nuse crate::app::Y; crate::Proxy\n/// [`crate::gate`]",
            &modules
        ),
        of(&["app", "handlers::snapshot"])
    );
    // `super::` from a file module names a sibling; from an inline module, the file's module;
    // `super::super::` one level further up.
    assert_eq!(
        references(
            "passthrough::lane::request",
            "use super::buffers::Spare;\nuse super::super::rules::X;\nuse super::Lane;\n\
             mod tests {\n    use super::*;\n}\n",
            &modules
        ),
        of(&[
            "passthrough::lane::buffers",
            "passthrough::rules",
            "passthrough::lane"
        ])
    );
    let inline = "mod tests {\n    use super::buffers::X;\n}\n";
    assert_eq!(
        references("passthrough::lane", inline, &modules),
        of(&["passthrough::lane::buffers"])
    );
}
