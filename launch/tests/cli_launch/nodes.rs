//! Two-node jobs: two launchers (of one rank or two each) form one job with the run of one process,
//! and nodes started with
//! other settings, or resuming from other checkpoints, are refused before their first step.

use super::common::{ecgfm_env, run_ok, run_ok_in, set_flag, temp_dir, ECGFM};
use super::{assert_same_run, checkpoints, launch_args, pretrain};
use ecgfm_test_support::free_port;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

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
    for out in two_nodes(&port, 1, [(&command, None), (&command, None)]) {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_same_run(&one, &two, 4);
    // Two ranks a node: node 1 holds ranks 2 and 3.
    let one = dir.join("one-of-four");
    run_ok(&pretrain(&one, 4, 4, 4));
    let four = dir.join("four");
    let command = pretrain(&four, 4, 4, 1);
    for out in two_nodes(
        &free_port().to_string(),
        2,
        [(&command, None), (&command, None)],
    ) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
    }
    assert_same_run(&one, &four, 4);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs a two-node job on `port`: one `ecgfm launch` of `ranks` ranks per node, node i running
/// `nodes[i].0` in the folder `nodes[i].1` (the test's own when `None`); their outputs.
fn two_nodes(port: &str, ranks: usize, nodes: [(&[String], Option<&Path>); 2]) -> Vec<Output> {
    let children: Vec<Child> = nodes
        .iter()
        .enumerate()
        .map(|(rank, (command, cwd))| {
            let rank = rank.to_string();
            let flags = ["--nnodes", "2", "--node-rank", &rank];
            let mut args = launch_args(ranks, &flags, command);
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
    for out in two_nodes(&port, 1, [(&zero, None), (&one, None)]) {
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
        1,
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
