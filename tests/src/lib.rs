//! Shared harness of the end-to-end tests: the repository's toolchain, zoo model artifacts built
//! once per test process, and anvil instances on free ports that die with the test.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use alloy::node_bindings::{Anvil, AnvilInstance};
use models::card::ModelCard;
use prover_node::{
    prove::{self, LoadedModel},
    setup::{self, SetupOptions, SrsSource},
};

/// A prover node served in this process (stopped with [`RunningNode::stop`]).
pub struct RunningNode {
    stop: tokio::sync::watch::Sender<bool>,
    /// The node's task.
    pub handle: tokio::task::JoinHandle<prover_node::Result<()>>,
    /// The node's metrics.
    pub metrics: std::sync::Arc<prover_node::metrics::Metrics>,
}

/// Starts a node with `cfg`, signing with `signer`.
pub fn start_node(
    cfg: prover_node::config::NodeConfig,
    signer: alloy::signers::local::PrivateKeySigner,
) -> RunningNode {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let metrics = std::sync::Arc::new(prover_node::metrics::Metrics::default());
    let handle = tokio::spawn(prover_node::service::serve(cfg, Some(signer), metrics.clone(), rx));
    RunningNode { stop, handle, metrics }
}

impl RunningNode {
    /// Stops the node and waits for it; panics if it ended with an error.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.handle.await.unwrap().unwrap();
    }
}

/// Seed of the insecure dev SRS the committed verifiers were generated with.
pub const DEV_SEED: u64 = 42;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The native anvil binary installed by `scripts/setup` (or `$ZKINFER_ANVIL`).
pub fn anvil_bin() -> PathBuf {
    std::env::var_os("ZKINFER_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"))
}

/// Starts anvil on a free port (prague, instant mining); it is killed when dropped.
pub fn anvil() -> AnvilInstance {
    let bin = anvil_bin();
    assert!(bin.exists(), "{} is missing: run scripts/setup", bin.display());
    Anvil::new().path(bin).args(["--hardfork", "prague"]).spawn()
}

/// Artifacts of a zoo model set up with the dev SRS.
pub struct ZooModel {
    /// Model card path.
    pub card_path: PathBuf,
    /// Loaded card.
    pub card: ModelCard,
    /// Ready to prove.
    pub loaded: LoadedModel,
    /// Compiled verifier.
    pub compiled: verifier_gen::Compiled,
    /// Generated Solidity source.
    pub source: String,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for ZooModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZooModel").field("card", &self.card.name).finish_non_exhaustive()
    }
}

/// Largest k of the committed Hermez ceremony file (`srs/hermez-raw-11`).
pub const CEREMONY_K: u32 = 11;

fn build(name: &str, ceremony: bool, private_input: bool) -> ZooModel {
    let dir = tempfile::tempdir().expect("temp dir");
    let onnx = root().join(format!("models/zoo/{name}.onnx"));
    let (opts, srs_file) = if ceremony {
        // As scripts/gen-fixtures and the demo do: import the committed ceremony file, k ≤ 11.
        let path = dir.path().join("hermez-11.srs");
        let srs = models::srs::Srs::import(&root().join("srs/hermez-raw-11"), &Default::default()).expect("import");
        srs.save(&path).expect("save SRS");
        let mut opts = SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::File(path.clone()));
        opts.max_k = CEREMONY_K;
        (opts, Some(path))
    } else {
        (SetupOptions::new(onnx, dir.path().to_path_buf(), SrsSource::InsecureDev { seed: DEV_SEED }), None)
    };
    let opts = SetupOptions { private_input, ..opts };
    let (card, card_path) = setup::run(&opts).unwrap_or_else(|e| panic!("setup of {name}: {e}"));
    let srs = card.srs(srs_file.as_deref()).expect("SRS");
    let loaded = prove::load(&card_path, &srs).expect("load");
    let compiled = verifier_gen::Compiled::for_card(&card_path, &card).expect("verifier artifact");
    let source = std::fs::read_to_string(ModelCard::resolve(&card_path, &card.files.verifier_sol)).expect("source");
    ZooModel { card_path, card, loaded, compiled, source, _dir: dir }
}

/// A zoo model's artifacts on the insecure dev SRS, built once per test process.
pub fn zoo(name: &'static str) -> &'static ZooModel {
    cached(name, false, false)
}

/// A zoo model set up in committed-input mode (`--private-input`: private requests only) on the
/// insecure dev SRS, built once per test process.
pub fn zoo_private(name: &'static str) -> &'static ZooModel {
    cached(name, false, true)
}

/// A zoo model's artifacts on the committed Hermez ceremony SRS (k ≤ 11), built once per test process.
pub fn zoo_ceremony(name: &'static str) -> &'static ZooModel {
    cached(name, true, false)
}

fn cached(name: &'static str, ceremony: bool, private_input: bool) -> &'static ZooModel {
    type Cache = Mutex<Vec<(&'static str, bool, bool, &'static ZooModel)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((.., m)) = guard.iter().find(|(n, c, p, _)| *n == name && *c == ceremony && *p == private_input) {
        return m;
    }
    let model: &'static ZooModel = Box::leak(Box::new(build(name, ceremony, private_input)));
    guard.push((name, ceremony, private_input, model));
    model
}

/// Reads a zoo example input (`models/zoo/<name>.input.json`), quantized for the model.
pub fn example_input(m: &ZooModel) -> Vec<i64> {
    let file = prover_node::proof::InputFile::load(&root().join(format!("models/zoo/{}.input.json", m.card.name)))
        .expect("input");
    file.quantized(&m.loaded.model).expect("quantize")
}

/// forge's build output (`forge build` must have run).
pub fn forge_out() -> PathBuf {
    let out = root().join("out");
    assert!(
        out.join("InferenceCoordinator.sol/InferenceCoordinator.json").exists(),
        "run `forge build` first (scripts/test does)"
    );
    out
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// What the [`HttpFaultProxy`] does with a JSON-RPC request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpFault {
    /// Forward it and relay the answer.
    Pass,
    /// Answer with this HTTP status (500, 429, …) without forwarding: the request never arrives.
    Status(u16),
    /// Forward it, then answer with this HTTP status instead of the real answer: the request took
    /// effect, its answer is lost.
    StatusAfterForward(u16),
}

/// An HTTP proxy in front of a JSON-RPC endpoint that injects HTTP errors: every request (or only
/// those of one method) gets the current [`HttpFault`]. Keep-alive connections are served one
/// request at a time; each request is forwarded on a fresh connection.
#[derive(Debug)]
pub struct HttpFaultProxy {
    /// The proxy's URL (`http://127.0.0.1:port`).
    pub url: String,
    mode: tokio::sync::watch::Sender<(HttpFault, Option<&'static str>)>,
    log: std::sync::Arc<Mutex<Vec<(String, HttpFault)>>>,
}

impl HttpFaultProxy {
    /// A proxy to `target` (`http://host:port`), passing everything until told otherwise.
    pub async fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let (mode, rx) = tokio::sync::watch::channel((HttpFault::Pass, None));
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let requests = log.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (target, rx, requests) = (target.clone(), rx.clone(), requests.clone());
                tokio::spawn(async move {
                    let _ = serve_connection(socket, &target, &rx, &requests).await;
                });
            }
        });
        Self { url, mode, log }
    }

    /// Applies `fault` to every request from now on.
    pub fn set(&self, fault: HttpFault) {
        self.mode.send_replace((fault, None));
    }

    /// Applies `fault` to the requests of `method` only (the others pass).
    pub fn set_for(&self, method: &'static str, fault: HttpFault) {
        self.mode.send_replace((fault, Some(method)));
    }

    /// How many requests of `method` got `fault` so far.
    pub fn count(&self, method: &str, fault: HttpFault) -> usize {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|(m, f)| m == method && *f == fault).count()
    }
}

/// One HTTP request: its body (the JSON-RPC request).
async fn read_request(
    reader: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut length = 0usize;
    let mut first = true;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if first && line.trim().is_empty() {
            continue;
        }
        first = false;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Sends `body` to `target` (HTTP/1.1, `Connection: close`) and returns the answer's body.
async fn forward(target: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut upstream = tokio::net::TcpStream::connect(target).await?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    upstream.write_all(head.as_bytes()).await?;
    upstream.write_all(body).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or(std::io::ErrorKind::InvalidData)?;
    let headers = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let rest = &answer[split + 4..];
    if !headers.contains("transfer-encoding: chunked") {
        return Ok(rest.to_vec());
    }
    // De-chunk: `<hex size>\r\n<data>\r\n` … `0\r\n\r\n`.
    let (mut out, mut at) = (Vec::new(), 0);
    while let Some(end) = rest[at..].windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[at..at + end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .map_err(|_| std::io::ErrorKind::InvalidData)?;
        at += end + 2;
        if size == 0 {
            break;
        }
        out.extend_from_slice(rest.get(at..at + size).ok_or(std::io::ErrorKind::InvalidData)?);
        at += size + 2;
    }
    Ok(out)
}

async fn serve_connection(
    socket: tokio::net::TcpStream,
    target: &str,
    mode: &tokio::sync::watch::Receiver<(HttpFault, Option<&'static str>)>,
    log: &Mutex<Vec<(String, HttpFault)>>,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let (read, mut write) = socket.into_split();
    let mut reader = tokio::io::BufReader::new(read);
    while let Some(body) = read_request(&mut reader).await? {
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let method = match &request {
            serde_json::Value::Array(batch) => batch.first().and_then(|r| r["method"].as_str()),
            single => single["method"].as_str(),
        }
        .unwrap_or("?")
        .to_string();
        let (fault, only) = *mode.borrow();
        let fault = if only.is_none_or(|m| m == method) { fault } else { HttpFault::Pass };
        log.lock().unwrap_or_else(|e| e.into_inner()).push((method, fault));
        let (status, answer) = match fault {
            HttpFault::Pass => ("200 OK".to_string(), forward(target, &body).await?),
            HttpFault::Status(code) => (status_line(code), br#"{"error":"injected by the test proxy"}"#.to_vec()),
            HttpFault::StatusAfterForward(code) => {
                forward(target, &body).await?;
                (status_line(code), br#"{"error":"injected by the test proxy"}"#.to_vec())
            }
        };
        let head =
            format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", answer.len());
        write.write_all(head.as_bytes()).await?;
        write.write_all(&answer).await?;
    }
    Ok(())
}

fn status_line(code: u16) -> String {
    let reason = match code {
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
    format!("{code} {reason}")
}

/// The release `prover-node` binary the end-to-end tests run: `$CARGO_TARGET_DIR/release` when
/// that is set (as cargo sees it), else `target/release`.
pub fn node_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    let target = if target.is_relative() { root().join(target) } else { target };
    target.join("release/prover-node")
}
