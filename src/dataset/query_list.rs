//! A list of query recordings that any user can write: a CSV with the columns
//! `path,track_id[,condition]`, one recording per row. `path` is the audio file (relative paths
//! are taken from the CSV's folder), `track_id` the song it really is (a track id outside a
//! model's catalogue makes it an impostor query, which should be answered "unknown") and
//! `condition` a free label the results are grouped by (default `recorded`). `queries` writes
//! one beside every query set (`query_list.csv`), so generated and recorded queries are
//! evaluated the same way.

use crate::error::DatasetError;
use crate::fsutil;
use std::path::{Path, PathBuf};

/// The list `fhe-shazam queries` writes into each query set folder.
pub const QUERY_LIST_FILE: &str = "query_list.csv";
/// The condition of rows that name none.
pub const DEFAULT_CONDITION: &str = "recorded";

const COLUMNS: [&str; 3] = ["path", "track_id", "condition"];

/// One listed recording.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedQuery {
    /// The audio file, resolved against the CSV's folder.
    pub path: PathBuf,
    pub track_id: String,
    pub condition: String,
}

/// Reads a query list, checking its columns, that it has rows, and that every file exists.
pub fn read_query_list(csv_path: &Path) -> Result<Vec<ListedQuery>, DatasetError> {
    let bad = |reason: String| DatasetError::QueryList {
        path: csv_path.to_path_buf(),
        reason,
    };
    let mut reader = csv::Reader::from_path(csv_path).map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if let Some(unknown) = header.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return Err(bad(format!(
            "unknown column {unknown:?}: the columns are path, track_id and (optional) condition"
        )));
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let (Some(path_col), Some(track_col)) = (column("path"), column("track_id")) else {
        return Err(bad(format!(
            "the header {:?} lacks path or track_id (columns: path,track_id[,condition])",
            header.join(",")
        )));
    };
    let condition_col = column("condition");
    let base = csv_path.parent().unwrap_or(Path::new("."));
    let mut list = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let record = record.map_err(|e| bad(format!("line {line}: {e}")))?;
        let field = |c: usize| record.get(c).unwrap_or("").trim();
        let (file, track_id) = (field(path_col), field(track_col));
        if file.is_empty() || track_id.is_empty() {
            return Err(bad(format!(
                "line {line}: path and track_id must not be empty"
            )));
        }
        let path = base.join(file);
        if !path.is_file() {
            return Err(bad(format!(
                "line {line}: recording {} does not exist",
                path.display()
            )));
        }
        let condition = condition_col
            .map(field)
            .filter(|c| !c.is_empty())
            .unwrap_or(DEFAULT_CONDITION);
        list.push(ListedQuery {
            path,
            track_id: track_id.to_string(),
            condition: condition.to_string(),
        });
    }
    if list.is_empty() {
        return Err(bad("no queries: the list has a header but no rows".into()));
    }
    Ok(list)
}

/// Writes `rows` (file relative to the CSV's folder, track id, condition) as a query list,
/// atomically.
pub fn write_query_list<'a>(
    csv_path: &Path,
    rows: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
) -> Result<(), DatasetError> {
    fsutil::write_atomic_with(csv_path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(COLUMNS)?;
        for (file, track_id, condition) in rows {
            csv.write_record([file, track_id, condition])?;
        }
        csv.flush()
    })
    .map_err(|source| DatasetError::Io {
        path: csv_path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(dir: &Path, text: &str) -> Result<Vec<ListedQuery>, String> {
        let csv = dir.join("list.csv");
        std::fs::write(&csv, text).unwrap();
        read_query_list(&csv).map_err(|e| e.to_string())
    }

    #[test]
    fn written_lists_read_back_and_the_condition_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("phone")).unwrap();
        std::fs::write(dir.path().join("phone/000002.wav"), b"x").unwrap();
        std::fs::write(dir.path().join("mine.wav"), b"x").unwrap();
        let csv = dir.path().join(QUERY_LIST_FILE);
        write_query_list(&csv, [("phone/000002.wav", "000002", "phone")]).unwrap();
        let read = read_query_list(&csv).unwrap();
        assert_eq!(
            read,
            vec![ListedQuery {
                path: dir.path().join("phone/000002.wav"),
                track_id: "000002".into(),
                condition: "phone".into(),
            }]
        );
        let mine = list(dir.path(), "path,track_id\nmine.wav,999999\n").unwrap();
        assert_eq!(mine[0].condition, DEFAULT_CONDITION);
        assert_eq!(mine[0].track_id, "999999");
    }

    #[test]
    fn missing_files_unknown_columns_and_empty_lists_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.wav"), b"x").unwrap();
        let err = list(dir.path(), "path,track_id\na.wav,1\nb.wav,2\n").unwrap_err();
        assert!(
            err.contains("list.csv") && err.contains("line 3") && err.contains("b.wav"),
            "{err}"
        );
        let err = list(dir.path(), "path,track_id,speaker\na.wav,1,me\n").unwrap_err();
        assert!(err.contains("unknown column \"speaker\""), "{err}");
        let err = list(dir.path(), "path,condition\na.wav,x\n").unwrap_err();
        assert!(err.contains("lacks path or track_id"), "{err}");
        let err = list(dir.path(), "path,track_id\n").unwrap_err();
        assert!(err.contains("no queries"), "{err}");
        let err = list(dir.path(), "").unwrap_err();
        assert!(err.contains("list.csv"), "{err}");
        let err = list(dir.path(), "path,track_id\na.wav,\n").unwrap_err();
        assert!(err.contains("line 2") && err.contains("empty"), "{err}");
    }
}
