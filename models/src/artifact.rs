//! Framing of key files: a magic line, a JSON header and a binary payload whose SHA-256 is in the
//! header, so a truncated or corrupted file is reported as such instead of reaching halo2's
//! deserializers (which may panic on garbage).
//!
//! Layout: `b"ZKINFER1"`, header length (u32 LE), header JSON, payload.

use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub(crate) const MAGIC: &[u8; 8] = b"ZKINFER1";

#[derive(Serialize, Deserialize)]
struct Envelope<H> {
    kind: String,
    payload_sha256: String,
    header: H,
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes a framed artifact.
pub fn write<H: Serialize>(path: &Path, kind: &str, header: &H, payload: &[u8]) -> Result<()> {
    let envelope = Envelope { kind: kind.to_string(), payload_sha256: sha256_hex(payload), header };
    let json = serde_json::to_vec(&envelope).map_err(|e| Error::CorruptArtifact {
        path: path.into(),
        what: "artifact header",
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(12 + json.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(payload);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating directory", dir, e))?;
    }
    std::fs::write(path, out).map_err(|e| Error::io("writing", path, e))
}

/// Reads a framed artifact of the given kind and checks its integrity.
pub fn read<H: DeserializeOwned>(path: &Path, kind: &'static str) -> Result<(H, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let corrupt = |reason: String| Error::CorruptArtifact { path: path.into(), what: kind, reason };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(corrupt("missing zkinfer header (wrong file or corrupted)".into()));
    }
    let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let header = bytes.get(12..12 + len).ok_or_else(|| corrupt("truncated header".into()))?;
    let envelope: Envelope<H> = serde_json::from_slice(header).map_err(|e| corrupt(format!("bad header: {e}")))?;
    if envelope.kind != kind {
        return Err(corrupt(format!("this file holds a {}", envelope.kind)));
    }
    let payload = bytes[12 + len..].to_vec();
    let digest = sha256_hex(&payload);
    if digest != envelope.payload_sha256 {
        return Err(corrupt(format!(
            "checksum mismatch (expected {}, got {digest}): the file is corrupted or truncated",
            envelope.payload_sha256
        )));
    }
    Ok((envelope.header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_corruption_and_wrong_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write(&path, "proving key", &42u32, b"payload").unwrap();
        let (h, p): (u32, Vec<u8>) = read(&path, "proving key").unwrap();
        assert_eq!((h, p.as_slice()), (42, b"payload".as_slice()));
        assert!(matches!(read::<u32>(&path, "verifying key"), Err(Error::CorruptArtifact { .. })));
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(read::<u32>(&path, "proving key"), Err(Error::CorruptArtifact { .. })));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(read::<u32>(&path, "proving key"), Err(Error::CorruptArtifact { .. })));
    }
}
