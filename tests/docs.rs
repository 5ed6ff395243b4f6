//! docs/operating.md's flag table against the CLI definition: a row for every flag of
//! `argomap run` with its environment variable, and no row for a flag that does not exist.

use std::collections::BTreeMap;

use argomap::cli::Cli;
use clap::CommandFactory;

/// `--flag` → its env var, as the table says (a row may name two flags and two variables).
fn table() -> BTreeMap<String, Option<String>> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operating.md")).expect("docs");
    let section = doc.split_once("## Configuration (`argomap run`)").expect("the configuration section").1;
    let mut rows = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).skip(2)
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let ticked = |cell: &str| -> Vec<String> {
            cell.split(',')
                .map(|s| s.trim().trim_matches('`').to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let flags = ticked(cells[1]);
        let envs = ticked(cells[2]);
        for (i, flag) in flags.into_iter().enumerate() {
            rows.insert(flag, envs.get(i).cloned());
        }
    }
    rows
}

#[test]
fn the_flag_table_matches_argomap_run() {
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("the run subcommand");
    // Global flags (--log-format) are declared on the top-level command.
    let flags: BTreeMap<String, Option<String>> = run
        .get_arguments()
        .chain(cli.get_arguments().filter(|a| a.is_global_set()))
        .filter_map(|a| {
            let long = a.get_long()?;
            (long != "help")
                .then(|| (format!("--{long}"), a.get_env().map(|e| e.to_string_lossy().into_owned())))
        })
        .collect();
    let rows = table();
    let missing: Vec<&String> = flags.keys().filter(|f| !rows.contains_key(*f)).collect();
    let stale: Vec<&String> = rows.keys().filter(|f| !flags.contains_key(*f)).collect();
    assert!(missing.is_empty(), "flags of `argomap run` without a row in docs/operating.md: {missing:?}");
    assert!(stale.is_empty(), "rows in docs/operating.md for flags `argomap run` does not have: {stale:?}");
    for (flag, env) in &flags {
        assert_eq!(&rows[flag], env, "{flag}: the table's environment variable");
    }
}
