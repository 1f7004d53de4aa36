//! Whitening of patch features by the statistics of the normal ones (PaDiM's Mahalanobis distance,
//! Defard et al. 2020, used here inside the nearest-neighbour search): with Sigma = L L^T the
//! covariance of the normal patch features (plus a small ridge), a row x becomes L^-1 (x - mean), so
//! Euclidean distances between whitened rows are Mahalanobis distances. Directions in which normal
//! texture hardly varies then count as much as the busy ones, which is where a defect on a busy
//! texture shows.

use anyhow::{ensure, Result};
use candle_core::{Device, Tensor};
use nalgebra::DMatrix;

/// Ridge added to the covariance, relative to its mean variance (PaDiM adds 0.01 I to unit-scale
/// features); keeps the inverse stable when channels are nearly dead.
const RIDGE: f64 = 0.01;

/// An affine map x -> (x - mean) W, fitted on normal rows.
pub struct Whitening {
    /// (1, D)
    pub mean: Tensor,
    /// (D, D): L^-T, so that rows times it are whitened.
    pub w: Tensor,
}

impl Whitening {
    /// Fits on `rows` (N, D), N >= 2.
    pub fn fit(rows: &Tensor) -> Result<Self> {
        let (n, d) = rows.dims2()?;
        ensure!(n >= 2, "whitening needs at least 2 patch features, got {n}");
        // The covariance is one f32 matrix product of the centred rows (centring first keeps f32
        // accurate); only the D x D result goes to f64 for the factorisation.
        let mean = rows.mean_keepdim(0)?;
        let centred = rows.broadcast_sub(&mean)?;
        let cov32: Vec<f32> = (centred.t()?.matmul(&centred)? / (n - 1) as f64)?.flatten_all()?.to_vec1()?;
        let mut cov = DMatrix::from_fn(d, d, |i, j| cov32[i * d + j] as f64);
        let ridge = RIDGE * (cov.trace() / d as f64).max(1e-12);
        for j in 0..d {
            cov[(j, j)] += ridge;
        }
        let l = nalgebra::Cholesky::new(cov)
            .ok_or_else(|| anyhow::anyhow!("patch feature covariance is not positive definite"))?
            .l();
        let l_inv = l.try_inverse().ok_or_else(|| anyhow::anyhow!("patch feature covariance factor is singular"))?;
        // Rows: x W with W = L^-T.
        let w = l_inv.transpose();
        let w_rows: Vec<f32> =
            (0..d).flat_map(|i| (0..d).map(move |j| (i, j))).map(|(i, j)| w[(i, j)] as f32).collect();
        Ok(Self { mean, w: Tensor::from_vec(w_rows, (d, d), &Device::Cpu)? })
    }

    /// Checks that a loaded map fits patch features of dimension `d`.
    pub fn check(&self, d: usize, name: &str) -> Result<()> {
        ensure!(
            self.mean.dims() == [1, d] && self.w.dims() == [d, d],
            "{name}: whitening tensors are {:?} and {:?}; expected [1, {d}] and [{d}, {d}] for {d}-dim patch features",
            self.mean.dims(),
            self.w.dims()
        );
        Ok(())
    }

    /// (N, D) -> (N, D) whitened.
    pub fn apply(&self, rows: &Tensor) -> Result<Tensor> {
        Ok(rows.broadcast_sub(&self.mean)?.matmul(&self.w)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hitomi_core::SeededRng;

    #[test]
    fn whitened_rows_have_unit_covariance() {
        let mut rng = SeededRng::derive(5, &[]);
        let n = 4000;
        // Correlated 3-D data: x = A z + b with z standard normal.
        let a = [[2.0f32, 0.0, 0.0], [1.0, 0.5, 0.0], [0.3, -0.2, 0.5]];
        let mut data = Vec::with_capacity(n * 3);
        for _ in 0..n {
            let z: Vec<f32> = (0..3).map(|_| hitomi_core::rng::normal(&mut rng)).collect();
            for (i, row) in a.iter().enumerate() {
                data.push(row.iter().zip(&z).map(|(p, q)| p * q).sum::<f32>() + i as f32);
            }
        }
        let x = Tensor::from_vec(data, (n, 3), &Device::Cpu).unwrap();
        let wh = Whitening::fit(&x).unwrap();
        let y = wh.apply(&x).unwrap();
        let cov = (y.t().unwrap().matmul(&y).unwrap() / (n - 1) as f64).unwrap().to_vec2::<f32>().unwrap();
        for (i, row) in cov.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                // The ridge shrinks each direction a little (most the least varied).
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 0.15, "cov[{i}][{j}] = {v}");
            }
        }
    }
}
