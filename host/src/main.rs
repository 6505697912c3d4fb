//! The `labelhost` binary: `serve` runs the server, `token` makes API tokens, `apps`
//! manages a running server's apps; `pack`, `infer` and `datastore` work without one
//! (`labelhost::cli`).

use clap::Parser;
use labelhost::{
    api::{self, AppState},
    config::{Cli, Command, ServeArgs, ServerConfig, TokenArgs},
    datastore::LocalDatastore,
    executor::TorchExecutor,
    registry::Registry,
    services::Shared,
    Error, Result,
};
use std::{process::ExitCode, sync::Arc};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let (argv, injected) = match labelhost::config::file::with_file(std::env::args_os().collect()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("labelhost: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if let Some(file) = injected.filter(|i| !i.flags.is_empty() && e.use_stderr()) {
                eprintln!(
                    "(with settings from {}: {})",
                    file.file,
                    file.flags.join(" ")
                );
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Pack(args) => labelhost::cli::pack::run(&args),
        Command::Token(args) => token(args),
        Command::Apps(args) => labelhost::remote::apps(&args),
        Command::Infer(args) => {
            init_cli_logging();
            labelhost::cli::infer::run(&args)
        }
        Command::Datastore(args) => {
            init_cli_logging();
            labelhost::cli::datastore::run(&args)
        }
        Command::Dicom(args) => labelhost::cli::dicom::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labelhost: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("labelhost=info,tower_http=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| labelhost::logs::Tee);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Warnings and errors (the host's and the plugins') on stderr, for the verbs that run
/// apps or a datastore in process; `RUST_LOG` overrides.
fn init_cli_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(args: ServeArgs) -> Result<()> {
    init_logging(args.json_logs);
    let config = ServerConfig::try_from(&args)?;
    // Allocator settings go before any thread starts.
    labelhost::memory::keep_heap_warm(config.warm_heap);
    // Apps read the limit from the environment (ReadOptions::default); set before any
    // thread starts.
    std::env::set_var(
        labelhost_plugin_api::sdk::image::ReadOptions::MAX_VOXELS_ENV,
        config.max_voxels.to_string(),
    );
    let runtime = labelhost::runtime::RuntimeDir::open(config.runtime_dir.as_deref())?;

    tch::Cuda::cudnn_set_benchmark(config.cudnn_benchmark);
    labelhost::executor::use_generic_ops(config.generic_ops);
    let executor = Arc::new(TorchExecutor::with_queues(
        config.queue_capacity,
        config.device_workers,
    ));
    tracing::info!(
        devices = ?executor.devices(),
        workers = ?executor.workers(),
        cudnn_benchmark = config.cudnn_benchmark,
        generic_ops = config.generic_ops,
        huge_pages = labelhost::memory::tensor_huge_pages(),
        "executor ready"
    );
    let datastore = LocalDatastore::open(&config.studies)?;
    labelhost::error::hide_paths(&[
        &config.studies,
        datastore.root(),
        &config.plugins,
        runtime.path(),
        &std::env::temp_dir(),
    ]);
    datastore.set_claim_secs(config.claim_seconds);
    datastore.set_max_voxels(config.max_voxels);
    datastore.set_follow_links(config.follow_symlinks);
    if let Some(d) = &config.dicomweb {
        let web = labelhost::dicom::DicomWeb::new(
            &d.url,
            d.basic.clone(),
            std::time::Duration::from_secs(300),
        )?
        .with_page_size(d.page_size);
        datastore.set_remote(
            labelhost::datastore::Remote::new(web, d.filters.clone(), d.cache_bytes)
                .with_expiry(d.cache_expiry),
        );
        let (added, removed) = datastore.sync_remote()?;
        tracing::info!(url = %d.url, added, removed, cache = %config.studies.display(), "DICOMweb datastore");
    }
    let tokio_rt = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Internal(format!("tokio runtime: {e}")))?;
    let cluster = match &config.cluster {
        Some(c) => {
            let connect = labelhost::cluster::Cluster::connect(&c.url, &c.host_name, c.poll);
            let cluster = tokio_rt.block_on(connect)?;
            tracing::info!(host = %c.host_name, "joined the cluster");
            Some(cluster)
        }
        None => None,
    };
    let shared = Shared::new_with_cluster(datastore, executor, config.conf.clone(), cluster);
    let registry = Registry::new(&config.plugins, runtime.path(), shared.clone())
        .with_max_libraries(config.max_libraries);
    for (bundle, error) in registry.load_all() {
        tracing::warn!(bundle, "bundle skipped: {error}");
    }
    for g in registry.snapshot().apps.values() {
        tracing::info!(app = %g.name, version = %g.version, tasks = g.tasks.len(), "app loaded");
    }
    let sessions =
        labelhost::sessions::Sessions::new(&config.studies.join(".labelhost").join("sessions"));
    let state = Arc::new(AppState {
        registry,
        shared,
        sessions,
        access: config.access.clone(),
        timeouts: config.timeouts.clone(),
        request_memory: config.request_memory,
        max_abandoned: config.max_abandoned,
        metrics: Default::default(),
    });
    let poll = std::time::Duration::from_millis(config.datastore_poll_ms);
    let served = tokio_rt.block_on(async move {
        if let (Some(c), Some(cluster)) = (&config.cluster, state.shared.cluster.clone()) {
            labelhost::cluster::spawn_watch(cluster, state.shared.clone(), c.poll);
        }
        let addr = std::net::SocketAddr::new(config.host, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::BadRequest(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Internal(e.to_string()))?;
        println!("labelhost listening on http://{local}");
        // Files dropped into (or removed from) the studies folder appear without a restart.
        let store = state.shared.datastore.clone();
        let state_for_poll = state.clone();
        // A DICOMweb server's new (and gone) series appear without a restart.
        if let Some(d) = config.dicomweb.clone() {
            let store = state.shared.datastore.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(d.poll).await;
                    let s = store.clone();
                    match tokio::task::spawn_blocking(move || s.sync_remote()).await {
                        Ok(Err(e)) => tracing::warn!("DICOMweb search: {e}"),
                        Ok(Ok((a, r))) if a + r > 0 => {
                            tracing::info!(added = a, removed = r, "DICOMweb series")
                        }
                        _ => {}
                    }
                }
            });
        }
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let (s, st) = (store.clone(), state_for_poll.clone());
                match tokio::task::spawn_blocking(move || {
                    st.sessions.cleanup();
                    s.refresh_if_changed()
                })
                .await
                {
                    Ok(Err(e)) => tracing::warn!("datastore refresh: {e}"),
                    Ok(Ok(true)) => tracing::debug!("datastore refreshed"),
                    _ => {}
                }
            }
        });
        let jobs = state.shared.jobs.clone();
        labelhost::serve::serve(listener, api::router(state), config.connections, shutdown()).await;
        // In-flight requests were answered; background jobs are told to stop and given
        // a while to (a training loop ends within one step), so their records say so.
        let stopped = jobs.stop_all("stopped: the server shut down");
        if stopped > 0 {
            tracing::info!(jobs = stopped, "stopping background jobs");
            if !jobs.wait_idle(std::time::Duration::from_secs(60)).await {
                tracing::warn!("background jobs still running at exit");
            }
        }
        tracing::info!("shut down");
        Ok(())
    });
    // A plugin call that never returned (a timed-out task stuck in its own code) must not
    // keep the process alive.
    tokio_rt.shutdown_timeout(std::time::Duration::from_secs(5));
    served
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn token(args: TokenArgs) -> Result<()> {
    for role in &args.roles {
        if labelhost::auth::Role::parse(role).is_none() {
            return Err(Error::BadRequest(format!(
                "--role {role}: expected user, annotator, reviewer or admin"
            )));
        }
    }
    let token = labelhost::auth::new_token();
    let entry = serde_json::json!({
        "username": args.username,
        "roles": args.roles,
        "sha256": labelhost::auth::digest(&token),
    });
    println!("token: {token}");
    println!("auth config entry: {entry}");
    Ok(())
}
