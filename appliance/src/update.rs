//! `hearth update`: the command line's side of signed updates, and the two
//! calls `hearth serve` makes (launch first, confirm once healthy).

use std::{path::Path, sync::Arc};

use hearth_config::Config;
use hearth_update::{Accept, Launch, Progress, Updates};

use crate::{
    Failure,
    cli::{UpdateArgs, UpdateCommand},
};

/// The update folder of `config`'s data folder, with its trusted keys.
pub(crate) fn updates(config: &Config) -> Result<Updates, Failure> {
    let keys = hearth_update::Keys::new(&config.update_extra_key)
        .map_err(|e| Failure::BadInput(e.to_string()))?;
    let data = config.data();
    Ok(Updates::new(data.update(), data.db(), keys))
}

pub(crate) fn run(config: &Config, args: UpdateArgs) -> Result<(), Failure> {
    let updates = updates(config)?;
    match args.command {
        UpdateCommand::Check { file, allow_older } => {
            let signed = updates
                .check(
                    open(&file)?,
                    Accept { older: allow_older },
                    &Arc::new(Progress::default()),
                )
                .map_err(refusal)?;
            let m = &signed.manifest;
            println!(
                "{}: Hearth {} for {}, signed by {}; it can be installed (running {}).",
                file.display(),
                m.version,
                m.arch,
                signed.signer.label(),
                hearth_update::running_version()
            );
            print_notes(&m.notes);
            Ok(())
        }
        UpdateCommand::Install { file, allow_older } => {
            let staged = updates
                .stage(
                    open(&file)?,
                    Accept { older: allow_older },
                    &Arc::new(Progress::default()),
                )
                .map_err(refusal)?;
            updates.switch().map_err(refusal)?;
            println!(
                "Hearth {} is installed and runs from the next start (systemctl restart hearth); \
                 if it is not healthy then, {} comes back by itself.",
                staged.manifest.version,
                hearth_update::running_version()
            );
            Ok(())
        }
        UpdateCommand::Status => {
            let status = updates.status();
            println!("this binary: {}", status.running);
            match &status.installed {
                Some(v) => println!("installed update (what hearth serve starts): {v}"),
                None => println!("installed update: none (hearth serve starts this binary)"),
            }
            if let Some(s) = &status.staged {
                println!(
                    "staged: {} (signed by {})",
                    s.manifest.version,
                    s.signer.label()
                );
            }
            if let Some(t) = &status.trial {
                println!(
                    "on trial: {} (from {}, {} start(s))",
                    t.candidate_version, t.previous_version, t.attempts
                );
            }
            if let Some(last) = &status.last {
                if last.rolled_back() {
                    println!(
                        "last update: {} was rolled back to {} at {}: {}",
                        last.version,
                        last.from_version,
                        crate::time_text(last.at),
                        last.reason
                    );
                } else {
                    println!(
                        "last update: {} installed over {} at {}",
                        last.version,
                        last.from_version,
                        crate::time_text(last.at)
                    );
                }
            }
            Ok(())
        }
        UpdateCommand::RecordExit => {
            let var = |k: &str| std::env::var(k).unwrap_or_default();
            updates.record_exit(
                &var("SERVICE_RESULT"),
                &var("EXIT_CODE"),
                &var("EXIT_STATUS"),
            );
            Ok(())
        }
    }
}

/// Runs the installed version instead of this one, if there is one: the
/// first thing `hearth serve` does. Returns only to run here.
pub(crate) fn launch(updates: &Updates) {
    use std::os::unix::process::CommandExt;
    let mut launch = updates.launch();
    // Each failed exec rolls back one step, so this ends.
    for _ in 0..4 {
        let Launch::Exec {
            program,
            slot_dir,
            version,
        } = &launch
        else {
            return;
        };
        log::info!(
            "starting the installed version {version} from {}",
            slot_dir.display()
        );
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| "hearth".into());
        let error = std::process::Command::new(program)
            .arg0(arg0)
            .args(args)
            .env(hearth_update::SLOT_VAR, slot_dir)
            .exec();
        launch = updates.exec_failed(&launch, &error);
    }
}

fn open(file: &Path) -> Result<std::fs::File, Failure> {
    std::fs::File::open(file)
        .map_err(|e| Failure::BadInput(format!("cannot open {}: {e}", file.display())))
}

fn refusal(e: hearth_update::UpdateError) -> Failure {
    if e.is_bad_input() {
        Failure::BadInput(format!("update refused: {e}"))
    } else {
        Failure::Runtime(anyhow::anyhow!("update failed: {e}"))
    }
}

fn print_notes(notes: &str) {
    if !notes.trim().is_empty() {
        println!("Release notes:");
        for line in notes.trim().lines() {
            println!("  {line}");
        }
    }
}
