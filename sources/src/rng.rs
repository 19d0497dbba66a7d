//! A small, fast, deterministic random number generator (xoshiro256++ seeded by SplitMix64)
//! with the distributions the synthetic market needs. Written here rather than taken from a
//! crate so that the synthetic market's output can never change under a dependency upgrade:
//! the same seed gives byte-identical data forever.

/// SplitMix64 step: used to expand seeds and derive independent streams.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ with cached Gaussian.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator for a seed and a stream number; different streams are independent.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut sm = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self {
            s,
            spare_normal: None,
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = (self.s[0].wrapping_add(self.s[3]))
            .rotate_left(23)
            .wrapping_add(self.s[0]);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1]`, safe for `ln`.
    pub fn uniform_open0(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// Bernoulli trial.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Marsaglia polar method).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let m = (-2.0 * s.ln() / s).sqrt();
                self.spare_normal = Some(v * m);
                return u * m;
            }
        }
    }

    /// Exponential with the given rate.
    pub fn exponential(&mut self, rate: f64) -> f64 {
        -self.uniform_open0().ln() / rate
    }

    /// Geometric number of failures before the first success, success probability `p`.
    pub fn geometric(&mut self, p: f64) -> u64 {
        if p >= 1.0 {
            return 0;
        }
        (self.uniform_open0().ln() / (1.0 - p).ln()).floor() as u64
    }
}

/// A geometric distribution (failures before the first success) sampled by inverse CDF from
/// a precomputed table: no logarithm per draw. Values past the table's end (probability below
/// 1e-9) are drawn by the exact formula.
#[derive(Clone, Debug)]
pub struct Geometric {
    p: f64,
    cdf: Vec<f64>,
}

impl Geometric {
    /// Success probability `p` in (0, 1].
    pub fn new(p: f64) -> Self {
        let mut cdf = Vec::new();
        let mut cum = 0.0;
        let mut mass = p;
        while cum < 1.0 - 1e-9 && cdf.len() < 256 {
            cum += mass;
            cdf.push(cum);
            mass *= 1.0 - p;
        }
        Self { p, cdf }
    }

    /// One draw.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.uniform();
        match self.cdf.iter().position(|&c| u < c) {
            Some(k) => k as u64,
            None => rng.geometric(self.p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Rng::new(7, 1);
        let mut b = Rng::new(7, 1);
        let mut c = Rng::new(7, 2);
        let xa: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = Rng::new(1, 0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
        let e: f64 = (0..n).map(|_| r.exponential(2.0)).sum::<f64>() / n as f64;
        assert!((e - 0.5).abs() < 0.01, "{e}");
        let g = Geometric::new(0.3);
        let m: f64 = (0..n).map(|_| g.sample(&mut r) as f64).sum::<f64>() / n as f64;
        assert!((m - 0.7 / 0.3).abs() < 0.03, "geometric mean {m}");
    }
}
