//! Versioned binary format of the two messages, query (client → server) and scores
//! (server → client), and their sizes. Little-endian throughout.
//!
//! Header (both messages, [`HEADER_LEN`] bytes): magic (4), version u16, parameter set id u16,
//! circuit u8 (0 chunks, 1 summed), N u32, J u32, d u32, K u32, C u32, message bits u8,
//! model id (32), model privacy u8 (0 or 1), rounding bits u8. Version 2 added the circuit
//! byte, version 3 the model-privacy bytes.
//! Public key (model privacy, sent once): magic `FSHP`, version u16, parameter set id u16,
//! N u32, seed u128, N × u64 body coefficients.
//! Query payload: seed u128, body length u32, N × u64 body coefficients.
//! Scores payload: reply bits w u8, product count u32, body coefficients per product u32,
//! then every product's N mask and K·J body coefficients packed at w bits each (LSB first,
//! zero padding to a byte).
//!
//! Decoding never panics: truncation, a wrong magic or version, or a header that does not
//! match the receiver's [`ScoringSpec`] are [`FheError`]s, and sizes are checked against the
//! spec before anything is allocated.

use tfhe::core_crypto::prelude::PolynomialSize;

use super::{
    CiphertextHeader, Circuit, EncryptedQuery, EncryptedScores, GlweParams, Layout, ModelId,
    PublicKey, ScoringSpec,
};
use crate::error::FheError;

/// Current format version.
pub const WIRE_VERSION: u16 = 3;
const QUERY_MAGIC: [u8; 4] = *b"FSHQ";
const SCORES_MAGIC: [u8; 4] = *b"FSHS";
const PUBLIC_KEY_MAGIC: [u8; 4] = *b"FSHP";
/// Bytes of the common header.
pub const HEADER_LEN: usize = 4 + 2 + 2 + 1 + 4 * 5 + 1 + 32 + 2;
const PUBLIC_KEY_WHAT: &str = "public key";
const QUERY_WHAT: &str = "encrypted query";
const SCORES_WHAT: &str = "encrypted scores";

/// Exact size of an encoded query for `spec`.
pub fn query_size(spec: &ScoringSpec) -> usize {
    HEADER_LEN + 16 + 4 + 8 * spec.params.polynomial_size.0
}

/// Exact size of an encoded reply for `spec`.
pub fn scores_size(spec: &ScoringSpec) -> usize {
    let per = spec.params.polynomial_size.0 + spec.layout.scores_per_product();
    let bits = spec.product_count() * per * spec.params.reply_modulus_log.0;
    HEADER_LEN + 1 + 4 + 4 + bits.div_ceil(8)
}

/// Exact size of an encoded public key for `params`.
pub fn public_key_size(params: &GlweParams) -> usize {
    4 + 2 + 2 + 4 + 16 + 8 * params.polynomial_size.0
}

pub fn encode_public_key(key: &PublicKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + 8 * key.body.len());
    out.extend_from_slice(&PUBLIC_KEY_MAGIC);
    out.extend_from_slice(&WIRE_VERSION.to_le_bytes());
    out.extend_from_slice(&key.params_id.to_le_bytes());
    out.extend_from_slice(&(key.body.len() as u32).to_le_bytes());
    out.extend_from_slice(&key.seed.to_le_bytes());
    for v in &key.body {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Parses a public key for the parameter set `params`.
pub fn decode_public_key(bytes: &[u8], params: &GlweParams) -> Result<PublicKey, FheError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        what: PUBLIC_KEY_WHAT,
    };
    read_magic_and_version(&mut r, PUBLIC_KEY_MAGIC)?;
    let params_id = u16::from_le_bytes(r.array("parameter set id")?);
    if params_id != params.id {
        return Err(FheError::WireMismatch {
            what: PUBLIC_KEY_WHAT,
            field: "parameter set id",
            expected: params.id.to_string(),
            found: params_id.to_string(),
        });
    }
    let n = r.u32("polynomial size")? as usize;
    if n != params.polynomial_size.0 {
        return Err(r.error(format!("N = {n}, expected {}", params.polynomial_size.0)));
    }
    let seed = u128::from_le_bytes(r.array("seed")?);
    let body = read_u64s(&mut r, n, "body coefficients")?;
    r.finish()?;
    Ok(PublicKey {
        params_id,
        seed,
        body,
    })
}

pub fn encode_query(query: &EncryptedQuery) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 20 + 8 * query.body.len());
    write_header(&mut out, QUERY_MAGIC, &query.header);
    out.extend_from_slice(&query.seed.to_le_bytes());
    out.extend_from_slice(&(query.body.len() as u32).to_le_bytes());
    for v in &query.body {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

pub fn encode_scores(scores: &EncryptedScores) -> Vec<u8> {
    let bits = scores.reply_modulus_log;
    let mut out =
        Vec::with_capacity(HEADER_LEN + 9 + (scores.values.len() * bits as usize).div_ceil(8));
    write_header(&mut out, SCORES_MAGIC, &scores.header);
    out.push(bits as u8);
    out.extend_from_slice(&(scores.product_count() as u32).to_le_bytes());
    out.extend_from_slice(&(scores.header.layout.scores_per_product() as u32).to_le_bytes());
    pack_bits(&scores.values, bits, &mut out);
    out
}

/// Parses a query addressed to the model described by `spec`.
pub fn decode_query(bytes: &[u8], spec: &ScoringSpec) -> Result<EncryptedQuery, FheError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        what: QUERY_WHAT,
    };
    let header = read_header(&mut r, QUERY_MAGIC)?;
    header.check(spec, QUERY_WHAT)?;
    let seed = u128::from_le_bytes(r.array("seed")?);
    let len = r.u32("body length")? as usize;
    let n = spec.params.polynomial_size.0;
    if len != n {
        return Err(r.error(format!("body has {len} coefficients, expected N = {n}")));
    }
    let body = read_u64s(&mut r, n, "body coefficients")?;
    r.finish()?;
    Ok(EncryptedQuery { header, seed, body })
}

/// Parses a reply from the model described by `spec`.
pub fn decode_scores(bytes: &[u8], spec: &ScoringSpec) -> Result<EncryptedScores, FheError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        what: SCORES_WHAT,
    };
    let header = read_header(&mut r, SCORES_MAGIC)?;
    header.check(spec, SCORES_WHAT)?;
    let bits = u32::from(r.array::<1>("reply bits")?[0]);
    let expected_bits = spec.params.reply_modulus_log.0 as u32;
    if bits != expected_bits {
        return Err(FheError::WireMismatch {
            what: SCORES_WHAT,
            field: "reply modulus bits",
            expected: expected_bits.to_string(),
            found: bits.to_string(),
        });
    }
    let products = r.u32("product count")? as usize;
    if products != spec.product_count() {
        return Err(r.error(format!(
            "{products} products, expected {} for {} classes",
            spec.product_count(),
            spec.classes
        )));
    }
    let bodies = r.u32("body coefficients per product")? as usize;
    let scores = spec.layout.scores_per_product();
    if bodies != scores {
        return Err(r.error(format!(
            "{bodies} body coefficients per product, expected the K·J = {scores} scores"
        )));
    }
    let count = products * (spec.params.polynomial_size.0 + scores);
    let packed = r.take((count * bits as usize).div_ceil(8), "packed coefficients")?;
    let values = unpack_bits(packed, bits, count)
        .ok_or_else(|| r.error("nonzero padding bits after the last coefficient".into()))?;
    r.finish()?;
    Ok(EncryptedScores {
        header,
        reply_modulus_log: bits,
        values,
    })
}

fn write_header(out: &mut Vec<u8>, magic: [u8; 4], h: &CiphertextHeader) {
    out.extend_from_slice(&magic);
    out.extend_from_slice(&WIRE_VERSION.to_le_bytes());
    out.extend_from_slice(&h.params_id.to_le_bytes());
    out.push(h.circuit.code());
    for v in [
        h.layout.polynomial_size().0,
        h.layout.chunks(),
        h.layout.features(),
        h.layout.classes_per_product(),
        h.classes,
    ] {
        out.extend_from_slice(&(v as u32).to_le_bytes());
    }
    out.push(h.message_bits as u8);
    out.extend_from_slice(&h.model_id.0);
    out.push(u8::from(h.private));
    out.push(h.rounding_bits as u8);
}

/// Checks the magic and the format version every message starts with.
fn read_magic_and_version(r: &mut Reader<'_>, magic: [u8; 4]) -> Result<(), FheError> {
    let found: [u8; 4] = r.array("magic")?;
    if found != magic {
        return Err(r.error(format!(
            "magic {:?} is not {:?}",
            String::from_utf8_lossy(&found),
            String::from_utf8_lossy(&magic)
        )));
    }
    let version = u16::from_le_bytes(r.array("version")?);
    if version != WIRE_VERSION {
        return Err(FheError::WireVersion {
            what: r.what,
            found: version,
            supported: WIRE_VERSION,
        });
    }
    Ok(())
}

fn read_header(r: &mut Reader<'_>, magic: [u8; 4]) -> Result<CiphertextHeader, FheError> {
    read_magic_and_version(r, magic)?;
    let params_id = u16::from_le_bytes(r.array("parameter set id")?);
    let code = r.array::<1>("circuit")?[0];
    let circuit = Circuit::from_code(code).ok_or_else(|| {
        r.error(format!(
            "circuit code {code} is neither 0 (chunks) nor 1 (summed)"
        ))
    })?;
    let n = r.u32("polynomial size")? as usize;
    let chunks = r.u32("chunks")? as usize;
    let features = r.u32("features")? as usize;
    let k = r.u32("classes per product")? as usize;
    let classes = r.u32("classes")? as usize;
    let message_bits = u32::from(r.array::<1>("message bits")?[0]);
    let model_id = ModelId(r.array("model id")?);
    let private = match r.array::<1>("model privacy")?[0] {
        0 => false,
        1 => true,
        other => return Err(r.error(format!("model privacy byte {other} is neither 0 nor 1"))),
    };
    let rounding_bits = u32::from(r.array::<1>("rounding bits")?[0]);
    let layout = Layout::new(chunks, features, k, PolynomialSize(n))
        .map_err(|e| r.error(format!("header layout: {e}")))?;
    Ok(CiphertextHeader {
        params_id,
        circuit,
        layout,
        classes,
        message_bits,
        model_id,
        private,
        rounding_bits,
    })
}

/// `n` little-endian u64s.
fn read_u64s(r: &mut Reader<'_>, n: usize, field: &'static str) -> Result<Vec<u64>, FheError> {
    Ok(r.take(8 * n, field)?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// A bounds-checked cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: String) -> FheError {
        FheError::Wire {
            what: self.what,
            reason,
        }
    }

    fn take(&mut self, len: usize, field: &str) -> Result<&'a [u8], FheError> {
        let left = self.bytes.len() - self.pos;
        if len > left {
            return Err(self.error(format!(
                "truncated: {field} needs {len} bytes at offset {}, only {left} left",
                self.pos
            )));
        }
        let out = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn array<const L: usize>(&mut self, field: &str) -> Result<[u8; L], FheError> {
        let mut out = [0u8; L];
        out.copy_from_slice(self.take(L, field)?);
        Ok(out)
    }

    fn u32(&mut self, field: &str) -> Result<u32, FheError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    fn finish(&self) -> Result<(), FheError> {
        if self.pos != self.bytes.len() {
            return Err(self.error(format!(
                "{} trailing bytes after the message",
                self.bytes.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// Appends `values` (each < 2^bits, 1 ≤ bits ≤ 64) LSB-first, padding the last byte with 0.
fn pack_bits(values: &[u64], bits: u32, out: &mut Vec<u8>) {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut acc = 0u128;
    let mut filled = 0u32;
    for &v in values {
        acc |= u128::from(v & mask) << filled;
        filled += bits;
        if filled >= 64 {
            out.extend_from_slice(&(acc as u64).to_le_bytes());
            acc >>= 64;
            filled -= 64;
        }
    }
    out.extend_from_slice(&(acc as u64).to_le_bytes()[..filled.div_ceil(8) as usize]);
}

/// Reads `count` values of `bits` bits; `None` if the padding bits are not zero. The caller
/// guarantees `bytes.len() == ⌈count·bits/8⌉`.
fn unpack_bits(bytes: &[u8], bits: u32, count: usize) -> Option<Vec<u64>> {
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut values = Vec::with_capacity(count);
    let mut acc = 0u128;
    let mut filled = 0u32;
    let mut bytes = bytes.iter();
    for _ in 0..count {
        while filled < bits {
            acc |= u128::from(*bytes.next()?) << filled;
            filled += 8;
        }
        values.push(acc as u64 & mask);
        acc >>= bits;
        filled -= bits;
    }
    (acc == 0 && bytes.next().is_none()).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_packing_round_trips_at_every_width() {
        for bits in [8u32, 13, 30, 32, 33, 57, 64] {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let values: Vec<u64> = (0..101u64)
                .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask)
                .collect();
            let mut packed = Vec::new();
            pack_bits(&values, bits, &mut packed);
            assert_eq!(packed.len(), (values.len() * bits as usize).div_ceil(8));
            assert_eq!(unpack_bits(&packed, bits, values.len()).unwrap(), values);
        }
    }

    #[test]
    fn nonzero_padding_is_rejected() {
        let mut packed = Vec::new();
        pack_bits(&[1, 2, 3], 13, &mut packed); // 39 bits → 5 bytes, 1 padding bit
        *packed.last_mut().unwrap() |= 0x80;
        assert!(unpack_bits(&packed, 13, 3).is_none());
    }
}
