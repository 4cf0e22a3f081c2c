//! The watcher: `InferenceRequested` logs → jobs, from a persisted cursor up to
//! `head − confirmations`.
//!
//! Reorgs: the cursor stores the hash of the last scanned block. When that block's hash changed
//! (or the chain is now shorter), the cursor rewinds `REORG_REWIND` blocks and the range is
//! scanned again. A range is accepted only if the hash of its last block is the same before and
//! after `eth_getLogs`, so a reorg landing during the scan cannot skip events. An event seen again
//! in another block with the *same* input only updates the job's block; with *another* input, the
//! job starts over from `Queued` with the new input at any stage (a proof in progress is
//! discarded when it finishes, a pending transaction is outbid by the next one on its nonce).

use std::sync::atomic::Ordering;

use alloy::primitives::U256;
use tracing::{debug, info, warn};

use crate::{
    client::{ChainClient, RequestEvent},
    error::Result,
    prover::ProofBackend,
    service::{now, Ctx},
    store::{DropReason, Job, JobState},
};

/// How far the cursor rewinds when a reorg is detected.
pub const REORG_REWIND: u64 = 64;

/// What a scan found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// A reorg was noticed (under the cursor, or during the scan).
    pub reorged: bool,
    /// The last block scanned.
    pub safe: u64,
}

/// Scans new logs into the store.
pub async fn scan<C: ChainClient, P: ProofBackend>(ctx: &Ctx<C>, backend: &P, head: u64) -> Result<Scan> {
    let safe = head.saturating_sub(ctx.cfg.prover.confirmations);
    let start = ctx.cfg.contract.start_block;
    let mut reorged = false;
    let mut from = match ctx.store.cursor()? {
        Some((block, hash)) => {
            let canonical = if block > head { None } else { ctx.client.block(block).await?.map(|b| b.hash) };
            if canonical != Some(hash) {
                let rewound = block.saturating_sub(REORG_REWIND).max(start).min(safe);
                warn!(cursor = block, rewound, "chain reorganised under the cursor; rescanning");
                ctx.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
                reorged = true;
                rewound
            } else {
                block + 1
            }
        }
        None => start,
    };
    while from <= safe {
        let to = (from + ctx.cfg.rpc.max_log_range - 1).min(safe);
        let before = ctx.client.block(to).await?;
        let events = ctx.client.requested(from, to).await?;
        let after = ctx.client.block(to).await?;
        let hash = match (before, after) {
            (Some(b), Some(a)) if b.hash == a.hash => b.hash,
            _ => {
                // The chain moved under the scan: keep the cursor, try again on the next pass.
                warn!(from, to, "chain reorganised during the scan; scanning the range again");
                ctx.metrics.reorgs.fetch_add(1, Ordering::Relaxed);
                return Ok(Scan { reorged: true, safe: from.saturating_sub(1) });
            }
        };
        for event in events {
            on_event(ctx, backend, event)?;
        }
        ctx.store.set_cursor(to, hash)?;
        ctx.metrics.last_block.store(to, Ordering::Relaxed);
        from = to + 1;
    }
    check_gap(ctx, safe).await?;
    Ok(Scan { reorged, safe })
}

/// Catches requests a lagging log index left out of `eth_getLogs` (an empty answer for blocks
/// the node already holds): request ids are sequential on-chain, so if the id after the highest
/// contiguous one recorded already exists at `safe`, its event was in a range already scanned but
/// not returned. The cursor is then rewound to the block of the last contiguous request, and the
/// range is scanned again on the next pass (and again, until the index has caught up).
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
    if !ctx.client.request_exists_at(missing, safe).await? {
        return Ok(());
    }
    let start = ctx.cfg.contract.start_block;
    let back = ctx.store.get(through)?.map(|j| j.block_number).unwrap_or(start).max(start);
    let cursor = back.saturating_sub(1);
    warn!(
        request_id = %missing,
        safe,
        rescan_from = cursor + 1,
        "a request exists on-chain but its event was not returned by eth_getLogs (lagging log index); rescanning"
    );
    ctx.metrics.log_gaps.fetch_add(1, Ordering::Relaxed);
    if let Some(b) = ctx.client.block(cursor).await? {
        ctx.store.set_cursor(cursor, b.hash)?;
    }
    Ok(())
}

/// Records one event: a new job, or an existing one the event moved or changed.
pub fn on_event<C: ChainClient, P: ProofBackend>(ctx: &Ctx<C>, backend: &P, e: RequestEvent) -> Result<()> {
    let existing = ctx.store.get(e.request_id)?;
    if ctx.store.seen_through()?.is_none() {
        ctx.store.set_seen_through(e.request_id.saturating_sub(U256::from(1)))?;
    }
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
            ctx.metrics.failed.fetch_add(1, Ordering::Relaxed);
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
                ctx.metrics.failed.fetch_add(1, Ordering::Relaxed);
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
