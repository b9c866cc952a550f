//! A real HTTP server standing in for a provider's job API under `/v1`:
//! any `GET /v1/…/{id}` (every profile's polling path) answers what the
//! test scripted for `{id}`, and OpusClip's `GET /v1/exportable-clips?
//! projectId={id}` what it scripted for `clips:{id}`. It answers one
//! `Authorization` value, Bearer unless a test names the profile's own
//! (HTTP Basic, the raw key), and refuses any other with 401. Tests read back
//! the requests made and the most ever in flight at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with this body.
    Job(Value),
    /// 202 with this body (fal's status while a request runs).
    Accepted(Value),
    /// This status with an empty body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// Waits, then answers.
    Slow(Duration, Box<Answer>),
}

#[derive(Debug, Default)]
struct ProviderState {
    /// The one `Authorization` value answered; any other is refused 401.
    authorization: Mutex<String>,
    /// The value for one answer key instead, where sources of several
    /// profiles share the provider.
    authorization_for: Mutex<HashMap<String, String>>,
    answers: Mutex<HashMap<String, Answer>>,
    calls: Mutex<Vec<String>>,
    requests: Mutex<Vec<Request>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    delay: Mutex<Duration>,
}

/// One request as it arrived: what a test asserts when it claims a
/// profile's exact path, query and authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The path and query, as sent.
    pub target: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TestProvider {
    pub base_url: String,
    state: Arc<ProviderState>,
}

/// A generic-profile job answer.
pub fn job(id: &str, status: &str, progress: Option<u8>) -> Value {
    let output = (status == "completed").then(|| format!("https://cdn.example.com/{id}.mp4"));
    let error = (status == "failed").then_some("render failed");
    serde_json::json!({"id": id, "status": status, "progress": progress, "output_url": output,
                       "error": error, "updated_at": "2026-05-13T12:00:05Z"})
}

async fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Job(body) => Json(body).into_response(),
        Answer::Accepted(body) => (StatusCode::ACCEPTED, Json(body)).into_response(),
        Answer::Status(code) => StatusCode::from_u16(code).expect("status").into_response(),
        Answer::RateLimited(secs) => {
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", secs.to_string())]).into_response()
        }
        Answer::Slow(wait, then) => {
            tokio::time::sleep(wait).await;
            Box::pin(respond(*then)).await
        }
    }
}

/// The scripted answer's key for a request: the path's last segment,
/// `status:{id}` for fal's `…/{id}/status`, or `clips:{projectId}` for
/// OpusClip's clip list.
fn answer_key(uri: &Uri) -> Option<String> {
    let path = uri.path().strip_prefix("/v1/")?;
    if path == "exportable-clips" {
        let project = uri
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("projectId="))?;
        return Some(format!("clips:{project}"));
    }
    // Test job ids need no percent-decoding.
    let mut segments = path.rsplit('/');
    match segments.next().filter(|s| !s.is_empty())? {
        "status" => segments.next().map(|id| format!("status:{id}")),
        id => Some(id.to_owned()),
    }
}

async fn get_job(State(state): State<Arc<ProviderState>>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(id) = answer_key(&uri) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    state.calls.lock().expect("lock").push(id.clone());
    state.requests.lock().expect("lock").push(Request {
        target: uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_default(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    let delay = *state.delay.lock().expect("lock");
    tokio::time::sleep(delay).await;
    let expected = match state.authorization_for.lock().expect("lock").get(&id) {
        Some(value) => value.clone(),
        None => state.authorization.lock().expect("lock").clone(),
    };
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    let answer = state.answers.lock().expect("lock").get(&id).cloned();
    let response = match (authorized, answer) {
        (false, _) => StatusCode::UNAUTHORIZED.into_response(),
        (true, None) => StatusCode::NOT_FOUND.into_response(),
        (true, Some(answer)) => respond(answer).await,
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    response
}

impl TestProvider {
    /// A provider that answers only `Authorization: Bearer {token}`.
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(ProviderState {
            authorization: Mutex::new(format!("Bearer {token}")),
            ..Default::default()
        });
        let app = Router::new()
            .route("/v1/{*path}", get(get_job))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            base_url: format!("http://{addr}/v1"),
            state,
        }
    }

    /// Answers only this `Authorization` value from now on: a profile's own
    /// scheme (HTTP Basic for Mux, the raw key for AssemblyAI).
    pub fn expect_authorization(&self, value: impl Into<String>) {
        *self.state.authorization.lock().expect("lock") = value.into();
    }

    /// Answers requests for `key` (a job id, or `clips:{id}`) only with
    /// this `Authorization` value.
    pub fn expect_authorization_for(&self, key: &str, value: impl Into<String>) {
        self.state
            .authorization_for
            .lock()
            .expect("lock")
            .insert(key.to_owned(), value.into());
    }

    pub fn answer(&self, job_id: &str, answer: Answer) {
        self.state
            .answers
            .lock()
            .expect("lock")
            .insert(job_id.to_owned(), answer);
    }

    /// Every request waits this long before it is answered.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().expect("lock") = delay;
    }

    /// Every request in full; `calls` gives only the scripted answers' keys,
    /// and the server accepts any profile's auth, so a claim about a
    /// profile's path or auth must be asserted on these.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().expect("lock").clone()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.calls.lock().expect("lock").clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}
