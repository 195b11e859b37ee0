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

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Catalog {
    /// The songs of `shard`: a contiguous run in catalogue order (sizes differ by at most
    /// one), so that shards concatenated in order are the catalogue again.
    pub fn shard(&self, shard: Shard) -> Catalog {
        let n = self.songs.len();
        let range = n * shard.index / shard.count..n * (shard.index + 1) / shard.count;
        Catalog {
            songs: self.songs[range].to_vec(),
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
