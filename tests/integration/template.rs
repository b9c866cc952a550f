//! Invariants of `template.yaml` that a deploy would only reveal in
//! production: queue timing, least privilege, configuration, triggers.

use jobhook::adapters::dynamodb::{ACTIVITY_INDEX, ACTIVITY_PROJECTION, APPLY_ACTIONS, OPEN_JOBS_INDEX, TTL_ATTRIBUTE};
use jobhook::config::{KeeperConfig, NotifierConfig, ProcessorConfig, ReceiverConfig};
use reconciler::ReconcilerConfig;
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = jobhook_tests::workspace_root().join("template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template.yaml")).expect("valid YAML")
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    let r = &t["Resources"][name];
    assert!(!r.is_null(), "resource {name} is missing");
    r
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// Every string anywhere inside `v`, intrinsic functions (`!If`, `!Ref`) included.
fn mentions(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(mentions).collect(),
        Value::Mapping(map) => map
            .iter()
            .flat_map(|(k, v)| mentions(k).into_iter().chain(mentions(v)))
            .collect(),
        Value::Tagged(tagged) => mentions(&tagged.value),
        _ => vec![],
    }
}

/// The parameter a `!Ref` names, if `v` is one.
fn ref_name(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        _ => None,
    }
}

fn functions(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, r)| (name.as_str().expect("name").to_owned(), r))
        .collect()
}

/// A function's policy statements; one under `!If [condition, statement,
/// AWS::NoValue]` counts as its statement (granted when the condition holds).
fn statements(function: &Value) -> Vec<&Value> {
    function["Properties"]["Policies"]
        .as_sequence()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["Statement"].as_sequence())
                .flatten()
                .map(|s| match s {
                    Value::Tagged(tagged) if tagged.tag == "If" => &tagged.value[1],
                    other => other,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The condition a statement is granted under, if any.
fn statement_condition(function: &Value, action: &str) -> Option<String> {
    function["Properties"]["Policies"]
        .as_sequence()?
        .iter()
        .filter_map(|p| p["Statement"].as_sequence())
        .flatten()
        .find_map(|s| match s {
            Value::Tagged(tagged)
                if tagged.tag == "If" && strings(&tagged.value[1]["Action"]).iter().any(|a| a == action) =>
            {
                tagged.value[0].as_str().map(str::to_owned)
            }
            _ => None,
        })
}

#[test]
fn the_keeper_copies_under_the_outputs_prefix_only_and_only_where_the_stack_keeps_outputs() {
    let t = template();
    let keeper = resource(&t, "KeeperFunction");
    assert_eq!(
        keeper["Properties"]["Timeout"].as_u64(),
        Some(keeper::TIMEOUT.as_secs())
    );
    let grants: Vec<(Vec<String>, Vec<String>)> = statements(keeper)
        .iter()
        .map(|s| (strings(&s["Action"]), mentions(&s["Resource"])))
        .collect();
    let put = grants
        .iter()
        .find(|(a, _)| a.contains(&"s3:PutObject".to_owned()))
        .expect("PutObject is allowed");
    assert_eq!(put.0, ["s3:PutObject", "s3:AbortMultipartUpload"]);
    assert!(
        put.1
            .iter()
            .any(|r| r.contains("${OutputsBucketName}/${OutputsPrefix}*")),
        "only under the prefix: {put:?}"
    );
    assert_eq!(
        statement_condition(keeper, "s3:PutObject").as_deref(),
        Some("KeepOutputs")
    );
    assert!(
        !grants
            .iter()
            .any(|(a, _)| a.iter().any(|x| x.starts_with("s3:Get") || x.starts_with("s3:Delete"))),
        "the keeper reads and deletes nothing of the user's bucket"
    );
    // The notifier asks for copies only where the stack keeps outputs.
    let notifier = resource(&t, "NotifierFunction");
    assert_eq!(
        statement_condition(notifier, "sqs:SendMessage").as_deref(),
        Some("KeepOutputs")
    );
    let queue = &resource(&t, "OutputsQueue")["Properties"];
    let visibility = queue["VisibilityTimeout"].as_u64().expect("visibility");
    assert!(visibility >= 6 * keeper::TIMEOUT.as_secs(), "visibility {visibility} s");
    assert!(mentions(&queue["RedrivePolicy"])
        .iter()
        .any(|m| m.starts_with("OutputsDlq")));
    let trigger = &keeper["Properties"]["Events"]["Queue"]["Properties"];
    assert_eq!(trigger["BatchSize"].as_u64(), Some(1), "one copy per invocation");
    assert!(strings(&trigger["FunctionResponseTypes"]).contains(&"ReportBatchItemFailures".to_owned()));
}

#[test]
fn the_queue_hides_a_message_for_at_least_six_processor_timeouts() {
    let t = template();
    let parameter = ref_name(&resource(&t, "EventsQueue")["Properties"]["VisibilityTimeout"])
        .expect("the visibility timeout is a parameter")
        .to_owned();
    let visibility = t["Parameters"][parameter.as_str()]["Default"]
        .as_u64()
        .expect("visibility default");
    let timeout = resource(&t, "ProcessorFunction")["Properties"]["Timeout"]
        .as_u64()
        .expect("timeout");
    assert!(visibility >= 6 * timeout, "visibility {visibility} s < 6 x {timeout} s");
    assert_eq!(timeout, processor::TIMEOUT.as_secs(), "the processor's fallback budget");
    let queue = &resource(&t, "EventsQueue")["Properties"];
    assert_eq!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64(), Some(5));
    assert_eq!(queue["SqsManagedSseEnabled"].as_bool(), Some(true));
    let dlq = &resource(&t, "EventsDlq")["Properties"];
    assert_eq!(dlq["MessageRetentionPeriod"].as_u64(), Some(14 * 86_400));
    assert_eq!(dlq["SqsManagedSseEnabled"].as_bool(), Some(true));
}

#[test]
fn no_policy_uses_wildcard_actions_or_resources() {
    let t = template();
    for (name, function) in functions(&t) {
        let statements = statements(function);
        assert!(!statements.is_empty(), "{name} has explicit statements");
        for statement in statements {
            for action in strings(&statement["Action"]) {
                assert!(!action.contains('*'), "{name}: wildcard action {action}");
            }
            for resource in strings(&statement["Resource"]) {
                assert!(!resource.contains('*'), "{name}: wildcard resource {resource}");
            }
        }
    }
}

#[test]
fn the_public_receiver_cannot_read_the_provider_api_tokens() {
    let t = template();
    // The processor reads thin events' state from the provider's API.
    for (name, reads_api) in [
        ("ReceiverFunction", false),
        ("ProcessorFunction", true),
        ("ReconcilerFunction", true),
        ("KeeperFunction", true),
    ] {
        let function = resource(&t, name);
        let secret_resources: Vec<String> = function["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|p| mentions(&p["Statement"]))
            .collect();
        assert!(
            secret_resources.iter().any(|r| r == "SourcesSecret"),
            "{name} reads the signing secret"
        );
        let api = secret_resources.iter().any(|r| r == "ApiSecret" || r == "ApiSecretArn");
        assert_eq!(
            api, reads_api,
            "{name}: may it read the api secret? {secret_resources:?}"
        );
        let env = mentions(&function["Properties"]["Environment"]);
        assert_eq!(env.iter().any(|r| r == "ApiSecret"), reads_api, "{name}'s environment");
    }
    let key: Vec<String> = mentions(&resource(&t, "ReceiverFunction")["Properties"]["Policies"]);
    assert!(key.iter().any(|m| m == "kms:Decrypt"), "a supplied KMS key can be used");
}

/// AWS authorizes a transaction item by item, so a function that applies
/// events without one of the item actions fails every event that needs it
/// (a stale one, for `ConditionCheckItem`) while the others pass.
#[test]
fn the_functions_that_apply_events_may_write_every_item_of_an_apply() {
    let t = template();
    for function in ["ProcessorFunction", "ReconcilerFunction"] {
        let on_table: Vec<String> = statements(resource(&t, function))
            .into_iter()
            .filter(|s| mentions(&s["Resource"]).iter().any(|m| m == "JobsTable.Arn"))
            .flat_map(|s| strings(&s["Action"]))
            .collect();
        for action in APPLY_ACTIONS {
            assert!(
                on_table.iter().any(|a| a == action),
                "{function} lacks {action} on the table"
            );
        }
    }
}

#[test]
fn the_receiver_cannot_write_to_dynamodb() {
    let t = template();
    let actions: Vec<String> = statements(resource(&t, "ReceiverFunction"))
        .iter()
        .flat_map(|s| strings(&s["Action"]))
        .collect();
    assert!(actions.iter().all(|a| !a.starts_with("dynamodb:")), "{actions:?}");
    assert!(actions.contains(&"sqs:SendMessage".to_owned()));
}

/// A function's `Environment.Variables` as the deploy would resolve them with
/// the parameters' defaults: `!Ref` to a parameter is its default, `!Ref` or
/// `!GetAtt` to a resource a placeholder naming it, `!If` its first non-empty
/// branch (the defaults create the stack's own resources).
fn template_env(t: &Value, function: &Value) -> std::collections::HashMap<String, String> {
    fn resolve(t: &Value, v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Tagged(tagged) => match tagged.tag.to_string().trim_start_matches('!') {
                "Ref" => {
                    let name = tagged.value.as_str().expect("a !Ref names something");
                    match &t["Parameters"][name]["Default"] {
                        Value::Null => format!("resource:{name}"),
                        default => resolve(t, default),
                    }
                }
                "If" => {
                    let branches = tagged.value.as_sequence().expect("!If [condition, then, else]");
                    let then = resolve(t, &branches[1]);
                    if then.is_empty() {
                        resolve(t, &branches[2])
                    } else {
                        then
                    }
                }
                other => format!("{other}:{:?}", tagged.value),
            },
            other => panic!("unexpected variable value {other:?}"),
        }
    }
    function["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .expect("variables")
        .iter()
        .map(|(k, v)| (k.as_str().expect("name").to_owned(), resolve(t, v)))
        .collect()
}

#[test]
fn every_function_s_config_loader_accepts_its_template_environment() {
    let t = template();
    let env_of = |name: &str| {
        let variables = template_env(&t, resource(&t, name));
        jobhook::config::Env(move |k: &str| variables.get(k).cloned())
    };
    let receiver = ReceiverConfig::from_env(&env_of("ReceiverFunction")).expect("the receiver's variables");
    assert_eq!(receiver.queue_url, "resource:EventsQueue");
    let processor = ProcessorConfig::from_env(&env_of("ProcessorFunction")).expect("the processor's variables");
    assert_eq!(processor.table_name, "resource:JobsTable");
    assert_eq!(processor.dlq_url, "resource:EventsDlq");
    let reconciler = ReconcilerConfig::from_env(&env_of("ReconcilerFunction")).expect("the reconciler's variables");
    assert_eq!(reconciler.table_name, "resource:JobsTable");
    let notifier = NotifierConfig::from_env(&env_of("NotifierFunction")).expect("the notifier's variables");
    assert_eq!(notifier.event_bus, "resource:NotificationsBus");
    assert_eq!(notifier.outputs_queue_url.as_deref(), Some("resource:OutputsQueue"));
    // The notifier verifies nothing, so it is not given the signing secrets.
    assert_eq!(env_of("NotifierFunction").0("JOBHOOK_SOURCES_SECRET"), None);
    let keeper = KeeperConfig::from_env(&env_of("KeeperFunction")).expect("the keeper's variables");
    assert_eq!(
        (keeper.table_name.as_str(), keeper.prefix.as_str()),
        ("resource:JobsTable", "jobhook/")
    );
    for name in [
        "ReceiverFunction",
        "ProcessorFunction",
        "ReconcilerFunction",
        "KeeperFunction",
    ] {
        assert_eq!(
            env_of(name).0("JOBHOOK_SOURCES_SECRET").as_deref(),
            Some("resource:SourcesSecret"),
            "{name}"
        );
    }
}

#[test]
fn every_function_is_built_from_its_own_package() {
    let t = template();
    for resource_name in [
        "ReceiverFunction",
        "ProcessorFunction",
        "ReconcilerFunction",
        "NotifierFunction",
        "KeeperFunction",
    ] {
        let function = resource(&t, resource_name);
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{resource_name}"
        );
        // sam build copies this binary's bootstrap: without it, it cannot
        // tell the workspace's binaries apart.
        let binary = resource_name.trim_end_matches("Function").to_lowercase();
        assert_eq!(
            function["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some(binary.as_str()),
            "{resource_name}"
        );
        assert!(
            jobhook_tests::workspace_root()
                .join("functions")
                .join(&binary)
                .join("Cargo.toml")
                .exists(),
            "{resource_name}: no package functions/{binary}"
        );
    }
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(strings(&globals["Architectures"]), ["arm64"]);
}

#[test]
fn a_reconciler_run_at_its_poll_budget_fits_the_function_timeout() {
    let t = template();
    let function = &resource(&t, "ReconcilerFunction")["Properties"];
    let timeout = function["Timeout"].as_u64().expect("timeout");
    assert_eq!(
        timeout,
        reconciler::TIMEOUT.as_secs(),
        "the reconciler's fallback budget"
    );
    let polls = t["Parameters"]["MaxPollsPerRun"]["Default"]
        .as_u64()
        .expect("MaxPollsPerRun");
    assert_eq!(
        ref_name(&function["Environment"]["Variables"]["JOBHOOK_MAX_POLLS_PER_RUN"]),
        Some("MaxPollsPerRun")
    );
    let at_once = reconciler::ReconcileSettings::default().poll_concurrency as u64;
    // Every poll timing out, in rounds of `at_once`, plus the writes.
    let worst = polls.div_ceil(at_once) * reconciler::POLL_TIMEOUT.as_secs();
    assert!(
        worst + 30 < timeout,
        "worst case {worst} s against a {timeout} s timeout"
    );
}

#[test]
fn the_functions_that_write_job_state_agree_on_when_a_job_is_due() {
    let t = template();
    for name in ["ProcessorFunction", "ReconcilerFunction"] {
        let variables = &resource(&t, name)["Properties"]["Environment"]["Variables"];
        assert_eq!(
            ref_name(&variables["JOBHOOK_STALE_AFTER_SECS"]),
            Some("StaleAfterSecs"),
            "{name}"
        );
    }
}

#[test]
fn the_notifier_reads_the_stream_with_bounded_retries_and_a_failure_destination() {
    let t = template();
    let table = &resource(&t, "JobsTable")["Properties"];
    assert_eq!(table["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    let function = &resource(&t, "NotifierFunction")["Properties"];
    assert_eq!(function["Timeout"].as_u64(), Some(notifier::TIMEOUT.as_secs()));
    let stream = &function["Events"]["Stream"];
    assert_eq!(stream["Type"], "DynamoDB");
    let p = &stream["Properties"];
    assert!(strings(&p["FunctionResponseTypes"]).contains(&"ReportBatchItemFailures".to_owned()));
    assert_eq!(p["BisectBatchOnFunctionError"].as_bool(), Some(true));
    assert!(
        p["MaximumRetryAttempts"]
            .as_u64()
            .is_some_and(|n| (1..=100).contains(&n)),
        "bounded retries"
    );
    assert!(mentions(&p["DestinationConfig"])
        .iter()
        .any(|m| m.starts_with("NotifierFailures")));
    let pattern: serde_json::Value = serde_json::from_str(
        p["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .expect("a filter pattern"),
    )
    .expect("the pattern is JSON");
    assert_eq!(
        pattern["dynamodb"]["Keys"]["sk"]["S"][0],
        jobhook::adapters::dynamodb::STATE_SK
    );
    // Least privilege: PutEvents on the one bus.
    let actions: Vec<(Vec<String>, Vec<String>)> = statements(resource(&t, "NotifierFunction"))
        .iter()
        .map(|s| (strings(&s["Action"]), mentions(&s["Resource"])))
        .collect();
    let put = actions
        .iter()
        .find(|(a, _)| a.contains(&"events:PutEvents".to_owned()))
        .expect("PutEvents is allowed");
    assert!(put.1.iter().any(|r| r.starts_with("NotificationsBus")), "{put:?}");
    assert!(!actions.iter().any(|(a, _)| a
        .iter()
        .any(|x| x.starts_with("dynamodb:Put") || x.starts_with("dynamodb:Update"))));
}

#[test]
fn the_processor_reports_batch_item_failures() {
    let t = template();
    let event = &resource(&t, "ProcessorFunction")["Properties"]["Events"]["Queue"];
    assert_eq!(event["Type"], "SQS");
    assert!(strings(&event["Properties"]["FunctionResponseTypes"]).contains(&"ReportBatchItemFailures".to_owned()));
    assert!(!event["Properties"]["ScalingConfig"]["MaximumConcurrency"].is_null());
}

#[test]
fn the_table_matches_what_the_code_expects() {
    let t = template();
    let table = &resource(&t, "JobsTable")["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], TTL_ATTRIBUTE);
    assert_eq!(table["GlobalSecondaryIndexes"][0]["IndexName"], OPEN_JOBS_INDEX);
    assert_eq!(
        table["GlobalSecondaryIndexes"][0]["KeySchema"][1]["AttributeName"], "next_poll_at",
        "the index hands out jobs by due time"
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    let activity = &table["GlobalSecondaryIndexes"][1];
    assert_eq!(activity["IndexName"], ACTIVITY_INDEX);
    assert_eq!(activity["KeySchema"][0]["AttributeName"], "source");
    assert_eq!(
        activity["KeySchema"][1]["AttributeName"], "updated_at",
        "the console lists a source's jobs by latest activity"
    );
    assert_eq!(activity["Projection"]["ProjectionType"], "INCLUDE");
    assert_eq!(
        strings(&activity["Projection"]["NonKeyAttributes"]),
        ACTIVITY_PROJECTION.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "the index projects what the console's summaries read"
    );
}

#[test]
fn each_alarm_watches_the_metric_it_is_named_for() {
    use jobhook::telemetry::{names, NAMESPACE};
    let t = template();
    // The metrics each alarm reads, as (namespace, metric name).
    let metrics_of = |alarm: &Value| -> Vec<(String, String)> {
        let p = &alarm["Properties"];
        let single = (!p["MetricName"].is_null()).then(|| {
            (
                p["Namespace"].as_str().unwrap().to_owned(),
                p["MetricName"].as_str().unwrap().to_owned(),
            )
        });
        let math = p["Metrics"].as_sequence().into_iter().flatten().filter_map(|m| {
            let metric = &m["MetricStat"]["Metric"];
            Some((
                metric["Namespace"].as_str()?.to_owned(),
                metric["MetricName"].as_str()?.to_owned(),
            ))
        });
        single.into_iter().chain(math).collect()
    };
    let expected: &[(&str, &[(&str, &str)])] = &[
        ("DlqNotEmptyAlarm", &[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]),
        ("ReceiverErrorsAlarm", &[("AWS/Lambda", "Errors")]),
        ("Receiver5xxAlarm", &[("AWS/ApiGateway", "5xx")]),
        ("SignatureFailuresAlarm", &[(NAMESPACE, names::SIGNATURE_FAILURES)]),
        (
            "ProcessorErrorsAlarm",
            &[("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles")],
        ),
        ("ReconcilerErrorsAlarm", &[("AWS/Lambda", "Errors")]),
        ("MissedWebhooksAlarm", &[(NAMESPACE, names::MISSED_WEBHOOKS_RECOVERED)]),
        ("JobsAbandonedAlarm", &[(NAMESPACE, names::JOBS_ABANDONED)]),
        ("NotifierIteratorAgeAlarm", &[("AWS/Lambda", "IteratorAge")]),
        (
            "NotifierFailuresAlarm",
            &[("AWS/SQS", "ApproximateNumberOfMessagesVisible")],
        ),
        (
            "OutputsExpiredAlarm",
            &[(NAMESPACE, names::OUTPUTS_EXPIRED_BEFORE_KEPT)],
        ),
        (
            "OutputsDlqNotEmptyAlarm",
            &[("AWS/SQS", "ApproximateNumberOfMessagesVisible")],
        ),
    ];
    let mut alarms: Vec<&str> = t["Resources"]
        .as_mapping()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(name, _)| name.as_str().expect("name"))
        .collect();
    alarms.sort_unstable();
    let mut named: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    named.sort_unstable();
    assert_eq!(alarms, named, "the template's alarms");
    for (name, metrics) in expected {
        let want: Vec<(String, String)> = metrics.iter().map(|(n, m)| (n.to_string(), m.to_string())).collect();
        assert_eq!(metrics_of(resource(&t, name)), want, "{name}");
    }
}

/// `template.yaml` deployed into the test moto by `scripts/deploy_local.py`
/// (the SAM transform, then CloudFormation), read back.
fn deploy_into_moto(parameters: &[&str]) -> jobhook_dev::stack::Deployed {
    let root = jobhook_tests::workspace_root();
    let venv = std::env::var("VENV").unwrap_or_else(|_| ".venv".into());
    let out = std::env::temp_dir().join(jobhook_tests::unique_name("deployed"));
    let stack = jobhook_tests::unique_name("stack").replace('_', "-");
    let mut command = std::process::Command::new(root.join(venv).join("bin/python"));
    command
        .current_dir(&root)
        .arg("scripts/deploy_local.py")
        .args([
            "--endpoint",
            &std::env::var("AWS_ENDPOINT_URL").expect("make test's moto"),
        ])
        .args(["--stack", &stack, "--out"])
        .arg(&out);
    for parameter in parameters {
        command.args(["--parameter", parameter]);
    }
    let output = command.output().expect("run deploy_local.py");
    assert!(
        output.status.success(),
        "deploy failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    jobhook_dev::stack::Deployed::read(&out.join("stack.json")).expect("stack.json")
}

#[test]
fn the_deployed_template_gives_each_function_its_variables_triggers_and_schedule() {
    let t = template();
    let deployed = deploy_into_moto(&["TableDeletionProtection=false"]);
    assert_eq!(
        deployed.unexpected_exceptions(),
        Vec::<&str>::new(),
        "resource types the emulator did not create: {:?}",
        deployed.not_created_by_emulator
    );
    for binary in ["receiver", "processor", "reconciler", "notifier", "keeper"] {
        assert!(deployed.functions.contains_key(binary), "{binary} deployed");
    }
    // Each function's own loader accepts what was deployed, and reads the
    // stack's own resources from it.
    let env_of = |binary: &str| {
        let variables = deployed.functions[binary].environment.clone();
        jobhook::config::Env(move |name: &str| variables.get(name).cloned())
    };
    let outputs = &deployed.outputs;
    let receiver = ReceiverConfig::from_env(&env_of("receiver")).expect("the receiver's deployed environment");
    assert_eq!(receiver.queue_url, outputs["EventsQueueUrl"]);
    let processor = ProcessorConfig::from_env(&env_of("processor")).expect("the processor's deployed environment");
    assert_eq!(processor.table_name, outputs["JobsTableName"]);
    // The archive: the stack's bucket, and timeline entries kept as long as
    // the bucket keeps the segments they point at.
    assert_eq!(processor.archive.bucket.as_ref(), Some(&outputs["ArchiveBucketName"]));
    let retention_days = t["Parameters"]["ArchiveRetentionDays"]["Default"]
        .as_u64()
        .expect("a default");
    assert_eq!(processor.event_ttl.as_secs(), retention_days * 86_400);
    let reconciler = ReconcilerConfig::from_env(&env_of("reconciler")).expect("the reconciler's deployed environment");
    assert_eq!(reconciler.table_name, outputs["JobsTableName"]);
    assert_eq!(reconciler.event_ttl, processor.event_ttl);
    assert!(outputs.contains_key("NotificationsArchiveName"));
    let notifier = NotifierConfig::from_env(&env_of("notifier")).expect("the notifier's deployed environment");
    assert_eq!(notifier.event_bus, outputs["NotificationsBusName"]);
    assert_eq!(notifier.outputs_queue_url, None, "no outputs bucket, no keep requests");
    let keeper = KeeperConfig::from_env(&env_of("keeper")).expect("the keeper's deployed environment");
    assert_eq!(
        (keeper.table_name.as_str(), keeper.bucket),
        (outputs["JobsTableName"].as_str(), None)
    );
    // The table's stream and the queue are the mappings' sources, with the
    // template's settings as Lambda will apply them.
    let queue = deployed.mappings_from("sqs").next().expect("the queue's mapping");
    assert_eq!(queue.function, "processor");
    assert!(queue.reports_item_failures());
    let processor_events = &resource(&t, "ProcessorFunction")["Properties"]["Events"]["Queue"]["Properties"];
    let default_of = |v: &Value| t["Parameters"][ref_name(v).expect("a parameter")]["Default"].as_u64();
    assert_eq!(
        queue.batch_size.map(u64::from),
        default_of(&processor_events["BatchSize"])
    );
    assert_eq!(
        queue
            .scaling_config
            .as_ref()
            .and_then(|c| c.maximum_concurrency)
            .map(|n| n as u64),
        default_of(&processor_events["ScalingConfig"]["MaximumConcurrency"])
    );
    let stream = deployed.mappings_from("dynamodb").next().expect("the stream's mapping");
    assert_eq!(stream.function, "notifier");
    assert!(stream.reports_item_failures());
    assert!(stream.filter_criteria.is_some(), "the notifier's filter");
    assert!(
        stream.destination_config.is_some(),
        "the notifier's failure destination"
    );
    let schedule = deployed.schedules.first().expect("the reconciler's schedule");
    assert_eq!(schedule.function, "reconciler");
    assert_eq!(
        schedule.expression,
        t["Parameters"]["ReconcileSchedule"]["Default"].as_str().unwrap()
    );
}

#[test]
fn a_parameter_cloudformation_would_refuse_is_refused_before_deploying() {
    let root = jobhook_tests::workspace_root();
    let venv = std::env::var("VENV").unwrap_or_else(|_| ".venv".into());
    for (parameter, named) in [
        ("StaleAfterSecs=soon", "is not a number"),
        ("MaxPollsPerRun=0", "below its MinValue"),
        ("TableDeletionProtection=maybe", "is not one of"),
        ("NoSuchParameter=1", "no such parameter"),
    ] {
        let output = std::process::Command::new(root.join(&venv).join("bin/python"))
            .current_dir(&root)
            .args([
                "scripts/deploy_local.py",
                "--endpoint",
                "http://127.0.0.1:9",
                "--stack",
                "never",
            ])
            .args(["--out", &std::env::temp_dir().join("never").to_string_lossy()])
            .args(["--parameter", parameter])
            .output()
            .expect("run deploy_local.py");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{parameter} was accepted");
        assert!(stderr.contains(named), "{parameter}: {stderr}");
    }
}
