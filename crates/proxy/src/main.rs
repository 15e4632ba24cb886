//! `heapgate-proxy`: see `heapgate-proxy --help` and docs/sidecar.md. Glue only: parse, log, run.

use std::process::ExitCode;

use clap::Parser;
use heapgate_proxy::{Args, Config, Environment, LogFormat, Proxy, Signals};

fn main() -> ExitCode {
    let config = match Config::from_args(Args::parse(), |name| std::env::var_os(name)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("heapgate-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let served = runtime.block_on(async {
        // Before binding: from here on a signal drains instead of killing.
        let mut signals = Signals::new().map_err(|e| (format!("cannot handle signals: {e}"), 1))?;
        let proxy = Proxy::bind(config)
            .await
            .map_err(|e| (e.to_string(), e.exit_code()))?;
        proxy
            .run(Environment::from_process(), async move {
                let signal = signals.recv().await;
                tracing::info!(signal, "shutdown requested");
            })
            .await
            .map_err(|e| (e.to_string(), e.exit_code()))
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err((message, code)) => {
            tracing::error!("{message}");
            ExitCode::from(code)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
