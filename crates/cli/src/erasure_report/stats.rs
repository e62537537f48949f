//! The statistics of the erasure report: binomial proportions with Wilson score intervals, and
//! the harmonic mean H that sums up a method.

/// z of a two-sided 95 % interval: Φ⁻¹(0.975).
pub const Z95: f64 = 1.959_963_984_540_054;

/// `hits` successes in `n` Bernoulli trials (images, or attributes of images).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub hits: usize,
    pub n: usize,
}

impl Tally {
    pub fn add(&mut self, hit: bool) {
        self.n += 1;
        self.hits += hit as usize;
    }

    /// Several tallies pooled into one (hits and trials summed).
    pub fn pooled(parts: &[Tally]) -> Tally {
        Tally { hits: parts.iter().map(|t| t.hits).sum(), n: parts.iter().map(|t| t.n).sum() }
    }

    /// `hits / n`; `None` for no trials.
    pub fn rate(self) -> Option<f64> {
        (self.n > 0).then(|| self.hits as f64 / self.n as f64)
    }

    /// The Wilson score interval (Wilson 1927; Newcombe 1998, method 3) at `z`:
    /// `(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`. Unlike the Wald interval
    /// `p̂ ± z √(p̂(1−p̂)/n)` it stays inside [0, 1] and does not collapse to a point at 0 or n hits,
    /// which is where an erasure's detection rates sit. `None` for no trials.
    pub fn wilson(self, z: f64) -> Option<(f64, f64)> {
        let p = self.rate()?;
        let n = self.n as f64;
        let z2 = z * z;
        let d = 1.0 + z2 / n;
        let centre = (p + z2 / (2.0 * n)) / d;
        let half = z / d * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        // Clamped only against rounding: mathematically the bounds are within [0, 1].
        Some(((centre - half).max(0.0), (centre + half).min(1.0)))
    }
}

/// The harmonic mean `k / Σ 1/xᵢ` of scores in [0, 1]; 0 when any score is 0 (a method that
/// fails one criterion entirely scores 0, whatever the others), `None` when any is missing or
/// there are none.
pub fn harmonic_mean(xs: &[Option<f64>]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut inv = 0.0;
    for x in xs {
        let x = (*x)?;
        if x <= 0.0 {
            return Some(0.0);
        }
        inv += 1.0 / x;
    }
    Some(xs.len() as f64 / inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wilson(hits: usize, n: usize) -> (f64, f64) {
        Tally { hits, n }.wilson(Z95).unwrap()
    }

    fn close(got: (f64, f64), want: (f64, f64)) {
        assert!((got.0 - want.0).abs() < 5e-7 && (got.1 - want.1).abs() < 5e-7, "{got:?} against {want:?}");
    }

    /// Expected values from statsmodels 0.15 `proportion_confint(k, n, alpha=0.05,
    /// method="wilson")`; 81/263, 15/148 and 1/29 are also Newcombe's (1998, Table I) printed
    /// examples, 0.2553–0.3662, 0.0624–0.1605 and 0.0061–0.1718.
    #[test]
    fn wilson_matches_published_values() {
        close(wilson(0, 32), (0.0, 0.107179));
        close(wilson(16, 32), (0.336309, 0.663691));
        close(wilson(32, 32), (0.892821, 1.0));
        close(wilson(1, 32), (0.005538, 0.157443));
        close(wilson(81, 263), (0.255289, 0.366210));
        close(wilson(15, 148), (0.062386, 0.160487));
        close(wilson(1, 29), (0.006113, 0.171755));
        assert_eq!(Tally { hits: 0, n: 0 }.wilson(Z95), None);
        assert_eq!(Tally::default().rate(), None);
    }

    #[test]
    fn tallies_pool_and_count() {
        let mut t = Tally::default();
        for hit in [true, false, true, true] {
            t.add(hit);
        }
        assert_eq!(t, Tally { hits: 3, n: 4 });
        assert_eq!(t.rate(), Some(0.75));
        assert_eq!(Tally::pooled(&[t, Tally { hits: 1, n: 28 }]), Tally { hits: 4, n: 32 });
    }

    #[test]
    fn harmonic_mean_of_scores() {
        // 3 / (1/0.5 + 1/1 + 1/0.25) = 3 / 7.
        assert!((harmonic_mean(&[Some(0.5), Some(1.0), Some(0.25)]).unwrap() - 3.0 / 7.0).abs() < 1e-15);
        assert_eq!(harmonic_mean(&[Some(0.8), Some(0.8), Some(0.8)]), Some(0.8));
        assert_eq!(harmonic_mean(&[Some(0.9), Some(0.0), Some(1.0)]), Some(0.0));
        assert_eq!(harmonic_mean(&[Some(0.9), None, Some(1.0)]), None);
        assert_eq!(harmonic_mean(&[]), None);
        // Below the arithmetic mean (0.7): H punishes the weakest criterion.
        let h = harmonic_mean(&[Some(0.95), Some(0.95), Some(0.2)]).unwrap();
        assert!((h - 3.0 / (2.0 / 0.95 + 5.0)).abs() < 1e-15 && h < 0.45, "{h}");
    }
}
