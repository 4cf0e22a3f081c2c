//! The per-chain deployments file: what is deployed on one chain, written by `prover-node
//! deploy-coordinator` / `list-model` and by the forge scripts under `contracts/script/` (one
//! format, documented in `ZkinferScript.sol` and the README), read by the node (`contract.deployments`).
//!
//! ```json
//! { "chainId": 31337, "coordinator": "0x…", "salt": "0x…",
//!   "models":   { "<card name>": { "modelId", "verifier", "codehash", "verifyGas", "devSrs" } },
//!   "listings": { "<listing id>": { "listingId", "model", "modelId", "owner", "fee", "deadlineSeconds" } } }
//! ```
//!
//! `fee` is a decimal string of wei (a JSON number cannot hold every `uint96`); `salt` is the CREATE2
//! salt of the coordinator (zero when it was deployed some other way). One file per chain and
//! coordinator: `deployments/<chain id>.json` by default.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A chain's deployments file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployments {
    /// The chain (`block.chainid`) everything in the file lives on.
    pub chain_id: u64,
    /// The coordinator contract.
    #[serde(serialize_with = "checksummed")]
    pub coordinator: Address,
    /// The CREATE2 salt the coordinator was deployed with (zero if unknown).
    pub salt: B256,
    /// Registered models, by card name.
    #[serde(default)]
    pub models: BTreeMap<String, ModelDeployment>,
    /// Listings, by listing id.
    #[serde(default)]
    pub listings: BTreeMap<u64, ListingDeployment>,
}

/// A model registered on the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeployment {
    /// The id the coordinator derived (equal to the card's `model_id`).
    pub model_id: B256,
    /// The model's verifier contract.
    #[serde(serialize_with = "checksummed")]
    pub verifier: Address,
    /// `EXTCODEHASH` of the verifier (the card's `verifier.codehash`).
    pub codehash: B256,
    /// Gas the coordinator forwards to the verifier per fulfilment (measured at registration).
    pub verify_gas: u32,
    /// Whether the verifier was made with the insecure dev SRS (it then runs on chain 31337 only).
    pub dev_srs: bool,
}

/// A listing of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingDeployment {
    /// The listing id requests name.
    pub listing_id: u64,
    /// The card name of the listed model (a key of `models`).
    pub model: String,
    /// The listed model id.
    pub model_id: B256,
    /// Who created (and owns) the listing.
    #[serde(serialize_with = "checksummed")]
    pub owner: Address,
    /// Fee per request, in wei.
    #[serde(with = "wei")]
    pub fee: U256,
    /// Fulfilment window of a request, in seconds.
    pub deadline_seconds: u64,
}

impl Deployments {
    /// A file for `coordinator` on `chain_id`, with no models or listings yet.
    pub fn new(chain_id: u64, coordinator: Address, salt: B256) -> Self {
        Self { chain_id, coordinator, salt, models: BTreeMap::new(), listings: BTreeMap::new() }
    }

    /// The default place of chain `chain_id`'s file, relative to the working directory (the
    /// repository root, where the forge scripts write it too).
    pub fn default_path(chain_id: u64) -> PathBuf {
        PathBuf::from(format!("deployments/{chain_id}.json"))
    }

    /// Reads a deployments file.
    ///
    /// # Errors
    /// [`Error::DeploymentsMissing`] when there is no file at `path`, [`Error::Io`] when it cannot be
    /// read, [`Error::BadFile`] when it is not a deployments file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::DeploymentsMissing { path: path.into() })
            }
            Err(source) => return Err(Error::Io { action: "reading deployments file", path: path.into(), source }),
        };
        serde_json::from_str(&text).map_err(|e| Error::BadFile {
            path: path.into(),
            what: "deployments file",
            reason: e.to_string(),
        })
    }

    /// Reads `path` if it exists (`None` if not), checking it is the file of `chain_id`.
    ///
    /// # Errors
    /// As [`Deployments::load`] (but a missing file is `Ok(None)`), and
    /// [`Error::DeploymentsChainMismatch`] when the file records another chain.
    pub fn load_for_chain(path: &Path, chain_id: u64) -> Result<Option<Self>> {
        let file = match Self::load(path) {
            Ok(file) => file,
            Err(Error::DeploymentsMissing { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        file.check_chain(path, chain_id)?;
        Ok(Some(file))
    }

    /// Checks the file is the one of `chain_id`.
    ///
    /// # Errors
    /// [`Error::DeploymentsChainMismatch`] otherwise.
    pub fn check_chain(&self, path: &Path, chain_id: u64) -> Result<()> {
        if self.chain_id != chain_id {
            return Err(Error::DeploymentsChainMismatch { path: path.into(), file: self.chain_id, chain: chain_id });
        }
        Ok(())
    }

    /// Writes the file (pretty JSON), creating its directory; the previous content is replaced
    /// only once the new one is complete on disk.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory or the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |action, source| Error::Io { action, path: path.into(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let mut text = serde_json::to_string_pretty(self).expect("deployments serialize");
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|e| io("writing deployments file", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("replacing deployments file", e))
    }

    /// Takes the exclusive lock of the deployments file at `path` (see [`DeploymentsLock`]).
    ///
    /// # Errors
    /// [`Error::Io`] when the lock file cannot be created or locked.
    pub fn lock(path: &Path) -> Result<DeploymentsLock> {
        DeploymentsLock::acquire(path)
    }

    /// The recorded model with id `model_id`, with its name.
    pub fn model_by_id(&self, model_id: B256) -> Option<(&str, &ModelDeployment)> {
        self.models.iter().find(|(_, m)| m.model_id == model_id).map(|(name, m)| (name.as_str(), m))
    }

    /// The recorded listings of `model_id`.
    pub fn listings_of(&self, model_id: B256) -> impl Iterator<Item = &ListingDeployment> {
        self.listings.values().filter(move |l| l.model_id == model_id)
    }
}

/// An exclusive advisory lock (`flock`) on `<deployments file>.lock`, held by a command from reading
/// the deployments file to rewriting it, so that two runs on one file (two `list-model`s) are
/// serialized instead of one losing the other's entries. The operating system releases it when the
/// guard is dropped or the process dies; the forge scripts do not take it.
#[derive(Debug)]
pub struct DeploymentsLock {
    _file: std::fs::File,
}

impl DeploymentsLock {
    fn acquire(path: &Path) -> Result<Self> {
        let lock_path = path.with_extension("json.lock");
        let io = |action, source| Error::Io { action, path: lock_path.clone(), source };
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("opening the lock of the deployments file", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(file = %path.display(), "another run holds the deployments file; waiting for it");
                file.lock().map_err(|e| io("locking the deployments file", e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("locking the deployments file", e)),
        }
        Ok(Self { _file: file })
    }
}

/// Addresses are written with their EIP-55 checksum, as forge writes them.
fn checksummed<S: serde::Serializer>(a: &Address, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&a.to_checksum(None))
}

/// Wei amounts as decimal strings (numbers are accepted when reading).
mod wei {
    use alloy::primitives::U256;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wei {
            Text(String),
            Number(u64),
        }
        match Wei::deserialize(d)? {
            Wei::Number(n) => Ok(U256::from(n)),
            Wei::Text(t) => U256::from_str_radix(&t, 10)
                .map_err(|e| D::Error::custom(format!("fee {t:?} is not a decimal number of wei: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the forge scripts DeployCoordinator and ListModel wrote on an anvil.
    const FORGE_WRITTEN: &str = r#"{
  "chainId": 31337,
  "coordinator": "0x6Cf6ef5d2196782dC469594eeF559028702e6c6B",
  "salt": "0xd9c27f89638b2c94d35c235e5a87964454bc195006389559d4b3f57527d14614",
  "models": {
    "digits_mlp": {
      "codehash": "0xd5787931f81bcd3cdafb17936cf1fb07c60aa44e9676e9134aac5ddabe3e66dd",
      "devSrs": false,
      "modelId": "0x89bdc57951bc9aae59be6ffc1339e0fa5191ee0486cfc52fda9ef3dd3c3fdf08",
      "verifier": "0x7312fD7C25d5668F56bA672F97212c0798b89448",
      "verifyGas": 472525
    }
  },
  "listings": {
    "1": {
      "deadlineSeconds": 3600,
      "fee": "1000000000000000",
      "listingId": 1,
      "model": "digits_mlp",
      "modelId": "0x89bdc57951bc9aae59be6ffc1339e0fa5191ee0486cfc52fda9ef3dd3c3fdf08",
      "owner": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    }
  }
}"#;

    #[test]
    fn a_forge_written_file_round_trips() {
        let file: Deployments = serde_json::from_str(FORGE_WRITTEN).unwrap();
        assert_eq!(file.chain_id, 31337);
        assert_eq!(file.models["digits_mlp"].verify_gas, 472525);
        assert_eq!(file.listings[&1].fee, U256::from(1_000_000_000_000_000u64));
        let (name, _) = file.model_by_id(file.listings[&1].model_id).unwrap();
        assert_eq!(name, "digits_mlp");
        let again: Deployments = serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
        assert_eq!(again, file);
        let written: serde_json::Value = serde_json::to_value(&file).unwrap();
        assert_eq!(written["listings"]["1"]["fee"], "1000000000000000", "fees are written as decimal strings");
        assert_eq!(written["listings"]["1"]["owner"], "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "EIP-55");
    }

    #[test]
    fn unknown_keys_are_refused_and_listings_sort_by_number() {
        // A key this version does not know would be lost on the next rewrite: refused instead.
        let noted = FORGE_WRITTEN.replacen('{', "{\"note\": \"x\",", 1);
        assert!(serde_json::from_str::<Deployments>(&noted).unwrap_err().to_string().contains("note"));
        let mut file: Deployments = serde_json::from_str(FORGE_WRITTEN).unwrap();
        let mut l = file.listings[&1].clone();
        for id in [10, 2] {
            l.listing_id = id;
            file.listings.insert(id, l.clone());
        }
        let text = serde_json::to_string(&file).unwrap();
        let (two, ten) = (text.find("\"2\":").unwrap(), text.find("\"10\":").unwrap());
        assert!(two < ten, "listing 2 before listing 10");
    }

    #[test]
    fn missing_malformed_and_foreign_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("31337.json");
        assert!(matches!(Deployments::load(&path), Err(Error::DeploymentsMissing { .. })));
        assert!(Deployments::load_for_chain(&path, 31337).unwrap().is_none());

        std::fs::write(&path, "{\"chainId\": 31337}").unwrap();
        let err = Deployments::load(&path).unwrap_err();
        assert!(matches!(err, Error::BadFile { what: "deployments file", .. }), "{err}");
        assert!(err.to_string().contains("coordinator"), "{err}");

        std::fs::write(&path, FORGE_WRITTEN.replace("\"1000000000000000\"", "\"1e15\"")).unwrap();
        assert!(Deployments::load(&path).unwrap_err().to_string().contains("decimal number of wei"));

        std::fs::write(&path, FORGE_WRITTEN).unwrap();
        let err = Deployments::load_for_chain(&path, 1337).unwrap_err();
        assert!(matches!(err, Error::DeploymentsChainMismatch { file: 31337, chain: 1337, .. }), "{err}");
    }

    #[test]
    fn the_lock_serializes_two_holders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployments/31337.json");
        let first = Deployments::lock(&path).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let waiter = std::thread::spawn(move || {
            let _second = Deployments::lock(&p).unwrap();
            tx.send(()).unwrap();
        });
        // The second holder waits while the first holds the lock...
        assert!(rx.recv_timeout(std::time::Duration::from_millis(300)).is_err());
        drop(first);
        // ...and gets it once the first is dropped.
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn save_creates_the_directory_and_load_reads_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployments/1337.json");
        let file = Deployments::new(1337, Address::repeat_byte(1), B256::repeat_byte(2));
        file.save(&path).unwrap();
        assert_eq!(Deployments::load(&path).unwrap(), file);
        assert!(!path.with_extension("json.tmp").exists());
    }
}
