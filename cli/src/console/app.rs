//! The console's routes, its guards (a loopback Host, a CSRF token on every
//! POST, a Content-Security-Policy that allows no script) and its handlers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use jobhook::archive::Archiver;
use jobhook::clock::{rfc3339, unix_ms, Clock, SystemClock};
use jobhook::domain::job::{JobState, JobStatus, Origin};
use jobhook::domain::listing::{JobSummary, Position};
use jobhook::domain::sources::is_valid_source_name;
use jobhook::ports::PortError;
use jobhook::Sources;
use rand::RngExt;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::reads::{self, ConsoleStore, FILTERS, OVERVIEW_CAP, STATUSES};
use super::views::*;
use crate::dlq;

/// What the console is pointed at.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub table: String,
    pub queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub outputs_dlq_url: Option<String>,
    /// The sources document, for replay (its secrets are never shown).
    pub sources: Option<Sources>,
    pub source_names: Vec<String>,
    pub window: Duration,
    pub overdue_after: Duration,
}

/// A redrive of the whole DLQ, running or ended.
#[derive(Debug)]
struct Redrive {
    total: u64,
    moved: Arc<AtomicU64>,
    ended: Arc<Mutex<Option<Result<u64, String>>>>,
}

#[derive(Debug)]
pub struct Console {
    store: Arc<dyn ConsoleStore>,
    archiver: Archiver,
    sqs: aws_sdk_sqs::Client,
    settings: ConsoleSettings,
    clock: Arc<dyn Clock>,
    /// The CSRF token: per process, in every form, never in a URL.
    token: String,
    /// The Host values a loopback console answers to (DNS rebinding).
    hosts: Option<Vec<String>>,
    redrive: Mutex<Option<Redrive>>,
}

impl Console {
    /// A console over `store`, answering on `bound`.
    pub fn new(
        store: Arc<dyn ConsoleStore>,
        aws: &aws_config::SdkConfig,
        settings: ConsoleSettings,
        bound: SocketAddr,
    ) -> Self {
        let bytes: [u8; 32] = rand::rng().random();
        let port = bound.port();
        let hosts = bound.ip().is_loopback().then(|| {
            vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
                bound.to_string(),
            ]
        });
        Self {
            store,
            archiver: jobhook::bootstrap::archive_reader(aws),
            sqs: aws_sdk_sqs::Client::new(aws),
            settings,
            clock: Arc::new(SystemClock),
            token: bytes.iter().map(|b| format!("{b:02x}")).collect(),
            hosts,
            redrive: Mutex::new(None),
        }
    }

    pub fn table(&self) -> &str {
        &self.settings.table
    }

    fn frame(&self, nav: &'static str) -> Frame {
        Frame {
            nav,
            table: shown(&self.settings.table, SHORT),
            rendered_at: rfc3339(self.clock.now()),
        }
    }

    fn problem(&self, status: StatusCode, title: &str, detail: &str) -> Response {
        let page = ProblemPage {
            frame: self.frame(""),
            title: title.to_owned(),
            detail: shown(detail, LONG),
        };
        (status, render(&page)).into_response()
    }

    fn unavailable(&self, error: &PortError) -> Response {
        self.problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "AWS did not answer as expected",
            &crate::port_message(error),
        )
    }

    fn now_ms(&self) -> i64 {
        unix_ms(self.clock.now())
    }

    fn overdue_before_ms(&self) -> i64 {
        self.now_ms() - self.settings.overdue_after.as_millis() as i64
    }

    fn token_matches(&self, given: &str) -> bool {
        given.len() == self.token.len() && bool::from(given.as_bytes().ct_eq(self.token.as_bytes()))
    }
}

fn render<T: Template>(page: &T) -> Html<String> {
    Html(
        page.render()
            .unwrap_or_else(|e| format!("the page could not be rendered: {e}")),
    )
}

/// `/static/console.css` is the only other thing served.
const STYLESHEET: &str = include_str!("../../templates/console.css");

/// No script at all, styles only from the console itself, forms only to it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/", get(overview))
        .route("/jobs", get(jobs))
        .route("/jobs/{source}/{job_id}", get(job))
        .route("/jobs/{source}/{job_id}/replay", post(replay_dry_run))
        .route("/jobs/{source}/{job_id}/replay/apply", post(replay_apply))
        .route("/dlq", get(dead_letters))
        .route("/dlq/redrive", get(confirm_redrive).post(redrive))
        .route(
            "/static/console.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLESHEET) }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

/// Refuses a Host a loopback console does not answer to, and a POST from
/// another origin; sets the security headers on every answer.
async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut response = if console.hosts.as_ref().is_some_and(|hosts| !hosts.contains(&host)) {
        console.problem(
            StatusCode::MISDIRECTED_REQUEST,
            "Not this console's address",
            "This console answers only to its loopback address.",
        )
    } else if request.method() == axum::http::Method::POST && !same_origin(request.headers(), &host) {
        console.problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "A form posted from another site is refused.",
        )
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Links out (a provider's output URL) carry no referrer; forms here keep
        // their Origin (with no-referrer it would be `null`).
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A POST's Origin, when the browser sends one, names this console.
fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None => true,
        Some(origin) => origin == format!("http://{host}"),
    }
}

async fn not_found(State(console): State<Arc<Console>>) -> Response {
    console.problem(StatusCode::NOT_FOUND, "Not found", "There is no such page.")
}

fn status_class(status: JobStatus) -> &'static str {
    status.as_str()
}

fn status_text(job: &JobSummary) -> String {
    let mut text = match job.progress {
        Some(p) if !job.status.is_terminal() => format!("{} {p}%", job.status),
        _ => job.status.to_string(),
    };
    if job.abandoned_at.is_some() {
        text.push_str(" (abandoned)");
    }
    if job.outputs_lost.is_some() {
        text.push_str(" (outputs lost)");
    }
    text
}

fn ended_by(origin: Option<Origin>) -> &'static str {
    origin.map_or("-", Origin::as_str)
}

fn list_href(source: &str, status: &str) -> String {
    format!("/jobs?{}", query(&[("source", source), ("status", status)]))
}

async fn overview(State(console): State<Arc<Console>>) -> Response {
    let settings = &console.settings;
    let since = rfc3339(console.clock.now() - settings.window);
    let overdue_before = console.overdue_before_ms();
    let mut rows = Vec::new();
    let mut attention = Vec::new();
    let mut truncated = false;
    // Each source's reads go side by side: a page waits for the slowest.
    let all = futures::future::try_join_all(
        settings
            .source_names
            .iter()
            .map(|source| reads::source_figures(console.store.as_ref(), source, &since, overdue_before)),
    )
    .await;
    let all = match all {
        Ok(all) => all,
        Err(error) => return console.unavailable(&error),
    };
    for (source, figures) in settings.source_names.iter().zip(all) {
        truncated |= figures.truncated;
        let count = |k: &str| figures.ended_by.get(k).copied().unwrap_or(0);
        let ended: u64 = figures.ended_by.values().sum();
        let (by_webhook, by_poll) = (count("webhook"), count("poll"));
        let coverage = match by_webhook + by_poll {
            0 => "-".to_owned(),
            seen => format!("{:.1} %", 100.0 * by_webhook as f64 / seen as f64),
        };
        if figures.overdue > 0 {
            attention.push(Attention {
                severity: "bad",
                text: format!(
                    "{source}: {} open jobs overdue for a poll by more than {}",
                    figures.overdue,
                    span_text(settings.overdue_after)
                ),
                href: list_href(source, "overdue"),
            });
        }
        if figures.abandoned > 0 {
            attention.push(Attention {
                severity: "warn",
                text: format!("{source}: {} jobs abandoned by the reconciler", figures.abandoned),
                href: list_href(source, "abandoned"),
            });
        }
        if figures.outputs_lost > 0 {
            attention.push(Attention {
                severity: "bad",
                text: format!("{source}: {} jobs' outputs were not kept", figures.outputs_lost),
                href: list_href(source, "outputs-lost"),
            });
        }
        rows.push(SourceRow {
            source: source.clone(),
            href: list_href(source, ""),
            by_status: STATUSES
                .iter()
                .map(|s| StatusCell {
                    status: s.as_str(),
                    count: figures.by_status.get(s.as_str()).copied().unwrap_or(0),
                    href: list_href(source, s.as_str()),
                })
                .collect(),
            open: figures.open,
            open_href: list_href(source, "open"),
            overdue: figures.overdue,
            overdue_href: list_href(source, "overdue"),
            abandoned: figures.abandoned,
            abandoned_href: list_href(source, "abandoned"),
            ended,
            by_webhook,
            by_poll,
            by_replay: count("replay"),
            coverage,
        });
    }
    let mut queues = Vec::new();
    for (name, url, href) in [
        ("events DLQ", &settings.dlq_url, Some("/dlq".to_owned())),
        ("outputs DLQ", &settings.outputs_dlq_url, None),
    ] {
        let Some(url) = url else {
            queues.push(QueueRow {
                name,
                depth: "not configured".into(),
                href: None,
            });
            continue;
        };
        let depth = match dlq::approximate_count(&console.sqs, url).await {
            Ok(depth) => depth,
            Err(error) => {
                return console.problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SQS did not answer",
                    &error.to_string(),
                )
            }
        };
        if depth > 0 {
            attention.insert(
                0,
                Attention {
                    severity: "bad",
                    text: format!("{name}: {depth} messages dead-lettered"),
                    href: href.clone().unwrap_or_else(|| "/".into()),
                },
            );
        }
        queues.push(QueueRow {
            name,
            depth: depth.to_string(),
            href,
        });
    }
    render(&OverviewPage {
        frame: console.frame("overview"),
        attention,
        statuses: STATUSES.iter().map(|s| s.as_str()).collect(),
        rows,
        window: span_text(settings.window),
        truncated,
        cap: OVERVIEW_CAP,
        queues,
    })
    .into_response()
}

fn span_text(span: Duration) -> String {
    let secs = span.as_secs();
    match secs {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    source: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

async fn jobs(
    State(console): State<Arc<Console>>,
    query_result: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query_result else {
        return console.problem(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The query string does not parse.",
        );
    };
    let names = &console.settings.source_names;
    if !q.source.is_empty() && !names.contains(&q.source) {
        return console.problem(
            StatusCode::BAD_REQUEST,
            "Unknown source",
            &format!("{:?} is not one of this console's sources.", q.source),
        );
    }
    let Some(filter) = reads::filter_named(&q.status, console.overdue_before_ms()) else {
        return console.problem(
            StatusCode::BAD_REQUEST,
            "Unknown status",
            &format!("{:?} is not a status; use one of: {}.", q.status, FILTERS.join(", ")),
        );
    };
    if q.q.len() > 256 {
        return console.problem(StatusCode::BAD_REQUEST, "Bad request", "A job id is at most 256 bytes.");
    }
    let below = match q.after.as_str() {
        "" => None,
        cursor => match Position::from_cursor(cursor) {
            Some(position) => Some(position),
            None => {
                return console.problem(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    "The page cursor is not one this console wrote.",
                )
            }
        },
    };
    let sources: Vec<String> = if q.source.is_empty() {
        names.clone()
    } else {
        vec![q.source.clone()]
    };
    // An exact id is one read of its item, whatever the list holds.
    let mut exact = None;
    if !q.q.is_empty() && below.is_none() {
        for source in &sources {
            match console.store.get(source, &q.q).await {
                Ok(Some(state)) => {
                    exact = Some(ExactMatch {
                        source: shown(&state.source, SHORT),
                        job_id: shown(&state.job_id, SHORT),
                        href: job_href(&state.source, &state.job_id),
                    });
                    break;
                }
                Ok(None) => {}
                Err(error) => return console.unavailable(&error),
            }
        }
    }
    let listed = match reads::list(console.store.as_ref(), &sources, &filter, &q.q, below.as_ref()).await {
        Ok(listed) => listed,
        Err(error) => return console.unavailable(&error),
    };
    let next_href = listed.page.next.as_ref().map(|next| {
        format!(
            "/jobs?{}",
            query(&[
                ("source", &q.source),
                ("status", &q.status),
                ("q", &q.q),
                ("after", &next.to_cursor())
            ])
        )
    });
    let jobs = listed
        .page
        .jobs
        .iter()
        .map(|job| JobRow {
            source: shown(&job.source, SHORT),
            job_id: shown(&job.job_id, SHORT),
            href: job_href(&job.source, &job.job_id),
            status: status_class(job.status),
            status_text: status_text(job),
            ended_by: ended_by(job.terminal_origin),
            transitions: job.transitions,
            updated_at: shown(&job.updated_at, SHORT),
            first_seen: shown(&job.first_seen, SHORT),
        })
        .collect();
    let status = if q.status.is_empty() { "any" } else { q.status.as_str() };
    render(&JobsPage {
        frame: console.frame("jobs"),
        sources: names.iter().map(|s| (s.clone(), *s == q.source)).collect(),
        filters: FILTERS.iter().map(|f| (*f, *f == status)).collect(),
        q: shown(&q.q, 256),
        exact,
        jobs,
        next_href: next_href.clone(),
        empty_text: if next_href.is_some() {
            "No matching job among the entries read for this page; older ones follow."
        } else {
            "No matching job."
        },
        read: listed.read,
    })
    .into_response()
}

fn is_job_address(source: &str, job_id: &str) -> bool {
    is_valid_source_name(source) && !job_id.is_empty() && job_id.len() <= 256
}

fn job_view(state: &JobState) -> JobView {
    let mut outputs: Vec<OutputLink> = state
        .kept_outputs
        .iter()
        .flatten()
        .map(|kept| OutputLink {
            label: "kept copy",
            text: format!(
                "{} ({} bytes, sha256 {})",
                shown(&kept.s3_uri, SHORT),
                kept.bytes,
                kept.sha256
            ),
            href: None,
            unlinkable: false,
        })
        .collect();
    if let Some(url) = &state.fields.output_url {
        let href = link(url);
        outputs.push(OutputLink {
            label: "provider's",
            text: shown(url, 2_000),
            unlinkable: href.is_none(),
            href,
        });
    }
    JobView {
        source: shown(&state.source, SHORT),
        job_id: shown(&state.job_id, LONG),
        href: job_href(&state.source, &state.job_id),
        status: status_class(state.fields.status),
        status_text: match state.fields.progress {
            Some(p) if !state.fields.status.is_terminal() => format!("{} {p}%", state.fields.status),
            _ => state.fields.status.to_string(),
        },
        error: state.fields.error.as_deref().map(|e| shown(e, LONG)),
        result: state.fields.result.as_deref().map(|r| {
            let pretty = serde_json::from_str::<Value>(r)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| r.to_owned());
            shown(&pretty, LONG)
        }),
        ended_by: ended_by(state.terminal_origin),
        transitions: state.transitions,
        first_seen: shown(&state.first_seen, SHORT),
        updated_at: shown(&state.updated_at, SHORT),
        provider_time: state.provider_time.as_deref().map(|t| shown(t, SHORT)),
        abandoned_at: state.abandoned_at.as_deref().map(|t| shown(t, SHORT)),
        outputs_lost: state.outputs_lost.as_deref().map(|w| shown(w, 2_000)),
        outputs,
    }
}

async fn load_job(console: &Console, source: &str, job_id: &str) -> Result<JobState, Response> {
    if !is_job_address(source, job_id) {
        return Err(console.problem(StatusCode::BAD_REQUEST, "Bad request", "That is not a job's address."));
    }
    match console.store.get(source, job_id).await {
        Ok(Some(state)) => Ok(state),
        Ok(None) => Err(console.problem(
            StatusCode::NOT_FOUND,
            "No such job",
            &format!("The table holds no job {source}/{job_id}."),
        )),
        Err(error) => Err(console.unavailable(&error)),
    }
}

async fn job(State(console): State<Arc<Console>>, Path((source, job_id)): Path<(String, String)>) -> Response {
    let state = match load_job(&console, &source, &job_id).await {
        Ok(state) => state,
        Err(page) => return page,
    };
    let entries = match console.store.timeline(&source, &job_id).await {
        Ok(entries) => entries,
        Err(error) => return console.unavailable(&error),
    };
    let notifications = reads::notifications(&state, &entries)
        .into_iter()
        .map(|(n, to, origin, at)| NotificationRow {
            id: shown(&format!("{source}:{job_id}:{n}"), SHORT),
            to,
            origin: origin.as_str(),
            at: shown(&at, SHORT),
        })
        .collect();
    let events = crate::events::load(&console.archiver, entries)
        .await
        .into_iter()
        .map(|event| {
            let e = &event.entry;
            let record = event.record.map(|record| match record {
                Ok(record) => {
                    let mut body = crate::events::body_text(&record.body);
                    if let Some(answer) = &record.answer {
                        body.push_str(&format!(
                            "\n\n(the provider's API answered: {})",
                            serde_json::to_string(answer).unwrap_or_default()
                        ));
                    }
                    let what = match record.kind {
                        jobhook::domain::archive::RecordKind::Poll => "the provider's API answer".to_owned(),
                        jobhook::domain::archive::RecordKind::Delivery => format!("{} bytes", record.body.len()),
                    };
                    RecordView {
                        summary: format!("{what}, {}", shown(&record.received_at, SHORT)),
                        headers: record
                            .headers
                            .iter()
                            .map(|(k, v)| (shown(k, SHORT), shown(v, 4_000)))
                            .collect(),
                        body: shown(&body, LONG),
                    }
                }
                Err(why) => RecordView {
                    summary: "the archived record cannot be read".into(),
                    headers: Vec::new(),
                    body: shown(&why, 2_000),
                },
            });
            EventRow {
                received_at: shown(&e.received_at, SHORT),
                outcome: e.outcome.as_str(),
                origin: e.origin.as_str(),
                kind: shown(&e.kind, SHORT),
                status: match (e.status, e.progress) {
                    (Some(s), Some(p)) => format!("{s} {p}%"),
                    (Some(s), None) => s.to_string(),
                    (None, _) => "-".into(),
                },
                event_id: shown(&e.event_id, SHORT),
                record,
            }
        })
        .collect();
    render(&JobPage {
        frame: console.frame("jobs"),
        job: job_view(&state),
        events,
        notifications,
        can_replay: console.settings.sources.is_some(),
        token: console.token.clone(),
    })
    .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct Token {
    #[serde(default)]
    token: String,
}

#[derive(Debug, serde::Deserialize)]
struct ApplyForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    expected: u64,
}

fn refused(console: &Console) -> Response {
    console.problem(
        StatusCode::FORBIDDEN,
        "Refused",
        "The form's token is missing or is not this console's: reload the page and try again.",
    )
}

fn summary_of(status: JobStatus, error: Option<&str>, output: Option<&str>) -> String {
    let mut text = status.to_string();
    if let Some(e) = error {
        text.push_str(&format!(", error {}", shown(e, SHORT)));
    }
    if let Some(o) = output {
        text.push_str(&format!(", output {}", shown(o, SHORT)));
    }
    text
}

async fn replay(console: &Console, source: &str, job_id: &str, apply: bool, expected: Option<u64>) -> Response {
    let state = match load_job(console, source, job_id).await {
        Ok(state) => state,
        Err(page) => return page,
    };
    let job = job_view(&state);
    let outcome = match replay_outcome(console, &state, apply, expected).await {
        Ok(outcome) => outcome,
        Err(why) => ReplayOutcome::Failed(shown(&why, 2_000)),
    };
    render(&ReplayPage {
        frame: console.frame("jobs"),
        job,
        outcome,
        token: console.token.clone(),
    })
    .into_response()
}

async fn replay_outcome(
    console: &Console,
    state: &JobState,
    apply: bool,
    expected: Option<u64>,
) -> Result<ReplayOutcome, String> {
    let sources = console
        .settings
        .sources
        .as_ref()
        .ok_or("no sources document was given")?;
    let config = sources
        .get(&state.source)
        .ok_or_else(|| format!("no source {:?} in the sources document", state.source))?;
    let profile = jobhook::domain::provider::profile(&config.provider)
        .ok_or_else(|| format!("source {:?} names no known provider profile", state.source))?;
    if expected.is_some_and(|n| n != state.transitions) {
        return Err("the job changed since the dry run: run the dry run again".into());
    }
    let replay = jobhook::replay::replay_job(
        console.store.as_ref(),
        &console.archiver,
        profile,
        &state.source,
        &state.job_id,
        apply,
    )
    .await
    .map_err(|e| e.to_string())?;
    let Some(correction) = &replay.correction else {
        return Ok(ReplayOutcome::Agrees);
    };
    let stored = &replay.stored.fields;
    Ok(ReplayOutcome::Differs(Difference {
        stored: summary_of(stored.status, stored.error.as_deref(), stored.output_url.as_deref()),
        derived: summary_of(
            correction.status,
            correction.error.as_deref(),
            correction.output_url.as_deref(),
        ),
        applied: replay.applied,
        transition: if replay.applied {
            replay.stored.transitions + 1
        } else {
            replay.stored.transitions
        },
    }))
}

async fn replay_dry_run(
    State(console): State<Arc<Console>>,
    Path((source, job_id)): Path<(String, String)>,
    Form(form): Form<Token>,
) -> Response {
    if !console.token_matches(&form.token) {
        return refused(&console);
    }
    replay(&console, &source, &job_id, false, None).await
}

async fn replay_apply(
    State(console): State<Arc<Console>>,
    Path((source, job_id)): Path<(String, String)>,
    Form(form): Form<ApplyForm>,
) -> Response {
    if !console.token_matches(&form.token) {
        return refused(&console);
    }
    replay(&console, &source, &job_id, true, Some(form.expected)).await
}

/// Dead letters shown per page view, at most.
const DLQ_SHOWN: usize = 100;

#[derive(Debug, serde::Deserialize)]
struct DlqQuery {
    #[serde(default)]
    done: String,
}

fn age_text(sent_ms: Option<i64>, now_ms: i64) -> String {
    let Some(sent) = sent_ms else {
        return "-".into();
    };
    let secs = ((now_ms - sent) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

async fn dead_letters(State(console): State<Arc<Console>>, Query(q): Query<DlqQuery>) -> Response {
    use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
    let notice = match q.done.as_str() {
        "one" => Some("The message was sent back to the events queue.".to_owned()),
        "gone" => Some("That message is no longer on the dead-letter queue.".to_owned()),
        _ => None,
    };
    let (redrive, redrive_running) = console.redrive_view();
    let Some(url) = console.settings.dlq_url.clone() else {
        return render(&DlqPage {
            frame: console.frame("dlq"),
            redrive,
            redrive_running,
            notice,
            problem: Some("No dead-letter queue is configured (--dlq-url, JOBHOOK_DLQ_URL or --stack).".into()),
            depth_text: String::new(),
            messages: Vec::new(),
        })
        .into_response();
    };
    if redrive_running {
        // Reading the queue would hide its messages from the redrive.
        return render(&DlqPage {
            frame: console.frame("dlq"),
            redrive,
            redrive_running,
            notice,
            problem: None,
            depth_text: "The list is shown again once the redrive ends.".into(),
            messages: Vec::new(),
        })
        .into_response();
    }
    let peeked = dlq::peek(&console.sqs, &url, DLQ_SHOWN).await;
    let depth = dlq::approximate_count(&console.sqs, &url).await;
    let (messages, depth) = match (peeked, depth) {
        (Ok(m), Ok(d)) => (m, d),
        (Err(e), _) | (_, Err(e)) => {
            return console.problem(StatusCode::SERVICE_UNAVAILABLE, "SQS did not answer", &e.to_string())
        }
    };
    let now_ms = console.now_ms();
    let rows: Vec<DeadLetterRow> = messages
        .iter()
        .map(|m| {
            let system = |name: Attr| m.attributes().and_then(|a| a.get(&name)).cloned();
            let id = m.message_id().unwrap_or("-").to_owned();
            let body = m.body().unwrap_or_default();
            DeadLetterRow {
                redrive_href: format!("/dlq/redrive?{}", query(&[("message", &id)])),
                id: shown(&id, SHORT),
                source: shown(dlq::attribute(m, "source").unwrap_or("-"), SHORT),
                reason: shown(
                    dlq::attribute(m, "reason").unwrap_or("retries exhausted (no reason recorded)"),
                    2_000,
                ),
                age: age_text(system(Attr::SentTimestamp).and_then(|t| t.parse().ok()), now_ms),
                receives: system(Attr::ApproximateReceiveCount).unwrap_or_else(|| "-".into()),
                bytes: body.len(),
                body: shown(body, 20_000),
            }
        })
        .collect();
    let depth_text = match (rows.len(), depth) {
        (0, _) => "The dead-letter queue is empty.".to_owned(),
        (shown, depth) if (shown as u64) < depth => {
            format!("{shown} of about {depth} dead-lettered messages shown; they stay on the queue.")
        }
        (shown, _) => format!("{shown} dead-lettered messages; listing leaves them on the queue."),
    };
    render(&DlqPage {
        frame: console.frame("dlq"),
        redrive,
        redrive_running,
        notice,
        problem: None,
        depth_text,
        messages: rows,
    })
    .into_response()
}

#[derive(Debug, serde::Deserialize)]
struct RedriveQuery {
    #[serde(default)]
    message: String,
}

#[derive(Debug, serde::Deserialize)]
struct RedriveForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    message: String,
}

async fn confirm_redrive(State(console): State<Arc<Console>>, Query(q): Query<RedriveQuery>) -> Response {
    let (question, fields) = if q.message.is_empty() {
        (
            "Send every dead-lettered message back to the events queue? Each is applied again; an event applied \
             before is a duplicate and changes nothing."
                .to_owned(),
            Vec::new(),
        )
    } else {
        (
            format!(
                "Send message {} back to the events queue? It is applied again.",
                shown(&q.message, SHORT)
            ),
            vec![("message".to_owned(), q.message.clone())],
        )
    };
    render(&ConfirmPage {
        frame: console.frame("dlq"),
        title: "Redrive".into(),
        question,
        action: "/dlq/redrive".into(),
        fields,
        button: "Redrive",
        back: "/dlq".into(),
        token: console.token.clone(),
    })
    .into_response()
}

async fn redrive(State(console): State<Arc<Console>>, Form(form): Form<RedriveForm>) -> Response {
    if !console.token_matches(&form.token) {
        return refused(&console);
    }
    let (Some(dlq_url), Some(queue_url)) = (console.settings.dlq_url.clone(), console.settings.queue_url.clone())
    else {
        return console.problem(
            StatusCode::BAD_REQUEST,
            "Not configured",
            "Redrive needs the DLQ and the events queue (--dlq-url and --queue-url, or --stack).",
        );
    };
    if !form.message.is_empty() {
        return match dlq::redrive_one(&console.sqs, &dlq_url, &queue_url, &form.message).await {
            Ok(true) => Redirect::to("/dlq?done=one").into_response(),
            Ok(false) => Redirect::to("/dlq?done=gone").into_response(),
            Err(e) => console.problem(StatusCode::SERVICE_UNAVAILABLE, "Redrive failed", &e.to_string()),
        };
    }
    if let Err(page) = console.start_redrive_all(dlq_url, queue_url).await {
        return page;
    }
    Redirect::to("/dlq").into_response()
}

impl Console {
    async fn start_redrive_all(self: &Arc<Self>, dlq_url: String, queue_url: String) -> Result<(), Response> {
        if self.redrive_view().1 {
            return Ok(());
        }
        let total = dlq::approximate_count(&self.sqs, &dlq_url)
            .await
            .map_err(|e| self.problem(StatusCode::SERVICE_UNAVAILABLE, "SQS did not answer", &e.to_string()))?;
        let moved = Arc::new(AtomicU64::new(0));
        let ended = Arc::new(Mutex::new(None));
        let (sqs, moved_by_task, ended_by_task) = (self.sqs.clone(), moved.clone(), ended.clone());
        tokio::spawn(async move {
            let report = move |n: u64| moved_by_task.store(n, Ordering::Relaxed);
            let result = dlq::copy_back_reporting(&sqs, &dlq_url, &queue_url, &report)
                .await
                .map_err(|e| e.to_string());
            *ended_by_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        });
        *self.redrive.lock().unwrap_or_else(|p| p.into_inner()) = Some(Redrive { total, moved, ended });
        Ok(())
    }

    /// The last redrive of the whole DLQ as the page shows it, and whether
    /// it is still running.
    fn redrive_view(&self) -> (Option<RedriveView>, bool) {
        let guard = self.redrive.lock().unwrap_or_else(|p| p.into_inner());
        let Some(redrive) = guard.as_ref() else {
            return (None, false);
        };
        let ended = redrive.ended.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match ended {
            None => (
                Some(RedriveView {
                    text: format!(
                        "Redriving: {} of about {} messages moved…",
                        redrive.moved.load(Ordering::Relaxed),
                        redrive.total
                    ),
                    failed: false,
                }),
                true,
            ),
            Some(Ok(moved)) => (
                Some(RedriveView {
                    text: format!("Redrive finished: {moved} messages moved back to the events queue."),
                    failed: false,
                }),
                false,
            ),
            Some(Err(why)) => (
                Some(RedriveView {
                    text: format!("Redrive stopped: {}", shown(&why, 2_000)),
                    failed: true,
                }),
                false,
            ),
        }
    }
}
