//! A local AWS that fails the way AWS does: a proxy in front of moto that
//! answers DynamoDB and SQS requests as those services answer under
//! contention and failure (DynamoDB developer guide, "Transaction conflict
//! handling" and "Error handling"; SQS API reference).
//!
//! moto runs DynamoDB requests one at a time, so on moto alone writers never
//! collide. Here they do, twice over:
//! - **contention**, measured: a write that touches an item while a
//!   transaction on it is in flight, or a transaction that touches an item
//!   while any write on it is in flight, is refused as DynamoDB refuses it
//!   (`TransactionCanceledException` with reason `TransactionConflict`, or
//!   `TransactionConflictException`). Items are keyed by `pk`/`sk`, jobhook's
//!   table layout;
//! - **faults**, at configured rates or scripted one by one: the kinds in
//!   [`Fault`].
//!
//! Like DynamoDB, a `TransactWriteItems` retried with the `ClientRequestToken`
//! of one that succeeded is answered success without being applied again (the
//! SDK fills the token once per call and reuses it on its retries).
//!
//! `GET /_faults` answers what was injected, by kind, as JSON.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::Error;

/// One way a request can fail. Those marked *ambiguous* are applied by moto
/// first and then answered with a 500, as when AWS fails after the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// `TransactWriteItems`: cancelled, reason `TransactionConflict`.
    TransactionConflict,
    /// `PutItem`/`UpdateItem`/`DeleteItem`: `TransactionConflictException`.
    ConflictException,
    /// A DynamoDB write: `ProvisionedThroughputExceededException` or
    /// `ThrottlingException`, in turn.
    Throttling,
    /// A DynamoDB write: 500 `InternalServerError`, not applied.
    InternalError,
    /// A DynamoDB write: applied, then 500 (ambiguous).
    AmbiguousWrite,
    /// `SendMessage`: 500, not queued.
    SendFailure,
    /// `SendMessage`: queued, then 500 (ambiguous: a retry queues it twice).
    AmbiguousSend,
    /// `DeleteMessage(Batch)`: deleted, then 500 (ambiguous).
    AmbiguousDelete,
    /// S3 `PutObject`: 503 `SlowDown`, not stored (S3's answer to a burst).
    SlowDown,
    /// S3 `PutObject`: stored, then 500 (ambiguous: a retry stores it again).
    AmbiguousPut,
}

impl Fault {
    pub const ALL: [Fault; 10] = [
        Fault::TransactionConflict,
        Fault::ConflictException,
        Fault::Throttling,
        Fault::InternalError,
        Fault::AmbiguousWrite,
        Fault::SendFailure,
        Fault::AmbiguousSend,
        Fault::AmbiguousDelete,
        Fault::SlowDown,
        Fault::AmbiguousPut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::TransactionConflict => "transaction_conflict",
            Fault::ConflictException => "conflict_exception",
            Fault::Throttling => "throttling",
            Fault::InternalError => "internal_error",
            Fault::AmbiguousWrite => "ambiguous_write",
            Fault::SendFailure => "send_failure",
            Fault::AmbiguousSend => "ambiguous_send",
            Fault::AmbiguousDelete => "ambiguous_delete",
            Fault::SlowDown => "slow_down",
            Fault::AmbiguousPut => "ambiguous_put",
        }
    }

    /// Whether this fault can happen to `operation` (`DynamoDB_20120810.PutItem`,
    /// `AmazonSQS.SendMessage`…).
    fn applies_to(self, operation: &Operation) -> bool {
        match self {
            Fault::TransactionConflict => operation.is_dynamodb("TransactWriteItems"),
            Fault::ConflictException => ["PutItem", "UpdateItem", "DeleteItem"]
                .iter()
                .any(|o| operation.is_dynamodb(o)),
            Fault::Throttling | Fault::InternalError | Fault::AmbiguousWrite => operation.is_dynamodb_write(),
            Fault::SendFailure | Fault::AmbiguousSend => operation.is_sqs("SendMessage"),
            Fault::AmbiguousDelete => operation.is_sqs("DeleteMessageBatch") || operation.is_sqs("DeleteMessage"),
            Fault::SlowDown | Fault::AmbiguousPut => operation.0 == S3_PUT_OBJECT,
        }
    }

    fn is_ambiguous(self) -> bool {
        matches!(
            self,
            Fault::AmbiguousWrite | Fault::AmbiguousSend | Fault::AmbiguousDelete | Fault::AmbiguousPut
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Fault::ALL.into_iter().find(|f| f.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Fault::ALL.iter().map(|f| f.as_str()).collect();
            format!("unknown fault {s:?}; known: {}", known.join(", "))
        })
    }
}

/// What to inject: a rate per fault, and whether real contention is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    pub rates: BTreeMap<Fault, f64>,
    pub contention: bool,
}

impl FaultPlan {
    /// No random faults, but contention refused as DynamoDB refuses it.
    pub fn contention_only() -> Self {
        Self {
            rates: BTreeMap::new(),
            contention: true,
        }
    }

    /// `make demo FAULTS=aws`: every kind, often enough that a 200-job run
    /// meets each many times, rarely enough that the SDK's own three
    /// attempts usually absorb the 500s and throttling.
    pub fn aws() -> Self {
        let rates = [
            (Fault::TransactionConflict, 0.04),
            (Fault::ConflictException, 0.04),
            (Fault::Throttling, 0.04),
            (Fault::InternalError, 0.02),
            (Fault::AmbiguousWrite, 0.03),
            (Fault::SendFailure, 0.03),
            (Fault::AmbiguousSend, 0.03),
            (Fault::AmbiguousDelete, 0.05),
            (Fault::SlowDown, 0.05),
            (Fault::AmbiguousPut, 0.03),
        ];
        Self {
            rates: rates.into_iter().collect(),
            contention: true,
        }
    }
}

impl FromStr for FaultPlan {
    type Err = String;
    /// `aws`, `none`, or comma-separated `kind=rate` and `contention=on|off`,
    /// applied left to right (`aws,throttling=0.2`).
    fn from_str(text: &str) -> Result<Self, String> {
        let mut plan = FaultPlan {
            rates: BTreeMap::new(),
            contention: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                None if part == "aws" => plan = FaultPlan::aws(),
                None if part == "none" => plan = FaultPlan::from_str("")?,
                None => return Err(format!("{part:?}: expected aws, none, kind=rate or contention=on|off")),
                Some(("contention", value)) => {
                    plan.contention = match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("contention={value:?}: expected on or off")),
                    }
                }
                Some((kind, rate)) => {
                    let fault: Fault = kind.parse()?;
                    let rate: f64 = rate
                        .parse()
                        .ok()
                        .filter(|r: &f64| (0.0..=1.0).contains(r))
                        .ok_or_else(|| format!("{kind}={rate:?}: a rate is a number from 0 to 1"))?;
                    plan.rates.insert(fault, rate);
                }
            }
        }
        Ok(plan)
    }
}

/// An S3 `PutObject` (S3 names no operation in a header).
const S3_PUT_OBJECT: &str = "S3.PutObject";

/// The service operation of a request, from its `x-amz-target` header
/// (both DynamoDB and the SQS JSON protocol name the operation there); a
/// path-style `PUT /bucket/key` without a part number is S3's `PutObject`.
#[derive(Debug, Clone, Default)]
struct Operation(String);

impl Operation {
    fn of(parts: &axum::http::request::Parts) -> Self {
        let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok());
        let path = parts.uri.path().trim_start_matches('/');
        let query = parts.uri.query().unwrap_or_default();
        match target {
            Some(target) => Self(target.to_owned()),
            None if parts.method == axum::http::Method::PUT
                && path.split_once('/').is_some_and(|(_, key)| !key.is_empty())
                && !query.contains("uploadId") =>
            {
                Self(S3_PUT_OBJECT.to_owned())
            }
            None => Self::default(),
        }
    }
    fn is_dynamodb(&self, name: &str) -> bool {
        self.0.strip_prefix("DynamoDB_20120810.") == Some(name)
    }
    fn is_dynamodb_write(&self) -> bool {
        [
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "TransactWriteItems",
            "BatchWriteItem",
        ]
        .iter()
        .any(|o| self.is_dynamodb(o))
    }
    fn is_sqs(&self, name: &str) -> bool {
        self.0.strip_prefix("AmazonSQS.") == Some(name)
    }
    fn name(&self) -> &str {
        self.0.rsplit('.').next().unwrap_or_default()
    }
}

/// Items a DynamoDB write touches, as `table|pk|sk`, and whether it is a
/// transaction.
fn touched_items(operation: &Operation, body: &Value) -> (Vec<String>, bool) {
    let key_of = |table: &Value, item: &Value| format!("{}|{}|{}", table, item["pk"], item["sk"]);
    if operation.is_dynamodb("TransactWriteItems") {
        let items = body["TransactItems"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|entry| {
                        let op = entry.as_object()?.values().next()?;
                        let item = if op.get("Item").is_some() {
                            &op["Item"]
                        } else {
                            &op["Key"]
                        };
                        Some(key_of(&op["TableName"], item))
                    })
                    .collect()
            })
            .unwrap_or_default();
        (items, true)
    } else if operation.is_dynamodb("PutItem") {
        (vec![key_of(&body["TableName"], &body["Item"])], false)
    } else if operation.is_dynamodb("UpdateItem") || operation.is_dynamodb("DeleteItem") {
        (vec![key_of(&body["TableName"], &body["Key"])], false)
    } else {
        (Vec::new(), false)
    }
}

#[derive(Debug)]
struct Scripted {
    fault: Fault,
    body_contains: Option<String>,
    remaining: u32,
}

#[derive(Debug)]
struct InFlight {
    writes: u32,
    transactions: u32,
}

#[derive(Debug)]
struct Shared {
    rng: StdRng,
    scripted: Vec<Scripted>,
    in_flight: HashMap<String, InFlight>,
    succeeded_tokens: HashSet<String>,
    injected: BTreeMap<Fault, u64>,
    /// Of the conflicts injected, those caused by real overlapping writes.
    contention_conflicts: u64,
    forwarded: BTreeMap<String, u64>,
    replayed_transactions: u64,
    throttle_turn: bool,
}

/// The proxy's shared state; cloning shares it.
#[derive(Debug, Clone)]
pub struct FaultProxy {
    upstream: String,
    http: reqwest::Client,
    plan: Arc<FaultPlan>,
    state: Arc<Mutex<Shared>>,
}

/// What the proxy did, for summaries and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FaultStats {
    /// Faults injected by kind (every kind listed, zeros included).
    pub injected: BTreeMap<String, u64>,
    /// Conflicts among them that real overlapping writes caused.
    pub contention_conflicts: u64,
    /// Requests passed to moto, by operation.
    pub forwarded: BTreeMap<String, u64>,
    /// Retried transactions answered from their `ClientRequestToken`.
    pub replayed_transactions: u64,
}

impl FaultStats {
    pub fn total(&self) -> u64 {
        self.injected.values().sum()
    }
    pub fn of(&self, fault: Fault) -> u64 {
        self.injected.get(fault.as_str()).copied().unwrap_or(0)
    }
}

/// Releases an item registration when the forwarded request is done.
struct Registration<'a> {
    proxy: &'a FaultProxy,
    keys: Vec<String>,
    transaction: bool,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut state = self.proxy.lock();
        for key in &self.keys {
            if let Some(entry) = state.in_flight.get_mut(key) {
                entry.writes -= 1;
                if self.transaction {
                    entry.transactions -= 1;
                }
                if entry.writes == 0 {
                    state.in_flight.remove(key);
                }
            }
        }
    }
}

fn aws_json_error(status: u16, type_name: &str, extra: Value) -> Response {
    let mut body = json!({"__type": type_name, "message": "injected by the jobhook fault proxy"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body.to_string(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert("x-amzn-requestid", HeaderValue::from_static("jobhook-fault-proxy"));
    response
}

const DDB: &str = "com.amazonaws.dynamodb.v20120810#";

/// DynamoDB's answer when a transaction met a conflict on item `conflicting`.
fn transaction_conflict(items: usize, conflicting: usize) -> Response {
    let reasons: Vec<Value> = (0..items.max(1))
        .map(|i| {
            if i == conflicting {
                json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"})
            } else {
                json!({"Code": "None"})
            }
        })
        .collect();
    let codes: Vec<&str> = reasons.iter().filter_map(|r| r["Code"].as_str()).collect();
    aws_json_error(
        400,
        &format!("{DDB}TransactionCanceledException"),
        json!({
            "Message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
            "CancellationReasons": reasons,
        }),
    )
}

fn conflict_exception() -> Response {
    aws_json_error(400, &format!("{DDB}TransactionConflictException"), json!({}))
}

/// An S3 error as S3 answers one: XML.
fn s3_error(status: u16, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).expect("a status");
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn server_error(operation: &Operation) -> Response {
    if operation.0 == S3_PUT_OBJECT {
        s3_error(
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        )
    } else if operation.0.starts_with("AmazonSQS.") {
        let mut response = aws_json_error(500, "com.amazonaws.sqs#InternalError", json!({}));
        response
            .headers_mut()
            .insert("x-amzn-query-error", HeaderValue::from_static("InternalError;Receiver"));
        response
    } else {
        aws_json_error(500, &format!("{DDB}InternalServerError"), json!({}))
    }
}

impl FaultProxy {
    pub fn new(upstream: impl Into<String>, plan: FaultPlan, seed: u64) -> Result<Self, Error> {
        Ok(Self {
            upstream: upstream.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?,
            plan: Arc::new(plan),
            state: Arc::new(Mutex::new(Shared {
                rng: StdRng::seed_from_u64(seed),
                scripted: Vec::new(),
                in_flight: HashMap::new(),
                succeeded_tokens: HashSet::new(),
                injected: BTreeMap::new(),
                contention_conflicts: 0,
                forwarded: BTreeMap::new(),
                replayed_transactions: 0,
                throttle_turn: false,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next `times` requests `fault` applies to (whose body contains
    /// `body_contains`, if given) get `fault`, whatever the rates say.
    pub fn script(&self, fault: Fault, body_contains: Option<&str>, times: u32) {
        self.lock().scripted.push(Scripted {
            fault,
            body_contains: body_contains.map(str::to_owned),
            remaining: times,
        });
    }

    pub fn stats(&self) -> FaultStats {
        let state = self.lock();
        FaultStats {
            injected: Fault::ALL
                .iter()
                .map(|f| (f.as_str().to_owned(), state.injected.get(f).copied().unwrap_or(0)))
                .collect(),
            contention_conflicts: state.contention_conflicts,
            forwarded: state.forwarded.clone(),
            replayed_transactions: state.replayed_transactions,
        }
    }

    /// The fault this request gets, if any: scripted first, then by rate.
    /// Returns the scripted entry's index too.
    fn choose(&self, state: &mut Shared, operation: &Operation, body: &str) -> Option<(Fault, Option<usize>)> {
        if let Some((i, s)) = state.scripted.iter_mut().enumerate().find(|(_, s)| {
            s.remaining > 0
                && s.fault.applies_to(operation)
                && s.body_contains.as_deref().is_none_or(|b| body.contains(b))
        }) {
            s.remaining -= 1;
            return Some((s.fault, Some(i)));
        }
        for (&fault, &rate) in self.plan.rates.iter() {
            if fault.applies_to(operation) && rate > 0.0 && state.rng.random_bool(rate) {
                return Some((fault, None));
            }
        }
        None
    }

    async fn handle(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, 16 << 20).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body over 16 MiB").into_response();
        };
        let operation = Operation::of(&parts);
        let text = String::from_utf8_lossy(&bytes);
        let parsed: Value = if operation.is_dynamodb_write() {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        let (keys, transaction) = touched_items(&operation, &parsed);
        let token = parsed["ClientRequestToken"].as_str().map(str::to_owned);

        // Decide under one lock: the fault, a real conflict, or registration.
        let (chosen, registration) = {
            let mut state = self.lock();
            if token.as_ref().is_some_and(|t| state.succeeded_tokens.contains(t)) {
                state.replayed_transactions += 1;
                return (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
                    "{}",
                )
                    .into_response();
            }
            let conflicting = self.plan.contention.then(|| {
                keys.iter().position(|k| {
                    state
                        .in_flight
                        .get(k)
                        .is_some_and(|f| transaction || f.transactions > 0)
                })
            });
            if let Some(Some(index)) = conflicting {
                let fault = if transaction {
                    Fault::TransactionConflict
                } else {
                    Fault::ConflictException
                };
                *state.injected.entry(fault).or_default() += 1;
                state.contention_conflicts += 1;
                drop(state);
                return if transaction {
                    transaction_conflict(keys.len(), index)
                } else {
                    conflict_exception()
                };
            }
            let chosen = self.choose(&mut state, &operation, &text);
            if let Some(fault) = chosen.map(|(f, _)| f).filter(|f| !f.is_ambiguous()) {
                *state.injected.entry(fault).or_default() += 1;
                let throttle_turn = state.throttle_turn;
                state.throttle_turn = !throttle_turn;
                drop(state);
                return match fault {
                    Fault::TransactionConflict => transaction_conflict(keys.len(), 0),
                    Fault::ConflictException => conflict_exception(),
                    Fault::Throttling if throttle_turn => {
                        aws_json_error(400, &format!("{DDB}ThrottlingException"), json!({}))
                    }
                    Fault::Throttling => {
                        aws_json_error(400, &format!("{DDB}ProvisionedThroughputExceededException"), json!({}))
                    }
                    Fault::SlowDown => s3_error(503, "SlowDown", "Please reduce your request rate."),
                    _ => server_error(&operation),
                };
            }
            for key in &keys {
                let entry = state.in_flight.entry(key.clone()).or_insert(InFlight {
                    writes: 0,
                    transactions: 0,
                });
                entry.writes += 1;
                if transaction {
                    entry.transactions += 1;
                }
            }
            *state.forwarded.entry(operation.name().to_owned()).or_default() += 1;
            (
                chosen,
                Registration {
                    proxy: self,
                    keys: keys.clone(),
                    transaction,
                },
            )
        };

        let answer = self.forward(&parts, bytes).await;
        drop(registration);
        let (status, headers, body) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                return (
                    StatusCode::BAD_GATEWAY,
                    format!("fault proxy: upstream failed: {error}"),
                )
                    .into_response()
            }
        };
        let mut state = self.lock();
        if status == StatusCode::OK {
            if let Some(token) = token.filter(|_| transaction) {
                state.succeeded_tokens.insert(token);
            }
            // The write happened; now say it failed.
            if let Some((fault, _)) = chosen {
                *state.injected.entry(fault).or_default() += 1;
                return server_error(&operation);
            }
        } else if let Some((_, Some(i))) = chosen {
            // Nothing was applied, so nothing is ambiguous: a scripted fault
            // waits for a request that succeeds.
            state.scripted[i].remaining += 1;
        }
        drop(state);
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }

    async fn forward(
        &self,
        parts: &axum::http::request::Parts,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), reqwest::Error> {
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut request = self
            .http
            .request(parts.method.clone(), format!("{}{path}", self.upstream))
            .body(body);
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) {
                request = request.header(name, value);
            }
        }
        let answer = request.send().await?;
        let status = answer.status();
        let mut headers = answer.headers().clone();
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
        Ok((status, headers, answer.bytes().await?))
    }
}

/// Headers of one connection, not of the message: never forwarded (the
/// length is recomputed for the body sent on). `Host` is forwarded as the
/// client sent it: it is signed (SigV4), and moto checks the signature when
/// it enforces IAM.
pub const HOP_BY_HOP: [header::HeaderName; 3] = [header::CONTENT_LENGTH, header::CONNECTION, header::TRANSFER_ENCODING];

pub fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

async fn stats(State(proxy): State<FaultProxy>) -> Json<FaultStats> {
    Json(proxy.stats())
}

async fn proxied(State(proxy): State<FaultProxy>, request: Request) -> Response {
    proxy.handle(request).await
}

/// Serves `proxy` on `listener` until the task is aborted.
pub fn serve(listener: TcpListener, proxy: FaultProxy) -> JoinHandle<()> {
    let app = Router::new()
        .route("/_faults", get(stats))
        .fallback(proxied)
        .with_state(proxy);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("fault proxy: {error}");
        }
    })
}

/// Starts a proxy to `upstream` on a free loopback port; returns its URL.
pub async fn start(upstream: &str, plan: FaultPlan, seed: u64) -> Result<(String, FaultProxy, JoinHandle<()>), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let proxy = FaultProxy::new(upstream, plan, seed)?;
    let task = serve(listener, proxy.clone());
    Ok((url, proxy, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_presets_overrides_and_refuse_nonsense() {
        let plan: FaultPlan = "aws,throttling=0.2,contention=off".parse().expect("plan");
        assert_eq!(plan.rates[&Fault::Throttling], 0.2);
        assert_eq!(plan.rates.len(), Fault::ALL.len(), "aws sets every kind");
        assert!(!plan.contention);
        assert_eq!("none".parse::<FaultPlan>().expect("none").rates.len(), 0);
        for bad in [
            "throttle=0.1",
            "throttling=2",
            "throttling=x",
            "contention=maybe",
            "loud",
        ] {
            assert!(bad.parse::<FaultPlan>().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_fault_applies_only_to_the_operations_aws_fails_that_way() {
        let op = |target: &str| Operation(target.to_owned());
        let (txn, put, get, send, delete) = (
            op("DynamoDB_20120810.TransactWriteItems"),
            op("DynamoDB_20120810.PutItem"),
            op("DynamoDB_20120810.GetItem"),
            op("AmazonSQS.SendMessage"),
            op("AmazonSQS.DeleteMessageBatch"),
        );
        assert!(Fault::TransactionConflict.applies_to(&txn) && !Fault::TransactionConflict.applies_to(&put));
        assert!(Fault::ConflictException.applies_to(&put) && !Fault::ConflictException.applies_to(&txn));
        assert!(Fault::ALL.iter().all(|f| !f.applies_to(&get)), "reads are left alone");
        assert!(Fault::AmbiguousSend.applies_to(&send) && !Fault::AmbiguousSend.applies_to(&delete));
        assert!(Fault::AmbiguousDelete.applies_to(&delete));
    }

    #[test]
    fn a_transaction_touches_each_of_its_items() {
        let body = json!({"TransactItems": [
            {"Update": {"TableName": "t", "Key": {"pk": {"S": "JOB#a#1"}, "sk": {"S": "STATE"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "JOB#a#1"}, "sk": {"S": "EVT#e"}, "x": {"N": "1"}}}}
        ]});
        let (keys, transaction) = touched_items(&Operation("DynamoDB_20120810.TransactWriteItems".into()), &body);
        assert!(transaction);
        assert_eq!(keys.len(), 2);
        assert!(keys[0].contains("STATE") && keys[1].contains("EVT#e"));
    }
}
