"""moto's server with DynamoDB requests serialized.

moto handles requests on parallel threads and does not lock its DynamoDB
backend, so two concurrent conditional writes to one item can both pass their
conditions (seen here: two TransactWriteItems on one job both applied).
DynamoDB itself applies each item's writes atomically. Serializing DynamoDB
requests restores that guarantee, so the concurrency tests exercise jobhook's
conditional writes rather than moto's races. Other services (SQS long polls
in particular) stay concurrent.

Usage: python scripts/moto_server.py HOST PORT
"""

import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

moto_app = DomainDispatcherApplication(create_backend_app)
dynamodb_lock = threading.Lock()


def app(environ, start_response):
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
        with dynamodb_lock:
            # Consume the body inside the lock: the work happens lazily.
            return list(moto_app(environ, start_response))
    return moto_app(environ, start_response)


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)
