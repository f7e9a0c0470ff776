//! The Mann-Whitney U test (Wilcoxon rank-sum) and the Hodges-Lehmann shift estimate, over
//! weighted samples: a sample is a list of `(value, count)` pairs, which is what an HDR
//! histogram holds (every recorded value rounded to its bucket, with its count). Ranks are
//! computed over the distinct values, so ties (many of them, at 3 significant digits) are
//! handled exactly as `scipy.stats.mannwhitneyu` does: average ranks, and the tie term in the
//! variance of U.
//!
//! ```text
//! U_x  = R_x - n_x (n_x + 1) / 2            R_x: rank sum of x in the pooled sample
//! U_y  = n_x n_y - U_x
//! greater: U = U_x   less: U = U_y   two-sided: U = max(U_x, U_y), p doubled (at most 1)
//! exact:      p = P(U' >= U) under H0, U' counted from the Gaussian binomial [n_x+n_y, n_x]_q
//! asymptotic: z = (U - n_x n_y / 2 - 0.5 [continuity]) / sigma,   p = 1 - Phi(z)
//!             sigma^2 = n_x n_y / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1)))
//! auto: exact when a side has at most 8 values and there are no ties, else asymptotic
//! ```
//!
//! `auto` is scipy's rule (scipy 1.17: `_mwu_choose_method`); the committed fixtures
//! (testdata/canary/mannwhitneyu.json, made by testdata/canary/gen_mannwhitneyu.py) hold
//! scipy's answers and tests/canary_judge.rs matches them. The exact distribution is counted
//! in 128-bit integers; when it would not fit (never for a side of at most 8 values and the
//! other under ~10^5) the asymptotic p-value is used.
//!
//! Hodges-Lehmann: the median of every difference `x_i - y_j` (the mean of the two middle
//! ones when there is an even number, as numpy's median), with Moses' distribution-free
//! confidence interval: the `C`-th smallest and largest differences, `C = floor(n_x n_y / 2 -
//! z_{1-a/2} sqrt(n_x n_y (n + 1) / 12))`.
use std::cmp::Ordering;

/// Which way the test looks: `Greater` asks whether x tends to be larger than y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    Greater,
    Less,
    TwoSided,
}

/// How the p-value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// scipy's rule: exact for a side of at most 8 values without ties, else asymptotic.
    Auto,
    Exact,
    /// Normal approximation with the tie correction (and the continuity correction if asked).
    Asymptotic,
}

/// A sample as distinct values with their counts, ascending by value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weighted {
    values: Vec<(f64, u64)>,
    n: u64,
}

impl Weighted {
    /// From raw values (NaN is dropped).
    pub fn from_values(values: &[f64]) -> Weighted {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let mut out: Vec<(f64, u64)> = Vec::new();
        for x in v {
            match out.last_mut() {
                Some((last, c)) if *last == x => *c += 1,
                _ => out.push((x, 1)),
            }
        }
        Weighted::from_counts(out)
    }

    /// From `(value, count)` pairs in any order (zero counts and NaN are dropped, equal
    /// values merged).
    pub fn from_counts(mut pairs: Vec<(f64, u64)>) -> Weighted {
        pairs.retain(|(v, c)| *c > 0 && !v.is_nan());
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut values: Vec<(f64, u64)> = Vec::with_capacity(pairs.len());
        for (v, c) in pairs {
            match values.last_mut() {
                Some((last, lc)) if *last == v => *lc += c,
                _ => values.push((v, c)),
            }
        }
        let n = values.iter().map(|(_, c)| c).sum();
        Weighted { values, n }
    }

    /// Number of observations.
    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Distinct values with their counts, ascending.
    pub fn values(&self) -> &[(f64, u64)] {
        &self.values
    }

    /// The `q`-quantile (0..=1) by the lower-value rule (the histogram's convention).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (v, c) in &self.values {
            seen += c;
            if seen >= rank {
                return Some(*v);
            }
        }
        self.values.last().map(|(v, _)| *v)
    }

    /// The median (mean of the two middle values for an even count, as numpy).
    pub fn median(&self) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let lo = self.kth((self.n - 1) / 2)?;
        let hi = self.kth(self.n / 2)?;
        Some((lo + hi) / 2.0)
    }

    /// The k-th smallest observation (0-based).
    fn kth(&self, k: u64) -> Option<f64> {
        let mut seen = 0;
        for (v, c) in &self.values {
            seen += c;
            if seen > k {
                return Some(*v);
            }
        }
        None
    }
}

/// The outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MwuResult {
    /// U of the first sample (scipy's `statistic`).
    pub u: f64,
    pub p_value: f64,
    /// The method actually used (`Auto` resolved).
    pub method: Method,
}

/// Test whether `x` and `y` come from the same distribution against `alt`. `None` when a
/// sample is empty.
pub fn mann_whitney_u(
    x: &Weighted,
    y: &Weighted,
    alt: Alternative,
    method: Method,
    continuity: bool,
) -> Option<MwuResult> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (r1, tie_term, ties) = rank_sum(x, y);
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let (u, factor) = match alt {
        Alternative::Greater => (u1, 1.0),
        Alternative::Less => (u2, 1.0),
        Alternative::TwoSided => (u1.max(u2), 2.0),
    };
    let mut method = match method {
        Method::Auto if (n1 > 8 && n2 > 8) || ties => Method::Asymptotic,
        Method::Auto => Method::Exact,
        m => m,
    };
    let mut p = None;
    if method == Method::Exact {
        p = exact_sf(u.round() as u64, n1, n2);
        if p.is_none() {
            method = Method::Asymptotic;
        }
    }
    let p = match p {
        Some(p) => p,
        None => {
            let n = n1f + n2f;
            let s = (n1f * n2f / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
            let mut num = u - n1f * n2f / 2.0;
            if continuity {
                num -= 0.5;
            }
            if s > 0.0 {
                normal_sf(num / s)
            } else if num > 0.0 {
                0.0
            } else if num < 0.0 {
                1.0
            } else {
                0.5
            }
        }
    };
    Some(MwuResult {
        u: u1,
        p_value: (p * factor).clamp(0.0, 1.0),
        method,
    })
}

/// Rank sum of `x` in the pooled sample (average ranks for ties), the tie term
/// `sum(t^3 - t)` and whether any value occurs more than once.
fn rank_sum(x: &Weighted, y: &Weighted) -> (f64, f64, bool) {
    let (xs, ys) = (x.values(), y.values());
    let (mut i, mut j) = (0, 0);
    let mut below = 0u64;
    let (mut r1, mut tie_term, mut ties) = (0.0, 0.0, false);
    while i < xs.len() || j < ys.len() {
        let next = match (xs.get(i), ys.get(j)) {
            (Some(a), Some(b)) => a.0.min(b.0),
            (Some(a), None) => a.0,
            (None, Some(b)) => b.0,
            (None, None) => break,
        };
        let mut cx = 0;
        if xs.get(i).is_some_and(|a| a.0 == next) {
            cx = xs[i].1;
            i += 1;
        }
        let mut cy = 0;
        if ys.get(j).is_some_and(|b| b.0 == next) {
            cy = ys[j].1;
            j += 1;
        }
        let t = cx + cy;
        // Ranks below+1 ..= below+t, averaged.
        let avg = below as f64 + (t as f64 + 1.0) / 2.0;
        r1 += cx as f64 * avg;
        if t > 1 {
            ties = true;
            let tf = t as f64;
            tie_term += tf * tf * tf - tf;
        }
        below += t;
    }
    (r1, tie_term, ties)
}

/// P(U >= u) for sample sizes `n1`, `n2` under H0 (no ties), from the coefficients of the
/// Gaussian binomial `[n1+n2, m]_q` (m the smaller size): `prod_{i=1..m} (1 - q^(n+i)) /
/// (1 - q^i)`, counted in 128-bit integers. `None` when the counts could overflow.
fn exact_sf(u: u64, n1: u64, n2: u64) -> Option<f64> {
    let (m, n) = (n1.min(n2), n1.max(n2));
    // Total arrangements C(m+n, m) must fit comfortably in i128.
    let mut log_total = 0.0;
    for i in 1..=m {
        log_total += ((n + i) as f64).ln() - (i as f64).ln();
    }
    if log_total > 85.0 || m * n > 50_000_000 {
        return None;
    }
    let len = (m * n + 1) as usize;
    let mut c = vec![0i128; len];
    c[0] = 1;
    let mut deg = 0usize;
    for i in 1..=m as usize {
        let a = n as usize + i;
        // Multiply by (1 - q^a), then divide by (1 - q^i): the product stays a polynomial
        // with non-negative integer coefficients ([n+i, i]_q).
        let new_deg = deg + n as usize;
        for k in (a..=new_deg.min(len - 1)).rev() {
            c[k] -= c[k - a];
        }
        for k in i..=new_deg.min(len - 1) {
            c[k] += c[k - i];
        }
        deg = new_deg;
    }
    let total: i128 = c.iter().sum();
    if total <= 0 {
        return None;
    }
    let tail: i128 = c.iter().skip(u.min(len as u64) as usize).sum();
    Some(tail as f64 / total as f64)
}

/// `1 - Phi(z)` for the standard normal.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// The standard normal quantile `Phi^-1(p)` (Acklam's approximation refined by one Halley
/// step: about 1e-15 relative).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let plow = 0.02425;
    let x = if p < plow {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - plow {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step on Phi(x) - p.
    let e = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// The Hodges-Lehmann shift estimate of `x` over `y` with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftEstimate {
    /// Median of every difference `x_i - y_j`.
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Hodges-Lehmann estimate of the shift `x - y` with Moses' `confidence` interval. Works on
/// the distinct values (k_x * k_y weighted differences), so histogram samples stay cheap.
pub fn hodges_lehmann(x: &Weighted, y: &Weighted, confidence: f64) -> Option<ShiftEstimate> {
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut diffs: Vec<(f64, u64)> = Vec::with_capacity(x.values().len() * y.values().len());
    for (a, ca) in x.values() {
        for (b, cb) in y.values() {
            diffs.push((a - b, ca * cb));
        }
    }
    diffs.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    let total = n1 * n2;
    let kth = |k: u64| -> f64 {
        let mut seen = 0;
        for (d, c) in &diffs {
            seen += c;
            if seen > k {
                return *d;
            }
        }
        diffs.last().map(|d| d.0).unwrap_or(0.0)
    };
    let estimate = (kth((total - 1) / 2) + kth(total / 2)) / 2.0;
    let z = normal_quantile(1.0 - (1.0 - confidence.clamp(0.0, 1.0)) / 2.0);
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let c = (n1f * n2f / 2.0 - z * (n1f * n2f * (n1f + n2f + 1.0) / 12.0).sqrt()).floor();
    let (lower, upper) = if c < 1.0 {
        (kth(0), kth(total - 1))
    } else {
        let c = c as u64;
        (kth(c - 1), kth(total - c))
    };
    Some(ShiftEstimate {
        estimate,
        lower,
        upper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_distribution_sums_to_one_and_is_symmetric() {
        // n1 = 3, n2 = 4: U in 0..=12, C(7,3) = 35 arrangements.
        assert_eq!(exact_sf(0, 3, 4), Some(1.0));
        let p = exact_sf(9, 3, 4).unwrap();
        let q = exact_sf(4, 3, 4).unwrap(); // P(U >= 4) = 1 - P(U <= 3) = 1 - P(U >= 9)
        assert!((p + q - 1.0).abs() < 1e-12, "{p} {q}");
        assert!((p - 7.0 / 35.0).abs() < 1e-12, "{p}");
    }

    #[test]
    fn quantile_inverts_the_cdf() {
        for p in [1e-10, 0.001, 0.01, 0.02, 0.5, 0.9, 0.975, 0.99, 0.999999] {
            let x = normal_quantile(p);
            assert!((1.0 - normal_sf(x) - p).abs() < 1e-13 * p.max(1e-3), "{p}");
        }
    }
}
