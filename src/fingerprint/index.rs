//! The landmark index (hash → every (song, time) it occurs at) and matching by time-offset
//! consistency (Wang 2003 §2.3): a query hash found at song time `t_s` and query time `t_q`
//! votes for the pair (song, `t_s − t_q`); the right song is the one whose votes pile up on
//! one offset, while chance matches spread over all offsets.
//!
//! Storage is a sorted, compressed-row table: distinct hashes in ascending order, the start
//! of each one's postings, and the postings themselves (8 bytes each). Measured against a
//! `HashMap<u32, Vec<Posting>>` holding the same postings (benches/landmark.rs, 400 songs):
//! 4.65 MB against ~7.6 MB, and 31 ns against 12 ns per look-up, i.e. ~18 µs of a ~5 ms
//! query whose cost is the query's own STFT, so the smaller table wins.

use super::landmark::{Landmark, LandmarkParams, Landmarker};
use crate::error::FingerprintError;
use crate::fsutil;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Magic bytes of an index file.
const MAGIC: &[u8; 8] = b"FSLMIDX\0";
/// Version of the index file layout; bump on any change (old files are then refused).
pub const INDEX_FILE_VERSION: u32 = 1;
/// Landmark times are kept below 2³¹ frames so a time difference fits an i32-biased u32.
const MAX_TIME: u32 = i32::MAX as u32;

/// One occurrence of a hash: the song and the frame of its anchor peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Posting {
    pub song: u32,
    pub time: u32,
}

/// Size of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandmarkStats {
    pub songs: usize,
    /// Postings (hash occurrences) stored.
    pub hashes: usize,
    pub distinct_hashes: usize,
    /// Heap bytes of the tables (song list, keys, row starts, postings).
    pub bytes: usize,
}

/// What a query matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LandmarkAnswer {
    /// The best song, or None when its aligned count is below `min_aligned`.
    pub song: Option<usize>,
    /// (song, best aligned count), most first, ties by song id; every song with a vote.
    pub ranking: Vec<(usize, usize)>,
    /// Offset of the query in the top-ranked song (frames and seconds), even when that song
    /// is below the threshold (None only for an empty ranking).
    pub offset_frames: Option<i64>,
    pub offset_seconds: Option<f64>,
    /// Hashes the query produced.
    pub query_hashes: usize,
}

/// Collects songs' landmarks, then sorts them once into a [`LandmarkIndex`].
#[derive(Debug)]
pub struct LandmarkIndexBuilder {
    landmarker: Landmarker,
    songs: HashSet<u32>,
    entries: Vec<(u32, Posting)>,
}

impl LandmarkIndexBuilder {
    pub fn new(params: LandmarkParams) -> Result<Self, FingerprintError> {
        Ok(Self {
            landmarker: Landmarker::new(params)?,
            songs: HashSet::new(),
            entries: Vec::new(),
        })
    }

    pub fn landmarker(&self) -> &Landmarker {
        &self.landmarker
    }

    /// Fingerprints `samples` (at the params' sample rate) as song `song`; returns the number
    /// of hashes added. A silent song adds none but is still a member of the index.
    pub fn add_song(&mut self, song: usize, samples: &[f32]) -> Result<usize, FingerprintError> {
        let id = self.check_new(song)?;
        let landmarks = self.landmarker.landmarks(samples)?;
        self.insert(id, &landmarks)
    }

    /// Adds landmarks computed elsewhere (e.g. in parallel with the same params).
    pub fn add_landmarks(
        &mut self,
        song: usize,
        landmarks: &[Landmark],
    ) -> Result<usize, FingerprintError> {
        let id = self.check_new(song)?;
        self.insert(id, landmarks)
    }

    fn check_new(&self, song: usize) -> Result<u32, FingerprintError> {
        let id = u32::try_from(song).map_err(|_| {
            FingerprintError::Capacity(format!("song id {song} does not fit 32 bits"))
        })?;
        if self.songs.contains(&id) {
            return Err(FingerprintError::DuplicateSong { song });
        }
        Ok(id)
    }

    fn insert(&mut self, song: u32, landmarks: &[Landmark]) -> Result<usize, FingerprintError> {
        if let Some(l) = landmarks.iter().find(|l| l.time > MAX_TIME) {
            return Err(FingerprintError::Capacity(format!(
                "landmark time {} exceeds {MAX_TIME} frames",
                l.time
            )));
        }
        if self.entries.len() + landmarks.len() > u32::MAX as usize {
            return Err(FingerprintError::Capacity(
                "more than 2^32 postings in one index".into(),
            ));
        }
        self.songs.insert(song);
        self.entries.extend(
            landmarks
                .iter()
                .map(|l| (l.hash, Posting { song, time: l.time })),
        );
        Ok(landmarks.len())
    }

    pub fn finish(self) -> LandmarkIndex {
        let mut entries = self.entries;
        entries.par_sort_unstable();
        let mut keys = Vec::new();
        let mut starts = Vec::new();
        let mut postings = Vec::with_capacity(entries.len());
        for (i, &(hash, posting)) in entries.iter().enumerate() {
            if keys.last() != Some(&hash) {
                keys.push(hash);
                starts.push(i as u32);
            }
            postings.push(posting);
        }
        starts.push(postings.len() as u32);
        let mut songs: Vec<u32> = self.songs.into_iter().collect();
        songs.sort_unstable();
        LandmarkIndex {
            landmarker: self.landmarker,
            songs,
            keys,
            starts,
            postings,
        }
    }
}

/// Hash → postings table plus the extractor that made it (a query must be fingerprinted
/// with the same parameters).
#[derive(Debug)]
pub struct LandmarkIndex {
    landmarker: Landmarker,
    /// Member songs, ascending.
    songs: Vec<u32>,
    /// Distinct hashes, ascending.
    keys: Vec<u32>,
    /// Postings of `keys[i]` are `postings[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    postings: Vec<Posting>,
}

impl LandmarkIndex {
    /// Fingerprints every `(song id, samples)` in parallel and indexes them.
    pub fn build<S: AsRef<[f32]> + Sync>(
        params: LandmarkParams,
        songs: &[(usize, S)],
    ) -> Result<Self, FingerprintError> {
        let mut builder = LandmarkIndexBuilder::new(params)?;
        let landmarker = &builder.landmarker;
        let fingerprints: Vec<Vec<Landmark>> = songs
            .par_iter()
            .map(|(_, samples)| landmarker.landmarks(samples.as_ref()))
            .collect::<Result<_, _>>()?;
        for ((song, _), landmarks) in songs.iter().zip(&fingerprints) {
            builder.add_landmarks(*song, landmarks)?;
        }
        Ok(builder.finish())
    }

    pub fn params(&self) -> &LandmarkParams {
        self.landmarker.params()
    }

    pub fn landmarker(&self) -> &Landmarker {
        &self.landmarker
    }

    pub fn contains_song(&self, song: usize) -> bool {
        u32::try_from(song).is_ok_and(|id| self.songs.binary_search(&id).is_ok())
    }

    /// Every (song, time) at which `hash` occurs.
    pub fn postings(&self, hash: u32) -> &[Posting] {
        match self.keys.binary_search(&hash) {
            Ok(i) => &self.postings[self.starts[i] as usize..self.starts[i + 1] as usize],
            Err(_) => &[],
        }
    }

    /// Every distinct hash with its postings, in ascending hash order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[Posting])> + '_ {
        self.keys
            .iter()
            .zip(self.starts.windows(2))
            .map(|(&k, w)| (k, &self.postings[w[0] as usize..w[1] as usize]))
    }

    pub fn stats(&self) -> LandmarkStats {
        use std::mem::size_of;
        LandmarkStats {
            songs: self.songs.len(),
            hashes: self.postings.len(),
            distinct_hashes: self.keys.len(),
            bytes: size_of::<u32>() * (self.songs.len() + self.keys.len() + self.starts.len())
                + size_of::<Posting>() * self.postings.len(),
        }
    }

    /// Identifies `samples` (at the params' sample rate). Too-short or non-finite audio is an
    /// error; silence gives an unknown answer with an empty ranking.
    pub fn query(&self, samples: &[f32]) -> Result<LandmarkAnswer, FingerprintError> {
        Ok(self.query_landmarks(&self.landmarker.query_landmarks(samples)?))
    }

    /// Scores query landmarks: for each song, the largest number of hash matches whose time
    /// offsets lie within a window of 2·`offset_tolerance` + 1 frames.
    pub fn query_landmarks(&self, landmarks: &[Landmark]) -> LandmarkAnswer {
        let p = self.params();
        // (song << 32) | (offset + 2³¹): sorting groups by song, then by offset.
        let mut hits: Vec<u64> = Vec::new();
        for l in landmarks {
            for post in self.postings(l.hash) {
                let offset = i64::from(post.time) - i64::from(l.time) + (1i64 << 31);
                hits.push(u64::from(post.song) << 32 | offset as u64);
            }
        }
        hits.sort_unstable();
        let width = 2 * u64::from(p.offset_tolerance);
        let mut ranking = Vec::new();
        let mut best: Option<(usize, i64)> = None;
        for run in hits.chunk_by(|a, b| a >> 32 == b >> 32) {
            let song = (run[0] >> 32) as usize;
            let off = |i: usize| run[i] & 0xffff_ffff;
            let (mut count, mut at) = (0, 0);
            let mut end = 0;
            for start in 0..run.len() {
                while end < run.len() && off(end) <= off(start) + width {
                    end += 1;
                }
                if end - start > count {
                    count = end - start;
                    // The median hit of the window estimates the offset.
                    at = off((start + end - 1) / 2) as i64 - (1i64 << 31);
                }
            }
            if best.is_none_or(|(c, _)| count > c) {
                best = Some((count, at));
            }
            ranking.push((song, count));
        }
        ranking.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let known = ranking.first().filter(|r| r.1 >= p.min_aligned).copied();
        // `best` holds the first song in id order with the top count, as `ranking[0]` does.
        let offset_frames = best.map(|(_, at)| at);
        LandmarkAnswer {
            song: known.map(|r| r.0),
            ranking,
            offset_frames,
            offset_seconds: offset_frames.map(|f| f as f64 * p.frame_seconds()),
            query_hashes: landmarks.len(),
        }
    }

    /// Writes the index (params as JSON, then the tables, little-endian) atomically.
    pub fn save(&self, path: &Path) -> Result<(), FingerprintError> {
        let params = serde_json::to_vec(self.params()).map_err(|e| FingerprintError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        fsutil::write_atomic_with(path, |w| {
            w.write_all(MAGIC)?;
            w.write_all(&INDEX_FILE_VERSION.to_le_bytes())?;
            w.write_all(&(params.len() as u64).to_le_bytes())?;
            w.write_all(&params)?;
            for n in [self.songs.len(), self.keys.len(), self.postings.len()] {
                w.write_all(&(n as u64).to_le_bytes())?;
            }
            for v in self.songs.iter().chain(&self.keys).chain(&self.starts) {
                w.write_all(&v.to_le_bytes())?;
            }
            for post in &self.postings {
                w.write_all(&post.song.to_le_bytes())?;
                w.write_all(&post.time.to_le_bytes())?;
            }
            Ok(())
        })
        .map_err(|source| FingerprintError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads an index written by [`LandmarkIndex::save`], checking its layout completely
    /// (a damaged file is refused, never half-loaded).
    pub fn load(path: &Path) -> Result<Self, FingerprintError> {
        let bytes = std::fs::read(path).map_err(|source| FingerprintError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let corrupt = |reason: String| FingerprintError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
            path: path.to_path_buf(),
        };
        let magic = r.take(MAGIC.len(), "magic")?;
        if magic != MAGIC {
            return Err(FingerprintError::WrongFormat {
                path: path.to_path_buf(),
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let version = r.u32("version")?;
        if version != INDEX_FILE_VERSION {
            return Err(FingerprintError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: INDEX_FILE_VERSION,
            });
        }
        let params_len = r.count(1, "params length")?;
        let params: LandmarkParams = serde_json::from_slice(r.take(params_len, "params")?)
            .map_err(|e| corrupt(format!("params: {e}")))?;
        let landmarker = Landmarker::new(params).map_err(|e| corrupt(format!("params: {e}")))?;
        let n_songs = r.count(4, "song count")?;
        let n_keys = r.count(4, "hash count")?;
        let n_postings = r.count(8, "posting count")?;
        let expected = n_songs
            .checked_add(n_keys)
            .and_then(|n| n.checked_add(n_keys + 1))
            .and_then(|n| n.checked_mul(4))
            .and_then(|n| n.checked_add(n_postings.checked_mul(8)?));
        if expected != Some(bytes.len() - r.pos) {
            return Err(corrupt(format!(
                "{} bytes of tables for {n_songs} songs, {n_keys} hashes and {n_postings} \
                 postings (truncated or padded file)",
                bytes.len() - r.pos
            )));
        }
        let songs = r.u32s(n_songs, "songs")?;
        let keys = r.u32s(n_keys, "hashes")?;
        let starts = r.u32s(n_keys + 1, "row starts")?;
        let flat = r.u32s(2 * n_postings, "postings")?;
        let postings: Vec<Posting> = flat
            .chunks_exact(2)
            .map(|c| Posting {
                song: c[0],
                time: c[1],
            })
            .collect();
        if !songs.windows(2).all(|w| w[0] < w[1]) {
            return Err(corrupt("song ids not strictly ascending".into()));
        }
        if !keys.windows(2).all(|w| w[0] < w[1]) {
            return Err(corrupt("hashes not strictly ascending".into()));
        }
        if starts.first() != Some(&0)
            || starts.last().map(|&s| s as usize) != Some(n_postings)
            || !starts.windows(2).all(|w| w[0] < w[1])
        {
            return Err(corrupt(
                "row starts are not a partition of the postings".into(),
            ));
        }
        if let Some(post) = postings
            .iter()
            .find(|post| post.time > MAX_TIME || songs.binary_search(&post.song).is_err())
        {
            return Err(corrupt(format!(
                "posting (song {}, time {}) names an unknown song or an impossible time",
                post.song, post.time
            )));
        }
        Ok(Self {
            landmarker,
            songs,
            keys,
            starts,
            postings,
        })
    }
}

/// Little-endian cursor over an index file; running out of bytes names the field.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: PathBuf,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FingerprintError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(FingerprintError::Corrupt {
                path: self.path.clone(),
                reason: format!("truncated in {what} (byte {})", self.pos),
            });
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32, FingerprintError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A u64 count of items of `item_bytes` each that must fit in what is left of the file
    /// (so a damaged header cannot ask for a huge allocation).
    fn count(&mut self, item_bytes: usize, what: &str) -> Result<usize, FingerprintError> {
        let b = self.take(8, what)?;
        let n = u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let left = (self.bytes.len() - self.pos) as u64;
        if n.checked_mul(item_bytes as u64)
            .is_none_or(|total| total > left)
        {
            return Err(FingerprintError::Corrupt {
                path: self.path.clone(),
                reason: format!("{what} {n} exceeds the {left} bytes left in the file"),
            });
        }
        Ok(n as usize)
    }

    fn u32s(&mut self, n: usize, what: &str) -> Result<Vec<u32>, FingerprintError> {
        Ok(self
            .take(4 * n, what)?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lm(time: u32, hash: u32) -> Landmark {
        Landmark { time, hash }
    }

    /// Three songs of hand-made landmarks: song 7 contains the query's hashes at +40 frames.
    fn toy_index() -> LandmarkIndex {
        let mut b = LandmarkIndexBuilder::new(LandmarkParams::default()).unwrap();
        let song7: Vec<Landmark> = (0..20).map(|i| lm(40 + i * 3, 1000 + i)).collect();
        // Song 3 holds the same hashes but at scattered offsets: many votes, no alignment.
        let song3: Vec<Landmark> = (0..20).map(|i| lm((i * 379) % 1009, 1000 + i)).collect();
        let song5: Vec<Landmark> = (0..20).map(|i| lm(i, 5000 + i)).collect();
        b.add_landmarks(7, &song7).unwrap();
        b.add_landmarks(3, &song3).unwrap();
        b.add_landmarks(5, &song5).unwrap();
        b.finish()
    }

    #[test]
    fn offset_voting_picks_the_aligned_song_and_its_offset() {
        let index = toy_index();
        let query: Vec<Landmark> = (0..20).map(|i| lm(i * 3, 1000 + i)).collect();
        let a = index.query_landmarks(&query);
        assert_eq!(a.song, Some(7));
        assert_eq!(a.offset_frames, Some(40));
        assert_eq!(a.ranking[0], (7, 20));
        // Song 3 matched every hash too, but never more than a few at one offset.
        let s3 = a.ranking.iter().find(|r| r.0 == 3).unwrap().1;
        assert!(s3 < 5, "song 3 aligned count {s3}");
        assert!(!a.ranking.iter().any(|r| r.0 == 5));
        let secs = a.offset_seconds.unwrap();
        assert!((secs - 40.0 * 512.0 / 22050.0).abs() < 1e-9);
    }

    #[test]
    fn too_few_aligned_hashes_is_unknown() {
        let index = toy_index();
        let query: Vec<Landmark> = (0..3).map(|i| lm(i * 3, 1000 + i)).collect();
        let a = index.query_landmarks(&query);
        assert_eq!(a.song, None);
        assert_eq!(a.offset_frames, Some(40));
        assert_eq!(a.ranking[0], (7, 3));
        assert_eq!(index.query_landmarks(&[]).ranking, vec![]);
    }

    #[test]
    fn offset_tolerance_merges_neighbouring_offsets() {
        let index = toy_index();
        // Half the hashes one frame late (a query not aligned to the frame grid).
        let query: Vec<Landmark> = (0..20).map(|i| lm(i * 3 + i % 2, 1000 + i)).collect();
        assert_eq!(index.query_landmarks(&query).ranking[0], (7, 20));
    }

    #[test]
    fn duplicate_song_and_stats() {
        let mut b = LandmarkIndexBuilder::new(LandmarkParams::default()).unwrap();
        b.add_landmarks(1, &[lm(0, 9), lm(1, 9), lm(2, 8)]).unwrap();
        assert!(matches!(
            b.add_landmarks(1, &[]),
            Err(FingerprintError::DuplicateSong { song: 1 })
        ));
        b.add_landmarks(2, &[]).unwrap();
        let index = b.finish();
        let s = index.stats();
        assert_eq!((s.songs, s.hashes, s.distinct_hashes), (2, 3, 2));
        assert_eq!(s.bytes, 4 * (2 + 2 + 3) + 8 * 3);
        assert_eq!(index.postings(9).len(), 2);
        assert!(index.postings(10).is_empty());
        assert!(index.contains_song(2) && !index.contains_song(3));
        let iterated: Vec<(u32, usize)> = index.iter().map(|(h, p)| (h, p.len())).collect();
        assert_eq!(iterated, vec![(8, 1), (9, 2)]);
    }

    #[test]
    fn silent_and_short_queries_are_unknown_or_errors() {
        let index = toy_index();
        let a = index.query(&vec![0.0; 22_050]).unwrap();
        assert_eq!((a.song, a.ranking.len(), a.query_hashes), (None, 0, 0));
        assert!(matches!(
            index.query(&[]),
            Err(FingerprintError::TooShort { .. })
        ));
    }

    #[test]
    fn save_load_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idx.bin");
        let index = toy_index();
        index.save(&path).unwrap();
        let back = LandmarkIndex::load(&path).unwrap();
        assert_eq!(back.stats(), index.stats());
        assert_eq!(back.params(), index.params());
        assert!(back.iter().eq(index.iter()));

        let bytes = std::fs::read(&path).unwrap();
        let damaged = dir.path().join("damaged.bin");
        // Truncated.
        std::fs::write(&damaged, &bytes[..bytes.len() - 3]).unwrap();
        let err = LandmarkIndex::load(&damaged).unwrap_err();
        assert!(matches!(err, FingerprintError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("damaged.bin"), "{err}");
        // Wrong version.
        let mut v2 = bytes.clone();
        v2[8..12].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(&damaged, &v2).unwrap();
        assert!(matches!(
            LandmarkIndex::load(&damaged),
            Err(FingerprintError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            })
        ));
        // Not an index at all.
        std::fs::write(&damaged, b"RIFF....WAVEfmt ").unwrap();
        assert!(matches!(
            LandmarkIndex::load(&damaged),
            Err(FingerprintError::WrongFormat { .. })
        ));
        // Empty file and a missing file.
        std::fs::write(&damaged, b"").unwrap();
        assert!(matches!(
            LandmarkIndex::load(&damaged),
            Err(FingerprintError::Corrupt { .. })
        ));
        assert!(matches!(
            LandmarkIndex::load(&dir.path().join("missing.bin")),
            Err(FingerprintError::Io { .. })
        ));
        // A flipped key order is caught by the structural checks.
        let mut unsorted = bytes.clone();
        let last = unsorted.len() - 1;
        unsorted[last] ^= 0x80; // last posting's time gets bit 31 set: impossible time
        std::fs::write(&damaged, &unsorted).unwrap();
        let err = LandmarkIndex::load(&damaged).unwrap_err();
        assert!(err.to_string().contains("impossible time"), "{err}");
    }
}
