//! `jobhook sign`: a correctly signed test delivery, like `stripe trigger`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use jobhook::domain::signature::sign::headers_for;

use crate::{write, CliError};

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The source whose scheme and first secret sign the delivery.
    pub source: String,
    /// The body to send, exactly as it will be sent.
    #[arg(long)]
    pub body: PathBuf,
    /// Print a ready curl command for this receiver URL (the source is appended
    /// when the URL ends in `/webhooks/`).
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub sources: crate::SourcesArgs,
    /// The delivery id, for schemes that carry one (default: a fresh one).
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Single-quotes `text` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub async fn run(args: SignArgs, aws: &aws_config::SdkConfig, out: &mut dyn Write) -> Result<(), CliError> {
    let sources = args.sources.load(aws).await?;
    let source = sources
        .get(&args.source)
        .ok_or_else(|| CliError::Failed(format!("no source {:?} in the sources document", args.source)))?;
    if source.keys.is_empty() {
        // A public key verifies; only the sender's private key signs.
        return Err(CliError::Failed(format!(
            "source {:?} lists only public keys (whpk_, or fal's): only the sender's private key signs for it",
            args.source
        )));
    }
    let body =
        std::fs::read(&args.body).map_err(|e| CliError::Failed(format!("body file {}: {e}", args.body.display())))?;
    let now = time::OffsetDateTime::now_utc();
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("msg_cli_{}", jobhook::clock::unix_ms(now)));
    let headers = headers_for(source, &id, now.unix_timestamp(), &body);

    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        return write(out, &serde_json::to_string_pretty(&map).expect("headers serialize"));
    }
    // An unsigned source's delivery carries its token in the URL, not a header.
    let url_token = (source.scheme == jobhook::Scheme::Unsigned)
        .then(|| String::from_utf8_lossy(source.keys[0].bytes()).into_owned());
    match &args.url {
        None if url_token.is_some() => write(
            out,
            "# no headers: an unsigned source's delivery carries its url_token as ?token=… (add --url for the curl command)",
        ),
        None => {
            for (name, value) in headers {
                write(out, &format!("{name}: {value}"))?;
            }
            Ok(())
        }
        Some(url) => {
            let mut url = if url.ends_with("/webhooks/") {
                format!("{url}{}", source.name)
            } else {
                url.clone()
            };
            if let Some(token) = url_token {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&format!("token={token}"));
            }
            let mut command = format!(
                "curl -sS -X POST {} -H 'content-type: application/json'",
                shell_quote(&url)
            );
            for (name, value) in headers {
                command.push_str(&format!(" -H {}", shell_quote(&format!("{name}: {value}"))));
            }
            command.push_str(&format!(
                " --data-binary @{}",
                shell_quote(&args.body.display().to_string())
            ));
            write(out, &command)
        }
    }
}
