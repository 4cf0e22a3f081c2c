//! The circuit's own function tables: element-wise functions by a lookup argument.
//!
//! Columns:
//!
//! * fixed `tag`, advice `x`, advice `y`: one row per lookup. `tag` is the table's number (from 1)
//!   on rows in use and 0 elsewhere; `x` is copy-constrained to the cell holding the (rescaled,
//!   clamped) input, `y` to the cell the rest of the circuit reads as the output;
//! * fixed `table_tag`, `table_x`, `table_y`: every table's entries `(tag, u, f(u))`, one per row,
//!   followed by zero rows.
//!
//! and one lookup argument (halo2's `lookup_any`): on every usable row,
//! `(tag, x, y) ∈ {(table_tag, table_x, table_y)}`. The zero rows of the table make the unused rows
//! `(0, 0, 0)` valid without a selector; a used row has a non-zero `tag`, so it must match an entry
//! of its own table. The table columns are fixed, so the verifying key pins every table exactly as
//! it pins the weights.

use halo2_base::{
    halo2_proofs::{
        circuit::{Cell, Region, Value},
        halo2curves::bn256::Fr,
        plonk::{Advice, Column, ConstraintSystem, Fixed},
        poly::Rotation,
    },
    utils::halo2::{raw_assign_advice, raw_assign_fixed},
    AssignedValue, Context, ContextCell,
};

use crate::{functions::FunctionTable, quant::to_field};

/// Columns of the lookup region.
#[derive(Clone, Debug)]
pub struct LookupConfig {
    tag: Column<Fixed>,
    x: Column<Advice>,
    y: Column<Advice>,
    table_tag: Column<Fixed>,
    table_x: Column<Fixed>,
    table_y: Column<Fixed>,
}

impl LookupConfig {
    /// Adds the region's columns and its lookup argument to `meta`.
    pub fn configure(meta: &mut ConstraintSystem<Fr>) -> Self {
        let tag = meta.fixed_column();
        let x = meta.advice_column();
        let y = meta.advice_column();
        let table_tag = meta.fixed_column();
        let table_x = meta.fixed_column();
        let table_y = meta.fixed_column();
        meta.enable_equality(x);
        meta.enable_equality(y);
        meta.lookup_any("function table", |meta| {
            let q = |c: Column<Fixed>, meta: &mut halo2_base::halo2_proofs::plonk::VirtualCells<'_, Fr>| {
                meta.query_fixed(c, Rotation::cur())
            };
            let (tag_e, ttag_e, tx_e, ty_e) = (q(tag, meta), q(table_tag, meta), q(table_x, meta), q(table_y, meta));
            vec![
                (tag_e, ttag_e),
                (meta.query_advice(x, Rotation::cur()), tx_e),
                (meta.query_advice(y, Rotation::cur()), ty_e),
            ]
        });
        Self { tag, x, y, table_tag, table_x, table_y }
    }
}

/// One lookup: the table's tag, the input and output values and the virtual cells they copy.
#[derive(Clone, Debug)]
struct Row {
    tag: u64,
    x: (Fr, ContextCell),
    y: (Fr, ContextCell),
}

/// The tables and lookups of a circuit, filled during witness generation.
#[derive(Clone, Debug, Default)]
pub struct LookupRegion {
    tables: Vec<FunctionTable>,
    rows: Vec<Row>,
    /// Look up a wrong output in the first lookup (negative tests).
    #[cfg(test)]
    pub(crate) tamper: bool,
}

impl LookupRegion {
    /// The tag (from 1) of `table`, registering it on first use.
    pub fn register(&mut self, table: &FunctionTable) -> u64 {
        if let Some(i) = self.tables.iter().position(|t| t == table) {
            return i as u64 + 1;
        }
        self.tables.push(table.clone());
        self.tables.len() as u64
    }

    /// Rows of lookups.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Rows of table entries, plus the zero row.
    pub fn table_rows(&self) -> usize {
        self.tables.iter().map(|t| t.values.len()).sum::<usize>() + 1
    }

    /// Whether any table is registered.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    /// Looks `u` up in table `tag` and returns the output `y` (its value computed by the caller from
    /// the same table) as a virtual cell of `ctx`, copy-constrained to the region's `y` column.
    pub fn lookup(&mut self, ctx: &mut Context<Fr>, tag: u64, u: AssignedValue<Fr>, y: i64) -> AssignedValue<Fr> {
        #[allow(unused_mut)]
        let mut y = to_field(y as i128);
        #[cfg(test)]
        if self.tamper && self.rows.is_empty() {
            y += Fr::from(1u64);
        }
        let mut copies = ctx.copy_manager.lock().expect("copy manager poisoned");
        let x_copy = copies.mock_external_assigned(*u.value());
        let y_cell = copies.mock_external_assigned(y);
        drop(copies);
        ctx.constrain_equal(&x_copy, &u);
        self.rows.push(Row {
            tag,
            x: (*u.value(), x_copy.cell.expect("external cells are tagged")),
            y: (y, y_cell.cell.expect("external cells are tagged")),
        });
        y_cell
    }

    /// Assigns the lookups and the tables; returns, for every virtual cell the region owns, the
    /// physical cell.
    pub fn assign(&self, config: &LookupConfig, region: &mut Region<'_, Fr>) -> Vec<(ContextCell, Cell)> {
        let mut links = Vec::with_capacity(2 * self.rows.len());
        for (r, row) in self.rows.iter().enumerate() {
            raw_assign_fixed(region, config.tag, r, Fr::from(row.tag));
            let x = raw_assign_advice(region, config.x, r, Value::known(row.x.0)).cell();
            let y = raw_assign_advice(region, config.y, r, Value::known(row.y.0)).cell();
            links.push((row.x.1, x));
            links.push((row.y.1, y));
        }
        let mut r = 0;
        for (i, table) in self.tables.iter().enumerate() {
            for (j, v) in table.values.iter().enumerate() {
                raw_assign_fixed(region, config.table_tag, r, Fr::from(i as u64 + 1));
                raw_assign_fixed(region, config.table_x, r, to_field((table.lo + j as i64) as i128));
                raw_assign_fixed(region, config.table_y, r, to_field(*v as i128));
                r += 1;
            }
        }
        links
    }
}
