//! The reconciler: the one place that decides what a job's on-chain request means for it.
//!
//! [`judge`] is a pure function of the stored job and the request as the coordinator holds it
//! now; every stage consults it before acting (before proving, before sending, while a
//! transaction is pending or being confirmed), and [`reconcile_all`] applies it to every active
//! job after each start and after each reorg. The rules:
//!
//! | on-chain request                       | verdict                                          |
//! |----------------------------------------|--------------------------------------------------|
//! | pending, same input, before deadline   | keep working                                     |
//! | pending, another input                 | `Reorged`: wait for the watcher to read it again |
//! | unknown id, before the job's deadline  | `Reorged` (a reorg removed it; it may come back) |
//! | unknown id, after the deadline         | dropped: vanished                                |
//! | pending, deadline passed               | dropped: expired                                 |
//! | fulfilled by this node                 | fulfilled                                        |
//! | fulfilled by another                   | dropped: fulfilled by other                      |
//! | cancelled                              | dropped: cancelled                               |
//!
//! So a job is never dropped while its request is pending and unexpired, and a fulfilment by this
//! node is always recorded as fulfilled.

use std::sync::atomic::Ordering;

use alloy::primitives::Address;
use tracing::{info, warn};

use crate::{
    client::{input_hash, ChainClient, OnChainRequest, RequestStatus},
    error::Result,
    service::{now, Ctx},
    store::{DropReason, Job, JobState},
};

/// What the on-chain request means for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still ours to fulfil.
    Keep,
    /// This node's fulfilment is on-chain.
    FulfilledByUs,
    /// The request on-chain does not match the stored event (yet).
    Reorged,
    /// Nothing left to do.
    Drop(DropReason),
}

/// Decides a job's fate from the request as the coordinator holds it now.
pub fn judge(job: &Job, req: &OnChainRequest, me: Address, now: u64) -> Verdict {
    match req.status {
        RequestStatus::None if now > job.deadline => Verdict::Drop(DropReason::Vanished),
        RequestStatus::None => Verdict::Reorged,
        RequestStatus::Cancelled => Verdict::Drop(DropReason::Cancelled),
        RequestStatus::Fulfilled if req.fulfiller == me => Verdict::FulfilledByUs,
        RequestStatus::Fulfilled => Verdict::Drop(DropReason::FulfilledByOther { fulfiller: req.fulfiller }),
        RequestStatus::Pending if req.deadline <= now => Verdict::Drop(DropReason::Expired),
        RequestStatus::Pending if req.input_hash != input_hash(&job.input) => Verdict::Reorged,
        RequestStatus::Pending => Verdict::Keep,
    }
}

/// Applies a verdict to a job (persisted). Returns whether the node keeps working on it as is.
pub fn settle<C: ChainClient>(ctx: &Ctx<C>, mut job: Job, verdict: Verdict) -> Result<bool> {
    let request_id = job.request_id;
    match verdict {
        Verdict::Keep => {
            if job.state == JobState::Reorged {
                info!(%request_id, "the request on-chain matches its event again; re-queued");
                job.state = JobState::Queued;
                ctx.store.put(&job)?;
            }
            return Ok(true);
        }
        Verdict::FulfilledByUs => {
            info!(%request_id, "fulfilled by this node (found on-chain)");
            ctx.metrics.fulfilled.fetch_add(1, Ordering::Relaxed);
            let tx = match &job.state {
                JobState::Submitted { tx, .. } => Some(tx.current().hash),
                _ => None,
            };
            job.state = JobState::Fulfilled { tx, block: 0, gas_used: 0 };
        }
        Verdict::Reorged => {
            if job.state == JobState::Reorged {
                return Ok(false);
            }
            warn!(%request_id, state = job.state.name(), "the request on-chain no longer matches its event (reorg); waiting to read it again");
            job.state = JobState::Reorged;
        }
        Verdict::Drop(reason) => {
            info!(%request_id, %reason, "dropped");
            ctx.metrics.count_drop(&reason);
            job.state = JobState::Dropped { reason };
        }
    }
    ctx.store.put(&job)?;
    Ok(false)
}

/// Reads the request of `job` and applies the verdict. Returns whether the job is kept as is.
pub async fn check<C: ChainClient>(ctx: &Ctx<C>, job: Job) -> Result<bool> {
    let req = ctx.client.request(job.request_id).await?;
    let verdict = judge(&job, &req, ctx.client.fulfiller(), now());
    settle(ctx, job, verdict)
}

/// Checks every active job that is not waiting on a transaction (the submitter tracks those
/// with the same rules) against the chain: after a start and after a reorg. A proof in progress
/// for a request that changed is discarded when it finishes.
pub async fn reconcile_all<C: ChainClient>(ctx: &Ctx<C>) -> Result<()> {
    let jobs = ctx.store.active()?;
    let mut changed = 0;
    for job in jobs {
        if matches!(job.state, JobState::Submitted { .. }) {
            continue;
        }
        if !check(ctx, job).await? {
            changed += 1;
        }
    }
    info!(changed, "jobs reconciled with the chain");
    Ok(())
}

/// Re-checks the jobs waiting after a reorg: one may match again (the chain came back).
pub async fn recheck_reorged<C: ChainClient>(ctx: &Ctx<C>, jobs: &[Job]) -> Result<()> {
    for job in jobs.iter().filter(|j| j.state == JobState::Reorged) {
        check(ctx, job.clone()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{B256, U256};

    use super::*;

    fn job() -> Job {
        Job {
            request_id: U256::from(1),
            model_id: B256::ZERO,
            requester: Address::ZERO,
            input: vec![1, 2, 3],
            payment: U256::ZERO,
            deadline: 1_000,
            block_number: 1,
            block_hash: B256::ZERO,
            seen_at: 0,
            state: JobState::Queued,
            attempts: 0,
        }
    }

    #[test]
    fn verdicts_follow_the_table() {
        let me = Address::repeat_byte(1);
        let other = Address::repeat_byte(2);
        let same = input_hash(&[1, 2, 3]);
        let changed = input_hash(&[3, 2, 1]);
        let req = |status, input_hash, deadline, fulfiller| OnChainRequest { status, input_hash, deadline, fulfiller };
        use RequestStatus as S;
        let cases = [
            ("pending, same input", req(S::Pending, same, 1_000, Address::ZERO), 500, Verdict::Keep),
            ("pending, new input", req(S::Pending, changed, 1_000, Address::ZERO), 500, Verdict::Reorged),
            (
                "pending, expired",
                req(S::Pending, same, 1_000, Address::ZERO),
                1_000,
                Verdict::Drop(DropReason::Expired),
            ),
            (
                "pending, new input, expired",
                req(S::Pending, changed, 400, Address::ZERO),
                500,
                Verdict::Drop(DropReason::Expired),
            ),
            ("gone, before the deadline", req(S::None, B256::ZERO, 0, Address::ZERO), 500, Verdict::Reorged),
            ("gone, after it", req(S::None, B256::ZERO, 0, Address::ZERO), 1_001, Verdict::Drop(DropReason::Vanished)),
            ("fulfilled by us", req(S::Fulfilled, same, 1_000, me), 500, Verdict::FulfilledByUs),
            ("fulfilled by us, late", req(S::Fulfilled, same, 1_000, me), 5_000, Verdict::FulfilledByUs),
            (
                "fulfilled by another",
                req(S::Fulfilled, same, 1_000, other),
                500,
                Verdict::Drop(DropReason::FulfilledByOther { fulfiller: other }),
            ),
            ("cancelled", req(S::Cancelled, same, 1_000, Address::ZERO), 2_000, Verdict::Drop(DropReason::Cancelled)),
        ];
        for (name, req, now, expected) in cases {
            assert_eq!(judge(&job(), &req, me, now), expected, "{name}");
        }
    }
}
