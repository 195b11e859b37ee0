//! The one FHE planner: which parameter set, polynomial layout and reply width score a layer
//! for queries of J chunks within the noise budget (docs/ARCHITECTURE.md §4). The evaluator,
//! the server and the reports all ask it, so what is measured is what is served.

use super::params::min_reply_modulus_log;
use super::privacy::{ModelPrivacy, PrivacyPlan};
use super::{Circuit, GlweParams, IntegerLinear, Layout, NoiseBudget};
use crate::error::FheError;

/// How one layer is scored: the circuit and the layer it evaluates, the parameter set (with
/// its reply width), the layout, and the noise budget under them.
#[derive(Clone, Debug, PartialEq)]
pub struct FhePlan {
    pub circuit: Circuit,
    /// J, the most chunks a query may hold.
    pub query_chunks: usize,
    /// The layer the circuit evaluates ([`Circuit::layer`]): the model's layer for `chunks`,
    /// the summed layer for `summed`.
    pub layer: IntegerLinear,
    pub params: GlweParams,
    pub layout: Layout,
    pub budget: NoiseBudget,
    /// The model-privacy option (re-randomised, flooded, rounded replies), if served with it.
    pub privacy: Option<PrivacyPlan>,
}

impl FhePlan {
    /// The parameter set every plan starts from: tfhe-rs's 128-bit TUniform set at N = 2048,
    /// replies switched to 32 bits.
    pub const BASE: GlweParams = GlweParams::TUNIFORM_2M128_N2048;

    /// The densest layout for `chunks` × `features` queries under [`FhePlan::BASE`].
    pub fn layout(chunks: usize, features: usize) -> Result<Layout, FheError> {
        Layout::densest(chunks, features, Self::BASE.polynomial_size)
    }

    /// Plans `layer` for queries of `chunks` rows: the base set and the densest layout, with
    /// the 32-bit reply widened to the smallest width that keeps the failure probability per
    /// score under 2^-40 when the layer needs it (wide layers, n_bits ≥ 11 on real models); refused with the budget's
    /// error when no width does.
    ///
    /// ```
    /// use fhe_shazam::fhe::{FhePlan, IntegerLinear};
    /// use ndarray::{Array1, Array2};
    ///
    /// // A worst-case 8-bit layer (weights ±255, inputs −128..=127), 20 features, 400 classes.
    /// let layer = IntegerLinear {
    ///     weights: Array2::from_elem((20, 400), 255),
    ///     bias: Array1::zeros(400),
    ///     input_min: -128,
    ///     input_max: 127,
    /// };
    /// let plan = FhePlan::for_layer(&layer, 30).unwrap();
    /// assert_eq!(plan.layout.classes_per_product(), 3); // ⌊2048 / (30 · 20)⌋
    /// assert_eq!(plan.params.reply_modulus_log.0, 32); // 8 bits fit the base reply width
    /// assert!(plan.budget.log2_failure < -40.0);
    /// ```
    pub fn for_layer(layer: &IntegerLinear, chunks: usize) -> Result<Self, FheError> {
        Self::for_circuit(layer, Circuit::Chunks, chunks)
    }

    /// Plans `circuit` for `layer` and queries of up to `chunks` chunks: the circuit's layer
    /// ([`Circuit::layer`]: for `summed`, ⌈log2 J⌉ more message bits) on
    /// [`Circuit::rows`] rows — J = 1 and K = ⌊N/d⌋ classes per product for `summed` — then
    /// the reply width as in [`FhePlan::for_layer`].
    ///
    /// ```
    /// use fhe_shazam::fhe::{Circuit, FhePlan, IntegerLinear};
    /// use ndarray::{Array1, Array2};
    ///
    /// let layer = IntegerLinear {
    ///     weights: Array2::from_elem((20, 400), 255),
    ///     bias: Array1::zeros(400),
    ///     input_min: -128,
    ///     input_max: 127,
    /// };
    /// let plan = FhePlan::for_circuit(&layer, Circuit::Summed, 30).unwrap();
    /// assert_eq!(plan.layout.chunks(), 1);
    /// assert_eq!(plan.layout.classes_per_product(), 102); // ⌊2048 / 20⌋
    /// assert_eq!(plan.layer.input_min, -128 * 30);
    /// assert!(plan.budget.log2_failure < -40.0);
    /// ```
    pub fn for_circuit(
        layer: &IntegerLinear,
        circuit: Circuit,
        chunks: usize,
    ) -> Result<Self, FheError> {
        let layer = circuit.layer(layer, chunks)?;
        let layout = Self::layout(circuit.rows(chunks), layer.features())?;
        let budget = NoiseBudget::compute(&layer, &layout, &Self::BASE)?;
        if budget.check().is_ok() {
            return Ok(Self {
                circuit,
                query_chunks: chunks,
                layer,
                params: Self::BASE,
                layout,
                budget,
                privacy: None,
            });
        }
        let Some(bits) = min_reply_modulus_log(&layer, &layout, &Self::BASE)? else {
            return Err(budget
                .check()
                .expect_err("the base budget failed its check above"));
        };
        let params = Self::BASE.with_reply_modulus_log(bits)?;
        let budget = NoiseBudget::compute(&layer, &layout, &params)?;
        Ok(Self {
            circuit,
            query_chunks: chunks,
            layer,
            params,
            layout,
            budget,
            privacy: None,
        })
    }

    /// The same plan served with the model-privacy option: the flood for λ and the rounding
    /// bits the budget then needs ([`PrivacyPlan::compute`]).
    pub fn with_privacy(self, privacy: ModelPrivacy) -> Result<Self, FheError> {
        let plan = PrivacyPlan::compute(&self.params, &self.budget, privacy)?;
        Ok(Self {
            privacy: Some(plan),
            ..self
        })
    }
}

/// One line of a noise-budget report: a layer's budget under the base parameter set and the
/// smallest reply width the planner would widen to (`None`: refused at any width).
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetLine {
    pub label: String,
    pub base: NoiseBudget,
    pub min_reply_bits: Option<usize>,
}

/// The noise budget of each labelled layer under `circuit` for queries of up to `chunks`
/// chunks, with the circuit's layer and the layout and base parameters the planner uses.
pub fn budget_lines(
    layers: &[(&str, &IntegerLinear)],
    chunks: usize,
    circuit: Circuit,
) -> Result<Vec<BudgetLine>, FheError> {
    layers
        .iter()
        .map(|(label, layer)| {
            let layer = circuit.layer(layer, chunks)?;
            let layout = FhePlan::layout(circuit.rows(chunks), layer.features())?;
            Ok(BudgetLine {
                label: label.to_string(),
                base: NoiseBudget::compute(&layer, &layout, &FhePlan::BASE)?,
                min_reply_bits: min_reply_modulus_log(&layer, &layout, &FhePlan::BASE)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    fn worst_case(n_bits: u32) -> IntegerLinear {
        IntegerLinear {
            weights: Array2::from_elem((20, 400), (1i64 << n_bits) - 1),
            bias: Array1::zeros(400),
            input_min: -(1 << (n_bits - 1)),
            input_max: (1 << (n_bits - 1)) - 1,
        }
    }

    #[test]
    fn ten_bits_widen_the_reply_and_twelve_are_refused() {
        let p8 = FhePlan::for_layer(&worst_case(8), 30).unwrap();
        assert_eq!(p8.params, FhePlan::BASE);
        let p10 = FhePlan::for_layer(&worst_case(10), 30).unwrap();
        let w = p10.params.reply_modulus_log.0;
        assert!(w > 32 && w < 64, "{w}");
        p10.budget.check().unwrap();
        assert!(matches!(
            FhePlan::for_layer(&worst_case(12), 30),
            Err(FheError::NoiseBudget { .. })
        ));
    }

    #[test]
    fn budget_lines_agree_with_the_plan() {
        let (l8, l10) = (worst_case(8), worst_case(10));
        let lines = budget_lines(&[("8", &l8), ("10", &l10)], 30, Circuit::Chunks).unwrap();
        assert!(
            lines[0].min_reply_bits.unwrap() <= 32,
            "8 bits pass at the base width"
        );
        let p10 = FhePlan::for_layer(&l10, 30).unwrap();
        assert_eq!(
            lines[1].min_reply_bits,
            Some(p10.params.reply_modulus_log.0)
        );
        assert!(lines[1].base.check().is_err());
        // The summed circuit's lines use its layer (wider inputs, more message bits) and give
        // the reply width its plan widens to (the 8-bit worst case needs 35 bits there).
        let summed = budget_lines(&[("8", &l8)], 30, Circuit::Summed).unwrap();
        let plan = FhePlan::for_circuit(&l8, Circuit::Summed, 30).unwrap();
        assert_eq!(summed[0].base.message_bits, plan.budget.message_bits);
        assert!(summed[0].base.message_bits > lines[0].base.message_bits);
        assert_eq!(
            summed[0].min_reply_bits,
            Some(plan.params.reply_modulus_log.0)
        );
    }
}
