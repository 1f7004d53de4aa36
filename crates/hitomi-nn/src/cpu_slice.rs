//! Access to the data of a CPU tensor inside a `CustomOp`, and the fresh output buffers our
//! kernels fill in parallel.

use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Tensor};
use rayon::prelude::*;

/// The f32 data of a contiguous tensor; `what` names the tensor in the error (e.g. "conv2d input").
pub(crate) fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else { candle_core::bail!("{what}: f32 tensor expected, got {:?}", s.dtype()) };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("{what}: contiguous tensor expected"),
    }
}

/// Whether our CPU kernels take this tensor (f32 on the CPU); other devices and dtypes go to
/// candle's own ops.
pub(crate) fn cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Appends `len` floats to the empty `out`, computed in parallel: chunk i (`chunk` floats, the
/// last one possibly shorter) takes the values `values(i)` yields, which must be at least as many.
/// Unlike `vec![0f32; len]` and a parallel fill, nothing is written twice, and nothing on the
/// calling thread alone: zeroing activations there, while the pool idled, was ~3% of the samples
/// of model A's training step, ~5% of its time.
pub(crate) fn par_fill<I: Iterator<Item = f32>>(
    out: &mut Vec<f32>,
    len: usize,
    chunk: usize,
    values: impl Fn(usize) -> I + Sync + Send,
) {
    assert!(out.is_empty(), "par_fill: the output must start empty");
    out.reserve_exact(len);
    out.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(i, slots)| {
        let written = slots.iter_mut().zip(values(i)).map(|(slot, v)| slot.write(v)).count();
        assert_eq!(written, slots.len(), "par_fill: chunk {i} got {written} of {} values", slots.len());
    });
    // SAFETY: the capacity is at least `len`, and every chunk checked that each of its slots was
    // written (a panic above leaves the length at 0).
    unsafe { out.set_len(len) };
}

/// `len` floats computed in parallel chunks as in `par_fill`.
pub(crate) fn par_collect<I: Iterator<Item = f32>>(
    len: usize,
    chunk: usize,
    values: impl Fn(usize) -> I + Sync + Send,
) -> Vec<f32> {
    let mut out = Vec::new();
    par_fill(&mut out, len, chunk, values);
    out
}

/// `len` zeros, written in parallel chunks (for kernels that accumulate into their output or
/// hand it to a gemm): `vec![0f32; len]` zeroes on the calling thread alone.
pub(crate) fn par_zeros(len: usize, chunk: usize) -> Vec<f32> {
    par_collect(len, chunk, |_| std::iter::repeat(0f32))
}

/// An output buffer that parallel tasks fill at disjoint offsets, for layouts where a task's
/// share is not one contiguous chunk (e.g. a band of rows in every channel plane).
pub(crate) struct SharedOut<'a> {
    ptr: *mut MaybeUninit<f32>,
    len: usize,
    _buf: std::marker::PhantomData<&'a mut [MaybeUninit<f32>]>,
}

// SAFETY: tasks sharing it write disjoint ranges (`write`'s contract), and it borrows the
// buffer mutably for its whole life, so nothing else reads or writes it meanwhile.
unsafe impl Send for SharedOut<'_> {}
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    pub(crate) fn new(buf: &'a mut [MaybeUninit<f32>]) -> Self {
        Self { ptr: buf.as_mut_ptr(), len: buf.len(), _buf: std::marker::PhantomData }
    }

    /// Copies `src` to `offset..offset + src.len()`.
    ///
    /// # Safety
    /// No other task writes that range while the buffer is shared.
    pub(crate) unsafe fn write(&self, offset: usize, src: &[f32]) {
        assert!(offset + src.len() <= self.len, "SharedOut: write past the end");
        // SAFETY: in bounds (checked), and the caller keeps the range to itself; `src` cannot
        // alias the buffer, which is borrowed mutably.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset).cast::<f32>(), src.len()) };
    }
}

/// Chunk i of `chunk` floats of `x` (the last one possibly shorter).
pub(crate) fn chunk_of(x: &[f32], i: usize, chunk: usize) -> &[f32] {
    &x[i * chunk..((i + 1) * chunk).min(x.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_fill_writes_every_chunk_in_place() {
        let x: Vec<f32> = (0..1000).map(|v| v as f32).collect();
        let got = par_collect(x.len(), 64, |i| chunk_of(&x, i, 64).iter().map(|v| v * 2.0));
        assert_eq!(got, x.iter().map(|v| v * 2.0).collect::<Vec<_>>());
        let mut out = Vec::with_capacity(1003);
        par_fill(&mut out, 1000, 7, |_| std::iter::repeat(1f32));
        out.extend([5.0, 6.0, 7.0]);
        assert_eq!(out.len(), 1003);
        assert!(out[..1000].iter().all(|&v| v == 1.0) && out[1000..] == [5.0, 6.0, 7.0]);
        assert_eq!(par_zeros(100, 9), vec![0f32; 100]);
    }

    /// Two tasks fill alternate runs of one buffer; a write past its end panics.
    #[test]
    fn shared_out_takes_disjoint_runs_from_parallel_tasks() {
        let mut buf = vec![MaybeUninit::new(f32::NAN); 12];
        let out = SharedOut::new(&mut buf);
        rayon::join(
            // SAFETY: runs 0, 2 and 4 of 2 floats here, runs 1, 3 and 5 in the other task.
            || (0..3).for_each(|r| unsafe { out.write(4 * r, &[r as f32; 2]) }),
            || (0..3).for_each(|r| unsafe { out.write(4 * r + 2, &[-(r as f32); 2]) }),
        );
        let past_end = std::panic::catch_unwind(|| unsafe { out.write(11, &[0.0, 0.0]) });
        assert!(past_end.is_err(), "a write past the end must panic");
        // SAFETY: every element was initialised (to NaN, then by the writes).
        let got: Vec<f32> = buf.iter().map(|v| unsafe { v.assume_init() }).collect();
        assert_eq!(got, [0.0, 0.0, -0.0, -0.0, 1.0, 1.0, -1.0, -1.0, 2.0, 2.0, -2.0, -2.0]);
    }

    #[test]
    #[should_panic(expected = "got 3 of 10 values")]
    fn par_fill_refuses_a_short_chunk() {
        par_collect(20, 10, |i| std::iter::repeat_n(1f32, if i == 1 { 3 } else { 10 }));
    }
}
