//! Deploying to any EVM chain: the coordinator at its deterministic CREATE2 address, a model card's
//! verifier, and the model's registration and listing. These are `prover-node deploy-coordinator`,
//! `deploy-verifier` and `list-model`, and they do what the forge scripts under
//! `contracts/script/` do: the same CREATE2 deployer and salts (so the same addresses), the same
//! refusals, the same [deployments file](crate::deployments).
//!
//! Every transaction is simulated first (`eth_call`, then `eth_estimateGas`) and its gas and cost
//! (gas × `eth_gasPrice`) reported; a simulation that reverts stops the command before anything is
//! sent. Each step first looks at the chain and sends nothing when its work is done already (code
//! at the CREATE2 address, a registered model id, a recorded listing on the same terms), so a
//! second run of a command sends nothing.

use std::path::Path;

use alloy::{
    network::TransactionBuilder,
    primitives::{keccak256, Address, Bytes, B256, U256},
    providers::{DynProvider, Provider},
    rpc::types::{state::StateOverridesBuilder, TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent},
    transports::{RpcError, TransportError},
};
use models::card::ModelCard;
use verifier_gen::{Compiled, DEV_CHAIN_ID};

use crate::{
    bindings::IInferenceCoordinator::{self, IInferenceCoordinatorErrors},
    chain, contracts,
    deployments::{Deployments, ListingDeployment, ModelDeployment},
    error::{Error, Result, Shortfall},
};

/// The standard CREATE2 deployer (the "deterministic deployment proxy": calldata `salt ‖ init code`,
/// returns the 20-byte address). It is on anvil and on most public chains at this address, and
/// forge scripts deploy `new C{salt: s}()` through it.
pub const CREATE2_FACTORY: Address = Address::new(verifier_gen::CREATE2_FACTORY);

/// The preimage of the coordinator's default CREATE2 salt (`DeployCoordinator.s.sol`'s `DEFAULT_SALT`).
pub const COORDINATOR_SALT_PREIMAGE: &str = "zkinfer.InferenceCoordinator";

/// The CREATE2 salt of verifiers (`DeployVerifier.s.sol`): zero, so that one verifier code has one
/// address per chain, whoever deploys it.
pub const VERIFIER_SALT: B256 = B256::ZERO;

/// The coordinator's default CREATE2 salt: `keccak256("zkinfer.InferenceCoordinator")`.
pub fn default_coordinator_salt() -> B256 {
    keccak256(COORDINATOR_SALT_PREIMAGE)
}

/// The address `init_code` gets when deployed through [`CREATE2_FACTORY`] with `salt`.
pub fn create2_address(salt: B256, init_code: &[u8]) -> Address {
    CREATE2_FACTORY.create2_from_code(salt, init_code)
}

/// How long a sent transaction may take to be mined before the command gives up waiting.
const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Terms of a new listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListingTerms {
    /// Fee per request, in wei (at most 2^96 − 1).
    pub fee: U256,
    /// Fulfilment window of a request, in seconds (the coordinator's bounds apply).
    pub deadline_seconds: u64,
}

/// What `deploy-coordinator` found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorDeployment {
    /// The coordinator's address (the CREATE2 address of the salt and the init code).
    pub address: Address,
    /// Whether this run deployed it (false: it was there already, or a dry run).
    pub deployed: bool,
}

/// What `deploy-verifier` found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifierDeployment {
    /// The verifier's address (the CREATE2 address of the zero salt and its init code).
    pub address: Address,
    /// Whether this run deployed it (false: it was there already, or a dry run).
    pub deployed: bool,
}

/// What `list-model` found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelListing {
    /// The coordinator.
    pub coordinator: Address,
    /// The model id (the card's, checked against the coordinator's derivation).
    pub model_id: B256,
    /// The model's verifier.
    pub verifier: Address,
    /// Whether this run registered the model.
    pub registered: bool,
    /// The listing (`None` on a dry run that would create one).
    pub listing_id: Option<u64>,
    /// Whether this run created the listing.
    pub listed: bool,
}

/// What `encryption-key register` found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRegistration {
    /// The coordinator.
    pub coordinator: Address,
    /// The signer's key on it before (zero: none).
    pub previous: B256,
    /// Whether this run sent `setEncryptionKey` (false: registered already, or a dry run).
    pub sent: bool,
}

/// A signer on one chain, sending (or, on a dry run, only simulating) deployment transactions and
/// reporting each step as a line of text.
pub struct Deployer {
    provider: DynProvider,
    chain_id: u64,
    sender: Address,
    dry_run: bool,
    report: Box<dyn FnMut(String) + Send>,
    sent: usize,
    spent: U256,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("chain_id", &self.chain_id)
            .field("sender", &self.sender)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Deployer {
    /// Connects to `rpc_url` (HTTP) as `signer` and reads the chain id.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed URL, [`Error::Rpc`] when the endpoint does not answer.
    pub async fn connect(
        rpc_url: &str,
        signer: PrivateKeySigner,
        dry_run: bool,
        report: impl FnMut(String) + Send + 'static,
    ) -> Result<Self> {
        let sender = signer.address();
        let provider = chain::provider(rpc_url, signer)?;
        let chain_id = provider.get_chain_id().await.map_err(rpc)?;
        Ok(Self { provider, chain_id, sender, dry_run, report: Box::new(report), sent: 0, spent: U256::ZERO })
    }

    /// The chain id the endpoint reports.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The signing account.
    pub fn sender(&self) -> Address {
        self.sender
    }

    /// Transactions sent so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Wei paid for the transactions sent so far (gas used × effective gas price).
    pub fn spent(&self) -> U256 {
        self.spent
    }

    fn say(&mut self, line: impl Into<String>) {
        (self.report)(line.into())
    }

    async fn code(&self, address: Address) -> Result<Bytes> {
        self.provider.get_code_at(address).await.map_err(rpc)
    }

    /// Refuses a card whose verifier was made with the insecure dev SRS on any chain but the dev chain.
    ///
    /// # Errors
    /// [`Error::DevSrsOffDevChain`].
    pub fn refuse_dev_srs(&self, card: &ModelCard) -> Result<()> {
        if card.srs.insecure && self.chain_id != DEV_CHAIN_ID {
            return Err(Error::DevSrsOffDevChain { model: card.name.clone(), chain_id: self.chain_id });
        }
        Ok(())
    }

    /// Deploys the coordinator (`init_code`: forge's `InferenceCoordinator` creation code) through
    /// the CREATE2 deployer with `salt`, unless code is at its address already, and starts the
    /// deployments file at `deployments` if there is none.
    ///
    /// # Errors
    /// [`Error::DeploymentsChainMismatch`] / [`Error::BadFile`] for an unusable deployments file,
    /// [`Error::CoordinatorMismatch`] when it records another coordinator, [`Error::NoCreate2Factory`],
    /// [`Error::SimulationReverted`], [`Error::Reverted`], [`Error::Rpc`], [`Error::Io`].
    pub async fn deploy_coordinator(
        &mut self,
        init_code: &[u8],
        salt: B256,
        deployments: &Path,
    ) -> Result<CoordinatorDeployment> {
        let address = create2_address(salt, init_code);
        let _lock = Deployments::lock(deployments)?;
        let file = Deployments::load_for_chain(deployments, self.chain_id)?;
        if let Some(file) = file.as_ref().filter(|f| f.coordinator != address) {
            return Err(Error::CoordinatorMismatch {
                what: format!("the CREATE2 address of salt {salt}"),
                given: address,
                path: deployments.into(),
                recorded: file.coordinator,
            });
        }
        let deployed = if self.code(address).await?.is_empty() {
            self.create2("deploy InferenceCoordinator", salt, init_code, address).await?;
            !self.dry_run
        } else {
            self.say(format!("coordinator already deployed at {address} (salt {salt}): nothing to send"));
            false
        };
        if self.dry_run {
            self.say(format!("dry run: {} not written", deployments.display()));
        } else if file.is_none() {
            Deployments::new(self.chain_id, address, salt).save(deployments)?;
            self.say(format!("deployments file {} started", deployments.display()));
        } else {
            self.say(format!("deployments file {} already records it", deployments.display()));
        }
        Ok(CoordinatorDeployment { address, deployed })
    }

    /// Deploys a card's verifier (its compiled artifact) through the CREATE2 deployer with the zero
    /// salt, unless it is there already; checks the code there is the card's.
    ///
    /// # Errors
    /// [`Error::DevSrsOffDevChain`], [`Error::VerifierCodeMismatch`] (artifact or deployed code is not
    /// the card's verifier), [`Error::NoCreate2Factory`], [`Error::SimulationReverted`],
    /// [`Error::Reverted`], [`Error::Rpc`].
    pub async fn deploy_verifier(&mut self, card: &ModelCard, compiled: &Compiled) -> Result<VerifierDeployment> {
        self.refuse_dev_srs(card)?;
        if let Some(dev_chain) = compiled.dev_chain_id.filter(|c| *c != self.chain_id) {
            // The card says ceremony SRS, its artifact is guarded for the dev chain: they do not belong together.
            return Err(Error::Invalid(format!(
                "{}: the verifier artifact {} runs only on chain {dev_chain} (a dev-SRS verifier), but the card \
                 says its keys are on a ceremony SRS: the card and the artifact do not belong together",
                card.name, card.files.verifier_artifact
            )));
        }
        let expected = card_codehash(card)?;
        let artifact = keccak256(&compiled.deployed_bytecode);
        if artifact != expected {
            return Err(Error::VerifierCodeMismatch {
                what: format!("the verifier artifact {}", card.files.verifier_artifact),
                got: artifact,
                expected,
            });
        }
        // The later parts of a verifier cut into several contracts first: the verifier calls them.
        for part in &compiled.parts {
            self.deploy_part(part).await?;
        }
        let address = create2_address(VERIFIER_SALT, &compiled.bytecode);
        let code = self.code(address).await?;
        if !code.is_empty() {
            check_code(address, &code, expected)?;
            self.say(format!("{} already deployed at {address}: nothing to send", compiled.contract));
            return Ok(VerifierDeployment { address, deployed: false });
        }
        self.create2(&format!("deploy {}", compiled.contract), VERIFIER_SALT, &compiled.bytecode, address).await?;
        if !self.dry_run {
            check_code(address, &self.code(address).await?, expected)?;
        }
        Ok(VerifierDeployment { address, deployed: !self.dry_run })
    }

    /// Deploys a later part of a split verifier at its CREATE2 address unless it is there; checks
    /// the code there is the part's.
    async fn deploy_part(&mut self, part: &verifier_gen::Part) -> Result<()> {
        let address = Address::new(part.check().map_err(Error::Invalid)?);
        let expected: B256 =
            part.codehash.parse().map_err(|_| Error::Invalid(format!("bad code hash of {}", part.contract)))?;
        let code = self.code(address).await?;
        if !code.is_empty() {
            check_code(address, &code, expected)?;
            self.say(format!("{} already deployed at {address}: nothing to send", part.contract));
            return Ok(());
        }
        self.create2(&format!("deploy {}", part.contract), VERIFIER_SALT, &part.bytecode, address).await?;
        if !self.dry_run {
            check_code(address, &self.code(address).await?, expected)?;
        }
        Ok(())
    }

    /// Puts a card's model on the coordinator and lists it: deploys the verifier and registers the
    /// model unless the model id is registered already (`sample` is called then only: verifier
    /// calldata of a valid proof, whose verification sets the model's `verifyGas`), then creates a
    /// listing owned by the sender unless the deployments file records one of the sender's on these
    /// terms that the chain still holds. Records the model and the listing in the deployments file.
    ///
    /// The coordinator is `coordinator` if given, else the deployments file's.
    ///
    /// # Errors
    /// [`Error::DevSrsOffDevChain`], [`Error::DeploymentsMissing`] (no coordinator known),
    /// [`Error::DeploymentsChainMismatch`], [`Error::CoordinatorMismatch`], [`Error::NoCode`],
    /// [`Error::ModelIdMismatch`], [`Error::Invalid`] (a fee above 2^96 − 1), those of
    /// [`Deployer::deploy_verifier`] and of `sample`, [`Error::SimulationReverted`] (for example a
    /// deadline outside the coordinator's bounds), [`Error::Reverted`], [`Error::Rpc`], [`Error::Io`].
    pub async fn list_model(
        &mut self,
        card_path: &Path,
        card: &ModelCard,
        coordinator: Option<Address>,
        deployments: &Path,
        terms: ListingTerms,
        sample: impl FnOnce() -> Result<Bytes>,
    ) -> Result<ModelListing> {
        self.refuse_dev_srs(card)?;
        if terms.fee >= U256::from(1u8) << 96 {
            return Err(Error::Invalid(format!("the fee {} wei does not fit a uint96", terms.fee)));
        }
        // Held until the file is rewritten: a concurrent run waits instead of losing this listing.
        let _lock = Deployments::lock(deployments)?;
        let file = Deployments::load_for_chain(deployments, self.chain_id)?;
        let coordinator = self.coordinator(coordinator, file.as_ref(), deployments).await?;
        let c = IInferenceCoordinator::new(coordinator, self.provider.clone());
        // The window is checked against the coordinator's bounds before anything is sent: createListing
        // comes last, and reverting there would leave a verifier deployed and a model registered.
        let min = c.MIN_DEADLINE_SECONDS().call().await.map_err(call_error)?;
        let max = c.MAX_DEADLINE_SECONDS().call().await.map_err(call_error)?;
        if !(min..=max).contains(&terms.deadline_seconds) {
            return Err(Error::DeadlineOutOfRange { deadline: terms.deadline_seconds, min, max });
        }
        let compiled = Compiled::for_card(card_path, card)?;
        let encoding = contracts::encoding(card);
        let codehash = card_codehash(card)?;
        let card_id: B256 = card.model_id.parse().map_err(|_| Error::BadFile {
            path: card_path.into(),
            what: "model card",
            reason: format!("model id {:?} is not 32 hex bytes", card.model_id),
        })?;
        let derived = c.computeModelId(codehash, encoding.clone()).call().await.map_err(call_error)?;
        if derived != card_id {
            return Err(Error::ModelIdMismatch { model: card.name.clone(), card: card_id, derived });
        }

        let registered = c.getModel(card_id).call().await.map_err(call_error)?;
        // What the deployments file holds, as this run writes it.
        let mut recorded = file.clone();
        let (verifier, registered_now) = if registered.verifier != Address::ZERO {
            self.say(format!(
                "{} already registered: model id {card_id}, verifier {}, verifyGas {}: nothing to send",
                card.name, registered.verifier, registered.verifyGas
            ));
            (registered.verifier, false)
        } else {
            // The sample first (it may take a proof): a failure then leaves nothing half done.
            let sample = sample()?;
            // Registration simulated before the verifier is deployed (its code put in place), so a
            // sample proof the verifier rejects stops the command with nothing sent.
            let predicted = create2_address(VERIFIER_SALT, &compiled.bytecode);
            if self.code(predicted).await?.is_empty() {
                let what = format!("registerModel {}", card.name);
                let pre = c
                    .registerModel(predicted, encoding.clone(), sample.clone())
                    .into_transaction_request()
                    .with_from(self.sender);
                let code = verifier_overrides(predicted, &compiled);
                self.provider.call(pre).overrides(code).await.map_err(|e| simulation_error(&what, e))?;
            }
            let v = self.deploy_verifier(card, &compiled).await?;
            let tx = c.registerModel(v.address, encoding, sample).into_transaction_request();
            // On a dry run the verifier is not there yet: simulate with its code in place.
            let overrides = if self.code(v.address).await?.is_empty() {
                Some(verifier_overrides(v.address, &compiled))
            } else {
                None
            };
            let out = self.step(&format!("registerModel {}", card.name), tx, overrides).await?;
            let id = IInferenceCoordinator::registerModelCall::abi_decode_returns(&out.output)
                .map_err(|e| Error::Rpc(format!("registerModel returned {}: {e}", out.output)))?;
            if id != card_id {
                return Err(Error::ModelIdMismatch { model: card.name.clone(), card: card_id, derived: id });
            }
            if !self.dry_run {
                // Recorded now, not only at the end: a later step that fails leaves the file saying
                // what is on the chain.
                let mut updated =
                    recorded.clone().unwrap_or_else(|| Deployments::new(self.chain_id, coordinator, B256::ZERO));
                updated.models.insert(card.name.clone(), self.model_entry(&c, card_id, codehash, card).await?);
                self.save_deployments(deployments, &mut recorded, updated)?;
            }
            (v.address, !self.dry_run)
        };

        let fee: alloy::primitives::Uint<96, 2> = terms.fee.to();
        let mut existing = None;
        for l in file.iter().flat_map(|f| f.listings_of(card_id)) {
            if l.owner != self.sender || l.fee != terms.fee || l.deadline_seconds != terms.deadline_seconds {
                continue;
            }
            let on_chain = c.getListing(U256::from(l.listing_id)).call().await.map_err(call_error)?;
            if on_chain.modelId == card_id
                && on_chain.owner == self.sender
                && on_chain.fee == fee
                && on_chain.deadlineSeconds == terms.deadline_seconds
                && on_chain.active
            {
                existing = Some(l.listing_id);
                break;
            }
        }
        let (listing_id, listed_now) = match existing {
            Some(id) => {
                self.say(format!(
                    "listing {id} already lists {} on these terms ({} wei, {} s): nothing to send",
                    card.name, terms.fee, terms.deadline_seconds
                ));
                (Some(id), false)
            }
            None if self.dry_run && registered.verifier == Address::ZERO => {
                self.say("createListing: not simulated (the model must be registered first)".to_string());
                (None, false)
            }
            None => {
                let tx = c.createListing(card_id, fee, terms.deadline_seconds).into_transaction_request();
                let out = self.step(&format!("createListing {}", card.name), tx, None).await?;
                let id = match &out.receipt {
                    Some(receipt) => listing_created(receipt)?,
                    None => IInferenceCoordinator::createListingCall::abi_decode_returns(&out.output)
                        .map_err(|e| Error::Rpc(format!("createListing returned {}: {e}", out.output)))?,
                };
                let id: u64 = id.try_into().map_err(|_| Error::Rpc(format!("listing id {id} exceeds 64 bits")))?;
                if out.receipt.is_some() {
                    self.say(format!(
                        "listing {id}: {} wei per request, {} s to fulfil, owner {}",
                        terms.fee, terms.deadline_seconds, self.sender
                    ));
                }
                (Some(id).filter(|_| !self.dry_run), !self.dry_run)
            }
        };

        if self.dry_run {
            self.say(format!("dry run: {} not written", deployments.display()));
        } else {
            let mut updated =
                recorded.clone().unwrap_or_else(|| Deployments::new(self.chain_id, coordinator, B256::ZERO));
            if let Some(old) = updated.models.get(&card.name).filter(|m| m.model_id != card_id) {
                self.say(format!(
                    "{}: the deployments file recorded model id {} under this name; now {card_id}",
                    card.name, old.model_id
                ));
            }
            updated.models.insert(card.name.clone(), self.model_entry(&c, card_id, codehash, card).await?);
            if let Some(id) = listing_id {
                updated.listings.insert(
                    id,
                    ListingDeployment {
                        listing_id: id,
                        model: card.name.clone(),
                        model_id: card_id,
                        owner: self.sender,
                        fee: terms.fee,
                        deadline_seconds: terms.deadline_seconds,
                    },
                );
            }
            if recorded.as_ref() == Some(&updated) {
                self.say(format!("deployments file {} already up to date", deployments.display()));
            } else {
                self.save_deployments(deployments, &mut recorded, updated)?;
            }
        }
        Ok(ModelListing {
            coordinator,
            model_id: card_id,
            verifier,
            registered: registered_now,
            listing_id,
            listed: listed_now,
        })
    }

    /// Publishes `key` as the signer's X25519 encryption key on the coordinator
    /// (`setEncryptionKey`), unless it is the key registered already. The coordinator is
    /// `coordinator` if given, else the deployments file's.
    ///
    /// # Errors
    /// [`Error::DeploymentsMissing`] (no coordinator known), [`Error::DeploymentsChainMismatch`],
    /// [`Error::CoordinatorMismatch`], [`Error::NoCode`], [`Error::SimulationReverted`],
    /// [`Error::Reverted`], [`Error::Rpc`].
    pub async fn register_encryption_key(
        &mut self,
        coordinator: Option<Address>,
        deployments: &Path,
        key: B256,
    ) -> Result<KeyRegistration> {
        let file = Deployments::load_for_chain(deployments, self.chain_id)?;
        let coordinator = self.coordinator(coordinator, file.as_ref(), deployments).await?;
        let c = IInferenceCoordinator::new(coordinator, self.provider.clone());
        let previous = c.encryptionKeyOf(self.sender).call().await.map_err(call_error)?;
        if previous == key {
            self.say(format!("encryption key {key} already registered for {}: nothing to send", self.sender));
            return Ok(KeyRegistration { coordinator, previous, sent: false });
        }
        let data = IInferenceCoordinator::setEncryptionKeyCall { key }.abi_encode();
        let tx = TransactionRequest::default().with_to(coordinator).with_input(data);
        self.step("setEncryptionKey", tx, None).await?;
        Ok(KeyRegistration { coordinator, previous, sent: !self.dry_run })
    }

    /// The deployments entry of the registered model `card_id`, as the coordinator holds it.
    async fn model_entry(
        &self,
        c: &IInferenceCoordinator::IInferenceCoordinatorInstance<DynProvider>,
        card_id: B256,
        codehash: B256,
        card: &ModelCard,
    ) -> Result<ModelDeployment> {
        let model = c.getModel(card_id).call().await.map_err(call_error)?;
        Ok(ModelDeployment {
            model_id: card_id,
            verifier: model.verifier,
            codehash,
            verify_gas: model.verifyGas,
            dev_srs: card.srs.insecure,
        })
    }

    /// Writes `updated` to `path` and makes it what the file holds (`recorded`).
    fn save_deployments(
        &mut self,
        path: &Path,
        recorded: &mut Option<Deployments>,
        updated: Deployments,
    ) -> Result<()> {
        updated.save(path)?;
        self.say(format!("deployments file {} updated", path.display()));
        *recorded = Some(updated);
        Ok(())
    }

    /// The coordinator: `given` if any (it must be the deployments file's, if there is one), else
    /// the file's; it must have code.
    async fn coordinator(&self, given: Option<Address>, file: Option<&Deployments>, path: &Path) -> Result<Address> {
        let coordinator = match (given, file) {
            (Some(given), Some(f)) if given != f.coordinator => {
                return Err(Error::CoordinatorMismatch {
                    what: "--coordinator".into(),
                    given,
                    path: path.into(),
                    recorded: f.coordinator,
                })
            }
            (Some(given), _) => given,
            (None, Some(f)) => f.coordinator,
            (None, None) => return Err(Error::DeploymentsMissing { path: path.into() }),
        };
        if self.code(coordinator).await?.is_empty() {
            return Err(Error::NoCode { address: coordinator });
        }
        Ok(coordinator)
    }

    /// Deploys `init_code` through the CREATE2 deployer with `salt`, expecting it at `expected`.
    async fn create2(&mut self, what: &str, salt: B256, init_code: &[u8], expected: Address) -> Result<()> {
        if self.code(CREATE2_FACTORY).await?.is_empty() {
            return Err(Error::NoCreate2Factory { address: CREATE2_FACTORY, chain_id: self.chain_id });
        }
        let data = [salt.as_slice(), init_code].concat();
        let tx = TransactionRequest::default().with_to(CREATE2_FACTORY).with_input(data);
        let out = self.step(what, tx, None).await?;
        if out.output.as_ref() != expected.as_slice() {
            return Err(Error::Rpc(format!(
                "{what}: the CREATE2 deployer answered {} instead of the address {expected}",
                out.output
            )));
        }
        if !self.dry_run {
            self.say(format!("{what}: at {expected}"));
        }
        Ok(())
    }

    /// Simulates `tx` (with `overrides` of the chain's state, if any), reports its gas and cost,
    /// and unless this is a dry run sends it and waits for its successful receipt.
    async fn step(
        &mut self,
        what: &str,
        tx: TransactionRequest,
        overrides: Option<alloy::rpc::types::state::StateOverride>,
    ) -> Result<Step> {
        let tx = tx.with_from(self.sender);
        let output = self
            .provider
            .call(tx.clone())
            .overrides_opt(overrides.clone())
            .await
            .map_err(|e| simulation_error(what, e))?;
        let gas = self
            .provider
            .estimate_gas(tx.clone())
            .overrides_opt(overrides)
            .await
            .map_err(|e| simulation_error(what, e))?;
        let price = self.provider.get_gas_price().await.map_err(|e| rpc_in(what, "eth_gasPrice", e))?;
        self.say(format!(
            "{what}: simulated: {gas} gas, about {} ETH at {} gwei",
            format_ether(U256::from(gas) * U256::from(price)),
            format_gwei(price)
        ));
        // The estimate is exact for this state; a margin covers a state that moves before inclusion.
        let limit = gas + gas / 5;
        let needed = U256::from(limit) * U256::from(price) + tx.value.unwrap_or_default();
        let balance = self.provider.get_balance(self.sender).await.map_err(|e| rpc_in(what, "eth_getBalance", e))?;
        if balance < needed {
            let short = Error::InsufficientFunds(Box::new(Shortfall {
                what: what.into(),
                account: self.sender,
                balance,
                needed,
                gas: limit,
                gas_price: price,
            }));
            if !self.dry_run {
                return Err(short);
            }
            self.say(format!("dry run: {short}"));
        }
        if self.dry_run {
            return Ok(Step { output, receipt: None });
        }
        let pending = self
            .provider
            .send_transaction(tx.with_gas_limit(limit))
            .await
            .map_err(|e| rpc_in(what, "sending the transaction", e))?;
        self.sent += 1;
        let hash = *pending.tx_hash();
        self.say(format!("{what}: sent {hash}, waiting for its receipt"));
        let receipt = pending.with_timeout(Some(RECEIPT_TIMEOUT)).get_receipt().await.map_err(|e| {
            Error::Rpc(format!(
                "{what}: no receipt for {hash} within {} s ({e}); once it is mined, running the command again \
                 sends only what is still missing",
                RECEIPT_TIMEOUT.as_secs()
            ))
        })?;
        if !receipt.status() {
            return Err(Error::Reverted(format!("{what} in {hash}")));
        }
        let cost = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
        self.spent += cost;
        self.say(format!(
            "{what}: mined in block {}: {} gas, {} ETH",
            receipt.block_number.unwrap_or_default(),
            receipt.gas_used,
            format_ether(cost)
        ));
        Ok(Step { output, receipt: Some(receipt) })
    }
}

/// A simulated (and maybe sent) transaction.
struct Step {
    /// What the simulation returned.
    output: Bytes,
    /// The receipt, when it was sent.
    receipt: Option<TransactionReceipt>,
}

/// Verifier calldata (instance words ‖ proof) of a sample proof, for `registerModel`: from a proof
/// file of `prover-node prove` (`verifier_calldata`), or from a file with `instances` (256-bit
/// words) and `proof` (hex), as `contracts/test/fixtures` and the forge script ListModel read.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::BadFile`] when it has neither form.
pub fn load_sample(path: &Path) -> Result<Bytes> {
    #[derive(serde::Deserialize)]
    struct Sample {
        verifier_calldata: Option<Bytes>,
        instances: Option<Vec<U256>>,
        proof: Option<Bytes>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading sample proof",
        path: path.into(),
        source,
    })?;
    let bad = |reason: String| Error::BadFile { path: path.into(), what: "sample proof", reason };
    let sample: Sample = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    match sample {
        Sample { verifier_calldata: Some(calldata), .. } => Ok(calldata),
        Sample { instances: Some(instances), proof: Some(proof), .. } => {
            let mut calldata: Vec<u8> = instances.iter().flat_map(|w| w.to_be_bytes::<32>()).collect();
            calldata.extend_from_slice(&proof);
            Ok(calldata.into())
        }
        _ => Err(bad("expected `verifier_calldata` (a `prover-node prove` file) or `instances` and `proof`".into())),
    }
}

/// State overrides putting a verifier's code at `address` and each later part's at its own, for
/// simulating calls before they are deployed.
fn verifier_overrides(address: Address, compiled: &Compiled) -> alloy::rpc::types::state::StateOverride {
    let mut overrides = StateOverridesBuilder::default().with_code(address, compiled.deployed_bytecode.clone());
    for part in &compiled.parts {
        if let Ok(at) = part.address.parse::<Address>() {
            overrides = overrides.with_code(at, part.deployed_bytecode.clone());
        }
    }
    overrides.build()
}

fn card_codehash(card: &ModelCard) -> Result<B256> {
    card.verifier.codehash.parse().map_err(|_| {
        Error::Invalid(format!(
            "model card {}: verifier.codehash {:?} is not 32 hex bytes",
            card.name, card.verifier.codehash
        ))
    })
}

fn check_code(address: Address, code: &[u8], expected: B256) -> Result<()> {
    let got = keccak256(code);
    if got != expected {
        return Err(Error::VerifierCodeMismatch { what: format!("the contract at {address}"), got, expected });
    }
    Ok(())
}

fn listing_created(receipt: &TransactionReceipt) -> Result<U256> {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<IInferenceCoordinator::ListingCreated>().ok())
        .map(|l| l.inner.data.listingId)
        .ok_or_else(|| {
            Error::Rpc(format!(
                "createListing in {} emitted no {}",
                receipt.transaction_hash,
                IInferenceCoordinator::ListingCreated::SIGNATURE
            ))
        })
}

fn rpc(e: TransportError) -> Error {
    Error::Rpc(e.to_string())
}

/// An RPC failure of one step, naming the step and what it was doing.
fn rpc_in(what: &str, doing: &str, e: TransportError) -> Error {
    Error::Rpc(format!("{what}: {doing}: {e}"))
}

fn call_error(e: alloy::contract::Error) -> Error {
    Error::Rpc(e.to_string())
}

/// A reverted simulation as a named error (the coordinator's custom error or the revert string
/// when there is one); any other failure as an RPC error.
fn simulation_error(what: &str, e: TransportError) -> Error {
    let RpcError::ErrorResp(payload) = &e else { return rpc(e) };
    let reason = if let Some(err) = payload.as_decoded_interface_error::<IInferenceCoordinatorErrors>() {
        err.to_string()
    } else if let Some(revert) = payload.as_decoded_error::<alloy::sol_types::Revert>() {
        revert.reason
    } else {
        match payload.as_revert_data() {
            Some(data) if !data.is_empty() => format!("{} (revert data {data})", payload.message),
            _ => payload.message.to_string(),
        }
    };
    Error::SimulationReverted { what: what.into(), reason }
}

/// Wei as ETH, with no trailing zeros (`1500000000000000` → `0.0015`).
pub fn format_ether(wei: U256) -> String {
    decimal(wei, 18)
}

/// Wei as gwei, with no trailing zeros.
pub(crate) fn format_gwei(wei: u128) -> String {
    decimal(U256::from(wei), 9)
}

fn decimal(v: U256, decimals: usize) -> String {
    let digits = v.to_string();
    let digits = format!("{digits:0>width$}", width = decimals + 1);
    let (int, frac) = digits.split_at(digits.len() - decimals);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_printed_in_ether_and_gwei_without_trailing_zeros() {
        assert_eq!(format_ether(U256::from(1_500_000_000_000_000u64)), "0.0015");
        assert_eq!(format_ether(U256::ZERO), "0");
        assert_eq!(format_ether(U256::from(2_000_000_000_000_000_000u128)), "2");
        assert_eq!(format_ether(U256::from(1u8)), "0.000000000000000001");
        assert_eq!(format_gwei(1_000_000_000), "1");
        assert_eq!(format_gwei(2_500_000_000), "2.5");
        assert_eq!(format_gwei(7), "0.000000007");
    }

    #[test]
    fn samples_are_read_from_proof_files_and_fixtures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.json");
        std::fs::write(&path, r#"{"verifier_calldata": "0x0102", "model": "m"}"#).unwrap();
        assert_eq!(load_sample(&path).unwrap().as_ref(), [1, 2]);
        std::fs::write(&path, r#"{"instances": ["0x05"], "proof": "0xaabb"}"#).unwrap();
        let calldata = load_sample(&path).unwrap();
        assert_eq!(calldata.len(), 34);
        assert_eq!((calldata[31], &calldata[32..]), (5, &[0xaa, 0xbb][..]));
        std::fs::write(&path, r#"{"proof": "0xaabb"}"#).unwrap();
        assert!(matches!(load_sample(&path), Err(Error::BadFile { what: "sample proof", .. })));
    }

    #[test]
    fn create2_addresses_match_the_deployer_rule() {
        // keccak256(0xff ‖ deployer ‖ salt ‖ keccak256(init code))[12..], computed by hand.
        let init = [0x60u8, 0x00, 0x60, 0x00, 0xf3];
        let salt = default_coordinator_salt();
        let mut preimage = vec![0xffu8];
        preimage.extend_from_slice(CREATE2_FACTORY.as_slice());
        preimage.extend_from_slice(salt.as_slice());
        preimage.extend_from_slice(keccak256(init).as_slice());
        let expected = Address::from_slice(&keccak256(&preimage)[12..]);
        assert_eq!(create2_address(salt, &init), expected);
        assert_eq!(salt, keccak256(b"zkinfer.InferenceCoordinator"));
    }
}
