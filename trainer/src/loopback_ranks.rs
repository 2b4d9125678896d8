//! Tests' ranks: `world` threads of this process joined by loopback TCP collectives, each running
//! the test's closure, for the code that talks between ranks (gradient exchange, agreement).

use ecgfm_dist::{on_threads, Collective, Timeouts};
use std::time::Duration;

/// Each rank's value of `f` on `world` loopback ranks (in rank order); a rank that cannot join
/// within 60 s fails the test.
pub(crate) fn on_loopback_ranks<T: Send>(
    world: usize,
    f: impl Fn(Box<dyn Collective<[f32]> + Send>) -> T + Sync,
) -> Vec<T> {
    let timeouts = Timeouts {
        rendezvous: Duration::from_secs(60),
        collective: Duration::from_secs(60),
    };
    on_threads(world, timeouts, |c| f(Box::new(c)))
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}
