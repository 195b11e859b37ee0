//! Atomic file output: every file the toolkit writes goes through here, so an interrupted
//! or failed run leaves either the old file or the new one, never half of one. Outputs made
//! of several files (feature stores, query sets) are written into a [`Staging`] folder and
//! moved into place only when all of them are complete.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary sibling a file is written to before the rename (same directory, so the
/// rename is atomic on POSIX file systems).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes a file atomically: `write` fills a buffered temporary file, which is flushed,
/// synced and renamed over `path`. Parent directories are created. On error the
/// temporary file is removed and `path` is untouched.
pub fn write_atomic_with<F>(path: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> io::Result<()>,
{
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Serialises `value` as pretty JSON to `path` atomically, straight into the file (a large
/// sidecar never sits in memory as text).
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    write_atomic_with(path, |w| {
        serde_json::to_writer_pretty(w, value).map_err(io::Error::other)
    })
}

/// What went wrong reading `path`, in plain words: "broken symbolic link", "permission
/// denied", "no such file", else the OS message.
pub fn explain(path: &Path, err: &io::Error) -> String {
    let dangling = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
        && fs::metadata(path).is_err();
    if dangling {
        let target = fs::read_link(path).map(|t| format!(" (to {})", t.display()));
        return format!("broken symbolic link{}", target.unwrap_or_default());
    }
    match err.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotFound => "no such file".into(),
        _ => err.to_string(),
    }
}

/// A hidden folder inside an output folder where a multi-file output is written first.
/// [`Staging::commit`] moves its entries over the old ones; dropped without a commit (an error
/// anywhere before), it is removed and the output folder keeps what it held.
#[derive(Debug)]
pub struct Staging {
    out: PathBuf,
    dir: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates `out` (if needed) and an empty staging folder inside it.
    pub fn new(out: &Path) -> io::Result<Self> {
        fs::create_dir_all(out)?;
        let dir = out.join(format!(".staging-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir(&dir)?;
        Ok(Self {
            out: out.to_path_buf(),
            dir,
            committed: false,
        })
    }

    /// Where to write the new output.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves every entry of the staging folder into the output folder, replacing entries of
    /// the same name. `marker` (the file that says the output is complete, e.g. a sidecar or
    /// manifest) is removed first and moved last, so an interruption in between leaves an
    /// output that reads as incomplete, never as the old description of new data.
    pub fn commit(mut self, marker: &str) -> io::Result<()> {
        remove_entry(&self.out.join(marker))?;
        let mut names: Vec<_> = fs::read_dir(&self.dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        names.retain(|n| n != marker);
        for name in names {
            let target = self.out.join(&name);
            remove_entry(&target)?;
            fs::rename(self.dir.join(&name), target)?;
        }
        let staged_marker = self.dir.join(marker);
        if staged_marker.exists() {
            fs::rename(staged_marker, self.out.join(marker))?;
        }
        self.committed = true;
        fs::remove_dir(&self.dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Removes a file or folder at `path`, if there is one.
fn remove_entry(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.csv");
        write_atomic(&path, b"old").unwrap();
        let err = write_atomic_with(&path, |w| {
            w.write_all(b"half a rep")?;
            Err(io::Error::other("interrupted"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");
    }

    #[test]
    fn creates_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/c.json");
        write_json_atomic(&path, &vec![1, 2, 3]).unwrap();
        assert_eq!(
            fs::read_to_string(&path)
                .unwrap()
                .split_whitespace()
                .count(),
            5
        );
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn staging_replaces_on_commit_and_leaves_everything_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("set");
        fs::create_dir_all(out.join("noise10")).unwrap();
        fs::write(out.join("noise10/a.wav"), b"old").unwrap();
        fs::write(out.join("manifest.json"), b"old").unwrap();
        fs::write(out.join("keep.txt"), b"other").unwrap();

        let failed = Staging::new(&out).unwrap();
        fs::write(failed.path().join("manifest.json"), b"half").unwrap();
        drop(failed);
        assert_eq!(listing(&out), ["keep.txt", "manifest.json", "noise10"]);
        assert_eq!(fs::read(out.join("manifest.json")).unwrap(), b"old");

        let staging = Staging::new(&out).unwrap();
        fs::create_dir(staging.path().join("noise10")).unwrap();
        fs::write(staging.path().join("noise10/b.wav"), b"new").unwrap();
        fs::write(staging.path().join("manifest.json"), b"new").unwrap();
        staging.commit("manifest.json").unwrap();
        assert_eq!(listing(&out), ["keep.txt", "manifest.json", "noise10"]);
        assert_eq!(listing(&out.join("noise10")), ["b.wav"]);
        assert_eq!(fs::read(out.join("manifest.json")).unwrap(), b"new");
        assert_eq!(fs::read(out.join("keep.txt")).unwrap(), b"other");
    }
}
