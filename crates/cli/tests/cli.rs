//! The real `heapgate` binary: exact stdout, exit statuses, secret handling.

use std::path::{Path, PathBuf};
use std::process::Command;

use heapgate_tests::{Cmd, Run};

const SECRET: &str = "secret-key-for-cli-tests";

fn heapgate(args: &[&str], env: &[(&str, &str)]) -> Run {
    Cmd::heapgate().args(args).envs(env).run()
}

fn secret_file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn with_secret(args: &[&str]) -> Run {
    heapgate(args, &[("HEAPGATE_SECRET", SECRET)])
}

#[derive(serde::Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(serde::Deserialize)]
struct Vector {
    secret: String,
    value: String,
    at: String,
    hash: String,
}

#[test]
fn mint_reproduces_every_known_answer_vector() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../token/tests/data/seed-oneliner.json");
    let vectors: Vectors = serde_json::from_slice(&std::fs::read(data).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for v in vectors.vectors {
        let file = secret_file(&dir, "secret", format!("{}\n", v.secret).as_bytes());
        let file = file.to_str().unwrap();
        let run = heapgate(
            &[
                "mint",
                "--secret-file",
                file,
                "--value",
                &v.value,
                "--at",
                &v.at,
            ],
            &[],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.stdout, format!("{}\n", v.hash), "vector at {}", v.at);
        let short = v.secret.len() < 16;
        assert_eq!(
            run.stderr.contains("shorter than 16 bytes"),
            short,
            "{}",
            run.stderr
        );
        // (Secrets of a few characters occur in any text by chance.)
        assert!(v.secret.len() < 8 || !run.stderr.contains(&v.secret));
    }
}

#[test]
fn secret_file_loses_exactly_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let expected = with_secret(&["mint", "--at", "2021-06-01T10:00:00Z"]).stdout;
    for (name, content) in [("lf", "\n"), ("crlf", "\r\n"), ("none", "")] {
        let path = secret_file(&dir, name, format!("{SECRET}{content}").as_bytes());
        let run = heapgate(
            &[
                "mint",
                "--at",
                "2021-06-01T10:00:00Z",
                "--secret-file",
                path.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(run.stdout, expected, "{name}");
        assert_eq!(run.stderr, "", "{name}");
    }
    let two = secret_file(&dir, "two", format!("{SECRET}\n\n").as_bytes());
    let run = heapgate(
        &[
            "mint",
            "--at",
            "2021-06-01T10:00:00Z",
            "--secret-file",
            two.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(run.stdout, expected, "only one newline is stripped");
}

#[test]
fn argv_secret_works_but_warns() {
    let run = heapgate(
        &["mint", "--secret", SECRET, "--at", "2021-06-01T10:00:00Z"],
        &[],
    );
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        with_secret(&["mint", "--at", "2021-06-01T10:00:00Z"]).stdout
    );
    assert!(
        run.stderr
            .contains("warning: --secret is visible to other users"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(SECRET));
}

#[test]
fn env_secret_beats_argv_and_says_so() {
    let run = heapgate(
        &["mint", "--secret", "other-secret-000000"],
        &[("HEAPGATE_SECRET", SECRET)],
    );
    assert_eq!(run.code, 0);
    assert!(run.stderr.contains("--secret ignored"), "{}", run.stderr);
}

#[test]
fn mint_prints_exactly_the_hash() {
    let run = with_secret(&["mint"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout.len(), 65);
    assert!(run.stdout.ends_with('\n'));
    assert!(
        run.stdout[..64]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn value_from_env_and_flag_agree() {
    let at = "2021-06-01T10:00:00Z";
    let by_flag = with_secret(&["mint", "--at", at, "--value", "custom"]).stdout;
    let by_env = heapgate(
        &["mint", "--at", at],
        &[("HEAPGATE_SECRET", SECRET), ("HEAPGATE_VALUE", "custom")],
    )
    .stdout;
    assert_eq!(by_flag, by_env);
    assert_ne!(by_flag, with_secret(&["mint", "--at", at]).stdout);
}

#[test]
fn url_joins_path_and_encodes_task() {
    let at = "2021-06-01T10:00:00Z";
    let hash = with_secret(&["mint", "--at", at])
        .stdout
        .trim_end()
        .to_owned();
    let run = with_secret(&["mint", "--at", at, "--url", "http://127.0.0.1:8080/"]);
    assert_eq!(
        run.stdout,
        format!("http://127.0.0.1:8080/heapdump?hash={hash}\n")
    );
    let run = with_secret(&[
        "mint",
        "--at",
        at,
        "--url",
        "https://svc",
        "--path",
        "debug/heap",
        "--task",
        "abc-1.2_x",
    ]);
    assert_eq!(
        run.stdout,
        format!("https://svc/debug/heap?hash={hash}&task=abc-1.2_x\n")
    );
    // A task the sidecar would refuse (400) is refused here, before a URL is printed.
    let run = with_secret(&["mint", "--url", "https://svc", "--task", "abc/1 2"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--task: task id \"abc/1 2\""),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn json_output() {
    let run = with_secret(&[
        "mint",
        "--at",
        "2021-06-01T10:15:00+02:00",
        "--json",
        "--url",
        "http://h",
    ]);
    assert_eq!(run.code, 0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["hour"], "2021-06-01T08:00:00.000Z");
    assert_eq!(json["expires"], "2021-06-01T09:00:00.000Z");
    let hash = json["hash"].as_str().unwrap();
    assert_eq!(json["url"], format!("http://h/heapdump?hash={hash}"));
    assert!(run.stdout.starts_with("{\"hash\":"));
    let run = with_secret(&["mint", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(json.get("url").is_none());
}

#[test]
fn verify_accepts_a_fresh_token() {
    let hash = with_secret(&["mint", "--at", "2021-06-01T10:59:30Z"]).stdout;
    let run = with_secret(&["verify", hash.trim_end(), "--at", "2021-06-01T11:04:59Z"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "valid: minted for hour 2021-06-01T10:00:00.000Z\n"
    );
    let upper = hash.trim_end().to_uppercase();
    assert_eq!(
        with_secret(&["verify", &upper, "--at", "2021-06-01T10:10:00Z"]).code,
        0
    );
}

#[test]
fn verify_window_flags() {
    let hash = with_secret(&["mint", "--at", "2021-06-01T10:30:00Z"]).stdout;
    let hash = hash.trim_end();
    assert_eq!(
        with_secret(&["verify", hash, "--at", "2021-06-01T11:05:00Z"]).code,
        1
    );
    assert_eq!(
        with_secret(&[
            "verify",
            hash,
            "--at",
            "2021-06-01T11:05:00Z",
            "--grace",
            "10m"
        ])
        .code,
        0
    );
    assert_eq!(
        with_secret(&["verify", hash, "--at", "2021-06-01T09:58:40Z"]).code,
        1
    );
    assert_eq!(
        with_secret(&[
            "verify",
            hash,
            "--at",
            "2021-06-01T09:58:40Z",
            "--skew",
            "90s"
        ])
        .code,
        0
    );
    let bad = with_secret(&["verify", hash, "--grace", "5 parsecs"]);
    assert_eq!(bad.code, 2);
    assert_eq!(with_secret(&["verify", hash, "--grace", "25h"]).code, 2);
}

#[test]
fn verify_rejects_with_one_line_and_status_1() {
    let hash = with_secret(&["mint", "--at", "2021-06-01T03:10:00Z"]).stdout;
    let hash = hash.trim_end();
    let run = with_secret(&["verify", hash, "--at", "2021-06-01T10:30:00Z"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("heapgate: invalid token:"));
    assert!(!run.stderr.contains(SECRET) && !run.stderr.contains(hash));

    let malformed = with_secret(&["verify", &hash[..63]]);
    assert_eq!(malformed.code, 1);
    assert_eq!(
        malformed.stderr,
        "heapgate: invalid token: expected 64 hex characters, got 63\n"
    );
}

#[test]
fn explain_tells_expired_from_wrong_secret() {
    let hash = with_secret(&["mint", "--at", "2021-06-01T03:10:00Z"]).stdout;
    let hash = hash.trim_end();
    let run = with_secret(&["verify", hash, "--at", "2021-06-01T10:30:00Z", "--explain"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains(r#"{"date":"2021-06-01T10:00:00.000Z","value":"heapdump"}"#),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("minted for hour 2021-06-01T03:00:00.000Z"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("7 h ago"), "{}", run.stderr);

    let wrong = heapgate(
        &["verify", hash, "--at", "2021-06-01T10:30:00Z", "--explain"],
        &[("HEAPGATE_SECRET", "a-different-secret-000")],
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("no key and value match it"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn rotation_through_repeated_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    let new = secret_file(&dir, "new", b"new-secret-0123456789\n");
    let old = secret_file(&dir, "old", b"old-secret-0123456789\n");
    let (new, old) = (new.to_str().unwrap(), old.to_str().unwrap());
    let at = "2021-06-01T10:00:00Z";
    let old_token = heapgate(&["mint", "--at", at, "--secret-file", old], &[]).stdout;
    let run = heapgate(
        &[
            "verify",
            old_token.trim_end(),
            "--at",
            at,
            "--secret-file",
            new,
            "--secret-file",
            old,
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("key #2 of 2"), "{}", run.stdout);
    let both = format!("{new},{old}");
    let by_env = heapgate(
        &["verify", old_token.trim_end(), "--at", at],
        &[("HEAPGATE_SECRET_FILE", &both)],
    );
    assert_eq!(by_env.code, 0, "{}", by_env.stderr);
}

#[test]
fn configuration_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let empty = secret_file(&dir, "empty", b"\n");
    let cases: [&[&str]; 4] = [
        &["mint"],
        &["mint", "--secret-file", "/nonexistent/secret"],
        &["mint", "--secret-file", empty.to_str().unwrap()],
        &["mint", "--secret", ""],
    ];
    for args in cases {
        let run = heapgate(args, &[]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("heapgate: "), "{}", run.stderr);
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["mint", "--at", "yesterday"][..],
        &["mint", "--task", "x"],
        &["mint", "--bogus"],
        &["verify"],
        &["frobnicate"],
    ] {
        assert_eq!(with_secret(args).code, 2, "{args:?}");
    }
    let bad_url = with_secret(&["mint", "--url", "127.0.0.1:8080"]);
    assert_eq!(bad_url.code, 2);
    assert!(bad_url.stderr.contains("http://"), "{}", bad_url.stderr);
}

#[test]
fn help_answers_questions() {
    let run = heapgate(&["mint", "--help"], &[]);
    assert_eq!(run.code, 0);
    for flag in [
        "--secret-file",
        "--secret ",
        "--value",
        "--at",
        "--url",
        "--path",
        "--task",
        "--json",
    ] {
        assert!(run.stdout.contains(flag), "{flag} missing from mint --help");
    }
    let run = heapgate(&["verify", "--help"], &[]);
    for flag in ["--grace", "--skew", "--explain", "HASH"] {
        assert!(
            run.stdout.contains(flag),
            "{flag} missing from verify --help"
        );
    }
}

#[test]
fn version_names_the_revision_when_built_from_git() {
    let run = heapgate(&["--version"], &[]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .starts_with(&format!("heapgate {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.stdout
    );
    let in_git = Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if let Some(rev) = in_git {
        assert!(
            run.stdout.contains(&format!("({rev}")),
            "{} lacks {rev}",
            run.stdout
        );
    }
}

#[test]
fn completions_for_every_shell_need_no_secret() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = heapgate(&["completions", shell], &[]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(
            run.stdout.contains("fetch") && run.stdout.contains("--secret-file"),
            "{shell}"
        );
    }
    assert_eq!(heapgate(&["completions", "tcsh"], &[]).code, 2);
}

/// `heapgate man --dir` writes heapgate(1), a page per subcommand and heapgate-proxy(1): every
/// `heapgate-…(1)` a page names exists, and `heapgate man SUBCOMMAND` prints that page.
#[test]
fn man_writes_every_page_it_refers_to() {
    let dir = tempfile::tempdir().unwrap();
    let run = heapgate(&["man", "--dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    for page in [
        "heapgate.1",
        "heapgate-fetch.1",
        "heapgate-list.1",
        "heapgate-proxy.1",
    ] {
        assert!(
            written.iter().any(|w| w == page),
            "{page} not in {written:?}"
        );
    }
    assert_eq!(run.stdout.lines().count(), written.len(), "{}", run.stdout);
    for page in &written {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH "), "{page} is not roff");
        // roff writes `heapgate\-fetch(1)`.
        for (at, _) in text.match_indices("(1)") {
            let name: String = text[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '\\')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
                .replace("\\-", "-");
            if name.starts_with("heapgate") {
                assert!(
                    written.contains(&format!("{name}.1")),
                    "{page} refers to {name}(1), which was not written"
                );
            }
        }
    }
    let fetch = heapgate(&["man", "fetch"], &[]);
    assert_eq!(fetch.code, 0, "{}", fetch.stderr);
    assert!(
        fetch.stdout.contains(".TH heapgate-fetch 1"),
        "{}",
        fetch.stdout
    );
    let proxy = heapgate(&["man", "heapgate-proxy"], &[]);
    assert!(proxy.stdout.contains("\\-\\-upstream"), "{}", proxy.stdout);
    let unknown = heapgate(&["man", "nope"], &[]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("heapgate-fetch"),
        "{}",
        unknown.stderr
    );
}

/// Exit status 3 (`diff --fail-on-growth`) is in `--help` and in the manual page.
#[test]
fn help_and_man_name_exit_status_3() {
    let help = heapgate(&["--help"], &[]);
    let words = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("3 diff --fail-on-growth exceeded"),
        "{}",
        help.stdout
    );
    let man = heapgate(&["man"], &[]);
    assert!(
        man.stdout
            .contains("3 diff \\-\\-fail\\-on\\-growth exceeded"),
        "{}",
        man.stdout
    );
    let diff = heapgate(&["diff", "--help"], &[]);
    assert!(
        diff.stdout.contains("3 --fail-on-growth"),
        "{}",
        diff.stdout
    );
}

/// `--secret`, `--secret-file` and `--value` belong to the subcommands that mint or verify
/// tokens, and appear nowhere else: not in their help, manual pages or completions.
#[test]
fn token_flags_only_where_tokens_are_made() {
    let token_flags = ["--secret-file", "--secret ", "--value"];
    for sub in ["mint", "verify", "fetch"] {
        let help = heapgate(&[sub, "--help"], &[]);
        for flag in token_flags {
            assert!(
                help.stdout.contains(flag),
                "{flag} missing from {sub} --help"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    heapgate(&["man", "--dir", dir.path().to_str().unwrap()], &[]);
    for sub in [
        "man",
        "completions",
        "list",
        "diff",
        "redact",
        "summary",
        "demo",
    ] {
        let help = heapgate(&[sub, "--help"], &[]);
        let page = std::fs::read_to_string(dir.path().join(format!("heapgate-{sub}.1"))).unwrap();
        for flag in token_flags {
            assert!(
                !help.stdout.contains(flag),
                "{flag} in {sub} --help:\n{}",
                help.stdout
            );
        }
        assert!(
            !page.contains("\\-\\-secret"),
            "heapgate-{sub}(1) names --secret"
        );
        assert!(
            !page.contains("\\-\\-value"),
            "heapgate-{sub}(1) names --value"
        );
    }
    let top = heapgate(&["--help"], &[]);
    assert!(!top.stdout.contains("--secret"), "{}", top.stdout);
    let misplaced = heapgate(&["diff", "--secret", "s", "a", "b"], &[]);
    assert_eq!(misplaced.code, 2, "{}", misplaced.stderr);
    // Completions: the flags are offered after `fetch`, not after `diff`.
    let bash = heapgate(&["completions", "bash"], &[]).stdout;
    let section = |name: &str| {
        let start = bash.find(&format!("heapgate__subcmd__{name})")).unwrap();
        let rest = &bash[start..];
        rest[..rest.find(";;").unwrap()].to_owned()
    };
    assert!(section("fetch").contains("--secret-file"));
    assert!(!section("diff").contains("--secret"), "{}", section("diff"));
}

#[test]
fn a_closed_stdout_is_not_an_error_message() {
    use std::io::Read;
    let mut child = Cmd::heapgate()
        .arg("man")
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(stderr.is_empty(), "{stderr}");
    assert!(matches!(status.code(), Some(0 | 141)), "{status:?}");
}

/// The flags `heapgate SUB --help` lists (its option lines, not its prose).
fn help_flags(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|line| {
            let indent = line.len() - line.trim_start().len();
            let option = line.trim_start();
            if !(2..=6).contains(&indent) || !option.starts_with('-') {
                return None;
            }
            // `--name <VALUE>  prose` or `-h, --help  prose`: the first long name.
            let long = option.split_once("--").map_or("", |(_, long)| long);
            let name: String = long
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .collect()
}

/// Every subcommand's `--help` lists exactly the flags that subcommand uses, and every
/// subcommand has a row here (a new one fails until its flags are written down).
#[test]
fn every_subcommand_help_lists_exactly_its_flags() {
    const TOKEN: [&str; 3] = ["--secret-file", "--secret", "--value"];
    const ALWAYS: [&str; 2] = ["--help", "--version"];
    let table: &[(&str, &[&str])] = &[
        (
            "mint",
            &["--at", "--for", "--url", "--path", "--task", "--json"],
        ),
        (
            "verify",
            &["--for", "--at", "--grace", "--skew", "--explain"],
        ),
        (
            "fetch",
            &[
                "--task",
                "--count",
                "--interval",
                "--out",
                "--path",
                "--profile",
                "--format",
                "--max-attempts",
                "--keep-compressed",
                "--no-compression",
                "--html",
            ],
        ),
        (
            "diff",
            &[
                "--top",
                "--sort",
                "--retainers",
                "--full-paths",
                "--fail-on-growth",
                "--json",
                "--html",
                "--cache-dir",
                "--cache-max",
                "--no-cache",
            ],
        ),
        (
            "summary",
            &[
                "--top",
                "--json",
                "--html",
                "--cache-dir",
                "--cache-max",
                "--no-cache",
            ],
        ),
        (
            "inspect",
            &[
                "--class",
                "--location",
                "--property",
                "--min-retained",
                "--limit",
                "--offset",
                "--top",
                "--paths",
                "--full-paths",
                "--show-keys",
                "--json",
                "--html",
                "--cache-dir",
                "--cache-max",
                "--no-cache",
            ],
        ),
        ("list", &[]),
        ("redact", &["--plain"]),
        ("demo", &["--leak", "--keep", "--html", "--serve"]),
        (
            "mcp",
            &[
                "--root",
                "--allow-strings",
                "--capture",
                "--capture-dir",
                "--max-bytes",
                "--cache-dir",
                "--cache-max",
                "--no-cache",
            ],
        ),
        ("completions", &[]),
        ("man", &["--dir"]),
    ];
    let top = heapgate(&["--help"], &[]).stdout;
    let commands: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    let rows: Vec<&str> = table.iter().map(|(sub, _)| *sub).collect();
    assert_eq!(
        commands, rows,
        "a subcommand without a row, or a row too many"
    );
    for (sub, own) in table {
        let help = heapgate(&[sub, "--help"], &[]).stdout;
        let mut listed = help_flags(&help);
        listed.sort();
        listed.dedup();
        let mut expected: Vec<String> = own.iter().map(|f| (*f).to_owned()).collect();
        if ["mint", "verify", "fetch"].contains(sub) {
            expected.extend(TOKEN.map(str::to_owned));
        }
        expected.extend(ALWAYS.map(str::to_owned));
        expected.sort();
        assert_eq!(listed, expected, "heapgate {sub} --help:\n{help}");
    }
}
