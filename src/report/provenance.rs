//! Where a figure came from: machine, commit, time — recorded in every report.

use serde::{Deserialize, Serialize};

/// The machine, build and moment a report was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub commit: String,
    pub toolkit_version: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
    /// UTC, RFC 3339.
    pub date: String,
    pub command: String,
}

impl Provenance {
    /// Reads the machine's description now (Linux /proc; "unknown" elsewhere).
    pub fn collect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
            .unwrap_or(0.0);
        Self {
            commit: env!("FHE_SHAZAM_COMMIT").to_string(),
            toolkit_version: env!("CARGO_PKG_VERSION").to_string(),
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_gib,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            date: utc_now(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }

    /// The two lines every Markdown report ends with: machine, commit, date and command.
    pub fn footer(&self) -> String {
        format!(
            "Machine: {} ({} cores, {} GiB), commit {}, {}.\nCommand: `{}`\n",
            self.cpu, self.cores, self.memory_gib, self.commit, self.date, self.command
        )
    }
}

/// Current UTC time as RFC 3339 (no time-zone crate needed for UTC).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// This process's memory in MiB from `/proc/self/status`: `"VmRSS"` (resident now) or
/// `"VmHWM"` (peak resident so far). `None` where /proc is missing (not Linux).
pub fn memory_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_now_is_rfc3339_shaped() {
        let t = super::utc_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T",
            "{t}"
        );
    }

    #[test]
    fn peak_memory_is_at_least_the_current() {
        if let (Some(now), Some(peak)) = (super::memory_mib("VmRSS"), super::memory_mib("VmHWM")) {
            assert!(now > 0.0 && peak >= now, "rss {now} peak {peak}");
        }
        assert_eq!(super::memory_mib("NoSuchField"), None);
    }

    #[test]
    fn provenance_has_commit_and_cores() {
        let p = super::Provenance::collect();
        assert!(!p.commit.is_empty());
        assert!(p.cores >= 1);
        let footer = p.footer();
        assert!(
            footer.starts_with("Machine: ") && footer.contains(&p.commit),
            "{footer}"
        );
        assert_eq!(footer.lines().count(), 2);
    }
}
