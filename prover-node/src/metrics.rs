//! `GET /metrics` (Prometheus text format) and `GET /health`, served by a minimal HTTP/1.1 loop.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::watch,
};

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
    /// Whether the WebSocket block subscription is open.
    pub ws_connected: AtomicBool,
}

impl Metrics {
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
                "/health" if metrics.rpc_up.load(Ordering::Relaxed) => ("200 OK", "ok\n".to_string(), "text/plain"),
                "/health" => ("503 Service Unavailable", "rpc unreachable\n".to_string(), "text/plain"),
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
