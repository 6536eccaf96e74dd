//! caviar's web dashboard: a single-page app and the JSON API it reads, served over any
//! [`Storage`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use caviar_core::storage::InMemoryStorage;
//! use caviar_dash::Dashboard;
//! # async fn run() -> std::io::Result<()> {
//! let dashboard = Dashboard::new(Arc::new(InMemoryStorage::new()));
//! println!("write token: {}", dashboard.token());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! dashboard.serve(listener).await
//! # }
//! ```
//!
//! The API is read-only except for routes that need the token printed at start-up
//! (`Authorization: Bearer TOKEN`). Errors are JSON (`{"error": "..."}`) with a fitting status;
//! a handler that panics answers 500, and the server goes on.

#![warn(missing_docs)]

mod api;
mod assets;
mod cache;
mod idle;
pub mod table;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use caviar_core::storage::Storage;

pub use view::ViewLimits;

/// The dashboard's state: the storage it reads, its caches and its write token.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Shared>,
}

struct Shared {
    storage: Arc<dyn Storage>,
    token: String,
    /// Answer requests for any host name (the dashboard listens beyond loopback).
    any_host: bool,
    caches: cache::Caches,
    limits: ViewLimits,
    timeouts: Timeouts,
}

/// When the server closes a connection on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// No byte in either direction for this long: an idle keep-alive connection, a request
    /// sent half way, a client that stopped reading.
    pub idle: Duration,
    /// Open this long, however busy (a client trickling a byte at a time).
    pub age: Duration,
}

impl Default for Timeouts {
    /// 30 s idle, 15 min in all: far beyond what the page's requests need (it polls every
    /// 2 s and reconnects when closed).
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(30),
            age: Duration::from_secs(15 * 60),
        }
    }
}

impl Dashboard {
    /// A dashboard over `storage`, with a fresh random write token.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self::with_token(storage, random_token())
    }

    /// A dashboard with a chosen write token (tests).
    pub fn with_token(storage: Arc<dyn Storage>, token: String) -> Self {
        Dashboard {
            inner: Arc::new(Shared {
                storage,
                token,
                any_host: false,
                caches: cache::Caches::default(),
                limits: ViewLimits::default(),
                timeouts: Timeouts::default(),
            }),
        }
    }

    /// Answers requests whatever host name they name; for a dashboard that listens on a
    /// network address (by default only loopback names are answered, against DNS rebinding).
    pub fn allow_any_host(self) -> Self {
        let shared = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("allow_any_host is called before the dashboard is shared"));
        Dashboard {
            inner: Arc::new(Shared {
                any_host: true,
                ..shared
            }),
        }
    }

    /// Closes connections on other timeouts than [`Timeouts::default`].
    pub fn with_timeouts(self, timeouts: Timeouts) -> Self {
        let shared = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("with_timeouts is called before the dashboard is shared"));
        Dashboard {
            inner: Arc::new(Shared { timeouts, ..shared }),
        }
    }

    /// The token that write routes require.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// The routes, for serving or for tests.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Reads every study once, so the first page of a large study opens at once.
    pub fn warm(&self) {
        if let Ok(studies) = self.inner.storage.studies() {
            for s in studies {
                let _ = self
                    .inner
                    .caches
                    .with_finished(&*self.inner.storage, s.study.id, |_| ());
            }
        }
    }

    /// Serves until the process ends, closing connections that outstay [`Timeouts`].
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let quiet = idle::QuietListener {
            inner: listener,
            idle: self.inner.timeouts.idle,
            age: self.inner.timeouts.age,
        };
        axum::serve(quiet, self.router()).await
    }
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// No study of that name.
    #[error("no study named `{0}`")]
    NoSuchStudy(String),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] caviar_core::storage::StorageError),
}

/// One study's page as a self-contained HTML file (`caviar report`): the app, the chart library
/// and the study's data inlined, so it opens anywhere without a server.
pub fn report_html(storage: &dyn Storage, name: &str) -> Result<String, ReportError> {
    let record = storage
        .study(name)?
        .ok_or_else(|| ReportError::NoSuchStudy(name.to_string()))?;
    let lineage = api::lineage(storage, &record)?;
    let caches = cache::Caches::default();
    let mut data = caches.view(storage, &record, lineage, &ViewLimits::default())?;
    data["written_ms"] = serde_json::json!(caviar_core::trial::now_ms());
    data["notes"] = serde_json::json!(caviar_engine::notes::study_notes(storage, record.id)?);
    // Inside <script>, "</" could end the element early.
    let inline = |text: &str| text.replace("</", "<\\/");
    Ok(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>caviar report: {title}</title>\n<style>\n{css}</style>\n<script>\n{echarts}\n</script>\n</head>\n<body>\n<header><span class=\"brand\">caviar</span><span id=\"status\"></span></header>\n<main id=\"main\"></main>\n<script>window.CAVIAR_REPORT = {data};</script>\n<script>\n{app}</script>\n</body>\n</html>\n",
        title = html_escape(name),
        css = assets::APP_CSS,
        echarts = inline(assets::ECHARTS),
        // Every "<" of the data escaped: no "<!--" or "<script" in a name can change how the
        // page is parsed.
        data = data.to_string().replace('<', "\\u003c"),
        app = inline(assets::APP_JS),
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 128 random bits in hex, from the kernel's generator, or else from the standard library's
/// randomly keyed hasher (seeded from the operating system's randomness).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
