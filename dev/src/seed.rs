//! What a template cannot hold: the secret *values* a user puts into the
//! deployed stack's secrets (`scripts/deploy_local.py` deploys the rest).

use serde_json::Value;

pub use crate::Error;

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

/// The queue URL of a queue ARN (`arn:aws:sqs:region:account:name`).
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, arn: &str) -> Result<String, Error> {
    let name = crate::stack::arn_resource(arn);
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await?
        .queue_url
        .ok_or_else(|| format!("queue {name} has no URL").into())
}

/// Puts the sources document into the deployed stack's two secrets, as a
/// user does after `sam deploy`: the signing part into `sources_secret`
/// (every function), the provider API part into `api_secret`. `sim_url`
/// replaces the simulator marker (see [`point_at_simulator`]).
pub async fn seed(
    aws: &aws_config::SdkConfig,
    sources_text: &str,
    sim_url: Option<&str>,
    sources_secret: &str,
    api_secret: &str,
) -> Result<(), Error> {
    let mut doc: Value = serde_json::from_str(sources_text)?;
    if let Some(url) = sim_url {
        point_at_simulator(&mut doc, url);
    }
    let doc_text = doc.to_string();
    // Refuse a document the functions would refuse, before starting them.
    jobhook::Sources::parse(&doc_text)?;
    let (signing_text, api_text) = jobhook::domain::sources::split_api_document(&doc_text)?;
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    for (id, text) in [(sources_secret, signing_text), (api_secret, api_text)] {
        secrets
            .put_secret_value()
            .secret_id(id)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| format!("secret {id}: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(e)))?;
    }
    Ok(())
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
