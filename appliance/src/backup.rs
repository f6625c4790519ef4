//! `hearth backup ...`: the command-line face of the backup engine.

use std::path::PathBuf;

use anyhow::Context;
use hearth_backup::{Repo, VerifyMode};
use hearth_config::Config;
use hearth_jobs::Paths;

use crate::{
    Failure,
    cli::{BackupArgs, BackupCommand, FromArgs, KeyCommand, Where},
};

/// The repository, key and database under the data directory (created if
/// missing), with the database opened once so its migrations have run.
fn paths(config: &Config) -> Result<Paths, Failure> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let p = Paths::under(&config.data_dir);
    // Opening runs the migrations (and refuses a newer schema).
    hearth_store::Store::open(&p.db).map_err(|e| Failure::Runtime(e.into()))?;
    Ok(p)
}

pub(crate) fn run(config: &Config, args: BackupArgs) -> Result<(), Failure> {
    let p = paths(config)?;
    let open = || p.open().map_err(Failure::from);
    match args.command {
        BackupCommand::Init { passphrase_file } => {
            let passphrase = read_passphrase(passphrase_file)?;
            Repo::init(&p.repo, &p.key, &p.db, &passphrase)?;
            println!(
                "Backup repository created at {}.\n\
                 Keep the recovery passphrase safe: with the packs (here or on a paired peer)\n\
                 it is the only way to get your backups back if this device is lost.",
                p.repo.display()
            );
        }
        BackupCommand::Add { path } => {
            let c = hearth_store::open_writer(&p.db).map_err(|e| Failure::Runtime(e.into()))?;
            let path = hearth_backup::add_source(&c, &path, &config.data_dir)?;
            println!("{} will be backed up.", path.display());
        }
        BackupCommand::Run {
            paths: given,
            stage_times,
        } => {
            if stage_times {
                hearth_backup::stages::enable();
            }
            let repo = open()?;
            let sources = if given.is_empty() {
                added_sources(&p.db)?
            } else {
                given
            };
            if sources.is_empty() {
                return Err(Failure::BadInput(
                    "no folders to back up: name one, or add one with 'hearth backup add PATH'"
                        .into(),
                ));
            }
            // With an S3 target, packs start uploading as they are written.
            let beside = crate::target::Beside::start(&p, config);
            for source in sources {
                if !source.is_dir() {
                    return Err(Failure::BadInput(format!(
                        "{} is not a folder",
                        source.display()
                    )));
                }
                let report = repo.backup(&source)?;
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                let s = &report.snapshot;
                if args.json {
                    println!("{}", serde_json::to_string(s).unwrap_or_default());
                } else {
                    println!(
                        "snapshot {} of {}: {} files, {} bytes, {} bytes added, {:.1} s{}",
                        s.id,
                        s.source,
                        s.files,
                        s.bytes,
                        s.added,
                        s.duration_ms as f64 / 1000.0,
                        if report.warnings.is_empty() {
                            String::new()
                        } else {
                            format!(", {} warnings", report.warnings.len())
                        }
                    );
                }
            }
            // --stage-times: where the time went (benches/backup.sh).
            if let Some(stages) = hearth_backup::stages::report() {
                eprint!("{stages}");
            }
            // The backup is done and safe here; a target that cannot take
            // it now gets it later (the server retries), so that is a
            // warning, not a failed backup.
            let sent = beside.finish();
            if let Err(e) = crate::target::upload(&p, config, false, sent) {
                let why = match e {
                    Failure::BadInput(m) => m,
                    Failure::Runtime(e) => format!("{e:#}"),
                    Failure::Restart => String::new(),
                };
                eprintln!(
                    "warning: the backup is safe on this device; uploading it is left for later: {why}"
                );
            }
        }
        BackupCommand::List { from } => {
            let snaps = match from_bucket(&p, config, from)? {
                Some(bucket) => {
                    let snaps = bucket.snapshots()?;
                    crate::target::say_fetched(&bucket);
                    snaps
                }
                None => open()?.snapshots()?,
            };
            print_snapshots(snaps, args.json);
        }
        BackupCommand::Ls { snapshot, path } => {
            let repo = open()?;
            let snap = repo.pick(snapshot)?;
            let tree = repo.tree_at(&snap, &path)?;
            if args.json {
                println!("{}", serde_json::to_string(&tree).unwrap_or_default());
            } else {
                for node in &tree.entries {
                    let (kind, size) = match &node.kind {
                        hearth_backup::NodeKind::Dir { .. } => ("dir", String::new()),
                        hearth_backup::NodeKind::File { size, .. } => ("file", size.to_string()),
                        hearth_backup::NodeKind::Symlink { .. } => ("link", String::new()),
                        hearth_backup::NodeKind::Hardlink { .. } => ("hard", String::new()),
                    };
                    println!(
                        "{kind:<4} {:>12} {:o} {}",
                        size,
                        node.mode,
                        node.display_name()
                    );
                }
            }
        }
        BackupCommand::Restore {
            snapshot,
            target,
            path,
            from,
        } => {
            let report = match from_bucket(&p, config, from)? {
                Some(bucket) => {
                    let progress = hearth_backup::Progress::default();
                    let restored = bucket.restore(snapshot, &path, &target, &progress);
                    crate::target::say_fetched(&bucket);
                    restored?
                }
                None => {
                    let repo = open()?;
                    let snap = repo.pick(snapshot)?;
                    repo.restore(&snap, &path, &target)?
                }
            };
            println!(
                "restored {} files, {} bytes into {}",
                report.files,
                report.bytes,
                target.display()
            );
            if !report.errors.is_empty() {
                for e in &report.errors {
                    eprintln!("error: {e}");
                }
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "{} entries could not be restored",
                    report.errors.len()
                )));
            }
        }
        BackupCommand::Verify {
            target,
            read_data,
            sample,
        } => {
            let mode = match (read_data, sample) {
                (true, _) => VerifyMode::ReadData,
                (_, Some(pct)) => VerifyMode::Sample(pct),
                _ => VerifyMode::Structure,
            };
            if target == Where::S3 {
                return crate::target::verify(&p, mode, args.json);
            }
            let report = open()?.verify(mode)?;
            if args.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                println!("checked {} of {} packs", report.checked, report.packs);
                for d in &report.damage {
                    println!("pack {}: {}", d.pack, d.reason);
                    for (snap, path) in &d.affected {
                        println!("  affects snapshot {snap}: {path}");
                    }
                }
            }
            if !report.damage.is_empty() {
                // Where a good copy may be, the way to it.
                let hint = match hearth_backup::remote::target(&p.db) {
                    Ok(Some(_)) => {
                        "; the S3 target may hold good copies: 'hearth backup repair-index --from s3' fetches them"
                    }
                    _ => "",
                };
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "{} damaged or missing packs{hint}",
                    report.damage.len()
                )));
            }
        }
        BackupCommand::Forget {
            ids,
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            dry_run,
            prune,
        } => {
            let repo = open()?;
            if ids.is_empty() {
                let c = hearth_store::open_reader(&p.db).map_err(|e| Failure::Runtime(e.into()))?;
                let saved = hearth_backup::Settings::load(&c)?.retention;
                let policy = hearth_backup::Retention {
                    last: keep_last.unwrap_or(saved.last),
                    daily: keep_daily.unwrap_or(saved.daily),
                    weekly: keep_weekly.unwrap_or(saved.weekly),
                    monthly: keep_monthly.unwrap_or(saved.monthly),
                };
                let decisions = repo.forget(&policy, dry_run)?;
                if args.json {
                    println!("{}", serde_json::to_string(&decisions).unwrap_or_default());
                } else {
                    println!("Policy: {policy}.");
                    for d in &decisions {
                        println!(
                            "{} snapshot {} of {} ({}){}",
                            match (d.keep, dry_run) {
                                (true, _) => "keep  ",
                                (false, true) => "would forget",
                                (false, false) => "forgot",
                            },
                            d.snapshot.id,
                            d.snapshot.source,
                            crate::time_text(d.snapshot.time),
                            if d.keep {
                                format!(": {}", d.reasons.join(", "))
                            } else {
                                String::new()
                            }
                        );
                    }
                }
            } else if dry_run {
                return Err(Failure::BadInput(
                    "--dry-run applies to the policy, not to snapshot ids".into(),
                ));
            } else {
                repo.forget_ids(&ids)?;
                if !args.json {
                    println!("Forgot {} snapshots.", ids.len());
                }
            }
            if prune && !dry_run {
                print_prune(&repo.prune()?, args.json);
            }
        }
        BackupCommand::Prune => print_prune(&open()?.prune()?, args.json),
        BackupCommand::RepairIndex {
            recover_key,
            passphrase_file,
            from,
            repo_id,
        } => {
            let report = if from == Where::S3 && recover_key {
                let passphrase = read_passphrase(passphrase_file)?;
                crate::target::recover(&p, repo_id.as_deref(), &passphrase, args.json)?
            } else if from == Where::S3 {
                crate::target::heal(&p, &open()?, args.json)?
            } else if recover_key {
                let passphrase = read_passphrase(passphrase_file)?;
                Repo::recover_key(&p.repo, &p.key, &p.db, &passphrase)?.repair_index()?
            } else {
                open()?.repair_index()?
            };
            if args.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                println!(
                    "Rebuilt the index from {} packs: {} chunks, {} trees, {} snapshots.",
                    report.packs, report.chunks, report.trees, report.snapshots
                );
                for (pack, why) in &report.damaged {
                    println!("left out pack {pack}: {why}");
                }
            }
            if !report.damaged.is_empty() {
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "{} packs could not be used",
                    report.damaged.len()
                )));
            }
        }
        BackupCommand::Target(command) => crate::target::run(&p, config, command, args.json)?,
        BackupCommand::Key(KeyCommand::Export) => {
            use age::secrecy::ExposeSecret;
            print!("{}", open()?.keys().to_identity_file().expose_secret());
        }
    }
    Ok(())
}

fn print_prune(r: &hearth_backup::PruneReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "Pruned: {} packs deleted ({} rewritten into {} new), {} chunks dropped, {} bytes freed.",
        r.packs_deleted, r.packs_rewritten, r.packs_written, r.chunks_dropped, r.bytes_freed
    );
    for p in &r.skipped {
        println!(
            "left pack {p} alone: it could not be read; run 'hearth backup verify --read-data'"
        );
    }
}

fn added_sources(db: &std::path::Path) -> Result<Vec<PathBuf>, Failure> {
    let c = hearth_store::open_reader(db).map_err(|e| Failure::Runtime(e.into()))?;
    Ok(hearth_backup::sources(&c)?)
}

fn read_passphrase(file: Option<PathBuf>) -> Result<String, Failure> {
    crate::read_first_line(
        file,
        &format!(
            "Recovery passphrase (at least {} characters):",
            hearth_backup::MIN_PASSPHRASE_LEN
        ),
    )
}

/// For `--from s3`, the bucket's repository opened where it lies (this
/// device's key, or the recovery passphrase when the key is not here or a
/// file is given); `None` for the repository here, where the bucket's own
/// options are refused rather than ignored.
fn from_bucket(
    p: &Paths,
    config: &Config,
    from: FromArgs,
) -> Result<Option<hearth_backup::remote::Bucket>, Failure> {
    if from.from != Where::S3 {
        if from.passphrase_file.is_some() || from.repo_id.is_some() {
            return Err(Failure::BadInput(
                "--passphrase-file and --repo-id go with --from s3".into(),
            ));
        }
        return Ok(None);
    }
    let passphrase = match from.passphrase_file {
        None if p.key.exists() => None,
        file => Some(read_passphrase(file)?),
    };
    let scratch = config.data_dir.join("restore-from-s3");
    crate::target::open_bucket(p, &scratch, passphrase.as_deref(), from.repo_id.as_deref())
        .map(Some)
}

/// The snapshot table of `list`, or its JSON.
fn print_snapshots(snaps: Vec<hearth_backup::Snapshot>, json: bool) {
    if json {
        println!("{}", serde_json::to_string(&snaps).unwrap_or_default());
    } else if snaps.is_empty() {
        println!("No snapshots yet.");
    } else {
        println!(
            "{:>4}  {:<20}  {:>7}  {:>12}  {:>12}  source",
            "id", "time (UTC)", "files", "bytes", "added"
        );
        for s in snaps {
            println!(
                "{:>4}  {:<20}  {:>7}  {:>12}  {:>12}  {}",
                s.id,
                crate::time_text(s.time),
                s.files,
                s.bytes,
                s.added,
                s.source
            );
        }
    }
}
