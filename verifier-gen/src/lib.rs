//! `verifier-gen`: a model's halo2-KZG verifying key → a Solidity verifier, its compiled
//! bytecode, and the on-chain model id.
//!
//! The verifier body is snark-verifier's EVM code generation for a SHPLONK/KZG PLONK verifier; we
//! name the contract, pin the pragma to the project's compiler, and compile through
//! `scripts/solc --standard-json` with the exact settings of `contracts/solc-settings.json` (the
//! ones forge uses), so the bytecode — and therefore `EXTCODEHASH` and the model id — is the same
//! whether forge or this crate compiled it.
//!
//! Calling convention of the generated contract: calldata is exactly the public instances as 32-byte
//! big-endian words followed by the proof bytes; it returns empty data if the proof verifies and
//! reverts otherwise, and reverts on any other length and on non-canonical scalars or coordinates.
//! Called with exactly the selector of `encodingHash()` it returns `keccak256(abi.encode(encoding))`
//! (see [`harden`]). A verifier whose key comes from an SRS of no trusted ceremony (the insecure dev
//! SRS) only runs on the dev chain ([`harden::DEV_CHAIN_ID`]); there is no way to generate one
//! without that guard.

pub mod error;
pub mod harden;
pub mod instances;
pub mod split;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    rc::Rc,
};

pub use error::{Error, Result};
use halo2_base::halo2_proofs::{
    halo2curves::bn256::{Bn256, Fq, Fr, G1Affine},
    plonk::VerifyingKey,
    poly::{commitment::ParamsProver, kzg::commitment::ParamsKZG},
};
pub use harden::{CalldataLayout, DEV_CHAIN_ID};
use models::{card::ModelCard, graph::QuantModel, srs::Ceremony};
use serde::{Deserialize, Serialize};
use sha3::{Digest, Keccak256};
use snark_verifier::{
    loader::evm::EvmLoader,
    pcs::kzg::{Bdfg21, KzgAs},
    system::halo2::{compile, transcript::evm::EvmTranscript, Config},
    verifier::{
        plonk::{PlonkProtocol, PlonkVerifier},
        SnarkVerifier,
    },
};

/// EIP-170 runtime code size limit.
pub const EIP170_LIMIT: usize = 24_576;

/// The compiler settings shared with forge (`foundry.toml`).
pub const SOLC_SETTINGS: &str = include_str!("../../contracts/solc-settings.json");

type Shplonk = KzgAs<Bn256, Bdfg21>;

/// Whether verifiers of keys made with `params` must be guarded to the dev chain: unless the SRS's
/// `[τ]G2` is a trusted ceremony's (and it starts from the standard generators), someone may know τ.
pub fn needs_dev_chain_guard(params: &ParamsKZG<Bn256>) -> bool {
    let standard = params.get_g()[0] == G1Affine::generator()
        && params.g2() == halo2_base::halo2_proofs::halo2curves::bn256::G2Affine::generator();
    !standard || Ceremony::of_tau_g2(&params.s_g2()).is_none()
}

/// A generated (not yet compiled) verifier.
#[derive(Clone, Debug)]
pub struct Source {
    /// Solidity source.
    pub solidity: String,
    /// Where it reads what.
    pub layout: CalldataLayout,
    /// `keccak256(abi.encode(encoding))`, answered by `encodingHash()`.
    pub encoding_hash: [u8; 32],
    /// The only chain id it runs on, if guarded (dev SRS).
    pub dev_chain_id: Option<u64>,
    /// The first memory byte the verifier keeps no value in (bytes; above it is scratch space).
    pub memory_end: usize,
}

/// snark-verifier's verifier code for `vk` with `num_instances` instances, its compiled protocol,
/// and the first memory byte the code never uses.
fn snark_verifier_code(
    params: &ParamsKZG<Bn256>,
    vk: &VerifyingKey<G1Affine>,
    num_instances: usize,
) -> (String, PlonkProtocol<G1Affine>, usize) {
    let protocol = compile(params, vk, Config::kzg().with_num_instance(vec![num_instances]));
    let deciding_key = (params.get_g()[0], params.g2(), params.s_g2()).into();
    let loader = EvmLoader::new::<Fq, Fr>();
    let loaded = protocol.loaded(&loader);
    let mut transcript = EvmTranscript::<_, Rc<EvmLoader>, _, _>::new(&loader);
    let instances = transcript.load_instances(vec![num_instances]);
    let proof = PlonkVerifier::<Shplonk>::read_proof(&deciding_key, &loaded, &instances, &mut transcript)
        .expect("reading a proof symbolically cannot fail");
    PlonkVerifier::<Shplonk>::verify(&deciding_key, &loaded, &instances, &proof)
        .expect("symbolic verification cannot fail");
    let code = loader.solidity_code();
    let memory_end = loader.allocate(0);
    (code, protocol, memory_end)
}

/// The premises of [`instances::rewrite`] that come from the protocol rather than the code: the
/// instances are one column of `num_instances` rows, not committed, evaluated by the verifier and
/// queried only at rotation 0 (so instance `i` is weighted by `l_i(z)`), hashed after a vk digest,
/// with no accumulator among them and a constant domain.
fn check_protocol(protocol: &PlonkProtocol<G1Affine>, num_instances: usize) -> Result<()> {
    let offset = protocol.preprocessed.len();
    let columns = offset..offset + protocol.num_instance.len();
    let queries: Vec<(usize, i32)> = protocol
        .quotient
        .numerator
        .used_query()
        .into_iter()
        .filter(|q| columns.contains(&q.poly))
        .map(|q| (q.poly, q.rotation.0))
        .collect();
    let ok = protocol.num_instance == [num_instances]
        && protocol.instance_committing_key.is_none()
        && protocol.accumulator_indices.iter().all(Vec::is_empty)
        && protocol.transcript_initial_state.is_some()
        && protocol.domain_as_witness.is_none()
        && queries == [(offset, 0)];
    if !ok {
        return Err(Error::UnexpectedVerifier(format!(
            "instance loop: the protocol's instances are not one column of {num_instances} rows queried at rotation 0 \
             (columns {:?}, queries {queries:?})",
            protocol.num_instance
        )));
    }
    Ok(())
}

/// Generates the hardened Solidity source of a verifier for `vk` with `num_instances` public
/// instances and the on-chain `encoding`: snark-verifier's code for one instance, rewritten so the
/// instances are evaluated in a loop ([`instances`]), then hardened ([`harden`]).
pub fn solidity_source(
    params: &ParamsKZG<Bn256>,
    vk: &VerifyingKey<G1Affine>,
    num_instances: usize,
    contract_name: &str,
    header: &str,
    encoding: &Encoding,
) -> Result<Source> {
    let (single, single_protocol, memory_end) = snark_verifier_code(params, vk, 1);
    let (reference, protocol, _) = snark_verifier_code(params, vk, num_instances);
    check_protocol(&single_protocol, 1)?;
    check_protocol(&protocol, num_instances)?;
    let premises = instances::Premises {
        num_instances,
        k: protocol.domain.k as u32,
        n_inv: protocol.domain.n_inv,
        omega: protocol.domain.gen,
        memory_end,
    };
    let looped = instances::rewrite(&single, &reference, &premises)?;
    let dev_chain_guard = needs_dev_chain_guard(params);
    let encoding_hash = encoding_hash(encoding);
    let commitments = harden::Commitments { encoding_hash, dev_chain_guard };
    let (body, layout) = harden::harden(&looped, num_instances, &commitments)?;
    let comment: String = header.lines().map(|l| format!("// {l}\n")).collect();
    let solidity = body
        .trim_start()
        .replacen(
            "// SPDX-License-Identifier: MIT",
            &format!("// SPDX-License-Identifier: MIT\n{comment}// Generated by zkinfer verifier-gen. Do not edit."),
            1,
        )
        .replacen("pragma solidity 0.8.19;", "pragma solidity ^0.8.19;", 1)
        .replacen("contract Halo2Verifier {", &format!("contract {contract_name} {{"), 1);
    Ok(Source { solidity, layout, encoding_hash, dev_chain_id: dev_chain_guard.then_some(DEV_CHAIN_ID), memory_end })
}

/// Compiled verifier.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Compiled {
    /// Contract name.
    pub contract: String,
    /// Creation bytecode.
    #[serde(with = "hex_bytes")]
    pub bytecode: Vec<u8>,
    /// Runtime bytecode.
    #[serde(with = "hex_bytes")]
    pub deployed_bytecode: Vec<u8>,
    /// `keccak256(deployed_bytecode)`: the `EXTCODEHASH` once deployed.
    pub codehash: String,
    /// Compiler version string.
    pub compiler: String,
    /// Where the verifier reads instances, scalars and points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<CalldataLayout>,
    /// What `encodingHash()` returns (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_hash: Option<String>,
    /// The only chain id the verifier runs on (dev SRS keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_chain_id: Option<u64>,
    /// The later parts of a verifier cut into several contracts ([`split`]), second to last; each
    /// must be deployed through [`CREATE2_FACTORY`] with the zero salt before the verifier is
    /// called. Empty for a verifier that fits one contract.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
}

/// A later part of a verifier cut into several contracts (see [`split`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Contract name (`<Verifier>Part<j>`).
    pub contract: String,
    /// Its address: the CREATE2 address of [`CREATE2_FACTORY`], the zero salt and `bytecode`.
    pub address: String,
    /// `keccak256(deployed_bytecode)`, checked by the part before it on every call.
    pub codehash: String,
    /// Creation bytecode.
    #[serde(with = "hex_bytes")]
    pub bytecode: Vec<u8>,
    /// Runtime bytecode.
    #[serde(with = "hex_bytes")]
    pub deployed_bytecode: Vec<u8>,
}

impl Part {
    /// Checks that the part is what it records: its address is the CREATE2 address of its init code
    /// ([`create2_address`], zero salt) and its code hash that of its runtime code. Returns the
    /// address; says what differs otherwise.
    pub fn check(&self) -> std::result::Result<[u8; 20], String> {
        let address = create2_address(&[0; 32], &self.bytecode);
        if !format!("0x{}", hex::encode(address)).eq_ignore_ascii_case(&self.address) {
            return Err(format!(
                "the artifact's part {} records address {}, its init code gives 0x{}",
                self.contract,
                self.address,
                hex::encode(address)
            ));
        }
        let hash = format!("0x{}", hex::encode(keccak256(&self.deployed_bytecode)));
        if !hash.eq_ignore_ascii_case(&self.codehash) {
            return Err(format!(
                "the artifact's part {} has code hash {hash}, not the {} it records",
                self.contract, self.codehash
            ));
        }
        Ok(address)
    }
}

/// The standard CREATE2 deployer (the "deterministic deployment proxy", the same address on every
/// chain that has it; anvil and forge have it by default): calldata `salt ‖ init code`.
pub const CREATE2_FACTORY: [u8; 20] = [
    0x4e, 0x59, 0xb4, 0x48, 0x47, 0xb3, 0x79, 0x57, 0x85, 0x88, 0x92, 0x0c, 0xa7, 0x8f, 0xbf, 0x26, 0xc0, 0xb4, 0x95,
    0x6c,
];

/// The address `init_code` gets when deployed through [`CREATE2_FACTORY`] with `salt` (EIP-1014:
/// the last 20 bytes of `keccak256(0xff ‖ deployer ‖ salt ‖ keccak256(init_code))`).
pub fn create2_address(salt: &[u8; 32], init_code: &[u8]) -> [u8; 20] {
    let mut preimage = Vec::with_capacity(85);
    preimage.push(0xff);
    preimage.extend_from_slice(&CREATE2_FACTORY);
    preimage.extend_from_slice(salt);
    preimage.extend_from_slice(&keccak256(init_code));
    keccak256(&preimage)[12..].try_into().expect("20 bytes")
}

impl Compiled {
    /// Runtime bytes of the verifier and all its parts.
    pub fn total_runtime_bytes(&self) -> usize {
        self.deployed_bytecode.len() + self.parts.iter().map(|p| p.deployed_bytecode.len()).sum::<usize>()
    }

    /// The largest runtime bytecode among the verifier and its parts (what EIP-170 limits).
    pub fn largest_runtime_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.deployed_bytecode.len()).chain([self.deployed_bytecode.len()]).max().unwrap_or(0)
    }

    /// Reads a compiled verifier artifact (`<Contract>.json`).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { action: "reading", path: path.into(), source })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::BadArtifact { path: path.into(), reason: e.to_string() })
    }

    /// Reads the verifier artifact a model card names, and checks that it holds the later parts the
    /// card lists ([`Compiled::check_parts`]): an artifact without them would deploy a verifier that
    /// calls contracts never deployed, and reject every proof.
    pub fn for_card(card_path: &Path, card: &ModelCard) -> Result<Self> {
        let path = ModelCard::resolve(card_path, &card.files.verifier_artifact);
        let compiled = Self::load(&path)?;
        compiled.check_parts(&card.verifier.parts).map_err(|reason| Error::ArtifactMismatch {
            artifact: path,
            card: card_path.into(),
            reason,
        })?;
        Ok(compiled)
    }

    /// Checks that this artifact's later parts are `listed` (a model card's `verifier.parts`): the
    /// same contracts in the same order, at the same addresses with the same code hashes, and that
    /// each part's runtime code has its code hash. Says what differs.
    pub fn check_parts(&self, listed: &[models::card::VerifierPart]) -> std::result::Result<(), String> {
        let describe = |parts: Vec<(&str, &str)>| match parts.len() {
            0 => "no later part".to_string(),
            n => format!(
                "{n} later part{} ({})",
                if n == 1 { "" } else { "s" },
                parts.iter().map(|(c, a)| format!("{c} at {a}")).collect::<Vec<_>>().join(", ")
            ),
        };
        let ours: Vec<(&str, &str)> = self.parts.iter().map(|p| (p.contract.as_str(), p.address.as_str())).collect();
        let theirs: Vec<(&str, &str)> = listed.iter().map(|p| (p.contract.as_str(), p.address.as_str())).collect();
        let same = self.parts.len() == listed.len()
            && self.parts.iter().zip(listed).all(|(a, c)| {
                a.contract == c.contract
                    && a.address.eq_ignore_ascii_case(&c.address)
                    && a.codehash.eq_ignore_ascii_case(&c.codehash)
            });
        if !same {
            return Err(format!(
                "the card lists {} of its verifier, the artifact {}",
                describe(theirs),
                describe(ours)
            ));
        }
        for part in &self.parts {
            part.check()?;
        }
        Ok(())
    }

    /// The model id the coordinator derives for this verifier and `encoding` (hex).
    pub fn model_id(&self, encoding: &Encoding) -> String {
        let codehash = parse_b256(&self.codehash).expect("the code hash is written by compile_solidity");
        format!("0x{}", hex::encode(model_id(&codehash, encoding)))
    }
}

/// A generated and compiled verifier, written to disk.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The compiled contract.
    pub compiled: Compiled,
    /// Path of the Solidity source.
    pub sol_path: PathBuf,
    /// Path of the compiled artifact (JSON).
    pub artifact_path: PathBuf,
}

/// Compiles a generated verifier: one contract if it fits EIP-170's `limit`, else cut into the
/// fewest parts (from `⌈size / PART_TARGET_BYTES⌉` up to [`split::MAX_PARTS`]) that each fit.
/// Returns the compiled verifier (its later parts in [`Compiled::parts`]) and the source of each
/// part, first to last.
pub fn compile_verifier(solc: &Path, source: &Source, contract: &str, limit: usize) -> Result<(Compiled, Vec<String>)> {
    let whole = compile_unlimited(solc, &source.solidity, contract)?;
    if whole.deployed_bytecode.len() <= limit {
        return Ok((whole, vec![source.solidity.clone()]));
    }
    let first = whole.deployed_bytecode.len().div_ceil(split::PART_TARGET_BYTES.min(limit)).max(2);
    let mut last = Error::TooLarge { size: whole.deployed_bytecode.len(), limit };
    for parts in first..=split::MAX_PARTS {
        match split::build(
            solc,
            &source.solidity,
            source.memory_end,
            source.layout.calldata_len(),
            contract,
            parts,
            limit,
        ) {
            Ok(done) => return Ok(done),
            Err(e @ Error::TooLarge { .. }) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Generates the verifier for `vk` and `encoding`, compiles it with `solc`, and writes
/// `<contract>.sol` and `<contract>.json` into `out_dir`.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    params: &ParamsKZG<Bn256>,
    vk: &VerifyingKey<G1Affine>,
    num_instances: usize,
    encoding: &Encoding,
    contract: &str,
    header: &str,
    solc: &Path,
    out_dir: &Path,
) -> Result<Generated> {
    let generated = solidity_source(params, vk, num_instances, contract, header, encoding)?;
    let (mut compiled, sources) = compile_verifier(solc, &generated, contract, EIP170_LIMIT)?;
    compiled.layout = Some(generated.layout);
    compiled.encoding_hash = Some(format!("0x{}", hex::encode(generated.encoding_hash)));
    compiled.dev_chain_id = generated.dev_chain_id;
    let sol_path = out_dir.join(format!("{contract}.sol"));
    let artifact_path = out_dir.join(format!("{contract}.json"));
    write_file(&sol_path, &sources[0])?;
    for (part, source) in compiled.parts.iter().zip(&sources[1..]) {
        write_file(&out_dir.join(format!("{}.sol", part.contract)), source)?;
    }
    write_file(&artifact_path, serde_json::to_string_pretty(&compiled).expect("artifacts serialize"))?;
    Ok(Generated { compiled, sol_path, artifact_path })
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0x{}", hex::encode(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.trim_start_matches("0x")).map_err(serde::de::Error::custom)
    }
}

/// The project's solc wrapper: `$ZKINFER_SOLC`, else `scripts/solc` of this source tree.
pub fn default_solc() -> PathBuf {
    std::env::var_os("ZKINFER_SOLC").map(PathBuf::from).unwrap_or_else(source_tree_solc)
}

/// `scripts/solc` of the source tree this crate was built from (it exists only where that tree
/// still is: an installed Python wheel or binary carries the path of the machine that built it).
pub fn source_tree_solc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/solc")
}

/// The solc to compile verifiers with, for a program installed away from the source tree (the
/// Python wheel): `$ZKINFER_SOLC` if set, else a `solc` on `PATH` whose version is the pinned one
/// ([`SOLC_SETTINGS`]' `compiler`, so that the bytecode, hence the code hash and the model id,
/// is forge's), else the source tree's `scripts/solc` if it exists.
///
/// # Errors
/// [`Error::SolcNotFound`], naming the three places and what was wrong with each.
pub fn find_solc() -> Result<PathBuf> {
    find_solc_in(std::env::var_os("ZKINFER_SOLC"), std::env::var_os("PATH"), &source_tree_solc())
}

/// [`find_solc`] with its three places given.
pub fn find_solc_in(
    env: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
    source_tree: &Path,
) -> Result<PathBuf> {
    let pinned = pinned_solc_version();
    let env_note = match env.filter(|v| !v.is_empty()).map(PathBuf::from) {
        Some(p) if p.is_file() => return Ok(p),
        Some(p) => format!("$ZKINFER_SOLC is {}, which is not a file", p.display()),
        None => "$ZKINFER_SOLC is not set".to_string(),
    };
    let on_path = path.iter().flat_map(std::env::split_paths).map(|d| d.join("solc")).find(|p| p.is_file());
    let path_note = match on_path {
        Some(p) => match solc_version(&p) {
            Some(v) if v == pinned => return Ok(p),
            Some(v) => format!("{} is solc {v}, not {pinned}", p.display()),
            None => format!("{} does not answer `solc --version`", p.display()),
        },
        None => "no solc on PATH".to_string(),
    };
    if source_tree.is_file() {
        return Ok(source_tree.to_path_buf());
    }
    Err(Error::SolcNotFound {
        pinned,
        tried: format!("{env_note}; {path_note}; no {} (the source tree it was built from)", source_tree.display()),
    })
}

/// The solc version the shared settings pin (`0.8.30` of `0.8.30+commit.73712a01`).
fn pinned_solc_version() -> String {
    let shared: serde_json::Value =
        serde_json::from_str(SOLC_SETTINGS).expect("contracts/solc-settings.json is valid JSON");
    let compiler = shared["compiler"].as_str().unwrap_or_default();
    compiler.split('+').next().unwrap_or_default().to_string()
}

/// The version `solc --version` reports (`Version: 0.8.30+commit…` → `0.8.30`).
fn solc_version(solc: &Path) -> Option<String> {
    let out = Command::new(solc).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().find_map(|l| l.trim().strip_prefix("Version:"))?.trim();
    Some(version.split('+').next().unwrap_or(version).to_string())
}

/// Compiles `source` with `solc --standard-json` and the shared settings.
///
/// Errors: [`Error::TooLarge`] for runtime bytecode above EIP-170 (use [`compile_verifier`] to cut
/// a verifier into parts instead).
pub fn compile_solidity(solc: &Path, source: &str, contract_name: &str) -> Result<Compiled> {
    let compiled = compile_unlimited(solc, source, contract_name)?;
    if compiled.deployed_bytecode.len() > EIP170_LIMIT {
        return Err(Error::TooLarge { size: compiled.deployed_bytecode.len(), limit: EIP170_LIMIT });
    }
    Ok(compiled)
}

/// [`compile_solidity`] without the size limit.
pub(crate) fn compile_unlimited(solc: &Path, source: &str, contract_name: &str) -> Result<Compiled> {
    let shared: serde_json::Value =
        serde_json::from_str(SOLC_SETTINGS).expect("contracts/solc-settings.json is valid JSON");
    let mut settings = shared["settings"].clone();
    settings["outputSelection"] =
        serde_json::json!({ "*": { "*": ["evm.bytecode.object", "evm.deployedBytecode.object"] } });
    let file = format!("{contract_name}.sol");
    let input = serde_json::json!({
        "language": "Solidity",
        "sources": { file.clone(): { "content": source } },
        "settings": settings,
    });
    let mut child = Command::new(solc)
        .arg("--standard-json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::SolcMissing { path: solc.into(), source })?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.to_string().as_bytes())
        .map_err(|source| Error::Io { action: "writing to solc", path: solc.into(), source })?;
    let out =
        child.wait_with_output().map_err(|source| Error::Io { action: "running solc", path: solc.into(), source })?;
    if !out.status.success() {
        return Err(Error::SolcFailed(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| Error::SolcFailed(format!("unreadable output: {e}")))?;
    if let Some(errors) = json["errors"].as_array() {
        let fatal: Vec<String> = errors
            .iter()
            .filter(|e| e["severity"] == "error")
            .map(|e| e["formattedMessage"].as_str().unwrap_or("unknown error").to_string())
            .collect();
        if !fatal.is_empty() {
            return Err(Error::SolcFailed(fatal.join("\n")));
        }
    }
    let contract = &json["contracts"][&file][contract_name];
    let decode = |v: &serde_json::Value| {
        hex::decode(v.as_str().unwrap_or_default()).map_err(|e| Error::SolcFailed(format!("bad bytecode: {e}")))
    };
    let bytecode = decode(&contract["evm"]["bytecode"]["object"])?;
    let deployed_bytecode = decode(&contract["evm"]["deployedBytecode"]["object"])?;
    if deployed_bytecode.is_empty() {
        return Err(Error::SolcFailed(format!("no bytecode for {contract_name}")));
    }
    let codehash = format!("0x{}", hex::encode(Keccak256::digest(&deployed_bytecode)));
    let compiler = shared["compiler"].as_str().unwrap_or("unknown").to_string();
    Ok(Compiled {
        contract: contract_name.into(),
        bytecode,
        deployed_bytecode,
        codehash,
        compiler,
        layout: None,
        encoding_hash: None,
        dev_chain_id: None,
        parts: Vec::new(),
    })
}

/// How a model's values are encoded on-chain; part of the model id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoding {
    /// Number of input values.
    pub input_len: u32,
    /// Number of output values.
    pub output_len: u32,
    /// Fixed-point scale (bits) of inputs.
    pub input_scale_bits: u8,
    /// Fixed-point scale (bits) of outputs.
    pub output_scale_bits: u8,
    /// Bits per value in the packed public instances (`B`).
    pub value_bits: u8,
    /// Smallest accepted input value.
    pub input_min: i64,
    /// Largest accepted input value.
    pub input_max: i64,
    /// Smallest possible output value.
    pub output_min: i64,
    /// Largest possible output value.
    pub output_max: i64,
    /// Whether the input is committed (`[binding, C, outputs..]` instances) rather than public.
    pub input_committed: bool,
}

impl Encoding {
    /// The encoding of a quantized model.
    pub fn of_model(model: &QuantModel) -> Self {
        let (output_min, output_max) = model.output_range();
        Self {
            input_len: model.input_len() as u32,
            output_len: model.output_len() as u32,
            input_scale_bits: model.params.input_scale_bits as u8,
            output_scale_bits: model.output_scale_bits() as u8,
            value_bits: model.params.value_bits as u8,
            input_min: model.input_range.0,
            input_max: model.input_range.1,
            output_min,
            output_max,
            input_committed: model.input_committed,
        }
    }

    /// The encoding recorded in a model card.
    pub fn of_card(card: &ModelCard) -> Self {
        Self {
            input_len: card.input_shape.iter().product::<usize>() as u32,
            output_len: card.output_shape.iter().product::<usize>() as u32,
            input_scale_bits: card.quantization.input_scale_bits as u8,
            output_scale_bits: card.output_scale_bits as u8,
            value_bits: card.quantization.value_bits as u8,
            input_min: card.input_range.0,
            input_max: card.input_range.1,
            output_min: card.output_range.0,
            output_max: card.output_range.1,
            input_committed: card.input_committed,
        }
    }
}

fn word_u(v: u64) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    w
}

fn word_i(v: i64) -> [u8; 32] {
    let mut w = if v < 0 { [0xffu8; 32] } else { [0u8; 32] };
    w[24..].copy_from_slice(&v.to_be_bytes());
    w
}

/// `keccak256(bytes)`.
pub fn keccak256(bytes: &[u8]) -> [u8; 32] {
    Keccak256::digest(bytes).into()
}

/// The ABI words of an encoding: `abi.encode(inputLen, outputLen, inputScaleBits,
/// outputScaleBits, valueBits, inputMin, inputMax, outputMin, outputMax, inputCommitted)`.
pub fn encoding_words(e: &Encoding) -> [[u8; 32]; 10] {
    [
        word_u(e.input_len as u64),
        word_u(e.output_len as u64),
        word_u(e.input_scale_bits as u64),
        word_u(e.output_scale_bits as u64),
        word_u(e.value_bits as u64),
        word_i(e.input_min),
        word_i(e.input_max),
        word_i(e.output_min),
        word_i(e.output_max),
        word_u(e.input_committed as u64),
    ]
}

/// What a verifier's `encodingHash()` returns: `keccak256(abi.encode(encoding))`, the words
/// [`model_id`] hashes after the code hash.
pub fn encoding_hash(e: &Encoding) -> [u8; 32] {
    keccak256(&encoding_words(e).concat())
}

/// The model id the coordinator derives at registration:
/// `keccak256(abi.encode(codehash, inputLen, outputLen, inputScaleBits, outputScaleBits,
/// valueBits, inputMin, inputMax, outputMin, outputMax, inputCommitted))`.
pub fn model_id(codehash: &[u8; 32], e: &Encoding) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(codehash);
    for w in encoding_words(e) {
        h.update(w);
    }
    h.finalize().into()
}

/// Parses a `0x`-prefixed 32-byte hex string.
pub fn parse_b256(s: &str) -> Option<[u8; 32]> {
    let b = hex::decode(s.trim_start_matches("0x")).ok()?;
    b.try_into().ok()
}

/// EVM calldata for the verifier: instances as big-endian words, then the proof.
pub fn calldata(instances: &[Fr], proof: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(instances.len() * 32 + proof.len());
    for f in instances {
        out.extend_from_slice(&models::quant::field_to_be_bytes(f));
    }
    out.extend_from_slice(proof);
    out
}

/// Writes `bytes` to `path`, creating parent directories.
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { action: "creating", path: dir.into(), source })?;
    }
    std::fs::write(path, bytes).map_err(|source| Error::Io { action: "writing", path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(contract: &str, runtime: &[u8]) -> Part {
        let init = [&[0x60, 0x00][..], runtime].concat();
        Part {
            contract: contract.into(),
            address: format!("0x{}", hex::encode(create2_address(&[0; 32], &init))),
            codehash: format!("0x{}", hex::encode(keccak256(runtime))),
            bytecode: init,
            deployed_bytecode: runtime.to_vec(),
        }
    }

    fn listed(p: &Part) -> models::card::VerifierPart {
        models::card::VerifierPart {
            contract: p.contract.clone(),
            address: p.address.to_uppercase().replace("0X", "0x"),
            codehash: p.codehash.clone(),
            runtime_bytes: p.deployed_bytecode.len(),
        }
    }

    /// An artifact is taken for a card only with the later parts the card lists: one without them
    /// (or with others) would deploy a verifier whose every call fails on a part never deployed.
    #[test]
    fn an_artifact_must_hold_the_parts_its_card_lists() {
        let (p2, p3) = (part("VPart2", &[1, 2, 3]), part("VPart3", &[4, 5]));
        let compiled = |parts: Vec<Part>| Compiled {
            contract: "V".into(),
            bytecode: vec![0x60],
            deployed_bytecode: vec![0x00],
            codehash: format!("0x{}", hex::encode(keccak256(&[0x00]))),
            compiler: "0.8.30".into(),
            layout: None,
            encoding_hash: None,
            dev_chain_id: None,
            parts,
        };
        let card = [listed(&p2), listed(&p3)];
        assert_eq!(compiled(vec![p2.clone(), p3.clone()]).check_parts(&card), Ok(()));
        assert_eq!(compiled(vec![]).check_parts(&[]), Ok(()));

        let missing = compiled(vec![]).check_parts(&card).unwrap_err();
        assert!(missing.contains("the card lists 2 later parts (VPart2 at 0x"), "{missing}");
        assert!(missing.ends_with("the artifact no later part"), "{missing}");
        let extra = compiled(vec![p2.clone()]).check_parts(&[]).unwrap_err();
        assert!(
            extra.contains("the card lists no later part of its verifier, the artifact 1 later part (VPart2"),
            "{extra}"
        );
        let swapped = compiled(vec![p3.clone(), p2.clone()]).check_parts(&card);
        assert!(swapped.is_err(), "parts out of order were taken");
        let mut other = listed(&p3);
        other.codehash = p2.codehash.clone();
        assert!(compiled(vec![p2.clone(), p3.clone()]).check_parts(&[listed(&p2), other]).is_err());

        // A part whose runtime code is not the code hash it records.
        let mut tampered = p3.clone();
        tampered.deployed_bytecode = vec![9];
        let err = compiled(vec![p2.clone(), tampered]).check_parts(&card).unwrap_err();
        assert!(err.contains("the artifact's part VPart3 has code hash 0x"), "{err}");
    }

    /// A fake `solc` in `dir` that reports `version`.
    #[cfg(unix)]
    fn fake_solc(dir: &Path, version: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("solc");
        std::fs::write(&path, format!("#!/bin/sh\necho 'solc, the solidity compiler'\necho 'Version: {version}'\n"))
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    #[cfg(unix)]
    fn solc_is_found_in_the_env_then_on_path_at_the_pinned_version_then_in_the_source_tree() {
        let pinned = pinned_solc_version();
        assert_eq!(pinned, "0.8.30");
        let (good, old, tree) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let good_solc = fake_solc(good.path(), "0.8.30+commit.73712a01.Linux.g++");
        let old_solc = fake_solc(old.path(), "0.8.20+commit.a1b79de6.Linux.g++");
        let tree_solc = tree.path().join("scripts-solc");
        let path = |dirs: &[&Path]| Some(std::env::join_paths(dirs).unwrap());
        let missing = tree.path().join("nothing-here");

        // The environment variable wins, whatever is on PATH.
        let env = Some(old_solc.clone().into_os_string());
        assert_eq!(find_solc_in(env, path(&[good.path()]), &missing).unwrap(), old_solc);
        // Then the first solc on PATH, if it is the pinned version.
        assert_eq!(find_solc_in(None, path(&[tree.path(), good.path()]), &missing).unwrap(), good_solc);
        // Another version is passed over for the source tree's wrapper.
        std::fs::write(&tree_solc, "").unwrap();
        assert_eq!(find_solc_in(None, path(&[old.path()]), &tree_solc).unwrap(), tree_solc);
        // Nowhere: the error names the three places and what was wrong with each.
        let env = Some(missing.clone().into_os_string());
        let err = find_solc_in(env, path(&[old.path()]), &missing).unwrap_err().to_string();
        for part in [
            format!("$ZKINFER_SOLC is {}, which is not a file", missing.display()),
            format!("{} is solc 0.8.20, not 0.8.30", old_solc.display()),
            format!("no {} (the source tree", missing.display()),
            "Set ZKINFER_SOLC to a solc 0.8.30".to_string(),
        ] {
            assert!(err.contains(&part), "{part:?} not in {err:?}");
        }
        let err = find_solc_in(None, None, &missing).unwrap_err().to_string();
        assert!(err.contains("$ZKINFER_SOLC is not set; no solc on PATH; no "), "{err}");
    }

    /// The key of a tiny model (4 inputs, 3 outputs) at `k = 10` on a dev SRS.
    pub(crate) fn tiny_key() -> (ParamsKZG<Bn256>, VerifyingKey<G1Affine>) {
        use models::{
            ir::{FloatModel, InputKind, Layer, LayerKind, ModelInput},
            prover,
            quant::QuantParams,
            srs::Srs,
        };
        let w = [0.5f32, -0.25, 0.75, 1.0, -1.0, 0.125, 0.3, -0.6, 0.9, 0.2, -0.4, 0.05];
        let terms = (0..3).map(|o| (0..4).map(|i| (i as u32, w[o * 4 + i])).collect()).collect();
        let kind = LayerKind::Linear { terms, bias: vec![0.1, -0.2, 0.05] };
        let float = FloatModel {
            shapes: vec![vec![1, 4], vec![1, 3]],
            inputs: vec![ModelInput { name: "x".into(), tensor: 0, kind: InputKind::Real }],
            layers: vec![Layer { node: "fc".into(), op: "Gemm".into(), inputs: vec![0], output: 1, kind }],
            outputs: vec![1],
            output_names: vec!["y".into()],
        };
        let model = QuantModel::quantize(&float, QuantParams::default(), None).unwrap();
        let circuit =
            models::sizing::plan(&model, &models::sizing::PlanOptions { k: Some(10), max_k: 10, lanes: None })
                .unwrap()
                .params;
        let srs = Srs::insecure_dev(10, 1);
        let (pk, _) = prover::keygen(&srs.params, &model, &circuit).unwrap();
        (srs.params, pk.get_vk().clone())
    }

    pub(crate) const TEST_ENCODING: Encoding = Encoding {
        input_len: 4,
        output_len: 3,
        input_scale_bits: 7,
        output_scale_bits: 7,
        value_bits: 16,
        input_min: -128,
        input_max: 128,
        output_min: -1000,
        output_max: 1000,
        input_committed: false,
    };

    #[test]
    fn bytecode_does_not_grow_with_the_instances() {
        let (params, vk) = tiny_key();
        // Up to most of the 1024 rows of k = 10 (the straight-line code grew ~170 bytes per instance).
        let sizes: Vec<(usize, usize)> = [1, 2, 40, 900]
            .into_iter()
            .map(|n| {
                let source = solidity_source(&params, &vk, n, "V", "test", &TEST_ENCODING).unwrap();
                assert_eq!(source.layout.num_instances, n);
                assert_eq!(source.layout.scalar_ranges[0], (0, 32 * n));
                let compiled = compile_solidity(&default_solc(), &source.solidity, "V").unwrap();
                (n, compiled.deployed_bytecode.len())
            })
            .collect();
        let min = sizes.iter().map(|s| s.1).min().unwrap();
        let max = sizes.iter().map(|s| s.1).max().unwrap();
        // What varies is the width of the PUSHes of calldata offsets and bounds (1 to 3 bytes).
        assert!(max - min <= 32, "runtime bytecode sizes by instance count: {sizes:?}");
    }

    #[test]
    fn abi_words_sign_extend() {
        assert_eq!(word_i(-1), [0xff; 32]);
        assert_eq!(word_i(1)[31], 1);
        assert_eq!(word_i(1)[0], 0);
        assert_eq!(word_u(258)[30..], [1, 2]);
    }
}
