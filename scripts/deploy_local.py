"""Deploys template.yaml into the local emulator as `sam deploy` deploys it
into AWS, and writes what each function gets from the deployed stack.

1. The SAM transform, by the library SAM CLI uses (aws-sam-translator), with
   each function's CodeUri pointed at a placeholder object: the code that runs
   locally is the workspace's own binaries under `cargo lambda watch`.
2. CloudFormation CreateStack with the given parameters, in moto (whose
   CloudFormation scripts/moto_server.py makes deploy as AWS does).
3. Read back, from the deployed stack only: the resources (with the ones the
   emulator cannot create named in one line), each function's environment
   (GetFunctionConfiguration), its role's policies, the event source mappings
   (ListEventSourceMappings), the schedules, the outputs.
4. Credentials per function: an IAM user holding copies of exactly its
   role's inline and managed policies (moto's STS AssumeRole into a
   CloudFormation-made role fails), and an admin user for the tools that play
   the AWS services (the trigger bridge) and the user (seed, simulator, CLI).
5. With --enforce-iam, moto checks every request from then on.

Writes into --out: stack.json (the above), <binary>.env (one per function:
its deployed environment and credentials) and tools.env (admin credentials
and the stack's names under the variables the tools read).

Usage: python scripts/deploy_local.py --endpoint URL --stack NAME --out DIR
           [--function-endpoint URL] [--template template.yaml]
           [--parameter Key=Value ...] [--enforce-iam]
"""

import argparse
import io
import json
import os
import sys
import time
import urllib.request
import zipfile
from collections import defaultdict

import boto3
from botocore.exceptions import ClientError
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

CODE_BUCKET = "jobhook-local-code"
CODE_KEY = "placeholder.zip"

# The tools' variables for the stack's outputs (the functions' own come from
# their deployed configuration).
TOOL_OUTPUTS = {
    "JOBHOOK_QUEUE_URL": "EventsQueueUrl",
    "JOBHOOK_DLQ_URL": "EventsDlqUrl",
    "JOBHOOK_TRACK_QUEUE_URL": "TrackQueueUrl",
    "JOBHOOK_TABLE_NAME": "JobsTableName",
    "JOBHOOK_SOURCES_SECRET": "SourcesSecret",
    "JOBHOOK_API_SECRET": "ApiSecret",
    "JOBHOOK_EVENT_BUS": "NotificationsBusName",
    "JOBHOOK_ARCHIVE_BUCKET": "ArchiveBucketName",
    "JOBHOOK_NOTIFICATIONS_ARCHIVE": "NotificationsArchiveName",
    "JOBHOOK_OUTPUTS_QUEUE_URL": "OutputsQueueUrl",
    "JOBHOOK_OUTPUTS_DLQ_URL": "OutputsDlqUrl",
}


# Settings of the deployed functions that the CLI reads too.
SHARED_WITH_TOOLS = ["JOBHOOK_STALE_AFTER_SECS", "JOBHOOK_OUTPUTS_BUCKET"]


class DeployError(Exception):
    pass


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument(
        "--function-endpoint", help="the endpoint the functions reach AWS at (a fault proxy); default --endpoint"
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--enforce-iam", action="store_true")
    return parser.parse_args(argv)


def parameters_from(pairs, template):
    declared = template.get("Parameters", {})
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise DeployError(f"--parameter {pair!r}: expected Key=Value")
        if key not in declared:
            raise DeployError(f"--parameter {key}: the template has no such parameter")
        values[key] = value
    for key, value in values.items():
        check_parameter(key, value, declared[key])
    return values


def check_parameter(key, value, declaration):
    """CloudFormation's own checks of a parameter value (moto makes none)."""
    if declaration.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise DeployError(f"parameter {key}: {value!r} is not a number") from None
        if "MinValue" in declaration and number < float(declaration["MinValue"]):
            raise DeployError(f"parameter {key}: {value} is below its MinValue {declaration['MinValue']}")
        if "MaxValue" in declaration and number > float(declaration["MaxValue"]):
            raise DeployError(f"parameter {key}: {value} is above its MaxValue {declaration['MaxValue']}")
    allowed = declaration.get("AllowedValues")
    if allowed is not None and value not in [str(a) for a in allowed]:
        raise DeployError(f"parameter {key}: {value!r} is not one of {allowed}")


def functions_of(template):
    """Each SAM function's logical id and the workspace binary it runs."""
    functions = {}
    for logical, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            raise DeployError(f"{logical}: Metadata.BuildProperties.Binary names no binary")
        functions[logical] = binary
    return functions


def evaluate_conditions(template, parameters):
    """The template's conditions for these parameters (the intrinsics a
    Conditions section may use), so a resource skipped by its condition is
    told from one the emulator could not create."""
    declared = template.get("Parameters", {})

    def value(node):
        if isinstance(node, dict) and "Ref" in node:
            name = node["Ref"]
            if name in parameters:
                return parameters[name]
            return str(declared.get(name, {}).get("Default", ""))
        return node

    results = {}

    def condition(name):
        if name not in results:
            results[name] = truth(template["Conditions"][name])
        return results[name]

    def truth(node):
        (fn, args), = node.items()
        if fn == "Fn::Equals":
            return str(value(args[0])) == str(value(args[1]))
        if fn == "Fn::Not":
            return not truth(args[0])
        if fn == "Fn::And":
            return all(truth(a) for a in args)
        if fn == "Fn::Or":
            return any(truth(a) for a in args)
        if fn == "Condition":
            return condition(args)
        raise DeployError(f"condition function {fn} is not understood here")

    return {name: condition(name) for name in template.get("Conditions", {})}


def upload_placeholder(s3):
    s3.create_bucket(Bucket=CODE_BUCKET)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\necho 'runs under cargo lambda watch' >&2; exit 1\n")
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=buffer.getvalue())


class NoManagedPolicyNames:
    """The translator's loader for managed policies named without an ARN;
    the template names every managed policy by ARN (SAM adds them so)."""

    def load(self):
        return {}


def translate(template, parameters):
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"
    return transform(template, parameters, NoManagedPolicyNames())


def create_stack(cfn, name, template, parameters):
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 120
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.time() > deadline:
            raise DeployError(f"stack {name} still {status} after 120 s")
        time.sleep(0.2)
    if status != "CREATE_COMPLETE":
        reasons = [
            f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason')}"
            for e in cfn.describe_stack_events(StackName=name)["StackEvents"]
            if e.get("ResourceStatus", "").endswith("FAILED")
        ]
        raise DeployError(f"stack {name} is {status}: " + ("; ".join(reasons) or stack.get("StackStatusReason", "")))
    return stack


def inventory(cfn_template, conditions, summaries):
    """What the stack holds by type, what its conditions skipped, and what
    the emulator did not create (the exceptions)."""
    created = {s["LogicalResourceId"]: s for s in summaries if s.get("LogicalResourceId") and s.get("PhysicalResourceId")}
    by_type, skipped, missing = defaultdict(list), [], defaultdict(list)
    for logical, resource in cfn_template["Resources"].items():
        kind = resource["Type"]
        if "Condition" in resource and not conditions[resource["Condition"]]:
            skipped.append(logical)
        elif logical in created:
            by_type[kind].append(logical)
        else:
            missing[kind].append(logical)
    return by_type, sorted(skipped), missing


def policy_documents(iam, role_name):
    inline = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        inline.append((name, json.loads(document) if isinstance(document, str) else document))
    managed = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]]
    return inline, managed


def unresolved_resources(logical, documents):
    """Allow statements whose Resource resolved to nothing: on AWS the deploy
    fails or the function is denied at its first call."""
    problems = []
    for policy_name, document in documents:
        for statement in document.get("Statement", []):
            if statement is None:
                problems.append(f"{logical} {policy_name}: a null statement")
                continue
            resources = statement.get("Resource")
            resources = resources if isinstance(resources, list) else [resources]
            for resource in resources:
                if not resource or not isinstance(resource, str) or "None" in resource or "<moto" in resource:
                    actions = statement.get("Action")
                    problems.append(f"{logical} {policy_name}: {actions} on a resource that resolved to {resource!r}")
    return problems


def for_any_resource(document):
    """moto evaluates most actions against the resource `*`, so a statement
    scoped to an ARN would never match: the copy keeps the actions and
    effects, with every resource `*`. Resource scoping is AWS's to prove."""
    statements = []
    for statement in document.get("Statement", []):
        copy = dict(statement)
        if "Resource" in copy:
            copy["Resource"] = "*"
        statements.append(copy)
    return {"Version": "2012-10-17", "Statement": statements}


def user_with_keys(iam, name, inline, managed):
    iam.create_user(UserName=name)
    for policy_name, document in inline:
        iam.put_user_policy(UserName=name, PolicyName=policy_name, PolicyDocument=json.dumps(for_any_resource(document)))
    for arn in managed:
        iam.attach_user_policy(UserName=name, PolicyArn=arn)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def env_lines(variables):
    lines = []
    for key, value in sorted(variables.items()):
        if "\n" in str(value):
            raise DeployError(f"{key}: a value with a line break cannot go in an env file")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def deploy(args):
    with open(args.template) as f:
        template = yaml_parse(f.read())
    parameters = parameters_from(args.parameter, template)
    functions = functions_of(template)
    conditions = evaluate_conditions(template, parameters)

    session = boto3.session.Session(
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        region_name=args.region,
    )

    def client(service):
        return session.client(service, endpoint_url=args.endpoint)

    # The translator reads the region from the environment.
    os.environ["AWS_DEFAULT_REGION"] = args.region
    upload_placeholder(client("s3"))
    # The outputs bucket is the user's, made before the stack: here, made now.
    if parameters.get("OutputsBucketName"):
        client("s3").create_bucket(Bucket=parameters["OutputsBucketName"])
    cfn_template = translate(template, parameters)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "template.json"), "w") as f:
        json.dump(cfn_template, f, indent=1)

    cfn = client("cloudformation")
    stack = create_stack(cfn, args.stack, cfn_template, parameters)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    summaries = cfn.list_stack_resources(StackName=args.stack)["StackResourceSummaries"]
    by_type, skipped, missing = inventory(cfn_template, conditions, summaries)
    physical = {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries if s.get("LogicalResourceId")}

    lam, iam = client("lambda"), client("iam")
    problems, deployed = [], {}
    for logical, binary in functions.items():
        name = physical.get(logical)
        if not name:
            problems.append(f"{logical}: not created")
            continue
        config = lam.get_function_configuration(FunctionName=name)
        # Lambda keeps every variable as a string; moto kept template numbers.
        variables = {k: str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()}
        for key, value in variables.items():
            if not value or value.startswith("<"):
                problems.append(f"{logical}: environment variable {key} resolved to {value!r}")
        role_name = config["Role"].rsplit("/", 1)[-1]
        inline, managed = policy_documents(iam, role_name)
        problems += unresolved_resources(logical, inline)
        deployed[binary] = {
            "logical_id": logical,
            "name": name,
            "arn": config["FunctionArn"],
            "timeout": config.get("Timeout"),
            "memory": config.get("MemorySize"),
            "role": role_name,
            "environment": variables,
            "policies": {"inline": dict(inline), "managed": managed},
        }
    if problems:
        raise DeployError("; ".join(problems))

    by_arn = {f["arn"]: binary for binary, f in deployed.items()}
    mappings = []
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        binary = by_arn.get(mapping["FunctionArn"])
        if binary:
            mappings.append({**json.loads(json.dumps(mapping, default=str)), "function": binary})
    scheduler = client("scheduler")
    schedules = []
    for summary in scheduler.list_schedules()["Schedules"]:
        schedule = scheduler.get_schedule(Name=summary["Name"], GroupName=summary.get("GroupName", "default"))
        binary = by_arn.get(schedule["Target"]["Arn"])
        if binary:
            schedules.append({"name": schedule["Name"], "expression": schedule["ScheduleExpression"], "function": binary})

    endpoint_env = {
        "AWS_ENDPOINT_URL": args.function_endpoint or args.endpoint,
        "AWS_REGION": args.region,
        "AWS_DEFAULT_REGION": args.region,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    admin_key, admin_secret = user_with_keys(
        iam, f"{args.stack}-admin", [("admin", {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})], []
    )
    for binary, function in deployed.items():
        key, secret = user_with_keys(
            iam, f"{args.stack}-{binary}", list(function["policies"]["inline"].items()), function["policies"]["managed"]
        )
        function["user"] = f"{args.stack}-{binary}"
        with open(os.path.join(args.out, f"{binary}.env"), "w") as f:
            f.write(env_lines({**function["environment"], **endpoint_env,
                               "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}))
    tools = {**endpoint_env, "AWS_ENDPOINT_URL": args.endpoint,
             "AWS_ACCESS_KEY_ID": admin_key, "AWS_SECRET_ACCESS_KEY": admin_secret}
    for variable, output in TOOL_OUTPUTS.items():
        if output in outputs:
            tools[variable] = outputs[output]
    # `jobhook track` schedules a job's first poll as the functions do.
    for function in deployed.values():
        for variable in SHARED_WITH_TOOLS:
            if variable in function["environment"]:
                tools[variable] = function["environment"][variable]
    with open(os.path.join(args.out, "tools.env"), "w") as f:
        f.write(env_lines(tools))

    exceptions = sorted(missing)
    with open(os.path.join(args.out, "stack.json"), "w") as f:
        json.dump({
            "stack": args.stack,
            "parameters": parameters,
            "outputs": outputs,
            "resources": {kind: sorted(ids) for kind, ids in sorted(by_type.items())},
            "skipped_by_condition": skipped,
            "not_created_by_emulator": {kind: sorted(ids) for kind, ids in sorted(missing.items())},
            "functions": deployed,
            "event_source_mappings": mappings,
            "schedules": schedules,
        }, f, indent=1, default=str)

    counts = ", ".join(f"{kind} {len(ids)}" for kind, ids in sorted(by_type.items()))
    print(f"deployed {args.template} as stack {args.stack}: {sum(map(len, by_type.values()))} resources ({counts})")
    if skipped:
        print(f"skipped by their conditions: {', '.join(skipped)}")
    print("not created by the emulator: " + (", ".join(
        f"{kind} ({', '.join(sorted(missing[kind]))})" for kind in exceptions) or "none"))
    for binary, function in sorted(deployed.items()):
        actions = sorted({a for d in function["policies"]["inline"].values() for s in d.get("Statement", [])
                          for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])})
        print(f"  {binary}: {len(function['environment'])} variables; may {', '.join(actions)}"
              f" (+ {len(function['policies']['managed'])} managed)")
    for mapping in mappings:
        print(f"  trigger: {mapping['EventSourceArn'].split(':')[2]} -> {mapping['function']}"
              f" (batch {mapping.get('BatchSize')}, {', '.join(mapping.get('FunctionResponseTypes') or ['whole batches'])})")
    for schedule in schedules:
        print(f"  schedule: {schedule['expression']} -> {schedule['function']}")

    if args.enforce_iam:
        # From the next request on, moto checks each against its signer's policies.
        request = urllib.request.Request(
            f"{args.endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(request, timeout=10).read()
        print("IAM enforced: each function signs with its own role's policies")


def main(argv):
    args = parse_args(argv)
    try:
        deploy(args)
    except DeployError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    except ClientError as error:
        print(f"deploy: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
