//! SLURM and torchrun: their variables form the same ranks as `ecgfm launch`; the script of
//! `launch --slurm-script` (requeued only after a checkpointed stop); and `ecgfm plan`'s estimate,
//! with the FLOPs of a step counted from a dataset's leads.

use super::common::{self, ecgfm_env, run_ok, temp_dir, ECGFM};
use super::{assert_same_run, pretrain};
use ecgfm_test_support::free_port;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Runs `pretrain` as every rank of a 2-rank job with launcher variables from `vars(rank)`.
fn ranks_with_env(out: &Path, vars: impl Fn(usize) -> Vec<(&'static str, String)>) {
    let command = pretrain(out, 3, 4, 1);
    let children: Vec<Child> = (0..2)
        .map(|rank| {
            Command::new(ECGFM)
                .args(&command)
                .env_remove("RANK")
                .env_remove("WORLD_SIZE")
                .envs(vars(rank))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn torchrun_and_slurm_variables_form_the_same_ranks() {
    let dir = temp_dir("envs");
    let one = dir.join("one");
    run_ok(&pretrain(&one, 3, 4, 2));
    // torchrun with its agent's store on MASTER_PORT: the ranks meet one port up. Both ports
    // come from below the ephemeral range (`free_port`), where no outgoing connection takes one;
    // the agent's is held, and the one above it must be free for rank 0 to listen on.
    let torch = dir.join("torchrun");
    let (agent, port) = (0..100)
        .find_map(|_| {
            let port = free_port();
            let agent = std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
            std::net::TcpListener::bind(("0.0.0.0", port + 1)).ok()?;
            Some((agent, port))
        })
        .expect("no two free ports in a row below the ephemeral range");
    ranks_with_env(&torch, |rank| {
        vec![
            ("RANK", rank.to_string()),
            ("WORLD_SIZE", "2".into()),
            ("LOCAL_RANK", rank.to_string()),
            ("MASTER_ADDR", "127.0.0.1".into()),
            ("MASTER_PORT", port.to_string()),
            ("TORCHELASTIC_USE_AGENT_STORE", "True".into()),
        ]
    });
    drop(agent);
    assert_same_run(&one, &torch, 3);
    let slurm = dir.join("slurm");
    // As the script of `launch --slurm-script` runs it: MASTER_PORT exported, the rest SLURM's.
    let port = free_port();
    ranks_with_env(&slurm, |rank| {
        vec![
            ("SLURM_PROCID", rank.to_string()),
            ("SLURM_NTASKS", "2".into()),
            ("SLURM_LOCALID", rank.to_string()),
            ("SLURM_JOB_NODELIST", "localhost".into()),
            ("SLURM_JOB_ID", "4242".into()),
            ("MASTER_PORT", port.to_string()),
        ]
    });
    assert_same_run(&one, &slurm, 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_slurm_script_and_the_plan() {
    let script = run_ok(
        &[
            "launch",
            "--nnodes",
            "2",
            "--nproc-per-node",
            "4",
            "--slurm-script",
            "--",
            "pretrain",
            "--device",
            "cuda",
            "--model",
            "base",
            "--out",
            "/shared/runs/base",
        ]
        .map(String::from),
    );
    for needle in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --requeue",
        "#SBATCH --signal=USR1@180",
        "#SBATCH --cpus-per-task=8\n",
        // srun does not inherit sbatch's --cpus-per-task since Slurm 22.05.
        "srun --kill-on-bad-exit=1 --cpus-per-task=8 ",
        "scontrol requeue",
        "pretrain --device cuda --model base --out /shared/runs/base",
        "then RESUME=--resume; fi",
    ] {
        assert!(script.contains(needle), "{needle} missing:\n{script}");
    }
    let syntax = Command::new("bash")
        .args(["-n", "-c", &script])
        .status()
        .unwrap();
    assert!(syntax.success(), "not valid bash:\n{script}");
    requeues_only_a_stop(&script);
    let threads = run_ok(
        &[
            "launch",
            "--slurm-script",
            "--",
            "pretrain",
            "--threads",
            "4",
            "--out",
            "r",
        ]
        .map(String::from),
    );
    assert!(
        threads.contains("#SBATCH --cpus-per-task=4\n")
            && threads.contains("srun --kill-on-bad-exit=1 --cpus-per-task=4 "),
        "{threads}"
    );
    let no_out = ecgfm_env(
        &["launch", "--slurm-script", "--", "pretrain"].map(String::from),
        &[],
    );
    assert!(!no_out.status.success());
    assert!(String::from_utf8_lossy(&no_out.stderr).contains("--out"));
    let sas = "https://acct.blob.core.windows.net/ecg/ds?sv=1&sig=SECRET123";
    let signed = [
        "launch",
        "--slurm-script",
        "--",
        "pretrain",
        "--out",
        "r",
        "--data",
        sas,
    ];
    let err = common::run_err(&signed.map(String::from));
    assert!(
        err.contains("the SLURM script would keep the secret in "),
        "{err}"
    );
    assert!(
        err.contains("ds?***") && !err.contains("SECRET123"),
        "{err}"
    );

    let efficiency = |gpus: &str| -> f64 {
        let text = run_ok(&["plan", "--model", "large", "--gpus", gpus].map(String::from));
        let line = text.lines().find(|l| l.starts_with("efficiency")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap()
    };
    // A small model's step takes microseconds: none of its times or sizes prints as zero.
    let nano = run_ok(&["plan", "--model", "nano", "--gpus", "8"].map(String::from));
    for line in nano.lines().filter(|l| {
        l.starts_with("compute") || l.starts_with("gradient comms") || l.starts_with("step")
    }) {
        assert!(
            line.contains(" us") && !line.contains(" 0.0 ") && !line.contains(" 0 MB"),
            "{nano}"
        );
    }
    let (one_node, eight_nodes) = (efficiency("8"), efficiency("64"));
    assert!(
        one_node > eight_nodes && eight_nodes > 0.0,
        "{one_node} vs {eight_nodes}"
    );
    // Memory per GPU (bf16, the default precision, then fp32): bf16 and a ZeRO-1 shard each
    // take less.
    let memory = |extra: &[&str]| -> Vec<f64> {
        let mut args = vec!["plan", "--model", "large", "--gpus", "64"];
        args.extend_from_slice(extra);
        let text = run_ok(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let line = text.lines().find(|l| l.starts_with("memory")).unwrap();
        line.split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    let (plain, zero) = (memory(&[]), memory(&["--zero", "1"]));
    let (bf16, fp32) = (plain[0], plain[2]);
    assert!(
        bf16 < fp32 && zero[0] < bf16 && zero[2] < fp32,
        "{plain:?} {zero:?}"
    );
    // A preset that does not exist is a refused configuration (exit 78), as in `pretrain`.
    let err = common::run_refused(&["plan", "--model", "medium"]);
    assert!(err.contains("unknown model preset `medium`"), "{err}");
}

/// Runs the SLURM `script` with stand-ins for srun (ending with each status in turn) and
/// scontrol: only a stop (75, the ranks' checkpointed stop) requeues the job, however often it
/// was requeued before, and the script exits with the ranks' status.
fn requeues_only_a_stop(script: &str) {
    let dir = temp_dir("slurm-requeue");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("calls");
    for (tool, body) in [
        (
            "srun",
            "echo \"srun $*\" >> \"$CALLS\"; exit \"$SRUN_STATUS\"",
        ),
        ("scontrol", "echo \"scontrol $*\" >> \"$CALLS\""),
    ] {
        let script = format!("#!/bin/sh\n{body}\n");
        ecgfm_test_support::write_executable(&bin.join(tool), script.as_bytes());
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    for (status, restarts, requeued) in [(75, "40", true), (1, "0", false), (0, "0", false)] {
        let _ = std::fs::remove_file(&log);
        let run = Command::new("bash")
            .args(["-c", script])
            .env("PATH", &path)
            .env("CALLS", &log)
            .env("SRUN_STATUS", status.to_string())
            .env("SLURM_JOB_ID", "4711")
            .env("SLURM_RESTART_COUNT", restarts)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(status), "{stderr}");
        let calls = std::fs::read_to_string(&log).unwrap();
        assert!(
            calls.starts_with("srun --kill-on-bad-exit=1 --cpus-per-task="),
            "{calls}"
        );
        assert_eq!(
            calls.contains("scontrol requeue 4711"),
            requeued,
            "status {status}: {calls}\n{stderr}"
        );
        if status == 1 {
            assert!(
                stderr.contains(
                    "srun ended with status 1, not 75 (a checkpointed stop): not requeued"
                ),
                "{stderr}"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn plan_counts_a_steps_flops_from_the_datasets_leads() {
    let dir = temp_dir("plan-data");
    let data = common::synth_dataset(&dir);
    // Samples per second of the estimate (a nano step is too short for its milliseconds).
    let samples_per_s = |extra: &[&str]| -> (f64, String) {
        let mut args = vec!["plan", "--model", "nano", "--gpus", "1"];
        args.extend_from_slice(extra);
        let text = run_ok(&args);
        let line = text.lines().find(|l| l.starts_with("efficiency")).unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        (words[words.len() - 2].parse().unwrap(), text)
    };
    let (full, _) = samples_per_s(&[]);
    // Synthetic records have their 12 leads: the same step as without --data.
    let (twelve, text) = samples_per_s(&["--data", data.to_str().unwrap()]);
    assert_eq!(twelve, full, "{text}");
    assert!(text.contains("with 12.0 leads on average"), "{text}");
    // Weights that read nothing are named as such, not as an old manifest.
    let data_arg = data.to_str().unwrap();
    let err = common::run_err(&[
        "plan", "--model", "nano", "--data", data_arg, "--repeat", "synth=0",
    ]);
    assert!(
        err.contains("the --repeat weights leave none of the") && !err.contains("ingest it again"),
        "{err}"
    );
    // The same rows counted as single-lead (as a CinC 2017 ingest has them): a nano step costs
    // 19.5 times less.
    let path = data.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let train = manifest["counts"]["leads_present"]["train"]["12"].clone();
    manifest["counts"]["leads_present"]["train"] = serde_json::json!({ "1": train });
    std::fs::write(&path, manifest.to_string()).unwrap();
    let (single, text) = samples_per_s(&["--data", data.to_str().unwrap()]);
    assert!(text.contains("with 1.0 leads on average"), "{text}");
    assert!(
        (single / full - 19.5).abs() < 0.5,
        "{full} vs {single}\n{text}"
    );
    // A manifest without the count is named, with what to do.
    manifest["counts"]
        .as_object_mut()
        .unwrap()
        .remove("leads_present");
    std::fs::write(&path, manifest.to_string()).unwrap();
    let mut args = vec!["plan", "--model", "nano", "--data", data.to_str().unwrap()];
    let err = common::run_err(&args);
    assert!(err.contains("ingest it again"), "{err}");
    args[4] = "/nonexistent/dataset";
    assert!(common::run_err(&args).contains("/nonexistent/dataset"));
    std::fs::remove_dir_all(dir).unwrap();
}

/// `plan` warns that a step does not fit by the memory of the run's own precision: the large
/// model at micro-batch 512 fits an H100 in bf16 (about 57 GB) but not in fp32 (about 91 GB).
#[test]
fn plan_warns_only_where_the_runs_precision_does_not_fit() {
    let warning = |precision: &str| -> Option<String> {
        let args = [
            "plan",
            "--model",
            "large",
            "--batch-size",
            "512",
            "--precision",
            precision,
        ];
        let text = run_ok(&args.map(String::from));
        text.lines()
            .find(|l| l.starts_with("warning: does not fit"))
            .map(str::to_string)
    };
    assert_eq!(warning("bf16"), None);
    let fp32 = warning("fp32").expect("fp32 does not fit: warned");
    assert!(
        fp32.contains("in fp32") && fp32.contains("--precision bf16"),
        "{fp32}"
    );
}
