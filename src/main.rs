//! The edgestream binary: flags and config, logging, exit codes. The work is
//! in the library (`edgestream::app::run`).

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use edgestream::config::{Cli, Config};

fn main() -> ExitCode {
    // clap exits by itself: 0 for --help/--version, 2 for a usage error.
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgestream: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    if cli.list_devices {
        print!("{}", edgestream::source::v4l2::list_devices());
        return ExitCode::SUCCESS;
    }
    if cli.list_formats {
        return match edgestream::source::v4l2::list_formats_for(&config.source) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("edgestream: {e}");
                ExitCode::from(1)
            }
        };
    }
    edgestream::logging::init(config.log_level);
    match edgestream::app::run_reloadable(config, Some(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(1)
        }
    }
}
