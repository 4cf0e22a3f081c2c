//! Deploying the project's contracts from forge's build output (`out/`), for the demo and tests.

use std::path::{Path, PathBuf};

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, Bytes, B256, U256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionRequest,
    sol_types::SolValue,
};
use models::card::ModelCard;

use crate::{
    bindings::IInferenceCoordinator::{self, ModelEncoding},
    chain,
    error::{Error, Result},
    proof::Fulfiller,
    prove::{self, LoadedModel},
};

/// Creation bytecode of `contract` from forge's `out/<Contract>.sol/<Contract>.json`.
pub fn forge_bytecode(out_dir: &Path, contract: &str) -> Result<Vec<u8>> {
    let path: PathBuf = out_dir.join(format!("{contract}.sol/{contract}.json"));
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        action: "reading forge artifact (run `forge build`)",
        path: path.clone(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::BadFile {
        path: path.clone(),
        what: "forge artifact",
        reason: e.to_string(),
    })?;
    let hex_code = json["bytecode"]["object"].as_str().ok_or_else(|| Error::BadFile {
        path: path.clone(),
        what: "forge artifact",
        reason: "no bytecode.object".into(),
    })?;
    hex::decode(hex_code.trim_start_matches("0x")).map_err(|e| Error::BadFile {
        path,
        what: "forge artifact",
        reason: e.to_string(),
    })
}

/// Deploys `bytecode ‖ abi.encode(args)` with `value` wei.
pub async fn deploy_with(provider: &DynProvider, mut bytecode: Vec<u8>, args: &[u8], value: U256) -> Result<Address> {
    bytecode.extend_from_slice(args);
    if value.is_zero() {
        return chain::deploy(provider, bytecode).await;
    }
    let tx = TransactionRequest::default().with_deploy_code(bytecode).with_value(value);
    let receipt = provider
        .send_transaction(tx)
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?
        .get_receipt()
        .await
        .map_err(|e| Error::Rpc(e.to_string()))?;
    if !receipt.status() {
        return Err(Error::Reverted("deployment".into()));
    }
    receipt.contract_address.ok_or_else(|| Error::Reverted("no contract address".into()))
}

/// The on-chain encoding struct of a card.
pub fn encoding(card: &ModelCard) -> ModelEncoding {
    let e = verifier_gen::Encoding::of_card(card);
    ModelEncoding {
        inputLen: e.input_len,
        outputLen: e.output_len,
        inputScaleBits: e.input_scale_bits,
        outputScaleBits: e.output_scale_bits,
        valueBits: e.value_bits,
        inputMin: e.input_min,
        inputMax: e.input_max,
        outputMin: e.output_min,
        outputMax: e.output_max,
        inputCommitted: e.input_committed,
    }
}

/// A deployed coordinator with one registered model and one listing of it.
#[derive(Clone, Debug)]
pub struct Deployment {
    /// Coordinator address.
    pub coordinator: Address,
    /// Verifier address.
    pub verifier: Address,
    /// Registered model id (checked equal to the card's).
    pub model_id: B256,
    /// The listing requests go through.
    pub listing_id: U256,
}

/// Verifier calldata (instances ‖ proof) of a valid proof, for `registerModel` to measure the
/// verifier's gas on: the model's smallest input (with a random salt if the input is committed),
/// bound to no coordinator.
pub fn sample_calldata(model: &LoadedModel) -> Result<Bytes> {
    let input = vec![model.card.input_range.0; model.card.input_shape.iter().product::<usize>()];
    Ok(prove::prove(model, &input, prove::sample_salt(&model.model), U256::ZERO, &Fulfiller::default())?
        .verifier_calldata)
}

/// Registers the card's model (deployed at `verifier`) with a valid `sample` (see
/// [`sample_calldata`]), checking the coordinator derives the card's model id.
pub async fn register_model(
    c: &IInferenceCoordinator::IInferenceCoordinatorInstance<DynProvider>,
    verifier: Address,
    card: &ModelCard,
    sample: Bytes,
) -> Result<B256> {
    chain::mined(c.registerModel(verifier, encoding(card), sample).send().await, "registerModel").await?;
    let model_id: B256 = card.model_id.parse().map_err(|_| Error::Invalid("bad model id in card".into()))?;
    let model = c.getModel(model_id).call().await.map_err(|e| Error::Rpc(e.to_string()))?;
    if model.verifier != verifier {
        return Err(Error::Invalid(format!("the coordinator registered another id than the card's {model_id}")));
    }
    Ok(model_id)
}

/// Lists `model_id` for `fee` wei with a fulfilment window of `deadline_seconds`.
pub async fn create_listing(
    c: &IInferenceCoordinator::IInferenceCoordinatorInstance<DynProvider>,
    model_id: B256,
    fee: U256,
    deadline_seconds: u64,
) -> Result<U256> {
    let fee: alloy::primitives::Uint<96, 2> = fee.to();
    let receipt = chain::mined(c.createListing(model_id, fee, deadline_seconds).send().await, "createListing").await?;
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<IInferenceCoordinator::ListingCreated>().ok())
        .map(|l| l.inner.data.listingId)
        .ok_or_else(|| Error::Invalid("createListing emitted no ListingCreated".into()))
}

/// Deploys the coordinator and the card's verifier, registers the model (measuring the verifier on
/// `sample`) and lists it.
pub async fn deploy_system(
    provider: &DynProvider,
    out_dir: &Path,
    card_path: &Path,
    sample: Bytes,
    fee: U256,
    deadline_seconds: u64,
) -> Result<Deployment> {
    let card = ModelCard::load(card_path)?;
    let compiled = verifier_gen::Compiled::for_card(card_path, &card)?;
    let verifier = chain::deploy_verifier(provider, &compiled).await?;
    let coordinator = chain::deploy(provider, forge_bytecode(out_dir, "InferenceCoordinator")?).await?;
    let c = IInferenceCoordinator::new(coordinator, provider.clone());
    let model_id = register_model(&c, verifier, &card, sample).await?;
    let listing_id = create_listing(&c, model_id, fee, deadline_seconds).await?;
    Ok(Deployment { coordinator, verifier, model_id, listing_id })
}

/// ABI-encodes `DigitBounty`'s constructor arguments.
pub fn bounty_args(
    coordinator: Address,
    listing_id: U256,
    target_digit: u8,
    commit_seconds: u64,
    reveal_seconds: u64,
) -> Bytes {
    let args =
        (coordinator, listing_id, U256::from(target_digit), U256::from(commit_seconds), U256::from(reveal_seconds));
    args.abi_encode_params().into()
}
