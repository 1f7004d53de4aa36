//! Seeded randomness: candle's CPU RNG cannot be seeded, so every random draw in hitomi (weight init,
//! shuffles, augmentation) comes from ChaCha streams derived from one user seed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A reproducible random stream whose exact position can be saved and restored.
#[derive(Clone, Debug)]
pub struct SeededRng {
    seed: u64,
    rng: ChaCha8Rng,
}

/// The saved position of a [`SeededRng`] (stored in `state.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RngState {
    pub seed: u64,
    /// ChaCha word position as a decimal string (it is a u128).
    pub word_pos: String,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self { seed, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// An independent stream for `(seed, keys...)`, e.g. the shuffle of epoch 3 or the augmentation of
    /// sample 17 in epoch 3: results do not depend on thread scheduling or on where a run resumed.
    pub fn derive(seed: u64, keys: &[u64]) -> ChaCha8Rng {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for &k in keys {
            h = splitmix(h ^ splitmix(k.wrapping_add(0x632B_E59B_D9B4_E019)));
        }
        ChaCha8Rng::seed_from_u64(h)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }

    pub fn state(&self) -> RngState {
        RngState { seed: self.seed, word_pos: self.rng.get_word_pos().to_string() }
    }

    pub fn from_state(state: &RngState) -> anyhow::Result<Self> {
        let pos: u128 = state
            .word_pos
            .parse()
            .map_err(|_| anyhow::anyhow!("rng state: word_pos `{}` is not an integer", state.word_pos))?;
        let mut r = Self::new(state.seed);
        r.rng.set_word_pos(pos);
        Ok(r)
    }

    /// Standard normal sample (Box-Muller, so the stream does not depend on rand_distr internals).
    pub fn normal(&mut self) -> f32 {
        normal(&mut self.rng)
    }

    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.rng.gen::<f32>()
    }
}

/// Standard normal sample from any RNG (Box-Muller).
pub fn normal<R: Rng>(rng: &mut R) -> f32 {
    let u1: f64 = rng.gen::<f64>().max(1e-300);
    let u2: f64 = rng.gen::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Fisher-Yates permutation of `0..n` from `rng`.
pub fn permutation<R: Rng>(n: usize, rng: &mut R) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        v.swap(i, j);
    }
    v
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_continues_the_stream() {
        let mut a = SeededRng::new(7);
        for _ in 0..13 {
            a.normal();
        }
        let st = a.state();
        let mut b = SeededRng::from_state(&st).unwrap();
        assert_eq!(a.normal(), b.normal());
        assert_eq!(a.uniform(0.0, 1.0), b.uniform(0.0, 1.0));
    }

    #[test]
    fn derived_streams_differ_by_key_and_repeat_by_key() {
        let x: u64 = SeededRng::derive(1, &[2, 3]).gen();
        let y: u64 = SeededRng::derive(1, &[2, 3]).gen();
        let z: u64 = SeededRng::derive(1, &[3, 2]).gen();
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut r = SeededRng::derive(0, &[]);
        let mut p = permutation(100, &mut r);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }
}
