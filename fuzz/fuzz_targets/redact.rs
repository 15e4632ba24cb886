//! The streaming redactor on arbitrary bytes: never a panic, and the same answer however the
//! input is split into pieces (the proxy feeds it whatever chunks the inspector sends).
#![no_main]

use heapgate_snapshot::Redactor;
use libfuzzer_sys::fuzz_target;

fn run(pieces: &[&[u8]]) -> Option<Vec<u8>> {
    let mut redactor = Redactor::new();
    let mut out = Vec::new();
    for piece in pieces {
        redactor.feed(piece, &mut out).ok()?;
    }
    redactor.finish().ok()?;
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let at = usize::from(split) % (data.len() + 1);
    let whole = run(&[data]);
    let (a, b) = data.split_at(at);
    assert_eq!(whole, run(&[a, b]), "the split at {at} changed the answer");
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(whole, run(&bytewise), "byte-by-byte feeding changed the answer");
});
