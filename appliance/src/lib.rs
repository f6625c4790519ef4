//! The `hearth` application: turns a parsed command line into work.
//!
//! This is the only place that knows every crate. It loads configuration,
//! wires the domain crates into the web state, and maps failures to exit
//! statuses: 2 for bad input (arguments, configuration), 1 for anything
//! else. Each failure is one line on stderr.

pub mod cli;
mod serve;

use std::{path::Path, process::ExitCode};

use anyhow::Context;
use cli::{Cli, Command, DbCommand};
use hearth_config::{Config, ConfigError};

/// Runs a parsed command line to completion.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(msg)) => {
            eprintln!("hearth: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("hearth: {e:#}");
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    BadInput(String),
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
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
            serve::serve(config, args.simulate_clock_offset).map_err(Failure::Runtime)
        }
        Command::Db(DbCommand::Backup { file, data }) => {
            let mut config = load_config(cli.config.as_deref())?;
            if let Some(dir) = data {
                config.data_dir = dir;
            }
            let db = config.data_dir.join(hearth_store::DB_FILE);
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
