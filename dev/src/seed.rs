//! Creates the local stack's queue, DLQ, table and sources secret on moto,
//! as the SAM template does on AWS.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

pub const QUEUE: &str = "jobhook-dev-events";
pub const DLQ: &str = "jobhook-dev-dlq";
pub const TABLE: &str = "jobhook-dev-jobs";
pub const SECRET: &str = "jobhook-dev-sources";

#[derive(Debug)]
pub struct Seeded {
    pub queue_url: String,
    pub dlq_url: String,
    pub table: String,
    pub secret: String,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, Error> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| format!("queue {url} has no ARN").into())
}

/// `sim_url`, when given, becomes the `api.base_url` of every source, so the
/// reconciler polls the provider simulator.
pub async fn seed(
    aws: &aws_config::SdkConfig,
    sources_text: &str,
    sim_url: Option<&str>,
    visibility_timeout_secs: u32,
) -> Result<Seeded, Error> {
    let mut doc: Value = serde_json::from_str(sources_text)?;
    if let Some(url) = sim_url {
        if let Some(Value::Object(sources)) = doc.get_mut("sources") {
            for source in sources.values_mut() {
                let token = source["api"]["token"].as_str().unwrap_or("dev-token").to_owned();
                source["api"] = serde_json::json!({"base_url": url, "token": token});
            }
        }
    }
    let doc_text = doc.to_string();
    // Refuse a document the functions would refuse, before starting them.
    jobhook::Sources::parse(&doc_text)?;

    let sqs = aws_sdk_sqs::Client::new(aws);
    let dlq_url = sqs
        .create_queue()
        .queue_name(DLQ)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await?
        .queue_url
        .ok_or("no DLQ url")?;
    let dlq_arn = queue_arn(&sqs, &dlq_url).await?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}).to_string();
    let attributes: HashMap<QueueAttributeName, String> = [
        (QueueAttributeName::RedrivePolicy, redrive),
        (
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        ),
    ]
    .into();
    let queue_url = sqs
        .create_queue()
        .queue_name(QUEUE)
        .set_attributes(Some(attributes))
        .send()
        .await?
        .queue_url
        .ok_or("no queue url")?;

    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    jobhook::adapters::dynamodb::create_table(&dynamodb, TABLE).await?;

    aws_sdk_secretsmanager::Client::new(aws)
        .create_secret()
        .name(SECRET)
        .secret_string(doc_text)
        .send()
        .await?;
    Ok(Seeded {
        queue_url,
        dlq_url,
        table: TABLE.into(),
        secret: SECRET.into(),
    })
}
