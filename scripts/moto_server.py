"""moto's server with DynamoDB requests serialized and cheap transactions.

moto handles requests on parallel threads and does not lock its DynamoDB
backend, so two concurrent conditional writes to one item can both pass their
conditions (seen here: two TransactWriteItems on one job both applied).
DynamoDB itself applies each item's writes atomically. Serializing DynamoDB
requests restores that guarantee, so the concurrency tests exercise jobhook's
conditional writes rather than moto's races. Other services (SQS long polls
in particular) stay concurrent.

moto also deep-copies every table a TransactWriteItems touches, once per
item, before it starts, so that it can roll back: each transaction costs time
in proportion to the table's size (the local demo slowed to a crawl at a few
thousand items). Here a transaction instead saves only the items it touches
and puts them back if it fails.

Its CloudFormation is made to deploy template.yaml as AWS would (each fix
below names what moto does otherwise); scripts/deploy_local.py deploys it.

Usage: python scripts/moto_server.py HOST PORT
"""

import copy
import datetime
import html
import json
import re
import sys
import threading
import time
import types
import uuid

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

import moto.cloudformation.parsing as cfn_parsing
import moto.dynamodb.models as dynamodb_models
from moto.core.common_models import CloudFormationModel
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.awslambda.models import LambdaBackend
from moto.events.models import Archive, EventBus, Replay, ReplayState, events_backends
from moto.s3.models import FakeBucket, s3_backends
from moto.sqs.models import sqs_backends
from moto.iam.models import Role, iam_backends
from moto.scheduler.models import scheduler_backends
from moto.secretsmanager.models import secretsmanager_backends


def _deepcopy_except_tables(obj, memo=None):
    # Tables are rolled back item by item in transact_write_items below.
    if isinstance(obj, Table):
        return obj
    return copy.deepcopy(obj, memo)


dynamodb_models.copy = types.SimpleNamespace(deepcopy=_deepcopy_except_tables)
_moto_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _touched_key(table, op_type, op):
    if op_type != "Put":
        return op["Key"]
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = _touched_key(table, op_type, op)
        before = self.get_item(table.name, key)
        saved.append((table.name, key, copy.deepcopy(before.to_json()["Attributes"]) if before else None))
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, attributes in reversed(saved):
            if attributes is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise


dynamodb_models.DynamoDBBackend.transact_write_items = transact_write_items


# --- IAM as AWS checks it --------------------------------------------------

# IAM has no dynamodb:TransactWriteItems or TransactGetItems action: AWS
# authorizes a transaction item by item, as PutItem, UpdateItem, DeleteItem,
# ConditionCheckItem or GetItem (DynamoDB developer guide, "Using IAM with
# DynamoDB transactions"). moto checked the operation's own name.
TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
_moto_authorize = DynamoHandler._authenticate_and_authorize_normal_action


def _authorize_dynamodb(self, resource="*"):
    operation = self._get_action()
    if operation not in ("TransactWriteItems", "TransactGetItems"):
        return _moto_authorize(self, resource)
    # moto's handler has parsed the body into a dict by now.
    body = self.body if isinstance(self.body, dict) else json.loads(self.body or "{}")
    items = body.get("TransactItems", [])
    actions = sorted({TRANSACTION_ITEM_ACTIONS[next(iter(item))] for item in items if item})
    try:
        for action in actions:
            self._get_action = lambda action=action: action
            _moto_authorize(self, resource)
    finally:
        self.__dict__.pop("_get_action", None)


DynamoHandler._authenticate_and_authorize_normal_action = _authorize_dynamodb

# `!GetAtt Table.StreamArn` of a table without a stream is a template error
# (CreateStack refuses it); moto answered 500 (KeyError LatestStreamArn).
_moto_table_attribute = Table.get_cfn_attribute


def _table_attribute(self, attribute_name):
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

    if attribute_name == "StreamArn" and not (self.stream_specification or {}).get("StreamEnabled"):
        raise UnformattedGetAttTemplateException()
    return _moto_table_attribute(self, attribute_name)


Table.get_cfn_attribute = _table_attribute

# --- Event source mappings: recorded, run by the bridge ------------------

# moto runs a mapping itself on every SendMessage or stream write: it
# receives the queue's messages (counting a receive against the redrive
# policy each time) or empties the stream, to invoke a Lambda it can only
# run in Docker. Here a mapping is recorded and listed, as on AWS, and the
# trigger bridge (dev/src/bridge.rs) runs it against the functions.
_moto_create_mapping = LambdaBackend.create_event_source_mapping


def _create_mapping(self, spec):
    mapping = _moto_create_mapping(self, spec)
    for queue in sqs_backends[self.account_id][self.region_name].queues.values():
        queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
    for table in dynamodb_models.dynamodb_backends[self.account_id][self.region_name].tables.values():
        table.lambda_event_source_mappings.pop(mapping.function_arn, None)
    return mapping


LambdaBackend.create_event_source_mapping = _create_mapping

# --- CloudFormation as AWS does it ---------------------------------------

# `!Ref` of an event bus is its name; moto's EventBus has no physical id, so
# the Ref resolved to the Python object (the notifier's JOBHOOK_EVENT_BUS).
EventBus.physical_resource_id = property(lambda self: self.name)

# An archive's EventPattern is JSON in a template, as a rule's is; moto's
# Archive parsed it as a string only (TypeError, a 500).
_moto_archive_from_cfn = Archive.create_from_cloudformation_json.__func__


def _archive_from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = cloudformation_json["Properties"]
    if isinstance(properties.get("EventPattern"), dict):
        properties["EventPattern"] = json.dumps(properties["EventPattern"])
    return _moto_archive_from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)


Archive.create_from_cloudformation_json = classmethod(_archive_from_cfn)
# An archive's Ref is its name; moto's Archive had no physical id.
Archive.physical_resource_id = property(lambda self: self.name)

# A replay sends the archived events of its time window, and only those, to
# the bus's rules, and a replayed event is not archived again (EventBridge
# user guide, "Replaying archived events"). moto replayed the whole archive,
# into the archive's own rule as well, so each replay doubled the archive.
def _event_time(event):
    value = event.get("time")
    if isinstance(value, (int, float)):
        return float(value)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _replay_events(self, archive):
    backend = events_backends[self.account_id][self.region]
    bus = backend.describe_event_bus(self.destination["Arn"].split("/")[-1])
    start, end = float(self.event_start_time), float(self.event_end_time)
    for event in list(archive.events):
        if not start <= _event_time(event) < end:
            continue
        for rule in bus.rules.values():
            if rule.name == f"Events-Archive-{archive.name}":
                continue
            rule.send_to_targets(
                dict(event, **{"id": str(uuid.uuid4()), "replay-name": self.name}), transform_input=False
            )
    self.state = ReplayState.COMPLETED
    self.end_time = time.time()


Replay.replay_events = _replay_events

# A bucket's LifecycleConfiguration is its retention; moto's bucket ignored
# it (and so would have kept the archive forever).
_moto_bucket_from_cfn = FakeBucket.create_from_cloudformation_json.__func__


def _bucket_from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    bucket = _moto_bucket_from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    rules = []
    for rule in cloudformation_json.get("Properties", {}).get("LifecycleConfiguration", {}).get("Rules", []):
        api_rule = {"ID": rule.get("Id"), "Status": rule["Status"], "Prefix": rule.get("Prefix", "")}
        if "ExpirationInDays" in rule:
            api_rule["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        rules.append(api_rule)
    if rules:
        s3_backends[account_id]["aws"].put_bucket_lifecycle_configuration(bucket.name, rules)
    return bucket


FakeBucket.create_from_cloudformation_json = classmethod(_bucket_from_cfn)

# `!If [Cond, x, !Ref AWS::NoValue]` inside a list removes the element; moto
# kept a null (a role policy statement `null`).
_moto_clean_json = cfn_parsing.clean_json


def _clean_json(resource_json, resources_map):
    cleaned = _moto_clean_json(resource_json, resources_map)
    if isinstance(resource_json, list) and isinstance(cleaned, list):
        return [value for value in cleaned if value is not None]
    return cleaned


cfn_parsing.clean_json = _clean_json

# A role's inline policies are JSON documents and its ManagedPolicyArns are
# attached; moto stored each inline policy as a Python repr and ignored the
# managed ones.
_moto_role_from_cfn = Role.create_from_cloudformation_json.__func__


def _role_from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    properties = cloudformation_json["Properties"]
    for policy in properties.get("Policies", []):
        if not isinstance(policy["PolicyDocument"], str):
            policy["PolicyDocument"] = json.dumps(policy["PolicyDocument"])
    role = _moto_role_from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    backend = iam_backends[account_id]["aws"]
    for arn in properties.get("ManagedPolicyArns", []):
        # AWS's own policies exist when moto runs with MOTO_IAM_LOAD_MANAGED_POLICIES.
        backend.attach_role_policy(arn, role.name)
    return role


Role.create_from_cloudformation_json = classmethod(_role_from_cfn)


class CfnSecret(CloudFormationModel):
    """AWS::SecretsManager::Secret, which moto's CloudFormation does not
    create (the template's own secrets, and every Ref to them, were empty)."""

    # moto files each model under the service its module is named after.
    __module__ = "moto.secretsmanager.models"

    def __init__(self, arn):
        self.arn = arn

    @property
    def physical_resource_id(self):
        # `!Ref` of a secret is its ARN.
        return self.arn

    @staticmethod
    def cloudformation_type():
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name):
        return self.arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json.get("Properties", {})
        created = secretsmanager_backends[account_id][region_name].create_secret(
            name=properties.get("Name", resource_name),
            secret_string=properties.get("SecretString"),
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId"),
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(json.loads(created)["ARN"])


class CfnSchedule(CloudFormationModel):
    """AWS::Scheduler::Schedule, which moto's CloudFormation does not create
    (the reconciler's schedule was nowhere to be read)."""

    __module__ = "moto.scheduler.models"

    def __init__(self, schedule):
        self.schedule = schedule

    @property
    def physical_resource_id(self):
        return self.schedule.name

    @staticmethod
    def cloudformation_type():
        return "AWS::Scheduler::Schedule"

    @staticmethod
    def cloudformation_name_type():
        return "Name"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        return self.schedule.arn

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        schedule = scheduler_backends[account_id][region_name].create_schedule(
            description=properties.get("Description"),
            end_date=properties.get("EndDate"),
            flexible_time_window=properties.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            group_name=properties.get("GroupName"),
            kms_key_arn=properties.get("KmsKeyArn"),
            name=properties.get("Name", resource_name),
            schedule_expression=properties["ScheduleExpression"],
            schedule_expression_timezone=properties.get("ScheduleExpressionTimezone"),
            start_date=properties.get("StartDate"),
            state=properties.get("State"),
            target=properties["Target"],
            action_after_completion=None,
        )
        return cls(schedule)


moto_app = DomainDispatcherApplication(create_backend_app)
dynamodb_lock = threading.Lock()


def json_protocol_denial(environ, moto_answer):
    """moto answers a denied request in XML, whatever the protocol; AWS's
    JSON-protocol services (DynamoDB, SQS, Secrets Manager, EventBridge)
    answer 400 with a JSON `__type`, which is what the SDK parses into the
    error code. Returns the AWS-shaped answer, or None to keep moto's."""
    status, headers, body = moto_answer
    if not environ.get("HTTP_X_AMZ_TARGET") or not status.startswith("403"):
        return None
    text = b"".join(body).decode("utf-8", "replace")
    match = re.search(r"<Code>([^<]+)</Code>\s*<Message>([^<]*)</Message>", text)
    if not match or not match.group(1).startswith("AccessDenied"):
        return None
    answer = json.dumps({"__type": "AccessDeniedException", "message": html.unescape(match.group(2))}).encode()
    return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(answer)))], [answer]


def answer(environ, start_response):
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    body = list(moto_app(environ, capture))
    moto_answer = (captured["status"], captured["headers"], body)
    status, headers, body = json_protocol_denial(environ, moto_answer) or moto_answer
    start_response(status, headers)
    return body


def app(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with dynamodb_lock:
            # Consume the body inside the lock: the work happens lazily.
            return answer(environ, start_response)
    return answer(environ, start_response)


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
