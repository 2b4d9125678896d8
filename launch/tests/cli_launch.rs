//! `ecgfm launch` end to end with CPU ranks on this machine: 2 and 4 ranks (with and without
//! ZeRO-1) give bit for bit the run of one process accumulating the same global batch, and the
//! same count of FLOPs over mixed-lead batches; two launchers form one two-node job; a rank
//! killed mid-run is named and `--max-restarts` finishes the run with the weights of an
//! uninterrupted one; a run moves from 4 ranks to 2; torchrun's and SLURM's variables form the
//! same ranks; a NaN on one rank skips the step on all of them, and a batch one rank cannot read
//! stops all of them with a checkpoint that resumes exactly; nodes started with other settings,
//! or resuming from other checkpoints, are refused before their first step; the launcher
//! forwards its stop signals, exits 75 for a stop, and its ranks do not outlive it.

mod common;

use common::{checkpoint_tensor_bytes, ecgfm_env, run_ok, run_ok_in, set_flag, temp_dir, ECGFM};
use ecgfm_test_support::free_port;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `pretrain` for nano on short inputs: micro-batch `batch`, `accum` micro-steps per rank.
fn pretrain(out: &Path, steps: u64, batch: usize, accum: usize) -> Vec<String> {
    let mut args: Vec<String> = [
        "pretrain",
        "--steps",
        &steps.to_string(),
        "--batch-size",
        &batch.to_string(),
        "--checkpoint-every",
        "3",
        "--threads",
        "1",
        "--collective-timeout",
        "60",
        "--rdzv-timeout",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for set in [
        "model.samples=750".to_string(),
        "train.log_every=1".into(),
        "optim.warmup_steps=2".into(),
        format!("train.accum_steps={accum}"),
    ] {
        args.extend(["--set".into(), set]);
    }
    args
}

/// `ecgfm launch` of `nproc` ranks meeting on a free port the launcher picks (`--master-port 0`).
/// The launcher keeps listening on that port, so a rank 0 that bound it itself would fail: every
/// launch of these tests also checks that rank 0 adopts the launcher's socket.
fn launch_args(nproc: usize, extra: &[&str], command: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "launch".into(),
        "--nproc-per-node".into(),
        nproc.to_string(),
        "--master-port".into(),
        "0".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("--".into());
    args.extend(command.iter().cloned());
    args
}

/// (step, loss bits) of every metrics record.
fn losses(run: &Path) -> Vec<(u64, u32)> {
    records(run)
        .iter()
        .map(|v| {
            let loss = v["loss"].as_f64().map_or(f32::NAN, |l| l as f32);
            (v["step"].as_u64().unwrap(), loss.to_bits())
        })
        .collect()
}

/// Every metrics record.
fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// (step, training FLOPs so far) of every metrics record.
fn flops(run: &Path) -> Vec<(u64, f64)> {
    records(run)
        .iter()
        .map(|v| (v["step"].as_u64().unwrap(), v["flops"].as_f64().unwrap()))
        .collect()
}

fn assert_same_run(a: &Path, b: &Path, step: u64) {
    assert_eq!(losses(a), losses(b), "{} vs {}", a.display(), b.display());
    assert!(
        checkpoint_tensor_bytes(a, step) == checkpoint_tensor_bytes(b, step),
        "weights of {} and {} differ",
        a.display(),
        b.display()
    );
}

#[test]
fn two_and_four_ranks_equal_one_process_accumulating_the_same_global_batch() {
    let dir = temp_dir("equal");
    let steps = 5;
    // Global batch 16: 1 x 4 x 4 accumulated, 2 ranks x 4 x 2, 4 ranks x 4 x 1; half the
    // samples single-lead, so each rank's batches cost different FLOPs.
    let mixed = ["--set", "data.synth_single_lead_fraction=0.5"].map(String::from);
    let one = dir.join("one");
    run_ok(&[pretrain(&one, steps, 4, 4), mixed.to_vec()].concat());
    let per_step: Vec<f64> = flops(&one).windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        per_step.iter().any(|&f| f != per_step[0]),
        "steps of mixed leads cost different FLOPs: {per_step:?}"
    );
    // Buckets of 0.1 MiB cut nano's gradients in five: most lie wholly on one rank's side.
    let runs: [(&str, usize, usize, &[&str]); 7] = [
        ("two", 2, 2, &[]),
        ("two-again", 2, 2, &[]),
        ("four", 4, 1, &[]),
        ("two-buckets", 2, 2, &["--bucket-mb", "0.1"]),
        ("four-buckets", 4, 1, &["--bucket-mb", "0.1"]),
        ("two-zero", 2, 2, &["--zero", "1"]),
        ("four-zero", 4, 1, &["--zero", "1"]),
    ];
    for (name, ranks, accum, extra) in runs {
        let out = dir.join(name);
        let mut command = pretrain(&out, steps, 4, accum);
        command.extend(extra.iter().map(|s| s.to_string()).chain(mixed.clone()));
        run_ok(&launch_args(ranks, &[], &command));
        assert_same_run(&one, &out, steps);
        assert_eq!(
            flops(&one),
            flops(&out),
            "{name}: FLOPs over every rank's batches"
        );
    }
    let zero_ckpt = dir.join("four-zero/checkpoints/step_00000005");
    let shards = std::fs::read_dir(&zero_ckpt)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("optimizer.shard-")
        })
        .count();
    assert_eq!(shards, 4, "each ZeRO-1 rank writes its optimizer shard");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn two_launchers_form_one_two_node_job() {
    let dir = temp_dir("nodes");
    let one = dir.join("one");
    run_ok(&pretrain(&one, 4, 4, 2));
    let two = dir.join("two");
    let port = free_port().to_string();
    let command = pretrain(&two, 4, 4, 1);
    // The other nodes could not know a port the launcher of node 0 picked.
    let refused = ecgfm_env(&launch_args(1, &["--nnodes", "2"], &command), &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--master-port 0 (a free port) works on one node only"),
        "{stderr}"
    );
    for out in two_nodes(&port, [(&command, None), (&command, None)]) {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_same_run(&one, &two, 4);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs a two-node job on `port`: one `ecgfm launch` of one rank per node, node i running
/// `nodes[i].0` in the folder `nodes[i].1` (the test's own when `None`); their outputs.
fn two_nodes(port: &str, nodes: [(&[String], Option<&Path>); 2]) -> Vec<Output> {
    let children: Vec<Child> = nodes
        .iter()
        .enumerate()
        .map(|(rank, (command, cwd))| {
            let rank = rank.to_string();
            let flags = ["--nnodes", "2", "--node-rank", &rank];
            let mut args = launch_args(1, &flags, command);
            let p = args.iter().position(|a| a == "--master-port").unwrap();
            args[p + 1] = port.to_string();
            let mut cmd = Command::new(ECGFM);
            if let Some(cwd) = cwd {
                cmd.current_dir(cwd);
            }
            cmd.args(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect()
}

#[test]
fn nodes_started_with_different_settings_are_refused_naming_the_setting() {
    let dir = temp_dir("differing-nodes");
    let run = dir.join("run");
    let mut zero = pretrain(&run, 4, 4, 1);
    zero.extend(["--seed".into(), "1".into()]);
    // Another seed, and another thread count, which each rank may choose for itself.
    let mut one = pretrain(&run, 4, 4, 1);
    one.extend(["--seed".into(), "2".into()]);
    set_flag(&mut one, "--threads", "2");
    let port = free_port().to_string();
    for out in two_nodes(&port, [(&zero, None), (&one, None)]) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("the ranks of this job differ before their first step")
                && stderr.contains("train.seed is 1 on rank 0 but 2 on rank 1"),
            "{stderr}"
        );
        assert!(!stderr.contains("train.threads is"), "{stderr}");
    }
    assert!(checkpoints(&run).is_empty(), "{:?}", checkpoints(&run));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn nodes_that_resumed_from_different_checkpoints_stop_naming_each_step() {
    // Node 1 sees the run folder with its newest checkpoint corrupt (a stale or damaged copy):
    // each node runs in a folder of its own, and `--out run` is relative.
    let dir = temp_dir("differing-resume");
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    let run = Path::new("run");
    let mut first = pretrain(run, 8, 4, 1);
    first.extend(["--stop-after".into(), "7".into()]);
    run_ok_in(&a, &first);
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(copied.success());
    let newest = b.join("run/checkpoints/step_00000007/model.safetensors");
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&newest, bytes).unwrap();
    let mut resume = pretrain(run, 8, 4, 1);
    resume.push("--resume".into());
    let port = free_port().to_string();
    for out in two_nodes(
        &port,
        [(&resume, Some(a.as_path())), (&resume, Some(b.as_path()))],
    ) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("they resumed from different checkpoints: rank 0 resumed from step 7")
                && stderr.contains("but rank 1 resumed from step 6"),
            "{stderr}"
        );
    }
    let saved = checkpoints(&a.join(run));
    assert!(!saved.contains(&"step_00000008".to_string()), "{saved:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Starts a 2-rank launch of `command` and sends `signal` to rank 1 once rank 0 has logged
/// `after` steps; returns the launcher's output when it ends.
fn launch_and_signal_rank_1(
    command: &[String],
    out: &Path,
    after: usize,
    extra: &[&str],
    signal: &str,
) -> Output {
    let child = Command::new(ECGFM)
        .args(launch_args(2, extra, command))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    signal_rank_1_when(child, out, after, signal)
}

/// The lines a child writes to a pipe, read on a thread of their own so the pipe never fills and
/// the test can look at them while the child runs.
struct Lines {
    arrived: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
    text: String,
}

impl Lines {
    fn read(pipe: impl std::io::Read + Send + 'static) -> Self {
        use std::io::{BufRead, BufReader};
        let (tx, arrived) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines {
            arrived,
            reader,
            text: String::new(),
        }
    }

    /// The lines that arrived since the last call (all of them are kept in `text`).
    fn new_lines(&mut self) -> Vec<String> {
        let lines: Vec<String> = self.arrived.try_iter().collect();
        for line in &lines {
            self.text.push_str(line);
            self.text.push('\n');
        }
        lines
    }

    /// Every line, once the child has closed the pipe.
    fn all(mut self) -> String {
        while let Ok(line) = self.arrived.recv() {
            self.text.push_str(&line);
            self.text.push('\n');
        }
        self.reader.join().unwrap();
        self.text
    }
}

/// A guard against a hang, not a time a job must meet: a launcher still running this long after
/// its rank 1 was signalled is killed, with its ranks, and the test fails.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// The (rank, pid) of each "launch: rank R started (pid P)" line of `lines`.
fn started_ranks(lines: &[String]) -> Vec<(usize, i32)> {
    lines
        .iter()
        .filter_map(|line| {
            let rest = line.strip_prefix("launch: rank ")?;
            let (rank, pid) = rest.split_once(" started (pid ")?;
            Some((rank.parse().ok()?, pid.trim_end_matches(')').parse().ok()?))
        })
        .collect()
}

fn signal_rank_1_when(mut child: Child, out: &Path, after: usize, signal: &str) -> Output {
    let stdout = Lines::read(child.stdout.take().unwrap());
    let mut stderr = Lines::read(child.stderr.take().unwrap());
    let mut ranks = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        ranks.extend(started_ranks(&stderr.new_lines()));
        let rank_1 = ranks.iter().rev().find(|(rank, _)| *rank == 1);
        if let (Some((_, pid)), true) = (rank_1, logged_steps(out) >= after) {
            Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > HANG_GUARD {
            // SIGKILL, which also ends a stopped rank (the SIGTERM a rank gets when its
            // launcher dies waits until it runs again).
            ranks.extend(started_ranks(&stderr.new_lines()));
            for (_, pid) in &ranks {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "hang guard: the launch still ran {HANG_GUARD:?} after rank 1 got {signal}, \
                 killed:\n{}",
                stderr.text
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.all().into_bytes(),
        stderr: stderr.all().into_bytes(),
    }
}

/// The lines of the run's metrics.jsonl so far (0 before it exists).
fn logged_steps(out: &Path) -> usize {
    std::fs::read_to_string(out.join("metrics.jsonl")).map_or(0, |t| t.lines().count())
}

#[test]
fn a_killed_rank_is_named_and_max_restarts_finishes_the_run_exactly() {
    let dir = temp_dir("kill");
    // Long enough that rank 1 is still running when it is killed after step 5.
    let steps = 60;
    let full = dir.join("full");
    run_ok(&launch_args(2, &[], &pretrain(&full, steps, 4, 1)));

    let failed = dir.join("failed");
    let out = launch_and_signal_rank_1(&pretrain(&failed, steps, 4, 1), &failed, 5, &[], "-KILL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("rank 1 was killed by signal 9"), "{stderr}");

    let restarted = dir.join("restarted");
    let command = pretrain(&restarted, steps, 4, 1);
    let out = launch_and_signal_rank_1(&command, &restarted, 5, &["--max-restarts", "1"], "-KILL");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("restart 1 of 1"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("[rank 0] resuming from"), "{stdout}");
    assert_same_run(&full, &restarted, steps);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_run_on_four_ranks_resumes_on_two() {
    let dir = temp_dir("regrid");
    let steps = 8;
    let four = dir.join("four");
    run_ok(&launch_args(4, &[], &pretrain(&four, steps, 4, 1)));
    // The same global batch of 16: 4 ranks x 4, then 2 ranks x 8.
    let moved = dir.join("moved");
    let mut first = pretrain(&moved, steps, 4, 1);
    first.extend(["--stop-after".into(), "4".into()]);
    run_ok(&launch_args(4, &[], &first));
    let mut rest = pretrain(&moved, steps, 8, 1);
    rest.push("--resume".into());
    let stdout = run_ok(&launch_args(2, &[], &rest));
    assert!(stdout.contains("resuming from"), "{stdout}");
    let (a, b) = (losses(&four), losses(&moved));
    assert_eq!(a.len(), b.len());
    for ((sa, la), (sb, lb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        let (la, lb) = (f32::from_bits(*la), f32::from_bits(*lb));
        assert!(
            (la - lb).abs() <= 1e-5 * la.abs(),
            "step {sa}: {la} vs {lb}"
        );
    }
    // The first four steps ran on 4 ranks in both: identical.
    assert_eq!(a[..4], b[..4]);
    let seen = |run: &Path| -> u64 {
        let last = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        v["samples_seen"].as_u64().unwrap()
    };
    assert_eq!(seen(&four), seen(&moved));
    // The validation set does not depend on the batch geometry: the same loss at the end, to
    // rounding.
    let val = |run: &Path| -> f64 {
        let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let last = text.lines().rfind(|l| l.contains("val_loss")).unwrap();
        let v: serde_json::Value = serde_json::from_str(last).unwrap();
        v["val_loss"].as_f64().unwrap()
    };
    let (va, vb) = (val(&four), val(&moved));
    assert!((va - vb).abs() <= 1e-5 * va, "val loss {va} vs {vb}");
    // A different global batch is refused, naming both.
    let mut wrong = pretrain(&moved, steps + 2, 4, 1);
    wrong.push("--resume".into());
    let out = ecgfm_env(&launch_args(2, &[], &wrong), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("16 samples per step") && stderr.contains("has 8"),
        "{stderr}"
    );
    // The launcher's own error says why the rank failed, not only that it did.
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: rank ")
            && last.contains("exited with status 1 (")
            && last.contains("has 8"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

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
fn a_nan_on_one_rank_skips_the_step_on_all_ranks() {
    let dir = temp_dir("nan");
    let out = dir.join("skip");
    let args = launch_args(2, &[], &pretrain(&out, 5, 4, 1));
    let result = ecgfm_env(&args, &[("ECGFM_FAULT_NONFINITE", "1:2")]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    // Step index 2 is the progress line's step 3.
    assert!(stderr.contains("step 3 skipped on every rank"), "{stderr}");
    assert!(stderr.contains("non-finite loss on rank [1]"), "{stderr}");
    assert!(stderr.contains("non-finite input on rank [1]"), "{stderr}");
    let records = losses(&out);
    assert!(f32::from_bits(records[2].1).is_nan());
    assert!(records
        .iter()
        .filter(|r| r.0 != 2)
        .all(|r| f32::from_bits(r.1).is_finite()));

    let stop = dir.join("stop");
    let mut command = pretrain(&stop, 5, 4, 1);
    command.extend(["--on-nonfinite".into(), "stop".into()]);
    let result = ecgfm_env(
        &launch_args(2, &[], &command),
        &[("ECGFM_FAULT_NONFINITE", "1:2")],
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("at step 3 (non-finite loss on rank 1): a batch's signals held NaN"),
        "{stderr}"
    );
    assert!(!stderr.contains("clip_norm"), "{stderr}");

    let repeated = dir.join("repeated");
    let args = launch_args(2, &[], &pretrain(&repeated, 8, 4, 1));
    let result = ecgfm_env(&args, &[("ECGFM_FAULT_NONFINITE", "0:2,1:3,0:4")]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("3 steps in a row"), "{stderr}");
    // The two skipped steps and the one that stopped the run are logged, each with a null loss.
    let nan_steps: Vec<u64> = losses(&repeated)
        .iter()
        .filter(|r| f32::from_bits(r.1).is_nan())
        .map(|r| r.0)
        .collect();
    assert_eq!(nan_steps, [2, 3, 4]);

    // The count of skipped steps in a row survives a checkpoint: two skipped before the stop,
    // the third after the resume ends the run as it would have without the stop.
    let resumed = dir.join("resumed");
    let mut first = pretrain(&resumed, 8, 4, 1);
    first.extend(["--stop-after".into(), "4".into()]);
    let result = ecgfm_env(&first, &[("ECGFM_FAULT_NONFINITE", "0:2,0:3")]);
    assert!(result.status.success());
    let mut rest = pretrain(&resumed, 8, 4, 1);
    rest.push("--resume".into());
    let result = ecgfm_env(&rest, &[("ECGFM_FAULT_NONFINITE", "0:4")]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(stderr.contains("3 steps in a row"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_read_failing_on_one_rank_stops_every_rank_with_a_checkpoint_that_resumes_exactly() {
    let dir = temp_dir("read-fail");
    let steps = 7;
    let one = dir.join("one");
    run_ok(&pretrain(&one, steps, 4, 4));
    // Rank 1 cannot read step 5's batch ahead (ZeRO-1: both ranks write their optimizer
    // shard); rank 0, the writer, cannot read micro-batch 1 of step 5 inside it.
    let cases: [(&str, &str, &[&str]); 2] = [
        ("ahead-zero", "1:4", &["--zero", "1"]),
        ("inside", "0:4:1", &[]),
    ];
    for (name, fault, extra) in cases {
        let out = dir.join(name);
        let mut command = pretrain(&out, steps, 4, 2);
        command.extend(extra.iter().map(|s| s.to_string()));
        let result = ecgfm_env(
            &launch_args(2, &[], &command),
            &[("ECGFM_FAULT_READ", fault)],
        );
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{name}: {stderr}");
        assert!(
            stderr.contains("could not read the batch of step 5: data source")
                && stderr.contains("ECGFM_FAULT_READ"),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains("the run stopped after step 4 with a checkpoint there"),
            "{name}: {stderr}"
        );
        let saved = out.join("checkpoints/step_00000004");
        assert!(saved.join("COMPLETE").is_file(), "{name}: {stderr}");
        let shards = std::fs::read_dir(&saved)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("optimizer.shard-")
            })
            .count();
        let zero_shards = if extra.is_empty() { 0 } else { 2 };
        assert_eq!(shards, zero_shards, "{name}");
        command.push("--resume".into());
        run_ok(&launch_args(2, &[], &command));
        assert_same_run(&one, &out, steps);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_corrupt_newest_checkpoint_is_named_and_the_run_resumes_from_the_one_before() {
    let dir = temp_dir("corrupt");
    let full = dir.join("full");
    run_ok(&pretrain(&full, 8, 4, 1));
    let split = dir.join("split");
    let mut first = pretrain(&split, 8, 4, 1);
    first.extend(["--stop-after".into(), "7".into()]);
    run_ok(&first);
    let newest = split.join("checkpoints/step_00000007/model.safetensors");
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&newest, bytes).unwrap();
    let mut resume = pretrain(&split, 8, 4, 1);
    resume.push("--resume".into());
    let out = ecgfm_env(&resume, &[]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: skipping checkpoint") && stderr.contains("step_00000007"),
        "{stderr}"
    );
    assert!(
        stdout.contains("resuming from") && stdout.contains("step_00000006"),
        "{stdout}"
    );
    assert_same_run(&full, &split, 8);

    // A file the completion marker lists but that is gone: the same fallback.
    let lost = dir.join("lost");
    let mut first = pretrain(&lost, 8, 4, 1);
    first.extend(["--stop-after".into(), "7".into()]);
    run_ok(&first);
    std::fs::remove_file(lost.join("checkpoints/step_00000007/optimizer.safetensors")).unwrap();
    let mut resume = pretrain(&lost, 8, 4, 1);
    resume.push("--resume".into());
    let out = ecgfm_env(&resume, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is missing"), "{stderr}");
    assert_same_run(&full, &lost, 8);
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
        let path = bin.join(tool);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
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

#[test]
fn dataset_ranks_split_each_global_batch_and_resume_on_one_process() {
    let dir = temp_dir("dataset");
    let data = dir.join("data");
    run_ok(
        &[
            "data",
            "synth",
            "--out",
            data.to_str().unwrap(),
            "--records",
            "24",
        ]
        .map(String::from),
    );
    let with_data = |out: &Path, batch: usize| {
        let mut args = pretrain(out, 6, batch, 1);
        args.extend(
            ["--data", data.to_str().unwrap(), "--set", "data.split=all"].map(String::from),
        );
        args
    };
    let (a, b) = (dir.join("a"), dir.join("b"));
    run_ok(&launch_args(2, &[], &with_data(&a, 4)));
    run_ok(&launch_args(2, &[], &with_data(&b, 4)));
    assert_same_run(&a, &b, 6);
    // Stopped on 2 ranks x 4, resumed as one process x 8: the same global batches.
    let moved = dir.join("moved");
    let mut first = with_data(&moved, 4);
    first.extend(["--stop-after".into(), "3".into()]);
    run_ok(&launch_args(2, &[], &first));
    let mut rest = with_data(&moved, 8);
    rest.push("--resume".into());
    run_ok(&rest);
    let (la, lm) = (losses(&a), losses(&moved));
    assert_eq!(la[..3], lm[..3]);
    assert_eq!(la.len(), lm.len());
    for ((step, x), (_, y)) in la.iter().zip(&lm) {
        let (x, y) = (f32::from_bits(*x), f32::from_bits(*y));
        assert!((x - y).abs() <= 1e-5 * x.abs(), "step {step}: {x} vs {y}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_hung_rank_is_named_after_the_collective_timeout() {
    let dir = temp_dir("hang");
    let out = dir.join("run");
    let mut command = pretrain(&out, 400, 4, 1);
    set_flag(&mut command, "--collective-timeout", "2");
    // SIGSTOP: rank 1 stays alive, its connections open, but it never answers again. The job
    // ends (a hang is caught by the launch helper's hang guard) with the timeout's message,
    // which shows that the 2 s collective timeout, not anything slower, stopped it.
    let result = launch_and_signal_rank_1(&command, &out, 3, &[], "-STOP");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(
        stderr.contains("timed out after 2s waiting for rank(s) 1"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The checkpoints of `run` (folder names; a partial one starts with a dot).
fn checkpoints(run: &Path) -> Vec<String> {
    std::fs::read_dir(run.join("checkpoints"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `pretrain` of `steps` steps into `out` with no periodic checkpoint.
fn pretrain_without_checkpoints(out: &Path, steps: u64) -> Vec<String> {
    let mut command = pretrain(out, steps, 4, 1);
    set_flag(&mut command, "--checkpoint-every", "0");
    command
}

/// Waits until `run` has logged 5 steps while `child` runs (panics naming `lines` otherwise).
fn wait_for_five_steps(child: &mut Child, run: &Path, lines: &mut Lines) {
    let started = Instant::now();
    while logged_steps(run) < 5 {
        if let Some(status) = child.try_wait().unwrap() {
            lines.new_lines();
            panic!(
                "the run ended ({status}) before its fifth step:\n{}",
                lines.text
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            lines.new_lines();
            panic!(
                "the run did not reach its fifth step in 60 s:\n{}",
                lines.text
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Launches `command` (which trains into `run`) on two ranks in a process group of its own,
/// waits for five steps and sends `signal` to the launcher, or to its whole group; asserts the
/// stop every rank makes (each says it stopped; the launcher exits 75, EX_TEMPFAIL, as they
/// do). The checkpoints left in `run`.
fn stop_launch_by_signal(run: &Path, command: &[String], signal: &str, group: bool) -> Vec<String> {
    let mut child = Command::new(ECGFM)
        .args(launch_args(2, &[], command))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::read(child.stderr.take().unwrap());
    wait_for_five_steps(&mut child, run, &mut lines);
    let pid = child.id().to_string();
    let whom = match group {
        true => format!("-{pid}"),
        false => pid,
    };
    Command::new("kill")
        .args([signal, "--", &whom])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = lines.all();
    assert_eq!(status.code(), Some(75), "{signal} {whom}: {stderr}");
    for rank in 0..2 {
        assert!(
            stderr.contains(&format!("[rank {rank}] error: stopped by a signal at step")),
            "{signal} {whom}: {stderr}"
        );
    }
    checkpoints(run)
}

#[test]
fn sigterm_checkpoints_every_rank_at_one_step_and_the_run_resumes_exactly() {
    let dir = temp_dir("sigterm");
    let steps = 60;
    let full = dir.join("full");
    run_ok(&launch_args(2, &[], &pretrain(&full, steps, 4, 1)));
    // SIGTERM to the launcher alone (it forwards it), then to its whole process group as Ctrl-C
    // or `timeout` send it: every rank then gets it twice, from there and forwarded.
    for (name, target) in [("stopped", "launcher"), ("stopped-group", "group")] {
        let stopped = dir.join(name);
        let command = pretrain_without_checkpoints(&stopped, steps);
        let saved = stop_launch_by_signal(&stopped, &command, "-TERM", target == "group");
        assert_eq!(saved.len(), 1, "{target}: {saved:?}");
        assert_ne!(
            saved[0],
            format!("step_{steps:08}"),
            "the run was not interrupted"
        );
        let mut resume = command;
        resume.push("--resume".into());
        run_ok(&launch_args(2, &[], &resume));
        assert_same_run(&full, &stopped, steps);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn under_slurm_a_rank_stopped_by_sigusr1_leaves_only_once_the_checkpoint_is_written() {
    let dir = temp_dir("usr1");
    // Without ZeRO rank 0 writes the whole checkpoint; with it every rank writes its optimizer
    // shard and rank 0 then seals the folder (hashes, COMPLETE, rename).
    for (name, zero) in [("run", &[][..]), ("run-zero", &["--zero", "1"][..])] {
        let run = dir.join(name);
        let mut command = pretrain_without_checkpoints(&run, 100_000);
        command.extend(zero.iter().map(|a| a.to_string()));
        stop_slurm_ranks_by_sigusr1(&run, &command);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `command` as 2 SLURM tasks, sends both SIGUSR1 after 5 steps, kills rank 0 as soon as
/// rank 1 has exited (srun --kill-on-bad-exit), and checks the checkpoint was complete by then.
fn stop_slurm_ranks_by_sigusr1(run: &Path, command: &[String]) {
    let port = free_port();
    let mut ranks: Vec<Child> = (0..2)
        .map(|rank| {
            Command::new(ECGFM)
                .args(command)
                .env_remove("RANK")
                .env_remove("WORLD_SIZE")
                .envs([
                    ("SLURM_PROCID", rank.to_string()),
                    ("SLURM_NTASKS", "2".into()),
                    ("SLURM_LOCALID", rank.to_string()),
                    ("SLURM_JOB_NODELIST", "localhost".into()),
                    ("SLURM_JOB_ID", "4243".into()),
                    ("MASTER_PORT", port.to_string()),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut lines = Lines::read(ranks[1].stderr.take().unwrap());
    wait_for_five_steps(&mut ranks[1], run, &mut lines);
    // SLURM's warning before the time limit reaches every task; when one exits with an error,
    // srun --kill-on-bad-exit kills the others at once, as here.
    for rank in &ranks {
        Command::new("kill")
            .args(["-USR1", &rank.id().to_string()])
            .status()
            .unwrap();
    }
    let status = ranks[1].wait().unwrap();
    ranks[0].kill().unwrap();
    ranks[0].wait().unwrap();
    let stderr = lines.all();
    // A rank stopped with its checkpoint saved exits 75 (EX_TEMPFAIL), as launch expects.
    assert_eq!(status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("stopped by a signal at step"), "{stderr}");
    let saved = checkpoints(run);
    assert!(
        saved.iter().any(|name| name.starts_with("step_")),
        "rank 1 left before rank 0 had written the checkpoint: {saved:?}\n{stderr}"
    );
}

/// The pids of the first `n` ranks the launcher whose stderr is `lines` reports started.
fn rank_pids(lines: &mut Lines, n: usize) -> Vec<i32> {
    let mut pids = Vec::new();
    let started = Instant::now();
    while pids.len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            lines.text
        );
        pids.extend(lines.new_lines().iter().filter_map(|line| {
            let rest = line.split_once(" started (pid ")?.1;
            rest.trim_end_matches(')').parse::<i32>().ok()
        }));
        std::thread::sleep(Duration::from_millis(1));
    }
    pids
}

/// Whether process `pid` still runs (not gone, not a zombie nobody reaped).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

#[test]
fn the_launcher_forwards_sigusr1_and_sighup_and_its_ranks_stop_when_it_dies() {
    let dir = temp_dir("launcher-signals");
    // SIGUSR1 (sbatch --signal=B:USR1 around `ecgfm launch`) and SIGHUP (the terminal closed)
    // reach the launcher alone: every rank checkpoints and stops, and the launcher exits 75.
    for (name, signal) in [("usr1", "-USR1"), ("hup", "-HUP")] {
        let run = dir.join(name);
        let command = pretrain_without_checkpoints(&run, 100_000);
        let saved = stop_launch_by_signal(&run, &command, signal, false);
        assert_eq!(saved.len(), 1, "{name}: {saved:?}");
    }
    // A launcher killed outright forwards nothing: its ranks get SIGTERM from the kernel instead
    // of training on unowned (quietly: no output line fails on the closed pipe first).
    let run = dir.join("killed");
    let mut command = pretrain(&run, 100_000, 4, 1);
    set_flag(&mut command, "--checkpoint-every", "2");
    for set in ["train.log_every=100000", "train.val_every=100000"] {
        command.extend(["--set".into(), set.into()]);
    }
    let mut child = Command::new(ECGFM)
        .args(launch_args(2, &[], &command))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::read(child.stderr.take().unwrap());
    let pids = rank_pids(&mut lines, 2);
    let started = Instant::now();
    while checkpoints(&run).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            lines.text
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    while pids.iter().any(|&pid| alive(pid)) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "ranks {pids:?} outlived their launcher by 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ranks_stopped_by_their_own_signal_are_a_stop_not_a_failure_to_restart() {
    // SLURM's --signal (without B:) and scancel --signal reach the ranks, not the launcher.
    let dir = temp_dir("rank-stop");
    let run = dir.join("run");
    let command = pretrain_without_checkpoints(&run, 60);
    let mut child = Command::new(ECGFM)
        .args(launch_args(2, &["--max-restarts", "2"], &command))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Lines::read(child.stderr.take().unwrap());
    let pids = rank_pids(&mut lines, 2);
    wait_for_five_steps(&mut child, &run, &mut lines);
    for pid in &pids {
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    }
    let status = child.wait().unwrap();
    let stderr = lines.all();
    assert_eq!(
        status.code(),
        Some(75),
        "a stopped run is neither finished nor failed: {stderr}"
    );
    assert!(!stderr.contains("restarting"), "{stderr}");
    assert!(
        stderr.contains("error: rank 0 stopped by a signal at step")
            || stderr.contains("error: rank 1 stopped by a signal at step"),
        "{stderr}"
    );
    let saved = checkpoints(&run);
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(saved[0].starts_with("step_") && saved[0] != "step_00000060");
    std::fs::remove_dir_all(dir).unwrap();
}

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
        err.contains("--nproc-per-node 100000: at most 1024 ranks on one node"),
        "{err}"
    );
    assert!(!err.contains("started"), "{err}");
    assert!(!dir.join("run").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
