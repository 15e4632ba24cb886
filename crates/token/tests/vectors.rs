//! Known answers from the real Node.js one-liner (moment 2.x, Node 20).
//!
//! The vectors are copied into the repo so the suite runs anywhere; `../shared/vectors` is their
//! source, and when it is present the copy must not have drifted from it.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use heapgate_token::{Hour, Key, Keys, Window, mint, payload, verify};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    secret: String,
    value: String,
    at: String,
    hour: String,
    payload: String,
    hash: String,
}

fn repo_copy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed-oneliner.json")
}

fn load(path: &Path) -> Vectors {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn instant(at: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(at)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn every_vector_mints_and_verifies() {
    let vectors = load(&repo_copy()).vectors;
    assert!(vectors.len() >= 8, "expected the full vector set");
    for v in vectors {
        let now = instant(&v.at);
        let hour = Hour::containing(now);
        assert_eq!(hour.to_string(), v.hour, "hour for {}", v.at);
        assert_eq!(payload(hour, &v.value), v.payload, "payload for {}", v.at);

        let key = Key::new(v.secret.as_bytes()).unwrap();
        assert_eq!(
            mint(&key, &v.value, now).to_string(),
            v.hash,
            "hash for {}",
            v.at
        );

        let keys = Keys::new(vec![key]).unwrap();
        let verified = verify(&v.hash, &keys, &v.value, now, &Window::default()).unwrap();
        assert_eq!(verified.hour.to_string(), v.hour);
    }
}

#[test]
fn repo_copy_matches_the_shared_source() {
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/seed-oneliner.json");
    if !shared.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {} is missing",
            shared.display()
        );
        eprintln!(
            "SKIPPED: {} not found; checked the repo copy only",
            shared.display()
        );
        return;
    }
    assert_eq!(
        std::fs::read(&shared).unwrap(),
        std::fs::read(repo_copy()).unwrap(),
        "crates/token/tests/data/seed-oneliner.json has drifted from ../shared"
    );
}
