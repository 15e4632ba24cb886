//! Token parsing and verification on arbitrary input: never panics, malformed input is
//! `Malformed`, a minted token always verifies, and the signed payload is JSON that round-trips
//! the value exactly (the byte-compatibility invariant with `JSON.stringify`).
#![no_main]

use chrono::{DateTime, Utc};
use heapgate_token::{Hour, Key, Keys, Rejection, Window, decode, mint, payload, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (presented, value) = text.split_once('\u{1}').unwrap_or((text, "heapdump"));
    let secret = value.as_bytes().get(..8).filter(|s| !s.is_empty()).unwrap_or(b"fuzz-key");
    let key = Key::new(secret).expect("non-empty secret");
    let keys = Keys::new(vec![key.clone()]).expect("one key");
    // Any instant chrono can represent from the first 8 bytes.
    let seconds = data.iter().take(8).fold(0i64, |acc, &b| acc.wrapping_mul(256).wrapping_add(i64::from(b)));
    let now = DateTime::<Utc>::from_timestamp(seconds.rem_euclid(253_402_300_799), 0).unwrap_or_default();
    let window = Window::default();

    match verify(presented, &keys, value, now, &window) {
        Ok(_) | Err(Rejection::NoMatch) => assert!(decode(presented).is_ok()),
        Err(Rejection::Malformed(_)) => assert!(decode(presented).is_err()),
    }

    let token = mint(&key, value, now);
    let verified = verify(&token.to_string(), &keys, value, now, &window).expect("own token verifies");
    assert_eq!(verified.hour, Hour::containing(now));

    let signed = payload(Hour::containing(now), value);
    let parsed: serde_json::Value = serde_json::from_str(&signed).expect("payload is JSON");
    assert_eq!(parsed["value"].as_str(), Some(value));
    assert_eq!(parsed["date"].as_str(), Some(Hour::containing(now).to_string().as_str()));
});
