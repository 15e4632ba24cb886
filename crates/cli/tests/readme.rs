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
