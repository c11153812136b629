//! The election and the fence against a real etcd member: one leader at a time, a handover
//! when it goes, and no write under a fence that no longer holds.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::tests::{fresh_prefix, member, options};
use super::*;
use crate::state::fence::{self, Fence};

fn engine(prefix: &str) -> EtcdEngine {
    EtcdEngine::open(&options(vec![member().endpoint()], prefix)).unwrap()
}

/// Polls `leadership` until it leads or the deadline passes.
fn await_fence(leadership: &watch::Receiver<Option<Fence>>, within: Duration) -> Option<Fence> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(fence) = leadership.borrow().clone() {
            return Some(fence);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn one_controller_leads_and_another_takes_over_when_it_goes() {
    let prefix = fresh_prefix();
    let (a, b) = (engine(&prefix), engine(&prefix));
    let first = a.campaign("c-a", LEASE_TTL);
    let a_fence = await_fence(&first.leadership(), Duration::from_secs(10)).expect("a leads");
    let second = b.campaign("c-b", LEASE_TTL);
    assert_eq!(a.leader_name().unwrap().as_deref(), Some("c-a"));
    // b campaigns every second; it must not lead while a does.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(*second.leadership().borrow(), None, "two leaders at once");

    let tree = a.tree("rollouts").unwrap();
    fence::under(&a_fence, || tree.put(b"r1", b"by a")).unwrap();

    drop(first); // steps down and revokes its lease
    let b_fence = await_fence(&second.leadership(), Duration::from_secs(10)).expect("b takes over");
    assert_ne!(a_fence, b_fence);
    assert_eq!(a.leader_name().unwrap().as_deref(), Some("c-b"));

    // a's writes under its old term are refused, all of them, and leave nothing.
    let err = fence::under(&a_fence, || tree.put(b"r1", b"late a")).unwrap_err();
    assert!(err.to_string().contains("no longer leads"), "{err}");
    let mut batch = Batch::default();
    batch.put(b"r2".to_vec(), b"late a".to_vec());
    assert!(fence::under(&a_fence, || tree.apply(batch)).is_err());
    assert!(fence::under(&a_fence, || tree.delete(b"r1")).is_err());
    assert!(fence::under(&a_fence, || tree.compare_and_swap(
        b"r1",
        Some(b"by a"),
        None
    ))
    .is_err());
    assert_eq!(tree.get(b"r1").unwrap().as_deref(), Some(&b"by a"[..]));
    assert_eq!(tree.get(b"r2").unwrap(), None);

    // b's land; unfenced writes (operators, agents) are not fenced at all.
    fence::under(&b_fence, || tree.put(b"r1", b"by b")).unwrap();
    assert!(fence::under(&b_fence, || tree.compare_and_swap(
        b"r1",
        Some(b"by b"),
        None
    ))
    .unwrap());
    assert!(!fence::under(&b_fence, || tree.compare_and_swap(
        b"r1",
        Some(b"by b"),
        None
    ))
    .unwrap());
    tree.put(b"r3", b"operator").unwrap();
}

#[test]
fn a_leader_whose_key_is_gone_steps_down_and_its_fence_refuses_writes() {
    let prefix = fresh_prefix();
    let a = engine(&prefix);
    let campaign = a.campaign("c-a", LEASE_TTL);
    let fence = await_fence(&campaign.leadership(), Duration::from_secs(10)).expect("a leads");
    // As when its lease ended while it was paused: etcd deleted the key.
    let raw = a.inner.kv.clone();
    let key = fence.key.clone();
    a.inner
        .bridge
        .call(TIMEOUT, async move {
            let mut raw = raw;
            raw.delete(key, None).await.map(drop)
        })
        .unwrap();
    let tree = a.tree("jobs").unwrap();
    assert!(fence::under(&fence, || tree.put(b"j1", b"x")).is_err());
    assert_eq!(tree.get(b"j1").unwrap(), None);
    // It notices within a campaign step, then campaigns again under a new revision.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut leadership = campaign.leadership();
    loop {
        let now = leadership.borrow_and_update().clone();
        if now.as_ref().is_some_and(|f| f.revision != fence.revision) {
            break;
        }
        assert!(Instant::now() < deadline, "no new term");
        std::thread::sleep(Duration::from_millis(50));
    }
}
