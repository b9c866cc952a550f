//! `make bench`: jobhook's functions beside reference Python/Powertools ones
//! (`bench/python`), each run under one minimal Lambda Runtime API emulator
//! against one moto, with every DynamoDB and SQS request counted by a small
//! proxy. Per function it measures init (spawn → first `/next`), the wall time
//! of each invocation (the event handed out by `/next` → its `/response`,
//! what Lambda bills), the process's CPU (all threads' `schedstat`) and its
//! peak RSS (`VmHWM`). It prints medians and ratios from the one run.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use jobhook::domain::envelope::Envelope;
use jobhook::domain::signature::sign;
use jobhook_dev::faults::is_hop_by_hop;
use jobhook_dev::seed::Error;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

mod matrix;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Warm invocations per function.
    #[arg(long, default_value_t = 200)]
    pub invocations: usize,
    /// Processes started per function to time init.
    #[arg(long, default_value_t = 5)]
    pub spawns: usize,
    /// SQS messages per processor batch.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Where the release builds of `receiver`, `processor` and `noop-function` are.
    #[arg(long)]
    pub bin_dir: PathBuf,
    /// The Python with the packages of requirements-bench.txt.
    #[arg(long)]
    pub python: PathBuf,
    /// `bench/python`.
    #[arg(long, default_value = "bench/python")]
    pub python_dir: PathBuf,
    /// `make build`'s output, for the zipped sizes (left out when absent).
    #[arg(long, default_value = "target/lambda")]
    pub lambda_dir: PathBuf,
    #[arg(long, default_value = "target/bench")]
    pub out_dir: PathBuf,
    /// Only these functions (e.g. `rust_noop,rust_receiver`), for a quick
    /// look at one change; ratios need both languages' figures.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Runs each function on this CPU alone (`taskset`), as Lambda gives a
    /// function its own vCPU; `scripts/bench.sh` keeps moto and the bench
    /// on the other one.
    #[arg(long)]
    pub function_cpu: Option<usize>,
}

/// The functions the bench runs, as `--only` and the report name them.
const FUNCTION_KEYS: &[&str] = &[
    "rust_noop",
    "python_noop",
    "rust_receiver",
    "python_receiver",
    "rust_receiver_reconnect",
    "python_receiver_reconnect",
    "rust_processor",
    "python_processor",
    "processor_matrix",
];

impl BenchArgs {
    fn wanted(&self, key: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == key)
    }

    fn check_only(&self) -> Result<(), Error> {
        match self.only.iter().find(|o| !FUNCTION_KEYS.contains(&o.as_str())) {
            Some(unknown) => Err(format!(
                "--only {unknown}: not a function of the bench ({})",
                FUNCTION_KEYS.join(", ")
            )
            .into()),
            None => Ok(()),
        }
    }
}

// --- The Runtime API emulator -------------------------------------------------

struct Invocation {
    id: String,
    payload: Vec<u8>,
    done: oneshot::Sender<Outcome>,
}

#[derive(Debug)]
struct Outcome {
    /// `/next` handed out the event → `/response` (or `/error`) arrived.
    wall: Duration,
    ok: bool,
    body: Bytes,
}

#[derive(Default)]
struct Emulator {
    queue: tokio::sync::Mutex<Option<mpsc::Receiver<Invocation>>>,
    in_flight: Mutex<HashMap<String, (Instant, oneshot::Sender<Outcome>)>>,
    first_next: Mutex<Option<oneshot::Sender<Instant>>>,
}

async fn next(State(emu): State<Arc<Emulator>>) -> Response {
    if let Some(tx) = emu.first_next.lock().expect("lock").take() {
        let _ = tx.send(Instant::now());
    }
    let mut queue = emu.queue.lock().await;
    let Some(rx) = queue.as_mut() else {
        return StatusCode::GONE.into_response();
    };
    let Some(inv) = rx.recv().await else {
        // No more work: the driver stops the process.
        drop(queue);
        std::future::pending::<()>().await;
        unreachable!();
    };
    let deadline = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64 + 30_000;
    emu.in_flight
        .lock()
        .expect("lock")
        .insert(inv.id.clone(), (Instant::now(), inv.done));
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("header"));
    };
    set("lambda-runtime-aws-request-id", inv.id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".into(),
    );
    set("content-type", "application/json".into());
    (headers, inv.payload).into_response()
}

fn finish(emu: &Emulator, id: &str, ok: bool, body: Bytes) -> StatusCode {
    match emu.in_flight.lock().expect("lock").remove(id) {
        Some((started, done)) => {
            let _ = done.send(Outcome {
                wall: started.elapsed(),
                ok,
                body,
            });
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(emu): State<Arc<Emulator>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&emu, &id, true, body)
}

async fn error(State(emu): State<Arc<Emulator>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&emu, &id, false, body)
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("bench: init error: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}

// --- The request-counting proxy ---------------------------------------------

#[derive(Clone)]
struct Counter {
    upstream: String,
    http: reqwest::Client,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// DynamoDB capacity units (write, read) the counted requests cost.
    units: Arc<Mutex<(f64, f64)>>,
    /// Answers `Connection: close`, as an AWS endpoint does to a connection
    /// it recycles or one idle past its timeout: a new connection per request.
    close: bool,
}

async fn forward(State(c): State<Counter>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
        .unwrap_or_else(|| "other".into());
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let (wru, rru) = capacity_units(&target, &body);
    {
        let mut units = c.units.lock().expect("lock");
        units.0 += wru;
        units.1 += rru;
    }
    *c.counts.lock().expect("lock").entry(target).or_default() += 1;
    let url = format!(
        "{}{}",
        c.upstream,
        parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut request = c.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut out = (status, bytes).into_response();
            // moto closes each connection (`Connection: close`); AWS keeps
            // them open, so the functions see them kept open unless this
            // proxy is the one for the reconnect path.
            for (name, value) in &headers {
                if !is_hop_by_hop(name) {
                    out.headers_mut().insert(name, value.clone());
                }
            }
            if c.close {
                out.headers_mut()
                    .insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Serves a counting proxy on a free loopback port; its URL.
async fn serve_proxy(counter: Counter) -> Result<String, Error> {
    let app = Router::new().fallback(any(forward)).with_state(counter);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

impl Counter {
    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().expect("lock"))
    }

    fn take_units(&self) -> (f64, f64) {
        std::mem::take(&mut *self.units.lock().expect("lock"))
    }
}

/// The (write, read) capacity units a DynamoDB request costs on demand, from
/// its JSON body: a write 1 WRU per KB of the item, a transaction's item 2; a
/// strongly consistent read 1 RRU per 4 KB, an eventually consistent one half.
/// An update or condition check is taken as one KB (the state items are
/// smaller); a put is charged by the size of the item sent, which undercounts
/// an overwritten larger item, never the bench's.
fn capacity_units(target: &str, body: &[u8]) -> (f64, f64) {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return (0.0, 0.0);
    };
    let kb_of = |item: &Value| (item.to_string().len() as f64 / 1024.0).ceil().max(1.0);
    let read = |consistent: bool| if consistent { 1.0 } else { 0.5 };
    match target {
        "PutItem" => (kb_of(&request["Item"]), 0.0),
        "UpdateItem" | "DeleteItem" => (1.0, 0.0),
        "TransactWriteItems" => {
            let items = request["TransactItems"].as_array().cloned().unwrap_or_default();
            let wru = items
                .iter()
                .map(|item| 2.0 * item.get("Put").map_or(1.0, |put| kb_of(&put["Item"])))
                .sum();
            (wru, 0.0)
        }
        "BatchWriteItem" => {
            let wru = request["RequestItems"]
                .as_object()
                .map(|tables| {
                    tables
                        .values()
                        .filter_map(Value::as_array)
                        .flatten()
                        .map(|w| w.get("PutRequest").map_or(1.0, |put| kb_of(&put["Item"])))
                        .sum()
                })
                .unwrap_or(0.0);
            (wru, 0.0)
        }
        "GetItem" => (0.0, read(request["ConsistentRead"].as_bool().unwrap_or(false))),
        "BatchGetItem" => {
            let rru = request["RequestItems"]
                .as_object()
                .map(|tables| {
                    tables
                        .values()
                        .map(|t| {
                            let keys = t["Keys"].as_array().map_or(0, Vec::len) as f64;
                            keys * read(t["ConsistentRead"].as_bool().unwrap_or(false))
                        })
                        .sum()
                })
                .unwrap_or(0.0);
            (0.0, rru)
        }
        "TransactGetItems" => (
            0.0,
            2.0 * request["TransactItems"].as_array().map_or(0, Vec::len) as f64,
        ),
        "Query" | "Scan" => (0.0, read(request["ConsistentRead"].as_bool().unwrap_or(false))),
        _ => (0.0, 0.0),
    }
}

// --- Processes ----------------------------------------------------------------

/// What to start, and with which environment.
#[derive(Debug, Clone)]
struct Function {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
}

/// All threads' on-CPU time, in ns (`/proc/<pid>/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Peak resident set, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

struct Running {
    child: tokio::process::Child,
    sender: mpsc::Sender<Invocation>,
    server: tokio::task::JoinHandle<()>,
    init: Duration,
    seq: usize,
}

impl Running {
    async fn start(
        f: &Function,
        shared_env: &[(String, String)],
        log_path: &std::path::Path,
        cpu: Option<usize>,
    ) -> Result<Self, Error> {
        let (tx, rx) = mpsc::channel(1);
        let (first_tx, first_rx) = oneshot::channel();
        let emulator = Arc::new(Emulator {
            queue: tokio::sync::Mutex::new(Some(rx)),
            in_flight: Mutex::default(),
            first_next: Mutex::new(Some(first_tx)),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(emulator.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path)?;
        // taskset execs the function, so the pid stays the function's.
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = tokio::process::Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&f.program);
                c
            }
            None => tokio::process::Command::new(&f.program),
        };
        command
            .args(&f.args)
            .env_clear()
            .envs(shared_env.iter().cloned())
            .envs(f.env.iter().cloned())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", f.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", f.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(dir) = &f.cwd {
            command.current_dir(dir);
        }
        let spawned = Instant::now();
        let child = command.spawn().map_err(|e| format!("{}: {e}", f.program.display()))?;
        let ready = tokio::time::timeout(Duration::from_secs(30), first_rx)
            .await
            .map_err(|_| format!("{}: no /next within 30 s (see {})", f.name, log_path.display()))??;
        Ok(Self {
            child,
            sender: tx,
            server,
            init: ready - spawned,
            seq: 0,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    async fn invoke(&mut self, payload: Vec<u8>) -> Result<Outcome, Error> {
        self.invoke_within(payload, Duration::from_secs(30)).await
    }

    async fn invoke_within(&mut self, payload: Vec<u8>, limit: Duration) -> Result<Outcome, Error> {
        self.seq += 1;
        let (done, rx) = oneshot::channel();
        self.sender
            .send(Invocation {
                id: format!("req-{:06}", self.seq),
                payload,
                done,
            })
            .await
            .map_err(|_| "the emulator stopped")?;
        Ok(tokio::time::timeout(limit, rx)
            .await
            .map_err(|_| format!("an invocation took over {} s", limit.as_secs()))??)
    }

    async fn stop(self) {
        let Self {
            mut child,
            sender,
            server,
            ..
        } = self;
        let _ = child.kill().await;
        // A `/next` waiting for work sees the channel close.
        drop(sender);
        server.abort();
    }
}

// --- The keeper: one large output, the real binary ----------------------------

/// What keeping one output cost the `keeper` binary.
#[derive(Debug, Serialize)]
pub struct KeeperRun {
    pub bytes: u64,
    pub wall_secs: f64,
    pub peak_rss_mb: f64,
    /// The job's recorded SHA-256 is the served bytes', and so is the object's length.
    pub checksum_matches: bool,
}

/// Runs the release `keeper` in `bin_dir` under the Runtime API emulator
/// on one keep request for an output of `bytes`, served by a local HTTP
/// server and kept in a bucket on moto, then reads its peak RSS.
pub async fn keeper_run(
    aws: &aws_config::SdkConfig,
    moto_url: &str,
    bin_dir: &std::path::Path,
    out_dir: &std::path::Path,
    bytes: u64,
) -> Result<KeeperRun, Error> {
    use jobhook::domain::job::{JobEvent, JobStatus, Origin};
    use jobhook::ports::{JobQuery as _, JobStore as _};
    let pid = std::process::id();
    let template = jobhook_dev::template::Template::load()?;
    let ddb = aws_sdk_dynamodb::Client::new(aws);
    let table = format!("keeper-bench-jobs-{pid}");
    template.create_table(&ddb, "JobsTable", &table).await?;
    let s3 = jobhook::bootstrap::s3_client(aws);
    let bucket = format!("keeper-bench-{pid}");
    s3.create_bucket().bucket(&bucket).send().await?;
    let base = jobhook_dev::outputs::serve().await?;
    let url = format!("{base}/outputs/bench/{bytes}");
    let store = jobhook::adapters::dynamodb::DynamoJobStore::new(
        ddb,
        &table,
        Duration::from_secs(86_400),
        Arc::new(jobhook::clock::SystemClock),
    );
    store
        .apply(&JobEvent {
            event_id: "e1".into(),
            source: "bench".into(),
            job_id: "big".into(),
            kind: "job.completed".into(),
            origin: Origin::Webhook,
            status: JobStatus::Completed,
            progress: None,
            output_url: Some(url.clone()),
            error: None,
            result: None,
            provider_time: None,
            archive: None,
        })
        .await?;
    std::fs::create_dir_all(out_dir)?;
    let sources_file = out_dir.join("keeper-sources.json");
    let sources = json!({"sources": {"bench": {"scheme": "standard-webhooks", "secrets": [SECRET],
        "api": {"base_url": base, "token": "t"},
        "keep_outputs": {"bucket": bucket, "prefix": "jobhook/"}}}});
    std::fs::write(&sources_file, sources.to_string())?;
    let pass = |name: &str, default: &str| {
        (
            name.to_owned(),
            std::env::var(name).unwrap_or_else(|_| default.to_owned()),
        )
    };
    let shared = vec![
        pass("AWS_ACCESS_KEY_ID", "testing"),
        pass("AWS_SECRET_ACCESS_KEY", "testing"),
        pass("PATH", "/usr/bin:/bin"),
        ("AWS_ENDPOINT_URL".to_owned(), moto_url.to_owned()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    let keeper = Function {
        name: "keeper",
        program: bin_dir.join("keeper"),
        args: vec![],
        cwd: None,
        env: vec![
            ("RUST_LOG".into(), "info".into()),
            ("JOBHOOK_TABLE_NAME".into(), table),
            ("JOBHOOK_SOURCES_FILE".into(), sources_file.display().to_string()),
            ("JOBHOOK_OUTPUTS_BUCKET".into(), bucket),
            ("JOBHOOK_OUTPUTS_PREFIX".into(), "jobhook/".into()),
        ],
    };
    let request = jobhook::domain::outputs::KeepRequest {
        source: "bench".into(),
        job_id: "big".into(),
        output_url: url,
        transition: 1,
        completed_at: "2026-12-03T10:00:00.000Z".into(),
    };
    let event = json!({"Records": [{"messageId": "m1", "receiptHandle": "r1",
        "body": serde_json::to_string(&request)?, "attributes": {}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:outputs",
        "awsRegion": "us-east-1"}]});
    let mut run = Running::start(&keeper, &shared, &out_dir.join("keeper.log"), None).await?;
    let outcome = run
        // The keeper's function timeout in template.yaml.
        .invoke_within(event.to_string().into_bytes(), Duration::from_secs(900))
        .await?;
    let peak_rss_mb = peak_rss_kib(run.pid()) as f64 / 1024.0;
    run.stop().await;
    if !outcome.ok || String::from_utf8_lossy(&outcome.body).contains("batchItemFailures\":[{") {
        return Err(format!("the keeper failed: {}", String::from_utf8_lossy(&outcome.body)).into());
    }
    let kept = store
        .get("bench", "big")
        .await?
        .and_then(|job| job.kept_outputs)
        .and_then(|k| k.into_iter().next())
        .ok_or("the keeper recorded no kept output")?;
    Ok(KeeperRun {
        bytes,
        wall_secs: outcome.wall.as_secs_f64(),
        peak_rss_mb,
        checksum_matches: kept.bytes == bytes && kept.sha256 == jobhook_dev::outputs::sha256_of("bench", bytes),
    })
}

// --- Workloads ----------------------------------------------------------------

const SECRET: &str = "whsec_YmVuY2gtb25seS1zZWNyZXQtZG8tbm90LXVzZQ==";

/// An API Gateway HTTP API event carrying a freshly signed delivery.
fn webhook_event(n: usize, source: &jobhook::SourceConfig) -> Vec<u8> {
    let id = format!("msg_bench_{n:06}_{}", std::process::id());
    let body = json!({"id": format!("evt_{n}"), "type": "job.progress", "created_at": "2026-05-13T12:00:05Z",
        "data": {"job_id": format!("job_{}", n % 50), "status": "processing", "progress": n % 100}})
    .to_string();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut headers: serde_json::Map<String, Value> = sign::headers_for(source, &id, now, body.as_bytes())
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    headers.insert("content-type".into(), "application/json".into());
    headers.insert("user-agent".into(), "bench/1.0".into());
    json!({"version": "2.0", "routeKey": "POST /webhooks/{source}", "rawPath": "/webhooks/bench",
        "rawQueryString": "", "headers": headers, "pathParameters": {"source": "bench"},
        "requestContext": {"accountId": "123456789012", "apiId": "bench", "domainName": "bench.example.com",
            "http": {"method": "POST", "path": "/webhooks/bench", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "bench/1.0"},
            "requestId": id, "routeKey": "POST /webhooks/{source}", "stage": "$default",
            "time": "13/May/2026:12:00:05 +0000", "timeEpoch": 1778673605000_i64},
        "body": body, "isBase64Encoded": false})
    .to_string()
    .into_bytes()
}

#[derive(Debug, Clone)]
struct JobStep {
    event_id: String,
    job_id: String,
    kind: &'static str,
    progress: Option<u8>,
}

/// Job events in order: per job `started`, `progress 50`, `completed`.
fn job_events(batches: usize, batch: usize, run: &str) -> Vec<Vec<JobStep>> {
    let steps: [(&str, Option<u8>); 3] = [
        ("job.started", None),
        ("job.progress", Some(50)),
        ("job.completed", None),
    ];
    let all: Vec<JobStep> = (0..batches * batch)
        .map(|i| {
            let (kind, progress) = steps[i % 3];
            JobStep {
                event_id: format!("{run}-e{i:06}"),
                job_id: format!("{run}-job{:05}", i / 3),
                kind,
                progress,
            }
        })
        .collect();
    all.chunks(batch).map(<[_]>::to_vec).collect()
}

fn status_of(kind: &str) -> &'static str {
    match kind {
        "job.completed" => "completed",
        _ => "processing",
    }
}

fn sqs_batch(bodies: Vec<String>) -> Vec<u8> {
    let records: Vec<Value> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            json!({"messageId": format!("m-{i}-{}", rand_id()), "receiptHandle": "rh", "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1778673605000",
                               "SenderId": "bench", "ApproximateFirstReceiveTimestamp": "1778673605000"},
                "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bench", "awsRegion": "us-east-1"})
        })
        .collect();
    json!({"Records": records}).to_string().into_bytes()
}

fn rand_id() -> u64 {
    use rand::RngExt;
    rand::rng().random()
}

/// The jobhook envelope the receiver would have queued for a generic event.
fn envelope(event_id: &str, job_id: &str, kind: &str, progress: Option<u8>) -> String {
    let body = json!({"id": event_id, "type": kind, "created_at": "2026-05-13T12:00:05Z",
        "data": {"job_id": job_id, "status": status_of(kind), "progress": progress}})
    .to_string();
    let envelope = Envelope {
        v: 1,
        source: "bench".into(),
        event_id: event_id.into(),
        received_at: "2026-05-13T12:00:05.000Z".into(),
        scheme: "standard-webhooks".into(),
        webhook_id: Some(event_id.into()),
        signed_at: Some(1_778_673_605),
        headers: Default::default(),
        body,
        body_base64: false,
    };
    envelope.to_json()
}

// --- Figures ------------------------------------------------------------------

#[derive(Debug, Default, Clone, Serialize)]
pub struct Figures {
    pub init_ms: f64,
    pub first_wall_ms: f64,
    pub warm_wall_ms: f64,
    /// The median over the warm invocations.
    pub cpu_us_per_invocation: f64,
    pub cpu_us_mean: f64,
    pub peak_rss_mb: f64,
    pub requests: BTreeMap<String, u64>,
    pub failed: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
];
const READS: &[&str] = &["GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"];

fn count(requests: &BTreeMap<String, u64>, ops: &[&str]) -> u64 {
    ops.iter().map(|o| requests.get(*o).copied().unwrap_or(0)).sum()
}

pub struct Bench {
    pub args: BenchArgs,
    pub aws: aws_config::SdkConfig,
    pub moto_url: String,
}

#[derive(Clone)]
struct Env {
    shared: Vec<(String, String)>,
    /// `shared` with AWS reached through the proxy that closes every connection.
    reconnecting: Vec<(String, String)>,
    queue_url: String,
    table: String,
    counter: Counter,
}

impl Bench {
    async fn setup(&self) -> Result<Env, Error> {
        let counter = Counter {
            upstream: self.moto_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder().tcp_nodelay(true).build()?,
            counts: Arc::default(),
            units: Arc::default(),
            close: false,
        };
        let proxy_url = serve_proxy(counter.clone()).await?;
        let closing_url = serve_proxy(Counter {
            close: true,
            ..counter.clone()
        })
        .await?;

        // The stack's queue, DLQ and table as template.yaml declares them.
        let template = jobhook_dev::template::Template::load()?;
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        let queue_url = template
            .create_queue(&sqs, "EventsQueue", &format!("bench-{}", std::process::id()))
            .await?;
        let dlq_url = template
            .create_queue(&sqs, "EventsDlq", &format!("bench-dlq-{}", std::process::id()))
            .await?;
        let ddb = aws_sdk_dynamodb::Client::new(&self.aws);
        let table = format!("bench-jobs-{}", std::process::id());
        template.create_table(&ddb, "JobsTable", &table).await?;
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let py_tables = [
            (format!("bench-py-jobs-{}", std::process::id()), "pk"),
            (format!("bench-py-idempotency-{}", std::process::id()), "id"),
        ];
        for (name, key) in &py_tables {
            ddb.create_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(*key)
                        .attribute_type(ScalarAttributeType::S)
                        .build()?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(*key)
                        .key_type(KeyType::Hash)
                        .build()?,
                )
                .send()
                .await?;
        }
        let sources = json!({"sources": {"bench": {"scheme": "standard-webhooks", "secrets": [SECRET]}}});
        std::fs::create_dir_all(&self.args.out_dir)?;
        let sources_file = self.args.out_dir.join("sources.json");
        std::fs::write(&sources_file, sources.to_string())?;

        let pass = |name: &str, default: &str| {
            (
                name.to_owned(),
                std::env::var(name).unwrap_or_else(|_| default.to_owned()),
            )
        };
        let mut shared = vec![
            pass("AWS_ACCESS_KEY_ID", "testing"),
            pass("AWS_SECRET_ACCESS_KEY", "testing"),
            pass("PATH", "/usr/bin:/bin"),
            pass("HOME", "/tmp"),
        ];
        shared.extend([
            ("AWS_ENDPOINT_URL".to_owned(), proxy_url),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("JOBHOOK_QUEUE_URL".into(), queue_url.clone()),
            ("JOBHOOK_DLQ_URL".into(), dlq_url),
            ("JOBHOOK_TABLE_NAME".into(), table.clone()),
            ("JOBHOOK_SOURCES_FILE".into(), sources_file.display().to_string()),
            ("BENCH_WEBHOOK_SECRET".into(), SECRET.into()),
            ("BENCH_JOBS_TABLE".into(), py_tables[0].0.clone()),
            ("BENCH_IDEMPOTENCY_TABLE".into(), py_tables[1].0.clone()),
            ("POWERTOOLS_SERVICE_NAME".into(), "bench".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ]);
        let reconnecting = shared
            .iter()
            .map(|(k, v)| match k.as_str() {
                "AWS_ENDPOINT_URL" => (k.clone(), closing_url.clone()),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        Ok(Env {
            shared,
            reconnecting,
            queue_url,
            table,
            counter,
        })
    }

    fn rust(&self, name: &'static str, bin: &str) -> Function {
        Function {
            name,
            program: self.args.bin_dir.join(bin),
            args: vec![],
            cwd: None,
            env: vec![("RUST_LOG".into(), "info".into())],
        }
    }

    fn python(&self, name: &'static str, handler: &str) -> Function {
        let dir = std::fs::canonicalize(&self.args.python_dir).unwrap_or_else(|_| self.args.python_dir.clone());
        Function {
            name,
            program: self.args.python.clone(),
            args: vec!["-m".into(), "awslambdaric".into(), handler.into()],
            cwd: Some(dir.clone()),
            env: vec![("LAMBDA_TASK_ROOT".into(), dir.display().to_string())],
        }
    }

    /// Times init over `spawns` starts, then runs the payloads on one warm
    /// process: the first invocation apart, the rest for wall and CPU.
    async fn measure(
        &self,
        env: &Env,
        f: &Function,
        payloads: &mut dyn FnMut(usize) -> Vec<u8>,
        invocations: usize,
    ) -> Result<Figures, Error> {
        let log = self.args.out_dir.join(format!("{}.log", f.name));
        let _ = std::fs::remove_file(&log);
        let mut inits = Vec::new();
        for _ in 1..self.args.spawns {
            let run = Running::start(f, &env.shared, &log, self.args.function_cpu).await?;
            inits.push(ms(run.init));
            run.stop().await;
        }
        let mut run = Running::start(f, &env.shared, &log, self.args.function_cpu).await?;
        inits.push(ms(run.init));
        env.counter.take();
        let first = run.invoke(payloads(0)).await?;
        let mut failed = usize::from(!first.ok);
        if !first.ok {
            eprintln!("bench: {} failed: {}", f.name, String::from_utf8_lossy(&first.body));
        }
        // The process's CPU as each event is handed out: invocation i's share
        // runs from its mark to the next one (its work, any flush after the
        // response, the next poll), so a stray spike moves one sample only.
        let mut marks = Vec::with_capacity(invocations + 1);
        let mut walls = Vec::with_capacity(invocations);
        for i in 1..=invocations {
            marks.push(cpu_ns(run.pid()));
            let out = run.invoke(payloads(i)).await?;
            if !out.ok || String::from_utf8_lossy(&out.body).contains("batchItemFailures\":[{") {
                failed += 1;
            }
            walls.push(ms(out.wall));
        }
        // Work done after the last response (a flush) belongs to it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        marks.push(cpu_ns(run.pid()));
        let cpu: Vec<f64> = marks
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]) as f64 / 1000.0)
            .collect();
        let figures = Figures {
            init_ms: median(inits),
            first_wall_ms: ms(first.wall),
            warm_wall_ms: median(walls),
            cpu_us_mean: cpu.iter().sum::<f64>() / invocations.max(1) as f64,
            cpu_us_per_invocation: median(cpu),
            peak_rss_mb: peak_rss_kib(run.pid()) as f64 / 1024.0,
            requests: env.counter.take(),
            failed,
        };
        run.stop().await;
        Ok(figures)
    }

    /// `SendMessage` from here with the SDK, to moto or through one of the
    /// functions' proxies (`endpoint`): the floor under a receiver's warm
    /// wall time on that path.
    async fn send_floor(&self, env: &Env, endpoint: Option<&str>) -> Result<f64, Error> {
        let mut config = aws_sdk_sqs::config::Builder::from(&self.aws);
        if let Some(url) = endpoint {
            config = config.endpoint_url(url);
        }
        let sqs = aws_sdk_sqs::Client::from_conf(config.build());
        let mut walls = Vec::new();
        for i in 0..self.args.invocations.min(100) {
            let t = Instant::now();
            sqs.send_message()
                .queue_url(&env.queue_url)
                .message_body(format!("floor {i}"))
                .send()
                .await?;
            walls.push(ms(t.elapsed()));
        }
        Ok(median(walls))
    }

    pub async fn run(&self) -> Result<Report, Error> {
        self.args.check_only()?;
        let env = self.setup().await?;
        let source = jobhook::Sources::parse(
            &json!({"sources": {"bench": {"scheme": "standard-webhooks", "secrets": [SECRET]}}}).to_string(),
        )?
        .get("bench")
        .cloned()
        .ok_or("no bench source")?;
        let n = self.args.invocations;
        let mut report = Report {
            invocations: n,
            batch: self.args.batch,
            function_cpu: self.args.function_cpu,
            machine: machine(),
            ..Default::default()
        };
        report.send_floor_ms = self.send_floor(&env, None).await?;
        if self.args.wanted("rust_receiver_reconnect") || self.args.wanted("python_receiver_reconnect") {
            let endpoint = |vars: &[(String, String)]| {
                vars.iter()
                    .find(|(k, _)| k == "AWS_ENDPOINT_URL")
                    .map(|(_, v)| v.clone())
            };
            report.send_floor_kept_open_ms = self.send_floor(&env, endpoint(&env.shared).as_deref()).await?;
            report.send_floor_reconnect_ms = self.send_floor(&env, endpoint(&env.reconnecting).as_deref()).await?;
        }

        let mut webhooks = |i: usize| webhook_event(i, &source);
        let reconnecting = Env {
            shared: env.reconnecting.clone(),
            ..env.clone()
        };
        for (key, f, env) in [
            ("rust_noop", self.rust("rust-noop", "noop-function"), &env),
            ("python_noop", self.python("python-noop", "noop.handler"), &env),
            ("rust_receiver", self.rust("receiver", "receiver"), &env),
            (
                "python_receiver",
                self.python("python-receiver", "receiver.handler"),
                &env,
            ),
            (
                "rust_receiver_reconnect",
                self.rust("receiver-reconnect", "receiver"),
                &reconnecting,
            ),
            (
                "python_receiver_reconnect",
                self.python("python-receiver-reconnect", "receiver.handler"),
                &reconnecting,
            ),
        ] {
            if !self.args.wanted(key) {
                continue;
            }
            println!("bench: {key}");
            report
                .functions
                .insert(key.into(), self.measure(env, &f, &mut webhooks, n).await?);
        }

        // Processors: batches of new in-order events, then the same again
        // (every event a duplicate).
        let batch = self.args.batch;
        for (key, f, rust) in [
            ("rust_processor", self.rust("processor", "processor"), true),
            (
                "python_processor",
                self.python("python-processor", "processor.handler"),
                false,
            ),
        ] {
            if !self.args.wanted(key) {
                continue;
            }
            println!("bench: {key}");
            let run_id = format!("{key}-{}", rand_id());
            let batches = job_events(n + 1, batch, &run_id);
            let body_of = |e: &JobStep| {
                if rust {
                    envelope(&e.event_id, &e.job_id, e.kind, e.progress)
                } else {
                    json!({"event_id": e.event_id, "source": "bench", "job_id": e.job_id,
                           "status": status_of(e.kind), "progress": e.progress})
                    .to_string()
                }
            };
            let mut new = |i: usize| sqs_batch(batches[i].iter().map(body_of).collect());
            let fresh = self.measure(&env, &f, &mut new, n).await?;
            let mut again = |i: usize| sqs_batch(batches[i].iter().map(body_of).collect());
            let dup = self.measure(&env, &f, &mut again, n).await?;
            let events = ((n + 1) * batch) as f64;
            report.processors.insert(
                key.into(),
                ProcessorFigures {
                    writes_per_new_event: count(&fresh.requests, WRITES) as f64 / events,
                    reads_per_new_event: count(&fresh.requests, READS) as f64 / events,
                    writes_per_duplicate: count(&dup.requests, WRITES) as f64 / events,
                    reads_per_duplicate: count(&dup.requests, READS) as f64 / events,
                    cpu_us_per_event: fresh.cpu_us_per_invocation / batch as f64,
                },
            );
            report.functions.insert(key.into(), fresh);
            report.functions.insert(format!("{key}_duplicates"), dup);
        }
        if self.args.wanted("processor_matrix") {
            println!("bench: processor_matrix");
            report.matrix = self.matrix(&env, &self.rust("processor", "processor")).await?;
        }
        for name in ["receiver", "processor", "reconciler", "notifier"] {
            let zip = self.args.lambda_dir.join(name).join("bootstrap.zip");
            if let Ok(meta) = std::fs::metadata(&zip) {
                report.zipped_mb.insert(name.into(), meta.len() as f64 / 1_000_000.0);
            }
        }
        Ok(report)
    }
}

#[derive(Debug, Default, Serialize)]
pub struct ProcessorFigures {
    pub writes_per_new_event: f64,
    pub reads_per_new_event: f64,
    pub writes_per_duplicate: f64,
    pub reads_per_duplicate: f64,
    pub cpu_us_per_event: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub machine: String,
    pub invocations: usize,
    pub batch: usize,
    pub function_cpu: Option<usize>,
    pub send_floor_ms: f64,
    /// The same through the functions' keep-alive proxy, and through the
    /// one that closes every connection: what a new connection adds to any
    /// receiver's wall.
    pub send_floor_kept_open_ms: f64,
    pub send_floor_reconnect_ms: f64,
    pub functions: BTreeMap<String, Figures>,
    pub processors: BTreeMap<String, ProcessorFigures>,
    pub matrix: Vec<matrix::Cell>,
    pub zipped_mb: BTreeMap<String, f64>,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // Not available_parallelism: under `taskset` that is the bench's share.
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    format!("{cores} × {cpu}")
}

impl Report {
    pub fn print(&self) {
        let f = |k: &str| self.functions.get(k).cloned().unwrap_or_default();
        let (rr, pr, rn, pn) = (
            f("rust_receiver"),
            f("python_receiver"),
            f("rust_noop"),
            f("python_noop"),
        );
        let (rp, pp) = (f("rust_processor"), f("python_processor"));
        let p = |k: &str| self.processors.get(k);
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        println!(
            "machine: {}; {} warm invocations per function, batches of {}; {}",
            self.machine,
            self.invocations,
            self.batch,
            match self.function_cpu {
                Some(cpu) => format!("each function alone on CPU {cpu}, moto and the bench on the others"),
                None => "functions, moto and the bench sharing the CPUs".into(),
            }
        );
        println!(
            "moto SendMessage from the bench (the floor under a receiver's warm wall): {:.2} ms",
            self.send_floor_ms
        );
        if self.send_floor_reconnect_ms > 0.0 {
            println!(
                "the same through the functions' proxy: {:.2} ms with the connection kept open, {:.2} ms with a new connection per request",
                self.send_floor_kept_open_ms, self.send_floor_reconnect_ms
            );
        }
        println!();
        println!("| figure | Python/Powertools | jobhook | ratio | goal |");
        println!("|---|---|---|---|---|");
        let row = |name: &str, py: f64, rs: f64, unit: &str, goal: &str| {
            let r = ratio(rs, py);
            let r = if r.is_finite() { format!("{r:.2}") } else { "–".into() };
            let unit = if unit.is_empty() {
                String::new()
            } else {
                format!(" {unit}")
            };
            println!("| {name} | {py:.2}{unit} | {rs:.2}{unit} | {r} | {goal} |");
        };
        row(
            "P1 receiver init (spawn → first /next)",
            pr.init_ms,
            rr.init_ms,
            "ms",
            "≤ 0.10",
        );
        let (py_cpu, rs_cpu) = (
            pr.cpu_us_per_invocation - pn.cpu_us_per_invocation,
            rr.cpu_us_per_invocation - rn.cpu_us_per_invocation,
        );
        row(
            "P2 receiver CPU per invocation above the do-nothing floor (median)",
            py_cpu,
            rs_cpu,
            "µs",
            "≤ 0.10",
        );
        row(
            "receiver CPU per invocation above the floor (mean)",
            pr.cpu_us_mean - pn.cpu_us_mean,
            rr.cpu_us_mean - rn.cpu_us_mean,
            "µs",
            "",
        );
        row(
            "P2w receiver warm wall per invocation (median)",
            pr.warm_wall_ms,
            rr.warm_wall_ms,
            "ms",
            "≤ 0.80",
        );
        let (rc, pc) = (f("rust_receiver_reconnect"), f("python_receiver_reconnect"));
        row(
            "P2w receiver warm wall, a new connection per request (median)",
            pc.warm_wall_ms,
            rc.warm_wall_ms,
            "ms",
            "≤ 0.80",
        );
        row(
            "receiver CPU per invocation above the floor, a new connection per request (median)",
            pc.cpu_us_per_invocation - pn.cpu_us_per_invocation,
            rc.cpu_us_per_invocation - rn.cpu_us_per_invocation,
            "µs",
            "",
        );
        row(
            "receiver first invocation wall",
            pr.first_wall_ms,
            rr.first_wall_ms,
            "ms",
            "",
        );
        if let (Some(r), Some(py)) = (p("rust_processor"), p("python_processor")) {
            row(
                "P3 DynamoDB writes per new in-order event",
                py.writes_per_new_event,
                r.writes_per_new_event,
                "",
                "≤ 1.1 (jobhook)",
            );
            row(
                "P3 DynamoDB reads per new event",
                py.reads_per_new_event,
                r.reads_per_new_event,
                "",
                "0 (jobhook)",
            );
            row(
                "P3 DynamoDB writes per duplicate",
                py.writes_per_duplicate,
                r.writes_per_duplicate,
                "",
                "≤ 1.0 (jobhook)",
            );
            row(
                "P3 DynamoDB reads per duplicate",
                py.reads_per_duplicate,
                r.reads_per_duplicate,
                "",
                "",
            );
            row(
                "P6 processor CPU per event (median batch / batch size)",
                py.cpu_us_per_event,
                r.cpu_us_per_event,
                "µs",
                "≤ 0.15",
            );
        }
        row(
            "processor warm wall per batch (median)",
            pp.warm_wall_ms,
            rp.warm_wall_ms,
            "ms",
            "",
        );
        row("P7 receiver peak RSS", pr.peak_rss_mb, rr.peak_rss_mb, "MB", "≤ 0.25");
        row("P7 processor peak RSS", pp.peak_rss_mb, rp.peak_rss_mb, "MB", "≤ 0.25");
        println!(
            "floors: do-nothing CPU per invocation (median) {:.0} µs (Python), {:.0} µs (Rust); init {:.1} ms (Python), {:.1} ms (Rust)",
            pn.cpu_us_per_invocation, rn.cpu_us_per_invocation, pn.init_ms, rn.init_ms
        );
        if !self.zipped_mb.is_empty() {
            let sizes: Vec<String> = self.zipped_mb.iter().map(|(k, v)| format!("{k} {v:.2} MB")).collect();
            println!("P5 zipped arm64 bootstraps (goal ≤ 2.5 MB each): {}", sizes.join(", "));
        }
        let failed: usize = self.functions.values().map(|f| f.failed).sum();
        if failed > 0 {
            println!("WARNING: {failed} invocations failed; see target/bench/*.log");
        }
        matrix::print(&self.matrix);
    }
}
