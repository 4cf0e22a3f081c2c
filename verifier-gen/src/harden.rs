//! Hardening of snark-verifier's generated Yul, and what the verifier commits to.
//!
//! snark-verifier reads every public instance and proof scalar as `mod(calldataload(o), f_q)` and
//! every proof point as `let x := calldataload(o)`, `let y := calldataload(o + 32)` followed by
//! `success := and(validate_ec_point(x, y), success)`; it never looks at `calldatasize()`. So the
//! same proof verified with `instance + r`, `scalar + r` or trailing bytes, and a point off the curve
//! only failed at the end, after an EC precompile had consumed all gas forwarded to it.
//!
//! [`harden`] rewrites the source so that the verifier
//!
//! * answers `encodingHash()` (exactly the 4-byte selector as calldata) with
//!   `keccak256(abi.encode(encoding))`, so the coordinator checks at registration that the encoding
//!   it records is the one this code was generated for (the hash is a constant in the code, so the
//!   code hash, hence the model id, commits to it);
//! * with a dev-SRS key, reverts on any chain but the dev chain (`chainid() == 31337`);
//! * reverts unless `calldatasize()` is exactly `32·instances + proof length`;
//! * reverts unless every instance and proof scalar is `< r` (one loop per contiguous run of scalar
//!   words, so the code does not grow with the number of instances), and then reads them without
//!   reduction;
//! * reverts at the first coordinate `≥ q` or point off the curve, and at the first failing
//!   precompile call, instead of accumulating a flag.
//!
//! The rewrite checks its own premises: every 32-byte word of the calldata must be read exactly once,
//! as a scalar or a point coordinate, instances first. The instance words may instead be read by the
//! loop of [`crate::instances`] (recognised by its exact header, bound to `32·instances`), which
//! reads them raw: they are scalars for the `< r` check like any other. A generator change that
//! breaks this fails generation instead of emitting a verifier with an unaccounted-for byte.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The only chain id a verifier made from an insecure dev SRS runs on (anvil's and forge's).
pub const DEV_CHAIN_ID: u64 = 31337;
/// The function a verifier answers with its encoding hash.
pub const ENCODING_HASH_SIGNATURE: &str = "encodingHash()";

/// Where the verifier reads what from its calldata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalldataLayout {
    /// Public instances: the first `32·num_instances` bytes.
    pub num_instances: usize,
    /// Proof bytes after the instances.
    pub proof_bytes: usize,
    /// Half-open byte ranges `[start, end)` of scalar words (instances included), each checked `< r`.
    pub scalar_ranges: Vec<(usize, usize)>,
    /// Byte offsets of G1 points (x at the offset, y 32 bytes later), each checked `< q` and on the curve.
    pub points: Vec<usize>,
}

impl CalldataLayout {
    /// The exact calldata length the verifier accepts.
    pub fn calldata_len(&self) -> usize {
        32 * self.num_instances + self.proof_bytes
    }
}

/// What to build into the verifier besides the checks.
#[derive(Clone, Copy, Debug)]
pub struct Commitments {
    /// `keccak256(abi.encode(encoding))`, returned by `encodingHash()`.
    pub encoding_hash: [u8; 32],
    /// Guard to the dev chain id (every verifier of a dev-SRS key).
    pub dev_chain_guard: bool,
}

/// Parses `0x…` at the start of `s` (hex digits up to the first non-hex character).
fn hex_prefix(s: &str) -> Option<(usize, usize)> {
    let digits = s.strip_prefix("0x")?;
    let len = digits.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(digits.len());
    Some((usize::from_str_radix(&digits[..len], 16).ok()?, 2 + len))
}

/// Rewrites occurrences of `prefix 0x<offset> suffix` with `replace(offset)`, returning the offsets.
fn rewrite_offsets(src: &str, prefix: &str, suffix: &str, replace: impl Fn(usize) -> String) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(src.len());
    let mut offsets = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find(prefix) {
        let after = &rest[at + prefix.len()..];
        match hex_prefix(after).filter(|(_, len)| after[*len..].starts_with(suffix)) {
            Some((offset, len)) => {
                out.push_str(&rest[..at]);
                out.push_str(&replace(offset));
                offsets.push(offset);
                rest = &after[len + suffix.len()..];
            }
            None => {
                out.push_str(&rest[..at + prefix.len()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, offsets)
}

/// Groups sorted word offsets into contiguous half-open ranges.
fn runs(offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &o in offsets {
        match out.last_mut() {
            Some((_, end)) if *end == o => *end += 32,
            _ => out.push((o, o + 32)),
        }
    }
    out
}

fn layout_error(reason: String) -> Error {
    Error::UnexpectedVerifier(reason)
}

/// Hardens snark-verifier's verifier `source` for `num_instances` instances (see the module docs).
pub fn harden(source: &str, num_instances: usize, c: &Commitments) -> Result<(String, CalldataLayout)> {
    const F_Q: &str = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";
    let f_q_line = format!("let f_q := {F_Q}\n");
    let (src, mut scalars) =
        rewrite_offsets(source, "mod(calldataload(", "), f_q)", |o| format!("calldataload({o:#x})"));
    let (src, xs) = rewrite_offsets(&src, "let x := calldataload(", ")", |o| format!("let x := calldataload({o:#x})"));
    let (src, ys) = rewrite_offsets(&src, "let y := calldataload(", ")", |o| format!("let y := calldataload({o:#x})"));
    let validations = src.matches("success := and(validate_ec_point(x, y), success)").count();
    let src = src.replace(
        "success := and(validate_ec_point(x, y), success)",
        "if iszero(validate_ec_point(x, y)) { revert(0, 0) }",
    );
    let (src, calls) = rewrite_calls(&src);
    // Instance words read by the loop of [`crate::instances`] count as scalar reads.
    match src.matches(&crate::instances::loop_header(num_instances)).count() {
        0 => {}
        1 => scalars.extend((0..num_instances).map(|i| 32 * i)),
        more => return Err(layout_error(format!("{more} instance loops"))),
    }

    // Every word read exactly once: scalars and point coordinates tile [0, len), instances first.
    if xs.len() != ys.len() || xs.iter().zip(&ys).any(|(x, y)| y != &(x + 32)) || validations != xs.len() {
        return Err(layout_error(format!(
            "{} x and {} y coordinates, {validations} validations: not one validated point per pair",
            xs.len(),
            ys.len()
        )));
    }
    let mut words: Vec<usize> = scalars.iter().copied().chain(xs.iter().copied()).chain(ys.iter().copied()).collect();
    words.sort_unstable();
    let len = words.len() * 32;
    if words.iter().enumerate().any(|(i, &w)| w != 32 * i) {
        return Err(layout_error("the calldata words read are not exactly 0, 32, 64, … (gaps or repeats)".into()));
    }
    scalars.sort_unstable();
    if scalars.len() < num_instances || scalars[..num_instances].iter().enumerate().any(|(i, &o)| o != 32 * i) {
        return Err(layout_error(format!("the first {num_instances} words are not all read as scalars (instances)")));
    }
    if calls == 0 || !src.contains(&f_q_line) {
        return Err(layout_error("no precompile calls or no `f_q` definition found".into()));
    }
    let scalar_ranges = runs(&scalars);
    let layout = CalldataLayout { num_instances, proof_bytes: len - 32 * num_instances, scalar_ranges, points: xs };

    let selector = &crate::keccak256(ENCODING_HASH_SIGNATURE.as_bytes())[..4];
    let mut prelude = String::new();
    if c.dev_chain_guard {
        prelude.push_str(&format!(
            "            // zkinfer: this key comes from an INSECURE dev SRS (τ follows from a public seed): dev chain only.\n            \
             if iszero(eq(chainid(), {DEV_CHAIN_ID})) {{ revert(0, 0) }}\n"
        ));
    }
    prelude.push_str(&format!(
        "            // zkinfer: encodingHash() returns keccak256(abi.encode(encoding)) of the encoding this verifier is for.\n            \
         if eq(calldatasize(), 4) {{\n                \
         if eq(shr(224, calldataload(0)), 0x{sel}) {{\n                    \
         mstore(0, 0x{hash})\n                    \
         return(0, 0x20)\n                \
         }}\n                \
         revert(0, 0)\n            \
         }}\n            \
         // zkinfer: exactly {n} instances (32 bytes each) and a {p}-byte proof.\n            \
         if iszero(eq(calldatasize(), {total:#x})) {{ revert(0, 0) }}\n            \
         // zkinfer: every instance and proof scalar must be canonical (< r).\n",
        sel = hex::encode(selector),
        hash = hex::encode(c.encoding_hash),
        n = num_instances,
        p = layout.proof_bytes,
        total = layout.calldata_len(),
    ));
    for (start, end) in &layout.scalar_ranges {
        prelude.push_str(&format!(
            "            for {{ let o := {start:#x} }} lt(o, {end:#x}) {{ o := add(o, 0x20) }} {{\n                \
             if iszero(lt(calldataload(o), f_q)) {{ revert(0, 0) }}\n            \
             }}\n"
        ));
    }
    let src = src.replacen(&f_q_line, &format!("{f_q_line}{prelude}"), 1);
    Ok((src, layout))
}

/// `success := and(eq(staticcall(…), 1), success)` → `if iszero(staticcall(…)) { revert(0, 0) }`.
fn rewrite_calls(src: &str) -> (String, usize) {
    const PREFIX: &str = "success := and(eq(staticcall(";
    const SUFFIX: &str = "), 1), success)";
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    let mut count = 0;
    while let Some(at) = rest.find(PREFIX) {
        let after = &rest[at + PREFIX.len()..];
        let Some(end) = after.find(SUFFIX).filter(|&e| !after[..e].contains('\n')) else {
            out.push_str(&rest[..at + PREFIX.len()]);
            rest = after;
            continue;
        };
        out.push_str(&rest[..at]);
        out.push_str(&format!("if iszero(staticcall({})) {{ revert(0, 0) }}", &after[..end]));
        rest = &after[end + SUFFIX.len()..];
        count += 1;
    }
    out.push_str(rest);
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOY: &str = "let f_q := 0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001\n\
        mstore(0xa0, mod(calldataload(0x0), f_q))\n\
        mstore(0xc0, mod(calldataload(0x20), f_q))\n\
        { let x := calldataload(0x40)\n let y := calldataload(0x60)\n success := and(validate_ec_point(x, y), success) }\n\
        mstore(0x5e0, mod(calldataload(0x80), f_q))\n\
        success := and(eq(staticcall(gas(), 0x7, 0x43e0, 0x60, 0x43e0, 0x40), 1), success)\n";

    #[test]
    fn finds_the_layout_and_inserts_the_checks() {
        let c = Commitments { encoding_hash: [0xab; 32], dev_chain_guard: true };
        let (src, layout) = harden(TOY, 2, &c).unwrap();
        assert_eq!(
            layout,
            CalldataLayout {
                num_instances: 2,
                proof_bytes: 96,
                scalar_ranges: vec![(0, 64), (128, 160)],
                points: vec![0x40],
            }
        );
        assert!(!src.contains("mod(calldataload"));
        assert!(src.contains("if iszero(eq(calldatasize(), 0xa0)) { revert(0, 0) }"));
        assert!(src.contains("if iszero(eq(chainid(), 31337))"));
        assert!(src.contains("if iszero(validate_ec_point(x, y)) { revert(0, 0) }"));
        assert!(src.contains("if iszero(staticcall(gas(), 0x7, 0x43e0, 0x60, 0x43e0, 0x40)) { revert(0, 0) }"));
        assert!(src.contains(&format!("mstore(0, 0x{})", "ab".repeat(32))));
        let c = Commitments { dev_chain_guard: false, ..c };
        assert!(!harden(TOY, 2, &c).unwrap().0.contains("chainid()"));
    }

    #[test]
    fn refuses_a_layout_it_cannot_account_for() {
        let c = Commitments { encoding_hash: [0; 32], dev_chain_guard: false };
        // A word never read (0x20 missing).
        let gap = TOY.replace("mstore(0xc0, mod(calldataload(0x20), f_q))\n", "");
        assert!(matches!(harden(&gap, 1, &c), Err(Error::UnexpectedVerifier(_))));
        // More instances than leading scalar words.
        assert!(matches!(harden(TOY, 3, &c), Err(Error::UnexpectedVerifier(_))));
    }
}
