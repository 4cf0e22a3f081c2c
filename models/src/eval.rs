//! Float inference with tract (the ONNX semantics we quantize) and accuracy on a labelled set.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tract_onnx::{prelude::*, tract_hir::infer::Factoid};

use crate::{
    error::{Error, Result},
    graph::QuantModel,
    ir::{FloatModel, InputKind},
    quant::dequantize,
};

/// A float model compiled by tract, for reference outputs.
pub struct FloatRunner {
    plan: std::sync::Arc<TypedRunnableModel>,
    inputs: Vec<(Vec<usize>, DatumType)>,
}

impl std::fmt::Debug for FloatRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloatRunner").field("inputs", &self.inputs).finish_non_exhaustive()
    }
}

impl FloatRunner {
    /// Loads and optimizes an ONNX model for one input of `shape` (a real-valued input).
    pub fn load(path: &Path, shape: &[usize]) -> Result<Self> {
        Self::load_inputs(path, &[(shape.to_vec(), InputKind::Real)])
    }

    /// Loads and optimizes an ONNX model for the inputs of an imported model.
    pub fn for_model(path: &Path, model: &FloatModel) -> Result<Self> {
        let inputs: Vec<_> = model.inputs.iter().map(|i| (model.shapes[i.tensor].clone(), i.kind)).collect();
        // tract is not written against hostile graphs: a panic becomes an error, never an abort.
        std::panic::catch_unwind(|| Self::load_inputs(path, &inputs)).unwrap_or_else(|_| {
            Err(Error::MalformedOnnx { path: path.into(), reason: "tract failed to compile the float model".into() })
        })
    }

    fn load_inputs(path: &Path, inputs: &[(Vec<usize>, InputKind)]) -> Result<Self> {
        let err = |e: TractError| Error::MalformedOnnx { path: path.into(), reason: format!("{e:#}") };
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(err)?;
        let mut typed = Vec::new();
        for (i, (shape, kind)) in inputs.iter().enumerate() {
            let declared = model.input_fact(i).map_err(err)?.datum_type.concretize();
            let dt = declared.unwrap_or(match kind {
                InputKind::Real => f32::datum_type(),
                InputKind::Integer => i64::datum_type(),
                InputKind::Bool => bool::datum_type(),
            });
            model = model.with_input_fact(i, InferenceFact::dt_shape(dt, shape.clone())).map_err(err)?;
            typed.push((shape.clone(), dt));
        }
        let plan = model.into_optimized().and_then(|m| m.into_runnable()).map_err(err)?;
        Ok(Self { plan, inputs: typed })
    }

    /// Runs one sample: all inputs concatenated flat (row-major); returns all outputs concatenated.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_inner(input))).unwrap_or_else(|_| {
            Err(Error::InvalidGraph { node: "tract".into(), reason: "the float model failed on this input".into() })
        })
    }

    fn run_inner(&self, input: &[f32]) -> Result<Vec<f32>> {
        let err = |e: TractError| Error::InvalidGraph { node: "tract".into(), reason: format!("{e:#}") };
        let mut offset = 0;
        let mut values = TVec::new();
        for (shape, dt) in &self.inputs {
            let n: usize = shape.iter().product();
            let slice = input.get(offset..offset + n).ok_or_else(|| Error::InputLength {
                expected: offset + n,
                got: input.len(),
                shape: shape.clone(),
            })?;
            offset += n;
            let t = Tensor::from_shape(shape, slice).map_err(err)?;
            values.push(t.cast_to_dt(*dt).map_err(err)?.into_owned().into_tvalue());
        }
        let out = self.plan.run(values).map_err(err)?;
        let mut flat = Vec::new();
        for o in out.iter() {
            let c = o.cast_to::<f32>().map_err(err)?;
            flat.extend(c.to_plain_array_view::<f32>().map_err(err)?.iter().copied());
        }
        Ok(flat)
    }
}

/// A labelled evaluation set: flat float inputs and class labels.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Dataset {
    /// Inputs, each flat row-major.
    pub inputs: Vec<Vec<f64>>,
    /// Class of each input.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Reads `{"inputs": [[..]], "labels": [..]}`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading dataset", path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { path: path.into(), what: "dataset", source })
    }

    /// Reads only the inputs of `{"inputs": [[..]], ...}` (labels, if any, are ignored): a
    /// calibration set.
    pub fn load_inputs(path: &Path) -> Result<Vec<Vec<f64>>> {
        #[derive(Deserialize)]
        struct Inputs {
            inputs: Vec<Vec<f64>>,
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading calibration set", path, e))?;
        let set: Inputs = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            path: path.into(),
            what: "calibration set",
            source,
        })?;
        Ok(set.inputs)
    }
}

/// Float and quantized accuracy of a classifier on a held-out set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Fraction classified correctly by the float ONNX model.
    pub float: f64,
    /// Fraction classified correctly by the quantized integer model (= the circuit).
    pub quantized: f64,
    /// Fraction of samples where both predict the same class.
    pub agreement: f64,
    /// Number of samples.
    pub samples: usize,
}

/// Index of the largest value (first on ties).
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Measures float and quantized accuracy on `data`.
pub fn accuracy(float: &FloatRunner, model: &QuantModel, data: &Dataset) -> Result<Accuracy> {
    let (mut f_ok, mut q_ok, mut agree) = (0usize, 0usize, 0usize);
    for (x, label) in data.inputs.iter().zip(&data.labels) {
        let xf: Vec<f32> = x.iter().map(|v| *v as f32).collect();
        let fp = argmax(&float.run(&xf)?);
        let q = model.forward(&model.quantize_input(x)?)?;
        let qp = argmax(&q);
        f_ok += usize::from(fp == *label);
        q_ok += usize::from(qp == *label);
        agree += usize::from(fp == qp);
    }
    let n = data.labels.len().max(1) as f64;
    Ok(Accuracy {
        float: f_ok as f64 / n,
        quantized: q_ok as f64 / n,
        agreement: agree as f64 / n,
        samples: data.labels.len(),
    })
}

/// Dequantizes an output vector.
pub fn dequantize_all(q: &[i64], bits: u32) -> Vec<f64> {
    q.iter().map(|v| dequantize(*v, bits)).collect()
}
