//! End-to-end tests of the model-privacy option (fhe::privacy): real private replies decrypt
//! to the rounded scores, simulation draws them from the same distribution, the public key
//! is small and checked, and a private model refuses to answer without one.

use fhe_shazam::error::FheError;
use fhe_shazam::fhe::{
    simulate, wire, Circuit, ClientKey, FhePlan, IntegerLinear, ModelPrivacy, ServerModel, Session,
};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// An 8-bit layer of the seed's shape: 20 features, 400 songs.
fn seed_shaped_layer(rng: &mut ChaCha8Rng) -> IntegerLinear {
    IntegerLinear {
        weights: Array2::from_shape_fn((20, 400), |_| rng.gen_range(-255..=255)),
        bias: Array1::from_shape_fn(400, |_| rng.gen_range(-30_000..=30_000)),
        input_min: -128,
        input_max: 127,
    }
}

#[test]
fn private_replies_decrypt_to_scores_rounded_as_simulated() {
    let mut rng = ChaCha8Rng::seed_from_u64(20);
    let layer = seed_shaped_layer(&mut rng);
    let plan = FhePlan::for_circuit(&layer, Circuit::Summed, 30)
        .unwrap()
        .with_privacy(ModelPrivacy { flood_bits: 8 })
        .unwrap();
    let privacy = plan.privacy.clone().unwrap();
    assert!(privacy.rounding_bits > 0 && privacy.log2_failure <= -40.0);
    let session = Session::from_plan(&plan).unwrap();
    assert!(
        session.public_key_bytes <= 1 << 20,
        "{}",
        session.public_key_bytes
    );
    assert_eq!(
        session.public_key_bytes,
        wire::public_key_size(&plan.params)
    );

    let (mut real, mut simulated) = (Vec::new(), Vec::new());
    for _ in 0..6 {
        let chunks = Array2::from_shape_fn((30, 20), |_| rng.gen_range(-128..=127));
        let rows = Circuit::Summed.query_rows(chunks.view(), 30, 0);
        // Session::run fails unless every score is within 2^ρ of the exact circuit.
        let out = session.run(rows.view()).unwrap();
        let exact = simulate::clear_scores(&plan.layer, rows.view()).unwrap();
        let sampled =
            simulate::sample_private_scores(&exact, plan.budget.delta_log2, &privacy, &mut rng);
        simulate::compare_rounded(&exact, &sampled, privacy.rounding_bits).unwrap();
        for ((&e, &r), &s) in exact.iter().zip(&out.scores).zip(&sampled) {
            real.push((r - e) as f64);
            simulated.push((s - e) as f64);
        }
    }
    // The flood makes the rounding a dither: deviations spread over ±2^ρ with mean 0 and
    // the same spread in the real replies as in simulation (2 400 scores each).
    let spread = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>() / v.len() as f64).sqrt();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (sr, ss) = (spread(&real), spread(&simulated));
    let step = 2f64.powi(privacy.rounding_bits as i32);
    assert!(
        sr > 0.25 * step,
        "real deviations {sr} against 2^ρ = {step}"
    );
    assert!((sr / ss - 1.0).abs() < 0.1, "real {sr} vs simulated {ss}");
    assert!(mean(&real).abs() < 0.05 * step, "{}", mean(&real));
}

#[test]
fn a_private_model_needs_a_valid_public_key() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let layer = seed_shaped_layer(&mut rng);
    let plan = FhePlan::for_circuit(&layer, Circuit::Summed, 30).unwrap();
    let private = ServerModel::from_plan(
        &plan
            .clone()
            .with_privacy(ModelPrivacy { flood_bits: 16 })
            .unwrap(),
    )
    .unwrap();
    let plain = ServerModel::from_plan(&plan).unwrap();
    let key = ClientKey::generate(&plan.params).unwrap();
    let q = Array2::from_shape_fn((1, 20), |_| rng.gen_range(-3840..=3810));
    let query = key.encrypt_query(private.spec(), q.view()).unwrap();
    let err = private.score(&query).unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
    // A query for the private model is refused by the plain one (header), and vice versa.
    let err = plain.score(&query).unwrap_err();
    assert!(err.to_string().contains("model privacy"), "{err}");

    // The public key on the wire: round trip, then truncation and a wrong parameter set.
    let bytes = wire::encode_public_key(&key.public_key());
    assert_eq!(bytes.len(), wire::public_key_size(&plan.params));
    let decoded = wire::decode_public_key(&bytes, &plan.params).unwrap();
    private.prepare_public_key(&decoded).unwrap();
    let err = wire::decode_public_key(&bytes[..bytes.len() - 1], &plan.params).unwrap_err();
    assert!(matches!(err, FheError::Wire { .. }), "{err}");
    let other = fhe_shazam::fhe::GlweParams::TUNIFORM_2M128_N8192;
    let err = wire::decode_public_key(&bytes, &other).unwrap_err();
    assert!(err.to_string().contains("parameter set"), "{err}");
    let mut short = decoded.clone();
    short.body.pop();
    assert!(private.prepare_public_key(&short).is_err());
}

/// The extraction attack through real encrypted replies (the reports use simulated ones): the
/// plain protocol gives the weights exactly after d + 1 chosen queries; model privacy's rounded
/// scores give a copy that is close but not exact; one query buys nothing either way.
#[test]
fn the_extraction_attack_on_real_replies() {
    use fhe_shazam::eval::extraction::extraction_curve;

    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let layer = seed_shaped_layer(&mut rng);
    let plain = FhePlan::for_circuit(&layer, Circuit::Summed, 30).unwrap();
    let test = Array2::from_shape_fn((100, 20), |_| rng.gen_range(-3840..=3810));
    let offsets = Array2::from_shape_fn((100, 400), |(_, c)| 4 * layer.bias[c]);
    let attack = |plan: &FhePlan| {
        let session = Session::from_plan(plan).unwrap();
        let mut oracle = |rows: ndarray::ArrayView2<i64>| Ok(session.run(rows)?.scores);
        extraction_curve(
            &plan.layer,
            &mut oracle,
            1,
            &[1, 21],
            test.view(),
            offsets.view(),
            9,
        )
        .unwrap()
    };
    let exact = attack(&plain);
    assert!(exact[0].weight_error > 0.5, "{exact:?}");
    assert!(exact[1].weight_error < 1e-6, "{exact:?}");
    assert_eq!(exact[1].agreement, 1.0);
    let private = attack(
        &plain
            .clone()
            .with_privacy(ModelPrivacy { flood_bits: 20 })
            .unwrap(),
    );
    assert!(private[0].weight_error > 0.5, "{private:?}");
    assert!(
        (1e-6..0.2).contains(&private[1].weight_error),
        "{private:?}"
    );
}
