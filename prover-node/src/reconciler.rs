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
//! | pending, another prover (or kind)      | `Reorged`: wait for the watcher to read it again |
//! | unknown id, before the job's deadline  | `Reorged` (a reorg removed it; it may come back) |
//! | unknown id, after the deadline         | dropped: vanished                                |
//! | pending, deadline passed               | dropped: expired                                 |
//! | fulfilled by this node                 | fulfilled                                        |
//! | fulfilled by another                   | dropped: fulfilled by other                      |
//! | cancelled                              | dropped: cancelled                               |
//!
//! The "input" of a private job is its commitment (the request's `inputHash`), and its request
//! must name this node as its prover; a public job's request names none.
//!
//! So a job is never dropped while its request is pending and unexpired, and a fulfilment by this
//! node is always recorded as fulfilled.

use std::sync::atomic::Ordering;

use alloy::primitives::{Address, U256};
use tracing::{debug, info, warn};

use crate::{
    client::{ChainClient, OnChainRequest, RequestStatus},
    error::Result,
    service::Ctx,
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
        RequestStatus::Pending if req.input_hash != job.claim_hash() => Verdict::Reorged,
        // A private job's request must name this node; a public job's request must be public.
        RequestStatus::Pending if req.prover != job.private.as_ref().map_or(Address::ZERO, |_| me) => Verdict::Reorged,
        RequestStatus::Pending => Verdict::Keep,
    }
}

/// Applies a verdict to a job (persisted). Returns whether the node keeps working on it as is.
pub fn settle<C: ChainClient>(ctx: &Ctx<C>, mut job: Job, verdict: Verdict) -> Result<bool> {
    let request_id = job.request_id;
    match verdict {
        Verdict::Keep if job.unopened() => {
            // A reopened private job keeps no plaintext: it waits for the watcher to read its
            // event again and open its envelope (see `reread`).
            return Ok(false);
        }
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
    let verdict = judge(&job, &req, ctx.client.fulfiller(), ctx.chain_now());
    if verdict == Verdict::Keep && job.unopened() {
        reread(ctx, &job).await?;
    }
    settle(ctx, job, verdict)
}

/// Makes the watcher read the event of `job` again on its next scan (the cursor goes back to the
/// block before it, if it is past it): a private job reopened by a reorg is built again from its
/// event, its envelope opened again, since the store keeps no plaintext of a finished job.
async fn reread<C: ChainClient>(ctx: &Ctx<C>, job: &Job) -> Result<()> {
    let back = job.block_number.saturating_sub(1).max(ctx.cfg.contract.start_block.saturating_sub(1));
    if ctx.store.cursor()?.is_some_and(|(cursor, _)| cursor > back) {
        let block = ctx.client.known_block(back).await?;
        ctx.store.set_cursor(back, block.hash)?;
        debug!(request_id = %job.request_id, from = back + 1, "the request's event is read again");
    }
    Ok(())
}

/// Jobs reconciled per pass at most: a backlog is reconciled over several passes, so a slow (but
/// answering) endpoint cannot make every pass overrun its deadline and start over.
pub const RECONCILE_BATCH: usize = 8;

/// The jobs to reconcile after a start or a reorg: every active job that is not waiting on a
/// transaction (the submitter tracks those with the same rules), oldest last (popped first).
/// Also the finished jobs a reorg deeper than `confirmations` may have undone (a fulfilment, ours
/// or another's, or a cancellation, of a request not yet expired): they are reopened if the
/// request is pending again.
pub fn to_reconcile<C: ChainClient>(ctx: &Ctx<C>) -> Result<Vec<U256>> {
    let mut ids: Vec<U256> = ctx
        .store
        .active()?
        .into_iter()
        .filter(|j| !matches!(j.state, JobState::Submitted { .. }))
        .map(|j| j.request_id)
        .collect();
    ids.extend(ctx.store.reopenable(ctx.chain_now())?.into_iter().map(|j| j.request_id));
    ids.reverse();
    Ok(ids)
}

/// Checks up to `max` jobs of `pending` (see [`to_reconcile`]) against the chain, removing each
/// as soon as it is checked: progress survives a pass that fails or overruns its deadline later.
/// A proof in progress for a request that changed is discarded when it finishes.
pub async fn reconcile_some<C: ChainClient>(ctx: &Ctx<C>, pending: &mut Vec<U256>, max: usize) -> Result<()> {
    let mut done = 0;
    while done < max {
        let Some(&id) = pending.last() else { break };
        if let Some(job) = ctx.store.get(id)? {
            if job.state.is_active() {
                if !matches!(job.state, JobState::Submitted { .. }) {
                    check(ctx, job).await?;
                }
            } else {
                reopen(ctx, job).await?;
            }
        }
        pending.pop();
        done += 1;
    }
    if done > 0 {
        if pending.is_empty() {
            info!("jobs reconciled with the chain");
        } else {
            debug!(done, left = pending.len(), "jobs reconciled with the chain; more next pass");
        }
    }
    Ok(())
}

/// Reopens a finished job whose fulfilment or cancellation a deep reorg removed: the request is
/// pending again (same input, not expired) → `Queued`; gone before its deadline → `Reorged`.
/// A private job kept no plaintext when it finished: it is `Reorged` until the watcher reads its
/// event again and opens its envelope again.
async fn reopen<C: ChainClient>(ctx: &Ctx<C>, mut job: Job) -> Result<()> {
    let req = ctx.client.request(job.request_id).await?;
    let state = match judge(&job, &req, ctx.client.fulfiller(), ctx.chain_now()) {
        Verdict::Keep | Verdict::Reorged if job.unopened() => {
            reread(ctx, &job).await?;
            JobState::Reorged
        }
        Verdict::Keep => JobState::Queued,
        Verdict::Reorged => JobState::Reorged,
        _ => return Ok(()),
    };
    warn!(
        request_id = %job.request_id,
        was = job.state.name(),
        now = state.name(),
        "a reorg undid the request's fulfilment or cancellation; reopened"
    );
    job.state = state;
    job.attempts = 0;
    Ok(ctx.store.put(&job)?)
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
    use crate::client::input_hash;

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
            private: None,
        }
    }

    #[test]
    fn verdicts_follow_the_table() {
        let me = Address::repeat_byte(1);
        let other = Address::repeat_byte(2);
        let same = input_hash(&[1, 2, 3]);
        let changed = input_hash(&[3, 2, 1]);
        let req = |status, input_hash, deadline, fulfiller| OnChainRequest {
            status,
            input_hash,
            prover: Address::ZERO,
            deadline,
            fulfiller,
        };
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

    #[test]
    fn a_private_job_is_judged_by_its_commitment_and_the_prover_named() {
        let (me, other) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let c = B256::repeat_byte(7);
        let mut private = job();
        private.private = Some(crate::store::PrivateInput {
            commitment: c,
            encryption_key: B256::ZERO,
            ciphertext_hash: B256::ZERO,
            salt: None,
        });
        let req = |input_hash, prover| OnChainRequest {
            status: RequestStatus::Pending,
            input_hash,
            prover,
            deadline: 1_000,
            fulfiller: Address::ZERO,
        };
        assert_eq!(judge(&private, &req(c, me), me, 500), Verdict::Keep);
        assert_eq!(judge(&private, &req(B256::repeat_byte(8), me), me, 500), Verdict::Reorged, "another commitment");
        assert_eq!(judge(&private, &req(c, other), me, 500), Verdict::Reorged, "names another prover");
        assert_eq!(judge(&private, &req(c, Address::ZERO), me, 500), Verdict::Reorged, "a public request now");
        let public = job();
        assert_eq!(judge(&public, &req(input_hash(&[1, 2, 3]), me), me, 500), Verdict::Reorged, "a private one now");
    }
}
