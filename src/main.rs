//! The `argomap` binary: parse the command line, dispatch. Everything else is in the library.

use std::process::ExitCode;

use argomap::cli::{self, Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing(cli.log_format);
    // One TLS provider for the whole process (kube and reqwest both use rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `check` is one sequence of requests: on one thread, the body's chunks reach the decoder
    // without a wake-up of another thread each (a fifth of its CPU on a large list).
    let mut builder = match cli.command {
        Some(Command::Check(_)) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("argomap: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => runtime.block_on(argomap::app::run(*args)),
        Command::Crds { dir } => cli::crds(dir),
        Command::Check(args) => runtime.block_on(cli::check::run(*args)),
    }
}
