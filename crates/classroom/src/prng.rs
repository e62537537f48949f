//! A tiny deterministic random number generator (SplitMix64).
//!
//! Why our own: the dataset that Python trains on, the renders the studio shows in the browser and
//! the golden checksums in the tests must be the same bytes on every platform (x86-64, aarch64,
//! wasm32). `rand`'s generators and distributions are allowed to change between versions and its
//! float sampling is not specified bit-for-bit, so we use SplitMix64 (Steele, Lea & Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014; the constants are those of
//! Java's `SplittableRandom` and of Vigna's reference `splitmix64.c`). It passes BigCrush, needs
//! only wrapping 64-bit integer arithmetic, and every derived value below uses only integer ops
//! and exactly rounded f32 ops, so results are identical everywhere.

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function (a variant of MurmurHash3's `fmix64`): a bijective 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 generator. `Clone` so that a caller can fork a stream (e.g. caption twice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence is fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The generator for item `index` of a dataset drawn with `seed`.
    ///
    /// Each item gets its own stream, so item `i` is the same whether 10 or 50,000 items are
    /// drawn and whether they are drawn in order or in parallel.
    pub fn for_item(seed: u64, index: u64) -> Self {
        Rng::new(mix64(seed.wrapping_mul(GAMMA) ^ mix64(index.wrapping_add(GAMMA))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// A uniform integer in `0..n` (0 when `n == 0`).
    ///
    /// Lemire's multiply-shift: the bias is below `n / 2^64`, far below anything measurable here,
    /// and it costs no division or rejection loop.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A uniform f32 in `[0, 1)` on the 2^-24 grid (exactly representable, so no rounding).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / 16_777_216.0)
    }

    /// A uniform f32 in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// A uniformly chosen element; `None` only for an empty slice.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    /// A uniformly chosen element of a table that is known to be non-empty, or `fallback`.
    pub fn pick<T: Copy>(&mut self, items: &[T], fallback: T) -> T {
        self.choose(items).copied().unwrap_or(fallback)
    }

    /// Fisher–Yates shuffle in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_splitmix64() {
        // First outputs of Vigna's splitmix64.c seeded with 1234567.
        let mut r = Rng::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut r = Rng::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..10_000 {
            let v = r.below(5);
            assert!(v < 5);
            seen[v] += 1;
        }
        assert!(seen.iter().all(|&c| c > 1800 && c < 2200), "{seen:?}");
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn unit_is_in_half_open_interval() {
        let mut r = Rng::new(3);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
