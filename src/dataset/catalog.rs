//! The song catalog: song index (the class label) ↔ track id ↔ title/artist ↔ file.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One song of a dataset. `index` is the class label used by models; `track_id` is the
/// file stem (FMA track id, e.g. "000002").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Song {
    pub index: usize,
    pub track_id: String,
    /// Path relative to the dataset root.
    pub path: PathBuf,
    pub title: Option<String>,
    pub artist: Option<String>,
}

impl Song {
    /// "Title — Artist", falling back to the track id.
    pub fn display_name(&self) -> String {
        match (&self.title, &self.artist) {
            (Some(t), Some(a)) => format!("{t} — {a}"),
            (Some(t), None) => t.clone(),
            _ => self.track_id.clone(),
        }
    }
}

/// The ordered list of songs a model is trained on; `songs[i].index == i`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub songs: Vec<Song>,
}

/// One of `count` parts of a catalogue (`--shard index/count`, index from 0 as Slurm's
/// `SLURM_ARRAY_TASK_ID` and Kubernetes' `JOB_COMPLETION_INDEX` count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a shard: write i/n with 0 ≤ i < n, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl Shard {
    /// The positions of this part of `len` items: contiguous, sizes differing by at most one,
    /// so that the parts 0 … n−1 in order are `0..len` again.
    pub fn range(self, len: usize) -> std::ops::Range<usize> {
        len * self.index / self.count..len * (self.index + 1) / self.count
    }
}

/// Why `merge` refused the folders it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardRefusal {
    /// The folder at fault; None when the fault is the whole set (shards missing).
    pub dir: Option<PathBuf>,
    pub reason: String,
}

/// Puts the outputs of a sharded run into shard order, so they can be concatenated. `parts`
/// are (folder, the shard it recorded — None if written without `--shard` —, contents) in any
/// order; `differs(part, first)` names what makes a part's input or parameters other than the
/// first part's (None: the same). Refuses a folder that is not a shard, a part that differs
/// (in the shard count too), a shard given twice and missing shards, naming the folder and
/// what differs. Every merge (feature stores, query sets, evaluations) checks its parts here.
pub fn order_shards<T>(
    parts: Vec<(PathBuf, Option<Shard>, T)>,
    differs: impl Fn(&T, &T) -> Option<&'static str>,
) -> Result<Vec<T>, ShardRefusal> {
    let refuse = |dir: &PathBuf, reason: String| ShardRefusal {
        dir: Some(dir.clone()),
        reason,
    };
    let mut slots: Vec<Option<T>> = Vec::new();
    let mut first: Option<(PathBuf, Shard)> = None;
    let mut reference: Option<usize> = None;
    for (dir, shard, part) in parts {
        let Some(shard) = shard else {
            return Err(refuse(&dir, "not a shard (written without --shard)".into()));
        };
        let (first_dir, first_shard) = first.get_or_insert_with(|| (dir.clone(), shard));
        if shard.count != first_shard.count {
            return Err(refuse(
                &dir,
                format!(
                    "shard count: {shard} is not one of the {} shards of {}",
                    first_shard.count,
                    first_dir.display()
                ),
            ));
        }
        if slots.is_empty() {
            slots.resize_with(shard.count, || None);
        }
        if let Some(what) =
            reference.and_then(|r| slots[r].as_ref().and_then(|f| differs(&part, f)))
        {
            return Err(refuse(
                &dir,
                format!("{what}: not the same as in {}", first_dir.display()),
            ));
        }
        if slots[shard.index].is_some() {
            return Err(refuse(&dir, format!("shard {shard} is given twice")));
        }
        reference.get_or_insert(shard.index);
        slots[shard.index] = Some(part);
    }
    if slots.is_empty() {
        return Err(ShardRefusal {
            dir: None,
            reason: "no shard folders to merge".into(),
        });
    }
    let count = slots.len();
    let missing: Vec<String> = (0..count)
        .filter(|&k| slots[k].is_none())
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        return Err(ShardRefusal {
            dir: None,
            reason: format!("shard(s) {} missing", missing.join(", ")),
        });
    }
    Ok(slots.into_iter().flatten().collect())
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The part of a catalogue a shard's output holds, recorded in its sidecar (`features.json`,
/// `queryset.json`) so `merge` can check that its shards were cut from one catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub shard: Shard,
    /// Songs of the whole catalogue and the SHA-256 of their paths ([`Catalog::paths_sha256`]).
    pub catalog_songs: usize,
    pub catalog_sha256: String,
}

impl ShardInfo {
    /// Part `shard` of `catalog` (the whole catalogue, not the part).
    pub fn of(catalog: &Catalog, shard: Shard) -> Self {
        Self {
            shard,
            catalog_songs: catalog.len(),
            catalog_sha256: catalog.paths_sha256(),
        }
    }

    /// Whether two outputs' shard records (`None`: not a shard) name the same catalogue.
    pub fn same_catalogue(a: Option<&ShardInfo>, b: Option<&ShardInfo>) -> bool {
        let key = |i: Option<&ShardInfo>| i.map(|i| (i.catalog_songs, i.catalog_sha256.clone()));
        key(a) == key(b)
    }
}

impl Catalog {
    /// The songs of `shard`: a contiguous run in catalogue order (sizes differ by at most
    /// one), so that shards concatenated in order are the catalogue again.
    pub fn shard(&self, shard: Shard) -> Catalog {
        Catalog {
            songs: self.songs[shard.range(self.songs.len())].to_vec(),
        }
    }

    /// SHA-256 of the catalogue's song paths in order: the input a shard was cut from.
    pub fn paths_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for s in &self.songs {
            h.update(s.path.to_string_lossy().as_bytes());
            h.update([0]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn len(&self) -> usize {
        self.songs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.songs.is_empty()
    }
    pub fn get(&self, index: usize) -> Option<&Song> {
        self.songs.get(index)
    }
    pub fn by_track_id(&self, track_id: &str) -> Option<&Song> {
        self.songs.iter().find(|s| s.track_id == track_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: usize, count: usize) -> Option<Shard> {
        Some(Shard { index, count })
    }

    #[test]
    fn shard_ranges_cover_the_list_once_in_order() {
        for len in [0, 1, 2, 7, 10] {
            for count in 1..5 {
                let all: Vec<usize> = (0..count)
                    .flat_map(|index| Shard { index, count }.range(len))
                    .collect();
                assert_eq!(all, (0..len).collect::<Vec<_>>(), "{len} in {count}");
            }
        }
        assert_eq!(Shard { index: 1, count: 3 }.range(7), 2..4);
    }

    #[test]
    fn shards_are_put_in_order_and_bad_sets_refused_by_folder() {
        let part = |name: &str, s: Option<Shard>, input: u8| (PathBuf::from(name), s, input);
        let same = |a: &u8, b: &u8| (a != b).then_some("input");
        let ordered = order_shards(
            vec![
                part("c", shard(2, 3), 1),
                part("a", shard(0, 3), 1),
                part("b", shard(1, 3), 1),
            ],
            |_, _| None,
        )
        .unwrap();
        assert_eq!(ordered, vec![1, 1, 1]);
        let named = order_shards(
            vec![part("c", shard(1, 2), 20), part("a", shard(0, 2), 10)],
            |_, _| None,
        )
        .unwrap();
        assert_eq!(named, vec![10, 20]);

        let refusal = |parts| order_shards(parts, same).unwrap_err();
        let r = refusal(vec![part("a", shard(0, 2), 1), part("b", shard(1, 2), 2)]);
        assert_eq!(r.dir, Some(PathBuf::from("b")));
        assert_eq!(r.reason, "input: not the same as in a");
        let r = refusal(vec![part("a", shard(0, 2), 1), part("x", None, 1)]);
        assert_eq!(
            (r.dir, r.reason.contains("not a shard")),
            (Some("x".into()), true)
        );
        let r = refusal(vec![part("a", shard(0, 2), 1), part("b", shard(0, 2), 1)]);
        assert_eq!(
            (r.dir, r.reason),
            (Some("b".into()), "shard 0/2 is given twice".into())
        );
        let r = refusal(vec![part("a", shard(0, 2), 1), part("b", shard(1, 3), 1)]);
        assert_eq!(r.dir, Some("b".into()));
        assert!(r.reason.starts_with("shard count"), "{}", r.reason);
        let r = refusal(vec![part("a", shard(0, 3), 1), part("c", shard(2, 3), 1)]);
        assert_eq!((r.dir, r.reason), (None, "shard(s) 1/3 missing".into()));
        let r = refusal(vec![]);
        assert_eq!(r.dir, None);
    }
}
