//! The shipped MNIST files: pinned contents, the loader, and its errors.

use std::io::Read;
use std::path::{Path, PathBuf};

use caviar_nn::mnist::{self, MnistError};
use sha2::{Digest, Sha256};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist")
}

fn raw_sha256(path: &Path) -> String {
    let mut gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut raw = Vec::new();
    gz.read_to_end(&mut raw).unwrap();
    let digest = Sha256::digest(&raw);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn shipped_files_are_the_official_mnist() {
    for (file, sha) in [
        (
            "train-images-idx3-ubyte.gz",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ] {
        assert_eq!(raw_sha256(&dir().join(file)), sha, "{file}");
    }
}

#[test]
fn the_first_training_images_are_in_mnist_order() {
    let data = mnist::load_train(&dir(), Some(500)).unwrap();
    assert_eq!(data.len(), 500);
    assert_eq!(data.dim(), 784);
    assert_eq!(&data.labels()[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    let mut counts = [0usize; 10];
    data.labels().iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [50, 66, 52, 50, 52, 39, 45, 52, 39, 55]);
    assert!(data.features().iter().all(|&p| (0.0..=1.0).contains(&p)));
    assert!(data.features().contains(&1.0));
    let test = mnist::load_test(&dir(), None).unwrap();
    assert_eq!(test.len(), 10_000);
}

#[test]
fn missing_and_corrupt_files_say_what_to_do() {
    let tmp = std::env::temp_dir().join(format!("caviar-mnist-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let err = mnist::load_train(&tmp, Some(5)).unwrap_err();
    assert!(matches!(err, MnistError::Missing(_)));
    assert!(err.to_string().contains("data/mnist"), "{err}");

    // Not gzip at all.
    std::fs::write(tmp.join("train-images-idx3-ubyte.gz"), b"hello").unwrap();
    let err = mnist::load_train(&tmp, Some(5)).unwrap_err();
    assert!(matches!(err, MnistError::Corrupt { .. }), "{err}");

    // Valid gzip, truncated contents: a header that promises more images than there are.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut body = Vec::new();
    for word in [2051u32, 100, 28, 28] {
        body.extend_from_slice(&word.to_be_bytes());
    }
    body.extend_from_slice(&[0u8; 784 * 3]);
    std::io::Write::write_all(&mut enc, &body).unwrap();
    std::fs::write(
        tmp.join("train-images-idx3-ubyte.gz"),
        enc.finish().unwrap(),
    )
    .unwrap();
    let err = mnist::load_train(&tmp, Some(10)).unwrap_err();
    assert!(err.to_string().contains("ends before"), "{err}");

    // Labels file with the images' magic number.
    std::fs::copy(
        tmp.join("train-images-idx3-ubyte.gz"),
        tmp.join("train-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let err = mnist::read_labels(&tmp.join("train-labels-idx1-ubyte.gz"), Some(1)).unwrap_err();
    assert!(err.to_string().contains("magic number 2051"), "{err}");
    std::fs::remove_dir_all(&tmp).ok();
}
