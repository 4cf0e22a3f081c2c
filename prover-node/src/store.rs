//! The node's embedded store (redb): every request it saw and what it did about it, the block
//! cursor, the last transaction it signed, and the identity of the chain it was made for.
//!
//! Each state change is its own durable transaction, so a `kill -9` between any two steps loses
//! nothing. Transactions are written *before* they are broadcast (write-ahead): a crash after the
//! broadcast never leaves a transaction the node does not know about.
//!
//! Opening is defensive: a 0-byte file is refused (an operator's `> store.redb` or a failed copy
//! must not silently forget every request), a file that is not a redb database or that redb cannot
//! read (truncated, overwritten) is reported as damaged instead of panicking, and a store made for
//! another chain, genesis or coordinator is refused once the node knows which chain it talks to.
//! Recovery from a damaged store: start with `--reinit-store` (the file is moved aside and the node
//! rescans from `contract.start_block`, or `--start-block N`); requests fulfilled meanwhile are
//! recognised on-chain and not proved again.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

use alloy::primitives::{Address, Bytes, B256, U256};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const JOBS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("jobs");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Ids of the jobs still in progress, so a pass does not re-read every job the node ever finished.
const ACTIVE: TableDefinition<'_, &[u8], ()> = TableDefinition::new("active");

/// Layout version of the values in the tables; bumped when a value's format changes.
const SCHEMA: u32 = 2;
const SCHEMA_KEY: &str = "schema";
const IDENTITY_KEY: &str = "identity";
const CURSOR_KEY: &str = "cursor";
const SEEN_THROUGH_KEY: &str = "seen_through";
const LAST_TX_KEY: &str = "last_tx";
const BASELINE_RESCAN_KEY: &str = "baseline_rescan";

/// redb's file signature: the first bytes of every redb database.
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Errors of the store, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is empty.
    #[error(
        "the store {} is an empty file: refusing to start from scratch silently (every request would be \
         rescanned); restore it from a backup, or pass --reinit-store to start a fresh store",
        path.display()
    )]
    Empty { path: PathBuf },
    /// The file is not a readable redb database.
    #[error(
        "the store {} is damaged ({reason}); restore it from a backup, or pass --reinit-store to move it \
         aside and rescan the chain from contract.start_block (or --start-block N)",
        path.display()
    )]
    Damaged { path: PathBuf, reason: String },
    /// The store was written by another version of the node.
    #[error(
        "the store {} has layout version {found}, this node reads version {SCHEMA}; use the matching node \
         version, or pass --reinit-store to rescan the chain",
        path.display()
    )]
    Schema { path: PathBuf, found: u32 },
    /// The store belongs to another chain or coordinator.
    #[error(
        "the store {} was made for {stored}, but the node is connected to {actual}; use that chain's \
         store (or a new store path) for this chain",
        path.display()
    )]
    ForeignChain { path: PathBuf, stored: Box<Identity>, actual: Box<Identity> },
    /// A file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// redb failed while the node was running.
    #[error("store {}: {source}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    /// A stored value does not decode.
    #[error("store {}: undecodable {what}: {source}", path.display())]
    Decode {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// What a store was made for: the chain (id and genesis block) and the coordinator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `eth_chainId`.
    pub chain_id: u64,
    /// Hash of block 0.
    pub genesis: B256,
    /// Coordinator contract.
    pub coordinator: Address,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chain {} (genesis {}) coordinator {}", self.chain_id, self.genesis, self.coordinator)
    }
}

/// Establishing which request ids precede `contract.start_block` without the chain's old state:
/// the first request event seen is at some block `B`; once the log index has served `B` it has
/// served every block before it, so a rescan from `contract.start_block` through `B` finds every
/// in-scope request below the first one seen (a lagging index may have left some out the first
/// time), and the lowest id found then bounds the requests out of scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineRescan {
    /// No request event seen yet.
    Waiting,
    /// Rescanning from `contract.start_block`; done once this block is scanned again.
    Until(u64),
}

/// Why a request was dropped or skipped: a closed set, exported as a metric label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DropReason {
    /// The node does not serve the request's model.
    Unserved { model_id: B256 },
    /// Another fulfiller was first.
    FulfilledByOther { fulfiller: Address },
    /// The requester cancelled it.
    Cancelled,
    /// Its deadline passed before the node could fulfil it.
    Expired,
    /// A reorg removed it and it did not come back before its deadline.
    Vanished,
    /// Its payment does not cover the fulfilment gas at current prices (policy `skip_unprofitable`).
    Unprofitable { payment: U256, cost: U256 },
}

impl DropReason {
    /// All metric labels, in a fixed order.
    pub const LABELS: [&'static str; 6] =
        ["unserved", "fulfilled_by_other", "cancelled", "expired", "vanished", "unprofitable"];

    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unserved { .. } => "unserved",
            Self::FulfilledByOther { .. } => "fulfilled_by_other",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Vanished => "vanished",
            Self::Unprofitable { .. } => "unprofitable",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unserved { model_id } => write!(f, "model {model_id} is not served by this node"),
            Self::FulfilledByOther { fulfiller } => write!(f, "fulfilled first by {fulfiller}"),
            Self::Cancelled => write!(f, "cancelled by the requester"),
            Self::Expired => write!(f, "deadline passed"),
            Self::Vanished => write!(f, "removed by a reorg and expired"),
            Self::Unprofitable { payment, cost } => {
                write!(f, "payment {payment} wei does not cover the fulfilment's {cost} wei of gas")
            }
        }
    }
}

/// Wei amounts as decimal strings: serde's tagged enums cannot buffer `u128` numbers.
mod wei {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// One signed version of a fulfilment transaction. Replacements share the nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentTx {
    /// Transaction hash.
    pub hash: B256,
    /// The signed EIP-2718 envelope, re-broadcast as is if the pool evicts it.
    pub raw: Bytes,
    /// `maxFeePerGas` (wei).
    #[serde(with = "wei")]
    pub max_fee: u128,
    /// `maxPriorityFeePerGas` (wei).
    #[serde(with = "wei")]
    pub tip: u128,
}

/// The transaction a submitted job waits on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    /// Nonce shared by every version.
    pub nonce: u64,
    /// Gas limit.
    pub gas_limit: u64,
    /// Every version signed, oldest first (the last one is the current one).
    pub versions: Vec<SentTx>,
    /// Head block when the current version was (re)broadcast.
    pub sent_at_block: u64,
}

impl TxRecord {
    /// The version most recently signed.
    pub fn current(&self) -> &SentTx {
        self.versions.last().expect("a TxRecord has at least one version")
    }
}

/// The last transaction the node signed: a new transaction with the same nonce must outbid it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTx {
    /// Its nonce.
    pub nonce: u64,
    /// Its `maxFeePerGas`.
    #[serde(with = "wei")]
    pub max_fee: u128,
    /// Its `maxPriorityFeePerGas`.
    #[serde(with = "wei")]
    pub tip: u128,
}

/// Where a request stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Seen in a confirmed block, waiting for a prover.
    Queued,
    /// A prover is working on it (reset to `Queued` at startup: work interrupted by a crash).
    Proving,
    /// Proved, not yet sent.
    Proven { output: Vec<i64>, proof: Bytes, prove_seconds: f64 },
    /// `fulfillInference` signed and broadcast (or about to be: the record is written first).
    Submitted { output: Vec<i64>, proof: Bytes, tx: TxRecord },
    /// The request on-chain no longer matches the stored event (a reorg changed its input or
    /// removed it): nothing is proved or sent until the watcher reads its event again.
    Reorged,
    /// Our fulfilment is mined `confirmations` deep.
    Fulfilled { tx: Option<B256>, block: u64, gas_used: u64 },
    /// Cannot be proved or is rejected by the coordinator: recorded with the reason, not retried.
    Failed { reason: String },
    /// Nothing left to do.
    Dropped { reason: DropReason },
}

impl JobState {
    /// Whether the node still has work to do on this job.
    pub fn is_active(&self) -> bool {
        !matches!(self, Self::Fulfilled { .. } | Self::Failed { .. } | Self::Dropped { .. })
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Proving => "proving",
            Self::Proven { .. } => "proven",
            Self::Submitted { .. } => "submitted",
            Self::Reorged => "reorged",
            Self::Fulfilled { .. } => "fulfilled",
            Self::Failed { .. } => "failed",
            Self::Dropped { .. } => "dropped",
        }
    }
}

/// A request and the node's progress on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Coordinator request id.
    pub request_id: U256,
    /// Model id.
    pub model_id: B256,
    /// Who asked.
    pub requester: Address,
    /// Quantized input, from the event.
    pub input: Vec<i64>,
    /// Payment held by the coordinator for the fulfiller (wei).
    pub payment: U256,
    /// Deadline (unix seconds).
    pub deadline: u64,
    /// Block of the request event.
    pub block_number: u64,
    /// Hash of that block (to notice reorgs).
    pub block_hash: B256,
    /// Unix seconds when first seen.
    pub seen_at: u64,
    /// Progress.
    pub state: JobState,
    /// Fulfilments that reverted so far.
    pub attempts: u32,
    /// The private part of a private request (`None` for a public one; stores written before
    /// private requests existed have none). For a private request `input` is the input opened from
    /// its envelope, kept (with its salt) only while the job is active: the plaintext is cleared
    /// when the job finishes ([`Job::redacted`]), and the store is readable by its owner only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<PrivateInput>,
}

/// What the node keeps of a private request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateInput {
    /// `C = Poseidon(pack(input) ‖ salt)`, the request's `inputHash` on-chain.
    pub commitment: B256,
    /// The key the envelope is sealed to.
    pub encryption_key: B256,
    /// keccak256 of the envelope (to recognise the same request after a reorg).
    pub ciphertext_hash: B256,
    /// The salt, once the envelope opened to an input matching the commitment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<B256>,
}

impl Job {
    /// The job as it is stored: a private job that is no longer active keeps no plaintext (its
    /// input and salt are cleared), only what recognises its request (commitment, key, ciphertext
    /// hash). A reorg that reopens it reads the envelope from its event again.
    pub fn redacted(&self) -> std::borrow::Cow<'_, Job> {
        match &self.private {
            Some(p) if !self.state.is_active() && (p.salt.is_some() || !self.input.is_empty()) => {
                let mut job = self.clone();
                job.input.clear();
                if let Some(p) = &mut job.private {
                    p.salt = None;
                }
                std::borrow::Cow::Owned(job)
            }
            _ => std::borrow::Cow::Borrowed(self),
        }
    }

    /// A private job without its opening (its plaintext was cleared when it finished, or its
    /// envelope never opened): it cannot be proved until its event is read again.
    pub fn unopened(&self) -> bool {
        self.private.as_ref().is_some_and(|p| p.salt.is_none())
    }

    /// What the proof of this job is about: its public input, or its commitment.
    pub fn claim(&self) -> crate::client::Claim {
        match &self.private {
            Some(p) => crate::client::Claim::Commitment(p.commitment),
            None => crate::client::Claim::Input(self.input.clone()),
        }
    }

    /// The request's `inputHash` on-chain, as this job knows it.
    pub fn claim_hash(&self) -> B256 {
        match &self.private {
            Some(p) => p.commitment,
            None => crate::client::input_hash(&self.input),
        }
    }
}

/// The embedded database.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

thread_local! {
    /// Set while this thread runs a [`guarded`] redb operation: its panics are expected and reported
    /// as [`StoreError::Damaged`], so the panic hook stays silent.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that is silent on a thread inside [`guarded`] and otherwise does
/// what the previous hook did.
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(|g| g.get()) {
                previous(info);
            }
        }));
    });
}

/// Runs a redb operation that may panic on a damaged file (redb asserts on a file shorter than
/// its header says, for one), turning the panic into [`StoreError::Damaged`] without printing
/// the panic's text: the operator sees one error naming the file and what to do.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    install_quiet_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    result.unwrap_or_else(|panic| {
        let detail = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        tracing::debug!(path = %path.display(), %detail, "redb failed an internal check reading the store");
        Err(StoreError::Damaged {
            path: path.into(),
            reason: "its pages are inconsistent: truncated or partly overwritten".into(),
        })
    })
}

/// Creates the (empty) store file readable by its owner only (mode 0600 on Unix): it holds the
/// inputs of private requests in progress. redb then initialises the empty file.
fn create_private_file(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(|source| StoreError::Io { action: "creating", path: path.into(), source })
}

/// An existing store readable by group or others (a store made by an older node, or copied) is
/// restricted to its owner (0600); if that fails, the node says so loudly.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else { return };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return;
        }
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                was = format_args!("{mode:o}"),
                "the store was readable by other users (it holds the inputs of private requests in progress); \
                 restricted it to mode 600"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                mode = format_args!("{mode:o}"),
                error = %e,
                "the store is READABLE BY OTHER USERS and could not be restricted (it holds the inputs of \
                 private requests in progress); chmod 600 it"
            ),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl Store {
    /// Opens the store, creating it if the file does not exist. With `reinit`, an empty or
    /// damaged file is moved aside (`<path>.damaged-<unix seconds>`) and a fresh store created.
    pub fn open(path: &Path, reinit: bool) -> Result<Self> {
        match Self::open_existing(path) {
            Err(e @ (StoreError::Empty { .. } | StoreError::Damaged { .. } | StoreError::Schema { .. })) if reinit => {
                let aside = path.with_extension(format!("damaged-{}", crate::service::now()));
                std::fs::rename(path, &aside).map_err(|source| StoreError::Io {
                    action: "moving aside",
                    path: path.into(),
                    source,
                })?;
                tracing::warn!(error = %e, aside = %aside.display(), "store moved aside; starting a fresh store");
                Self::open_existing(path)
            }
            other => other,
        }
    }

    fn open_existing(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                action: "creating",
                path: dir.into(),
                source,
            })?;
        }
        let fresh = match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => return Err(StoreError::Empty { path: path.into() }),
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(source) => return Err(StoreError::Io { action: "reading", path: path.into(), source }),
        };
        if !fresh {
            let mut magic = [0u8; REDB_MAGIC.len()];
            let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic));
            if read.is_err() || magic != REDB_MAGIC {
                return Err(StoreError::Damaged { path: path.into(), reason: "not a redb database file".into() });
            }
        }
        if fresh {
            create_private_file(path)?;
        } else {
            restrict_permissions(path);
        }
        let damaged = |e: &dyn std::fmt::Display| StoreError::Damaged { path: path.into(), reason: e.to_string() };
        let db = guarded(path, || {
            let mut db = if fresh { Database::create(path) } else { Database::open(path) }.map_err(|e| match e {
                redb::DatabaseError::Storage(redb::StorageError::Io(source))
                    if !matches!(
                        source.kind(),
                        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                    ) =>
                {
                    StoreError::Io { action: "opening", path: path.into(), source }
                }
                other => damaged(&other),
            })?;
            if !fresh && !db.check_integrity().map_err(|e| damaged(&e))? {
                return Err(damaged(&"integrity check failed"));
            }
            Ok(db)
        })
        .inspect_err(|_| {
            if fresh {
                // Not left behind as an empty store, refused at the next start.
                let _ = std::fs::remove_file(path);
            }
        })?;
        let store = Self { db, path: path.into() };
        guarded(path, || {
            let w = store.db.begin_write().map_err(|e| store.err(e))?;
            {
                w.open_table(JOBS).map_err(|e| store.err(e))?;
                w.open_table(ACTIVE).map_err(|e| store.err(e))?;
                let mut meta = w.open_table(META).map_err(|e| store.err(e))?;
                let found = meta.get(SCHEMA_KEY).map_err(|e| store.err(e))?.map(|v| v.value().to_vec());
                match found {
                    None if fresh => {
                        meta.insert(SCHEMA_KEY, SCHEMA.to_be_bytes().as_slice()).map_err(|e| store.err(e))?;
                    }
                    None => return Err(StoreError::Schema { path: path.into(), found: 1 }),
                    Some(v) => {
                        let found = v.try_into().map(u32::from_be_bytes).unwrap_or(0);
                        if found != SCHEMA {
                            return Err(StoreError::Schema { path: path.into(), found });
                        }
                    }
                }
            }
            w.commit().map_err(|e| store.err(e))
        })?;
        // Every value must decode: a damaged value found now is an error at start, not mid-run.
        guarded(path, || {
            store.active()?;
            store.cursor()
        })?;
        store.redact_finished()?;
        Ok(store)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Db { path: self.path.clone(), source: Box::new(e.into()) }
    }

    fn decode<T: for<'de> Deserialize<'de>>(&self, what: &'static str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|source| StoreError::Decode { path: self.path.clone(), what, source })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the identity on first use; afterwards refuses any other.
    pub fn check_identity(&self, actual: Identity) -> Result<()> {
        match self.meta::<Identity>(IDENTITY_KEY, "identity")? {
            Some(stored) if stored == actual => Ok(()),
            Some(stored) => Err(StoreError::ForeignChain {
                path: self.path.clone(),
                stored: Box::new(stored),
                actual: Box::new(actual),
            }),
            None => self.set_meta(IDENTITY_KEY, &actual),
        }
    }

    fn meta<T: for<'de> Deserialize<'de>>(&self, key: &str, what: &'static str) -> Result<Option<T>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(META).map_err(|e| self.err(e))?;
        let v = t.get(key).map_err(|e| self.err(e))?;
        v.map(|v| self.decode(what, v.value())).transpose()
    }

    fn set_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let value = serde_json::to_vec(value).expect("meta values serialize");
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = w.open_table(META).map_err(|e| self.err(e))?;
            t.insert(key, value.as_slice()).map_err(|e| self.err(e))?;
        }
        w.commit().map_err(|e| self.err(e))
    }

    /// Saves a job (durably), keeping the index of active jobs in the same transaction.
    pub fn put(&self, job: &Job) -> Result<()> {
        self.put_with(job, None)
    }

    /// Saves a job and, in the same transaction, the last signed transaction.
    ///
    /// A private job that is no longer active is written without its plaintext (see
    /// [`Job::redacted`]): every path that finishes a job goes through here.
    pub fn put_with(&self, job: &Job, last_tx: Option<LastTx>) -> Result<()> {
        let value = serde_json::to_vec(&job.redacted()).expect("jobs serialize");
        let key = job.request_id.to_be_bytes::<32>();
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = w.open_table(JOBS).map_err(|e| self.err(e))?;
            t.insert(key.as_slice(), value.as_slice()).map_err(|e| self.err(e))?;
            let mut active = w.open_table(ACTIVE).map_err(|e| self.err(e))?;
            if job.state.is_active() {
                active.insert(key.as_slice(), ()).map_err(|e| self.err(e))?;
            } else {
                active.remove(key.as_slice()).map_err(|e| self.err(e))?;
            }
            if let Some(last) = last_tx {
                let mut meta = w.open_table(META).map_err(|e| self.err(e))?;
                let v = serde_json::to_vec(&last).expect("serializes");
                meta.insert(LAST_TX_KEY, v.as_slice()).map_err(|e| self.err(e))?;
            }
        }
        w.commit().map_err(|e| self.err(e))
    }

    /// Clears the plaintext of finished private jobs a node before this one kept (see
    /// [`Job::redacted`]); a no-op on a store written since.
    fn redact_finished(&self) -> Result<()> {
        let stale = self.jobs_where(|job| matches!(job.redacted(), std::borrow::Cow::Owned(_)))?;
        if stale.is_empty() {
            return Ok(());
        }
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut t = w.open_table(JOBS).map_err(|e| self.err(e))?;
            for job in &stale {
                let value = serde_json::to_vec(&job.redacted()).expect("jobs serialize");
                t.insert(job.request_id.to_be_bytes::<32>().as_slice(), value.as_slice()).map_err(|e| self.err(e))?;
            }
        }
        w.commit().map_err(|e| self.err(e))?;
        tracing::info!(jobs = stale.len(), "cleared the inputs and salts of finished private requests from the store");
        Ok(())
    }

    /// The jobs still in progress, in request id order.
    pub fn active(&self) -> Result<Vec<Job>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let ids = r.open_table(ACTIVE).map_err(|e| self.err(e))?;
        let jobs = r.open_table(JOBS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in ids.iter().map_err(|e| self.err(e))? {
            let (key, _) = item.map_err(|e| self.err(e))?;
            if let Some(v) = jobs.get(key.value()).map_err(|e| self.err(e))? {
                out.push(self.decode("job", v.value())?);
            }
        }
        Ok(out)
    }

    /// Finished jobs a deep reorg could reopen: fulfilled (by this node or another) or cancelled,
    /// with a deadline after `now`, in request id order.
    pub fn reopenable(&self, now: u64) -> Result<Vec<Job>> {
        self.jobs_where(|job| {
            let finished = matches!(
                job.state,
                JobState::Fulfilled { .. }
                    | JobState::Dropped { reason: DropReason::FulfilledByOther { .. } | DropReason::Cancelled }
            );
            finished && job.deadline > now
        })
    }

    /// Every stored job for which `keep` holds, in request id order.
    fn jobs_where(&self, keep: impl Fn(&Job) -> bool) -> Result<Vec<Job>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let jobs = r.open_table(JOBS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in jobs.iter().map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let job: Job = self.decode("job", v.value())?;
            if keep(&job) {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Loads a job.
    pub fn get(&self, request_id: U256) -> Result<Option<Job>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(JOBS).map_err(|e| self.err(e))?;
        let v = t.get(request_id.to_be_bytes::<32>().as_slice()).map_err(|e| self.err(e))?;
        v.map(|v| self.decode("job", v.value())).transpose()
    }

    /// The last scanned block and its hash.
    pub fn cursor(&self) -> Result<Option<(u64, B256)>> {
        self.meta(CURSOR_KEY, "cursor")
    }

    /// Records the last scanned block.
    pub fn set_cursor(&self, block: u64, hash: B256) -> Result<()> {
        self.set_meta(CURSOR_KEY, &(block, hash))
    }

    /// The request id up to which every id has a job or was made before `contract.start_block`
    /// (out of scope): request ids are sequential on-chain, so a missing id above it is a request
    /// whose log was missed. `None` until the node established how many requests precede
    /// `contract.start_block`.
    pub fn seen_through(&self) -> Result<Option<U256>> {
        self.meta(SEEN_THROUGH_KEY, "seen-through id")
    }

    /// Where establishing the number of requests before `contract.start_block` by a rescan
    /// stands (used when the endpoint keeps no state as old as `contract.start_block`).
    pub fn baseline_rescan(&self) -> Result<Option<BaselineRescan>> {
        Ok(self.meta::<Option<BaselineRescan>>(BASELINE_RESCAN_KEY, "baseline rescan")?.flatten())
    }

    /// Records (or clears) [`Store::baseline_rescan`].
    pub fn set_baseline_rescan(&self, rescan: Option<BaselineRescan>) -> Result<()> {
        self.set_meta(BASELINE_RESCAN_KEY, &rescan)
    }

    /// The lowest request id with a job.
    pub fn lowest_id(&self) -> Result<Option<U256>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(JOBS).map_err(|e| self.err(e))?;
        let first = t.first().map_err(|e| self.err(e))?;
        Ok(first.map(|(k, _)| U256::from_be_slice(k.value())))
    }

    /// Records [`Store::seen_through`].
    pub fn set_seen_through(&self, id: U256) -> Result<()> {
        self.set_meta(SEEN_THROUGH_KEY, &id)
    }

    /// The last transaction signed.
    pub fn last_tx(&self) -> Result<Option<LastTx>> {
        self.meta(LAST_TX_KEY, "last transaction")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64) -> Job {
        Job {
            request_id: U256::from(id),
            model_id: B256::repeat_byte(1),
            requester: Address::repeat_byte(2),
            input: vec![1, -2, 3],
            payment: U256::from(1000),
            deadline: 100,
            block_number: 7,
            block_hash: B256::repeat_byte(3),
            seen_at: 1,
            state: JobState::Queued,
            attempts: 0,
            private: None,
        }
    }

    fn identity(chain_id: u64) -> Identity {
        Identity { chain_id, genesis: B256::repeat_byte(5), coordinator: Address::repeat_byte(6) }
    }

    #[test]
    fn jobs_cursor_and_last_tx_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let sent = SentTx { hash: B256::repeat_byte(9), raw: Bytes::from(vec![1, 2]), max_fee: 10, tip: 1 };
        {
            let store = Store::open(&path, false).unwrap();
            store.put(&job(2)).unwrap();
            let mut j = job(1);
            j.state = JobState::Submitted {
                output: vec![5],
                proof: Bytes::from(vec![1, 2]),
                tx: TxRecord { nonce: 3, gas_limit: 100, versions: vec![sent.clone()], sent_at_block: 8 },
            };
            store.put_with(&j, Some(LastTx { nonce: 3, max_fee: 10, tip: 1 })).unwrap();
            store.set_cursor(42, B256::repeat_byte(4)).unwrap();
        }
        let store = Store::open(&path, false).unwrap();
        assert_eq!(store.cursor().unwrap(), Some((42, B256::repeat_byte(4))));
        assert_eq!(store.last_tx().unwrap(), Some(LastTx { nonce: 3, max_fee: 10, tip: 1 }));
        assert_eq!(store.get(U256::from(3)).unwrap(), None);
        let active = store.active().unwrap();
        assert_eq!(active.iter().map(|j| j.request_id).collect::<Vec<_>>(), vec![U256::from(1), U256::from(2)]);
        let JobState::Submitted { tx, .. } = &active[0].state else { panic!("{:?}", active[0].state) };
        assert_eq!(tx.current(), &sent);
        let mut done = job(2);
        done.state = JobState::Dropped { reason: DropReason::FulfilledByOther { fulfiller: Address::ZERO } };
        store.put(&done).unwrap();
        assert_eq!(store.active().unwrap().iter().map(|j| j.request_id).collect::<Vec<_>>(), vec![U256::from(1)]);
        assert_eq!(store.get(U256::from(2)).unwrap(), Some(done));
    }

    #[test]
    fn jobs_written_before_private_requests_still_load() {
        let mut old = serde_json::to_value(job(1)).unwrap();
        assert!(old.get("private").is_none(), "a public job writes no private part");
        old.as_object_mut().unwrap().remove("private");
        let loaded: Job = serde_json::from_value(old).unwrap();
        assert_eq!(loaded, job(1));
        let mut private = job(2);
        private.private = Some(PrivateInput {
            commitment: B256::repeat_byte(1),
            encryption_key: B256::repeat_byte(2),
            ciphertext_hash: B256::repeat_byte(3),
            salt: Some(B256::repeat_byte(4)),
        });
        let back: Job = serde_json::from_slice(&serde_json::to_vec(&private).unwrap()).unwrap();
        assert_eq!(back, private);
        assert_eq!(back.claim_hash(), B256::repeat_byte(1));
    }

    fn private_job(id: u64) -> Job {
        let mut j = job(id);
        j.input = vec![7, 8, 9];
        j.private = Some(PrivateInput {
            commitment: B256::repeat_byte(1),
            encryption_key: B256::repeat_byte(2),
            ciphertext_hash: B256::repeat_byte(3),
            salt: Some(B256::repeat_byte(4)),
        });
        j
    }

    #[test]
    fn a_finished_private_job_is_stored_without_its_input_and_salt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = Store::open(&path, false).unwrap();
        // Active: the plaintext is kept, to be proved.
        store.put(&private_job(1)).unwrap();
        assert_eq!(store.get(U256::from(1)).unwrap().unwrap(), private_job(1));
        let finished = [
            JobState::Fulfilled { tx: Some(B256::repeat_byte(9)), block: 5, gas_used: 1 },
            JobState::Failed { reason: "reverted".into() },
            JobState::Dropped { reason: DropReason::Cancelled },
        ];
        for (i, state) in finished.into_iter().enumerate() {
            let id = 10 + i as u64;
            let mut j = private_job(id);
            j.state = state.clone();
            let last = LastTx { nonce: 1, max_fee: 1, tip: 1 };
            store.put_with(&j, Some(last)).unwrap();
            let stored = store.get(U256::from(id)).unwrap().unwrap();
            assert!(stored.input.is_empty(), "{state:?}: input kept");
            let p = stored.private.clone().unwrap();
            assert_eq!(p.salt, None, "{state:?}: salt kept");
            // What recognises the request stays.
            assert_eq!(
                (p.commitment, p.encryption_key, p.ciphertext_hash),
                (B256::repeat_byte(1), B256::repeat_byte(2), B256::repeat_byte(3))
            );
            assert_eq!(stored.state, state);
            assert!(stored.unopened());
        }
        // Reopened, the store still has it redacted.
        drop(store);
        {
            // A store an older node wrote, with the plaintext of a finished job: cleared at open.
            let db = Database::open(&path).unwrap();
            let w = db.begin_write().unwrap();
            {
                let mut t = w.open_table(JOBS).unwrap();
                let mut old = private_job(30);
                old.state = JobState::Fulfilled { tx: None, block: 1, gas_used: 1 };
                let v = serde_json::to_vec(&old).unwrap();
                t.insert(U256::from(30).to_be_bytes::<32>().as_slice(), v.as_slice()).unwrap();
            }
            w.commit().unwrap();
        }
        let store = Store::open(&path, false).unwrap();
        assert!(store.get(U256::from(10)).unwrap().unwrap().input.is_empty());
        let old = store.get(U256::from(30)).unwrap().unwrap();
        assert!(old.input.is_empty() && old.private.unwrap().salt.is_none(), "an older store's plaintext is cleared");
        // A public job keeps its input (it is public, on-chain).
        let mut public = job(20);
        public.state = JobState::Fulfilled { tx: None, block: 1, gas_used: 1 };
        store.put(&public).unwrap();
        assert_eq!(store.get(U256::from(20)).unwrap().unwrap().input, vec![1, -2, 3]);
    }

    #[cfg(unix)]
    #[test]
    fn the_store_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        Store::open(&path, false).unwrap().put(&private_job(1)).unwrap();
        assert_eq!(mode(&path), 0o600, "a new store");
        // An existing store readable by others (an older node's, or a copy) is restricted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&path, false).unwrap();
        assert_eq!(mode(&path), 0o600, "an existing store");
        assert_eq!(store.get(U256::from(1)).unwrap().unwrap(), private_job(1));
        // A fresh store after --reinit-store too.
        drop(store);
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Store::open(&path, true).unwrap();
        assert_eq!(mode(&path), 0o600, "a reinitialised store");
    }

    #[test]
    fn a_store_is_bound_to_its_chain_and_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        Store::open(&path, false).unwrap().check_identity(identity(1)).unwrap();
        let store = Store::open(&path, false).unwrap();
        store.check_identity(identity(1)).unwrap();
        let err = store.check_identity(identity(2)).unwrap_err();
        assert!(matches!(err, StoreError::ForeignChain { .. }), "{err}");
        assert!(err.to_string().contains("chain 1") && err.to_string().contains("chain 2"), "{err}");
        let mut other = identity(1);
        other.coordinator = Address::repeat_byte(7);
        assert!(matches!(store.check_identity(other), Err(StoreError::ForeignChain { .. })));
    }

    #[test]
    fn empty_damaged_and_foreign_files_are_refused_with_a_named_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.redb");
        std::fs::write(&empty, b"").unwrap();
        let err = Store::open(&empty, false).unwrap_err();
        assert!(matches!(err, StoreError::Empty { .. }), "{err}");
        assert!(err.to_string().contains("--reinit-store"));
        // Not silently replaced: the file is still empty.
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

        let garbage = dir.path().join("garbage.redb");
        std::fs::write(&garbage, b"this is not a database, it is a text file").unwrap();
        assert!(matches!(Store::open(&garbage, false).unwrap_err(), StoreError::Damaged { .. }));

        // A real store cut at several lengths, and one with a page overwritten.
        let good = dir.path().join("good.redb");
        {
            let store = Store::open(&good, false).unwrap();
            for i in 0..50 {
                store.put(&job(i)).unwrap();
            }
            store.set_cursor(9, B256::repeat_byte(1)).unwrap();
        }
        let bytes = std::fs::read(&good).unwrap();
        for cut in [10, 100, 600, 4096, bytes.len() / 2, bytes.len() - 1] {
            let truncated = dir.path().join(format!("cut-{cut}.redb"));
            std::fs::write(&truncated, &bytes[..cut]).unwrap();
            match Store::open(&truncated, false) {
                Err(StoreError::Damaged { .. }) => {}
                // redb may recover a file cut after its last committed page; then the data must be intact.
                Ok(s) => assert_eq!(s.active().unwrap().len(), 50, "cut at {cut}"),
                Err(other) => panic!("cut at {cut}: {other}"),
            }
        }
        let mut scribbled = bytes.clone();
        for b in scribbled.iter_mut().skip(4096).take(8192) {
            *b = 0xAB;
        }
        let scribbled_path = dir.path().join("scribbled.redb");
        std::fs::write(&scribbled_path, &scribbled).unwrap();
        if let Ok(s) = Store::open(&scribbled_path, false) {
            // If redb still reads it, every value must decode.
            s.active().unwrap();
        }
    }

    #[test]
    fn reinit_moves_a_damaged_or_empty_store_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        std::fs::write(&path, b"").unwrap();
        let store = Store::open(&path, true).unwrap();
        assert!(store.active().unwrap().is_empty());
        drop(store);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("damaged-"))
            .collect();
        assert_eq!(aside.len(), 1);
        // A healthy store is not touched by --reinit-store.
        Store::open(&path, false).unwrap().put(&job(1)).unwrap();
        assert_eq!(Store::open(&path, true).unwrap().active().unwrap().len(), 1);
    }

    /// Run in a child process by the test below: opens the store named by the environment.
    #[test]
    fn child_opens_the_store_named_by_the_environment() {
        let Some(path) = std::env::var_os("ZKINFER_STORE_CHILD") else { return };
        match Store::open(Path::new(&path), false) {
            Err(e) => eprintln!("ERROR: {e}"),
            Ok(_) => eprintln!("OPENED"),
        }
    }

    #[test]
    fn a_truncated_store_is_one_clear_error_without_panic_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path, false).unwrap();
            for i in 0..50 {
                store.put(&job(i)).unwrap();
            }
        }
        let bytes = std::fs::read(&path).unwrap();
        // Cut past the header: redb's own check of the file length asserts (a panic) here.
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::tests::child_opens_the_store_named_by_the_environment", "--nocapture"])
            .env("ZKINFER_STORE_CHILD", &path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let expected = format!("ERROR: the store {} is damaged", path.display());
        assert!(stderr.contains(&expected) && stderr.contains("--reinit-store"), "{stderr}");
        for panic_text in ["panicked", "assertion", "page_manager", "RUST_BACKTRACE"] {
            assert!(!stderr.contains(panic_text), "{panic_text:?} in:\n{stderr}");
        }
    }
}
