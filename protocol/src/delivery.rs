//! How a durable outbox of events is delivered, for every part that keeps one (the sidecar's
//! webhook relay, the recorder's job events): oldest first, in batches, each batch removed only
//! once the receiver took it. What to do after each POST is decided here, without I/O.
//!
//! A 400 or 413 means the receiver will never take the batch as it is. The batch is split in
//! halves until the one event the receiver refuses is found; that event is set aside (kept on
//! disk for an operator), so one bad event cannot hold up the events behind it. Everything
//! else (no answer, 5xx, 429, and 401 or 404, which a receiver not yet configured for the
//! sender gives) is retried: those batches will be welcome later.

/// What to do after a POST of queued events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The receiver has the batch: delete it.
    Ack,
    /// The receiver refuses this batch for good; send smaller ones to find the event it refuses.
    Split,
    /// The receiver refuses this single event for good (with this status): set it aside.
    SetAside(u16),
    /// The receiver is away or could not store it: wait, then send the same again.
    Retry,
}

/// The decision for a batch of `len` events after the POST ended with `answer`: `Ok` for a
/// 2xx, `Err(Some(status))` for any other status, `Err(None)` when no answer came.
pub fn judge(answer: Result<(), Option<u16>>, len: usize) -> Next {
    match answer {
        Ok(()) => Next::Ack,
        Err(Some(status @ (400 | 413))) if len <= 1 => Next::SetAside(status),
        Err(Some(400 | 413)) => Next::Split,
        Err(_) => Next::Retry,
    }
}

/// How many events the next batch may hold: the most the receiver takes, less while isolating
/// a refused event, growing back after each success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSizer {
    max: usize,
    limit: usize,
}

impl BatchSizer {
    /// Batches of up to `max` events (at least one).
    pub fn new(max: usize) -> BatchSizer {
        let max = max.max(1);
        BatchSizer { max, limit: max }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A batch of `len` was refused as a whole: halve it.
    pub fn split(&mut self, len: usize) {
        self.limit = (len / 2).max(1);
    }

    /// The receiver said it takes at most `max` events a batch: never send more again.
    pub fn cap(&mut self, max: usize) {
        self.max = max.clamp(1, self.max);
        self.limit = self.limit.min(self.max);
    }

    /// A batch was acknowledged (or a refused event set aside): grow back.
    pub fn succeeded(&mut self) {
        self.limit = self.limit.saturating_mul(2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_for_good_splits_or_sets_aside() {
        assert_eq!(judge(Ok(()), 7), Next::Ack);
        for status in [500, 502, 503, 401, 403, 404, 429] {
            assert_eq!(judge(Err(Some(status)), 5), Next::Retry, "{status}");
            assert_eq!(judge(Err(Some(status)), 1), Next::Retry, "{status}");
        }
        assert_eq!(judge(Err(None), 1), Next::Retry);
        assert_eq!(judge(Err(Some(400)), 5), Next::Split);
        assert_eq!(judge(Err(Some(413)), 2), Next::Split);
        assert_eq!(judge(Err(Some(400)), 1), Next::SetAside(400));
        assert_eq!(judge(Err(Some(413)), 1), Next::SetAside(413));
    }

    #[test]
    fn splitting_finds_one_event_then_grows_back() {
        let mut sizer = BatchSizer::new(100);
        assert_eq!(sizer.limit(), 100);
        // A refused batch of 100 halves down to the single refused event.
        let mut seen = Vec::new();
        while sizer.limit() > 1 {
            sizer.split(sizer.limit());
            seen.push(sizer.limit());
        }
        assert_eq!(seen, [50, 25, 12, 6, 3, 1]);
        sizer.split(1);
        assert_eq!(sizer.limit(), 1);
        for _ in 0..10 {
            sizer.succeeded();
        }
        assert_eq!(sizer.limit(), 100);
        // A short batch refused halves from its own length, not from the limit.
        sizer.split(9);
        assert_eq!(sizer.limit(), 4);
        assert_eq!(BatchSizer::new(0).limit(), 1);
    }

    #[test]
    fn a_receivers_cap_holds_through_growing_back() {
        let mut sizer = BatchSizer::new(100);
        sizer.cap(12);
        assert_eq!(sizer.limit(), 12);
        for _ in 0..5 {
            sizer.succeeded();
        }
        assert_eq!(sizer.limit(), 12);
        // Splitting under the cap still finds a single refused event.
        sizer.split(12);
        assert_eq!(sizer.limit(), 6);
        // A cap never raises the limit, and never goes below one.
        sizer.cap(500);
        assert_eq!(sizer.limit(), 6);
        sizer.cap(0);
        assert_eq!(sizer.limit(), 1);
    }
}
