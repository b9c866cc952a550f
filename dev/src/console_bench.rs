//! `jobhook-dev console-bench`: the `jobhook console` binary against a table
//! of many jobs in moto, each page timed from outside over HTTP. The jobs'
//! activity is spread over 30 days, as a month of traffic would leave it, so
//! the overview's window (a day) holds a thirtieth of them; every job has a
//! two-entry timeline.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use jobhook::adapters::dynamodb::{job_pk, open_pk, StateItem, EVENT_SK_PREFIX, STATE_SK};
use jobhook::clock::rfc3339;
use jobhook::domain::job::{JobStatus, Origin};
use time::OffsetDateTime;

use crate::Error;

pub const SOURCES: [&str; 3] = ["dev", "replicate", "opusclip"];

/// Every page timed, by name and path.
#[derive(Debug)]
pub struct PageTiming {
    pub page: String,
    pub path: String,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub bytes: usize,
}

/// The status of job `i`: most end, a few stay open, some fail.
fn status_of(i: usize) -> JobStatus {
    match i % 20 {
        0 => JobStatus::Processing,
        1 => JobStatus::Submitted,
        2 | 3 => JobStatus::Failed,
        4 => JobStatus::Canceled,
        _ => JobStatus::Completed,
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// `jobs` jobs over [`SOURCES`], their latest activity spread evenly over
/// the 30 days before `now`, each with a timeline of two entries.
pub async fn seed(ddb: &aws_sdk_dynamodb::Client, table: &str, jobs: usize, now: OffsetDateTime) -> Result<(), Error> {
    let month_ms = 30 * 86_400_000i64;
    let mut writes: Vec<WriteRequest> = Vec::with_capacity(jobs * 3);
    for i in 0..jobs {
        let source = SOURCES[i % SOURCES.len()];
        let job_id = format!("job-{i:06}");
        let status = status_of(i);
        let updated = now - Duration::from_millis((month_ms * i as i64 / jobs as i64) as u64);
        let first = updated - Duration::from_secs(90);
        let open = !status.is_terminal();
        let state = StateItem {
            pk: job_pk(source, &job_id),
            sk: STATE_SK.into(),
            source: source.into(),
            job_id: job_id.clone(),
            status,
            rank: status.rank(),
            progress: open.then_some(40),
            output_url: (status == JobStatus::Completed).then(|| format!("https://cdn.example.com/{job_id}.mp4")),
            error: (status == JobStatus::Failed).then(|| "the provider ran out of memory".into()),
            result: None,
            provider_time: None,
            first_seen: rfc3339(first),
            updated_at: rfc3339(updated),
            transitions: 2,
            last_event_id: Some(format!("{job_id}-2")),
            last_origin: Some(Origin::Webhook),
            terminal_origin: status
                .is_terminal()
                .then_some(if i % 7 == 0 { Origin::Poll } else { Origin::Webhook }),
            abandoned_at: None,
            open_pk: open.then(|| open_pk(source)),
            next_poll_at: open.then(|| (updated.unix_timestamp_nanos() / 1_000_000) as i64 + 600_000),
            last_activity: open.then(|| (updated.unix_timestamp_nanos() / 1_000_000) as i64),
            poll_misses: None,
            kept_outputs: None,
            outputs_lost: None,
        };
        writes.push(put(serde_dynamo::to_item(state)?));
        for (n, (at, st)) in [(first, JobStatus::Processing), (updated, status)]
            .into_iter()
            .enumerate()
        {
            let event_id = format!("{job_id}-{}", n + 1);
            let entry: HashMap<String, AttributeValue> = [
                ("pk", s(job_pk(source, &job_id))),
                ("sk", s(format!("{EVENT_SK_PREFIX}{event_id}"))),
                ("event_id", s(&event_id)),
                ("outcome", s("applied")),
                ("kind", s(format!("job.{st}"))),
                ("origin", s("webhook")),
                ("status", s(st.as_str())),
                ("received_at", s(rfc3339(at))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            writes.push(put(entry));
        }
    }
    for chunk in writes.chunks(25) {
        let mut pending = HashMap::from([(table.to_owned(), chunk.to_vec())]);
        while !pending.is_empty() {
            let out = ddb.batch_write_item().set_request_items(Some(pending)).send().await?;
            pending = out.unprocessed_items.unwrap_or_default();
            pending.retain(|_, v| !v.is_empty());
        }
    }
    Ok(())
}

fn put(item: HashMap<String, AttributeValue>) -> WriteRequest {
    WriteRequest::builder()
        .put_request(PutRequest::builder().set_item(Some(item)).build().expect("an item"))
        .build()
}

/// The table's own calls behind the pages, timed straight from here: the
/// median milliseconds of `runs` of each.
pub async fn time_calls(
    aws: &aws_config::SdkConfig,
    table: &str,
    runs: usize,
) -> Result<Vec<(&'static str, f64)>, Error> {
    use jobhook::ports::{JobActivity, JobQuery};
    let store = jobhook::bootstrap::job_store(
        aws,
        table,
        Duration::from_secs(86_400),
        Duration::from_secs(600),
        std::sync::Arc::new(jobhook::clock::SystemClock),
    );
    let mut out = Vec::new();
    macro_rules! timed {
        ($name:expr, $call:expr) => {{
            let mut samples = Vec::with_capacity(runs);
            for _ in 0..runs {
                let started = Instant::now();
                $call.await.map_err(|e| format!("{}: {e}", $name))?;
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            samples.sort_by(f64::total_cmp);
            out.push(($name, samples[samples.len() / 2]));
        }};
    }
    timed!("GetItem (a job's state)", store.get("dev", "job-000030"));
    timed!("Query, table (a job's timeline)", store.timeline("dev", "job-000030"));
    timed!(
        "Query, jobs-by-activity (50 entries)",
        store.recent("dev", None, None, 50)
    );
    timed!("Query, open-jobs (due times, one source)", store.open_counts("dev", 0));
    Ok(out)
}

/// Starts `jobhook console` on `port` and times each page `runs` times.
pub async fn time_pages(
    jobhook: &Path,
    table: &str,
    dlq_url: &str,
    queue_url: &str,
    port: u16,
    runs: usize,
) -> Result<Vec<PageTiming>, Error> {
    let mut command = tokio::process::Command::new(jobhook);
    command
        .args(["console", "--port", &port.to_string(), "--table", table])
        .args(["--dlq-url", dlq_url, "--queue-url", queue_url])
        .args(SOURCES.iter().flat_map(|s| ["--source", s]))
        .env_remove("JOBHOOK_SOURCES_FILE")
        .env_remove("JOBHOOK_SOURCES_SECRET")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let timed = time_at(&format!("http://127.0.0.1:{port}"), runs).await;
    let _ = child.kill().await;
    timed
}

/// The same pages of a console served in this process over the in-memory
/// store, seeded with the same jobs through its apply: the console's own
/// work, without moto's.
pub async fn time_pages_in_memory(
    aws: &aws_config::SdkConfig,
    jobs: usize,
    dlq_url: &str,
    queue_url: &str,
    runs: usize,
) -> Result<Vec<PageTiming>, Error> {
    use jobhook::ports::JobStore;
    let store = std::sync::Arc::new(jobhook::adapters::memory::InMemoryJobStore::new(std::sync::Arc::new(
        jobhook::clock::SystemClock,
    )));
    for i in 0..jobs {
        let source = SOURCES[i % SOURCES.len()];
        let job_id = format!("job-{i:06}");
        for (n, status) in [JobStatus::Processing, status_of(i)].into_iter().enumerate() {
            let event = jobhook::domain::job::JobEvent {
                event_id: format!("{job_id}-{}", n + 1),
                source: source.into(),
                job_id: job_id.clone(),
                kind: format!("job.{status}"),
                origin: Origin::Webhook,
                status,
                progress: None,
                output_url: None,
                error: None,
                result: None,
                provider_time: None,
                archive: None,
            };
            store.apply(&event).await?;
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bound = listener.local_addr()?;
    let settings = jobhook_cli::console::ConsoleSettings {
        table: "in-memory".into(),
        queue_url: Some(queue_url.into()),
        dlq_url: Some(dlq_url.into()),
        outputs_dlq_url: None,
        sources: None,
        source_names: SOURCES.iter().map(|s| s.to_string()).collect(),
        window: Duration::from_secs(86_400),
        overdue_after: Duration::from_secs(600),
    };
    let console = std::sync::Arc::new(jobhook_cli::console::Console::new(store, aws, settings, bound));
    let server = tokio::spawn(async move { axum::serve(listener, jobhook_cli::console::router(console)).await });
    let timed = time_at(&format!("http://{bound}"), runs).await;
    server.abort();
    timed
}

async fn time_at(base: &str, runs: usize) -> Result<Vec<PageTiming>, Error> {
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/static/console.css")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !up {
        return Err("the console did not start".into());
    }
    let pages = [
        ("overview", "/".to_owned()),
        ("jobs (all sources)", "/jobs".to_owned()),
        ("jobs (one source, failed)", "/jobs?source=dev&status=failed".to_owned()),
        ("jobs (id prefix)", "/jobs?source=replicate&q=job-0001".to_owned()),
        ("jobs (page 2)", String::new()),
        ("job", "/jobs/dev/job-000030".to_owned()),
        ("dead letters", "/dlq".to_owned()),
    ];
    let mut timings = Vec::new();
    let mut second_page = String::new();
    for (page, path) in pages {
        let path = if path.is_empty() { second_page.clone() } else { path };
        let mut samples = Vec::with_capacity(runs);
        let mut bytes = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let answer = http.get(format!("{base}{path}")).send().await?;
            let status = answer.status();
            let body = answer.text().await?;
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
            if !status.is_success() {
                return Err(format!("{path}: HTTP {status}").into());
            }
            bytes = body.len();
            if page == "jobs (all sources)" {
                if let Some(at) = body.find("id=\"next\" href=\"") {
                    let rest = &body[at + 16..];
                    second_page = rest[..rest.find('"').unwrap_or(0)].replace("&amp;", "&");
                }
            }
        }
        samples.sort_by(f64::total_cmp);
        timings.push(PageTiming {
            page: page.to_owned(),
            path,
            median_ms: samples[samples.len() / 2],
            p90_ms: samples[(samples.len() * 9 / 10).min(samples.len() - 1)],
            bytes,
        });
    }
    Ok(timings)
}
