//! The acceptance window, key rotation and malformed input, at fixed instants.

use std::time::Duration;

use chrono::{DateTime, Utc};
use heapgate_token::{Key, Keys, Malformed, Rejection, Window, locate, mint, verify};

const VALUE: &str = "heapdump";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn key(secret: &str) -> Key {
    Key::new(secret.as_bytes()).unwrap()
}

fn keys(secrets: &[&str]) -> Keys {
    Keys::new(secrets.iter().map(|s| key(s)).collect()).unwrap()
}

/// A token for the 10:00 hour, checked at `now` with the default window.
fn ten_oclock_token_at(now: &str) -> Result<String, Rejection> {
    let token = mint(&key("secret-key"), VALUE, at("2021-06-01T10:30:00Z")).to_string();
    verify(
        &token,
        &keys(&["secret-key"]),
        VALUE,
        at(now),
        &Window::default(),
    )
    .map(|v| v.hour.to_string())
}

#[test]
fn current_hour_up_to_its_last_millisecond() {
    assert_eq!(
        ten_oclock_token_at("2021-06-01T10:59:59.999Z").unwrap(),
        "2021-06-01T10:00:00.000Z"
    );
}

#[test]
fn previous_hour_within_grace() {
    assert!(ten_oclock_token_at("2021-06-01T11:00:00Z").is_ok());
    assert!(ten_oclock_token_at("2021-06-01T11:04:59Z").is_ok());
    assert!(ten_oclock_token_at("2021-06-01T11:04:59.999Z").is_ok());
}

#[test]
fn previous_hour_rejected_once_grace_is_over() {
    assert_eq!(
        ten_oclock_token_at("2021-06-01T11:05:00Z"),
        Err(Rejection::NoMatch)
    );
    assert_eq!(
        ten_oclock_token_at("2021-06-01T12:00:00Z"),
        Err(Rejection::NoMatch)
    );
}

#[test]
fn next_hour_within_skew() {
    // The 10:00 token checked while the verifier's clock still says 09:59.
    assert!(ten_oclock_token_at("2021-06-01T09:59:00Z").is_ok());
    assert!(ten_oclock_token_at("2021-06-01T09:59:30Z").is_ok());
    assert_eq!(
        ten_oclock_token_at("2021-06-01T09:58:59.999Z"),
        Err(Rejection::NoMatch)
    );
}

#[test]
fn token_minted_at_the_skew_edge() {
    // Minted at 10:59:00 by a clock that is right, verified there: the current hour matches.
    let token = mint(
        &key("k-0123456789abcdef"),
        VALUE,
        at("2021-06-01T10:59:00Z"),
    )
    .to_string();
    let keys = keys(&["k-0123456789abcdef"]);
    let verified = verify(
        &token,
        &keys,
        VALUE,
        at("2021-06-01T10:59:00Z"),
        &Window::default(),
    );
    assert_eq!(
        verified.unwrap().hour.to_string(),
        "2021-06-01T10:00:00.000Z"
    );
    // Minted for 11:00 (minter ahead), verified at 10:59:00: accepted through skew.
    let ahead = mint(
        &key("k-0123456789abcdef"),
        VALUE,
        at("2021-06-01T11:00:00Z"),
    )
    .to_string();
    let verified = verify(
        &ahead,
        &keys,
        VALUE,
        at("2021-06-01T10:59:00Z"),
        &Window::default(),
    );
    assert_eq!(
        verified.unwrap().hour.to_string(),
        "2021-06-01T11:00:00.000Z"
    );
}

#[test]
fn zero_window_is_the_bare_hour() {
    let window = Window::new(Duration::ZERO, Duration::ZERO).unwrap();
    let token = mint(&key("secret-key"), VALUE, at("2021-06-01T10:30:00Z")).to_string();
    let keys = keys(&["secret-key"]);
    assert!(verify(&token, &keys, VALUE, at("2021-06-01T10:00:00Z"), &window).is_ok());
    assert!(verify(&token, &keys, VALUE, at("2021-06-01T11:00:00Z"), &window).is_err());
    assert!(
        verify(
            &token,
            &keys,
            VALUE,
            at("2021-06-01T09:59:59.999Z"),
            &window
        )
        .is_err()
    );
}

#[test]
fn wide_grace_spans_several_hours() {
    let window = Window::new(Duration::from_secs(3 * 3600), Duration::ZERO).unwrap();
    let token = mint(&key("secret-key"), VALUE, at("2021-06-01T10:30:00Z")).to_string();
    let keys = keys(&["secret-key"]);
    assert!(verify(&token, &keys, VALUE, at("2021-06-01T13:59:59Z"), &window).is_ok());
    assert!(verify(&token, &keys, VALUE, at("2021-06-01T14:00:00Z"), &window).is_err());
}

#[test]
fn window_rejects_absurd_slack() {
    assert!(Window::new(Duration::from_secs(25 * 3600), Duration::ZERO).is_err());
    assert!(Window::new(Duration::ZERO, Duration::from_secs(25 * 3600)).is_err());
}

#[test]
fn rotation_first_key_signs_any_key_verifies() {
    let now = at("2021-06-01T10:30:00Z");
    let rotated = keys(&["new-secret-0000000", "old-secret-0000000"]);
    let old_token = mint(&key("old-secret-0000000"), VALUE, now).to_string();
    let new_token = mint(rotated.signing(), VALUE, now).to_string();
    assert_eq!(
        new_token,
        mint(&key("new-secret-0000000"), VALUE, now).to_string()
    );

    let window = Window::default();
    assert_eq!(
        verify(&new_token, &rotated, VALUE, now, &window)
            .unwrap()
            .key_index,
        0
    );
    assert_eq!(
        verify(&old_token, &rotated, VALUE, now, &window)
            .unwrap()
            .key_index,
        1
    );
    let retired = keys(&["new-secret-0000000"]);
    assert_eq!(
        verify(&old_token, &retired, VALUE, now, &window),
        Err(Rejection::NoMatch)
    );
}

#[test]
fn wrong_value_or_secret_does_not_match() {
    let now = at("2021-06-01T10:30:00Z");
    let token = mint(&key("secret-key"), VALUE, now).to_string();
    let window = Window::default();
    assert_eq!(
        verify(&token, &keys(&["secret-key"]), "other", now, &window),
        Err(Rejection::NoMatch)
    );
    assert_eq!(
        verify(&token, &keys(&["secret-kez"]), VALUE, now, &window),
        Err(Rejection::NoMatch)
    );
}

#[test]
fn uppercase_hex_verifies() {
    let now = at("2021-06-01T10:30:00Z");
    let token = mint(&key("secret-key"), VALUE, now)
        .to_string()
        .to_uppercase();
    assert!(
        verify(
            &token,
            &keys(&["secret-key"]),
            VALUE,
            now,
            &Window::default()
        )
        .is_ok()
    );
}

#[test]
fn malformed_inputs() {
    let now = at("2021-06-01T10:30:00Z");
    let good = mint(&key("secret-key"), VALUE, now).to_string();
    let keys = keys(&["secret-key"]);
    let check = |presented: &str| verify(presented, &keys, VALUE, now, &Window::default());
    let malformed = |m| Err(Rejection::Malformed(m));

    assert_eq!(check(""), malformed(Malformed::Empty));
    assert_eq!(check(&good[..63]), malformed(Malformed::Length(63)));
    assert_eq!(check(&format!("{good}a")), malformed(Malformed::Length(65)));
    assert_eq!(check(&format!("{good} ")), malformed(Malformed::Length(65)));
    assert_eq!(
        check(&format!(" {}", &good[1..])),
        malformed(Malformed::NotHex(1))
    );
    assert_eq!(
        check(&format!("{}\n", &good[..63])),
        malformed(Malformed::NotHex(64))
    );
    assert_eq!(
        check(&format!("{}z", &good[..63])),
        malformed(Malformed::NotHex(64))
    );
    assert_eq!(
        check(&format!("{}\u{0663}", &good[..63])),
        malformed(Malformed::NotHex(64))
    );
    assert_eq!(
        check(&"\u{0661}".repeat(64)),
        malformed(Malformed::NotHex(1))
    );
    assert_eq!(
        check(&format!("0x{}", &good[2..])),
        malformed(Malformed::NotHex(2))
    );
}

#[test]
fn rejection_messages_never_repeat_the_token() {
    let now = at("2021-06-01T10:30:00Z");
    let good = mint(&key("secret-key"), VALUE, now).to_string();
    let bad = format!("{}zz", &good[..62]);
    let err = verify(&bad, &keys(&["secret-key"]), VALUE, now, &Window::default()).unwrap_err();
    assert!(!err.to_string().contains(&good[..62]));
}

#[test]
fn locate_finds_the_minting_hour_outside_the_window() {
    let minted_at = at("2021-06-01T03:10:00Z");
    let token = mint(&key("secret-key"), VALUE, minted_at).to_string();
    let keys = keys(&["secret-key"]);
    let now = at("2021-06-01T10:30:00Z");
    let found = locate(&token, &keys, VALUE, now, 24).unwrap().unwrap();
    assert_eq!(found.hour.to_string(), "2021-06-01T03:00:00.000Z");
    assert_eq!(locate(&token, &keys, "other", now, 24).unwrap(), None);
    assert_eq!(
        locate(&token, &keys, VALUE, at("2021-06-03T10:30:00Z"), 24).unwrap(),
        None
    );
}
