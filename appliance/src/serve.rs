//! `hearth serve`: the start-up steps, in order, then serving until a
//! signal, then a clean stop.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    time::{Duration, Instant},
};

use anyhow::Context;
use hearth_auth::Auth;
use hearth_config::{Config, LogLevel};
use hearth_store::Store;
use hearth_system::{Clock, init_logging, notify};
use hearth_web::{AppState, Services, Shared};

/// How long in-flight requests get to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an update on trial has to answer its own `/healthz` before it
/// gives up (systemd's `TimeoutStartSec=` is the outer deadline).
const TRIAL_CHECK: Duration = Duration::from_secs(30);

/// How `hearth serve` ended.
pub(crate) enum Stopped {
    Clean,
    /// An update was installed: start again (exit status 75).
    ForRestart,
}

pub(crate) fn serve(
    config: Config,
    simulate_clock_offset: Option<i64>,
) -> Result<Stopped, crate::Failure> {
    let started = Instant::now();
    init_logging(level(config.log_level));
    // Before anything is opened: run the installed update instead, or
    // roll back one that did not come up (docs/updates.md).
    let updates = crate::update::updates(&config)?;
    crate::update::launch(&updates);
    if updates.keys().has_extra() {
        log::warn!("also trusting updates signed by update_extra_key from the configuration");
    }
    log::info!("Hearth {} starting", hearth_update::running_version());
    serve_with(config, simulate_clock_offset, started, updates).map_err(crate::Failure::Runtime)
}

/// The backup scheduler and the S3 uploader beside it.
fn start_jobs(config: &Config) -> hearth_jobs::Jobs {
    let jobs = hearth_jobs::Jobs::start(
        hearth_jobs::Paths::under(&config.data_dir),
        Duration::from_secs(config.backup_quiet_secs.max(1)),
    );
    jobs.start_uploader(hearth_jobs::UploadSettings {
        bytes_per_sec: config.s3_bandwidth_kib.saturating_mul(1024),
        retry: Duration::from_secs(config.s3_retry_secs.max(1)),
    });
    jobs
}

fn serve_with(
    config: Config,
    simulate_clock_offset: Option<i64>,
    started: Instant,
    updates: hearth_update::Updates,
) -> anyhow::Result<Stopped> {
    raise_open_files();
    prepare_data_dir(&config)?;
    let store = Store::open(&config.data().db())?;
    hearth_auth::reset_if_requested(&store, &config.boot_dir)?;
    hearth_auth::claim_preseeded(&store, &config.data_dir)?;
    // Made on the device at first start, never in the image.
    let identity = hearth_mirror::identity::Identity::load_or_create(&config.data_dir)?;
    log::info!("device {}", identity.id.long());
    let auth = Auth::new(store.clone())?;
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    listener.set_nonblocking(true)?;
    let peer_listener = std::net::TcpListener::bind(config.mirror_listen)
        .with_context(|| format!("cannot listen on {} (mirror_listen)", config.mirror_listen))?;
    peer_listener.set_nonblocking(true)?;
    let hostname = hearth_system::hostname();
    let mirror = hearth_mirror::Mirror::new(
        identity,
        store.clone(),
        hearth_mirror::Settings {
            data_dir: config.data_dir.clone(),
            name: if config.device_name.trim().is_empty() {
                hostname.clone()
            } else {
                config.device_name.trim().to_string()
            },
            grace: Duration::from_secs(config.mirror_grace_days.saturating_mul(86_400)),
            bandwidth: config.mirror_bandwidth_kib.saturating_mul(1024),
            every: Duration::from_secs(config.mirror_every_minutes.max(1).saturating_mul(60)),
            prove_every: Duration::from_secs(config.mirror_prove_hours.saturating_mul(3600)),
            board_every: Duration::from_secs(config.board_pull_secs.max(1)),
            board_photo_budget: config.board_photo_budget_mib.saturating_mul(1 << 20),
            updates: updates.clone(),
        },
        peer_listener.local_addr()?.port(),
    );
    let discovery = hearth_net::discovery::Discovery::start(
        hearth_net::discovery::Advert {
            name: mirror.name().to_string(),
            id: mirror.device().to_hex(),
            short: mirror.device().short(),
            listen: peer_listener.local_addr()?,
        },
        config.mirror_discovery,
    );
    let restart = std::sync::Arc::new(tokio::sync::Notify::new());
    let clock = match simulate_clock_offset {
        Some(secs) => Clock::simulated(secs.saturating_mul(1000)),
        None => Clock::system(),
    };
    let state = AppState::new(
        Shared::new(Services {
            auth,
            clock,
            store: store.clone(),
            jobs: start_jobs(&config),
            mirror,
            hotspot: hearth_net::hotspot::Hotspot::open(
                &config.hotspot_connection,
                &config.data_dir,
                Duration::from_secs(config.hotspot_confirm_secs.max(2)),
            ),
            zerotier: hearth_net::zerotier::ZeroTier::new(
                &config.zerotier_api,
                &config.zerotier_token_file,
            )?,
            discovery,
            data_dir: config.data_dir.clone(),
            files_dir: config.files_dir.clone(),
            secure_cookies: config.secure_cookies,
            updates: updates.clone(),
            restart: restart.clone(),
        })
        .context("no random numbers")?,
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stopped = runtime.block_on(run(
        listener,
        peer_listener,
        state,
        started,
        &updates,
        &restart,
    ))?;
    // Every request has finished: fold the WAL back so the stop is clean.
    store.close().context("closing the database")?;
    log::info!("stopped cleanly");
    Ok(stopped)
}

async fn run(
    listener: std::net::TcpListener,
    peer_listener: std::net::TcpListener,
    state: AppState,
    started: Instant,
    updates: &hearth_update::Updates,
    restart: &tokio::sync::Notify,
) -> anyhow::Result<Stopped> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let peer_addr = peer_listener.local_addr()?;
    // Shared boards travel over the peer channel, signed with this
    // device's identity key.
    state.mirror.attach_board(state.board.clone())?;
    state
        .mirror
        .start(tokio::net::TcpListener::from_std(peer_listener)?)?;
    // Each finished backup or prune starts a mirror run.
    let mirror = state.mirror.clone();
    state.jobs.on_change(move || mirror.sync_now());
    // An unkept hotspot change is undone when its window passes.
    state.hotspot.spawn_reverter();
    let mut server = tokio::spawn(hearth_web::serve(listener, state, async {
        let _ = stop_rx.await;
    }));

    // An update on trial is kept only once it answers as clients will,
    // before anyone (tests, scripts, systemd) is told it is ready.
    let blocking = |f: fn(&hearth_update::Updates) -> bool| {
        let updates = updates.clone();
        tokio::task::spawn_blocking(move || f(&updates))
    };
    if blocking(|u| u.on_trial()).await? {
        if let Err(e) = check_health(addr).await {
            let reason = format!("its own /healthz check failed: {e:#}");
            let updates = updates.clone();
            let note = reason.clone();
            tokio::task::spawn_blocking(move || updates.fail_trial(&note)).await?;
            anyhow::bail!("this update is not healthy ({reason}); the next start rolls back");
        }
        let confirmed = blocking(|u| {
            u.confirm()
                .map_err(|e| log::error!("confirming the update: {e}"))
                .is_ok()
        })
        .await?;
        // Unconfirmed, the next start would roll back anyway: do it now
        // rather than run a version the device will not keep.
        anyhow::ensure!(
            confirmed,
            "the update could not be confirmed; the next start rolls back"
        );
    }
    // Tests and scripts read these lines to learn the bound ports. A
    // reader that has gone away (it read the first line and closed the
    // pipe) must not stop the server: write errors are ignored, where
    // println! would panic.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "Hearth is ready at http://{addr}/");
        let _ = writeln!(out, "Peer port at {peer_addr}");
        let _ = out.flush();
    }
    log::info!(
        "listening on {addr}, ready {} ms after start",
        started.elapsed().as_millis()
    );
    notify::ready();
    if let Some(every) = notify::watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify::watchdog_ping();
            }
        });
    }

    let stopped = tokio::select! {
        result = &mut server => {
            result.context("web server task")?.context("web server")?;
            return Ok(Stopped::Clean);
        }
        () = stop_signal() => Stopped::Clean,
        () = restart.notified() => {
            log::info!("an update was installed; stopping to start it");
            Stopped::ForRestart
        }
    };
    notify::stopping();
    let _ = stop_tx.send(());
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(result) => result.context("web server task")?.context("web server")?,
        Err(_) => log::warn!(
            "requests still running {}s after the stop signal; stopping anyway",
            DRAIN_TIMEOUT.as_secs()
        ),
    }
    Ok(stopped)
}

/// Asks this server's own `/healthz` over loopback, as the admin's browser
/// would: the database opens, migrations ran, requests are answered.
async fn check_health(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let mut target = addr;
    if target.ip().is_unspecified() {
        target.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let client = reqwest::Client::builder()
        .timeout(TRIAL_CHECK)
        .no_proxy()
        .build()?;
    let response = client
        .get(format!("http://{target}/healthz"))
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() || !body.starts_with("ok") {
        anyhow::bail!("{status}: {}", body.trim());
    }
    Ok(())
}

/// Resolves on SIGTERM (systemd's stop) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => log::info!("SIGTERM received; stopping"),
                _ = tokio::signal::ctrl_c() => log::info!("interrupted; stopping"),
            }
        }
        Err(e) => {
            log::warn!("cannot watch SIGTERM ({e}); only Ctrl-C stops Hearth");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Every live board page holds a connection, so the default soft limit of
/// 1024 open files would cap a busy hotspot; systemd's hard limit is far
/// higher, and raising the soft one to it needs no privilege.
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            log::warn!("cannot raise the open-file limit: {e}");
        }
    }
}

/// Creates the data directory, owner-only: it holds the password hash.
fn prepare_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict the data directory {}", dir.display()))?;
    Ok(())
}

fn level(l: LogLevel) -> log::LevelFilter {
    match l {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    }
}
