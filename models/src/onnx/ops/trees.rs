//! Tree ensembles (`ai.onnx.ml` TreeEnsembleClassifier, as skl2onnx exports decision trees, random
//! forests and gradient boosting) as proved comparisons and path selection.
//!
//! * every branch node is one comparison `x[feature] ≤ t` (or `<`, `≥`, `>`, `=`, `≠`), 0 or 1;
//! * a leaf is reached exactly when every comparison on its path agrees: the number of agreeing
//!   literals (a linear layer over the comparison bits, `b` or `1 − b`) equals the path's depth;
//! * each class score is the sum of the reached leaves' weights (a linear layer over the leaf bits)
//!   plus `base_values`, then `post_transform` (NONE, LOGISTIC by the Sigmoid table, SOFTMAX).
//!
//! Thresholds are quantized like any constant (to the nearest value at the comparison's scale): an
//! input within one LSB of a threshold may take the other branch.

use std::collections::HashMap;

use super::{OpSpec, Result};
use crate::{
    functions::Func,
    ir::{Cmp, LayerKind, Source},
    onnx::{Ctx, Node},
};

pub const TREES: OpSpec = OpSpec {
    ops: &["TreeEnsembleClassifier"],
    lower: tree_classifier,
    limits: "comparisons and path selection; thresholds quantized at the comparison's scale; post_transform NONE, \
             LOGISTIC, SOFTMAX; the label output as the arg-max when labels are 0..K−1 (tract reads no \
             TreeEnsembleRegressor nor a binary gradient boosting's single base value)",
};

struct Tree {
    /// node id → index into the flat node table.
    index: HashMap<i64, usize>,
}

fn tree_classifier(ctx: &mut Ctx, node: &Node<'_>) -> Result<()> {
    let x = ctx.act(node, 0)?;
    let xs = ctx.shape(x).to_vec();
    let features = *xs.last().unwrap_or(&0);
    if xs.iter().product::<usize>() != features {
        return Err(node.unsupported("batch", xs));
    }
    let ints = |name: &str| -> Result<Vec<i64>> {
        node.attr_vec::<i64>(name)?.ok_or_else(|| node.invalid(format!("{name} is required")))
    };
    let floats = |name: &str| -> Result<Vec<f32>> { Ok(node.attr_vec::<f32>(name)?.unwrap_or_default()) };
    let (tree_ids, node_ids, feature_ids) = (ints("nodes_treeids")?, ints("nodes_nodeids")?, ints("nodes_featureids")?);
    let (true_ids, false_ids) = (ints("nodes_truenodeids")?, ints("nodes_falsenodeids")?);
    let values = floats("nodes_values")?;
    let modes: Vec<String> =
        node.attr_vec::<String>("nodes_modes")?.ok_or_else(|| node.invalid("nodes_modes is required"))?;
    let n = tree_ids.len();
    if [node_ids.len(), feature_ids.len(), true_ids.len(), false_ids.len(), values.len(), modes.len()]
        .iter()
        .any(|l| *l != n)
    {
        return Err(node.invalid("the nodes_* attributes differ in length"));
    }
    for attr in ["nodes_values_as_tensor", "base_values_as_tensor", "class_weights_as_tensor"] {
        if node.proto.attribute.iter().any(|a| a.name == attr) {
            return Err(node.unsupported(attr, "given (opset 3 tensors)"));
        }
    }
    let (c_tree, c_node, c_id) = (ints("class_treeids")?, ints("class_nodeids")?, ints("class_ids")?);
    let c_weight = floats("class_weights")?;
    if [c_node.len(), c_id.len(), c_weight.len()].iter().any(|l| *l != c_tree.len()) {
        return Err(node.invalid("the class_* attributes differ in length"));
    }
    let labels = node.attr_vec::<i64>("classlabels_int64s")?;
    let n_labels = match (&labels, node.attr_vec::<String>("classlabels_strings")?) {
        (Some(l), _) => l.len(),
        (None, Some(s)) => s.len(),
        _ => return Err(node.invalid("classlabels_int64s or classlabels_strings is required")),
    };
    let post = node.attr::<String>("post_transform")?.unwrap_or_else(|| "NONE".into());
    let base = floats("base_values")?;

    let mut trees: HashMap<i64, Tree> = HashMap::new();
    for i in 0..n {
        trees.entry(tree_ids[i]).or_insert_with(|| Tree { index: HashMap::new() }).index.insert(node_ids[i], i);
    }
    // Branch nodes: one comparison bit each, grouped by mode.
    let cmp_of = |m: &str| -> Option<Cmp> {
        Some(match m {
            "BRANCH_LEQ" => Cmp::LessOrEqual,
            "BRANCH_LT" => Cmp::Less,
            "BRANCH_GTE" => Cmp::GreaterOrEqual,
            "BRANCH_GT" => Cmp::Greater,
            "BRANCH_EQ" => Cmp::Equal,
            "BRANCH_NEQ" => Cmp::NotEqual,
            _ => return None,
        })
    };
    let branches: Vec<usize> = (0..n).filter(|i| modes[*i] != "LEAF").collect();
    for i in &branches {
        if cmp_of(&modes[*i]).is_none() {
            return Err(node.unsupported("nodes_modes", &modes[*i]));
        }
        if feature_ids[*i] < 0 || feature_ids[*i] as usize >= features {
            return Err(node.invalid(format!("feature {} out of {features}", feature_ids[*i])));
        }
    }
    if branches.is_empty() {
        return Err(node.unsupported("trees", "no branch node"));
    }
    // bit position of every branch node, per mode group, concatenated in the order below
    let mut bit_of: HashMap<usize, usize> = HashMap::new();
    let mut offset = 0;
    let mut slots = Vec::new();
    let mut mode_names: Vec<&str> = branches.iter().map(|i| modes[*i].as_str()).collect();
    mode_names.sort_unstable();
    mode_names.dedup();
    for m in mode_names {
        let members: Vec<usize> = branches.iter().copied().filter(|i| modes[*i] == m).collect();
        let k = members.len();
        let sources = members.iter().map(|i| Source::Input { slot: 0, index: feature_ids[*i] as u32 }).collect();
        let picked = ctx.push(node, vec![x], vec![k], LayerKind::Move { sources });
        let thresholds =
            ctx.push(node, vec![], vec![k], LayerKind::Const { values: members.iter().map(|i| values[*i]).collect() });
        let cmp = cmp_of(m).expect("checked");
        let bits = ctx.push(node, vec![picked, thresholds], vec![k], LayerKind::Compare { cmp });
        for (j, i) in members.iter().enumerate() {
            bit_of.insert(*i, offset + j);
        }
        offset += k;
        slots.push(bits);
    }
    let bits = if slots.len() == 1 {
        slots[0]
    } else {
        let sources = slots
            .iter()
            .enumerate()
            .flat_map(|(s, t)| (0..ctx.shape(*t)[0]).map(move |j| Source::Input { slot: s as u16, index: j as u32 }))
            .collect();
        ctx.push(node, slots.clone(), vec![offset], LayerKind::Move { sources })
    };
    // Leaves: the literals on their paths.
    let mut leaves: Vec<(i64, i64)> = Vec::new();
    let mut terms = Vec::new();
    let mut bias = Vec::new();
    let mut depth = Vec::new();
    let mut tree_keys: Vec<i64> = trees.keys().copied().collect();
    tree_keys.sort_unstable();
    for t in &tree_keys {
        let tree = &trees[t];
        let root = *tree.index.get(&0).ok_or_else(|| node.invalid(format!("tree {t} has no node 0")))?;
        // (node, literals so far)
        let mut stack: Vec<(usize, Vec<(usize, bool)>)> = vec![(root, vec![])];
        while let Some((i, path)) = stack.pop() {
            if path.len() > n {
                return Err(node.invalid(format!("tree {t} has a cycle")));
            }
            if modes[i] == "LEAF" {
                let lits: Vec<(u32, f32)> =
                    path.iter().map(|(b, truth)| (bit_of[b] as u32, if *truth { 1.0 } else { -1.0 })).collect();
                bias.push(path.iter().filter(|(_, truth)| !truth).count() as f32);
                depth.push(path.len() as f32);
                terms.push(lits);
                leaves.push((*t, node_ids[i]));
                continue;
            }
            for (next, truth) in [(true_ids[i], true), (false_ids[i], false)] {
                let j = *tree.index.get(&next).ok_or_else(|| node.invalid(format!("tree {t}: no node {next}")))?;
                let mut p = path.clone();
                p.push((i, truth));
                stack.push((j, p));
            }
        }
    }
    let nl = leaves.len();
    let agree = ctx.push(node, vec![bits], vec![nl], LayerKind::Linear { terms, bias });
    let depth_t = ctx.push(node, vec![], vec![nl], LayerKind::Const { values: depth });
    let reached = ctx.push(node, vec![agree, depth_t], vec![nl], LayerKind::Compare { cmp: Cmp::Equal });
    // Scores.
    let binary = n_labels == 2 && c_id.iter().all(|c| *c == 0);
    let n_scores = if binary { 1 } else { n_labels };
    let leaf_index: HashMap<(i64, i64), usize> = leaves.iter().enumerate().map(|(i, l)| (*l, i)).collect();
    let mut score_terms: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_scores];
    for e in 0..c_tree.len() {
        let leaf = *leaf_index.get(&(c_tree[e], c_node[e])).ok_or_else(|| {
            node.invalid(format!("class weight for tree {} node {}: not a leaf", c_tree[e], c_node[e]))
        })?;
        let c = c_id[e];
        if c < 0 || c as usize >= n_scores {
            return Err(node.invalid(format!("class id {c} out of {n_scores}")));
        }
        if c_weight[e] != 0.0 {
            score_terms[c as usize].push((leaf as u32, c_weight[e]));
        }
    }
    let score_bias: Vec<f32> = match base.len() {
        0 => vec![0.0; n_scores],
        l if l == n_scores => base.clone(),
        _ => return Err(node.unsupported("base_values", format!("{} values for {n_scores} scores", base.len()))),
    };
    let scores =
        ctx.push(node, vec![reached], vec![n_scores], LayerKind::Linear { terms: score_terms, bias: score_bias });
    let transformed = match post.as_str() {
        "NONE" => scores,
        "LOGISTIC" => {
            ctx.push(node, vec![scores], vec![n_scores], LayerKind::Function { func: Func::Sigmoid, max_input: None })
        }
        "SOFTMAX" if !binary => super::function::softmax_of(ctx, node, scores, &[n_scores])?,
        other => return Err(node.unsupported("post_transform", other)),
    };
    let probs = if binary {
        // [1 − s, s]
        let one_minus = ctx.push(
            node,
            vec![transformed],
            vec![1],
            LayerKind::Linear { terms: vec![vec![(0, -1.0)]], bias: vec![1.0] },
        );
        let sources = vec![Source::Input { slot: 0, index: 0 }, Source::Input { slot: 1, index: 0 }];
        ctx.push(node, vec![one_minus, transformed], vec![1, 2], LayerKind::Move { sources })
    } else {
        ctx.push(node, vec![transformed], vec![1, n_labels], LayerKind::Reshape)
    };
    ctx.bind(node, 1, probs)?;
    if node.proto.output.first().is_some_and(|o| !o.is_empty()) {
        // The label: the arg-max, when the labels are 0..K−1.
        match &labels {
            Some(l) if l.iter().enumerate().all(|(i, v)| *v == i as i64) => {
                let windows = vec![(0..n_labels as u32).collect()];
                let label = ctx.push(node, vec![probs], vec![1], LayerKind::ArgMax { windows, min: false });
                ctx.bind(node, 0, label)?;
            }
            // Other labels: left unbound, so a graph that reads the label is refused by name.
            _ => {}
        }
    }
    Ok(())
}
