//! `GET /metrics` (Prometheus text format) and `GET /health`, served by a minimal HTTP/1.1 loop.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use crate::store::DropReason;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

/// The WebSocket block subscription, as it really is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum WsState {
    /// No `rpc.ws_url` configured: polling only.
    Disabled = 0,
    /// Connecting, or waiting for the answer to `eth_subscribe`.
    Connecting = 1,
    /// The endpoint answered with a subscription id.
    Subscribed = 2,
    /// The endpoint refused `eth_subscribe`: polling.
    Rejected = 3,
    /// Unreachable, closed or unanswered: polling until it reconnects.
    Disconnected = 4,
}

impl WsState {
    /// All states, in the order of their values.
    pub const ALL: [WsState; 5] =
        [Self::Disabled, Self::Connecting, Self::Subscribed, Self::Rejected, Self::Disconnected];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Connecting => "connecting",
            Self::Subscribed => "subscribed",
            Self::Rejected => "rejected",
            Self::Disconnected => "disconnected",
        }
    }
}

/// Why a request cannot be fulfilled by this node (recorded as failed): a closed set, exported as
/// a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An input value does not fit 64 bits.
    InputTooLarge,
    /// The input is outside the model's range.
    InputOutOfRange,
    /// The prover failed.
    ProvingFailed,
    /// The coordinator rejects the fulfilment (e.g. an invalid proof).
    RejectedByCoordinator,
    /// The fulfilment kept reverting.
    KeptReverting,
    /// A private request sealed to a key this node does not hold (or no key file is configured).
    UnknownEncryptionKey,
    /// A private request whose envelope does not open (another key, another request's envelope,
    /// tampered, wrong size or version).
    Undecryptable,
    /// A private request whose envelope opens, but not to its commitment (input or salt differ).
    CommitmentMismatch,
}

impl Failure {
    /// All, in a fixed order.
    pub const ALL: [Failure; 8] = [
        Self::InputTooLarge,
        Self::InputOutOfRange,
        Self::ProvingFailed,
        Self::RejectedByCoordinator,
        Self::KeptReverting,
        Self::UnknownEncryptionKey,
        Self::Undecryptable,
        Self::CommitmentMismatch,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::InputTooLarge => "input_too_large",
            Self::InputOutOfRange => "input_out_of_range",
            Self::ProvingFailed => "proving_failed",
            Self::RejectedByCoordinator => "rejected_by_coordinator",
            Self::KeptReverting => "kept_reverting",
            Self::UnknownEncryptionKey => "unknown_encryption_key",
            Self::Undecryptable => "undecryptable",
            Self::CommitmentMismatch => "commitment_mismatch",
        }
    }
}

/// Counters and gauges of the node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests seen for served models.
    pub seen: AtomicU64,
    /// Proofs generated.
    pub proven: AtomicU64,
    /// Our fulfilments mined.
    pub fulfilled: AtomicU64,
    /// Requests that cannot be proved.
    pub failed: AtomicU64,
    /// Requests dropped (fulfilled by others, expired, cancelled, unserved model).
    pub dropped: AtomicU64,
    /// RPC errors.
    pub rpc_errors: AtomicU64,
    /// Sum of proving seconds, as f64 bits.
    prove_seconds_bits: AtomicU64,
    /// Jobs waiting for a prover or in progress.
    pub queue_depth: AtomicU64,
    /// Last block scanned.
    pub last_block: AtomicU64,
    /// Whether the last chain access succeeded.
    pub rpc_up: AtomicBool,
    /// Whether the WebSocket block subscription is confirmed (the endpoint answered
    /// `eth_subscribe` with a subscription id).
    pub ws_connected: AtomicBool,
    /// Whether the key ring's newest key is the node account's `encryptionKeyOf` on the
    /// coordinator (checked at start; false without a key ring).
    pub encryption_key_registered: AtomicBool,
    /// [`WsState`] as its value.
    ws_state: std::sync::atomic::AtomicU8,
    /// Dropped or skipped requests by reason, in the order of [`DropReason::LABELS`].
    pub dropped_by: [AtomicU64; DropReason::LABELS.len()],
    /// Failed requests by reason, in the order of [`Failure::ALL`].
    failed_by: [AtomicU64; Failure::ALL.len()],
    /// Fulfilment transactions replaced with higher fees.
    pub tx_replaced: AtomicU64,
    /// Fulfilment transactions sent again after the pool evicted them.
    pub tx_rebroadcast: AtomicU64,
    /// Reorgs noticed under the cursor.
    pub reorgs: AtomicU64,
    /// Whether the last pass overran its deadline although every call answered within the
    /// timeout (a slow endpoint, not an unreachable one).
    pub pass_overran: std::sync::atomic::AtomicBool,
    /// Requests found missing from `eth_getLogs` answers (a lagging log index).
    pub log_gaps: AtomicU64,
    /// Blocks the endpoint answered `null` for although they exist (a backend behind the head).
    pub blocks_unavailable: AtomicU64,
    /// Proofs discarded because a reorg changed the request's input meanwhile.
    pub stale_proofs: AtomicU64,
    /// Signer balance in gwei.
    pub balance_gwei: AtomicU64,
    /// Whether the signer's balance is below `signer.min_balance`.
    pub low_balance: AtomicBool,
    /// Whether the base fee is above `fees.max_fee_per_gas` (nothing can be sent).
    pub fee_capped: AtomicBool,
    /// Base fee of the head block at the last look (wei).
    pub base_fee_wei: AtomicU64,
    /// `fees.max_fee_per_gas` (wei).
    pub fee_cap_wei: AtomicU64,
    /// Unix milliseconds of the last successful pass over the chain (0: none yet).
    pub last_pass_ms: AtomicU64,
    /// Whether the node finished starting (models loaded, chain checked).
    pub started: AtomicBool,
    /// `/health` fails when the last successful pass is older than this (seconds; 0: 30).
    pub stale_after_secs: AtomicU64,
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Metrics {
    /// Records the subscription's state.
    pub fn set_ws_state(&self, state: WsState) {
        self.ws_state.store(state as u8, Ordering::Relaxed);
        self.ws_connected.store(state == WsState::Subscribed, Ordering::Relaxed);
    }

    /// The subscription's state.
    pub fn ws_state(&self) -> WsState {
        let v = self.ws_state.load(Ordering::Relaxed);
        WsState::ALL.into_iter().find(|s| *s as u8 == v).unwrap_or(WsState::Disabled)
    }

    /// Counts a dropped or skipped request.
    pub fn count_drop(&self, reason: &DropReason) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let i = DropReason::LABELS.iter().position(|l| *l == reason.label()).expect("every reason has a label");
        self.dropped_by[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request that cannot be fulfilled.
    pub fn count_failure(&self, why: Failure) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let i = Failure::ALL.iter().position(|f| *f == why).expect("listed");
        self.failed_by[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed requests for this reason so far.
    pub fn failed_with(&self, why: Failure) -> u64 {
        Failure::ALL.iter().position(|f| *f == why).map(|i| self.failed_by[i].load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Dropped requests with this label so far.
    pub fn dropped_with(&self, label: &str) -> u64 {
        DropReason::LABELS
            .iter()
            .position(|l| *l == label)
            .map(|i| self.dropped_by[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Records a successful pass over the chain.
    pub fn pass_succeeded(&self) {
        self.last_pass_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Liveness: `Ok(note)` while the node makes progress, `Err(reason)` otherwise.
    pub fn health(&self) -> Result<&'static str, String> {
        if !self.started.load(Ordering::Relaxed) {
            return Err(if self.rpc_errors.load(Ordering::Relaxed) > 0 && !self.rpc_up.load(Ordering::Relaxed) {
                "starting: the RPC endpoint is unreachable".into()
            } else {
                "starting: loading models and checking the chain".into()
            });
        }
        let stale_after = match self.stale_after_secs.load(Ordering::Relaxed) {
            0 => 30_000,
            s => s * 1000,
        };
        let age = now_ms().saturating_sub(self.last_pass_ms.load(Ordering::Relaxed));
        if age > stale_after {
            let why = if self.pass_overran.load(Ordering::Relaxed) {
                " (passes overrun their deadline: the RPC answers, but too slowly for the work queued)"
            } else if self.rpc_up.load(Ordering::Relaxed) {
                ""
            } else {
                " (RPC unreachable or not answering)"
            };
            return Err(format!("stalled: no successful pass over the chain for {} s{why}", age / 1000));
        }
        if self.low_balance.load(Ordering::Relaxed) {
            return Err(format!(
                "signer balance low ({} gwei): fulfilments cannot be paid for",
                self.balance_gwei.load(Ordering::Relaxed)
            ));
        }
        if self.fee_capped.load(Ordering::Relaxed) {
            return Ok("ok; fulfilments wait: the base fee is above fees.max_fee_per_gas (zkinfer_base_fee_wei)");
        }
        Ok("ok")
    }

    /// Adds a proving duration.
    pub fn add_prove_seconds(&self, s: f64) {
        let mut cur = self.prove_seconds_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + s).to_bits();
            match self.prove_seconds_bits.compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        for (name, help, kind, value) in [
            ("zkinfer_requests_seen_total", "Requests seen for served models.", "counter", g(&self.seen).to_string()),
            ("zkinfer_requests_proven_total", "Proofs generated.", "counter", g(&self.proven).to_string()),
            (
                "zkinfer_requests_fulfilled_total",
                "Fulfilments by this node mined.",
                "counter",
                g(&self.fulfilled).to_string(),
            ),
            (
                "zkinfer_requests_failed_total",
                "Requests that cannot be proved.",
                "counter",
                g(&self.failed).to_string(),
            ),
            (
                "zkinfer_requests_dropped_total",
                "Requests dropped (fulfilled elsewhere, expired, cancelled, unserved).",
                "counter",
                g(&self.dropped).to_string(),
            ),
            ("zkinfer_rpc_errors_total", "Failed RPC calls.", "counter", g(&self.rpc_errors).to_string()),
            (
                "zkinfer_prove_seconds_total",
                "Seconds spent proving.",
                "counter",
                f64::from_bits(g(&self.prove_seconds_bits)).to_string(),
            ),
            ("zkinfer_queue_depth", "Jobs waiting for or in proving.", "gauge", g(&self.queue_depth).to_string()),
            (
                "zkinfer_tx_replaced_total",
                "Fulfilment transactions replaced with higher fees (same nonce).",
                "counter",
                g(&self.tx_replaced).to_string(),
            ),
            (
                "zkinfer_tx_rebroadcast_total",
                "Fulfilment transactions sent again after being evicted.",
                "counter",
                g(&self.tx_rebroadcast).to_string(),
            ),
            ("zkinfer_reorgs_total", "Reorgs noticed under the scan cursor.", "counter", g(&self.reorgs).to_string()),
            (
                "zkinfer_log_gaps_total",
                "Requests missing from eth_getLogs answers (lagging log index); rescanned.",
                "counter",
                g(&self.log_gaps).to_string(),
            ),
            (
                "zkinfer_blocks_unavailable_total",
                "Blocks the endpoint answered null for although its head is past them (retried, not a reorg).",
                "counter",
                g(&self.blocks_unavailable).to_string(),
            ),
            (
                "zkinfer_stale_proofs_total",
                "Proofs discarded because a reorg changed the input meanwhile.",
                "counter",
                g(&self.stale_proofs).to_string(),
            ),
            ("zkinfer_signer_balance_gwei", "Balance of the signer.", "gauge", g(&self.balance_gwei).to_string()),
            (
                "zkinfer_signer_low_balance",
                "1 if the signer's balance is below signer.min_balance.",
                "gauge",
                u8::from(self.low_balance.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "zkinfer_fee_capped",
                "1 while the base fee is above fees.max_fee_per_gas: no fulfilment is sent.",
                "gauge",
                u8::from(self.fee_capped.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "zkinfer_base_fee_wei",
                "Base fee of the head block at the last look.",
                "gauge",
                g(&self.base_fee_wei).to_string(),
            ),
            ("zkinfer_fee_cap_wei", "fees.max_fee_per_gas.", "gauge", g(&self.fee_cap_wei).to_string()),
            (
                "zkinfer_ws_connected",
                "1 while the newHeads WebSocket subscription is confirmed by the endpoint.",
                "gauge",
                u8::from(self.ws_connected.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "zkinfer_encryption_key_registered",
                "1 if the key ring's newest key is this node's encryptionKeyOf on the coordinator (checked at start).",
                "gauge",
                u8::from(self.encryption_key_registered.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "zkinfer_last_pass_age_seconds",
                "Seconds since the last successful pass over the chain.",
                "gauge",
                match g(&self.last_pass_ms) {
                    0 => "NaN".to_string(),
                    t => format!("{:.1}", now_ms().saturating_sub(t) as f64 / 1000.0),
                },
            ),
            ("zkinfer_last_block", "Last block scanned.", "gauge", g(&self.last_block).to_string()),
            (
                "zkinfer_rpc_up",
                "1 if the last RPC call succeeded.",
                "gauge",
                u8::from(self.rpc_up.load(Ordering::Relaxed)).to_string(),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        let name = "zkinfer_requests_failed_by_reason_total";
        out.push_str(&format!("# HELP {name} Requests that cannot be fulfilled, by reason.\n# TYPE {name} counter\n"));
        for (why, count) in Failure::ALL.iter().zip(&self.failed_by) {
            out.push_str(&format!("{name}{{reason=\"{}\"}} {}\n", why.label(), g(count)));
        }
        let name = "zkinfer_ws_state";
        out.push_str(&format!(
            "# HELP {name} The newHeads WebSocket subscription: 1 for its current state (disabled: polling only; \
             rejected: the endpoint refused eth_subscribe, polling).\n# TYPE {name} gauge\n"
        ));
        let now = self.ws_state();
        for state in WsState::ALL {
            out.push_str(&format!("{name}{{state=\"{}\"}} {}\n", state.label(), u8::from(state == now)));
        }
        let name = "zkinfer_requests_dropped_by_reason_total";
        out.push_str(&format!("# HELP {name} Requests dropped or skipped, by reason.\n# TYPE {name} counter\n"));
        for (label, count) in DropReason::LABELS.iter().zip(&self.dropped_by) {
            out.push_str(&format!("{name}{{reason=\"{label}\"}} {}\n", g(count)));
        }
        out
    }
}

/// Binds the metrics endpoint; returns the bound address (useful with port 0).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` flips to true.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (mut socket, _) = tokio::select! {
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, ctype) = match path {
                "/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
                "/health" => match metrics.health() {
                    Ok(note) => ("200 OK", format!("{note}\n"), "text/plain"),
                    Err(reason) => ("503 Service Unavailable", format!("{reason}\n"), "text/plain"),
                },
                _ => ("404 Not Found", "not found\n".to_string(), "text/plain"),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}
