//! Fuzzing the study-file parser: seed files mutated at random (bytes flipped, tokens spliced
//! in, lines dropped or repeated) must give `Ok` or a clear error, never a panic.
//!
//! CI runs a few thousand cases; a longer run:
//! `CAVIAR_FUZZ_CASES=200000 cargo test --release -p caviar-cli --lib fuzz`.

use std::path::Path;

use proptest::prelude::*;

/// Cases per run: `CAVIAR_FUZZ_CASES`, or 3,000.
pub fn cases() -> u32 {
    std::env::var("CAVIAR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

const SEEDS: &[&str] = &[
    include_str!("../../../examples/toy.toml"),
    include_str!("../../../examples/mnist_full.toml"),
    r#"name = "z"
direction = "minimize"
metric = "loss"
trials = 9
workers = 3
retries = 2
heartbeat = "2s"
parent = "p"
command = ["sh", "-c", "echo loss={x}"]
[sampler]
kind = "zoom"
round_size = 4
keep = 0.3
margin = 0.1
[pruner]
kind = "asha"
min_resource = 1
reduction_factor = 3
[params]
x = { low = -1e3, high = 1e3, step = 0.5 }
n = { low = 1, high = 1024, type = "int", scale = "log" }
c = { choices = [1, 2.5, "a", true] }
"#,
];

/// Fragments a mutation splices in: syntax, keys, extreme numbers, odd text.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "=",
    "\"",
    "'",
    ",",
    "\n",
    "#",
    ".",
    "[[params]]",
    "[params]",
    "[sampler]",
    "[pruner]",
    "[mnist]",
    "low",
    "high",
    "scale",
    "step",
    "type",
    "choices",
    "values",
    "kind",
    "workers",
    "trials",
    "timeout",
    "heartbeat",
    "retries",
    "metric",
    "parent",
    "objective",
    "command",
    "\"log\"",
    "\"reverse_log\"",
    "\"int\"",
    "\"grid\"",
    "\"tpe\"",
    "\"gp\"",
    "\"asha\"",
    "\"hyperband\"",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "0.0",
    "true",
    "\"\"",
    "\"{x}\"",
    "\"{\"",
    "\"\\u0000\"",
    "\u{e9}",
    "\u{202e}",
    "    ",
];

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Insert { at: usize, token: usize },
    Delete { at: usize, len: usize },
    RepeatLine { line: usize },
    DropLine { line: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Mutation::Insert { at, token }),
        (any::<usize>(), 1..12usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|line| Mutation::RepeatLine { line }),
        any::<usize>().prop_map(|line| Mutation::DropLine { line }),
    ]
}

/// `seed` with the mutations applied, as bytes (a flip may break UTF-8 on purpose).
fn mutate(seed: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Flip { at, byte } => {
                if !bytes.is_empty() {
                    bytes[at % len] = byte;
                }
            }
            Mutation::Insert { at, token } => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, TOKENS[token].bytes());
            }
            Mutation::Delete { at, len: n } => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            Mutation::RepeatLine { line } | Mutation::DropLine { line } => {
                let mut lines: Vec<Vec<u8>> =
                    bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let i = line % lines.len();
                if matches!(m, Mutation::RepeatLine { .. }) {
                    let copy = lines[i].clone();
                    lines.insert(i, copy);
                } else {
                    lines.remove(i);
                }
                bytes = lines.join(&b'\n');
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fuzz_mutated_study_files_never_panic(
        seed in 0..SEEDS.len(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let bytes = mutate(SEEDS[seed], &mutations);
        // The same path `caviar run` takes: bytes, UTF-8 check, parse and checks.
        let dir = std::env::temp_dir();
        let path = dir.join(format!("caviar-fuzz-{}.toml", std::process::id()));
        let outcome = std::panic::catch_unwind(|| match String::from_utf8(bytes.clone()) {
            Ok(text) => crate::config::parse(&text, Path::new("fuzz.toml")).map(|_| ()),
            Err(_) => {
                std::fs::write(&path, &bytes).unwrap();
                crate::config::load(&path).map(|_| ())
            }
        });
        let text = String::from_utf8_lossy(&bytes);
        match outcome {
            Err(_) => prop_assert!(false, "the parser panicked on:\n{text}"),
            Ok(Err(e)) => {
                let message = e.to_string();
                prop_assert!(
                    message.starts_with("fuzz.toml") || message.contains("caviar-fuzz-"),
                    "an error that does not name the file: {message}"
                );
            }
            Ok(Ok(())) => {}
        }
    }
}
