//! How much annotators agree: pairwise agreement, Cohen's κ, Fleiss' κ, and each
//! annotator's agreement with the consensus.

use super::records::{Comparison, Winner};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The same question asked of several annotators: prompt and the two responses.
fn item_key(c: &Comparison) -> (String, String, String) {
    (
        c.prompt_id.clone(),
        c.response_a.clone(),
        c.response_b.clone(),
    )
}

fn label(w: Winner) -> usize {
    match w {
        Winner::A => 0,
        Winner::B => 1,
        Winner::Tie => 2,
    }
}

/// Labels per item per annotator, items in sorted order (a BTreeMap: the
/// κ sums run in the same order on every run, so results match to the bit).
fn by_item(comparisons: &[Comparison]) -> BTreeMap<(String, String, String), Vec<(String, usize)>> {
    let mut m: BTreeMap<_, Vec<(String, usize)>> = BTreeMap::new();
    for c in comparisons {
        m.entry(item_key(c))
            .or_default()
            .push((c.annotator.clone(), label(c.winner)));
    }
    m
}

/// How often two annotators agree on the items both labelled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairAgreement {
    /// Share of the shared items given the same label (0 when none are shared).
    pub rate: f64,
    /// Items labelled by both annotators.
    pub shared_items: usize,
}

/// Share of items labelled by both `a` and `b` on which they gave the same label.
pub fn pairwise_agreement(comparisons: &[Comparison], a: &str, b: &str) -> PairAgreement {
    let (mut same, mut n) = (0, 0);
    for labels in by_item(comparisons).values() {
        let la = labels.iter().find(|(x, _)| x == a).map(|l| l.1);
        let lb = labels.iter().find(|(x, _)| x == b).map(|l| l.1);
        if let (Some(x), Some(y)) = (la, lb) {
            n += 1;
            same += (x == y) as usize;
        }
    }
    PairAgreement {
        rate: same as f64 / n.max(1) as f64,
        shared_items: n,
    }
}

/// Cohen's κ (1960) for two annotators over their shared items:
/// κ = (p_o − p_e) / (1 − p_e), p_e from each annotator's label frequencies.
pub fn cohen_kappa(comparisons: &[Comparison], a: &str, b: &str) -> f64 {
    let mut pairs = Vec::new();
    for labels in by_item(comparisons).values() {
        let la = labels.iter().find(|(x, _)| x == a).map(|l| l.1);
        let lb = labels.iter().find(|(x, _)| x == b).map(|l| l.1);
        if let (Some(x), Some(y)) = (la, lb) {
            pairs.push((x, y));
        }
    }
    cohen_kappa_labels(&pairs, 3)
}

/// Cohen's κ from label pairs over `k` categories.
pub fn cohen_kappa_labels(pairs: &[(usize, usize)], k: usize) -> f64 {
    let n = pairs.len() as f64;
    if n == 0.0 {
        return f64::NAN;
    }
    let po = pairs.iter().filter(|(x, y)| x == y).count() as f64 / n;
    let pe: f64 = (0..k)
        .map(|c| {
            let pa = pairs.iter().filter(|p| p.0 == c).count() as f64 / n;
            let pb = pairs.iter().filter(|p| p.1 == c).count() as f64 / n;
            pa * pb
        })
        .sum();
    if (1.0 - pe).abs() < 1e-12 {
        f64::NAN
    } else {
        (po - pe) / (1.0 - pe)
    }
}

/// Fleiss' κ (1971) over items that each received the same number m ≥ 2 of labels
/// (items with another count are skipped): counts[i][c] = raters putting item i in c.
pub fn fleiss_kappa_counts(counts: &[Vec<usize>]) -> f64 {
    let Some(m) = counts.first().map(|c| c.iter().sum::<usize>()) else {
        return f64::NAN;
    };
    let items: Vec<&Vec<usize>> = counts
        .iter()
        .filter(|c| c.iter().sum::<usize>() == m)
        .collect();
    if items.is_empty() || m < 2 {
        return f64::NAN;
    }
    let (n, m) = (items.len() as f64, m as f64);
    let k = items[0].len();
    let p_bar = items
        .iter()
        .map(|c| (c.iter().map(|&x| (x * x) as f64).sum::<f64>() - m) / (m * (m - 1.0)))
        .sum::<f64>()
        / n;
    let pe: f64 = (0..k)
        .map(|j| {
            let pj = items.iter().map(|c| c[j] as f64).sum::<f64>() / (n * m);
            pj * pj
        })
        .sum();
    (p_bar - pe) / (1.0 - pe)
}

/// Fleiss' κ of comparisons, over the items labelled by the most common number of annotators.
pub fn fleiss_kappa(comparisons: &[Comparison]) -> f64 {
    let items = by_item(comparisons);
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for l in items.values() {
        *sizes.entry(l.len()).or_default() += 1;
    }
    let Some((&m, _)) = sizes
        .iter()
        .filter(|(&m, _)| m >= 2)
        .max_by_key(|(&m, &c)| (c, m))
    else {
        return f64::NAN;
    };
    let counts: Vec<Vec<usize>> = items
        .values()
        .filter(|l| l.len() == m)
        .map(|l| {
            let mut c = vec![0; 3];
            for (_, x) in l {
                c[*x] += 1;
            }
            c
        })
        .collect();
    fleiss_kappa_counts(&counts)
}

/// How often one annotator sides with the majority of the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusAgreement {
    /// The annotator.
    pub annotator: String,
    /// Share of its labels equal to the other annotators' majority label.
    pub agreement: f64,
    /// Items counted (those where the others had a strict majority).
    pub items: usize,
}

/// For each annotator, by name: the share of its labels equal to the majority label of the
/// *other* annotators of the same item (items with no strict majority skipped).
pub fn agreement_with_consensus(comparisons: &[Comparison]) -> Vec<ConsensusAgreement> {
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for labels in by_item(comparisons).values() {
        for (i, (who, mine)) in labels.iter().enumerate() {
            let mut c = [0usize; 3];
            for (j, (_, l)) in labels.iter().enumerate() {
                if j != i {
                    c[*l] += 1;
                }
            }
            let best = (0..3).max_by_key(|&x| c[x]).unwrap_or(0);
            let strict = c.iter().filter(|&&x| x == c[best]).count() == 1 && c[best] > 0;
            if strict {
                let e = tally.entry(who.clone()).or_default();
                e.0 += (best == *mine) as usize;
                e.1 += 1;
            }
        }
    }
    let mut out: Vec<ConsensusAgreement> = tally
        .into_iter()
        .map(|(annotator, (same, n))| ConsensusAgreement {
            annotator,
            agreement: same as f64 / n.max(1) as f64,
            items: n,
        })
        .collect();
    out.sort_by(|a, b| a.annotator.cmp(&b.annotator));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fleiss' worked example (Wikipedia, "Fleiss' kappa": 10 items, 14 raters, 5
    /// categories) gives κ = 0.210.
    #[test]
    fn fleiss_worked_example() {
        let table = vec![
            vec![0, 0, 0, 0, 14],
            vec![0, 2, 6, 4, 2],
            vec![0, 0, 3, 5, 6],
            vec![0, 3, 9, 2, 0],
            vec![2, 2, 8, 1, 1],
            vec![7, 7, 0, 0, 0],
            vec![3, 2, 6, 3, 0],
            vec![2, 5, 3, 2, 2],
            vec![6, 5, 2, 1, 0],
            vec![0, 2, 2, 3, 7],
        ];
        assert!((fleiss_kappa_counts(&table) - 0.210).abs() < 5e-4);
    }

    fn vote(item: &str, who: &str, w: Winner) -> Comparison {
        Comparison {
            prompt_id: item.into(),
            prompt: "q".into(),
            response_a: "x".into(),
            response_b: "y".into(),
            system_a: String::new(),
            system_b: String::new(),
            winner: w,
            annotator: who.into(),
            time: 0,
        }
    }

    /// Items 1–3 labelled by u, v and w. u and v agree on items 1 and 2 (2 of 3).
    /// Against the majority of the *others*: on item 1 all say A (u, v, w agree);
    /// on item 2 u = v = A, w = B (w disagrees; u's others are {A, B}: no majority);
    /// on item 3 u = A, v = w = B (u disagrees).
    #[test]
    fn pairwise_and_consensus_by_hand() {
        use Winner::{A, B};
        let c = vec![
            vote("1", "u", A),
            vote("1", "v", A),
            vote("1", "w", A),
            vote("2", "u", A),
            vote("2", "v", A),
            vote("2", "w", B),
            vote("3", "u", A),
            vote("3", "v", B),
            vote("3", "w", B),
        ];
        let PairAgreement {
            rate: p,
            shared_items: n,
        } = pairwise_agreement(&c, "u", "v");
        assert_eq!(n, 3);
        assert!((p - 2.0 / 3.0).abs() < 1e-12);
        let cons = agreement_with_consensus(&c);
        // u: item 1 agrees (others A,A), item 2 no majority, item 3 disagrees (B,B) → 1/2.
        // v: item 1 agrees, item 2 no majority (A,B), item 3 no majority (A,B) → 1/1.
        // w: item 1 agrees, item 2 disagrees (A,A), item 3 no majority (A,B) → 1/2.
        let rows: Vec<(&str, f64, usize)> = cons
            .iter()
            .map(|c| (c.annotator.as_str(), c.agreement, c.items))
            .collect();
        assert_eq!(rows, vec![("u", 0.5, 2), ("v", 1.0, 1), ("w", 0.5, 2)]);
    }

    /// Two raters, 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 →
    /// p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.4 (Wikipedia, "Cohen's kappa").
    #[test]
    fn cohen_worked_example() {
        let mut pairs = vec![(0, 0); 20];
        pairs.extend(vec![(0, 1); 5]);
        pairs.extend(vec![(1, 0); 10]);
        pairs.extend(vec![(1, 1); 15]);
        assert!((cohen_kappa_labels(&pairs, 2) - 0.4).abs() < 1e-12);
    }
}
