//! The dot-product gate: weights in fixed columns read directly by a custom gate.
//!
//! halo2-base's flex gate would spend three advice cells and two copy constraints per weight (the
//! activation, the weight loaded from the constants column, the running sum). This region spends
//! one advice cell per weight. With `L` lanes it has
//!
//! * `L` advice columns `x_l`: activations, each copy-constrained to the cell that computed it;
//! * `L` fixed columns `w_l`: the quantized weights of the model;
//! * one fixed column `s`: 0 on rows not in use, 1 where a dot product starts, 2 where a row
//!   continues the dot product of the row above;
//! * one advice column `acc`, the running sum;
//!
//! and one gate of degree 3 on every row `r`, with `q = s·(3 − s)/2` (1 on rows in use) and
//! `c = s·(s − 1)/2` (1 on continuing rows), multiplied through by 2:
//!
//! ```text
//! s·(3 − s)·acc[r] = s·(s − 1)·acc[r−1] + 2·Σ_l x_l[r]·w_l[r]
//! ```
//!
//! (one fixed column for both flags: one commitment fewer in the verifying key, about 6k gas per
//! verification; the flex gate is already of degree 3). A dot product `Σ_i w_i·x_{t_i}` of `m` terms
//! takes `⌈m/L⌉` consecutive rows (`s = 1` on the first, `2` after); its value is `acc` on its last
//! row, copy-constrained into the flex-gate region where the bias, the rescale and the activation
//! follow. On rows not in use (`s = w = 0`, including halo2's blinding rows) the gate reads `0 = 0`.
//!
//! The weights are fixed-column values, so their commitments are in the verifying key: different
//! weights are a different key, verifier and model id, exactly as with constants.
//!
//! **Packing.** Outputs of a layer that read the same activations (every output of a dense layer,
//! the output channels of a convolution at one position) share their rows: a fixed cell holds the
//! weights of up to `P` outputs as one field element `Σ_l 2^(S·l)·w_l`, so the running sum ends at
//! `Σ_l 2^(S·l)·y_l` with `y_l` the `P` dot products. The prover witnesses every `y_l` and the
//! circuit constrains the recomposition. What makes the `y_l` unique is two bounds. Every activation
//! is range checked to `B` signed bits (`B` the value bits), so the true dot product obeys
//! `|y_l| ≤ N·2^(B−1)` with `N` the largest `Σ|w|` of the layer's outputs. And the rescale that
//! follows every linear output ([`super`]'s rounding division, or its range check when the shift is 0)
//! admits only `y'_l` with `|y'_l| ≤ 2^(shift+B−1) + 2^shift + max|bias|`. The slot width `S`
//! ([`slot_bits`]) is the smallest with `2^S` above the sum `T` of the two bounds, so a witness the
//! rescale accepts differs from the true dot products by less than `2^S` in every slot, and
//! `S·P ≤ 252` ([`PACKED_BITS`]) keeps `Σ_l 2^(S·l)·Δ_l` below the field modulus `r > 2^253`: it is
//! zero as an integer and every `Δ_l` is zero. In particular a true dot product that overflows the
//! value bits leaves no accepted witness, as without packing (the first bound is what a width of
//! `shift + B + 1` alone would miss: a shifted unpacking could bring an overflowing slot back in
//! range; `an_overflowing_slot_admits_no_forged_unpacking` checks it). One
//! activation cell and one weight cell then serve `P` products (`P` = 5 to 7 for the scales
//! calibration chooses), which cuts the region's rows, and with them the lanes, `P`-fold.

use halo2_base::{
    halo2_proofs::{
        circuit::{Cell, Region, Value},
        halo2curves::bn256::Fr,
        halo2curves::ff::Field,
        plonk::{Advice, Column, ConstraintSystem, Expression, Fixed},
        poly::Rotation,
    },
    utils::halo2::{raw_assign_advice, raw_assign_fixed},
    AssignedValue, Context, ContextCell,
};

/// Columns of the dot-product region.
#[derive(Clone, Debug)]
pub struct DenseConfig {
    /// Activation lanes (equality enabled).
    pub x: Vec<Column<Advice>>,
    /// Weight lanes.
    pub w: Vec<Column<Fixed>>,
    /// 0: row not in use, 1: a dot product starts, 2: the row continues the one above.
    pub s: Column<Fixed>,
    /// Running sum (equality enabled).
    pub acc: Column<Advice>,
}

impl DenseConfig {
    /// Adds the region's columns and gate to `meta` (`lanes ≥ 1`).
    pub fn configure(meta: &mut ConstraintSystem<Fr>, lanes: usize) -> Self {
        let x: Vec<_> = (0..lanes).map(|_| meta.advice_column()).collect();
        let w: Vec<_> = (0..lanes).map(|_| meta.fixed_column()).collect();
        let s = meta.fixed_column();
        let acc = meta.advice_column();
        for col in &x {
            meta.enable_equality(*col);
        }
        meta.enable_equality(acc);
        meta.create_gate("dot product", |meta| {
            let s = meta.query_fixed(s, Rotation::cur());
            let q = s.clone() * (Expression::Constant(Fr::from(3u64)) - s.clone());
            let c = s.clone() * (s - Expression::Constant(Fr::ONE));
            let acc_cur = meta.query_advice(acc, Rotation::cur());
            let acc_prev = meta.query_advice(acc, Rotation::prev());
            let products = x.iter().zip(&w).fold(Expression::Constant(Fr::ZERO), |sum, (x, w)| {
                sum + meta.query_advice(*x, Rotation::cur()) * meta.query_fixed(*w, Rotation::cur())
            });
            vec![q * acc_cur - c * acc_prev - products * Expression::Constant(Fr::from(2u64))]
        });
        Self { x, w, s, acc }
    }
}

/// Largest `S·P` of a packed weight: `2^(S·P+1)` stays below the BN254 scalar modulus (> 2^253).
pub const PACKED_BITS: u32 = 252;

/// Slot width of a linear layer's packed dot products (`terms` and `bias` per output, rescaled by
/// `2^shift` into `value_bits` signed bits): the bit length of
/// `T = max_o Σ|w_o|·2^(B−1) + 2^(shift+B−1) + 2^shift + max|bias|`, so `2^S > T` (see the module
/// docs). Saturates at 128 bits (then one output per weight: no packing).
pub fn slot_bits(terms: &[Vec<(u32, i64)>], bias: &[i64], shift: u32, value_bits: u32) -> u32 {
    let norm = terms
        .iter()
        .map(|t| t.iter().fold(0u128, |acc, (_, w)| acc.saturating_add(w.unsigned_abs() as u128)))
        .max()
        .unwrap_or(0);
    let bias = bias.iter().map(|b| b.unsigned_abs() as u128).max().unwrap_or(0);
    let pow = |e: u32| 1u128.checked_shl(e).unwrap_or(u128::MAX);
    let t = norm
        .saturating_mul(pow(value_bits.saturating_sub(1)))
        .saturating_add(pow(shift + value_bits.saturating_sub(1)))
        .saturating_add(pow(shift))
        .saturating_add(bias);
    u128::BITS - t.leading_zeros()
}

/// Outputs per packed weight for slots of `slot_bits`: `⌊PACKED_BITS / slot_bits⌋`, at least 1.
pub fn slots(slot_bits: u32) -> usize {
    (PACKED_BITS / slot_bits.max(1)).max(1) as usize
}

/// The packing of a linear layer's outputs: groups of at most `slots` outputs with the same input
/// indices in the same order (so one activation per row serves the whole group), in order of first
/// appearance. Outputs without terms belong to no group. Key generation and proving derive the same
/// groups from the same model.
pub fn pack_groups(terms: &[Vec<(u32, i64)>], slots: usize) -> Vec<Vec<usize>> {
    let mut open: std::collections::HashMap<Vec<u32>, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (o, t) in terms.iter().enumerate() {
        if t.is_empty() {
            continue;
        }
        let key: Vec<u32> = t.iter().map(|(i, _)| *i).collect();
        match open.get(&key) {
            Some(&g) if groups[g].len() < slots => groups[g].push(o),
            _ => {
                open.insert(key, groups.len());
                groups.push(vec![o]);
            }
        }
    }
    groups
}

/// A linear layer's packing: its slot width ([`slot_bits`]) and its groups ([`pack_groups`]), the
/// one derivation key generation, proving and sizing share.
pub fn pack(terms: &[Vec<(u32, i64)>], bias: &[i64], shift: u32, value_bits: u32) -> (u32, Vec<Vec<usize>>) {
    let bits = slot_bits(terms, bias, shift, value_bits);
    (bits, pack_groups(terms, slots(bits)))
}

/// `2^slot_bits` in the field: the weight of slot `l` is its `l`-th power.
pub fn slot_base(slot_bits: u32) -> Fr {
    Fr::from(2u64).pow_vartime([slot_bits as u64])
}

/// The packed weights of `group` (outputs of `terms` with the same indices): per term,
/// `Σ_l 2^(slot_bits·l)·w_l` in the field.
pub fn packed_weights(terms: &[Vec<(u32, i64)>], group: &[usize], slot_bits: u32) -> Vec<Fr> {
    let slot = slot_base(slot_bits);
    (0..terms[group[0]].len())
        .map(|j| {
            group.iter().rev().fold(Fr::ZERO, |acc, o| acc * slot + crate::quant::to_field(terms[*o][j].1 as i128))
        })
        .collect()
}

/// One row of the region.
#[derive(Clone, Debug)]
struct Row {
    /// Activation values and the virtual cells they copy (`None`: padding, zero).
    x: Vec<(Fr, ContextCell)>,
    w: Vec<Fr>,
    cont: bool,
    acc: Fr,
    /// The virtual cell the value of the dot product is copied to (last row only).
    out: Option<ContextCell>,
}

/// The rows of the dot-product region, filled during witness generation.
#[derive(Clone, Debug, Default)]
pub struct DenseRegion {
    lanes: usize,
    rows: Vec<Row>,
    /// Tamper with the running sum of the second row (negative tests).
    #[cfg(test)]
    pub(crate) tamper: bool,
}

impl DenseRegion {
    /// An empty region of `lanes` lanes (0: no region; dot products use the flex gate).
    pub fn new(lanes: usize) -> Self {
        Self { lanes, ..Self::default() }
    }

    /// Number of lanes.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Rows used so far.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Rows a dot product of `terms` terms takes with `lanes` lanes.
    pub fn rows_for(terms: usize, lanes: usize) -> usize {
        terms.div_ceil(lanes)
    }

    /// Lays out `Σ_i w_i·x_i` (at least one term) and returns its value as a virtual cell of `ctx`
    /// (copy-constrained to the region's running sum when the circuit is synthesized).
    pub fn dot(&mut self, ctx: &mut Context<Fr>, x: &[AssignedValue<Fr>], w: &[Fr]) -> AssignedValue<Fr> {
        assert!(self.lanes > 0 && !x.is_empty() && x.len() == w.len(), "dot product of {} terms", x.len());
        let mut acc = Fr::ZERO;
        let chunks = x.chunks(self.lanes).zip(w.chunks(self.lanes));
        let last = x.len().div_ceil(self.lanes) - 1;
        for (i, (xs, ws)) in chunks.enumerate() {
            let mut lanes = Vec::with_capacity(xs.len());
            for (xv, wv) in xs.iter().zip(ws) {
                acc += *xv.value() * wv;
                let copy = ctx.copy_manager.lock().expect("copy manager poisoned").mock_external_assigned(*xv.value());
                ctx.constrain_equal(&copy, xv);
                lanes.push((*xv.value(), copy.cell.expect("external cells are tagged")));
            }
            // (On the second row: MockProver cannot print a failure at row 0, whose gate reads the
            // unassigned row above.)
            #[cfg(test)]
            if self.tamper && self.rows.len() == 1 {
                acc += Fr::ONE;
            }
            self.rows.push(Row { x: lanes, w: ws.to_vec(), cont: i > 0, acc, out: None });
            if i == last {
                let out = ctx.copy_manager.lock().expect("copy manager poisoned").mock_external_assigned(acc);
                self.rows.last_mut().expect("just pushed").out = out.cell;
                return out;
            }
        }
        unreachable!("the last chunk returns")
    }

    /// Assigns the region and returns, for every virtual cell it owns, the physical cell.
    pub fn assign(&self, config: &DenseConfig, region: &mut Region<'_, Fr>) -> Vec<(ContextCell, Cell)> {
        let mut links = Vec::with_capacity(self.rows.len() * (self.lanes + 1));
        for (r, row) in self.rows.iter().enumerate() {
            for (l, (value, tag)) in row.x.iter().enumerate() {
                let cell = raw_assign_advice(region, config.x[l], r, Value::known(*value)).cell();
                links.push((*tag, cell));
            }
            for (l, w) in row.w.iter().enumerate() {
                raw_assign_fixed(region, config.w[l], r, *w);
            }
            raw_assign_fixed(region, config.s, r, Fr::from(if row.cont { 2u64 } else { 1 }));
            let acc = raw_assign_advice(region, config.acc, r, Value::known(row.acc)).cell();
            if let Some(tag) = row.out {
                links.push((tag, acc));
            }
        }
        links
    }

    /// Changes the first two activations of the first row by `δ·w_1` and `−δ·w_0`: the running sums
    /// still satisfy the gate, only the copy constraints can catch it (negative tests).
    #[cfg(test)]
    pub(crate) fn forge_first_activation(&mut self, delta: Fr) {
        let row = &mut self.rows[0];
        assert!(row.x.len() >= 2 && row.w[0] != Fr::ZERO && row.w[1] != Fr::ZERO);
        row.x[0].0 += delta * row.w[1];
        row.x[1].0 -= delta * row.w[0];
    }
}
