//! Benchmarks of the fleet report over the 50,000-host synthetic fleet: the pure
//! `report::build` (target: under 200 ms), and `App::fleet_report` end to end from a populated
//! sled store (reads, decoding, window resolution and the build), and every page of
//! `App::fleet_page` at 1,000 rows: what `boltfleet ui` reads for one snapshot of the fleet.

mod fleet;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::identity::HostId;
use boltfleet_common::pki::CertificateAuthority;
use boltfleet_common::proto::{
    ControllerMessage, DiskSpace, GitState, Health, HealthCheck, HostWindow, Inventory, JobEvent,
    JobKind, JobOptions, JobRecord, JobState, MigrationSection, MigrationState, RunJob, StepRecord,
    StepState,
};
use boltfleet_controller::app::host_window;
use boltfleet_controller::app::App;
use boltfleet_controller::report::{self, HostView};
use boltfleet_controller::rollout::{MaintenanceWindow, Windows};
use boltfleet_controller::state::{freeze_key, FreezeRecord, HostRecord, Observed, State};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode};
use fleet::{SimFleet, SimHost};
use jiff::Timestamp;

/// Passbolt's healthcheck, as the agent reports it: ten checks, one failing when unhealthy.
const CHECKS: &[(&str, &str)] = &[
    ("command", "environment.phpVersion"),
    ("command", "environment.pcre"),
    ("command", "environment.tmpWritable"),
    ("command", "configFile.app"),
    ("command", "core.cache"),
    ("command", "ssl.peerValid"),
    ("command", "database.connect"),
    ("command", "database.tablesPresent"),
    ("command", "gpg.canEncrypt"),
    ("http", "healthcheck.status"),
];
const STEPS: &[&str] = &[
    "preflight",
    "backup",
    "verify_backup",
    "maintenance_on",
    "checkout",
    "composer",
    "migrate",
    "clear_cache",
    "healthcheck",
    "maintenance_off",
];

fn now() -> Timestamp {
    fleet::NOW.parse().expect("an instant")
}

fn record(h: &SimHost) -> HostRecord {
    HostRecord {
        host_id: h.id.clone(),
        tenant: h.tenant.clone(),
        labels: h.labels.clone(),
        enrolled_at: now().as_second() - 86_400 * 90,
        cert_serials: vec![format!("{:032x}", u128::from(h.noise) << 64 | 0x5e71)],
        revoked: h.revoked,
        revoked_at: None,
    }
}

fn health(h: &SimHost) -> Health {
    let failing = (!h.healthy).then_some(h.noise as usize % CHECKS.len());
    let checks = CHECKS
        .iter()
        .enumerate()
        .map(|(i, (source, name))| HealthCheck {
            source: source.to_string(),
            name: name.to_string(),
            status: if Some(i) == failing { "fail" } else { "pass" }.into(),
            detail: if Some(i) == failing {
                format!("{name}: check failed, see the passbolt logs")
            } else {
                String::new()
            },
        })
        .collect();
    Health {
        healthy: h.healthy,
        checks,
        reasons: failing
            .map(|i| vec![format!("{}: check failed", CHECKS[i].1)])
            .unwrap_or_default(),
    }
}

/// What a reporting agent says of its host; `None` for hosts that never reported.
fn inventory(h: &SimHost) -> Option<Inventory> {
    let version = h.version?;
    let collected_at = now().as_second() - (h.noise % 300) as i64;
    let section = |name: &str| MigrationSection {
        name: name.into(),
        current: "20240604000000".into(),
        latest: if h.migrations_pending {
            "20250301000000".into()
        } else {
            "20240604000000".into()
        },
    };
    let disk = |role: &str, path: &str, total: u64| DiskSpace {
        role: role.into(),
        path: path.into(),
        free_bytes: total / 100 * (10 + h.noise % 80),
        total_bytes: total,
    };
    Some(Inventory {
        agent_version: "0.1.0".into(),
        passbolt_version: version.into(),
        version_file: "/var/www/passbolt/config/version.php".into(),
        git: Some(GitState {
            head: format!("{:040x}", u128::from(h.noise) * 0x9e37_79b9),
            tag: format!("v{version}"),
            dirty: h.noise % 97 == 0,
        }),
        migrations: Some(MigrationState {
            known: true,
            sections: vec![section("app"), section("Passbolt/Folders")],
            pending: h.migrations_pending,
            error: String::new(),
        }),
        health: Some(health(h)),
        php_version: "8.2.20".into(),
        disks: vec![
            disk("install", "/var/www/passbolt", 40 << 30),
            disk("backup", "/var/backups/boltfleet", 200 << 30),
        ],
        errors: Vec::new(),
        collected_at,
        newest_tag: format!("v{}", fleet::TARGET),
        ..Default::default()
    })
}

fn job_event(h: &SimHost, job_id: &str) -> JobEvent {
    let state = match h.noise % 10 {
        0 => JobState::Running,
        1 => JobState::RolledBack,
        _ => JobState::Succeeded,
    };
    let started_at = now().as_second() - 3600 - (h.noise % 86_400) as i64;
    let steps = STEPS
        .iter()
        .enumerate()
        .map(|(i, name)| StepRecord {
            name: name.to_string(),
            state: StepState::Succeeded as i32,
            started_at: started_at + 20 * i as i64,
            finished_at: started_at + 20 * i as i64 + 19,
            output_tail: format!("{name}: done in 19s\nall good\n"),
        })
        .collect();
    JobEvent {
        job_id: job_id.into(),
        kind: JobKind::Update as i32,
        target_version: fleet::TARGET.into(),
        state: state as i32,
        steps,
        failed_step: if state == JobState::RolledBack {
            "migrate".into()
        } else {
            String::new()
        },
        backup_id: format!("bk-{:016x}", h.noise),
        config_changes: vec!["M config/app.php.default".into()],
        reason: String::new(),
        from_version: h.version.unwrap_or_default().into(),
        failing_before: Vec::new(),
        failing_after: Vec::new(),
        failing_after_rollback: Vec::new(),
        backup_path: format!("/var/backups/boltfleet/bk-{:016x}.sql.gz", h.noise),
        started_at,
        finished_at: started_at + 200,
    }
}

fn job(h: &SimHost, index: usize) -> JobRecord {
    let job_id = format!("job-{index:06}");
    let event = job_event(h, &job_id);
    JobRecord {
        job_id: job_id.clone(),
        host_id: h.id.clone(),
        created_by: "operator alice".into(),
        created_at: event.started_at - 5,
        dispatched: true,
        request: Some(RunJob {
            job_id,
            kind: JobKind::Update as i32,
            target_version: fleet::TARGET.into(),
            options: Some(JobOptions::default()),
        }),
        event: Some(event),
        rollout_id: String::new(),
    }
}

fn observed(h: &SimHost) -> Option<Observed> {
    let inventory = inventory(h)?;
    Some(Observed {
        last_seen: inventory.collected_at,
        agent_version: inventory.agent_version.clone(),
        inventory: Some(inventory),
    })
}

fn windows(sim: &SimFleet) -> Windows {
    let parse = |text: &String| text.parse::<MaintenanceWindow>().expect("a window");
    Windows {
        tenants: sim
            .tenant_windows
            .iter()
            .map(|(t, w)| (t.clone(), parse(w)))
            .collect(),
        hosts: sim
            .host_windows
            .iter()
            .map(|(h, w)| (h.clone(), parse(w)))
            .collect(),
    }
}

/// The parts of each [`HostView`]; cloned into fresh views for every iteration, since
/// `report::build` consumes them.
type ViewParts = (
    HostRecord,
    Option<Observed>,
    Option<JobEvent>,
    bool,
    Option<HostWindow>,
    bool,
);

fn view_parts(sim: &SimFleet) -> Vec<ViewParts> {
    let windows = windows(sim);
    sim.hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            (
                record(h),
                observed(h),
                h.has_job.then(|| job_event(h, &format!("job-{i:06}"))),
                h.online,
                host_window(&windows, &h.id, &h.tenant, now()),
                sim.frozen_tenants.contains(&h.tenant),
            )
        })
        .collect()
}

fn views(parts: &[ViewParts]) -> Vec<HostView> {
    parts
        .iter()
        .map(
            |(record, observed, last_job, online, window, frozen)| HostView {
                record: record.clone(),
                observed: observed.clone(),
                last_job: last_job.clone(),
                online: *online,
                window: window.clone(),
                frozen: *frozen,
                flapping: false,
            },
        )
        .collect()
}

/// A state holding the whole fleet, as a controller that has run for a while has it.
fn populate(state: &State, sim: &SimFleet) {
    for (i, h) in sim.hosts.iter().enumerate() {
        state.write_hosts().put(&h.id, record(h)).expect("put host");
        if let Some(observed) = observed(h) {
            state
                .observations()
                .update_if_changed(&h.id, observed.last_seen, |o| {
                    *o = observed;
                    true
                });
        }
        if h.has_job {
            state.jobs().write().put(&job(h, i)).expect("put job");
        }
    }
    state.put_windows(&windows(sim)).expect("put windows");
    let by = FreezeRecord {
        by: "operator alice".into(),
        at: now(),
    };
    for tenant in &sim.frozen_tenants {
        state
            .put_freeze(&freeze_key(Some(tenant)), Some(&by))
            .expect("put freeze");
    }
    state.persist().expect("persist");
}

/// Receiving ends of the registered streams; held so the streams stay open.
type Streams = Vec<tokio::sync::mpsc::Receiver<Result<ControllerMessage, tonic::Status>>>;

/// The app over a populated store (populated first: the app loads its caches when it opens),
/// with a live stream registered for each online host.
fn app(dir: &std::path::Path, sim: &SimFleet) -> (Arc<App>, Streams) {
    let state = State::open(dir).expect("open state");
    populate(&state, sim);
    let keys = CertificateAuthority::generate().expect("a CA");
    let ca = CertificateAuthority::load(&keys.cert_pem, &keys.key_pem).expect("load CA");
    let app = App::open(state, ca, Duration::from_secs(3600));
    let mut streams = Vec::new();
    for h in sim.hosts.iter().filter(|h| h.online && !h.revoked) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let _ = app
            .registry()
            .register(&HostId::new(&h.id).expect("host id"), tx);
        streams.push(rx);
    }
    (app, streams)
}

/// FNV-1a of the report's JSON, labels sorted (a row holds them in a `HashMap`): equal
/// digests before and after a change to `report::build` show that it reports alike.
fn digest(report: &report::FleetReport) -> u64 {
    let fnv = |h: u64, bytes: &[u8]| {
        bytes
            .iter()
            .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
    };
    let mut h = 0xcbf2_9ce4_8422_2325;
    for row in &report.rows {
        let mut row = row.clone();
        let labels: std::collections::BTreeMap<String, String> = row.labels.drain().collect();
        h = fnv(h, &serde_json::to_vec(&(row, labels)).expect("json"));
    }
    let latest = report.latest.as_ref().map(ToString::to_string);
    fnv(
        h,
        &serde_json::to_vec(&(&report.versions, latest)).expect("json"),
    )
}

fn bench_build(c: &mut Criterion, sim: &SimFleet) {
    let parts = view_parts(sim);
    let once = report::build(views(&parts), None);
    eprintln!(
        "report: {} rows, latest {:?}, versions {:?}, digest {:016x}",
        once.rows.len(),
        once.latest.as_ref().map(ToString::to_string),
        once.versions,
        digest(&once)
    );
    let mut group = c.benchmark_group("report");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("build_50k_hosts", |b| {
        b.iter_batched(
            || views(&parts),
            |views| report::build(black_box(views), None),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_fleet_report(c: &mut Criterion, sim: &SimFleet) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let started = std::time::Instant::now();
    let (app, _streams) = app(dir.path(), sim);
    eprintln!("store populated in {:.1?}", started.elapsed());
    let rows = app
        .fleet_report("", jiff::Timestamp::now())
        .expect("a report")
        .rows
        .len();
    eprintln!("fleet_report: {rows} rows");
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.measurement_time(Duration::from_secs(40));
    group.bench_function("app_fleet_report_50k_hosts", |b| {
        b.iter(|| {
            app.fleet_report(black_box(""), jiff::Timestamp::now())
                .expect("a report")
        })
    });
    let admin = boltfleet_controller::auth::Caller::admin("alice");
    let all_pages = || {
        let (mut token, mut rows) = (String::new(), 0);
        loop {
            let page = app
                .fleet_page(&admin, "", &token, 1000, jiff::Timestamp::now())
                .expect("a page");
            rows += page.rows.len();
            if page.next_page_token.is_empty() {
                return rows;
            }
            token = page.next_page_token;
        }
    };
    eprintln!("fleet_page: {} rows over every page", all_pages());
    group.bench_function("app_fleet_pages_50k_hosts", |b| b.iter(all_pages));
    group.finish();
}

fn benches(c: &mut Criterion) {
    let sim = fleet::standard();
    eprintln!("{}", sim.summary());
    bench_build(c, &sim);
    bench_fleet_report(c, &sim);
}

criterion_group!(report_benches, benches);
criterion_main!(report_benches);
