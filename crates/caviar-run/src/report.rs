/// One parsed report line.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Numeric `key=value` pairs, in line order.
    pub values: Vec<(String, f64)>,
    /// Whether the line started with `final`: its metric value is the objective.
    pub is_final: bool,
}

impl Report {
    /// The value of `key`, if reported.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The step this report belongs to: its `epoch` or `step` value.
    pub fn step(&self) -> Option<u64> {
        let v = self.get("epoch").or_else(|| self.get("step"))?;
        (v.is_finite() && v >= 0.0).then_some(v as u64)
    }
}

/// Whether `key` can appear as a key in a report line: letters, digits, `_`, `-`, `.` and `/`.
///
/// ```
/// assert!(caviar_run::is_report_key("val/acc-top_1.5"));
/// assert!(!caviar_run::is_report_key("val acc"));
/// assert!(!caviar_run::is_report_key("<b>acc</b>"));
/// ```
pub fn is_report_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/')
}

/// Parses a stdout line as a report: whitespace-separated `key=value` tokens only, at least one
/// with a numeric value (`nan` and `inf` count, so they can be caught). An optional leading word
/// `final` marks the objective. Any other line is log output and gives `None`.
///
/// ```
/// use caviar_run::parse_report;
/// let r = parse_report("epoch=3 val_acc=0.81 loss=0.4").unwrap();
/// assert_eq!(r.get("val_acc"), Some(0.81));
/// assert_eq!(r.step(), Some(3));
/// assert!(parse_report("Epoch 3: accuracy 0.81").is_none());
/// assert!(parse_report("final val_acc=0.9").unwrap().is_final);
/// ```
pub fn parse_report(line: &str) -> Option<Report> {
    let mut tokens = line.split_whitespace().peekable();
    let is_final = tokens.peek() == Some(&"final");
    if is_final {
        tokens.next();
    }
    let mut values = Vec::new();
    let mut any = false;
    for token in tokens {
        let (key, value) = token.split_once('=')?;
        if !is_report_key(key) {
            return None;
        }
        any = true;
        if let Ok(v) = value.parse::<f64>() {
            values.push((key.to_string(), v));
        }
    }
    (any && !values.is_empty()).then_some(Report { values, is_final })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_and_logs_are_told_apart() {
        assert!(parse_report("").is_none());
        assert!(parse_report("loading data...").is_none());
        assert!(parse_report("a=b").is_none(), "no numeric value");
        assert!(parse_report("x=1 and more").is_none());
        let r = parse_report("  step=7\tacc=nan  tag=run1 ").unwrap();
        assert_eq!(r.step(), Some(7));
        assert!(r.get("acc").unwrap().is_nan());
        assert_eq!(r.get("tag"), None);
        assert_eq!(
            parse_report("loss=inf").unwrap().get("loss"),
            Some(f64::INFINITY)
        );
        assert_eq!(parse_report("epoch=-1 acc=1").unwrap().step(), None);
    }

    /// Cases per run: `CAVIAR_FUZZ_CASES`, or 3,000. A longer run:
    /// `CAVIAR_FUZZ_CASES=1000000 cargo test --release -p caviar-run fuzz`.
    fn cases() -> u32 {
        std::env::var("CAVIAR_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000)
    }

    /// Report-like text: keys, `=`, numbers of every kind, junk and whitespace.
    fn line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("final ".to_string()),
            Just("epoch=".to_string()),
            Just("val_acc=".to_string()),
            Just("=".to_string()),
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\u{0}".to_string()),
            Just("\u{202e}".to_string()),
            any::<f64>().prop_map(|v| v.to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            Just("1e999".to_string()),
            Just("-nan".to_string()),
            "[a-z_./-]{0,6}",
            any::<String>(),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: cases(),
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn fuzz_report_lines_never_panic_and_keep_what_they_say(text in line()) {
            if let Some(report) = parse_report(&text) {
                // Every value it returns was written as key=value, with a key a metric can have.
                proptest::prop_assert!(!report.values.is_empty());
                for (key, value) in &report.values {
                    proptest::prop_assert!(is_report_key(key));
                    let written = text.split_whitespace().any(|t| {
                        t.split_once('=').is_some_and(|(k, v)| {
                            k == key && v.parse::<f64>().is_ok_and(|x| x.to_bits() == value.to_bits() || (x.is_nan() && value.is_nan()))
                        })
                    });
                    proptest::prop_assert!(written, "{key}={value} not in {text:?}");
                }
                let _ = report.step();
            }
        }

        #[test]
        fn fuzz_well_formed_reports_are_read_back(
            pairs in proptest::collection::vec(("[a-z][a-z0-9_]{0,8}", proptest::num::f64::NORMAL | proptest::num::f64::ZERO), 1..6),
        ) {
            let text = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            let report = parse_report(&text).expect("a well-formed report");
            for (key, _) in &pairs {
                // With a repeated key, the first is what get() answers.
                let first = pairs.iter().find(|(k, _)| k == key).unwrap().1;
                proptest::prop_assert_eq!(report.get(key), Some(first));
            }
        }
    }
}
