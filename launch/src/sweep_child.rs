//! A sweep's child processes (`ecgfm pretrain`, `ecgfm eval`, `ecgfm data ...` of this same
//! binary): the command lines a sweep file adds arguments to, checked before the sweep starts,
//! and running them, a child's exit status told apart (a signal, damaged data, a refused
//! configuration) as the sweep passes it on.

use anyhow::{bail, Context, Result};
use clap::Parser;
use ecgfm_sweep::spec::IngestSpec;
use ecgfm_sweep::SweepSpec;
use std::process::Command as Process;

use crate::cli::{Cli, Command};
use crate::sweep_eval::eval_command;
use crate::{bad_config, child_error, damaged_data, signals};

/// The arguments of the `ecgfm data ingest` of an `[ingest.NAME]` dataset into `out`.
pub(crate) fn ingest_command(ingest: &IngestSpec, out: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "data",
        "ingest",
        &ingest.source,
        "--format",
        &ingest.format,
        "--out",
        out,
    ]
    .map(String::from)
    .into();
    args.extend(ingest.args.iter().cloned());
    args
}

/// Refuses `[[eval]]` and `[ingest.NAME]` `args` that `ecgfm eval` or `ecgfm data ingest` does
/// not take, and evaluation settings `ecgfm eval` would refuse (`--lr 0`), before anything runs:
/// an evaluation's would otherwise fail after its run trained.
pub(crate) fn check_child_args(spec: &SweepSpec, threads: Option<usize>) -> Result<()> {
    for eval in &spec.eval {
        let what = format!("[[eval]] task {} args = {:?}", eval.task, eval.args);
        // The flags the sweep gives `ecgfm eval` itself (its command line before the file's
        // `args`, `--threads` included): some the command would take twice (`--fractions`), so
        // the parse alone passes them.
        let line = eval_command("RUN", "DATA", eval, "probe", 0, "OUT.json", Some(1));
        let sweeps: Vec<&str> = (line[..line.len() - eval.args.len()].iter())
            .map(String::as_str)
            .filter(|arg| arg.starts_with("--"))
            .collect();
        let flag = |arg: &String| arg.split('=').next().unwrap_or_default().to_string();
        if let Some(own) = eval
            .args
            .iter()
            .map(flag)
            .find(|f| sweeps.contains(&f.as_str()))
        {
            return Err(bad_config::RefusedConfig(format!(
                "{what}: the sweep gives `ecgfm eval` {own} itself ({} are the sweep's)",
                sweeps.join(", ")
            ))
            .into());
        }
        let scratch = eval.scratch.then_some("scratch");
        for protocol in eval.protocols.iter().map(String::as_str).chain(scratch) {
            let args = eval_command("RUN", "DATA", eval, protocol, 0, "OUT.json", threads);
            if let Command::Eval(eval_args) = parse_child(&args, &what, "eval")? {
                crate::eval::settings(&eval_args).with_context(|| what.clone())?;
            }
        }
    }
    for (name, ingest) in &spec.ingest {
        let what = format!("[ingest.{name}] args = {:?}", ingest.args);
        parse_child(&ingest_command(ingest, "OUT"), &what, "data ingest")?;
    }
    Ok(())
}

/// A child's command line `args` parsed, or refused with clap's reason (`command` names the
/// subcommand, `what` the sweep file's part of the line).
fn parse_child(args: &[String], what: &str, command: &str) -> Result<Command> {
    let argv = std::iter::once("ecgfm").chain(args.iter().map(String::as_str));
    let e = match Cli::try_parse_from(argv) {
        Ok(cli) => return Ok(cli.command),
        Err(e) => e.to_string(),
    };
    let why = e.split("\nUsage:").next().unwrap_or(&e).trim();
    Err(bad_config::RefusedConfig(format!(
        "{what}: not an `ecgfm {command}` command line the sweep can run: {}",
        why.trim_start_matches("error: ")
    ))
    .into())
}

/// Runs this binary with `args`, its output going to the terminal; a failure carries the
/// child's own error (for the sweep's records of failed runs).
pub(crate) fn run_child<S: AsRef<str>>(args: &[S]) -> Result<()> {
    child(args, true)
}

/// `run_child` for the data commands that prepare a sweep, whose failure ends it: the child
/// has printed its error, so the sweep's own does not repeat it.
pub(crate) fn run_data_child<S: AsRef<str>>(args: &[S]) -> Result<()> {
    child(args, false)
}

fn child<S: AsRef<str>>(args: &[S], repeat_error: bool) -> Result<()> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let exe = std::env::current_exe().context("locating the ecgfm binary")?;
    let (status, error) = child_error::status_and_error(Process::new(&exe).args(&args))
        .with_context(|| format!("starting {}", exe.display()))?;
    let stopped_itself = status.code() == Some(i32::from(signals::STOPPED_EXIT));
    if let Some(sig) = signals::received().filter(|_| !status.success()) {
        let how = child_error::describe(status);
        return Err(signals::Stopped(format!(
            "`ecgfm {}` {how} after this sweep passed on signal {sig}",
            args.join(" ")
        ))
        .into());
    }
    if stopped_itself {
        let why = error.unwrap_or_else(|| "stopped by a signal".into());
        return Err(signals::Stopped(format!("`ecgfm {}`: {why}", args.join(" "))).into());
    }
    if !status.success() {
        let why = match error {
            Some(e) if repeat_error => format!(": {e}"),
            Some(_) => " (its error is printed above)".to_string(),
            None => String::new(),
        };
        let how = child_error::describe(status);
        let failed = format!("`ecgfm {}` failed: it {how}{why}", args.join(" "));
        if damaged_data::exited_damaged(status) {
            return Err(damaged_data::DamagedData(failed).into());
        }
        if bad_config::exited_bad_config(status) {
            return Err(bad_config::RefusedConfig(failed).into());
        }
        bail!("{failed}");
    }
    Ok(())
}
