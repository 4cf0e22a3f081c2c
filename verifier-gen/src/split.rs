//! Verifiers above EIP-170's 24,576 bytes, cut into parts chained by `STATICCALL`.
//!
//! The code snark-verifier generates is straight-line: between two top-level statements its whole
//! state is the memory below the allocator's end `M` (every value is `mstore`d at a constant
//! address), the calldata, and three variables (`success`, `f_p`, `f_q`). So it can be cut between
//! any two top-level statements:
//!
//! * part `j` runs its statements, reverts if `success` is false, checks the `EXTCODEHASH` of part
//!   `j + 1` and calls it with `[memory [0, A)][the verifier's calldata]`, where `A ≤ M` ends the
//!   last byte any statement before the cut touches (every address is a literal, checked);
//! * part `j + 1` checks that length, restores the memory, reads the calldata `A` bytes further on,
//!   runs its statements, and answers [`part_ok`] (32 bytes) or reverts;
//! * the last part ends with the pairing check.
//!
//! Parts `2..=n` are deployed through the standard CREATE2 deployer ([`crate::CREATE2_FACTORY`])
//! with the zero salt, so each address follows from the part's init code and is known when the
//! part before it is generated (generation runs from the last part to the first). The first part
//! is the verifier: its code holds the second part's address and code hash, which holds the third's,
//! and so on, so the first part's code hash — and the model id built on it — pins every part.
//! An address without code answers a call with empty data, which the caller refuses.
//!
//! A later part called on its own proves nothing: its answer is about the memory it is handed, and
//! only the first part, which checks the calldata and computes that memory, is ever registered.
//!
//! Memory at or past `M` is scratch space (the first transcript hash and the instance loop write it
//! and read it back in adjacent statements, see [`crate::instances`]) and is not handed on, so a cut
//! never falls next to a statement that touches it.

use crate::{
    compile_unlimited,
    error::{Error, Result},
    keccak256, Compiled, Part,
};
use std::path::Path;

/// What a part answers when its statements, and every part after it, succeeded:
/// `keccak256("zkinfer.verifier.part.ok")`.
pub fn part_ok() -> [u8; 32] {
    keccak256(b"zkinfer.verifier.part.ok")
}

/// Most parts a verifier is cut into.
pub const MAX_PARTS: usize = 16;

/// Runtime bytes a part is aimed at when choosing the first number of parts to try (the cut is by
/// source length, so parts come out uneven; a part above EIP-170 makes the next try cut finer).
pub const PART_TARGET_BYTES: usize = 20_000;

const VALIDATE: &str = "function validate_ec_point(x, y) -> valid {";
const ENDING: &str = "// Revert if anything fails";
const F_P: &str = "0x30644e72e131a029b85045b68181585d97816a916871ca8d3c208c16d87cfd47";
const F_Q: &str = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";

/// A hardened verifier source taken apart at its top-level statements.
#[derive(Debug)]
struct Pieces<'a> {
    /// Everything up to the end of `validate_ec_point`: the contract header, the calldata checks,
    /// the variables and the function.
    prelude: &'a str,
    /// The text of `validate_ec_point`.
    function: &'a str,
    /// The top-level statements after it, each with the comment lines before it.
    statements: Vec<&'a str>,
}

fn unexpected(reason: impl Into<String>) -> Error {
    Error::UnexpectedVerifier(format!("splitting the verifier: {}", reason.into()))
}

/// The index just past the `}` matching the `{` at `open`.
fn matching_brace(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

fn pieces(src: &str) -> Result<Pieces<'_>> {
    let start = src.find(VALIDATE).ok_or_else(|| unexpected("no validate_ec_point"))?;
    let end = matching_brace(src, start + VALIDATE.len() - 1).ok_or_else(|| unexpected("unbalanced function"))?;
    let ending = src.rfind(ENDING).ok_or_else(|| unexpected("no final success check"))?;
    let ending = src[..ending].rfind('\n').map_or(0, |i| i + 1);
    if ending < end {
        return Err(unexpected("the final success check precedes the function"));
    }
    let body = &src[end..ending];
    let mut statements = Vec::new();
    let (mut braces, mut parens, mut from, mut at) = (0i64, 0i64, 0usize, 0usize);
    for line in body.split_inclusive('\n') {
        at += line.len();
        let code = line.split("//").next().unwrap_or_default();
        for c in code.chars() {
            match c {
                '{' => braces += 1,
                '}' => braces -= 1,
                '(' => parens += 1,
                ')' => parens -= 1,
                _ => {}
            }
        }
        if braces < 0 || parens < 0 {
            return Err(unexpected("unbalanced braces or parentheses"));
        }
        if braces == 0 && parens == 0 && !code.trim().is_empty() {
            statements.push(&body[from..at]);
            from = at;
        }
    }
    if braces != 0 || parens != 0 {
        return Err(unexpected("unbalanced braces or parentheses at the end"));
    }
    if !body[from..].trim().is_empty() {
        statements.push(&body[from..]);
    }
    for s in &statements {
        let code: String = s.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let head = code.trim_start();
        if head.starts_with("let ") || head.starts_with("function ") {
            return Err(unexpected(format!(
                "a top-level definition would not outlive a cut: {}",
                head.lines().next().unwrap_or("")
            )));
        }
        if code.contains("calldatasize") || code.contains("return(") || code.contains("msize") {
            return Err(unexpected("a statement reads calldatasize or msize, or returns"));
        }
    }
    Ok(Pieces { prelude: &src[..end], function: &src[start..end], statements })
}

/// What a statement touches of memory: the end of its accesses below `memory_end` (0 if none) and
/// whether it touches the scratch space at or past `memory_end`.
fn memory_use(statement: &str, memory_end: usize) -> Result<(usize, bool)> {
    let ranges = crate::instances::memory_ranges_with(statement, true)?;
    let mut end = 0;
    let mut scratch = false;
    for (a, b) in ranges {
        if a >= memory_end {
            scratch = true;
        } else if b <= memory_end {
            end = end.max(b);
        } else {
            return Err(unexpected(format!("memory [{a:#x}, {b:#x}) straddles the allocator's end {memory_end:#x}")));
        }
    }
    Ok((end, scratch))
}

/// The statement indices where parts `2..=parts` start: cuts at even shares of the source length,
/// each moved forward to the first statement boundary with no scratch access on either side.
fn cuts(scratch: &[bool], lengths: &[usize], parts: usize) -> Result<Vec<usize>> {
    let total: usize = lengths.iter().sum();
    let before: Vec<usize> = lengths.iter().scan(0, |acc, l| Some(std::mem::replace(acc, *acc + l))).collect();
    let mut out: Vec<usize> = Vec::with_capacity(parts - 1);
    for j in 1..parts {
        let target = total * j / parts;
        let from = out.last().map_or(1, |c| c + 1);
        let cut = (from..lengths.len())
            .find(|&i| before[i] >= target && !scratch[i - 1] && !scratch[i])
            .ok_or_else(|| unexpected(format!("no place for cut {j} of {}", parts - 1)))?;
        out.push(cut);
    }
    Ok(out)
}

/// The code that hands on to the next part: the memory `[0, memory_end)` and the verifier's
/// `calldata_len` bytes, found at `calldata_at` in this part's calldata.
fn handoff(next: &Part, memory_end: usize, calldata_len: usize, calldata_at: usize, j: usize, n: usize) -> String {
    let ok = hex::encode(part_ok());
    format!(
        "            // zkinfer: the verifier goes on in part {nj} of {n} ({contract}, CREATE2 address {address}, code hash checked),\n\
         \x20           // handed [memory [0, {memory_end:#x})][the {calldata_len}-byte calldata]; it answers PART_OK or reverts.\n\
         \x20           if iszero(success) {{ revert(0, 0) }}\n\
         \x20           if iszero(eq(extcodehash({address}), {codehash})) {{ revert(0, 0) }}\n\
         \x20           calldatacopy({memory_end:#x}, {calldata_at:#x}, {calldata_len:#x})\n\
         \x20           if iszero(staticcall(gas(), {address}, 0, {total:#x}, 0, 0x20)) {{ revert(0, 0) }}\n\
         \x20           if iszero(and(eq(returndatasize(), 0x20), eq(mload(0), 0x{ok}))) {{ revert(0, 0) }}\n",
        nj = j + 1,
        contract = next.contract,
        address = next.address,
        codehash = next.codehash,
        total = memory_end + calldata_len,
    )
}

const CLOSE: &str = "        }\n    }\n}\n";

/// Cuts the hardened verifier `source` (whose memory ends at `memory_end` and which accepts exactly
/// `calldata_len` bytes) into `parts` contracts and compiles them with `solc`: the first part
/// (named `contract`, the verifier) with the later parts in [`Compiled::parts`], and the sources of
/// all parts, first to last.
///
/// Errors: [`Error::TooLarge`] if a part is still above EIP-170 (cut finer);
/// [`Error::UnexpectedVerifier`] if the code is not straight-line as described in the module docs.
pub fn build(
    solc: &Path,
    source: &str,
    memory_end: usize,
    calldata_len: usize,
    contract: &str,
    parts: usize,
    limit: usize,
) -> Result<(Compiled, Vec<String>)> {
    if !(2..=MAX_PARTS).contains(&parts) {
        return Err(unexpected(format!("{parts} parts (2 to {MAX_PARTS})")));
    }
    if !source.contains(&format!("contract {contract} {{")) {
        return Err(unexpected(format!("the source does not define the contract {contract}")));
    }
    let memory_end = memory_end.next_multiple_of(32);
    let p = pieces(source)?;
    let uses = p.statements.iter().map(|s| memory_use(s, memory_end)).collect::<Result<Vec<_>>>()?;
    let scratch: Vec<bool> = uses.iter().map(|u| u.1).collect();
    let lengths: Vec<usize> = p.statements.iter().map(|s| s.len()).collect();
    let cuts = cuts(&scratch, &lengths, parts)?;
    let bounds: Vec<(usize, usize)> = std::iter::once(0)
        .chain(cuts.iter().copied())
        .zip(cuts.iter().copied().chain(std::iter::once(p.statements.len())))
        .collect();
    // The memory handed to part j + 1: everything the statements before its cut touched.
    let handed: Vec<usize> =
        bounds.iter().map(|&(_, to)| uses[..to].iter().map(|u| u.0).max().unwrap_or(0).next_multiple_of(32)).collect();
    let ok = hex::encode(part_ok());
    let mut later: Vec<Part> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    // The last part first: each part needs the address and code hash of the next.
    for j in (1..parts).rev() {
        let name = format!("{contract}Part{}", j + 1);
        let (from, to) = bounds[j];
        let memory = handed[j - 1];
        let body: String = p.statements[from..to]
            .concat()
            .replace("calldataload(", "zk_calldataload(")
            .replace("calldatacopy(", "zk_calldatacopy(");
        let mut code = format!(
            "// SPDX-License-Identifier: MIT\n\
             // Part {nj} of {parts} of the verifier {contract}: called by part {j} only through it.\n\
             // Generated by zkinfer verifier-gen. Do not edit.\n\n\
             pragma solidity ^0.8.19;\n\n\
             contract {name} {{\n    \
             fallback(bytes calldata) external returns (bytes memory) {{\n        \
             assembly (\"memory-safe\") {{\n            \
             // zkinfer: handed [part {j}'s memory [0, {memory:#x})][the verifier's {calldata_len}-byte calldata].\n            \
             if iszero(eq(calldatasize(), {total:#x})) {{ revert(0, 0) }}\n            \
             calldatacopy(0, 0, {memory:#x})\n            \
             let success := true\n            \
             let f_p := {F_P}\n            \
             let f_q := {F_Q}\n            \
             {function}\n            \
             function zk_calldataload(o) -> v {{ v := calldataload(add(o, {memory:#x})) }}\n            \
             function zk_calldatacopy(d, o, n) {{ calldatacopy(d, add(o, {memory:#x}), n) }}\n\
             {body}",
            nj = j + 1,
            total = memory + calldata_len,
            function = p.function,
        );
        match later.first() {
            Some(next) => code.push_str(&handoff(next, handed[j], calldata_len, memory, j, parts)),
            None => code.push_str("            if iszero(success) { revert(0, 0) }\n"),
        }
        code.push_str(&format!("            mstore(0, 0x{ok})\n            return(0, 0x20)\n{CLOSE}"));
        let compiled = compile_unlimited(solc, &code, &name)?;
        if compiled.deployed_bytecode.len() > limit {
            return Err(Error::TooLarge { size: compiled.deployed_bytecode.len(), limit });
        }
        let address = crate::create2_address(&[0; 32], &compiled.bytecode);
        later.insert(
            0,
            Part {
                contract: name,
                address: format!("0x{}", hex::encode(address)),
                codehash: compiled.codehash,
                bytecode: compiled.bytecode,
                deployed_bytecode: compiled.deployed_bytecode,
            },
        );
        sources.insert(0, code);
    }
    let (from, to) = bounds[0];
    let mut head = format!("{}{}", p.prelude, p.statements[from..to].concat());
    head.push_str(&handoff(&later[0], handed[0], calldata_len, 0, 0, parts));
    head.push_str(&format!("            return(0, 0)\n{CLOSE}"));
    let mut compiled = compile_unlimited(solc, &head, contract)?;
    if compiled.deployed_bytecode.len() > limit {
        return Err(Error::TooLarge { size: compiled.deployed_bytecode.len(), limit });
    }
    compiled.parts = later;
    sources.insert(0, head);
    Ok((compiled, sources))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "contract V {\n    fallback(bytes calldata) external returns (bytes memory) {\n        assembly {\n            let success := true\n            function validate_ec_point(x, y) -> valid {\n                { valid := 1 }\n            }\nmstore(0x80, 1)\n// a comment\n{\n    let x := calldataload(0x0)\n    mstore(0xa0, x)\n}\nmstore(0x400, mload(0x80))\nmstore(0xc0, keccak256(0x400, 64))\nmstore(0xe0, 2)\nmstore(0x100, 3)\n\n            // Revert if anything fails\n            if iszero(success) { revert(0, 0) }\n            return(0, 0)\n        }\n    }\n}\n";

    #[test]
    fn statements_are_the_top_level_ones_with_their_comments() {
        let p = pieces(SRC).unwrap();
        assert!(p.function.starts_with(VALIDATE) && p.function.ends_with('}'));
        assert_eq!(p.statements.len(), 6, "{:#?}", p.statements);
        assert!(p.statements[1].starts_with("// a comment\n{"));
        // Every line between the function and the final check, but the trailing blank one.
        assert_eq!(p.statements.concat(), SRC[p.prelude.len()..SRC.find("\n            // Revert").unwrap()]);
    }

    #[test]
    fn cuts_avoid_the_scratch_space_and_hand_on_what_was_touched() {
        let p = pieces(SRC).unwrap();
        // Memory ends at 0x400: statements 2 and 3 use the scratch, so no cut falls before 2, 3
        // or 4; half the source length is at statement 4, so the cut moves on to 5.
        let uses: Vec<(usize, bool)> = p.statements.iter().map(|s| memory_use(s, 0x400).unwrap()).collect();
        assert_eq!(uses, [(0xa0, false), (0xc0, false), (0xa0, true), (0xe0, true), (0x100, false), (0x120, false)]);
        let scratch: Vec<bool> = uses.iter().map(|u| u.1).collect();
        let lengths: Vec<usize> = p.statements.iter().map(|s| s.len()).collect();
        assert_eq!(cuts(&scratch, &lengths, 2).unwrap(), [5]);
        assert!(cuts(&scratch, &lengths, 3).unwrap_err().to_string().contains("no place for cut 2"));
        // A write to a computed address cannot be accounted for: refused.
        assert!(memory_use("mstore(add(0x80, x), 1)", 0x400).is_err());
        assert!(memory_use("mstore(0x3f0, keccak256(0x3e0, 0x40))", 0x400).is_err());
    }

    #[test]
    fn top_level_variables_are_refused() {
        let src = SRC.replace("mstore(0xe0, 2)", "let z := 2\nmstore(0xe0, z)");
        assert!(pieces(&src).unwrap_err().to_string().contains("would not outlive a cut"));
    }
}
