//! `--redact strings`: the snapshot's string values replaced while it streams (the rules and
//! what survives are in `heapgate_snapshot::Redactor`'s docs).
//!
//! Applied to the plain JSON before the heartbeat and compression. A stream the redactor cannot
//! follow (not V8's layout or order) fails the transfer, before the `strings` table is sent.

use bytes::Bytes;
use futures_util::StreamExt;
use heapgate_snapshot::Redactor;

use crate::source::{ChunkStream, SourceError};

/// `body` with its string values redacted.
pub(crate) fn redacted(body: ChunkStream) -> ChunkStream {
    futures_util::stream::unfold(Some((body, Redactor::new())), |state| async move {
        let (mut body, mut redactor) = state?;
        loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    let mut out = Vec::with_capacity(chunk.len());
                    if let Err(e) = redactor.feed(&chunk, &mut out) {
                        return Some((Err(failed(&e)), None));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), Some((body, redactor))));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    return match redactor.finish() {
                        Ok(stats) => {
                            tracing::info!(
                                strings = stats.strings,
                                redacted = stats.redacted,
                                shared_kept = stats.shared_kept,
                                "snapshot redacted"
                            );
                            None
                        }
                        Err(e) => Some((Err(failed(&e)), None)),
                    };
                }
            }
        }
    })
    .boxed()
}

fn failed(e: &heapgate_snapshot::RedactError) -> SourceError {
    tracing::warn!(error = %e, "cannot redact the snapshot; aborting the transfer");
    SourceError::Failed(format!("redaction: {e}"))
}
