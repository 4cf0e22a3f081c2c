//! Public instances in a loop: verifier bytecode that does not grow with the number of instances.
//!
//! snark-verifier's EVM code generation is straight-line: for `N` public instances it emits, per
//! instance, a calldata read, a Lagrange evaluation `l_i(z) = ωⁱ·(zⁿ − 1)/(n·(z − ωⁱ))` with its
//! slot in the batch inversion, and a term of `Σ l_i(z)·inst_i` — about 165–170 bytes of code per
//! instance word, so a 64×64 input made an undeployable verifier.
//!
//! [`rewrite`] starts from the code snark-verifier generates for the same key with **one**
//! instance and turns it into a verifier of `N` instances with the same calldata layout
//! (`[instances as 32-byte words][proof]`, exactly what the prover and the coordinator send):
//!
//! 1. every proof calldata offset (everything after the single instance word) moves by
//!    `32·(N − 1)`;
//! 2. the first transcript squeeze hashed `[vk digest][instance 0][first-phase commitments]` in
//!    place at `0x80`; it now hashes `[vk digest][calldata 0 .. 32·N + commitments]` rebuilt with
//!    one `calldatacopy` in scratch memory above everything the verifier uses (the commitments
//!    follow the instances in calldata, and they are the very bytes the single-instance code
//!    copied into memory before validating them);
//! 3. the instance evaluation `l_0(z)·inst_0` becomes a loop over the `N` instance words in calldata
//!    that accumulates `Σ inst_i·ωⁱ/(z − ωⁱ)` as one fraction `num/den` (per word: `num ← num·d +
//!    inst·ωⁱ·den`, `den ← den·d` with `d = z − ωⁱ`), inverts `den` with one modexp and multiplies
//!    by the single-instance code's own `(zⁿ − 1)/n`. This is Montgomery's one-inversion trick
//!    without a table of prefix products, so the loop needs no memory at all.
//!
//! The loop reads the instance words raw: [`crate::harden`] runs afterwards and checks them `< r`
//! (in the same loop over `[0, 32·N)` it emits for every run of scalars) before anything else.
//!
//! Nothing here trusts the shape of snark-verifier's output; generation fails with
//! [`Error::UnexpectedVerifier`] unless all of this holds:
//!
//! * the single-instance code reads calldata only through `mod(calldataload(c), f_q)` and the
//!   point reads `let x/y := calldataload(c)`, instance 0 first at offset 0, and never touches
//!   memory (literal addresses of `mload`, `mstore`, `mstore8`, `keccak256`, `staticcall`) at or
//!   above the scratch area;
//! * before its first `keccak256`, which hashes from `0x80`, it writes exactly the vk digest at
//!   `0x80`, instance 0 at `0xa0`, and point coordinates that tile the rest of the hashed range
//!   with memory = calldata + `0xa0`; later hashes start after that range, and no precompile input
//!   covers instance 0's word;
//! * instance 0's word is loaded once, as `l(z)·inst_0` where `l(z)` is traced back through the
//!   code: `l = A·B`, `A = numer·1`, `B = z − 1` (inverted in place by the batch inversion),
//!   `numer = (z^(2^k) − 1)·n⁻¹` by exactly `k` squarings of a squeezed challenge `z`, with this
//!   key's `k` and `n⁻¹` — so `l = l_0(z)` and `numer`, `z` are what the loop needs;
//! * snark-verifier's own code for `N` instances — generated alongside as a reference — hashes the
//!   same vk digest, has its first squeeze `32·(N − 1)` bytes longer, reads the instance words
//!   `0, 32, …` into `0xa0, 0xc0, …`, reads every proof word at the shifted offset of the
//!   single-instance code in the same order, and evaluates the instances as one sum of
//!   `l_·(z)·inst_i` over `i = 0 … N−1` in order (that it is `l_i` for `inst_i` follows from the
//!   protocol check in [`crate::solidity_source`]: one instance column, queried at rotation 0).

use std::collections::BTreeMap;

use halo2_base::halo2_proofs::halo2curves::{bn256::Fr, ff::Field};
use snark_verifier::loader::evm::fe_to_u256;

use crate::error::{Error, Result};

/// First memory word snark-verifier's transcript uses (the vk digest); instance 0 follows it.
const TRANSCRIPT_START: usize = 0x80;
const INSTANCE0: usize = 0xa0;

/// What the caller knows about the key, from snark-verifier's compiled protocol.
#[derive(Clone, Debug)]
pub struct Premises {
    /// Number of public instance words `N` (≥ 1).
    pub num_instances: usize,
    /// `log2(n)` of the evaluation domain.
    pub k: u32,
    /// `n⁻¹ mod r`.
    pub n_inv: Fr,
    /// The domain generator `ω`.
    pub omega: Fr,
    /// First memory byte the single-instance verifier never uses (snark-verifier's allocator end).
    pub memory_end: usize,
}

/// The header of the instance loop; [`crate::harden`] accounts for the instance words by it.
pub fn loop_header(num_instances: usize) -> String {
    format!("for {{ let zi_o := 0x0 }} lt(zi_o, {:#x}) {{ zi_o := add(zi_o, 0x20) }} {{", 32 * num_instances)
}

fn err(reason: impl Into<String>) -> Error {
    Error::UnexpectedVerifier(format!("instance loop: {}", reason.into()))
}

/// Decimal rendering of a field element, as snark-verifier prints constants.
fn dec(f: Fr) -> String {
    fe_to_u256(f).to_string()
}

/// Parses a whole literal: `0x…` hex or decimal.
fn literal(s: &str) -> Option<usize> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) if !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()) => usize::from_str_radix(h, 16).ok(),
        Some(_) => None,
        None if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// Splits the comma-separated arguments of the call whose `(` is at `open` in `s`; returns them
/// and the index just past the closing `)`.
fn call_args(s: &str, open: usize) -> Option<(Vec<&str>, usize)> {
    if !s.get(open..)?.starts_with('(') {
        return None;
    }
    let mut depth = 0usize;
    let mut args = Vec::new();
    let mut start = open + 1;
    for (i, c) in s[open..].char_indices().map(|(i, c)| (i + open, c)) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    args.push(s[start..i].trim());
                    return Some((args, i + 1));
                }
            }
            ',' if depth == 1 => {
                args.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// Every call `name(…)` in `s` (not as a suffix of a longer identifier), with its arguments.
fn calls<'a>(s: &'a str, name: &str) -> Result<Vec<Vec<&'a str>>> {
    let mut out = Vec::new();
    let pat = format!("{name}(");
    let mut from = 0;
    while let Some(at) = s[from..].find(&pat).map(|a| a + from) {
        let preceded = s[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        from = at + pat.len();
        if preceded {
            continue;
        }
        let (args, _) = call_args(s, at + name.len()).ok_or_else(|| err(format!("unbalanced `{name}(`")))?;
        out.push(args);
    }
    Ok(out)
}

/// `mstore(A, V)` as a whole (trimmed) line: `(A, V)`.
fn mstore_line(line: &str) -> Option<(usize, &str)> {
    let line = line.trim();
    if !line.starts_with("mstore(") {
        return None;
    }
    let (args, end) = call_args(line, "mstore".len())?;
    (end == line.len() && args.len() == 2).then_some(())?;
    Some((literal(args[0])?, args[1]))
}

/// The byte ranges of memory the code touches through literal addresses; fails on a non-literal one
/// and on any copy into memory.
fn memory_ranges(code: &str) -> Result<Vec<(usize, usize)>> {
    memory_ranges_with(code, false)
}

/// [`memory_ranges`], with `calldatacopy` (literal destination and length) allowed if `calldata_copies`.
pub(crate) fn memory_ranges_with(code: &str, calldata_copies: bool) -> Result<Vec<(usize, usize)>> {
    let lit = |a: &str, what: &str| literal(a).ok_or_else(|| err(format!("{what} with a non-literal operand `{a}`")));
    let mut out = Vec::new();
    for args in calls(code, "mload")? {
        let a = lit(args[0], "mload")?;
        out.push((a, a + 32));
    }
    for args in calls(code, "mstore")? {
        let a = lit(args[0], "mstore")?;
        out.push((a, a + 32));
    }
    for args in calls(code, "mstore8")? {
        let a = lit(args[0], "mstore8")?;
        out.push((a, a + 1));
    }
    for args in calls(code, "keccak256")? {
        let (a, l) = (lit(args[0], "keccak256")?, lit(args[1], "keccak256")?);
        out.push((a, a + l));
    }
    for args in calls(code, "staticcall")? {
        if args.len() != 6 {
            return Err(err("a staticcall without 6 arguments"));
        }
        let v = args[2..].iter().map(|a| lit(a, "staticcall")).collect::<Result<Vec<_>>>()?;
        out.push((v[0], v[0] + v[1]));
        out.push((v[2], v[2] + v[3]));
    }
    if calldata_copies {
        for args in calls(code, "calldatacopy")? {
            if args.len() != 3 {
                return Err(err("a calldatacopy without 3 arguments"));
            }
            let (a, l) = (lit(args[0], "calldatacopy")?, lit(args[2], "calldatacopy")?);
            out.push((a, a + l));
        }
    }
    let copies: &[&str] = if calldata_copies { &[] } else { &["calldatacopy"] };
    for op in ["mcopy", "codecopy", "returndatacopy", "extcodecopy", "msize"].iter().chain(copies) {
        if !calls(code, op)?.is_empty() {
            return Err(err(format!("unexpected `{op}`")));
        }
    }
    Ok(out)
}

/// A calldata read of the generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    /// `mod(calldataload(c), f_q)`.
    Scalar(usize),
    /// `let x := calldataload(c)` or `let y := calldataload(c)`.
    Coordinate(usize),
}

impl Read {
    fn offset(self) -> usize {
        match self {
            Read::Scalar(o) | Read::Coordinate(o) => o,
        }
    }
}

/// Every `calldataload` of the code, in order, each in one of the two known forms.
fn calldata_reads(code: &str) -> Result<Vec<Read>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("calldataload(").map(|a| a + from) {
        let (args, end) = call_args(code, at + "calldataload".len()).ok_or_else(|| err("unbalanced calldataload"))?;
        let offset =
            literal(args[0]).ok_or_else(|| err(format!("calldataload({}) of a non-literal offset", args[0])))?;
        let before = &code[..at];
        let read = if before.ends_with("mod(") && code[end..].starts_with(", f_q)") {
            Read::Scalar(offset)
        } else if before.ends_with("let x := ") || before.ends_with("let y := ") {
            Read::Coordinate(offset)
        } else {
            return Err(err(format!("calldataload({offset:#x}) in an unknown form")));
        };
        out.push(read);
        from = end;
    }
    if code.contains("calldatasize") || code.contains("calldatacopy") {
        return Err(err("the generated code already uses calldatasize or calldatacopy"));
    }
    Ok(out)
}

/// Lines of `code` that write the word at `addr` (`mstore(addr, …)` as a whole line, the address
/// in hex or decimal), with their line index and value.
fn writes<'a>(lines: &[&'a str], addr: usize) -> Vec<(usize, &'a str)> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| mstore_line(l).filter(|(a, _)| *a == addr).map(|(_, v)| (i, v)))
        .collect()
}

/// The value of the word at `addr` when straight-line code reaches line `at`: its last write
/// before `at`, as (line, value).
fn value_at<'a>(lines: &[&'a str], addr: usize, at: usize) -> Result<(usize, &'a str)> {
    writes(lines, addr)
        .into_iter()
        .take_while(|(i, _)| *i < at)
        .last()
        .ok_or_else(|| err(format!("{addr:#x} is read before it is written")))
}

/// The value of `addr` at line `at`, which must be `prefix mload(P) suffix`: (line, P).
fn def_at(lines: &[&str], addr: usize, at: usize, prefix: &str, suffix: &str) -> Result<(usize, usize)> {
    let (line, value) = value_at(lines, addr, at)?;
    def_of(value, prefix, suffix)
        .map(|p| (line, p))
        .ok_or_else(|| err(format!("{addr:#x} := `{value}`, expected `{prefix}mload(…){suffix}`")))
}

/// The code is straight-line: no loops, no switch, one function (`validate_ec_point`, which writes
/// no memory), and every `if` only reverts. So the value of a word at a line is its last write.
fn check_straight_line(code: &str) -> Result<()> {
    for word in ["for {", "switch ", "leave", "break", "continue"] {
        if code.contains(word) {
            return Err(err(format!("the generated code is not straight-line (`{}`)", word.trim())));
        }
    }
    if code.matches("function ").count() != 1 || !code.contains("function validate_ec_point(x, y) -> valid {") {
        return Err(err("the generated code defines other functions than validate_ec_point"));
    }
    let function = code.split("function validate_ec_point").nth(1).unwrap_or_default();
    let body = function.split_once('{').and_then(|(_, b)| block_body(b)).unwrap_or_default();
    if body.contains("mstore") {
        return Err(err("validate_ec_point writes memory"));
    }
    let mut rest = code;
    while let Some(at) = rest.find("if ") {
        let after = &rest[at..];
        let body = after.split_once('{').and_then(|(_, b)| block_body(b));
        if body.map(str::trim) != Some("revert(0, 0)") {
            return Err(err(format!(
                "an `if` that does more than revert: `{}`",
                after.lines().next().unwrap_or_default()
            )));
        }
        rest = &after[3..];
    }
    Ok(())
}

/// The text of a `{ … }` block whose `{` was just consumed, up to its matching `}`.
fn block_body(s: &str) -> Option<&str> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&s[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// `prefix mload(P) suffix` → P.
fn def_of(value: &str, prefix: &str, suffix: &str) -> Option<usize> {
    let inner = value.strip_prefix(prefix)?.strip_suffix(suffix)?;
    literal(inner.strip_prefix("mload(")?.strip_suffix(')')?)
}

/// `keccak256(A, L)` as the value of a whole `mstore(H, …)` line: (line, H, A, L).
fn keccak_lines(lines: &[&str]) -> Vec<(usize, usize, usize, usize)> {
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (h, v) = mstore_line(l)?;
            v.starts_with("keccak256(").then_some(())?;
            let (args, end) = call_args(v, "keccak256".len())?;
            (end == v.len() && args.len() == 2).then_some(())?;
            Some((i, h, literal(args[0])?, literal(args[1])?))
        })
        .collect()
}

/// The first squeeze `mstore(H, keccak256(0x80, L))`: (line, H, L); later ones start past it.
fn first_squeeze(lines: &[&str], code: &str, which: &str) -> Result<(usize, usize, usize)> {
    let hashes = keccak_lines(lines);
    if hashes.len() != calls(code, "keccak256")?.len() {
        return Err(err(format!("{which}: a keccak256 that is not a whole `mstore(h, keccak256(a, l))` line")));
    }
    let Some(&(line, h, start, len)) = hashes.first() else {
        return Err(err(format!("{which}: no transcript squeeze")));
    };
    if start != TRANSCRIPT_START {
        return Err(err(format!("{which}: the first squeeze hashes from {start:#x}, not {TRANSCRIPT_START:#x}")));
    }
    if let Some((_, _, a, _)) = hashes[1..].iter().find(|(_, _, a, _)| *a < start + len) {
        return Err(err(format!("{which}: a later squeeze hashes from {a:#x}, inside the first one's preimage")));
    }
    Ok((line, h, len))
}

/// The instance evaluation block `{ let result := mulmod(mload(L), mload(0xa0), f_q) (result :=
/// addmod(mulmod(mload(L'), mload(0xc0), f_q), result, f_q))* mstore(R, result) }`: (first line,
/// last line, L of instance 0, number of terms, R).
fn instance_sum(lines: &[&str], which: &str) -> Result<(usize, usize, usize, usize, usize)> {
    let head = format!(", mload({INSTANCE0:#x}), f_q)");
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim().starts_with("let result := mulmod(mload(") && l.trim().ends_with(&head))
        .map(|(i, _)| i)
        .collect();
    let [start] = starts[..] else {
        return Err(err(format!("{which}: {} instance evaluations, expected one", starts.len())));
    };
    let l0 = lines[start]
        .trim()
        .strip_prefix("let result := mulmod(mload(")
        .and_then(|r| r.strip_suffix(&format!("){head}")))
        .and_then(literal)
        .ok_or_else(|| err(format!("{which}: unreadable `{}`", lines[start].trim())))?;
    let mut i = start + 1;
    let mut terms = 1;
    loop {
        let l = lines.get(i).map(|l| l.trim()).unwrap_or_default();
        let term = format!(", mload({:#x}), f_q), result, f_q)", INSTANCE0 + 32 * terms);
        match l.strip_prefix("result := addmod(mulmod(mload(").and_then(|r| r.strip_suffix(&term)) {
            Some(lag) if lag.strip_suffix(')').and_then(literal).is_some() => {
                terms += 1;
                i += 1;
            }
            _ => break,
        }
    }
    let out = lines
        .get(i)
        .and_then(|l| l.trim().strip_prefix("mstore(")?.strip_suffix(", result)").and_then(literal))
        .ok_or_else(|| err(format!("{which}: the instance sum does not end in `mstore(r, result)`")))?;
    if lines[start - 1].trim() != "{" || lines.get(i + 1).map(|l| l.trim()) != Some("}") {
        return Err(err(format!("{which}: the instance sum is not a block of its own")));
    }
    Ok((start - 1, i + 1, l0, terms, out))
}

/// Rewrites `single` (snark-verifier's verifier for this key with one instance) into a verifier of
/// `p.num_instances` instances whose instance evaluation is a loop; `reference` is snark-verifier's
/// code for `p.num_instances` instances, against which the transcript is checked. See the module
/// docs for what is checked.
pub fn rewrite(single: &str, reference: &str, p: &Premises) -> Result<String> {
    let n = p.num_instances;
    if n == 0 {
        return Err(err("no instances"));
    }
    let shift = 32 * (n - 1);
    let lines: Vec<&str> = single.lines().collect();
    let ref_lines: Vec<&str> = reference.lines().collect();
    let r_minus_1 = dec(-Fr::ONE);

    // Memory: the scratch area starts where snark-verifier's allocator ended, past every access.
    let scratch = p.memory_end.next_multiple_of(32);
    if let Some((a, b)) = memory_ranges(single)?.into_iter().find(|&(_, b)| b > scratch) {
        return Err(err(format!("memory [{a:#x}, {b:#x}) used, past the allocator's end {scratch:#x}")));
    }

    // Calldata: instance 0 first, then the proof; the reference reads the same proof words shifted.
    let reads = calldata_reads(single)?;
    if reads.first() != Some(&Read::Scalar(0)) || reads[1..].iter().any(|r| r.offset() < 32) {
        return Err(err("the single-instance code does not read instance 0 first and only once"));
    }
    let expected: Vec<Read> = (0..n)
        .map(|i| Read::Scalar(32 * i))
        .chain(reads[1..].iter().map(|r| match *r {
            Read::Scalar(o) => Read::Scalar(o + shift),
            Read::Coordinate(o) => Read::Coordinate(o + shift),
        }))
        .collect();
    if calldata_reads(reference)? != expected {
        return Err(err(format!("snark-verifier's {n}-instance code reads calldata other than the shifted layout")));
    }
    for i in 0..n {
        let line = format!("mstore({:#x}, mod(calldataload({:#x}), f_q))", INSTANCE0 + 32 * i, 32 * i);
        if ref_lines.iter().filter(|l| l.trim() == line).count() != 1 {
            return Err(err(format!("the {n}-instance code does not load instance {i} with `{line}`")));
        }
    }

    // The first squeeze: [digest][instance 0][points] in place, and the same digest in the reference.
    let (squeeze, hash_ptr, len) = first_squeeze(&lines, single, "single-instance code")?;
    let (_, _, ref_len) = first_squeeze(&ref_lines, reference, "reference code")?;
    if ref_len != len + shift {
        return Err(err(format!("the first squeeze hashes {len} bytes with one instance, {ref_len} with {n}")));
    }
    let digest = writes(&lines, TRANSCRIPT_START);
    let [(_, digest_value)] = digest[..] else {
        return Err(err("the vk digest is not written once at 0x80"));
    };
    if writes(&ref_lines, TRANSCRIPT_START).iter().map(|(_, v)| *v).collect::<Vec<_>>() != [digest_value] {
        return Err(err("the reference code hashes another vk digest"));
    }
    let mut preimage: BTreeMap<usize, Option<usize>> = BTreeMap::new(); // memory word → calldata word
    let mut pending: Option<(char, usize)> = None;
    for line in &lines[..squeeze] {
        let t = line.trim();
        if let Some(rest) =
            t.strip_prefix("let x := calldataload(").or_else(|| t.strip_prefix("let y := calldataload("))
        {
            let c = rest.strip_suffix(')').and_then(literal).ok_or_else(|| err(format!("unreadable `{t}`")))?;
            pending = Some((t.as_bytes()[4] as char, c));
            continue;
        }
        if !t.contains("mstore") {
            continue;
        }
        let (addr, value) =
            mstore_line(t).ok_or_else(|| err(format!("unexpected write `{t}` before the first squeeze")))?;
        let source = match (value, pending.take()) {
            (v, Some((axis, c))) if v.len() == 1 && v.starts_with(axis) => Some(c),
            ("mod(calldataload(0x0), f_q)", None) if addr == INSTANCE0 => Some(0),
            (v, None) if addr == TRANSCRIPT_START && v == digest_value => None,
            _ => return Err(err(format!("unexpected write `{t}` before the first squeeze"))),
        };
        if preimage.insert(addr, source).is_some() {
            return Err(err(format!("{addr:#x} written twice before the first squeeze")));
        }
    }
    let tiled = preimage.len() * 32 == len
        && preimage
            .iter()
            .enumerate()
            .all(|(i, (&m, &c))| m == TRANSCRIPT_START + 32 * i && (i == 0 || c == Some(m - INSTANCE0)));
    if !tiled {
        return Err(err("the first squeeze's preimage is not [digest][calldata words 0, 32, …] in order"));
    }
    // Nothing else reads instance 0's memory word but the instance evaluation.
    let uses = calls(single, "mload")?.iter().filter(|a| literal(a[0]) == Some(INSTANCE0)).count();
    let covered = calls(single, "staticcall")?.iter().any(|a| {
        let (i, l) = (literal(a[2]).unwrap_or(0), literal(a[3]).unwrap_or(0));
        i < INSTANCE0 + 32 && INSTANCE0 < i + l
    });
    if uses != 1 || covered {
        return Err(err(format!("instance 0's memory word is read {uses} times or by a precompile")));
    }

    // The instance evaluation l(z)·inst_0, l traced back to l_0(z) = numer/(z − 1).
    let (block_start, block_end, l0, terms, out) = instance_sum(&lines, "single-instance code")?;
    if terms != 1 {
        return Err(err("the single-instance code sums more than one instance"));
    }
    let (_, _, _, ref_terms, _) = instance_sum(&ref_lines, "reference code")?;
    if ref_terms != n {
        return Err(err(format!("the {n}-instance code sums {ref_terms} instance terms")));
    }
    check_straight_line(single)?;
    let (l0_line, l0_value) = value_at(&lines, l0, block_start)?;
    let (a0, b0) = l0_value
        .strip_prefix("mulmod(mload(")
        .and_then(|r| r.strip_suffix("), f_q)"))
        .and_then(|r| r.split_once("), mload("))
        .and_then(|(a, b)| Some((literal(a)?, literal(b)?)))
        .ok_or_else(|| err(format!("l_0 := `{l0_value}`, expected a product of two words")))?;
    let (a0_line, numer) = def_at(&lines, a0, l0_line, "mulmod(", ", 1, f_q)")?;
    let (inv_line, inv_value) = value_at(&lines, b0, l0_line)?;
    let inverted = inv_value == "inv"
        || inv_value
            .strip_prefix("mulmod(mload(")
            .and_then(|r| r.strip_suffix("), inv, f_q)"))
            .and_then(literal)
            .is_some();
    if !inverted {
        return Err(err(format!("z − 1 at {b0:#x} is not inverted in place before l_0 is formed (`{inv_value}`)")));
    }
    let (_, z) = def_at(&lines, b0, inv_line, "addmod(", &format!(", {r_minus_1}, f_q)"))?;
    let (numer_line, zn1) = def_at(&lines, numer, a0_line, "mulmod(", &format!(", {}, f_q)", dec(p.n_inv)))?;
    let (mut at, mut sq) = def_at(&lines, zn1, numer_line, "addmod(", &format!(", {r_minus_1}, f_q)"))?;
    for _ in 0..p.k {
        let (line, v) = value_at(&lines, sq, at)?;
        sq = v
            .strip_prefix("mulmod(mload(")
            .and_then(|r| r.strip_suffix("), f_q)"))
            .and_then(|r| r.split_once("), mload("))
            .filter(|(a, b)| a == b)
            .and_then(|(a, _)| literal(a))
            .ok_or_else(|| err(format!("{sq:#x} := `{v}`, expected a squaring (zⁿ by {} squarings)", p.k)))?;
        at = line;
    }
    let (z_line, z_value) = value_at(&lines, z, at)?;
    if sq != z || z_value != "mod(hash, f_q)" || value_at(&lines, z, block_start)?.0 != z_line {
        return Err(err(format!("zⁿ is not {} squarings of the squeezed challenge z at {z:#x}", p.k)));
    }
    if value_at(&lines, numer, block_start)?.0 != numer_line || squeeze > block_start {
        return Err(err("(zⁿ − 1)/n is overwritten before the instance evaluation"));
    }

    // The rewrite.
    let omega = dec(p.omega);
    let r_minus_2 = dec(-Fr::from(2u64));
    let hash = [
        format!(
            "// zkinfer: the first squeeze hashes [vk digest][{n} instances][first commitments] rebuilt from calldata."
        ),
        format!("mstore({scratch:#x}, mload({TRANSCRIPT_START:#x}))"),
        format!("calldatacopy({:#x}, 0x0, {:#x})", scratch + 32, len - 32 + shift),
        format!("mstore({hash_ptr:#x}, keccak256({scratch:#x}, {}))", len + shift),
    ];
    let eval = [
        "{".to_string(),
        format!("    // zkinfer: Σ_{{i<{n}}} l_i(z)·inst_i = (zⁿ − 1)/n · Σ inst_i·ωⁱ/(z − ωⁱ), summed as one fraction num/den."),
        format!("    let zi_z := mload({z:#x})"),
        "    let zi_w := 1".into(),
        "    let zi_num := 0".into(),
        "    let zi_den := 1".into(),
        format!("    {}", loop_header(n)),
        "        let zi_d := addmod(zi_z, sub(f_q, zi_w), f_q)".into(),
        "        zi_num := addmod(mulmod(zi_num, zi_d, f_q), mulmod(mulmod(calldataload(zi_o), zi_w, f_q), zi_den, f_q), f_q)".into(),
        "        zi_den := mulmod(zi_den, zi_d, f_q)".into(),
        format!("        zi_w := mulmod(zi_w, {omega}, f_q)"),
        "    }".into(),
        format!("    mstore({scratch:#x}, 0x20)"),
        format!("    mstore({:#x}, 0x20)", scratch + 0x20),
        format!("    mstore({:#x}, 0x20)", scratch + 0x40),
        format!("    mstore({:#x}, zi_den)", scratch + 0x60),
        format!("    mstore({:#x}, {r_minus_2})", scratch + 0x80),
        format!("    mstore({:#x}, f_q)", scratch + 0xa0),
        format!("    if iszero(staticcall(gas(), 0x5, {scratch:#x}, 0xc0, {scratch:#x}, 0x20)) {{ revert(0, 0) }}"),
        format!("    mstore({out:#x}, mulmod(mload({numer:#x}), mulmod(zi_num, mload({scratch:#x}), f_q), f_q))"),
        "}".into(),
    ];
    let instance0 = format!("mstore({INSTANCE0:#x}, mod(calldataload(0x0), f_q))");
    let mut out_lines: Vec<String> = Vec::with_capacity(lines.len() + 32);
    let mut i = 0;
    while i < lines.len() {
        if i == squeeze {
            out_lines.extend(hash.iter().cloned());
        } else if i == block_start {
            out_lines.extend(eval.iter().cloned());
            i = block_end;
        } else if lines[i].trim() != instance0 {
            out_lines.push(shift_reads(lines[i], shift));
        }
        i += 1;
    }
    let mut code = out_lines.join("\n");
    code.push('\n');
    Ok(code)
}

/// Moves the literal offsets ≥ 32 of the three calldata read forms by `shift`.
fn shift_reads(line: &str, shift: usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("calldataload(") {
        let open = at + "calldataload(".len();
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let close = after.find(')').unwrap_or(after.len());
        match literal(&after[..close]) {
            Some(o) if o >= 32 => out.push_str(&format!("{:#x}", o + shift)),
            _ => out.push_str(&after[..close]),
        }
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{snark_verifier_code, tests::tiny_key};

    fn premises(n: usize) -> (String, String, Premises) {
        let (params, vk) = tiny_key();
        let (single, _, memory_end) = snark_verifier_code(&params, &vk, 1);
        let (reference, protocol, _) = snark_verifier_code(&params, &vk, n);
        let p = Premises {
            num_instances: n,
            k: protocol.domain.k as u32,
            n_inv: protocol.domain.n_inv,
            omega: protocol.domain.gen,
            memory_end,
        };
        (single, reference, p)
    }

    fn refused(single: &str, reference: &str, p: &Premises) -> bool {
        matches!(rewrite(single, reference, p), Err(Error::UnexpectedVerifier(_)))
    }

    #[test]
    fn rewrites_the_single_instance_code_into_a_loop() {
        let (single, reference, p) = premises(5);
        let code = rewrite(&single, &reference, &p).unwrap();
        assert_eq!(code.matches(&loop_header(5)).count(), 1);
        assert!(!code.contains("mload(0xa0)"));
        assert!(!code.contains("calldataload(0x0)"));
        assert_eq!(code.matches("calldatacopy(").count(), 1);
        // The proof reads moved by 4 words: snark-verifier's first point read was at 0x20.
        assert!(single.contains("let x := calldataload(0x20)") && code.contains("let x := calldataload(0xa0)"));
    }

    #[test]
    fn refuses_what_it_cannot_account_for() {
        let (single, reference, p) = premises(5);
        // Premises that do not match the key.
        assert!(refused(&single, &reference, &Premises { k: p.k + 1, ..p.clone() }));
        assert!(refused(&single, &reference, &Premises { n_inv: p.n_inv + Fr::ONE, ..p.clone() }));
        assert!(refused(&single, &reference, &Premises { memory_end: p.memory_end - 0x100, ..p.clone() }));
        assert!(refused(&single, &reference, &Premises { num_instances: 0, ..p.clone() }));
        // A reference for another instance count, or with another vk digest.
        let (_, six, _) = premises(6);
        assert!(refused(&single, &six, &p));
        let digest = single.lines().find(|l| l.trim().starts_with("mstore(0x80, ")).unwrap().trim().to_string();
        assert!(refused(&single, &reference.replace(&digest, "mstore(0x80, 1234)"), &p));
        // Instance 0's word used anywhere else, a shorter first squeeze, or an extra calldata read.
        let extra_use = single.replacen("mstore(0x80, ", "mstore(0x40, mload(0xa0))\nmstore(0x80, ", 1);
        assert!(refused(&extra_use, &reference, &p));
        let (_, _, len) = first_squeeze(&single.lines().collect::<Vec<_>>(), &single, "test").unwrap();
        let short = single.replacen(&format!("keccak256(0x80, {len})"), &format!("keccak256(0x80, {})", len - 32), 1);
        assert!(refused(&short, &reference, &p));
        let raw = single.replacen("mstore(0x80, ", "mstore(0x60, calldataload(0x40))\nmstore(0x80, ", 1);
        assert!(refused(&raw, &reference, &p));
        // A loop in the code: the value of a word is no longer its last write.
        let looped = single.replacen("mstore(0x80, ", "for { } 0 { } { }\nmstore(0x80, ", 1);
        assert!(refused(&looped, &reference, &p));
    }
}
