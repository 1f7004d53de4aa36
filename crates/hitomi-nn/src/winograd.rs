//! Winograd convolution for 3x3, stride-1, undilated kernels (Lavin & Gray 2016), F(2x2, 3x3) and
//! F(4x4, 3x3): each m x m block of outputs comes from an (m + 2) x (m + 2) input tile with (m + 2)^2
//! multiplies per (input, output) channel pair instead of 9 m^2, i.e. 2.25x (m = 2) or 4x (m = 4)
//! fewer than im2col + gemm. Per tile the input is transformed, V = B^T d B; per channel pair the
//! kernel, U = G g G^T; then for each of the T = (m + 2)^2 tile positions t a gemm
//! M_t (tiles, C_out) = V_t (tiles, C_in) x U_t (C_in, C_out); and each output block is
//! Y = A^T M A. F(2x2) only adds, subtracts and halves, so it stays within float rounding of the
//! direct convolution; F(4x4)'s constants (up to 8 and 1/24) cost a few more bits: on the test
//! shapes below its largest error is 1.6-4.4e-6 of the largest output (F(2x2): 3-7e-7).
//!
//! The weight gradient of such a layer reuses the input transform: dw = G^T [sum over tiles of
//! (B^T d B) ⊙ (A dY A^T)] G (`weight_grad`), one deep gemm per tile position.
//!
//! Tiles are kept channels-last (a tile's T values are T runs over the channels), so every
//! transform step is a loop over channels that vectorises; the image is transposed to (H, W, C)
//! once on the way in and the output back to (C, H, W) as blocks are written.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use crate::conv_op::{gcd, gemm_threads, matmul, Epilogue};
use crate::cpu_slice::SharedOut;
use crate::scratch_pool::ScratchBuf;

/// Bound on the floats of V per gemm block (tiles x C_in x T): 256 KiB, so a block's V and M stay
/// in the core's cache while its gemms are not tiny.
const V_FLOATS_PER_BLOCK: usize = 65_536;
/// The weight gradient's blocks are deeper: each of its gemms accumulates into the whole
/// (C_in, C_out) product of a tile position, which a shallow gemm re-reads for few products.
/// Against 1x, 2x was as fast or faster on the benchmark's layers (e.g. B's 128 -> 128 at 16 px,
/// batch 16: 8.3 -> 6.5 ms), 4x slower on A's 32 -> 32 at 28 px (5.6 -> 6.7).
const WGRAD_V_FLOATS_PER_BLOCK: usize = 2 * V_FLOATS_PER_BLOCK;
/// The weight gradient's batch is split into (at most) this many partial sums, added in order.
/// Four is what the 2-thread timings above used (two tasks per thread); each task keeps a
/// (T, C_in, C_out) accumulator, so more would cost memory and a longer final sum.
const WGRAD_TASKS: usize = 4;

/// The output block side m of F(m x m, 3 x 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tile {
    /// F(2x2, 3x3): 4x4 input tiles, 16 gemms.
    F2,
    /// F(4x4, 3x3): 6x6 input tiles, 36 gemms with 1.78x fewer multiplies than F2's in all.
    F4,
}

impl Tile {
    /// Output block side m.
    fn m(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F4 => 4,
        }
    }

    /// Tile positions T = (m + 2)^2.
    fn positions(self) -> usize {
        (self.m() + 2) * (self.m() + 2)
    }
}

/// One 3x3 stride-1 convolution of x (B, C_in, H, W) with padding p -> (B, C_out, Ho, Wo).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Winograd3x3 {
    b: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    pad: usize,
    ho: usize,
    wo: usize,
    tile: Tile,
    /// Tile rows and columns: ceil(Ho / m), ceil(Wo / m).
    th: usize,
    tw: usize,
}

/// Per-task scratch: the padded image channels-last (Hp, Wp, C_in), the transformed tiles
/// V (T, n, C_in), the gemm results M (T, n, C_out), and one output image channels-last
/// (Ho Wo, C_out). V, M and the output image are written before they are read, so they come from
/// the thread's reused buffers; the plane's zero border must be zeros, so it is fresh.
struct Scratch {
    plane: Vec<f32>,
    v: ScratchBuf,
    m: ScratchBuf,
    out: ScratchBuf,
    /// Rows on their way channels-last (`rows_channels_last`); sized on first use.
    staging: Vec<f32>,
    /// Which of the task's images `plane` holds.
    loaded: Option<usize>,
    /// The first tile row `plane` and `out` hold: 0 for whole images, a task's first row for
    /// `forward_rows`.
    row0: usize,
}

/// Where `input_rows` writes a block's V: the task's scratch V (T, n, C_in), or the kept V of the
/// whole batch (`forward` with `keep`), whose plane t holds the block's tiles from `at` on.
enum VDest<'a, 'b> {
    Scratch,
    Kept { planes: &'a mut [&'b mut [MaybeUninit<f32>]], at: usize },
}

/// Receives V_t for one tile and LANES channels (t = the tile position).
trait VSink {
    fn put(&mut self, t: usize, lane: &Lane);
}

/// V_t at `v[t * vs..]`.
struct ScratchV<'a> {
    v: &'a mut [f32],
    vs: usize,
}

impl VSink for ScratchV<'_> {
    #[inline(always)]
    fn put(&mut self, t: usize, lane: &Lane) {
        self.v[t * self.vs..][..LANES].copy_from_slice(lane);
    }
}

/// V_t at `planes[t][at..]`.
struct KeptV<'a, 'b> {
    planes: &'a mut [&'b mut [MaybeUninit<f32>]],
    at: usize,
}

impl VSink for KeptV<'_, '_> {
    #[inline(always)]
    fn put(&mut self, t: usize, lane: &Lane) {
        self.planes[t][self.at..][..LANES].write_copy_of_slice(lane);
    }
}

/// One block's gemm results for the output transform: tile rows `block` (n tiles) of
/// M (T, n, C_out), and the bias and ReLU to apply.
struct Gemmed<'a> {
    block: Range<usize>,
    /// The first tile row the output buffer holds (`Scratch::row0`).
    row0: usize,
    n: usize,
    m: &'a [f32],
    ep: Option<Epilogue<'a>>,
}

impl Winograd3x3 {
    /// The geometries this path takes: 3x3, stride 1, dilation 1, and channel counts that are
    /// multiples of 8 (the transforms run 8 channels at a time; a stem's single input channel
    /// would also make the gemms depth 1).
    pub(crate) fn applies(kh: usize, kw: usize, stride: usize, dilation: usize, ci: usize, co: usize) -> bool {
        kh == 3
            && kw == 3
            && stride == 1
            && dilation == 1
            && ci.is_multiple_of(LANES)
            && co.is_multiple_of(LANES)
            && ci > 0
            && co > 0
    }

    /// Sizes as in `Dims`: ho = h + 2 pad - 2 (callers check the kernel fits).
    ///
    /// The tile is the one with fewer multiplies in all, F(2x2) on a tie: F(4x4) unless its tiles
    /// overhang a small output too far (2x2, 6x6). Against F(2x2), timings of single layers
    /// (batch 64 for model A's, 16 for model B's; medians of five alternating runs):
    /// 32->32 at 28 px 6.03 -> 5.23 ms, 64->64 at 14 px 4.25 -> 4.16 (4x4 tiles cover 16 px),
    /// 128->128 at 7 px 5.47 -> 4.32, 32->32 at 64 px 9.19 -> 6.67, 64->64 at 32 px 6.39 -> 4.53,
    /// 128->128 at 16 px 5.56 -> 4.30.
    pub(crate) fn new(b: usize, ci: usize, h: usize, w: usize, co: usize, pad: usize) -> Self {
        let (ho, wo) = (h + 2 * pad - 2, w + 2 * pad - 2);
        let multiplies = |t: Tile| t.positions() * ho.div_ceil(t.m()) * wo.div_ceil(t.m());
        let tile = if multiplies(Tile::F4) < multiplies(Tile::F2) { Tile::F4 } else { Tile::F2 };
        Self::with_tile(b, ci, h, w, co, pad, tile)
    }

    /// With the tile given.
    pub(crate) fn with_tile(b: usize, ci: usize, h: usize, w: usize, co: usize, pad: usize, tile: Tile) -> Self {
        let (ho, wo) = (h + 2 * pad - 2, w + 2 * pad - 2);
        let m = tile.m();
        Self { b, ci, h, w, co, pad, ho, wo, tile, th: ho.div_ceil(m), tw: wo.div_ceil(m) }
    }

    /// Padded plane sides: m th + 2 by m tw + 2 cover every tile (and are >= H + 2 pad, W + 2 pad).
    fn plane_sides(&self) -> (usize, usize) {
        (self.tile.m() * self.th + 2, self.tile.m() * self.tw + 2)
    }

    /// Tile rows per gemm block: V_FLOATS_PER_BLOCK / (T C_in) tiles, in whole rows, rounded up
    /// to a multiple of 6 tiles. The gemm crate's AVX2 f32 kernel takes the tiles 6 at a time
    /// (the output channels 16 at a time), and a remainder goes through a narrower kernel at a
    /// fraction of its speed: 56 tiles left 2 (x2x2 was 4% of model A's inference samples). At
    /// batch 64 (medians of 4 alternating runs) 32 -> 32 at 28 px 8 -> 12 rows 3.48 -> 3.22 ms,
    /// 64 -> 64 at 14 px 7 -> 9 rows 3.16 -> 3.03, 128 -> 128 at 7 px 7 -> 9 rows 3.37 -> 2.99;
    /// rounding down instead was faster at 28 px (3.10) but slower at 14 px (3.46).
    fn rows_per_block(&self) -> usize {
        let unit = 6 / gcd(self.tw, 6);
        self.rows_for(V_FLOATS_PER_BLOCK).next_multiple_of(unit)
    }

    /// Whole tile rows whose V holds at most `floats` floats (at least one row).
    fn rows_for(&self, floats: usize) -> usize {
        (floats / (self.tile.positions() * self.ci) / self.tw).max(1)
    }

    /// Whole images per task: enough for one block, and about two tasks per thread, since each
    /// task allocates its zeroed scratch (with a task per image, memset was ~5% of a layer's
    /// `perf` profile; end to end the change was within the host's noise).
    fn images_per_task(&self) -> usize {
        let for_block = self.rows_per_block() / self.th;
        let for_threads = self.b.div_ceil(2 * rayon::current_num_threads());
        for_block.max(for_threads).clamp(1, self.b)
    }

    fn scratch(&self) -> Scratch {
        let n = self.rows_per_block() * self.tw;
        let (hp, wp) = self.plane_sides();
        let t = self.tile.positions();
        Scratch {
            plane: vec![0f32; hp * wp * self.ci],
            v: ScratchBuf::take(t * n * self.ci),
            m: ScratchBuf::take(t * n * self.co),
            out: ScratchBuf::take(self.ho * self.wo * self.co),
            staging: Vec::new(),
            loaded: None,
            row0: 0,
        }
    }

    /// U (T, C_in, C_out) = G g G^T for every kernel g (3x3) of w (C_out, C_in, 3, 3), with
    /// G (m + 2, 3) as in `g_times` (F2) and `g6_times` (F4). Input channels run in parallel
    /// (on one thread, this was ~2% of model A's training profile, with the other core idle),
    /// each task writing its channel's T runs of C_out straight into U. Through a (C_in, T, C_out)
    /// buffer interleaved into U by a second parallel pass, the two passes' thread wake-ups and
    /// the copy were ~7% of the samples of model B's batch-1 forward.
    fn kernel_transform(&self, w: &[f32]) -> Vec<f32> {
        let (ci, co) = (self.ci, self.co);
        let a = self.tile.m() + 2;
        let g = |x: &[f32], y: &[f32], z: &[f32], out: &mut [f32]| match self.tile {
            Tile::F2 => g_times(x, y, z, out),
            Tile::F4 => g6_times(x, y, z, out),
        };
        let len = ci * a * a * co;
        let mut u: Vec<f32> = Vec::with_capacity(len);
        let dst = SharedOut::new(&mut u.spare_capacity_mut()[..len]);
        (0..ci).into_par_iter().for_each_init(
            || (vec![0f32; 9 * co], vec![0f32; 3 * a * co], vec![0f32; a * a * co]),
            |(taps, gg, ui), i| {
                // The nine taps of every output channel are gathered into nine runs over C_out,
                // and both steps of the transform are then element-wise over such runs, so they
                // vectorise. One 3x3 kernel at a time took ~1 ms for 128 x 128 kernels; this way
                // conv_timing's batch-64 forward of 128 -> 128 at 16 px went 6.6-6.9 -> 5.1-5.2 ms
                // and at 7 px 5.9-6.4 -> 5.2 ms (the input gradients alike).
                for o in 0..co {
                    for (k, &v) in w[(o * ci + i) * 9..][..9].iter().enumerate() {
                        taps[k * co + o] = v;
                    }
                }
                // G g by columns: gg[(j a + r) C_out..] is entry (r, j) for every output channel.
                for (j, col) in gg.chunks_exact_mut(a * co).enumerate() {
                    let tap = |r: usize| &taps[(3 * r + j) * co..][..co];
                    g(tap(0), tap(1), tap(2), col);
                }
                // (G g) G^T: ui[t C_out..] for the tile positions t = a r + j.
                for (r, row) in ui.chunks_exact_mut(a * co).enumerate() {
                    let entry = |j: usize| &gg[(a * j + r) * co..][..co];
                    g(entry(0), entry(1), entry(2), row);
                }
                for (t, run) in ui.chunks_exact(co).enumerate() {
                    // SAFETY: only the task of input channel i writes U's run (t, i).
                    unsafe { dst.write((t * ci + i) * co, run) };
                }
            },
        );
        // SAFETY: the tasks of the C_in channels wrote all T C_in runs of C_out floats.
        unsafe { u.set_len(len) };
        u
    }

    /// Floats of the whole batch's transformed input V (T, B th tw, C_in), as `forward` keeps it
    /// for `weight_grad`.
    pub(crate) fn kept_len(&self) -> usize {
        self.tile.positions() * self.b * self.th * self.tw * self.ci
    }

    /// x (B, C_in, H, W), w (C_out, C_in, 3, 3) -> out (B, C_out, Ho, Wo), with the epilogue
    /// (bias, ReLU) applied as each output block is written. A task takes whole images; within
    /// it, blocks of tile rows (running on across its images) go through transform, T gemms and
    /// inverse transform while V and M stay small. Every element of `out` is written, so it may
    /// come uninitialised: zero-filling it first was ~2.5% of the samples of a training step of
    /// model A.
    ///
    /// With `keep` (`kept_len` floats, written in full), each block's V is written there instead
    /// of into the task's scratch, tile position t of all tiles of the batch at (t, B th tw, C_in),
    /// so that `weight_grad` need not transform the input again.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        w: &[f32],
        epilogue: Option<Epilogue>,
        out: &mut [MaybeUninit<f32>],
        keep: Option<&mut [MaybeUninit<f32>]>,
    ) {
        let u = self.kernel_transform(w);
        let per_task = self.images_per_task();
        let (in_image, out_image) = (self.ci * self.h * self.w, self.co * self.ho * self.wo);
        let tasks = self.b.div_ceil(per_task);
        let threads = gemm_threads(tasks);
        let (ci, co, tw, t_all) = (self.ci, self.co, self.tw, self.tile.positions());
        // Each task's share of every kept plane t: its tiles are consecutive in each.
        let task_tiles = per_task * self.th * tw;
        let mut kept: Vec<Vec<&mut [MaybeUninit<f32>]>> = (0..tasks).map(|_| Vec::new()).collect();
        if let Some(keep) = keep {
            assert_eq!(keep.len(), self.kept_len(), "kept V has the wrong size");
            for plane in keep.chunks_exact_mut(self.b * self.th * tw * ci) {
                for (part, task) in plane.chunks_mut(task_tiles * ci).zip(kept.iter_mut()) {
                    task.push(part);
                }
            }
        }
        out.par_chunks_mut(per_task * out_image).zip(kept).enumerate().for_each_init(
            || self.scratch(),
            |s, (task, (y, mut kept))| {
                let images = y.len() / out_image;
                let xs = &x[task * per_task * in_image..][..images * in_image];
                s.loaded = None;
                let rows = images * self.th;
                for g0 in (0..rows).step_by(self.rows_per_block()) {
                    let block = g0..(g0 + self.rows_per_block()).min(rows);
                    let n = block.len() * tw;
                    // With kept planes, V is written there and the gemms read it there. Through
                    // the scratch and a copy, the copy was ~4% of model A's training samples;
                    // written in place, A's training step is as fast as before (the writes to the
                    // T far planes cost what the copy did) and B's 1.9% faster (79.4 -> 80.9
                    // img/s, medians of 5 alternating runs).
                    let at = g0 * tw * ci;
                    let dest = if kept.is_empty() { VDest::Scratch } else { VDest::Kept { planes: &mut kept, at } };
                    self.input_rows(xs, block.clone(), n, s, dest);
                    for t in 0..t_all {
                        let vt: &[f32] = match kept.get(t) {
                            None => &s.v[t * n * ci..][..n * ci],
                            Some(plane) => {
                                let part = &plane[at..][..n * ci];
                                // SAFETY: `input_rows` has just written every float of this
                                // block's V_t there (all n tiles, all C_in channels).
                                unsafe { std::slice::from_raw_parts(part.as_ptr().cast::<f32>(), part.len()) }
                            }
                        };
                        let ut = &u[t * ci * co..(t + 1) * ci * co];
                        let mt = &mut s.m[t * n * co..(t + 1) * n * co];
                        matmul(n, co, ci, mt, false, vt, ci, 1, ut, co, 1, threads);
                    }
                    let job = Gemmed { block, row0: 0, n, m: &s.m, ep: epilogue };
                    self.output_rows(job, &mut s.out, y);
                }
            },
        );
    }

    /// `forward` for a batch below the thread count (batch-1 latency): each image's tile rows are
    /// split over about two tasks per thread; a task loads only the input rows its tiles read,
    /// runs the T gemms single-threaded and writes its output rows (C_out, rows Wo) into place.
    /// Together the tasks write every element of `out`, which may come uninitialised.
    pub(crate) fn forward_rows(&self, x: &[f32], w: &[f32], epilogue: Option<Epilogue>, out: &mut [MaybeUninit<f32>]) {
        let u = self.kernel_transform(w);
        let (ci, co, m, t_all) = (self.ci, self.co, self.tile.m(), self.tile.positions());
        let (in_image, plane) = (ci * self.h * self.w, self.ho * self.wo);
        let wp = self.plane_sides().1;
        let per_task = self.th.div_ceil(2 * rayon::current_num_threads()).clamp(1, self.rows_per_block());
        let blocks: Vec<Range<usize>> =
            (0..self.th).step_by(per_task).map(|t0| t0..(t0 + per_task).min(self.th)).collect();
        for (xb, yb) in x.chunks_exact(in_image).zip(out.chunks_exact_mut(co * plane)) {
            let yb = SharedOut::new(yb);
            blocks.par_iter().for_each(|rows| {
                let n = rows.len() * self.tw;
                let mut s = Scratch {
                    plane: vec![0f32; (m * rows.len() + 2) * wp * ci],
                    v: ScratchBuf::take(t_all * n * ci),
                    m: ScratchBuf::take(t_all * n * co),
                    out: ScratchBuf::take(m * rows.len() * self.wo * co),
                    staging: Vec::new(),
                    // Filled just below with this task's rows only (the loader is skipped).
                    loaded: Some(0),
                    row0: rows.start,
                };
                // Padded rows m t0 .. m t1 + 2 are the input rows its tiles read; those
                // outside the image stay zero.
                let iy0 = (m * rows.start).saturating_sub(self.pad);
                let iy1 = (m * rows.end + 2).saturating_sub(self.pad).min(self.h);
                if iy0 < iy1 {
                    let dst = &mut s.plane[((iy0 + self.pad - m * rows.start) * wp + self.pad) * ci..];
                    let shape = (ci, self.h, self.w);
                    rows_channels_last(xb, shape, iy0..iy1, &mut s.staging, dst, wp * ci);
                }
                self.input_rows(xb, rows.clone(), n, &mut s, VDest::Scratch);
                for t in 0..t_all {
                    let (vt, ut) = (&s.v[t * n * ci..][..n * ci], &u[t * ci * co..][..ci * co]);
                    matmul(n, co, ci, &mut s.m[t * n * co..][..n * co], false, vt, ci, 1, ut, co, 1, 1);
                }
                let job = Gemmed { block: rows.clone(), row0: rows.start, n, m: &s.m, ep: epilogue };
                self.output_rows::<f32>(job, &mut s.out, &mut []);
                let np = ((m * rows.end).min(self.ho) - m * rows.start) * self.wo;
                let mut part = ScratchBuf::take(co * np);
                transpose(&s.out, co, &mut part, np, np, co);
                // Each task places its own rows: copied in after the parallel pass, on one
                // thread, they left the other core idle (model B's batch-1 latency 5.47 ->
                // 5.17 ms, medians of 5 alternating runs).
                let start = m * rows.start * self.wo;
                for (c, run) in part.chunks_exact(np).enumerate() {
                    // SAFETY: the tasks' row ranges are disjoint, so are these runs.
                    unsafe { yb.write(c * plane + start, run) };
                }
            });
        }
    }

    /// dw (C_out, C_in, 3, 3) of this convolution from x (B, C_in, H, W) and dy (B, C_out, Ho, Wo).
    /// dw is linear in the same tile products as the forward: with V = B^T d B per input tile and
    /// Q = A dY A^T per m x m block of dy (zero past the output's edge),
    /// dw = G^T [sum over tiles of V ⊙ Q] G, so per tile position t one gemm accumulates
    /// W_t (C_in, C_out) += V_t^T (C_in, n) Q_t (n, C_out) over blocks of n tiles, and the
    /// kernel-side transform runs once at the end.
    ///
    /// `kept` is the V that `forward` kept for this x, if it did; it spares the input transform.
    pub(crate) fn weight_grad(&self, x: &[f32], dy: &[f32], kept: Option<&[f32]>) -> Vec<f32> {
        let (ci, co, t_all) = (self.ci, self.co, self.tile.positions());
        if let Some(kept) = kept {
            assert_eq!(kept.len(), self.kept_len(), "kept V has the wrong size");
        }
        // A fixed split of the batch (not one by thread count), so the partial sums, and with them
        // the rounding, are the same on any machine.
        let per_task = self.b.div_ceil(WGRAD_TASKS);
        let (in_image, out_image) = (ci * self.h * self.w, co * self.ho * self.wo);
        let tasks = self.b.div_ceil(per_task);
        let threads = gemm_threads(tasks);
        let rows_per_block = self.rows_for(WGRAD_V_FLOATS_PER_BLOCK);
        let n_max = rows_per_block * self.tw;
        let all_tiles = self.b * self.th * self.tw;
        let partials: Vec<Vec<f32>> = (0..tasks)
            .into_par_iter()
            .map(|task| {
                let images = per_task.min(self.b - task * per_task);
                let xs = &x[task * per_task * in_image..][..images * in_image];
                let dys = &dy[task * per_task * out_image..][..images * out_image];
                let (hp, wp) = self.plane_sides();
                let transforms = kept.is_none();
                let mut s = Scratch {
                    plane: vec![0f32; if transforms { hp * wp * ci } else { 0 }],
                    v: ScratchBuf::take(if transforms { t_all * n_max * ci } else { 0 }),
                    m: ScratchBuf::take(t_all * n_max * co),
                    out: ScratchBuf::take((hp - 2) * (wp - 2) * co),
                    staging: Vec::new(),
                    loaded: None,
                    row0: 0,
                };
                // dy goes into `out` channels-last with zeros past the output's edge, which
                // no load writes.
                s.out.fill(0.0);
                let mut dy_loaded = None;
                let mut acc = vec![0f32; t_all * ci * co];
                let rows = images * self.th;
                for g0 in (0..rows).step_by(rows_per_block) {
                    let block = g0..(g0 + rows_per_block).min(rows);
                    let n = block.len() * self.tw;
                    if transforms {
                        self.input_rows(xs, block.clone(), n, &mut s, VDest::Scratch);
                    }
                    self.grad_rows(dys, block, n, &mut s, &mut dy_loaded);
                    let first_tile = (task * per_task * self.th + g0) * self.tw;
                    for t in 0..t_all {
                        let vt = match kept {
                            Some(kept) => &kept[(t * all_tiles + first_tile) * ci..][..n * ci],
                            None => &s.v[t * n * ci..][..n * ci],
                        };
                        let qt = &s.m[t * n * co..][..n * co];
                        matmul(ci, co, n, &mut acc[t * ci * co..][..ci * co], true, vt, 1, ci, qt, co, 1, threads);
                    }
                }
                acc
            })
            .collect();
        self.kernel_side_grad(&partials)
    }

    /// dw (C_out, C_in, 3, 3) = G^T W G from W (T, C_in, C_out), the sum of `partials` in their
    /// order, element-wise over runs of C_out as in `kernel_transform`, input channels in
    /// parallel (on one thread, the sum and this were ~2% of model A's training profile).
    fn kernel_side_grad(&self, partials: &[Vec<f32>]) -> Vec<f32> {
        let (ci, co, a) = (self.ci, self.co, self.tile.m() + 2);
        let gt = |rows: &[&[f32]], out: &mut [f32]| match self.tile {
            Tile::F2 => gt_times(rows, out),
            Tile::F4 => gt6_times(rows, out),
        };
        // by_channel[i] (9, C_out): the nine taps of every output channel, of input channel i.
        let mut by_channel = vec![0f32; ci * 9 * co];
        by_channel.par_chunks_mut(9 * co).enumerate().for_each_init(
            || (vec![0f32; a * a * co], vec![0f32; 3 * a * co]),
            |(w, cols), (i, taps)| {
                // W of channel i, (T, C_out): the partial sums added in order, from zero as
                // before the split was parallel, so the floats do not change.
                w.fill(0.0);
                for p in partials {
                    for (t, run) in w.chunks_exact_mut(co).enumerate() {
                        run.iter_mut().zip(&p[(t * ci + i) * co..][..co]).for_each(|(s, v)| *s += v);
                    }
                }
                // G^T W by columns: cols[(3 c + k) C_out..] is entry (k, c).
                for c in 0..a {
                    let column: Vec<&[f32]> = (0..a).map(|r| &w[(a * r + c) * co..][..co]).collect();
                    gt(&column, &mut cols[3 * c * co..][..3 * co]);
                }
                // (G^T W) G: row k of the result from row k of G^T W.
                for k in 0..3 {
                    let row: Vec<&[f32]> = (0..a).map(|c| &cols[(3 * c + k) * co..][..co]).collect();
                    gt(&row, &mut taps[3 * k * co..][..3 * co]);
                }
            },
        );
        let mut dw = vec![0f32; co * ci * 9];
        dw.par_chunks_mut(ci * 9).enumerate().for_each(|(o, dwo)| {
            for (j, v) in dwo.iter_mut().enumerate() {
                // j = 9 i + tap; by_channel[i] holds tap runs of C_out.
                *v = by_channel[j * co + o];
            }
        });
        dw
    }

    /// Blocks of dy for tile rows `block` into Q (T, n, C_out) (in `s.m`): Q = A dY A^T per m x m
    /// block, dy channels-last in `s.out` with zeros past the output's edge.
    fn grad_rows(&self, dys: &[f32], block: Range<usize>, n: usize, s: &mut Scratch, loaded: &mut Option<usize>) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features the function is compiled with.
            return unsafe { self.grad_rows_avx2(dys, block, n, s, loaded) };
        }
        match self.tile {
            Tile::F2 => self.grad_rows_body::<4>(dys, block, n, s, loaded),
            Tile::F4 => self.grad_rows_body::<6>(dys, block, n, s, loaded),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn grad_rows_avx2(&self, dys: &[f32], block: Range<usize>, n: usize, s: &mut Scratch, loaded: &mut Option<usize>) {
        match self.tile {
            Tile::F2 => self.grad_rows_body::<4>(dys, block, n, s, loaded),
            Tile::F4 => self.grad_rows_body::<6>(dys, block, n, s, loaded),
        }
    }

    #[inline(always)]
    fn grad_rows_body<const A: usize>(
        &self,
        dys: &[f32],
        block: Range<usize>,
        n: usize,
        s: &mut Scratch,
        loaded: &mut Option<usize>,
    ) {
        let (co, tw, m) = (self.co, self.tw, A - 2);
        let wq = m * tw;
        let first = block.start;
        for g in block {
            let (li, ty) = (g / self.th, g % self.th);
            if *loaded != Some(li) {
                let (shape, yb) = ((co, self.ho, self.wo), &dys[li * co * self.ho * self.wo..]);
                rows_channels_last(yb, shape, 0..self.ho, &mut s.staging, &mut s.out, wq * co);
                *loaded = Some(li);
            }
            for tx in 0..tw {
                let qi = (g - first) * tw + tx;
                let rows: [&[f32]; 4] = std::array::from_fn(|r| {
                    if r < m {
                        &s.out[((m * ty + r) * wq + m * tx) * co..][..m * co]
                    } else {
                        &[]
                    }
                });
                for k in (0..co).step_by(LANES) {
                    // Read and written in place, as in `input_rows`.
                    let mq = &mut s.m[qi * co + k..];
                    if A == 4 {
                        tile_grad_transform(&rows, co, k, mq, n * co);
                    } else {
                        tile_grad_transform6(&rows, co, k, mq, n * co);
                    }
                }
            }
        }
    }

    /// Tile rows `block` (counted across the task's images xs) into V (T, n, C_in), in the
    /// scratch or the kept planes (`dest`): V_t = (B^T d B)_t per tile d (B^T in `input_step` and
    /// `input_step6`).
    fn input_rows(&self, xs: &[f32], block: Range<usize>, n: usize, s: &mut Scratch, dest: VDest) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features the function is compiled with.
            return unsafe { self.input_rows_avx2(xs, block, n, s, dest) };
        }
        match self.tile {
            Tile::F2 => self.input_rows_body::<4>(xs, block, n, s, dest),
            Tile::F4 => self.input_rows_body::<6>(xs, block, n, s, dest),
        }
    }

    /// `input_rows` compiled for AVX2 + FMA: its channel loops then take 8 floats per instruction
    /// instead of baseline x86-64's 4 (a closure would not inherit the feature, hence the copies).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn input_rows_avx2(&self, xs: &[f32], block: Range<usize>, n: usize, s: &mut Scratch, dest: VDest) {
        match self.tile {
            Tile::F2 => self.input_rows_body::<4>(xs, block, n, s, dest),
            Tile::F4 => self.input_rows_body::<6>(xs, block, n, s, dest),
        }
    }

    #[inline(always)]
    fn input_rows_body<const A: usize>(
        &self,
        xs: &[f32],
        block: Range<usize>,
        n: usize,
        s: &mut Scratch,
        mut dest: VDest,
    ) {
        let (ci, pad, tw, m) = (self.ci, self.pad, self.tw, A - 2);
        let wp = self.plane_sides().1;
        let first = block.start;
        for g in block {
            let (li, ty) = (g / self.th, g % self.th);
            if s.loaded != Some(li) {
                // Channels-last copy of image li (`rows_channels_last`); only the interior is
                // written, so the zero border stays zero.
                let (shape, xb) = ((ci, self.h, self.w), &xs[li * ci * self.h * self.w..]);
                let dst = &mut s.plane[(pad * wp + pad) * ci..];
                rows_channels_last(xb, shape, 0..self.h, &mut s.staging, dst, wp * ci);
                s.loaded = Some(li);
            }
            for tx in 0..tw {
                let q = (g - first) * tw + tx;
                // The tile's A rows of A pixels (channels-last), sliced once per tile: the index
                // arithmetic and bounds checks per load were a third of this function.
                let rows: [&[f32]; A] =
                    std::array::from_fn(|r| &s.plane[((m * (ty - s.row0) + r) * wp + m * tx) * ci..][..A * ci]);
                for k in (0..ci).step_by(LANES) {
                    // Read from the plane and written to V in place: through two stack copies
                    // of the tile, the loads and stores were ~15% of this function's samples.
                    match &mut dest {
                        VDest::Scratch => {
                            let mut v = ScratchV { v: &mut s.v[q * ci + k..], vs: n * ci };
                            self.tile_input::<A>(&rows, k, &mut v);
                        }
                        VDest::Kept { planes, at } => {
                            let mut v = KeptV { planes, at: *at + q * ci + k };
                            self.tile_input::<A>(&rows, k, &mut v);
                        }
                    }
                }
            }
        }
    }

    /// One tile's V for the LANES channels from `k`, from its A rows (channels-last) into `v`.
    #[inline(always)]
    fn tile_input<const A: usize>(&self, rows: &[&[f32]; A], k: usize, v: &mut impl VSink) {
        if A == 4 {
            tile_input_transform(&[rows[0], rows[1], rows[2], rows[3]], self.ci, k, v);
        } else {
            tile_input_transform6(&[rows[0], rows[1], rows[2], rows[3], rows[4], rows[5]], self.ci, k, v);
        }
    }

    /// Output blocks of tile rows `job.block` from M (T, n, C_out): Y = A^T M A (A^T in
    /// `output_step` and `output_step6`), plus bias, then ReLU, into the channels-last image
    /// `hwc` (Ho Wo, C_out), which goes to the task's output ys (images, C_out, Ho, Wo) when an
    /// image's last row is done.
    fn output_rows<S: Slot>(&self, job: Gemmed, hwc: &mut [f32], ys: &mut [S]) {
        #[cfg(target_arch = "x86_64")]
        if has_avx2_fma() {
            // SAFETY: the CPU supports the features the function is compiled with.
            return unsafe { self.output_rows_avx2(job, hwc, ys) };
        }
        match self.tile {
            Tile::F2 => self.output_rows_body::<4, S>(job, hwc, ys),
            Tile::F4 => self.output_rows_body::<6, S>(job, hwc, ys),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn output_rows_avx2<S: Slot>(&self, job: Gemmed, hwc: &mut [f32], ys: &mut [S]) {
        match self.tile {
            Tile::F2 => self.output_rows_body::<4, S>(job, hwc, ys),
            Tile::F4 => self.output_rows_body::<6, S>(job, hwc, ys),
        }
    }

    #[inline(always)]
    fn output_rows_body<const A: usize, S: Slot>(&self, job: Gemmed, hwc: &mut [f32], ys: &mut [S]) {
        let Gemmed { block, n, m, ep, row0 } = job;
        let (co, ho, wo, tw, side) = (self.co, self.ho, self.wo, self.tw, A - 2);
        let plane = ho * wo;
        let zeros = [0f32; LANES];
        let first = block.start;
        for g in block {
            let (li, ty) = (g / self.th, g % self.th);
            for tx in 0..tw {
                let q = (g - first) * tw + tx;
                for k in (0..co).step_by(LANES) {
                    let (bias, relu) = ep.map_or((zeros, false), |e| (load(&e.bias[k..]), e.relu));
                    // M read in place, as V is written in place by `input_rows`.
                    let mq = &m[q * co + k..];
                    // Written straight into the image (through a stack copy of the tile, the
                    // stores were ~10% of this function's samples).
                    let (oy, ox) = (side * ty, side * tx);
                    let out = TileOut {
                        y: &mut hwc[((oy - side * row0) * wo + ox) * co + k..],
                        rs: wo * co,
                        cs: co,
                        rows: side.min(ho - oy),
                        cols: side.min(wo - ox),
                    };
                    if A == 4 {
                        tile_output_transform(mq, n * co, &bias, relu, out);
                    } else {
                        tile_output_transform6(mq, n * co, &bias, relu, out);
                    }
                }
            }
            // `forward_rows` passes no ys and places its rows itself.
            if ty + 1 == self.th && !ys.is_empty() {
                transpose(hwc, co, &mut ys[li * co * plane..][..co * plane], plane, plane, co);
            }
        }
    }
}

/// Rows `rows` of a (C, H, W) image `img` channels-last into `dst`: row iy's W C floats at
/// `dst[(iy - rows.start) * dst_rs..]`. The rows go through `transpose` as one (C, n W) block
/// into `staging`, then are copied into place. Transposed a row at a time, the W mod 8 columns
/// left over in each row (4 of 28, 6 of 14, all 7 of 7) took its scalar path: at batch 64 the
/// 64 -> 64 layer at 14 px went 3.51 -> 3.38 ms, 128 -> 128 at 7 px 4.14 -> 4.01 (28 px
/// unchanged), `hitomi bench` A inference 1211 -> 1282 img/s.
fn rows_channels_last(
    img: &[f32],
    (c, h, w): (usize, usize, usize),
    rows: Range<usize>,
    staging: &mut Vec<f32>,
    dst: &mut [f32],
    dst_rs: usize,
) {
    let (n, row, plane) = (rows.len() * w, w * c, h * w);
    if staging.len() < n * c {
        staging.resize(n * c, 0.0);
    }
    transpose(&img[rows.start * w..], plane, &mut staging[..n * c], c, c, n);
    for (r, src) in staging[..n * c].chunks_exact(row).enumerate() {
        dst[r * dst_rs..][..row].copy_from_slice(src);
    }
}

/// dst[j * dst_rs + i] = src[i * src_rs + j] for i < rows, j < cols, in 8 x 8 blocks (read as
/// rows, written as columns) so that both sides touch only 8 cache lines at a time; scattering
/// one float at a time across a whole plane was the hottest part of the transforms in `perf`.
/// Full blocks go through eight AVX registers where the CPU has them: the portable block copy
/// compiled to 64 scalar loads and stores per block.
#[inline(always)]
fn transpose<S: Slot>(src: &[f32], src_rs: usize, dst: &mut [S], dst_rs: usize, rows: usize, cols: usize) {
    const B: usize = 8;
    #[cfg(target_arch = "x86_64")]
    let avx = has_avx2_fma();
    for i0 in (0..rows).step_by(B) {
        for j0 in (0..cols).step_by(B) {
            if i0 + B <= rows && j0 + B <= cols {
                let (from, to) = (&src[i0 * src_rs + j0..], &mut dst[j0 * dst_rs + i0..]);
                #[cfg(target_arch = "x86_64")]
                if avx {
                    transpose8_avx(from, src_rs, to, dst_rs);
                    continue;
                }
                transpose8(from, src_rs, to, dst_rs);
            } else {
                for i in i0..(i0 + B).min(rows) {
                    for j in j0..(j0 + B).min(cols) {
                        dst[j * dst_rs + i].set(src[i * src_rs + j]);
                    }
                }
            }
        }
    }
}

/// One 8 x 8 block: dst[j * dst_rs + i] = src[i * src_rs + j] for i, j < 8.
#[inline(always)]
fn transpose8<S: Slot>(src: &[f32], src_rs: usize, dst: &mut [S], dst_rs: usize) {
    let mut block = [[0f32; 8]; 8];
    for (i, row) in block.iter_mut().enumerate() {
        row.copy_from_slice(&src[i * src_rs..][..8]);
    }
    for j in 0..8 {
        let mut col = [0f32; 8];
        for (c, row) in col.iter_mut().zip(&block) {
            *c = row[j];
        }
        for (d, &c) in dst[j * dst_rs..][..8].iter_mut().zip(&col) {
            d.set(c);
        }
    }
}

/// `transpose8` in AVX registers: pairs of rows interleaved (unpack), then pairs of pairs
/// (shuffle), then the 128-bit halves exchanged, which leaves column j of the block in register j.
/// Only called where `has_avx2_fma` holds.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose8_avx<S: Slot>(src: &[f32], src_rs: usize, dst: &mut [S], dst_rs: usize) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx")]
    unsafe fn block(src: *const f32, src_rs: usize, dst: *mut f32, dst_rs: usize) {
        let r = |i: usize| _mm256_loadu_ps(src.add(i * src_rs));
        let (r0, r1, r2, r3, r4, r5, r6, r7) = (r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
        // t0 = [r0_0 r1_0 r0_1 r1_1 | r0_4 r1_4 r0_5 r1_5], t1 the same for columns 2, 3, 6, 7.
        let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
        let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
        let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
        let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
        // s0 = [rows 0-3 of column 0 | rows 0-3 of column 4], s1 columns 1 | 5, and so on.
        let (s0, s1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
        let (s2, s3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
        let (s4, s5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
        let (s6, s7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
        let w = |j: usize, v: __m256| _mm256_storeu_ps(dst.add(j * dst_rs), v);
        w(0, _mm256_permute2f128_ps::<0x20>(s0, s4));
        w(1, _mm256_permute2f128_ps::<0x20>(s1, s5));
        w(2, _mm256_permute2f128_ps::<0x20>(s2, s6));
        w(3, _mm256_permute2f128_ps::<0x20>(s3, s7));
        w(4, _mm256_permute2f128_ps::<0x31>(s0, s4));
        w(5, _mm256_permute2f128_ps::<0x31>(s1, s5));
        w(6, _mm256_permute2f128_ps::<0x31>(s2, s6));
        w(7, _mm256_permute2f128_ps::<0x31>(s3, s7));
    }
    const { assert!(std::mem::size_of::<S>() == 4) };
    assert!(src.len() >= 7 * src_rs + 8 && dst.len() >= 7 * dst_rs + 8, "8 x 8 block out of bounds");
    // SAFETY: the caller checked AVX support; the assert keeps the eight unaligned 8-float loads
    // and stores inside the slices; a slot is a plain f32 in memory (`Slot`).
    unsafe { block(src.as_ptr(), src_rs, dst.as_mut_ptr().cast::<f32>(), dst_rs) }
}

/// A float `transpose` writes: a plain f32, or an uninitialised one of a fresh output (same layout,
/// `MaybeUninit` being `repr(transparent)`).
trait Slot {
    fn set(&mut self, v: f32);
}

impl Slot for f32 {
    #[inline(always)]
    fn set(&mut self, v: f32) {
        *self = v;
    }
}

impl Slot for MaybeUninit<f32> {
    #[inline(always)]
    fn set(&mut self, v: f32) {
        self.write(v);
    }
}

/// G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]] applied to three runs (a, b, c)
/// of equal length n, element-wise: out (4 n) = [a, (a + b + c) / 2, (a - b + c) / 2, c].
#[inline(always)]
fn g_times(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    let n = a.len();
    let (first, rest) = out.split_at_mut(n);
    let (mid, last) = rest.split_at_mut(2 * n);
    let (plus, minus) = mid.split_at_mut(n);
    first.copy_from_slice(a);
    for ((p, m), ((a, b), c)) in plus.iter_mut().zip(minus.iter_mut()).zip(a.iter().zip(b).zip(c)) {
        *p = 0.5 * (a + b + c);
        *m = 0.5 * (a - b + c);
    }
    last.copy_from_slice(c);
}

/// A y for the two values of one row of a dy block (F(2x2)): A = (A^T)^T gives
/// [y0, y0 + y1, y0 - y1, -y1].
#[inline(always)]
fn grad_step(y0: &Lane, y1: &Lane) -> [Lane; 4] {
    [*y0, add(y0, y1), sub(y0, y1), lane(|l| -y1[l])]
}

/// Q = A dY A^T for the LANES channels from `k` of one 2x2 block dY (F(2x2)), whose entry
/// (r, c) is `y[r][c * cs + k..]`; Q_t (t = 4 i + j, 4x4) goes to `q[t * qs..]`.
#[inline(always)]
fn tile_grad_transform(y: &[&[f32]; 4], cs: usize, k: usize, q: &mut [f32], qs: usize) {
    // Columns first: cols[c][r] for r < 4, c < 2. Built as arrays rather than zeroed and
    // filled (the zeroing stayed, as a memset call per tile), by functions, since a closure
    // here was not inlined.
    let cols = [grad_col(y, k), grad_col(y, cs + k)];
    for i in 0..4 {
        for (j, v) in grad_step(&cols[0][i], &cols[1][i]).iter().enumerate() {
            q[(4 * i + j) * qs..][..LANES].copy_from_slice(v);
        }
    }
}

/// A y for the four values of one row of a dy block (F(4x4)), A = (A^T)^T:
/// [y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + 2 y1 + 4 y2 + 8 y3, y0 - 2 y1 + 4 y2 - 8 y3, y3].
#[inline(always)]
fn grad_step6(y: [&Lane; 4]) -> [Lane; 6] {
    let [y0, y1, y2, y3] = y;
    let (e, o) = (add(y0, y2), add(y1, y3));
    let (e4, o2) = (lane(|l| y0[l] + 4.0 * y2[l]), lane(|l| 2.0 * y1[l] + 8.0 * y3[l]));
    [*y0, add(&e, &o), sub(&e, &o), add(&e4, &o2), sub(&e4, &o2), *y3]
}

/// Q = A dY A^T for one 4x4 block dY -> 6x6 (F(4x4)), read and written as in
/// `tile_grad_transform`.
#[inline(always)]
fn tile_grad_transform6(y: &[&[f32]; 4], cs: usize, k: usize, q: &mut [f32], qs: usize) {
    let cols = [grad_col6(y, k), grad_col6(y, cs + k), grad_col6(y, 2 * cs + k), grad_col6(y, 3 * cs + k)];
    for i in 0..6 {
        for (j, v) in grad_step6([&cols[0][i], &cols[1][i], &cols[2][i], &cols[3][i]]).iter().enumerate() {
            q[(6 * i + j) * qs..][..LANES].copy_from_slice(v);
        }
    }
}

/// G^T applied to four runs (F(2x2)), element-wise: out (3 n) =
/// [w0 + (w1 + w2) / 2, (w1 - w2) / 2, (w1 + w2) / 2 + w3].
#[inline(always)]
fn gt_times(w: &[&[f32]], out: &mut [f32]) {
    let n = w[0].len();
    let (r0, rest) = out.split_at_mut(n);
    let (r1, r2) = rest.split_at_mut(n);
    for i in 0..n {
        let (a, b, c, d) = (w[0][i], w[1][i], w[2][i], w[3][i]);
        r0[i] = a + 0.5 * (b + c);
        r1[i] = 0.5 * (b - c);
        r2[i] = 0.5 * (b + c) + d;
    }
}

/// G^T applied to six runs (F(4x4)), element-wise, G as in `g6_times`: out (3 n).
#[inline(always)]
fn gt6_times(w: &[&[f32]], out: &mut [f32]) {
    let n = w[0].len();
    let (r0, rest) = out.split_at_mut(n);
    let (r1, r2) = rest.split_at_mut(n);
    for i in 0..n {
        let (a, b, c, d, e, f) = (w[0][i], w[1][i], w[2][i], w[3][i], w[4][i], w[5][i]);
        r0[i] = a / 4.0 - (b + c) / 6.0 + (d + e) / 24.0;
        r1[i] = (c - b) / 6.0 + (d - e) / 12.0;
        r2[i] = (d + e - b - c) / 6.0 + f;
    }
}

/// F(4x4)'s G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6],
/// [1/24, -1/12, 1/6], [0, 0, 1]] applied to three runs (a, b, c) element-wise: out (6 n).
#[inline(always)]
fn g6_times(a: &[f32], b: &[f32], c: &[f32], out: &mut [f32]) {
    let n = a.len();
    let rows: [&mut [f32]; 6] = {
        let (r0, rest) = out.split_at_mut(n);
        let (r1, rest) = rest.split_at_mut(n);
        let (r2, rest) = rest.split_at_mut(n);
        let (r3, rest) = rest.split_at_mut(n);
        let (r4, r5) = rest.split_at_mut(n);
        [r0, r1, r2, r3, r4, r5]
    };
    let [r0, r1, r2, r3, r4, r5] = rows;
    for i in 0..n {
        let (x, y, z) = (a[i], b[i], c[i]);
        r0[i] = x / 4.0;
        r1[i] = -(x + y + z) / 6.0;
        r2[i] = -(x - y + z) / 6.0;
        r3[i] = x / 24.0 + y / 12.0 + z / 6.0;
        r4[i] = x / 24.0 - y / 12.0 + z / 6.0;
        r5[i] = z;
    }
}

/// Whether the CPU has AVX2 and FMA: the transforms then run compiled for them (their channel
/// loops take 8 floats per instruction instead of baseline x86-64's 4). Checked once.
#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Channels handled per step: one AVX register of floats. Both channel counts must be multiples.
const LANES: usize = 8;

/// Eight consecutive channels; arithmetic on it is element-wise, which compiles to one vector
/// instruction (two on baseline x86-64).
type Lane = [f32; LANES];

// The helpers below are written as plain loops over fixed-size arrays (not `array::from_fn`,
// which is not always inlined into the AVX2 copies and then runs as a scalar call per lane).

#[inline(always)]
fn load(src: &[f32]) -> Lane {
    let mut r = [0f32; LANES];
    r.copy_from_slice(&src[..LANES]);
    r
}

#[inline(always)]
fn lane(f: impl Fn(usize) -> f32) -> Lane {
    let mut r = [0f32; LANES];
    for (l, v) in r.iter_mut().enumerate() {
        *v = f(l);
    }
    r
}

/// V = B^T d B for one tile d (row-major 4x4 of lanes),
/// B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
#[inline(always)]
fn add(a: &Lane, b: &Lane) -> Lane {
    lane(|l| a[l] + b[l])
}

#[inline(always)]
fn sub(a: &Lane, b: &Lane) -> Lane {
    lane(|l| a[l] - b[l])
}

/// x B for one row x of 4 lanes: [x0 - x2, x1 + x2, x2 - x1, x1 - x3] (B^T's rows below).
#[inline(always)]
fn input_step(x0: &Lane, x1: &Lane, x2: &Lane, x3: &Lane) -> [Lane; 4] {
    [sub(x0, x2), add(x1, x2), sub(x2, x1), sub(x1, x3)]
}

/// V = B^T d B for the LANES channels from `k` of one 4x4 tile d, whose entry (r, c) is
/// `d[r][c * cs + k..]`; V_t (t = 4 i + j) goes to `v[t * vs..]`.
/// B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
#[inline(always)]
fn tile_input_transform(d: &[&[f32]; 4], cs: usize, k: usize, v: &mut impl VSink) {
    // Row step B^T d, one column c at a time: cols[c][i] (arrays built, not zeroed and filled,
    // as in `tile_grad_transform`).
    let cols = [input_col(d, k), input_col(d, cs + k), input_col(d, 2 * cs + k), input_col(d, 3 * cs + k)];
    // Column step (.) B, one row at a time.
    // Row i of every column at once, as in `tile_output_transform`.
    #[allow(clippy::needless_range_loop)]
    for i in 0..4 {
        let out = input_step(&cols[0][i], &cols[1][i], &cols[2][i], &cols[3][i]);
        for (j, o) in out.iter().enumerate() {
            v.put(4 * i + j, o);
        }
    }
}

/// x A for one row x of 4 lanes: [x0 + x1 + x2, x1 - x2 - x3].
#[inline(always)]
fn output_step(x0: &Lane, x1: &Lane, x2: &Lane, x3: &Lane) -> [Lane; 2] {
    [add(&add(x0, x1), x2), sub(&sub(x1, x2), x3)]
}

/// Y = A^T M A + bias (then ReLU) for one tile's M (4x4, M_t at `m[t * ms..][..LANES]` for
/// t = 4 r + c), A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]; the 2x2 outputs (those inside the
/// image) into `out`.
#[inline(always)]
fn tile_output_transform(m: &[f32], ms: usize, bias: &Lane, relu: bool, out: TileOut) {
    // A^T M: cols[c][i], 2 rows of 4 columns (built as in `tile_grad_transform`).
    let cols = [output_col(m, ms, 0), output_col(m, ms, 1), output_col(m, ms, 2), output_col(m, ms, 3)];
    // Row i of every column at once; an iterator over one column would not say that better.
    #[allow(clippy::needless_range_loop)]
    for i in 0..out.rows {
        let y = output_step(&cols[0][i], &cols[1][i], &cols[2][i], &cols[3][i]);
        for (j, y) in y[..out.cols].iter().enumerate() {
            out.y[i * out.rs + j * out.cs..][..LANES].copy_from_slice(&bias_act(y, bias, relu));
        }
    }
}

/// Where a tile's outputs go: output (i, j) of the tile at `y[i * rs + j * cs..][..LANES]`, for
/// i < rows and j < cols (fewer than the tile's m at the output's bottom and right edges).
struct TileOut<'a> {
    y: &'a mut [f32],
    rs: usize,
    cs: usize,
    rows: usize,
    cols: usize,
}

/// o + bias, then ReLU if asked, one lane at a time: a ReLU pass over the tile's outputs as one
/// flattened iterator compiled to scalar code (12% of `output_rows`' samples).
#[inline(always)]
fn bias_act(o: &Lane, bias: &Lane, relu: bool) -> Lane {
    let v = add(o, bias);
    if relu {
        lane(|l| v[l].max(0.0))
    } else {
        v
    }
}

/// x B for one row x of 6 lanes (F(4x4)), B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0],
/// [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], with the
/// shared sums (x4 - 4 x2, x3 - 4 x1, x4 - x2, 2 (x3 - x1)) formed once.
#[inline(always)]
fn input_step6(x: [&Lane; 6]) -> [Lane; 6] {
    let [x0, x1, x2, x3, x4, x5] = x;
    let p = lane(|l| x4[l] - 4.0 * x2[l]);
    let q = lane(|l| x3[l] - 4.0 * x1[l]);
    let r = sub(x4, x2);
    let s = lane(|l| 2.0 * (x3[l] - x1[l]));
    [
        lane(|l| 4.0 * x0[l] - 5.0 * x2[l] + x4[l]),
        add(&p, &q),
        sub(&p, &q),
        add(&r, &s),
        sub(&r, &s),
        lane(|l| 4.0 * x1[l] - 5.0 * x3[l] + x5[l]),
    ]
}

/// V = B^T d B for one 6x6 tile, read and written as in `tile_input_transform`.
#[inline(always)]
fn tile_input_transform6(d: &[&[f32]; 6], cs: usize, k: usize, v: &mut impl VSink) {
    let cols = [
        input_col6(d, k),
        input_col6(d, cs + k),
        input_col6(d, 2 * cs + k),
        input_col6(d, 3 * cs + k),
        input_col6(d, 4 * cs + k),
        input_col6(d, 5 * cs + k),
    ];
    // Row i of every column at once, as in `tile_output_transform`.
    #[allow(clippy::needless_range_loop)]
    for i in 0..6 {
        let out = input_step6([&cols[0][i], &cols[1][i], &cols[2][i], &cols[3][i], &cols[4][i], &cols[5][i]]);
        for (j, o) in out.iter().enumerate() {
            v.put(6 * i + j, o);
        }
    }
}

/// x A for one row x of 6 lanes (F(4x4)), A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0],
/// [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], through the sums and differences of (x1, x2) and
/// (x3, x4).
#[inline(always)]
fn output_step6(x: [&Lane; 6]) -> [Lane; 4] {
    let [x0, x1, x2, x3, x4, x5] = x;
    let (a, b, c, d) = (add(x1, x2), sub(x1, x2), add(x3, x4), sub(x3, x4));
    [
        lane(|l| x0[l] + a[l] + c[l]),
        lane(|l| b[l] + 2.0 * d[l]),
        lane(|l| a[l] + 4.0 * c[l]),
        lane(|l| b[l] + 8.0 * d[l] + x5[l]),
    ]
}

/// Y = A^T M A + bias (then ReLU) for one 6x6 tile's M, read and written as in
/// `tile_output_transform`.
#[inline(always)]
fn tile_output_transform6(m: &[f32], ms: usize, bias: &Lane, relu: bool, out: TileOut) {
    let cols = [
        output_col6(m, ms, 0),
        output_col6(m, ms, 1),
        output_col6(m, ms, 2),
        output_col6(m, ms, 3),
        output_col6(m, ms, 4),
        output_col6(m, ms, 5),
    ];
    // Row i of every column at once; an iterator over one column would not say that better.
    #[allow(clippy::needless_range_loop)]
    for i in 0..out.rows {
        let y = output_step6([&cols[0][i], &cols[1][i], &cols[2][i], &cols[3][i], &cols[4][i], &cols[5][i]]);
        for (j, y) in y[..out.cols].iter().enumerate() {
            out.y[i * out.rs + j * out.cs..][..LANES].copy_from_slice(&bias_act(y, bias, relu));
        }
    }
}

/// Column step of `tile_grad_transform`: A applied to the column of dY at offset o.
#[inline(always)]
fn grad_col(y: &[&[f32]; 4], o: usize) -> [Lane; 4] {
    grad_step(&load(&y[0][o..]), &load(&y[1][o..]))
}

/// Column step of `tile_grad_transform6`.
#[inline(always)]
fn grad_col6(y: &[&[f32]; 4], o: usize) -> [Lane; 6] {
    let x = [load(&y[0][o..]), load(&y[1][o..]), load(&y[2][o..]), load(&y[3][o..])];
    grad_step6([&x[0], &x[1], &x[2], &x[3]])
}

/// Column step of `tile_input_transform`: B^T applied to the column of d at offset o.
#[inline(always)]
fn input_col(d: &[&[f32]; 4], o: usize) -> [Lane; 4] {
    let x = [load(&d[0][o..]), load(&d[1][o..]), load(&d[2][o..]), load(&d[3][o..])];
    input_step(&x[0], &x[1], &x[2], &x[3])
}

/// Column step of `tile_input_transform6`.
#[inline(always)]
fn input_col6(d: &[&[f32]; 6], o: usize) -> [Lane; 6] {
    let x =
        [load(&d[0][o..]), load(&d[1][o..]), load(&d[2][o..]), load(&d[3][o..]), load(&d[4][o..]), load(&d[5][o..])];
    input_step6([&x[0], &x[1], &x[2], &x[3], &x[4], &x[5]])
}

/// Column step of `tile_output_transform`: A^T applied to column c of M (M_t at `m[t * ms..]`).
#[inline(always)]
fn output_col(m: &[f32], ms: usize, c: usize) -> [Lane; 2] {
    let x = [load(&m[c * ms..]), load(&m[(4 + c) * ms..]), load(&m[(8 + c) * ms..]), load(&m[(12 + c) * ms..])];
    output_step(&x[0], &x[1], &x[2], &x[3])
}

/// Column step of `tile_output_transform6`.
#[inline(always)]
fn output_col6(m: &[f32], ms: usize, c: usize) -> [Lane; 4] {
    let x = [
        load(&m[c * ms..]),
        load(&m[(6 + c) * ms..]),
        load(&m[(12 + c) * ms..]),
        load(&m[(18 + c) * ms..]),
        load(&m[(24 + c) * ms..]),
        load(&m[(30 + c) * ms..]),
    ];
    output_step6([&x[0], &x[1], &x[2], &x[3], &x[4], &x[5]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use hitomi_core::testing::assert_close;

    /// Every block path (AVX where present, the portable one, the ragged edge) against the
    /// definition, on strided sub-matrices whose sides are not multiples of 8.
    #[test]
    fn transpose_matches_definition() {
        let (rows, cols, src_rs, dst_rs) = (21, 19, 23, 26);
        let src: Vec<f32> = (0..rows * src_rs).map(|v| v as f32).collect();
        let mut dst = vec![-1f32; cols * dst_rs];
        transpose(&src, src_rs, &mut dst, dst_rs, rows, cols);
        let mut portable = vec![-1f32; cols * dst_rs];
        transpose8(&src, src_rs, &mut portable, dst_rs);
        for j in 0..cols {
            for i in 0..dst_rs {
                let want = if i < rows { src[i * src_rs + j] } else { -1.0 };
                assert_eq!(dst[j * dst_rs + i], want, "dst[{j}][{i}]");
                if i < 8 && j < 8 {
                    assert_eq!(portable[j * dst_rs + i], want, "portable block [{j}][{i}]");
                }
            }
        }
    }

    /// The weight gradient against its definition, dw[o][i][ky][kx] = sum over images and output
    /// pixels of dy[o][y][x] * x_padded[i][y + ky][x + kx], for both tiles, on output sides that
    /// leave the last tiles partly outside the output.
    #[test]
    fn weight_grad_matches_definition() {
        let dev = Device::Cpu;
        for (b, ci, co, h, w, pad) in
            [(3, 8, 16, 7, 7, 1), (2, 16, 8, 10, 13, 0), (5, 8, 24, 6, 5, 2), (1, 32, 16, 28, 28, 1)]
        {
            let x: Vec<f32> =
                Tensor::randn(0f32, 1.0, (b, ci, h, w), &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let (ho, wo) = (h + 2 * pad - 2, w + 2 * pad - 2);
            let dy: Vec<f32> =
                Tensor::randn(0f32, 1.0, (b, co, ho, wo), &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let mut want = vec![0f64; co * ci * 9];
            for bi in 0..b {
                for o in 0..co {
                    for i in 0..ci {
                        for k in 0..9 {
                            let (ky, kx) = (k / 3, k % 3);
                            let mut sum = 0f64;
                            for oy in 0..ho {
                                for ox in 0..wo {
                                    let (iy, ix) =
                                        ((oy + ky) as isize - pad as isize, (ox + kx) as isize - pad as isize);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                        let xv = x[((bi * ci + i) * h + iy as usize) * w + ix as usize] as f64;
                                        sum += xv * dy[((bi * co + o) * ho + oy) * wo + ox] as f64;
                                    }
                                }
                            }
                            want[(o * ci + i) * 9 + k] += sum;
                        }
                    }
                }
            }
            let want =
                Tensor::from_vec(want.iter().map(|&v| v as f32).collect::<Vec<_>>(), (co, ci, 3, 3), &dev).unwrap();
            for tile in [Tile::F2, Tile::F4] {
                let wg = Winograd3x3::with_tile(b, ci, h, w, co, pad, tile);
                let got = wg.weight_grad(&x, &dy, None);
                // With the V a forward kept (its tasks split the batch unlike the weight
                // gradient's; NaN where it left a float unwritten): the same floats, to the bit.
                let mut kept = vec![MaybeUninit::new(f32::NAN); wg.kept_len()];
                let wt: Vec<f32> = (0..co * ci * 9).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
                let mut out = vec![MaybeUninit::new(0f32); b * co * wg.ho * wg.wo];
                wg.forward(&x, &wt, None, &mut out, Some(&mut kept));
                // SAFETY: every element was initialised (to NaN or 0) before the calls.
                let kept: Vec<f32> = kept.iter().map(|v| unsafe { v.assume_init() }).collect();
                let case = format!("{tile:?} b{b} {ci}->{co} {h}x{w} pad {pad}");
                // The gemms read V from the kept planes then: the same output as without them.
                let mut plain = vec![MaybeUninit::new(0f32); b * co * wg.ho * wg.wo];
                wg.forward(&x, &wt, None, &mut plain, None);
                let bits =
                    |v: &[MaybeUninit<f32>]| v.iter().map(|v| unsafe { v.assume_init() }.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(&plain), "{case}: forward with and without kept V");
                assert_eq!(wg.weight_grad(&x, &dy, Some(&kept)), got, "{case}: from the kept V");
                let got = Tensor::from_vec(got, (co, ci, 3, 3), &dev).unwrap();
                assert_close(&case, &got, &want, 0.0, 1e-4, true).unwrap();
            }
        }
    }

    /// The partial sums follow a fixed split of the batch, so the weight gradient is the same
    /// to the bit on one thread as on three (and so on any machine).
    #[test]
    fn weight_grad_does_not_depend_on_the_thread_count() {
        let dev = Device::Cpu;
        let (b, ci, co, side) = (7, 8, 16, 12);
        let x: Vec<f32> =
            Tensor::randn(0f32, 1.0, (b, ci, side, side), &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let dy: Vec<f32> =
            Tensor::randn(0f32, 1.0, (b, co, side, side), &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let wg = Winograd3x3::new(b, ci, side, side, co, 1);
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| wg.weight_grad(&x, &dy, None))
        };
        assert_eq!(on(1), on(3));
    }

    /// Against candle's direct convolution: even and odd output sides (a half-empty last tile),
    /// paddings 0-2, batches that split into several tasks with a short last one, bias and ReLU.
    #[test]
    fn matches_direct_convolution() {
        let dev = Device::Cpu;
        for (b, ci, co, h, w, pad, relu) in [
            (3, 8, 16, 7, 7, 1, false),
            (2, 16, 8, 10, 13, 0, true),
            (5, 8, 24, 6, 5, 2, false),
            (11, 24, 8, 12, 12, 1, true),
            (1, 32, 16, 28, 28, 1, false),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, ci, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1.0, (co, ci, 3, 3), &dev).unwrap();
            let bias = Tensor::randn(0f32, 1.0, co, &dev).unwrap();
            let (xv, wv): (Vec<f32>, Vec<f32>) =
                (x.flatten_all().unwrap().to_vec1().unwrap(), wt.flatten_all().unwrap().to_vec1().unwrap());
            let bv: Vec<f32> = bias.to_vec1().unwrap();
            let direct =
                x.conv2d(&wt, pad, 1, 1, 1).unwrap().broadcast_add(&bias.reshape((1, co, 1, 1)).unwrap()).unwrap();
            let direct = if relu { direct.relu().unwrap() } else { direct };
            for tile in [Tile::F2, Tile::F4] {
                let wg = Winograd3x3::with_tile(b, ci, h, w, co, pad, tile);
                // NaN where `forward` left an element unwritten.
                let mut out = vec![MaybeUninit::new(f32::NAN); b * co * wg.ho * wg.wo];
                wg.forward(&xv, &wv, Some(Epilogue { bias: &bv, relu }), &mut out, None);
                // SAFETY: every element was initialised (to NaN) before the call.
                let out: Vec<f32> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
                let ours = Tensor::from_vec(out, (b, co, wg.ho, wg.wo), &dev).unwrap();
                let case = format!("{tile:?} b{b} {ci}->{co} {h}x{w} pad {pad} relu {relu}");
                assert_close(&case, &ours, &direct, 0.0, 1e-4, true).unwrap();
                let mut rows = vec![MaybeUninit::new(f32::NAN); b * co * wg.ho * wg.wo];
                wg.forward_rows(&xv, &wv, Some(Epilogue { bias: &bv, relu }), &mut rows);
                // SAFETY: as above.
                let rows: Vec<f32> = rows.iter().map(|v| unsafe { v.assume_init() }).collect();
                let rows = Tensor::from_vec(rows, (b, co, wg.ho, wg.wo), &dev).unwrap();
                assert_close(&format!("{case}, row tasks"), &rows, &direct, 0.0, 1e-4, true).unwrap();
            }
        }
    }
}
