//! `heapgate redact` on real snapshots taken through a real `heapgate-proxy`: planted secrets
//! are gone, and `heapgate diff` of the redacted pair prints the same table as of the original
//! pair (class names, counts, sizes and ids survive).
//!
//! Without node these tests print a loud SKIPPED notice; under CI=true they fail.

use std::path::Path;
use std::process::Output;

use heapgate_tests::{
    Cmd, NodeApp, ProxyProc, RequestOptions, assert_valid_snapshot, contains, http_request,
    node_or_skip,
};

const SECRET: &str = "redaction-secret-0123456789abcdef";
const PLANTED: [&str; 2] = ["hunter2-TOPSECRET-5b1e", "bob.planted@example.org"];

fn heapgate(args: &[&Path]) -> Output {
    Cmd::heapgate().args(args).command().output().unwrap()
}

/// The leaky app holding the planted secrets as strings.
fn planted_app(node: &Path) -> NodeApp {
    let app = NodeApp::start(node, &[]);
    for text in PLANTED {
        assert!(
            app.get(&format!("/remember?text={text}"))
                .contains("remembered")
        );
    }
    app
}

/// heapgate-proxy in front of `app` (inspector source) with `extra` flags.
fn proxy_in_front(app: &NodeApp, extra: &[&str]) -> ProxyProc {
    ProxyProc::in_front_of(app, SECRET, extra)
}

#[test]
fn redacted_pair_diffs_like_the_original_pair() {
    let Some(node) = node_or_skip("redaction::redacted_pair_diffs_like_the_original_pair") else {
        return;
    };
    let app = planted_app(&node);
    let proxy = proxy_in_front(&app, &["--min-interval", "0s"]);
    let dir = tempfile::tempdir().unwrap();
    let take = |accept: &str, name: &str| {
        let options = RequestOptions {
            headers: &[("Accept-Encoding", accept)],
            ..RequestOptions::default()
        };
        let target = format!("/heapdump?hash={}", heapgate_tests::token_now(SECRET));
        let response = http_request(proxy.listen, &target, &options).unwrap();
        assert_eq!(response.status, 200);
        assert!(response.complete);
        let path = dir.path().join(name);
        std::fs::write(&path, &response.body).unwrap();
        path
    };
    // One plain, one zstd as it came over the wire: redact reads both.
    let base = take("identity", "base.heapsnapshot");
    assert!(app.get("/leak?n=500").contains("leaked"));
    let new = take("zstd", "new.heapsnapshot.zst");
    let plain_base = std::fs::read(&base).unwrap();
    assert!(
        PLANTED.iter().all(|t| contains(&plain_base, t)),
        "the oracle holds the secrets"
    );

    let red_base = dir.path().join("base.redacted.heapsnapshot");
    let red_new = dir.path().join("new.redacted.heapsnapshot.zst");
    for (from, to) in [(&base, &red_base), (&new, &red_new)] {
        let output = heapgate(&[Path::new("redact"), from, to]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(stderr.contains("redacted"), "{stderr}");
    }
    let red_new_bytes = std::fs::read(&red_new).unwrap();
    assert_eq!(
        red_new_bytes[..4],
        [0x28, 0xB5, 0x2F, 0xFD],
        "zstd in, zstd out"
    );
    for plain in [
        std::fs::read(&red_base).unwrap(),
        zstd::decode_all(&red_new_bytes[..]).unwrap(),
    ] {
        for text in PLANTED {
            assert!(!contains(&plain, text), "{text} survived redaction");
        }
        assert_valid_snapshot(&serde_json::from_slice(&plain).unwrap());
    }

    let diff = |a: &Path, b: &Path| {
        let output = heapgate(&[
            Path::new("diff"),
            a,
            b,
            Path::new("--top"),
            Path::new("1000"),
        ]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        (output.stdout, output.stderr)
    };
    // The class table, up to its Total line; the retainer samples after it name string nodes by
    // their (redacted) text, and may pick different objects among equals from run to run.
    let table = |output: &[u8]| {
        let text = String::from_utf8_lossy(output).into_owned();
        let end = text.find("\nTotal").expect("a Total line");
        let line_end = text[end + 1..]
            .find('\n')
            .map_or(text.len(), |n| end + 1 + n);
        text[..line_end].to_owned()
    };
    let original = diff(&base, &new);
    let redacted = diff(&red_base, &red_new);
    let original_table = table(&original.0);
    assert!(
        original_table.contains("LeakedRequestContext"),
        "{original_table}"
    );
    assert_eq!(table(&redacted.0), original_table);
    assert_eq!(redacted.1, original.1, "the same warnings, if any");

    // Never overwrites.
    let again = heapgate(&[Path::new("redact"), &base, &red_base]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}

/// `heapgate fetch` from a `--redact strings` proxy: received compressed, saved plain, no planted
/// secret in the file, and the saved line says the proxy redacted it.
#[test]
fn fetch_from_a_redacting_proxy_saves_no_secrets() {
    let Some(node) = node_or_skip("redaction::fetch_from_a_redacting_proxy") else {
        return;
    };
    let app = planted_app(&node);
    let proxy = proxy_in_front(&app, &["--redact", "strings"]);
    let dir = tempfile::tempdir().unwrap();
    let output = Cmd::heapgate()
        .arg("fetch")
        .arg(format!("http://{}", proxy.listen))
        .arg("--out")
        .arg(dir.path())
        .env("HEAPGATE_SECRET", SECRET)
        .command()
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("on the wire"), "{stderr}");
    assert!(stderr.contains("strings redacted by the proxy"), "{stderr}");
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let plain = std::fs::read(&path).unwrap();
    for text in PLANTED {
        assert!(!contains(&plain, text), "{text} in {path}");
    }
    assert_valid_snapshot(&serde_json::from_slice(&plain).unwrap());
}
