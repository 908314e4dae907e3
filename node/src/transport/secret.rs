//! The cluster secret: the key every node of a cluster shares to authenticate connections.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The shortest secret accepted, in bytes.
pub const CLUSTER_SECRET_LENGTH_MIN: usize = 16;
/// The longest secret accepted, in bytes: a secret file is small, and a bound keeps a wrong
/// path (a disk image, a log) from being read whole.
pub const CLUSTER_SECRET_LENGTH_MAX: usize = 4096;
/// Random bytes in a [generated](ClusterSecret::generate) secret (written as twice as many hex
/// digits).
pub const GENERATED_SECRET_LENGTH: usize = 32;

/// The key shared by every node of a cluster, used as the HMAC key of the
/// [handshake](super::handshake). Its bytes are never printed: `Debug` shows only its length.
/// Equality is checked in constant time (for a given length).
#[derive(Clone)]
pub struct ClusterSecret(Vec<u8>);

impl ClusterSecret {
    /// Reads a secret from a file: its bytes, without trailing newline characters (`\n`,
    /// `\r`), at least [`CLUSTER_SECRET_LENGTH_MIN`] of them. On Unix, warns if the file can
    /// be read by other users.
    pub fn read(path: &Path) -> Result<ClusterSecret, SecretError> {
        let read_error = |error| SecretError::Read {
            path: path.to_path_buf(),
            error,
        };
        let metadata = fs::metadata(path).map_err(read_error)?;
        if metadata.len() > CLUSTER_SECRET_LENGTH_MAX as u64 + 2 {
            return Err(SecretError::TooLong {
                path: path.to_path_buf(),
            });
        }
        warn_if_readable_by_others(path, &metadata);
        let mut bytes = fs::read(path).map_err(read_error)?;
        while bytes
            .last()
            .is_some_and(|byte| matches!(byte, b'\n' | b'\r'))
        {
            bytes.pop();
        }
        ClusterSecret::from_bytes(bytes).map_err(|length| {
            if length < CLUSTER_SECRET_LENGTH_MIN {
                SecretError::TooShort {
                    path: path.to_path_buf(),
                    length,
                }
            } else {
                SecretError::TooLong {
                    path: path.to_path_buf(),
                }
            }
        })
    }

    /// A new random secret for a test or local cluster: [`GENERATED_SECRET_LENGTH`] random
    /// bytes written as lowercase hex, so it can be stored in a text file.
    pub fn generate() -> ClusterSecret {
        let random: [u8; GENERATED_SECRET_LENGTH] = rand::random();
        let hex: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        ClusterSecret(hex.into_bytes())
    }

    /// A secret from its bytes; `Err` with the length if it is outside
    /// [`CLUSTER_SECRET_LENGTH_MIN`]..=[`CLUSTER_SECRET_LENGTH_MAX`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ClusterSecret, usize> {
        if (CLUSTER_SECRET_LENGTH_MIN..=CLUSTER_SECRET_LENGTH_MAX).contains(&bytes.len()) {
            Ok(ClusterSecret(bytes))
        } else {
            Err(bytes.len())
        }
    }

    /// Writes the secret to a new file readable only by its owner (mode 0600 on Unix), for
    /// a local cluster whose processes read it with [`read`](ClusterSecret::read). Fails if
    /// the file exists.
    pub fn write_new_file(&self, path: &Path) -> io::Result<()> {
        use std::io::Write;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        file.write_all(&self.0)?;
        file.write_all(b"\n")?;
        file.sync_all()
    }

    /// The key bytes, for the HMAC.
    pub(super) fn key(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for ClusterSecret {
    fn eq(&self, other: &ClusterSecret) -> bool {
        // No early exit on the first differing byte: the time taken says nothing about
        // where two secrets of equal length differ.
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .fold(0, |difference, (left, right)| difference | (left ^ right))
                == 0
    }
}

impl Eq for ClusterSecret {}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ClusterSecret({} bytes, redacted)", self.0.len())
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, metadata: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    if metadata.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            "the cluster secret file can be read by other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _metadata: &fs::Metadata) {}

/// Why a cluster secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read the cluster secret file {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The secret is too short to be a key.
    #[error(
        "the cluster secret in {} is {length} bytes; it needs at least \
         {CLUSTER_SECRET_LENGTH_MIN} (e.g. 32 random bytes as hex)",
        path.display()
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The secret's length without trailing newlines.
        length: usize,
    },
    /// The file is longer than a secret can be.
    #[error(
        "the cluster secret file {} is longer than {CLUSTER_SECRET_LENGTH_MAX} bytes: \
         is it the right file?",
        path.display()
    )]
    TooLong {
        /// The file.
        path: PathBuf,
    },
}
