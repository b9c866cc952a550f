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

Usage: python scripts/moto_server.py HOST PORT
"""

import copy
import sys
import threading
import types

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table


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
