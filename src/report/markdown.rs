//! The one Markdown table builder every report uses, and the cell formats they share.

use std::fmt;

/// A GitHub-flavoured Markdown table: a header line, the `|---|` rule, one line per row.
///
/// ```
/// use fhe_shazam::report::markdown::Table;
///
/// let mut t = Table::new(["model", "top-1"]);
/// t.row(["float", "97.25 %"]);
/// assert_eq!(t.to_string(), "| model | top-1 |\n|---|---|\n| float | 97.25 % |\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; a row shorter than the header is padded with empty cells.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        if cells.len() < self.header.len() {
            cells.resize(self.header.len(), String::new());
        }
        self.rows.push(cells);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn line(f: &mut fmt::Formatter<'_>, cells: &[String]) -> fmt::Result {
    f.write_str("|")?;
    for c in cells {
        if c.is_empty() {
            f.write_str(" |")?;
        } else {
            write!(f, " {c} |")?;
        }
    }
    f.write_str("\n")
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        line(f, &self.header)?;
        writeln!(f, "|{}", "---|".repeat(self.header.len()))?;
        for r in &self.rows {
            line(f, r)?;
        }
        Ok(())
    }
}

/// A fraction as a percentage with two decimals: 0.9725 → "97.25 %".
pub fn pct(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

/// A number with `digits` decimals, or "-" when absent.
pub fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// A value's Display, or "-" when absent.
pub fn or_dash<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cells_and_short_rows() {
        let mut t = Table::new(["", "a", "b"]);
        t.row(["x"]);
        assert_eq!(t.to_string(), "| | a | b |\n|---|---|---|\n| x | | |\n");
        assert!(!t.is_empty());
    }

    #[test]
    fn cell_formats() {
        assert_eq!(pct(0.5), "50.00 %");
        assert_eq!(opt(Some(1.23456), 2), "1.23");
        assert_eq!(opt(None, 2), "-");
        assert_eq!(or_dash(Some(8)), "8");
        assert_eq!(or_dash::<u32>(None), "-");
    }
}
