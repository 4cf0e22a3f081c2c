//! WebSocket `eth_subscribe("newHeads")`: wakes the node as soon as a block arrives instead of at
//! the next poll. The subscription only *triggers* a pass; events are still read with
//! `eth_getLogs` from the persisted cursor, so a dropped subscription or a missed notification
//! loses nothing, and polling every `poll_interval_ms` remains the fallback.
//!
//! The state exported (`zkinfer_ws_state`, `zkinfer_ws_connected`) is the true one: "subscribed"
//! only once the endpoint answered `eth_subscribe` with a subscription id. An endpoint that
//! refuses the subscription (many load-balanced providers do) is reported as `rejected`, said
//! once, and asked again only every [`REJECTED_RETRY`]; the node polls meanwhile. Connecting and
//! the subscription's answer are bounded by `rpc.timeout_ms`.
//!
//! Plain `ws://` only (no TLS stack is linked); put a TLS-terminating proxy in front of remote
//! `wss://` endpoints, or rely on polling.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{watch, Notify};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, WsState};

/// How often a refused subscription is asked for again.
pub const REJECTED_RETRY: Duration = Duration::from_secs(60);
/// Longest wait between reconnection attempts otherwise.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How a subscription attempt ended.
enum Ended {
    /// The endpoint could not be reached, or the connection closed.
    Lost(String),
    /// The endpoint answered `eth_subscribe` with an error.
    Rejected(String),
    /// Shutdown.
    Shutdown,
}

/// Keeps a `newHeads` subscription open (reconnecting with backoff) until `shutdown`.
pub async fn new_heads(
    url: String,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(250);
    // The last problem said (each kind of problem is said once until a subscription succeeds).
    let mut said: Option<&'static str> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        metrics.set_ws_state(WsState::Connecting);
        let ended = tokio::select! {
            e = subscribe(&url, &wake, &metrics, timeout, &mut said) => e,
            _ = shutdown.changed() => Ended::Shutdown,
        };
        let wait = match ended {
            Ended::Shutdown => return,
            Ended::Rejected(error) => {
                metrics.set_ws_state(WsState::Rejected);
                if said != Some("rejected") {
                    warn!(
                        target: "prover_node::watcher",
                        %url,
                        %error,
                        "the endpoint refused eth_subscribe(newHeads): polling every rpc.poll_interval_ms instead \
                         (asked again every {} s; zkinfer_ws_state{{state=\"rejected\"}})",
                        REJECTED_RETRY.as_secs()
                    );
                    said = Some("rejected");
                } else {
                    debug!(target: "prover_node::watcher", %error, "subscription refused again");
                }
                REJECTED_RETRY
            }
            Ended::Lost(error) => {
                metrics.set_ws_state(WsState::Disconnected);
                if said != Some("lost") {
                    warn!(
                        target: "prover_node::watcher",
                        %url,
                        %error,
                        "no block subscription: polling every rpc.poll_interval_ms until it reconnects"
                    );
                    said = Some("lost");
                } else {
                    debug!(target: "prover_node::watcher", %error, "subscription retry failed");
                }
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One connection: connect, subscribe, wait for the answer, then wake the node on every block.
async fn subscribe(
    url: &str,
    wake: &Notify,
    metrics: &Metrics,
    timeout: Duration,
    said: &mut Option<&'static str>,
) -> Ended {
    let mut socket = match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(e)) => return Ended::Lost(e.to_string()),
        Err(_) => return Ended::Lost(format!("no answer within {timeout:?}")),
    };
    let request = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
    if let Err(e) = socket.send(Message::text(request)).await {
        return Ended::Lost(e.to_string());
    }
    // The answer to our request (id 1): a subscription id, or an error.
    let answer = tokio::time::timeout(timeout, async {
        while let Some(msg) = socket.next().await {
            match msg {
                Ok(Message::Text(text)) => {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
                    if v.get("id") != Some(&serde_json::json!(1)) {
                        continue;
                    }
                    if let Some(error) = v.get("error") {
                        let message = error.get("message").and_then(|m| m.as_str()).map(str::to_string);
                        return Err(Ended::Rejected(message.unwrap_or_else(|| error.to_string())));
                    }
                    return match v.get("result").and_then(|r| r.as_str()) {
                        Some(id) => Ok(id.to_string()),
                        None => Err(Ended::Rejected(format!("unexpected answer {text}"))),
                    };
                }
                Ok(Message::Ping(p)) => {
                    let _ = socket.send(Message::Pong(p)).await;
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Err(Ended::Lost("the connection closed before eth_subscribe was answered".into()))
    })
    .await;
    let subscription = match answer {
        Ok(Ok(id)) => id,
        Ok(Err(ended)) => return ended,
        Err(_) => return Ended::Lost(format!("eth_subscribe not answered within {timeout:?}")),
    };
    info!(target: "prover_node::watcher", %url, %subscription, "subscribed to new blocks");
    metrics.set_ws_state(WsState::Subscribed);
    *said = None;
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) if text.contains("eth_subscription") => wake.notify_one(),
            Some(Ok(Message::Ping(p))) => {
                let _ = socket.send(Message::Pong(p)).await;
            }
            Some(Ok(Message::Close(_))) | None => return Ended::Lost("the endpoint closed the subscription".into()),
            Some(Err(e)) => return Ended::Lost(e.to_string()),
            Some(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    /// A WebSocket endpoint answering `eth_subscribe` with `answer` (then one block notification
    /// when it is a subscription id). Returns its URL and how many subscriptions were asked for.
    async fn endpoint(answer: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = asked.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.to_text().is_ok_and(|t| t.contains("eth_subscribe")) {
                            counter.fetch_add(1, Ordering::Relaxed);
                            let _ = ws.send(Message::text(answer)).await;
                            if answer.contains("result") {
                                let block = r#"{"jsonrpc":"2.0","method":"eth_subscription","params":{"subscription":"0x1","result":{}}}"#;
                                let _ = ws.send(Message::text(block)).await;
                            }
                        }
                    }
                });
            }
        });
        (url, asked)
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let started = std::time::Instant::now();
        while !f() {
            assert!(started.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_refused_subscription_is_reported_as_refused_not_subscribed() {
        let (url, asked) = endpoint(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method eth_subscribe does not exist"}}"#,
        )
        .await;
        let metrics = Arc::new(Metrics::default());
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(new_heads(url, Arc::new(Notify::new()), metrics.clone(), Duration::from_secs(2), rx));
        until("the refusal", || metrics.ws_state() == WsState::Rejected).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(metrics.ws_state(), WsState::Rejected);
        assert!(!metrics.ws_connected.load(Ordering::Relaxed));
        assert_eq!(asked.load(Ordering::Relaxed), 1, "not asked again at once");
        let text = metrics.render();
        assert!(
            text.contains("zkinfer_ws_connected 0") && text.contains("zkinfer_ws_state{state=\"rejected\"} 1"),
            "{text}"
        );
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_accepted_subscription_is_subscribed_and_wakes_the_node() {
        let (url, _) = endpoint(r#"{"jsonrpc":"2.0","id":1,"result":"0x1"}"#).await;
        let metrics = Arc::new(Metrics::default());
        let wake = Arc::new(Notify::new());
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(new_heads(url, wake.clone(), metrics.clone(), Duration::from_secs(2), rx));
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("woken by the block");
        assert_eq!(metrics.ws_state(), WsState::Subscribed);
        assert!(metrics.ws_connected.load(Ordering::Relaxed));
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_is_not_subscribed_and_shutdown_is_prompt() {
        // Accepts TCP connections and never completes the WebSocket handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = vec![];
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        let metrics = Arc::new(Metrics::default());
        let (stop, rx) = watch::channel(false);
        let task =
            tokio::spawn(new_heads(url, Arc::new(Notify::new()), metrics.clone(), Duration::from_millis(200), rx));
        until("the timeout", || metrics.ws_state() == WsState::Disconnected).await;
        assert!(!metrics.ws_connected.load(Ordering::Relaxed));
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
    }
}
