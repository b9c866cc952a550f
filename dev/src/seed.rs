//! Creates the local stack's queue, DLQ, table and sources secret on moto,
//! as the SAM template does on AWS.

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

pub const QUEUE: &str = "jobhook-dev-events";
pub const DLQ: &str = "jobhook-dev-dlq";
pub const TABLE: &str = "jobhook-dev-jobs";
pub const SECRET: &str = "jobhook-dev-sources";
pub const API_SECRET: &str = "jobhook-dev-api";
pub const EVENT_BUS: &str = "jobhook-dev-bus";

#[derive(Debug)]
pub struct Seeded {
    pub queue_url: String,
    pub dlq_url: String,
    pub table: String,
    pub secret: String,
    pub api_secret: String,
    pub event_bus: String,
}

pub use crate::Error;

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

/// The host that marks a source's `api.base_url` as "the provider
/// simulator": a reserved name that never resolves (RFC 2606), so the
/// document stays valid everywhere and fails loudly outside the local stack.
pub const SIMULATOR_HOST: &str = "simulator.invalid";

/// Points every source whose `api.base_url` names [`SIMULATOR_HOST`] at
/// `sim_url`, keeping its path (each provider's API has its own prefix);
/// every other `base_url` is kept as given (a staging API, your own mock).
/// Returns how many sources were pointed at the simulator.
pub fn point_at_simulator(doc: &mut Value, sim_url: &str) -> usize {
    let Some(Value::Object(sources)) = doc.get_mut("sources") else {
        return 0;
    };
    let mut pointed = 0;
    for source in sources.values_mut() {
        let Some(base) = source.pointer_mut("/api/base_url") else {
            continue;
        };
        let Some(rest) = base.as_str().and_then(|url| url.split("://").nth(1)) else {
            continue;
        };
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let host = rest[..authority_end].split(':').next().unwrap_or_default();
        if host == SIMULATOR_HOST {
            let path = &rest[authority_end..];
            *base = Value::String(format!("{}{path}", sim_url.trim_end_matches('/')));
            pointed += 1;
        }
    }
    pointed
}

/// Seeds moto as the template provisions AWS; `sim_url` replaces the
/// simulator marker in the sources (see [`point_at_simulator`]).
pub async fn seed(
    aws: &aws_config::SdkConfig,
    sources_text: &str,
    sim_url: Option<&str>,
    visibility_timeout_secs: u32,
) -> Result<Seeded, Error> {
    let mut doc: Value = serde_json::from_str(sources_text)?;
    if let Some(url) = sim_url {
        point_at_simulator(&mut doc, url);
    }
    let doc_text = doc.to_string();
    // Refuse a document the functions would refuse, before starting them.
    jobhook::Sources::parse(&doc_text)?;
    // Two secrets, as on AWS: the signing one (all functions) and the
    // provider API one (the reconciler).
    let (signing_text, api_text) = jobhook::domain::sources::split_api_document(&doc_text)?;

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

    aws_sdk_eventbridge::Client::new(aws)
        .create_event_bus()
        .name(EVENT_BUS)
        .send()
        .await?;
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    for (name, text) in [(SECRET, signing_text), (API_SECRET, api_text)] {
        secrets.create_secret().name(name).secret_string(text).send().await?;
    }
    Ok(Seeded {
        queue_url,
        dlq_url,
        table: TABLE.into(),
        secret: SECRET.into(),
        api_secret: API_SECRET.into(),
        event_bus: EVENT_BUS.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_marked_for_the_simulator_are_pointed_at_it() {
        let mut doc = serde_json::json!({"sources": {
            "sim": {"scheme": "github", "secrets": ["s"], "api": {"base_url": "http://simulator.invalid", "token": "t"}},
            "sim2": {"scheme": "github", "secrets": ["s"], "api": {"base_url": "https://simulator.invalid:1/v1", "token": "t"}},
            "mine": {"scheme": "github", "secrets": ["s"], "api": {"base_url": "http://127.0.0.1:4567/v1", "token": "t"}},
            "lookalike": {"scheme": "github", "secrets": ["s"], "api": {"base_url": "http://simulator.invalid.example.com", "token": "t"}},
            "none": {"scheme": "github", "secrets": ["s"]}}});
        assert_eq!(point_at_simulator(&mut doc, "http://127.0.0.1:9001"), 2);
        let base = |name: &str| doc["sources"][name]["api"]["base_url"].clone();
        assert_eq!(base("sim"), "http://127.0.0.1:9001");
        assert_eq!(base("sim2"), "http://127.0.0.1:9001/v1", "the path is kept");
        assert_eq!(base("mine"), "http://127.0.0.1:4567/v1", "kept as given");
        assert_eq!(base("lookalike"), "http://simulator.invalid.example.com");
        assert!(doc["sources"]["none"].get("api").is_none(), "no api stays no api");
    }
}
