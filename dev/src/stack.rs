//! The local stack as `scripts/deploy_local.py` read it back from the
//! deployed template (`stack.json`): the functions, their event source
//! mappings and schedules. The trigger bridge runs exactly these, with the
//! settings AWS would apply (batch size, filter, partial failures, retries,
//! failure destination), so a trigger the template gets wrong fails locally.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::Error;

#[derive(Debug, Clone, Deserialize)]
pub struct Deployed {
    pub stack: String,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// Binary name → the deployed function.
    pub functions: BTreeMap<String, DeployedFunction>,
    pub event_source_mappings: Vec<Mapping>,
    pub schedules: Vec<Schedule>,
    /// Resource type → the template's resources of that type the emulator
    /// did not create.
    #[serde(default)]
    pub not_created_by_emulator: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeployedFunction {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// One event source mapping, as `ListEventSourceMappings` answers it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mapping {
    /// The binary the mapping invokes.
    #[serde(rename = "function")]
    pub function: String,
    pub event_source_arn: String,
    pub batch_size: Option<u32>,
    pub maximum_batching_window_in_seconds: Option<u64>,
    #[serde(default)]
    pub function_response_types: Vec<String>,
    pub filter_criteria: Option<FilterCriteria>,
    pub scaling_config: Option<ScalingConfig>,
    pub maximum_retry_attempts: Option<i64>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub destination_config: Option<DestinationConfig>,
    pub starting_position: Option<String>,
    pub state: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilterCriteria {
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub pattern: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingConfig {
    pub maximum_concurrency: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DestinationConfig {
    pub on_failure: Option<OnFailure>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OnFailure {
    pub destination: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Schedule {
    pub name: String,
    pub expression: String,
    pub function: String,
}

/// The resource types of template.yaml the local emulator cannot create,
/// each checked on AWS only: the HTTP API and its stage (the receiver runs
/// behind cargo lambda's function URL instead), its invoke permission, and
/// the CloudWatch alarms. A type not listed here fails `make deploy-check`
/// and the template test, so that a new gap is noticed and named.
pub const EMULATOR_EXCEPTIONS: &[&str] = &[
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::CloudWatch::Alarm",
    "AWS::Lambda::Permission",
];

/// The AWS service an ARN belongs to (`sqs`, `dynamodb`).
pub fn arn_service(arn: &str) -> &str {
    arn.split(':').nth(2).unwrap_or_default()
}

/// The last `:`-separated part of an ARN: a queue's name.
pub fn arn_resource(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or_default()
}

impl Deployed {
    pub fn read(path: &std::path::Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
    }

    /// The resource types the emulator did not create that are not known
    /// exceptions ([`EMULATOR_EXCEPTIONS`]).
    pub fn unexpected_exceptions(&self) -> Vec<&str> {
        self.not_created_by_emulator
            .keys()
            .map(String::as_str)
            .filter(|kind| !EMULATOR_EXCEPTIONS.contains(kind))
            .collect()
    }

    /// The mappings whose source is `service` (`sqs`, `dynamodb`).
    pub fn mappings_from<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Mapping> + 'a {
        self.event_source_mappings
            .iter()
            .filter(move |m| arn_service(&m.event_source_arn) == service)
    }
}

impl Mapping {
    /// Whether the function's `batchItemFailures` count: without
    /// `ReportBatchItemFailures`, Lambda ignores them and a successful
    /// invocation deletes (or moves past) the whole batch.
    pub fn reports_item_failures(&self) -> bool {
        self.function_response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }

    /// Whether `record` passes the mapping's filters (any one of them).
    /// A pattern the local matcher cannot evaluate is an error, not a pass.
    pub fn passes(&self, record: &Value) -> Result<bool, Error> {
        let Some(criteria) = &self.filter_criteria else {
            return Ok(true);
        };
        if criteria.filters.is_empty() {
            return Ok(true);
        }
        for filter in &criteria.filters {
            let pattern: Value =
                serde_json::from_str(&filter.pattern).map_err(|e| format!("filter pattern {}: {e}", filter.pattern))?;
            if matches_pattern(&pattern, record)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// EventBridge-style pattern matching, as Lambda applies `FilterCriteria`:
/// every key of the pattern must match; a leaf is a list of alternatives,
/// each a value or one of the operators `anything-but`, `prefix`, `exists`.
pub fn matches_pattern(pattern: &Value, event: &Value) -> Result<bool, Error> {
    match pattern {
        Value::Object(fields) => {
            for (key, sub) in fields {
                let value = event.get(key).unwrap_or(&Value::Null);
                if !matches_pattern(sub, value)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Value::Array(alternatives) => {
            for alternative in alternatives {
                if matches_leaf(alternative, event)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        other => Err(format!("a filter pattern's leaf must be a list, not {other}").into()),
    }
}

fn matches_leaf(alternative: &Value, value: &Value) -> Result<bool, Error> {
    let Value::Object(operator) = alternative else {
        return Ok(!value.is_null() && alternative == value);
    };
    let (name, argument) = operator.iter().next().ok_or("an empty operator in a filter pattern")?;
    match name.as_str() {
        "exists" => Ok(argument.as_bool().ok_or("exists takes true or false")? != value.is_null()),
        "prefix" => Ok(value
            .as_str()
            .zip(argument.as_str())
            .is_some_and(|(v, p)| v.starts_with(p))),
        "anything-but" => {
            if value.is_null() {
                return Ok(false);
            }
            Ok(match argument {
                Value::Array(excluded) => !excluded.contains(value),
                single => single != value,
            })
        }
        other => Err(format!("the local bridge cannot evaluate the filter operator {other:?}").into()),
    }
}

/// The period of a schedule expression. `rate(N unit)` only: the local
/// stack's schedules are rates, in seconds where AWS allows minutes at least.
pub fn schedule_period(expression: &str) -> Result<Duration, Error> {
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|rest| rest.strip_suffix(')'))
        .ok_or_else(|| format!("schedule {expression:?}: the local bridge runs rate(N unit) expressions only"))?;
    let (count, unit) = inner
        .trim()
        .split_once(' ')
        .ok_or_else(|| format!("schedule {expression:?}: expected rate(N unit)"))?;
    let count: u64 = count
        .parse()
        .map_err(|_| format!("schedule {expression:?}: {count:?} is not a count"))?;
    let seconds = match unit.trim() {
        "second" | "seconds" => 1,
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => return Err(format!("schedule {expression:?}: unknown unit {other:?}").into()),
    };
    if count == 0 {
        return Err(format!("schedule {expression:?}: a rate of zero").into());
    }
    Ok(Duration::from_secs(count * seconds))
}

/// A log line at level ERROR, in the text format (`ERROR target: …`, with or
/// without a timestamp before it) or the JSON one.
fn is_error_line(line: &str) -> bool {
    line.trim_start().starts_with("ERROR ") || line.contains(" ERROR ") || line.contains("\"level\":\"ERROR\"")
}

/// What the bridge's log says broke: a mapping that lost messages, gave up
/// on records, or has a filter it cannot evaluate. (Its echoes of a
/// function's failures are that function's, and named from its own log.)
pub fn diagnose_bridge(log: &str) -> Vec<String> {
    let mut findings: Vec<String> = Vec::new();
    for line in log.lines() {
        let line = line.trim();
        let named = line.contains("has no ReportBatchItemFailures")
            || line.contains(" gave up on ")
            || line.contains("cannot evaluate");
        // Its lines start with the part that wrote them (`bridge:`, `stream:`).
        let line = line
            .split_once(": ")
            .filter(|(part, _)| !part.contains(' '))
            .map_or(line, |(_, rest)| rest);
        if named && !findings.iter().any(|f| f == line) {
            findings.push(line.to_owned());
        }
    }
    findings
}

/// What a function's log says broke, one line per cause:
/// each action it was denied, a start-up failure, the bridge's notes that a
/// mapping lost messages or gave up on records, and its first error lines.
pub fn diagnose(log: &str) -> Vec<String> {
    const DENIED: &str = "not authorized to perform: ";
    const MAX_ERRORS: usize = 3;
    let mut findings: Vec<String> = Vec::new();
    let mut errors = 0;
    let add = |finding: String, findings: &mut Vec<String>| {
        if !findings.contains(&finding) {
            findings.push(finding);
        }
    };
    for line in log.lines() {
        if let Some(at) = line.find(DENIED) {
            let action: String = line[at + DENIED.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == ':' || *c == '-')
                .collect();
            add(
                format!("denied {action} (AccessDenied: its role does not grant it)"),
                &mut findings,
            );
        } else if let Some(at) = line.find("cannot start:") {
            add(line[at..].trim().to_owned(), &mut findings);
        } else if line.contains("has no ReportBatchItemFailures") || line.contains(" gave up on ") {
            add(line.trim().to_owned(), &mut findings);
        } else if is_error_line(line) && errors < MAX_ERRORS {
            errors += 1;
            // The message, without the invocation's span (request and trace ids).
            let message = line
                .split_once("}: ")
                .map_or(line.trim(), |(_, message)| message.trim());
            add(format!("error: {message}"), &mut findings);
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The notifier's filter pattern, read from template.yaml: the bridge
    /// applies the deployed one, so the test holds the template's own.
    fn notifier_pattern() -> String {
        let text = std::fs::read_to_string(crate::template::path()).expect("template.yaml");
        let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
        template["Resources"]["NotifierFunction"]["Properties"]["Events"]["Stream"]["Properties"]["FilterCriteria"]
            ["Filters"][0]["Pattern"]
            .as_str()
            .expect("the notifier's filter pattern")
            .to_owned()
    }

    fn notifier_mapping(pattern: &str) -> Mapping {
        serde_json::from_value(json!({
            "function": "notifier",
            "EventSourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
            "FilterCriteria": {"Filters": [{"Pattern": pattern}]},
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
        }))
        .expect("mapping")
    }

    fn record(sk: &str, transitions: Option<&str>) -> Value {
        let mut new_image = json!({"pk": {"S": "dev#job-1"}, "sk": {"S": sk}});
        if let Some(n) = transitions {
            new_image["transitions"] = json!({ "N": n });
        }
        json!({"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": "dev#job-1"}, "sk": {"S": sk}}, "NewImage": new_image}})
    }

    #[test]
    fn the_notifier_filter_passes_state_items_that_have_had_a_transition() {
        let mapping = notifier_mapping(&notifier_pattern());
        assert!(mapping.passes(&record("STATE", Some("2"))).unwrap());
        assert!(
            !mapping.passes(&record("STATE", Some("0"))).unwrap(),
            "no transition yet"
        );
        assert!(!mapping.passes(&record("STATE", None)).unwrap(), "no count at all");
        assert!(
            !mapping.passes(&record("EVENT#e1", Some("2"))).unwrap(),
            "a timeline item"
        );
        assert!(mapping.reports_item_failures());
    }

    #[test]
    fn prefix_exists_and_scalar_operators_match_as_eventbridge_does() {
        let event = json!({"a": "job.completed", "b": 3});
        assert!(matches_pattern(&json!({"a": [{"prefix": "job."}]}), &event).unwrap());
        assert!(!matches_pattern(&json!({"a": [{"prefix": "batch."}]}), &event).unwrap());
        assert!(matches_pattern(&json!({"c": [{"exists": false}]}), &event).unwrap());
        assert!(!matches_pattern(&json!({"b": [{"exists": false}]}), &event).unwrap());
        assert!(matches_pattern(&json!({"b": [3]}), &event).unwrap());
        assert!(matches_pattern(&json!({"b": [{"anything-but": 4}]}), &event).unwrap());
    }

    #[test]
    fn an_operator_the_bridge_cannot_evaluate_is_an_error_not_a_pass() {
        let mapping = notifier_mapping(r#"{"dynamodb": {"Keys": {"sk": {"S": [{"wildcard": "ST*"}]}}}}"#);
        let error = mapping.passes(&record("STATE", Some("1"))).unwrap_err();
        assert!(error.to_string().contains("wildcard"), "{error}");
    }

    #[test]
    fn without_report_batch_item_failures_the_whole_batch_counts() {
        let mut mapping = notifier_mapping(&notifier_pattern());
        mapping.function_response_types.clear();
        assert!(!mapping.reports_item_failures());
    }

    #[test]
    fn a_denied_call_is_named_by_its_action_once() {
        let log = "2026-12-02T06:00:00Z  WARN processor: dynamodb:GetItem: AccessDeniedException: User: \
                   arn:aws:iam::123456789012:user/s-processor is not authorized to perform: dynamodb:GetItem\n\
                   again: User: x is not authorized to perform: dynamodb:GetItem\n\
                   fine line\n";
        assert_eq!(
            diagnose(log),
            ["denied dynamodb:GetItem (AccessDenied: its role does not grant it)"]
        );
    }

    #[test]
    fn start_failures_lost_batches_and_errors_are_named() {
        let log = "processor cannot start: JOBHOOK_TABLE_NAME is required\n\
                   bridge: processor reported 1 failed messages, but its event source mapping has no ReportBatchItemFailures: ...\n\
                   2026-12-02T06:00:00Z ERROR reconciler: dynamodb:Query: ValidationException: Query condition missed key schema element\n";
        let findings = diagnose(log);
        assert_eq!(findings.len(), 3, "{findings:?}");
        assert!(findings[0].starts_with("cannot start: JOBHOOK_TABLE_NAME"));
        assert!(findings[1].contains("no ReportBatchItemFailures"));
        assert!(findings[2].contains("missed key schema element"));
        let spanned = "ERROR Lambda runtime invoke{requestId=\"d9\"}: could not read the source's due jobs error=ValidationException";
        assert_eq!(
            diagnose(spanned),
            ["error: could not read the source's due jobs error=ValidationException"]
        );
        assert!(diagnose("all good\n").is_empty());
    }

    #[test]
    fn the_bridge_names_its_own_findings_not_the_functions_echoed_errors() {
        let log = "bridge: processor failed: {\"errorMessage\":\"... is not authorized to perform: dynamodb:GetItem\"}\n\
                   bridge: processor reported 2 failed messages, but its event source mapping has no ReportBatchItemFailures: x\n\
                   stream: notifier gave up on 3 records after 10 retries; to arn:aws:sqs:us-east-1:1:f\n";
        let findings = diagnose_bridge(log);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings[0].starts_with("processor reported 2"), "{findings:?}");
        assert!(findings[1].starts_with("notifier gave up"), "{findings:?}");
    }

    #[test]
    fn schedules_run_at_their_rate_and_other_expressions_are_refused() {
        assert_eq!(schedule_period("rate(5 minutes)").unwrap(), Duration::from_secs(300));
        assert_eq!(schedule_period("rate(1 minute)").unwrap(), Duration::from_secs(60));
        assert_eq!(schedule_period("rate(3 seconds)").unwrap(), Duration::from_secs(3));
        for refused in [
            "cron(0 * * * ? *)",
            "rate(0 minutes)",
            "rate(five minutes)",
            "rate(5 fortnights)",
        ] {
            assert!(schedule_period(refused).is_err(), "{refused}");
        }
    }
}
