//! The trials table's route: its query string read into a [`TableQuery`], and a page of rows
//! as JSON. Sorting, filtering and paging themselves are `caviar_core::table`'s.
//!
//! `GET /api/studies/NAME/trials?sort=value&order=desc&state=failed,pruned&value_min=0.5&p.lr.min=1e-3&p.act.in=relu,tanh&offset=0&limit=50`

use caviar_core::table::{duration_secs, step_reached, ParamFilter, TablePage, TableQuery};
use caviar_core::trial::{FrozenTrial, TrialState};
use serde_json::{json, Value};

/// Rows one page may hold.
pub const MAX_LIMIT: usize = 1000;
/// A failure's reason is cut to this many characters in the table; the trial page has it all.
const REASON_CHARS: usize = 200;

/// Reads the query string's pairs; an error names the key and what to write.
pub fn parse_query(pairs: &[(String, String)]) -> Result<TableQuery, String> {
    let mut q = TableQuery::default();
    let number = |key: &str, text: &str| -> Result<f64, String> {
        text.parse::<f64>()
            .ok()
            .filter(|x| !x.is_nan())
            .ok_or_else(|| format!("{key}: `{text}` is not a number (e.g. {key}=0.5)"))
    };
    let count = |key: &str, text: &str| -> Result<usize, String> {
        text.parse::<usize>()
            .map_err(|_| format!("{key}: `{text}` is not a whole number (e.g. {key}=50)"))
    };
    for (key, text) in pairs {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match key.as_str() {
            "sort" => q.sort = text.parse().map_err(|e| format!("sort: {e}"))?,
            "order" => {
                q.descending = match text {
                    "asc" => false,
                    "desc" => true,
                    other => return Err(format!("order: `{other}`: use asc or desc")),
                }
            }
            "state" => {
                for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let state = TrialState::parse(name).ok_or_else(|| {
                        format!("state: `{name}`: use waiting, running, complete, pruned or failed (comma-separated)")
                    })?;
                    if !q.states.contains(&state) {
                        q.states.push(state);
                    }
                }
            }
            "value_min" => q.value_min = Some(number(key, text)?),
            "value_max" => q.value_max = Some(number(key, text)?),
            "offset" => q.offset = count(key, text)?,
            "limit" => {
                q.limit = count(key, text)?;
                if q.limit == 0 || q.limit > MAX_LIMIT {
                    return Err(format!("limit: {text}: give 1 to {MAX_LIMIT} rows"));
                }
            }
            other => {
                let Some((name, bound)) = other
                    .strip_prefix("p.")
                    .and_then(|rest| rest.rsplit_once('.'))
                    .filter(|(name, _)| !name.is_empty())
                else {
                    return Err(format!(
                        "unknown key `{other}`: use sort, order, state, value_min, value_max, offset, limit or p.NAME.min / p.NAME.max / p.NAME.in"
                    ));
                };
                let at = match q.params.iter().position(|f| f.name == name) {
                    Some(at) => at,
                    None => {
                        q.params.push(ParamFilter {
                            name: name.to_string(),
                            ..Default::default()
                        });
                        q.params.len() - 1
                    }
                };
                let filter = &mut q.params[at];
                match bound {
                    "min" => filter.min = Some(number(key, text)?),
                    "max" => filter.max = Some(number(key, text)?),
                    "in" => {
                        filter.choices =
                            Some(text.split(',').map(|c| c.trim().to_string()).collect())
                    }
                    _ => {
                        return Err(format!(
                            "{other}: end it in .min, .max or .in (p.{name}.min=0.001)"
                        ))
                    }
                }
            }
        }
    }
    Ok(q)
}

/// A page as JSON: `{total, matched, offset, limit, rows: [...]}`.
pub fn page_json(page: &TablePage<'_>, q: &TableQuery, now_ms: i64) -> Value {
    json!({
        "total": page.total,
        "matched": page.matched,
        "offset": q.offset,
        "limit": q.limit,
        "rows": page.rows.iter().map(|t| row(t, now_ms)).collect::<Vec<_>>(),
    })
}

fn row(t: &FrozenTrial, now_ms: i64) -> Value {
    let step = step_reached(t);
    let reason = t.error.as_deref().map(|e| {
        let e = e.trim();
        match e.char_indices().nth(REASON_CHARS) {
            Some((cut, _)) => format!("{}…", &e[..cut]),
            None => e.to_string(),
        }
    });
    json!({
        "number": t.number,
        "state": t.state.as_str(),
        "value": t.value.filter(|v| v.is_finite()),
        "values": t.values,
        "params": t.params,
        "duration_s": duration_secs(t, now_ms),
        "step": step,
        "pruned_step": if t.state == TrialState::Pruned { step } else { None },
        "worker": t.worker,
        "reason": reason,
        "feasible": t.is_feasible(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::table::SortKey;

    fn pairs(text: &[(&str, &str)]) -> Vec<(String, String)> {
        text.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_every_key_and_names_the_bad_one() {
        let q = parse_query(&pairs(&[
            ("sort", "param:lr"),
            ("order", "desc"),
            ("state", "failed, pruned"),
            ("value_min", "0.5"),
            ("value_max", ""),
            ("p.lr.min", "1e-3"),
            ("p.lr.max", "0.1"),
            ("p.act.in", "relu, tanh"),
            ("offset", "50"),
            ("limit", "25"),
        ]))
        .unwrap();
        assert_eq!(q.sort, SortKey::Param("lr".into()));
        assert!(q.descending);
        assert_eq!(q.states, [TrialState::Failed, TrialState::Pruned]);
        assert_eq!((q.value_min, q.value_max), (Some(0.5), None));
        assert_eq!(q.params.len(), 2);
        assert_eq!((q.params[0].min, q.params[0].max), (Some(1e-3), Some(0.1)));
        assert_eq!(
            q.params[1].choices,
            Some(vec!["relu".to_string(), "tanh".to_string()])
        );
        assert_eq!((q.offset, q.limit), (50, 25));
        for (key, value, named) in [
            ("sort", "speed", "sort: unknown column `speed`"),
            ("order", "up", "order: `up`"),
            ("state", "done", "state: `done`"),
            ("value_min", "high", "value_min: `high` is not a number"),
            ("limit", "5000", "limit: 5000: give 1 to 1000"),
            ("offset", "-1", "offset: `-1`"),
            ("p.lr.low", "1", "p.lr.low: end it in .min"),
            ("colour", "red", "unknown key `colour`"),
        ] {
            let err = parse_query(&pairs(&[(key, value)])).unwrap_err();
            assert!(err.starts_with(named), "{key}={value}: {err}");
        }
    }
}
