//! Turning per-chunk predictions into one answer per query (the seed's rule: the most voted
//! song, or unknown if it has fewer than `min_votes` votes).

use serde::{Deserialize, Serialize};

/// The answer to one query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The identified song, or None for "unknown".
    pub song: Option<usize>,
    /// Songs ranked by votes (most first, ties by lower index like numpy's argmax), with counts.
    pub ranking: Vec<(usize, usize)>,
}

impl Answer {
    /// Whether `truth` is among the first `k` ranked songs (top-k; unknown answers count as wrong
    /// for top-1 only through `song`).
    pub fn in_top(&self, truth: usize, k: usize) -> bool {
        self.ranking.iter().take(k).any(|&(s, _)| s == truth)
    }
}

/// Majority vote over per-chunk predicted song indices.
pub fn majority_vote(predictions: &[usize], n_classes: usize, min_votes: usize) -> Answer {
    let mut counts = vec![0usize; n_classes];
    for &p in predictions {
        if p < n_classes {
            counts[p] += 1;
        }
    }
    let mut ranking: Vec<(usize, usize)> = counts
        .into_iter()
        .enumerate()
        .filter(|&(_, c)| c > 0)
        .collect();
    // Stable sort keeps lower indices first among equal counts (numpy argmax semantics).
    ranking.sort_by(|a, b| b.1.cmp(&a.1));
    let song = ranking
        .first()
        .filter(|&&(_, c)| c >= min_votes)
        .map(|&(s, _)| s);
    Answer { song, ranking }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_voted_wins_and_ties_go_to_lower_index() {
        let a = majority_vote(&[3, 1, 3, 1, 2, 3, 1], 5, 1);
        assert_eq!(a.song, Some(1));
        assert_eq!(a.ranking, vec![(1, 3), (3, 3), (2, 1)]);
        assert!(a.in_top(3, 2) && !a.in_top(2, 2));
    }

    #[test]
    fn fewer_than_min_votes_is_unknown() {
        let a = majority_vote(&[0, 0, 0, 0, 1, 2, 3], 4, 5);
        assert_eq!(a.song, None);
        assert_eq!(majority_vote(&[0; 5], 4, 5).song, Some(0));
        assert_eq!(majority_vote(&[], 4, 5).song, None);
    }
}
