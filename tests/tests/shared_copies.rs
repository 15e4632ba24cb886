//! The repo keeps copies of `../shared` material so its tests run anywhere; `../shared` is the
//! source, and the copies must not drift from it.

use std::path::Path;

use heapgate_tests::{data, in_ci, repo_root};

#[test]
fn reference_implementation_copy_matches_shared() {
    let shared = repo_root().join("../shared/tools/reference-token.js");
    if !shared.exists() {
        assert!(!in_ci(), "CI=true but {} is missing", shared.display());
        eprintln!(
            "\n*** SKIPPED: {} not found; using the repo copy unchecked ***\n",
            shared.display()
        );
        return;
    }
    assert_eq!(
        std::fs::read(&shared).unwrap(),
        std::fs::read(data("reference-token.js")).unwrap(),
        "tests/data/reference-token.js has drifted from {}",
        Path::new(&shared).display()
    );
}
