//! Health readings for the dashboard, read from `/proc` and `/sys`.

use std::{path::Path, time::Duration};

/// One reading of the device's health. `None` means the source is absent on
/// this machine (no thermal zone on a VM) or unreadable.
#[derive(Clone, Debug, Default)]
pub struct Health {
    pub hostname: String,
    pub uptime: Option<Duration>,
    /// 1, 5 and 15 minute load averages.
    pub load: Option<[f64; 3]>,
    pub memory: Option<Memory>,
    /// The hottest thermal zone, in °C; on a Pi 4 that is the SoC.
    pub temperature_c: Option<f64>,
    /// Space on the file system holding the data directory.
    pub disk: Option<Usage>,
}

/// Memory in bytes, as the kernel accounts it in `/proc/meminfo`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
}

/// A file system's size and free space, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub total: u64,
    /// Free space an unprivileged writer may use.
    pub available: u64,
}

impl Health {
    /// Reads everything once. Cheap (a handful of small files), but it does
    /// touch the file system, so call it off the async workers.
    pub fn read(data_dir: &Path) -> Health {
        Health {
            hostname: hostname(),
            uptime: read("/proc/uptime").and_then(|s| parse_uptime(&s)),
            load: read("/proc/loadavg").and_then(|s| parse_loadavg(&s)),
            memory: read("/proc/meminfo").and_then(|s| parse_meminfo(&s)),
            temperature_c: temperature(Path::new("/sys/class/thermal")),
            disk: disk_usage(data_dir),
        }
    }
}

impl Memory {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }
}

impl Usage {
    pub fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }
    /// Percentage used, 0 to 100.
    pub fn percent(&self) -> u64 {
        (self.used() * 100).checked_div(self.total).unwrap_or(0)
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The machine's host name, as the kernel reports it.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn parse_uptime(s: &str) -> Option<Duration> {
    let secs: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

fn parse_loadavg(s: &str) -> Option<[f64; 3]> {
    let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn parse_meminfo(s: &str) -> Option<Memory> {
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some(Memory {
        total: field("MemTotal:")?,
        available: field("MemAvailable:")?,
    })
}

/// The highest reading among `thermal_zone*/temp` (millidegrees Celsius).
fn temperature(root: &Path) -> Option<f64> {
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|s| s.trim().parse::<i64>().ok())
        .map(|milli| milli as f64 / 1000.0)
        .reduce(f64::max)
}

fn disk_usage(dir: &Path) -> Option<Usage> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(Usage {
        total: st.f_blocks * st.f_frsize,
        available: st.f_bavail * st.f_frsize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            parse_uptime("12345.67 2000.00\n"),
            Some(Duration::from_secs_f64(12345.67))
        );
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/389 12345\n"),
            Some([0.52, 0.58, 0.59])
        );
        let m = parse_meminfo(
            "MemTotal:        3884412 kB\nMemFree: 1 kB\nMemAvailable:    2000000 kB\n",
        )
        .unwrap();
        assert_eq!(m.total, 3884412 * 1024);
        assert_eq!(m.available, 2000000 * 1024);
        assert!(parse_meminfo("garbage").is_none());
    }

    #[test]
    fn reads_the_hottest_thermal_zone() {
        let dir = tempfile::tempdir().unwrap();
        for (zone, milli) in [("thermal_zone0", "48312\n"), ("thermal_zone1", "51000\n")] {
            std::fs::create_dir(dir.path().join(zone)).unwrap();
            std::fs::write(dir.path().join(zone).join("temp"), milli).unwrap();
        }
        assert_eq!(temperature(dir.path()), Some(51.0));
        assert_eq!(temperature(&dir.path().join("missing")), None);
    }

    #[test]
    fn reads_live_machine() {
        let dir = tempfile::tempdir().unwrap();
        let h = Health::read(dir.path());
        assert!(!h.hostname.is_empty());
        assert!(h.uptime.is_some() && h.memory.is_some() && h.load.is_some());
        let disk = h.disk.unwrap();
        assert!(disk.total > 0 && disk.percent() <= 100);
    }
}
