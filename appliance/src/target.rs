//! `hearth backup target ...`, `verify --target s3` and recovery from the
//! bucket: the command-line face of the S3 target (docs/scale-out.md).

use std::path::PathBuf;
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use hearth_backup::{
    RepairReport, VerifyMode,
    remote::{self, Client, RemoteError, Target, UploadReport},
};
use hearth_config::Config;
use hearth_jobs::Paths;

use crate::{Failure, cli::TargetCommand};

impl From<RemoteError> for Failure {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::Backup(b) => b.into(),
            RemoteError::S3(s) => Failure::Runtime(anyhow::anyhow!("the S3 target: {s}")),
        }
    }
}

pub(crate) fn run(
    p: &Paths,
    config: &Config,
    command: TargetCommand,
    json: bool,
) -> Result<(), Failure> {
    match command {
        TargetCommand::Set {
            endpoint,
            region,
            bucket,
            access_key,
            secret_file,
            ca_file,
        } => {
            let secret = read_secret(secret_file)?;
            let target = Target {
                endpoint,
                region,
                bucket,
                access_key,
                ca: ca_file
                    .map(|f| read_ca(&f))
                    .transpose()?
                    .unwrap_or_default(),
            };
            remote::set_target(&p.db, &p.s3_secret, &target, &secret)
                .map_err(|e| Failure::BadInput(format!("the S3 target was not saved: {e}")))?;
            println!(
                "S3 target saved: bucket {} at {}. Connection tested (write, read, delete).",
                target.bucket, target.endpoint
            );
        }
        TargetCommand::Show => {
            let status = remote::status(&p.db)?;
            if json {
                println!("{}", serde_json::to_string(&status).unwrap_or_default());
                return Ok(());
            }
            let Some(s) = status else {
                println!("No S3 target: backups stay on this device (and its paired peers).");
                return Ok(());
            };
            println!("endpoint:    {}", s.endpoint);
            println!("region:      {}", s.region);
            println!("bucket:      {}", s.bucket);
            println!("access key:  {}", s.access_key);
            println!("secret key:  (saved, not shown)");
            if !s.ca.is_empty() {
                println!("trusts:      the system's CAs and the one given with --ca-file");
            }
            println!(
                "stored:      {} packs, {} bytes",
                s.packs_stored, s.bytes_stored
            );
            println!(
                "waiting:     {} packs, {} bytes",
                s.packs_waiting, s.bytes_waiting
            );
            println!("last upload: {}", when(s.last_upload));
            println!("last check:  {}", when(s.last_check));
            if s.failing_since != 0 {
                println!("failing since {}: {}", when(s.failing_since), s.last_error);
            }
        }
        TargetCommand::Test => {
            saved(p)?.test().map_err(|e| {
                Failure::Runtime(anyhow::anyhow!("the S3 target does not work: {e}"))
            })?;
            println!("The S3 target works: a test object was written, read back and deleted.");
        }
        TargetCommand::Clear => {
            remote::clear_target(&p.db, &p.s3_secret)?;
            println!("S3 target forgotten here; the bucket was left as it is.");
        }
        TargetCommand::Upload => {
            upload(p, config, true, UploadReport::default())?;
        }
    }
    Ok(())
}

/// Uploads beside a running backup: passes over the packs indexed so far,
/// a second apart, so that the upload overlaps the backup instead of
/// following it. A failed pass ends it quietly; the pass after the backup
/// ([`upload`]) says why.
pub(crate) struct Beside {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<UploadReport>>,
}

impl Beside {
    pub(crate) fn start(p: &Paths, config: &Config) -> Beside {
        let done = Arc::new(AtomicBool::new(false));
        let client = remote::connect(&p.db, &p.s3_secret).ok().flatten();
        let thread = match (client, p.open()) {
            (Some(client), Ok(repo)) => {
                let (done, rate) = (done.clone(), config.s3_bandwidth_kib.saturating_mul(1024));
                std::thread::Builder::new()
                    .name("s3-beside".into())
                    .spawn(move || {
                        let mut sent = UploadReport::default();
                        while !done.load(Ordering::Relaxed) {
                            match repo.upload(&client, rate, &|_| {}) {
                                Ok(r) => {
                                    sent.packs += r.packs;
                                    sent.bytes += r.bytes;
                                }
                                Err(_) => break,
                            }
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                        sent
                    })
                    .ok()
            }
            _ => None,
        };
        Beside { done, thread }
    }

    /// Stops after the pass under way; what it sent.
    pub(crate) fn finish(self) -> UploadReport {
        self.done.store(true, Ordering::Relaxed);
        self.thread.and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

/// Uploads what the target lacks, if a target is set; a no-op otherwise.
/// `loud` prints progress lines (the `upload` command); `before` is what an
/// upload beside the backup already sent, for the summary line.
pub(crate) fn upload(
    p: &Paths,
    config: &Config,
    loud: bool,
    before: UploadReport,
) -> Result<(), Failure> {
    let Some(client) = remote::connect(&p.db, &p.s3_secret)? else {
        if loud {
            println!("No S3 target is set.");
        }
        return Ok(());
    };
    let repo = p.open()?;
    let report = repo.upload(
        &client,
        config.s3_bandwidth_kib.saturating_mul(1024),
        &|pr| {
            if loud && pr.packs_total > 0 {
                eprintln!(
                    "uploading: {} of {} packs, {} of {} bytes",
                    pr.packs_done, pr.packs_total, pr.bytes_done, pr.bytes_total
                );
            }
        },
    )?;
    let line = format!(
        "S3 target: {} packs ({} bytes) uploaded, {} deleted; nothing waiting.",
        report.packs + before.packs,
        report.bytes + before.bytes,
        report.deleted
    );
    // After `backup run`, stdout is the run's own (possibly JSON) report.
    if loud {
        println!("{line}");
    } else {
        eprintln!("{line}");
    }
    Ok(())
}

/// `verify --target s3`.
pub(crate) fn verify(p: &Paths, mode: VerifyMode, json: bool) -> Result<(), Failure> {
    let client = saved(p)?;
    let report = p.open()?.verify_remote(&client, mode)?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!(
            "checked {} of {} packs in the S3 target",
            report.checked, report.packs
        );
        for d in &report.damage {
            let fixed = if d.repaired {
                " (re-uploaded from this device's copy)"
            } else {
                ""
            };
            println!("pack {}: {}{fixed}", d.damage.pack, d.damage.reason);
            for (snap, path) in &d.damage.affected {
                println!("  affects snapshot {snap}: {path}");
            }
        }
    }
    if report.damage.is_empty() {
        Ok(())
    } else {
        Err(Failure::Runtime(anyhow::anyhow!(
            "{} damaged or missing packs in the S3 target, {} re-uploaded",
            report.damage.len(),
            report.damage.iter().filter(|d| d.repaired).count()
        )))
    }
}

/// Disaster recovery from the bucket alone (`repair-index --recover-key
/// --from s3`): the repository downloaded into this device's repository
/// folder, its key unsealed with the recovery passphrase and its index
/// rebuilt; says what the download brought.
pub(crate) fn recover(
    p: &Paths,
    repo_id: Option<&str>,
    passphrase: &str,
    json: bool,
) -> Result<RepairReport, Failure> {
    let client = saved(p)?;
    let (report, repair) = remote::recover(&client, &p.repo, &p.key, &p.db, repo_id, passphrase)?;
    let say = say(json);
    say(format!(
        "Downloaded repository {} from the S3 target: {} packs ({} bytes), {} already here.",
        report.repo_id, report.packs, report.bytes, report.present
    ));
    if report.replaced > 0 {
        say(format!(
            "{} of those packs replaced a damaged copy here.",
            report.replaced
        ));
    }
    for (name, why) in &report.bad {
        say(format!("left out object {name}: {why}"));
    }
    Ok(repair)
}

/// The bucket's repository opened where it lies (`list` and `restore`
/// with `--from s3`): with this device's key, or, given a passphrase, the
/// bucket's `key.age` unsealed with it.
pub(crate) fn open_bucket(
    p: &Paths,
    scratch: &std::path::Path,
    passphrase: Option<&str>,
    repo_id: Option<&str>,
) -> Result<remote::Bucket, Failure> {
    let client = saved(p)?;
    let key = match passphrase {
        Some(pp) => remote::KeySource::Passphrase(pp),
        None => remote::KeySource::Device(&p.key),
    };
    let bucket = remote::Bucket::open(client, scratch, key, repo_id)?;
    for (name, why) in &bucket.report().index.damaged {
        eprintln!("warning: left out pack {name}: {why}");
    }
    Ok(bucket)
}

/// Says on stderr what reading the bucket where it lies fetched.
pub(crate) fn say_fetched(bucket: &remote::Bucket) {
    let report = bucket.report();
    eprintln!(
        "Read repository {} from the S3 target where it lies: {} packs indexed, {} bytes in {} requests.",
        report.repo_id, report.index.packs, report.fetched, report.requests
    );
}

/// Where a recovery's or a heal's own lines go: stdout, or stderr when
/// `--json` keeps stdout for the repair's report alone.
fn say(json: bool) -> impl Fn(String) {
    move |line| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

/// Healing from the bucket (`repair-index --from s3` with the device key):
/// the packs missing or damaged here fetched again and the index rebuilt;
/// says what came back. A pack whole in neither place is reported with the
/// packs the repair left out.
pub(crate) fn heal(
    p: &Paths,
    repo: &hearth_backup::Repo,
    json: bool,
) -> Result<RepairReport, Failure> {
    let client = saved(p)?;
    let (report, repair) = repo.heal_from(&client)?;
    let say = say(json);
    say(format!(
        "Fetched from the S3 target: {} packs missing here, {} damaged here; {} here were sound.",
        report.missing.len(),
        report.damaged.len(),
        report.sound
    ));
    for name in &report.damaged {
        say(format!(
            "replaced damaged pack {name} with the bucket's copy"
        ));
    }
    // A pack whole in neither place is one the index could not use: the
    // caller names it with the repair's own and fails.
    let mut repair = repair;
    for (name, why) in report.lost {
        if !repair.damaged.iter().any(|(n, _)| *n == name) {
            repair.damaged.push((name, why));
        }
    }
    Ok(repair)
}

fn saved(p: &Paths) -> Result<Client, Failure> {
    remote::connect(&p.db, &p.s3_secret)?.ok_or_else(|| {
        Failure::BadInput(
            "no S3 target is set: set one with 'hearth backup target set' first".into(),
        )
    })
}

/// A CA bundle for `--ca-file`, read to one byte past the largest the
/// client accepts: the client checks what it holds, and names one too large.
fn read_ca(file: &std::path::Path) -> Result<String, Failure> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| {
            f.take(hearth_s3::MAX_CA as u64 + 1)
                .read_to_string(&mut text)
        })
        .map_err(|e| {
            Failure::BadInput(format!(
                "{} cannot be the CA certificate: {e}",
                file.display()
            ))
        })?;
    Ok(text)
}

fn read_secret(file: Option<PathBuf>) -> Result<String, Failure> {
    Ok(crate::read_first_line(file, "Secret key:")?
        .trim()
        .to_string())
}

/// A time from the target's row, or "never" for 0.
fn when(t: i64) -> String {
    if t == 0 {
        "never".into()
    } else {
        format!("{} UTC", crate::time_text(t))
    }
}
