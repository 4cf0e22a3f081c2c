//! WebSocket `eth_subscribe("newHeads")`: wakes the node as soon as a block arrives instead of at
//! the next poll. The subscription only *triggers* a pass; events are still read with
//! `eth_getLogs` from the persisted cursor, so a dropped subscription or a missed notification
//! loses nothing, and polling every `poll_interval_ms` remains the fallback.
//!
//! Plain `ws://` only (no TLS stack is linked); put a TLS-terminating proxy in front of remote
//! `wss://` endpoints, or rely on polling.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Keeps a `newHeads` subscription open (reconnecting with backoff) until `shutdown`.
pub async fn new_heads(url: String, wake: Arc<Notify>, metrics: Arc<Metrics>, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(250);
    let mut warned = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((mut socket, _)) => {
                let subscribe = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
                if socket.send(Message::text(subscribe)).await.is_ok() {
                    info!(target: "prover_node::watcher", %url, "subscribed to new blocks");
                    metrics.ws_connected.store(true, Ordering::Relaxed);
                    warned = false;
                    backoff = Duration::from_millis(250);
                    loop {
                        tokio::select! {
                            msg = socket.next() => match msg {
                                Some(Ok(Message::Text(text))) if text.contains("eth_subscription") => wake.notify_one(),
                                Some(Ok(Message::Ping(p))) => { let _ = socket.send(Message::Pong(p)).await; }
                                Some(Ok(_)) => {}
                                Some(Err(_)) | None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                    metrics.ws_connected.store(false, Ordering::Relaxed);
                    warn!(target: "prover_node::watcher", "block subscription closed; polling until it reconnects");
                }
            }
            Err(e) if !warned => {
                warn!(target: "prover_node::watcher", %url, error = %e, "cannot subscribe to new blocks; polling until it succeeds");
                warned = true;
            }
            Err(e) => debug!(target: "prover_node::watcher", error = %e, "subscription retry failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
