//! An in-memory chain for unit tests of the job state machine: blocks with request events and
//! fulfilments, a transaction pool with EIP-1559 inclusion and the 10% replacement rule, reorgs,
//! evictions, base-fee spikes, and calls that fail or hang on demand.
//!
//! The coordinator's state is recomputed from the canonical blocks, so a reorg undoes requests
//! and fulfilments exactly as on a real chain.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use alloy::{
    primitives::{keccak256, Address, Bytes, B256, U256},
    transports::TransportErrorKind,
};

use super::{
    input_hash, BlockInfo, ChainClient, ChainError, ChainResult, Fulfilment, OnChainModel, OnChainRequest, Receipt,
    RequestEvent, RequestStatus, SignedTx, TxParams,
};
use super::{Claim, Payload, Sealed};
use crate::bindings::IInferenceCoordinator::{self, IInferenceCoordinatorErrors as CoordErr};

/// Gas a fake fulfilment uses.
pub const FULFIL_GAS: u64 = 300_000;

/// The requester of every fake request unless a test names another.
pub const REQUESTER: Address = Address::repeat_byte(0xEE);

/// A private request: the envelope, its commitment and the prover it names.
#[derive(Clone, Debug)]
pub struct PrivateRequest {
    /// The prover named (the only one that may fulfil).
    pub prover: Address,
    /// The requester (`msg.sender` of the request, part of the envelope's associated data).
    pub requester: Address,
    /// `C`.
    pub commitment: B256,
    /// The key the envelope is sealed to.
    pub encryption_key: B256,
    /// The envelope.
    pub ciphertext: Bytes,
}

#[derive(Clone, Debug)]
enum Op {
    Request {
        id: U256,
        model: B256,
        requester: Address,
        /// The input of a public request; the envelope of a private one.
        payload: Result<Vec<i64>, Sealed>,
        prover: Address,
        payment: U256,
        deadline: u64,
    },
    /// A transaction: ours (`hash` of a signed fulfilment) or another fulfiller's.
    Fulfil {
        hash: B256,
        from: Address,
        id: U256,
        /// `Claim::hash` of what it fulfils with.
        input_hash: B256,
        /// `fulfillPrivateInference` (else `fulfillInference`).
        private: bool,
    },
}

impl Op {
    /// The request this op makes, as the coordinator stores it.
    fn stored(&self) -> Option<(U256, Req)> {
        let Op::Request { id, payload, prover, deadline, .. } = self else { return None };
        let input_hash = match payload {
            Ok(input) => input_hash(input),
            Err(sealed) => sealed.commitment,
        };
        let req = Req {
            status: RequestStatus::Pending,
            input_hash,
            prover: *prover,
            deadline: *deadline,
            fulfiller: Address::ZERO,
        };
        Some((*id, req))
    }
}

#[derive(Clone, Debug)]
struct Block {
    hash: B256,
    base_fee: u128,
    timestamp: u64,
    ops: Vec<Op>,
}

#[derive(Clone, Debug)]
struct PooledTx {
    hash: B256,
    params: TxParams,
    f: Fulfilment,
}

#[derive(Clone, Debug)]
struct Req {
    status: RequestStatus,
    input_hash: B256,
    prover: Address,
    deadline: u64,
    fulfiller: Address,
}

/// Mutable state of the fake chain.
#[derive(Debug)]
pub struct State {
    /// Canonical blocks, block 0 first.
    blocks: Vec<Block>,
    forks: u64,
    /// Transactions signed by the node (hash → params), whether or not broadcast.
    signed: HashMap<B256, PooledTx>,
    /// The pool.
    pool: Vec<PooledTx>,
    /// Base fee of the next block.
    pub next_base_fee: u128,
    /// Suggested tip.
    pub tip: u128,
    /// Mine a block after every accepted broadcast.
    pub automine: bool,
    /// The next this many calls fail as unavailable.
    pub fail_next: u32,
    /// Every call hangs while set.
    pub hang: bool,
    /// The next this many calls of this one method fail as unavailable.
    pub fail_method: Option<(&'static str, u32)>,
    /// The chain's clock runs this many seconds off the wall clock (block timestamps, deadlines).
    pub clock_skew: i64,
    /// Every call answers after this many milliseconds (a slow but healthy endpoint).
    pub delay_ms: u64,
    /// A lagging log index: `eth_getLogs` leaves out events of the last this many blocks.
    pub log_lag: u64,
    /// The next this many `eth_getBlockByNumber` calls answer `null` (a load-balanced endpoint
    /// whose backend does not have the block yet).
    pub null_blocks: u32,
    /// The coordinator's code exists from this block on (reads of its state before it fail to
    /// decode, as an `eth_call` to an address without code does).
    pub deployed_at: u64,
    /// State older than this block is pruned: reading it fails (`missing trie node`).
    pub history_from: u64,
    /// Broadcasts accepted (hashes, in order).
    pub broadcasts: Vec<B256>,
    /// Broadcasts attempted, accepted or not.
    pub broadcast_calls: usize,
    /// Models registered.
    pub models: Vec<B256>,
    /// Signer balance.
    pub balance: U256,
    /// `encryptionKeyOf`, by account.
    pub encryption_keys: HashMap<Address, B256>,
    me: Address,
}

/// The fake chain (cheap to clone: clones share the chain).
#[derive(Clone, Debug)]
pub struct FakeChain {
    state: Arc<Mutex<State>>,
    fulfiller: Address,
    coordinator: Address,
}

fn unavailable(method: &'static str) -> ChainError {
    ChainError::Unavailable { method, source: TransportErrorKind::custom_str("connection reset") }
}

fn rejected(method: &'static str, message: &'static str) -> ChainError {
    ChainError::Rejected { method, source: TransportErrorKind::non_retryable_str(message) }
}

impl FakeChain {
    /// A chain with a genesis block, serving `model`, the node signing as `fulfiller`.
    pub fn new(fulfiller: Address, model: B256) -> Self {
        let genesis = Block {
            hash: keccak256(b"genesis"),
            base_fee: 1_000_000_000,
            timestamp: crate::service::now(),
            ops: vec![],
        };
        Self {
            state: Arc::new(Mutex::new(State {
                blocks: vec![genesis],
                forks: 0,
                signed: HashMap::new(),
                pool: vec![],
                next_base_fee: 1_000_000_000,
                tip: 1_000_000_000,
                automine: true,
                fail_next: 0,
                hang: false,
                fail_method: None,
                log_lag: 0,
                null_blocks: 0,
                deployed_at: 0,
                history_from: 0,
                delay_ms: 0,
                clock_skew: 0,
                broadcasts: vec![],
                broadcast_calls: 0,
                models: vec![model],
                balance: U256::from(10u64).pow(U256::from(18)),
                encryption_keys: HashMap::new(),
                me: fulfiller,
            })),
            fulfiller,
            coordinator: Address::repeat_byte(0xC0),
        }
    }

    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Head block number.
    pub fn head_number(&self) -> u64 {
        self.with(|s| s.blocks.len() as u64 - 1)
    }

    /// Mines a block with a request; returns its block number.
    pub fn request(&self, id: u64, model: B256, input: Vec<i64>, deadline: u64) -> u64 {
        let op = Op::Request {
            id: U256::from(id),
            model,
            requester: REQUESTER,
            payload: Ok(input),
            prover: Address::ZERO,
            payment: U256::from(1_000_000u64),
            deadline,
        };
        self.with(|s| s.mine(vec![op]))
    }

    /// Mines a block with a private request; returns its block number.
    pub fn request_private(&self, id: u64, model: B256, r: PrivateRequest, deadline: u64) -> u64 {
        let op = Op::Request {
            id: U256::from(id),
            model,
            requester: r.requester,
            payload: Err(Sealed {
                commitment: r.commitment,
                encryption_key: r.encryption_key,
                ciphertext: r.ciphertext,
            }),
            prover: r.prover,
            payment: U256::from(1_000_000u64),
            deadline,
        };
        self.with(|s| s.mine(vec![op]))
    }

    /// Mines a block in which `from` fulfils request `id` with `input`.
    pub fn fulfil_by(&self, id: u64, from: Address, input: &[i64]) {
        let op = Op::Fulfil {
            hash: keccak256(from),
            from,
            id: U256::from(id),
            input_hash: input_hash(input),
            private: false,
        };
        self.with(|s| s.mine(vec![op]));
    }

    /// Whether any `fulfillPrivateInference` of ours was signed (sent or not).
    pub fn signed_private(&self) -> usize {
        self.with(|s| s.signed.values().filter(|t| matches!(t.f.claim, Claim::Commitment(_))).count())
    }

    /// Mines `n` blocks (including pooled transactions that pay the base fee).
    pub fn mine(&self, n: usize) {
        self.with(|s| {
            for _ in 0..n {
                s.mine(vec![]);
            }
        });
    }

    /// Removes the last `depth` blocks (their transactions vanish, as with anvil's `evm_revert`).
    pub fn reorg(&self, depth: usize) {
        self.with(|s| {
            let keep = s.blocks.len() - depth;
            s.blocks.truncate(keep);
            s.forks += 1;
        });
    }

    /// Empties the pool.
    pub fn evict_all(&self) {
        self.with(|s| s.pool.clear());
    }

    /// Request status now.
    pub fn status(&self, id: u64) -> (RequestStatus, Address) {
        self.with(|s| s.requests().get(&U256::from(id)).map(|r| (r.status, r.fulfiller)))
            .unwrap_or((RequestStatus::None, Address::ZERO))
    }

    /// Fulfilments by the node mined on the canonical chain (successful or not).
    pub fn our_mined_txs(&self) -> usize {
        self.with(|s| {
            s.blocks
                .iter()
                .flat_map(|b| &b.ops)
                .filter(|op| matches!(op, Op::Fulfil { from, .. } if *from == self.fulfiller))
                .count()
        })
    }

    /// The mined version of our transaction with `nonce`, if any: (max_fee, tip).
    pub fn mined_fees(&self, nonce: u64) -> Option<(u128, u128)> {
        self.with(|s| {
            s.blocks.iter().flat_map(|b| &b.ops).find_map(|op| match op {
                Op::Fulfil { hash, .. } => {
                    s.signed.get(hash).filter(|t| t.params.nonce == nonce).map(|t| (t.params.max_fee, t.params.tip))
                }
                _ => None,
            })
        })
    }

    async fn gate(&self, method: &'static str) -> ChainResult<()> {
        loop {
            let (hang, fail, delay) = self.with(|s| {
                let mut fail = s.fail_next > 0;
                if fail {
                    s.fail_next -= 1;
                }
                if let Some((m, n)) = &mut s.fail_method {
                    if *m == method && *n > 0 {
                        *n -= 1;
                        fail = true;
                    }
                }
                (s.hang, fail, s.delay_ms)
            });
            if fail {
                return Err(unavailable(method));
            }
            if !hang {
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl State {
    /// Whether the state of `block` is still kept.
    fn historic(&self, method: &'static str, block: u64) -> ChainResult<()> {
        if block < self.history_from {
            return Err(rejected(method, "missing trie node"));
        }
        if block as usize >= self.blocks.len() {
            return Err(rejected(method, "header not found"));
        }
        Ok(())
    }

    fn now(&self) -> u64 {
        crate::service::now().saturating_add_signed(self.clock_skew)
    }

    fn requests(&self) -> HashMap<U256, Req> {
        let mut out: HashMap<U256, Req> = HashMap::new();
        for op in self.blocks.iter().flat_map(|b| &b.ops) {
            match op {
                Op::Request { .. } => {
                    let (id, req) = op.stored().expect("a request");
                    out.insert(id, req);
                }
                Op::Fulfil { from, id, input_hash, private, .. } => {
                    if let Some(r) = out.get_mut(id) {
                        if self.check(r, *id, *from, *input_hash, *private).is_ok() {
                            r.status = RequestStatus::Fulfilled;
                            r.fulfiller = *from;
                        }
                    }
                }
            }
        }
        out
    }

    /// Whether a fulfilment of `id` by `from` with `input_hash` succeeds, else the coordinator's
    /// error, in the coordinator's order of checks.
    fn check(&self, r: &Req, id: U256, from: Address, input_hash: B256, private: bool) -> Result<(), CoordErr> {
        use IInferenceCoordinator as I;
        if r.status != RequestStatus::Pending {
            return Err(CoordErr::RequestNotPending(I::RequestNotPending { requestId: id }));
        }
        if r.deadline <= self.now() {
            return Err(CoordErr::RequestExpired(I::RequestExpired { requestId: id }));
        }
        let is_private = r.prover != Address::ZERO;
        if private && !is_private {
            return Err(CoordErr::NotPrivateRequest(I::NotPrivateRequest { requestId: id }));
        }
        if !private && is_private {
            return Err(CoordErr::PrivateRequest(I::PrivateRequest { requestId: id }));
        }
        if private && from != r.prover {
            return Err(CoordErr::NotNamedProver(I::NotNamedProver { requestId: id, caller: from }));
        }
        if r.input_hash != input_hash {
            // The fake's stand-in for a proof of other instances (a public input that differs is
            // `InputMismatch`; a private claim is checked by the verifier).
            return Err(if private {
                CoordErr::InvalidProof(I::InvalidProof {})
            } else {
                CoordErr::InputMismatch(I::InputMismatch { requestId: id })
            });
        }
        Ok(())
    }

    fn nonce(&self, who: Address) -> u64 {
        self.blocks
            .iter()
            .flat_map(|b| &b.ops)
            .filter(|op| matches!(op, Op::Fulfil { from, .. } if *from == who))
            .count() as u64
    }

    fn mine(&mut self, mut ops: Vec<Op>) -> u64 {
        let number = self.blocks.len() as u64;
        let base_fee = self.next_base_fee;
        // Our pooled transactions, in nonce order, while each pays the base fee.
        let mut nonce = self.nonce(self.me);
        while let Some(i) = self.pool.iter().position(|t| t.params.nonce == nonce && t.params.max_fee >= base_fee) {
            let t = self.pool.remove(i);
            ops.push(Op::Fulfil {
                hash: t.hash,
                from: self.me,
                id: t.f.request_id,
                input_hash: t.f.claim.hash(),
                private: matches!(t.f.claim, Claim::Commitment(_)),
            });
            nonce += 1;
        }
        let hash = keccak256([number.to_be_bytes(), self.forks.to_be_bytes()].concat());
        let timestamp = self.now();
        self.blocks.push(Block { hash, base_fee, timestamp, ops });
        self.pool.retain(|t| t.params.nonce >= nonce);
        number
    }

    fn receipt(&self, hash: B256) -> Option<Receipt> {
        let mut reqs: HashMap<U256, Req> = HashMap::new();
        for (number, b) in self.blocks.iter().enumerate() {
            for op in &b.ops {
                match op {
                    Op::Request { .. } => {
                        let (id, req) = op.stored().expect("a request");
                        reqs.insert(id, req);
                    }
                    Op::Fulfil { hash: h, from, id, input_hash, private } => {
                        let ok = reqs.get(id).is_some_and(|r| self.check(r, *id, *from, *input_hash, *private).is_ok());
                        if ok {
                            let r = reqs.get_mut(id).expect("checked");
                            r.status = RequestStatus::Fulfilled;
                            r.fulfiller = *from;
                        }
                        if *h == hash {
                            return Some(Receipt { success: ok, block_number: number as u64, gas_used: FULFIL_GAS });
                        }
                    }
                }
            }
        }
        None
    }
}

impl ChainClient for FakeChain {
    fn fulfiller(&self) -> Address {
        self.fulfiller
    }

    fn coordinator(&self) -> Address {
        self.coordinator
    }

    async fn chain_id(&self) -> ChainResult<u64> {
        self.gate("eth_chainId").await?;
        Ok(31337)
    }

    async fn head(&self) -> ChainResult<u64> {
        self.gate("eth_blockNumber").await?;
        Ok(self.head_number())
    }

    async fn block(&self, number: u64) -> ChainResult<Option<BlockInfo>> {
        self.gate("eth_getBlockByNumber").await?;
        Ok(self.with(|s| {
            if s.null_blocks > 0 {
                s.null_blocks -= 1;
                return None;
            }
            s.blocks.get(number as usize).map(|b| BlockInfo {
                hash: b.hash,
                base_fee: b.base_fee,
                timestamp: b.timestamp,
            })
        }))
    }

    async fn code_size(&self, address: Address) -> ChainResult<usize> {
        self.gate("eth_getCode").await?;
        Ok(if address == self.coordinator { 1000 } else { 0 })
    }

    async fn requested(&self, from: u64, to: u64) -> ChainResult<Vec<RequestEvent>> {
        self.gate("eth_getLogs").await?;
        Ok(self.with(|s| {
            let mut out = vec![];
            let indexed = (s.blocks.len() as u64).saturating_sub(s.log_lag);
            for (number, b) in s.blocks.iter().enumerate() {
                let number = number as u64;
                if number < from || number > to || number >= indexed {
                    continue;
                }
                for op in &b.ops {
                    let Op::Request { id, model, requester, payload, prover, payment, deadline } = op else { continue };
                    // As the node's topic filter: private requests naming another prover are not fetched.
                    if payload.is_err() && *prover != s.me {
                        continue;
                    }
                    out.push(RequestEvent {
                        request_id: *id,
                        model_id: *model,
                        requester: *requester,
                        payload: match payload {
                            Ok(input) => Payload::Public(Some(input.clone())),
                            Err(sealed) => Payload::Private(sealed.clone()),
                        },
                        payment: *payment,
                        deadline: *deadline,
                        block_number: number,
                        block_hash: b.hash,
                    });
                }
            }
            out
        }))
    }

    async fn request(&self, id: U256) -> ChainResult<OnChainRequest> {
        self.gate("getRequest").await?;
        Ok(self.with(|s| {
            s.requests()
                .get(&id)
                .map(|r| OnChainRequest {
                    status: r.status,
                    input_hash: r.input_hash,
                    prover: r.prover,
                    deadline: r.deadline,
                    fulfiller: r.fulfiller,
                })
                .unwrap_or(OnChainRequest {
                    status: RequestStatus::None,
                    input_hash: B256::ZERO,
                    prover: Address::ZERO,
                    deadline: 0,
                    fulfiller: Address::ZERO,
                })
        }))
    }

    async fn coordinator_deployed_at(&self, block: u64) -> ChainResult<bool> {
        self.gate("eth_getCode").await?;
        self.with(|s| s.historic("eth_getCode", block))?;
        Ok(self.with(|s| block >= s.deployed_at))
    }

    async fn request_at(&self, id: U256, block: u64) -> ChainResult<Option<Address>> {
        self.gate("getRequest").await?;
        self.with(|s| s.historic("getRequest", block))?;
        if self.with(|s| block < s.deployed_at) {
            return Err(ChainError::NotACoordinator {
                address: self.coordinator,
                reason: "getRequest: no code at this block".into(),
            });
        }
        Ok(self.with(|s| {
            s.blocks.iter().take(block as usize + 1).flat_map(|b| &b.ops).find_map(|op| match op {
                Op::Request { id: i, prover, .. } if *i == id => Some(*prover),
                _ => None,
            })
        }))
    }

    async fn encryption_key_of(&self, account: Address) -> ChainResult<B256> {
        self.gate("encryptionKeyOf").await?;
        Ok(self.with(|s| s.encryption_keys.get(&account).copied().unwrap_or_default()))
    }

    async fn model(&self, id: B256) -> ChainResult<Option<OnChainModel>> {
        self.gate("getModel").await?;
        Ok(self
            .with(|s| s.models.contains(&id))
            .then_some(OnChainModel { verifier: Address::repeat_byte(1), active: true }))
    }

    async fn nonce(&self) -> ChainResult<u64> {
        self.gate("eth_getTransactionCount").await?;
        Ok(self.with(|s| s.nonce(self.fulfiller)))
    }

    async fn balance(&self) -> ChainResult<U256> {
        self.gate("eth_getBalance").await?;
        Ok(self.with(|s| s.balance))
    }

    async fn suggested_tip(&self) -> ChainResult<u128> {
        self.gate("eth_maxPriorityFeePerGas").await?;
        Ok(self.with(|s| s.tip))
    }

    async fn estimate_fulfil(&self, f: &Fulfilment) -> ChainResult<u64> {
        self.gate("eth_estimateGas").await?;
        let private = matches!(f.claim, Claim::Commitment(_));
        self.with(|s| match s.requests().get(&f.request_id) {
            Some(r) => s.check(r, f.request_id, s.me, f.claim.hash(), private).map(|()| FULFIL_GAS),
            None => {
                Err(CoordErr::RequestNotPending(IInferenceCoordinator::RequestNotPending { requestId: f.request_id }))
            }
        })
        .map_err(|e| ChainError::Reverted { method: "eth_estimateGas", error: Some(e) })
    }

    async fn sign_fulfil(&self, f: &Fulfilment, params: TxParams) -> ChainResult<SignedTx> {
        let mut preimage = params.nonce.to_be_bytes().to_vec();
        preimage.extend(params.max_fee.to_be_bytes());
        preimage.extend(params.tip.to_be_bytes());
        preimage.extend(f.request_id.to_be_bytes::<32>());
        preimage.extend(f.claim.hash());
        let hash = keccak256(&preimage);
        self.with(|s| s.signed.insert(hash, PooledTx { hash, params, f: f.clone() }));
        Ok(SignedTx { hash, raw: Bytes::copy_from_slice(hash.as_slice()) })
    }

    async fn broadcast(&self, raw: &Bytes) -> ChainResult<()> {
        self.gate("eth_sendRawTransaction").await?;
        let hash = B256::from_slice(raw);
        self.with(|s| {
            s.broadcast_calls += 1;
            let t = s.signed.get(&hash).cloned().expect("only signed transactions are broadcast");
            if t.params.nonce < s.nonce(s.me) {
                return Err(rejected("eth_sendRawTransaction", "nonce too low"));
            }
            // As anvil does: a transaction that cannot pay the next block's base fee is refused.
            if t.params.max_fee < s.next_base_fee {
                return Err(rejected("eth_sendRawTransaction", "max fee per gas less than block base fee"));
            }
            if s.pool.iter().any(|p| p.hash == hash) {
                return Ok(());
            }
            if let Some(i) = s.pool.iter().position(|p| p.params.nonce == t.params.nonce) {
                let old = s.pool[i].params;
                if t.params.tip * 10 < old.tip * 11 || t.params.max_fee * 10 < old.max_fee * 11 {
                    return Err(rejected("eth_sendRawTransaction", "replacement transaction underpriced"));
                }
                s.pool.remove(i);
            }
            s.pool.push(t);
            s.broadcasts.push(hash);
            if s.automine {
                s.mine(vec![]);
            }
            Ok(())
        })
    }

    async fn receipt(&self, hash: B256) -> ChainResult<Option<Receipt>> {
        self.gate("eth_getTransactionReceipt").await?;
        Ok(self.with(|s| s.receipt(hash)))
    }

    async fn is_known(&self, hash: B256) -> ChainResult<bool> {
        self.gate("eth_getTransactionByHash").await?;
        Ok(self.with(|s| s.pool.iter().any(|t| t.hash == hash) || s.receipt(hash).is_some()))
    }
}
