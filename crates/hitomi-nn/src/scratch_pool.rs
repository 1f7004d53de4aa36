//! Per-thread reuse of the kernels' scratch buffers: a buffer that is written before it is read
//! (a gemm's output, a transform's tiles) need not be zero-filled or freshly allocated on every
//! call. Fresh `vec![0f32; n]` scratch was ~9% of the samples of model B's batch-1 forward
//! (`memset`), besides an allocation per buffer per call.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// Buffers a thread keeps for reuse; beyond this the smallest is freed (a Winograd task holds
/// three at a time, and a `forward_rows` task one more for its output rows).
const KEPT_PER_THREAD: usize = 8;

/// Larger buffers (16 MiB; e.g. the channels-last output image of a 64-channel layer at 512 px)
/// are freed rather than kept, so a thread holds at most 128 MiB of spares; the kernels' usual
/// scratch is a few hundred KiB, and against a buffer that large its fresh zeroing is small.
const MAX_KEPT_FLOATS: usize = 1 << 22;

thread_local! {
    static SPARE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// `len` floats of a reused buffer, whose values are whatever an earlier user left (zeros where
/// the buffer is new): only for scratch that its user writes in full before reading it. Dropped,
/// the whole buffer goes back to the dropping thread's spares.
pub(crate) struct ScratchBuf {
    buf: Vec<f32>,
    len: usize,
}

impl ScratchBuf {
    /// Takes the smallest spare buffer of this thread that holds `len` floats, else the largest
    /// one, grown (only the growth is zero-filled, once: a buffer goes back at its full length).
    pub(crate) fn take(len: usize) -> Self {
        if len == 0 {
            // No spare is held out of reuse for nothing (the weight gradient asks for no V when
            // the forward kept its own).
            return Self { buf: Vec::new(), len: 0 };
        }
        let found = SPARE.with_borrow_mut(|spare| {
            let fits = (0..spare.len()).filter(|&i| spare[i].len() >= len).min_by_key(|&i| spare[i].len());
            let pick = fits.or_else(|| (0..spare.len()).max_by_key(|&i| spare[i].len()));
            pick.map(|i| spare.swap_remove(i))
        });
        let mut buf = found.unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Self { buf, len }
    }
}

impl Deref for ScratchBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl DerefMut for ScratchBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for ScratchBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() || buf.len() > MAX_KEPT_FLOATS {
            return;
        }
        // `try_with`: a buffer dropped while its thread's spares are being torn down is freed.
        let _ = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            spare.push(buf);
            if spare.len() > KEPT_PER_THREAD {
                let smallest = (0..spare.len()).min_by_key(|&i| spare[i].len()).expect("not empty");
                spare.swap_remove(smallest);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_at_the_length_asked_for() {
        let mut a = ScratchBuf::take(1000);
        assert_eq!(a.len(), 1000);
        assert!(a.iter().all(|&x| x == 0.0), "a new buffer starts as zeros");
        a[999] = 7.0;
        let ptr = a.as_ptr();
        drop(a);
        // The smallest spare that fits is handed out again, shortened, its values kept.
        let b = ScratchBuf::take(10);
        assert_eq!((b.len(), b.as_ptr()), (10, ptr));
        drop(b);
        // Taken back at the full length, it still holds what the first user wrote.
        let c = ScratchBuf::take(1000);
        assert_eq!((c.as_ptr(), c[999]), (ptr, 7.0));
        drop(c);
        // Larger than every spare: the largest is grown, its new part zeroed.
        let d = ScratchBuf::take(5000);
        assert_eq!(d.len(), 5000);
        assert!(d[..999].iter().all(|&x| x == 0.0) && d[999] == 7.0 && d[1000..].iter().all(|&x| x == 0.0));
        drop(d);
        // An empty buffer takes no spare.
        let before = SPARE.with_borrow(|s| s.len());
        let none = ScratchBuf::take(0);
        assert_eq!((none.len(), SPARE.with_borrow(|s| s.len())), (0, before));
        drop(none);
        let many: Vec<ScratchBuf> = (0..2 * KEPT_PER_THREAD).map(|_| ScratchBuf::take(3)).collect();
        drop(many);
        assert_eq!(SPARE.with_borrow(|s| s.len()), KEPT_PER_THREAD);
        assert!(SPARE.with_borrow(|s| s.iter().any(|v| v.len() == 5000)), "the largest is kept");
        // Too large to keep (the largest spare, grown): freed when dropped.
        drop(ScratchBuf::take(MAX_KEPT_FLOATS + 1));
        assert_eq!(SPARE.with_borrow(|s| s.len()), KEPT_PER_THREAD - 1);
        assert!(SPARE.with_borrow(|s| s.iter().all(|v| v.len() == 3)));
    }
}
