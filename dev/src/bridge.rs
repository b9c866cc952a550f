//! The triggers no local tool emulates: the SQS event source mapping (long
//! poll, invoke `processor` with a real `SqsEvent`, delete what did not fail)
//! and the reconciler's schedule. Both invoke the functions through the
//! cargo-lambda emulator's Lambda invoke API.

use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use jobhook::adapters::sqs::delete_entries;
use serde_json::{json, Map, Value};

use jobhook_dev::seed::Error;

#[derive(Debug, Clone)]
pub struct Bridge {
    pub sqs: aws_sdk_sqs::Client,
    pub http: reqwest::Client,
    /// e.g. `http://127.0.0.1:9000`
    pub emulator: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
}

fn invoke_url(emulator: &str, function: &str) -> String {
    format!("{emulator}/2015-03-31/functions/{function}/invocations")
}

/// One SQS message in the shape Lambda hands to an SQS-triggered function.
fn record(message: &Message, queue_arn: &str, region: &str) -> Value {
    let attributes: Map<String, Value> = message
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    let message_attributes: Map<String, Value> = message
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(name, a)| {
                    (
                        name.clone(),
                        json!({"stringValue": a.string_value(), "stringListValues": [],
                        "binaryListValues": [], "dataType": a.data_type()}),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    })
}

impl Bridge {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, Error> {
        let response = self
            .http
            .post(invoke_url(&self.emulator, function))
            .header("content-type", "application/json")
            .body(payload.to_string())
            .send()
            .await?;
        let failed = response.headers().contains_key("x-amz-function-error") || !response.status().is_success();
        let body: Value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        if failed {
            return Err(format!("{function} failed: {body}").into());
        }
        Ok(body)
    }

    /// One long poll and, if messages came, one processor invocation.
    /// Returns how many messages were received and deleted.
    pub async fn pump_once(&self) -> Result<(usize, usize), Error> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok((0, 0));
        }
        let event =
            json!({"Records": messages.iter().map(|m| record(m, &self.queue_arn, &self.region)).collect::<Vec<_>>()});
        let began = std::time::Instant::now();
        let response = self.invoke("processor", &event).await;
        if std::env::var_os("JOBHOOK_DEV_TRACE").is_some() {
            eprintln!(
                "processor: {} messages in {} ms",
                messages.len(),
                began.elapsed().as_millis()
            );
        }
        let response = match response {
            Ok(response) => response,
            // As on AWS: a failed invocation deletes nothing; every message
            // comes back after the visibility timeout.
            Err(error) => {
                eprintln!("bridge: {error}");
                return Ok((messages.len(), 0));
            }
        };
        let failed: Vec<&str> = response["batchItemFailures"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str()).collect())
            .unwrap_or_default();
        let entries = delete_entries(
            messages
                .iter()
                .filter(|m| !failed.contains(&m.message_id().unwrap_or_default())),
        );
        let deleted = entries.len();
        if !entries.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        Ok((messages.len(), deleted))
    }

    /// The event source mapping with `pollers` concurrent pollers (AWS runs
    /// several too), until the process is stopped.
    pub async fn run_queue(&self, pollers: usize) {
        let poller = || async {
            loop {
                if let Err(error) = self.pump_once().await {
                    eprintln!("bridge: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        futures::future::join_all((0..pollers.max(1)).map(|_| poller())).await;
    }

    /// The stream event source mapping: the table's stream, read from its
    /// start, to `notifier`, with the template's filter (state items that
    /// have had a transition), re-reading from a record it reports failed,
    /// and giving up on a batch after the template's 10 retries (on AWS the
    /// failure destination then gets it).
    pub async fn run_stream(&self, streams: aws_sdk_dynamodbstreams::Client, stream_arn: String) {
        const MAX_RETRIES: u32 = 10;
        let mut reader = loop {
            match jobhook_dev::streams::StreamReader::open(streams.clone(), &stream_arn).await {
                Ok(reader) => break reader,
                Err(error) => {
                    eprintln!("stream: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut retries = 0;
        loop {
            let (shard, records) = match reader.next_batch(100).await {
                Ok(batch) => batch,
                Err(error) => {
                    eprintln!("stream: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if records.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let shaped: Vec<Value> = records
                .iter()
                .map(|r| jobhook_dev::streams::lambda_record(r, &stream_arn, &self.region))
                .filter(passes_notifier_filter)
                .collect();
            if shaped.is_empty() {
                continue;
            }
            let failed_at = match self.invoke("notifier", &json!({ "Records": shaped })).await {
                Ok(response) => response["batchItemFailures"][0]["itemIdentifier"]
                    .as_str()
                    .map(str::to_owned),
                // A failed invocation retries the whole batch.
                Err(error) => {
                    eprintln!("stream: {error}");
                    shaped[0]["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned)
                }
            };
            match failed_at {
                None => retries = 0,
                Some(_) if retries >= MAX_RETRIES => {
                    eprintln!(
                        "stream: gave up on a batch after {MAX_RETRIES} retries (on AWS: the failure destination)"
                    );
                    retries = 0;
                }
                Some(sequence) => {
                    retries += 1;
                    if let Err(error) = reader.retry_from(&shard, &sequence).await {
                        eprintln!("stream: {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(retries))).await;
                }
            }
        }
    }

    /// The schedule: a scheduled event for `reconciler` every `every`.
    pub async fn run_schedule(&self, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = jobhook::clock::rfc3339(time::OffsetDateTime::now_utc());
            let event = json!({"version": "0", "id": format!("dev-{now}"), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "123456789012", "time": now, "region": self.region,
                "resources": ["arn:aws:events:us-east-1:123456789012:rule/jobhook-dev-reconcile"], "detail": {}});
            match self.invoke("reconciler", &event).await {
                Ok(summary) if summary["candidates"].as_u64().unwrap_or(0) > 0 => println!("reconciler: {summary}"),
                Ok(_) => {}
                Err(error) => eprintln!("schedule: {error}"),
            }
        }
    }
}

/// The line that says a function could not start, if the emulator's log has
/// one: the function's own `cannot start` line, or else the emulator's note
/// that the process exited, with the lines before it.
pub fn start_failure(log: &str) -> Option<String> {
    if let Some(line) = log.lines().find(|l| l.contains("cannot start:")) {
        return Some(line.trim().to_owned());
    }
    let lines: Vec<&str> = log.lines().collect();
    let exited = lines.iter().position(|l| l.contains("command exited code="))?;
    Some(lines[exited.saturating_sub(5)..=exited].join("\n"))
}

/// The template's `FilterCriteria` for the notifier: state items whose new
/// image has had a transition (template.yaml, NotifierFunction).
fn passes_notifier_filter(record: &Value) -> bool {
    let change = &record["dynamodb"];
    change["Keys"]["sk"]["S"] == jobhook::adapters::dynamodb::STATE_SK
        && change["NewImage"]["transitions"]["N"]
            .as_str()
            .is_some_and(|n| n != "0")
}

/// Waits until the emulator runs each function: the first invocation of a
/// function builds and starts it. Gives up at once when `log` (the
/// emulator's output) shows a function that cannot start: an invocation of
/// such a function would only hang until the timeout.
pub async fn warm(emulator: &str, timeout: Duration, log: Option<&std::path::Path>) -> Result<(), Error> {
    let watch_log = async {
        let Some(path) = log else {
            return std::future::pending().await;
        };
        loop {
            if let Some(line) = std::fs::read_to_string(path).ok().and_then(|t| start_failure(&t)) {
                return line;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::select! {
        result = invoke_each(emulator, timeout) => result,
        line = watch_log => Err(format!("a function did not start: {line}").into()),
    }
}

async fn invoke_each(emulator: &str, timeout: Duration) -> Result<(), Error> {
    let http = reqwest::Client::builder().timeout(timeout).build()?;
    let deadline = std::time::Instant::now() + timeout;
    let checks: [(&str, reqwest::Method, String, String); 4] = [
        (
            "processor",
            reqwest::Method::POST,
            invoke_url(emulator, "processor"),
            json!({"Records": []}).to_string(),
        ),
        (
            "reconciler",
            reqwest::Method::POST,
            invoke_url(emulator, "reconciler"),
            json!({"detail": {}}).to_string(),
        ),
        (
            "notifier",
            reqwest::Method::POST,
            invoke_url(emulator, "notifier"),
            json!({"Records": []}).to_string(),
        ),
        // A GET is answered 405 by the receiver itself once it runs.
        (
            "receiver",
            reqwest::Method::GET,
            format!("{emulator}/lambda-url/receiver/webhooks/warm-up"),
            String::new(),
        ),
    ];
    for (name, method, url, body) in checks {
        loop {
            let result = http
                .request(method.clone(), &url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(r) if r.status().as_u16() < 500 && !r.headers().contains_key("x-amz-function-error") => break,
                Ok(r) if std::time::Instant::now() > deadline => {
                    return Err(format!(
                        "{name} did not start: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    )
                    .into())
                }
                Err(e) if std::time::Instant::now() > deadline => {
                    return Err(format!("{name} did not start: {e}").into())
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        println!("{name} is up");
    }
    Ok(())
}
