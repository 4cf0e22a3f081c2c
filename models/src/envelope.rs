//! Private-input envelopes, version 1: a consumer's `(input, salt)` encrypted to a prover's X25519
//! key, carried on chain in `PrivateInferenceRequested.ciphertext` (spec: `/work/spec/private-inputs.md`,
//! "Envelope").
//!
//! ```text
//! plaintext  = salt (32, big-endian, < 2^248) ‖ input[0] ‖ … ‖ input[n−1]
//!              (each value an i64, 8 bytes big-endian two's complement)
//! envelope   = 0x01 ‖ E (32) ‖ ChaCha20-Poly1305(k, nonce = 0^12, plaintext, aad) ‖ tag (16)
//!            = 1 + 32 + (32 + 8n) + 16 = 81 + 8n bytes
//! k          = HKDF-SHA256(ikm = X25519(e, R), salt = "", info = "zkinfer/private-input/v1" ‖ E ‖ R), 32 bytes
//! aad        = abi.encode(uint256 chainId, address coordinator, address requester, bytes32 modelId,
//!                         bytes32 commitment)                                          (5 words, 160 bytes)
//! ```
//!
//! with `e` a fresh ephemeral secret, `E = e·G` its public key and `R` the recipient's public key.
//!
//! Why each piece is there:
//! * **A fresh `e` per envelope** makes `k` unique, so the fixed zero nonce is never used twice under
//!   one key. The `rng` given to [`seal`] must therefore be a CSPRNG (`OsRng` in callers).
//! * **`E ‖ R` in `info`** binds the key to the exact bytes on the wire. X25519 ignores the top bit of
//!   `E` and accepts non-canonical encodings, so without it a flipped top bit would still open; with
//!   it, every flipped bit of the envelope is refused.
//! * **Non-contributory agreements are refused** ([`EnvelopeError::NonContributoryKey`]): a low-order
//!   `E` or `R` (the all-zero key among them) makes the shared secret a constant anyone can compute.
//! * **The `aad`** ties the envelope to its request: copied into another chain, coordinator,
//!   requester's request, model or commitment it does not open ([`EnvelopeError::Decryption`]).
//!
//! What [`open`] does *not* check, because it needs the model: that every value lies in the model's
//! `[inputMin, inputMax]`, and that `Poseidon(pack(input) ‖ salt)` equals the request's commitment. The
//! caller must do both before proving; ChaCha20-Poly1305 is not key-committing, so only the
//! commitment check ties the opened plaintext to what the consumer committed to.
//!
//! A prover keeps its decryption keys in a [`KeyRing`] file: the newest key is the one it publishes;
//! older ones stay so that envelopes sealed to a key before its rotation still open.

use std::{
    fmt,
    fs::{self, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use chacha20poly1305::{
    aead::{AeadInPlace, KeyInit},
    ChaCha20Poly1305, Nonce, Tag,
};
use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, SharedSecret, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// The envelope format version, the first byte of every envelope.
pub const VERSION: u8 = 1;
/// Envelope bytes besides the `8·n` input bytes: version (1) + ephemeral key (32) + salt (32) + tag (16).
pub const CIPHERTEXT_OVERHEAD: usize = 81;
/// The HKDF `info` prefix; the ephemeral and recipient public keys follow it.
pub const KDF_INFO: &[u8] = b"zkinfer/private-input/v1";

const KEY_LEN: usize = 32;
const SALT_LEN: usize = 32;
const TAG_LEN: usize = 16;
const VALUE_LEN: usize = 8;
/// Version byte and ephemeral public key: the part of the envelope that is not encrypted.
const HEADER_LEN: usize = 1 + KEY_LEN;
const _: () = assert!(CIPHERTEXT_OVERHEAD == HEADER_LEN + SALT_LEN + TAG_LEN);

/// What can go wrong sealing or opening an envelope, or loading and saving a [`KeyRing`].
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The first byte names a format this build does not know.
    #[error(
        "envelope version {0} is not supported (this build opens version {VERSION}): the sender uses a \
         newer or an unrelated format"
    )]
    UnsupportedVersion(u8),
    /// The envelope's size does not fit the model's input length (`81 + 8·inputLen` bytes).
    #[error(
        "envelope is {got} bytes, expected {expected} (81 + 8 per input value): sealed for a model with \
         another input length, or truncated or extended in transit"
    )]
    Length { expected: usize, got: usize },
    /// The X25519 agreement is with a low-order point, so its result is a constant anyone can compute.
    #[error(
        "non-contributory X25519 key agreement: the ephemeral or recipient public key is a low-order \
         point (such as all zeros), so the envelope would be readable by anyone; refused"
    )]
    NonContributoryKey,
    /// The authentication tag does not verify.
    #[error(
        "envelope does not open: sealed to another key, or for another chain/coordinator/requester/\
         model/commitment, or tampered"
    )]
    Decryption,
    /// The salt is not below 2^248 (its first big-endian byte is nonzero), so it is not the field
    /// element the commitment hashes.
    #[error("salt is not below 2^248 (its first byte is nonzero): not a salt of this protocol")]
    SaltOutOfRange,
    /// The key file could not be read or written.
    #[error("{action} key file {}: {source}", path.display())]
    KeyFileIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The key file is not the expected JSON.
    #[error("key file {} is malformed: {source}", path.display())]
    KeyFileFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A key's recorded public key is not the public key of its secret.
    #[error(
        "key file {}: key {index} records public key {recorded} but its secret's public key is \
         {derived}; the file was damaged or edited",
        path.display()
    )]
    KeyFileMismatch { path: PathBuf, index: usize, recorded: String, derived: String },
    /// The key file holds no key.
    #[error("key file {} holds no keys; create one with a new key ring", path.display())]
    KeyFileEmpty { path: PathBuf },
}

/// The envelope size for `input_len` values: `81 + 8·input_len` bytes (saturating, so an absurd
/// `input_len` yields a size no envelope has).
pub const fn ciphertext_len(input_len: usize) -> usize {
    CIPHERTEXT_OVERHEAD.saturating_add(input_len.saturating_mul(VALUE_LEN))
}

/// A fresh salt: a uniform integer below 2^248 as 32 big-endian bytes (first byte 0, 31 random).
pub fn random_salt<R: RngCore + CryptoRng>(rng: &mut R) -> [u8; 32] {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt[1..]);
    salt
}

/// A prover's X25519 decryption key. `Debug` shows only the public key; the secret is wiped on drop.
#[derive(Clone)]
pub struct EncryptionSecret {
    secret: StaticSecret,
    public: PublicKey,
}

impl EncryptionSecret {
    /// A new random key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::from(StaticSecret::random_from_rng(rng))
    }

    /// The key with these secret bytes (any 32 bytes; X25519 clamps them when used).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::from(StaticSecret::from(bytes))
    }

    /// The secret bytes, as given to [`Self::from_bytes`]. The caller should wipe its copy.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The public key to publish (`setEncryptionKey`) and to [`seal`] to.
    pub fn public(&self) -> [u8; 32] {
        self.public.to_bytes()
    }
}

impl From<StaticSecret> for EncryptionSecret {
    fn from(secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }
}

impl fmt::Debug for EncryptionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionSecret")
            .field("public", &format_args!("0x{}", hex::encode(self.public.as_bytes())))
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// The request an envelope belongs to; its [`aad`](Self::aad) authenticates the envelope to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvelopeContext {
    /// EIP-155 chain id of the coordinator's chain.
    pub chain_id: u64,
    /// The coordinator contract's address.
    pub coordinator: [u8; 20],
    /// The account that calls `requestPrivateInference` (`msg.sender`: a contract, if one requests).
    pub requester: [u8; 20],
    /// The listed model's id.
    pub model_id: [u8; 32],
    /// `C = Poseidon(pack(input) ‖ salt)`, as passed to `requestPrivateInference`.
    pub commitment: [u8; 32],
}

impl EnvelopeContext {
    /// `abi.encode(uint256 chainId, address coordinator, address requester, bytes32 modelId,
    /// bytes32 commitment)`: five 32-byte words, integers and addresses left-padded with zeros.
    pub fn aad(&self) -> [u8; 160] {
        let mut words = [0u8; 160];
        words[24..32].copy_from_slice(&self.chain_id.to_be_bytes());
        words[44..64].copy_from_slice(&self.coordinator);
        words[76..96].copy_from_slice(&self.requester);
        words[96..128].copy_from_slice(&self.model_id);
        words[128..160].copy_from_slice(&self.commitment);
        words
    }
}

/// An opened envelope. `Debug` does not show the values: they are the private input.
#[derive(Clone, PartialEq, Eq)]
pub struct Opened {
    /// The input values, in the model's input order.
    pub input: Vec<i64>,
    /// The commitment's salt, 32 big-endian bytes below 2^248.
    pub salt: [u8; 32],
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("input", &format_args!("<{} values redacted>", self.input.len()))
            .field("salt", &format_args!("<redacted>"))
            .finish()
    }
}

/// Encrypts `(salt, input)` to the prover key `recipient` for the request `ctx`; returns the
/// `81 + 8·input.len()` envelope bytes (layout in the module docs).
///
/// `rng` draws the ephemeral key and must be a CSPRNG. Fails with [`EnvelopeError::SaltOutOfRange`]
/// if `salt >= 2^248` and [`EnvelopeError::NonContributoryKey`] if `recipient` is a low-order point.
pub fn seal<R: RngCore + CryptoRng>(
    recipient: &[u8; 32],
    ctx: &EnvelopeContext,
    salt: &[u8; 32],
    input: &[i64],
    rng: &mut R,
) -> Result<Vec<u8>, EnvelopeError> {
    check_salt(salt)?;
    seal_unchecked(recipient, ctx, salt, input, rng)
}

/// [`seal`] without the salt check (tests build out-of-range envelopes with it).
fn seal_unchecked<R: RngCore + CryptoRng>(
    recipient: &[u8; 32],
    ctx: &EnvelopeContext,
    salt: &[u8; 32],
    input: &[i64],
    rng: &mut R,
) -> Result<Vec<u8>, EnvelopeError> {
    let ephemeral = EphemeralSecret::random_from_rng(rng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(&PublicKey::from(*recipient));
    let key = derive_key(&shared, ephemeral_public.as_bytes(), recipient)?;

    // Exactly sized, so the plaintext written here is encrypted in place and never reallocated.
    let mut envelope = Vec::with_capacity(ciphertext_len(input.len()));
    envelope.push(VERSION);
    envelope.extend_from_slice(ephemeral_public.as_bytes());
    envelope.extend_from_slice(salt);
    for value in input {
        envelope.extend_from_slice(&value.to_be_bytes());
    }
    let tag = ChaCha20Poly1305::new(key.as_ref().into())
        .encrypt_in_place_detached(&Nonce::default(), &ctx.aad(), &mut envelope[HEADER_LEN..])
        .expect("an input of fewer than 2^35 values is within ChaCha20-Poly1305's message limit");
    envelope.extend_from_slice(&tag);
    Ok(envelope)
}

/// Opens an envelope sealed to `secret` for the request `ctx`, for a model of `input_len` values.
///
/// Checks, in order: the version ([`EnvelopeError::UnsupportedVersion`]), the size `81 + 8·input_len`
/// ([`EnvelopeError::Length`]), the key agreement ([`EnvelopeError::NonContributoryKey`]), the tag
/// ([`EnvelopeError::Decryption`]) and `salt < 2^248` ([`EnvelopeError::SaltOutOfRange`]). The caller
/// still checks the values against the model's input range and the salt and input against the
/// commitment (module docs).
pub fn open(
    secret: &EncryptionSecret,
    ctx: &EnvelopeContext,
    ciphertext: &[u8],
    input_len: usize,
) -> Result<Opened, EnvelopeError> {
    let expected = ciphertext_len(input_len);
    let got = ciphertext.len();
    // The version comes first: another version may have another size.
    match ciphertext.first() {
        None => return Err(EnvelopeError::Length { expected, got }),
        Some(&VERSION) => {}
        Some(&other) => return Err(EnvelopeError::UnsupportedVersion(other)),
    }
    if got != expected {
        return Err(EnvelopeError::Length { expected, got });
    }
    let ephemeral: [u8; 32] = ciphertext[1..HEADER_LEN].try_into().expect("32 bytes after the version");
    let shared = secret.secret.diffie_hellman(&PublicKey::from(ephemeral));
    let key = derive_key(&shared, &ephemeral, secret.public.as_bytes())?;

    let (body, tag) = ciphertext[HEADER_LEN..].split_at(got - HEADER_LEN - TAG_LEN);
    let tag: [u8; TAG_LEN] = tag.try_into().expect("the last 16 bytes are the tag");
    let mut plaintext = Zeroizing::new(body.to_vec());
    ChaCha20Poly1305::new(key.as_ref().into())
        .decrypt_in_place_detached(&Nonce::default(), &ctx.aad(), &mut plaintext, &Tag::from(tag))
        .map_err(|_| EnvelopeError::Decryption)?;

    let (salt, values) = plaintext.split_at(SALT_LEN);
    let salt: [u8; 32] = salt.try_into().expect("the plaintext starts with the salt");
    check_salt(&salt)?;
    let input = values
        .chunks_exact(VALUE_LEN)
        .map(|value| i64::from_be_bytes(value.try_into().expect("8-byte chunks")))
        .collect();
    Ok(Opened { input, salt })
}

/// `salt < 2^248`: a field element of the commitment hash, as [`random_salt`] makes.
fn check_salt(salt: &[u8; 32]) -> Result<(), EnvelopeError> {
    if salt[0] == 0 {
        Ok(())
    } else {
        Err(EnvelopeError::SaltOutOfRange)
    }
}

/// `HKDF-SHA256(ikm = shared, salt = "", info = KDF_INFO ‖ ephemeral ‖ recipient)`, 32 bytes.
fn derive_key(
    shared: &SharedSecret,
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<Zeroizing<[u8; 32]>, EnvelopeError> {
    if !shared.was_contributory() {
        return Err(EnvelopeError::NonContributoryKey);
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(&[]), shared.as_bytes())
        .expand_multi_info(&[KDF_INFO, ephemeral, recipient], key.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Ok(key)
}

/// One key of a [`KeyRing`].
#[derive(Clone, Debug)]
pub struct RingKey {
    /// The decryption key.
    pub secret: EncryptionSecret,
    /// When it was generated, in Unix seconds.
    pub created: u64,
}

/// A prover's decryption keys, oldest first; the last is the current one, the one to publish.
///
/// Stored as JSON, readable only by its owner (mode 0600 on Unix):
///
/// ```json
/// {"keys": [{"public": "0x…", "secret": "0x…", "created": 1767225600}]}
/// ```
///
/// Rotation ([`Self::generate_new`]) appends a key and keeps the old ones, so an envelope sealed to a
/// key before it was rotated out (a request already in flight) still opens ([`Self::find`]).
#[derive(Clone, Debug)]
pub struct KeyRing {
    /// Never empty.
    keys: Vec<RingKey>,
}

impl KeyRing {
    /// A ring with one new key.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self { keys: vec![RingKey { secret: EncryptionSecret::generate(rng), created: now() }] }
    }

    /// Reads a key file, checking that each recorded public key is its secret's.
    pub fn load(path: &Path) -> Result<Self, EnvelopeError> {
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| key_io("reading", path, source))?);
        warn_if_readable_by_others(path);
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|source| EnvelopeError::KeyFileFormat { path: path.to_path_buf(), source })?;
        if file.keys.is_empty() {
            return Err(EnvelopeError::KeyFileEmpty { path: path.to_path_buf() });
        }
        let keys = file
            .keys
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let secret = EncryptionSecret::from_bytes(entry.secret);
                if secret.public() != entry.public {
                    return Err(EnvelopeError::KeyFileMismatch {
                        path: path.to_path_buf(),
                        index,
                        recorded: format!("0x{}", hex::encode(entry.public)),
                        derived: format!("0x{}", hex::encode(secret.public())),
                    });
                }
                Ok(RingKey { secret, created: entry.created })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Writes the key file atomically (a temporary file beside it, synced, then renamed over it),
    /// created with mode 0600 on Unix.
    pub fn save(&self, path: &Path) -> Result<(), EnvelopeError> {
        let file = KeyFile {
            keys: self
                .keys
                .iter()
                .map(|key| KeyFileEntry {
                    public: key.secret.public(),
                    secret: key.secret.to_bytes(),
                    created: key.created,
                })
                .collect(),
        };
        let mut text = Zeroizing::new(serde_json::to_string_pretty(&file).expect("plain data serializes"));
        text.push('\n');

        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            key_io("writing", path, io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))
        })?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let tmp = dir.join(format!(".{}.{}-{nanos:09}.tmp", name.to_string_lossy(), std::process::id()));

        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|source| key_io("writing", &tmp, source))
            .and_then(|()| fs::rename(&tmp, path).map_err(|source| key_io("replacing", path, source)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        // Make the rename itself durable.
        #[cfg(unix)]
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| key_io("syncing the directory of", path, source))?;
        Ok(())
    }

    /// Rotation: appends a new key, which becomes [`Self::current`]; the old keys stay.
    pub fn generate_new<R: RngCore + CryptoRng>(&mut self, rng: &mut R) -> &EncryptionSecret {
        self.keys.push(RingKey { secret: EncryptionSecret::generate(rng), created: now() });
        self.current()
    }

    /// The newest key: the one to publish with `setEncryptionKey`.
    pub fn current(&self) -> &EncryptionSecret {
        &self.keys.last().expect("a key ring is never empty").secret
    }

    /// The key whose public key is `public` (the `encryptionKey` of a request), if the ring holds it.
    pub fn find(&self, public: &[u8; 32]) -> Option<&EncryptionSecret> {
        self.keys.iter().rev().map(|key| &key.secret).find(|secret| &secret.public() == public)
    }

    /// All keys, oldest first.
    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }
}

/// The key file's JSON.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<KeyFileEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyFileEntry {
    #[serde(with = "hex32")]
    public: [u8; 32],
    #[serde(with = "hex32")]
    secret: [u8; 32],
    created: u64,
}

impl Drop for KeyFileEntry {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

/// 32 bytes as `0x`-prefixed hex, the way the chain tooling writes `bytes32`.
mod hex32 {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = Zeroizing::new(String::with_capacity(66));
        text.push_str("0x");
        text.push_str(&hex::encode(bytes));
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes)
            .map_err(|_| D::Error::custom("expected 32 bytes as 0x-prefixed hex (64 hex digits)"))?;
        Ok(bytes)
    }
}

fn key_io(action: &'static str, path: &Path, source: io::Error) -> EnvelopeError {
    EnvelopeError::KeyFileIo { action, path: path.to_path_buf(), source }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Secrets others can read are likely copied around already; say so (as ssh does), but still load.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "key file is readable by others; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn rng(seed: u8) -> ChaCha20Rng {
        ChaCha20Rng::from_seed([seed; 32])
    }

    fn context() -> EnvelopeContext {
        EnvelopeContext {
            chain_id: 31337,
            coordinator: [0xc0; 20],
            requester: [0xa1; 20],
            model_id: [0x3d; 32],
            commitment: [0x0c; 32],
        }
    }

    fn sealed(secret: &EncryptionSecret, input: &[i64]) -> (Vec<u8>, [u8; 32]) {
        let mut rng = rng(9);
        let salt = random_salt(&mut rng);
        (seal(&secret.public(), &context(), &salt, input, &mut rng).unwrap(), salt)
    }

    #[test]
    fn round_trip() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        for input in [vec![], vec![0], vec![i64::MIN, -1, 0, 1, i64::MAX], (-300..300).collect()] {
            let (envelope, salt) = sealed(&secret, &input);
            assert_eq!(envelope.len(), CIPHERTEXT_OVERHEAD + 8 * input.len());
            assert_eq!(envelope.len(), ciphertext_len(input.len()));
            assert_eq!(envelope[0], VERSION);
            let opened = open(&secret, &context(), &envelope, input.len()).unwrap();
            assert_eq!(opened, Opened { input, salt });
        }
    }

    #[test]
    fn each_envelope_has_its_own_ephemeral_key() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let mut rng = rng(2);
        let salt = random_salt(&mut rng);
        let a = seal(&secret.public(), &context(), &salt, &[5, 6], &mut rng).unwrap();
        let b = seal(&secret.public(), &context(), &salt, &[5, 6], &mut rng).unwrap();
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN]);
        assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
    }

    #[test]
    fn another_recipient_cannot_open() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let other = EncryptionSecret::generate(&mut rng(2));
        let (envelope, _) = sealed(&secret, &[1, 2, 3]);
        assert!(matches!(open(&other, &context(), &envelope, 3), Err(EnvelopeError::Decryption)));
    }

    #[test]
    fn another_context_cannot_open() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let (envelope, _) = sealed(&secret, &[1, 2, 3]);
        type Edit = fn(&mut EnvelopeContext);
        let edits: [(&str, Edit); 5] = [
            ("chain id", |c| c.chain_id = 1),
            ("coordinator", |c| c.coordinator[19] ^= 1),
            ("requester", |c| c.requester[0] ^= 0x80),
            ("model id", |c| c.model_id[31] ^= 1),
            ("commitment", |c| c.commitment[0] ^= 1),
        ];
        for (field, edit) in edits {
            let mut ctx = context();
            edit(&mut ctx);
            assert!(matches!(open(&secret, &ctx, &envelope, 3), Err(EnvelopeError::Decryption)), "{field}");
        }
    }

    #[test]
    fn aad_is_five_abi_words() {
        let ctx = EnvelopeContext {
            chain_id: 0x0102_0304_0506_0708,
            coordinator: [0x11; 20],
            requester: [0x22; 20],
            model_id: [0x33; 32],
            commitment: [0x44; 32],
        };
        let expected = [
            format!("{:0>64}", "0102030405060708"),
            format!("{:0>64}", "11".repeat(20)),
            format!("{:0>64}", "22".repeat(20)),
            "33".repeat(32),
            "44".repeat(32),
        ]
        .concat();
        assert_eq!(hex::encode(ctx.aad()), expected);
    }

    /// Every single-bit change is refused; the version byte as a version, the rest by the tag. Flipping
    /// the top bit of the ephemeral key leaves X25519's result unchanged (it ignores that bit), so
    /// that case is refused only because the key derivation hashes the ephemeral key's bytes.
    #[test]
    fn every_flipped_bit_is_refused() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let (envelope, _) = sealed(&secret, &[-7, 7]);
        for position in 0..envelope.len() {
            for bit in 0..8 {
                let mut tampered = envelope.clone();
                tampered[position] ^= 1 << bit;
                let result = open(&secret, &context(), &tampered, 2);
                if position == 0 {
                    assert!(matches!(result, Err(EnvelopeError::UnsupportedVersion(_))), "byte 0 bit {bit}");
                } else {
                    assert!(matches!(result, Err(EnvelopeError::Decryption)), "byte {position} bit {bit}: {result:?}");
                }
            }
        }
    }

    #[test]
    fn wrong_size_is_refused() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let (envelope, _) = sealed(&secret, &[1, 2, 3]);
        let expected = ciphertext_len(3);
        for got in [0, 1, HEADER_LEN, expected - 8, expected - 1, expected + 1, expected + 8] {
            let mut resized = envelope.clone();
            resized.resize(got, 0);
            match open(&secret, &context(), &resized, 3) {
                Err(EnvelopeError::Length { expected: e, got: g }) => assert_eq!((e, g), (expected, got)),
                other => panic!("{got} bytes: {other:?}"),
            }
        }
        // The model's input length decides the size: an envelope for 3 values is not one for 2 or 4.
        for input_len in [2, 4] {
            assert!(matches!(
                open(&secret, &context(), &envelope, input_len),
                Err(EnvelopeError::Length { expected, got: 105 }) if expected == ciphertext_len(input_len)
            ));
        }
    }

    #[test]
    fn unknown_version_is_refused_before_the_size() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let (mut envelope, _) = sealed(&secret, &[1]);
        envelope[0] = 2;
        assert!(matches!(open(&secret, &context(), &envelope, 1), Err(EnvelopeError::UnsupportedVersion(2))));
        envelope.push(0);
        assert!(matches!(open(&secret, &context(), &envelope, 1), Err(EnvelopeError::UnsupportedVersion(2))));
    }

    #[test]
    fn low_order_keys_are_refused() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let (envelope, _) = sealed(&secret, &[1]);
        // u = 0 (the all-zero key) and u = 1 are points of small order on Curve25519.
        let mut one = [0u8; 32];
        one[0] = 1;
        for low_order in [[0u8; 32], one] {
            let mut forged = envelope.clone();
            forged[1..HEADER_LEN].copy_from_slice(&low_order);
            assert!(matches!(open(&secret, &context(), &forged, 1), Err(EnvelopeError::NonContributoryKey)));
            let salt = random_salt(&mut rng(3));
            assert!(matches!(
                seal(&low_order, &context(), &salt, &[1], &mut rng(4)),
                Err(EnvelopeError::NonContributoryKey)
            ));
        }
    }

    #[test]
    fn salt_must_be_below_2_pow_248() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let mut salt = random_salt(&mut rng(5));
        assert_eq!(salt[0], 0);
        salt[0] = 1;
        assert!(matches!(
            seal(&secret.public(), &context(), &salt, &[1], &mut rng(6)),
            Err(EnvelopeError::SaltOutOfRange)
        ));
        // A sender that skips the check produces an envelope that authenticates but is still refused.
        let envelope = seal_unchecked(&secret.public(), &context(), &salt, &[1], &mut rng(6)).unwrap();
        assert!(matches!(open(&secret, &context(), &envelope, 1), Err(EnvelopeError::SaltOutOfRange)));
    }

    #[test]
    fn random_salts_differ() {
        let mut rng = rng(7);
        let (a, b) = (random_salt(&mut rng), random_salt(&mut rng));
        assert_ne!(a, b);
        assert_eq!((a[0], b[0]), (0, 0));
    }

    #[test]
    fn debug_hides_secrets() {
        let secret = EncryptionSecret::from_bytes([0xab; 32]);
        let shown = format!("{secret:?} {:?}", KeyRing { keys: vec![RingKey { secret: secret.clone(), created: 0 }] });
        assert!(!shown.contains(&"ab".repeat(32)), "{shown}");
        assert!(shown.contains(&hex::encode(secret.public())), "{shown}");
        let opened = format!("{:?}", Opened { input: vec![123_456_789], salt: [0x5a; 32] });
        assert!(!opened.contains("123456789") && !opened.contains("5a5a"), "{opened}");
    }

    #[test]
    fn secret_bytes_round_trip() {
        let secret = EncryptionSecret::generate(&mut rng(1));
        let again = EncryptionSecret::from_bytes(secret.to_bytes());
        assert_eq!(again.public(), secret.public());
        assert_eq!(again.to_bytes(), secret.to_bytes());
    }

    #[test]
    fn key_ring_rotation_keeps_old_keys() {
        let mut rng = rng(8);
        let mut ring = KeyRing::generate(&mut rng);
        let old = ring.current().clone();
        let (envelope, salt) = sealed(&old, &[4, 5]);

        let new = ring.generate_new(&mut rng).public();
        assert_ne!(new, old.public());
        assert_eq!(ring.current().public(), new);
        assert_eq!(ring.keys().len(), 2);

        let key = ring.find(&old.public()).expect("the rotated-out key stays");
        assert_eq!(open(key, &context(), &envelope, 2).unwrap(), Opened { input: vec![4, 5], salt });
        assert!(open(ring.current(), &context(), &envelope, 2).is_err());
        assert!(ring.find(&[7; 32]).is_none());
    }

    #[test]
    fn key_ring_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let mut rng = rng(10);
        let mut ring = KeyRing::generate(&mut rng);
        ring.generate_new(&mut rng);
        ring.save(&path).unwrap();

        let loaded = KeyRing::load(&path).unwrap();
        let summary = |ring: &KeyRing| -> Vec<_> {
            ring.keys().iter().map(|k| (k.secret.public(), k.secret.to_bytes(), k.created)).collect()
        };
        assert_eq!(summary(&loaded), summary(&ring));

        let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let first = &json["keys"][0];
        assert_eq!(first["public"], format!("0x{}", hex::encode(ring.keys()[0].secret.public())));
        assert_eq!(first["secret"], format!("0x{}", hex::encode(ring.keys()[0].secret.to_bytes())));
        assert_eq!(first["created"], ring.keys()[0].created);
        // Only the file itself is left behind, no temporary.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        // Also when it replaces a world-readable file.
        fs::write(&path, "{}").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        KeyRing::generate(&mut rng(11)).save(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn bad_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let secret = EncryptionSecret::from_bytes([1; 32]);
        let entry = |public: &str, secret: &str| {
            format!(r#"{{"keys": [{{"public": "{public}", "secret": "{secret}", "created": 1}}]}}"#)
        };
        let good_public = format!("0x{}", hex::encode(secret.public()));
        let good_secret = format!("0x{}", hex::encode(secret.to_bytes()));

        fs::write(&path, entry(&good_public, &good_secret)).unwrap();
        assert_eq!(KeyRing::load(&path).unwrap().current().public(), secret.public());

        fs::write(&path, entry(&format!("0x{}", "00".repeat(32)), &good_secret)).unwrap();
        assert!(matches!(KeyRing::load(&path), Err(EnvelopeError::KeyFileMismatch { index: 0, .. })));
        fs::write(&path, entry(&good_public, "0x1234")).unwrap();
        assert!(matches!(KeyRing::load(&path), Err(EnvelopeError::KeyFileFormat { .. })));
        fs::write(&path, r#"{"keys": []}"#).unwrap();
        assert!(matches!(KeyRing::load(&path), Err(EnvelopeError::KeyFileEmpty { .. })));
        assert!(matches!(
            KeyRing::load(&dir.path().join("missing.json")),
            Err(EnvelopeError::KeyFileIo { action: "reading", .. })
        ));
    }

    /// The format, pinned: fixed keys, context, salt and input, and a seeded ephemeral key. If this
    /// changes, envelopes of deployed consumers no longer open; bump [`VERSION`] instead.
    ///
    /// The bytes were reproduced independently with Python's `cryptography` (X25519, HKDF,
    /// ChaCha20Poly1305) from the spec's text; the ephemeral secret `ChaCha20Rng([42; 32])` draws is
    /// `0x98191f46e5830216445436978803697a5e3ab61b1e8951d4fe9ae67bab614a5f` (ChaCha20 keystream of
    /// key `[42; 32]`, nonce 0).
    #[test]
    fn test_vector() {
        let recipient = EncryptionSecret::from_bytes(core::array::from_fn(|i| i as u8));
        let ctx = EnvelopeContext {
            chain_id: 31337,
            coordinator: core::array::from_fn(|i| 0xc0 + i as u8),
            requester: core::array::from_fn(|i| 0xa0 + i as u8),
            model_id: core::array::from_fn(|i| 0x40 + i as u8),
            commitment: core::array::from_fn(|i| 0x10 + i as u8),
        };
        let mut salt: [u8; 32] = core::array::from_fn(|i| 0xe0 + i as u8);
        salt[0] = 0;
        let input = [-2, 0, 1, 300, i64::MIN, i64::MAX];
        let envelope = seal(&recipient.public(), &ctx, &salt, &input, &mut rng(42)).unwrap();
        let expected = concat!(
            "01",
            "7638d04176f97ced442a413e0d61ba20c71e5d3ecf5bf7e822f562db9c7e9e51",
            "a96931642e45b84073687da7d2c3e6a47c9f6a510bd4b53728f1c09a1705c7fb",
            "f3a02cec2d0718bcb653796f1cf4b3dcc83bd7963b72eb9b51f50b7eb7083cbb",
            "d110d1530e85b9eab716e15ff33fd6fe9c7e0d9afff56cc516575439e1d9a6a7",
        );
        assert_eq!(hex::encode(&envelope), expected);
        assert_eq!(open(&recipient, &ctx, &envelope, input.len()).unwrap(), Opened { input: input.to_vec(), salt });
    }
}
