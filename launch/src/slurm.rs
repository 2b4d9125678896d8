//! `ecgfm launch --slurm-script`: an sbatch script for the job `ecgfm launch` was given. Under
//! SLURM no launcher process is needed: srun starts one `ecgfm pretrain` per GPU and each reads
//! its rank from SLURM's variables (rank 0 on the first node of the allocation). The job is
//! requeued on preemption or node failure (SLURM's `--requeue`) and, when its ranks stopped with
//! their checkpoint saved (exit status 75, after SLURM's SIGUSR1 before the time limit), requeues
//! itself, as often as that happens; a failure is not requeued. Every start resumes from the
//! newest intact checkpoint of its run directory.

use anyhow::{bail, Result};

use crate::launch::{flag_value, LaunchArgs};

/// Quotes a word for a POSIX shell when it needs it.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain && !word.is_empty() {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The script, ready for `sbatch`.
pub fn script(args: &LaunchArgs) -> Result<String> {
    if args.command.first().map(String::as_str) != Some("pretrain") {
        bail!("--slurm-script writes scripts for `-- pretrain ...` commands");
    }
    let Some(out) = flag_value(&args.command, "--out") else {
        bail!("--slurm-script needs `pretrain --out DIR` (a folder every node sees) so a requeued job finds its checkpoints");
    };
    let gpus = flag_value(&args.command, "--device").is_some_and(|d| d.starts_with("cuda"));
    let command: Vec<String> = args
        .command
        .iter()
        .filter(|a| *a != "--resume")
        .map(|a| shell_word(a))
        .collect();
    crate::secret_free::check(&command.join(" "), "the SLURM script")?;
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "ecgfm".into());
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("#SBATCH --job-name=ecgfm\n");
    s.push_str(&format!("#SBATCH --nodes={}\n", args.nnodes));
    s.push_str(&format!(
        "#SBATCH --ntasks-per-node={}\n",
        args.nproc_per_node
    ));
    if gpus {
        s.push_str(&format!(
            "#SBATCH --gpus-per-node={}\n",
            args.nproc_per_node
        ));
    }
    // srun does not inherit sbatch's --cpus-per-task since Slurm 22.05: it is given again below.
    let cpus = cpus_per_task(&args.command);
    s.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
    s.push_str(&format!("#SBATCH --time={}\n", args.slurm_time));
    s.push_str("#SBATCH --requeue\n");
    s.push_str("#SBATCH --signal=USR1@180\n");
    s.push_str("#SBATCH --open-mode=append\n");
    s.push_str("#SBATCH --output=ecgfm-%j.out\n");
    s.push_str(
        "# One task per GPU: srun starts every rank; each reads SLURM_PROCID / SLURM_NTASKS /\n\
         # SLURM_LOCALID and meets the others on the first node of the allocation.\n\
         # Preemption or a node failure requeues the job (--requeue); every start resumes from the\n\
         # newest intact checkpoint in the run directory. Three minutes before the time limit\n\
         # SLURM sends SIGUSR1: every rank checkpoints its step and stops with status 75, and the\n\
         # job queues itself again (every time: a long run needs many time limits). Any other\n\
         # failure is not requeued: it would fail the same way; fix it and sbatch this again.\n\
         set -euo pipefail\n\
         export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))\n",
    );
    s.push_str(&format!("OUT={}\n", shell_word(&out)));
    s.push_str("RESUME=\nif [ -f \"$OUT/config.toml\" ]; then RESUME=--resume; fi\n");
    s.push_str(&format!(
        "set +e\nsrun --kill-on-bad-exit=1 --cpus-per-task={cpus} {} {} $RESUME\nstatus=$?\nset -e\n",
        shell_word(&exe),
        command.join(" ")
    ));
    s.push_str(&format!(
        "if [ \"$status\" -eq {STOPPED} ]; then\n\
         \x20   echo \"ecgfm: the ranks stopped with their checkpoint saved (status {STOPPED}): requeueing job $SLURM_JOB_ID\" >&2\n\
         \x20   scontrol requeue \"$SLURM_JOB_ID\"\n\
         elif [ \"$status\" -ne 0 ]; then\n\
         \x20   echo \"ecgfm: srun ended with status $status, not {STOPPED} (a checkpointed stop): not requeued, as a failure would fail again; see the ranks' errors above, then sbatch this script again: it resumes from the newest checkpoint\" >&2\n\
         fi\n\
         exit \"$status\"\n",
        STOPPED = crate::signals::STOPPED_EXIT
    ));
    Ok(s)
}

/// CPUs per rank: the command's `--threads` when it gives a count, else 8 (a GPU rank's driving
/// thread, data decoding and prefetch, object-store reads and the communication thread).
fn cpus_per_task(command: &[String]) -> usize {
    flag_value(command, "--threads")
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(8)
}

/// Parses `--slurm-time` in one of sbatch's forms: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS,
/// DAYS-HOURS, DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS (or UNLIMITED), at least a minute,
/// so a typo fails here and not when the script is submitted.
pub fn time_limit(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{text}` is not a SLURM time limit: give MINUTES, HH:MM:SS, DAYS-HH, DAYS-HH:MM or \
             DAYS-HH:MM:SS (e.g. 24:00:00 or 2-00:00:00)"
        )
    };
    if text.eq_ignore_ascii_case("unlimited") || text.eq_ignore_ascii_case("infinite") {
        return Ok(text.to_string());
    }
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, text),
    };
    let number = |part: &str| -> Result<u64, String> {
        if part.is_empty() || part.len() > 9 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let days = days.map(number).transpose()?;
    let parts = clock
        .split(':')
        .map(number)
        .collect::<Result<Vec<_>, _>>()?;
    let seconds = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => (h * 60 + m) * 60 + s,
        (Some(d), [h]) => (d * 24 + h) * 3600,
        (Some(d), [h, m]) => ((d * 24 + h) * 60 + m) * 60,
        (Some(d), [h, m, s]) => ((d * 24 + h) * 60 + m) * 60 + s,
        _ => return Err(bad()),
    };
    if seconds < 60 {
        return Err(format!(
            "`{text}` is under a minute: SLURM's time limit is at least 1 minute"
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::{cpus_per_task, script, shell_word, time_limit};
    use crate::launch::LaunchArgs;

    #[test]
    fn slurm_time_limits_in_sbatchs_forms_are_accepted_and_typos_refused() {
        for good in [
            "1",
            "30",
            "90:30",
            "24:00:00",
            "2-00",
            "2-12:30",
            "1-00:00:00",
            "UNLIMITED",
        ] {
            assert_eq!(time_limit(good).as_deref(), Ok(good));
        }
        for bad in [
            "abc", "", "24h", "1:2:3:4", "-5", "2-", "12:xx:00", "1-2-3", "0", "0:30",
        ] {
            assert!(time_limit(bad).is_err(), "{bad}");
        }
        assert!(time_limit("0:30").unwrap_err().contains("under a minute"));
    }

    #[test]
    fn shell_words_are_quoted_where_a_shell_would_split_or_drop_them() {
        assert_eq!(shell_word("--out=/runs/a,b"), "--out=/runs/a,b");
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn cpus_per_task_are_the_commands_thread_count_else_eight() {
        let cpus = |command: &[&str]| {
            cpus_per_task(&command.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(cpus(&["pretrain", "--threads", "4"]), 4);
        assert_eq!(cpus(&["pretrain", "--threads=6"]), 6);
        for eight in [&["pretrain"][..], &["pretrain", "--threads", "0"]] {
            assert_eq!(cpus(eight), 8, "{eight:?}");
        }
    }

    /// `--resume` is the script's to add (once a checkpoint exists), not the command's.
    #[test]
    fn the_script_resumes_only_where_the_run_folder_has_begun() {
        let args = LaunchArgs {
            nproc_per_node: 1,
            nnodes: 1,
            node_rank: 0,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
            max_restarts: 0,
            slurm_script: true,
            slurm_time: "1:00:00".into(),
            command: ["pretrain", "--resume", "--out", "r"]
                .map(String::from)
                .to_vec(),
        };
        let script = script(&args).unwrap();
        assert!(script.contains(" pretrain --out r $RESUME\n"), "{script}");
    }
}
