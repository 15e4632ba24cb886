//! The command samples of the README and of `docs/*.md`, run against the real binaries so a
//! recipe cannot drift.
//!
//! Two markings, both in the README's Development section:
//! - ```` ```console ```` blocks are [trycmd] sessions: each `$ heapgate …` line runs in
//!   `crates/cli/tests/readme/` (the fixture files the samples name) and what follows it is its
//!   output (stdout and stderr), with `[..]` matching the rest of a line and `...` any lines.
//! - ```` ```sh tested ```` blocks are shell recipes: each runs as one `bash -euo pipefail`
//!   script in a fresh directory, against the demo's own app and sidecar (`heapgate demo
//!   --serve`): `http_proxy` points every `http://` URL of the recipe (`http://svc:8080`) at
//!   that sidecar, and `HEAPGATE_SECRET_FILE` at its secret. It must exit 0.
//!
//! `TRYCMD=overwrite cargo test -p heapgate --test readme` rewrites the console outputs in place.

use std::path::{Path, PathBuf};

use heapgate_tests::{Proc, in_ci, loud, node_or_skip};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The markdown files whose samples are tested: the README and every `docs/*.md`, relative to
/// the repository.
fn docs() -> Vec<String> {
    let mut docs = vec!["README.md".to_owned()];
    let mut more: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

#[test]
fn console_blocks_print_what_they_show() {
    // trycmd runs `X.md` in `X.in/`: point links at the real file and at the fixtures, so that
    // errors name the README's own lines and overwrite mode edits the README itself.
    let dir = repo().join("target/tmp/readme-console");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readme");
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("heapgate", Path::new(env!("CARGO_BIN_EXE_heapgate")))
        .env("NO_COLOR", "1")
        // Samples must not write indexes into the developer's ~/.cache.
        .env("HEAPGATE_NO_CACHE", "true");
    for doc in &docs() {
        // trycmd skips, without failing, a command whose program it does not know.
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        for (n, line) in console_commands(&text) {
            assert!(
                line.starts_with("$ heapgate "),
                "{doc}:{n}: a console block runs only heapgate (use ```sh tested for others): {line}"
            );
        }
        let link = dir.join(doc.replace('/', "-"));
        std::os::unix::fs::symlink(repo().join(doc).canonicalize().unwrap(), &link).unwrap();
        std::os::unix::fs::symlink(&fixtures, link.with_extension("in")).unwrap();
        cases.case(&link);
    }
    cases.run();
}

/// The `$ ` lines of the ```` ```console ```` blocks of `text`, with their line numbers.
fn console_commands(text: &str) -> Vec<(usize, &str)> {
    let mut inside = false;
    let mut commands = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            inside = !inside && line.trim_end() == "```console";
        } else if inside && line.starts_with("$ ") {
            commands.push((n + 1, line));
        }
    }
    commands
}

/// The ```` ```sh tested ```` blocks of `text`, with the line each starts on.
fn tested_shell_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut open {
            None if line.trim_end() == "```sh tested" => open = Some((n + 2, String::new())),
            None => {}
            Some(_) if line.starts_with("```") => blocks.extend(open.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "an unclosed ```sh tested block");
    blocks
}

/// `heapgate demo --serve`: the leaky app and heapgate-proxy, up until dropped.
struct Served {
    proc: Proc,
    proxy: String,
    secret_file: String,
}

fn serve() -> Served {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_heapgate"));
    command
        .args(["demo", "--serve"])
        .env_remove("HEAPGATE_SECRET");
    let proc = Proc::spawn(&mut command);
    let field = |name: &str| {
        let prefix = format!("out {name} ");
        proc.wait_for(name, |line| line.strip_prefix(&prefix).map(str::to_owned))
    };
    let proxy = field("proxy");
    let secret_file = field("secret-file");
    Served {
        proc,
        proxy,
        secret_file,
    }
}

#[test]
fn shell_recipes_run_against_the_demo() {
    let Some(node) = node_or_skip("readme::shell_recipes_run_against_the_demo") else {
        return;
    };
    for tool in ["curl", "zstd"] {
        let found = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            assert!(!in_ci(), "{tool} not found, and CI=true forbids skipping");
            loud(&format!(
                "SKIPPED readme::shell_recipes_run_against_the_demo: {tool} not found"
            ));
            return;
        }
    }
    let mut served = serve();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_heapgate")).parent().unwrap();
    let path = std::env::join_paths(
        [
            bin_dir.to_owned(),
            node.parent().unwrap_or(Path::new("")).to_owned(),
        ]
        .into_iter()
        .chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    let mut ran = 0;
    for doc in &docs() {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        for (line, script) in tested_shell_blocks(&text) {
            let work = tempfile::tempdir().unwrap();
            eprintln!("readme: running the ```sh tested block of {doc}:{line}");
            snapbox::cmd::Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .env_clear()
                .env("PATH", &path)
                .env("HOME", work.path())
                .env("http_proxy", &served.proxy)
                .env("HTTP_PROXY", &served.proxy)
                .env("HEAPGATE_SECRET_FILE", &served.secret_file)
                .current_dir(work.path())
                .timeout(std::time::Duration::from_secs(120))
                .assert()
                .success();
            ran += 1;
        }
    }
    assert!(ran > 0, "no ```sh tested block found");
    served.proc.signal("INT");
    assert_eq!(
        served.proc.wait_exit(std::time::Duration::from_secs(20)),
        Some(0),
        "demo --serve ends cleanly on Ctrl-C:\n{}",
        served.proc.output()
    );
}

/// The lines of `text` outside fenced code blocks, with their line numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut inside = false;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if !inside {
            lines.push((n + 1, line));
        }
    }
    lines
}

/// GitHub's anchor for a heading: lowercased, punctuation other than `-` and `_` dropped, spaces
/// as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of the headings of `text`, numbered as GitHub numbers repeated ones.
fn anchors(text: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (_, line) in prose(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let base = slug(heading.trim_start_matches('#'));
        let repeats = seen
            .iter()
            .filter(|s| **s == base || s.starts_with(&format!("{base}-")))
            .count();
        seen.push(if repeats == 0 {
            base
        } else {
            format!("{base}-{repeats}")
        });
    }
    seen
}

/// The targets of the markdown links and images of `text` (`[x](target)`), with line numbers.
fn link_targets(text: &str) -> Vec<(usize, &str)> {
    let mut targets = Vec::new();
    for (n, line) in prose(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push((n, &rest[..end]));
                rest = &rest[end..];
            }
        }
    }
    targets
}

/// A newcomer follows links from the README into `docs/` and back: every relative link names a
/// file of the repository, and every `#anchor` a heading of its page.
#[test]
fn links_between_the_pages_resolve() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in &docs() {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        let dir = Path::new(doc).parent().unwrap_or(Path::new(""));
        for (n, target) in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() {
                repo().join(doc)
            } else {
                repo().join(dir).join(file)
            };
            if !path.exists() {
                broken.push(format!("{doc}:{n}: {target}: no such file"));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            let page = std::fs::read_to_string(&path).unwrap_or_default();
            if !anchors(&page).iter().any(|a| a == anchor) {
                broken.push(format!("{doc}:{n}: {target}: no such heading"));
            }
        }
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// A ```` ```rust ```` example runs as a doctest only from a page `heapgate-token` includes.
#[test]
fn rust_examples_are_doctests() {
    let lib = std::fs::read_to_string(repo().join("crates/token/src/lib.rs")).unwrap();
    for doc in &docs() {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        if text.lines().any(|l| l.trim_end() == "```rust") {
            assert!(
                lib.contains(&format!("include_str!(\"../../../{doc}\")")),
                "{doc} has a Rust example that no doctest runs: include it in crates/token/src/lib.rs"
            );
        }
    }
}

/// What `heapgate SUBCOMMAND --help` prints.
fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapgate"))
        .args(args)
        .arg("--help")
        .env("NO_COLOR", "1")
        .env_remove("HEAPGATE_SECRET")
        .env_remove("HEAPGATE_SECRET_FILE")
        .env_remove("HEAPGATE_VALUE")
        .output()
        .unwrap();
    assert!(out.status.success(), "heapgate {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands `heapgate --help` lists (without `help`).
fn subcommands() -> Vec<String> {
    let top = help(&[]);
    let list = top
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("a Commands: list in heapgate --help");
    list.lines()
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// The long flags a help text defines (the lines that start with `-`), without help and version.
fn defined_flags(help: &str) -> Vec<String> {
    help.lines()
        // Flags are indented 2 to 6 columns, their descriptions 10 (and the about text 0).
        .filter(|line| (2..=6).contains(&(line.len() - line.trim_start().len())))
        .map(str::trim_start)
        .filter(|line| line.starts_with('-'))
        .flat_map(|line| {
            line.split([' ', ','])
                .take_while(|word| word.starts_with('-') || word.is_empty())
                .filter(|word| word.starts_with("--"))
                .map(|word| word.split('=').next().unwrap_or(word).to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|flag| flag != "--help" && flag != "--version")
        .collect()
}

/// The text of the `## ` section of `text` whose heading contains `named`, up to the next `## `.
fn section_of<'a>(text: &'a str, named: &str) -> Option<&'a str> {
    let start = text
        .match_indices("\n## ")
        .map(|(at, _)| at + 1)
        .find(|&at| text[at..].lines().next().is_some_and(|h| h.contains(named)))?;
    let end = text[start + 3..]
        .find("\n## ")
        .map_or(text.len(), |at| start + 3 + at + 1);
    Some(&text[start..end])
}

/// `docs/cli.md` and the binary agree: every subcommand has its section, every flag of a
/// subcommand's `--help` is documented (in `docs/cli.md`, or on a page its section links to), and
/// every flag in a section's table exists on the subcommands the section heading names. A flag or
/// command that disappears, or appears undocumented, fails here.
#[test]
fn cli_reference_matches_the_binary() {
    let text = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    let commands = subcommands();
    assert!(commands.len() >= 8, "subcommands: {commands:?}");
    let mut problems = Vec::new();
    for command in &commands {
        let named = format!("`heapgate {command}");
        let Some(section) = section_of(&text, &named) else {
            problems.push(format!("docs/cli.md: no section for `heapgate {command}`"));
            continue;
        };
        // A command with a page of its own (`heapgate mcp`: docs/mcp.md) may document its flags
        // there: the pages its section links to count.
        let mut searched = text.clone();
        for (_, target) in link_targets(section) {
            let file = target.split('#').next().unwrap_or_default();
            if file.ends_with(".md") && !file.contains("://") {
                searched.push_str(
                    &std::fs::read_to_string(repo().join("docs").join(file)).unwrap_or_default(),
                );
            }
        }
        for flag in defined_flags(&help(&[command])) {
            if !searched.contains(&format!("`{flag}"))
                && !searched.contains(&format!("{command} {flag}"))
            {
                problems.push(format!(
                    "docs/cli.md: `heapgate {command} {flag}` undocumented"
                ));
            }
        }
    }
    // Each table row's flag against the subcommands named in its section's heading.
    let mut section: Vec<String> = Vec::new();
    let mut rows = 0;
    for (n, line) in prose(&text) {
        if line.starts_with("## ") {
            section = commands
                .iter()
                .filter(|c| {
                    line.contains(&format!("`{c}`"))
                        || line.contains(&format!("`heapgate {c}"))
                        || line.contains(&format!("`{c} "))
                })
                .cloned()
                .collect();
            continue;
        }
        let Some(flag) = line
            .strip_prefix("| `--")
            .and_then(|rest| rest.split(['`', ' ', '=']).next())
        else {
            continue;
        };
        let flag = format!("--{flag}");
        rows += 1;
        if section.is_empty() {
            problems.push(format!(
                "docs/cli.md:{n}: {flag} in a section whose heading names no subcommand"
            ));
        }
        for command in &section {
            if !defined_flags(&help(&[command])).contains(&flag) {
                problems.push(format!(
                    "docs/cli.md:{n}: {flag} is not a flag of `heapgate {command}`"
                ));
            }
        }
    }
    assert!(rows > 20, "only {rows} flag rows in docs/cli.md");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One word per concept (issue 23): spellings the pages must not use in prose, with the word
/// that replaced them. Wire and metric names in backticks (`X-Heapgate-Series`,
/// `route="passthrough"`, `--keepalive`) are exempt: users depend on them.
const RETIRED_WORDS: &[(&str, &str)] = &[
    (
        "series id",
        "session id: `X-Heapgate-Session` names the inspector session",
    ),
    ("inspector series", "inspector session"),
    (
        "keep-alive whitespace",
        "heartbeat (keep-alive is only HTTP's reused connections)",
    ),
    ("whitespace keep-alive", "heartbeat"),
    ("keep-alive spaces", "heartbeat spaces"),
    ("heap probe", "heap sample (a probe is only `probe=1`)"),
    (
        "passthrough",
        "pass-through (`passthrough` only as a label value in backticks)",
    ),
    ("pass through path", "pass-through path"),
    ("hyper path", "the general path"),
];

#[test]
fn pages_use_one_word_per_concept() {
    let mut found = Vec::new();
    for doc in &docs() {
        let text = std::fs::read_to_string(repo().join(doc)).unwrap();
        for (n, line) in prose(&text) {
            // Drop `code spans`: wire names, flags and labels keep their spelling.
            let words: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
            let words = words.to_lowercase();
            for (retired, instead) in RETIRED_WORDS {
                if words.contains(retired) {
                    found.push(format!("{doc}:{n}: \"{retired}\": say {instead}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
