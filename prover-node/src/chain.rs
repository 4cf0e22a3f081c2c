//! Chain access shared by the CLI and the node: providers, deployment, on-chain verification.

use alloy::{
    network::{Ethereum, EthereumWallet, TransactionBuilder},
    primitives::{Address, Bytes},
    providers::{DynProvider, PendingTransactionBuilder, Provider, ProviderBuilder},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
};

use crate::error::{Error, Result};

/// A provider with a signing wallet, over HTTP.
///
/// Nonces come from the node (`eth_getTransactionCount(pending)`) for every transaction, not from
/// alloy's default cache: a cached nonce stays incremented after a send that failed (for example a
/// fulfilment that reverted in gas estimation), and every later transaction would then wait
/// forever behind the gap.
pub fn provider(rpc_url: &str, signer: PrivateKeySigner) -> Result<DynProvider> {
    let url = rpc_url.parse().map_err(|e| Error::Invalid(format!("invalid RPC URL {rpc_url:?}: {e}")))?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url)
        .erased())
}

/// Parses a hex private key.
pub fn signer(key: &str) -> Result<PrivateKeySigner> {
    key.trim().parse().map_err(|_| Error::Invalid("the private key is not a 32-byte hex string".into()))
}

/// Deploys creation bytecode and returns the contract address.
pub async fn deploy(provider: &DynProvider, bytecode: Vec<u8>) -> Result<Address> {
    let tx = TransactionRequest::default().with_deploy_code(bytecode);
    let pending = provider.send_transaction(tx).await.map_err(|e| Error::Rpc(e.to_string()))?;
    let receipt = pending.get_receipt().await.map_err(|e| Error::Rpc(e.to_string()))?;
    if !receipt.status() {
        return Err(Error::Reverted(format!("deployment in {}", receipt.transaction_hash)));
    }
    receipt.contract_address.ok_or_else(|| Error::Reverted("no contract address in the receipt".into()))
}

/// Deploys a compiled verifier: first its later parts, if it was cut into several contracts
/// (`verifier_gen::split`), each through the standard CREATE2 deployer with the zero salt unless
/// its code is at its address already, then the verifier itself by CREATE. Returns the verifier's
/// address.
///
/// # Errors
/// [`Error::Invalid`] if the chain has no CREATE2 deployer or a part's address holds other code;
/// [`Error::Reverted`], [`Error::Rpc`].
pub async fn deploy_verifier(provider: &DynProvider, compiled: &verifier_gen::Compiled) -> Result<Address> {
    for part in &compiled.parts {
        let address = deploy_part(provider, part).await?;
        tracing::debug!(part = %part.contract, %address, "verifier part deployed");
    }
    deploy(provider, compiled.bytecode.clone()).await
}

/// Deploys one later part of a verifier at its CREATE2 address (nothing is sent if it is there).
pub async fn deploy_part(provider: &DynProvider, part: &verifier_gen::Part) -> Result<Address> {
    // The address follows from the init code: a changed artifact is refused before anything is sent.
    let address = Address::new(part.check().map_err(Error::Invalid)?);
    let rpc = |e: alloy::transports::TransportError| Error::Rpc(e.to_string());
    let code = provider.get_code_at(address).await.map_err(rpc)?;
    if code.is_empty() {
        let factory = Address::new(verifier_gen::CREATE2_FACTORY);
        if provider.get_code_at(factory).await.map_err(rpc)?.is_empty() {
            return Err(Error::Invalid(format!(
                "{} must be deployed through the CREATE2 deployer {factory}, which this chain does not have",
                part.contract
            )));
        }
        let data = [&[0u8; 32][..], &part.bytecode].concat();
        let tx = TransactionRequest::default().with_to(factory).with_input(Bytes::from(data));
        let pending = provider.send_transaction(tx).await.map_err(rpc)?;
        let receipt = pending.get_receipt().await.map_err(|e| Error::Rpc(e.to_string()))?;
        if !receipt.status() {
            return Err(Error::Reverted(format!("deployment of {} in {}", part.contract, receipt.transaction_hash)));
        }
    }
    let code = provider.get_code_at(address).await.map_err(rpc)?;
    let hash = format!("{}", alloy::primitives::keccak256(&code));
    if !hash.eq_ignore_ascii_case(&part.codehash) {
        return Err(Error::Invalid(format!(
            "the code at {address} has hash {hash}, not that of {} ({})",
            part.contract, part.codehash
        )));
    }
    Ok(address)
}

/// Outcome of calling a verifier contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnChainVerification {
    /// Whether the verifier accepted the proof.
    pub accepted: bool,
    /// Gas of a transaction making this call (intrinsic cost included), if accepted.
    pub tx_gas: Option<u64>,
}

/// Calls a verifier with `calldata` (`eth_call`), and estimates the gas of doing so.
pub async fn verify_on_chain(
    provider: &DynProvider,
    verifier: Address,
    calldata: Vec<u8>,
) -> Result<OnChainVerification> {
    let code = provider.get_code_at(verifier).await.map_err(|e| Error::Rpc(e.to_string()))?;
    if code.is_empty() {
        return Err(Error::Invalid(format!("no contract at {verifier}")));
    }
    let tx = TransactionRequest::default().with_to(verifier).with_input(Bytes::from(calldata));
    match provider.call(tx.clone()).await {
        Ok(_) => {
            let gas = provider.estimate_gas(tx).await.map_err(|e| Error::Rpc(e.to_string()))?;
            Ok(OnChainVerification { accepted: true, tx_gas: Some(gas) })
        }
        Err(e) if e.as_error_resp().is_some() => Ok(OnChainVerification { accepted: false, tx_gas: None }),
        Err(e) => Err(Error::Rpc(e.to_string())),
    }
}

/// Waits for a sent contract call to be mined and checks it succeeded.
pub async fn mined(
    sent: std::result::Result<PendingTransactionBuilder<Ethereum>, alloy::contract::Error>,
    what: &str,
) -> Result<TransactionReceipt> {
    let receipt =
        sent.map_err(|e| Error::Rpc(e.to_string()))?.get_receipt().await.map_err(|e| Error::Rpc(e.to_string()))?;
    if !receipt.status() {
        return Err(Error::Reverted(format!("{what} in {}", receipt.transaction_hash)));
    }
    Ok(receipt)
}

/// The request id of the `InferenceRequested` (or `PrivateInferenceRequested`) event in a receipt.
pub fn requested_id(receipt: &TransactionReceipt) -> Result<alloy::primitives::U256> {
    use crate::bindings::IInferenceCoordinator::{InferenceRequested, PrivateInferenceRequested};
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|l| {
            l.log_decode::<InferenceRequested>()
                .map(|l| l.inner.data.requestId)
                .or_else(|_| l.log_decode::<PrivateInferenceRequested>().map(|l| l.inner.data.requestId))
                .ok()
        })
        .ok_or_else(|| Error::Invalid("no InferenceRequested or PrivateInferenceRequested event in the receipt".into()))
}

/// Signed integers as Solidity `int256[]` values.
pub fn int256s(values: &[i64]) -> Vec<alloy::primitives::I256> {
    values.iter().map(|v| alloy::primitives::I256::try_from(*v).expect("every i64 is an int256")).collect()
}
