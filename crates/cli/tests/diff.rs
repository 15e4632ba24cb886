//! `heapgate diff` on the real binary, against the hand-made snapshots whose Comparison is known
//! (crates/snapshot/tests/data/README.md) and against bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use heapgate_tests::Cmd;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../snapshot/tests/data")
        .join(name)
}

fn diff(args: &[&str]) -> Output {
    Cmd::heapgate()
        .arg("diff")
        .args(args)
        .command()
        .output()
        .unwrap()
}

fn pair() -> [String; 2] {
    [
        data("small-base.heapsnapshot"),
        data("small-new.heapsnapshot"),
    ]
    .map(|p| p.display().to_string())
}

#[test]
fn table_matches_the_known_comparison_and_needs_no_secret() {
    let [base, new] = pair();
    let output = diff(&[&base, &new]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][0], "Class");
    assert_eq!(
        rows[1],
        [
            "LeakedRequestContext",
            "3",
            "0",
            "+3",
            "216",
            "0",
            "+216",
            "216",
            "+216",
            "216"
        ]
    );
    // Retained sizes as DevTools' Summary view gives them (checked with its HeapSnapshot.ts).
    assert_eq!(
        rows[2],
        [
            "{url}", "2", "0", "+2", "64", "0", "+64", "116", "+64", "84"
        ]
    );
    assert_eq!(rows[5][0], "Total");
    // Then who holds the new objects, in one line (#25: the same holder the HTML report and the
    // demo name) and as a path: the leaked contexts sit in `keep`'s elements.
    assert!(
        stdout.contains("\nWho holds it: LeakedRequestContext: 3 new objects (216 bytes retained), held by global keep → Array\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("LeakedRequestContext: 3 new objects, held by:\n  3 objects, 216 bytes retained, held by global keep → Array:\n    global\n    ─ keep (property) → Array\n"),
        "{stdout}"
    );
}

#[test]
fn json_sort_and_top() {
    let [base, new] = pair();
    let output = diff(&[&base, &new, "--json", "--sort", "delta"]);
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let text = json.to_string();
    assert!(text.contains("LeakedRequestContext"), "{text}");
    let output = diff(&[&base, &new, "--top", "1"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("LeakedRequestContext")
    );
    assert!(
        !stdout.contains("{url}"),
        "--top 1 shows one class:\n{stdout}"
    );
    assert_eq!(
        diff(&[&base, &new, "--sort", "weight"]).status.code(),
        Some(2)
    );
}

#[test]
fn bad_input_is_one_clear_line_and_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.heapsnapshot");
    let full = std::fs::read(data("small-new.heapsnapshot")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let not_json = dir.path().join("notes.txt");
    std::fs::write(&not_json, "hello").unwrap();
    let [base, _] = pair();
    for bad in [
        truncated.display().to_string(),
        not_json.display().to_string(),
        "/nonexistent/x.heapsnapshot".to_owned(),
    ] {
        let output = diff(&[&base, &bad]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{bad}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{bad}: {stderr}");
        assert!(
            stderr.starts_with("heapgate: ") && stderr.contains(&bad),
            "{stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

/// zstd and gzip files are read directly, recognised by their bytes, whatever their names say.
#[test]
fn compressed_files_give_the_same_table_as_plain_ones() {
    use std::io::Write;
    let [base, new] = pair();
    let plain = diff(&[&base, &new]);
    assert_eq!(plain.status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    // A gzip file with a plain name, and a zstd file with no hint at all.
    let gz_path = dir.path().join("base.heapsnapshot");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&std::fs::read(&base).unwrap()).unwrap();
    std::fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    let zst_path = dir.path().join("new.bin");
    let zst = zstd::encode_all(&std::fs::read(&new).unwrap()[..], 3).unwrap();
    std::fs::write(&zst_path, zst).unwrap();
    let compressed = diff(&[gz_path.to_str().unwrap(), zst_path.to_str().unwrap()]);
    assert_eq!(
        compressed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&compressed.stderr)
    );
    assert_eq!(compressed.stdout, plain.stdout);
    // `heapgate summary` (and the retainer views, which open files the same way) too.
    let summary = |path: &str| {
        let output = Cmd::heapgate()
            .args(["summary", path])
            .command()
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    assert_eq!(summary(zst_path.to_str().unwrap()), summary(&new));

    // A truncated zstd file is one clear error, not a table.
    let whole = std::fs::read(&zst_path).unwrap();
    std::fs::write(&zst_path, &whole[..whole.len() / 2]).unwrap();
    let truncated = diff(&[gz_path.to_str().unwrap(), zst_path.to_str().unwrap()]);
    assert_eq!(truncated.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&truncated.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// A redacted copy is the same process as its original: diffing the two prints no "not the same
/// process" warning (which said every object looks new while the table said nothing changed),
/// and a redacted NEW gives the table of the original pair.
#[test]
fn a_redacted_copy_compares_as_the_same_process() {
    let [base, new] = pair();
    let dir = tempfile::tempdir().unwrap();
    let redacted = |path: &str, name: &str| {
        let out = dir.path().join(name);
        Cmd::heapgate()
            .arg("redact")
            .arg(path)
            .arg(&out)
            .expect_success();
        out.display().to_string()
    };
    let base_redacted = redacted(&base, "base-redacted.heapsnapshot");
    let new_redacted = redacted(&new, "new-redacted.heapsnapshot");

    let same = diff(&[&base, &base_redacted]);
    let stderr = String::from_utf8_lossy(&same.stderr);
    assert!(!stderr.contains("not the same process"), "{stderr}");
    assert!(
        String::from_utf8_lossy(&same.stdout).contains("Total (0 classes)"),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );

    let original = diff(&[&base, &new]);
    let mixed = diff(&[&base, &new_redacted]);
    assert_eq!(
        String::from_utf8_lossy(&mixed.stderr),
        String::from_utf8_lossy(&original.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&mixed.stdout),
        String::from_utf8_lossy(&original.stdout)
    );
}
