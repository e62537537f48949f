//! numpy / torch arithmetic reproduced operation for operation, so that timesteps and sigmas equal
//! diffusers' to the last bit where possible: which rounding mode, which precision and which order of
//! operations decide whether `np.round` lands on 666 or 667.
//!
//! Sources: numpy 2.x `numpy/_core/function_base.py:linspace`, `PyArray_Arange` / `DOUBLE_fill`
//! (arange), `npy_interp` (`numpy/_core/src/multiarray/compiled_base.c`); torch
//! `aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp:linspace_kernel`; diffusers
//! scheduling_euler_discrete.py `_sigma_to_t`, `_convert_to_karras`.

/// `np.linspace(start, stop, num, endpoint)` in float64: `i * step + start`, last value set to `stop`.
pub fn np_linspace(start: f64, stop: f64, num: usize, endpoint: bool) -> Vec<f64> {
    let div = if endpoint { num.saturating_sub(1) } else { num };
    let delta = stop - start;
    let mut y: Vec<f64> = (0..num).map(|i| i as f64).collect();
    if div > 0 {
        let step = delta / div as f64;
        for v in &mut y {
            *v = if step == 0.0 { *v / div as f64 * delta } else { *v * step };
        }
    } else {
        for v in &mut y {
            *v *= delta;
        }
    }
    for v in &mut y {
        *v += start;
    }
    if endpoint && num > 1 {
        y[num - 1] = stop;
    }
    y
}

/// `np.arange(start, stop, step)` in float64. numpy stores `start`, `start + step`, then fills
/// `start + i * delta` with `delta = (start + step) - start`, which is not always `step`.
pub fn np_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if !(len > 0.0) {
        return vec![];
    }
    let len = len as usize;
    let delta = (start + step) - start;
    (0..len)
        .map(|i| match i {
            0 => start,
            1 => start + step,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// `torch.linspace(start, end, steps, dtype=torch.float32)` on CPU: the first half counts up from
/// `start`, the second half down from `end`; the compiled kernel fuses each multiply-add (checked
/// bit-exact against torch 2.15 on the beta schedules).
pub fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| if i < halfway { step.mul_add(i as f32, start) } else { (-step).mul_add((steps - i - 1) as f32, end) })
        .collect()
}

/// `np.interp(x, arange(len(fp)), fp)` in float64 (values outside clamp to the ends).
pub fn interp_index(x: f64, fp: &[f32]) -> f64 {
    let last = fp.len() - 1;
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return fp[0] as f64;
    }
    if x >= last as f64 {
        return fp[last] as f64;
    }
    let j = x.floor() as usize;
    if x == j as f64 {
        return fp[j] as f64;
    }
    // numpy divides by xp[j+1] - xp[j], which is 1 here.
    let slope = fp[j + 1] as f64 - fp[j] as f64;
    slope * (x - j as f64) + fp[j] as f64
}

/// σ_t = sqrt((1 − ᾱ_t) / ᾱ_t) in float32 `[T]`, as torch computes it from `alphas_cumprod`.
pub fn sigmas_from_alphas_cumprod(alphas_cumprod: &[f32]) -> Vec<f32> {
    alphas_cumprod.iter().map(|a| ((1.0 - a) / a).sqrt()).collect()
}

/// `np.log` of a float32 array (float32 result).
pub fn log_f32(values: &[f32]) -> Vec<f32> {
    values.iter().map(|&s| (s as f64).ln() as f32).collect()
}

/// diffusers `_sigma_to_t`: the fractional training timestep whose σ is `sigma`, by linear
/// interpolation in log σ. `log_sigmas` `[T]` ascending.
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    // cumsum(dists >= 0).argmax() is the last index with log_sigmas[i] <= log_sigma (0 when none).
    let low = log_sigmas.iter().rposition(|&l| log_sigma - l as f64 >= 0.0).unwrap_or(0).min(log_sigmas.len() - 2);
    let high = low + 1;
    let (lo, hi) = (log_sigmas[low] as f64, log_sigmas[high] as f64);
    let w = ((lo - log_sigma) / (lo - hi)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * high as f64
}

/// Karras et al. 2022 (EDM) eq. 5 with ρ = 7: `n` sigmas from `sigma_max` down to `sigma_min`.
pub fn karras_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let rho = 7.0;
    let (min_inv_rho, max_inv_rho) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    np_linspace(0.0, 1.0, n, true)
        .into_iter()
        .map(|r| (max_inv_rho + r * (min_inv_rho - max_inv_rho)).powf(rho))
        .collect()
}

/// "leading" spacing: `arange(0, n) * (T // n)`, descending, plus `steps_offset`.
pub fn leading(num_train: usize, n: usize, steps_offset: i64) -> Vec<i64> {
    let ratio = (num_train / n) as i64;
    (0..n as i64).rev().map(|i| i * ratio + steps_offset).collect()
}

/// "trailing" spacing: `round(arange(last, 0, -T / n)) - 1` (round half to even, like numpy).
pub fn trailing(last: usize, num_train: usize, n: usize) -> Vec<i64> {
    let ratio = num_train as f64 / n as f64;
    np_arange(last as f64, 0.0, -ratio).into_iter().map(|t| t.round_ties_even() as i64 - 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_and_arange_follow_numpy() {
        assert_eq!(np_linspace(0.0, 999.0, 1, true), vec![0.0]);
        assert_eq!(np_linspace(0.0, 999.0, 4, true), vec![0.0, 333.0, 666.0, 999.0]);
        assert_eq!(np_linspace(0.0, 50.0, 4, false), vec![0.0, 12.5, 25.0, 37.5]);
        // numpy: np.arange(1000, 0, -1000/3) == [1000, 666.666..., 333.333...]
        let a = np_arange(1000.0, 0.0, -1000.0 / 3.0);
        assert_eq!(a.len(), 3);
        // 62.5-spaced values hit exact .5 ties: numpy rounds them to even.
        assert_eq!(trailing(1000, 1000, 16)[..4], [999, 937, 874, 811]);
    }

    #[test]
    fn interp_clamps_and_interpolates() {
        let fp = [1.0f32, 3.0, 7.0];
        assert_eq!(interp_index(-1.0, &fp), 1.0);
        assert_eq!(interp_index(0.25, &fp), 1.5);
        assert_eq!(interp_index(1.5, &fp), 5.0);
        assert_eq!(interp_index(9.0, &fp), 7.0);
    }
}
