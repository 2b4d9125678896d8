//! The lease scenario every store's test runs through that store's own conditional writes (S3
//! and GCS in output_lease.rs, Azure in launch/tests/cli_azure.rs): a lease is renewed, and lost
//! once another writer replaces its object, whose lock then stays.

use std::sync::Arc;
use std::time::Duration;

use ecgfm_data::out_lock::{Writer, LOCK_FILE};
use ecgfm_data::store;
use ecgfm_data::store_lease::{LeaseOutcome, LeaseTiming, StoreLease};
use ecgfm_test_support::wait_until;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// The lock object under `root`: its holder's JSON, or `None` when there is none.
pub fn holder(object_store: &Arc<dyn ObjectStore>, root: &Path) -> Option<serde_json::Value> {
    let path = store::join(root, LOCK_FILE);
    let bytes = store::block_on(store::get_bytes(object_store.as_ref(), &path)).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

/// A refusal with its lock's age left out ("renewed _ ago"): two refusals read moments apart
/// may straddle a second, and S3's and GCS's modification times have whole seconds.
pub fn ageless(refusal: &str) -> String {
    let Some((before, after)) = refusal.split_once("was renewed ") else {
        return refusal.to_string();
    };
    let rest = after.split_once(" ago").map_or(after, |(_, rest)| rest);
    format!("{before}was renewed _ ago{rest}")
}

/// Takes a lease renewed every 100 ms at `root` (`url`), waits for three renewals, replaces its
/// object with another writer's and waits for the lease to be lost.
pub fn renewed_then_lost_when_replaced(
    object_store: &Arc<dyn ObjectStore>,
    root: &Path,
    url: &str,
) {
    let timing = LeaseTiming {
        renew: Duration::from_millis(100),
        stale: Duration::from_secs(60),
    };
    let LeaseOutcome::Held(lease) =
        StoreLease::take(object_store, root, url, Writer::Synth, timing).unwrap()
    else {
        panic!("{url}: the store creates objects conditionally");
    };
    let renewals = || {
        holder(object_store, root).unwrap()["renewals"]
            .as_u64()
            .unwrap()
    };
    wait_until("three renewals", 30, || renewals() >= 3);
    lease.check().unwrap();
    let other = br#"{"writer":"merge","pid":7,"host":"elsewhere","renewals":0}"#;
    let path = store::join(root, LOCK_FILE);
    store::block_on(object_store.put(&path, other.to_vec().into())).unwrap();
    wait_until("the lease lost", 30, || lease.check().is_err());
    let err = lease.check().unwrap_err().to_string();
    let replaced = "it was replaced by another merge (pid 7 on elsewhere)";
    assert!(err.contains(replaced), "{err}");
    drop(lease);
    let stays = holder(object_store, root).unwrap()["pid"] == 7;
    assert!(stays, "the other's lock stays");
}
