//! Typed search spaces and their scales.
//!
//! Every distribution maps to an internal coordinate `u` in [0, 1] where sampling is uniform, so
//! a sampler that works in that unit space honours log and reverse-log scales for free.
//!
//! ```
//! use caviar_core::space::{Distribution, Scale};
//! let beta = Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap();
//! // Half of the unit interval lies above beta = 0.99: 1 - beta is log-uniform.
//! let mid = beta.from_unit(0.5).as_f64().unwrap();
//! assert!((mid - 0.99).abs() < 1e-12);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How a numeric parameter is spread over its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// Uniform in the value itself (hidden units 50..100, layers 2..4).
    #[default]
    Linear,
    /// Uniform in log10 of the value (learning rate 1e-4..1). Needs `low > 0`.
    Log,
    /// Uniform in log10 of `1 - value` (beta 0.9..0.999). Needs `high < 1`.
    ReverseLog,
}

impl Scale {
    /// The name used in study files.
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Linear => "linear",
            Scale::Log => "log",
            Scale::ReverseLog => "reverse_log",
        }
    }
}

/// A parameter value in user units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// Whole number (int parameters, integer choices).
    Int(i64),
    /// Real number.
    Float(f64),
    /// Boolean choice.
    Bool(bool),
    /// String choice.
    Str(String),
}

impl ParamValue {
    /// The value as a float, for numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// The value as an integer, for whole numbers.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            ParamValue::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Some(*x as i64),
            _ => None,
        }
    }

    /// The value as a string slice, for string choices.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Short human form: numbers with three significant digits, like `%.3g`, and enough more
    /// for values just below 1 (a beta of 0.9997 stays 0.9997, not 1).
    ///
    /// ```
    /// use caviar_core::space::ParamValue;
    /// assert_eq!(ParamValue::Float(0.0092).short(), "0.0092");
    /// assert_eq!(ParamValue::Float(0.99971).short(), "0.99971");
    /// ```
    pub fn short(&self) -> String {
        match self {
            ParamValue::Float(x) => {
                let gap = 1.0 - x.abs();
                let sig = if gap > 0.0 && gap < 0.01 {
                    3 + (-gap.log10()).floor() as usize
                } else {
                    3
                };
                format_g(*x, sig)
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for ParamValue {
    /// Full precision, as passed to commands.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Str(s) => write!(f, "{s}"),
        }
    }
}

impl From<f64> for ParamValue {
    fn from(x: f64) -> Self {
        ParamValue::Float(x)
    }
}
impl From<i64> for ParamValue {
    fn from(x: i64) -> Self {
        ParamValue::Int(x)
    }
}
impl From<bool> for ParamValue {
    fn from(x: bool) -> Self {
        ParamValue::Bool(x)
    }
}
impl From<&str> for ParamValue {
    fn from(x: &str) -> Self {
        ParamValue::Str(x.to_string())
    }
}
impl From<String> for ParamValue {
    fn from(x: String) -> Self {
        ParamValue::Str(x)
    }
}

/// Formats like C's `%.{sig}g`: fixed notation unless the exponent is below -4 or too large.
///
/// ```
/// use caviar_core::space::format_g;
/// assert_eq!(format_g(0.0092, 3), "0.0092");
/// assert_eq!(format_g(3.86e-7, 3), "3.86e-07");
/// assert_eq!(format_g(12345.0, 3), "1.23e+04");
/// ```
pub fn format_g(x: f64, sig: usize) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".into();
    }
    let sig = sig.max(1);
    let sci = format!("{:.*e}", sig - 1, x);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("integer exponent");
    if exp < -4 || exp >= sig as i32 {
        let mantissa = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (sig as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Rounds to 12 significant digits so grid points print as users wrote them (0.001, not
/// 0.0010000000000000002).
fn tidy(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

/// The domain of one parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Distribution {
    /// A real number in `[low, high]`, optionally on a grid of `step`.
    Float {
        /// Lower bound, inclusive.
        low: f64,
        /// Upper bound, inclusive.
        high: f64,
        /// Scale of the range.
        #[serde(default)]
        scale: Scale,
        /// Spacing of allowed values from `low`, linear scale only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
    /// An integer in `[low, high]`, in multiples of `step` from `low`.
    Int {
        /// Lower bound, inclusive.
        low: i64,
        /// Upper bound, inclusive.
        high: i64,
        /// Spacing of allowed values (1 = every integer).
        #[serde(default = "one")]
        step: i64,
        /// Scale of the range (`linear` or `log`).
        #[serde(default)]
        scale: Scale,
    },
    /// One of a list of values.
    Categorical {
        /// The choices, in order.
        choices: Vec<ParamValue>,
    },
}

fn one() -> i64 {
    1
}

/// Why a distribution is invalid: a reason and the fix, without the parameter's name (which
/// [`SpaceError`] adds).
pub type Invalid = String;

/// A parameter with an invalid domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parameter `{name}`: {reason}")]
pub struct SpaceError {
    /// The parameter's name.
    pub name: String,
    /// What is wrong and how to fix it.
    pub reason: String,
}

impl Distribution {
    /// A validated float distribution.
    pub fn float(low: f64, high: f64, scale: Scale) -> Result<Self, Invalid> {
        let d = Distribution::Float {
            low,
            high,
            scale,
            step: None,
        };
        d.validate().map(|_| d)
    }

    /// A validated integer distribution with step 1.
    pub fn int(low: i64, high: i64, scale: Scale) -> Result<Self, Invalid> {
        let d = Distribution::Int {
            low,
            high,
            step: 1,
            scale,
        };
        d.validate().map(|_| d)
    }

    /// A validated categorical distribution.
    pub fn categorical<T: Into<ParamValue>>(
        choices: impl IntoIterator<Item = T>,
    ) -> Result<Self, Invalid> {
        let d = Distribution::Categorical {
            choices: choices.into_iter().map(Into::into).collect(),
        };
        d.validate().map(|_| d)
    }

    /// Checks bounds, scale and step; the error says what is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), Invalid> {
        match self {
            Distribution::Float {
                low,
                high,
                scale,
                step,
            } => {
                if !low.is_finite() || !high.is_finite() {
                    return Err(format!(
                        "bounds must be finite numbers (got low = {low}, high = {high})"
                    ));
                }
                if low > high {
                    return Err(format!(
                        "low ({low}) is greater than high ({high}); swap them"
                    ));
                }
                if low == high {
                    return Err(format!(
                        "the range is empty (low = high = {low}); widen it, or drop the parameter and pass the value as a constant"
                    ));
                }
                // Every sampler measures the range; a width beyond f64 would be infinite.
                if !(high - low).is_finite() {
                    return Err(format!(
                        "the range {low:e} .. {high:e} is wider than a 64-bit float can hold (high - low overflows); keep high - low below 1.7e308, e.g. low = -1e307, high = 1e307"
                    ));
                }
                match scale {
                    Scale::Log if *low <= 0.0 => {
                        return Err(format!(
                            "scale = \"log\" needs low > 0 (got low = {low}); use a positive low such as 1e-8, or scale = \"linear\""
                        ))
                    }
                    Scale::ReverseLog if *high >= 1.0 => {
                        return Err(format!(
                            "scale = \"reverse_log\" samples 1 - x on a log scale and needs high < 1 (got high = {high}); use a high such as 0.999"
                        ))
                    }
                    _ => {}
                }
                if let Some(step) = step {
                    if !step.is_finite() || *step <= 0.0 {
                        return Err(format!("step must be a positive number (got {step})"));
                    }
                    if *scale != Scale::Linear {
                        return Err(format!(
                            "step is only allowed with scale = \"linear\" (got scale = \"{}\"); drop step or the scale",
                            scale.as_str()
                        ));
                    }
                    if (high - low) / step > 1e9 {
                        return Err(format!(
                            "step ({step}) makes more than a billion values in {low} .. {high}; use a larger step or no step"
                        ));
                    }
                    if *step > (high - low) * (1.0 + 1e-9) {
                        return Err(format!(
                            "step ({step}) is larger than the range {low} .. {high}; use a smaller step"
                        ));
                    }
                }
                Ok(())
            }
            Distribution::Int {
                low,
                high,
                step,
                scale,
            } => {
                if low > high {
                    return Err(format!(
                        "low ({low}) is greater than high ({high}); swap them"
                    ));
                }
                if *step <= 0 {
                    return Err(format!("step must be a positive integer (got {step})"));
                }
                if high.checked_sub(*low).is_none_or(|w| w > i64::MAX / 2) {
                    return Err(format!(
                        "the range {low} .. {high} is too wide for integers; keep high - low below 2^62"
                    ));
                }
                match scale {
                    Scale::Linear => {}
                    Scale::Log => {
                        if *low < 1 {
                            return Err(format!(
                                "scale = \"log\" needs low >= 1 for integers (got low = {low}); raise low or use scale = \"linear\""
                            ));
                        }
                        if *step != 1 {
                            return Err(format!(
                                "step ({step}) cannot be combined with scale = \"log\"; drop one of them"
                            ));
                        }
                    }
                    Scale::ReverseLog => {
                        return Err(
                            "scale = \"reverse_log\" is for reals just below 1 (like beta); integers take \"linear\" or \"log\"".into(),
                        )
                    }
                }
                if (high - low) % step != 0 {
                    let fixed = low + (high - low) / step * step;
                    return Err(format!(
                        "high - low ({}) is not a multiple of step ({step}); use high = {fixed}",
                        high - low
                    ));
                }
                Ok(())
            }
            Distribution::Categorical { choices } => {
                if choices.is_empty() {
                    return Err("choices is empty; list at least one value".into());
                }
                for (i, c) in choices.iter().enumerate() {
                    if let ParamValue::Float(x) = c {
                        if !x.is_finite() {
                            return Err(format!("choice {i} is not a finite number ({x})"));
                        }
                    }
                    if choices[..i].contains(c) {
                        return Err(format!("choice {c} is listed twice; remove the duplicate"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Number of distinct values, if finite.
    pub fn cardinality(&self) -> Option<u64> {
        match self {
            Distribution::Float {
                low,
                high,
                step: Some(step),
                ..
            } => Some(float_step_count(*low, *high, *step)),
            Distribution::Float { .. } => None,
            Distribution::Int {
                low, high, step, ..
            } => Some(((high - low) / step) as u64 + 1),
            Distribution::Categorical { choices } => Some(choices.len() as u64),
        }
    }

    /// Maps a unit coordinate `u` in [0, 1] to a value. Values outside [0, 1] are clamped.
    pub fn from_unit(&self, u: f64) -> ParamValue {
        let u = if u.is_nan() { 0.5 } else { u.clamp(0.0, 1.0) };
        match self {
            Distribution::Float {
                low,
                high,
                scale,
                step,
            } => {
                if let Some(step) = step {
                    let n = float_step_count(*low, *high, *step);
                    let idx = ((u * n as f64) as u64).min(n - 1);
                    return ParamValue::Float(tidy(low + idx as f64 * step).clamp(*low, *high));
                }
                let x = match scale {
                    Scale::Linear => low + u * (high - low),
                    Scale::Log => {
                        let (a, b) = (low.log10(), high.log10());
                        10f64.powf(a + u * (b - a))
                    }
                    Scale::ReverseLog => {
                        // u = 0 gives low, u = 1 gives high: 1 - x shrinks as u grows.
                        let (a, b) = ((1.0 - low).log10(), (1.0 - high).log10());
                        1.0 - 10f64.powf(a + u * (b - a))
                    }
                };
                ParamValue::Float(x.clamp(*low, *high))
            }
            Distribution::Int {
                low,
                high,
                step,
                scale,
            } => {
                if *scale == Scale::Log {
                    let (a, b) = ((*low as f64 - 0.5).log10(), (*high as f64 + 0.5).log10());
                    let x = 10f64.powf(a + u * (b - a)).round() as i64;
                    return ParamValue::Int(x.clamp(*low, *high));
                }
                let n = ((high - low) / step) as u64 + 1;
                let idx = ((u * n as f64) as u64).min(n - 1);
                ParamValue::Int(low + idx as i64 * step)
            }
            Distribution::Categorical { choices } => {
                let n = choices.len();
                let idx = ((u * n as f64) as usize).min(n - 1);
                choices[idx].clone()
            }
        }
    }

    /// Maps a value back to its unit coordinate (the centre of its cell for discrete values).
    /// Returns `None` for a value outside the distribution.
    pub fn to_unit(&self, value: &ParamValue) -> Option<f64> {
        if !self.contains(value) {
            return None;
        }
        Some(
            match self {
                Distribution::Float {
                    low,
                    high,
                    scale,
                    step,
                } => {
                    let x = value.as_f64()?;
                    if let Some(step) = step {
                        let n = float_step_count(*low, *high, *step);
                        let idx = ((x - low) / step).round();
                        return Some((idx + 0.5) / n as f64);
                    }
                    match scale {
                        Scale::Linear => (x - low) / (high - low),
                        Scale::Log => (x.log10() - low.log10()) / (high.log10() - low.log10()),
                        Scale::ReverseLog => {
                            let (a, b) = ((1.0 - low).log10(), (1.0 - high).log10());
                            ((1.0 - x).log10() - a) / (b - a)
                        }
                    }
                }
                Distribution::Int {
                    low,
                    high,
                    step,
                    scale,
                } => {
                    let x = value.as_i64()?;
                    if *scale == Scale::Log {
                        let (a, b) = ((*low as f64 - 0.5).log10(), (*high as f64 + 0.5).log10());
                        let lo = ((x as f64 - 0.5).max(*low as f64 - 0.5)).log10();
                        let hi = (x as f64 + 0.5).log10();
                        return Some(((lo + hi) / 2.0 - a) / (b - a));
                    }
                    let n = ((high - low) / step) as f64 + 1.0;
                    (((x - low) / step) as f64 + 0.5) / n
                }
                Distribution::Categorical { choices } => {
                    let idx = choices.iter().position(|c| c == value)?;
                    (idx as f64 + 0.5) / choices.len() as f64
                }
            }
            .clamp(0.0, 1.0),
        )
    }

    /// Reads a value of this distribution from text (a command line's `lr=0.01`): a number for
    /// float and int parameters, one of the choices as written for categorical ones.
    ///
    /// ```
    /// use caviar_core::space::{Distribution, ParamValue, Scale};
    /// let lr = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
    /// assert_eq!(lr.parse_value("0.01"), Ok(ParamValue::Float(0.01)));
    /// assert!(lr.parse_value("3").unwrap_err().contains("outside"));
    /// ```
    pub fn parse_value(&self, text: &str) -> Result<ParamValue, Invalid> {
        let text = text.trim();
        let value = self.read_value(text)?;
        if let Distribution::Categorical { choices } = self {
            if !choices.contains(&value) {
                let names: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                return Err(format!(
                    "`{text}` is not a choice; use one of {}",
                    names.join(", ")
                ));
            }
        }
        if self.contains(&value) {
            Ok(value)
        } else {
            Err(format!("{text} is outside {}", self.describe()))
        }
    }

    /// Reads `text` as a value of this distribution's type, in range or not (a categorical
    /// text that names no choice comes back as a string): [`parse_value`](Self::parse_value)
    /// without the range check, for values that may leave it on purpose (a forced live change).
    pub fn read_value(&self, text: &str) -> Result<ParamValue, Invalid> {
        let text = text.trim();
        Ok(match self {
            Distribution::Float { .. } => ParamValue::Float(
                text.parse()
                    .map_err(|_| format!("`{text}` is not a number"))?,
            ),
            Distribution::Int { .. } => ParamValue::Int(
                text.parse()
                    .map_err(|_| format!("`{text}` is not a whole number"))?,
            ),
            Distribution::Categorical { choices } => choices
                .iter()
                .find(|c| c.to_string() == text || c.short() == text)
                .cloned()
                .unwrap_or_else(|| ParamValue::Str(text.to_string())),
        })
    }

    /// `value` as this distribution's kind of number: a whole number given for a float
    /// parameter is that float, an integral float given for an int parameter that int; other
    /// values are returned as they are (whether they fit is [`contains`](Self::contains)'s
    /// question).
    ///
    /// ```
    /// use caviar_core::space::{Distribution, ParamValue, Scale};
    /// let x = Distribution::float(0.0, 2.0, Scale::Linear).unwrap();
    /// assert_eq!(x.as_own_type(&ParamValue::Int(1)), ParamValue::Float(1.0));
    /// let n = Distribution::int(1, 4, Scale::Linear).unwrap();
    /// assert_eq!(n.as_own_type(&ParamValue::Float(3.0)), ParamValue::Int(3));
    /// ```
    pub fn as_own_type(&self, value: &ParamValue) -> ParamValue {
        match (value, self) {
            (ParamValue::Int(i), Distribution::Float { .. }) => ParamValue::Float(*i as f64),
            (ParamValue::Float(f), Distribution::Int { .. })
                if f.fract() == 0.0 && f.abs() < 9.0e15 =>
            {
                ParamValue::Int(*f as i64)
            }
            _ => value.clone(),
        }
    }

    /// Whether `value` is one this distribution can produce.
    pub fn contains(&self, value: &ParamValue) -> bool {
        match self {
            Distribution::Float {
                low, high, step, ..
            } => {
                let Some(x) = value.as_f64() else {
                    return false;
                };
                if !(x.is_finite() && *low <= x && x <= *high) {
                    return false;
                }
                match step {
                    Some(step) => {
                        let k = (x - low) / step;
                        (k - k.round()).abs() < 1e-6
                    }
                    None => true,
                }
            }
            Distribution::Int {
                low, high, step, ..
            } => match value {
                ParamValue::Int(x) => low <= x && x <= high && (x - low) % step == 0,
                _ => false,
            },
            Distribution::Categorical { choices } => choices.contains(value),
        }
    }

    /// `n` points spread evenly over the range on its own scale (ends included); every value for
    /// categorical and for discrete ranges with at most `n` values.
    pub fn grid_points(&self, n: usize) -> Vec<ParamValue> {
        let n = n.max(1);
        if let Some(card) = self.cardinality() {
            if card <= n as u64 {
                // Every value, listed directly (cell centres would repeat values on a log scale).
                return match self {
                    Distribution::Int { low, step, .. } => (0..card as i64)
                        .map(|i| ParamValue::Int(low + i * step))
                        .collect(),
                    Distribution::Float {
                        low,
                        step: Some(step),
                        high,
                        ..
                    } => (0..card)
                        .map(|i| {
                            let raw = ParamValue::Float((low + i as f64 * step).min(*high));
                            let tidied = ParamValue::Float(tidy(raw.as_f64().unwrap_or(*low)));
                            if self.contains(&tidied) {
                                tidied
                            } else {
                                raw
                            }
                        })
                        .collect(),
                    Distribution::Categorical { choices } => choices.clone(),
                    Distribution::Float { .. } => {
                        unreachable!("continuous ranges have no cardinality")
                    }
                };
            }
        }
        if let Distribution::Categorical { choices } = self {
            return choices.clone();
        }
        let mut points: Vec<ParamValue> = if n == 1 {
            vec![self.from_unit(0.5)]
        } else {
            (0..n)
                .map(|i| self.from_unit(i as f64 / (n - 1) as f64))
                .collect()
        };
        for p in &mut points {
            if let ParamValue::Float(x) = p {
                let tidied = ParamValue::Float(tidy(*x));
                if self.contains(&tidied) {
                    *p = tidied;
                }
            }
        }
        points.dedup();
        points
    }

    /// Short description for tables and errors (`float [0.0001, 1] log`).
    pub fn describe(&self) -> String {
        match self {
            Distribution::Float {
                low,
                high,
                scale,
                step,
            } => {
                let step = step.map(|s| format!(" step {s}")).unwrap_or_default();
                format!("float [{low}, {high}] {}{step}", scale.as_str())
            }
            Distribution::Int {
                low,
                high,
                step,
                scale,
            } => {
                let step = if *step == 1 {
                    String::new()
                } else {
                    format!(" step {step}")
                };
                format!("int [{low}, {high}] {}{step}", scale.as_str())
            }
            Distribution::Categorical { choices } => {
                let list: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                format!("one of [{}]", list.join(", "))
            }
        }
    }
}

fn float_step_count(low: f64, high: f64, step: f64) -> u64 {
    ((high - low) / step + 1e-9).floor() as u64 + 1
}

/// A named set of distributions, ordered by name.
///
/// ```
/// use caviar_core::space::{Distribution, Scale, SearchSpace};
/// let mut space = SearchSpace::new();
/// space.add("lr", Distribution::float(1e-4, 1.0, Scale::Log).unwrap()).unwrap();
/// assert_eq!(space.len(), 1);
/// assert!(space.add("lr", Distribution::float(1e-4, 1.0, Scale::Log).unwrap()).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    params: BTreeMap<String, Distribution>,
    /// Conditional parameters: each exists in a trial only when all its conditions hold.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    conditions: BTreeMap<String, Vec<Condition>>,
}

/// A parameter exists only when its categorical `parent` exists and took one of `allowed`
/// (`when = { optimizer = "adam" }` or `when = { optimizer = ["adam", "adamw"] }` in a study
/// file). Conditions nest: a parent may be conditional itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The categorical parameter the condition reads.
    pub parent: String,
    /// Values of the parent under which the parameter exists.
    pub allowed: Vec<ParamValue>,
}

impl SearchSpace {
    /// An empty space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a validated parameter.
    pub fn add(&mut self, name: &str, dist: Distribution) -> Result<(), SpaceError> {
        check_name(name)?;
        dist.validate().map_err(|reason| SpaceError {
            name: name.to_string(),
            reason,
        })?;
        if self.params.contains_key(name) {
            return Err(SpaceError {
                name: name.to_string(),
                reason: "is defined twice; keep one definition".into(),
            });
        }
        self.params.insert(name.to_string(), dist);
        Ok(())
    }

    /// Parameter `name` set from text (a command line's `lr=0.01`), with its distribution: the
    /// form in which a trial is queued with chosen parameters.
    ///
    /// ```
    /// use caviar_core::space::{Distribution, ParamValue, Scale, SearchSpace};
    /// let mut space = SearchSpace::new();
    /// space.add("lr", Distribution::float(1e-4, 1.0, Scale::Log).unwrap()).unwrap();
    /// assert_eq!(space.parse_assignment("lr", "0.01").unwrap().2, ParamValue::Float(0.01));
    /// assert!(space.parse_assignment("momentum", "0.9").unwrap_err().to_string().contains("its parameters: lr"));
    /// ```
    pub fn parse_assignment(
        &self,
        name: &str,
        text: &str,
    ) -> Result<(String, Distribution, ParamValue), SpaceError> {
        let fail = |reason: String| SpaceError {
            name: name.to_string(),
            reason,
        };
        let Some(dist) = self.get(name) else {
            let names: Vec<&str> = self.iter().map(|(n, _)| n.as_str()).collect();
            return Err(fail(format!(
                "is not a parameter of this study; its parameters: {}",
                names.join(", ")
            )));
        };
        let value = dist.parse_value(text).map_err(fail)?;
        Ok((name.to_string(), dist.clone(), value))
    }

    /// The distribution of a parameter.
    pub fn get(&self, name: &str) -> Option<&Distribution> {
        self.params.get(name)
    }

    /// Parameters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Distribution)> {
        self.params.iter()
    }

    /// Makes `name` (already added) exist only when every condition holds. Parents must be
    /// categorical parameters of this space, the allowed values among their choices, and the
    /// conditions free of cycles.
    ///
    /// ```
    /// use caviar_core::space::{Condition, Distribution, ParamValue, Scale, SearchSpace};
    /// let mut space = SearchSpace::new();
    /// space.add("optimizer", Distribution::categorical(["adam", "sgd"]).unwrap()).unwrap();
    /// space.add("beta1", Distribution::float(0.8, 0.999, Scale::ReverseLog).unwrap()).unwrap();
    /// let adam = ParamValue::Str("adam".into());
    /// space.set_conditions("beta1", vec![Condition { parent: "optimizer".into(), allowed: vec![adam.clone()] }]).unwrap();
    /// let mut trial = std::collections::BTreeMap::new();
    /// trial.insert("optimizer".to_string(), ParamValue::Str("sgd".into()));
    /// assert!(!space.is_active("beta1", &trial));
    /// trial.insert("optimizer".to_string(), adam);
    /// assert!(space.is_active("beta1", &trial));
    /// ```
    pub fn set_conditions(
        &mut self,
        name: &str,
        conditions: Vec<Condition>,
    ) -> Result<(), SpaceError> {
        let fail = |reason: String| SpaceError {
            name: name.to_string(),
            reason,
        };
        if !self.params.contains_key(name) {
            return Err(fail(
                "is not a parameter of this space; define it first".into(),
            ));
        }
        for c in &conditions {
            let Some(parent) = self.params.get(&c.parent) else {
                let names: Vec<&str> = self.params.keys().map(String::as_str).collect();
                return Err(fail(format!(
                    "has a condition on `{}`, which is not a parameter; name one of: {}",
                    c.parent,
                    names.join(", ")
                )));
            };
            let Distribution::Categorical { choices } = parent else {
                return Err(fail(format!(
                    "has a condition on `{}`, which is {}; conditions read categorical parameters                      (give `{}` choices = [...])",
                    c.parent,
                    parent.describe(),
                    c.parent
                )));
            };
            if c.allowed.is_empty() {
                return Err(fail(format!(
                    "has a condition on `{}` that allows no value; list at least one of its choices",
                    c.parent
                )));
            }
            for v in &c.allowed {
                if !choices.contains(v) {
                    let list: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                    return Err(fail(format!(
                        "has a condition `{} = {v}`, but {v} is not one of its choices [{}]",
                        c.parent,
                        list.join(", ")
                    )));
                }
            }
        }
        let before = self.conditions.insert(name.to_string(), conditions);
        if let Err(cycle) = self.ordered() {
            match before {
                Some(old) => self.conditions.insert(name.to_string(), old),
                None => self.conditions.remove(name),
            };
            return Err(fail(format!(
                "is part of a cycle of conditions ({}); a parameter cannot depend on itself",
                cycle.join(" -> ")
            )));
        }
        if self.conditions.get(name).is_some_and(Vec::is_empty) {
            self.conditions.remove(name);
        }
        Ok(())
    }

    /// The conditions of `name` (empty: it always exists).
    pub fn conditions(&self, name: &str) -> &[Condition] {
        self.conditions.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether any parameter is conditional.
    pub fn is_conditional(&self) -> bool {
        !self.conditions.is_empty()
    }

    /// Whether `name` exists given the values assigned so far: every condition's parent is
    /// assigned one of its allowed values (parents are assigned first, see
    /// [`SearchSpace::in_order`]).
    pub fn is_active(&self, name: &str, assigned: &BTreeMap<String, ParamValue>) -> bool {
        self.conditions(name).iter().all(|c| {
            assigned
                .get(&c.parent)
                .is_some_and(|v| c.allowed.contains(v))
        })
    }

    /// Parameters with every parent before its children, otherwise in name order: the order in
    /// which a trial's parameters are drawn.
    pub fn in_order(&self) -> Vec<(&String, &Distribution)> {
        if self.conditions.is_empty() {
            // Every trial of a study file asks: no ordering work without conditions.
            return self.params.iter().collect();
        }
        // Cycles are refused when conditions are set; a space read back from elsewhere that
        // has one keeps name order rather than failing.
        self.ordered()
            .unwrap_or_else(|_| self.params.keys().collect())
            .into_iter()
            .map(|name| self.params.get_key_value(name).expect("a parameter"))
            .collect()
    }

    /// Names with parents first, or the names on a cycle.
    fn ordered(&self) -> Result<Vec<&String>, Vec<String>> {
        // Depth-first: 0 unvisited, 1 on the current path, 2 done.
        fn visit<'a>(
            space: &'a SearchSpace,
            name: &'a String,
            state: &mut BTreeMap<&'a String, u8>,
            path: &mut Vec<String>,
            out: &mut Vec<&'a String>,
        ) -> Result<(), Vec<String>> {
            match state.get(name).copied().unwrap_or(0) {
                2 => return Ok(()),
                1 => {
                    let from = path.iter().position(|p| p == name).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(name.clone());
                    return Err(cycle);
                }
                _ => {}
            }
            state.insert(name, 1);
            path.push(name.clone());
            for c in space.conditions.get(name).map_or(&[][..], Vec::as_slice) {
                if let Some((parent, _)) = space.params.get_key_value(&c.parent) {
                    visit(space, parent, state, path, out)?;
                }
            }
            path.pop();
            state.insert(name, 2);
            out.push(name);
            Ok(())
        }
        let mut state = BTreeMap::new();
        let mut out = Vec::with_capacity(self.params.len());
        for name in self.params.keys() {
            visit(self, name, &mut state, &mut Vec::new(), &mut out)?;
        }
        Ok(out)
    }

    /// Whether `params` is a valid assignment: every parameter present exactly when its
    /// conditions hold (values themselves are not checked).
    pub fn is_valid_assignment(&self, params: &BTreeMap<String, ParamValue>) -> bool {
        self.params
            .keys()
            .all(|name| params.contains_key(name) == self.is_active(name, params))
    }

    /// Position of a parameter in name order (its dimension for space-filling samplers).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.params.keys().position(|k| k == name)
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the space has no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

/// Parameter names become environment variables and `{placeholders}`: keep them simple.
pub fn check_name(name: &str) -> Result<(), SpaceError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(SpaceError {
            name: name.to_string(),
            reason: "names use letters, digits, '_', '-' and '.', and do not start with a digit"
                .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_log_maps_ends_and_median() {
        let d = Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap();
        assert!((d.from_unit(0.0).as_f64().unwrap() - 0.9).abs() < 1e-12);
        assert!((d.from_unit(1.0).as_f64().unwrap() - 0.999).abs() < 1e-12);
        assert!((d.from_unit(0.5).as_f64().unwrap() - 0.99).abs() < 1e-12);
    }

    #[test]
    fn log_scale_midpoint_is_geometric_mean() {
        let d = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        assert!((d.from_unit(0.5).as_f64().unwrap() - 1e-2).abs() < 1e-12);
    }

    #[test]
    fn bad_bounds_name_the_fix() {
        assert!(Distribution::float(1.0, 0.0, Scale::Linear)
            .unwrap_err()
            .contains("swap"));
        assert!(Distribution::float(0.0, 1.0, Scale::Log)
            .unwrap_err()
            .contains("low > 0"));
        assert!(Distribution::float(0.9, 1.0, Scale::ReverseLog)
            .unwrap_err()
            .contains("high < 1"));
        assert!(Distribution::float(f64::NAN, 1.0, Scale::Linear)
            .unwrap_err()
            .contains("finite"));
        assert!(Distribution::float(1.0, 1.0, Scale::Linear)
            .unwrap_err()
            .contains("empty"));
        // Wider than a double: every sampler used to return high, grid NaN.
        assert!(Distribution::float(-1e308, 1e308, Scale::Linear)
            .unwrap_err()
            .contains("wider than a 64-bit float"));
        assert!(Distribution::float(-1e307, 1e307, Scale::Linear).is_ok());
        assert!(Distribution::int(0, 10, Scale::Log)
            .unwrap_err()
            .contains("low >= 1"));
        let empty: Vec<String> = vec![];
        assert!(Distribution::categorical(empty)
            .unwrap_err()
            .contains("empty"));
        let stepped = Distribution::Int {
            low: 0,
            high: 10,
            step: 3,
            scale: Scale::Linear,
        };
        assert!(stepped.validate().unwrap_err().contains("high = 9"));
    }

    #[test]
    fn to_unit_inverts_from_unit() {
        let dists = [
            Distribution::float(-3.0, 5.0, Scale::Linear).unwrap(),
            Distribution::float(1e-6, 1e-2, Scale::Log).unwrap(),
            Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap(),
        ];
        for d in &dists {
            for i in 0..=10 {
                let u = i as f64 / 10.0;
                let back = d.to_unit(&d.from_unit(u)).unwrap();
                assert!((back - u).abs() < 1e-9, "{d:?} {u} {back}");
            }
        }
    }

    #[test]
    fn grid_points_are_tidy_on_log_scale() {
        let d = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        let pts: Vec<f64> = d
            .grid_points(5)
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(pts, vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        let i = Distribution::int(2, 4, Scale::Linear).unwrap();
        assert_eq!(
            i.grid_points(5),
            vec![ParamValue::Int(2), ParamValue::Int(3), ParamValue::Int(4)]
        );
    }

    #[test]
    fn small_discrete_grids_list_every_value_once() {
        let d = Distribution::int(1, 5, Scale::Log).unwrap();
        let want: Vec<ParamValue> = (1..=5).map(ParamValue::Int).collect();
        assert_eq!(d.grid_points(5), want);
    }

    #[test]
    fn absurd_ranges_are_refused_not_overflowed() {
        assert!(Distribution::int(
            -5_000_000_000_000_000_000,
            5_000_000_000_000_000_000,
            Scale::Linear
        )
        .unwrap_err()
        .contains("too wide"));
        let tiny_step = Distribution::Float {
            low: 0.0,
            high: 1.0,
            scale: Scale::Linear,
            step: Some(1e-20),
        };
        assert!(tiny_step.validate().unwrap_err().contains("billion"));
    }

    #[test]
    fn format_g_matches_printf() {
        assert_eq!(format_g(0.8300, 4), "0.83");
        assert_eq!(format_g(1.0, 3), "1");
        assert_eq!(format_g(-0.000123456, 3), "-0.000123");
        assert_eq!(format_g(1e-5, 3), "1e-05");
    }

    #[test]
    fn param_values_round_trip_through_json() {
        let vals = vec![
            ParamValue::Int(3),
            ParamValue::Float(0.5),
            ParamValue::Str("relu".into()),
            ParamValue::Bool(true),
        ];
        let text = serde_json::to_string(&vals).unwrap();
        assert_eq!(text, r#"[3,0.5,"relu",true]"#);
        let back: Vec<ParamValue> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, vals);
    }
}
