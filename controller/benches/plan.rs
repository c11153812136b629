//! Benchmark of the rollout planner: `plan()` over the 50,000-host synthetic fleet with waves
//! `1%,10%,100%` and 500 hosts at once. Target: under 100 ms.

mod fleet;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use boltfleet_common::version::parse_release;
use boltfleet_controller::rollout::{plan, FleetHost, MaintenanceWindow, Plan, RolloutSpec};
use criterion::{criterion_group, criterion_main, Criterion};
use jiff::Timestamp;

/// The fleet as the scheduler's snapshot presents it: windows resolved (host over tenant),
/// freezes applied, config changes known for 4.12.0 hosts.
fn fleet_hosts(sim: &fleet::SimFleet) -> Vec<FleetHost> {
    let mut parsed: BTreeMap<&str, MaintenanceWindow> = BTreeMap::new();
    let now: Timestamp = fleet::NOW.parse().expect("an instant");
    sim.hosts
        .iter()
        .map(|h| {
            let window = sim.window_for(h).map(|text| {
                parsed
                    .entry(text)
                    .or_insert_with(|| text.parse().expect("a window"))
                    .clone()
            });
            let config_changes = match h.version {
                Some("4.12.0") => vec!["M config/app.php.default".to_string()],
                _ => Vec::new(),
            };
            FleetHost {
                host_id: h.id.clone(),
                tenant: h.tenant.clone(),
                labels: h.labels.clone(),
                version: h.version.map(|v| parse_release(v).expect("a release")),
                online: h.online,
                healthy: h.healthy,
                last_seen: Some(now),
                window,
                frozen: sim.frozen_tenants.contains(&h.tenant),
                busy: false,
                config_changes,
                job: None,
                rollback_job: None,
            }
        })
        .collect()
}

fn spec() -> RolloutSpec {
    let mut spec = RolloutSpec::new(parse_release(fleet::TARGET).expect("a release"));
    spec.waves = boltfleet_controller::rollout::spec::parse_waves("1%,10%,100%").expect("waves");
    spec.max_parallel = 500;
    spec.validate().expect("a valid spec");
    spec
}

/// FNV-1a of the plan's JSON: equal digests before and after a change to the planner show
/// that it plans this fleet exactly as before.
fn digest(plan: &Plan) -> u64 {
    let json = serde_json::to_vec(plan).expect("a plan serializes");
    json.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn bench_plan(c: &mut Criterion) {
    let sim = fleet::standard();
    let hosts = fleet_hosts(&sim);
    let spec = spec();
    let now: Timestamp = fleet::NOW.parse().expect("an instant");

    let once = plan(&hosts, &spec, now);
    let waves: Vec<usize> = once.waves.iter().map(Vec::len).collect();
    let mut skipped: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, reason) in once.skipped() {
        *skipped.entry(reason.as_str()).or_default() += 1;
    }
    eprintln!("{}", sim.summary());
    eprintln!(
        "plan: {} eligible, waves {waves:?}, skipped {skipped:?}, digest {:016x}",
        once.eligible(),
        digest(&once)
    );

    let mut group = c.benchmark_group("plan");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("50k_hosts", |b| {
        b.iter(|| plan(black_box(&hosts), black_box(&spec), now))
    });
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
