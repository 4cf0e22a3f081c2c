//! The watcher: `InferenceRequested` logs → jobs, from a persisted cursor up to
//! `head − confirmations`.
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
//! node sees is found again when the index catches up.

use std::sync::atomic::Ordering;

use alloy::primitives::U256;
use tracing::{debug, info, warn};

use crate::{
    client::{ChainClient, ChainError, ChainResult, RequestEvent},
    error::Result,
    metrics::Failure,
    prover::ProofBackend,
    service::{now, Ctx},
    store::{BaselineRescan, DropReason, Job, JobState},
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
            on_event(ctx, backend, event)?;
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
    let mut through = recorded;
    while ctx.store.get(through + U256::from(1))?.is_some() {
        through += U256::from(1);
    }
    if through != recorded {
        ctx.store.set_seen_through(through)?;
    }
    let missing = through + U256::from(1);
    match ctx.client.request_exists_at(missing, safe).await {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        // No coordinator code at `safe` yet (deployed within the last `confirmations` blocks):
        // no request either.
        Err(ChainError::NotACoordinator { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
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
pub fn on_event<C: ChainClient, P: ProofBackend>(ctx: &Ctx<C>, backend: &P, e: RequestEvent) -> Result<()> {
    let existing = ctx.store.get(e.request_id)?;
    if let Some(job) = &existing {
        if job.block_hash == e.block_hash {
            return Ok(()); // a rescan of the same block
        }
        if e.input.as_ref() == Some(&job.input) && job.model_id == e.model_id {
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
    let state = match &e.input {
        _ if !backend.serves(&e.model_id) => {
            let reason = DropReason::Unserved { model_id: e.model_id };
            debug!(request_id = %e.request_id, %reason, "skipped");
            ctx.metrics.count_drop(&reason);
            JobState::Dropped { reason }
        }
        None => {
            ctx.metrics.count_failure(Failure::InputTooLarge);
            JobState::Failed { reason: "input value outside the 64-bit range".into() }
        }
        Some(input) => match backend.check_input(&e.model_id, input) {
            Ok(()) => {
                ctx.metrics.seen.fetch_add(1, Ordering::Relaxed);
                info!(request_id = %e.request_id, model = %backend.name(&e.model_id), block_number = e.block_number, "request seen");
                JobState::Queued
            }
            Err(reason) => {
                warn!(request_id = %e.request_id, error = %reason, "request cannot be proved");
                ctx.metrics.count_failure(Failure::InputOutOfRange);
                JobState::Failed { reason }
            }
        },
    };
    Ok(ctx.store.put(&Job {
        request_id: e.request_id,
        model_id: e.model_id,
        requester: e.requester,
        input: e.input.unwrap_or_default(),
        payment: e.payment,
        deadline: e.deadline,
        block_number: e.block_number,
        block_hash: e.block_hash,
        seen_at: existing.map(|j| j.seen_at).unwrap_or_else(now),
        state,
        attempts: 0,
    })?)
}
