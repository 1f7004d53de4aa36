//! Greedy k-center coreset selection (Sener & Savarese 2018, as PatchCore uses it): repeatedly take
//! the point farthest from those already taken, so a small memory bank still covers every region of
//! the normal features. Distances are measured after a seeded random projection (Johnson-
//! Lindenstrauss) to keep the selection cheap.

use anyhow::Result;
use candle_core::{Device, Tensor};
use hitomi_core::SeededRng;
use rayon::prelude::*;

/// Indices of `n_select` rows of `rows` (N, D) chosen greedily; the first is drawn from `seed`.
pub fn greedy_coreset(rows: &Tensor, n_select: usize, projection_dim: usize, seed: u64) -> Result<Vec<usize>> {
    let (n, d) = rows.dims2()?;
    if n_select >= n {
        return Ok((0..n).collect());
    }
    let mut rng = SeededRng::derive(seed, &[0xC0DE]);
    let projected = if projection_dim > 0 && projection_dim < d {
        let scale = 1.0 / (projection_dim as f32).sqrt();
        let p: Vec<f32> = (0..d * projection_dim).map(|_| hitomi_core::rng::normal(&mut rng) * scale).collect();
        rows.matmul(&Tensor::from_vec(p, (d, projection_dim), &Device::Cpu)?)?
    } else {
        rows.clone()
    };
    let dim = projected.dim(1)?;
    let data: Vec<f32> = projected.flatten_all()?.to_vec1()?;
    let mut min_d2 = vec![f32::INFINITY; n];
    let mut chosen = Vec::with_capacity(n_select);
    let mut current = rand::Rng::gen_range(&mut rng, 0..n);
    for _ in 0..n_select {
        chosen.push(current);
        let c = &data[current * dim..(current + 1) * dim];
        min_d2.par_chunks_mut(4096).enumerate().for_each(|(chunk, out)| {
            for (j, m) in out.iter_mut().enumerate() {
                let i = chunk * 4096 + j;
                let row = &data[i * dim..(i + 1) * dim];
                let d2: f32 = row.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
                if d2 < *m {
                    *m = d2;
                }
            }
        });
        // The next centre is the point worst covered so far (ties: the lowest index).
        current = min_d2
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
            .0;
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_one_point_per_cluster_first() {
        // Three tight clusters far apart: three picks must land in three different clusters.
        let mut v = Vec::new();
        for (cx, cy) in [(0f32, 0f32), (100., 0.), (0., 100.)] {
            for k in 0..10 {
                v.extend([cx + k as f32 * 0.01, cy - k as f32 * 0.01]);
            }
        }
        let rows = Tensor::from_vec(v, (30, 2), &Device::Cpu).unwrap();
        let mut clusters: Vec<usize> = greedy_coreset(&rows, 3, 0, 5).unwrap().iter().map(|i| i / 10).collect();
        clusters.sort_unstable();
        assert_eq!(clusters, vec![0, 1, 2]);
        assert_eq!(greedy_coreset(&rows, 40, 0, 5).unwrap().len(), 30);
        assert_eq!(greedy_coreset(&rows, 7, 0, 5).unwrap(), greedy_coreset(&rows, 7, 0, 5).unwrap());
    }
}
