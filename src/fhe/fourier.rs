//! Thin helpers over tfhe's f64 negacyclic FFT, used the way its bootstrapping uses it:
//! ciphertext polynomials forward *as torus*, clear integer polynomials forward *as
//! integers*, pointwise products, backward *as torus* (the product mod 2^64).
//!
//! Our own loops run under `pulp::Arch::dispatch`, which compiles them for the best SIMD
//! level detected at run time (AVX2 / AVX-512), as tfhe's FFT does; the crate itself is built
//! for baseline x86-64.

use pulp::Arch;
use tfhe::core_crypto::fft_impl::fft64::c64;
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::{
    FourierPolynomial, FourierPolynomialOwned,
};
use tfhe::core_crypto::prelude::{ComputationBuffers, FftView, Polynomial, PolynomialSize};

/// Per-thread working memory for one FFT plan: scratch stack and a Fourier buffer.
pub(crate) struct FourierScratch {
    buffers: ComputationBuffers,
    pub(crate) fourier: FourierPolynomialOwned,
    pub(crate) arch: Arch,
}

impl FourierScratch {
    pub(crate) fn new(fft: FftView<'_>) -> Self {
        let mut buffers = ComputationBuffers::new();
        let req = fft.forward_scratch().or(fft.backward_scratch());
        buffers.resize(req.unaligned_bytes_required());
        let n: PolynomialSize = fft.polynomial_size();
        Self {
            buffers,
            fourier: FourierPolynomial::new(n),
            arch: Arch::new(),
        }
    }

    /// `self.fourier` ← FFT of `standard` read as torus elements.
    pub(crate) fn forward_torus(&mut self, fft: FftView<'_>, standard: &[u64]) {
        fft.forward_as_torus(
            self.fourier.as_mut_view(),
            Polynomial::from_container(standard),
            self.buffers.stack(),
        );
    }

    /// `out` ← FFT of `standard` read as signed integers (two's complement).
    pub(crate) fn forward_integer(
        &mut self,
        fft: FftView<'_>,
        out: &mut FourierPolynomialOwned,
        standard: &[u64],
    ) {
        fft.forward_as_integer(
            out.as_mut_view(),
            Polynomial::from_container(standard),
            self.buffers.stack(),
        );
    }

    /// `out` ← inverse FFT of `self.fourier` as torus elements (mod 2^64).
    ///
    /// Zeroing then *adding* is deliberate: tfhe's `add_backward_as_torus` converts back to
    /// the torus with AVX2/AVX-512 code, while `backward_as_torus` uses a scalar path that
    /// calls `f64::round` per coefficient (measured ~6× slower over a whole product).
    pub(crate) fn backward_torus(&mut self, fft: FftView<'_>, out: &mut [u64]) {
        out.fill(0);
        fft.add_backward_as_torus(
            Polynomial::from_container(out),
            self.fourier.as_view(),
            self.buffers.stack(),
        );
    }

    /// `self.fourier` ← `self.fourier` ⊙ `b`.
    pub(crate) fn mul_assign(&mut self, b: &[c64]) {
        let out = &mut self.fourier.data;
        self.arch.dispatch(|| {
            for (x, y) in out.iter_mut().zip(b) {
                *x *= y;
            }
        });
    }

    /// `self.fourier` ← `a` ⊙ `b` (a negacyclic product in the Fourier domain).
    pub(crate) fn set_product(&mut self, a: &[c64], b: &[c64]) {
        let out = &mut self.fourier.data;
        self.arch.dispatch(|| {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o = x * y;
            }
        });
    }

    /// `self.fourier` ← `self.fourier` + `a` ⊙ `b`.
    pub(crate) fn add_product(&mut self, a: &[c64], b: &[c64]) {
        let out = &mut self.fourier.data;
        self.arch.dispatch(|| {
            for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
                *o += x * y;
            }
        });
    }
}
