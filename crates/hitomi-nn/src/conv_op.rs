//! Fast CPU 2-D convolution as a candle `CustomOp2` (input, weight): im2col + gemm for the forward
//! pass and for both backward passes (3x3 stride-1 forwards, and so stride-1 input gradients, and
//! their weight gradients take Winograd F(4x4, 3x3) or F(2x2, 3x3) when the channels allow,
//! `winograd.rs`). candle's own backward goes
//! through a direct-loop conv_transpose2d for the input gradient, which dominates a training step.
//!
//! Work is split over the batch with rayon and each gemm runs single-threaded (no nested pools);
//! for batch sizes below the thread count the forward splits each image into blocks of output
//! rows, the col2im input gradient (and so the transposed convolution) into groups of channels,
//! and the weight gradient threads the gemm itself. Weight gradients are summed over fixed chunks
//! of the batch in a fixed order, so results do not depend on threads.

use std::mem::MaybeUninit;
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu_slice::{contiguous_f32, par_zeros, SharedOut};
use crate::phase_conv::PhaseConv;
use crate::scratch_pool::ScratchBuf;
use crate::winograd::Winograd3x3;

/// Stride, padding and dilation (same in both directions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

/// All sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
}

impl Dims {
    fn new(x: &[usize], wt: &[usize], g: ConvGeom) -> Result<Self> {
        let (&[b, ci, h, w], &[co, ci2, kh, kw]) = (x, wt) else {
            candle_core::bail!("conv2d: expected (B,C,H,W) input and (O,C,kh,kw) weight, got {x:?} and {wt:?}")
        };
        if ci != ci2 {
            candle_core::bail!("conv2d: input has {ci} channels, weight expects {ci2}");
        }
        let eff_h = g.dilation * (kh - 1) + 1;
        let eff_w = g.dilation * (kw - 1) + 1;
        if h + 2 * g.padding < eff_h || w + 2 * g.padding < eff_w {
            candle_core::bail!("conv2d: input {h}x{w} (padding {}) smaller than the kernel", g.padding);
        }
        let ho = (h + 2 * g.padding - eff_h) / g.stride + 1;
        let wo = (w + 2 * g.padding - eff_w) / g.stride + 1;
        Ok(Self { b, ci, h, w, co, kh, kw, ho, wo })
    }

    /// Rows of the im2col matrix: C_in * kh * kw.
    fn k(&self) -> usize {
        self.ci * self.kh * self.kw
    }

    fn hw_out(&self) -> usize {
        self.ho * self.wo
    }

    /// A 1x1, stride-1, unpadded convolution needs no im2col: the input is the column matrix.
    fn is_pointwise(&self, g: ConvGeom) -> bool {
        self.kh == 1 && self.kw == 1 && g.stride == 1 && g.padding == 0
    }
}

/// Column range [lo, hi) of output row positions whose input column ox * stride + off lies in
/// [0, w): the valid run of one (kernel column, output row) pair; the rest is padding.
fn valid_cols(off: isize, stride: usize, w: usize, wo: usize) -> (usize, usize) {
    // ox * s + off >= 0  <=>  ox >= ceil(-off / s);  ox * s + off < w  <=>  ox < ceil((w - off) / s)
    let ceil_div = |a: isize, s: isize| if a <= 0 { 0 } else { (a + s - 1) / s };
    let s = stride as isize;
    let lo = (ceil_div(-off, s) as usize).min(wo);
    let hi = (ceil_div(w as isize - off, s) as usize).clamp(lo, wo);
    (lo, hi)
}

/// Fills `cols` (C_in*kh*kw, rows.len() Wo) from one image `x` (C_in, H, W), for output rows
/// `rows` only, into rows of `cols` `ld` apart ((rows.len() Wo) used of each). Only the cells
/// that read the input are written: `cols` must already hold zeros where the padding falls
/// (per-row fills of one or two padding cells cost a memset call each and were a measurable part
/// of a training step). Row segments that fall wholly in the top or bottom padding are zeroed
/// here, since a buffer reused for other row ranges holds input there; left and right padding
/// cells sit at the same place for every range of one geometry, so a zeroed buffer keeps them
/// zero.
fn im2col_rows(x: &[f32], d: &Dims, g: ConvGeom, rows: std::ops::Range<usize>, ld: usize, cols: &mut [f32]) {
    let np = rows.len() * d.wo;
    for c in 0..d.ci {
        let plane = &x[c * d.h * d.w..(c + 1) * d.h * d.w];
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                let row = &mut cols[((c * d.kh + ky) * d.kw + kx) * ld..][..np];
                let off = (kx * g.dilation) as isize - g.padding as isize;
                let (lo, hi) = valid_cols(off, g.stride, d.w, d.wo);
                for (r, oy) in rows.clone().enumerate() {
                    let iy = (oy * g.stride + ky * g.dilation) as isize - g.padding as isize;
                    if iy < 0 || iy >= d.h as isize {
                        if rows.len() < d.ho {
                            row[r * d.wo..(r + 1) * d.wo].fill(0.0);
                        }
                        continue;
                    }
                    let src = &plane[iy as usize * d.w..(iy as usize + 1) * d.w];
                    let dst = &mut row[r * d.wo + lo..r * d.wo + hi];
                    let first = (lo * g.stride) as isize + off;
                    if g.stride == 1 {
                        dst.copy_from_slice(&src[first as usize..first as usize + (hi - lo)]);
                    } else if g.stride == 2 {
                        // Every other float of the exact span, as pairs whose first is kept (and
                        // the odd one out at the end): a form the compiler vectorises, which the
                        // generic `step_by` loop below was not (im2col was a third of a stride-2
                        // layer's time; model A's 32 -> 64 layer at batch 64, forward with bias
                        // and ReLU, medians of 41: 4.64-4.74 -> 3.97-4.03 ms).
                        let n = dst.len();
                        if n > 0 {
                            let pairs = src[first as usize..][..2 * n - 1].chunks_exact(2);
                            let last = pairs.remainder()[0];
                            for (v, p) in dst.iter_mut().zip(pairs) {
                                *v = p[0];
                            }
                            dst[n - 1] = last;
                        }
                    } else {
                        for (v, &sv) in dst.iter_mut().zip(src[first as usize..].iter().step_by(g.stride)) {
                            *v = sv;
                        }
                    }
                }
            }
        }
    }
}

/// Adds the columns `cols` (C_in*kh*kw, Ho*Wo) back into one image gradient `dx` (C_in, H, W).
fn col2im(cols: &[f32], d: &Dims, g: ConvGeom, dx: &mut [f32]) {
    let hw_out = d.hw_out();
    for c in 0..d.ci {
        let plane = &mut dx[c * d.h * d.w..(c + 1) * d.h * d.w];
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                let row = &cols[((c * d.kh + ky) * d.kw + kx) * hw_out..][..hw_out];
                let off = (kx * g.dilation) as isize - g.padding as isize;
                let (lo, hi) = valid_cols(off, g.stride, d.w, d.wo);
                let first = ((lo * g.stride) as isize + off) as usize;
                for oy in 0..d.ho {
                    let iy = (oy * g.stride + ky * g.dilation) as isize - g.padding as isize;
                    if iy < 0 || iy >= d.h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * d.w..(iy as usize + 1) * d.w][first..];
                    let src = &row[oy * d.wo + lo..oy * d.wo + hi];
                    if g.stride == 1 {
                        for (o, &v) in dst.iter_mut().zip(src) {
                            *o += v;
                        }
                    } else if g.stride == 2 && !src.is_empty() {
                        // As in `im2col_rows`: pairs of the exact span, the first of each taking
                        // a value, the odd one out at the end.
                        let n = src.len();
                        let mut pairs = dst[..2 * n - 1].chunks_exact_mut(2);
                        for (p, &v) in (&mut pairs).zip(src) {
                            p[0] += v;
                        }
                        pairs.into_remainder()[0] += src[n - 1];
                    } else {
                        for (o, &v) in dst.iter_mut().step_by(g.stride).zip(src) {
                            *o += v;
                        }
                    }
                }
            }
        }
    }
}

/// dst (m, n) = [dst +] lhs (m, k) x rhs (k, n), all given by strides (row stride, column stride).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
    threads: usize,
) {
    debug_assert!(dst.len() >= m * n);
    // SAFETY: the slices cover every element addressed by the given sizes and strides (checked by
    // construction at each call site), and dst does not alias lhs or rhs.
    unsafe { gemm_raw((m, n, k), dst.as_mut_ptr(), accumulate, (lhs, lhs_rs, lhs_cs), (rhs, rhs_rs, rhs_cs), threads) }
}

/// dst (m, n) = lhs (m, k) x rhs (k, n) into uninitialised memory (`dst` m n floats, rows n
/// apart; `lhs` and `rhs` with their row and column strides), returned initialised.
pub(crate) fn matmul_into<'a>(
    m: usize,
    n: usize,
    k: usize,
    dst: &'a mut [MaybeUninit<f32>],
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    threads: usize,
) -> &'a mut [f32] {
    assert_eq!(dst.len(), m * n, "matmul: dst has the wrong size");
    if m * n * k > 0 {
        assert!(lhs.0.len() > (m - 1) * lhs.1 + (k - 1) * lhs.2, "matmul: lhs too short");
        assert!(rhs.0.len() > (k - 1) * rhs.1 + (n - 1) * rhs.2, "matmul: rhs too short");
    }
    // SAFETY: the bounds are checked above, dst does not alias lhs or rhs, and without
    // `accumulate` the gemm only writes dst, every one of its m n elements.
    unsafe {
        gemm_raw((m, n, k), dst.as_mut_ptr().cast::<f32>(), false, lhs, rhs, threads);
        // SAFETY: initialised just above; MaybeUninit<f32> has f32's layout.
        &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32])
    }
}

/// The gemm crate's call behind `matmul` and `matmul_into`: dst (m, n), rows n apart,
/// = [dst +] lhs x rhs, lhs and rhs as (data, row stride, column stride). With `accumulate` false
/// the old dst is not read (its factor is ignored), so it may be uninitialised.
///
/// # Safety
/// `dst` must be valid for writes (and reads, with `accumulate`) of the m n elements, the slices
/// must cover every element their strides address, and dst must not alias them.
unsafe fn gemm_raw(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    accumulate: bool,
    (lhs, lhs_rs, lhs_cs): (&[f32], usize, usize),
    (rhs, rhs_rs, rhs_cs): (&[f32], usize, usize),
    threads: usize,
) {
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: as the caller guarantees.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

/// Threads for one gemm: all of them when the batch cannot keep them busy, else one.
pub(crate) fn gemm_threads(batch: usize) -> usize {
    let t = rayon::current_num_threads();
    if batch < t {
        t
    } else {
        1
    }
}

/// A stride-1 convolution of one image without im2col. The image is copied once into a
/// zero-padded plane per channel (C_in, Hp, Wp); then output position (oy, ox) of a "wide" output
/// with Wp columns per row reads, for kernel tap (ky, kx), the padded element at flat offset
/// oy Wp + ox + d (ky Wp + kx): every tap is one gemm, W_tap (C_out, C_in) x XP shifted
/// (C_in, Ho Wp), accumulated into the wide output, whose last Wp - Wo columns of each row are
/// discarded. This replaces im2col's k^2-times copy of the input by one padded copy.
struct ShiftedConv {
    d: Dims,
    g: ConvGeom,
    hp: usize,
    wp: usize,
}

/// Reusable per-task buffers of a `ShiftedConv`: the padded image and the wide output.
struct ShiftedBuffers {
    padded: Vec<f32>,
    wide: Vec<f32>,
}

impl ShiftedConv {
    fn new(d: &Dims, g: ConvGeom) -> Self {
        Self { d: *d, g, hp: d.h + 2 * g.padding, wp: d.w + 2 * g.padding }
    }

    /// Stride-1 kernels on large outputs. Measured with the `conv_timing` example (3x3, medians
    /// of 3 runs): 64x64 outputs 7.8-8.2 ms -> 6.7-7.8 ms per pass; 28x28, 14x14 and 16x16 were
    /// 5-15% slower than im2col (short rows waste more wide columns and gemm calls get small).
    /// A batch smaller than the thread count threads each gemm instead, and nine small threaded
    /// gemms lose to one: model B's batch-1 latency went 10.3 -> 9.3 ms with im2col there.
    fn pays_off(d: &Dims, g: ConvGeom) -> bool {
        g.stride == 1 && !d.is_pointwise(g) && d.hw_out() >= 2048 && d.b >= rayon::current_num_threads()
    }

    /// The reach of the last tap past a row's start: junk columns read up to this far beyond the
    /// padded planes, so the padded buffer carries that much zero slack at its end.
    fn slack(&self) -> usize {
        self.g.dilation * (self.d.kw - 1)
    }

    /// Zeroed buffers: the padding border is never written, so it stays zero across images.
    fn buffers(&self) -> ShiftedBuffers {
        ShiftedBuffers {
            padded: vec![0f32; self.d.ci * self.hp * self.wp + self.slack()],
            wide: vec![0f32; self.d.co * self.d.ho * self.wp],
        }
    }

    /// y (C_out, Ho, Wo) = conv of one image xb (C_in, H, W) with w (C_out, C_in, kh, kw).
    fn image(&self, xb: &[f32], w: &[f32], bufs: &mut ShiftedBuffers, y: &mut [f32], threads: usize) {
        let (d, g, hp, wp) = (&self.d, self.g, self.hp, self.wp);
        let p = g.padding;
        for c in 0..d.ci {
            for iy in 0..d.h {
                let dst = (c * hp + iy + p) * wp + p;
                bufs.padded[dst..dst + d.w].copy_from_slice(&xb[(c * d.h + iy) * d.w..][..d.w]);
            }
        }
        let (kk, n_wide) = (d.kh * d.kw, d.ho * wp);
        for tap in 0..kk {
            let shift = g.dilation * ((tap / d.kw) * wp + tap % d.kw);
            // W_tap: element (o, i) of w (C_out, C_in, kh, kw) at (o C_in + i) kk + tap.
            let lhs = &w[tap..];
            let rhs = &bufs.padded[shift..];
            matmul(d.co, n_wide, d.ci, &mut bufs.wide, tap > 0, lhs, d.ci * kk, kk, rhs, hp * wp, 1, threads);
        }
        for (yr, wr) in y.chunks_mut(d.wo).zip(bufs.wide.chunks(wp)) {
            yr.copy_from_slice(&wr[..d.wo]);
        }
    }
}

/// What a convolution does to each output image while it is still in cache: add a per-channel
/// bias, then optionally a ReLU (batch norm folded into the weights makes conv + BN + ReLU this).
#[derive(Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    pub(crate) bias: &'a [f32],
    pub(crate) relu: bool,
}

impl Epilogue<'_> {
    /// dst = src of output channel o, plus its bias and then ReLU when there is an epilogue, into
    /// fresh (uninitialised) floats; one loop per case, each of which vectorises (a branch per
    /// element did not).
    pub(crate) fn write_run(ep: Option<Epilogue>, o: usize, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        match ep {
            Some(Epilogue { bias, relu: true }) => {
                dst.iter_mut().zip(src).for_each(|(d, &v)| _ = d.write((v + bias[o]).max(0.0)))
            }
            Some(Epilogue { bias, relu: false }) => {
                dst.iter_mut().zip(src).for_each(|(d, &v)| _ = d.write(v + bias[o]))
            }
            None => _ = dst.write_copy_of_slice(src),
        }
    }

    /// y: (C_out, Ho Wo) of one image.
    fn apply(&self, y: &mut [f32], plane: usize) {
        for (yc, &b) in y.chunks_mut(plane).zip(self.bias) {
            if self.relu {
                yc.iter_mut().for_each(|v| *v = (*v + b).max(0.0));
            } else {
                yc.iter_mut().for_each(|v| *v += b);
            }
        }
    }
}

/// Widest output rows a stride-2 convolution takes `phase_conv` for.
const PHASE_MAX_WO: usize = 16;

/// Output positions from which a batch below the thread count runs Winograd by tile rows.
const WINOGRAD_ROWS_MIN_OUTPUTS: usize = 512;

/// The forward convolution of a batch, x: (B, C_in, H, W) and w: (C_out, C_in, kh, kw) as flat
/// slices -> (B, C_out, Ho, Wo) flat, with an optional epilogue per image.
/// With `keep`, a layer that runs as Winograd on the whole batch leaves its transformed input
/// there for `weight_grad` (`Conv2dForward::kept`).
fn forward_kernel(
    x: &[f32],
    w: &[f32],
    d: &Dims,
    g: ConvGeom,
    epilogue: Option<Epilogue>,
    keep: Option<&OnceLock<Vec<f32>>>,
) -> Vec<f32> {
    let (k, n) = (d.k(), d.hw_out());
    // Below the thread count a batch keeps one task per thread only by threading each gemm, and
    // F(2x2)'s 16 small gemms then lost to im2col's one (model A's batch-1 latency 3.7 -> 8.4 ms).
    if d.b >= rayon::current_num_threads() && Winograd3x3::applies(d.kh, d.kw, g.stride, g.dilation, d.ci, d.co) {
        let wino = Winograd3x3::new(d.b, d.ci, d.h, d.w, d.co, g.padding);
        let (len, kept_len) = (d.b * d.co * n, wino.kept_len());
        let mut out = Vec::with_capacity(len);
        let mut kept = keep.map(|_| Vec::with_capacity(kept_len));
        let kept_slots = kept.as_mut().map(|v: &mut Vec<f32>| &mut v.spare_capacity_mut()[..kept_len]);
        wino.forward(x, w, epilogue, &mut out.spare_capacity_mut()[..len], kept_slots);
        // SAFETY: `forward` writes every one of the `len` elements, and all of the kept V.
        unsafe { out.set_len(len) };
        if let (Some(cell), Some(mut v)) = (keep, kept) {
            // SAFETY: as above.
            unsafe { v.set_len(kept_len) };
            // A second forward of the same op (never done) would keep the first V.
            let _ = cell.set(v);
        }
        return out;
    }
    // With F(4x4) tiles, a batch below the thread count gains from Winograd split by tile rows
    // within the image, on outputs of 512 positions or more: batch-1 latency (medians of 5
    // alternating runs) A 3.47 -> 3.08 ms with its 28 px layers, 3.30 adding the 14 px ones (196
    // positions), 4.44 with all; B 11.21 -> 10.65 with its 64 and 32 px layers, 10.57 adding 16 px.
    if d.b < rayon::current_num_threads()
        && Winograd3x3::applies(d.kh, d.kw, g.stride, g.dilation, d.ci, d.co)
        && d.ho * d.wo >= WINOGRAD_ROWS_MIN_OUTPUTS
    {
        // This path and the spatial-block one below write every output element, so it starts
        // uninitialised: zeroed, its parallel fill was one more wake-up of the pool per layer
        // (memset ~2% of model B's batch-1 forward).
        let len = d.b * d.co * n;
        let mut out = Vec::with_capacity(len);
        Winograd3x3::new(d.b, d.ci, d.h, d.w, d.co, g.padding).forward_rows(
            x,
            w,
            epilogue,
            &mut out.spare_capacity_mut()[..len],
        );
        // SAFETY: `forward_rows` writes all `len` elements.
        unsafe { out.set_len(len) };
        return out;
    }
    if d.b < rayon::current_num_threads() && !d.is_pointwise(g) {
        let len = d.b * d.co * n;
        let mut out = Vec::with_capacity(len);
        spatial_blocks_forward(x, w, d, g, epilogue, &mut out.spare_capacity_mut()[..len]);
        // SAFETY: `spatial_blocks_forward` writes all `len` elements.
        unsafe { out.set_len(len) };
        return out;
    }
    let threads = gemm_threads(d.b);
    let finish = |y: &mut [f32]| {
        if let Some(e) = epilogue {
            e.apply(y, n)
        }
    };
    let len = d.b * d.co * n;
    if ShiftedConv::pays_off(d, g) {
        let mut out = par_zeros(len, d.co * n);
        let shifted = ShiftedConv::new(d, g);
        out.par_chunks_mut(d.co * n).enumerate().for_each_init(
            || shifted.buffers(),
            |bufs, (bi, y)| {
                let xb = &x[bi * d.ci * d.h * d.w..(bi + 1) * d.ci * d.h * d.w];
                shifted.image(xb, w, bufs, y, threads);
                finish(y);
            },
        );
        return out;
    }
    // The paths below write every output element, uninitialised before: zeroing them first was
    // ~1.5% of model A's batch-64 inference.
    let mut out = Vec::with_capacity(len);
    // Stride 2 through the input's phases (`phase_conv`) where output rows are short, so that
    // im2col's gather runs are short too: at batch 64, model A's 32 -> 64 layer at 28 px (Wo 14)
    // 2.25 -> 2.17 ms and its 64 -> 128 layer at 14 px (Wo 7) 2.23 -> 2.08 (medians of 40-60
    // calls, alternating runs), `hitomi bench` A inference 2132 -> 2178 img/s. With longer rows it
    // lost (batch 16: 16 -> 32 at 96 px 2.16 -> 2.32 ms, 4x4 32 -> 64 at 48 px 2.70 -> 3.04), as
    // it did for 1x1 kernels, which read one phase of the four it makes (0.64 -> 0.70 ms).
    if g.stride == 2 && g.dilation == 1 && d.kh >= 2 && d.kw >= 2 && d.wo <= PHASE_MAX_WO {
        let pc = PhaseConv::new(d.ci, d.h, d.w, d.co, (d.kh, d.kw), g.padding);
        out.spare_capacity_mut()[..len].par_chunks_mut(d.co * n).enumerate().for_each_init(
            || pc.buffers(),
            |bufs, (bi, y)| {
                let xb = &x[bi * d.ci * d.h * d.w..][..d.ci * d.h * d.w];
                pc.image(xb, w, bufs, y, epilogue, threads);
            },
        );
        // SAFETY: `image` writes every element of each image's output.
        unsafe { out.set_len(len) };
        return out;
    }
    if d.is_pointwise(g) || images_per_gemm(n, d.b) == 1 {
        out.spare_capacity_mut()[..len].par_chunks_mut(d.co * n).enumerate().for_each_init(
            || vec![0f32; if d.is_pointwise(g) { 0 } else { k * n }],
            |cols, (bi, y)| {
                let xb = &x[bi * d.ci * d.h * d.w..(bi + 1) * d.ci * d.h * d.w];
                let cols: &[f32] = if d.is_pointwise(g) {
                    xb
                } else {
                    im2col_rows(xb, d, g, 0..d.ho, n, cols);
                    cols
                };
                finish(matmul_into(d.co, n, k, y, (w, k, 1), (cols, n, 1), threads));
            },
        );
    } else {
        // `group` images per gemm: their columns side by side in `cols` (K, group Ho Wo), the
        // product (C_out, images Ho Wo) then copied out image by image, the epilogue applied
        // on the way.
        let group = images_per_gemm(n, d.b);
        let ld = group * n;
        out.spare_capacity_mut()[..len].par_chunks_mut(group * d.co * n).enumerate().for_each_init(
            || (vec![0f32; k * ld], vec![0f32; d.co * ld]),
            |(cols, prod), (gi, ys)| {
                let images = ys.len() / (d.co * n);
                let in_image = d.ci * d.h * d.w;
                for j in 0..images {
                    let xb = &x[(gi * group + j) * in_image..][..in_image];
                    im2col_rows(xb, d, g, 0..d.ho, ld, &mut cols[j * n..]);
                }
                let prod = &mut prod[..d.co * images * n];
                matmul(d.co, images * n, k, prod, false, w, k, 1, cols, ld, 1, threads);
                for (j, y) in ys.chunks_exact_mut(d.co * n).enumerate() {
                    for (o, run) in y.chunks_exact_mut(n).enumerate() {
                        Epilogue::write_run(epilogue, o, &prod[(o * images + j) * n..][..n], run);
                    }
                }
            },
        );
    }
    // SAFETY: each path above wrote all `len` elements (the gemm every element of its dst, the
    // grouped copy every element of each image's runs).
    unsafe { out.set_len(len) };
    out
}

/// Images per gemm of the im2col forward, for `n` output positions per image. The gemm crate's
/// AVX2 f32 kernel takes the positions 16 at a time, a remainder through a kernel of 8: when that
/// last kernel would be more than 5% padding, the fewest images whose positions fill whole
/// panels go into one gemm (at most the batch's share of one thread), else one image. Model A's
/// 64 -> 128 stride-2 layer at 7 px (49 positions, 1 left over; x1x6 was 11% of the samples of
/// A's stride-2 layers) at batch 64 went 4.30 -> 3.82 ms; its 32 -> 64 layer at 14 px (196
/// positions, 4 left over) lost more to copying the product out than it gained (3.85 -> 4.03 ms
/// at 1 image, 4.15 at 4).
fn images_per_gemm(n: usize, b: usize) -> usize {
    let padding = n.next_multiple_of(8) - n;
    if 20 * padding <= n {
        return 1;
    }
    (16 / gcd(n, 16)).min(b / rayon::current_num_threads()).max(1)
}

/// Greatest common divisor.
pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Column-buffer bytes per task of `spatial_blocks_forward`, within half a core's L2. Measured
/// on `hitomi bench` latencies (A / B, ms, three runs each): 256 KiB 3.30-3.38 / 11.0-11.6,
/// 512 KiB 3.41-3.99 / 11.6-12.5, 1 MiB 3.18-3.25 / 12.1-14.4; one threaded gemm per image
/// before: 3.9 / 15.3.
const COLUMN_BYTES_PER_BLOCK: usize = 256 * 1024;

/// The forward convolution of a batch smaller than the thread count (the latency case): each
/// image's output rows are cut into equal blocks whose column buffers hold about
/// COLUMN_BYTES_PER_BLOCK, and each block is one task, im2col of its rows + a single-threaded
/// gemm, whose rows the task then writes into `out` (all of `out`, which may come uninitialised).
/// One threaded gemm over the whole image synchronised its threads for every panel, and its
/// column buffer overflowed the cache.
/// x: (B, C_in, H, W), w: (C_out, C_in, kh, kw) -> out (B, C_out, Ho, Wo).
fn spatial_blocks_forward(
    x: &[f32],
    w: &[f32],
    d: &Dims,
    g: ConvGeom,
    epilogue: Option<Epilogue>,
    out: &mut [MaybeUninit<f32>],
) {
    let (k, n) = (d.k(), d.hw_out());
    // Equal blocks, each with a column buffer of about COLUMN_BYTES_PER_BLOCK.
    let positions = (COLUMN_BYTES_PER_BLOCK / (4 * k)).max(64);
    let rows_per_block = d.ho.div_ceil(n.div_ceil(positions)).max(1);
    let ld = rows_per_block * d.wo;
    let blocks: Vec<(usize, usize)> =
        (0..d.b).flat_map(|bi| (0..d.ho).step_by(rows_per_block).map(move |oy| (bi, oy))).collect();
    let out = SharedOut::new(out);
    blocks.par_iter().for_each_init(
        || vec![0f32; k * ld],
        |cols, &(bi, oy0)| {
            let rows = oy0..(oy0 + rows_per_block).min(d.ho);
            let np = rows.len() * d.wo;
            let xb = &x[bi * d.ci * d.h * d.w..(bi + 1) * d.ci * d.h * d.w];
            im2col_rows(xb, d, g, rows, ld, cols);
            // Written in full by the gemm (no accumulation), so a reused buffer.
            let mut y = ScratchBuf::take(d.co * np);
            matmul(d.co, np, k, &mut y, false, w, k, 1, cols, ld, 1, 1);
            if let Some(e) = epilogue {
                e.apply(&mut y, np);
            }
            // Each task places its rows itself: all of them copied in after the parallel pass,
            // on one thread, left the other core idle (model B's batch-1 latency 5.27 -> 5.07
            // ms, medians of 5 alternating runs).
            for (o, yo) in y.chunks_exact(np).enumerate() {
                // SAFETY: the blocks' (image, rows) ranges are disjoint, so are these runs.
                unsafe { out.write((bi * d.co + o) * n + oy0 * d.wo, yo) };
            }
        },
    );
}

/// y = conv2d(x, w): (B, C_in, H, W) x (C_out, C_in, kh, kw) -> (B, C_out, Ho, Wo).
struct Conv2dForward {
    geom: ConvGeom,
    /// Keep a Winograd layer's transformed input for the weight gradient (`conv2d_train`).
    keep: bool,
    /// That input, V (T, B tiles, C_in), from `Winograd3x3::forward`; unset when not kept or when
    /// the layer did not run as Winograd. It lives as long as the op, i.e. the graph.
    kept: OnceLock<Vec<f32>>,
}

impl Conv2dForward {
    fn new(geom: ConvGeom, keep: bool) -> Self {
        Self { geom, keep, kept: OnceLock::new() }
    }
}

impl CustomOp2 for Conv2dForward {
    fn name(&self) -> &'static str {
        "hitomi-conv2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(l1.dims(), l2.dims(), self.geom)?;
        let x = contiguous_f32(s1, l1, "conv2d input")?;
        let w = contiguous_f32(s2, l2, "conv2d weight")?;
        let out = forward_kernel(x, w, &d, self.geom, None, self.keep.then_some(&self.kept));
        Ok((CpuStorage::F32(out), Shape::from((d.b, d.co, d.ho, d.wo))))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = needed(x, || conv2d_input_grad(&grad, w, self.geom, x.dims4()?))?;
        let dw = needed(w, || {
            let op = Conv2dWeightGrad { geom: self.geom, w_dims: w.dims4()?, kept: self.kept.get().map(Vec::as_slice) };
            x.contiguous()?.apply_op2_no_bwd(&grad, &op)
        })?;
        Ok((dx, dw))
    }
}

/// dx of y = conv2d(x, w) from dy. With stride 1 and a square kernel, dx is itself a stride-1
/// convolution of dy with the kernel flipped in space and transposed in channels, padded by
/// d (k - 1) - p: the forward kernel's im2col + gemm, whose gemm has depth C_out k^2, runs 2-3x
/// faster than w^T dy (depth C_out) followed by col2im's scattered adds. Other geometries take
/// the col2im path.
/// dy: (B, C_out, Ho, Wo), w: (C_out, C_in, kh, kw) -> dx: x_dims = (B, C_in, H, W)
pub fn conv2d_input_grad(dy: &Tensor, w: &Tensor, g: ConvGeom, x_dims: (usize, usize, usize, usize)) -> Result<Tensor> {
    let (co, ci, kh, kw) = w.dims4()?;
    let reach = g.dilation * (kh - 1);
    if g.stride != 1 || kh != kw || g.padding > reach {
        return dy.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &Conv2dInputGrad { geom: g, x_dims });
    }
    let wv: Vec<f32> = w.flatten_all()?.to_vec1()?;
    let mut flipped = vec![0f32; wv.len()];
    let kk = kh * kw;
    for o in 0..co {
        for i in 0..ci {
            for t in 0..kk {
                // (i, o, ky, kx) <- (o, i, kh-1-ky, kw-1-kx): a reversed window index.
                flipped[(i * co + o) * kk + t] = wv[(o * ci + i) * kk + (kk - 1 - t)];
            }
        }
    }
    let wf = Tensor::from_vec(flipped, (ci, co, kh, kw), w.device())?;
    let geom = ConvGeom { stride: 1, padding: reach - g.padding, dilation: g.dilation };
    dy.contiguous()?.apply_op2_no_bwd(&wf, &Conv2dForward::new(geom, false))
}

/// dx from (dy, w): dcols = w^T dy per image, then col2im.
struct Conv2dInputGrad {
    geom: ConvGeom,
    x_dims: (usize, usize, usize, usize),
}

impl CustomOp2 for Conv2dInputGrad {
    fn name(&self) -> &'static str {
        "hitomi-conv2d-input-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.geom;
        let (b, ci, h, wd) = self.x_dims;
        let d = Dims::new(&[b, ci, h, wd], l2.dims(), g)?;
        let dy = contiguous_f32(s1, l1, "conv2d output gradient")?;
        let w = contiguous_f32(s2, l2, "conv2d weight")?;
        let (k, n) = (d.k(), d.hw_out());
        let mut dx = par_zeros(b * ci * h * wd, ci * h * wd);
        if b < rayon::current_num_threads() {
            input_grad_by_channels(dy, w, &d, g, &mut dx);
            return Ok((CpuStorage::F32(dx), Shape::from((b, ci, h, wd))));
        }
        let threads = gemm_threads(d.b);
        dx.par_chunks_mut(ci * h * wd).enumerate().for_each_init(
            || vec![0f32; if d.is_pointwise(g) { 0 } else { k * n }],
            |cols, (bi, dxb)| {
                let dyb = &dy[bi * d.co * n..(bi + 1) * d.co * n];
                // w^T: element (kk, c) of w (co, k) sits at c * k + kk.
                if d.is_pointwise(g) {
                    matmul(k, n, d.co, dxb, false, w, 1, k, dyb, n, 1, threads);
                } else {
                    matmul(k, n, d.co, cols, false, w, 1, k, dyb, n, 1, threads);
                    col2im(cols, &d, g, dxb);
                }
            },
        );
        Ok((CpuStorage::F32(dx), Shape::from((b, ci, h, wd))))
    }
}

/// `Conv2dInputGrad` for a batch below the thread count (a transposed convolution's batch-1
/// latency): each image's input channels are split into about two groups per thread, and each
/// group is one task, its rows of w^T dy (a single-threaded gemm) then its channels' col2im. One
/// gemm threaded inside and a serial col2im took 0.21-0.22 and 0.26-0.29 ms for model B's 2x2
/// stride-2 decoder layers at batch 1 (medians of 301 in a probe), this 0.14-0.16 and 0.24.
/// dy: (B, C_out, Ho, Wo), w: (C_out, C_in, kh, kw) -> dx (B, C_in, H, W), zeroed on entry.
fn input_grad_by_channels(dy: &[f32], w: &[f32], d: &Dims, g: ConvGeom, dx: &mut [f32]) {
    let (k, n, kk, plane) = (d.k(), d.hw_out(), d.kh * d.kw, d.h * d.w);
    let per = d.ci.div_ceil(2 * rayon::current_num_threads()).max(1);
    for (dyb, dxb) in dy.chunks_exact(d.co * n).zip(dx.chunks_exact_mut(d.ci * plane)) {
        dxb.par_chunks_mut(per * plane).enumerate().for_each(|(j, dxc)| {
            let (c0, nc) = (j * per, dxc.len() / plane);
            // Rows c0 kk .. (c0 + nc) kk of w^T (element (r, o) at o k + r).
            let wt = &w[c0 * kk..];
            if d.is_pointwise(g) {
                matmul(nc, n, d.co, dxc, false, wt, 1, k, dyb, n, 1, 1);
            } else {
                let mut cols = vec![0f32; nc * kk * n];
                matmul(nc * kk, n, d.co, &mut cols, false, wt, 1, k, dyb, n, 1, 1);
                col2im(&cols, &Dims { ci: nc, ..*d }, g, dxc);
            }
        });
    }
}

/// Images per partial sum of the weight gradient (fixed, so the sum order never changes).
const WGRAD_CHUNK: usize = 4;

/// Least depth (output positions) of one weight-gradient gemm; smaller images are grouped.
/// Measured (medians of 21, alternating binaries): model A's 7x7 layer 7.7-8.8 -> 7.1-8.1 ms
/// with groups of 4; 512 (groups of 11 at 7x7, 3 at 14x14) made the 14x14 layer 10% slower,
/// its 11 chunks splitting unevenly over 2 threads.
const WGRAD_DEPTH: usize = 192;

/// dw of y = conv2d(x, w) from dy. x: (B, C_in, H, W), dy: (B, C_out, Ho, Wo) -> w_dims.
pub fn conv2d_weight_grad(
    x: &Tensor,
    dy: &Tensor,
    g: ConvGeom,
    w_dims: (usize, usize, usize, usize),
) -> Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(&dy.contiguous()?, &Conv2dWeightGrad { geom: g, w_dims, kept: None })
}

/// dw from (x, dy): sum over images of dy_b cols_b^T.
struct Conv2dWeightGrad<'a> {
    geom: ConvGeom,
    w_dims: (usize, usize, usize, usize),
    /// Winograd's transformed x, if the forward kept it (`Conv2dForward::kept`).
    kept: Option<&'a [f32]>,
}

impl CustomOp2 for Conv2dWeightGrad<'_> {
    fn name(&self) -> &'static str {
        "hitomi-conv2d-weight-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.geom;
        let (co, ci, kh, kw) = self.w_dims;
        let d = Dims::new(l1.dims(), &[co, ci, kh, kw], g)?;
        let x = contiguous_f32(s1, l1, "conv2d input")?;
        let dy = contiguous_f32(s2, l2, "conv2d output gradient")?;
        // The layers whose forward runs as Winograd take it for the weight gradient too.
        if d.b >= rayon::current_num_threads() && Winograd3x3::applies(kh, kw, g.stride, g.dilation, ci, co) {
            let dw = Winograd3x3::new(d.b, ci, d.h, d.w, co, g.padding).weight_grad(x, dy, self.kept);
            return Ok((CpuStorage::F32(dw), Shape::from((co, ci, kh, kw))));
        }
        let (k, n) = (d.k(), d.hw_out());
        // Small images are batched into one gemm of depth >= WGRAD_DEPTH: a gemm of depth 49
        // (7x7) re-read and re-wrote the whole (k, co) accumulator for few products.
        let group = if d.is_pointwise(g) { 1 } else { WGRAD_DEPTH.div_ceil(n) };
        let chunk_len = group * WGRAD_CHUNK.div_ceil(group);
        let ld = group * n;
        let n_chunks = d.b.div_ceil(chunk_len);
        let threads = gemm_threads(n_chunks);
        let partials: Vec<Vec<f32>> = (0..n_chunks)
            .into_par_iter()
            .map(|chunk| {
                let mut acc = vec![0f32; co * k];
                let mut cols = vec![0f32; if d.is_pointwise(g) { 0 } else { k * ld }];
                let mut dyc = vec![0f32; if group > 1 { co * ld } else { 0 }];
                let images = chunk * chunk_len..((chunk + 1) * chunk_len).min(d.b);
                for (gi, b0) in images.clone().step_by(group).enumerate() {
                    let b1 = (b0 + group).min(images.end);
                    let depth = (b1 - b0) * n;
                    for bi in b0..b1 {
                        let xb = &x[bi * ci * d.h * d.w..(bi + 1) * ci * d.h * d.w];
                        if !d.is_pointwise(g) {
                            im2col_rows(xb, &d, g, 0..d.ho, ld, &mut cols[(bi - b0) * n..]);
                        }
                        if group > 1 {
                            let dyb = &dy[bi * co * n..(bi + 1) * co * n];
                            for (o, dyo) in dyb.chunks_exact(n).enumerate() {
                                dyc[o * ld + (bi - b0) * n..][..n].copy_from_slice(dyo);
                            }
                        }
                    }
                    let colsr: &[f32] = if d.is_pointwise(g) { &x[b0 * ci * n..(b0 + 1) * ci * n] } else { &cols };
                    let dyr: &[f32] = if group > 1 { &dyc } else { &dy[b0 * co * n..(b0 + 1) * co * n] };
                    // dw^T (k, co) += cols (k, depth) dy^T, dy^T's element (p, o) at o * ld + p.
                    matmul(k, co, depth, &mut acc, gi > 0, colsr, ld, 1, dyr, 1, ld, threads);
                }
                acc
            })
            .collect();
        let mut dw_t = vec![0f32; co * k];
        for p in &partials {
            for (a, b) in dw_t.iter_mut().zip(p) {
                *a += b;
            }
        }
        let mut dw = vec![0f32; co * k];
        for (kk, row) in dw_t.chunks(co).enumerate() {
            for (o, &v) in row.iter().enumerate() {
                dw[o * k + kk] = v;
            }
        }
        Ok((CpuStorage::F32(dw), Shape::from((co, ci, kh, kw))))
    }
}

/// conv2d with hitomi's CPU kernels (f32, groups 1); other devices and dtypes use candle's.
/// xs: (B, C_in, H, W), w: (C_out, C_in, kh, kw) -> (B, C_out, Ho, Wo)
pub fn conv2d(xs: &Tensor, w: &Tensor, geom: ConvGeom) -> Result<Tensor> {
    if !xs.device().is_cpu() || xs.dtype() != DType::F32 || w.dtype() != DType::F32 {
        return xs.conv2d(w, geom.padding, geom.stride, geom.dilation, 1);
    }
    xs.contiguous()?.apply_op2(&w.contiguous()?, Conv2dForward::new(geom, false))
}

/// `conv2d` for a training step: a layer that runs as Winograd keeps its transformed input
/// (2.25 floats per input float under F(4x4)) until the graph is dropped, and its weight
/// gradient reuses it instead of transforming the input again.
/// xs: (B, C_in, H, W), w: (C_out, C_in, kh, kw) -> (B, C_out, Ho, Wo)
pub fn conv2d_train(xs: &Tensor, w: &Tensor, geom: ConvGeom) -> Result<Tensor> {
    if !xs.device().is_cpu() || xs.dtype() != DType::F32 || w.dtype() != DType::F32 {
        return xs.conv2d(w, geom.padding, geom.stride, geom.dilation, 1);
    }
    xs.contiguous()?.apply_op2(&w.contiguous()?, Conv2dForward::new(geom, true))
}

/// y = max(conv2d(x, w) + bias, 0) (or without the max): the inference form of conv + BN + ReLU
/// once the norm is folded into w and bias. Differentiable in all three inputs, so folding keeps
/// gradients (FGSM runs eval-mode models backwards).
struct Conv2dBiasAct {
    geom: ConvGeom,
    relu: bool,
}

impl candle_core::CustomOp3 for Conv2dBiasAct {
    fn name(&self) -> &'static str {
        "hitomi-conv2d-bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = Dims::new(l1.dims(), l2.dims(), self.geom)?;
        let x = contiguous_f32(s1, l1, "conv2d input")?;
        let w = contiguous_f32(s2, l2, "conv2d weight")?;
        let bias = contiguous_f32(s3, l3, "conv2d bias")?;
        if bias.len() != d.co {
            candle_core::bail!("conv2d: bias has {} values for {} output channels", bias.len(), d.co);
        }
        let out = forward_kernel(x, w, &d, self.geom, Some(Epilogue { bias, relu: self.relu }), None);
        Ok((CpuStorage::F32(out), Shape::from((d.b, d.co, d.ho, d.wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = if self.relu { crate::relu_op::relu_backward(res, grad)? } else { grad.contiguous()? };
        let dx = needed(x, || conv2d_input_grad(&g, w, self.geom, x.dims4()?))?;
        let dw = needed(w, || conv2d_weight_grad(x, &g, self.geom, w.dims4()?))?;
        let db = crate::channel_bias::channel_sums(&g)?;
        Ok((dx, dw, Some(db)))
    }
}

/// conv2d(xs, w) + bias, then a ReLU when `relu` is set, with the bias and ReLU applied to each
/// output image right after its gemm. xs: (B, C_in, H, W), w: (C_out, C_in, kh, kw),
/// bias: (C_out) -> (B, C_out, Ho, Wo)
pub fn conv2d_bias_act(xs: &Tensor, w: &Tensor, bias: &Tensor, geom: ConvGeom, relu: bool) -> Result<Tensor> {
    if !xs.device().is_cpu() || xs.dtype() != DType::F32 || w.dtype() != DType::F32 || bias.dtype() != DType::F32 {
        let c = bias.dims1()?;
        let y = conv2d(xs, w, geom)?.broadcast_add(&bias.reshape((1, c, 1, 1))?)?;
        return if relu { y.relu() } else { Ok(y) };
    }
    xs.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, Conv2dBiasAct { geom, relu })
}

/// The gradient `f` computes for `arg`, or None when nothing upstream of `arg` needs one (it is
/// neither a variable nor computed from one: a network's input images, a frozen weight), which
/// candle's backward pass then skips. The stem's input gradient was 1.6 ms of model A's
/// ~137 ms training step (`conv_timing`); skipped, `hitomi bench` A train 449 -> 459 img/s,
/// B 79.7 -> 80.6 (medians of 7 and 5 alternating runs).
fn needed(arg: &Tensor, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    if arg.track_op() {
        f().map(Some)
    } else {
        Ok(None)
    }
}

/// Transposed convolution geometry: the convolution it is the adjoint of, plus output padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTransposeGeom {
    pub stride: usize,
    pub padding: usize,
    pub output_padding: usize,
    pub dilation: usize,
}

/// y = conv_transpose2d(x, w), the adjoint of conv2d with the same weight: its forward is the
/// convolution's input gradient, its input gradient is a convolution, and its weight gradient is
/// the convolution's weight gradient with the roles of input and output swapped.
struct ConvTranspose2dForward(ConvTransposeGeom);

impl ConvTranspose2dForward {
    fn conv_geom(&self) -> ConvGeom {
        ConvGeom { stride: self.0.stride, padding: self.0.padding, dilation: self.0.dilation }
    }

    /// (H_in) -> (H_out) = (H_in - 1) s - 2p + d (k - 1) + output_padding + 1
    fn out_size(&self, n: usize, k: usize) -> Result<usize> {
        let g = self.0;
        let full = (n - 1) * g.stride + g.dilation * (k - 1) + g.output_padding + 1;
        if full <= 2 * g.padding {
            candle_core::bail!("conv_transpose2d: padding {} too large for input side {n}", g.padding);
        }
        Ok(full - 2 * g.padding)
    }
}

impl CustomOp2 for ConvTranspose2dForward {
    fn name(&self) -> &'static str {
        "hitomi-conv-transpose2d"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, ci, h, w) = l1.shape().dims4()?;
        let (wci, co, kh, kw) = l2.shape().dims4()?;
        if ci != wci {
            candle_core::bail!("conv_transpose2d: input has {ci} channels, weight expects {wci}");
        }
        if self.0.output_padding >= self.0.stride.max(self.0.dilation) {
            candle_core::bail!("conv_transpose2d: output_padding must be smaller than stride or dilation");
        }
        let x_dims = (b, co, self.out_size(h, kh)?, self.out_size(w, kw)?);
        // The weight (C_in, C_out, k, k) read as a conv weight (C_out_conv = C_in, C_in_conv = C_out).
        Conv2dInputGrad { geom: self.conv_geom(), x_dims }.cpu_fwd(s1, l1, s2, l2)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = needed(x, || grad.apply_op2_no_bwd(w, &Conv2dForward::new(self.conv_geom(), false)))?;
        let dw = needed(w, || {
            let op = Conv2dWeightGrad { geom: self.conv_geom(), w_dims: w.dims4()?, kept: None };
            grad.apply_op2_no_bwd(x, &op)
        })?;
        Ok((dx, dw))
    }
}

/// Transposed convolution with hitomi's CPU kernels (f32); other devices and dtypes use candle's.
/// xs: (B, C_in, H, W), w: (C_in, C_out, k, k) -> (B, C_out, (H-1)s - 2p + d(k-1) + op + 1, ...)
pub fn conv_transpose2d(xs: &Tensor, w: &Tensor, geom: ConvTransposeGeom) -> Result<Tensor> {
    if !xs.device().is_cpu() || xs.dtype() != DType::F32 || w.dtype() != DType::F32 {
        return xs.conv_transpose2d(w, geom.padding, geom.output_padding, geom.stride, geom.dilation);
    }
    xs.contiguous()?.apply_op2(&w.contiguous()?, ConvTranspose2dForward(geom))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use hitomi_core::testing::assert_close;

    /// A column buffer reused across row blocks (the spatial-block forward) must give each block
    /// exactly its rows of the full im2col, whichever block used the buffer before: the top and
    /// bottom blocks read padding where a middle block left input values.
    #[test]
    fn im2col_row_blocks_match_the_full_matrix_in_any_order() {
        for (stride, h, w) in [(1, 7, 9), (2, 9, 8)] {
            let g = ConvGeom { stride, padding: 1, dilation: 1 };
            let d = Dims::new(&[1, 2, h, w], &[1, 2, 3, 3], g).unwrap();
            let x: Vec<f32> = (0..2 * h * w).map(|i| 1.0 + i as f32).collect();
            let mut full = vec![0f32; d.k() * d.hw_out()];
            im2col_rows(&x, &d, g, 0..d.ho, d.hw_out(), &mut full);
            let rows_per_block = 2;
            let ld = rows_per_block * d.wo;
            let blocks: Vec<usize> = (0..d.ho).step_by(rows_per_block).collect();
            for &before in &blocks {
                for &after in &blocks {
                    let mut cols = vec![0f32; d.k() * ld];
                    for oy0 in [before, after] {
                        im2col_rows(&x, &d, g, oy0..(oy0 + rows_per_block).min(d.ho), ld, &mut cols);
                    }
                    let np = (rows_per_block.min(d.ho - after)) * d.wo;
                    for r in 0..d.k() {
                        let want = &full[r * d.hw_out() + after * d.wo..][..np];
                        assert_eq!(
                            &cols[r * ld..][..np],
                            want,
                            "stride {stride}: block {after} after {before}, row {r}"
                        );
                    }
                }
            }
        }
    }

    /// Strides, paddings and dilations beyond the golden cases (where im2col's valid column runs
    /// start and end at odd offsets, where large outputs take the shifted gemms, and where
    /// channel counts in eighths take Winograd), with a batch of several images so the column
    /// buffer is reused. The forward is checked against candle's conv2d; the gradients by the adjoint
    /// identities <dL/dx, v> = <conv(v, w), dL/dy> and <dL/dw, u> = <conv(x, u), dL/dy> for random
    /// v and u (candle's own backward fails on some of these shapes).
    #[test]
    fn conv2d_matches_candle_for_odd_geometries() {
        let dev = Device::Cpu;
        let dot = |a: &Tensor, b: &Tensor| (a * b).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        // A dot product's rounding scales with the sum of its terms' sizes, not with the sum
        // itself, which cancels: the identities are checked relative to that.
        let size = |a: &Tensor, b: &Tensor| dot(&a.abs().unwrap(), &b.abs().unwrap());
        // The last three have outputs of over 2,048 positions: the shifted-gemm path.
        // (k, stride, padding, dilation, h, w, c_in, c_out)
        let cases = [
            (3, 3, 2, 1, 11, 14, 2, 4),
            (3, 1, 2, 2, 9, 8, 2, 4),
            (5, 2, 1, 2, 13, 12, 2, 4),
            (2, 2, 1, 1, 7, 9, 2, 4),
            (1, 3, 0, 1, 10, 8, 2, 4),
            (3, 1, 1, 1, 48, 50, 2, 4),
            (3, 1, 2, 2, 46, 47, 2, 4),
            (5, 1, 1, 1, 50, 52, 2, 4),
            // Channels in eighths: the Winograd path, forward, (stride 1) input gradient and
            // weight gradient.
            (3, 1, 1, 1, 9, 10, 8, 16),
            (3, 1, 0, 1, 7, 7, 16, 8),
            // 624 outputs: at batch 1 the Winograd tile-row tasks.
            (3, 1, 1, 1, 24, 26, 8, 16),
        ];
        // Batch 1 (below the thread count) takes the spatial-block forward instead.
        for (batch, (k, stride, padding, dilation, h, w, ci, co)) in cases.into_iter().flat_map(|c| [(3, c), (1, c)]) {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (batch, ci, h, w), &dev).unwrap()).unwrap();
            let wt = Var::from_tensor(&Tensor::randn(0f32, 1.0, (co, ci, k, k), &dev).unwrap()).unwrap();
            let geom = ConvGeom { stride, padding, dilation };
            let ours = conv2d(&x, &wt, geom).unwrap();
            let theirs = x.conv2d(&wt, padding, stride, dilation, 1).unwrap();
            let case = format!("b{batch} k{k} s{stride} p{padding} d{dilation} {ci}->{co}");
            assert_close(&format!("{case}: output"), &ours, &theirs, 0.0, 1e-5, true).unwrap();
            let probe = Tensor::randn(0f32, 1.0, ours.dims(), &dev).unwrap();
            let grads = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let v = Tensor::randn(0f32, 1.0, x.dims(), &dev).unwrap();
            let u = Tensor::randn(0f32, 1.0, wt.dims(), &dev).unwrap();
            let (dx, dw) = (grads.get(&x).unwrap(), grads.get(&wt).unwrap());
            // The training form (Winograd keeps its transformed input for the weight gradient)
            // gives the same floats.
            let trained = conv2d_train(&x, &wt, geom).unwrap();
            let trained_grads = (&trained * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let floats = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(floats(&trained), floats(&ours), "{case}: training form's output");
            assert_eq!(floats(trained_grads.get(&x).unwrap()), floats(dx), "{case}: training form's dx");
            assert_eq!(floats(trained_grads.get(&wt).unwrap()), floats(dw), "{case}: training form's dw");
            let (conv_v, conv_u) = (conv2d(&v, &wt, geom).unwrap(), conv2d(&x, &u, geom).unwrap());
            for (name, lhs, rhs, scale) in [
                ("input", dot(dx, &v), dot(&conv_v, &probe), size(dx, &v).max(size(&conv_v, &probe))),
                ("weight", dot(dw, &u), dot(&conv_u, &probe), size(dw, &u).max(size(&conv_u, &probe))),
            ] {
                assert!((lhs - rhs).abs() <= 1e-5 * scale, "{case}: grad {name}: {lhs} vs {rhs} (terms {scale})");
            }
        }
    }

    /// A transposed convolution at batch 1 splits each image's output channels into groups
    /// (`input_grad_by_channels`), the last one short: it matches candle's, for a 2x2 stride-2
    /// kernel (col2im) and a 1x1 one (the gemm alone), and batch 2 (one task per image).
    #[test]
    fn transposed_conv_by_channel_groups_matches_candle() {
        let dev = Device::Cpu;
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        // (batch, k, stride, c_in, c_out, side): 10 output channels are groups of 3, 3, 3, 1.
        for (b, k, stride, ci, co, side) in
            [(1, 2, 2, 6, 10, 5), (1, 1, 1, 4, 10, 6), (1, 3, 2, 5, 10, 4), (2, 2, 2, 6, 10, 5)]
        {
            let x = Tensor::randn(0f32, 1.0, (b, ci, side, side), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (ci, co, k, k), &dev).unwrap();
            let geom = ConvTransposeGeom { stride, padding: 0, output_padding: 0, dilation: 1 };
            let want = x.conv_transpose2d(&w, 0, 0, stride, 1).unwrap();
            let ours = pool.install(|| conv_transpose2d(&x, &w, geom).unwrap());
            let case = format!("b{b} k{k} s{stride} {ci}->{co}");
            assert_close(&case, &ours, &want, 0.0, 1e-5, true).unwrap();
        }
    }

    /// Several images per gemm (outputs whose positions leave a ragged last panel), the last
    /// group short, with and without bias and ReLU: each image's outputs land in its own place.
    #[test]
    fn grouped_im2col_forward_matches_candle() {
        let dev = Device::Cpu;
        // On two threads whatever the machine, so that the batch's share per thread allows groups.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        // (batch, k, stride, padding, side, c_in, c_out): 7 x 7 = 49 and 5 x 5 = 25 positions.
        for (b, k, stride, padding, side, ci, co) in [(7, 3, 2, 1, 14, 3, 5), (9, 1, 2, 0, 10, 4, 3)] {
            let geom = ConvGeom { stride, padding, dilation: 1 };
            let x = Tensor::randn(0f32, 1.0, (b, ci, side, side), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (co, ci, k, k), &dev).unwrap();
            let bias = Tensor::randn(0f32, 1.0, co, &dev).unwrap();
            let plain = x.conv2d(&w, padding, stride, 1, 1).unwrap();
            let n = plain.dim(2).unwrap() * plain.dim(3).unwrap();
            pool.install(|| {
                let group = images_per_gemm(n, b);
                assert!(group > 1 && b % group != 0, "b{b} k{k}: {group} images per gemm");
                let case = format!("b{b} k{k} s{stride} {ci}->{co}, {group} per gemm");
                assert_close(&case, &conv2d(&x, &w, geom).unwrap(), &plain, 0.0, 1e-5, true).unwrap();
                let biased = plain.broadcast_add(&bias.reshape((1, co, 1, 1)).unwrap()).unwrap();
                for relu in [false, true] {
                    let ours = conv2d_bias_act(&x, &w, &bias, geom, relu).unwrap();
                    let want = if relu { biased.relu().unwrap() } else { biased.clone() };
                    assert_close(&format!("{case}, bias, relu {relu}"), &ours, &want, 0.0, 1e-5, true).unwrap();
                }
            });
        }
    }

    /// The backward pass computes no gradient for an input nothing upstream needs (an image, a
    /// frozen weight) and the same gradients as before for those that do.
    #[test]
    fn gradients_only_where_a_variable_needs_them() {
        let dev = Device::Cpu;
        let geom = ConvGeom { stride: 1, padding: 1, dilation: 1 };
        let x = Tensor::randn(0f32, 1.0, (2, 8, 6, 6), &dev).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (8, 8, 3, 3), &dev).unwrap()).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let bias = Var::from_tensor(&Tensor::randn(0f32, 1.0, 8, &dev).unwrap()).unwrap();
        let plain = w.as_tensor().clone().detach();
        /// (input, weight) -> output of one op under test.
        type Op<'a> = Box<dyn Fn(&Tensor, &Tensor) -> Tensor + 'a>;
        let cases: [(&str, Op); 3] = [
            ("conv2d", Box::new(|x, w| conv2d(x, w, geom).unwrap())),
            ("conv2d_bias_act", Box::new(|x, w| conv2d_bias_act(x, w, &bias, geom, true).unwrap())),
            (
                "conv_transpose2d",
                Box::new(|x, w| {
                    let g = ConvTransposeGeom { stride: 2, padding: 1, output_padding: 0, dilation: 1 };
                    conv_transpose2d(x, w, g).unwrap()
                }),
            ),
        ];
        for (name, f) in &cases {
            let from_image = f(&x, &w).sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert!(from_image.get(&x).is_none(), "{name}: no gradient for a plain input");
            let from_var = f(xv.as_tensor(), &w).sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let (dw_a, dw_b) = (from_image.get(&w).unwrap(), from_var.get(&w).unwrap());
            assert_close(name, dw_a, dw_b, 0.0, 1e-6, true).unwrap();
            assert!(from_var.get(&xv).is_some(), "{name}: the input gradient of a variable");
            let frozen = f(xv.as_tensor(), &plain).sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert!(frozen.get(&plain).is_none(), "{name}: no gradient for a frozen weight");
            let (dx_a, dx_b) = (frozen.get(&xv).unwrap(), from_var.get(&xv).unwrap());
            assert_close(name, dx_a, dx_b, 0.0, 1e-6, true).unwrap();
        }
    }
}
