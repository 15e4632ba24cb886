//! The leak that started heapgate, end to end: a Koa service whose pricing helper is wrapped in
//! lodash's `memoize` with a per-request key leaks 3,000 `Quote`s. Three snapshots go through
//! `heapgate-proxy` with `heapgate fetch`, then `heapgate diff A B C`: its first screen must say
//! that Quote leaks, 3000 kept, held by `priceFor`'s lodash memoize cache, with the path from
//! `priceFor` down to `Quote`.

use std::path::PathBuf;
use std::process::Command;

use heapgate_tests::{Cmd, NodeApp, ProxyProc, http_get, node_or_skip, npm_data_or_skip};

const SECRET: &str = "seed-secret-0123456789abcdef0123456789";

/// The corpus app (`tests/data/caches/app.js serve KIND`) under Node with its inspector on a
/// free loopback port.
fn start_app(node: &PathBuf, dir: &PathBuf, kind: &str) -> NodeApp {
    NodeApp::from_command(
        Command::new(node)
            .current_dir(dir)
            .arg("--inspect=127.0.0.1:0")
            .args(["app.js", "serve", kind]),
    )
}

/// One snapshot through the proxy with `heapgate fetch`; its path.
fn fetch(proxy: &ProxyProc, out: &std::path::Path) -> PathBuf {
    let run = Cmd::heapgate()
        .arg("fetch")
        .arg(format!("http://{}", proxy.listen))
        .arg("--out")
        .arg(out)
        .env("HEAPGATE_SECRET", SECRET)
        .expect_success();
    PathBuf::from(run.stdout.trim())
}

#[test]
fn the_seed_leak_is_answered_in_the_first_screen() {
    let test = "seed::the_seed_leak_is_answered_in_the_first_screen";
    let Some(node) = node_or_skip(test) else {
        return;
    };
    let Some(dir) = npm_data_or_skip(test, "caches") else {
        return;
    };
    let app = start_app(&node, &dir, "lodash-string");
    let proxy = ProxyProc::in_front_of(&app, SECRET, &["--min-interval", "0s"]);
    let out = tempfile::Builder::new()
        .prefix("heapgate-seed-")
        .tempdir()
        .unwrap();
    let get = |target: &str| {
        let response = http_get(proxy.listen, target).unwrap();
        assert_eq!(response.status, 200, "{target}");
    };
    for i in 0..20 {
        get(&format!("/ping?warm={i}"));
    }
    let a = fetch(&proxy, &out.path().join("a"));
    for i in 0..3000 {
        get(&format!("/quote/{i}"));
    }
    let b = fetch(&proxy, &out.path().join("b"));
    for i in 0..100 {
        get(&format!("/ping?i={i}"));
    }
    let c = fetch(&proxy, &out.path().join("c"));
    drop(proxy);
    drop(app);

    let diff = Cmd::heapgate()
        .arg("diff")
        .args([&a, &b, &c])
        .expect_success();
    // The first screen: 50 lines.
    let screen: Vec<&str> = diff.stdout.lines().take(50).collect();
    let screen = screen.join("\n");
    let first_row = screen.lines().nth(1).unwrap();
    assert!(first_row.starts_with("Quote ("), "{screen}");
    let answer = screen
        .lines()
        .find(|l| l.starts_with("Who holds it: "))
        .unwrap_or_else(|| panic!("no answer line in the first screen:\n{screen}"));
    assert!(
        answer.contains("Quote (")
            && answer.contains(": 3000 kept objects")
            && answer.contains("held by variable priceFor (")
            && answer.contains("→ lodash memoized → Hash, 3000 keys"),
        "{answer}"
    );
    // The path from priceFor down to Quote, collapsed keys and all, in the first screen.
    let from = screen
        .find("─ priceFor (context) → Function memoized (")
        .unwrap_or_else(|| panic!("no priceFor step in the first screen:\n{screen}"));
    let rest = &screen[from..];
    for step in [
        "─ cache (property) → MapCache (",
        "─ string (property) → Hash (",
        "─ <3000 keys> (property) → Quote (",
    ] {
        assert!(rest.contains(step), "{step} not below priceFor:\n{screen}");
    }
    // The held-by block of the top group fits in 25 lines.
    let block: Vec<&str> = diff
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Quote (") || !l.contains("kept objects, held by:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(block.len() <= 25, "{}", block.join("\n"));
    // --full-paths shows the way from the root through Node.js and Koa too.
    let full = Cmd::heapgate()
        .arg("diff")
        .args([&a, &b, &c])
        .arg("--full-paths")
        .expect_success();
    assert!(full.stdout.contains(" → Application ("), "{}", full.stdout);
    assert!(!full.stdout.contains("--full-paths shows them"));
}
