//! The engine's modules import each other in one direction only (layers top to bottom): no
//! module reaches, through any chain of `crate::` paths in its code (comments aside), back to
//! itself. A path through a re-export of `lib.rs` (`crate::Summary`) counts as an import of the
//! module that defines it, so a façade cannot hide a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn code(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `Name → module` for every `pub use module::{Name, …};` of `lib.rs`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in code(lib).split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !name.is_empty() {
                out.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    out
}

/// The modules `text` names with `crate::x`, resolved through `reexports`.
fn references(
    text: &str,
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let code = code(text);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let first: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if modules.contains(&first) {
            found.insert(first);
        } else if let Some(module) = reexports.get(&first) {
            found.insert(module.clone());
        }
    }
    found
}

#[test]
fn snapshot_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // A folder module: its files are one node.
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            for file in std::fs::read_dir(&path).unwrap() {
                text += &std::fs::read_to_string(file.unwrap().path()).unwrap();
            }
            sources.insert(name, text);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            sources.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let lib = sources.remove("lib").expect("lib.rs");
    let reexports = reexports(&lib);
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    assert!(modules.contains("analysis") && modules.contains("summary") && modules.len() > 20);
    let graph: BTreeMap<String, BTreeSet<String>> = sources
        .iter()
        .map(|(module, text)| {
            let mut targets = references(text, &modules, &reexports);
            targets.remove(module);
            (module.clone(), targets)
        })
        .collect();
    // Kahn: whatever cannot be peeled off, layer by layer, sits on a circle.
    let mut left = graph.clone();
    loop {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, targets)| targets.iter().all(|t| !left.contains_key(t)))
            .map(|(m, _)| m.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            left.remove(&leaf);
        }
    }
    assert!(
        left.is_empty(),
        "modules on (or importing) an import circle: {:?}",
        left.keys().collect::<Vec<_>>()
    );
}

#[test]
fn a_circle_through_a_reexport_is_found() {
    let reexports = reexports("pub use summary::{Summary, load};\npub use diff::diff;");
    let modules: BTreeSet<String> = ["summary", "identity", "diff"].map(str::to_owned).into();
    assert_eq!(
        references(
            "use crate::Summary;\nuse crate::identity::X;\n/// [`crate::diff`]",
            &modules,
            &reexports
        ),
        ["identity", "summary"].map(str::to_owned).into()
    );
}
