//! `jobhook-dev`: the local pipeline's own parts. See `scripts/dev.sh` and
//! `scripts/demo.sh` for how they are put together.

mod bench;
mod bridge;
mod dialect;
mod outage;

mod simulator;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jobhook_dev::seed::{self, Error};

#[derive(Debug, Parser)]
#[command(name = "jobhook-dev", about = "Local pipeline tooling for jobhook")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the queue, DLQ, table and sources secret; write the functions' env file.
    Seed {
        #[arg(long)]
        sources_file: PathBuf,
        /// Point every source's `api.base_url` here (the provider simulator).
        #[arg(long)]
        sim_url: Option<String>,
        #[arg(long, default_value_t = 10)]
        visibility_timeout_secs: u32,
        /// KEY=VALUE lines for `cargo lambda watch --env-file`.
        #[arg(long)]
        env_out: PathBuf,
    },
    /// Run the SQS event source mapping and the reconciler schedule.
    Bridge {
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        emulator: String,
        #[arg(long, env = "JOBHOOK_QUEUE_URL")]
        queue_url: String,
        #[arg(long, env = "JOBHOOK_DEV_SCHEDULE_SECS", default_value_t = 10)]
        schedule_secs: u64,
        /// Concurrent queue pollers, each invoking the processor.
        #[arg(long, default_value_t = 4)]
        pollers: usize,
        /// The jobs table, whose stream drives the notifier.
        #[arg(long, env = "JOBHOOK_TABLE_NAME")]
        table: String,
    },
    /// Invoke each function once through the emulator, until all answer.
    Warm {
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        emulator: String,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// The emulator's log: a function that cannot start ends the wait at once.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Serve a proxy to moto that fails as DynamoDB and SQS fail on AWS.
    Faults {
        /// The moto server to forward to.
        #[arg(long, env = "JOBHOOK_MOTO_URL")]
        upstream: String,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// `aws`, `none`, or `kind=rate,…` (kinds: transaction_conflict,
        /// conflict_exception, throttling, internal_error, ambiguous_write,
        /// send_failure, ambiguous_send, ambiguous_delete) and contention=on|off.
        #[arg(long, default_value = "aws")]
        plan: jobhook_dev::faults::FaultPlan,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Write the proxy's URL here once it listens.
        #[arg(long)]
        url_out: Option<PathBuf>,
    },
    /// `make bench`: jobhook's functions beside the Python/Powertools reference
    /// ones under one Runtime API emulator and one moto.
    Bench {
        #[command(flatten)]
        args: bench::BenchArgs,
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        moto_url: String,
    },
    /// Run the provider simulator against the receiver, then check the result.
    Simulate {
        #[command(flatten)]
        args: Box<simulator::SimArgs>,
        #[arg(long, default_value = "dev")]
        source: String,
        /// Speak this provider: the first source whose `provider` it is,
        /// instead of `--source`.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(jobhook::domain::sources::KNOWN_PROVIDERS))]
        provider: Option<String>,
        #[arg(long, env = "JOBHOOK_SOURCES_SECRET")]
        secret: String,
        /// The provider API secret, merged into the sources for the token.
        #[arg(long, env = "JOBHOOK_API_SECRET")]
        api_secret: Option<String>,
        #[arg(long)]
        receiver_url: String,
        /// Where the simulated job API listens.
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: String,
        #[arg(long, env = "JOBHOOK_TABLE_NAME")]
        table: String,
        #[arg(long, env = "JOBHOOK_QUEUE_URL")]
        queue_url: String,
        #[arg(long, env = "JOBHOOK_DLQ_URL")]
        dlq_url: String,
        #[arg(long)]
        summary_out: Option<PathBuf>,
        /// The fault proxy the functions go through, for the summary.
        #[arg(long, env = "JOBHOOK_FAULTS_URL")]
        faults_url: Option<String>,
        /// The notifications bus, to check what an application hears.
        #[arg(long, env = "JOBHOOK_EVENT_BUS")]
        event_bus: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let aws = jobhook::adapters::aws_config().await;
    match run(cli, &aws).await {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("jobhook-dev: {error}");
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli, aws: &aws_config::SdkConfig) -> Result<i32, Error> {
    match cli.command {
        Command::Seed {
            sources_file,
            sim_url,
            visibility_timeout_secs,
            env_out,
        } => {
            let text =
                std::fs::read_to_string(&sources_file).map_err(|e| format!("{}: {e}", sources_file.display()))?;
            let seeded = seed::seed(aws, &text, sim_url.as_deref(), visibility_timeout_secs).await?;
            let mut lines = vec![
                format!("JOBHOOK_QUEUE_URL={}", seeded.queue_url),
                format!("JOBHOOK_DLQ_URL={}", seeded.dlq_url),
                format!("JOBHOOK_TABLE_NAME={}", seeded.table),
                format!("JOBHOOK_SOURCES_SECRET={}", seeded.secret),
                format!("JOBHOOK_API_SECRET={}", seeded.api_secret),
                format!("JOBHOOK_EVENT_BUS={}", seeded.event_bus),
            ];
            // The AWS settings and any reconciler overrides pass through.
            for name in [
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "AWS_EC2_METADATA_DISABLED",
                "JOBHOOK_STALE_AFTER_SECS",
                "JOBHOOK_POLL_INTERVAL_SECS",
                "JOBHOOK_MAX_POLL_INTERVAL_SECS",
                "JOBHOOK_ABANDON_AFTER_NOT_FOUND",
                "JOBHOOK_ABANDON_AFTER_DAYS",
                "JOBHOOK_MAX_POLLS_PER_RUN",
                "JOBHOOK_POLL_CONCURRENCY",
                "JOBHOOK_SOURCES_TTL_SECS",
            ] {
                if let Ok(value) = std::env::var(name) {
                    lines.push(format!("{name}={value}"));
                }
            }
            if let Some(dir) = env_out.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&env_out, lines.join("\n") + "\n")?;
            Ok(0)
        }
        Command::Bridge {
            emulator,
            queue_url,
            schedule_secs,
            pollers,
            table,
        } => {
            let stream_arn = aws_sdk_dynamodb::Client::new(aws)
                .describe_table()
                .table_name(&table)
                .send()
                .await?
                .table
                .and_then(|t| t.latest_stream_arn)
                .ok_or_else(|| format!("table {table} has no stream"))?;
            let sqs = aws_sdk_sqs::Client::new(aws);
            let queue_arn = seed::queue_arn(&sqs, &queue_url).await?;
            let bridge = bridge::Bridge {
                sqs,
                http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?,
                emulator,
                queue_url,
                queue_arn,
                region: aws
                    .region()
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| "us-east-1".into()),
            };
            tokio::select! {
                _ = bridge.run_queue(pollers) => {}
                _ = bridge.run_schedule(Duration::from_secs(schedule_secs.max(1))) => {}
                _ = bridge.run_stream(aws_sdk_dynamodbstreams::Client::new(aws), stream_arn) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(0)
        }
        Command::Faults {
            upstream,
            listen,
            plan,
            seed,
            url_out,
        } => {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("listen on {listen}: {e}"))?;
            let url = format!("http://{}", listener.local_addr()?);
            let proxy = jobhook_dev::faults::FaultProxy::new(upstream, plan, seed)?;
            let task = jobhook_dev::faults::serve(listener, proxy);
            if let Some(path) = url_out {
                std::fs::write(&path, &url)?;
            }
            println!("fault proxy on {url}");
            tokio::select! {
                _ = task => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(0)
        }
        Command::Warm {
            emulator,
            timeout_secs,
            log,
        } => {
            bridge::warm(&emulator, Duration::from_secs(timeout_secs), log.as_deref()).await?;
            Ok(0)
        }
        Command::Bench { args, moto_url } => {
            let out_dir = args.out_dir.clone();
            let report = bench::Bench {
                args,
                aws: aws.clone(),
                moto_url,
            }
            .run()
            .await?;
            report.print();
            std::fs::write(
                out_dir.join("report.json"),
                serde_json::to_string_pretty(&report)? + "\n",
            )?;
            Ok(0)
        }
        Command::Simulate {
            args,
            source,
            provider,
            secret,
            api_secret,
            receiver_url,
            listen,
            table,
            queue_url,
            dlq_url,
            summary_out,
            faults_url,
            event_bus,
        } => {
            let secrets = aws_sdk_secretsmanager::Client::new(aws);
            let read = |id: String| {
                let secrets = secrets.clone();
                async move {
                    secrets
                        .get_secret_value()
                        .secret_id(&id)
                        .send()
                        .await?
                        .secret_string
                        .ok_or_else(|| Error::from(format!("secret {id} has no string")))
                }
            };
            let mut text = read(secret).await?;
            if let Some(api) = api_secret {
                text = jobhook::domain::sources::merge_api_document(&text, &read(api).await?)?;
            }
            let sources = jobhook::Sources::parse(&text)?;
            let source = match &provider {
                Some(p) => sources
                    .iter()
                    .find(|s| &s.provider == p)
                    .ok_or_else(|| format!("no source with provider {p:?} in the sources document"))?,
                None => sources
                    .get(&source)
                    .ok_or_else(|| format!("no source {source:?} in the sources document"))?,
            }
            .clone();
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("listen on {listen}: {e}"))?;
            let simulator = simulator::Simulator {
                args: *args,
                source,
                receiver_url,
                store: simulator::store(aws, &table)?,
                sqs: aws_sdk_sqs::Client::new(aws),
                queue_url,
                dlq_url,
                faults_url,
                consumer: match &event_bus {
                    Some(bus) => Some(simulator::Consumer::subscribe(aws, bus).await?),
                    None => None,
                },
            };
            let summary = simulator.run(listener).await?;
            summary.print();
            if let Some(path) = summary_out {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
            }
            let passed = summary.passed();
            println!("demo: {}", if passed { "PASS" } else { "FAIL" });
            Ok(if passed { 0 } else { 1 })
        }
    }
}
