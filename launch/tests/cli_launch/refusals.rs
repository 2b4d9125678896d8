//! Launches refused before any rank starts (a fresh run into a folder with checkpoints, a mistyped
//! rank count, a command other than `pretrain`, restarts on several nodes without a shared run
//! folder), a refused configuration not restarted (and its
//! run folder not left behind), and `--max-restarts` with `--resume` and no `--out` resuming the
//! newest run.

use super::common::{self, checkpoint_tensor_bytes, run_ok, run_ok_in, temp_dir, ECGFM};
use super::{assert_same_run, launch_args, pretrain};
use std::process::Command;
use std::time::Duration;

#[test]
fn a_fresh_launch_into_a_folder_with_checkpoints_is_refused_before_any_rank_starts() {
    let dir = temp_dir("occupied");
    let run = dir.join("run");
    let command = pretrain(&run, 3, 4, 1);
    run_ok(&launch_args(2, &[], &command));
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    let weights = checkpoint_tensor_bytes(&run, 3);
    // Another seed in the same folder; a restart (which resumes) must not pick up the old run.
    let other = [command, vec!["--seed".into(), "7".into()]].concat();
    let output = Command::new(ECGFM)
        .args(launch_args(2, &["--max-restarts", "1"], &other))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{} already holds the checkpoints", run.display())),
        "{stderr}"
    );
    assert!(stderr.contains("--resume"), "{stderr}");
    assert!(!stderr.contains("rank 0 started"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(run.join("config.toml")).unwrap(),
        config
    );
    assert_eq!(checkpoint_tensor_bytes(&run, 3), weights);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn max_restarts_with_resume_and_no_out_resumes_the_newest_run() {
    let dir = temp_dir("resume-newest");
    let full = dir.join("full");
    run_ok(&launch_args(2, &[], &pretrain(&full, 6, 4, 1)));
    // The same run without --out, in a folder of its own: rank 0 picks runs/<time>.
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut command = pretrain(&full, 6, 4, 1);
    let out = command.iter().position(|a| a == "--out").unwrap();
    command.drain(out..out + 2);
    let stop = [command.clone(), vec!["--stop-after".into(), "3".into()]].concat();
    run_ok_in(&work, &launch_args(2, &[], &stop));
    let runs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(work.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    assert_eq!(runs().len(), 1);
    // Folders are named to the second: a later second could not be the run's name by chance.
    std::thread::sleep(Duration::from_millis(1100));
    // An older run whose name sorts last: "newest" is the run written to last, not the name.
    let older = work.join("runs/zzz-older");
    std::fs::create_dir_all(&older).unwrap();
    let config = std::fs::File::create(older.join("config.toml")).unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    config.set_modified(hour_ago).unwrap();
    let resume = [command, vec!["--resume".into()]].concat();
    run_ok_in(&work, &launch_args(2, &["--max-restarts", "1"], &resume));
    std::fs::remove_dir_all(&older).unwrap();
    let after = runs();
    assert_eq!(
        after.len(),
        1,
        "a new run folder instead of the newest: {after:?}"
    );
    assert_same_run(&full, &after[0], 6);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_mistyped_rank_count_is_refused_before_any_rank_starts() {
    let dir = temp_dir("too-many-ranks");
    let command = pretrain(&dir.join("run"), 2, 4, 1);
    let err = common::run_err(&launch_args(100_000, &[], &command));
    assert!(
        err.contains("'--nproc-per-node <N>': 100000: at most 1024 ranks on one node"),
        "{err}"
    );
    assert!(!err.contains("started"), "{err}");
    assert!(!dir.join("run").exists());
    // The most a node takes is accepted (here into a SLURM script, which starts no rank).
    let most = [
        "launch",
        "--nproc-per-node",
        "1024",
        "--slurm-script",
        "--",
        "pretrain",
    ];
    let script = run_ok(&[&most[..], &["--out", "r"]].concat());
    assert!(
        script.contains("#SBATCH --ntasks-per-node=1024\n"),
        "{script}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// Each node would pick its own timestamped run folder, and their restarts resume different runs.
#[test]
fn max_restarts_on_several_nodes_needs_a_shared_out_folder() {
    let dir = temp_dir("restarts-on-nodes");
    let flags = ["--nnodes", "2", "--max-restarts", "1"];
    let output = Command::new(ECGFM)
        .args(launch_args(1, &flags, &["pretrain".to_string()]))
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--max-restarts on several nodes needs `pretrain --out DIR`"),
        "{stderr}"
    );
    assert!(!dir.join("runs").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// A flag's value out of its range is the command line's usage error (exit 2), whichever
/// command takes it; a node rank outside the job's nodes is a refused setting (78).
#[test]
fn flag_values_out_of_range_exit_2_before_anything_runs() {
    let dir = temp_dir("out-of-range");
    let sweep = dir.join("sweep");
    let sweep = sweep.to_str().unwrap();
    let pretrain = ["--", "pretrain", "--steps", "1"];
    let cases: [(&[&str], &str); 8] = [
        (
            &["launch", "--nproc-per-node", "0"],
            "'--nproc-per-node <N>': must be at least 1",
        ),
        (
            &["launch", "--nnodes", "0"],
            "'--nnodes <M>': must be at least 1",
        ),
        (&["plan", "--gpus", "0"], "'--gpus <N>': must be at least 1"),
        (&["plan", "--gpus-per-node", "0"], "must be at least 1"),
        (
            &["plan", "--mfu", "2"],
            "'--mfu <FRACTION>': 2: give more than 0 and at most 1",
        ),
        (
            &["bench", "loader", "--data", "x", "--threads", "100000"],
            "100000 threads on",
        ),
        (
            &["bench", "loader", "--data", "x", "--threads", "0"],
            "must be at least 1",
        ),
        (
            &[
                "sweep",
                "run",
                "--preset",
                "toy",
                "--dry-run",
                "--out",
                sweep,
                "--threads",
                "100000",
            ],
            "'--threads <N>': 100000 threads on",
        ),
    ];
    for (args, said) in cases {
        let args = match args[0] {
            "launch" => [args, &pretrain[..]].concat(),
            _ => args.to_vec(),
        };
        let output = common::ecgfm_env(&args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {said} in {stderr}");
    }
    let node = ["launch", "--nnodes", "2", "--node-rank", "2"];
    let err = common::run_refused(&[&node[..], &pretrain[..]].concat());
    assert!(
        err.contains("--node-rank 2 is not a node of --nnodes 2 (0..2)"),
        "{err}"
    );
    assert!(!dir.join("sweep").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_command_other_than_pretrain_is_refused_before_any_rank_starts() {
    // Until 2026-12-06 each rank ran it: `plan` printed twice, two sweeps shared one folder.
    for command in [&["plan"][..], &["sweep", "status", "."][..]] {
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let err = common::run_err(&launch_args(2, &[], &command));
        assert!(
            err.contains(&format!(
                "`{}` is not a data-parallel command: run `ecgfm {} ...` directly",
                command[0], command[0]
            )),
            "{err}"
        );
        assert!(!err.contains("started"), "{err}");
    }
}

#[test]
fn a_refused_configuration_is_not_restarted_and_the_launcher_exits_78() {
    let dir = temp_dir("bad-config");
    let mut command = pretrain(&dir.join("run"), 3, 4, 1);
    command.extend(["--set".into(), "optim.lr=-1".into()]);
    let output = Command::new(ECGFM)
        .args(launch_args(2, &["--max-restarts", "2"], &command))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("not restarted: the configuration was refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("restarting every rank"), "{stderr}");
    // Without --out the launcher makes the timestamped folder the restarts share; a refused job
    // leaves it no more than `pretrain` alone does (an empty one was left).
    let refused = ["pretrain", "--model", "medium", "--threads", "1"].map(String::from);
    let output = Command::new(ECGFM)
        .args(launch_args(2, &["--max-restarts", "1"], &refused))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let left: Vec<_> = std::fs::read_dir(dir.join("runs")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
