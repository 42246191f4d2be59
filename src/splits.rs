//! Train / validation / test: one value per split of a dataset. The SFT
//! demonstrations ([`crate::world::demonstrations::generate`],
//! [`crate::lm::sft_data::read_splits`]) and the preference data of rung 6
//! ([`crate::rlhf::PreferenceData`]) are split this way. No candle here.

use serde::{Deserialize, Serialize};

/// One `T` per split: the records themselves, their counts, a metric.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splits<T> {
    pub train: T,
    pub validation: T,
    pub test: T,
}

impl<T> Splits<T> {
    /// The splits with their names, in the order train, validation, test.
    pub fn named(&self) -> [(&'static str, &T); 3] {
        [
            ("train", &self.train),
            ("validation", &self.validation),
            ("test", &self.test),
        ]
    }

    /// `f` applied to each split.
    pub fn map<U>(&self, mut f: impl FnMut(&T) -> U) -> Splits<U> {
        Splits {
            train: f(&self.train),
            validation: f(&self.validation),
            test: f(&self.test),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_map_keep_the_order_train_validation_test() {
        let s = Splits {
            train: vec![1, 2, 3],
            validation: vec![4],
            test: vec![5, 6],
        };
        let names: Vec<&str> = s.named().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["train", "validation", "test"]);
        assert_eq!(
            s.map(Vec::len),
            Splits {
                train: 3,
                validation: 1,
                test: 2
            }
        );
    }
}
