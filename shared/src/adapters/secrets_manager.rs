use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use super::sdk_port_error;
use crate::ports::{PortError, SourcesLoader};

/// Reads the sources document from a Secrets Manager secret string.
#[derive(Debug, Clone)]
pub struct SecretsManagerSources {
    client: Client,
    secret_id: String,
}

impl SecretsManagerSources {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl SourcesLoader for SecretsManagerSources {
    async fn load(&self) -> Result<String, PortError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| sdk_port_error("secretsmanager:GetSecretValue", e))?;
        out.secret_string.ok_or_else(|| {
            PortError::permanent(
                "secretsmanager:GetSecretValue",
                format!("secret {} has no string value", self.secret_id),
            )
        })
    }

    fn location(&self) -> String {
        format!("Secrets Manager secret {}", self.secret_id)
    }
}
