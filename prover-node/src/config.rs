//! Node configuration: one TOML file of sections, overridable by flags and environment.
//! See `node.example.toml` for every key.

use std::{net::SocketAddr, path::PathBuf};

use alloy::primitives::Address;
use serde::Deserialize;

use crate::{
    deployments::Deployments,
    error::{Error, Result},
};

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Chain endpoint.
    pub rpc: RpcConfig,
    /// Coordinator contract.
    pub contract: ContractConfig,
    /// Transaction signer.
    #[serde(default)]
    pub signer: SignerConfig,
    /// Models served.
    pub models: Vec<ModelConfig>,
    /// Proving and submission.
    #[serde(default)]
    pub prover: ProverConfig,
    /// Persistent store.
    pub store: StoreConfig,
    /// Metrics and health endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Transaction fees.
    #[serde(default)]
    pub fees: FeeConfig,
    /// Private requests (inputs encrypted to this node's key).
    #[serde(default)]
    pub private: PrivateConfig,
}

/// Private requests: the key ring that opens the envelopes of requests naming this node.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateConfig {
    /// The X25519 key ring file (`prover-node encryption-key new`; JSON, mode 0600). Its newest key
    /// is the one to register on-chain (`prover-node encryption-key register`); older keys stay so
    /// that requests sealed to them before a rotation still open. Without it, private requests
    /// naming this node are refused (`unknown_encryption_key`).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Chain endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// HTTP JSON-RPC URL.
    pub http_url: String,
    /// Optional `ws://` endpoint: new blocks wake the node at once (polling stays the fallback).
    #[serde(default)]
    pub ws_url: Option<String>,
    /// Expected chain id; the node refuses to start on another chain.
    pub chain_id: Option<u64>,
    /// Polling interval for new blocks and events.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Largest block range per `eth_getLogs` call.
    #[serde(default = "default_log_range")]
    pub max_log_range: u64,
    /// Longest wait for any single RPC answer; a hung endpoint costs at most this per call.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl RpcConfig {
    /// An endpoint with default settings and no chain id check.
    pub fn new(http_url: impl Into<String>) -> Self {
        Self {
            http_url: http_url.into(),
            ws_url: None,
            chain_id: None,
            poll_interval_ms: default_poll_ms(),
            max_log_range: default_log_range(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_poll_ms() -> u64 {
    500
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_log_range() -> u64 {
    2_000
}

/// Coordinator contract: its address, or a deployments file that records it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractConfig {
    /// Coordinator address (taken from `deployments` when unset).
    #[serde(default)]
    pub coordinator: Option<Address>,
    /// A chain's deployments file (`deployments/<chain id>.json`, written by `prover-node
    /// deploy-coordinator` / `list-model` or the forge scripts): the coordinator is taken from it,
    /// and the node refuses to start on a chain other than the file's.
    #[serde(default)]
    pub deployments: Option<PathBuf>,
    /// First block to scan on a fresh store.
    #[serde(default)]
    pub start_block: u64,
    /// The chain id the deployments file records, once read ([`NodeConfig::apply_deployments`]).
    #[serde(skip)]
    pub deployments_chain_id: Option<u64>,
}

impl ContractConfig {
    /// The coordinator at `coordinator`, scanned from block 0 on a fresh store.
    pub fn at(coordinator: Address) -> Self {
        Self { coordinator: Some(coordinator), deployments: None, start_block: 0, deployments_chain_id: None }
    }

    /// The coordinator a deployments file records, scanned from block 0 on a fresh store.
    pub fn from_deployments(path: impl Into<PathBuf>) -> Self {
        Self { coordinator: None, deployments: Some(path.into()), start_block: 0, deployments_chain_id: None }
    }

    /// The coordinator's address.
    ///
    /// # Errors
    /// [`Error::Config`] when neither `coordinator` is set nor a deployments file was applied.
    pub fn coordinator(&self) -> Result<Address> {
        self.coordinator.ok_or_else(|| Error::Config {
            key: "contract",
            reason: "no coordinator: set `coordinator = \"0x…\"` or `deployments = \"deployments/<chain id>.json\"`"
                .into(),
        })
    }
}

/// Where the signing key comes from. The key itself never appears in the file or in logs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// Environment variable holding the hex private key.
    #[serde(default = "default_key_env")]
    pub private_key_env: String,
    /// Encrypted JSON keystore, used instead of the environment variable when set.
    pub keystore: Option<PathBuf>,
    /// Environment variable holding the keystore password.
    #[serde(default = "default_password_env")]
    pub keystore_password_env: String,
    /// Below this balance (wei) the node reports `zkinfer_signer_low_balance 1` and `/health` fails.
    #[serde(default = "default_min_balance")]
    pub min_balance: u64,
}

impl Default for SignerConfig {
    fn default() -> Self {
        Self {
            private_key_env: default_key_env(),
            keystore: None,
            keystore_password_env: default_password_env(),
            min_balance: default_min_balance(),
        }
    }
}

fn default_min_balance() -> u64 {
    10_000_000_000_000_000 // 0.01 ETH
}

fn default_key_env() -> String {
    "ZKINFER_PRIVATE_KEY".into()
}

fn default_password_env() -> String {
    "ZKINFER_KEYSTORE_PASSWORD".into()
}

/// A served model.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model card written by `prover-node setup` (keys are found beside it).
    pub card: PathBuf,
    /// Ceremony SRS file the keys were made with.
    pub srs: Option<PathBuf>,
    /// Use the insecure dev SRS recorded in the card (tests and demos only).
    #[serde(default)]
    pub insecure_dev_srs: bool,
}

/// Proving and submission.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProverConfig {
    /// Blocks to wait after a request (and after our fulfilment) before acting on it as final.
    #[serde(default)]
    pub confirmations: u64,
    /// Proofs generated in parallel.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for ProverConfig {
    fn default() -> Self {
        Self { confirmations: 0, concurrency: default_concurrency() }
    }
}

fn default_concurrency() -> usize {
    1
}

/// Persistent store.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Path of the embedded database file.
    pub path: PathBuf,
    /// Move an empty or damaged store aside and start a fresh one (`--reinit-store`; never read
    /// from the file, so that it cannot be left on by accident).
    #[serde(skip)]
    pub reinit: bool,
}

impl StoreConfig {
    /// A store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), reinit: false }
    }
}

/// EIP-1559 fees of fulfilment transactions and when to replace a stuck one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeConfig {
    /// Highest `maxFeePerGas` the node ever signs (wei).
    #[serde(default = "default_max_fee")]
    pub max_fee_per_gas: u64,
    /// Lowest `maxPriorityFeePerGas` (wei); the node's suggestion is used when higher.
    #[serde(default)]
    pub min_priority_fee: u64,
    /// A transaction still unmined this many blocks after it was sent is replaced (same nonce,
    /// tip and max fee raised by 12.5%, above the usual 10% replacement margin). A transaction
    /// whose max fee is below the current base fee is replaced at once.
    #[serde(default = "default_replace_after")]
    pub replace_after_blocks: u64,
    /// Skip requests whose payment does not cover `fulfil_gas × (base fee + tip)`.
    #[serde(default)]
    pub skip_unprofitable: bool,
    /// Gas a fulfilment is assumed to use before it is proved (for `skip_unprofitable`).
    #[serde(default = "default_fulfil_gas")]
    pub fulfil_gas: u64,
}

impl Default for FeeConfig {
    fn default() -> Self {
        Self {
            max_fee_per_gas: default_max_fee(),
            min_priority_fee: 0,
            replace_after_blocks: default_replace_after(),
            skip_unprofitable: false,
            fulfil_gas: default_fulfil_gas(),
        }
    }
}

fn default_max_fee() -> u64 {
    500_000_000_000 // 500 gwei
}

fn default_replace_after() -> u64 {
    3
}

fn default_fulfil_gas() -> u64 {
    600_000
}

/// Metrics and health endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Listen address for `GET /metrics` and `GET /health` (port 0 picks a free port).
    #[serde(default = "default_metrics")]
    pub listen: SocketAddr,
    /// `/health` fails when the last successful pass over the chain is older than this.
    #[serde(default = "default_stale_after")]
    pub stale_after_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { listen: default_metrics(), stale_after_secs: default_stale_after() }
    }
}

fn default_stale_after() -> u64 {
    30
}

fn default_metrics() -> SocketAddr {
    "127.0.0.1:9464".parse().expect("valid")
}

impl NodeConfig {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| Error::ConfigSyntax(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file; relative paths inside it are resolved against the file's directory.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            action: "reading config",
            path: path.into(),
            source,
        })?;
        let mut cfg = Self::from_toml(&text)?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut cfg.store.path);
        if let Some(d) = &mut cfg.contract.deployments {
            fix(d);
        }
        for m in &mut cfg.models {
            fix(&mut m.card);
            if let Some(s) = &mut m.srs {
                fix(s);
            }
        }
        if let Some(k) = &mut cfg.signer.keystore {
            fix(k);
        }
        if let Some(k) = &mut cfg.private.key_file {
            fix(k);
        }
        Ok(cfg)
    }

    /// Takes the coordinator from the deployments file, if one is configured (`contract.deployments`),
    /// and returns the file. The chain id it records is kept, for the start-up check against the
    /// endpoint's.
    ///
    /// # Errors
    /// [`Error::DeploymentsMissing`], [`Error::Io`] or [`Error::BadFile`] when the file cannot be
    /// used; [`Error::Config`] when `rpc.chain_id` names another chain than the file;
    /// [`Error::CoordinatorMismatch`] when `contract.coordinator` (or `--coordinator`) is set to
    /// another coordinator than the file's.
    pub fn apply_deployments(&mut self) -> Result<Option<Deployments>> {
        let Some(path) = self.contract.deployments.clone() else { return Ok(None) };
        let file = Deployments::load(&path)?;
        if let Some(expected) = self.rpc.chain_id.filter(|c| *c != file.chain_id) {
            return Err(Error::Config {
                key: "contract.deployments",
                reason: format!(
                    "{} is the deployments file of chain {}, but rpc.chain_id is {expected}: use chain {expected}'s file",
                    path.display(),
                    file.chain_id
                ),
            });
        }
        if let Some(given) = self.contract.coordinator.filter(|c| *c != file.coordinator) {
            return Err(Error::CoordinatorMismatch {
                what: "contract.coordinator".into(),
                given,
                path,
                recorded: file.coordinator,
            });
        }
        self.contract.coordinator = Some(file.coordinator);
        self.contract.deployments_chain_id = Some(file.chain_id);
        Ok(Some(file))
    }

    /// Checks values a user could get wrong.
    pub fn validate(&self) -> Result<()> {
        if self.contract.deployments.is_none() {
            self.contract.coordinator()?; // no address and no file to take it from
        }
        if self.models.is_empty() {
            return Err(Error::Config {
                key: "[[models]]",
                reason: "empty: the node must serve at least one model".into(),
            });
        }
        for m in &self.models {
            if m.srs.is_some() == m.insecure_dev_srs {
                return Err(Error::Config {
                    key: "[[models]]",
                    reason: format!(
                        "model {}: set exactly one of `srs = <file>` or `insecure_dev_srs = true`",
                        m.card.display()
                    ),
                });
            }
        }
        if self.prover.concurrency == 0 {
            return Err(Error::Config { key: "prover.concurrency", reason: "must be at least 1".into() });
        }
        if self.rpc.poll_interval_ms == 0 || self.rpc.max_log_range == 0 || self.rpc.timeout_ms == 0 {
            return Err(Error::Config {
                key: "rpc",
                reason: "poll_interval_ms, max_log_range and timeout_ms must be positive".into(),
            });
        }
        if self.fees.replace_after_blocks == 0 || self.fees.max_fee_per_gas == 0 {
            return Err(Error::Config {
                key: "fees",
                reason: "replace_after_blocks and max_fee_per_gas must be positive".into(),
            });
        }
        Ok(())
    }

    /// Loads the signing key from the environment or the keystore.
    pub fn signer(&self) -> Result<alloy::signers::local::PrivateKeySigner> {
        if let Some(path) = &self.signer.keystore {
            let password = std::env::var(&self.signer.keystore_password_env).map_err(|_| Error::Config {
                key: "signer.keystore_password_env",
                reason: format!("the variable {} is not set", self.signer.keystore_password_env),
            })?;
            return alloy::signers::local::PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
                Error::Config {
                    key: "signer.keystore",
                    reason: format!("cannot decrypt {}: {e} (check the password)", path.display()),
                }
            });
        }
        let key = std::env::var(&self.signer.private_key_env).map_err(|_| Error::Config {
            key: "signer.private_key_env",
            reason: format!(
                "the variable {} is not set (set it to the hex private key, or configure signer.keystore)",
                self.signer.private_key_env
            ),
        })?;
        crate::chain::signer(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../node.example.toml");
        let cfg = NodeConfig::from_toml(text).unwrap();
        assert_eq!(cfg.models.len(), 1);
        assert!(cfg.models[0].insecure_dev_srs);
        assert_eq!(cfg.prover.concurrency, 1);
        assert_eq!(cfg.rpc.chain_id, Some(31337));
        assert_eq!(cfg.private.key_file.as_deref(), Some(std::path::Path::new("../build/node/encryption-keys.json")));
    }

    #[test]
    fn the_key_file_is_optional_and_relative_to_the_config() {
        let text = include_str!("../node.example.toml");
        let without = text.replace("key_file = \"../build/node/encryption-keys.json\"", "");
        assert_eq!(NodeConfig::from_toml(&without).unwrap().private.key_file, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = NodeConfig::load(&path).unwrap();
        assert_eq!(cfg.private.key_file, Some(dir.path().join("../build/node/encryption-keys.json")));
    }

    #[test]
    fn signer_comes_from_a_keystore_or_the_environment_and_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; 32];
        let (signer, _) = alloy::signers::local::PrivateKeySigner::encrypt_keystore(
            dir.path(),
            &mut rand::rngs::OsRng,
            key,
            "correct horse",
            Some("node.json"),
        )
        .unwrap();
        let base = include_str!("../node.example.toml");
        let text = base.replace(
            "private_key_env = \"ZKINFER_PRIVATE_KEY\"",
            &format!(
                "keystore = \"{}\"\nkeystore_password_env = \"ZKINFER_TEST_KEYSTORE_PASSWORD\"",
                dir.path().join("node.json").display()
            ),
        );
        let cfg = NodeConfig::from_toml(&text).unwrap();
        assert!(cfg.signer().unwrap_err().to_string().contains("ZKINFER_TEST_KEYSTORE_PASSWORD"));
        std::env::set_var("ZKINFER_TEST_KEYSTORE_PASSWORD", "correct horse");
        assert_eq!(cfg.signer().unwrap().address(), signer.address());
        std::env::set_var("ZKINFER_TEST_KEYSTORE_PASSWORD", "wrong");
        assert!(cfg.signer().is_err());

        let env_cfg = NodeConfig::from_toml(&base.replace("ZKINFER_PRIVATE_KEY", "ZKINFER_TEST_NODE_KEY")).unwrap();
        std::env::set_var("ZKINFER_TEST_NODE_KEY", format!("0x{}", hex::encode(key)));
        let from_env = env_cfg.signer().unwrap();
        assert_eq!(from_env.address(), signer.address());
        // Neither the config nor the signer's Debug output carries the key.
        let printed = format!("{env_cfg:?} {from_env:?}");
        assert!(!printed.contains(&hex::encode(key)));
    }

    #[test]
    fn the_coordinator_comes_from_a_deployments_file_of_the_same_chain() {
        let dir = tempfile::tempdir().unwrap();
        let coordinator: Address = "0x6Cf6ef5d2196782dC469594eeF559028702e6c6B".parse().unwrap();
        crate::deployments::Deployments::new(31337, coordinator, Default::default())
            .save(&dir.path().join("deployments/31337.json"))
            .unwrap();
        let example = include_str!("../node.example.toml");
        let with_file = |extra: &str| {
            let text = example.replace(
                "coordinator = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"",
                &format!("deployments = \"deployments/31337.json\"\n{extra}"),
            );
            let path = dir.path().join("node.toml");
            std::fs::write(&path, text).unwrap();
            NodeConfig::load(&path).unwrap()
        };

        // Relative to the config file's directory; the coordinator and chain id come from the file.
        let mut cfg = with_file("");
        assert_eq!(cfg.contract.deployments.as_deref(), Some(dir.path().join("deployments/31337.json").as_path()));
        assert!(cfg.contract.coordinator().is_err(), "unset until the file is applied");
        assert!(cfg.apply_deployments().unwrap().is_some());
        assert_eq!(
            (cfg.contract.coordinator().unwrap(), cfg.contract.deployments_chain_id),
            (coordinator, Some(31337))
        );

        // The same coordinator in both places is fine; another is refused.
        let mut same = with_file(&format!("coordinator = \"{coordinator}\""));
        assert!(same.apply_deployments().is_ok());
        let mut other = with_file("coordinator = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"");
        assert!(matches!(other.apply_deployments(), Err(Error::CoordinatorMismatch { .. })));

        // Another chain than rpc.chain_id, a missing file, a malformed one.
        let mut chain = with_file("");
        chain.rpc.chain_id = Some(1);
        let err = chain.apply_deployments().unwrap_err();
        assert!(err.to_string().contains("deployments file of chain 31337, but rpc.chain_id is 1"), "{err}");
        let mut missing = with_file("");
        missing.contract.deployments = Some(dir.path().join("deployments/5.json"));
        assert!(matches!(missing.apply_deployments(), Err(Error::DeploymentsMissing { .. })));
        std::fs::write(dir.path().join("deployments/31337.json"), "{\"chainId\": \"x\"}").unwrap();
        let mut malformed = with_file("");
        assert!(matches!(malformed.apply_deployments(), Err(Error::BadFile { what: "deployments file", .. })));

        // Neither a coordinator nor a file.
        let neither = example.replace("coordinator = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"", "");
        let err = NodeConfig::from_toml(&neither).unwrap_err();
        assert!(err.to_string().contains("no coordinator"), "{err}");
    }

    #[test]
    fn bad_configs_are_explained() {
        let text = include_str!("../node.example.toml");
        let no_models = text.replace("[[models]]", "[unused]");
        assert!(NodeConfig::from_toml(&no_models).is_err());
        let unknown = format!("{text}\n[extra]\nx = 1\n");
        assert!(NodeConfig::from_toml(&unknown).unwrap_err().to_string().contains("extra"));
        let both = text.replace("insecure_dev_srs = true", "insecure_dev_srs = true\nsrs = \"x.srs\"");
        assert!(NodeConfig::from_toml(&both).unwrap_err().to_string().contains("exactly one"));
    }
}
