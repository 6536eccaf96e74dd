//! The app's files, built into the binary: serving them never touches the file system, so no
//! request path can reach outside them.

use std::io::Write;
use std::sync::OnceLock;

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub mime: &'static str,
    pub body: &'static [u8],
    /// Large files are sent compressed to clients that accept gzip.
    gzip: Option<&'static OnceLock<Vec<u8>>>,
}

static ECHARTS_GZ: OnceLock<Vec<u8>> = OnceLock::new();

pub const INDEX: &[u8] = include_bytes!("../assets/index.html");
pub const APP_JS: &str = include_str!("../assets/app.js");
pub const APP_CSS: &str = include_str!("../assets/app.css");
pub const ECHARTS: &str = include_str!("../assets/vendor/echarts.min.js");

static ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: APP_JS.as_bytes(),
        gzip: None,
    },
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        body: APP_CSS.as_bytes(),
        gzip: None,
    },
    Asset {
        name: "echarts.min.js",
        mime: "text/javascript; charset=utf-8",
        body: ECHARTS.as_bytes(),
        gzip: Some(&ECHARTS_GZ),
    },
];

/// The embedded file of that exact name.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

impl Asset {
    /// The gzip form, compressed once on first use.
    pub fn gzipped(&self) -> Option<&'static [u8]> {
        let cell = self.gzip?;
        let body = self.body;
        Some(cell.get_or_init(|| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(body).expect("writing to memory");
            enc.finish().expect("writing to memory")
        }))
    }
}
