//! How `ecgfm launch` ends a job from an attempt's end: the exit statuses a wrapper reads (75,
//! 65, 78) and when it restarts the ranks.

use super::*;
use crate::{bad_config::is_bad_config, damaged_data::is_damaged, signals::is_stop};

fn failed(failures: &[&str]) -> Attempt {
    Attempt {
        failures: failures.iter().map(|f| f.to_string()).collect(),
        ..Attempt::default()
    }
}

/// The error an attempt ends the job with, and its kinds: (stop, damaged, bad config).
fn ended(attempt: &Attempt, signal: Option<i32>, restarts: u32) -> (String, [bool; 3]) {
    match outcome(attempt, signal, 2, restarts) {
        Outcome::End(err) => {
            let kinds = [is_stop(&err), is_damaged(&err), is_bad_config(&err)];
            (err.to_string(), kinds)
        }
        Outcome::Finished => panic!("finished"),
        Outcome::Restart(cause) => panic!("restarted: {cause}"),
    }
}

#[test]
fn a_stop_exits_75_only_when_every_rank_saved() {
    let finished = Attempt {
        finished: true,
        ..Attempt::default()
    };
    assert!(matches!(outcome(&finished, None, 2, 0), Outcome::Finished));
    let saved = Attempt {
        stopped: Some("rank 1 stopped on SIGTERM".into()),
        all_stopped: true,
        ..Attempt::default()
    };
    let (said, kinds) = ended(&saved, None, 0);
    assert_eq!(
        (said.as_str(), kinds),
        ("rank 1 stopped on SIGTERM", [true, false, false])
    );
    let (said, kinds) = ended(&saved, Some(15), 0);
    assert_eq!(said, "stopped by signal 15 (forwarded to every rank)");
    assert_eq!(kinds, [true, false, false]);
    // A rank failed while the others saved: not a stop a wrapper may resume as one.
    let some_failed = Attempt {
        all_stopped: false,
        failures: vec!["rank 0 exited with status 1".into()],
        ..saved
    };
    for signal in [None, Some(15)] {
        let (said, kinds) = ended(&some_failed, signal, 0);
        assert!(said.ends_with("; not every rank saved its checkpoint (see their errors above)"));
        assert_eq!(kinds, [false, false, false], "{said}");
    }
}

#[test]
fn damaged_data_and_refused_configurations_are_never_restarted() {
    let damaged = Attempt {
        damaged: true,
        ..failed(&["rank 1 exited with status 65"])
    };
    let (said, kinds) = ended(&damaged, None, 0);
    assert!(said.starts_with("rank 1 exited with status 65; not restarted: the data is damaged"));
    assert_eq!(kinds, [false, true, false]);
    let refused = Attempt {
        bad_config: true,
        ..failed(&["rank 0 exited with status 78"])
    };
    let (said, kinds) = ended(&refused, None, 0);
    assert!(said.ends_with("not restarted: the configuration was refused, as it would be again"));
    assert_eq!(kinds, [false, false, true]);
}

#[test]
fn other_failures_restart_while_restarts_are_left() {
    let attempt = failed(&["rank 1 killed by signal 9", "rank 0 exited with status 1"]);
    let cause = "rank 1 killed by signal 9; then rank 0 exited with status 1";
    assert!(matches!(outcome(&attempt, None, 2, 1), Outcome::Restart(c) if c == cause));
    let (said, kinds) = ended(&attempt, None, 2);
    assert_eq!((said.as_str(), kinds), (cause, [false, false, false]));
}
