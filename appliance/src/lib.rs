//! The `hearth` application: turns a parsed command line into work.
//!
//! This is the only place that knows every crate. It loads configuration,
//! wires the domain crates into the web state, and maps failures to exit
//! statuses: 2 for bad input (arguments, configuration), 1 for anything
//! else. Each failure is one line on stderr.

mod backup;
pub mod cli;
mod serve;
mod target;
mod update;

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use cli::{Cli, Command, DbCommand};
use hearth_config::{Config, ConfigError};

/// Runs a parsed command line to completion.
pub fn run(cli: Cli) -> ExitCode {
    // Before any HTTP client is built (hearth_s3::use_ring says why).
    hearth_s3::use_ring();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(msg)) => {
            eprintln!("hearth: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Restart) => ExitCode::from(hearth_update::EXIT_RESTART),
        Err(Failure::Runtime(e)) => {
            eprintln!("hearth: {e:#}");
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) enum Failure {
    BadInput(String),
    /// Not a failure: `hearth serve` stopped so that the new version
    /// starts (systemd's `RestartForceExitStatus=`).
    Restart,
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<hearth_backup::BackupError> for Failure {
    fn from(e: hearth_backup::BackupError) -> Self {
        use hearth_backup::BackupError as B;
        match e {
            B::NoRepository(_)
            | B::AlreadyInitialised(_)
            | B::WeakPassphrase
            | B::WrongPassphrase(_)
            | B::NoSnapshot(_)
            | B::NoSnapshots
            | B::NoSuchPath(_)
            | B::BadSource { .. }
            | B::Locked => Failure::BadInput(e.to_string()),
            other => Failure::Runtime(other.into()),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::BadInput(e.to_string())
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Config => {
            print!("{}", hearth_config::DEFAULT_FILE);
            Ok(())
        }
        Command::Serve(args) => {
            let mut config = load_config(cli.config.as_deref())?;
            if let Some(dir) = args.data {
                config.data_dir = dir;
            }
            if let Some(addr) = args.listen {
                config.listen = addr;
            }
            match serve::serve(config, args.simulate_clock_offset)? {
                serve::Stopped::Clean => Ok(()),
                serve::Stopped::ForRestart => Err(Failure::Restart),
            }
        }
        Command::Backup(args) => {
            let mut config = load_config(cli.config.as_deref())?;
            if let Some(dir) = &args.data {
                config.data_dir = dir.clone();
            }
            backup::run(&config, args)
        }
        Command::Update(args) => {
            let mut config = load_config(cli.config.as_deref())?;
            if let Some(dir) = &args.data {
                config.data_dir = dir.clone();
            }
            update::run(&config, args)
        }
        Command::Discover { seconds } => discover(seconds),
        Command::Db(DbCommand::Backup { file, data }) => {
            let mut config = load_config(cli.config.as_deref())?;
            if let Some(dir) = data {
                config.data_dir = dir;
            }
            let db = config.data().db();
            if !db.exists() {
                return Err(Failure::BadInput(format!(
                    "no database at {}; check data_dir or --data",
                    db.display()
                )));
            }
            hearth_store::backup(&db, &file)
                .with_context(|| format!("backing up {}", db.display()))?;
            println!("Database copied to {}", file.display());
            Ok(())
        }
    }
}

/// The layered configuration, from the process environment. Variables that
/// are not valid UTF-8 cannot be Hearth settings and are ignored.
fn load_config(explicit: Option<&Path>) -> Result<Config, Failure> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let (config, source) = Config::load(explicit, env)?;
    log::debug!("configuration from {source}");
    Ok(config)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for seconds since the epoch, without a
/// calendar crate: days to civil date, after Howard Hinnant's algorithm.
pub(crate) fn time_text(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Listens for `seconds`, then prints one line per Hearth found.
fn discover(seconds: u64) -> Result<(), Failure> {
    let found = hearth_net::discovery::Discovery::listen()
        .map_err(|e| Failure::Runtime(anyhow::anyhow!("cannot listen for mDNS: {e}")))?;
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    let list = found.found(&[]);
    if list.is_empty() {
        println!("No Hearth found on this network in {seconds} s.");
    }
    for f in list {
        let short = hearth_mirror::DeviceId::from_hex(&f.id)
            .map(|d| d.short())
            .unwrap_or_default();
        println!("{}\t{short}\t{}", f.name, f.address);
    }
    Ok(())
}

/// The first line of `file`, or of stdin after printing `prompt` on
/// stderr, without its line ending: secrets are never taken as flags.
pub(crate) fn read_first_line(
    file: Option<std::path::PathBuf>,
    prompt: &str,
) -> Result<String, Failure> {
    let line = match file {
        Some(f) => std::fs::read_to_string(&f)
            .map_err(|e| Failure::BadInput(format!("{}: {e}", f.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        None => {
            eprintln!("{prompt}");
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
                .context("reading stdin")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    Ok(line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_time() {
        assert_eq!(super::time_text(0), "1970-01-01 00:00:00");
        assert_eq!(super::time_text(1_795_000_000), "2026-11-18 11:06:40");
        assert_eq!(super::time_text(951_782_400), "2000-02-29 00:00:00");
    }
}
