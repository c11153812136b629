//! Serving: bind, TLS, the three services, the rollout scheduler and the webhook sender, and a
//! graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use boltfleet_common::files::write_atomic;
use boltfleet_common::proto::admin_service_server::AdminServiceServer;
use boltfleet_common::proto::agent_service_server::AgentServiceServer;
use boltfleet_common::proto::enroll_service_server::EnrollServiceServer;
use boltfleet_common::{metrics, process, tls};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tracing::{info, warn};

use crate::accept;
use crate::app::App;
use crate::ca::{self, CaError, DataDir};
use crate::config::ControllerConfig;
use crate::leadership::Leadership;
use crate::metrics::Refusal;
use crate::scheduler;
use crate::services::{admin::Admin, agent::Agent, enroll::Enroll};
use crate::state::etcd_engine::presence::ControllerInfo;
use crate::state::etcd_engine::LEASE_TTL;
use crate::state::{State, StoreError};
use crate::webhook;

/// Why the controller could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Metrics(#[from] metrics::BindError),
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// How long open calls may take to end once the controller is stopping.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs the controller until `shutdown` completes.
pub async fn run(
    config: ControllerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dir = DataDir::new(&config.data_dir);
    let ca = ca::load_ca(&config.data_dir)?;
    let (chain, key) = ca::load_server_identity(&config.data_dir)?;
    let limits = config.limits.clone();
    let tls = tls::server_config(ca.cert_pem(), &chain, &key)?;
    let opened = config
        .store
        .open_engine(&dir.store())
        .map_err(StoreError::from)?;
    info!(engine = opened.engine.name(), name = %config.store.name, "store opened");
    // Several controllers on etcd: the one holding the election runs the scheduler.
    let campaign = opened
        .etcd
        .as_ref()
        .map(|etcd| etcd.campaign(&config.store.name, LEASE_TTL));
    let leadership = campaign
        .as_ref()
        .map_or(Leadership::Sole, |c| Leadership::Elected(c.leadership()));
    // What other controllers write from now on reaches this one's memory: the feed starts
    // before the state is loaded, so that nothing written in between is missed.
    let feed = match &opened.etcd {
        Some(etcd) => Some(etcd.feed().map_err(StoreError::from)?),
        None => None,
    };
    let state = State::on(opened.engine)?;
    let app = App::open(state, ca, config.agent_cert_validity);
    app.door().configure(limits.door());

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr_file = dir.listen_addr_file();
    write_atomic(&addr_file, addr.to_string().as_bytes(), 0o644).map_err(|source| {
        ServeError::Io {
            path: addr_file.clone(),
            source,
        }
    })?;
    // Every agent holds a socket: the soft limit on open files goes up to the hard one.
    let max_open_files = process::raise_fd_limit();
    if max_open_files.is_some_and(|n| n < 65_536) {
        warn!(
            max_open_files,
            "few open files allowed: each agent holds one; raise LimitNOFILE (systemd) or `ulimit -Hn`"
        );
    }
    info!(%addr, data_dir = %config.data_dir.display(), max_open_files, "controller listening");
    app.attach_peers(crate::app::peers::Peers {
        name: config.store.name.clone(),
        address: addr.to_string(),
        started: jiff::Timestamp::now().as_second(),
        etcd: opened.etcd.clone(),
    });
    // On etcd, the hosts whose streams this controller holds are keys under its lease.
    if let (Some(etcd), Some(campaign)) = (&opened.etcd, &campaign) {
        let name = config.store.name.clone();
        let info = controller_info(Arc::downgrade(&app), name.clone(), addr);
        let presence = etcd.presence(&name, campaign.lease(), info);
        app.registry().attach_presence(&name, presence);
    }

    // The scheduler stops with the server: when `shutdown` fires, or when the server ends
    // for any other reason (the sender is dropped with the shutdown future).
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut stopping = stop_rx.clone();
    if let Some(addr) = config.metrics.listen {
        let listener = metrics::bind(addr).await?;
        let scraped = app.clone();
        let render: metrics::Render = Arc::new(move || scraped.render_metrics());
        let mut stop = stop_rx.clone();
        tokio::spawn(metrics::serve(listener, render, async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }));
    }
    let webhooks = tokio::spawn(webhook::sender::run(
        app.clone(),
        stop_rx.clone(),
        leadership.clone(),
    ));
    let scheduler = tokio::spawn(scheduler::run(app.clone(), stop_rx.clone(), leadership));
    if let Some(feed) = feed {
        tokio::spawn(crate::app::peers::follow(
            app.clone(),
            feed,
            stop_rx.clone(),
        ));
    }
    if app.state().remote_engine().is_some() {
        tokio::spawn(probe_store(app.clone(), stop_rx.clone()));
    }
    let observations = app.state().observations().writer();
    let writer = tokio::spawn(observations.run(stop_rx, None));
    let streams = app.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        // Agent streams stay open until told otherwise; the server waits for them.
        info!(
            agents = streams.registry().online_count(),
            "stopping: closing agent streams"
        );
        streams
            .registry()
            .close_all(tonic::Status::unavailable("the controller is stopping"));
    };
    let server = Server::builder()
        // Dead peers are noticed and their streams freed.
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        // Bounded per-connection buffers and streams.
        .max_concurrent_streams(Some(limits.max_streams_per_connection))
        .initial_stream_window_size(Some(limits.stream_window_bytes))
        .initial_connection_window_size(Some(limits.connection_window_bytes))
        .add_service(
            AgentServiceServer::new(Agent {
                app: app.clone(),
                idle_timeout: limits.agent_idle_timeout,
            })
            .max_decoding_message_size(limits.max_agent_message_bytes),
        )
        .add_service(
            EnrollServiceServer::new(Enroll::new(app.clone(), limits.enrollment_limiter()))
                .max_decoding_message_size(limits.max_enroll_message_bytes),
        )
        .add_service(
            AdminServiceServer::new(Admin::new(app.clone()))
                .max_decoding_message_size(limits.max_admin_message_bytes),
        )
        .serve_with_incoming_shutdown(
            accept::spawn(
                listener,
                tls,
                accept::AcceptLimits::from(&limits),
                app.metrics().refused_counter(Refusal::Connections),
            ),
            shutdown,
        );
    // A peer that keeps its side of a call open after being told to go must not keep the
    // controller from stopping.
    let deadline = async {
        if stopping.wait_for(|stop| *stop).await.is_ok() {
            tokio::time::sleep(STOP_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = server => served,
        () = deadline => {
            warn!(grace = ?STOP_GRACE, "calls still open after the grace period; stopping anyway");
            Ok(())
        }
    };
    // Let a tick or a batch in progress finish its writes before the final flush.
    if let Err(err) = scheduler.await {
        tracing::warn!(error = %err, "scheduler task ended abnormally");
    }
    if let Err(err) = webhooks.await {
        tracing::warn!(error = %err, "webhook sender ended abnormally");
    }
    if let Err(err) = writer.await {
        tracing::warn!(error = %err, "observation writer ended abnormally");
    }
    // Reports are batched in memory: write the pending ones before the final flush.
    app.persist()?;
    // Steps down and revokes the lease: another controller takes over at once.
    drop(campaign);
    served?;
    info!("controller stopped");
    Ok(())
}

/// What this controller says of itself in its presence key, each time it is written.
fn controller_info(
    app: std::sync::Weak<App>,
    name: String,
    addr: SocketAddr,
) -> impl Fn() -> ControllerInfo + Send + 'static {
    let started = jiff::Timestamp::now().as_second();
    move || ControllerInfo {
        name: name.clone(),
        address: addr.to_string(),
        agents: app
            .upgrade()
            .map_or(0, |app| app.registry().online_count() as u64),
        started,
        seen: jiff::Timestamp::now().as_second(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// How often a controller on a remote store reads it once, to know whether it answers.
const PROBE_EVERY: std::time::Duration = Duration::from_secs(2);

/// Reads the store every [`PROBE_EVERY`] until `stop`, so that its reachability (reported to
/// operators, [`crate::state::health`]) follows etcd going away and coming back even when
/// nothing else calls it.
async fn probe_store(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let state = app.clone();
        let _ = tokio::task::spawn_blocking(move || state.state().probe()).await;
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}
