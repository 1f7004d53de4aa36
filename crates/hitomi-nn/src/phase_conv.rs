//! Stride-2 convolution through the input's four phases: the zero-padded image split into its
//! even/odd rows x even/odd columns, (2, 2, C_in, hq, wq). Output (oy, ox) at tap (ky, kx) reads
//! padded pixel (2 oy + ky, 2 ox + kx) = phase (ky mod 2, kx mod 2) at (oy + ky / 2, ox + kx / 2),
//! a stride-1 shift, so every im2col row of a "wide" output with wq columns per row is one
//! contiguous copy of Ho wq floats out of a phase plane. im2col proper gathers every other float in
//! runs of Wo, one run per (channel, tap, output row): for model A's 32 -> 64 layer at 28 px, 4,032
//! runs of 14 floats per image, a third of the layer's time; here 288 copies of 210 floats plus one
//! pass that deinterleaves the input. The wq - Wo extra columns of each wide row are computed by the
//! gemm and dropped. `conv_op` takes this path for output rows of at most 16: with longer rows
//! im2col's runs are long enough that the extra pass and columns cost more than they save.

use std::mem::MaybeUninit;

use crate::conv_op::{matmul, Epilogue};

/// One stride-2, undilated convolution of images (C_in, H, W) with padding p and a
/// (C_out, C_in, kh, kw) kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PhaseConv {
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    pad: usize,
    ho: usize,
    wo: usize,
    /// Phase plane sides: Ho + (kh - 1) / 2 rows, Wo + (kw - 1) / 2 columns, every position a tap
    /// reads.
    hq: usize,
    wq: usize,
}

/// Per-task buffers: the phases (written in their interior only, so the padding stays zero), the
/// wide columns (C_in kh kw, Ho wq) and the wide product (C_out, Ho wq).
pub(crate) struct PhaseBuffers {
    phases: Vec<f32>,
    cols: Vec<f32>,
    wide: Vec<f32>,
}

impl PhaseConv {
    /// Sizes as the convolution's: ho = (h + 2 pad - kh) / 2 + 1 (callers check the kernel fits).
    pub(crate) fn new(ci: usize, h: usize, w: usize, co: usize, (kh, kw): (usize, usize), pad: usize) -> Self {
        let (ho, wo) = ((h + 2 * pad - kh) / 2 + 1, (w + 2 * pad - kw) / 2 + 1);
        Self { ci, h, w, co, kh, kw, pad, ho, wo, hq: ho + (kh - 1) / 2, wq: wo + (kw - 1) / 2 }
    }

    /// The floats of one phase plane.
    fn plane(&self) -> usize {
        self.hq * self.wq
    }

    /// Zeroed buffers. The last plane has (kw - 1) / 2 floats of slack: the junk columns of the
    /// last wide row read that far past it.
    pub(crate) fn buffers(&self) -> PhaseBuffers {
        let n_wide = self.ho * self.wq;
        PhaseBuffers {
            phases: vec![0f32; 4 * self.ci * self.plane() + (self.kw - 1) / 2],
            cols: vec![0f32; self.ci * self.kh * self.kw * n_wide],
            wide: vec![0f32; self.co * n_wide],
        }
    }

    /// y (C_out, Ho, Wo) = conv of one image xb (C_in, H, W) with w, then the epilogue; every
    /// element of y is written.
    pub(crate) fn image(
        &self,
        xb: &[f32],
        w: &[f32],
        bufs: &mut PhaseBuffers,
        y: &mut [MaybeUninit<f32>],
        epilogue: Option<Epilogue>,
        threads: usize,
    ) {
        let (ci, plane, wq, p) = (self.ci, self.plane(), self.wq, self.pad);
        // Phase (a, b) of channel c at ((2 a + b) C_in + c) plane; padded row py = iy + p is row
        // py / 2 of the phases with a = py mod 2, and likewise for columns. Rows and columns past
        // hq, wq are read by no tap.
        for c in 0..ci {
            for iy in 0..self.h {
                let (a, i) = ((iy + p) % 2, (iy + p) / 2);
                if i >= self.hq {
                    continue;
                }
                let src = &xb[(c * self.h + iy) * self.w..][..self.w];
                for b in 0..2 {
                    // Input columns ix with (ix + p) mod 2 = b, from the first such one.
                    let first = (b + 2 - p % 2) % 2;
                    let j0 = (first + p) / 2;
                    let row = &mut bufs.phases[((2 * a + b) * ci + c) * plane + i * wq..][..wq];
                    let n = (wq - j0).min((self.w - first).div_ceil(2));
                    if n == 0 {
                        continue;
                    }
                    // The first of each pair, the odd one out at the end: a form the compiler
                    // vectorises, unlike `step_by(2)` (scalar loads and stores were a third of
                    // this function's samples).
                    let pairs = src[first..][..2 * n - 1].chunks_exact(2);
                    let last = pairs.remainder()[0];
                    for (dst, pair) in row[j0..j0 + n].iter_mut().zip(pairs) {
                        *dst = pair[0];
                    }
                    row[j0 + n - 1] = last;
                }
            }
        }
        let n_wide = self.ho * wq;
        let (kh, kw) = (self.kh, self.kw);
        for c in 0..ci {
            for ky in 0..kh {
                for kx in 0..kw {
                    let start = ((2 * (ky % 2) + kx % 2) * ci + c) * plane + (ky / 2) * wq + kx / 2;
                    let r = (c * kh + ky) * kw + kx;
                    bufs.cols[r * n_wide..][..n_wide].copy_from_slice(&bufs.phases[start..][..n_wide]);
                }
            }
        }
        let k = ci * kh * kw;
        matmul(self.co, n_wide, k, &mut bufs.wide, false, w, k, 1, &bufs.cols, n_wide, 1, threads);
        let (ho, wo) = (self.ho, self.wo);
        for o in 0..self.co {
            for oy in 0..ho {
                let src = &bufs.wide[o * n_wide + oy * wq..][..wo];
                Epilogue::write_run(epilogue, o, src, &mut y[(o * ho + oy) * wo..][..wo]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};
    use hitomi_core::testing::assert_close;

    /// Against candle's convolution, on odd and even sides, paddings 0-2 and kernels 1-5 wide (odd
    /// and even), with and without the epilogue; NaN marks an output element left unwritten.
    #[test]
    fn matches_direct_convolution() {
        let dev = Device::Cpu;
        for (ci, co, h, w, kh, kw, pad, relu) in [
            (3, 5, 28, 28, 3, 3, 1, false),
            (4, 8, 9, 12, 3, 3, 1, true),
            (2, 3, 10, 7, 3, 3, 0, false),
            (3, 4, 11, 11, 5, 5, 2, true),
            (2, 2, 8, 9, 1, 1, 0, false),
            (2, 3, 7, 8, 3, 1, 1, false),
            // Even kernels: a 4x4 stride-2 transposed conv's input gradient is this convolution.
            (3, 2, 12, 10, 4, 4, 1, true),
            (2, 3, 9, 9, 2, 2, 0, false),
        ] {
            let x = Tensor::randn(0f32, 1.0, (2, ci, h, w), &dev).unwrap();
            let wt = Tensor::randn(0f32, 1.0, (co, ci, kh, kw), &dev).unwrap();
            let bias = Tensor::randn(0f32, 1.0, co, &dev).unwrap();
            let want =
                x.conv2d(&wt, pad, 2, 1, 1).unwrap().broadcast_add(&bias.reshape((1, co, 1, 1)).unwrap()).unwrap();
            let want = if relu { want.relu().unwrap() } else { want };
            let (xv, wv): (Vec<f32>, Vec<f32>) =
                (x.flatten_all().unwrap().to_vec1().unwrap(), wt.flatten_all().unwrap().to_vec1().unwrap());
            let bv: Vec<f32> = bias.to_vec1().unwrap();
            let pc = PhaseConv::new(ci, h, w, co, (kh, kw), pad);
            let mut bufs = pc.buffers();
            let out_image = co * pc.ho * pc.wo;
            let mut out = vec![MaybeUninit::new(f32::NAN); 2 * out_image];
            for (bi, y) in out.chunks_exact_mut(out_image).enumerate() {
                let xb = &xv[bi * ci * h * w..][..ci * h * w];
                pc.image(xb, &wv, &mut bufs, y, Some(Epilogue { bias: &bv, relu }), 1);
            }
            // SAFETY: every element was initialised (to NaN) before the calls.
            let out: Vec<f32> = out.iter().map(|v| unsafe { v.assume_init() }).collect();
            let got = Tensor::from_vec(out, (2, co, pc.ho, pc.wo), &dev).unwrap();
            let case = format!("{ci}->{co} {h}x{w} k{kh}x{kw} pad {pad} relu {relu}");
            assert_close(&case, &got, &want, 0.0, 1e-4, true).unwrap();
        }
    }
}
