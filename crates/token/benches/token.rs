//! ns/op for minting and verifying; compare with `openssl speed -hmac sha256 -bytes 60`.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use heapgate_token::{Key, Keys, Window, mint, verify};

fn token(c: &mut Criterion) {
    let now: DateTime<Utc> = "2021-06-01T10:15:00Z".parse().unwrap_or_default();
    let key = Key::new(b"a-production-secret-of-32-bytes!").unwrap_or_else(|_| unreachable!());
    let keys = Keys::new(vec![key.clone()]).unwrap_or_else(|_| unreachable!());
    let window = Window::default();
    let presented = mint(&key, "heapdump", now).to_string();

    c.bench_function("mint", |b| {
        b.iter(|| mint(black_box(&key), black_box("heapdump"), now));
    });
    c.bench_function("verify (current hour)", |b| {
        b.iter(|| {
            verify(
                black_box(&presented),
                &keys,
                black_box("heapdump"),
                now,
                &window,
            )
        });
    });
    let wrong = "0".repeat(64);
    c.bench_function("verify (no match: all hours tried)", |b| {
        b.iter(|| {
            verify(
                black_box(&wrong),
                &keys,
                black_box("heapdump"),
                now,
                &window,
            )
        });
    });
}

criterion_group!(benches, token);
criterion_main!(benches);
