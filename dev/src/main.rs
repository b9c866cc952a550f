//! `jobhook-dev`: the local pipeline's own parts. See `scripts/dev.sh` and
//! `scripts/demo.sh` for how they are put together.

mod bench;
mod bridge;
mod outage;

mod simulator;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jobhook_dev::dialect;
use jobhook_dev::seed::{self, Error};

#[derive(Debug, Parser)]
#[command(name = "jobhook-dev", about = "Local pipeline tooling for jobhook")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Put the sources document into the deployed stack's two secrets.
    Seed {
        #[arg(long)]
        sources_file: PathBuf,
        /// Point every source's `api.base_url` here (the provider simulator).
        #[arg(long)]
        sim_url: Option<String>,
        #[arg(long, env = "JOBHOOK_SOURCES_SECRET")]
        sources_secret: String,
        #[arg(long, env = "JOBHOOK_API_SECRET")]
        api_secret: String,
    },
    /// Run the deployed stack's event source mappings and schedules.
    Bridge {
        /// What scripts/deploy_local.py read back from the deployed stack.
        #[arg(long)]
        stack: PathBuf,
        /// FUNCTION=URL: the emulator that runs each function.
        #[arg(long = "emulator", value_parser = function_url, required = true)]
        emulators: Vec<(String, String)>,
        /// Concurrent pollers per queue, each invoking its function (at most
        /// the mapping's maximum concurrency).
        #[arg(long, default_value_t = 4)]
        pollers: usize,
    },
    /// Invoke each function once through its emulator, until all answer.
    Warm {
        /// FUNCTION=URL: the emulator that runs each function.
        #[arg(long = "emulator", value_parser = function_url, required = true)]
        emulators: Vec<(String, String)>,
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
        /// The emulators' logs: a function that cannot start ends the wait at once.
        #[arg(long = "log")]
        logs: Vec<PathBuf>,
    },
    /// Check that the emulator created every resource of the deployed stack
    /// but the known exceptions; name any other.
    Exceptions {
        #[arg(long)]
        stack: PathBuf,
    },
    /// Name what broke in a run from the functions' logs: each denied
    /// action, each function that could not start, each error line.
    Diagnose {
        #[arg(long, required = true)]
        stack: PathBuf,
        /// FUNCTION=PATH: each function's log.
        #[arg(long = "log", value_parser = function_url, required = true)]
        logs: Vec<(String, String)>,
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
    /// Keep one generated output of `--bytes` into a bucket (moto), as the
    /// copy of outputs does, and print the time and this process's peak RSS.
    KeepOutputBench {
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        #[arg(long, default_value_t = jobhook::outputs::DEFAULT_PART_BYTES)]
        part_bytes: usize,
    },
    /// Run the release `keeper` binary (in `--bin-dir`) under the Runtime
    /// API emulator on one output of `--bytes`, kept into a bucket on moto;
    /// print its wall time and peak RSS.
    KeeperBench {
        #[arg(long, default_value_t = 1 << 30)]
        bytes: u64,
        #[arg(long, default_value = "target/release")]
        bin_dir: std::path::PathBuf,
        #[arg(long, default_value = "target/bench")]
        out_dir: std::path::PathBuf,
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        moto_url: String,
    },
    /// Time each page of the `jobhook console` binary against a table of
    /// JOBS jobs (a month of activity) made from the template in moto.
    ConsoleBench {
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        /// The `jobhook` binary to run.
        #[arg(long, default_value = "target/release/jobhook")]
        jobhook: PathBuf,
        #[arg(long, default_value_t = 15)]
        runs: usize,
        #[arg(long, default_value_t = 8643)]
        port: u16,
    },
    /// Run the provider simulator against the receiver, then check the result.
    Simulate {
        #[command(flatten)]
        args: Box<simulator::SimArgs>,
        #[arg(long, default_value = "dev")]
        source: String,
        /// Speak this provider: the first source whose `provider` it is,
        /// instead of `--source`.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(jobhook::domain::provider::names()))]
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

/// `name=value`, as `--emulator processor=http://127.0.0.1:9001` takes it.
fn function_url(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected FUNCTION=VALUE"))?;
    if name.is_empty() || value.is_empty() {
        return Err(format!("{text:?}: expected FUNCTION=VALUE"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let aws = jobhook::bootstrap::aws_config().await;
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
            sources_secret,
            api_secret,
        } => {
            let text =
                std::fs::read_to_string(&sources_file).map_err(|e| format!("{}: {e}", sources_file.display()))?;
            seed::seed(aws, &text, sim_url.as_deref(), &sources_secret, &api_secret).await?;
            Ok(0)
        }
        Command::Bridge {
            stack,
            emulators,
            pollers,
        } => {
            let deployed = jobhook_dev::stack::Deployed::read(&stack)?;
            bridge::run_deployed(aws, &deployed, emulators.into_iter().collect(), pollers).await?;
            Ok(0)
        }
        Command::Exceptions { stack } => {
            let deployed = jobhook_dev::stack::Deployed::read(&stack)?;
            let unexpected = deployed.unexpected_exceptions();
            if unexpected.is_empty() {
                println!(
                    "the emulator created every resource but the known exceptions ({})",
                    jobhook_dev::stack::EMULATOR_EXCEPTIONS.join(", ")
                );
                return Ok(0);
            }
            for kind in unexpected {
                println!(
                    "the emulator did not create {kind} ({}): deploy it on AWS to check it, or add it to EMULATOR_EXCEPTIONS",
                    deployed.not_created_by_emulator[kind].join(", ")
                );
            }
            Ok(1)
        }
        Command::Diagnose { stack, logs } => {
            let deployed = jobhook_dev::stack::Deployed::read(&stack)?;
            let mut findings = Vec::new();
            for (function, path) in logs {
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                let logical = match deployed.functions.get(&function) {
                    Some(f) => format!("{} ({function})", f.logical_id),
                    None if function == "bridge" => "trigger bridge".to_owned(),
                    None => function.clone(),
                };
                let found = if function == "bridge" {
                    jobhook_dev::stack::diagnose_bridge(&text)
                } else {
                    jobhook_dev::stack::diagnose(&text)
                };
                findings.extend(found.into_iter().map(|finding| format!("{logical}: {finding}")));
            }
            for finding in &findings {
                println!("{finding}");
            }
            Ok(if findings.is_empty() { 0 } else { 1 })
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
            emulators,
            timeout_secs,
            logs,
        } => {
            bridge::warm(
                &emulators.into_iter().collect(),
                Duration::from_secs(timeout_secs),
                &logs,
            )
            .await?;
            Ok(0)
        }
        Command::KeepOutputBench { bytes, part_bytes } => {
            let s3 = jobhook::bootstrap::s3_client(aws);
            let bucket = format!("keep-bench-{}", std::process::id());
            s3.create_bucket()
                .bucket(&bucket)
                .send()
                .await
                .map_err(|e| format!("bucket: {e}"))?;
            let base = jobhook_dev::outputs::serve().await?;
            let url = format!("{base}/outputs/bench/{bytes}");
            let started = std::time::Instant::now();
            let kept = jobhook::outputs::keep_output(
                &reqwest::Client::new(),
                &jobhook::adapters::s3::S3Upload::new(s3),
                &url,
                &jobhook::outputs::Destination {
                    bucket: &bucket,
                    key: "bench/out.mp4",
                    max_bytes: bytes,
                    part_bytes,
                },
            )
            .await
            .map_err(|e| format!("keep: {e}"))?;
            let secs = started.elapsed().as_secs_f64();
            let expected = jobhook_dev::outputs::sha256_of("bench", bytes);
            let peak = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
                .unwrap_or_else(|| "VmHWM: unknown".into());
            println!(
                "keep-output: {} bytes in parts of {part_bytes} in {secs:.1} s ({:.0} MiB/s); sha256 {} ({}); peak RSS {}",
                kept.bytes,
                kept.bytes as f64 / secs / 1_048_576.0,
                kept.sha256,
                if kept.sha256 == expected { "matches the bytes served" } else { "DIFFERS from the bytes served" },
                peak.trim_start_matches("VmHWM:").trim()
            );
            Ok(if kept.sha256 == expected { 0 } else { 1 })
        }
        Command::ConsoleBench {
            jobs,
            jobhook,
            runs,
            port,
        } => {
            use jobhook_dev::console_bench;
            let template = jobhook_dev::template::Template::load()?;
            let ddb = aws_sdk_dynamodb::Client::new(aws);
            let sqs = aws_sdk_sqs::Client::new(aws);
            let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
            let table = format!("console-bench-{nanos}");
            template.create_table(&ddb, "JobsTable", &table).await?;
            let queue = template
                .create_queue(&sqs, "EventsQueue", &format!("{table}-events"))
                .await?;
            let dlq = template
                .create_queue(&sqs, "EventsDlq", &format!("{table}-dlq"))
                .await?;
            for i in 0..3 {
                sqs.send_message()
                    .queue_url(&dlq)
                    .message_body(format!("{{\"dead\":{i}}}"))
                    .send()
                    .await?;
            }
            let started = std::time::Instant::now();
            console_bench::seed(&ddb, &table, jobs, time::OffsetDateTime::now_utc()).await?;
            println!(
                "console-bench: {jobs} jobs ({} items) over 30 days of activity, {} sources, seeded in {:.1} s",
                jobs * 3,
                console_bench::SOURCES.len(),
                started.elapsed().as_secs_f64()
            );
            println!("{:<40} {:>10}", "one table call, as the pages make them", "median ms");
            for (call, ms) in console_bench::time_calls(aws, &table, runs).await? {
                println!("{call:<40} {ms:>10.1}");
            }
            let print = |heading: &str, timings: &[console_bench::PageTiming]| {
                println!("{heading}");
                println!(
                    "{:<28} {:>10} {:>10} {:>9}  path",
                    "page", "median ms", "p90 ms", "bytes"
                );
                for t in timings {
                    println!(
                        "{:<28} {:>10.1} {:>10.1} {:>9}  {}",
                        t.page, t.median_ms, t.p90_ms, t.bytes, t.path
                    );
                }
            };
            let timings = console_bench::time_pages(&jobhook, &table, &dlq, &queue, port, runs).await?;
            print("the jobhook console binary, on the table in moto:", &timings);
            let timings = console_bench::time_pages_in_memory(aws, jobs, &dlq, &queue, runs).await?;
            print(
                "the same console over the in-memory store (every job active today, so the overview reads all):",
                &timings,
            );
            Ok(0)
        }
        Command::KeeperBench {
            bytes,
            bin_dir,
            out_dir,
            moto_url,
        } => {
            let run = bench::keeper_run(aws, &moto_url, &bin_dir, &out_dir, bytes).await?;
            println!(
                "keeper: {} bytes kept in {:.1} s ({:.0} MiB/s); peak RSS {:.1} MB; sha256 {}",
                run.bytes,
                run.wall_secs,
                run.bytes as f64 / run.wall_secs / 1_048_576.0,
                run.peak_rss_mb,
                if run.checksum_matches {
                    "matches the bytes served"
                } else {
                    "DIFFERS from the bytes served"
                }
            );
            Ok(if run.checksum_matches { 0 } else { 1 })
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
                archiver: jobhook::bootstrap::archive_reader(aws),
                s3: jobhook::bootstrap::s3_client(aws),
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
