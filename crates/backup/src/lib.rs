//! Hearth's backup engine.
//!
//! A repository is a directory of age-encrypted packs plus `key.age`; the
//! index and snapshot catalogue live in Hearth's SQLite database. Every
//! snapshot backs up one folder. The write order is what keeps data safe:
//! a pack is written, fsynced, verified and renamed before any index row
//! names it, and a snapshot row is written only after every pack it needs
//! is durable. An interrupted run therefore leaves at most packs that
//! nothing references.
//!
//! The format is specified in `docs/backup-format.md`.

mod cdc;
mod chunks;
mod compress;
mod error;
mod export;
#[doc(hidden)]
pub mod fuzzing;
mod key;
mod known;
mod pack;
mod parallel;
mod prune;
pub mod remote;
mod repair;
mod repo;
mod restore;
mod retention;
mod run;
mod settings;
mod source;
mod sources;
pub mod stages;
mod summary;
mod tree;
mod verify;
mod walk;

pub use error::BackupError;
pub use export::Archive;
pub use key::{Keys, MIN_PASSPHRASE_LEN};
pub use pack::pack_path;
pub use prune::PruneReport;
pub use repair::RepairReport;
pub use repo::{Repo, Snapshot, Which};
pub use restore::{Progress, RestoreReport};
pub use retention::{Decision, Retention};
pub use run::RunReport;
pub use settings::Settings;
pub use sources::{add_source, remove_source, sources};
pub use summary::{Summary, summary};
pub use tree::{Node, NodeKind, Tree};
pub use verify::{Damage, VerifyMode, VerifyReport};
pub use walk::is_temporary;

/// FastCDC sizes: 512 KiB minimum, 2 MiB average, 8 MiB maximum.
pub const CHUNK_MIN: usize = 512 * 1024;
pub const CHUNK_AVG: usize = 2 * 1024 * 1024;
pub const CHUNK_MAX: usize = 8 * 1024 * 1024;
/// zstd level 2: a Pi's backup is CPU-bound, and on the benchmark's text
/// level 2 compressed to within 1% of level 3's size at 1.35x its speed
/// (`zstd -b1 -e3`: 120 vs 90 MB/s, ratio 2.72 vs 2.74); level 1 lost 18%
/// of the ratio. Decompression does not depend on the level.
pub const ZSTD_LEVEL: i32 = 2;
