//! Routes: the page, its files and the JSON API.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use caviar_core::storage::{QueuedParam, Storage, StorageError, StudyRecord};
use caviar_core::trial::{FrozenTrial, TrialState};
use serde_json::{json, Value};

use crate::cache::version_json;
use crate::{assets, view, Dashboard};

pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*file}", get(asset))
        .route("/api/studies", get(studies))
        .route("/api/studies/{name}", get(study))
        .route("/api/studies/{name}/version", get(version))
        .route("/api/studies/{name}/trials", get(trials_table))
        .route("/api/studies/{name}/curves", get(all_curves))
        .route("/api/studies/{name}/timeline", get(timeline))
        .route("/api/studies/{name}/note", post(study_note))
        .route("/api/studies/{name}/trials/{number}/note", post(trial_note))
        .route("/api/studies/{name}/trials/{number}", get(trial))
        .route("/api/studies/{name}/enqueue", post(enqueue))
        .route(
            "/api/studies/{name}/trials/{number}/params",
            post(change_params),
        )
        .route("/api/studies/{name}/trials/{number}/control", post(control))
        .fallback(|| async {
            ApiError::not_found("no such page or API route; the API starts at /api/studies")
        })
        .layer(axum::middleware::from_fn_with_state(
            dashboard.clone(),
            check_host,
        ))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(dashboard)
}

/// What the page loads: its own scripts, styles and data only. Inline styles stay allowed for
/// the chart library's tooltips; scripts never run inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

/// Every response: no MIME sniffing (a JSON error is never run as a script), the policy above,
/// and no framing by other sites.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// A page on another site may point its own host name at 127.0.0.1 (DNS rebinding) and read
/// the API; a dashboard that listens on loopback answers only to loopback names.
async fn check_host(
    State(d): State<Dashboard>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if d.inner.any_host {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if matches!(name, "localhost" | "127.0.0.1" | "::1") {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("host `{host}` is not this machine; open the dashboard at http://127.0.0.1 or http://localhost, or start it with --host to serve other names"),
        )
        .into_response()
    }
}

/// An error answered as `{"error": message}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("storage: {e}"))
    }
}

type ApiResult = Result<Response, ApiError>;

/// Runs blocking storage work off the async threads; a panic there becomes a 500.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error while answering: {e}"),
        ))
    })
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        assets::INDEX,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> ApiResult {
    let asset = assets::find(&file)
        .ok_or_else(|| ApiError::not_found(format!("no file named `{file}` in the dashboard")))?;
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|part| {
                let mut fields = part.split(';').map(str::trim);
                fields.next() == Some("gzip") && !fields.any(|f| f.replace(' ', "") == "q=0")
            })
        });
    let mut response = match asset.gzipped().filter(|_| accepts_gzip) {
        Some(gz) => {
            let mut r = Response::new(Body::from(gz));
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        None => Response::new(Body::from(asset.body)),
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Ok(response)
}

async fn studies(State(d): State<Dashboard>) -> ApiResult {
    let list = blocking(move || {
        let shared = &d.inner;
        let mut rows = Vec::new();
        for s in shared.storage.studies()? {
            let row = shared
                .caches
                .with_finished(&*shared.storage, s.study.id, |finished| {
                    view::study_json(&s.study, &s.counts, finished)
                })?;
            rows.push(row);
        }
        Ok(rows)
    })
    .await?;
    Ok(Json(json!({ "studies": list })).into_response())
}

fn find_study(d: &Dashboard, name: &str) -> Result<StudyRecord, ApiError> {
    d.inner
        .storage
        .study(name)?
        .ok_or_else(|| ApiError::not_found(format!("no study named `{name}`")))
}

/// The study's ancestors (oldest first) and children, by the `parent` links `caviar narrow`
/// writes.
pub fn lineage(storage: &dyn Storage, record: &StudyRecord) -> Result<Value, StorageError> {
    let all = storage.studies()?;
    let mut ancestors = Vec::new();
    let mut at = record.parent.clone();
    while let Some(name) = at {
        if ancestors.contains(&name) || ancestors.len() > 100 {
            break;
        }
        at = all
            .iter()
            .find(|s| s.study.name == name)
            .and_then(|s| s.study.parent.clone());
        ancestors.push(name);
    }
    ancestors.reverse();
    let children: Vec<&str> = all
        .iter()
        .filter(|s| s.study.parent.as_deref() == Some(record.name.as_str()))
        .map(|s| s.study.name.as_str())
        .collect();
    // Zoom rounds: the box each round searched, as stored when it began.
    let mut rounds: Vec<Value> = storage
        .study_attrs(record.id)?
        .into_iter()
        .filter(|(key, _)| key.starts_with("zoom.round."))
        .map(|(_, value)| value)
        .collect();
    rounds.sort_by_key(|r| r["round"].as_u64().unwrap_or(0));
    // A re-test shows its report beside its parent; a parent shows its re-tests' verdicts.
    let retest_of = |study: &StudyRecord| match caviar_engine::retest::stored(storage, study) {
        Ok(found) => Ok(found),
        Err(caviar_engine::retest::RetestError::Storage(e)) => Err(e),
        // A parent changed since (trials deleted, space narrowed): nothing to compare.
        Err(_) => Ok(None),
    };
    let retest = retest_of(record)?;
    let mut retests = Vec::new();
    for child in all
        .iter()
        .filter(|s| s.study.parent.as_deref() == Some(record.name.as_str()))
        .take(20)
    {
        if let Some(found) = retest_of(&child.study)? {
            retests.push(json!({
                "study": child.study.name,
                "verdict": found.report.verdict,
                "verdict_text": found.report.verdict_text,
            }));
        }
    }
    Ok(json!({
        "ancestors": ancestors,
        "children": children,
        "rounds": rounds,
        "retest": retest,
        "retests": retests,
    }))
}

async fn study(State(d): State<Dashboard>, Path(name): Path<String>) -> ApiResult {
    let view = blocking(move || {
        let record = find_study(&d, &name)?;
        let lineage = lineage(&*d.inner.storage, &record)?;
        let mut view = d
            .inner
            .caches
            .view(&*d.inner.storage, &record, lineage, &d.inner.limits)?;
        view["user_attrs"] = json!(d
            .inner
            .storage
            .user_attrs(caviar_core::storage::AttrOwner::Study(record.id))?);
        // Any reported metric can be drawn for the trials whose curves the page shows.
        let shown: Vec<u64> = view["curves"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["number"].as_u64())
            .collect();
        let ids = d
            .inner
            .caches
            .with_finished(&*d.inner.storage, record.id, |trials| {
                trials
                    .iter()
                    .filter(|t| shown.contains(&t.number))
                    .map(|t| (t.id, t.number))
                    .collect::<Vec<_>>()
            })?;
        let shown_ids: Vec<caviar_core::trial::TrialId> = ids.iter().map(|(id, _)| *id).collect();
        let metrics = d.inner.storage.trial_metrics_of(record.id, &shown_ids)?;
        view["metric_curves"] = crate::view::metric_curves(&ids, &metrics, &d.inner.limits);
        view["notes"] = json!(caviar_engine::notes::study_notes(
            &*d.inner.storage,
            record.id
        )?);
        Ok(view)
    })
    .await?;
    Ok(Json(view).into_response())
}

async fn version(State(d): State<Dashboard>, Path(name): Path<String>) -> ApiResult {
    let v = blocking(move || {
        let record = find_study(&d, &name)?;
        let counts = d.inner.storage.counts(record.id)?;
        let finished = (counts.complete + counts.pruned + counts.failed) as usize;
        Ok(version_json(finished, &counts))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// A page of the trials table: every trial in any state, filtered, sorted and paged here.
async fn trials_table(
    State(d): State<Dashboard>,
    Path(name): Path<String>,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(pairs) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "the query string cannot be read: {}",
            e.body_text()
        ))
    })?;
    let q = crate::table::parse_query(&pairs).map_err(ApiError::bad_request)?;
    let page = blocking(move || {
        let record = find_study(&d, &name)?;
        let now = caviar_core::trial::now_ms();
        Ok(d.inner
            .caches
            .with_all_trials(&*d.inner.storage, record.id, |all| {
                let page = caviar_core::table::query(all, &q, now);
                crate::table::page_json(&page, &q, now)
            })?)
    })
    .await?;
    Ok(Json(page).into_response())
}

/// The learning curves of every trial (running ones read now), thinned, with the pruner's
/// rungs and the steps where a trial's parameters were changed while it ran.
async fn all_curves(State(d): State<Dashboard>, Path(name): Path<String>) -> ApiResult {
    let curves = blocking(move || {
        let record = find_study(&d, &name)?;
        let storage = &*d.inner.storage;
        let running = storage.running_with_params(record.id)?;
        let asked = storage.study_param_changes(record.id)?;
        let rungs = pruner_rungs(&record);
        Ok(d.inner
            .caches
            .with_finished(storage, record.id, |finished| {
                // The steps where each trial's parameters changed, by trial number.
                let changes: std::collections::BTreeMap<u64, Vec<u64>> = finished
                    .iter()
                    .chain(&running)
                    .filter_map(|t| {
                        let list = asked.get(&t.id)?;
                        let mut steps: Vec<u64> =
                            list.iter().filter_map(|c| c.applied_step).collect();
                        steps.dedup();
                        Some((t.number, steps))
                    })
                    .collect();
                view::all_curves(
                    finished,
                    &running,
                    record.direction,
                    &changes,
                    rungs,
                    view::ALL_CURVES_LINES,
                    view::ALL_CURVES_POINTS,
                )
            })?)
    })
    .await?;
    Ok(Json(curves).into_response())
}

/// When each trial ran and on which worker: `[number, worker, start_ms, end_ms, state, reason]`
/// rows for a Gantt view (running ones end now), the latest `TIMELINE_TRIALS` by number.
async fn timeline(State(d): State<Dashboard>, Path(name): Path<String>) -> ApiResult {
    let rows = blocking(move || {
        let record = find_study(&d, &name)?;
        let now = caviar_core::trial::now_ms();
        Ok(d.inner
            .caches
            .with_all_trials(&*d.inner.storage, record.id, |all| {
                crate::view::timeline(all, now, crate::view::TIMELINE_TRIALS)
            })?)
    })
    .await?;
    Ok(Json(rows).into_response())
}

/// The steps at which the study's pruner compares trials, when its stored definition names a
/// pruner that works in rungs (ASHA, Hyperband).
fn pruner_rungs(record: &StudyRecord) -> Option<Vec<u64>> {
    let spec = record.spec.as_ref()?.get("pruner")?.clone();
    let spec: caviar_engine::PrunerSpec = serde_json::from_value(spec).ok()?;
    spec.build().ok()?.budgets()
}

async fn trial(
    State(d): State<Dashboard>,
    Path((name, number)): Path<(String, String)>,
) -> ApiResult {
    let number: u64 = number.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "trial `{number}`: give a trial number, e.g. /trials/0"
        ))
    })?;
    let detail = blocking(move || {
        let record = find_study(&d, &name)?;
        let storage = &*d.inner.storage;
        let detail_of = |trials: &[FrozenTrial]| {
            trials
                .iter()
                .find(|t| t.number == number)
                .map(|t| (t.id, view::trial_detail(t)))
        };
        let mut found = d
            .inner
            .caches
            .with_finished(storage, record.id, detail_of)?;
        let mut changeable = Vec::new();
        if found.is_none() {
            let running = storage.running_with_params(record.id)?;
            if let Some(t) = running.iter().find(|t| t.number == number) {
                changeable = caviar_engine::changeable(&record, t);
            }
            found = detail_of(&running);
        }
        if found.is_none() {
            // Waiting (queued) trials: rare, so a full read is fine.
            found = detail_of(&storage.trials(record.id)?);
        }
        let (id, mut detail) = found.ok_or_else(|| {
            ApiError::not_found(format!(
                "study `{name}` has no finished or running trial {number}"
            ))
        })?;
        detail["log"] = json!(storage.trial_log(id)?);
        detail["user_attrs"] =
            json!(storage.user_attrs(caviar_core::storage::AttrOwner::Trial(id))?);
        detail["param_history"] = json!(storage.param_changes(id)?);
        let controls = storage.controls(id)?;
        detail["paused"] = json!(caviar_core::storage::is_paused(&controls));
        detail["controls"] = json!(controls);
        // What the steering form offers (running trials only).
        detail["changeable"] = json!(changeable);
        // Which limits an infeasible trial broke, with what it reported.
        let constraints: Vec<f64> =
            serde_json::from_value(detail["constraints"].clone()).unwrap_or_default();
        detail["broken"] = json!(caviar_core::constraint::describe_broken(
            &record.constraints(),
            &constraints
        ));
        Ok(detail)
    })
    .await?;
    Ok(Json(detail).into_response())
}

/// The note text of a request `{"text": "..."}`.
fn note_text(request: &Value) -> Result<String, ApiError> {
    let text = request
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("give {\"text\": \"the note\"} (\"\" clears it)"))?;
    if text.len() > NOTE_BYTES {
        return Err(ApiError::bad_request(format!(
            "text: {} bytes; a note holds at most {NOTE_BYTES}",
            text.len()
        )));
    }
    Ok(text.to_string())
}

/// A note's size limit: notes are read on every study page.
const NOTE_BYTES: usize = 64 * 1024;

/// Writes the study's note, with the write token: `{"text": "..."}`.
async fn study_note(
    State(d): State<Dashboard>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    check_token(&d, &headers)?;
    let request: Value = serde_json::from_str(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let text = note_text(&request)?;
    let saved = blocking(move || {
        let record = find_study(&d, &name)?;
        let owner = caviar_core::storage::AttrOwner::Study(record.id);
        caviar_engine::notes::set_note(&*d.inner.storage, owner, &text)?;
        Ok(json!({ "study": name, "note": text.trim_end() }))
    })
    .await?;
    Ok(Json(saved).into_response())
}

/// Writes a trial's note, with the write token: `{"text": "..."}`.
async fn trial_note(
    State(d): State<Dashboard>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    let (number, request) = steering_request(&d, &headers, &number, &body)?;
    let text = note_text(&request)?;
    let saved = blocking(move || {
        let record = find_study(&d, &name)?;
        let storage = &*d.inner.storage;
        let trial = storage
            .trials_numbered(record.id, number, number.saturating_add(1))?
            .pop()
            .ok_or_else(|| ApiError::not_found(format!("study `{name}` has no trial {number}")))?;
        let owner = caviar_core::storage::AttrOwner::Trial(trial.id);
        caviar_engine::notes::set_note(storage, owner, &text)?;
        Ok(json!({ "study": name, "trial": number, "note": text.trim_end() }))
    })
    .await?;
    Ok(Json(saved).into_response())
}

/// Queues a trial with chosen parameters: `{"params": {"lr": 0.01}}`, with the write token.
async fn enqueue(
    State(d): State<Dashboard>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    check_token(&d, &headers)?;
    let request: Value = serde_json::from_str(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let given = request
        .get("params")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("give {\"params\": {\"NAME\": VALUE, ...}}"))?;
    let queued = blocking(move || {
        let record = find_study(&d, &name)?;
        let space = record.space().ok_or_else(|| {
            ApiError::bad_request(format!("study `{name}` stores no search space"))
        })?;
        let params = given
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                space.parse_assignment(key, &text)
            })
            .collect::<Result<Vec<QueuedParam>, _>>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let number = d.inner.storage.enqueue_trial(record.id, &params, 0)?.number;
        Ok(json!({ "number": number, "state": TrialState::Waiting.as_str() }))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(queued)).into_response())
}

/// Asks a running trial to change parameters (panda mode), with the write token:
/// `{"params": {"lr": 0.02}, "note": "why", "force": false}`.
async fn change_params(
    State(d): State<Dashboard>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    let (number, request) = steering_request(&d, &headers, &number, &body)?;
    let changes: Vec<(String, caviar_engine::NewValue)> = request
        .get("params")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("give {\"params\": {\"NAME\": VALUE, ...}}"))?
        .iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key.clone(), caviar_engine::NewValue::Text(text))
        })
        .collect();
    let note = request
        .get("note")
        .and_then(Value::as_str)
        .map(String::from);
    let force = request
        .get("force")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let asked = blocking(move || {
        let record = find_study(&d, &name)?;
        let who = format!("{} (dashboard)", caviar_engine::asker());
        caviar_engine::ask_changes(
            &*d.inner.storage,
            &record,
            number,
            &changes,
            &who,
            note.as_deref(),
            force,
        )
        .map_err(live_error)
    })
    .await?;
    let rows: Vec<Value> = asked
        .iter()
        .map(|a| json!({"name": a.name, "current": a.current, "new": a.new, "forced": a.forced}))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "changes": rows }))).into_response())
}

/// Pauses, resumes or stops a running trial, with the write token:
/// `{"action": "pause" | "resume" | "stop", "note": "why"}`.
async fn control(
    State(d): State<Dashboard>,
    Path((name, number)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> ApiResult {
    let (number, request) = steering_request(&d, &headers, &number, &body)?;
    let action = request
        .get("action")
        .and_then(Value::as_str)
        .and_then(caviar_core::storage::ControlAction::parse)
        .ok_or_else(|| {
            ApiError::bad_request("give {\"action\": \"pause\"}, \"resume\" or \"stop\"")
        })?;
    let note = request
        .get("note")
        .and_then(Value::as_str)
        .map(String::from);
    let id = blocking(move || {
        let record = find_study(&d, &name)?;
        let who = format!("{} (dashboard)", caviar_engine::asker());
        caviar_engine::ask_control(
            &*d.inner.storage,
            &record,
            number,
            action,
            &who,
            note.as_deref(),
        )
        .map_err(live_error)
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"action": action.as_str(), "id": id})),
    )
        .into_response())
}

/// The token, trial number and JSON body of a request that steers a running trial.
fn steering_request(
    d: &Dashboard,
    headers: &HeaderMap,
    number: &str,
    body: &str,
) -> Result<(u64, Value), ApiError> {
    check_token(d, headers)?;
    let number: u64 = number
        .parse()
        .map_err(|_| ApiError::bad_request(format!("trial `{number}`: give a trial number")))?;
    let request: Value = serde_json::from_str(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    Ok((number, request))
}

/// A refused live request is the caller's to fix (400); a storage failure is ours.
fn live_error(e: caviar_engine::LiveError) -> ApiError {
    match e {
        caviar_engine::LiveError::Storage(s) => ApiError::from(s),
        other => ApiError::bad_request(other.to_string()),
    }
}

fn check_token(d: &Dashboard, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = d.token().as_bytes();
    // Compared in full whatever the first difference, so timing does not leak the token.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this action changes the study: send the token the dashboard printed at start-up as `Authorization: Bearer TOKEN`",
        ))
    }
}
