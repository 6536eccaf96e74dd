//! Datasets, seeded train/validation splits, and a test set that can be evaluated only once.

use caviar_core::rng::Rng;

/// Examples in rows (`n × dim`, row-major) with integer class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    x: Vec<f32>,
    y: Vec<u8>,
    dim: usize,
    classes: usize,
}

impl Dataset {
    /// A dataset from row-major features and labels. Panics if the sizes disagree.
    pub fn new(x: Vec<f32>, y: Vec<u8>, dim: usize, classes: usize) -> Self {
        assert_eq!(x.len(), y.len() * dim, "features and labels disagree");
        Dataset { x, y, dim, classes }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Features per example.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All features, row-major.
    pub fn features(&self) -> &[f32] {
        &self.x
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.y
    }

    /// Features of example `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// The examples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut x = Vec::with_capacity(indices.len() * self.dim);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(self.row(i));
            y.push(self.y[i]);
        }
        Dataset::new(x, y, self.dim, self.classes)
    }

    /// Shuffles with `seed`, then holds out the first `validation_fraction` as validation data.
    ///
    /// ```
    /// use caviar_nn::data::Dataset;
    /// let data = Dataset::new(vec![0.0; 500 * 2], vec![0; 500], 2, 10);
    /// let split = data.split(0.2, 1);
    /// assert_eq!((split.train.len(), split.validation.len()), (400, 100));
    /// ```
    pub fn split(&self, validation_fraction: f64, seed: u64) -> Split {
        let mut order: Vec<usize> = (0..self.len()).collect();
        Rng::keyed(seed, &[0x0073_706c_6974]).shuffle(&mut order);
        let n_val = ((self.len() as f64) * validation_fraction.clamp(0.0, 1.0)).round() as usize;
        Split {
            validation: self.select(&order[..n_val]),
            train: self.select(&order[n_val..]),
        }
    }
}

/// Training data and the validation data held out from it: all a search may see.
#[derive(Clone, Debug)]
pub struct Split {
    /// Examples the model learns from.
    pub train: Dataset,
    /// Examples the search ranks trials by.
    pub validation: Dataset,
}

/// Default share of the training data held out for validation.
pub const DEFAULT_VALIDATION_FRACTION: f64 = 0.2;

/// Test data, sealed. There is no way to read it; [`TestSet::evaluate_once`] consumes it, so
/// a program touches the test set at most once, at the end, and says so on stderr.
pub struct TestSet {
    data: Dataset,
}

impl TestSet {
    /// Seals a dataset as test data.
    pub fn seal(data: Dataset) -> Self {
        TestSet { data }
    }

    /// Number of test examples.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Evaluates `predict_accuracy` on the test data, once: the set is consumed. `why` is logged.
    pub fn evaluate_once<F>(self, why: &str, predict_accuracy: F) -> f64
    where
        F: FnOnce(&Dataset) -> f64,
    {
        eprintln!(
            "touching the test set ({} examples), once: {why}",
            self.data.len()
        );
        predict_accuracy(&self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_seeded_disjoint_and_complete() {
        let n = 50;
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let data = Dataset::new(x, vec![0; n], 1, 10);
        let a = data.split(0.2, 3);
        let b = data.split(0.2, 3);
        let c = data.split(0.2, 4);
        assert_eq!(a.validation, b.validation);
        assert_ne!(a.validation, c.validation);
        assert_eq!(a.validation.len(), 10);
        let mut all: Vec<f32> = a
            .train
            .features()
            .iter()
            .chain(a.validation.features())
            .copied()
            .collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..n).map(|i| i as f32).collect::<Vec<_>>());
    }
}
