"""Writes template.yaml with one deliberate mistake, as JSON (which the SAM
transform and CloudFormation take as they take YAML), for the deploy check's
mutation test (scripts/deploy-mutations.sh): each is a mistake a template
edit could make and only a deploy would reveal.

Usage: python scripts/mutate_template.py MUTATION OUT.json
       python scripts/mutate_template.py --list
"""

import json
import sys

from samtranslator.yaml_helper import yaml_parse


def resources(template):
    return template["Resources"]


def remove_action(template, function, action):
    for policy in resources(template)[function]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            actions = statement.get("Action") if isinstance(statement, dict) else None
            if isinstance(actions, list) and action in actions:
                actions.remove(action)
                return
    raise SystemExit(f"{function} has no statement with {action}")


def processor_without_getitem(template):
    remove_action(template, "ProcessorFunction", "dynamodb:GetItem")


def processor_without_putobject(template):
    # Its statement grants that one action: the mistake is granting another.
    for policy in resources(template)["ProcessorFunction"]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            if isinstance(statement, dict) and statement.get("Action") == ["s3:PutObject"]:
                statement["Action"] = ["s3:GetObject"]
                return
    raise SystemExit("ProcessorFunction has no statement with s3:PutObject alone")


def keeper_without_putobject(template):
    # Its grant (under KeepOutputs) lists the writes; the mistake is reading
    # instead. (moto checks actions, not the resource a grant names.)
    for policy in resources(template)["KeeperFunction"]["Properties"]["Policies"]:
        for statement in policy.get("Statement", []):
            if isinstance(statement, dict) and "Fn::If" in statement:
                granted = statement["Fn::If"][1]
                actions = granted.get("Action", []) if isinstance(granted, dict) else []
                if "s3:PutObject" in actions:
                    actions[actions.index("s3:PutObject")] = "s3:GetObject"
                    return
    raise SystemExit("KeeperFunction has no conditional statement with s3:PutObject")


def receiver_without_sendmessage(template):
    remove_action(template, "ReceiverFunction", "sqs:SendMessage")


def open_jobs_index_key_renamed(template):
    table = resources(template)["JobsTable"]["Properties"]
    for definition in table["AttributeDefinitions"]:
        if definition["AttributeName"] == "next_poll_at":
            definition["AttributeName"] = "next_poll"
    for index in table["GlobalSecondaryIndexes"]:
        for key in index["KeySchema"]:
            if key["AttributeName"] == "next_poll_at":
                key["AttributeName"] = "next_poll"


def table_stream_removed(template):
    del resources(template)["JobsTable"]["Properties"]["StreamSpecification"]


def processor_mapping_without_report_batch_item_failures(template):
    del resources(template)["ProcessorFunction"]["Properties"]["Events"]["Queue"]["Properties"]["FunctionResponseTypes"]


def processor_table_variable_renamed(template):
    variables = resources(template)["ProcessorFunction"]["Properties"]["Environment"]["Variables"]
    variables["JOBHOOK_TABLE"] = variables.pop("JOBHOOK_TABLE_NAME")


MUTATIONS = {
    "processor-without-getitem": processor_without_getitem,
    "processor-without-putobject": processor_without_putobject,
    "keeper-without-putobject": keeper_without_putobject,
    "receiver-without-sendmessage": receiver_without_sendmessage,
    "open-jobs-index-key-renamed": open_jobs_index_key_renamed,
    "table-stream-removed": table_stream_removed,
    "processor-mapping-without-report-batch-item-failures": processor_mapping_without_report_batch_item_failures,
    "processor-table-variable-renamed": processor_table_variable_renamed,
}


def main(argv):
    if argv == ["--list"]:
        print("\n".join(MUTATIONS))
        return 0
    if len(argv) != 2 or argv[0] not in MUTATIONS:
        print(__doc__.strip(), file=sys.stderr)
        print("mutations: " + ", ".join(MUTATIONS), file=sys.stderr)
        return 2
    with open("template.yaml") as f:
        template = yaml_parse(f.read())
    MUTATIONS[argv[0]](template)
    with open(argv[1], "w") as f:
        json.dump(template, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
