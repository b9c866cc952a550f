//! The DynamoDB stream → Lambda event source mapping, for the one trigger
//! moto does not run: read the table's stream (DescribeStream,
//! GetShardIterator, GetRecords, all implemented by moto) and shape the
//! records as the `DynamoDBEvent` Lambda hands a stream-triggered function.

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use serde_json::{json, Value};

use crate::Error;

/// An item in DynamoDB JSON (`{"status": {"S": "…"}}`), as Lambda events
/// carry it: serde_dynamo's item, the type the notifier reads them into.
fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    let item: serde_dynamo::Item = item.clone().into();
    serde_json::to_value(item).expect("an item serializes")
}

/// One stream record in the shape of a Lambda `DynamoDBEvent` record.
pub fn lambda_record(record: &Record, stream_arn: &str, region: &str) -> Value {
    let change = record.dynamodb();
    let mut dynamodb = json!({
        "SequenceNumber": change.and_then(|c| c.sequence_number()),
        "SizeBytes": change.and_then(|c| c.size_bytes()).unwrap_or(0),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(c) = change {
        for (name, item) in [
            ("Keys", c.keys()),
            ("NewImage", c.new_image()),
            ("OldImage", c.old_image()),
        ] {
            if let Some(item) = item {
                dynamodb[name] = item_json(item);
            }
        }
        if let Some(at) = c.approximate_creation_date_time() {
            dynamodb["ApproximateCreationDateTime"] = json!(at.secs());
        }
    }
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventVersion": record.event_version(),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    })
}

/// Reads a table's stream from its start, shard by shard, as an event
/// source mapping with `StartingPosition: TRIM_HORIZON` would.
#[derive(Debug)]
pub struct StreamReader {
    client: Client,
    stream_arn: String,
    /// Per shard, where to read next (None once the shard is closed and read).
    iterators: Vec<(String, Option<String>)>,
    /// When shards were last listed: new shards appear rarely, and listing
    /// them on every read would load the local moto for nothing.
    discovered_at: Option<std::time::Instant>,
}

impl StreamReader {
    pub async fn open(client: Client, stream_arn: &str) -> Result<Self, Error> {
        let mut reader = Self {
            client,
            stream_arn: stream_arn.to_owned(),
            iterators: Vec::new(),
            discovered_at: None,
        };
        reader.discover().await?;
        Ok(reader)
    }

    /// Picks up shards not seen yet (at most every few seconds).
    async fn discover(&mut self) -> Result<(), Error> {
        if self
            .discovered_at
            .is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(5))
        {
            return Ok(());
        }
        self.discovered_at = Some(std::time::Instant::now());
        let described = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await?;
        let shards = described
            .stream_description()
            .map(|d| d.shards().to_vec())
            .unwrap_or_default();
        for shard in shards {
            let Some(id) = shard.shard_id() else { continue };
            if self.iterators.iter().any(|(known, _)| known == id) {
                continue;
            }
            let iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await?
                .shard_iterator;
            self.iterators.push((id.to_owned(), iterator));
        }
        Ok(())
    }

    /// The next records of one shard with something new, at most `limit`,
    /// in order; empty when nothing is new.
    pub async fn next_batch(&mut self, limit: i32) -> Result<(String, Vec<Record>), Error> {
        self.discover().await?;
        for (shard, iterator) in self.iterators.iter_mut() {
            let Some(current) = iterator.clone() else { continue };
            let got = self
                .client
                .get_records()
                .shard_iterator(&current)
                .limit(limit)
                .send()
                .await?;
            *iterator = got.next_shard_iterator().map(str::to_owned);
            if !got.records().is_empty() {
                return Ok((shard.clone(), got.records().to_vec()));
            }
        }
        Ok((String::new(), Vec::new()))
    }

    /// Reads `shard` again from `sequence_number`, as the event source
    /// mapping does after a function reported that record failed.
    pub async fn retry_from(&mut self, shard: &str, sequence_number: &str) -> Result<(), Error> {
        let iterator = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(sequence_number)
            .send()
            .await?
            .shard_iterator;
        if let Some(entry) = self.iterators.iter_mut().find(|(id, _)| id == shard) {
            entry.1 = iterator;
        }
        Ok(())
    }
}
