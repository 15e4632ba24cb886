//! The heartbeat of snapshot streams: leading whitespace while V8 builds the snapshot (set with
//! `--keepalive`; not HTTP keep-alive, which is about reusing connections).
//!
//! V8 spends about 70% of a snapshot building it before the first byte exists: ~20 s of silence
//! at 200 MiB of heap, minutes for larger heaps, while load balancers cut idle connections (AWS
//! ALB after 60 s by default). JSON allows whitespace before the top-level value, so until the
//! first real chunk arrives the stream emits a single space every `every`; the file still parses.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Interval, MissedTickBehavior};

use crate::source::{ChunkStream, SourceError};

/// Wraps `inner`, emitting `b" "` every `every` until `inner` yields its first item.
pub(crate) struct Heartbeat {
    inner: ChunkStream,
    ticker: Option<Interval>,
}

impl Heartbeat {
    pub(crate) fn new(inner: ChunkStream, every: Duration) -> Heartbeat {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Heartbeat {
            inner,
            ticker: Some(ticker),
        }
    }
}

impl Stream for Heartbeat {
    type Item = Result<Bytes, SourceError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = self.inner.as_mut().poll_next(cx) {
            self.ticker = None;
            return Poll::Ready(item);
        }
        if let Some(ticker) = self.ticker.as_mut()
            && ticker.poll_tick(cx).is_ready()
        {
            return Poll::Ready(Some(Ok(Bytes::from_static(b" "))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_until_the_first_chunk_then_none() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, SourceError>>(4);
        let inner = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut stream = Heartbeat::new(Box::pin(inner), Duration::from_secs(15));
        let producer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(40)).await;
            tx.send(Ok(Bytes::from_static(b"{\"snapshot\":1}")))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(100)).await;
            tx.send(Ok(Bytes::from_static(b"tail"))).await.unwrap();
        });
        let mut items = Vec::new();
        while let Some(item) = stream.next().await {
            items.push(item.unwrap());
        }
        producer.await.unwrap();
        // Ticks at 15 s and 30 s, the chunk at 40 s, then no spaces during the 100 s gap.
        assert_eq!(items, [&b" "[..], b" ", b"{\"snapshot\":1}", b"tail"]);
    }
}
