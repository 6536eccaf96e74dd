//! The MNIST IDX format (gzip-compressed), read without loading more than asked for.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::data::{Dataset, TestSet};

/// Problems reading MNIST files.
#[derive(Debug, thiserror::Error)]
pub enum MnistError {
    /// The file is not there.
    #[error("MNIST file {0} not found; the repository ships it under data/mnist/ (pass --data DIR or set CAVIAR_MNIST_DIR to point elsewhere)")]
    Missing(PathBuf),
    /// The file is damaged or not what its name says.
    #[error(
        "MNIST file {path} is corrupt: {reason}; restore it from the repository's data/mnist/"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Images and labels disagree.
    #[error("{0}")]
    Mismatch(String),
}

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

fn open(path: &Path) -> Result<impl Read, MnistError> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MnistError::Missing(path.to_path_buf()),
        _ => MnistError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    Ok(GzDecoder::new(BufReader::new(file)))
}

fn corrupt(path: &Path, reason: impl Into<String>) -> MnistError {
    MnistError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_exact(
    path: &Path,
    r: &mut impl Read,
    buf: &mut [u8],
    what: &str,
) -> Result<(), MnistError> {
    r.read_exact(buf).map_err(|e| {
        corrupt(
            path,
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("it ends before its {what}")
            } else {
                format!("{e} while reading its {what}")
            },
        )
    })
}

fn header(path: &Path, r: &mut impl Read, words: usize) -> Result<Vec<u32>, MnistError> {
    let mut buf = vec![0u8; words * 4];
    read_exact(path, r, &mut buf, "header")?;
    Ok(buf
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Reads up to `limit` images (all if `None`) as raw bytes, with their side length.
pub fn read_images(
    path: &Path,
    limit: Option<usize>,
) -> Result<(Vec<u8>, usize, usize), MnistError> {
    let mut r = open(path)?;
    let h = header(path, &mut r, 4)?;
    if h[0] != IMAGES_MAGIC {
        return Err(corrupt(
            path,
            format!("magic number {} is not {IMAGES_MAGIC} (images)", h[0]),
        ));
    }
    let (count, rows, cols) = (h[1] as usize, h[2] as usize, h[3] as usize);
    if rows == 0 || cols == 0 || rows > 1024 || cols > 1024 {
        return Err(corrupt(
            path,
            format!("image size {rows}x{cols} is not plausible"),
        ));
    }
    let n = limit.map_or(count, |l| l.min(count));
    let mut pixels = vec![0u8; n * rows * cols];
    read_exact(path, &mut r, &mut pixels, &format!("{n} images"))?;
    Ok((pixels, n, rows * cols))
}

/// Reads up to `limit` labels (all if `None`).
pub fn read_labels(path: &Path, limit: Option<usize>) -> Result<Vec<u8>, MnistError> {
    let mut r = open(path)?;
    let h = header(path, &mut r, 2)?;
    if h[0] != LABELS_MAGIC {
        return Err(corrupt(
            path,
            format!("magic number {} is not {LABELS_MAGIC} (labels)", h[0]),
        ));
    }
    let n = limit.map_or(h[1] as usize, |l| l.min(h[1] as usize));
    let mut labels = vec![0u8; n];
    read_exact(path, &mut r, &mut labels, &format!("{n} labels"))?;
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(corrupt(path, format!("label {bad} is not a digit")));
    }
    Ok(labels)
}

fn load(
    dir: &Path,
    images: &str,
    labels: &str,
    limit: Option<usize>,
) -> Result<Dataset, MnistError> {
    let (pixels, n, dim) = read_images(&dir.join(images), limit)?;
    let y = read_labels(&dir.join(labels), limit)?;
    if y.len() != n {
        return Err(MnistError::Mismatch(format!(
            "{images} holds {n} images but {labels} holds {} labels",
            y.len()
        )));
    }
    // Pixels scaled to [0, 1].
    let x = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    Ok(Dataset::new(x, y, dim, 10))
}

/// The first `limit` training images (all 60,000 if `None`), in MNIST order, scaled to [0, 1].
pub fn load_train(dir: &Path, limit: Option<usize>) -> Result<Dataset, MnistError> {
    load(
        dir,
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        limit,
    )
}

/// The test set, sealed: it can only be evaluated once, through [`TestSet::evaluate_once`].
pub fn load_test(dir: &Path, limit: Option<usize>) -> Result<TestSet, MnistError> {
    load(
        dir,
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        limit,
    )
    .map(TestSet::seal)
}

/// Finds the MNIST folder: `CAVIAR_MNIST_DIR`, `./data/mnist`, next to the executable's
/// checkout, or the source tree this binary was built from.
pub fn find_data_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CAVIAR_MNIST_DIR") {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(PathBuf::from("data/mnist"));
    if let Ok(exe) = std::env::current_exe() {
        // target/release/caviar -> checkout root
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            candidates.push(root.join("data/mnist"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"));
    candidates
        .into_iter()
        .find(|d| d.join("train-images-idx3-ubyte.gz").is_file())
}
