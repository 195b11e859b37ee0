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

impl Catalog {
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
