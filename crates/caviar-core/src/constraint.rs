//! Constraints on reported values: `memory_mb <= 4000`, `latency_ms < 20`.
//!
//! A complete trial that violates one is *infeasible*: it keeps its value and state, but the
//! best and Pareto tables skip it and model-based samplers learn to avoid its region. Each
//! constraint turns a trial's reported value `x` into a number `c` that is at most zero exactly
//! when the constraint holds (Optuna's convention), so `c` also says by how much it is broken.
//!
//! ```
//! use caviar_core::constraint::Constraint;
//! let memory: Constraint = "memory_mb <= 4000".parse().unwrap();
//! assert_eq!(memory.value(Some(3500.0)), -500.0);
//! assert!(memory.value(Some(4200.0)) > 0.0);
//! // A value never reported breaks the constraint.
//! assert!(memory.value(None) > 0.0);
//! assert!("memory_mb =< 4000".parse::<Constraint>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a reported value must compare with the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// `<=`
    AtMost,
    /// `<`
    Below,
    /// `>=`
    AtLeast,
    /// `>`
    Above,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Comparison::AtMost => "<=",
            Comparison::Below => "<",
            Comparison::AtLeast => ">=",
            Comparison::Above => ">",
        }
    }
}

/// One constraint: a reported key, a comparison and a bound.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraint {
    /// The reported value it reads (any key a trial reports, the objective's metric included).
    pub key: String,
    /// How the value must compare with `bound`.
    pub comparison: Comparison,
    /// The bound.
    pub bound: f64,
}

/// What a constraint's text got wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("constraint `{text}`: {why}; write it as KEY <= NUMBER (or <, >=, >), e.g. \"memory_mb <= 4000\"")]
pub struct ConstraintError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

/// The value of a constraint nobody reported: broken, by more than any measured violation.
pub const MISSING: f64 = f64::MAX;

impl Constraint {
    /// The constraint's value for a trial that reported `x` (`None`: never reported, or NaN):
    /// at most zero when it holds, otherwise how far it is broken. A strict comparison met
    /// with equality is broken by the smallest step that the bound's magnitude can show.
    pub fn value(&self, x: Option<f64>) -> f64 {
        let Some(x) = x.filter(|x| !x.is_nan()) else {
            return MISSING;
        };
        let c = match self.comparison {
            Comparison::AtMost | Comparison::Below => x - self.bound,
            Comparison::AtLeast | Comparison::Above => self.bound - x,
        };
        let strict = matches!(self.comparison, Comparison::Below | Comparison::Above);
        let c = if strict && c == 0.0 {
            f64::EPSILON * self.bound.abs().max(1.0)
        } else {
            c
        };
        c.clamp(-MISSING, MISSING)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.key,
            self.comparison.symbol(),
            self.bound
        )
    }
}

impl FromStr for Constraint {
    type Err = ConstraintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why: &str| ConstraintError {
            text: text.to_string(),
            why: why.to_string(),
        };
        let at = text
            .find(['<', '>'])
            .ok_or_else(|| fail("it has no comparison"))?;
        let (key, rest) = text.split_at(at);
        let (comparison, bound) = if let Some(b) = rest.strip_prefix("<=") {
            (Comparison::AtMost, b)
        } else if let Some(b) = rest.strip_prefix(">=") {
            (Comparison::AtLeast, b)
        } else if let Some(b) = rest.strip_prefix('<') {
            (Comparison::Below, b)
        } else if let Some(b) = rest.strip_prefix('>') {
            (Comparison::Above, b)
        } else {
            return Err(fail("it has no comparison"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(fail("the key before the comparison is missing"));
        }
        if !key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        {
            return Err(fail(&format!(
                "the key `{key}` is not a reported name (letters, digits, _ - . /)"
            )));
        }
        let bound_text = bound.trim();
        let bound: f64 = bound_text.parse().map_err(|_| {
            fail(&format!(
                "the bound `{bound_text}` after `{}` is not a number",
                comparison.symbol()
            ))
        })?;
        if !bound.is_finite() {
            return Err(fail(&format!("the bound `{bound_text}` is not finite")));
        }
        Ok(Constraint {
            key: key.to_string(),
            comparison,
            bound,
        })
    }
}

impl Serialize for Constraint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a trial with these constraint values is feasible (no constraints: feasible).
pub fn is_feasible(values: &[f64]) -> bool {
    values.iter().all(|&c| c <= 0.0)
}

/// How far a trial with these constraint values is from feasible: the sum of the broken
/// constraints' values (0 when feasible).
pub fn violation(values: &[f64]) -> f64 {
    values
        .iter()
        .map(|&c| c.max(0.0))
        .fold(0.0, |a, c| (a + c).min(MISSING))
}

/// The values of `constraints` for a trial whose last reports are given by `reported`.
pub fn evaluate(constraints: &[Constraint], reported: impl Fn(&str) -> Option<f64>) -> Vec<f64> {
    constraints
        .iter()
        .map(|c| c.value(reported(&c.key)))
        .collect()
}

/// What each broken constraint of a trial says, e.g. `memory_mb <= 4000 (4200)` or
/// `latency_ms < 20 (never reported)`; empty when the trial is feasible.
pub fn describe_broken(constraints: &[Constraint], values: &[f64]) -> Vec<String> {
    constraints
        .iter()
        .zip(values)
        .filter(|(_, &c)| c > 0.0)
        .map(|(constraint, &c)| {
            if c >= MISSING {
                return format!("{constraint} (never reported)");
            }
            let reported = match constraint.comparison {
                Comparison::AtMost | Comparison::Below => constraint.bound + c,
                Comparison::AtLeast | Comparison::Above => constraint.bound - c,
            };
            // A strict bound met exactly reads back as the bound itself.
            let shown = if (reported - constraint.bound).abs()
                <= f64::EPSILON * constraint.bound.abs().max(1.0)
            {
                constraint.bound
            } else {
                reported
            };
            format!("{constraint} ({})", crate::space::format_g(shown, 6))
        })
        .collect()
}

/// The constraints a study's spec lists under `constraints` (`None` when it lists none).
pub fn from_spec(
    spec: Option<&serde_json::Value>,
) -> Result<Option<Vec<Constraint>>, ConstraintError> {
    let Some(list) = spec.and_then(|s| s.get("constraints")) else {
        return Ok(None);
    };
    let texts: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    parse_all(&texts).map(Some)
}

/// Parses constraint texts, naming the first bad one.
pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Constraint>, ConstraintError> {
    texts.iter().map(|t| t.as_ref().parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_comparison_and_prints_it_back() {
        for (text, comparison, printed) in [
            ("memory_mb <= 4000", Comparison::AtMost, "memory_mb <= 4000"),
            ("latency_ms<20", Comparison::Below, "latency_ms < 20"),
            (" val_acc >= 0.9 ", Comparison::AtLeast, "val_acc >= 0.9"),
            ("throughput > 1e3", Comparison::Above, "throughput > 1000"),
        ] {
            let c: Constraint = text.parse().unwrap();
            assert_eq!(c.comparison, comparison, "{text}");
            assert_eq!(c.to_string(), printed);
            assert_eq!(c.to_string().parse::<Constraint>().unwrap(), c);
        }
    }

    #[test]
    fn bad_texts_name_what_is_wrong() {
        for (text, why) in [
            ("memory_mb", "no comparison"),
            ("<= 4", "key before the comparison is missing"),
            ("memory mb <= 4", "not a reported name"),
            ("memory_mb <= lots", "`lots` after `<=` is not a number"),
            ("memory_mb <= inf", "not finite"),
            ("memory_mb => 4", "not a reported name"),
        ] {
            let e = text.parse::<Constraint>().unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains("KEY <= NUMBER"), "{e}");
        }
    }

    #[test]
    fn values_are_signed_distances_and_strict_equality_breaks() {
        let at_most: Constraint = "m <= 10".parse().unwrap();
        let below: Constraint = "m < 10".parse().unwrap();
        let at_least: Constraint = "m >= 10".parse().unwrap();
        let above: Constraint = "m > 10".parse().unwrap();
        assert_eq!(at_most.value(Some(7.0)), -3.0);
        assert_eq!(at_most.value(Some(10.0)), 0.0);
        assert!(below.value(Some(10.0)) > 0.0);
        assert_eq!(below.value(Some(9.0)), -1.0);
        assert_eq!(at_least.value(Some(12.0)), -2.0);
        assert_eq!(at_least.value(Some(10.0)), 0.0);
        assert!(above.value(Some(10.0)) > 0.0);
        assert_eq!(above.value(Some(4.0)), 6.0);
        assert_eq!(at_most.value(Some(f64::NAN)), MISSING);
        assert_eq!(at_most.value(Some(f64::INFINITY)), MISSING);
        assert!(is_feasible(&[-1.0, 0.0]));
        assert!(!is_feasible(&[-1.0, 0.5]));
        assert_eq!(violation(&[-1.0, 0.5, 2.0]), 2.5);
        assert_eq!(violation(&[MISSING, MISSING]), MISSING);
    }

    #[test]
    fn serialises_as_its_text() {
        let cs = parse_all(&["a <= 1", "b > 2"]).unwrap();
        let json = serde_json::to_string(&cs).unwrap();
        assert_eq!(json, r#"["a <= 1","b > 2"]"#);
        let back: Vec<Constraint> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cs);
        let values = evaluate(&cs, |k| (k == "a").then_some(0.5));
        assert_eq!(values, vec![-0.5, MISSING]);
        assert_eq!(
            describe_broken(&cs, &values),
            vec!["b > 2 (never reported)".to_string()]
        );
        let broken = evaluate(&cs, |k| Some(if k == "a" { 4.5 } else { 2.0 }));
        assert_eq!(
            describe_broken(&cs, &broken),
            vec!["a <= 1 (4.5)", "b > 2 (2)"]
        );
    }
}
