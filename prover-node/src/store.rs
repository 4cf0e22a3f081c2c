//! The node's embedded store (redb): every request it saw and what it did about it, and the block
//! cursor. Each state change is its own durable transaction, so a `kill -9` between any two steps
//! loses nothing: on restart, `Proving` jobs are proved again and `Submitted` jobs are checked on
//! chain before anything is sent again.

use std::path::Path;

use alloy::primitives::{Address, Bytes, B256, U256};
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const JOBS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("jobs");
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Ids of the jobs still in progress, so a pass does not re-read every job the node ever finished.
const ACTIVE: TableDefinition<'_, &[u8], ()> = TableDefinition::new("active");

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
    /// `fulfillInference` sent in transaction `tx`.
    Submitted { tx: B256, output: Vec<i64>, proof: Bytes, sent_at_block: u64 },
    /// Our fulfilment is mined (final once `confirmations` deep).
    Fulfilled { tx: B256, block: u64, gas_used: u64 },
    /// Cannot be proved (bad input, overflow...): recorded with the reason, never retried.
    Failed { reason: String },
    /// Nothing left to do: fulfilled by someone else, cancelled, expired, or a model we do not serve.
    Dropped { reason: String },
}

impl JobState {
    /// Whether the node still has work to do on this job.
    pub fn is_active(&self) -> bool {
        !matches!(self, Self::Fulfilled { .. } | Self::Failed { .. } | Self::Dropped { .. })
    }

    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Proving => "proving",
            Self::Proven { .. } => "proven",
            Self::Submitted { .. } => "submitted",
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
    /// Submission attempts so far.
    pub attempts: u32,
}

/// The embedded database.
pub struct Store {
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Store(e.to_string())
}

impl Store {
    /// Opens (or creates) the store.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                action: "creating",
                path: dir.into(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(|e| Error::Store(format!("opening {}: {e}", path.display())))?;
        let w = db.begin_write().map_err(db_err)?;
        w.open_table(JOBS).map_err(db_err)?;
        w.open_table(META).map_err(db_err)?;
        w.open_table(ACTIVE).map_err(db_err)?;
        w.commit().map_err(db_err)?;
        Ok(Self { db })
    }

    /// Saves a job (durably), keeping the index of active jobs in the same transaction.
    pub fn put(&self, job: &Job) -> Result<()> {
        let value = serde_json::to_vec(job).expect("jobs serialize");
        let key = job.request_id.to_be_bytes::<32>();
        let w = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = w.open_table(JOBS).map_err(db_err)?;
            t.insert(key.as_slice(), value.as_slice()).map_err(db_err)?;
            let mut active = w.open_table(ACTIVE).map_err(db_err)?;
            if job.state.is_active() {
                active.insert(key.as_slice(), ()).map_err(db_err)?;
            } else {
                active.remove(key.as_slice()).map_err(db_err)?;
            }
        }
        w.commit().map_err(db_err)
    }

    /// The jobs still in progress, in request id order.
    pub fn active(&self) -> Result<Vec<Job>> {
        let r = self.db.begin_read().map_err(db_err)?;
        let ids = r.open_table(ACTIVE).map_err(db_err)?;
        let jobs = r.open_table(JOBS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in ids.iter().map_err(db_err)? {
            let (key, _) = item.map_err(db_err)?;
            if let Some(v) = jobs.get(key.value()).map_err(db_err)? {
                out.push(serde_json::from_slice(v.value()).map_err(db_err)?);
            }
        }
        Ok(out)
    }

    /// Loads a job.
    pub fn get(&self, request_id: U256) -> Result<Option<Job>> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(JOBS).map_err(db_err)?;
        let v = t.get(request_id.to_be_bytes::<32>().as_slice()).map_err(db_err)?;
        v.map(|v| serde_json::from_slice(v.value()).map_err(db_err)).transpose()
    }

    /// Every job, in request id order.
    pub fn all(&self) -> Result<Vec<Job>> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(JOBS).map_err(db_err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err)? {
            let (_, v) = item.map_err(db_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(db_err)?);
        }
        Ok(out)
    }

    /// The last scanned block and its hash.
    pub fn cursor(&self) -> Result<Option<(u64, B256)>> {
        let r = self.db.begin_read().map_err(db_err)?;
        let t = r.open_table(META).map_err(db_err)?;
        let v = t.get("cursor").map_err(db_err)?;
        v.map(|v| serde_json::from_slice(v.value()).map_err(db_err)).transpose()
    }

    /// Records the last scanned block.
    pub fn set_cursor(&self, block: u64, hash: B256) -> Result<()> {
        let value = serde_json::to_vec(&(block, hash)).expect("serializes");
        let w = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = w.open_table(META).map_err(db_err)?;
            t.insert("cursor", value.as_slice()).map_err(db_err)?;
        }
        w.commit().map_err(db_err)
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
            deadline: 100,
            block_number: 7,
            block_hash: B256::repeat_byte(3),
            seen_at: 1,
            state: JobState::Queued,
            attempts: 0,
        }
    }

    #[test]
    fn jobs_and_cursor_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path).unwrap();
            store.put(&job(2)).unwrap();
            let mut j = job(1);
            j.state = JobState::Submitted {
                tx: B256::repeat_byte(9),
                output: vec![5],
                proof: Bytes::from(vec![1, 2]),
                sent_at_block: 8,
            };
            store.put(&j).unwrap();
            store.set_cursor(42, B256::repeat_byte(4)).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let all = store.all().unwrap();
        assert_eq!(all.iter().map(|j| j.request_id).collect::<Vec<_>>(), vec![U256::from(1), U256::from(2)]);
        assert_eq!(all[0].state.name(), "submitted");
        assert_eq!(store.cursor().unwrap(), Some((42, B256::repeat_byte(4))));
        assert_eq!(store.get(U256::from(3)).unwrap(), None);
        // Only unfinished jobs are listed as active.
        assert_eq!(store.active().unwrap().len(), 2);
        let mut done = job(2);
        done.state = JobState::Dropped { reason: "fulfilled elsewhere".into() };
        store.put(&done).unwrap();
        assert_eq!(store.active().unwrap().iter().map(|j| j.request_id).collect::<Vec<_>>(), vec![U256::from(1)]);
    }
}
