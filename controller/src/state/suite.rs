//! The state suite: what every engine must do, written once over the engine seam and run by
//! each engine's tests through [`engine_suite!`] with a [`Harness`] of its own (sled's is in
//! [`super::sled_engine`], etcd's in [`super::etcd_engine`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use boltfleet_common::proto::JobRecord;

use super::engine::{Batch, BatchLimit, Engine};
use crate::rollout::{MaintenanceWindow, Windows};
use crate::state::{
    freeze_key, sample_rollout, AuditRecord, FreezeRecord, HostRecord, LatestRecord, Observed,
    OperatorRecord, Store, StoreError, TenantPolicy, TokenRecord, WindowKey,
};

/// Gives the suite an engine on storage of its own, and the same storage again.
pub(crate) trait Harness {
    /// Opens the engine on this harness's storage, as a (re)started controller would: what
    /// was flushed by an engine opened before (and since dropped) is there.
    fn open(&self) -> Arc<dyn Engine>;
}

/// Expands to one `#[test]` per case of the suite, each on a fresh `$harness`.
macro_rules! engine_suite {
    ($harness:expr) => {
        crate::state::suite::engine_suite!(@cases $harness;
            opens_empty,
            keys_round_trip_in_order,
            trees_are_apart,
            typed_records_round_trip,
            compare_and_swap_races_between_threads,
            only_one_creator_wins,
            batches_apply_whole_against_other_writers,
            a_batch_applies_in_order,
            batches_within_the_limit_are_taken_and_larger_ones_refused_whole,
            records_that_stand_alone_are_written_past_the_batch_limit,
            restart_keeps_everything,
            bad_records_are_skipped_with_a_warning,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                crate::state::suite::$case(&$harness);
            }
        )*
    };
}
pub(crate) use engine_suite;

fn scan(engine: &dyn Engine, tree: &str, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let tree = engine.tree(tree).unwrap();
    tree.scan_prefix(prefix).map(Result::unwrap).collect()
}

fn host(id: &str, tenant: &str) -> HostRecord {
    HostRecord {
        host_id: id.into(),
        tenant: tenant.into(),
        ..HostRecord::default()
    }
}

fn job(id: &str, host: &str, created_at: i64) -> JobRecord {
    JobRecord {
        job_id: id.into(),
        host_id: host.into(),
        created_at,
        ..JobRecord::default()
    }
}

pub(crate) fn opens_empty(h: &impl Harness) {
    let engine = h.open();
    assert!(scan(engine.as_ref(), "hosts", b"").is_empty());
    let store = Store::on(engine).unwrap();
    assert!(store.hosts.list().unwrap().is_empty());
    assert!(store.audit_log().unwrap().is_empty());
    assert!(store.active_rollouts().is_empty());
}

pub(crate) fn keys_round_trip_in_order(h: &impl Harness) {
    let engine = h.open();
    let tree = engine.tree("t").unwrap();
    for key in ["b/2", "a", "b/1", "b", "c", "b/10"] {
        tree.put(key.as_bytes(), key.to_uppercase().as_bytes())
            .unwrap();
    }
    assert_eq!(tree.get(b"b/1").unwrap().as_deref(), Some(&b"B/1"[..]));
    assert_eq!(tree.get(b"nope").unwrap(), None);
    tree.put(b"a", b"again").unwrap();
    assert_eq!(tree.get(b"a").unwrap().as_deref(), Some(&b"again"[..]));
    assert_eq!(tree.delete(b"c").unwrap().as_deref(), Some(&b"C"[..]));
    assert_eq!(tree.delete(b"c").unwrap(), None);
    let keys = |prefix: &[u8]| -> Vec<String> {
        scan(engine.as_ref(), "t", prefix)
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).unwrap())
            .collect()
    };
    assert_eq!(keys(b""), ["a", "b", "b/1", "b/10", "b/2"]);
    assert_eq!(keys(b"b/"), ["b/1", "b/10", "b/2"]);
    assert_eq!(keys(b"b/1"), ["b/1", "b/10"]);
    assert!(keys(b"d").is_empty());
    // Bytes, not text: an empty value, a NUL and a high byte in keys keep their order.
    tree.put(&[b'x', 0, 0xff], b"").unwrap();
    tree.put(&[b'x', 0], b"").unwrap();
    let raw: Vec<Vec<u8>> = tree.scan_prefix(b"x").map(|kv| kv.unwrap().0).collect();
    assert_eq!(raw, [vec![b'x', 0], vec![b'x', 0, 0xff]]);
    assert_eq!(tree.get(&[b'x', 0]).unwrap(), Some(vec![]));
}

pub(crate) fn trees_are_apart(h: &impl Harness) {
    let engine = h.open();
    let one = engine.tree("one").unwrap();
    let two = engine.tree("two").unwrap();
    one.put(b"k", b"1").unwrap();
    two.put(b"k", b"2").unwrap();
    assert_eq!(one.get(b"k").unwrap(), Some(b"1".to_vec()));
    assert_eq!(scan(engine.as_ref(), "two", b"").len(), 1);
    assert_eq!(one.name(), "one");
    // The same name is the same tree.
    let again = engine.tree("one").unwrap();
    again.put(b"j", b"3").unwrap();
    assert_eq!(one.get(b"j").unwrap(), Some(b"3".to_vec()));
    // A tree whose name extends another's is apart from it too.
    let longer = engine.tree("one2").unwrap();
    assert!(longer.scan_prefix(b"").next().is_none());
}

pub(crate) fn typed_records_round_trip(h: &impl Harness) {
    let store = Store::on(h.open()).unwrap();
    store.hosts.put("web1", &host("web1", "acme")).unwrap();
    store
        .hosts
        .put_all([
            ("web2", &host("web2", "acme")),
            ("db1", &host("db1", "globex")),
        ])
        .unwrap();
    assert_eq!(store.hosts.get("web2").unwrap(), Some(host("web2", "acme")));
    let ids: Vec<String> = store
        .hosts
        .list()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(ids, ["db1", "web1", "web2"]);
    assert_eq!(
        store.hosts.remove("db1").unwrap(),
        Some(host("db1", "globex"))
    );
    assert_eq!(store.hosts.get("db1").unwrap(), None);

    let old = host("web1", "acme");
    let mut new = old.clone();
    new.revoked = true;
    assert!(store
        .hosts
        .compare_and_swap("web1", Some(&old), &new)
        .unwrap());
    assert!(!store
        .hosts
        .compare_and_swap("web1", Some(&old), &new)
        .unwrap());
    assert!(!store.hosts.compare_and_swap("web1", None, &new).unwrap());
    assert!(store.hosts.compare_and_swap("web9", None, &new).unwrap());

    for j in [
        job("j2", "web1", 5),
        job("j1", "web1", -1),
        job("j3", "web2", 0),
    ] {
        store.jobs.put(&j.job_id, &j).unwrap();
    }
    let web1: Vec<String> = store
        .jobs
        .of_host("web1")
        .unwrap()
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(web1, ["j1", "j2"]);
    assert_eq!(store.jobs.get("j3").unwrap(), Some(job("j3", "web2", 0)));

    store.rollouts.put("r1", &sample_rollout("r1")).unwrap();
    assert_eq!(
        store.rollouts.get("r1").unwrap(),
        Some(sample_rollout("r1"))
    );
    store
        .audit_all(&[
            AuditRecord::new(1, "operator alice", "a", "", ""),
            AuditRecord::new(1, "operator alice", "b", "", ""),
        ])
        .unwrap();
    store
        .audit(&AuditRecord::new(0, "controller", "c", "", ""))
        .unwrap();
    let actions: Vec<String> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["a", "b", "c"],
        "in the order written, whatever `at` says"
    );
}

/// Threads increment one counter by compare-and-swap, retrying when another got there first:
/// no increment is lost.
pub(crate) fn compare_and_swap_races_between_threads(h: &impl Harness) {
    const THREADS: usize = 8;
    const EACH: usize = 100;
    let engine = h.open();
    let tree = engine.tree("counter").unwrap();
    let retries = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..EACH {
                    loop {
                        let old = tree.get(b"n").unwrap();
                        let n = old
                            .as_deref()
                            .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                        let new = (n + 1).to_be_bytes();
                        if tree
                            .compare_and_swap(b"n", old.as_deref(), Some(&new))
                            .unwrap()
                        {
                            break;
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let n = tree.get(b"n").unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(n.try_into().unwrap()),
        (THREADS * EACH) as u64
    );
    // Deleting by compare-and-swap needs the current value too.
    assert!(!tree.compare_and_swap(b"n", Some(b"stale"), None).unwrap());
    let current = tree.get(b"n").unwrap();
    assert!(tree
        .compare_and_swap(b"n", current.as_deref(), None)
        .unwrap());
    assert_eq!(tree.get(b"n").unwrap(), None);
}

/// Threads all try to create the same record: exactly one does, and its value stays.
pub(crate) fn only_one_creator_wins(h: &impl Harness) {
    const THREADS: usize = 8;
    let store = Store::on(h.open()).unwrap();
    let start = Barrier::new(THREADS);
    let winners: Vec<String> = std::thread::scope(|s| {
        let tries: Vec<_> = (0..THREADS)
            .map(|i| {
                let (store, start) = (&store, &start);
                s.spawn(move || {
                    let mine = host("web1", &format!("tenant{i}"));
                    start.wait();
                    let won = store.hosts.compare_and_swap("web1", None, &mine).unwrap();
                    won.then_some(mine.tenant)
                })
            })
            .collect();
        tries
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect()
    });
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(store.hosts.get("web1").unwrap().unwrap().tenant, winners[0]);
}

/// Two writers apply batches over the same keys at the same moment, round after round, one in
/// key order and one in reverse (so that any overlap of two batches applied key by key would
/// show): after each round every key holds the value of one writer's batch, never a mix. The
/// batches are as large as the engine takes (500 keys at most).
pub(crate) fn batches_apply_whole_against_other_writers(h: &impl Harness) {
    const ROUNDS: usize = 20;
    let engine = h.open();
    let tree = engine.tree("batch").unwrap();
    let keys = 500.min(tree.batch_limit().ops);
    let round = Barrier::new(3);
    let mut mixed = Vec::new();
    std::thread::scope(|s| {
        for writer in ["a", "b"] {
            let (tree, round) = (&tree, &round);
            s.spawn(move || {
                for r in 0..ROUNDS {
                    let mut batch = Batch::default();
                    let mut order: Vec<usize> = (0..keys).collect();
                    if writer == "b" {
                        order.reverse();
                    }
                    for k in order {
                        batch.put(format!("k{k:03}"), format!("{writer}{r}"));
                    }
                    round.wait();
                    tree.apply(batch).unwrap();
                    round.wait();
                }
            });
        }
        for r in 0..ROUNDS {
            round.wait();
            round.wait();
            let values: BTreeMap<Vec<u8>, Vec<u8>> =
                tree.scan_prefix(b"k").map(Result::unwrap).collect();
            // Asserted after the writers are done: a panic here would leave them at the barrier.
            let mut distinct: Vec<&Vec<u8>> = values.values().collect();
            distinct.dedup();
            if values.len() != keys || distinct.len() != 1 {
                mixed.push(r);
            }
        }
    });
    assert!(mixed.is_empty(), "batches mixed in rounds {mixed:?}");
}

pub(crate) fn a_batch_applies_in_order(h: &impl Harness) {
    let engine = h.open();
    let tree = engine.tree("t").unwrap();
    tree.put(b"gone", b"1").unwrap();
    let mut batch = Batch::default();
    batch.put("k", "first");
    batch.delete("gone");
    batch.put("k", "last");
    batch.put("new", "1");
    batch.delete("new");
    assert_eq!(batch.len(), 5);
    tree.apply(batch).unwrap();
    tree.apply(Batch::default()).unwrap();
    assert_eq!(
        scan(engine.as_ref(), "t", b""),
        [(b"k".to_vec(), b"last".to_vec())]
    );
}

/// A batch at the engine's limit is taken whole; one operation more, or one byte more, and it
/// is refused with an error and nothing of it is written. Split ([`Batch::split`]), the same
/// operations all land, in order. An engine without a limit takes a batch of 20,000.
pub(crate) fn batches_within_the_limit_are_taken_and_larger_ones_refused_whole(h: &impl Harness) {
    let engine = h.open();
    let tree = engine.tree("limit").unwrap();
    let limit = tree.batch_limit();
    let ops = if limit == BatchLimit::NONE {
        20_000
    } else {
        limit.ops
    };
    let numbered = |n: usize, tag: &str| {
        let mut batch = Batch::default();
        for i in 0..n {
            batch.put(format!("k{i:05}"), format!("{tag}{i}"));
        }
        batch
    };
    tree.apply(numbered(ops, "a")).unwrap();
    assert_eq!(scan(engine.as_ref(), "limit", b"k").len(), ops);
    if limit == BatchLimit::NONE {
        return;
    }
    // One operation more than the limit.
    let over = numbered(ops + 1, "b");
    assert!(!limit.admits(&over));
    let err = tree.apply(over.clone()).unwrap_err().to_string();
    assert!(err.contains(&format!("{} operations", ops + 1)), "{err}");
    let values: Vec<Vec<u8>> = scan(engine.as_ref(), "limit", b"k")
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert!(
        values.iter().all(|v| v.starts_with(b"a")),
        "none of it written"
    );
    // Bytes: exactly at the limit is taken, one byte over is refused.
    let mut big = Batch::default();
    big.put("big0", vec![b'x'; limit.bytes / 2 - 4]);
    big.put("big1", vec![b'y'; limit.bytes - limit.bytes / 2 - 4]);
    assert_eq!(big.bytes(), limit.bytes);
    tree.apply(big).unwrap();
    let mut bigger = Batch::default();
    bigger.put("big2", vec![b'x'; limit.bytes / 2 - 4]);
    bigger.put("big3", vec![b'y'; limit.bytes - limit.bytes / 2 - 3]);
    assert!(tree.apply(bigger).is_err());
    assert_eq!(tree.get(b"big2").unwrap(), None, "none of it written");
    // Split, the larger batch lands whole, in order: the last put of a key wins.
    let mut twice = over;
    twice.put("k00000", "last");
    let parts = twice.split(limit);
    assert!(parts.len() >= 2 && parts.iter().all(|p| limit.admits(p)));
    for part in parts {
        tree.apply(part).unwrap();
    }
    let all = scan(engine.as_ref(), "limit", b"k");
    assert_eq!(all.len(), ops + 1);
    assert_eq!(all[0].1, b"last");
    assert_eq!(all[ops].1, format!("b{ops}").into_bytes());
}

/// Observations and audit entries stand alone: the store writes more of them than one batch
/// takes, in parts, and every one lands (the audit log in the order written).
pub(crate) fn records_that_stand_alone_are_written_past_the_batch_limit(h: &impl Harness) {
    let engine = h.open();
    let limit = engine.tree("observed").unwrap().batch_limit();
    let n = if limit == BatchLimit::NONE {
        300
    } else {
        2 * limit.ops + 1
    };
    let store = Store::on(engine).unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("web{i:04}")).collect();
    let observed: Vec<Observed> = (0..n)
        .map(|i| Observed {
            last_seen: i as i64,
            ..Observed::default()
        })
        .collect();
    store
        .observed
        .put_in_parts(ids.iter().map(String::as_str).zip(&observed))
        .unwrap();
    let back = store.observed.list().unwrap();
    assert_eq!(back.len(), n);
    assert_eq!(back[n - 1], (ids[n - 1].clone(), observed[n - 1].clone()));
    let entries: Vec<AuditRecord> = (0..n)
        .map(|i| AuditRecord::new(1, "operator alice", &format!("a{i:04}"), "", ""))
        .collect();
    store.audit_all(&entries).unwrap();
    let actions: Vec<String> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    let expected: Vec<String> = entries.into_iter().map(|e| e.action).collect();
    assert_eq!(actions, expected);
}

/// Every tree of the store, written, flushed and read again by a restarted engine; the audit
/// log goes on after what it held.
pub(crate) fn restart_keeps_everything(h: &impl Harness) {
    let window: MaintenanceWindow = "0 22 * * * 4h Europe/Paris".parse().unwrap();
    let token = TokenRecord {
        host_id: "web1".into(),
        tenant: "acme".into(),
        labels: BTreeMap::new(),
        created_at: 1,
        expires_at: 2,
        created_by: "alice".into(),
        used_at: None,
    };
    let latest = LatestRecord {
        version: "4.1.0".into(),
        set_by: "alice".into(),
        set_at: 3,
    };
    let freeze = FreezeRecord {
        by: "alice".into(),
        at: "2025-01-15T12:00:00Z".parse().unwrap(),
    };
    let observed = Observed {
        last_seen: 42,
        agent_version: "0.1.0".into(),
        ..Observed::default()
    };
    let operator = OperatorRecord {
        name: "alice".into(),
        ..OperatorRecord::default()
    };
    let policy = TenantPolicy {
        require_approval: true,
        ..TenantPolicy::default()
    };
    {
        let store = Store::on(h.open()).unwrap();
        store.hosts.put("web1", &host("web1", "acme")).unwrap();
        store.observed.put("web1", &observed).unwrap();
        store.tokens.put("hash", &token).unwrap();
        store.jobs.put("j1", &job("j1", "web1", 7)).unwrap();
        store.rollouts.put("r1", &sample_rollout("r1")).unwrap();
        store
            .put_window(&WindowKey::Tenant("acme".into()), Some(&window))
            .unwrap();
        let mut more = Windows::default();
        more.tenants.insert("globex".into(), window.clone());
        more.hosts.insert("web1".into(), window.clone());
        store.put_windows(&more).unwrap();
        store.put_freeze(&freeze_key(None), Some(&freeze)).unwrap();
        store.operators.put("alice", &operator).unwrap();
        store.policies.put("acme", &policy).unwrap();
        store.latest.put(&freeze_key(None), &latest).unwrap();
        store
            .audit(&AuditRecord::new(1, "operator alice", "first", "", ""))
            .unwrap();
        store.flush().unwrap();
    }
    let store = Store::on(h.open()).unwrap();
    assert_eq!(store.hosts.get("web1").unwrap(), Some(host("web1", "acme")));
    assert_eq!(store.observed.get("web1").unwrap(), Some(observed));
    assert_eq!(store.tokens.get("hash").unwrap(), Some(token));
    assert_eq!(store.jobs.of_host("web1").unwrap(), [job("j1", "web1", 7)]);
    let active: Vec<String> = store.active_rollouts().into_iter().map(|r| r.id).collect();
    assert_eq!(active, ["r1"], "found active again on opening");
    let windows = store.windows_all().unwrap();
    assert_eq!(windows.tenants.get("acme"), Some(&window));
    assert_eq!(windows.tenants.get("globex"), Some(&window));
    assert_eq!(windows.hosts.get("web1"), Some(&window));
    assert!(store.freeze_all().unwrap().global);
    assert_eq!(store.operators.get("alice").unwrap(), Some(operator));
    assert_eq!(store.policies.get("acme").unwrap(), Some(policy));
    assert_eq!(store.latest.get("global").unwrap(), Some(latest));
    store
        .audit(&AuditRecord::new(0, "controller", "second", "", ""))
        .unwrap();
    let actions: Vec<String> = store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["first", "second"]);
}

/// A record that does not decode is skipped, with a warning naming it, when the controller
/// loads its state; read alone, it is an error, not a default.
pub(crate) fn bad_records_are_skipped_with_a_warning(h: &impl Harness) {
    let engine = h.open();
    let hosts = engine.tree("hosts").unwrap();
    hosts.put(b"bad", b"{not json").unwrap();
    let store = Store::on(engine).unwrap();
    store.hosts.put("good", &host("good", "acme")).unwrap();
    let (seen, warnings) = warnings::captured(|| {
        let mut seen = Vec::new();
        store.hosts.for_each(|id, _| seen.push(id)).unwrap();
        seen
    });
    assert_eq!(seen, ["good"]);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("corrupt record skipped"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("bad") && warnings[0].contains("hosts"),
        "{warnings:?}"
    );
    assert!(matches!(
        store.hosts.get("bad"),
        Err(StoreError::Encoding(_))
    ));
}

/// The warnings logged while a closure runs, each as its message and fields.
mod warnings {
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Text(String);

    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    impl<S: Subscriber> Layer<S> for Capture {
        fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
            if *event.metadata().level() == Level::WARN {
                let mut text = Text(String::new());
                event.record(&mut text);
                self.0.lock().unwrap().push(text.0);
            }
        }
    }

    pub(super) fn captured<R>(run: impl FnOnce() -> R) -> (R, Vec<String>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(lines.clone()));
        let result = tracing::subscriber::with_default(subscriber, run);
        let lines = lines.lock().unwrap().clone();
        (result, lines)
    }
}
