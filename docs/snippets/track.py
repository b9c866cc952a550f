"""Track a job with jobhook right after submitting it to the provider.

Needs boto3 and a role (or user) with the stack's TrackJobsPolicy attached;
JOBHOOK_TRACK_QUEUE_URL is the stack's TrackQueueUrl output. Run as
`python3 track.py <source> <job id>`.
"""
import json
import os
import sys

import boto3


def track(source: str, job_id: str) -> None:
    """Ask jobhook to follow `job_id`: it is polled until it ends, whether or
    not the provider's webhooks arrive. Sending it twice changes nothing."""
    boto3.client("sqs").send_message(
        QueueUrl=os.environ["JOBHOOK_TRACK_QUEUE_URL"],
        MessageBody=json.dumps({"source": source, "job_id": job_id}),
    )


if __name__ == "__main__":
    track(sys.argv[1], sys.argv[2])
