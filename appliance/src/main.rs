//! The `hearth` binary: parse the command line, hand over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    match hearth::cli::parse() {
        Ok(cli) => hearth::run(cli),
        Err(code) => code,
    }
}
