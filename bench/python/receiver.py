"""The reference receiver, written the way the Powertools for AWS Lambda (Python)
docs show: a Logger, an API Gateway HTTP API resolver-free handler, the Standard
Webhooks reference library to verify, and boto3 to enqueue. The bench runs it
beside jobhook's receiver under the same Runtime API emulator and moto."""

import base64
import json
import os

import boto3
from aws_lambda_powertools import Logger
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

logger = Logger(service="receiver")
sqs = boto3.client("sqs")
QUEUE_URL = os.environ["JOBHOOK_QUEUE_URL"]
WEBHOOK = Webhook(os.environ["BENCH_WEBHOOK_SECRET"])


@logger.inject_lambda_context
def handler(event, context):
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        WEBHOOK.verify(raw, headers)
    except WebhookVerificationError:
        logger.warning("signature rejected")
        return {"statusCode": 401, "body": json.dumps({"status": "rejected"})}
    event_id = headers.get("webhook-id")
    sqs.send_message(
        QueueUrl=QUEUE_URL,
        MessageBody=json.dumps({"source": "bench", "event_id": event_id, "body": raw.decode()}),
        MessageAttributes={"event_id": {"DataType": "String", "StringValue": event_id}},
    )
    logger.info("webhook accepted", extra={"event_id": event_id})
    return {"statusCode": 202, "body": json.dumps({"status": "accepted", "event_id": event_id})}
