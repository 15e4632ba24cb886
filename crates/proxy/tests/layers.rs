//! The proxy's modules import each other in one direction only: no module reaches, through any
//! chain of `crate::` paths in its code (doc links aside), back to itself. (`lib.rs`, the façade that re-exports the API, and
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

/// Every `crate::a::b…` in the code of `text` (comments and doc links aside), resolved to the
/// longest known module it names.
fn references(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
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
        found.extend(best);
    }
    found
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
            let mut targets = references(text, &modules);
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
fn the_cycle_check_finds_a_cycle() {
    let modules: BTreeSet<String> = ["app", "handlers", "handlers::snapshot"]
        .map(str::to_owned)
        .into();
    assert_eq!(
        references(
            "use crate::handlers::snapshot::{self, X};\nuse crate::app::Y; crate::Proxy\n/// [`crate::gate`]",
            &modules
        ),
        ["app", "handlers::snapshot"].map(str::to_owned).into()
    );
}
