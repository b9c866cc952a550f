//! Single resources of `template.yaml`, created on their own under a name
//! of the caller's: the integration tests' and the bench's tables and
//! queues. One description of the infrastructure, the template; a property
//! this module does not know is an error, so a new one cannot be skipped.

use std::path::{Path, PathBuf};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml_ng::Value;

use crate::Error;

/// The workspace's `template.yaml`.
pub fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

#[derive(Debug, Clone)]
pub struct Template(Value);

impl Template {
    pub fn load() -> Result<Self, Error> {
        Self::read(&path())
    }

    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(
            serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
        ))
    }

    fn properties(&self, logical_id: &str, kind: &str) -> Result<&serde_yaml_ng::Mapping, Error> {
        let resource = &self.0["Resources"][logical_id];
        if resource["Type"].as_str() != Some(kind) {
            return Err(format!("template.yaml has no {kind} {logical_id}").into());
        }
        resource["Properties"]
            .as_mapping()
            .ok_or_else(|| format!("{logical_id} has no Properties").into())
    }

    /// A property value with `!Ref Parameter` replaced by the parameter's
    /// default, as a deploy with no overrides resolves it.
    fn resolve<'a>(&'a self, value: &'a Value) -> Result<&'a Value, Error> {
        match value {
            Value::Tagged(tagged) if tagged.tag == "Ref" => {
                let name = tagged.value.as_str().unwrap_or_default();
                let default = &self.0["Parameters"][name]["Default"];
                if default.is_null() {
                    return Err(format!("!Ref {name}: no parameter with a default").into());
                }
                Ok(default)
            }
            Value::Tagged(tagged) => Err(format!("!{} is not resolved here", tagged.tag).into()),
            other => Ok(other),
        }
    }

    fn text(&self, value: &Value) -> Result<String, Error> {
        match self.resolve(value)? {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("expected a scalar, not {other:?}").into()),
        }
    }

    /// Creates the template's queue `logical_id` as `name`. Its
    /// `RedrivePolicy` names another resource of the stack and is left out:
    /// a caller with a DLQ of its own sets the redrive itself.
    pub async fn create_queue(&self, sqs: &aws_sdk_sqs::Client, logical_id: &str, name: &str) -> Result<String, Error> {
        let mut request = sqs.create_queue().queue_name(name);
        for (key, value) in self.properties(logical_id, "AWS::SQS::Queue")? {
            let attribute = match key.as_str().unwrap_or_default() {
                "RedrivePolicy" => continue,
                "VisibilityTimeout" => QueueAttributeName::VisibilityTimeout,
                "MessageRetentionPeriod" => QueueAttributeName::MessageRetentionPeriod,
                "SqsManagedSseEnabled" => QueueAttributeName::SqsManagedSseEnabled,
                "DelaySeconds" => QueueAttributeName::DelaySeconds,
                "MaximumMessageSize" => QueueAttributeName::MaximumMessageSize,
                "ReceiveMessageWaitTimeSeconds" => QueueAttributeName::ReceiveMessageWaitTimeSeconds,
                other => return Err(format!("{logical_id}: the property {other} is not created here").into()),
            };
            request = request.attributes(attribute, self.text(value)?);
        }
        request
            .send()
            .await
            .map_err(|e| format!("create queue {name}: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?
            .queue_url
            .ok_or_else(|| format!("queue {name} has no URL").into())
    }

    /// Creates the template's table `logical_id` as `name`: keys, indexes,
    /// billing, stream and TTL. Deletion protection and point-in-time
    /// recovery are about keeping the table, not its shape, and are left out.
    pub async fn create_table(
        &self,
        dynamodb: &aws_sdk_dynamodb::Client,
        logical_id: &str,
        name: &str,
    ) -> Result<(), Error> {
        let properties = self.properties(logical_id, "AWS::DynamoDB::Table")?;
        let mut request = dynamodb.create_table().table_name(name);
        let mut ttl = None;
        for (key, value) in properties {
            request = match key.as_str().unwrap_or_default() {
                "DeletionProtectionEnabled" | "PointInTimeRecoverySpecification" => request,
                "BillingMode" => request.billing_mode(BillingMode::from(self.text(value)?.as_str())),
                "AttributeDefinitions" => {
                    let mut request = request;
                    for definition in sequence(value)? {
                        request = request.attribute_definitions(
                            AttributeDefinition::builder()
                                .attribute_name(self.text(&definition["AttributeName"])?)
                                .attribute_type(ScalarAttributeType::from(
                                    self.text(&definition["AttributeType"])?.as_str(),
                                ))
                                .build()?,
                        );
                    }
                    request
                }
                "KeySchema" => request.set_key_schema(Some(self.key_schema(value)?)),
                "GlobalSecondaryIndexes" => {
                    let mut request = request;
                    for index in sequence(value)? {
                        let projection = &index["Projection"];
                        request =
                            request.global_secondary_indexes(
                                GlobalSecondaryIndex::builder()
                                    .index_name(self.text(&index["IndexName"])?)
                                    .set_key_schema(Some(self.key_schema(&index["KeySchema"])?))
                                    .projection(
                                        Projection::builder()
                                            .projection_type(ProjectionType::from(
                                                self.text(&projection["ProjectionType"])?.as_str(),
                                            ))
                                            .set_non_key_attributes(sequence(&projection["NonKeyAttributes"]).ok().map(
                                                |a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                                            ))
                                            .build(),
                                    )
                                    .build()?,
                            );
                    }
                    request
                }
                "StreamSpecification" => request.stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(StreamViewType::from(self.text(&value["StreamViewType"])?.as_str()))
                        .build()?,
                ),
                "TimeToLiveSpecification" => {
                    ttl = Some(
                        TimeToLiveSpecification::builder()
                            .attribute_name(self.text(&value["AttributeName"])?)
                            .enabled(self.text(&value["Enabled"])? == "true")
                            .build()?,
                    );
                    request
                }
                other => return Err(format!("{logical_id}: the property {other} is not created here").into()),
            };
        }
        request.send().await.map_err(|e| {
            format!(
                "create table {name}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })?;
        if let Some(ttl) = ttl {
            dynamodb
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(ttl)
                .send()
                .await
                .map_err(|e| format!("table {name} TTL: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        }
        Ok(())
    }

    fn key_schema(&self, value: &Value) -> Result<Vec<KeySchemaElement>, Error> {
        sequence(value)?
            .iter()
            .map(|key| {
                Ok(KeySchemaElement::builder()
                    .attribute_name(self.text(&key["AttributeName"])?)
                    .key_type(KeyType::from(self.text(&key["KeyType"])?.as_str()))
                    .build()?)
            })
            .collect()
    }
}

fn sequence(value: &Value) -> Result<&Vec<Value>, Error> {
    value
        .as_sequence()
        .ok_or_else(|| format!("expected a list, not {value:?}").into())
}
