//! Checkpoints of the built-in trainer: the network's weights and batch-norm statistics, the
//! optimizer's moments and where the epoch loop stands, so training continues exactly where it
//! stopped (a resumed or forked trial). A small tagged little-endian format; a file of another
//! network shape or another format is refused with a reason.

use std::path::Path;

/// The first bytes of a checkpoint file (and its format version).
const MAGIC: &[u8; 8] = b"cavckpt1";

/// The file name of the trainer's checkpoint inside a trial folder.
pub const FILE_NAME: &str = "trainer.ckpt";

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a checkpoint of this network.
    #[error("checkpoint {path}: {reason}")]
    Mismatch {
        /// The file.
        path: String,
        /// What does not fit.
        reason: String,
    },
}

/// Bytes being written.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    /// A number.
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// An array, with its length.
    pub fn f32s(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Writes the bytes to `path` through a temporary name, so a reader (or a crash) never
    /// sees half a checkpoint.
    pub fn save(self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.display().to_string(),
            source,
        };
        let temporary = path.with_extension("ckpt.new");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&self.0);
        std::fs::write(&temporary, bytes).map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)
    }
}

/// Bytes being read.
pub struct Reader {
    bytes: Vec<u8>,
    at: usize,
    path: String,
}

impl Reader {
    /// Reads the checkpoint at `path`.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: shown.clone(),
            source,
        })?;
        if !bytes.starts_with(MAGIC) {
            return Err(CheckpointError::Mismatch {
                path: shown,
                reason: "not a checkpoint of caviar's built-in trainer (or of another version)"
                    .into(),
            });
        }
        Ok(Reader {
            bytes,
            at: MAGIC.len(),
            path: shown,
        })
    }

    /// A mismatch error for this file.
    pub fn mismatch(&self, reason: impl Into<String>) -> CheckpointError {
        CheckpointError::Mismatch {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// The next number.
    pub fn u64(&mut self) -> Result<u64, CheckpointError> {
        let end = self.at + 8;
        let chunk = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| self.mismatch("the file ends early"))?;
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        self.at = end;
        Ok(v)
    }

    /// The next array, whatever its length.
    pub fn f32s_any(&mut self) -> Result<Vec<f32>, CheckpointError> {
        let at = self.at;
        let len = self.u64()? as usize;
        self.at = at;
        self.f32s(len, "an array")
    }

    /// The next array, which must hold `expected` values (`what` names it in the error).
    pub fn f32s(&mut self, expected: usize, what: &str) -> Result<Vec<f32>, CheckpointError> {
        let len = self.u64()? as usize;
        if len != expected {
            return Err(self.mismatch(format!(
                "{what} holds {len} values, this network has {expected}: it was saved by a network of another shape (layers, units)"
            )));
        }
        let end = self.at + 4 * len;
        let chunk = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| self.mismatch("the file ends early"))?;
        self.at = end;
        Ok(chunk
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect())
    }
}
