//! [`ChainClient`] over JSON-RPC (alloy, HTTP). Every call runs under `rpc.timeout_ms`: alloy's
//! HTTP transport has no timeout of its own, and an endpoint that accepts a request and never
//! answers would otherwise stop the node for good. Transactions are signed locally, so their hash
//! is known (and persisted) before they are sent.

use std::{
    future::{Future, IntoFuture},
    sync::OnceLock,
    time::Duration,
};

use alloy::{
    eips::{eip2718::Encodable2718, BlockNumberOrTag},
    network::{EthereumWallet, NetworkWallet, TransactionBuilder},
    primitives::{Address, Bytes, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::{SolCall, SolEvent, SolInterface},
    transports::{RpcError, TransportError},
};
use tracing::warn;

use super::{
    BlockInfo, ChainClient, ChainError, ChainResult, Claim, Fulfilment, OnChainModel, OnChainRequest, Payload, Receipt,
    RequestEvent, RequestStatus, Sealed, SignedTx, TxParams,
};
use crate::bindings::IInferenceCoordinator::{self, IInferenceCoordinatorErrors};

/// The real chain, over HTTP.
#[derive(Clone)]
pub struct RpcClient {
    provider: DynProvider,
    wallet: EthereumWallet,
    fulfiller: Address,
    coordinator: Address,
    timeout: Duration,
    chain_id: std::sync::Arc<OnceLock<u64>>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("fulfiller", &self.fulfiller)
            .field("coordinator", &self.coordinator)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Sorts a transport error by what the caller should do about it.
pub fn classify(method: &'static str, e: TransportError) -> ChainError {
    match &e {
        RpcError::ErrorResp(payload) if payload.is_retry_err() => ChainError::Unavailable { method, source: e },
        RpcError::ErrorResp(payload) => match payload.as_revert_data() {
            Some(data) => ChainError::Reverted { method, error: IInferenceCoordinatorErrors::abi_decode(&data).ok() },
            None => ChainError::Rejected { method, source: e },
        },
        // A request we could not even encode, or a feature the endpoint lacks: retrying is useless.
        RpcError::SerError(_) | RpcError::LocalUsageError(_) | RpcError::UnsupportedFeature(_) => {
            ChainError::Rejected { method, source: e }
        }
        // Connection failures, HTTP errors, empty or garbage answers: the endpoint, not the request.
        RpcError::Transport(_) | RpcError::NullResp | RpcError::DeserError { .. } => {
            ChainError::Unavailable { method, source: e }
        }
    }
}

fn contract_error(method: &'static str, coordinator: Address, e: alloy::contract::Error) -> ChainError {
    match e {
        alloy::contract::Error::TransportError(e) => classify(method, e),
        other => ChainError::NotACoordinator { address: coordinator, reason: format!("{method}: {other}") },
    }
}

impl RpcClient {
    /// A client for `rpc_url`, signing with `signer`, every call bounded by `timeout`.
    pub fn new(
        rpc_url: &str,
        signer: PrivateKeySigner,
        coordinator: Address,
        timeout: Duration,
    ) -> crate::Result<Self> {
        let url = rpc_url
            .parse()
            .map_err(|e| crate::Error::Config { key: "rpc.http_url", reason: format!("{rpc_url:?}: {e}") })?;
        let provider = ProviderBuilder::new().disable_recommended_fillers().connect_http(url).erased();
        let fulfiller = signer.address();
        Ok(Self {
            provider,
            wallet: EthereumWallet::from(signer),
            fulfiller,
            coordinator,
            timeout,
            chain_id: Default::default(),
        })
    }

    async fn timed<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, TransportError>>,
    ) -> ChainResult<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e| classify(method, e)),
            Err(_) => Err(ChainError::Timeout { method, after: self.timeout }),
        }
    }

    async fn timed_call<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, alloy::contract::Error>>,
    ) -> ChainResult<T> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e| contract_error(method, self.coordinator, e)),
            Err(_) => Err(ChainError::Timeout { method, after: self.timeout }),
        }
    }

    fn coordinator_instance(&self) -> IInferenceCoordinator::IInferenceCoordinatorInstance<&DynProvider> {
        IInferenceCoordinator::new(self.coordinator, &self.provider)
    }

    fn fulfil_request(&self, f: &Fulfilment) -> TransactionRequest {
        let input = match &f.claim {
            Claim::Input(input) => IInferenceCoordinator::fulfillInferenceCall {
                requestId: f.request_id,
                input: crate::chain::int256s(input),
                output: crate::chain::int256s(&f.output),
                proof: f.proof.clone(),
            }
            .abi_encode(),
            // The coordinator rebuilds the instances from the commitment it stores.
            Claim::Commitment(_) => IInferenceCoordinator::fulfillPrivateInferenceCall {
                requestId: f.request_id,
                output: crate::chain::int256s(&f.output),
                proof: f.proof.clone(),
            }
            .abi_encode(),
        };
        TransactionRequest::default().with_from(self.fulfiller).with_to(self.coordinator).with_input(input)
    }
}

impl ChainClient for RpcClient {
    fn fulfiller(&self) -> Address {
        self.fulfiller
    }

    fn coordinator(&self) -> Address {
        self.coordinator
    }

    async fn chain_id(&self) -> ChainResult<u64> {
        let id = self.timed("eth_chainId", self.provider.get_chain_id()).await?;
        let _ = self.chain_id.set(id);
        Ok(id)
    }

    async fn head(&self) -> ChainResult<u64> {
        self.timed("eth_blockNumber", self.provider.get_block_number()).await
    }

    async fn block(&self, number: u64) -> ChainResult<Option<BlockInfo>> {
        let block = self
            .timed(
                "eth_getBlockByNumber",
                self.provider.get_block_by_number(BlockNumberOrTag::Number(number)).into_future(),
            )
            .await?;
        Ok(block.map(|b| BlockInfo {
            hash: b.header.hash,
            base_fee: b.header.base_fee_per_gas.map(u128::from).unwrap_or(0),
            timestamp: b.header.timestamp,
        }))
    }

    async fn code_size(&self, address: Address) -> ChainResult<usize> {
        Ok(self.timed("eth_getCode", self.provider.get_code_at(address).into_future()).await?.len())
    }

    async fn coordinator_deployed_at(&self, block: u64) -> ChainResult<bool> {
        let code =
            self.timed("eth_getCode", self.provider.get_code_at(self.coordinator).number(block).into_future()).await?;
        Ok(!code.is_empty())
    }

    async fn requested(&self, from: u64, to: u64) -> ChainResult<Vec<RequestEvent>> {
        // Two filters, read inside the same block-hash check of the watcher: a filter cannot say
        // "InferenceRequested, or PrivateInferenceRequested with topic3 = us" (InferenceRequested's
        // third topic is the requester). Private requests naming other provers are never fetched.
        let public = Filter::new()
            .address(self.coordinator)
            .event_signature(IInferenceCoordinator::InferenceRequested::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        let private = Filter::new()
            .address(self.coordinator)
            .event_signature(IInferenceCoordinator::PrivateInferenceRequested::SIGNATURE_HASH)
            .topic3(self.fulfiller.into_word())
            .from_block(from)
            .to_block(to);
        let mut logs = self.timed("eth_getLogs", self.provider.get_logs(&public)).await?;
        logs.extend(self.timed("eth_getLogs", self.provider.get_logs(&private)).await?);
        logs.sort_by_key(|l| (l.block_number, l.log_index));
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            let (Some(block_number), Some(block_hash)) = (log.block_number, log.block_hash) else { continue };
            let event = if log.topic0() == Some(&IInferenceCoordinator::InferenceRequested::SIGNATURE_HASH) {
                log.log_decode::<IInferenceCoordinator::InferenceRequested>().map(|e| {
                    let e = e.inner.data;
                    RequestEvent {
                        request_id: e.requestId,
                        model_id: e.modelId,
                        requester: e.requester,
                        payload: Payload::Public(e.input.iter().map(|v| i64::try_from(*v).ok()).collect()),
                        payment: e.payment,
                        deadline: e.deadline,
                        block_number,
                        block_hash,
                    }
                })
            } else {
                log.log_decode::<IInferenceCoordinator::PrivateInferenceRequested>().map(|e| {
                    let e = e.inner.data;
                    RequestEvent {
                        request_id: e.requestId,
                        model_id: e.modelId,
                        requester: e.requester,
                        payload: Payload::Private(Sealed {
                            commitment: e.commitment,
                            encryption_key: e.encryptionKey,
                            ciphertext: e.ciphertext,
                        }),
                        payment: e.payment,
                        deadline: e.deadline.to::<u64>(),
                        block_number,
                        block_hash,
                    }
                })
            };
            match event {
                Ok(e) => out.push(e),
                Err(e) => warn!(error = %e, block_number, "undecodable request log; skipped"),
            }
        }
        Ok(out)
    }

    async fn request(&self, id: U256) -> ChainResult<OnChainRequest> {
        let c = self.coordinator_instance();
        let r = self.timed_call("getRequest", c.getRequest(id).call().into_future()).await?;
        use IInferenceCoordinator::RequestStatus as S;
        let status = match r.status {
            S::None => RequestStatus::None,
            S::Pending => RequestStatus::Pending,
            S::Fulfilled => RequestStatus::Fulfilled,
            S::Cancelled => RequestStatus::Cancelled,
            _ => {
                return Err(ChainError::NotACoordinator {
                    address: self.coordinator,
                    reason: "getRequest returned an unknown status".into(),
                })
            }
        };
        Ok(OnChainRequest {
            status,
            input_hash: r.inputHash,
            prover: r.prover,
            deadline: r.deadline.to::<u64>(),
            fulfiller: r.fulfiller,
        })
    }

    async fn request_at(&self, id: U256, block: u64) -> ChainResult<Option<Address>> {
        let c = self.coordinator_instance();
        let r = self
            .timed_call("getRequest", c.getRequest(id).block(alloy::eips::BlockId::number(block)).call().into_future())
            .await?;
        Ok((r.status != IInferenceCoordinator::RequestStatus::None).then_some(r.prover))
    }

    async fn encryption_key_of(&self, account: Address) -> ChainResult<B256> {
        let c = self.coordinator_instance();
        self.timed_call("encryptionKeyOf", c.encryptionKeyOf(account).call().into_future()).await
    }

    async fn model(&self, id: B256) -> ChainResult<Option<OnChainModel>> {
        let c = self.coordinator_instance();
        let m = self.timed_call("getModel", c.getModel(id).call().into_future()).await;
        match m {
            Ok(m) if m.verifier == Address::ZERO => Ok(None),
            // Models have no active flag since listings (issue 11): a registered model is usable.
            Ok(m) => Ok(Some(OnChainModel { verifier: m.verifier, active: true })),
            // A coordinator's getModel never reverts: whatever does is not one.
            Err(ChainError::Reverted { .. } | ChainError::Rejected { .. }) => {
                Err(ChainError::NotACoordinator { address: self.coordinator, reason: "getModel reverts".into() })
            }
            Err(e) => Err(e),
        }
    }

    async fn nonce(&self) -> ChainResult<u64> {
        self.timed(
            "eth_getTransactionCount",
            self.provider.get_transaction_count(self.fulfiller).latest().into_future(),
        )
        .await
    }

    async fn balance(&self) -> ChainResult<U256> {
        self.timed("eth_getBalance", self.provider.get_balance(self.fulfiller).into_future()).await
    }

    async fn suggested_tip(&self) -> ChainResult<u128> {
        self.timed("eth_maxPriorityFeePerGas", self.provider.get_max_priority_fee_per_gas().into_future()).await
    }

    async fn estimate_fulfil(&self, f: &Fulfilment) -> ChainResult<u64> {
        self.timed("eth_estimateGas", self.provider.estimate_gas(self.fulfil_request(f)).into_future()).await
    }

    async fn sign_fulfil(&self, f: &Fulfilment, p: TxParams) -> ChainResult<SignedTx> {
        let chain_id = match self.chain_id.get() {
            Some(id) => *id,
            None => self.chain_id().await?,
        };
        let request = self
            .fulfil_request(f)
            .with_chain_id(chain_id)
            .with_nonce(p.nonce)
            .with_gas_limit(p.gas_limit)
            .with_max_fee_per_gas(p.max_fee)
            .with_max_priority_fee_per_gas(p.tip);
        let envelope = NetworkWallet::<alloy::network::Ethereum>::sign_request(&self.wallet, request)
            .await
            .map_err(|e| ChainError::Signing(e.to_string()))?;
        Ok(SignedTx { hash: *envelope.tx_hash(), raw: envelope.encoded_2718().into() })
    }

    async fn broadcast(&self, raw: &Bytes) -> ChainResult<()> {
        self.timed("eth_sendRawTransaction", async { self.provider.send_raw_transaction(raw).await.map(|_| ()) }).await
    }

    async fn receipt(&self, hash: B256) -> ChainResult<Option<Receipt>> {
        let r =
            self.timed("eth_getTransactionReceipt", self.provider.get_transaction_receipt(hash).into_future()).await?;
        Ok(r.and_then(|r| Some(Receipt { success: r.status(), block_number: r.block_number?, gas_used: r.gas_used })))
    }

    async fn is_known(&self, hash: B256) -> ChainResult<bool> {
        let tx =
            self.timed("eth_getTransactionByHash", self.provider.get_transaction_by_hash(hash).into_future()).await?;
        Ok(tx.is_some())
    }
}
