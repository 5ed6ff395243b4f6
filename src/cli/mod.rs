//! The command line: clap types of `argomap run` (the default), `argomap crds` and
//! `argomap check`, the log set-up, and the two small subcommands. `check` runs one check,
//! `table` prints its report and `scaffold` the ClusterMappings of its unlinked destinations.
//! The flags of `argomap run` ([`RunArgs`]) and its wiring are `crate::app`'s: the command line
//! imports the application it starts, never the reverse.

pub mod check;
pub mod scaffold;
pub mod table;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::app::RunArgs;
use crate::{argocd, crd};

#[derive(Parser, Debug)]
#[command(
    name = "argomap",
    version,
    about = "Maps the destination clusters of Argo CD servers to known clusters",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ARGOMAP_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// `argomap` alone runs the controller with these.
    #[command(flatten)]
    pub run: Box<RunArgs>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller (the default).
    Run(Box<RunArgs>),
    /// Print both CRDs as YAML, or write one file per CRD into a directory.
    Crds {
        /// Write `argocdinstances.yaml` and `clustermappings.yaml` here instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check one Argo CD from here, exactly as the controller would, and print the status.
    Check(Box<CheckArgs>),
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Argo CD base URL (default: spec.url of the instance in -f).
    #[arg(long)]
    pub url: Option<String>,
    /// File holding an Argo CD API token.
    #[arg(long, conflicts_with_all = ["username", "password_file"])]
    pub token_file: Option<PathBuf>,
    /// Log in with this user (with --password-file).
    #[arg(long, requires = "password_file")]
    pub username: Option<String>,
    /// File holding the password of --username.
    #[arg(long, requires = "username")]
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Verify the server certificate against this name.
    #[arg(long)]
    pub server_name: Option<String>,
    /// Do not verify the server certificate.
    #[arg(long)]
    pub insecure_skip_verify: bool,
    /// Per-request timeout (default: spec.timeout, else 10s).
    #[arg(long, value_parser = crd::parse_duration)]
    pub timeout: Option<Duration>,
    /// YAML with an ArgoCdInstance and ClusterMappings (multi-document); the mappings used are
    /// those whose instanceRef names the instance.
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// Which ArgoCdInstance of the file, when it holds several.
    #[arg(long)]
    pub instance: Option<String>,
    /// What to print: the destinations table, the status as JSON, or a ClusterMapping
    /// manifest to fill in for every unlinked destination.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Print at most this many entries of each list (default: all; the status the controller
    /// writes keeps its own caps).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Largest Argo CD response body accepted, in bytes (after gzip decoding).
    #[arg(long, default_value_t = argocd::DEFAULT_MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    /// The destinations table.
    Table,
    /// The status the ArgoCdInstance would get, and each mapping's state.
    Json,
    /// A ClusterMapping manifest per unlinked destination, its cluster fields to fill in.
    Mappings,
}

/// Logs to stderr, as text or JSON, filtered by `RUST_LOG` (default `info,kube=warn`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    use std::io::IsTerminal;
    // Colour only for a person at a terminal, never into a log file or collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `argomap crds`: both CRDs on stdout, or one file each in `dir`.
pub fn crds(dir: Option<PathBuf>) -> ExitCode {
    let result = match dir {
        None => crd::crds_yaml()
            .map_err(|e| e.to_string())
            .and_then(|y| std::io::stdout().write_all(y.as_bytes()).map_err(|e| e.to_string())),
        Some(dir) => crd::crd_files().map_err(|e| e.to_string()).and_then(|files| {
            files.into_iter().try_for_each(|(name, yaml)| {
                std::fs::write(dir.join(name), yaml).map_err(|e| format!("{}: {e}", dir.join(name).display()))
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("argomap crds: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "argomap",
            "check",
            "--url",
            "https://a",
            "--token-file",
            "t",
            "-o",
            "json",
        ])
        .expect("parse");
        assert!(matches!(cli.command, Some(Command::Check(_))));
        assert!(Cli::try_parse_from(["argomap", "check", "--token-file", "t", "--username", "u"]).is_err());
        // No subcommand: `run` with the top-level flags, parsed once.
        let cli = Cli::try_parse_from(["argomap", "--namespace", "platform"]).expect("parse");
        assert!(cli.command.is_none());
        assert_eq!(cli.run.namespace, ["platform"]);
    }

    #[test]
    fn several_namespaces_by_comma_or_repeated_flag() {
        let cli =
            Cli::try_parse_from(["argomap", "run", "--namespace", "a,b", "--namespace", "c"]).expect("parse");
        let Some(Command::Run(args)) = cli.command else { panic!("run") };
        assert_eq!(args.namespace, ["a", "b", "c"]);
        let cli = Cli::try_parse_from(["argomap"]).expect("parse");
        assert!(cli.run.namespace.is_empty(), "no flag: all namespaces");
        for bad in ["a,,b", "Platform", "a_b", "-a"] {
            assert!(Cli::try_parse_from(["argomap", "--namespace", bad]).is_err(), "{bad}");
        }
    }

    /// Every argument and subcommand of every command says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
                // A flag's implied true/false are not values a user types.
                let values =
                    if arg.get_action().takes_values() { arg.get_possible_values() } else { Vec::new() };
                for value in values {
                    if value.get_help().is_none() {
                        missing.push(format!("{path} --{} {}", arg.get_id(), value.get_name()));
                    }
                }
            }
            for sub in cmd.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "argomap", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }
}
