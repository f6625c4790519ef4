//! Which snapshots to keep: "keep 7 daily, 4 weekly, 12 monthly".
//!
//! The rule is restic's and borg's, so it surprises nobody: walking each
//! folder's snapshots from newest to oldest, a snapshot is kept when it is
//! the newest one of a day (week, month) that has not yet had one kept,
//! until that many days (weeks, months) are covered. The newest snapshot of
//! every folder is always kept. Days are UTC days: a Pi without a network
//! may not know its time zone, and UTC never repeats an hour.

use serde::{Deserialize, Serialize};

use crate::Snapshot;

/// How many snapshots of each kind to keep, per folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// The newest N, whatever their age (at least 1 is always kept).
    pub last: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl Default for Retention {
    /// A year of history at a few dozen snapshots per folder.
    fn default() -> Self {
        Retention {
            last: 1,
            daily: 7,
            weekly: 4,
            monthly: 12,
        }
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "keep the last {}, {} daily, {} weekly, {} monthly",
            self.last.max(1),
            self.daily,
            self.weekly,
            self.monthly
        )
    }
}

/// One snapshot's fate, with the rules that kept it.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub snapshot: Snapshot,
    pub keep: bool,
    pub reasons: Vec<&'static str>,
}

/// The UTC day, Monday-based week and month of a time, as bucket numbers.
fn buckets(time: i64) -> [i64; 3] {
    let day = time.div_euclid(86_400);
    // Day 0 (1970-01-01) was a Thursday; shifting by 3 starts weeks Monday.
    let week = (day + 3).div_euclid(7);
    let month = time::OffsetDateTime::from_unix_timestamp(time)
        .map(|t| i64::from(t.year()) * 12 + i64::from(t.month() as u8))
        .unwrap_or(i64::MIN);
    [day, week, month]
}

impl Retention {
    /// Decides for every snapshot; the result is newest first per folder.
    pub fn apply(&self, snapshots: &[Snapshot]) -> Vec<Decision> {
        let mut by_source: std::collections::BTreeMap<&str, Vec<&Snapshot>> = Default::default();
        for s in snapshots {
            by_source.entry(&s.source).or_default().push(s);
        }
        let mut out = vec![];
        for (_, mut snaps) in by_source {
            snaps.sort_by_key(|s| std::cmp::Reverse((s.time, s.id)));
            let limits = [self.daily, self.weekly, self.monthly];
            let names = ["daily", "weekly", "monthly"];
            let mut last_bucket = [None::<i64>; 3];
            let mut used = [0u32; 3];
            for (i, s) in snaps.into_iter().enumerate() {
                let mut reasons = vec![];
                if i < self.last.max(1) as usize {
                    reasons.push("last");
                }
                for (k, b) in buckets(s.time).into_iter().enumerate() {
                    if used[k] < limits[k] && last_bucket[k] != Some(b) {
                        last_bucket[k] = Some(b);
                        used[k] += 1;
                        reasons.push(names[k]);
                    }
                }
                out.push(Decision {
                    snapshot: s.clone(),
                    keep: !reasons.is_empty(),
                    reasons,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: i64, source: &str, time: i64) -> Snapshot {
        Snapshot {
            id,
            source: source.into(),
            time,
            root: String::new(),
            files: 0,
            bytes: 0,
            added: 0,
            duration_ms: 0,
        }
    }

    #[test]
    fn hourly_snapshots_for_a_year_thin_to_the_policy() {
        // 2026-01-01T00:00Z, hourly for 400 days.
        let start = 1_767_225_600;
        let snaps: Vec<_> = (0..400 * 24)
            .map(|h| snap(h, "/f", start + h * 3600))
            .collect();
        let decisions = Retention::default().apply(&snaps);
        let kept: Vec<_> = decisions.iter().filter(|d| d.keep).collect();
        // 7 days; weekly and monthly overlap the newest ones.
        assert!(kept.len() <= 1 + 7 + 4 + 12, "kept {}", kept.len());
        assert!(kept.len() >= 12, "kept {}", kept.len());
        assert_eq!(decisions[0].snapshot.id, 400 * 24 - 1, "newest first");
        assert!(decisions[0].keep);
        // Each kept daily one is the last of its UTC day.
        for d in kept.iter().filter(|d| d.reasons.contains(&"daily")) {
            assert_eq!((d.snapshot.time - start) % 86_400, 23 * 3600);
        }
        // Monthly ones are 12 distinct months.
        let months: std::collections::HashSet<_> = kept
            .iter()
            .filter(|d| d.reasons.contains(&"monthly"))
            .map(|d| buckets(d.snapshot.time)[2])
            .collect();
        assert_eq!(months.len(), 12);
    }

    #[test]
    fn each_folder_keeps_its_newest_even_with_a_zero_policy() {
        let none = Retention {
            last: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        let snaps = [snap(1, "/a", 10), snap(2, "/b", 20), snap(3, "/a", 30)];
        let kept: Vec<i64> = none
            .apply(&snaps)
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| d.snapshot.id)
            .collect();
        assert_eq!(kept, vec![3, 2]);
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-22 is a Sunday, 2026-11-23 a Monday.
        let sunday = 1_795_305_600;
        assert_eq!(buckets(sunday)[1], buckets(sunday - 6 * 86_400)[1]);
        assert_ne!(buckets(sunday)[1], buckets(sunday + 86_400)[1]);
    }
}
