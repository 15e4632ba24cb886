//! Differential test against real Node.js: `reference-token.js --jsonl` (plain Node, the same
//! computation as the one-liner) must agree with heapgate-token on every generated case.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use heapgate_tests::{data, node_or_skip};
use heapgate_token::{Hour, Key, mint, payload};
use serde::{Deserialize, Serialize};

const CASES: usize = 400;

#[derive(Serialize)]
struct Case {
    secret: String,
    value: String,
    at: String,
}

#[derive(Deserialize)]
struct Answer {
    secret: String,
    value: String,
    at: String,
    hour: String,
    payload: String,
    hash: String,
}

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Characters that stress JSON.stringify's escaping and UTF-8 encoding.
const TRICKY: &[char] = &[
    'a', 'Z', '0', ' ', '"', '\\', '/', '\u{0}', '\u{1}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}',
    '\r', '\u{1b}', '\u{1f}', '\u{7f}', '\u{80}', 'é', 'ß', '\u{2028}', '\u{2029}', '€', '日',
    '\u{feff}', '\u{fffd}', '🦀', '𝄞', '<', '>', '&', '\'',
];

fn text(rng: &mut Rng, max_len: u64) -> String {
    let len = rng.below(max_len + 1);
    (0..len).map(|_| *rng.pick(TRICKY)).collect()
}

fn secret(rng: &mut Rng) -> String {
    match rng.below(4) {
        // Longer than SHA-256's 64-byte block: HMAC hashes the key first.
        0 => (0..64 + rng.below(200))
            .map(|_| *rng.pick(TRICKY))
            .collect(),
        1 => format!("plain-secret-{}", rng.next()),
        _ => {
            let s = text(rng, 40);
            if s.is_empty() { "x".to_owned() } else { s }
        }
    }
}

fn instant(rng: &mut Rng) -> String {
    let year = 1970 + rng.below(9999 - 1970 + 1);
    let (month, day) = (1 + rng.below(12), 1 + rng.below(28));
    let hour = rng.below(24);
    // Half the cases sit right at an hour boundary.
    let (minute, second, millis) = match rng.below(4) {
        0 => (59, 59, 999),
        1 => (0, 0, 0),
        _ => (rng.below(60), rng.below(60), rng.below(1000)),
    };
    let offset = *rng.pick(&[
        "Z", "+00:00", "+02:00", "-05:00", "+05:30", "+05:45", "-09:30", "+14:00", "-12:00",
    ]);
    let fraction = match rng.below(3) {
        0 => String::new(),
        _ => format!(".{millis:03}"),
    };
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}")
}

fn cases() -> Vec<Case> {
    let mut rng = Rng(0x4845_4150_4741_5445);
    let mut cases: Vec<Case> = (0..CASES)
        .map(|_| Case {
            secret: secret(&mut rng),
            value: if rng.below(5) == 0 {
                "heapdump".to_owned()
            } else {
                text(&mut rng, 30)
            },
            at: instant(&mut rng),
        })
        .collect();
    // The edges: the epoch, the last hour of 9999 pushed into year 10000 by an offset.
    for at in [
        "1970-01-01T00:00:00Z",
        "1970-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59.999Z",
        "9999-12-31T23:30:00-05:00",
    ] {
        cases.push(Case {
            secret: "edge-secret".to_owned(),
            value: "heapdump".to_owned(),
            at: at.to_owned(),
        });
    }
    cases
}

#[test]
fn agrees_with_node_on_generated_cases() {
    let Some(node) = node_or_skip("differential::agrees_with_node_on_generated_cases") else {
        return;
    };
    let cases = cases();
    let mut input = Vec::new();
    for case in &cases {
        serde_json::to_writer(&mut input, case).unwrap();
        input.push(b'\n');
    }
    let mut child = Command::new(node)
        .arg(data("reference-token.js"))
        .arg("--jsonl")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let answers: Vec<Answer> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(answers.len(), cases.len(), "one answer per case");

    let mut year_10000 = 0;
    for (case, answer) in cases.iter().zip(&answers) {
        assert_eq!(
            (&answer.secret, &answer.value, &answer.at),
            (&case.secret, &case.value, &case.at)
        );
        let now: DateTime<Utc> = DateTime::parse_from_rfc3339(&case.at)
            .unwrap()
            .with_timezone(&Utc);
        let hour = Hour::containing(now);
        assert_eq!(hour.to_string(), answer.hour, "hour of {}", case.at);
        assert_eq!(
            payload(hour, &case.value),
            answer.payload,
            "payload for {:?}",
            case.value
        );
        let ours = mint(&Key::new(case.secret.as_bytes()).unwrap(), &case.value, now).to_string();
        assert_eq!(
            ours, answer.hash,
            "hash for secret {:?} value {:?} at {}",
            case.secret, case.value, case.at
        );
        year_10000 += usize::from(answer.hour.starts_with('+'));
    }
    assert!(year_10000 >= 1, "the year-10000 edge case must be covered");
}

/// `heapgate mint --for profile` is the Node one-liner over `VALUE + ':heapprofile'`
/// (docs/tokens.md, "One token per instrument"), and `--for snapshot` the one-liner over VALUE:
/// the two never coincide.
#[test]
fn profile_tokens_are_the_one_liner_over_the_suffixed_value() {
    let Some(node) =
        node_or_skip("differential::profile_tokens_are_the_one_liner_over_the_suffixed_value")
    else {
        return;
    };
    let at = "2026-12-06T05:40:00Z";
    let reference = |value: &str| {
        let out = Command::new(&node)
            .arg(data("reference-token.js"))
            .args(["s3cret", value, at])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let heapgate = |instrument: &str| {
        let run = heapgate_tests::Cmd::heapgate()
            .env("HEAPGATE_SECRET", "s3cret")
            .args([
                "mint", "--value", "heapdump", "--for", instrument, "--at", at,
            ])
            .expect_success();
        run.stdout.trim().to_owned()
    };
    let profile = heapgate("profile");
    assert_eq!(profile, reference("heapdump:heapprofile"));
    let snapshot = heapgate("snapshot");
    assert_eq!(snapshot, reference("heapdump"));
    assert_ne!(profile, snapshot);
}
