//! Nearest-neighbour distances between query rows and a memory bank, as one matrix product per
//! chunk of queries (|q|^2 + |m|^2 - 2 q.m), so memory stays bounded for any number of queries.

use anyhow::{ensure, Result};
use candle_core::{Tensor, D};

use crate::features::row_sq_norms;

/// Queries per chunk: a chunk's distance matrix is chunk x M floats.
const CHUNK: usize = 2048;

/// Squared distances of each query to every bank row, one chunk at a time, handed to `f`.
/// queries: (Q, D), bank: (M, D).
fn for_each_chunk(queries: &Tensor, bank: &Tensor, mut f: impl FnMut(Tensor) -> Result<()>) -> Result<()> {
    ensure!(queries.dim(1)? == bank.dim(1)?, "knn: query dimension {} vs bank {}", queries.dim(1)?, bank.dim(1)?);
    let bank_t = bank.t()?.contiguous()?;
    let bank_sq = row_sq_norms(bank)?.unsqueeze(0)?;
    let q = queries.dim(0)?;
    let mut start = 0;
    while start < q {
        let n = CHUNK.min(q - start);
        let qs = queries.narrow(0, start, n)?;
        let d2 =
            (qs.matmul(&bank_t)? * -2.0)?.broadcast_add(&row_sq_norms(&qs)?.unsqueeze(1)?)?.broadcast_add(&bank_sq)?;
        f(d2.relu()?)?;
        start += n;
    }
    Ok(())
}

/// Distance of each query to its nearest bank row: (Q, D), (M, D) -> Q distances.
pub fn nearest_distance(queries: &Tensor, bank: &Tensor) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(queries.dim(0)?);
    for_each_chunk(queries, bank, |d2| {
        out.extend(d2.min(D::Minus1)?.sqrt()?.to_vec1::<f32>()?);
        Ok(())
    })?;
    Ok(out)
}

/// Mean distance of each query to its k nearest bank rows (PANDA's image score).
pub fn mean_knn_distance(queries: &Tensor, bank: &Tensor, k: usize) -> Result<Vec<f32>> {
    let m = bank.dim(0)?;
    ensure!(m >= 1, "knn: empty memory bank");
    let k = k.min(m);
    let mut out = Vec::with_capacity(queries.dim(0)?);
    for_each_chunk(queries, bank, |d2| {
        for mut row in d2.to_vec2::<f32>()? {
            row.select_nth_unstable_by(k - 1, f32::total_cmp);
            let mut nearest = row[..k].to_vec();
            nearest.sort_by(f32::total_cmp);
            out.push(nearest.iter().map(|v| v.sqrt()).sum::<f32>() / k as f32);
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn distances_by_hand() {
        let dev = Device::Cpu;
        let bank = Tensor::new(&[[0f32, 0.], [3., 4.], [6., 8.]], &dev).unwrap();
        let q = Tensor::new(&[[0f32, 0.], [3., 4.], [3., 0.]], &dev).unwrap();
        let d = nearest_distance(&q, &bank).unwrap();
        assert!((d[0]).abs() < 1e-3 && d[1].abs() < 1e-3 && (d[2] - 3.0).abs() < 1e-4, "{d:?}");
        let m = mean_knn_distance(&q, &bank, 2).unwrap();
        assert!((m[0] - 2.5).abs() < 1e-4 && (m[1] - 2.5).abs() < 1e-4, "{m:?}");
        // (3, 0): nearest 3 and 4.
        assert!((m[2] - 3.5).abs() < 1e-4, "{m:?}");
    }
}
