//! Float inference with tract (the ONNX semantics we quantize) and accuracy on a labelled set.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::{
    error::{Error, Result},
    graph::QuantModel,
    quant::dequantize,
};

/// A float model compiled by tract, for reference predictions.
pub struct FloatRunner {
    plan: std::sync::Arc<TypedRunnableModel>,
    shape: Vec<usize>,
}

impl std::fmt::Debug for FloatRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloatRunner").field("shape", &self.shape).finish_non_exhaustive()
    }
}

impl FloatRunner {
    /// Loads and optimizes an ONNX model for a single input of `shape`.
    pub fn load(path: &Path, shape: &[usize]) -> Result<Self> {
        let err = |e: TractError| Error::MalformedOnnx { path: path.into(), reason: format!("{e:#}") };
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(err)?;
        Ok(Self { plan, shape: shape.to_vec() })
    }

    /// Runs one input (flat, row-major).
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let err = |e: TractError| Error::InvalidGraph { node: "tract".into(), reason: format!("{e:#}") };
        let tensor = Tensor::from_shape(&self.shape, input).map_err(err)?;
        let out = self.plan.run(tvec!(tensor.into())).map_err(err)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(err)?;
        Ok(view.iter().copied().collect())
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
