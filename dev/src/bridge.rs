//! The triggers no local tool emulates, run as the deployed stack declares
//! them (`stack.json`, read back from the deployed template): each SQS event
//! source mapping (long poll, invoke its function with a real `SqsEvent`,
//! delete what did not fail), each DynamoDB stream mapping (filter, batch,
//! retry, failure destination), and each schedule. Functions are invoked
//! through their cargo-lambda emulators' Lambda invoke API. The bridge plays
//! the Lambda service, so it signs with the tools' credentials, not a
//! function's.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use jobhook::adapters::sqs::delete_entries;
use serde_json::{json, Value};

use jobhook_dev::seed::Error;
use jobhook_dev::stack::{Deployed, Mapping};

#[derive(Debug, Clone)]
pub struct Bridge {
    pub sqs: aws_sdk_sqs::Client,
    pub http: reqwest::Client,
    /// Binary name → its emulator, e.g. `http://127.0.0.1:9000`.
    pub emulators: BTreeMap<String, String>,
    pub region: String,
}

/// One SQS event source mapping, resolved.
#[derive(Debug, Clone)]
pub struct QueueTrigger {
    pub mapping: Mapping,
    pub queue_url: String,
}

fn invoke_url(emulator: &str, function: &str) -> String {
    format!("{emulator}/2015-03-31/functions/{function}/invocations")
}

/// One SQS message in the shape Lambda hands to an SQS-triggered function:
/// aws_lambda_events' own type, the one the processor reads.
fn record(message: &Message, queue_arn: &str, region: &str) -> Value {
    use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
    let mut record = SqsMessage::default();
    record.message_id = message.message_id().map(str::to_owned);
    record.receipt_handle = message.receipt_handle().map(str::to_owned);
    record.body = message.body().map(str::to_owned);
    record.md5_of_body = message.md5_of_body().map(str::to_owned);
    record.attributes = message
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
        .unwrap_or_default();
    record.message_attributes = message
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(name, a)| {
                    let mut attribute = SqsMessageAttribute::default();
                    attribute.string_value = a.string_value().map(str::to_owned);
                    attribute.data_type = Some(a.data_type().to_owned());
                    (name.clone(), attribute)
                })
                .collect()
        })
        .unwrap_or_default();
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.aws_region = Some(region.to_owned());
    serde_json::to_value(record).expect("an SQS record serializes")
}

impl Bridge {
    fn emulator(&self, function: &str) -> Result<&str, Error> {
        self.emulators
            .get(function)
            .map(String::as_str)
            .ok_or_else(|| format!("no emulator runs {function}").into())
    }

    async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, Error> {
        let response = self
            .http
            .post(invoke_url(self.emulator(function)?, function))
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

    /// Receives one batch as the mapping would hand it over: up to its
    /// batch size, waiting up to its batching window for more than one
    /// receive's worth (ten messages).
    async fn receive_batch(&self, trigger: &QueueTrigger) -> Result<Vec<Message>, Error> {
        let batch_size = trigger.mapping.batch_size.unwrap_or(10).max(1) as usize;
        let window = Duration::from_secs(trigger.mapping.maximum_batching_window_in_seconds.unwrap_or(0));
        let began = std::time::Instant::now();
        let mut messages = Vec::new();
        loop {
            let wanted = (batch_size - messages.len()).min(10) as i32;
            let received = self
                .sqs
                .receive_message()
                .queue_url(&trigger.queue_url)
                .max_number_of_messages(wanted)
                .wait_time_seconds(if messages.is_empty() { 1 } else { 0 })
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await?;
            let got = received.messages.unwrap_or_default();
            let empty = got.is_empty();
            messages.extend(got);
            if messages.len() >= batch_size || (empty && !messages.is_empty()) || began.elapsed() >= window {
                return Ok(messages);
            }
            if empty {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// One batch and, if messages came, one invocation of the mapping's
    /// function. Returns how many messages were received and deleted.
    pub async fn pump_once(&self, trigger: &QueueTrigger) -> Result<(usize, usize), Error> {
        let function = trigger.mapping.function.as_str();
        let messages = self.receive_batch(trigger).await?;
        if messages.is_empty() {
            return Ok((0, 0));
        }
        let queue_arn = &trigger.mapping.event_source_arn;
        let event = json!({"Records": messages.iter().map(|m| record(m, queue_arn, &self.region)).collect::<Vec<_>>()});
        let began = std::time::Instant::now();
        let response = self.invoke(function, &event).await;
        if std::env::var_os("JOBHOOK_DEV_TRACE").is_some() {
            eprintln!(
                "{function}: {} messages in {} ms",
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
        let reported: Vec<&str> = response["batchItemFailures"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str()).collect())
            .unwrap_or_default();
        let failed = if trigger.mapping.reports_item_failures() {
            reported
        } else {
            if !reported.is_empty() {
                eprintln!(
                    "bridge: {function} reported {} failed messages, but its event source mapping has no \
                     ReportBatchItemFailures: as on AWS, the invocation succeeded, so the whole batch is deleted \
                     and those messages are lost",
                    reported.len()
                );
            }
            Vec::new()
        };
        let entries = delete_entries(
            messages
                .iter()
                .filter(|m| !failed.contains(&m.message_id().unwrap_or_default())),
        );
        let deleted = entries.len();
        if !entries.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&trigger.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        Ok((messages.len(), deleted))
    }

    /// The mapping with `pollers` concurrent pollers, at most its maximum
    /// concurrency (AWS runs several pollers too), until the process stops.
    pub async fn run_queue(&self, trigger: QueueTrigger, pollers: usize) {
        let limit = trigger
            .mapping
            .scaling_config
            .as_ref()
            .and_then(|c| c.maximum_concurrency)
            .unwrap_or(pollers);
        let trigger = &trigger;
        let poller = || async move {
            loop {
                if let Err(error) = self.pump_once(trigger).await {
                    eprintln!("bridge: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        futures::future::join_all((0..pollers.min(limit).max(1)).map(|_| poller())).await;
    }

    /// A DynamoDB stream mapping: the stream read from its start
    /// (`TRIM_HORIZON`, the only position the local reader has), records
    /// through the mapping's filters, in batches of its size, re-read from a
    /// record the function reports failed (when the mapping lets it report),
    /// and, after the mapping's retries, the batch given up to its failure
    /// destination as AWS does. Not emulated: `BisectBatchOnFunctionError`
    /// (a failed invocation retries the whole batch), the record age limit
    /// and parallelization.
    pub async fn run_stream(&self, streams: aws_sdk_dynamodbstreams::Client, mapping: Mapping) {
        let function = mapping.function.as_str();
        let stream_arn = mapping.event_source_arn.as_str();
        let max_retries = mapping.maximum_retry_attempts.unwrap_or(-1);
        let mut reader = loop {
            match jobhook_dev::streams::StreamReader::open(streams.clone(), stream_arn).await {
                Ok(reader) => break reader,
                Err(error) => {
                    eprintln!("stream: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let mut retries = 0;
        loop {
            let (shard, records) = match reader.next_batch(mapping.batch_size.unwrap_or(100) as i32).await {
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
            let mut shaped = Vec::new();
            for record in records
                .iter()
                .map(|r| jobhook_dev::streams::lambda_record(r, stream_arn, &self.region))
            {
                match mapping.passes(&record) {
                    Ok(true) => shaped.push(record),
                    Ok(false) => {}
                    Err(error) => {
                        eprintln!("stream: {error}");
                        return;
                    }
                }
            }
            if shaped.is_empty() {
                continue;
            }
            let first = shaped[0]["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned);
            let failed_at = match self.invoke(function, &json!({ "Records": shaped })).await {
                Ok(response) if mapping.reports_item_failures() => response["batchItemFailures"][0]["itemIdentifier"]
                    .as_str()
                    .map(str::to_owned),
                Ok(_) => None,
                // A failed invocation retries the whole batch.
                Err(error) => {
                    eprintln!("stream: {error}");
                    first.clone()
                }
            };
            match failed_at {
                None => retries = 0,
                Some(_) if max_retries >= 0 && retries >= max_retries => {
                    self.give_up(&mapping, &shard, &shaped).await;
                    retries = 0;
                }
                Some(sequence) => {
                    retries += 1;
                    if let Err(error) = reader.retry_from(&shard, &sequence).await {
                        eprintln!("stream: {error}");
                    }
                    tokio::time::sleep(Duration::from_millis(200 * retries.min(10) as u64)).await;
                }
            }
        }
    }

    /// After the mapping's last retry: a record of the batch to its
    /// on-failure destination (an SQS queue here), as Lambda sends one.
    async fn give_up(&self, mapping: &Mapping, shard: &str, batch: &[Value]) {
        let destination = mapping
            .destination_config
            .as_ref()
            .and_then(|d| d.on_failure.as_ref())
            .and_then(|f| f.destination.as_deref());
        let sequence = |i: usize| batch.get(i).and_then(|r| r["dynamodb"]["SequenceNumber"].as_str());
        eprintln!(
            "stream: {} gave up on {} records after {} retries; {}",
            mapping.function,
            batch.len(),
            mapping.maximum_retry_attempts.unwrap_or(-1),
            destination.map_or("no failure destination: they are dropped".to_owned(), |d| format!(
                "to {d}"
            ))
        );
        let Some(destination) = destination else { return };
        let body = json!({
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": mapping.maximum_retry_attempts.unwrap_or(0) + 1},
            "DDBStreamBatchInfo": {"shardId": shard, "startSequenceNumber": sequence(0),
                "endSequenceNumber": sequence(batch.len().saturating_sub(1)), "batchSize": batch.len(),
                "streamArn": mapping.event_source_arn},
        });
        let sent = match jobhook_dev::seed::queue_url(&self.sqs, destination).await {
            Ok(url) => self
                .sqs
                .send_message()
                .queue_url(url)
                .message_body(body.to_string())
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from),
            Err(error) => Err(error),
        };
        if let Err(error) = sent {
            eprintln!("stream: the failure destination {destination}: {error}");
        }
    }

    /// A schedule: a scheduled event for its function at its rate.
    pub async fn run_schedule(&self, schedule: jobhook_dev::stack::Schedule, every: Duration) {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = jobhook::clock::rfc3339(time::OffsetDateTime::now_utc());
            let event = json!({"version": "0", "id": format!("dev-{now}"), "detail-type": "Scheduled Event",
                "source": "aws.scheduler", "account": "123456789012", "time": now, "region": self.region,
                "resources": [format!("arn:aws:scheduler:{}:123456789012:schedule/default/{}", self.region, schedule.name)],
                "detail": {}});
            match self.invoke(&schedule.function, &event).await {
                Ok(summary) if summary["candidates"].as_u64().unwrap_or(0) > 0 => {
                    println!("{}: {summary}", schedule.function)
                }
                Ok(_) => {}
                Err(error) => eprintln!("schedule: {error}"),
            }
        }
    }
}

/// Runs every enabled event source mapping and schedule of the deployed
/// stack against the functions' emulators, until Ctrl-C. A mapping or
/// schedule the bridge cannot run as AWS would is an error at start.
pub async fn run_deployed(
    aws: &aws_config::SdkConfig,
    deployed: &Deployed,
    emulators: BTreeMap<String, String>,
    pollers: usize,
) -> Result<(), Error> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let bridge = Bridge {
        sqs: sqs.clone(),
        http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?,
        emulators,
        region: aws
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into()),
    };
    let mut tasks: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>> = Vec::new();
    for mapping in &deployed.event_source_mappings {
        if mapping.state.as_deref().is_some_and(|s| s != "Enabled") {
            println!(
                "bridge: {} -> {} is {:?}, not run",
                mapping.event_source_arn, mapping.function, mapping.state
            );
            continue;
        }
        match jobhook_dev::stack::arn_service(&mapping.event_source_arn) {
            "sqs" => {
                // Lambda deletes the messages a queue's filter drops; the
                // bridge does not emulate that, so it refuses rather than
                // pass them all.
                if mapping.filter_criteria.as_ref().is_some_and(|c| !c.filters.is_empty()) {
                    return Err(format!(
                        "{}: the local bridge does not filter SQS messages (FilterCriteria)",
                        mapping.function
                    )
                    .into());
                }
                let queue_url = jobhook_dev::seed::queue_url(&sqs, &mapping.event_source_arn).await?;
                let trigger = QueueTrigger {
                    mapping: mapping.clone(),
                    queue_url,
                };
                tasks.push(Box::pin(bridge.run_queue(trigger, pollers)));
            }
            "dynamodb" => {
                if mapping
                    .starting_position
                    .as_deref()
                    .is_some_and(|p| p != "TRIM_HORIZON")
                {
                    return Err(format!(
                        "{}: the local stream reader starts at TRIM_HORIZON only, not {:?}",
                        mapping.function, mapping.starting_position
                    )
                    .into());
                }
                tasks.push(Box::pin(
                    bridge.run_stream(aws_sdk_dynamodbstreams::Client::new(aws), mapping.clone()),
                ));
            }
            other => {
                return Err(format!(
                    "no local bridge for {other} event sources ({})",
                    mapping.event_source_arn
                )
                .into())
            }
        }
        println!("bridge: {} -> {}", mapping.event_source_arn, mapping.function);
    }
    for schedule in &deployed.schedules {
        let every = jobhook_dev::stack::schedule_period(&schedule.expression)?;
        println!(
            "bridge: {} -> {} every {} s",
            schedule.expression,
            schedule.function,
            every.as_secs()
        );
        tasks.push(Box::pin(bridge.run_schedule(schedule.clone(), every)));
    }
    tokio::select! {
        _ = futures::future::join_all(tasks) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
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

/// Waits until each function's emulator runs it: the first invocation of a
/// function builds and starts it. Gives up at once when one of `logs` (the
/// emulators' output) shows a function that cannot start: an invocation of
/// such a function would only hang until the timeout.
pub async fn warm(
    emulators: &BTreeMap<String, String>,
    timeout: Duration,
    logs: &[std::path::PathBuf],
) -> Result<(), Error> {
    let watch_logs = async {
        if logs.is_empty() {
            return std::future::pending().await;
        }
        loop {
            for path in logs {
                if let Some(line) = std::fs::read_to_string(path).ok().and_then(|t| start_failure(&t)) {
                    return format!("{line} (log: {})", path.display());
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::select! {
        result = invoke_each(emulators, timeout) => result,
        line = watch_logs => Err(format!("a function did not start: {line}").into()),
    }
}

/// The request that starts `function` without doing any work.
fn warm_up_request(function: &str, emulator: &str) -> (reqwest::Method, String, String) {
    let invoke = |payload: Value| {
        (
            reqwest::Method::POST,
            invoke_url(emulator, function),
            payload.to_string(),
        )
    };
    match function {
        // A GET is answered 405 by the receiver itself once it runs.
        "receiver" => (
            reqwest::Method::GET,
            format!("{emulator}/lambda-url/receiver/webhooks/warm-up"),
            String::new(),
        ),
        "reconciler" => invoke(json!({"detail": {}})),
        _ => invoke(json!({"Records": []})),
    }
}

async fn invoke_each(emulators: &BTreeMap<String, String>, timeout: Duration) -> Result<(), Error> {
    let http = reqwest::Client::builder().timeout(timeout).build()?;
    let deadline = std::time::Instant::now() + timeout;
    for (name, emulator) in emulators {
        let (method, url, body) = warm_up_request(name, emulator);
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
