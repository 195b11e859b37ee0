//! The client's key cache: one secret key per (GLWE dimension, polynomial size), generated
//! on first use and kept in the user's data folder (`~/.local/share/fhe-shazam/keys` on
//! Linux), readable by the user alone (folder 0700, file 0600).
//!
//! Why cache it: keygen is cheap, but a stable key lets a user compare runs, and nothing
//! about the key ever leaves the machine anyway. Why one key per (k, N) and not per model:
//! the secret is a uniform binary polynomial whose distribution depends on k and N only;
//! the reply width and the model change nothing about it.
//!
//! File (little-endian): magic `FSHK`, version u16, parameter set id u16, k u32, N u32, the
//! k·N binary coefficients one byte each, then SHA-256 of everything before it. A missing
//! file is generated; a corrupt, truncated or other-version file is an error that names it
//! and says to pass `--new-key` (which replaces it). It is never silently regenerated: a
//! corrupted key cache is worth noticing.
//!
//! Permissions are checked before a key is used, as ssh does for private keys: a key file
//! that group or others can read or write (any of 0o077), or a key folder that they can write
//! (0o022: they could swap the key), is refused with the `chmod` that fixes it. Refused rather
//! than silently tightened: a key that others could read may already be known to them, and
//! only its owner can decide whether to keep it or pass `--new-key`.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tfhe::core_crypto::prelude::GlweSecretKeyOwned;

use crate::error::NetError;
use crate::fhe::{ClientKey, GlweParams};
use crate::fsutil::write_atomic_with;

const MAGIC: [u8; 4] = *b"FSHK";
/// Current key file version.
pub const KEY_FILE_VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + 2 + 4 + 4;
const DIGEST_LEN: usize = 32;

/// Where a key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    /// Read from the cache.
    Cached,
    /// Generated now and saved (first use, or `--new-key`).
    Generated,
}

/// A folder of client keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<data dir>/fhe-shazam/keys` (XDG_DATA_HOME or ~/.local/share on Linux).
    pub fn default_dir() -> Result<PathBuf, NetError> {
        dirs::data_dir()
            .map(|d| d.join("fhe-shazam").join("keys"))
            .ok_or_else(|| {
                NetError::InvalidConfig(
                    "no user data folder (HOME unset?); pass --key-dir".to_string(),
                )
            })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding the key for `params`.
    pub fn path_for(&self, params: &GlweParams) -> PathBuf {
        self.dir.join(format!(
            "glwe-k{}-n{}.key",
            params.glwe_dimension.0, params.polynomial_size.0
        ))
    }

    /// The cached key for `params`, generating (and saving) one if there is none, or if
    /// `replace` is set. A bad file is an error unless `replace`.
    pub fn load_or_generate(
        &self,
        params: &GlweParams,
        replace: bool,
    ) -> Result<(ClientKey, KeyOrigin), NetError> {
        let path = self.path_for(params);
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(NetError::KeyFolder {
                path: self.dir.clone(),
                reason: "is a file, not a folder: pass a folder to --key-dir".into(),
            });
        }
        if self.dir.is_dir() {
            check_private(&self.dir, 0o022)?;
        }
        if !replace && path.exists() {
            check_private(&path, 0o077)?;
            let bytes = std::fs::read(&path).map_err(|source| NetError::Io {
                what: format!("reading key file {}", path.display()),
                source,
            })?;
            let key = decode(&bytes, params).map_err(|reason| NetError::KeyFile {
                path: path.clone(),
                reason: format!("{reason}; pass --new-key to replace it with a fresh key"),
            })?;
            return Ok((key, KeyOrigin::Cached));
        }
        let key = ClientKey::generate(params)?;
        self.save(&path, &key)?;
        Ok((key, KeyOrigin::Generated))
    }

    fn save(&self, path: &Path, key: &ClientKey) -> Result<(), NetError> {
        let io = |source| NetError::Io {
            what: format!("writing key file {}", path.display()),
            source,
        };
        create_private_dir(&self.dir).map_err(io)?;
        let bytes = encode(key);
        write_atomic_with(path, |w| {
            restrict(w.get_ref())?;
            w.write_all(&bytes)
        })
        .map_err(io)
    }
}

/// Refuses `path` when its mode has any of the `forbidden` bits (group/other access).
#[cfg(unix)]
fn check_private(path: &Path, forbidden: u32) -> Result<(), NetError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|source| NetError::Io {
            what: format!("reading the permissions of {}", path.display()),
            source,
        })?
        .permissions()
        .mode()
        & 0o7777;
    if mode & forbidden == 0 {
        return Ok(());
    }
    let reason = |fix: &str, risk: &str| {
        format!(
            "mode {mode:04o} is open to group or others ({risk}); fix it with `chmod {fix} {}`",
            path.display()
        )
    };
    let path = path.to_path_buf();
    Err(if forbidden == 0o077 {
        NetError::KeyFile {
            reason: reason(
                "600",
                "they may have read the secret key; if so, pass --new-key",
            ),
            path,
        }
    } else {
        NetError::KeyFolder {
            reason: reason("700", "they could replace the key"),
            path,
        }
    })
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _forbidden: u32) -> Result<(), NetError> {
    Ok(())
}

#[cfg(unix)]
fn restrict(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_file: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

fn encode(key: &ClientKey) -> Vec<u8> {
    let p = key.params();
    let secret = key.secret_key().as_ref();
    let mut out = Vec::with_capacity(HEADER_LEN + secret.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&KEY_FILE_VERSION.to_le_bytes());
    out.extend_from_slice(&p.id.to_le_bytes());
    out.extend_from_slice(&(p.glwe_dimension.0 as u32).to_le_bytes());
    out.extend_from_slice(&(p.polynomial_size.0 as u32).to_le_bytes());
    out.extend(secret.iter().map(|&b| b as u8));
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Parses a key file for `params` (any reply width of the same k and N).
fn decode(bytes: &[u8], params: &GlweParams) -> Result<ClientKey, String> {
    if bytes.len() < HEADER_LEN + DIGEST_LEN {
        return Err(format!("truncated ({} bytes)", bytes.len()));
    }
    if bytes[..4] != MAGIC {
        return Err("not a fhe-shazam key file (bad magic)".into());
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let version = u16_at(4);
    if version != KEY_FILE_VERSION {
        return Err(format!(
            "version {version}, this build reads version {KEY_FILE_VERSION}"
        ));
    }
    let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch (corrupt or truncated)".into());
    }
    let (k, n) = (u32_at(8) as usize, u32_at(12) as usize);
    if k != params.glwe_dimension.0 || n != params.polynomial_size.0 {
        return Err(format!(
            "holds a k = {k}, N = {n} key, {} needs k = {}, N = {}",
            params.name, params.glwe_dimension.0, params.polynomial_size.0
        ));
    }
    let coefficients = &body[HEADER_LEN..];
    if coefficients.len() != k * n {
        return Err(format!(
            "{} key coefficients, expected k·N = {}",
            coefficients.len(),
            k * n
        ));
    }
    let secret = GlweSecretKeyOwned::from_container(
        coefficients
            .iter()
            .map(|&b| u64::from(b))
            .collect::<Vec<u64>>(),
        params.polynomial_size,
    );
    ClientKey::from_secret(params, secret).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: GlweParams = GlweParams::TUNIFORM_2M128_N2048;

    #[test]
    fn key_is_generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys"));
        let (a, origin) = store.load_or_generate(&PARAMS, false).unwrap();
        assert_eq!(origin, KeyOrigin::Generated);
        let (b, origin) = store.load_or_generate(&PARAMS, false).unwrap();
        assert_eq!(origin, KeyOrigin::Cached);
        assert_eq!(a.secret_key().as_ref(), b.secret_key().as_ref());
        // Another reply width of the same k, N shares the key.
        let wide = PARAMS.with_reply_modulus_log(40).unwrap();
        let (c, origin) = store.load_or_generate(&wide, false).unwrap();
        assert_eq!(origin, KeyOrigin::Cached);
        assert_eq!(c.params(), &wide);
        assert_eq!(c.secret_key().as_ref(), a.secret_key().as_ref());
        let (d, origin) = store.load_or_generate(&PARAMS, true).unwrap();
        assert_eq!(origin, KeyOrigin::Generated);
        assert_ne!(d.secret_key().as_ref(), a.secret_key().as_ref());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys"));
        store.load_or_generate(&PARAMS, false).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path_for(&PARAMS)), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let (key, _) = store.load_or_generate(&PARAMS, false).unwrap();
        let good = encode(&key);
        let path = store.path_for(&PARAMS);
        let mut flipped = good.clone();
        flipped[HEADER_LEN + 7] ^= 1;
        let mut version = good.clone();
        version[4] = 9;
        for (bytes, needle) in [
            (good[..10].to_vec(), "truncated"),
            (flipped, "checksum"),
            (version, "version 9"),
            (b"XXXX".repeat(20), "magic"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let err = match store.load_or_generate(&PARAMS, false) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("a damaged key file must be refused"),
            };
            assert!(err.contains(needle) && err.contains("--new-key"), "{err}");
        }
        // --new-key recovers.
        assert_eq!(
            store.load_or_generate(&PARAMS, true).unwrap().1,
            KeyOrigin::Generated
        );
        assert_eq!(
            store.load_or_generate(&PARAMS, false).unwrap().1,
            KeyOrigin::Cached
        );
    }

    #[cfg(unix)]
    #[test]
    fn keys_open_to_others_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path().join("keys"));
        store.load_or_generate(&PARAMS, false).unwrap();
        let path = store.path_for(&PARAMS);
        for mode in [0o644, 0o666, 0o640] {
            set(&path, mode);
            let err = store
                .load_or_generate(&PARAMS, false)
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains(&format!("mode {mode:04o}")) && err.contains("chmod 600"),
                "{err}"
            );
        }
        set(&path, 0o600);
        set(store.dir(), 0o777);
        let err = store
            .load_or_generate(&PARAMS, false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("key folder") && err.contains("chmod 700"),
            "{err}"
        );
        set(store.dir(), 0o755);
        assert_eq!(
            store.load_or_generate(&PARAMS, false).unwrap().1,
            KeyOrigin::Cached
        );
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let err = KeyStore::new(&file)
            .load_or_generate(&PARAMS, false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is a file, not a folder"), "{err}");
    }
}
