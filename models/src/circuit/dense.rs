//! The dot-product gate: weights in fixed columns read directly by a custom gate.
//!
//! halo2-base's flex gate would spend three advice cells and two copy constraints per weight (the
//! activation, the weight loaded from the constants column, the running sum). This region spends
//! one advice cell per weight. With `L` lanes it has
//!
//! * `L` advice columns `x_l`: activations, each copy-constrained to the cell that computed it;
//! * `L` fixed columns `w_l`: the quantized weights of the model;
//! * a fixed column `q` (1 on the rows in use) and a fixed column `c` (1 where a row continues the
//!   dot product of the row above);
//! * one advice column `acc`, the running sum;
//!
//! and one gate of degree 2 on every row `r`:
//!
//! ```text
//! q[r]·acc[r] = c[r]·acc[r−1] + Σ_l x_l[r]·w_l[r]
//! ```
//!
//! A dot product `Σ_i w_i·x_{t_i}` of `m` terms takes `⌈m/L⌉` consecutive rows (`c = 0` on the first,
//! `1` after); its value is `acc` on its last row, copy-constrained into the flex-gate region where
//! the bias, the rescale and the activation follow. On rows not in use (`q = c = w = 0`, including
//! halo2's blinding rows) the gate reads `0 = 0`.
//!
//! The weights are fixed-column values, so their commitments are in the verifying key: different
//! weights are a different key, verifier and model id, exactly as with constants.

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
    /// Row in use.
    pub q: Column<Fixed>,
    /// Row continues the dot product of the row above.
    pub c: Column<Fixed>,
    /// Running sum (equality enabled).
    pub acc: Column<Advice>,
}

impl DenseConfig {
    /// Adds the region's columns and gate to `meta` (`lanes ≥ 1`).
    pub fn configure(meta: &mut ConstraintSystem<Fr>, lanes: usize) -> Self {
        let x: Vec<_> = (0..lanes).map(|_| meta.advice_column()).collect();
        let w: Vec<_> = (0..lanes).map(|_| meta.fixed_column()).collect();
        let q = meta.fixed_column();
        let c = meta.fixed_column();
        let acc = meta.advice_column();
        for col in &x {
            meta.enable_equality(*col);
        }
        meta.enable_equality(acc);
        meta.create_gate("dot product", |meta| {
            let q = meta.query_fixed(q, Rotation::cur());
            let c = meta.query_fixed(c, Rotation::cur());
            let acc_cur = meta.query_advice(acc, Rotation::cur());
            let acc_prev = meta.query_advice(acc, Rotation::prev());
            let products = x.iter().zip(&w).fold(Expression::Constant(Fr::ZERO), |sum, (x, w)| {
                sum + meta.query_advice(*x, Rotation::cur()) * meta.query_fixed(*w, Rotation::cur())
            });
            vec![q * acc_cur - c * acc_prev - products]
        });
        Self { x, w, q, c, acc }
    }
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
            raw_assign_fixed(region, config.q, r, Fr::ONE);
            raw_assign_fixed(region, config.c, r, if row.cont { Fr::ONE } else { Fr::ZERO });
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
