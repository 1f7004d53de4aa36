//! The batch loader: a seeded sample order per epoch, and a background thread that builds the next
//! batches (a prefetch queue of two) while the model trains on the current one.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use hitomi_core::rng::permutation;
use hitomi_core::SeededRng;

/// Builds a batch from sample indices and the epoch (the epoch keys per-sample augmentation).
pub type MakeBatch<B> = Arc<dyn Fn(&[usize], usize) -> Result<B> + Send + Sync>;

/// Batches built ahead of the consumer; with the one being built that is up to three in memory.
const PREFETCH: usize = 2;

/// Splits `n` samples into batches in a seeded per-epoch order.
#[derive(Clone, Debug, PartialEq)]
pub struct Loader {
    n: usize,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    seed: u64,
}

impl Loader {
    /// `drop_last` leaves out a final short batch (keeps batch statistics comparable). A
    /// `batch_size` of 0 gives no batches.
    pub fn new(n: usize, batch_size: usize, shuffle: bool, drop_last: bool, seed: u64) -> Self {
        Self { n, batch_size, shuffle, drop_last, seed }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn batches_per_epoch(&self) -> usize {
        match self.batch_size {
            0 => 0,
            b if self.drop_last => self.n / b,
            b => self.n.div_ceil(b),
        }
    }

    /// The order samples are visited in `epoch`: a permutation from
    /// `SeededRng::derive(seed, &[epoch])` when shuffling, `0..n` otherwise.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        if self.shuffle {
            permutation(self.n, &mut SeededRng::derive(self.seed, &[epoch as u64]))
        } else {
            (0..self.n).collect()
        }
    }

    /// The sample indices of batch `batch` of an epoch whose order is `order`.
    fn batch_of<'a>(&self, order: &'a [usize], batch: usize) -> &'a [usize] {
        let start = batch * self.batch_size;
        &order[start..(start + self.batch_size).min(self.n)]
    }

    /// The sample indices of every batch of `epoch`, in order.
    pub fn epoch_batches(&self, epoch: usize) -> Vec<Vec<usize>> {
        let order = self.epoch_order(epoch);
        (0..self.batches_per_epoch()).map(|b| self.batch_of(&order, b).to_vec()).collect()
    }

    /// Batches `start_batch..batches_per_epoch()` of `epoch`, each built by `make(indices, epoch)` on
    /// a background thread up to two batches ahead. Starting at `start_batch` yields exactly the
    /// batches an uninterrupted epoch would have from there on (resume mid-epoch).
    ///
    /// Items are `(batch index, batch)` in order. An error from `make` (or a panic in it) is yielded
    /// once and ends the iteration. Dropping the iterator stops the thread after the batch it is
    /// building.
    pub fn iter<B: Send + 'static>(&self, epoch: usize, start_batch: usize, make: MakeBatch<B>) -> BatchIter<B> {
        let order = self.epoch_order(epoch);
        let this = self.clone();
        let end = self.batches_per_epoch();
        let (tx, rx) = sync_channel::<(usize, Result<B>)>(PREFETCH);
        let spawned = std::thread::Builder::new().name("hitomi-loader".into()).spawn(move || {
            for b in start_batch..end {
                let batch = make(this.batch_of(&order, b), epoch)
                    .with_context(|| format!("building batch {} of epoch {}", b, epoch + 1));
                let failed = batch.is_err();
                // A send error means the consumer is gone: stop quietly.
                if tx.send((b, batch)).is_err() || failed {
                    return;
                }
            }
        });
        let remaining = end.saturating_sub(start_batch);
        match spawned {
            Ok(handle) => BatchIter { rx: Some(rx), handle: Some(handle), remaining, failed: None },
            Err(e) => BatchIter {
                rx: None,
                handle: None,
                remaining,
                failed: Some(anyhow!("cannot start the batch loader thread: {e}")),
            },
        }
    }
}

/// Prefetched batches of one epoch; see [`Loader::iter`].
pub struct BatchIter<B> {
    rx: Option<Receiver<(usize, Result<B>)>>,
    handle: Option<JoinHandle<()>>,
    /// Batches still to come if nothing fails (for `size_hint`).
    remaining: usize,
    /// An error to yield before ending (a thread that could not start).
    failed: Option<anyhow::Error>,
}

impl<B> BatchIter<B> {
    /// Ends the iteration: drops the receiver (waking a producer blocked on a full queue) and joins
    /// the thread. Returns the panic message if the thread panicked.
    fn finish(&mut self) -> Option<String> {
        self.rx = None;
        self.remaining = 0;
        let handle = self.handle.take()?;
        handle.join().err().map(|p| {
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into())
        })
    }
}

impl<B> Iterator for BatchIter<B> {
    type Item = Result<(usize, B)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.finish();
            return Some(Err(e));
        }
        let msg = self.rx.as_ref()?.recv();
        match msg {
            Ok((b, Ok(batch))) => {
                self.remaining = self.remaining.saturating_sub(1);
                Some(Ok((b, batch)))
            }
            Ok((_, Err(e))) => {
                self.finish();
                Some(Err(e))
            }
            // The producer is gone: either it finished every batch or it panicked.
            Err(_) => self.finish().map(|p| Err(anyhow!("the batch loader thread panicked: {p}"))),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining + usize::from(self.failed.is_some())))
    }
}

impl<B> Drop for BatchIter<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ids() -> MakeBatch<Vec<usize>> {
        Arc::new(|idx: &[usize], _epoch: usize| Ok(idx.to_vec()))
    }

    #[test]
    fn epoch_orders_are_seeded_permutations() {
        let l = Loader::new(100, 8, true, false, 42);
        let (a, b) = (l.epoch_order(0), l.epoch_order(1));
        for o in [&a, &b] {
            let mut s = o.clone();
            s.sort();
            assert_eq!(s, (0..100).collect::<Vec<_>>());
        }
        assert_ne!(a, b);
        assert_eq!(a, Loader::new(100, 8, true, false, 42).epoch_order(0));
        assert_ne!(a, Loader::new(100, 8, true, false, 43).epoch_order(0));
        assert_eq!(Loader::new(5, 2, false, false, 42).epoch_order(3), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn batch_counts_follow_drop_last() {
        assert_eq!(Loader::new(10, 3, true, true, 0).batches_per_epoch(), 3);
        assert_eq!(Loader::new(10, 3, true, false, 0).batches_per_epoch(), 4);
        assert_eq!(Loader::new(9, 3, true, false, 0).batches_per_epoch(), 3);
        assert_eq!(Loader::new(2, 3, true, true, 0).batches_per_epoch(), 0);
        assert_eq!(Loader::new(10, 0, true, false, 0).batches_per_epoch(), 0);
        let last = Loader::new(10, 3, false, false, 0).epoch_batches(0);
        assert_eq!(last.last().unwrap(), &vec![9]);
    }

    #[test]
    fn iter_yields_the_epoch_in_order_and_resumes() {
        let l = Loader::new(103, 10, true, true, 7);
        let full: Vec<(usize, Vec<usize>)> = l.iter(2, 0, ids()).map(|r| r.unwrap()).collect();
        assert_eq!(full.len(), 10);
        assert_eq!(full.iter().map(|(b, _)| *b).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        let flat: Vec<usize> = full.iter().flat_map(|(_, v)| v.clone()).collect();
        assert_eq!(flat, l.epoch_order(2)[..100]);
        let resumed: Vec<(usize, Vec<usize>)> = l.iter(2, 6, ids()).map(|r| r.unwrap()).collect();
        assert_eq!(resumed, full[6..]);
        assert_eq!(l.iter(2, 10, ids()).count(), 0);
        assert_eq!(l.iter(2, 99, ids()).count(), 0);
    }

    #[test]
    fn make_sees_the_epoch() {
        let l = Loader::new(4, 2, false, false, 0);
        let f: MakeBatch<usize> = Arc::new(|_: &[usize], e: usize| Ok(e));
        let got: Vec<usize> = l.iter(5, 0, f).map(|r| r.unwrap().1).collect();
        assert_eq!(got, vec![5, 5]);
    }

    #[test]
    fn an_error_is_yielded_once_and_ends_the_epoch() {
        let l = Loader::new(50, 5, false, false, 0);
        let f: MakeBatch<usize> =
            Arc::new(|idx: &[usize], _| if idx[0] == 15 { anyhow::bail!("bad sample 15") } else { Ok(idx[0]) });
        let items: Vec<Result<(usize, usize)>> = l.iter(0, 0, f).collect();
        assert_eq!(items.len(), 4);
        let e = format!("{:#}", items[3].as_ref().unwrap_err());
        assert!(e.contains("bad sample 15") && e.contains("batch 3"), "{e}");
    }

    #[test]
    fn a_panic_becomes_an_error() {
        let l = Loader::new(10, 5, false, false, 0);
        let f: MakeBatch<usize> = Arc::new(|idx: &[usize], _| if idx[0] == 5 { panic!("boom") } else { Ok(idx[0]) });
        let items: Vec<Result<(usize, usize)>> = l.iter(0, 0, f).collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].as_ref().unwrap_err().to_string().contains("boom"));
    }

    #[test]
    fn dropping_the_iterator_stops_the_thread() {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = built.clone();
        let l = Loader::new(10_000, 1, true, false, 0);
        let f: MakeBatch<usize> = Arc::new(move |idx: &[usize], _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(idx[0])
        });
        let mut it = l.iter(0, 0, f);
        it.next().unwrap().unwrap();
        drop(it);
        // The thread was joined in drop, so the count is final: the one taken, the queue, the one
        // in progress, never the whole epoch.
        let n = built.load(Ordering::SeqCst);
        assert!(n <= 1 + PREFETCH + 1, "{n} batches built");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(built.load(Ordering::SeqCst), n);
    }
}
