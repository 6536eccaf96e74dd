//! A fresh PostgreSQL schema per test, for tests that run a study on the real server.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs `test` with a storage URL for a fresh schema, dropped afterwards; skips, saying so,
/// when `CAVIAR_TEST_POSTGRES_URL` is unset.
pub fn in_postgres_schema(prefix: &str, test: fn(&Path, &str)) {
    let Ok(url) = std::env::var("CAVIAR_TEST_POSTGRES_URL") else {
        println!("skipped: set CAVIAR_TEST_POSTGRES_URL to run this test on PostgreSQL");
        return;
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let schema = format!("{prefix}_{}_{stamp}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let storage = format!("{url}{separator}schema={schema}");
    let result = std::panic::catch_unwind(|| test(dir.path(), &storage));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
