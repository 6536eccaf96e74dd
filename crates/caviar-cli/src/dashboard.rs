//! `caviar dashboard` and `caviar report`.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use caviar_core::storage::Storage;
use caviar_dash::{report_html, Dashboard, ReportError};

use crate::BadInput;

/// Serves the dashboard over `storage` until the process is stopped.
pub fn serve(
    storage: Arc<dyn Storage>,
    url: &str,
    host: &str,
    port: u16,
    idle_timeout: std::time::Duration,
) -> Result<()> {
    if idle_timeout.is_zero() {
        return Err(BadInput("--idle-timeout must be above zero, e.g. 30s".into()).into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the web server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((host, port))
            .await
            .map_err(|e| {
                BadInput(format!(
                    "cannot listen on {host}:{port}: {e}; choose another --port"
                ))
            })?;
        let addr = listener.local_addr()?;
        let mut dashboard = Dashboard::new(storage).with_timeouts(caviar_dash::Timeouts {
            idle: idle_timeout,
            ..Default::default()
        });
        if !addr.ip().is_loopback() {
            dashboard = dashboard.allow_any_host();
        }
        let shown = if addr.ip().is_unspecified() {
            format!("localhost:{}", addr.port())
        } else {
            addr.to_string() // brackets an IPv6 address
        };
        println!("caviar dashboard: http://{shown}/");
        println!(
            "studies from {url}; read-only; token for changes (Authorization: Bearer): {}",
            dashboard.token()
        );
        if !addr.ip().is_loopback() {
            eprintln!(
                "warning: listening on {} makes the dashboard reachable from other machines",
                addr.ip()
            );
        }
        std::io::stdout().flush()?;
        // Read every study once in the background, so the first page of a large one is quick.
        let warm = dashboard.clone();
        tokio::task::spawn_blocking(move || warm.warm());
        dashboard
            .serve(listener)
            .await
            .context("serving the dashboard")?;
        Ok(())
    })
}

/// Writes one study's self-contained HTML report.
pub fn report(storage: &dyn Storage, study: &str, out: &Path) -> Result<()> {
    let html = report_html(storage, study).map_err(|e| match e {
        ReportError::NoSuchStudy(name) => anyhow::Error::new(BadInput(format!(
            "no study named `{name}`; `caviar studies` lists them"
        ))),
        other => anyhow::Error::new(other).context("reading the study"),
    })?;
    std::fs::write(out, &html).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "wrote {} ({:.1} MB): study `{study}` with its plots, self-contained",
        out.display(),
        html.len() as f64 / 1e6
    );
    Ok(())
}
