//! V8's sample scaling, and its inverse.
//!
//! V8 samples on average one allocation per `interval` bytes and reports each sampled object of
//! `size` bytes as `round(1 / (1 - exp(-size / interval)))` objects (`ScaleSample` in
//! `sampling-heap-profiler.cc`); a `.heapprofile` sample's `size` is that count times `size`.
//! The file keeps neither the object's own size nor the interval, but pprof wants object counts,
//! so both are recovered here: a sample's size is the divisor of its scaled size that V8's rule
//! maps back onto it. The interval is the one (a power of two from 1 KiB to 128 MiB, which
//! covers V8's default 32 KiB and heapgate's 512 KiB) under which the most samples invert.
//! A few scaled sizes have two such divisors (`16 × 32769 = 24 × 21846` at 512 KiB); the
//! smaller object is taken, so object counts are estimates, as everything in a sampled profile
//! is. Byte totals are never estimated: they are V8's own numbers.

/// V8's scale factor for an object of `size` bytes sampled at `interval`.
fn scale(size: u64, interval: u64) -> f64 {
    1.0 / (1.0 - (-(size as f64) / interval as f64).exp())
}

/// V8's `ScaleSample(size, samples).count`: the objects `samples` sampled objects stand for.
pub(crate) fn scaled_count(size: u64, samples: u64, interval: u64) -> u64 {
    // Truncation after adding 0.5, as V8 does (the value is never negative).
    (samples as f64 * scale(size, interval) + 0.5) as u64
}

/// The object size whose one sample V8 reports as `scaled` bytes, if any.
pub(crate) fn object_size(scaled: u64, interval: u64) -> Option<u64> {
    if scaled == 0 || interval == 0 {
        return None;
    }
    let fits = |size: u64| size * scaled_count(size, 1, interval) == scaled;
    let mut best: Option<u64> = None;
    let mut d = 1u64;
    while d * d <= scaled {
        if scaled.is_multiple_of(d) {
            for size in [d, scaled / d] {
                if fits(size) && best.is_none_or(|b| size < b) {
                    best = Some(size);
                }
            }
        }
        d += 1;
    }
    best
}

/// The sampling interval that explains the most of `scaled` sizes (at least nine in ten of
/// them), or `None`.
pub(crate) fn infer_interval(scaled: &[u64]) -> Option<u64> {
    // A few hundred distinct sizes decide it; the rest cost time for nothing.
    let mut distinct: Vec<u64> = scaled.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let step = distinct.len().div_ceil(256).max(1);
    let probe: Vec<u64> = distinct.iter().step_by(step).copied().collect();
    if probe.is_empty() {
        return None;
    }
    let (interval, fitting) = (10..=27)
        .map(|bits| {
            let interval = 1u64 << bits;
            let fitting = probe
                .iter()
                .filter(|&&s| object_size(s, interval).is_some())
                .count();
            (interval, fitting)
        })
        // Large objects (count 1) fit every small interval; the largest interval that explains
        // as many samples is the one the small objects say.
        .max_by_key(|&(interval, fitting)| (fitting, interval))?;
    (fitting * 10 >= probe.len() * 9).then_some(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_v8_scaling() {
        for interval in [32 * 1024, 512 * 1024] {
            for size in [16u64, 32, 40, 56, 72, 128, 1024, 4096, 100_000, 2_000_000] {
                let scaled = size * scaled_count(size, 1, interval);
                let found = object_size(scaled, interval).expect("invertible");
                // The smaller of two candidates may be taken; it must reproduce the bytes.
                assert!(found <= size);
                assert_eq!(found * scaled_count(found, 1, interval), scaled);
            }
        }
        assert_eq!(object_size(524_304, 512 * 1024), Some(16));
        assert_eq!(object_size(0, 512 * 1024), None);
    }

    #[test]
    fn infers_the_interval_small_objects_say() {
        for interval in [32 * 1024u64, 512 * 1024] {
            let scaled: Vec<u64> = [16u64, 24, 32, 48, 64, 80, 200, 1 << 22]
                .iter()
                .map(|&s| s * scaled_count(s, 1, interval))
                .collect();
            assert_eq!(infer_interval(&scaled), Some(interval));
        }
        assert_eq!(infer_interval(&[]), None);
        // Sizes V8 cannot have reported at any interval.
        assert_eq!(infer_interval(&[3, 5, 7, 11]), None);
    }
}
