//! `heapgate inspect` and the index cache on the real binary: one object, a class, the largest
//! objects, text/JSON/HTML, and bad input (unknown ids, truncated files, damaged or foreign
//! indexes, a cache directory that cannot be written). The numbers themselves are checked
//! against DevTools in crates/snapshot/tests/devtools_oracle.rs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use heapgate_tests::Cmd;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../snapshot/tests/data")
        .join(name)
}

fn heapgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    Cmd::heapgate()
        .args(args)
        .envs(env)
        .command()
        .output()
        .unwrap()
}

fn ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The cache on, in `dir` (the harness turns it off by default).
fn cached(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HEAPGATE_NO_CACHE", "false".to_owned()),
        ("HEAPGATE_CACHE_DIR", dir.display().to_string()),
    ]
}

fn env<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn one_object_in_text_and_json() {
    let file = data("small-new.heapsnapshot").display().to_string();
    let text = ok(&heapgate(&["inspect", &file, "@23"], &[]));
    assert!(text.starts_with("@23 LeakedRequestContext\n"), "{text}");
    assert!(text.contains("self 72, retained 72 bytes"), "{text}");
    assert!(text.contains("Retainers (all 1):"), "{text}");
    let json: Value =
        serde_json::from_str(&ok(&heapgate(&["inspect", &file, "23", "--json"], &[]))).unwrap();
    let object = &json["object"];
    assert_eq!(object["id"], 23);
    assert_eq!(object["class"], "LeakedRequestContext");
    assert_eq!(object["retained_size"], 72);
    assert_eq!(object["retainers"]["total"], 1);
    assert_eq!(object["retainers"]["items"][0]["node"]["class"], "(array)");
}

#[test]
fn a_class_shows_who_holds_it_and_its_objects() {
    let file = data("small-new.heapsnapshot").display().to_string();
    let json: Value = serde_json::from_str(&ok(&heapgate(
        &[
            "inspect",
            &file,
            "--class",
            "LeakedRequestContext",
            "--limit",
            "2",
            "--json",
        ],
        &[],
    )))
    .unwrap();
    assert_eq!(json["holders"]["count"], 3);
    assert_eq!(json["objects"]["total"], 3);
    assert_eq!(json["objects"]["items"].as_array().unwrap().len(), 2);
    assert_eq!(json["objects"]["next"], 2);
    let path = &json["holders"]["groups"][0]["path"];
    assert_eq!(path[1]["edge"], "keep");
    // Largest objects of the largest classes, with no filter.
    let text = ok(&heapgate(&["inspect", &file, "--top", "2"], &[]));
    assert!(
        text.lines().filter(|l| !l.starts_with(' ')).count() == 2,
        "{text}"
    );
}

#[test]
fn bad_input_is_one_line_and_the_right_status() {
    let file = data("small-new.heapsnapshot").display().to_string();
    let unknown = heapgate(&["inspect", &file, "@99999"], &[]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        stderr(&unknown),
        format!("heapgate: no object @99999 in {file}\n")
    );
    let class = heapgate(&["inspect", &file, "--class", "Nope"], &[]);
    assert_eq!(class.status.code(), Some(1));
    assert_eq!(stderr(&class).lines().count(), 1);
    let not_an_id = heapgate(&["inspect", &file, "@abc"], &[]);
    assert_eq!(not_an_id.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.heapsnapshot");
    let whole = fs::read(data("small-new.heapsnapshot")).unwrap();
    fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let cache_dir = dir.path().join("cache");
    let truncated = heapgate(
        &["inspect", cut.to_str().unwrap(), "@23"],
        &env(&cached(&cache_dir)),
    );
    assert_eq!(truncated.status.code(), Some(1));
    assert!(
        stderr(&truncated).contains("truncated"),
        "{}",
        stderr(&truncated)
    );
    assert_eq!(stderr(&truncated).lines().count(), 1);
    assert!(
        !cache_dir.exists() || fs::read_dir(&cache_dir).unwrap().next().is_none(),
        "no index of a file that could not be read"
    );
}

#[test]
fn the_cache_answers_the_same_and_rebuilds_what_it_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new.heapsnapshot");
    fs::copy(data("small-new.heapsnapshot"), &file).unwrap();
    let file = file.display().to_string();
    let base = data("small-base.heapsnapshot").display().to_string();
    let cache_dir = dir.path().join("cache");
    let on = cached(&cache_dir);
    let on = env(&on);
    let commands: [&[&str]; 4] = [
        &["inspect", &file, "@23", "--json"],
        &["inspect", &file, "--class", "LeakedRequestContext"],
        &["summary", &file, "--json"],
        &["diff", &base, &file, "--json"],
    ];
    for args in commands {
        let plain = ok(&heapgate(args, &[]));
        let first = heapgate(args, &on);
        assert_eq!(ok(&first), plain, "{args:?}: first, through the cache");
        assert_eq!(stderr(&first), "", "{args:?}");
        let second = heapgate(args, &on);
        assert_eq!(ok(&second), plain, "{args:?}: from the index");
        assert_eq!(stderr(&second), "", "{args:?}");
    }
    let indexes: Vec<PathBuf> = fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(indexes.len(), 2, "one index per file: {indexes:?}");

    // A damaged index: a one-line warning, the same answer, a whole index again.
    let args = ["inspect", file.as_str(), "@23", "--json"];
    let expected = ok(&heapgate(&args, &[]));
    for index in &indexes {
        let mut bytes = fs::read(index).unwrap();
        let at = bytes.len() - 5;
        bytes[at] ^= 0xff;
        fs::write(index, bytes).unwrap();
    }
    let damaged = heapgate(&args, &on);
    assert_eq!(ok(&damaged), expected);
    let warning = stderr(&damaged);
    assert!(
        warning.starts_with("heapgate: warning: ignored the index "),
        "{warning}"
    );
    assert_eq!(warning.lines().count(), 1, "{warning}");
    let again = heapgate(&args, &on);
    assert_eq!(
        (ok(&again), stderr(&again)),
        (expected.clone(), String::new())
    );

    // A cache directory that cannot be made: a warning, and the answer.
    let blocked = Path::new(&file).join("cache").display().to_string();
    let unwritable = heapgate(
        &["inspect", &file, "@23", "--json", "--cache-dir", &blocked],
        &[("HEAPGATE_NO_CACHE", "false")],
    );
    assert_eq!(ok(&unwritable), expected);
    let warning = stderr(&unwritable);
    assert!(
        warning.starts_with("heapgate: warning: cannot keep an index in"),
        "{warning}"
    );
    assert_eq!(warning.lines().count(), 1);

    // --no-cache wins over the environment.
    let before = fs::read_dir(&cache_dir).unwrap().count();
    fs::remove_dir_all(&cache_dir).unwrap();
    let off = heapgate(
        &["summary", &file, "--no-cache"],
        &[("HEAPGATE_CACHE_DIR", cache_dir.to_str().unwrap())],
    );
    ok(&off);
    assert!(before > 0 && !cache_dir.exists());
}

#[test]
fn html_is_one_static_page_without_script() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("object.html");
    let file = data("small-new.heapsnapshot").display().to_string();
    let run = heapgate(
        &["inspect", &file, "@23", "--html", out.to_str().unwrap()],
        &[],
    );
    ok(&run);
    let page = fs::read_to_string(&out).unwrap();
    assert!(page.contains("Content-Security-Policy"));
    assert!(!page.contains("<script"));
    assert!(page.contains("LeakedRequestContext"));
    assert!(page.contains("heapgate inspect"));
}

/// `s3://` objects (a real S3 API: moto_server): the first question indexes the object, the
/// next one answers from the index without reading the object (its identity is the store's
/// size, ETag and time), and another object is another source.
#[test]
fn s3_objects_are_indexed_by_their_identity() {
    let Some(moto) = heapgate_tests::moto_or_skip("s3_objects_are_indexed_by_their_identity")
    else {
        return;
    };
    let port = heapgate_tests::free_port();
    let _moto = heapgate_tests::Proc::spawn(
        std::process::Command::new(&moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1"),
    );
    let s3 = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let start = std::time::Instant::now();
    while heapgate_tests::http_get(s3, "/").is_err() {
        assert!(start.elapsed().as_secs() < 30, "moto_server did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // (This moto refuses overwrites and deletes: a changed object is another identity by its
    // ETag and size, which `SourceIdentity::of_object` takes as they are.)
    let send = |method: &'static str, target: &str, body: &[u8]| {
        let options = heapgate_tests::RequestOptions {
            method,
            body,
            ..Default::default()
        };
        let answer = heapgate_tests::http_request(s3, target, &options).unwrap();
        assert!(
            matches!(answer.status, 200 | 204),
            "{method} {target}: {}",
            answer.status
        );
    };
    let put = |target: &str, body: &[u8]| send("PUT", target, body);
    put("/evidence", b"");
    put(
        "/evidence/t1/a.heapsnapshot",
        &fs::read(data("small-new.heapsnapshot")).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let endpoint = format!("http://{s3}");
    let mut env_pairs = cached(&cache_dir);
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ] {
        env_pairs.push((k, v.to_owned()));
    }
    let on = env(&env_pairs);
    let url = "s3://evidence/t1/a.heapsnapshot";
    let expected = ok(&heapgate(
        &[
            "inspect",
            &data("small-new.heapsnapshot").display().to_string(),
            "@23",
        ],
        &[],
    ));
    let first = heapgate(&["inspect", url, "@23"], &on);
    assert_eq!(ok(&first), expected);
    assert_eq!(stderr(&first), "");
    let indexes = || fs::read_dir(&cache_dir).unwrap().count();
    assert_eq!(indexes(), 1);
    // An index is replaced by a rename when written: the same inode means it was only read.
    let inode = || {
        use std::os::unix::fs::MetadataExt;
        let index = fs::read_dir(&cache_dir).unwrap().next().unwrap().unwrap();
        index.metadata().unwrap().ino()
    };
    let written = inode();
    let second = heapgate(&["inspect", url, "@23"], &on);
    assert_eq!(ok(&second), expected);
    assert_eq!(indexes(), 1);
    assert_eq!(inode(), written, "answered from the index");
    let unknown = heapgate(&["inspect", url, "@99999"], &on);
    assert_eq!(
        stderr(&unknown),
        format!("heapgate: no object @99999 in {url}\n")
    );
    let summary = heapgate(&["summary", url, "--json"], &on);
    assert_eq!(
        ok(&summary),
        ok(&heapgate(
            &[
                "summary",
                &data("small-new.heapsnapshot").display().to_string(),
                "--json"
            ],
            &[]
        ))
    );
    // Another object is another source: its own index.
    put(
        "/evidence/t1/b.heapsnapshot",
        &fs::read(data("small-base.heapsnapshot")).unwrap(),
    );
    let other = heapgate(&["inspect", "s3://evidence/t1/b.heapsnapshot", "@23"], &on);
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("no object @23"),
        "{}",
        stderr(&other)
    );
    assert_eq!(indexes(), 2);
}
