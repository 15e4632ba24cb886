//! "Who holds it" on a corpus of real caches from npm (`tests/data/caches`, pinned in its
//! package-lock and installed by `.ci/run`): each leaks 1000 `Quote`s through a real Koa app,
//! snapshots are written from a request callback (as a sidecar takes them), and
//! `heapgate diff A B C` must rank `Quote` among its top four rows (a cache that wraps each value
//! in an entry object, such as `quick-lru`'s `{value, expiry}`, ranks the entries first, and a
//! listener leak its listener array, closures and their contexts: they retain the Quotes), put at
//! least 95 % of the kept Quotes in its top group, and name the variable that holds the cache (in
//! the JSON; for the plain dictionary also in the text report's answer line). `bench/memlab/compare.sh` runs memlab
//! on the same corpus.

use std::path::PathBuf;
use std::process::Command;

use heapgate_tests::{Cmd, node_or_skip, npm_data_or_skip};
use serde_json::Value;

/// Leaks per kind.
const LEAKS: &str = "1000";

/// The corpus directory with its packages, or `None` after a loud notice (a panic in CI).
fn corpus_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let node = node_or_skip(test)?;
    let dir = npm_data_or_skip(test, "caches")?;
    Some((node, dir))
}

/// Runs the corpus app for `kind` and `heapgate diff A B C --json`; checks the top class, the
/// top group's coverage and the holder's name.
fn check(kind: &str, holder: &str, text: bool) {
    let test = format!("corpus::{kind}");
    let Some((node, dir)) = corpus_or_skip(&test) else {
        return;
    };
    let out = tempfile::Builder::new()
        .prefix(&format!("heapgate-corpus-{kind}-"))
        .tempdir()
        .unwrap();
    let run = Command::new(node)
        .current_dir(&dir)
        .args(["app.js", "corpus", kind])
        .arg(out.path())
        .arg(LEAKS)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{test}: node: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let files: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| out.path().join(format!("{n}.heapsnapshot")))
        .collect();
    let diff = Cmd::heapgate()
        .arg("diff")
        .args(&files)
        .args(["--json", "--retainers", "4"])
        .expect_success();
    let json: Value = serde_json::from_str(&diff.stdout).unwrap();
    let rows = json["classes"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .take(4)
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let rank = names
        .iter()
        .position(|n| *n == "Quote")
        .unwrap_or_else(|| panic!("{test}: Quote is not in the top four rows: {names:?}"));
    let quote = &rows[rank];
    let kept = quote["kept_count"].as_u64().unwrap();
    assert_eq!(kept, LEAKS.parse::<u64>().unwrap(), "{test}: kept Quotes");
    let top = &quote["retainers"][0];
    let covered = top["count"].as_u64().unwrap();
    assert!(
        covered * 100 >= kept * 95,
        "{test}: the top group covers {covered} of {kept}: {top:#}"
    );
    assert_eq!(
        top["holder"]["name"], holder,
        "{test}: the holder: {:#}",
        top["holder"]
    );
    if !text {
        return;
    }
    // The text report says it in one line.
    let text = Cmd::heapgate().arg("diff").args(&files).expect_success();
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with("Who holds it: "))
        .unwrap_or_else(|| panic!("{test}: no answer line in\n{}", text.stdout));
    assert!(line.contains(&format!(" {holder} ")), "{test}: {line}");
}

/// `(kind, the variable the corpus app keeps the cache in)`; see `tests/data/caches/app.js`.
macro_rules! corpus {
    ($($test:ident: $kind:literal holds $holder:literal $(, $text:ident)?;)*) => {
        $(#[test] fn $test() { check($kind, $holder, false $(|| stringify!($text) == "text")?); })*
    };
}

corpus! {
    lodash_memoize_with_string_keys: "lodash-string" holds "priceFor";
    lodash_memoize_with_object_keys: "lodash-object" holds "quoteFor";
    memoizee: "memoizee" holds "memoPrice";
    lru_cache: "lru-cache" holds "recentQuotes";
    quick_lru: "quick-lru" holds "quickQuotes";
    node_cache: "node-cache" holds "quoteCache";
    plain_object_dictionary: "dictionary" holds "visitsById", text;
    null_prototype_dictionary: "null-prototype" holds "quotesByKey";
    map_with_string_keys: "map" holds "sessionQuotes";
    set: "set" holds "seenQuotes";
    event_emitter_listener_closures: "listener" holds "bus";
    closure_over_an_array: "closure-array" holds "history";
    // The WeakMap `quoteOfSession` maps each session to its Quote; what keeps them is the
    // array of sessions.
    weak_map_is_not_the_holder: "weakmap" holds "openSessions";
}
