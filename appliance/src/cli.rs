//! The command line. Usage errors print one line and exit with status 2,
//! like a bad configuration does.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use hearth_backup::Which;

/// Hearth: a home server for a Raspberry Pi. Encrypted backups, a local
/// board for the hotspot and an admin panel, in one binary.
#[derive(Debug, Parser)]
#[command(name = "hearth", version)]
pub struct Cli {
    /// Read this configuration file instead of /etc/hearth/hearth.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web panel and background services until stopped.
    Serve(ServeArgs),
    /// Print the documented default configuration file.
    Config,
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Encrypted, deduplicated backups of folders.
    Backup(BackupArgs),
    /// Signed offline updates: check a bundle, install it, or show the state.
    Update(UpdateArgs),
    /// List the Hearths announcing themselves on the local networks (mDNS),
    /// as Peers -> Join a device does.
    Discover {
        /// How long to listen, in seconds.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Use the state in DIR (overrides `data_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    pub data: Option<PathBuf>,
    /// Print machine-readable JSON instead of text, where offered.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: BackupCommand,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Create the repository and its key, sealed under a recovery passphrase.
    Init {
        /// Read the recovery passphrase from FILE (first line) instead of stdin.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Add a folder to the automatic backups.
    Add { path: PathBuf },
    /// Back up the given folders, or every added folder.
    Run {
        paths: Vec<PathBuf>,
        /// Print on stderr where the run's time went, stage by stage (for
        /// benchmarks and profiling).
        #[arg(long)]
        stage_times: bool,
    },
    /// List snapshots.
    List {
        #[command(flatten)]
        from: FromArgs,
    },
    /// List a folder inside a snapshot.
    Ls {
        /// A number from `list`, or latest.
        snapshot: Which,
        #[arg(default_value = "")]
        path: String,
    },
    /// Restore a snapshot, or one path in it, into a folder.
    Restore {
        /// A number from `list`, or latest (the newest, of any folder).
        snapshot: Which,
        /// Where to restore to; the snapshot's own folder restores in place.
        #[arg(long, value_name = "DIR")]
        target: PathBuf,
        /// Only this file or folder, relative to the snapshot's folder.
        #[arg(long, default_value = "")]
        path: String,
        #[command(flatten)]
        from: FromArgs,
    },
    /// Check the repository: pack presence, or every byte with --read-data.
    Verify {
        /// What to check: this device's packs, or the S3 target's copy.
        #[arg(long, value_enum, default_value = "local")]
        target: Where,
        /// Decrypt every pack and check every chunk's hash.
        #[arg(long, conflicts_with = "sample")]
        read_data: bool,
        /// Check this percentage of packs, least recently checked first.
        #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(1..=100))]
        sample: Option<u8>,
    },
    /// Forget snapshots by id, or by the retention policy (the one saved
    /// in the admin panel, unless --keep-* flags are given).
    Forget {
        /// Snapshot ids to forget; none means apply the policy.
        ids: Vec<i64>,
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        #[arg(long, value_name = "N")]
        keep_daily: Option<u32>,
        #[arg(long, value_name = "N")]
        keep_weekly: Option<u32>,
        #[arg(long, value_name = "N")]
        keep_monthly: Option<u32>,
        /// Only say what would be forgotten.
        #[arg(long)]
        dry_run: bool,
        /// Prune straight after.
        #[arg(long)]
        prune: bool,
    },
    /// Delete the packs no snapshot needs any more (two phases; safe to kill).
    Prune,
    /// Rebuild the index and snapshot list from the packs and the key.
    RepairIndex {
        /// The device key is lost: unseal the repository's key.age with the
        /// recovery passphrase (read from FILE, or asked for).
        #[arg(long)]
        recover_key: bool,
        #[arg(long, value_name = "FILE", requires = "recover_key")]
        passphrase_file: Option<PathBuf>,
        /// Fetch packs from the S3 target first. With --recover-key, the
        /// whole repository into an empty data folder (disaster recovery:
        /// set the target with 'hearth backup target set', then this);
        /// without it, only the packs missing or damaged here.
        #[arg(long, value_enum, default_value = "local")]
        from: Where,
        /// Which repository in the bucket, when it holds several.
        #[arg(long, value_name = "ID", requires = "from")]
        repo_id: Option<String>,
    },
    /// The S3 target: a copy of every pack in a bucket (Garage, or any S3
    /// service).
    #[command(subcommand)]
    Target(TargetCommand),
    /// Key management.
    #[command(subcommand)]
    Key(KeyCommand),
}

/// Where `list` and `restore` read the repository: here, or the S3
/// target's bucket where it lies.
#[derive(Debug, clap::Args)]
pub struct FromArgs {
    /// Read the packs where they lie: here, or in the S3 target's bucket
    /// (nothing is copied down; snapshots are numbered as the bucket's
    /// packs list them, oldest first).
    #[arg(long, value_enum, default_value = "local")]
    pub from: Where,
    /// With --from s3 on a device without this repository's key: the
    /// recovery passphrase, read from FILE (asked for if not given).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// With --from s3: which repository in the bucket, when it holds several.
    #[arg(long, value_name = "ID")]
    pub repo_id: Option<String>,
}

/// Which copy of the repository a command works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Where {
    Local,
    S3,
}

#[derive(Debug, Subcommand)]
pub enum TargetCommand {
    /// Save the S3 target, after testing it (nothing is saved if the test
    /// fails). The secret key is read from FILE or stdin, never a flag.
    Set {
        /// http://host:port or https://host (a LAN Garage: http://HOST:3900).
        #[arg(long)]
        endpoint: String,
        #[arg(long, default_value = hearth_backup::remote::DEFAULT_REGION)]
        region: String,
        #[arg(long)]
        bucket: String,
        #[arg(long, value_name = "ID")]
        access_key: String,
        /// Read the secret key from FILE (first line) instead of stdin.
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// Also trust the CA certificate(s) in FILE (PEM) for this target:
        /// an https endpoint whose certificate a CA of its own signed.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Show the target (never the secret) and where its uploads stand.
    Show,
    /// Test the saved target: write, read back and delete a small object.
    Test,
    /// Forget the target and its secret here; the bucket is left as it is.
    Clear,
    /// Upload every pack the target does not have yet, now.
    Upload,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print the repository key: an age identity file that decrypts every pack.
    Export,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Use the state in DIR (overrides `data_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    pub data: Option<PathBuf>,
    #[command(subcommand)]
    pub command: UpdateCommand,
}

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Check an update file completely (signature, machine, version, space,
    /// every byte) and keep nothing.
    Check {
        file: PathBuf,
        /// Accept a version that is not newer than the running one.
        #[arg(long)]
        allow_older: bool,
    },
    /// Check and stage an update, and switch to it at the next start
    /// (`systemctl restart hearth`); it rolls back by itself if unhealthy.
    Install {
        file: PathBuf,
        /// Accept a version that is not newer than the running one.
        #[arg(long)]
        allow_older: bool,
    },
    /// The running version, a staged update, and how the last one went.
    Status,
    /// For the unit's ExecStopPost: record how the service stopped, so a
    /// failed update's rollback can say why.
    #[command(hide = true)]
    RecordExit,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Keep state in DIR for this run (overrides `data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Listen on ADDR for this run, e.g. 127.0.0.1:0 (overrides `listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Test-only: run with a simulated clock this many seconds away from the
    /// system clock, which "set the clock" then moves instead of the real
    /// one. Kept out of the user's configuration on purpose.
    #[arg(long, hide = true, value_name = "SECONDS", allow_hyphen_values = true)]
    pub simulate_clock_offset: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Write a consistent copy of the database to FILE (VACUUM INTO).
    Backup {
        /// The new file to write; it must not exist yet.
        file: PathBuf,
        /// Use the database in DIR (overrides `data_dir`).
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
    },
}

/// Parses the process arguments. Help and version print and exit 0; any
/// other problem prints one line and yields exit status 2.
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
        if matches!(
            e.kind(),
            DisplayHelp
                | DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            let _ = e.print();
            return if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("invalid arguments");
        eprintln!(
            "hearth: {}; see 'hearth --help'",
            first.trim_start_matches("error: ")
        );
        ExitCode::from(2)
    })
}
