//! The submitter: sends proven fulfilments and sees each transaction through to `confirmations`.
//!
//! - **One transaction in flight.** A new fulfilment is sent only when no earlier one is waiting
//!   in the pool, so nothing is ever stacked behind a stuck nonce (instant-mining chains still
//!   take one per pass and more: a transaction mined at once frees the slot immediately).
//! - **Write-ahead.** A transaction is signed locally and recorded (hash, raw bytes, nonce, fees)
//!   before it is broadcast; after a crash the node knows every transaction it may have sent.
//! - **EIP-1559 fees.** `maxFeePerGas = min(2·baseFee + tip, fees.max_fee_per_gas)`, the tip
//!   being the node's suggestion (at least `fees.min_priority_fee`). A transaction still unmined
//!   `fees.replace_after_blocks` after it was sent, or whose max fee fell below the base fee, is
//!   replaced on the same nonce with tip and max fee raised by 12.5% (pools require 10%), never
//!   above the cap. Any new transaction on a nonce the node signed before outbids it likewise.
//! - **Evictions.** A transaction the endpoint no longer knows (evicted, or lost in a crash
//!   before it was broadcast) is broadcast again while its request is pending; if the pool
//!   refuses it, it is replaced with higher fees.
//! - **Fee cap.** While the base fee is above `fees.max_fee_per_gas`, no transaction the node may
//!   sign can be mined: nothing is signed, sent, re-sent or replaced (proofs are kept). The node
//!   says so once, with the numbers and the setting to change, exports it (`zkinfer_fee_capped`,
//!   `zkinfer_base_fee_wei`, `zkinfer_fee_cap_wei`, a note in `/health`), follows the transactions
//!   already sent at most every [`FEE_CAP_RECHECK`], and resumes when the base fee falls.
//! - Before sending and while waiting, the request is read on-chain and judged by the
//!   [reconciler](crate::reconciler): a fulfilment by this node is recorded as fulfilled, a request
//!   fulfilled by another, cancelled, expired or changed by a reorg is let go.

use std::sync::atomic::Ordering;

use alloy::primitives::B256;
use tracing::{info, info_span, warn, Instrument};

use crate::{
    bindings::IInferenceCoordinator::IInferenceCoordinatorErrors,
    client::{ChainClient, ChainError, Fulfilment, Receipt, TxParams},
    config::FeeConfig,
    error::Result,
    metrics::Failure,
    reconciler::{judge, settle, Verdict},
    service::{now, Ctx},
    store::{Job, JobState, LastTx, SentTx, TxRecord},
};

/// Fulfilments that revert (or fail estimation for no stated reason) before a job is failed.
pub const MAX_ATTEMPTS: u32 = 5;
/// Blocks after which a fulfilment by this node seen on-chain without a receipt is recorded anyway.
const RECEIPT_GRACE_BLOCKS: u64 = 10;
/// New transactions per pass at most (each one only after the previous one was mined).
const MAX_SENDS_PER_PASS: usize = 16;
/// While the base fee is above the cap, transactions in flight are looked at this often at most.
pub const FEE_CAP_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// `x` raised by 12.5%, rounded up: above the 10% replacement margin of geth-like pools.
pub fn bump(x: u128) -> u128 {
    x + x.div_ceil(8)
}

/// `(max_fee, tip)` for a new transaction at the current base fee.
pub fn market_fees(base_fee: u128, suggested_tip: u128, cfg: &FeeConfig) -> (u128, u128) {
    let cap = u128::from(cfg.max_fee_per_gas);
    let tip = suggested_tip.max(u128::from(cfg.min_priority_fee)).min(cap);
    let max_fee = base_fee.saturating_mul(2).saturating_add(tip).min(cap);
    (max_fee, tip)
}

/// Fees replacing a transaction sent with `prev`: both raised by at least 12.5%, and at least the
/// market's. `None` if that would exceed the cap.
pub fn replacement_fees(prev: (u128, u128), market: (u128, u128), cap: u128) -> Option<(u128, u128)> {
    let tip = bump(prev.1).max(market.1);
    let max_fee = bump(prev.0).max(market.0).max(tip);
    (max_fee <= cap).then_some((max_fee, tip))
}

/// Where a submitted job stands after a look at the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Track {
    /// Its transaction waits in the pool: nothing new may be sent.
    Pending,
    /// Mined, waiting for confirmations (or settled): the nonce is free.
    Mined,
}

/// The submitter's memory between passes.
#[derive(Debug, Default)]
pub struct Submitter {
    cap_warned: bool,
    /// While the base fee is above the cap: when the transactions in flight were last looked at.
    capped_checked: Option<std::time::Instant>,
}

impl Submitter {
    /// Whether the base fee is above `fees.max_fee_per_gas` (said once per episode, exported).
    fn fee_capped<C: ChainClient>(&mut self, ctx: &Ctx<C>, base: u128, tip: u128) -> bool {
        let cap = u128::from(ctx.cfg.fees.max_fee_per_gas);
        ctx.metrics.base_fee_wei.store(base.try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
        ctx.metrics.fee_cap_wei.store(ctx.cfg.fees.max_fee_per_gas, Ordering::Relaxed);
        let capped = base > cap;
        let was = ctx.metrics.fee_capped.swap(capped, Ordering::Relaxed);
        if capped && !was {
            let needed = base.saturating_mul(2).saturating_add(tip);
            warn!(
                base_fee = base,
                max_fee_per_gas = cap,
                "the base fee ({base} wei) is above fees.max_fee_per_gas ({cap} wei): no fulfilment can be mined, \
                 so none is sent (proofs are kept) until it falls; to send now, raise fees.max_fee_per_gas to at \
                 least {needed} wei (2 x base fee + tip). Said once; see zkinfer_fee_capped"
            );
        } else if !capped && was {
            info!(base_fee = base, max_fee_per_gas = cap, "the base fee is under fees.max_fee_per_gas again; sending");
            self.capped_checked = None;
        }
        capped
    }

    /// One pass: follow the submitted transactions, then send proven jobs.
    pub async fn pass<C: ChainClient>(&mut self, ctx: &Ctx<C>, jobs: &[Job], head: u64) -> Result<()> {
        if !jobs.iter().any(|j| matches!(j.state, JobState::Submitted { .. } | JobState::Proven { .. })) {
            return Ok(());
        }
        let (base, (_, tip)) = self.fees(ctx, head).await?;
        let capped = self.fee_capped(ctx, base, tip);
        if capped {
            if self.capped_checked.is_some_and(|t| t.elapsed() < FEE_CAP_RECHECK) {
                return Ok(());
            }
            self.capped_checked = Some(std::time::Instant::now());
        }
        let mut submitted: Vec<&Job> = jobs.iter().filter(|j| matches!(j.state, JobState::Submitted { .. })).collect();
        submitted.sort_by_key(|j| match &j.state {
            JobState::Submitted { tx, .. } => tx.nonce,
            _ => 0,
        });
        let mut in_flight = false;
        for job in submitted {
            let span = info_span!("submit", request_id = %job.request_id);
            if self.track(ctx, job.clone(), head, capped).instrument(span).await? == Track::Pending {
                in_flight = true;
            }
        }
        if in_flight || capped {
            return Ok(());
        }
        for job in jobs.iter().filter(|j| matches!(j.state, JobState::Proven { .. })).take(MAX_SENDS_PER_PASS) {
            let span = info_span!("submit", request_id = %job.request_id);
            if self.send(ctx, job.clone(), head).instrument(span).await? == Track::Pending {
                break;
            }
        }
        Ok(())
    }

    async fn fees<C: ChainClient>(&self, ctx: &Ctx<C>, head: u64) -> Result<(u128, (u128, u128))> {
        // A head the endpoint cannot show yet is retried, never priced at a base fee of 0.
        let base = ctx.client.known_block(head).await?.base_fee;
        let tip = ctx.client.suggested_tip().await?;
        Ok((base, market_fees(base, tip, &ctx.cfg.fees)))
    }

    /// Sends a proven job's fulfilment on the next nonce.
    async fn send<C: ChainClient>(&mut self, ctx: &Ctx<C>, mut job: Job, head: u64) -> Result<Track> {
        let JobState::Proven { output, proof, .. } = job.state.clone() else { return Ok(Track::Mined) };
        let f = Fulfilment { request_id: job.request_id, claim: job.claim(), output, proof };
        let gas = match ctx.client.estimate_fulfil(&f).await {
            Ok(gas) => gas,
            Err(ChainError::Reverted { error, .. }) => {
                self.estimate_reverted(ctx, job, error).await?;
                return Ok(Track::Mined);
            }
            Err(e) => return Err(e.into()),
        };
        let gas_limit = gas + gas / 5;
        let nonce = ctx.client.nonce().await?;
        let (base, mut fees) = self.fees(ctx, head).await?;
        // A transaction signed earlier on this nonce (let go after a reorg, or from before a crash)
        // may still sit in a pool: outbid it, or this one would be refused as underpriced.
        if let Some(last) = ctx.store.last_tx()?.filter(|l| l.nonce == nonce) {
            let cap = u128::from(ctx.cfg.fees.max_fee_per_gas);
            fees = replacement_fees((last.max_fee, last.tip), fees, cap).unwrap_or((cap, fees.1.min(cap)));
        }
        let (max_fee, tip) = fees;
        if max_fee < base {
            // The base fee rose above the cap since this pass began: wait for the next pass.
            return Ok(Track::Pending);
        }
        let signed = ctx.client.sign_fulfil(&f, TxParams { nonce, gas_limit, max_fee, tip }).await?;
        let sent = SentTx { hash: signed.hash, raw: signed.raw, max_fee, tip };
        job.state = JobState::Submitted {
            output: f.output,
            proof: f.proof,
            tx: TxRecord { nonce, gas_limit, versions: vec![sent.clone()], sent_at_block: head },
        };
        ctx.store.put_with(&job, Some(LastTx { nonce, max_fee, tip }))?;
        info!(tx = %sent.hash, nonce, max_fee, tip, gas_limit, "fulfilment submitted");
        match ctx.client.broadcast(&sent.raw).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e.into()),
            Err(e) => {
                warn!(error = %e, "the endpoint refused the fulfilment; it will be sent again or replaced");
                return Ok(Track::Pending);
            }
        }
        Ok(if ctx.client.receipt(sent.hash).await?.is_some() { Track::Mined } else { Track::Pending })
    }

    /// `eth_estimateGas` reverted: the chain's view of the request decides what it means.
    async fn estimate_reverted<C: ChainClient>(
        &self,
        ctx: &Ctx<C>,
        mut job: Job,
        error: Option<IInferenceCoordinatorErrors>,
    ) -> Result<()> {
        let req = ctx.client.request(job.request_id).await?;
        match judge(&job, &req, ctx.client.fulfiller(), ctx.chain_now()) {
            Verdict::Keep => {
                use IInferenceCoordinatorErrors as E;
                match error {
                    // The request changed between the two reads (a reorg replaced it, by one of
                    // another kind or naming another prover): look again next pass.
                    Some(
                        E::RequestNotPending(_)
                        | E::RequestExpired(_)
                        | E::InputMismatch(_)
                        | E::PrivateRequest(_)
                        | E::NotPrivateRequest(_)
                        | E::NotNamedProver(_),
                    ) => Ok(()),
                    Some(other) if job.attempts + 1 >= MAX_ATTEMPTS || matches!(other, E::InvalidProof(_)) => {
                        ctx.metrics.count_failure(Failure::RejectedByCoordinator);
                        warn!(error = %other, "the coordinator rejects this fulfilment");
                        job.state = JobState::Failed { reason: format!("coordinator rejects the fulfilment: {other}") };
                        ctx.store.put(&job).map_err(Into::into)
                    }
                    other => {
                        job.attempts += 1;
                        let error = other.map_or_else(|| "no coordinator error".to_string(), |e| e.to_string());
                        warn!(%error, attempt = job.attempts, "fulfilment would revert; retrying");
                        if job.attempts >= MAX_ATTEMPTS {
                            ctx.metrics.count_failure(Failure::KeptReverting);
                            job.state = JobState::Failed { reason: "fulfilment kept reverting".into() };
                        }
                        ctx.store.put(&job).map_err(Into::into)
                    }
                }
            }
            verdict => settle(ctx, job, verdict).map(drop),
        }
    }

    /// Follows a submitted job's transaction; with `capped` (base fee above the cap) nothing is
    /// re-sent or replaced.
    async fn track<C: ChainClient>(&mut self, ctx: &Ctx<C>, mut job: Job, head: u64, capped: bool) -> Result<Track> {
        let JobState::Submitted { output, proof, mut tx } = job.state.clone() else { return Ok(Track::Mined) };
        for v in tx.versions.iter().rev() {
            if let Some(r) = ctx.client.receipt(v.hash).await? {
                return self.mined(ctx, job, v.hash, r, head).await;
            }
        }
        let req = ctx.client.request(job.request_id).await?;
        match judge(&job, &req, ctx.client.fulfiller(), ctx.chain_now()) {
            Verdict::Keep => {}
            Verdict::FulfilledByUs if head < tx.sent_at_block + RECEIPT_GRACE_BLOCKS => return Ok(Track::Pending),
            verdict => {
                // Let go; a transaction still pooled on this nonce is outbid by the next one.
                settle(ctx, job, verdict)?;
                return Ok(Track::Mined);
            }
        }
        if ctx.client.nonce().await? > tx.nonce {
            for v in &tx.versions {
                if ctx.client.is_known(v.hash).await? {
                    return Ok(Track::Pending); // mined, its receipt not indexed yet
                }
            }
            warn!(nonce = tx.nonce, "another transaction used this nonce; sending the fulfilment again");
            job.state = JobState::Proven { output, proof, prove_seconds: 0.0 };
            ctx.store.put(&job)?;
            return Ok(Track::Mined);
        }
        if capped {
            return Ok(Track::Pending);
        }
        let current = tx.current().clone();
        if !ctx.client.is_known(current.hash).await? {
            warn!(tx = %current.hash, nonce = tx.nonce, "fulfilment no longer in the pool (evicted, or lost in a crash); sending it again");
            ctx.metrics.tx_rebroadcast.fetch_add(1, Ordering::Relaxed);
            match ctx.client.broadcast(&current.raw).await {
                Ok(()) => {
                    tx.sent_at_block = head;
                    job.state = JobState::Submitted { output, proof, tx };
                    ctx.store.put(&job)?;
                    return Ok(Track::Pending);
                }
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    warn!(error = %e, "sending it again was refused; replacing it with higher fees");
                    return self.replace(ctx, job, head).await;
                }
            }
        }
        let (base, _) = self.fees(ctx, head).await?;
        if base > current.max_fee || head >= tx.sent_at_block + ctx.cfg.fees.replace_after_blocks {
            return self.replace(ctx, job, head).await;
        }
        Ok(Track::Pending)
    }

    /// Replaces the pending transaction of `job` (same nonce, higher fees).
    async fn replace<C: ChainClient>(&mut self, ctx: &Ctx<C>, mut job: Job, head: u64) -> Result<Track> {
        let JobState::Submitted { output, proof, mut tx } = job.state.clone() else { return Ok(Track::Mined) };
        let current = tx.current().clone();
        let (base, market) = self.fees(ctx, head).await?;
        let cap = u128::from(ctx.cfg.fees.max_fee_per_gas);
        let Some((max_fee, tip)) = replacement_fees((current.max_fee, current.tip), market, cap) else {
            if !self.cap_warned {
                warn!(
                    base_fee = base,
                    max_fee = current.max_fee,
                    cap,
                    "transaction stuck, and a replacement would exceed fees.max_fee_per_gas; waiting"
                );
                self.cap_warned = true;
            }
            return Ok(Track::Pending);
        };
        self.cap_warned = false;
        let f = Fulfilment { request_id: job.request_id, claim: job.claim(), output, proof };
        let signed =
            ctx.client.sign_fulfil(&f, TxParams { nonce: tx.nonce, gas_limit: tx.gas_limit, max_fee, tip }).await?;
        tx.versions.push(SentTx { hash: signed.hash, raw: signed.raw.clone(), max_fee, tip });
        tx.sent_at_block = head;
        let nonce = tx.nonce;
        job.state = JobState::Submitted { output: f.output, proof: f.proof, tx };
        ctx.store.put_with(&job, Some(LastTx { nonce, max_fee, tip }))?;
        info!(old = %current.hash, new = %signed.hash, nonce, base_fee = base, max_fee, tip, "stuck fulfilment replaced with higher fees");
        ctx.metrics.tx_replaced.fetch_add(1, Ordering::Relaxed);
        match ctx.client.broadcast(&signed.raw).await {
            Ok(()) => Ok(Track::Pending),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                warn!(error = %e, "the replacement was refused; it will be raised again");
                Ok(Track::Pending)
            }
        }
    }

    /// One of the job's transactions is mined.
    async fn mined<C: ChainClient>(
        &mut self,
        ctx: &Ctx<C>,
        mut job: Job,
        hash: B256,
        r: Receipt,
        head: u64,
    ) -> Result<Track> {
        if r.block_number + ctx.cfg.prover.confirmations > head {
            return Ok(Track::Mined);
        }
        let req = ctx.client.request(job.request_id).await?;
        let verdict = judge(&job, &req, ctx.client.fulfiller(), ctx.chain_now());
        match (r.success, verdict) {
            (true, Verdict::FulfilledByUs) => {
                ctx.metrics.fulfilled.fetch_add(1, Ordering::Relaxed);
                info!(tx = %hash, block = r.block_number, gas_used = r.gas_used, latency_s = now().saturating_sub(job.seen_at), "fulfilled");
                job.state = JobState::Fulfilled { tx: Some(hash), block: r.block_number, gas_used: r.gas_used };
                ctx.store.put(&job)?;
            }
            // Our transaction succeeded, yet the request reads pending: a lagging view; look again.
            (true, Verdict::Keep) => {}
            (false, Verdict::Keep) => {
                job.attempts += 1;
                let JobState::Submitted { output, proof, .. } = job.state.clone() else { unreachable!() };
                if job.attempts >= MAX_ATTEMPTS {
                    ctx.metrics.count_failure(Failure::KeptReverting);
                    warn!(tx = %hash, attempts = job.attempts, "fulfilment reverted; giving up");
                    job.state = JobState::Failed { reason: format!("fulfilment reverted {} times", job.attempts) };
                } else {
                    warn!(tx = %hash, attempt = job.attempts, "fulfilment reverted; sending again");
                    job.state = JobState::Proven { output, proof, prove_seconds: 0.0 };
                }
                ctx.store.put(&job)?;
            }
            (_, verdict) => {
                settle(ctx, job, verdict)?;
            }
        }
        Ok(Track::Mined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_raise_tip_and_max_fee_by_more_than_ten_percent() {
        let cap = 1_000_000;
        for (prev, market, expected) in [
            ((100u128, 10u128), (0u128, 0u128), Some((113u128, 12u128))),
            ((100, 10), (300, 20), Some((300, 20))),
            ((8, 0), (0, 0), Some((9, 0))),
            ((999_999, 10), (0, 0), None),
        ] {
            let got = replacement_fees(prev, market, cap);
            assert_eq!(got, expected, "prev {prev:?} market {market:?}");
            if let Some((max_fee, tip)) = got {
                assert!(max_fee * 10 >= prev.0 * 11 && tip * 10 >= prev.1 * 11, "{prev:?} -> {got:?}");
                assert!(tip <= max_fee);
            }
        }
    }

    #[test]
    fn market_fees_follow_the_base_fee_under_the_cap() {
        let cfg = FeeConfig { max_fee_per_gas: 1_000, min_priority_fee: 5, ..FeeConfig::default() };
        assert_eq!(market_fees(100, 1, &cfg), (205, 5));
        assert_eq!(market_fees(100, 50, &cfg), (250, 50));
        assert_eq!(market_fees(10_000, 50, &cfg), (1_000, 50));
    }
}
