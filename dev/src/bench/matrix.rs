//! The processor's workload matrix: the job shapes users have (one, two or
//! five events per job; tracked at submission or not; in order, reversed, or
//! every event delivered twice), each job's events spread across batches as
//! concurrent jobs spread them, on one warm processor process. Per cell: the
//! DynamoDB requests and capacity units per new event and per duplicate (the
//! whole stream again), and the processor's CPU per event.

use std::time::Duration;

use jobhook::adapters::dynamodb::DynamoJobStore;
use jobhook::ports::JobStore;
use serde::Serialize;

use super::{count, cpu_ns, envelope, median, rand_id, sqs_batch, Bench, Env, Error, Function, Running, READS, WRITES};

/// Events in each cell's stream: jobs × events per job.
const EVENTS_PER_CELL: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Forward,
    /// Each job's last event first: across batches, so no batch's own order
    /// can put them right.
    Reversed,
    /// Every batch delivered a second time right after it (a provider's
    /// retry after a timeout).
    Duplicated,
}

impl Order {
    fn label(self) -> &'static str {
        match self {
            Self::Forward => "in order",
            Self::Reversed => "reversed",
            Self::Duplicated => "each twice",
        }
    }
}

/// One cell's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub events_per_job: usize,
    pub tracked: bool,
    pub order: Order,
    /// A new processor process for every batch (no memory of earlier ones).
    pub cold: bool,
    pub writes_per_new_event: f64,
    pub reads_per_new_event: f64,
    pub wru_per_new_event: f64,
    pub rru_per_new_event: f64,
    pub writes_per_duplicate: f64,
    pub reads_per_duplicate: f64,
    pub wru_per_duplicate: f64,
    pub cpu_us_per_event: f64,
    pub failed: usize,
}

/// The goals a cell is held to.
pub const WRITES_PER_NEW_EVENT_GOAL: f64 = 1.1;
pub const WRITES_PER_DUPLICATE_GOAL: f64 = 1.0;

impl Cell {
    pub fn within_goals(&self) -> bool {
        self.writes_per_new_event <= WRITES_PER_NEW_EVENT_GOAL && self.writes_per_duplicate <= WRITES_PER_DUPLICATE_GOAL
    }
}

/// (kind, progress) of each event of a job with `n` events.
fn steps(n: usize) -> Vec<(&'static str, Option<u8>)> {
    match n {
        1 => vec![("job.completed", None)],
        2 => vec![("job.started", None), ("job.completed", None)],
        _ => {
            let mut steps = vec![("job.started", None)];
            let between = n.saturating_sub(2);
            steps.extend((1..=between).map(|i| ("job.progress", Some((100 * i / (between + 1)) as u8))));
            steps.push(("job.completed", None));
            steps
        }
    }
}

/// One event of the stream: (event id, job id, kind, progress).
type Step = (String, String, &'static str, Option<u8>);

/// The stream's batches, each marked with whether it repeats an earlier one.
fn stream(run: &str, per_job: usize, order: Order, batch: usize) -> (Vec<String>, Vec<(Vec<Step>, bool)>) {
    let jobs: Vec<String> = (0..EVENTS_PER_CELL / per_job)
        .map(|j| format!("{run}-job{j:04}"))
        .collect();
    let mut steps: Vec<(usize, (&'static str, Option<u8>))> = steps(per_job).into_iter().enumerate().collect();
    if order == Order::Reversed {
        steps.reverse();
    }
    // Concurrent jobs: every job's first event, then every job's second, ...
    let events: Vec<Step> = steps
        .iter()
        .flat_map(|(i, (kind, progress))| {
            jobs.iter()
                .map(move |job| (format!("{job}-e{i}"), job.clone(), *kind, *progress))
        })
        .collect();
    let mut batches = Vec::new();
    for chunk in events.chunks(batch) {
        batches.push((chunk.to_vec(), false));
        if order == Order::Duplicated {
            batches.push((chunk.to_vec(), true));
        }
    }
    (jobs, batches)
}

fn payload(steps: &[Step]) -> Vec<u8> {
    sqs_batch(
        steps
            .iter()
            .map(|(event_id, job_id, kind, progress)| envelope(event_id, job_id, kind, *progress))
            .collect(),
    )
}

impl Bench {
    /// Every cell of the matrix, on one warm processor, then the cold row.
    pub(super) async fn matrix(&self, env: &Env, processor: &Function) -> Result<Vec<Cell>, Error> {
        let log = self.args.out_dir.join("processor-matrix.log");
        let _ = std::fs::remove_file(&log);
        let mut warm = Some(Running::start(processor, &env.shared, &log, self.args.function_cpu).await?);
        let mut cells = Vec::new();
        for per_job in [1, 2, 5] {
            for tracked in [false, true] {
                for order in [Order::Forward, Order::Reversed, Order::Duplicated] {
                    cells.push(
                        self.cell(env, processor, &log, &mut warm, per_job, tracked, order)
                            .await?,
                    );
                }
            }
        }
        if let Some(run) = warm.take() {
            run.stop().await;
        }
        // Where a container has no memory of the jobs: the worst case.
        cells.push(
            self.cell(env, processor, &log, &mut None, 2, false, Order::Reversed)
                .await?,
        );
        Ok(cells)
    }

    /// One cell: on `warm` if given, else a new process per batch.
    #[allow(clippy::too_many_arguments)]
    async fn cell(
        &self,
        env: &Env,
        processor: &Function,
        log: &std::path::Path,
        warm: &mut Option<Running>,
        per_job: usize,
        tracked: bool,
        order: Order,
    ) -> Result<Cell, Error> {
        let run = format!("m{per_job}{}{:?}-{}", u8::from(tracked), order, rand_id());
        let (jobs, batches) = stream(&run, per_job, order, self.args.batch);
        if tracked {
            // Tracking is the submission's cost, not the events': straight to moto.
            let store = DynamoJobStore::new(
                aws_sdk_dynamodb::Client::new(&self.aws),
                env.table.clone(),
                Duration::from_secs(86_400),
                std::sync::Arc::new(jobhook::clock::SystemClock),
            );
            for job in &jobs {
                store.track("bench", job).await?;
            }
        }
        let cold = warm.is_none();
        let mut failed = 0;
        let mut cpu = Vec::new();
        let (mut new, mut repeated) = (Usage::default(), Usage::default());
        for (steps, again) in &batches {
            let (usage, cpu_per_event) = self.invoke_batch(env, processor, log, warm, steps, &mut failed).await?;
            if *again {
                repeated.add(&usage);
            } else {
                new.add(&usage);
                cpu.push(cpu_per_event);
            }
        }
        // The whole stream again: every event a duplicate.
        if order != Order::Duplicated {
            for (steps, _) in &batches {
                let (usage, _) = self.invoke_batch(env, processor, log, warm, steps, &mut failed).await?;
                repeated.add(&usage);
            }
        }
        let events = EVENTS_PER_CELL as f64;
        Ok(Cell {
            events_per_job: per_job,
            tracked,
            order,
            cold,
            writes_per_new_event: new.writes / events,
            reads_per_new_event: new.reads / events,
            wru_per_new_event: new.wru / events,
            rru_per_new_event: new.rru / events,
            writes_per_duplicate: repeated.writes / events,
            reads_per_duplicate: repeated.reads / events,
            wru_per_duplicate: repeated.wru / events,
            cpu_us_per_event: median(cpu),
            failed,
        })
    }
}

impl Bench {
    /// One batch on `warm`, or on a process of its own; its usage and CPU per event.
    async fn invoke_batch(
        &self,
        env: &Env,
        processor: &Function,
        log: &std::path::Path,
        warm: &mut Option<Running>,
        steps: &[Step],
        failed: &mut usize,
    ) -> Result<(Usage, f64), Error> {
        let mut fresh = None;
        let process = match warm.as_mut() {
            Some(p) => p,
            None => fresh.insert(Running::start(processor, &env.shared, log, self.args.function_cpu).await?),
        };
        env.counter.take();
        env.counter.take_units();
        let before = cpu_ns(process.pid());
        let out = process.invoke(payload(steps)).await?;
        let used = cpu_ns(process.pid()).saturating_sub(before) as f64 / 1000.0;
        if !out.ok || String::from_utf8_lossy(&out.body).contains("batchItemFailures\":[{") {
            *failed += 1;
        }
        let usage = Usage::of(&env.counter.take(), env.counter.take_units());
        if let Some(p) = fresh {
            p.stop().await;
        }
        Ok((usage, used / steps.len() as f64))
    }
}

/// DynamoDB requests and capacity units.
#[derive(Debug, Default)]
struct Usage {
    writes: f64,
    reads: f64,
    wru: f64,
    rru: f64,
}

impl Usage {
    fn of(requests: &std::collections::BTreeMap<String, u64>, (wru, rru): (f64, f64)) -> Self {
        Self {
            writes: count(requests, WRITES) as f64,
            reads: count(requests, READS) as f64,
            wru,
            rru,
        }
    }

    fn add(&mut self, other: &Usage) {
        self.writes += other.writes;
        self.reads += other.reads;
        self.wru += other.wru;
        self.rru += other.rru;
    }
}

/// Prints the matrix as a Markdown table.
pub fn print(cells: &[Cell]) {
    if cells.is_empty() {
        return;
    }
    println!();
    println!(
        "processor workload matrix ({EVENTS_PER_CELL} events per cell, each job's events across batches; goals: ≤ {WRITES_PER_NEW_EVENT_GOAL} write requests per new event, ≤ {WRITES_PER_DUPLICATE_GOAL} per duplicate)"
    );
    println!();
    println!(
        "| events per job | tracked | order | writes / new event | reads / new event | WRU / new event | RRU / new event | writes / duplicate | reads / duplicate | WRU / duplicate | CPU µs / event | within goals |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for c in cells {
        let order = if c.cold {
            format!("{}, a new container per batch", c.order.label())
        } else {
            c.order.label().to_owned()
        };
        println!(
            "| {} | {} | {order} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} |",
            c.events_per_job,
            if c.tracked { "yes" } else { "no" },
            c.writes_per_new_event,
            c.reads_per_new_event,
            c.wru_per_new_event,
            c.rru_per_new_event,
            c.writes_per_duplicate,
            c.reads_per_duplicate,
            c.wru_per_duplicate,
            c.cpu_us_per_event,
            match (c.cold, c.within_goals()) {
                (true, _) => "(worst case, not held to them)",
                (false, true) => "yes",
                (false, false) => "NO",
            }
        );
    }
    println!(
        "capacity units at on-demand rules: a transaction item 2 WRU per KB, PutItem/UpdateItem 1 WRU per KB, a strongly consistent read 1 RRU per 4 KB; \
         a cancelled transaction counted as charged; a state item's size taken as ≤ 1 KB, a put item's measured"
    );
    let failed: usize = cells.iter().map(|c| c.failed).sum();
    if failed > 0 {
        println!("WARNING: {failed} matrix batches reported failures; see target/bench/processor-matrix.log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversed_stream_puts_every_job_s_end_before_its_start_in_an_earlier_batch() {
        let (jobs, batches) = stream("t", 2, Order::Reversed, 10);
        assert_eq!(jobs.len(), 50);
        assert_eq!(batches.len(), 10);
        let position = |id: &str| batches.iter().position(|(b, _)| b.iter().any(|s| s.0 == id));
        for job in &jobs {
            let (end, start) = (position(&format!("{job}-e1")), position(&format!("{job}-e0")));
            assert!(end < start, "{job}: end in batch {end:?}, start in {start:?}");
        }
    }

    #[test]
    fn a_duplicated_stream_repeats_each_batch_once_right_after_it() {
        let (_, batches) = stream("t", 5, Order::Duplicated, 10);
        assert_eq!(batches.len(), 20);
        for pair in batches.chunks(2) {
            assert_eq!((pair[0].1, pair[1].1), (false, true));
            assert_eq!(pair[0].0, pair[1].0);
        }
    }

    #[test]
    fn five_events_per_job_are_a_start_three_rising_progresses_and_an_end() {
        assert_eq!(
            steps(5),
            [
                ("job.started", None),
                ("job.progress", Some(25)),
                ("job.progress", Some(50)),
                ("job.progress", Some(75)),
                ("job.completed", None),
            ]
        );
    }
}
