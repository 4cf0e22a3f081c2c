//! The watcher: `InferenceRequested` logs, and `PrivateInferenceRequested` logs naming this node
//! as their prover, → jobs, from a persisted cursor up to `head − confirmations`.
//!
//! Private requests: the envelope is opened when the event is read, with the ring key whose public
//! key is the event's `encryptionKey`, for the request's chain, coordinator, requester, model and
//! commitment; the opened input is checked like a public one, and `Poseidon(pack(input) ‖ salt)`
//! must be the request's commitment. A request that fails any of these is recorded as failed with
//! its reason (metric labels `unknown_encryption_key`, `undecryptable`, `input_out_of_range`,
//! `commitment_mismatch`), logged once, and never proved or answered: its requester cancels after
//! the deadline (a private input's values are never in the reason). An envelope naming a key the
//! ring lacks makes the node read its key file again first (at most once a pass), so a rotation
//! while the node runs is picked up. An opened request keeps its input and salt in the store, to be
//! proved, until it is finished (then they are cleared; a reorg reopening it opens the envelope of
//! its event again).
//!
//! Reorgs: the cursor stores the hash of the last scanned block. When that block's hash changed,
//! the cursor rewinds `REORG_REWIND` blocks and the range is scanned again. A range is accepted
//! only if the hash of its last block is the same before and after `eth_getLogs`, so a reorg
//! landing during the scan cannot skip events. A block the endpoint answers `null` for (a
//! load-balanced endpoint whose backend is behind) is "not yet available": the scan waits for the
//! next pass, it is not a reorg. A head below the cursor is the same while it passes, and a reorg
//! that shortened the chain once it lasts [`SHORT_HEAD_PASSES`] passes. An event seen again in another block with the *same* input only
//! updates the job's block; with *another* input, the job starts over from `Queued` with the new
//! input at any stage (a proof in progress is discarded when it finishes, a pending transaction is
//! outbid by the next one on its nonce).
//!
//! Lagging log indexes (`eth_getLogs` answering from an index behind `eth_blockNumber`): request
//! ids are sequential on-chain, so the watcher keeps `seen_through`, the id below which every
//! request has a job or precedes `contract.start_block`, and after each scan asks the chain
//! (state, not logs) whether the next id exists; if it does, its event was left out and the range
//! is scanned again. The ids before `contract.start_block` are counted once, on a fresh store,
//! from the coordinator's state at `start_block − 1` (none if the coordinator had no code then);
//! an endpoint that no longer keeps that state gets one rescan from `start_block` instead, after
//! the first request event is seen (see [`BaselineRescan`]). So even the first request a fresh
//! node sees is found again when the index catches up. A private request naming another prover is
//! never in this node's logs (they are filtered by prover): the gap check counts it as seen once
//! the chain's state shows it names another prover.

use std::sync::atomic::Ordering;

use alloy::primitives::{keccak256, Address, B256, U256};
use models::envelope::{self, EnvelopeContext};
use tracing::{debug, info, warn};

use crate::{
    client::{ChainClient, ChainError, ChainResult, Payload, RequestEvent, Sealed},
    error::Result,
    metrics::Failure,
    prover::ProofBackend,
    service::{now, Ctx},
    store::{BaselineRescan, DropReason, Job, JobState, PrivateInput},
};

/// How far the cursor rewinds when a reorg is detected.
pub const REORG_REWIND: u64 = 64;
/// Passes in a row with the head below the scan cursor before that is taken for a reorg that
/// shortened the chain (fewer: a backend of a load-balanced endpoint that is behind).
pub const SHORT_HEAD_PASSES: u32 = 3;

/// What a scan found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// A reorg was noticed (under the cursor, or during the scan).
    pub reorged: bool,
    /// The last block scanned.
    pub safe: u64,
}

/// A block the endpoint should have answered `null`: wait for the next pass.
fn unavailable<C>(ctx: &Ctx<C>, block: u64) {
    debug!(block, "block not yet available from the endpoint (a backend behind the head); scanning next pass");
    ctx.metrics.blocks_unavailable.fetch_add(1, Ordering::Relaxed);
}

/// Scans new logs into the store.
pub async fn scan<C: ChainClient, P: ProofBackend>(ctx: &Ctx<C>, backend: &P, head: u64) -> Result<Scan> {
    let safe = head.saturating_sub(ctx.cfg.prover.confirmations);
    let start = ctx.cfg.contract.start_block;
    let mut reorged = false;
    let below_cursor = ctx.short_head.load(Ordering::Relaxed);
    let mut from = match ctx.store.cursor()? {
        Some((block, _)) if block > head && below_cursor + 1 < SHORT_HEAD_PASSES => {
            // The endpoint reports a head below the cursor: a backend behind the one that served
            // the cursor (it passes), or a chain a reorg shortened (it lasts).
            debug!(cursor = block, head, "head below the scan cursor; looking again next pass");
            ctx.short_head.store(below_cursor + 1, Ordering::Relaxed);
            ctx.metrics.blocks_unavailable.fetch_add(1, Ordering::Relaxed);
            return Ok(Scan { reorged: false, safe: block });
        }
        Some((block, _)) if block > head => {
            let rewound = block.saturating_sub(REORG_REWIND).max(start).min(safe);
            warn!(cursor = block, head, rewound, "the chain stays shorter than the scan cursor (a reorg); rescanning");
            ctx.short_head.store(0, Ordering::Relaxed);
            ctx.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
            reorged = true;
            rewound
        }
        Some((block, hash)) => {
            ctx.short_head.store(0, Ordering::Relaxed);
            match ctx.client.block(block).await? {
                None => {
                    unavailable(ctx, block);
                    return Ok(Scan { reorged: false, safe: block });
                }
                Some(b) if b.hash == hash => block + 1,
                Some(_) => {
                    let rewound = block.saturating_sub(REORG_REWIND).max(start).min(safe);
                    warn!(cursor = block, rewound, "chain reorganised under the cursor; rescanning");
                    ctx.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
                    reorged = true;
                    rewound
                }
            }
        }
        None => start,
    };
    if from <= safe && ctx.store.seen_through()?.is_none() && ctx.store.baseline_rescan()?.is_none() {
        establish_baseline(ctx).await?;
    }
    while from <= safe {
        let to = (from + ctx.cfg.rpc.max_log_range - 1).min(safe);
        let before = ctx.client.block(to).await?;
        let events = ctx.client.requested(from, to).await?;
        let after = ctx.client.block(to).await?;
        let hash = match (before, after) {
            (Some(b), Some(a)) if b.hash == a.hash => b.hash,
            (Some(_), Some(_)) => {
                // The chain moved under the scan: keep the cursor, try again on the next pass.
                warn!(from, to, "chain reorganised during the scan; scanning the range again");
                ctx.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
                return Ok(Scan { reorged: true, safe: from.saturating_sub(1) });
            }
            _ => {
                unavailable(ctx, to);
                return Ok(Scan { reorged, safe: from.saturating_sub(1) });
            }
        };
        let first_block = events.iter().min_by_key(|e| e.request_id).map(|e| e.block_number);
        for event in events {
            on_event(ctx, backend, event).await?;
        }
        match (ctx.store.baseline_rescan()?, first_block) {
            (Some(BaselineRescan::Waiting), Some(first)) if start > 0 => {
                // The index has served the first request's block, hence every block before it:
                // scan from start_block through it once more (the cursor first, so a crash in
                // between only repeats the rescan).
                let back = ctx.client.known_block(start - 1).await?;
                ctx.store.set_cursor(start - 1, back.hash)?;
                ctx.store.set_baseline_rescan(Some(BaselineRescan::Until(first)))?;
                info!(
                    start_block = start,
                    first_request_block = first,
                    "first request seen; rescanning once from contract.start_block to find any request a lagging \
                     log index left out before it"
                );
                from = start;
                continue;
            }
            (Some(BaselineRescan::Until(until)), _) if to >= until => {
                let below = ctx.store.lowest_id()?.map(|id| id.saturating_sub(U256::from(1))).unwrap_or_default();
                info!(requests_before_start = %below, "requests before contract.start_block counted by the rescan");
                ctx.store.set_seen_through(below)?;
                ctx.store.set_baseline_rescan(None)?;
            }
            _ => {}
        }
        ctx.store.set_cursor(to, hash)?;
        ctx.metrics.last_block.store(to, Ordering::Relaxed);
        from = to + 1;
    }
    check_gap(ctx, safe).await?;
    Ok(Scan { reorged, safe })
}

/// Counts, on a fresh store, the requests made before `contract.start_block` (out of the node's
/// scope) so that every id above them must show up in the logs: from the coordinator's state at
/// `start_block − 1`, none if it had no code then. An endpoint without that state gets the
/// rescan of [`BaselineRescan`] instead.
async fn establish_baseline<C: ChainClient>(ctx: &Ctx<C>) -> Result<()> {
    let start = ctx.cfg.contract.start_block;
    let Some(before) = start.checked_sub(1) else {
        return Ok(ctx.store.set_seen_through(U256::ZERO)?);
    };
    let counted = async {
        if !ctx.client.coordinator_deployed_at(before).await? {
            return Ok(U256::ZERO);
        }
        count_at(ctx, before).await
    }
    .await;
    match counted {
        Ok(n) => {
            info!(start_block = start, requests_before_start = %n, "requests before contract.start_block are left out");
            Ok(ctx.store.set_seen_through(n)?)
        }
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => {
            warn!(
                start_block = start,
                error = %e,
                "the endpoint has no state at contract.start_block - 1 to count the requests before it; they are \
                 told apart by one rescan from contract.start_block after the first request is seen"
            );
            Ok(ctx.store.set_baseline_rescan(Some(BaselineRescan::Waiting))?)
        }
    }
}

/// The highest request id that exists at `block` (ids are 1, 2, 3, … with no holes): a galloping
/// then binary search over `getRequest` at that block.
async fn count_at<C: ChainClient>(ctx: &Ctx<C>, block: u64) -> ChainResult<U256> {
    let exists = |id: u64| ctx.client.request_exists_at(U256::from(id), block);
    if !exists(1).await? {
        return Ok(U256::ZERO);
    }
    let (mut lo, mut hi) = (1u64, 2u64);
    while exists(hi).await? {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(U256::from(lo))
}

/// Catches requests a lagging log index left out of `eth_getLogs` (an empty answer for blocks
/// the node already holds): request ids are sequential on-chain, so if the id after the highest
/// contiguous one recorded already exists at `safe`, its event was in a range already scanned but
/// not returned. The cursor is then rewound to the block of the last contiguous request (or to
/// `contract.start_block`), and the range is scanned again on the next pass (and again, until the
/// index has caught up).
async fn check_gap<C: ChainClient>(ctx: &Ctx<C>, safe: u64) -> Result<()> {
    let Some(recorded) = ctx.store.seen_through()? else { return Ok(()) };
    let me = ctx.client.fulfiller();
    let mut through = recorded;
    let missing = loop {
        let next = through + U256::from(1);
        if ctx.store.get(next)?.is_some() {
            through = next;
            continue;
        }
        match ctx.client.request_at(next, safe).await {
            // A private request naming another prover: out of this node's logs by design.
            Ok(Some(prover)) if prover != Address::ZERO && prover != me => {
                debug!(request_id = %next, %prover, "private request for another prover; not this node's");
                through = next;
            }
            Ok(Some(_)) => break next,
            Ok(None) => break U256::ZERO,
            // No coordinator code at `safe` yet (deployed within the last `confirmations` blocks):
            // no request either.
            Err(ChainError::NotACoordinator { .. }) => break U256::ZERO,
            Err(e) => {
                if through != recorded {
                    ctx.store.set_seen_through(through)?;
                }
                return Err(e.into());
            }
        }
    };
    if through != recorded {
        ctx.store.set_seen_through(through)?;
    }
    if missing.is_zero() {
        return Ok(());
    }
    let start = ctx.cfg.contract.start_block;
    let back = ctx.store.get(through)?.map(|j| j.block_number).unwrap_or(start).max(start);
    let cursor = back.saturating_sub(1);
    let first_warning = {
        let mut warned = ctx.gap_warned.lock().unwrap_or_else(|e| e.into_inner());
        warned.replace(missing) != Some(missing)
    };
    if first_warning {
        // Once per missing request, not once per pass while the index lags.
        warn!(
            request_id = %missing,
            safe,
            rescan_from = cursor + 1,
            "a request exists on-chain but its event was not returned by eth_getLogs (lagging log index); \
             rescanning until the index has it"
        );
        ctx.metrics.log_gaps.fetch_add(1, Ordering::Relaxed);
    }
    match ctx.client.block(cursor).await? {
        Some(b) => ctx.store.set_cursor(cursor, b.hash)?,
        None => unavailable(ctx, cursor), // found again next pass
    }
    Ok(())
}

/// Records one event: a new job, or an existing one the event moved or changed.
pub async fn on_event<C: ChainClient, P: ProofBackend>(ctx: &Ctx<C>, backend: &P, e: RequestEvent) -> Result<()> {
    let existing = ctx.store.get(e.request_id)?;
    let private = match &e.payload {
        Payload::Private(sealed) => Some(PrivateInput {
            commitment: sealed.commitment,
            encryption_key: sealed.encryption_key,
            ciphertext_hash: keccak256(&sealed.ciphertext),
            salt: None,
        }),
        Payload::Public(_) => None,
    };
    // A private job a reorg reopened after it finished has no opening (its plaintext was cleared
    // when it finished): it is built again from this event, its envelope opened again.
    let reopening = existing.as_ref().is_some_and(|j| j.state.is_active() && j.unopened());
    if let Some(job) = existing.as_ref().filter(|_| !reopening) {
        if job.block_hash == e.block_hash {
            return Ok(()); // a rescan of the same block
        }
        let same = job.model_id == e.model_id
            && match (&e.payload, &private) {
                (Payload::Public(input), _) => job.private.is_none() && input.as_ref() == Some(&job.input),
                (Payload::Private(_), Some(p)) => {
                    job.requester == e.requester
                        && job.private.as_ref().is_some_and(|q| {
                            (q.commitment, q.encryption_key, q.ciphertext_hash)
                                == (p.commitment, p.encryption_key, p.ciphertext_hash)
                        })
                }
                (Payload::Private(_), None) => false,
            };
        if same {
            // Same request in another block: the work done stays valid.
            debug!(request_id = %e.request_id, block_number = e.block_number, "request moved by a reorg, input unchanged");
            let mut moved = job.clone();
            moved.block_number = e.block_number;
            moved.block_hash = e.block_hash;
            moved.deadline = e.deadline;
            if moved.state == JobState::Reorged {
                moved.state = JobState::Queued;
            }
            return Ok(ctx.store.put(&moved)?);
        }
        info!(
            request_id = %e.request_id,
            block_number = e.block_number,
            state = job.state.name(),
            "request replaced by a reorg; starting over with its new input"
        );
    }
    if reopening {
        info!(request_id = %e.request_id, "reopened private request read again; opening its envelope again");
    }
    let mut job = Job {
        request_id: e.request_id,
        model_id: e.model_id,
        requester: e.requester,
        input: vec![],
        payment: e.payment,
        deadline: e.deadline,
        block_number: e.block_number,
        block_hash: e.block_hash,
        seen_at: existing.map(|j| j.seen_at).unwrap_or_else(now),
        state: JobState::Queued,
        attempts: 0,
        private,
    };
    job.state = if !backend.serves(&e.model_id) {
        let reason = DropReason::Unserved { model_id: e.model_id };
        debug!(request_id = %e.request_id, %reason, "skipped");
        ctx.metrics.count_drop(&reason);
        JobState::Dropped { reason }
    } else {
        let opened = match e.payload {
            Payload::Public(None) => Err((Failure::InputTooLarge, "input value outside the 64-bit range".to_string())),
            Payload::Public(Some(input)) => backend
                .check_input(&e.model_id, &input)
                .map_err(|r| (Failure::InputOutOfRange, r))
                .map(|()| (input, None)),
            Payload::Private(sealed) => open(ctx, backend, &e.model_id, e.requester, &sealed).await?,
        };
        match opened {
            Ok((input, salt)) => {
                job.input = input;
                if let (Some(p), Some(salt)) = (&mut job.private, salt) {
                    p.salt = Some(salt);
                }
                ctx.metrics.seen.fetch_add(1, Ordering::Relaxed);
                info!(
                    request_id = %e.request_id,
                    model = %backend.name(&e.model_id),
                    block_number = e.block_number,
                    private = job.private.is_some(),
                    "request seen"
                );
                JobState::Queued
            }
            Err((failure, reason)) => {
                warn!(request_id = %e.request_id, reason = failure.label(), error = %reason, "request cannot be proved; refused");
                ctx.metrics.count_failure(failure);
                JobState::Failed { reason }
            }
        }
    };
    Ok(ctx.store.put(&job)?)
}

/// An opened private request (input and salt), or why it cannot be proved.
type Opening = std::result::Result<(Vec<i64>, Option<B256>), (Failure, String)>;

/// Opens a private request's envelope and checks it: the ring holds its key, it opens for this
/// request, its input is in the model's range, and it opens the request's commitment.
async fn open<C: ChainClient, P: ProofBackend>(
    ctx: &Ctx<C>,
    backend: &P,
    model: &B256,
    requester: Address,
    sealed: &Sealed,
) -> Result<Opening> {
    let key = sealed.encryption_key;
    let Some(secret) = ctx.keys.as_ref().and_then(|keys| keys.find_or_reload(&key)) else {
        let why = match &ctx.keys {
            Some(_) => format!("sealed to key {key}, which this node does not hold (not in its key ring)"),
            None => format!("sealed to key {key}, which this node does not hold (no private.key_file configured)"),
        };
        return Ok(Err((Failure::UnknownEncryptionKey, why)));
    };
    let context = EnvelopeContext {
        chain_id: ctx.chain_id().await?,
        coordinator: ctx.client.coordinator().into_array(),
        requester: requester.into_array(),
        model_id: model.0,
        commitment: sealed.commitment.0,
    };
    let opened = match envelope::open(&secret, &context, &sealed.ciphertext, backend.input_len(model)) {
        Ok(o) => o,
        // The error's text says "envelope does not open" itself where that is what happened.
        Err(err @ envelope::EnvelopeError::Decryption) => {
            return Ok(Err((Failure::Undecryptable, format!("the {err}"))))
        }
        Err(err) => return Ok(Err((Failure::Undecryptable, format!("the envelope does not open: {err}")))),
    };
    // The reason names the index and the range, never the value: the input is private.
    if let Err(reason) = backend.check_private_input(model, &opened.input) {
        return Ok(Err((Failure::InputOutOfRange, format!("the envelope's input cannot be proved: {reason}"))));
    }
    let salt = B256::from(opened.salt);
    match backend.commitment(model, &opened.input, &salt) {
        Ok(c) if c == sealed.commitment => Ok(Ok((opened.input.clone(), Some(salt)))),
        Ok(c) => Ok(Err((
            Failure::CommitmentMismatch,
            format!(
                "the envelope opens, but to an input and salt whose commitment {c} is not the request's {}",
                sealed.commitment
            ),
        ))),
        Err(reason) => Ok(Err((Failure::Undecryptable, format!("the envelope's salt is unusable: {reason}")))),
    }
}
