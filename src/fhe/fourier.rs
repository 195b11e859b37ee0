//! Thin helpers over tfhe's f64 negacyclic FFT, used the way its bootstrapping uses it:
//! ciphertext polynomials forward *as torus*, clear integer polynomials forward *as
//! integers*, pointwise products, backward *as torus* (the product mod 2^64).

use tfhe::core_crypto::fft_impl::fft64::c64;
use tfhe::core_crypto::fft_impl::fft64::math::polynomial::{FourierPolynomial, FourierPolynomialOwned};
use tfhe::core_crypto::prelude::{ComputationBuffers, FftView, Polynomial, PolynomialSize};

/// Per-thread working memory for one FFT plan: scratch stack and a Fourier buffer.
pub(crate) struct FourierScratch {
    buffers: ComputationBuffers,
    pub(crate) fourier: FourierPolynomialOwned,
}

impl FourierScratch {
    pub(crate) fn new(fft: FftView<'_>) -> Self {
        let mut buffers = ComputationBuffers::new();
        let req = fft.forward_scratch().or(fft.backward_scratch());
        buffers.resize(req.unaligned_bytes_required());
        let n: PolynomialSize = fft.polynomial_size();
        Self { buffers, fourier: FourierPolynomial::new(n) }
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
    pub(crate) fn backward_torus(&mut self, fft: FftView<'_>, out: &mut [u64]) {
        fft.backward_as_torus(
            Polynomial::from_container(out),
            self.fourier.as_view(),
            self.buffers.stack(),
        );
    }

    /// `self.fourier` ← `self.fourier` ⊙ `b`.
    pub(crate) fn mul_assign(&mut self, b: &[c64]) {
        for (x, y) in self.fourier.data.iter_mut().zip(b) {
            *x *= y;
        }
    }

    /// `self.fourier` ← `a` ⊙ `b` (a negacyclic product in the Fourier domain).
    pub(crate) fn set_product(&mut self, a: &[c64], b: &[c64]) {
        for ((out, x), y) in self.fourier.data.iter_mut().zip(a).zip(b) {
            *out = x * y;
        }
    }
}
