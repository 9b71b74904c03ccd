"""moto_server, one request at a time, with transactions that cost what they touch.

1. moto's server is threaded, and its DynamoDB does not make a conditional write atomic with
   respect to a concurrent one: two `TransactWriteItems` with the same `version` condition can
   both succeed when they arrive together. Real DynamoDB never lets that happen, and iamdesk's
   "ten concurrent approvals apply once" relies on it. Serialising the requests makes moto keep
   that promise.

2. To undo a failed `TransactWriteItems`, moto deep-copies every table the transaction touches,
   once per action, before running it: a transaction costs time in proportion to everything
   stored in those tables (a one-role write into a table of 5,000 roles took most of a second).
   Real DynamoDB's cost depends on the items written. Here the transaction keeps a copy of just
   the items it touches and puts them back when it fails: the same outcome (the conformance
   suite checks that a failed transaction changes nothing), at a cost that does not grow with
   the data, so tests and `scripts/bench-approve` measure iamdesk rather than this copy.
   Requests are serialised (1.), so nothing can observe the table between the failure and the
   restore.

3. moto's recorder is one global switch that any test may stop. The IAM writes (actions
   starting Put/Attach/Detach/Delete/Create/Tag/Untag/Update) are also logged, always, with
   their role and policy: `GET /moto-api/iamdesk/iam-writes` returns them as JSON, so a test
   counts the AWS calls made for its own (uniquely named) role without touching the recorder.

Everything else is moto_server exactly (same arguments).
"""

import collections
import copy
import io
import json
import threading
from urllib.parse import parse_qs

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_call = DomainDispatcherApplication.__call__


_iam_writes = collections.deque(maxlen=200_000)
_WRITE_PREFIXES = ("Put", "Attach", "Detach", "Delete", "Create", "Tag", "Untag", "Update")


def _log_iam_write(environ):
    if "/iam/aws4_request" not in environ.get("HTTP_AUTHORIZATION", ""):
        return
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    action = form.get("Action", "")
    if action.startswith(_WRITE_PREFIXES):
        _iam_writes.append(
            {
                "action": action,
                "role": form.get("RoleName"),
                "policy": form.get("PolicyName") or form.get("PolicyArn"),
            }
        )


def _serialised(self, environ, start_response):
    if environ.get("PATH_INFO") == "/moto-api/iamdesk/iam-writes":
        with _lock:
            body = json.dumps(list(_iam_writes)).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]
    with _lock:
        _log_iam_write(environ)
        # moto builds whole responses; materialise them inside the lock all the same.
        return list(_call(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serialised


class _TablesByReference:
    """`copy` for moto's DynamoDB module: a table is "copied" as itself (the transaction below
    restores the items it touched instead); anything else is really deep-copied."""

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


dynamodb_models.copy = _TablesByReference()
_transact = DynamoDBBackend.transact_write_items


def _transact_restoring_items(self, transact_items):
    saved = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = self.get_table(op["TableName"])
            attrs = op["Item"] if op_type == "Put" else op["Key"]
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = (
                DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
            )
            saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        except Exception:  # noqa: BLE001 - moto itself reports what is wrong with this action
            pass
    try:
        return _transact(self, transact_items)
    except Exception:
        for table, hash_key, range_key, old in reversed(saved):
            if old is None:
                table.delete_item(hash_key, range_key)
            elif range_key is not None:
                table.items[hash_key][range_key] = old
            else:
                table.items[hash_key] = old
        raise


DynamoDBBackend.transact_write_items = _transact_restoring_items

if __name__ == "__main__":
    from moto.server import main

    main()
