//! The halo2 circuit of a quantized model, built on halo2-base's flex gate and range chip.
//!
//! Every value is an [`AssignedValue`]. Weights and biases enter as `Constant` cells: halo2-base
//! places each distinct constant in a *fixed* column and wires it to its uses with copy
//! constraints, so the fixed-column commitments and the permutation commitments in the verifying
//! key pin the exact weights. Different weights give a different verifying key, hence a different
//! verifier bytecode and a different model id.
//!
//! Public instances, in order: `[binding, packed inputs.., packed outputs..]`, or for a committed-input
//! model `[binding, C, packed outputs..]` with `C = Poseidon(packed inputs.. ‖ salt)` and the input and
//! salt private witnesses (see [`crate::commitment`]). Values are packed
//! [`values_per_word`] to a field element, least significant first, each as the unsigned offset
//! value `v + 2^(B-1) ∈ [0, 2^B)` (already range checked, so the packing is injective):
//! `word = Σ_j (v_j + 2^(B-1)) · 2^(B·j)`. Packing cuts the verifier's per-instance work, which
//! dominates both its bytecode size and its gas. `binding` is opaque to the model: the coordinator sets it to
//! `keccak256(abi.encode(requestId, fulfiller)) mod r`, so a proof is only valid for the request
//! and the fulfiller it was made for. It is squared in a gate so that it is part of the constraint
//! system, and it is absorbed into the Fiat–Shamir transcript like every instance.
//!
//! Gadgets (with `B = value_bits`, `H = 2^(B-1)`):
//! * **signed range check** of `x`: `x + H ∈ [0, 2^B)` by lookup.
//! * **rounding division** of an accumulator `a` by a constant `d` (`d = 2^shift` for rescaling):
//!   witness `q' = y + H` and `r`, constrain `d·q' + r = a + ⌊d/2⌋ + d·H`, `r ∈ [0, d)`,
//!   `q' ∈ [0, 2^B)`. With ReLU fused, `q' = 2^(B-1)·s + l` with `s` a bit and `l ∈ [0, 2^(B-1))`,
//!   and the output is `s·l` (`s = 1` exactly when `y ≥ 0`, and then `y = l`).
//! * **ReLU** of a range-checked `x`: the same sign decomposition of `x + H`.
//! * **max** of two range-checked values: `is_less_than` on the shifted values, then `select`.

pub mod dense;
pub mod lookup;

use halo2_base::{
    gates::{
        circuit::{builder::BaseCircuitBuilder, BaseCircuitParams, BaseConfig, CircuitBuilderStage},
        GateChip, GateInstructions, RangeChip, RangeInstructions,
    },
    halo2_proofs::{
        circuit::{Layouter, SimpleFloorPlanner},
        halo2curves::bn256::Fr,
        halo2curves::ff::Field,
        plonk::{Circuit, ConstraintSystem, Error as PlonkError},
    },
    AssignedValue, Context,
    QuantumCell::{Constant, Existing},
};
use serde::{Deserialize, Serialize};

pub use dense::{DenseConfig, DenseRegion};
pub use lookup::{LookupConfig, LookupRegion};

use crate::{
    error::{Error, Result},
    graph::{QSource, QuantModel, QuantOp},
    ir::Cmp,
    quant::{div_round, from_field, to_field},
};

/// How strictly synthesis treats values: real proofs must be exact, key generation only needs
/// the circuit's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Witnessing {
    /// Every value must be in range; an overflow is an error.
    Exact,
    /// Shape only: out-of-range values are replaced by zero (the constraints are the same).
    ShapeOnly,
    /// A dishonest prover, for negative tests: the given gadget produces a wrong witness.
    #[cfg(test)]
    Tampered(Tamper),
}

/// Which witness a dishonest prover falsifies (tests only).
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Rounding division: quotient one too large, remainder one divisor smaller (equation holds).
    Quotient,
    /// Rounding division: remainder off by one (equation broken).
    Remainder,
    /// ReLU: sign bit flipped, low part adjusted so the recomposition still holds.
    Sign,
    /// Dot-product gate: the running sum of the region's second row is one too large.
    Dot,
    /// Function table: the first lookup's output is one too large.
    Lookup,
    /// Division: quotient one too large, remainder `2d` smaller (the equation still holds).
    Div,
    /// Square root: `⌊sqrt(4N)⌋` one too large (the output still recomposes).
    Sqrt,
    /// Packed dot product: the first two slots shifted against each other (`y_0 + 2^S`,
    /// `y_1 − 1`), so the recomposition still holds; the rescale witnesses the wrapped quotient.
    Unpack,
    /// Packed dot product: these field elements added to the witnesses of the group's first slots
    /// (an arbitrary unpacking); the gadgets that follow wrap a value they cannot represent into the
    /// value bits and carry on, as a cheating prover would, so only the constraints can refuse it.
    UnpackDelta([Fr; 3]),
    /// A committed input outside the model's input range (inside the value bits): the reference
    /// pass's input check is skipped, so only the circuit can refuse it.
    InputRange,
}

/// What synthesis produced.
#[derive(Clone, Debug)]
pub struct Synthesized {
    /// The quantized output, as computed inside the circuit.
    pub output: Vec<i64>,
    /// The public instances, in circuit order.
    pub instances: Vec<Fr>,
}

/// Version of the circuit layout, recorded on model cards: keys made for another version cannot
/// prove this circuit. 2: packed dot products and the dense gate's flag column.
pub const CIRCUIT_VERSION: u32 = 2;

/// Rows reserved at the bottom of the circuit for blinding factors.
pub const MINIMUM_ROWS: usize = 20;

/// The configuration of a model's circuit: halo2-base's flex gate and range chip, and the
/// dot-product region's lane count (0: no region, dot products use the flex gate).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CircuitParams {
    /// halo2-base configuration (k, columns, lookup bits).
    pub base: BaseCircuitParams,
    /// Lanes of the dot-product region ([`dense`]).
    pub lanes: usize,
    /// Whether the circuit has function tables ([`lookup`]).
    #[serde(default)]
    pub lookups: bool,
}

impl CircuitParams {
    /// Circuit size: 2^k rows.
    pub fn k(&self) -> u32 {
        self.base.k as u32
    }

    /// Rows usable by the regions (2^k minus the rows reserved for blinding).
    pub fn usable_rows(&self) -> usize {
        (1usize << self.base.k) - MINIMUM_ROWS
    }
}

/// Column handles of a model's circuit.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    base: BaseConfig<Fr>,
    dense: Option<DenseConfig>,
    lookup: Option<LookupConfig>,
}

/// A model's circuit: a halo2-base region (flex gate, range lookups, constants, instances) and the
/// dot-product region, linked by copy constraints.
#[derive(Clone, Debug)]
pub struct ModelCircuit {
    /// The flex-gate region.
    pub base: BaseCircuitBuilder<Fr>,
    /// The dot-product region.
    pub dense: DenseRegion,
    /// The function tables and their lookups.
    pub functions: LookupRegion,
}

impl ModelCircuit {
    /// An empty circuit for `stage` with `2^k` rows and `lanes` dot-product lanes (range lookups of
    /// `k − 1` bits, one instance column).
    pub fn new(stage: CircuitBuilderStage, k: u32, lanes: usize) -> Self {
        let base = BaseCircuitBuilder::from_stage(stage)
            .use_k(k as usize)
            .use_lookup_bits(k as usize - 1)
            .use_instance_columns(1);
        Self { base, dense: DenseRegion::new(lanes), functions: LookupRegion::default() }
    }

    /// A circuit for proving with a configuration fixed by key generation.
    pub fn prover(
        params: &CircuitParams,
        break_points: halo2_base::gates::flex_gate::MultiPhaseThreadBreakPoints,
    ) -> Self {
        Self {
            base: BaseCircuitBuilder::prover(params.base.clone(), break_points),
            dense: DenseRegion::new(params.lanes),
            functions: LookupRegion::default(),
        }
    }

    /// Sizes the flex-gate region after synthesis (columns for `2^k` rows) and returns the
    /// configuration; fails if the dot-product region does not fit in the usable rows.
    pub fn calculate_params(&mut self) -> Result<CircuitParams> {
        let base = self.base.calculate_params(Some(MINIMUM_ROWS));
        let params = CircuitParams { base, lanes: self.dense.lanes(), lookups: !self.functions.is_empty() };
        let (lookups, entries) = (self.functions.rows(), self.functions.table_rows());
        if params.lookups && lookups.max(entries) > params.usable_rows() {
            return Err(Error::InvalidCircuitSize(format!(
                "the function tables need {} rows ({entries} table entries, {lookups} lookups); 2^{} rows leave {} \
                 usable",
                lookups.max(entries),
                params.k(),
                params.usable_rows()
            )));
        }
        if self.dense.rows() > params.usable_rows() {
            return Err(Error::InvalidCircuitSize(format!(
                "the dot-product region needs {} rows with {} lanes; 2^{} rows leave {} usable",
                self.dense.rows(),
                params.lanes,
                params.k(),
                params.usable_rows()
            )));
        }
        Ok(params)
    }

    /// Sets the configuration (after [`ModelCircuit::calculate_params`] or from a key's shape).
    pub fn set_params(&mut self, params: &CircuitParams) {
        self.base.set_params(params.base.clone());
    }

    /// Drops the witness (a probe that is never synthesized).
    pub fn clear(&mut self) {
        self.base.clear();
    }
}

impl Circuit<Fr> for ModelCircuit {
    type Config = ModelConfig;
    type FloorPlanner = SimpleFloorPlanner;
    type Params = CircuitParams;

    fn params(&self) -> Self::Params {
        CircuitParams {
            base: self.base.config_params.clone(),
            lanes: self.dense.lanes(),
            lookups: !self.functions.is_empty(),
        }
    }

    fn without_witnesses(&self) -> Self {
        unimplemented!("keys are generated from a shape-only synthesis")
    }

    fn configure_with_params(meta: &mut ConstraintSystem<Fr>, params: Self::Params) -> Self::Config {
        let base = BaseConfig::configure(meta, params.base);
        let dense = (params.lanes > 0).then(|| DenseConfig::configure(meta, params.lanes));
        let lookup = params.lookups.then(|| LookupConfig::configure(meta));
        ModelConfig { base, dense, lookup }
    }

    fn configure(_: &mut ConstraintSystem<Fr>) -> Self::Config {
        unreachable!("configured with parameters")
    }

    fn synthesize(&self, config: Self::Config, mut layouter: impl Layouter<Fr>) -> std::result::Result<(), PlonkError> {
        if let Some(dense) = &config.dense {
            if self.dense.rows() > config.base.gate().max_rows {
                return Err(PlonkError::NotEnoughRowsAvailable { current_k: self.base.config_params.k as u32 });
            }
            let links =
                layouter.assign_region(|| "dot products", |mut region| Ok(self.dense.assign(dense, &mut region)))?;
            if !self.base.witness_gen_only() {
                let mut copies = self.base.core().copy_manager.lock().expect("copy manager poisoned");
                for (tag, cell) in links {
                    copies.assigned_advices.insert(tag, cell);
                }
            }
        }
        match &config.lookup {
            Some(lookup) => {
                let rows = self.functions.rows().max(self.functions.table_rows());
                if rows > config.base.gate().max_rows {
                    return Err(PlonkError::NotEnoughRowsAvailable { current_k: self.base.config_params.k as u32 });
                }
                let links = layouter
                    .assign_region(|| "function tables", |mut region| Ok(self.functions.assign(lookup, &mut region)))?;
                if !self.base.witness_gen_only() {
                    let mut copies = self.base.core().copy_manager.lock().expect("copy manager poisoned");
                    for (tag, cell) in links {
                        copies.assigned_advices.insert(tag, cell);
                    }
                }
            }
            None if !self.functions.is_empty() => return Err(PlonkError::Synthesis),
            None => {}
        }
        self.base.synthesize(config.base, layouter)
    }
}

struct Chips<'a> {
    range: &'a RangeChip<Fr>,
    bits: usize,
    half: Fr,
    mode: Witnessing,
}

impl Chips<'_> {
    fn gate(&self) -> &GateChip<Fr> {
        self.range.gate()
    }

    fn value(&self, a: &AssignedValue<Fr>) -> i128 {
        from_field(a.value()).unwrap_or(i128::MAX)
    }

    /// Constrains `x ∈ [-2^(B-1), 2^(B-1))`.
    fn range_signed(&self, ctx: &mut Context<Fr>, x: AssignedValue<Fr>) {
        let shifted = self.gate().add(ctx, x, Constant(self.half));
        self.range.range_check(ctx, shifted, self.bits);
    }

    /// Splits `v + H` (for `v` in range) into `(sign bit, low bits)`.
    fn sign_split(&self, v: i128) -> (u64, u64) {
        let h = 1i128 << (self.bits - 1);
        let shifted = (v + h) as u64;
        (shifted >> (self.bits - 1), shifted & ((1u64 << (self.bits - 1)) - 1))
    }

    /// The sign decomposition a (possibly dishonest) prover assigns.
    fn sign_witness(&self, v: i128) -> (Fr, Fr) {
        let (s, l) = self.sign_split(v);
        #[cfg(test)]
        if self.mode == Witnessing::Tampered(Tamper::Sign) {
            let flipped = 1 - s as i128;
            let low = l as i128 + (s as i128 - flipped) * (1i128 << (self.bits - 1));
            return (Fr::from(flipped as u64), to_field(low));
        }
        (Fr::from(s), Fr::from(l))
    }

    fn in_range(&self, v: i128) -> bool {
        let h = 1i128 << (self.bits - 1);
        (-h..h).contains(&v)
    }

    fn check(&self, node: &str, v: i128) -> Result<i128> {
        if self.in_range(v) {
            return Ok(v);
        }
        match self.mode {
            Witnessing::ShapeOnly => Ok(0),
            #[cfg(test)]
            Witnessing::Tampered(Tamper::UnpackDelta(_)) => {
                let span = 1i128 << self.bits;
                let w = v.rem_euclid(span);
                Ok(if w >= span / 2 { w - span } else { w })
            }
            _ => Err(Error::Overflow { node: node.into(), value: v, bits: self.bits as u32 }),
        }
    }

    /// `(s, l)` with `x + H = 2^(B-1)·s + l`, `s` a bit and `l ∈ [0, 2^(B-1))`: `s = 1` exactly when
    /// `x ≥ 0` (this also range checks `x`).
    fn sign_decompose(
        &self,
        ctx: &mut Context<Fr>,
        x: AssignedValue<Fr>,
        node: &str,
    ) -> Result<(AssignedValue<Fr>, AssignedValue<Fr>)> {
        let v = self.check(node, self.value(&x))?;
        let (s, l) = self.sign_witness(v);
        let sign = ctx.load_witness(s);
        let low = ctx.load_witness(l);
        self.gate().assert_bit(ctx, sign);
        self.range.range_check(ctx, low, self.bits - 1);
        let recomposed = self.gate().mul_add(ctx, sign, Constant(self.half), low);
        let shifted = self.gate().add(ctx, x, Constant(self.half));
        ctx.constrain_equal(&recomposed, &shifted);
        Ok((sign, low))
    }

    /// `s·l` where `x + H = 2^(B-1)·s + l`: ReLU of a value known to be in range.
    fn relu(&self, ctx: &mut Context<Fr>, x: AssignedValue<Fr>, node: &str) -> Result<AssignedValue<Fr>> {
        let (sign, low) = self.sign_decompose(ctx, x, node)?;
        Ok(self.gate().mul(ctx, sign, low))
    }

    /// `div_round(acc, d)`, range checked, optionally followed by ReLU.
    /// The dot products `y_l` of a packed group (outputs `group` of `terms`, activations `xs`),
    /// witnessed and constrained to recompose `packed = Σ_l 2^(slot_bits·l)·y_l`. Unique only
    /// together with the rescale of each `y_l` that follows (see [`dense`]).
    fn unpack(
        &self,
        ctx: &mut Context<Fr>,
        packed: AssignedValue<Fr>,
        xs: &[AssignedValue<Fr>],
        terms: &[Vec<(u32, i64)>],
        group: &[usize],
        slot_bits: u32,
    ) -> Vec<AssignedValue<Fr>> {
        if group.len() == 1 {
            return vec![packed];
        }
        #[allow(unused_mut)]
        let mut values: Vec<i128> = group
            .iter()
            .map(|o| {
                terms[*o]
                    .iter()
                    .zip(xs)
                    .fold(0i128, |acc, ((_, w), x)| acc.saturating_add((*w as i128).saturating_mul(self.value(x))))
            })
            .collect();
        #[cfg(test)]
        if self.mode == Witnessing::Tampered(Tamper::Unpack) {
            // Same recomposition, other slots: only the rescale's bounds can refuse it.
            values[0] += 1i128 << slot_bits;
            values[1] -= 1;
        }
        #[allow(unused_mut)]
        let mut fields: Vec<Fr> = values.iter().map(|v| to_field(*v)).collect();
        #[cfg(test)]
        if let Witnessing::Tampered(Tamper::UnpackDelta(deltas)) = self.mode {
            fields.iter_mut().zip(deltas).for_each(|(y, d)| *y += d);
        }
        let ys: Vec<AssignedValue<Fr>> = fields.iter().map(|y| ctx.load_witness(*y)).collect();
        let slot = dense::slot_base(slot_bits);
        let weights = std::iter::successors(Some(Fr::ONE), |p| Some(*p * slot)).take(ys.len());
        let recomposed = self.gate().inner_product(ctx, ys.iter().map(|y| Existing(*y)), weights.map(Constant));
        ctx.constrain_equal(&recomposed, &packed);
        ys
    }

    fn div_round(
        &self,
        ctx: &mut Context<Fr>,
        acc: AssignedValue<Fr>,
        d: u64,
        relu: bool,
        node: &str,
    ) -> Result<AssignedValue<Fr>> {
        let a = self.value(&acc);
        // (A tampered slot can hold any field element: keep the witness arithmetic in i128.)
        #[cfg(test)]
        let a = if matches!(self.mode, Witnessing::Tampered(Tamper::UnpackDelta(_))) {
            a.clamp(-(1i128 << 100), 1i128 << 100)
        } else {
            a
        };
        if d == 1 {
            // No division: the value itself, range checked (by the sign decomposition with ReLU).
            if relu {
                return self.relu(ctx, acc, node);
            }
            self.check(node, a)?;
            self.range_signed(ctx, acc);
            return Ok(acc);
        }
        #[allow(unused_mut)]
        let mut q = div_round(a, d as i128);
        #[cfg(test)]
        if self.mode == Witnessing::Tampered(Tamper::Unpack) && !self.in_range(q) {
            // The tampered slot's quotient, wrapped into the value bits as a cheating prover would.
            let span = 1i128 << self.bits;
            q = (q + span / 2).rem_euclid(span) - span / 2;
        }
        #[allow(unused_mut)]
        let mut y = self.check(node, q)?;
        #[allow(unused_mut)]
        let mut rem = match self.mode {
            Witnessing::ShapeOnly => 0,
            _ => a + (d / 2) as i128 - y * d as i128,
        };
        #[cfg(test)]
        match self.mode {
            Witnessing::Tampered(Tamper::Quotient) => {
                y += 1;
                rem -= d as i128;
            }
            Witnessing::Tampered(Tamper::Remainder) => rem += 1,
            _ => {}
        }
        let rem_cell = ctx.load_witness(to_field(rem));
        if d.is_power_of_two() {
            self.range.range_check(ctx, rem_cell, d.trailing_zeros() as usize);
        } else {
            self.range.check_less_than_safe(ctx, rem_cell, d);
        }
        let (q_shifted, out) = if relu {
            let (s, l) = self.sign_witness(y);
            let sign = ctx.load_witness(s);
            let low = ctx.load_witness(l);
            self.gate().assert_bit(ctx, sign);
            self.range.range_check(ctx, low, self.bits - 1);
            let q = self.gate().mul_add(ctx, sign, Constant(self.half), low);
            (q, self.gate().mul(ctx, sign, low))
        } else {
            let q = ctx.load_witness(to_field(y + (1i128 << (self.bits - 1))));
            self.range.range_check(ctx, q, self.bits);
            (q, self.gate().sub(ctx, q, Constant(self.half)))
        };
        // d·q' + r == acc + ⌊d/2⌋ + d·H
        let lhs = self.gate().mul_add(ctx, q_shifted, Constant(Fr::from(d)), rem_cell);
        let offset = Fr::from(d / 2) + Fr::from(d) * self.half;
        let rhs = self.gate().add(ctx, acc, Constant(offset));
        ctx.constrain_equal(&lhs, &rhs);
        Ok(out)
    }

    /// `div_round(a·2^shift, b)` of two range-checked values, `b ≠ 0`.
    ///
    /// With `s` the sign bit of `b` (1 iff `b ≥ 0`) and `σ = 2s − 1`: `d = σ·b`, `n = σ·a·2^shift`,
    /// `d − 1 ∈ [0, 2^(B-1))`, and the quotient `y` (range checked) and remainder `r` satisfy
    /// `2n + d = 2d·y + r` with `r ∈ [0, 2^B)` and `2d − 1 − r ∈ [0, 2^B)`. Then
    /// `y = ⌊(2n + d)/(2d)⌋ = ⌊(n + ⌊d/2⌋)/d⌋` (the two agree for odd `d`: no integer lies strictly
    /// between `n + (d−1)/2` and `n + d/2`). Every magnitude is below `2^(2B+shift+2)`, far below
    /// the field modulus, so the field equation is the integer one.
    fn div(
        &self,
        ctx: &mut Context<Fr>,
        a: AssignedValue<Fr>,
        b: AssignedValue<Fr>,
        shift: u32,
        node: &str,
    ) -> Result<AssignedValue<Fr>> {
        let (sign, _) = self.sign_decompose(ctx, b, node)?;
        let sigma = self.gate().mul_add(ctx, sign, Constant(Fr::from(2u64)), Constant(-Fr::ONE));
        let d = self.gate().mul(ctx, sigma, b);
        let a_scaled = self.gate().mul(ctx, a, Constant(Fr::from(2u64).pow_vartime([shift as u64])));
        let n = self.gate().mul(ctx, sigma, a_scaled);
        let d_minus_one = self.gate().sub(ctx, d, Constant(Fr::ONE));
        self.range.range_check(ctx, d_minus_one, self.bits - 1);
        let (av, bv) = (self.value(&a), self.value(&b));
        let (y, r) = match crate::graph::div_operands(av as i64, bv as i64, shift) {
            Some((nv, dv)) if self.mode != Witnessing::ShapeOnly => {
                #[allow(unused_mut)]
                let mut y = self.check(node, div_round(nv, dv))?;
                #[cfg(test)]
                if self.mode == Witnessing::Tampered(Tamper::Div) {
                    y += 1;
                }
                (y, 2 * nv + dv - 2 * dv * y)
            }
            None if self.mode != Witnessing::ShapeOnly => return Err(Error::DivisionByZero { node: node.into() }),
            _ => (0, 0),
        };
        let y_shifted = ctx.load_witness(to_field(y + (1i128 << (self.bits - 1))));
        self.range.range_check(ctx, y_shifted, self.bits);
        let y_cell = self.gate().sub(ctx, y_shifted, Constant(self.half));
        let r_cell = ctx.load_witness(to_field(r));
        self.range.range_check(ctx, r_cell, self.bits);
        // 2d − 1 − r
        let slack = self.gate().mul_add(ctx, d, Constant(Fr::from(2u64)), Constant(-Fr::ONE));
        let slack = self.gate().sub(ctx, slack, r_cell);
        self.range.range_check(ctx, slack, self.bits);
        let lhs = self.gate().mul_add(ctx, n, Constant(Fr::from(2u64)), d);
        let dy = self.gate().mul(ctx, d, y_cell);
        let rhs = self.gate().mul_add(ctx, dy, Constant(Fr::from(2u64)), r_cell);
        ctx.constrain_equal(&lhs, &rhs);
        Ok(y_cell)
    }

    /// `round(sqrt(x·2^shift))` (half up) of a range-checked `x ≥ 0`.
    ///
    /// With `N = x·2^shift`: `z = ⌊sqrt(4N)⌋` by `z ∈ [0, 2^Z)`, `4N − z² ∈ [0, 2^(Z+1))`
    /// and `z² + 2z − 4N ∈ [0, 2^(Z+1))` (both residuals are at most `2z`), then `z + 1 = 2y + c`
    /// with `c` a bit: `y = ⌊(⌊sqrt(4N)⌋ + 1)/2⌋ = ⌊sqrt(N) + 1/2⌋`.
    fn sqrt(&self, ctx: &mut Context<Fr>, x: AssignedValue<Fr>, shift: u32, node: &str) -> Result<AssignedValue<Fr>> {
        // x ∈ [0, 2^(B-1)): a negative input is outside the domain (the reference pass names it).
        if self.mode != Witnessing::ShapeOnly && self.value(&x) < 0 {
            return Err(Error::OutsideDomain {
                node: node.into(),
                function: "Sqrt".into(),
                value: self.value(&x) as f64,
                lo: 0.0,
                hi: f64::INFINITY,
            });
        }
        self.range.range_check(ctx, x, self.bits - 1);
        let pos = x;
        let four_n = self.gate().mul(ctx, pos, Constant(Fr::from(2u64).pow_vartime([shift as u64 + 2])));
        // z ≤ sqrt(4·2^(B-1)·2^shift) = 2^((B+1+shift)/2)
        let z_bits = (self.bits + 1 + shift as usize) / 2 + 1;
        let n = (self.value(&pos).max(0)) << shift;
        let z = crate::graph::isqrt(4 * n);
        #[cfg(test)]
        let z = if self.mode == Witnessing::Tampered(Tamper::Sqrt) { z + 1 } else { z };
        let (z, c) = if self.mode == Witnessing::ShapeOnly { (0, 1) } else { (z, (z + 1) % 2) };
        let y = self.check(node, (z + 1) / 2)?;
        let z_cell = ctx.load_witness(to_field(z));
        self.range.range_check(ctx, z_cell, z_bits);
        let zz = self.gate().mul(ctx, z_cell, z_cell);
        let r1 = self.gate().sub(ctx, four_n, zz);
        self.range.range_check(ctx, r1, z_bits + 1);
        let zz_2z = self.gate().mul_add(ctx, z_cell, Constant(Fr::from(2u64)), zz);
        let r2 = self.gate().sub(ctx, zz_2z, four_n);
        self.range.range_check(ctx, r2, z_bits + 1);
        let c_cell = ctx.load_witness(Fr::from(c as u64));
        self.gate().assert_bit(ctx, c_cell);
        let y_cell = ctx.load_witness(to_field(y));
        self.range.range_check(ctx, y_cell, self.bits - 1);
        // z + 1 = 2y + c
        let lhs = self.gate().add(ctx, z_cell, Constant(Fr::ONE));
        let rhs = self.gate().mul_add(ctx, y_cell, Constant(Fr::from(2u64)), c_cell);
        ctx.constrain_equal(&lhs, &rhs);
        Ok(y_cell)
    }

    /// `max(a, b)` (or `min`) of two range-checked values: `is_less_than` on the shifted values,
    /// then `select`.
    fn max_min(
        &self,
        ctx: &mut Context<Fr>,
        a: AssignedValue<Fr>,
        b: AssignedValue<Fr>,
        min: bool,
    ) -> AssignedValue<Fr> {
        let sa = self.gate().add(ctx, a, Constant(self.half));
        let sb = self.gate().add(ctx, b, Constant(self.half));
        let a_lt_b = self.range.is_less_than(ctx, sa, sb, self.bits);
        if min {
            self.gate().select(ctx, a, b, a_lt_b)
        } else {
            self.gate().select(ctx, b, a, a_lt_b)
        }
    }

    /// `x · 2^shift`, range checked (the reference pass checks aligned operands too).
    fn align(&self, ctx: &mut Context<Fr>, x: AssignedValue<Fr>, shift: u32, node: &str) -> Result<AssignedValue<Fr>> {
        if shift == 0 {
            return Ok(x);
        }
        let y = self.gate().mul(ctx, x, Constant(Fr::from(1u64 << shift)));
        self.check(node, self.value(&y))?;
        self.range_signed(ctx, y);
        Ok(y)
    }

    /// A range-checked value that must equal `v` (a constant of the model).
    fn constant(&self, ctx: &mut Context<Fr>, v: i64, node: &str) -> Result<AssignedValue<Fr>> {
        self.check(node, v as i128)?;
        Ok(ctx.load_constant(to_field(v as i128)))
    }

    /// `min(x, 0)` for a range-checked `x`, with the sign bit `s` (`s = 1` iff `x ≥ 0`).
    fn sign_and_negative_part(
        &self,
        ctx: &mut Context<Fr>,
        x: AssignedValue<Fr>,
        node: &str,
    ) -> Result<(AssignedValue<Fr>, AssignedValue<Fr>)> {
        let (sign, _) = self.sign_decompose(ctx, x, node)?;
        // x − s·x
        let sx = self.gate().mul(ctx, sign, x);
        let neg = self.gate().sub(ctx, x, sx);
        Ok((sign, neg))
    }

    /// The position of the first maximum (or minimum) of `xs`, proved by a one-hot selection.
    fn argmax(&self, ctx: &mut Context<Fr>, xs: &[AssignedValue<Fr>], min: bool) -> AssignedValue<Fr> {
        let mut m = xs[0];
        for x in &xs[1..] {
            m = self.max_min(ctx, m, *x, min);
        }
        let values: Vec<i128> = xs.iter().map(|x| self.value(x)).collect();
        let best = self.value(&m);
        let first = values.iter().position(|v| *v == best).unwrap_or(0);
        let bits: Vec<AssignedValue<Fr>> =
            (0..xs.len()).map(|j| ctx.load_witness(Fr::from(u64::from(j == first)))).collect();
        for b in &bits {
            self.gate().assert_bit(ctx, *b);
        }
        // exactly one bit set
        let total = self.gate().sum(ctx, bits.iter().map(|b| Existing(*b)));
        self.gate().assert_is_const(ctx, &total, &Fr::from(1u64));
        // the selected value is the extreme value
        let selected =
            self.gate().inner_product(ctx, bits.iter().map(|b| Existing(*b)), xs.iter().map(|x| Existing(*x)));
        ctx.constrain_equal(&selected, &m);
        // no earlier value equals it: Σ_j b_j · #{k < j : x_k = m} = 0
        let mut prefix = ctx.load_constant(Fr::from(0u64));
        let mut prefixes = Vec::with_capacity(xs.len());
        for x in xs {
            prefixes.push(prefix);
            let eq = self.gate().is_equal(ctx, *x, m);
            prefix = self.gate().add(ctx, prefix, eq);
        }
        let earlier =
            self.gate().inner_product(ctx, bits.iter().map(|b| Existing(*b)), prefixes.iter().map(|p| Existing(*p)));
        self.gate().assert_is_const(ctx, &earlier, &Fr::from(0u64));
        self.gate().inner_product(
            ctx,
            bits.iter().map(|b| Existing(*b)),
            (0..xs.len()).map(|j| Constant(Fr::from(j as u64))),
        )
    }
}

/// Lays out `model` on `input` in `builder` and sets its public instances.
///
/// The builder must have `k` and `lookup_bits` set. The reference pass is the specification;
/// this function recomputes every value from the assigned cells.
pub fn synthesize(
    circuit: &mut ModelCircuit,
    model: &QuantModel,
    input: &[i64],
    binding: Fr,
    salt: Option<Fr>,
    mode: Witnessing,
) -> Result<Synthesized> {
    #[cfg(test)]
    let skip_input_check = mode == Witnessing::Tampered(Tamper::InputRange);
    #[cfg(not(test))]
    let skip_input_check = false;
    if mode != Witnessing::ShapeOnly {
        if !skip_input_check {
            model.check_input(input)?;
        }
        if salt.is_some() != model.input_committed {
            return Err(Error::SaltMismatch { committed: model.input_committed });
        }
    } else if input.len() != model.input_len() {
        return Err(Error::InputLength { expected: model.input_len(), got: input.len(), shape: model.input_shape() });
    }
    let bits = model.params.value_bits as usize;
    let range = circuit.base.range_chip();
    let chips = Chips { range: &range, bits, half: Fr::from(1u64 << (bits - 1)), mode };
    #[cfg(test)]
    {
        circuit.dense.tamper = mode == Witnessing::Tampered(Tamper::Dot);
        circuit.functions.tamper = mode == Witnessing::Tampered(Tamper::Lookup);
    }
    let dense = &mut circuit.dense;
    let functions = &mut circuit.functions;
    let ctx = circuit.base.main(0);

    let binding_cell = ctx.load_witness(binding);
    chips.gate().mul(ctx, binding_cell, binding_cell);

    let mut tensors: Vec<Option<Vec<AssignedValue<Fr>>>> = vec![None; model.shapes.len()];
    let mut inputs_shifted = Vec::with_capacity(input.len());
    let (input_min, input_max) = model.input_range;
    // Whole lookup limbs: `a, b ∈ [0, 2^n)` with `a + b = max − min` already forces both to be
    // non-negative, so n may exceed bits(max − min); whole limbs need no extra shifted lookup.
    let lookup_bits = chips.range.lookup_bits();
    let width = ((input_max - input_min) as u64).checked_ilog2().map_or(1, |b| b as usize + 1);
    let range_bits = width.div_ceil(lookup_bits) * lookup_bits;
    let cells: Vec<AssignedValue<Fr>> = input
        .iter()
        .map(|v| {
            let cell = ctx.load_witness(to_field(*v as i128));
            let shifted = chips.gate().add(ctx, cell, Constant(chips.half));
            if model.input_committed {
                // No one but the circuit checks a committed input against the registered range (the
                // coordinator checks public inputs): v − min and max − v both in [0, 2^n) (their sum is
                // max − min, far below r) give min ≤ v ≤ max, inside the value bits since the range
                // is. Usually one lookup each, cheaper than the value-bits check it replaces.
                let from_min = chips.gate().sub(ctx, cell, Constant(to_field(input_min as i128)));
                chips.range.range_check(ctx, from_min, range_bits);
                let to_max = chips.gate().sub(ctx, Constant(to_field(input_max as i128)), cell);
                chips.range.range_check(ctx, to_max, range_bits);
            } else {
                chips.range.range_check(ctx, shifted, bits);
            }
            inputs_shifted.push(shifted);
            cell
        })
        .collect();
    let mut offset = 0;
    for i in &model.inputs {
        let n: usize = model.shapes[i.tensor].iter().product();
        tensors[i.tensor] = Some(cells[offset..offset + n].to_vec());
        offset += n;
    }

    let (vmin, vmax) = (model.params.value_min(), model.params.value_max());
    for layer in &model.layers {
        let node = layer.node.as_str();
        let arg = |slot: usize| -> Result<Vec<AssignedValue<Fr>>> {
            tensors[layer.inputs[slot]]
                .clone()
                .ok_or_else(|| Error::InvalidGraph { node: node.into(), reason: "input computed after use".into() })
        };
        let out: Vec<AssignedValue<Fr>> = match &layer.op {
            QuantOp::Linear { terms, bias, shift, relu } => {
                let x = arg(0)?;
                // Dot products in the region, packed (see `dense`); the bias is added here.
                let mut dots: Vec<Option<AssignedValue<Fr>>> = vec![None; terms.len()];
                if dense.lanes() > 0 {
                    let (slot_bits, groups) = dense::pack(terms, bias, *shift, model.params.value_bits);
                    for group in groups {
                        let xs: Vec<_> = terms[group[0]].iter().map(|(i, _)| x[*i as usize]).collect();
                        let ws = dense::packed_weights(terms, &group, slot_bits);
                        let packed = dense.dot(ctx, &xs, &ws);
                        for (o, y) in group.iter().zip(chips.unpack(ctx, packed, &xs, terms, &group, slot_bits)) {
                            dots[*o] = Some(y);
                        }
                    }
                }
                terms
                    .iter()
                    .zip(bias)
                    .zip(dots)
                    .map(|((t, b), dot)| {
                        let acc = match dot {
                            Some(dot) => chips.gate().add(ctx, dot, Constant(to_field(*b as i128))),
                            None => {
                                let a = std::iter::once(Constant(to_field(*b as i128)))
                                    .chain(t.iter().map(|(i, _)| Existing(x[*i as usize])));
                                let w = std::iter::once(Constant(Fr::from(1u64)))
                                    .chain(t.iter().map(|(_, w)| Constant(to_field(*w as i128))));
                                chips.gate().inner_product(ctx, a, w)
                            }
                        };
                        // Also what makes the unpacking unique: `acc` ends in an interval of
                        // width 2^(shift + value bits).
                        chips.div_round(ctx, acc, 1u64 << shift, *relu, node)
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::AddConst { values } => arg(0)?
                .iter()
                .zip(values)
                .map(|(a, c)| {
                    let y = chips.gate().add(ctx, *a, Constant(to_field(*c as i128)));
                    chips.check(node, chips.value(&y))?;
                    chips.range_signed(ctx, y);
                    Ok(y)
                })
                .collect::<Result<_>>()?,
            QuantOp::Add { a_shift, b_shift, sub } => {
                let (x, y) = (arg(0)?, arg(1)?);
                x.iter()
                    .zip(&y)
                    .map(|(a, b)| {
                        chips.check(node, chips.value(a) << a_shift)?;
                        chips.check(node, chips.value(b) << b_shift)?;
                        let sign = if *sub { -Fr::from(1u64 << b_shift) } else { Fr::from(1u64 << b_shift) };
                        let b_scaled = chips.gate().mul(ctx, *b, Constant(sign));
                        let sum = chips.gate().mul_add(ctx, *a, Constant(Fr::from(1u64 << a_shift)), b_scaled);
                        chips.check(node, chips.value(&sum))?;
                        chips.range_signed(ctx, sum);
                        Ok(sum)
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::Mul { shift } => {
                let (x, y) = (arg(0)?, arg(1)?);
                x.iter()
                    .zip(&y)
                    .map(|(a, b)| {
                        let p = chips.gate().mul(ctx, *a, *b);
                        chips.div_round(ctx, p, 1u64 << shift, false, node)
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::Const { values } => values.iter().map(|v| chips.constant(ctx, *v, node)).collect::<Result<_>>()?,
            QuantOp::Move { sources, shifts } => {
                let slots = (0..layer.inputs.len()).map(arg).collect::<Result<Vec<_>>>()?;
                sources
                    .iter()
                    .map(|s| match s {
                        QSource::Input { slot, index } => {
                            chips.align(ctx, slots[*slot as usize][*index as usize], shifts[*slot as usize], node)
                        }
                        QSource::Const(c) => chips.constant(ctx, *c, node),
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::Relu => arg(0)?.iter().map(|a| chips.relu(ctx, *a, node)).collect::<Result<_>>()?,
            QuantOp::LeakyRelu { slopes, shift } => arg(0)?
                .iter()
                .zip(slopes)
                .map(|(x, a)| {
                    let (sign, neg) = chips.sign_and_negative_part(ctx, *x, node)?;
                    let acc = chips.gate().mul(ctx, neg, Constant(to_field(*a as i128)));
                    let scaled = chips.div_round(ctx, acc, 1u64 << shift, false, node)?;
                    Ok(chips.gate().select(ctx, *x, scaled, sign))
                })
                .collect::<Result<_>>()?,
            QuantOp::Clip { min, max } => {
                let lo = min.filter(|v| *v > vmin);
                let hi = max.filter(|v| *v < vmax);
                let lo_cell = lo.map(|v| chips.constant(ctx, v, node)).transpose()?;
                let hi_cell = hi.map(|v| chips.constant(ctx, v, node)).transpose()?;
                arg(0)?
                    .iter()
                    .map(|x| {
                        let mut y = *x;
                        if let Some(lo) = lo_cell {
                            y = chips.max_min(ctx, y, lo, false);
                        }
                        if let Some(hi) = hi_cell {
                            y = chips.max_min(ctx, y, hi, true);
                        }
                        y
                    })
                    .collect()
            }
            QuantOp::MaxMin { min, a_shift, b_shift } => {
                let (x, y) = (arg(0)?, arg(1)?);
                x.iter()
                    .zip(&y)
                    .map(|(a, b)| {
                        let a = chips.align(ctx, *a, *a_shift, node)?;
                        let b = chips.align(ctx, *b, *b_shift, node)?;
                        Ok(chips.max_min(ctx, a, b, *min))
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::Compare { cmp, a_shift, b_shift } => {
                let (x, y) = (arg(0)?, arg(1)?);
                x.iter()
                    .zip(&y)
                    .map(|(a, b)| {
                        let a = chips.align(ctx, *a, *a_shift, node)?;
                        let b = chips.align(ctx, *b, *b_shift, node)?;
                        let sa = chips.gate().add(ctx, a, Constant(chips.half));
                        let sb = chips.gate().add(ctx, b, Constant(chips.half));
                        Ok(match cmp {
                            Cmp::Less => chips.range.is_less_than(ctx, sa, sb, bits),
                            Cmp::Greater => chips.range.is_less_than(ctx, sb, sa, bits),
                            Cmp::LessOrEqual => {
                                let gt = chips.range.is_less_than(ctx, sb, sa, bits);
                                chips.gate().not(ctx, gt)
                            }
                            Cmp::GreaterOrEqual => {
                                let lt = chips.range.is_less_than(ctx, sa, sb, bits);
                                chips.gate().not(ctx, lt)
                            }
                            Cmp::Equal => chips.gate().is_equal(ctx, a, b),
                            Cmp::NotEqual => {
                                let eq = chips.gate().is_equal(ctx, a, b);
                                chips.gate().not(ctx, eq)
                            }
                        })
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::Where { a_shift, b_shift } => {
                let (c, x, y) = (arg(0)?, arg(1)?, arg(2)?);
                c.iter()
                    .zip(x.iter().zip(&y))
                    .map(|(c, (a, b))| {
                        chips.gate().assert_bit(ctx, *c);
                        let a = chips.align(ctx, *a, *a_shift, node)?;
                        let b = chips.align(ctx, *b, *b_shift, node)?;
                        Ok(chips.gate().select(ctx, a, b, *c))
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::AvgPool { windows, divisors } => {
                let x = arg(0)?;
                windows
                    .iter()
                    .zip(divisors)
                    .map(|(w, d)| {
                        let sum = chips.gate().sum(ctx, w.iter().map(|i| Existing(x[*i as usize])));
                        chips.div_round(ctx, sum, *d as u64, false, node)
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::MaxPool { windows, min } => {
                let x = arg(0)?;
                windows
                    .iter()
                    .map(|w| {
                        let mut m = x[w[0] as usize];
                        for i in &w[1..] {
                            m = chips.max_min(ctx, m, x[*i as usize], *min);
                        }
                        m
                    })
                    .collect()
            }
            QuantOp::ArgMax { windows, min } => {
                let x = arg(0)?;
                windows
                    .iter()
                    .map(|w| {
                        let xs: Vec<_> = w.iter().map(|i| x[*i as usize]).collect();
                        chips.argmax(ctx, &xs, *min)
                    })
                    .collect()
            }
            QuantOp::Reshape => arg(0)?,
            QuantOp::Table { shift, table, clamp_lo, clamp_hi } => {
                let tag = functions.register(table);
                let lo = clamp_lo.then(|| chips.constant(ctx, table.lo, node)).transpose()?;
                let hi = clamp_hi.then(|| chips.constant(ctx, table.hi(), node)).transpose()?;
                arg(0)?
                    .iter()
                    .map(|x| {
                        let mut u =
                            if *shift == 0 { *x } else { chips.div_round(ctx, *x, 1u64 << shift, false, node)? };
                        if let Some(lo) = lo {
                            u = chips.max_min(ctx, u, lo, false);
                        }
                        if let Some(hi) = hi {
                            u = chips.max_min(ctx, u, hi, true);
                        }
                        let uv = from_field(u.value()).unwrap_or(0);
                        if mode != Witnessing::ShapeOnly {
                            table.check(uv, node)?;
                        }
                        let y = table.eval(uv.clamp(i64::MIN as i128, i64::MAX as i128) as i64);
                        Ok(functions.lookup(ctx, tag, u, y))
                    })
                    .collect::<Result<_>>()?
            }
            QuantOp::Div { shift, .. } => {
                let (x, y) = (arg(0)?, arg(1)?);
                x.iter().zip(&y).map(|(a, b)| chips.div(ctx, *a, *b, *shift, node)).collect::<Result<_>>()?
            }
            QuantOp::Sqrt { shift } => {
                arg(0)?.iter().map(|x| chips.sqrt(ctx, *x, *shift, node)).collect::<Result<_>>()?
            }
            QuantOp::Bilinear { pairs, shift } => {
                let (a, b) = (arg(0)?, arg(1)?);
                pairs
                    .iter()
                    .map(|p| {
                        let acc = if p.is_empty() {
                            ctx.load_zero()
                        } else {
                            chips.gate().inner_product(
                                ctx,
                                p.iter().map(|(i, _)| Existing(a[*i as usize])),
                                p.iter().map(|(_, j)| Existing(b[*j as usize])),
                            )
                        };
                        chips.div_round(ctx, acc, 1u64 << shift, false, node)
                    })
                    .collect::<Result<_>>()?
            }
        };
        tensors[layer.output] = Some(out);
    }

    let mut outputs = Vec::with_capacity(model.output_len());
    for t in &model.outputs {
        outputs.extend(
            tensors[*t]
                .clone()
                .ok_or_else(|| Error::InvalidGraph { node: "output".into(), reason: "never computed".into() })?,
        );
    }
    let output = outputs.iter().map(|c| from_field(c.value()).unwrap_or(0) as i64).collect();
    // Every tensor is range checked where it is produced, except the bare input of a model
    // without layers; checking the shifted outputs again keeps the packing injective regardless.
    let outputs_shifted: Vec<AssignedValue<Fr>> = outputs
        .iter()
        .map(|c| {
            let shifted = chips.gate().add(ctx, *c, Constant(chips.half));
            chips.range.range_check(ctx, shifted, bits);
            shifted
        })
        .collect();
    let per_word = values_per_word(model.params.value_bits);
    let mut pack_cells = |values: &[AssignedValue<Fr>]| -> Vec<AssignedValue<Fr>> {
        values
            .chunks(per_word)
            .map(|chunk| {
                let coeffs = (0..chunk.len()).map(|j| Constant(Fr::from(2u64).pow_vartime([(bits * j) as u64])));
                chips.gate().inner_product(ctx, chunk.iter().map(|c| Existing(*c)), coeffs)
            })
            .collect()
    };
    let input_words = pack_cells(&inputs_shifted);
    let output_words = pack_cells(&outputs_shifted);
    let mut public = vec![binding_cell];
    if model.input_committed {
        let salt = ctx.load_witness(salt.unwrap_or(Fr::zero()));
        public.push(crate::commitment::constrain(ctx, chips.gate(), &input_words, salt));
    } else {
        public.extend(input_words);
    }
    public.extend(output_words);
    let instances = public.iter().map(|c| *c.value()).collect();
    circuit.base.assigned_instances = vec![public];
    Ok(Synthesized { output, instances })
}

/// How many `bits`-bit values are packed into one public instance (248 bits per word).
pub fn values_per_word(bits: u32) -> usize {
    (248 / bits) as usize
}

/// Packs signed values of `bits` bits into field elements (see the module docs).
pub fn pack(values: &[i64], bits: u32) -> Vec<Fr> {
    let half = 1i128 << (bits - 1);
    values
        .chunks(values_per_word(bits))
        .map(|chunk| {
            chunk.iter().enumerate().fold(Fr::from(0u64), |acc, (j, v)| {
                acc + to_field(*v as i128 + half) * Fr::from(2u64).pow_vartime([(bits as usize * j) as u64])
            })
        })
        .collect()
}

/// Public instances of a public-input model for a given binding, input and output (what a verifier
/// recomputes): `[binding, pack(input).., pack(output)..]`.
pub fn public_instances(binding: Fr, input: &[i64], output: &[i64], bits: u32) -> Vec<Fr> {
    let mut out = vec![binding];
    out.extend(pack(input, bits));
    out.extend(pack(output, bits));
    out
}

/// Public instances of a committed-input model: `[binding, commitment, pack(output)..]`.
pub fn committed_instances(binding: Fr, commitment: Fr, output: &[i64], bits: u32) -> Vec<Fr> {
    let mut out = vec![binding, commitment];
    out.extend(pack(output, bits));
    out
}

/// Number of public instances of a model with `n_in` inputs and `n_out` outputs: `1 + ⌈n_in / K⌉ +
/// ⌈n_out / K⌉` with `K` [`values_per_word`], or `2 + ⌈n_out / K⌉` when the input is committed.
pub fn num_instances(n_in: usize, n_out: usize, bits: u32, input_committed: bool) -> usize {
    let per = values_per_word(bits);
    let input_words = if input_committed { 1 } else { n_in.div_ceil(per) };
    1 + input_words + n_out.div_ceil(per)
}

#[cfg(test)]
mod tests {
    use halo2_base::{gates::circuit::CircuitBuilderStage, halo2_proofs::dev::MockProver};
    use proptest::prelude::*;

    use super::*;
    use crate::{
        ir::{Cmp, FloatModel, InputKind, Layer, LayerKind, ModelInput, Source, Terms},
        quant::QuantParams,
    };

    const K: u32 = 10;
    const BINDING: u64 = 0xb1d;

    fn layer(node: &str, inputs: Vec<usize>, output: usize, kind: LayerKind) -> Layer {
        Layer { node: node.into(), op: node.into(), inputs, output, kind }
    }

    /// input[4] → Linear(4→3) (→ ReLU, fused).
    fn dense(relu: bool) -> QuantModel {
        let w = [0.5f32, -0.25, 0.75, 1.0, -1.0, 0.125, 0.3, -0.6, 0.9, 0.2, -0.4, 0.05];
        let terms = (0..3).map(|o| (0..4).map(|i| (i as u32, w[o * 4 + i])).collect()).collect();
        let mut layers = vec![layer("fc", vec![0], 1, LayerKind::Linear { terms, bias: vec![0.1, -0.2, 0.05] })];
        let mut shapes = vec![vec![1, 4], vec![1, 3]];
        if relu {
            layers.push(layer("relu", vec![1], 2, LayerKind::Relu));
            shapes.push(vec![1, 3]);
        }
        let float = float_model(shapes.len() - 1, shapes, layers);
        QuantModel::quantize(&float, QuantParams::default(), None).unwrap()
    }

    /// AddConst → Relu → AvgPool (divisors 3, 3, 2) → MaxPool → Linear → Add(with the pooled tensor).
    fn chain() -> QuantModel {
        let layers = vec![
            layer("bias", vec![0], 1, LayerKind::AddConst { values: vec![0.5, -0.25, 0.125, -1.0, 0.75, 0.0] }),
            layer("relu", vec![1], 2, LayerKind::Relu),
            layer(
                "avg",
                vec![2],
                3,
                LayerKind::AvgPool { windows: vec![vec![0, 1, 2], vec![3, 4, 5], vec![1, 2]], divisors: vec![3, 3, 2] },
            ),
            layer(
                "max",
                vec![3],
                4,
                LayerKind::MaxPool { windows: vec![vec![0, 1], vec![1, 2], vec![0, 2]], min: false },
            ),
            layer(
                "fc",
                vec![4],
                5,
                LayerKind::Linear {
                    terms: vec![vec![(0, 0.5), (2, -0.75)], vec![(1, 1.0)], vec![(0, -0.3), (1, 0.6), (2, 0.2)]],
                    bias: vec![0.0, 0.25, -0.5],
                },
            ),
            layer("residual", vec![5, 3], 6, LayerKind::Add { sub: false }),
        ];
        let shapes = vec![vec![1, 6], vec![1, 6], vec![1, 6], vec![1, 3], vec![1, 3], vec![1, 3], vec![1, 3]];
        let float = float_model(6, shapes, layers);
        QuantModel::quantize(&float, QuantParams::default(), None).unwrap()
    }

    fn float_model(output: usize, shapes: Vec<Vec<usize>>, layers: Vec<Layer>) -> FloatModel {
        FloatModel {
            shapes,
            inputs: vec![ModelInput { name: "x".into(), tensor: 0, kind: InputKind::Real }],
            layers,
            outputs: vec![output],
            output_names: vec!["y".into()],
        }
    }

    /// Every other IR kind: Const, Move (two slots, a constant, scale alignment), Sub, Mul,
    /// LeakyRelu, Clip, MaxMin, Compare, Where, MaxPool(min), ArgMax; two outputs at different
    /// scales (logits and an index).
    fn wide() -> QuantModel {
        let layers = vec![
            layer("c", vec![], 1, LayerKind::Const { values: vec![0.5, -1.0, 2.0, 0.25] }),
            layer("sub", vec![0, 1], 2, LayerKind::Add { sub: true }),
            layer("mul", vec![0, 2], 3, LayerKind::Mul),
            layer("prelu", vec![3], 4, LayerKind::LeakyRelu { slopes: vec![0.1, -1.0, 0.25, 2.0] }),
            layer("clip", vec![4], 5, LayerKind::Clip { min: Some(-1.5), max: Some(3.0) }),
            layer("min", vec![5, 2], 6, LayerKind::MaxMin { min: true }),
            layer("gt", vec![0, 2], 7, LayerKind::Compare { cmp: Cmp::Greater }),
            layer("where", vec![7, 6, 1], 8, LayerKind::Where),
            layer(
                "concat",
                vec![8, 7],
                9,
                LayerKind::Move {
                    sources: vec![
                        Source::Input { slot: 0, index: 3 },
                        Source::Input { slot: 1, index: 0 },
                        Source::Const(-0.75),
                        Source::Input { slot: 0, index: 0 },
                        Source::Input { slot: 0, index: 1 },
                        Source::Input { slot: 1, index: 2 },
                    ],
                },
            ),
            layer(
                "minpool",
                vec![9],
                10,
                LayerKind::MaxPool { windows: vec![vec![0, 1, 2], vec![3, 4, 5]], min: true },
            ),
            layer("argmax", vec![9], 11, LayerKind::ArgMax { windows: vec![vec![0, 1, 2, 3, 4, 5]], min: false }),
            layer("eq", vec![0, 1], 12, LayerKind::Compare { cmp: Cmp::LessOrEqual }),
        ];
        let shapes = vec![
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 6],
            vec![1, 2],
            vec![1, 1],
            vec![1, 4],
        ];
        let mut float = float_model(10, shapes, layers);
        float.outputs = vec![10, 11, 12];
        float.output_names = vec!["pooled".into(), "index".into(), "flags".into()];
        QuantModel::quantize(&float, QuantParams { value_bits: 24, ..QuantParams::default() }, None).unwrap()
    }

    /// Function tables, division, square root and a bilinear layer over a ±5 input (scale 2^7):
    /// outputs `[x / (1 + sigmoid x), sqrt(sigmoid x), bilinear(sigmoid, tanh), tanh x, exp(min(x, 0)),
    /// sigmoid(sqrt(sigmoid x))]`.
    fn nonlinear() -> QuantModel {
        use crate::functions::Func;
        let f = |func| LayerKind::Function { func, max_input: None };
        let layers = vec![
            layer("sig", vec![0], 1, f(Func::Sigmoid)),
            layer("tanh", vec![0], 2, f(Func::Tanh)),
            layer("one_plus", vec![1], 3, LayerKind::AddConst { values: vec![1.0; 4] }),
            layer("div", vec![0, 3], 4, LayerKind::Div { max_abs: None }),
            layer("sqrt", vec![1], 5, LayerKind::Sqrt),
            layer(
                "bil",
                vec![1, 2],
                6,
                LayerKind::Bilinear { pairs: vec![vec![(0, 0), (1, 1)], vec![(2, 3)], vec![(3, 0), (3, 3), (1, 2)]] },
            ),
            layer("exp", vec![0], 7, LayerKind::Function { func: Func::Exp, max_input: Some(0.0) }),
            layer("sig2", vec![5], 8, f(Func::Sigmoid)),
        ];
        let shapes = vec![
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 4],
            vec![1, 3],
            vec![1, 4],
            vec![1, 4],
        ];
        let mut float = float_model(4, shapes, layers);
        float.outputs = vec![4, 5, 6, 2, 7, 8];
        float.output_names = (0..6).map(|i| format!("y{i}")).collect();
        let params = QuantParams { value_bits: 24, ..QuantParams::default() };
        QuantModel::quantize(&float, params, Some((-640, 640))).unwrap()
    }

    /// Rows for the tables of [`nonlinear`].
    const K_TABLES: u32 = 13;

    fn mock_tables(model: &QuantModel, input: &[i64], mode: Witnessing, claimed: Option<&[i64]>) -> bool {
        assert!(model.has_function_tables());
        mock_at(model, input, mode, claimed, 2, K_TABLES)
    }

    #[test]
    fn function_tables_division_and_square_root_accept_the_honest_witness_and_reject_tampering() {
        let model = nonlinear();
        // Sigmoid is shared by two layers: one table.
        let tables: Vec<_> = model
            .layers
            .iter()
            .filter_map(|l| match &l.op {
                QuantOp::Table { table, .. } => Some(table.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 4);
        let input = [-600, -1, 0, 517];
        assert!(mock_tables(&model, &input, Witnessing::Exact, None));
        for tamper in [Tamper::Lookup, Tamper::Div, Tamper::Sqrt] {
            assert!(!mock_tables(&model, &input, Witnessing::Tampered(tamper), None), "{tamper:?} accepted");
        }
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K_TABLES, 2);
        let out = synthesize(&mut circuit, &model, &input, Fr::from(BINDING), None, Witnessing::Exact).unwrap().output;
        circuit.clear();
        for i in 0..out.len() {
            let mut wrong = out.clone();
            wrong[i] += 1;
            assert!(!mock_tables(&model, &input, Witnessing::Exact, Some(&wrong)), "output {i} + 1 accepted");
        }
    }

    #[test]
    fn a_table_too_large_for_k_is_named() {
        let model = nonlinear();
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, 10, 2);
        synthesize(&mut circuit, &model, &[0; 4], Fr::from(BINDING), None, Witnessing::Exact).unwrap();
        let e = circuit.calculate_params().unwrap_err();
        circuit.clear();
        assert!(e.to_string().contains("function tables"), "{e}");
    }

    #[test]
    fn division_by_zero_is_named() {
        let layers = vec![layer("div", vec![0, 0], 1, LayerKind::Div { max_abs: None })];
        let float = float_model(1, vec![vec![1, 2], vec![1, 2]], layers);
        let model = QuantModel::quantize(&float, QuantParams::default(), Some((-100, 100))).unwrap();
        assert_eq!(model.forward(&[5, -7]).unwrap(), vec![128, 128]);
        assert!(matches!(model.forward(&[5, 0]), Err(Error::DivisionByZero { node }) if node == "div"));
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, 0);
        let e = synthesize(&mut circuit, &model, &[5, 0], Fr::from(BINDING), None, Witnessing::Exact).unwrap_err();
        circuit.clear();
        assert!(matches!(e, Error::DivisionByZero { .. }), "{e}");
    }

    #[test]
    fn inputs_outside_a_function_domain_are_refused_not_clamped() {
        use crate::functions::Func;
        let one = |kind: LayerKind| {
            let layers = vec![layer("f", vec![0], 1, kind)];
            float_model(1, vec![vec![1, 2], vec![1, 2]], layers)
        };
        let f = |func| LayerKind::Function { func, max_input: None };
        let params = QuantParams { value_bits: 24, ..QuantParams::default() };
        // Log over a range with non-positive inputs: refused at setup, and a non-positive input
        // is a named error, never a clamped value.
        let log = QuantModel::quantize(&one(f(Func::Log)), params, Some((-128, 1024))).unwrap();
        assert!(matches!(log.check_bound(), Err(Error::OutsideDomain { .. })));
        assert!(matches!(log.forward(&[0, 128]), Err(Error::OutsideDomain { ref node, .. }) if node == "f"));
        assert_eq!(log.forward(&[128, 256]).unwrap()[0], 0);
        let log = QuantModel::quantize(&one(f(Func::Log)), params, Some((1, 1024))).unwrap();
        log.check_bound().unwrap();
        // Exp beyond the value range: refused, not capped.
        let exp = QuantModel::quantize(&one(f(Func::Exp)), params, Some((-2560, 2560))).unwrap();
        assert!(matches!(exp.check_bound(), Err(Error::OutsideDomain { .. })), "{:?}", exp.check_bound());
        // Sigmoid saturates: any range is fine.
        let sig = QuantModel::quantize(&one(f(Func::Sigmoid)), params, Some((-1 << 22, 1 << 22))).unwrap();
        sig.check_bound().unwrap();
        // Sqrt of a negative value.
        let sqrt = QuantModel::quantize(&one(LayerKind::Sqrt), params, Some((-128, 128))).unwrap();
        assert!(matches!(sqrt.check_bound(), Err(Error::OutsideDomain { .. })));
        assert!(matches!(sqrt.forward(&[-1, 4]), Err(Error::OutsideDomain { .. })));
        // A divisor that can be 0.
        let layers = vec![
            layer("one", vec![], 1, LayerKind::Const { values: vec![1.0, 1.0] }),
            layer("recip", vec![1, 0], 2, LayerKind::Div { max_abs: None }),
        ];
        let recip = float_model(2, vec![vec![1, 2], vec![1, 2], vec![1, 2]], layers);
        let q = QuantModel::quantize(&recip, params, Some((-128, 128))).unwrap();
        assert!(matches!(q.check_bound(), Err(Error::DivisorMayBeZero { ref node, .. }) if node == "recip"));
        let q = QuantModel::quantize(&recip, params, Some((64, 128))).unwrap();
        q.check_bound().unwrap();
        assert_eq!(q.forward(&[64, 128]).unwrap(), vec![256, 128]);
    }

    /// Lane counts every test runs with: dot products in the flex gate, and in the dot-product
    /// region with rows of 3 (so that dot products span several rows and end in a partial one).
    const LANES: [usize; 2] = [0, 3];

    /// Runs MockProver; `claimed` replaces the honest output in the public instances.
    fn mock_lanes(model: &QuantModel, input: &[i64], mode: Witnessing, claimed: Option<&[i64]>, lanes: usize) -> bool {
        mock_at(model, input, mode, claimed, lanes, K)
    }

    /// [`mock_lanes`] at `2^k` rows.
    fn mock_at(
        model: &QuantModel,
        input: &[i64],
        mode: Witnessing,
        claimed: Option<&[i64]>,
        lanes: usize,
        k: u32,
    ) -> bool {
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, k, lanes);
        let synthesized = synthesize(&mut circuit, model, input, Fr::from(BINDING), None, mode).unwrap();
        let params = circuit.calculate_params().unwrap();
        assert_eq!(params.lookups, model.has_function_tables());
        let instances = match claimed {
            Some(out) => public_instances(Fr::from(BINDING), input, out, model.params.value_bits),
            None => synthesized.instances,
        };
        MockProver::run(k, &circuit, vec![instances]).unwrap().verify().is_ok()
    }

    /// [`mock_lanes`] with every lane count: `true` only if all accept, `false` only if all reject.
    fn mock(model: &QuantModel, input: &[i64], mode: Witnessing, claimed: Option<&[i64]>) -> bool {
        let results: Vec<bool> = LANES.iter().map(|l| mock_lanes(model, input, mode, claimed, *l)).collect();
        assert!(results.iter().all(|r| *r == results[0]), "lane counts disagree: {results:?}");
        results[0]
    }

    fn honest_output(model: &QuantModel, input: &[i64]) -> Vec<i64> {
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, 3);
        let out = synthesize(&mut circuit, model, input, Fr::from(BINDING), None, Witnessing::Exact).unwrap().output;
        circuit.clear();
        out
    }

    #[test]
    fn every_chip_accepts_the_honest_witness() {
        assert!(mock(&dense(false), &[10, -20, 30, 127], Witnessing::Exact, None));
        assert!(mock(&dense(true), &[10, -20, 30, 127], Witnessing::Exact, None));
        assert!(mock(&chain(), &[10, -20, 30, -127, 64, 5], Witnessing::Exact, None));
        assert!(mock(&wide(), &[10, -300, 256, 64], Witnessing::Exact, None));
    }

    #[test]
    fn every_chip_rejects_a_wrong_output() {
        for (model, input) in [
            (dense(false), vec![10, -20, 30, 127]),
            (dense(true), vec![10, -20, 30, 127]),
            (chain(), vec![10, -20, 30, -127, 64, 5]),
            (wide(), vec![10, -300, 256, 64]),
        ] {
            let out = honest_output(&model, &input);
            for i in 0..out.len() {
                let mut wrong = out.clone();
                wrong[i] += 1;
                assert!(!mock(&model, &input, Witnessing::Exact, Some(&wrong)), "output {i} + 1 accepted");
            }
        }
    }

    /// A committed-input model's proof carries `[binding, C, outputs..]`: it verifies for the commitment of
    /// its input and salt only, and the input appears nowhere in the instances.
    #[test]
    fn a_committed_input_is_bound_by_its_commitment() {
        let mut model = chain();
        model.input_committed = true;
        model.input_range = (-8, 8);
        let input = [3, -2, 7, 1, 0, -5];
        let salt = Fr::from(0xdead_beefu64);
        let out = model.forward(&input).unwrap();
        let bits = model.params.value_bits;
        let c = crate::commitment::input_commitment(&input, salt, bits);
        for lanes in LANES {
            let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, lanes);
            let s = synthesize(&mut circuit, &model, &input, Fr::from(BINDING), Some(salt), Witnessing::Exact).unwrap();
            circuit.calculate_params().unwrap();
            assert_eq!(s.instances, committed_instances(Fr::from(BINDING), c, &out, bits));
            assert_eq!(s.instances.len(), model.num_instances());
            let run = |instances: Vec<Fr>| MockProver::run(K, &circuit, vec![instances]).unwrap().verify().is_ok();
            assert!(run(s.instances.clone()));
            // Another salt, another input, another output, another binding: each is another statement.
            let other_salt = crate::commitment::input_commitment(&input, salt + Fr::one(), bits);
            assert!(!run(committed_instances(Fr::from(BINDING), other_salt, &out, bits)));
            let other_input = crate::commitment::input_commitment(&[3, -2, 7, 1, 0, -4], salt, bits);
            assert!(!run(committed_instances(Fr::from(BINDING), other_input, &out, bits)));
            let mut wrong = out.clone();
            wrong[0] += 1;
            assert!(!run(committed_instances(Fr::from(BINDING), c, &wrong, bits)));
            assert!(!run(committed_instances(Fr::from(BINDING + 1), c, &out, bits)));
        }
        // Only the circuit checks a committed input against the model's input range: an input inside
        // the value bits but outside the range is refused.
        for outside in [[3, -2, 7, 9, 0, -5], [3, -9, 7, 1, 0, -5]] {
            let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, 0);
            let tampered = Witnessing::Tampered(Tamper::InputRange);
            let s = synthesize(&mut circuit, &model, &outside, Fr::from(BINDING), Some(salt), tampered).unwrap();
            circuit.calculate_params().unwrap();
            assert!(MockProver::run(K, &circuit, vec![s.instances]).unwrap().verify().is_err(), "{outside:?}");
        }
        // A salt is required, and a public-input model takes none.
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, 0);
        let e = synthesize(&mut circuit, &model, &input, Fr::from(BINDING), None, Witnessing::Exact).unwrap_err();
        assert!(matches!(e, Error::SaltMismatch { committed: true }), "{e}");
        model.input_committed = false;
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, 0);
        let e = synthesize(&mut circuit, &model, &input, Fr::from(BINDING), Some(salt), Witnessing::Exact).unwrap_err();
        assert!(matches!(e, Error::SaltMismatch { committed: false }), "{e}");
    }

    #[test]
    fn the_binding_is_enforced() {
        let model = dense(false);
        let input = [1, 2, 3, 4];
        let out = honest_output(&model, &input);
        for lanes in LANES {
            let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, lanes);
            synthesize(&mut circuit, &model, &input, Fr::from(BINDING), None, Witnessing::Exact).unwrap();
            circuit.calculate_params().unwrap();
            let other = public_instances(Fr::from(BINDING + 1), &input, &out, model.params.value_bits);
            assert!(MockProver::run(K, &circuit, vec![other]).unwrap().verify().is_err());
        }
    }

    #[test]
    fn tampered_witnesses_are_rejected() {
        // Rounding division (Linear rescale and AvgPool), fused and standalone ReLU.
        for tamper in [Tamper::Quotient, Tamper::Remainder, Tamper::Sign] {
            assert!(
                !mock(&dense(true), &[10, -20, 30, 127], Witnessing::Tampered(tamper), None),
                "{tamper:?} accepted (dense)"
            );
            assert!(
                !mock(&chain(), &[10, -20, 30, -127, 64, 5], Witnessing::Tampered(tamper), None),
                "{tamper:?} accepted (chain)"
            );
        }
    }

    #[test]
    fn a_wrong_running_sum_in_the_dot_product_region_is_rejected() {
        for (model, input) in [(dense(false), vec![10, -20, 30, 127]), (chain(), vec![10, -20, 30, -127, 64, 5])] {
            assert!(mock_lanes(&model, &input, Witnessing::Exact, None, 3));
            assert!(!mock_lanes(&model, &input, Witnessing::Tampered(Tamper::Dot), None, 3), "tampered sum accepted");
        }
    }

    #[test]
    fn a_shifted_unpacking_of_a_packed_dot_product_is_rejected() {
        // dense(): 3 outputs over the same 4 activations, one packed group; with and without ReLU.
        for (model, input) in [(dense(false), vec![10, -20, 30, 127]), (dense(true), vec![10, -20, 30, 127])] {
            let QuantOp::Linear { terms, bias, shift, .. } = &model.layers[0].op else { panic!("linear first") };
            let slots = dense::slots(dense::slot_bits(terms, bias, *shift, model.params.value_bits));
            assert_eq!(dense::pack_groups(terms, slots), vec![vec![0, 1, 2]]);
            assert!(mock_lanes(&model, &input, Witnessing::Exact, None, 3));
            assert!(mock_lanes(&model, &input, Witnessing::Exact, None, 1));
            for lanes in [1, 3] {
                assert!(
                    !mock_lanes(&model, &input, Witnessing::Tampered(Tamper::Unpack), None, lanes),
                    "shifted slots accepted with {lanes} lanes"
                );
            }
        }
    }

    #[test]
    fn packing_groups_outputs_with_the_same_activations() {
        let t = |idx: &[u32]| idx.iter().map(|i| (*i, 1i64)).collect::<Vec<_>>();
        // Two positions of a convolution, channels interleaved; an output without terms; a full group.
        let terms = vec![t(&[0, 1]), t(&[2, 3]), t(&[0, 1]), t(&[]), t(&[2, 3]), t(&[0, 1]), t(&[0, 1])];
        assert_eq!(dense::pack_groups(&terms, 3), vec![vec![0, 2, 5], vec![1, 4], vec![6]]);
        assert_eq!(dense::pack_groups(&terms, 1).len(), 6);
        // Slot widths: at least one output per weight; 252 bits hold ⌊252/S⌋ slots.
        assert_eq!(dense::slots(300), 1);
        // T = 3·2^19 + 2^35 + 2^16 + 5 < 2^36: 36 bits, 7 slots; the weights' bound can dominate.
        assert_eq!(dense::slot_bits(&[vec![(0, 1), (1, -2)]], &[5, -3], 16, 20), 36);
        assert_eq!(dense::slots(36), 7);
        assert_eq!(dense::slot_bits(&[vec![(0, 1 << 20)]], &[0], 0, 20), 40);
        assert_eq!(dense::slot_bits(&[vec![(0, i64::MAX), (1, i64::MAX)]], &[0], 60, 70), 128);
        let w = dense::packed_weights(&[vec![(0, -1)], vec![(0, 2)]], &[0, 1], 8);
        assert_eq!(w, vec![Fr::from(2u64 * 256) - Fr::ONE]);
    }

    /// input[n] → Linear(`rows`, `bias`) (→ ReLU, fused) at `params`, over the registered input `range`.
    fn linear(
        rows: &[Vec<f32>],
        bias: &[f32],
        relu: bool,
        params: QuantParams,
        range: Option<(i64, i64)>,
    ) -> QuantModel {
        let n = rows[0].len();
        let terms = rows.iter().map(|r| r.iter().enumerate().map(|(i, w)| (i as u32, *w)).collect()).collect();
        let mut layers = vec![layer("fc", vec![0], 1, LayerKind::Linear { terms, bias: bias.to_vec() })];
        let mut shapes = vec![vec![1, n], vec![1, rows.len()]];
        if relu {
            layers.push(layer("relu", vec![1], 2, LayerKind::Relu));
            shapes.push(vec![1, rows.len()]);
        }
        let float = float_model(shapes.len() - 1, shapes, layers);
        QuantModel::quantize(&float, params, range).unwrap()
    }

    type LinearParts<'a> = (&'a [Vec<(u32, i64)>], u32, bool, u32);

    /// `(terms, shift, relu, slot bits)` of a model's first (linear) layer.
    fn first_linear(model: &QuantModel) -> LinearParts<'_> {
        let QuantOp::Linear { terms, bias, shift, relu } = &model.layers[0].op else { panic!("linear first") };
        (terms, *shift, *relu, dense::slot_bits(terms, bias, *shift, model.params.value_bits))
    }

    /// Deterministic weight rows of `outputs × inputs`, magnitudes in (0, 1], both signs, none zero.
    fn rows(outputs: usize, inputs: usize) -> Vec<Vec<f32>> {
        (0..outputs)
            .map(|o| {
                (0..inputs)
                    .map(|i| {
                        let v = ((o * 7 + i * 13) % 17 + 1) as f32 / 17.0;
                        if (o + i) % 3 == 0 {
                            -v
                        } else {
                            v
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Inputs at the corners of `range` (all min, all max, alternating) and a few in between.
    fn corners(n: usize, (lo, hi): (i64, i64)) -> Vec<Vec<i64>> {
        let mut out = vec![vec![lo; n], vec![hi; n]];
        out.push((0..n).map(|i| if i % 2 == 0 { lo } else { hi }).collect());
        out.push((0..n).map(|i| if i % 2 == 0 { hi } else { lo }).collect());
        out.push((0..n).map(|i| lo + ((hi - lo) / (n as i64 + 1)) * (i as i64 + 1)).collect());
        out
    }

    /// Honest witnesses equal the reference pass and are accepted with every lane count (flex gate,
    /// one lane, rows of 3).
    fn honest_everywhere(model: &QuantModel, input: &[i64]) {
        let expected = model.forward(input).unwrap();
        assert_eq!(honest_output(model, input), expected, "input {input:?}");
        for lanes in [0, 1, 3] {
            assert!(mock_lanes(model, input, Witnessing::Exact, None, lanes), "{lanes} lanes, input {input:?}");
        }
    }

    #[test]
    fn packed_linear_layers_equal_the_reference_at_the_extremes() {
        // 32 and 40 value bits with large shifts (3 or 4 slots), with one output more than a group
        // holds; the default scales with 10 and 11 outputs (full and partial groups); shift 0 (no
        // division: range check, or the fused ReLU's sign decomposition).
        let cases: Vec<(QuantParams, usize, (i64, i64))> = vec![
            (
                QuantParams { input_scale_bits: 7, weight_scale_bits: 20, activation_scale_bits: 7, value_bits: 32 },
                5,
                (-(1 << 28), 1 << 28),
            ),
            (
                QuantParams { input_scale_bits: 20, weight_scale_bits: 20, activation_scale_bits: 0, value_bits: 40 },
                4,
                (-(1 << 36), 1 << 36),
            ),
            (QuantParams::default(), 10, (-4096, 4095)),
            (QuantParams::default(), 11, (-4096, 4095)),
            (
                QuantParams { input_scale_bits: 2, weight_scale_bits: 5, activation_scale_bits: 7, value_bits: 16 },
                14,
                (-128, 127),
            ),
        ];
        for (params, outputs, range) in cases {
            let n = 6;
            let bias: Vec<f32> = (0..outputs).map(|o| (o as f32 - 2.0) * 0.37).collect();
            for relu in [false, true] {
                let model = linear(&rows(outputs, n), &bias, relu, params, Some(range));
                model.check_bound().unwrap();
                let (terms, shift, fused, s) = first_linear(&model);
                assert_eq!(fused, relu);
                // Wider than what the rescale admits and than any true dot product.
                let norm = terms.iter().map(|t| t.iter().map(|(_, w)| w.unsigned_abs() as u128).sum::<u128>()).max();
                assert!(s >= shift + params.value_bits, "S = {s}");
                assert!(1u128 << s > norm.unwrap() << (params.value_bits - 1), "S = {s}");
                let slots = dense::slots(s);
                assert_eq!(slots, (252 / s) as usize);
                let groups = dense::pack_groups(terms, slots);
                let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
                let mut expected = vec![slots; outputs / slots];
                if outputs % slots > 0 {
                    expected.push(outputs % slots);
                }
                assert_eq!(sizes, expected, "params {params:?}");
                for input in corners(n, range) {
                    honest_everywhere(&model, &input);
                }
            }
        }
    }

    #[test]
    fn packed_linear_layers_with_zero_weights_and_interleaved_channels() {
        // A weight that quantizes to 0 leaves its term out: the output reads other indices and
        // gets its own group; an all-zero row has no terms (bias only, no group).
        let mut w = rows(4, 5);
        w[1][2] = 0.001;
        w[3] = vec![0.0; 5];
        let model = linear(&w, &[0.5, -0.25, 1.0, 2.0], false, QuantParams::default(), Some((-1024, 1023)));
        let (terms, _, _, s) = first_linear(&model);
        assert_eq!(terms[1].len(), 4);
        assert!(terms[3].is_empty());
        assert_eq!(dense::pack_groups(terms, dense::slots(s)), vec![vec![0, 2], vec![1]]);
        for input in corners(5, (-1024, 1023)) {
            honest_everywhere(&model, &input);
        }
        // A convolution-like layer (channel-major outputs: channel c at position p is 2c + p, the
        // positions read windows [0, 1, 2] and [1, 2, 3]): channels interleave across two groups.
        let mut terms: Terms = Vec::new();
        for c in 0..3 {
            for p in 0..2u32 {
                terms.push((0..3u32).map(|k| (p + k, (((c * 3 + k as usize) % 5) as f32 - 2.2) * 0.3)).collect());
            }
        }
        let layers =
            vec![layer("conv", vec![0], 1, LayerKind::Linear { terms, bias: vec![0.1, 0.1, -0.2, -0.2, 0.3, 0.3] })];
        let float = float_model(1, vec![vec![1, 4], vec![1, 6]], layers);
        let conv = QuantModel::quantize(&float, QuantParams::default(), Some((-2048, 2047))).unwrap();
        conv.check_bound().unwrap();
        let (terms, _, _, s) = first_linear(&conv);
        assert_eq!(dense::pack_groups(terms, dense::slots(s)), vec![vec![0, 2, 4], vec![1, 3, 5]]);
        for input in corners(4, (-2048, 2047)) {
            honest_everywhere(&conv, &input);
        }
        for lanes in [1, 3] {
            assert!(!mock_lanes(&conv, &[5, -7, 9, 11], Witnessing::Tampered(Tamper::Unpack), None, lanes));
        }
    }

    #[test]
    fn forged_unpackings_of_a_packed_dot_product_are_rejected() {
        let p2 = |n: u32| Fr::from(2u64).pow_vartime([n as u64]);
        let shift0 =
            QuantParams { input_scale_bits: 2, weight_scale_bits: 5, activation_scale_bits: 7, value_bits: 16 };
        let wide =
            QuantParams { input_scale_bits: 20, weight_scale_bits: 20, activation_scale_bits: 0, value_bits: 40 };
        let bias = [0.3, -0.7, 0.1];
        let models = [
            (dense(false), vec![10, -20, 30, 127]),
            (dense(true), vec![10, -20, 30, 127]),
            (linear(&rows(3, 4), &bias, false, shift0, Some((-128, 127))), vec![100, -128, 127, 3]),
            (linear(&rows(3, 4), &bias, true, shift0, Some((-128, 127))), vec![100, -128, 127, 3]),
            (
                linear(&rows(3, 4), &bias, true, wide, Some((-(1 << 36), 1 << 36))),
                vec![1 << 36, -5, 1 << 30, -(1 << 36)],
            ),
        ];
        for (model, input) in models {
            let (terms, shift, _, s) = first_linear(&model);
            assert_eq!(dense::pack_groups(terms, dense::slots(s))[0], vec![0, 1, 2]);
            let half = Fr::from(2u64).invert().unwrap();
            let inv_slot = p2(s).invert().unwrap();
            let deltas: Vec<(&str, [Fr; 3])> = vec![
                ("y0 + 2^S, y1 - 1", [p2(s), -Fr::ONE, Fr::ZERO]),
                ("y0 - 2^S, y1 + 1", [-p2(s), Fr::ONE, Fr::ZERO]),
                ("non-adjacent: y0 + 2^2S, y2 - 1", [p2(2 * s), Fr::ZERO, -Fr::ONE]),
                ("multiple: y0 + 3·2^S, y1 - 3", [Fr::from(3u64) * p2(s), -Fr::from(3u64), Fr::ZERO]),
                ("carry chain: y0 + 2^S, y1 + 2^S - 1, y2 - 1", [p2(s), p2(s) - Fr::ONE, -Fr::ONE]),
                // Field wraps: the first slot moves by exactly one output LSB, the other absorbs it mod r.
                ("wrap: y0 + 2^shift, y1 - 2^(shift - S) mod r", [p2(shift), -p2(shift) * inv_slot, Fr::ZERO]),
                ("wrap: y1 + 2^shift, y2 - 2^(shift - S) mod r", [Fr::ZERO, p2(shift), -p2(shift) * inv_slot]),
                ("wrap: y0 - 2^(S-1) (the interval width), y1 + 1/2 mod r", [-p2(s - 1), half, Fr::ZERO]),
                ("top slots: y1 - 2^S, y2 + 1", [Fr::ZERO, -p2(s), Fr::ONE]),
            ];
            for (what, d) in deltas {
                // Every forgery keeps the recomposition.
                assert_eq!(d[0] + d[1] * p2(s) + d[2] * p2(2 * s), Fr::ZERO, "{what}");
                for lanes in [1, 3] {
                    assert!(
                        !mock_lanes(&model, &input, Witnessing::Tampered(Tamper::UnpackDelta(d)), None, lanes),
                        "{what} accepted with {lanes} lanes (shift {shift}, S {s})"
                    );
                }
            }
            // The hook itself is harmless: zero deltas are the honest witness.
            assert!(mock_lanes(&model, &input, Witnessing::Tampered(Tamper::UnpackDelta([Fr::ZERO; 3])), None, 3));
        }
    }

    /// A slot whose true dot product overflows the value bits (the reference pass refuses it) must
    /// leave the circuit unsatisfiable, as it was before packing, even against a shifted unpacking
    /// that would bring it back in range. The input is inside the value bits but outside the
    /// registered range: the circuit of a public-input model does not check that range (the
    /// coordinator does), so the verifier contract on its own would see it. Found by review: with
    /// slots of `shift + B + 1` bits the forged proof verified; the slot width now also bounds the
    /// true dot product (`dense::slot_bits`).
    #[test]
    fn an_overflowing_slot_admits_no_forged_unpacking() {
        let w = vec![vec![2.0; 4], vec![0.25, -0.25, 0.125, 0.5], vec![0.1, 0.2, -0.3, 0.05]];
        let mut accepted = Vec::new();
        for relu in [false, true] {
            let deployed = linear(&w, &[0.0, 0.5, -0.5], relu, QuantParams::default(), Some((-2048, 2047)));
            deployed.check_bound().unwrap();
            // The same circuit: a public-input model's constraints do not read its input range.
            let mut model = deployed.clone();
            model.input_range = (model.params.value_min(), model.params.value_max());
            // Output 0 = 8·(−2^14) = −2^17, four times below the value range; Tamper::Unpack adds 2^S
            // to its slot (back to 0) and takes 1 from the next.
            let input = vec![-(1 << 14); 4];
            assert!(matches!(model.forward(&input), Err(Error::Overflow { .. })));
            for lanes in [1, 3] {
                let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, lanes);
                let tampered = Witnessing::Tampered(Tamper::Unpack);
                let forged = synthesize(&mut circuit, &model, &input, Fr::from(BINDING), None, tampered).unwrap();
                circuit.calculate_params().unwrap();
                if MockProver::run(K, &circuit, vec![forged.instances.clone()]).unwrap().verify().is_ok() {
                    accepted.push((relu, lanes, forged.output));
                }
            }
        }
        assert!(
            accepted.is_empty(),
            "forged outputs (relu, lanes, output) for an overflowing input accepted: {accepted:?}"
        );
    }

    #[test]
    fn a_wrong_activation_copy_in_the_dot_product_region_is_rejected() {
        // The region's activation cells must be copies: assign one lane a different value than the
        // cell it is copy-constrained to, keeping the gate satisfied (acc recomputed).
        let model = dense(false);
        let input = [10, -20, 30, 127];
        let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K, 3);
        let synthesized = synthesize(&mut circuit, &model, &input, Fr::from(BINDING), None, Witnessing::Exact).unwrap();
        circuit.calculate_params().unwrap();
        assert!(MockProver::run(K, &circuit, vec![synthesized.instances.clone()]).unwrap().verify().is_ok());
        circuit.dense.forge_first_activation(Fr::from(5u64));
        assert!(MockProver::run(K, &circuit, vec![synthesized.instances]).unwrap().verify().is_err());
    }

    #[test]
    fn packing_is_little_endian_offset_binary() {
        let bits = 16;
        let packed = pack(&[-32768, 0, 1], bits);
        assert_eq!(packed.len(), 1);
        let expected =
            Fr::from(0) + Fr::from(32768u64) * Fr::from(1u64 << 16) + Fr::from(32769u64) * Fr::from(1u64 << 32);
        assert_eq!(packed[0], expected);
        assert_eq!(pack(&[0; 31], bits).len(), 3);
        assert_eq!(num_instances(64, 10, 16, false), 7);
        assert_eq!(num_instances(64, 10, 16, true), 3);
    }

    /// The circuit's output is the reference pass's, and MockProver accepts it (every lane count).
    fn equals_reference(model: &QuantModel, input: &[i64]) -> std::result::Result<(), TestCaseError> {
        let expected = model.forward(input).unwrap();
        prop_assert_eq!(honest_output(model, input), expected);
        prop_assert!(mock(model, input, Witnessing::Exact, None));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn circuit_equals_reference(input in proptest::collection::vec(-400i64..400, 6)) {
            equals_reference(&chain(), &input)?;
        }

        #[test]
        fn circuit_equals_reference_on_every_ir_kind(input in proptest::collection::vec(-600i64..600, 4)) {
            equals_reference(&wide(), &input)?;
        }

        #[test]
        fn circuit_equals_reference_with_function_tables(input in proptest::collection::vec(-640i64..=640, 4)) {
            let model = nonlinear();
            let expected = model.forward(&input).unwrap();
            let mut circuit = ModelCircuit::new(CircuitBuilderStage::Mock, K_TABLES, 2);
            let out = synthesize(&mut circuit, &model, &input, Fr::from(BINDING), None, Witnessing::Exact).unwrap().output;
            circuit.clear();
            prop_assert_eq!(out, expected);
            prop_assert!(mock_tables(&model, &input, Witnessing::Exact, None));
        }

        #[test]
        fn a_random_wrong_output_is_rejected(input in proptest::collection::vec(-128i64..128, 4), index in 0usize..3, delta in prop_oneof![-1000i64..0, 1i64..1000]) {
            let model = dense(true);
            let mut wrong = model.forward(&input).unwrap();
            wrong[index] += delta;
            prop_assert!(!mock(&model, &input, Witnessing::Exact, Some(&wrong)));
        }
    }
}
