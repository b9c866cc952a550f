"""The reference processor, written the way the Powertools for AWS Lambda (Python)
docs show: the batch processor with partial failures, the idempotency utility
(DynamoDB persistence layer) around each record, and a conditional update that
moves a job forward only (status rank, then progress)."""

import json
import os

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.exceptions import ClientError

logger = Logger(service="processor")
processor = BatchProcessor(event_type=EventType.SQS)
persistence = DynamoDBPersistenceLayer(table_name=os.environ["BENCH_IDEMPOTENCY_TABLE"])
config = IdempotencyConfig(event_key_jmespath="event_id")
table = boto3.resource("dynamodb").Table(os.environ["BENCH_JOBS_TABLE"])
RANK = {"submitted": 0, "processing": 1, "completed": 2, "failed": 2, "canceled": 2}


@idempotent_function(data_keyword_argument="event", persistence_store=persistence, config=config)
def apply(event: dict) -> str:
    rank = RANK[event["status"]]
    progress = event.get("progress") or 0
    try:
        table.update_item(
            Key={"pk": f"JOB#{event['source']}#{event['job_id']}"},
            UpdateExpression="SET #s = :s, #r = :r, #p = :p, #e = :e",
            ConditionExpression="attribute_not_exists(#r) OR #r < :r OR (#r = :r AND #s = :processing AND #p < :p)",
            ExpressionAttributeNames={"#s": "status", "#r": "rank", "#p": "progress", "#e": "last_event_id"},
            ExpressionAttributeValues={":s": event["status"], ":r": rank, ":p": progress,
                                       ":e": event["event_id"], ":processing": "processing"},
        )
        return "applied"
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return "stale"
        raise


def record_handler(record):
    event = json.loads(record.body)
    outcome = apply(event=event)
    logger.info("job event", extra={"event_id": event["event_id"], "outcome": outcome})


@logger.inject_lambda_context
def handler(event, context):
    config.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
