//! End-to-end tests of the packed-GLWE scoring: exactness against the integer circuit, what
//! the reply contains, refusals, the wire format, and the measured FFT error.

use fhe_shazam::error::FheError;
use fhe_shazam::fhe::packing::negacyclic_mul;
use fhe_shazam::fhe::params::fft_error_std;
use fhe_shazam::fhe::{
    execute, simulate, wire, ClientKey, GlweParams, IntegerLinear, Layout, ServerModel, Session,
};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::{
    decompress_seeded_glwe_ciphertext, decrypt_glwe_ciphertext, DefaultRandomGenerator,
    GlweCiphertext, PlaintextCount, PlaintextList, SeededGlweCiphertext,
};

const N2048: GlweParams = GlweParams::TUNIFORM_2M128_N2048;

/// A random layer shaped like a quantized model with `n_bits`: weights q_W − Z_w within
/// ±(2^n − 1), inputs in −2^(n−1)..2^(n−1)−1.
fn random_layer(rng: &mut ChaCha8Rng, d: usize, c: usize, n_bits: u32) -> IntegerLinear {
    let w = (1i64 << n_bits) - 1;
    IntegerLinear {
        weights: Array2::from_shape_fn((d, c), |_| rng.gen_range(-w..=w)),
        bias: Array1::from_shape_fn(c, |_| rng.gen_range(-1000..=1000)),
        input_min: -(1 << (n_bits - 1)),
        input_max: (1 << (n_bits - 1)) - 1,
    }
}

fn random_query(rng: &mut ChaCha8Rng, j: usize, layer: &IntegerLinear) -> Array2<i64> {
    Array2::from_shape_fn((j, layer.features()), |_| {
        rng.gen_range(layer.input_min..=layer.input_max)
    })
}

#[test]
fn round_trip_equals_the_integer_circuit_on_small_random_layers() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for &(j, d, c, n_bits) in &[
        (1, 1, 1, 2),
        (3, 5, 4, 4),
        (30, 20, 7, 8),
        (7, 3, 10, 6),
        (30, 20, 3, 10),
    ] {
        let layer = random_layer(&mut rng, d, c, n_bits);
        let layout = Layout::densest(j, d, N2048.polynomial_size).unwrap();
        let min_bits = fhe_shazam::fhe::params::min_reply_modulus_log(&layer, &layout, &N2048)
            .unwrap()
            .unwrap();
        let params = N2048.with_reply_modulus_log(min_bits.max(32)).unwrap();
        let session = Session::new(&layer, layout, params).unwrap();
        for _ in 0..3 {
            let q = random_query(&mut rng, j, &layer);
            let out = session.run(q.view()).unwrap();
            assert_eq!(
                out.scores,
                simulate::clear_scores(&layer, q.view()).unwrap()
            );
        }
    }
}

#[test]
fn full_size_eight_bit_layer_is_exact_and_within_byte_goals() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let layer = random_layer(&mut rng, 20, 400, 8);
    let layout = Layout::densest(30, 20, N2048.polynomial_size).unwrap();
    let queries: Vec<_> = (0..2).map(|_| random_query(&mut rng, 30, &layer)).collect();
    let views: Vec<_> = queries.iter().map(|q| q.view()).collect();
    let report = execute(&layer, layout, N2048, &views).unwrap();
    let server = ServerModel::new(&layer, layout, N2048).unwrap();
    for (q, out) in queries.iter().zip(&report.queries) {
        assert_eq!(
            out.scores,
            simulate::clear_scores(&layer, q.view()).unwrap()
        );
        assert_eq!(out.bytes_up, wire::query_size(server.spec()));
        assert_eq!(out.bytes_down, wire::scores_size(server.spec()));
        assert!(out.bytes_up <= 20 * 1024, "{}", out.bytes_up);
        assert!(
            out.bytes_down as f64 <= 1.1 * 1024.0 * 1024.0,
            "{}",
            out.bytes_down
        );
    }
}

#[test]
fn other_layouts_are_exact_too() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let layer = random_layer(&mut rng, 20, 30, 8);
    let q = random_query(&mut rng, 30, &layer);
    let expected = simulate::clear_scores(&layer, q.view()).unwrap();
    let n8192 = GlweParams::TUNIFORM_2M128_N8192;
    for (layout, params) in [
        (
            Layout::new(30, 20, 1, N2048.polynomial_size).unwrap(),
            N2048,
        ),
        (
            Layout::new(30, 20, 2, N2048.polynomial_size).unwrap(),
            N2048,
        ),
        (
            Layout::densest(30, 20, n8192.polynomial_size).unwrap(),
            n8192,
        ),
    ] {
        let session = Session::new(&layer, layout, params).unwrap();
        assert_eq!(
            session.run(q.view()).unwrap().scores,
            expected,
            "{layout:?}"
        );
    }
}

#[test]
fn negative_scores_decode_correctly() {
    // Negative weights × positive inputs − bias: every score negative, down to −B.
    let layer = IntegerLinear {
        weights: Array2::from_elem((20, 5), -255),
        bias: Array1::from_elem(5, -7),
        input_min: -128,
        input_max: 127,
    };
    let mut q = Array2::from_elem((30, 20), 127);
    q[[0, 0]] = 0;
    q[[1, 3]] = -128; // one positive contribution
    let session = Session::new(
        &layer,
        Layout::densest(30, 20, N2048.polynomial_size).unwrap(),
        N2048,
    )
    .unwrap();
    let scores = session.run(q.view()).unwrap().scores;
    assert!(scores.iter().all(|&s| s < 0));
    assert_eq!(scores[[2, 4]], -255 * 127 * 20 - 7);
}

#[test]
fn reply_holds_score_coefficients_only() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let layer = random_layer(&mut rng, 20, 10, 8);
    let layout = Layout::densest(30, 20, N2048.polynomial_size).unwrap();
    let session = Session::new(&layer, layout, N2048).unwrap();
    let spec = session.server.spec().clone();
    let q = random_query(&mut rng, 30, &layer);
    let query = session.client.encrypt_query(&spec, q.view()).unwrap();
    let reply = session.server.score(&query).unwrap();

    let n = N2048.polynomial_size.0;
    assert_eq!(reply.product_count(), 4);
    for g in 0..reply.product_count() {
        assert_eq!(reply.mask(g).len(), n);
        assert_eq!(reply.body(g).len(), layout.scores_per_product());
        assert!(reply.mask(g).iter().all(|&v| v < 1 << 32));
    }
    assert_eq!(reply.values.len(), 4 * (n + 90));

    // Decrypting the full products (server side, before truncation) shows cross terms on
    // coefficients ≥ K·J; none of those body coefficients is in the reply.
    let full = session.server.full_products(&query).unwrap();
    let delta_log = spec.delta_log2();
    let decoded = |v: u64| (v.wrapping_add(1 << (delta_log - 1)) as i64) >> delta_log;
    let scores = session.client.decrypt_scores(&spec, &reply).unwrap();
    for (g, ct) in full.iter().enumerate() {
        let mut plain = PlaintextList::new(0u64, PlaintextCount(n));
        decrypt_glwe_ciphertext(session.client.secret_key(), ct, &mut plain);
        let plain: Vec<i64> = plain.into_container().into_iter().map(decoded).collect();
        for k in 0..3 {
            let class = g * 3 + k;
            for j in 0..30 {
                let expected = if class < 10 { scores[[j, class]] } else { 0 };
                assert_eq!(plain[layout.score_position(j, k)], expected);
            }
        }
        let cross = plain[90..].iter().filter(|&&v| v != 0).count();
        assert!(
            cross > 1000,
            "product {g}: only {cross} nonzero cross terms"
        );
    }
}

#[test]
fn huge_weights_are_refused_by_the_noise_budget() {
    let layer = IntegerLinear {
        weights: Array2::from_elem((20, 4), 1 << 20),
        bias: Array1::zeros(4),
        input_min: -128,
        input_max: 127,
    };
    let layout = Layout::densest(30, 20, N2048.polynomial_size).unwrap();
    match ServerModel::new(&layer, layout, N2048) {
        Err(FheError::NoiseBudget { log2_failure, .. }) => assert!(log2_failure > -40.0),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("accepted a layer over budget"),
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let layer = random_layer(&mut rng, 20, 4, 8);
    let layout = Layout::densest(30, 20, N2048.polynomial_size).unwrap();
    let session = Session::new(&layer, layout, N2048).unwrap();
    let spec = session.server.spec();
    let mut q = random_query(&mut rng, 30, &layer);
    q[[3, 4]] = 128;
    assert!(matches!(
        session.client.encrypt_query(spec, q.view()),
        Err(FheError::InputOutOfRange {
            chunk: 3,
            feature: 4,
            value: 128,
            ..
        })
    ));
    let wrong_shape = Array2::<i64>::zeros((29, 20));
    assert!(matches!(
        session.client.encrypt_query(spec, wrong_shape.view()),
        Err(FheError::Shape { .. })
    ));
    let other_key = ClientKey::generate(&GlweParams::TUNIFORM_2M128_N8192).unwrap();
    assert!(matches!(
        other_key.encrypt_query(spec, Array2::zeros((30, 20)).view()),
        Err(FheError::InvalidParams { .. })
    ));
    // Hand-made specs that would break decoding are refused, not trusted.
    let reply = session
        .server
        .score(
            &session
                .client
                .encrypt_query(spec, Array2::zeros((30, 20)).view())
                .unwrap(),
        )
        .unwrap();
    let mut bad = spec.clone();
    bad.message_bits = 64;
    assert!(matches!(
        session.client.decrypt_scores(&bad, &reply),
        Err(FheError::InvalidParams { .. })
    ));
    let mut bad = spec.clone();
    bad.layout = Layout::densest(30, 20, GlweParams::TUNIFORM_2M128_N8192.polynomial_size).unwrap();
    assert!(matches!(
        session.client.decrypt_scores(&bad, &reply),
        Err(FheError::InvalidLayout(_))
    ));
    // A layer with a different feature count does not fit the layout.
    let narrow = random_layer(&mut rng, 19, 4, 8);
    assert!(matches!(
        ServerModel::new(&narrow, layout, N2048),
        Err(FheError::InvalidLayout(_))
    ));
}

#[test]
fn another_key_decrypts_to_a_reported_mismatch() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let layer = random_layer(&mut rng, 20, 6, 8);
    let layout = Layout::densest(30, 20, N2048.polynomial_size).unwrap();
    let session = Session::new(&layer, layout, N2048).unwrap();
    let spec = session.server.spec();
    let q = random_query(&mut rng, 30, &layer);
    let reply = session
        .server
        .score(&session.client.encrypt_query(spec, q.view()).unwrap())
        .unwrap();
    let stranger = ClientKey::generate(&N2048).unwrap();
    let garbage = stranger.decrypt_scores(spec, &reply).unwrap();
    let exact = simulate::clear_scores(&layer, q.view()).unwrap();
    match simulate::compare(&exact, &garbage) {
        Err(FheError::Mismatch { count, total, .. }) => assert!(count > total / 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tampered_truncated_and_foreign_messages_are_rejected() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let layer = random_layer(&mut rng, 20, 7, 8);
    let layout = Layout::densest(30, 20, N2048.polynomial_size).unwrap();
    let session = Session::new(&layer, layout, N2048).unwrap();
    let spec = session.server.spec();
    let q = random_query(&mut rng, 30, &layer);
    let query = session.client.encrypt_query(spec, q.view()).unwrap();
    let up = wire::encode_query(&query);
    let down = wire::encode_scores(&session.server.score(&query).unwrap());
    assert_eq!(wire::decode_query(&up, spec).unwrap(), query);

    // Every truncation, including the empty message.
    for len in (0..up.len()).step_by(7) {
        assert!(
            matches!(
                wire::decode_query(&up[..len], spec),
                Err(FheError::Wire { .. })
            ),
            "{len}"
        );
    }
    for len in (0..down.len()).step_by(97) {
        assert!(
            matches!(
                wire::decode_scores(&down[..len], spec),
                Err(FheError::Wire { .. })
            ),
            "{len}"
        );
    }
    // Trailing bytes.
    let mut long = up.clone();
    long.push(0);
    assert!(matches!(
        wire::decode_query(&long, spec),
        Err(FheError::Wire { .. })
    ));
    // A query is not a reply (magic).
    assert!(matches!(
        wire::decode_scores(&up, spec),
        Err(FheError::Wire { .. })
    ));
    // Version (2: before the model-privacy bytes).
    let mut v2 = up.clone();
    v2[4] = 2;
    assert!(matches!(
        wire::decode_query(&v2, spec),
        Err(FheError::WireVersion { found: 2, .. })
    ));
    // A query of the other circuit: a mismatch naming both circuits.
    let mut summed = up.clone();
    summed[8] = 1;
    let err = wire::decode_query(&summed, spec).unwrap_err();
    assert!(
        matches!(
            err,
            FheError::WireMismatch {
                field: "circuit",
                ..
            }
        ) && err.to_string().contains("chunks")
            && err.to_string().contains("summed"),
        "{err}"
    );
    let mut unknown = up.clone();
    unknown[8] = 9;
    assert!(matches!(
        wire::decode_query(&unknown, spec),
        Err(FheError::Wire { .. })
    ));
    // Parameter set id, layout (K), class count, message bits, model id.
    let field = |offset: usize, value: u8| {
        let mut m = down.clone();
        m[offset] ^= value;
        wire::decode_scores(&m, spec)
    };
    for (offset, value, name) in [
        (6, 9, "parameter set id"),
        (21, 2, "layout"),
        (25, 8, "class count"),
        (29, 30, "message bits"),
        (41, 0xAA, "model id"),
        (62, 1, "model privacy"),
        (63, 5, "model privacy"),
    ] {
        match field(offset, value) {
            Err(FheError::WireMismatch { field, .. }) => assert_eq!(field, name),
            other => panic!("offset {offset}: {other:?}"),
        }
    }
    // An impossible layout in the header (K·J·d > N), a model-privacy byte that is not 0 or 1.
    assert!(matches!(field(21, 200), Err(FheError::Wire { .. })));
    assert!(matches!(field(62, 2), Err(FheError::Wire { .. })));
    // Reply width and product count.
    assert!(matches!(
        field(wire::HEADER_LEN, 31),
        Err(FheError::WireMismatch { .. })
    ));
    assert!(matches!(
        field(wire::HEADER_LEN + 1, 9),
        Err(FheError::Wire { .. })
    ));
    // A query for this model is refused by another model's server, and that server's
    // reply cannot be decoded against this spec.
    let other = ServerModel::new(&random_layer(&mut rng, 20, 7, 8), layout, N2048).unwrap();
    assert!(matches!(
        wire::decode_query(&up, other.spec()),
        Err(FheError::WireMismatch {
            field: "model id",
            ..
        })
    ));
    let their_query = session
        .client
        .encrypt_query(other.spec(), q.view())
        .unwrap();
    let foreign = wire::encode_scores(&other.score(&their_query).unwrap());
    assert!(matches!(
        wire::decode_scores(&foreign, spec),
        Err(FheError::WireMismatch {
            field: "model id",
            ..
        })
    ));
}

/// The FFT error of the server's mask products, measured against exact integer products, is
/// far below Δ/2 and below the model the noise budget uses; the body is exact.
#[test]
fn measured_fft_error_is_below_model_and_far_below_half_delta() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let layer = random_layer(&mut rng, 20, 9, 8);
    let layout = Layout::densest(30, 20, N2048.polynomial_size).unwrap();
    let session = Session::new(&layer, layout, N2048).unwrap();
    let spec = session.server.spec();
    let query = session
        .client
        .encrypt_query(spec, random_query(&mut rng, 30, &layer).view())
        .unwrap();
    let n = N2048.polynomial_size.0;
    let seeded = SeededGlweCiphertext::from_container(
        query.body.as_slice(),
        N2048.glwe_dimension.to_glwe_size(),
        CompressionSeed::from(Seed(query.seed)),
        N2048.ciphertext_modulus,
    );
    let mut glwe = GlweCiphertext::new(
        0u64,
        N2048.glwe_dimension.to_glwe_size(),
        N2048.polynomial_size,
        N2048.ciphertext_modulus,
    );
    decompress_seeded_glwe_ciphertext::<_, _, _, DefaultRandomGenerator>(&mut glwe, &seeded);
    let (mask, body) = glwe.as_ref().split_at(n);

    let full = session.server.full_products(&query).unwrap();
    let (mut max_err, mut sum_sq, mut count, mut worst_l2) = (0f64, 0f64, 0f64, 0f64);
    for (g, ct) in full.iter().enumerate() {
        let w = layout.weight_polynomial(layer.weights.view(), g).unwrap();
        worst_l2 = f64::max(
            worst_l2,
            w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt(),
        );
        let exact_mask = negacyclic_mul(mask, &w).unwrap();
        let exact_body = negacyclic_mul(body, &w).unwrap();
        let (fft_mask, full_body) = ct.as_ref().split_at(n);
        // The body is computed exactly (bias·Δ on the score coefficients only).
        let bias_free: Vec<u64> = full_body
            .iter()
            .enumerate()
            .map(|(t, &v)| {
                if t < layout.scores_per_product() {
                    let class = g * 3 + t / 30;
                    v.wrapping_sub((layer.bias[class] as u64) << spec.delta_log2())
                } else {
                    v
                }
            })
            .collect();
        assert_eq!(bias_free, exact_body, "product {g}: body not exact");
        for t in 0..n {
            let e = fft_mask[t].wrapping_sub(exact_mask[t]) as i64 as f64;
            max_err = max_err.max(e.abs());
            sum_sq += e * e;
            count += 1.0;
        }
    }
    let rms = (sum_sq / count).sqrt();
    let model = fft_error_std(N2048.polynomial_size, worst_l2);
    let half_delta = 2f64.powi(spec.delta_log2() as i32 - 1);
    eprintln!(
        "FFT error: rms 2^{:.1}, max 2^{:.1}, model σ 2^{:.1}, Δ/2 = 2^{:.0}",
        rms.log2(),
        max_err.log2(),
        model.log2(),
        half_delta.log2()
    );
    assert!(rms <= model, "rms {rms} above model {model}");
    assert!(max_err < half_delta / 2f64.powi(10));
}

/// The noise budget of worst-case n-bit layers (every weight at ±(2^n − 1), inputs at the
/// range ends), n = 2…12: printed for the report; 8 bits passes at 32 reply bits with a wide
/// margin, 12 bits is refused at any reply width.
#[test]
fn noise_budget_table_for_n_bits_2_to_12() {
    let layers: Vec<(String, IntegerLinear)> = (2..=12u32)
        .map(|n| {
            let layer = IntegerLinear {
                weights: Array2::from_elem((20, 400), (1i64 << n) - 1),
                bias: Array1::zeros(400),
                input_min: -(1 << (n - 1)),
                input_max: (1 << (n - 1)) - 1,
            };
            (format!("n_bits {n}"), layer)
        })
        .collect();
    let refs: Vec<(&str, &IntegerLinear)> = layers.iter().map(|(l, x)| (l.as_str(), x)).collect();
    let lines = fhe_shazam::fhe::budget_lines(&refs, 30, fhe_shazam::fhe::Circuit::Chunks).unwrap();
    let table = fhe_shazam::report::tables::noise_budget_table(&lines);
    eprintln!("{table}");
    let row = |n: u32| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("| n_bits {n} |")))
            .unwrap()
    };
    assert!(row(8).contains("| ok |"));
    assert!(row(12).contains("REFUSED") && row(12).ends_with("| none |"));
}
