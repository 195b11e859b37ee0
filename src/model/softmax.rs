//! The training objective of every logistic backend: sklearn's multinomial cross-entropy,
//! scaled by 1/n, with its gradient — computed in f32 where the work is.
//!
//! `f(W, b) = (1/n)·Σ_i CE(softmax(x_i·W + b), y_i) + ‖W‖²/(2·C·n)`, intercept unpenalised.
//! One evaluation is two n × d × C products and n × C exponentials; at C = 8 000 that is
//! 3.8·10⁹ `exp` per evaluation, so everything runs in f32, block by block under one
//! `pulp::Arch::dispatch` (AVX-512, AVX2 or scalar, chosen at run time): register-tiled
//! products over the row-major matrices as they are (a GEMM library would repack the
//! (d + 1) × C weights for every block, which cost more than the product at depth d + 1 = 21)
//! and a branch-free vectorised `exp`. Per-row losses and the final reduction stay in f64, and
//! so does the optimiser, so the result matches sklearn's f64 objective to ~1e-6 relative
//! (tested against a stored sklearn value in `tests/sklearn_objective.rs`).

use ndarray::{s, Array2, ArrayView2};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

/// The objective on standardised features. Parameters are packed as `W` (d × C, row-major)
/// followed by `b` (C) — which is the row-major (d + 1) × C matrix of the features with a
/// column of ones appended, so the bias rides in both GEMMs: the forward product adds it and
/// the gradient product's last row is its gradient.
pub(crate) struct Objective<'a> {
    /// n × (d + 1) with the intercept (last column all ones), n × d without; f32.
    x: Array2<f32>,
    y: &'a [usize],
    n_classes: usize,
    c: f64,
    fit_intercept: bool,
    arch: Arch,
}

/// Rows per block: the block's n_b × C score matrix is at most about 512 KiB (it stays in L2
/// while the softmax makes its two passes and the gradient product reads it), between 32 rows
/// (fewer re-read the weights from L2 too often) and 128 (more push the gradient product's
/// panels of X and E out of L1).
fn row_block(n_classes: usize) -> usize {
    ((128 * 1024) / n_classes.max(1)).clamp(32, 128)
}

/// The row stride (in floats) of the weight, score and gradient blocks: C rounded up to whole
/// 32-float panels (so no panel has a ragged end), plus one panel when that is a multiple of
/// 4 KiB, whose rows would all fall in the same L1 sets. Measured one thread, 64 × 21 blocks
/// (GFLOP/s forward / gradient): stride 400 → 44 / 46, 416 → 150 / 159; 1024 → 62 / 61,
/// 1056 → 96 / 139; 8192 → 92 / 77, 8224 → 125 / 116 (AVX2).
fn padded_stride(n_classes: usize) -> usize {
    let ld = n_classes.div_ceil(32) * 32;
    if ld.is_multiple_of(1024) {
        ld + 32
    } else {
        ld
    }
}

/// One worker's running sums over its rows.
struct Partial {
    loss: f64,
    /// Rows of `x` × C: the unscaled gradient of the augmented weights.
    grad: Array2<f32>,
}

impl<'a> Objective<'a> {
    pub(crate) fn new(
        x: ArrayView2<f64>,
        y: &'a [usize],
        n_classes: usize,
        c: f64,
        fit_intercept: bool,
    ) -> Self {
        let (n, d) = x.dim();
        let cols = d + usize::from(fit_intercept);
        let mut xf = Array2::<f32>::ones((n, cols));
        xf.slice_mut(s![.., ..d]).assign(&x.mapv(|v| v as f32));
        Self {
            x: xf,
            y,
            n_classes,
            c,
            fit_intercept,
            arch: Arch::new(),
        }
    }

    /// d, the features (without the ones column).
    fn n_features(&self) -> usize {
        self.x.ncols() - usize::from(self.fit_intercept)
    }

    pub(crate) fn n_params(&self) -> usize {
        (self.n_features() + 1) * self.n_classes
    }

    /// Returns f(θ) and writes ∇f(θ) into `grad`.
    ///
    /// The rows are split into a few contiguous ranges per thread; each range walks its row
    /// blocks with one scratch block and accumulates its own gradient in place (GEMM with
    /// β = 1), so the reduction costs a few (d + 1) × C additions, not one per block.
    pub(crate) fn eval(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (n, cols) = self.x.dim();
        let (d, k) = (self.n_features(), self.n_classes);
        let ld = padded_stride(k);
        // Padding columns are zero weights: their scores are 0 and the softmax skips them.
        let w = Array2::from_shape_fn((cols, ld), |(i, j)| {
            if j < k {
                theta[i * k + j] as f32
            } else {
                0.0
            }
        });
        let block = row_block(k);
        let n_blocks = n.div_ceil(block);
        let n_ranges = (2 * rayon::current_num_threads()).clamp(1, n_blocks.max(1));
        let partials: Vec<Partial> = (0..n_ranges)
            .into_par_iter()
            .map(|r| {
                let first = r * n_blocks / n_ranges;
                let last = (r + 1) * n_blocks / n_ranges;
                self.range(first * block, (last * block).min(n), block, &w)
            })
            .collect();
        let mut loss = 0.0;
        let mut sums = vec![0.0f64; cols * k];
        for p in &partials {
            loss += p.loss;
            for (acc, row) in sums.chunks_exact_mut(k).zip(p.grad.rows()) {
                for (acc, v) in acc.iter_mut().zip(row) {
                    *acc += f64::from(*v);
                }
            }
        }
        let inv_n = 1.0 / n as f64;
        let l2 = inv_n / self.c;
        let theta_w = &theta[..d * k];
        let w_sq: f64 = theta_w.iter().map(|v| v * v).sum();
        for ((g, sum), wi) in grad[..d * k].iter_mut().zip(&sums).zip(theta_w) {
            *g = sum * inv_n + l2 * wi;
        }
        let bias_sums = sums.get(d * k..).unwrap_or_default();
        grad[d * k..].fill(0.0);
        for (g, sum) in grad[d * k..].iter_mut().zip(bias_sums) {
            *g = sum * inv_n;
        }
        loss * inv_n + 0.5 * l2 * w_sq
    }

    /// Loss and unscaled gradient sums over rows `lo..hi`, block by block.
    fn range(&self, lo: usize, hi: usize, block: usize, w: &Array2<f32>) -> Partial {
        let (cols, ld) = w.dim();
        let mut out = Partial {
            loss: 0.0,
            grad: Array2::zeros(w.dim()),
        };
        let mut scratch = vec![0.0f32; block * ld];
        let mut inv_sums = vec![0.0f32; block];
        let mut scaled = vec![0.0f32; block * cols];
        let mut transposed = vec![0.0f32; block * cols];
        let w = w.as_slice().expect("w is built row-major");
        let x = self.x.as_slice().expect("x is built row-major");
        for start in (lo..hi).step_by(block) {
            let m = block.min(hi - start);
            out.loss += self.arch.dispatch(BlockPass {
                x: &x[start * cols..(start + m) * cols],
                cols,
                w,
                labels: &self.y[start..start + m],
                classes: self.n_classes,
                z: &mut scratch[..m * ld],
                scaled: &mut scaled[..m * cols],
                transposed: &mut transposed[..m * cols],
                inv_sums: &mut inv_sums[..m],
                grad: out.grad.as_slice_mut().expect("the gradient is contiguous"),
            });
        }
        out
    }
}

/// One block of rows under one SIMD dispatch: the logits Z = X·W, the softmax (E = e^(Z − max)
/// and the row sums), and the gradient sums G += Xᵀ·(P − Y) with P = diag(1/Σ)·E — the
/// normalisation scales the rows of the small X block instead of the wide E block, and −Xᵀ·Y
/// subtracts each row from its label's column. Both products are register-tiled loops over the
/// row-major matrices as they are (no packing: W is (d + 1) × C and read once per block from
/// L2, the block's X and Z panels stay in L1), which the compiler vectorises for the SIMD level
/// pulp picked. Returns the block's summed loss.
struct BlockPass<'s> {
    /// m × cols.
    x: &'s [f32],
    cols: usize,
    /// cols × ld (`padded_stride`: C classes, then zero columns).
    w: &'s [f32],
    classes: usize,
    labels: &'s [usize],
    /// m × ld scratch.
    z: &'s mut [f32],
    /// m × cols scratch.
    scaled: &'s mut [f32],
    /// cols × m scratch: the block transposed.
    transposed: &'s mut [f32],
    /// m scratch.
    inv_sums: &'s mut [f32],
    /// cols × ld, accumulated into.
    grad: &'s mut [f32],
}

impl WithSimd for BlockPass<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f64 {
        let ld = self.grad.len() / self.cols;
        let m = self.labels.len();
        for (r, x) in self.x.chunks_exact(self.cols).enumerate() {
            for (f, &v) in x.iter().enumerate() {
                self.transposed[f * m + r] = v;
            }
        }
        matmul(simd, self.transposed, self.w, self.z, m, self.cols, ld);
        let loss = SoftmaxBlock {
            z: self.z,
            stride: ld,
            classes: self.classes,
            labels: self.labels,
            inv_sums: self.inv_sums,
        }
        .with_simd(simd);
        for ((s, x), &inv) in self
            .scaled
            .chunks_exact_mut(self.cols)
            .zip(self.x.chunks_exact(self.cols))
            .zip(self.inv_sums.iter())
        {
            s.iter_mut().zip(x).for_each(|(s, &x)| *s = x * inv);
        }
        matmul_tn(simd, self.scaled, self.z, self.grad, m, self.cols, ld);
        for (x, &label) in self.x.chunks_exact(self.cols).zip(self.labels) {
            for (f, &v) in x.iter().enumerate() {
                self.grad[f * ld + label] -= v;
            }
        }
        loss
    }
}

/// Rows of a register tile: 6 rows × 2 registers of accumulators, plus the two panel registers
/// and a broadcast, fit AVX2's 16 registers.
const TILE_ROWS: usize = 6;

/// Where a block's row-major matrices are: the dimensions the tiles index with.
#[derive(Clone, Copy)]
struct Dims {
    /// Rows of the block (m), columns of x (n, = d + 1) and classes (k).
    m: usize,
    n: usize,
    k: usize,
}

/// `c = a·b` from `at` = aᵀ: a is m × n, b is n × k, c is m × k, all row-major (aᵀ, so that
/// a tile's rows of one column of a are one contiguous read). Column panels of two registers
/// outermost, so a panel of b (n × 2 lanes) stays in L1 while every row tile passes over it;
/// the last columns (fewer than a panel) are done one at a time.
#[inline(always)]
fn matmul<S: Simd>(simd: S, at: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    let dims = Dims { m, n, k };
    let panel = 2 * S::F32_LANES;
    let full = k / panel * panel;
    for j in (0..full).step_by(panel) {
        let mut r = 0;
        while r + TILE_ROWS <= m {
            matmul_tile::<S, TILE_ROWS>(simd, at, b, c, r, j, dims);
            r += TILE_ROWS;
        }
        for r in r..m {
            matmul_tile::<S, 1>(simd, at, b, c, r, j, dims);
        }
    }
    for r in 0..m {
        for j in full..k {
            c[r * k + j] = (0..n).map(|f| at[f * m + r] * b[f * k + j]).sum();
        }
    }
}

/// Rows `r..r + R`, one panel of columns from `j` of `c = a·b` (from `at` = aᵀ).
#[inline(always)]
fn matmul_tile<S: Simd, const R: usize>(
    simd: S,
    at: &[f32],
    b: &[f32],
    c: &mut [f32],
    r: usize,
    j: usize,
    Dims { m, n, k }: Dims,
) {
    let acc = tile::<S, R>(simd, at, m, r, b, k, j, n);
    for (q, acc) in acc.iter().enumerate() {
        let at = (r + q) * k + j;
        let (out, _) = S::as_mut_simd_f32s(&mut c[at..at + 2 * S::F32_LANES]);
        out[0] = acc[0];
        out[1] = acc[1];
    }
}

/// The register tile both products share: Σ_s a[s·a_stride + off + q] · b[s·k + j .. + 2 lanes]
/// over `steps` steps s, for q in 0..R, the accumulators in registers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile<S: Simd, const R: usize>(
    simd: S,
    a: &[f32],
    a_stride: usize,
    off: usize,
    b: &[f32],
    k: usize,
    j: usize,
    steps: usize,
) -> [[S::f32s; 2]; R] {
    let lanes = S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; R];
    for step in 0..steps {
        let (panel, _) = S::as_simd_f32s(&b[step * k + j..step * k + j + 2 * lanes]);
        let (p0, p1) = (panel[0], panel[1]);
        let column = &a[step * a_stride + off..step * a_stride + off + R];
        for q in 0..R {
            let v = simd.splat_f32s(column[q]);
            acc[q][0] = simd.mul_add_e_f32s(v, p0, acc[q][0]);
            acc[q][1] = simd.mul_add_e_f32s(v, p1, acc[q][1]);
        }
    }
    acc
}

/// `c += aᵀ·b`: a is m × n, b is m × k, c is n × k, all row-major. Column panels of two
/// registers outermost, so the panel of b (m × 2 lanes) stays in L1 for every row tile of c.
#[inline(always)]
fn matmul_tn<S: Simd>(simd: S, a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
    let dims = Dims { m, n, k };
    let panel = 2 * S::F32_LANES;
    let full = k / panel * panel;
    for j in (0..full).step_by(panel) {
        let mut f = 0;
        while f + TILE_ROWS <= n {
            matmul_tn_tile::<S, TILE_ROWS>(simd, a, b, c, f, j, dims);
            f += TILE_ROWS;
        }
        // d + 1 = 21 (or 41) rows of c leave a remainder: one tile of its own height.
        match n - f {
            0 => {}
            1 => matmul_tn_tile::<S, 1>(simd, a, b, c, f, j, dims),
            2 => matmul_tn_tile::<S, 2>(simd, a, b, c, f, j, dims),
            3 => matmul_tn_tile::<S, 3>(simd, a, b, c, f, j, dims),
            4 => matmul_tn_tile::<S, 4>(simd, a, b, c, f, j, dims),
            _ => matmul_tn_tile::<S, 5>(simd, a, b, c, f, j, dims),
        }
    }
    for f in 0..n {
        for j in full..k {
            c[f * k + j] += (0..m).map(|r| a[r * n + f] * b[r * k + j]).sum::<f32>();
        }
    }
}

/// Rows `f..f + R`, one panel of columns from `j` of `c += aᵀ·b`.
#[inline(always)]
fn matmul_tn_tile<S: Simd, const R: usize>(
    simd: S,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    f: usize,
    j: usize,
    Dims { m, n, k }: Dims,
) {
    let acc = tile::<S, R>(simd, a, n, f, b, k, j, m);
    for (q, acc) in acc.iter().enumerate() {
        let at = (f + q) * k + j;
        let (out, _) = S::as_mut_simd_f32s(&mut c[at..at + 2 * S::F32_LANES]);
        out[0] = simd.add_f32s(out[0], acc[0]);
        out[1] = simd.add_f32s(out[1], acc[1]);
    }
}

/// The softmax pass over one block of scores, as a `pulp` operation: `with_simd` is inlined
/// into a function compiled for the detected SIMD level, and with it the plain loops below,
/// which the compiler then vectorises for that level (a closure would not be inlined, and
/// would stay at the baseline's SSE2).
struct SoftmaxBlock<'s> {
    /// rows × stride, row-major, the first `classes` of each row used: logits in,
    /// `e^(z − max)` out.
    z: &'s mut [f32],
    stride: usize,
    classes: usize,
    labels: &'s [usize],
    /// Out: 1 / Σ e^(z − max) of each row.
    inv_sums: &'s mut [f32],
}

impl WithSimd for SoftmaxBlock<'_> {
    type Output = f64;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) -> f64 {
        let mut loss = 0.0f64;
        let rows = self
            .z
            .chunks_exact_mut(self.stride)
            .map(|row| &mut row[..self.classes]);
        for ((row, &label), inv) in rows.zip(self.labels).zip(self.inv_sums.iter_mut()) {
            let max = lane_max(row);
            let z_label = row[label];
            // Every SIMD level pulp picks has FMA; the scalar fallback must not call libm's.
            let sum = if S::IS_SCALAR {
                exp_shifted_sum::<false>(row, max)
            } else {
                exp_shifted_sum::<true>(row, max)
            };
            *inv = 1.0 / sum;
            loss += f64::from(max) + f64::from(sum).ln() - f64::from(z_label);
        }
        loss
    }
}

const LANES: usize = 16;

/// Max with independent lanes, so it vectorises (a single running max is a serial chain).
#[inline(always)]
fn lane_max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = v.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    acc.iter().fold(tail, |m, &x| m.max(x))
}

/// `v ← e^(v − shift)` in place, returning the sum, with independent lanes (float addition
/// is not reassociated by the compiler, so one running sum would not vectorise).
#[inline(always)]
fn exp_shifted_sum<const FMA: bool>(v: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = v.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
            *x = exp_nonpositive::<FMA>(*x - shift);
            *a += *x;
        }
    }
    let mut tail = 0.0f32;
    for x in chunks.into_remainder() {
        *x = exp_nonpositive::<FMA>(*x - shift);
        tail += *x;
    }
    tail + acc.iter().sum::<f32>()
}

/// `e^x` for `x ≤ 0`, branch-free (Cephes `expf`: x = n·ln2 + r, |r| ≤ ln2/2, degree-6
/// polynomial, 2^n from the exponent bits); relative error ≤ 2·10⁻⁷, and values below e^-87
/// flush to e^-87 (≈ 1.6·10⁻³⁸, still normal; it is then negligible against the sum ≥ 1).
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let x = if x < -87.0 { -87.0 } else { x };
    let t = fma(x, LOG2E, ROUND);
    let n = t - ROUND;
    let r = fma(-n, LN2_LO, fma(-n, LN2_HI, x));
    let mut p = 1.987_569_1e-4f32;
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        p = fma(p, r, c);
    }
    let e = fma(p, r * r, r) + 1.0;
    // t's bits are ROUND's plus n; 2^n has exponent field n + 127.
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    e * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The objective written out plainly in f64: the reference the kernel must match.
    fn reference(
        x: ArrayView2<f64>,
        y: &[usize],
        k: usize,
        c: f64,
        fit_intercept: bool,
        theta: &[f64],
        grad: &mut [f64],
    ) -> f64 {
        let (n, d) = x.dim();
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut loss = 0.0;
        for i in 0..n {
            let z: Vec<f64> = (0..k)
                .map(|j| {
                    let b = if fit_intercept { theta[d * k + j] } else { 0.0 };
                    (0..d).map(|f| x[[i, f]] * theta[f * k + j]).sum::<f64>() + b
                })
                .collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            loss += lse - z[y[i]];
            for j in 0..k {
                let g = (z[j] - lse).exp() - f64::from(u8::from(j == y[i]));
                for f in 0..d {
                    grad[f * k + j] += x[[i, f]] * g / n as f64;
                }
                if fit_intercept {
                    grad[d * k + j] += g / n as f64;
                }
            }
        }
        let w_sq: f64 = theta[..d * k].iter().map(|v| v * v).sum();
        for (g, w) in grad[..d * k].iter_mut().zip(&theta[..d * k]) {
            *g += w / (c * n as f64);
        }
        loss / n as f64 + w_sq / (2.0 * c * n as f64)
    }

    #[test]
    fn reference_gradient_matches_finite_differences() {
        let x = array![[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.9, 0.1]];
        let y = [0usize, 2, 1];
        let theta: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect();
        let mut g = vec![0.0; 12];
        let mut scratch = vec![0.0; 12];
        reference(x.view(), &y, 3, 0.7, true, &theta, &mut g);
        for i in 0..12 {
            let (mut tp, mut tm) = (theta.clone(), theta.clone());
            tp[i] += 1e-6;
            tm[i] -= 1e-6;
            let fp = reference(x.view(), &y, 3, 0.7, true, &tp, &mut scratch);
            let fm = reference(x.view(), &y, 3, 0.7, true, &tm, &mut scratch);
            assert!((g[i] - (fp - fm) / 2e-6).abs() < 1e-7, "param {i}");
        }
    }

    /// Every SIMD level this machine has (the scalar fallback always).
    fn arches() -> Vec<Arch> {
        let mut arches = vec![Arch::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            arches.extend(pulp::x86::V3::try_new().map(Arch::V3));
            arches.extend(pulp::x86::V4::try_new().map(Arch::V4));
        }
        arches
    }

    /// Many rows (several blocks and ranges, rows left over from the register tiles), classes
    /// padded to a panel (37 → 64) and to the extra panel after a 4 KiB stride (1024 → 1056),
    /// widths with and without a partial tile, logits large enough that the max shift and the
    /// flush matter; at every SIMD level.
    #[test]
    fn kernel_matches_the_f64_reference() {
        for (n, d, k) in [(700, 5, 37), (150, 20, 1024)] {
            let x = Array2::from_shape_fn((n, d), |(i, f)| ((i * 7 + f * 13) as f64 * 0.173).sin());
            let y: Vec<usize> = (0..n).map(|i| (i * 11) % k).collect();
            for fit_intercept in [true, false] {
                for arch in arches() {
                    let mut obj = Objective::new(x.view(), &y, k, 0.5, fit_intercept);
                    obj.arch = arch;
                    let theta: Vec<f64> = (0..obj.n_params())
                        .map(|i| 4.0 * (i as f64 * 0.61).cos())
                        .collect();
                    let (mut g, mut g_ref) = (vec![0.0; theta.len()], vec![0.0; theta.len()]);
                    let f = obj.eval(&theta, &mut g);
                    let f_ref = reference(x.view(), &y, k, 0.5, fit_intercept, &theta, &mut g_ref);
                    let at = format!("{arch:?}, n {n} d {d} k {k}, intercept {fit_intercept}");
                    assert!(((f - f_ref) / f_ref).abs() < 1e-6, "{at}: {f} vs {f_ref}");
                    let scale = g_ref.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                    for (i, (a, b)) in g.iter().zip(&g_ref).enumerate() {
                        assert!((a - b).abs() < 1e-5 * scale, "{at}, param {i}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn strides_are_whole_panels_off_4k() {
        assert_eq!(padded_stride(37), 64);
        assert_eq!(padded_stride(400), 416);
        assert_eq!(padded_stride(1024), 1056);
        assert_eq!(padded_stride(8000), 8000);
        assert_eq!(padded_stride(8192), 8224);
    }

    #[test]
    fn loss_at_zero_is_log_classes() {
        let x = array![[1.0, 2.0], [3.0, 4.0]];
        let obj = Objective::new(x.view(), &[0, 1], 5, 1.0, true);
        let mut g = vec![0.0; obj.n_params()];
        let f = obj.eval(&vec![0.0; obj.n_params()], &mut g);
        assert!((f - 5f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn exp_is_accurate_over_its_range() {
        fn check<const FMA: bool>() {
            let mut worst = 0.0f64;
            for i in 0..=200_000 {
                let x = -87.0 * i as f32 / 200_000.0;
                let want = f64::from(x).exp();
                let rel = ((f64::from(exp_nonpositive::<FMA>(x)) - want) / want).abs();
                worst = worst.max(rel);
            }
            assert!(worst < 3e-7, "fma {FMA}: worst relative error {worst}");
            assert_eq!(exp_nonpositive::<FMA>(0.0), 1.0);
            let tiny = exp_nonpositive::<FMA>(-1000.0);
            assert!(tiny > 0.0 && tiny < 1e-37, "{tiny}");
        }
        check::<false>();
        check::<true>();
    }
}
