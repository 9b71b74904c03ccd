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

3. IAM Access Advisor stand-in. moto does not implement `GenerateServiceLastAccessedDetails`
   and `GetServiceLastAccessedDetails`; right-sizing (`src/rightsize/`) needs both. They are added
   to moto's own IAM responses below, so the SDK's real, signed requests go to the same endpoint
   as every other IAM call. What they answer is set per role ARN by a test through one extra
   endpoint:

       POST /iamdesk-test/access-advisor
       {"arn:aws:iam::123456789012:role/app": {
           "services": [{"ServiceNamespace": "s3", "ServiceName": "Amazon S3",
                         "LastAuthenticated": "2026-12-01T00:00:00Z",   # or null: never used
                         "LastAuthenticatedEntity": "arn:...", "TotalAuthenticatedEntities": 1,
                         # optional: the service is tracked at action level (answered to an
                         # ACTION_LEVEL job only, as AWS does)
                         "TrackedActionsLastAccessed": [{"ActionName": "GetObject",
                                                         "LastAccessedTime": "2026-12-01T00:00:00Z"}]}],
           "fail": false,            # true: the job ends FAILED with an error message
           "in_progress_polls": 2}}  # the first n polls of a job answer IN_PROGRESS

   A role with nothing set answers COMPLETED with no services (never used anything). Each call
   of `GenerateServiceLastAccessedDetails` makes a new job, as AWS does.
4. moto's recorder is one global switch that any test may stop. The IAM writes (actions
   starting Put/Attach/Detach/Delete/Create/Tag/Untag/Update) are also logged, always, with
   their role and policy: `GET /moto-api/iamdesk/iam-writes` returns them as JSON, so a test
   counts the AWS calls made for its own (uniquely named) role without touching the recorder.

5. moto's `Table.query` gathers and sorts every item of the table (`all_items()`) before it
   keeps the ones of the asked partition: a Query costs time in proportion to the whole table
   (with 50,000 requests and their postings, seconds per call), where real DynamoDB reads one
   partition. Here a Query of the table itself starts from that partition's items, and a Query
   of an index from the items holding that index key value: the table's items grouped by the
   index's hash key once, and again only after a DynamoDB write (any operation but a read
   bumps a write generation). moto still checks and sorts what it is given: the same answers,
   at a cost that grows with the partition, so `scripts/bench-dynamo` at 50k measures
   iamdesk's calls rather than moto's sort.

6. DynamoDB faults on demand, for the tests of what iamdesk does when its Store refuses a write
   (throttled, unreachable) after AWS was changed. A test arms a fault by the request's
   `X-Amz-Target` operation and strings its body must all contain (its own request id, say), so
   no other test's calls are touched:

       POST /iamdesk-test/dynamodb-faults
       {"operation": "TransactWriteItems", "contains": ["<request id>", "request.approved"],
        "error": "ThrottlingException", "times": 5}    # times: null = until cleared
       DELETE /iamdesk-test/dynamodb-faults?contains=<request id>   # clears that test's faults
       GET /iamdesk-test/dynamodb-faults                            # the faults and their hits

   A matching call is answered with that DynamoDB error (HTTP 400, as DynamoDB answers it) and
   changes nothing; everything else goes to moto.

Everything else is moto_server exactly (same arguments).
"""

import collections
import copy
import datetime
import io
import json
import threading
import uuid
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


_faults = []  # {"operation", "contains": [..], "error", "times": n or None, "hits": n}


def _json_answer(start_response, status, answer, content_type="application/json"):
    body = json.dumps(answer).encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _dynamodb_faults(environ, start_response):
    method = environ.get("REQUEST_METHOD")
    try:
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            spec = json.loads(environ["wsgi.input"].read(length) or b"{}")
            contains = spec.get("contains") or []
            if not spec.get("operation") or not isinstance(contains, list) or not contains:
                raise ValueError("operation and a non-empty contains list are required")
            times = spec.get("times")
            _faults.append(
                {
                    "operation": spec["operation"],
                    "contains": [str(c) for c in contains],
                    "error": spec.get("error") or "ThrottlingException",
                    "times": None if times is None else int(times),
                    "hits": 0,
                }
            )
        elif method == "DELETE":
            key = parse_qs(environ.get("QUERY_STRING", "")).get("contains", [None])[0]
            _faults[:] = [f for f in _faults if key is not None and key not in f["contains"]]
        return _json_answer(start_response, "200 OK", _faults)
    except Exception as e:  # noqa: BLE001 - a test's mistake, said back to it
        return _json_answer(start_response, "400 Bad Request", {"error": str(e)})


def _injected_fault(environ, start_response):
    """The armed fault this DynamoDB call matches, answered; None when there is none."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if not _faults or not target.startswith("DynamoDB_"):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    text = raw.decode("utf-8", "replace")
    operation = target.split(".", 1)[-1]
    for fault in _faults:
        if fault["operation"] != operation or not all(c in text for c in fault["contains"]):
            continue
        if fault["times"] is not None:
            if fault["times"] <= 0:
                continue
            fault["times"] -= 1
        fault["hits"] += 1
        answer = {
            "__type": f"com.amazonaws.dynamodb.v20120810#{fault['error']}",
            "message": f"{fault['error']} injected by a test (scripts/moto_server.py)",
        }
        return _json_answer(start_response, "400 Bad Request", answer, "application/x-amz-json-1.0")
    return None


def _serialised(self, environ, start_response):
    if environ.get("PATH_INFO") == "/iamdesk-test/access-advisor":
        return _set_access_advisor(environ, start_response)
    if environ.get("PATH_INFO") == "/iamdesk-test/dynamodb-faults":
        with _lock:
            return _dynamodb_faults(environ, start_response)
    if environ.get("PATH_INFO") == "/moto-api/iamdesk/iam-writes":
        with _lock:
            body = json.dumps(list(_iam_writes)).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]
    with _lock:
        injected = _injected_fault(environ, start_response)
        if injected is not None:
            return injected
        _count_dynamodb_write(environ)
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

# --- 5. A Query reads its partition, not the whole table ----------------------------------------

_query = Table.query
_DYNAMODB_READS = frozenset(
    ["GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables",
     "DescribeTimeToLive", "DescribeContinuousBackups", "ListTagsOfResource",
     "DescribeEndpoints"]
)
_write_generation = [0]


def _count_dynamodb_write(environ):
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("DynamoDB_") and target.split(".", 1)[-1] not in _DYNAMODB_READS:
        _write_generation[0] += 1


def _every_item(table):
    items = []
    for hash_set in table.items.values():
        if isinstance(hash_set, dict):
            items.extend(hash_set.values())
        else:
            items.append(hash_set)
    return items


def _index_candidates(table, index_name, hash_key_conditions):
    """The items whose index hash key equals the asked one (moto checks them all again)."""
    try:
        index = table.get_index(index_name)
    except Exception:  # noqa: BLE001 - moto reports the unknown index itself
        return _every_item(table)
    hash_attrs = [k["AttributeName"] for k in index.schema if k["KeyType"] == "HASH"]
    asked = dict(hash_key_conditions or [])
    if len(hash_attrs) != 1 or hash_attrs[0] not in asked:
        return _every_item(table)
    attr = hash_attrs[0]
    cache = getattr(table, "_iamdesk_groups", None)
    if cache is None or cache[0] != _write_generation[0]:
        cache = (_write_generation[0], {})
        table._iamdesk_groups = cache
    groups = cache[1].get(index_name)
    if groups is None:
        groups = collections.defaultdict(list)
        for item in _every_item(table):
            value = item.attrs.get(attr)
            if value is not None:
                groups[value].append(item)
        cache[1][index_name] = groups
    return list(groups.get(asked[attr], ()))


def _query_one_partition(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is None and hash_key is not None:
        part = self.items.get(hash_key)
        if part is None:
            items = []
        elif isinstance(part, dict):
            items = list(part.values())
        else:
            items = [part]
    elif index_name is not None:
        items = _index_candidates(self, index_name, kwargs.get("hash_key_conditions"))
    else:
        items = _every_item(self)
    # An instance attribute shadows the method for this one call; requests are serialised (1.).
    self.all_items = lambda: items
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        del self.all_items


Table.query = _query_one_partition

# --- 3. IAM Access Advisor stand-in --------------------------------------------------------------

from moto.core.responses import ActionResult  # noqa: E402
from moto.iam.responses import IamResponse  # noqa: E402

_advisor_lock = threading.Lock()
_advisor_by_arn = {}  # role ARN -> {"services": [...], "fail": bool, "in_progress_polls": n}
_advisor_jobs = {}  # job id -> {"arn", "granularity", "polls_left", "created"}


def _set_access_advisor(environ, start_response):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        if not isinstance(body, dict):
            raise ValueError("the body must be an object keyed by role ARN")
        with _advisor_lock:
            for arn, spec in body.items():
                _advisor_by_arn[arn] = spec
        status, answer = "200 OK", {"roles": len(body)}
    except Exception as e:  # noqa: BLE001 - a test's mistake, said back to it
        status, answer = "400 Bad Request", {"error": str(e)}
    start_response(status, [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


def _timestamp(value):
    if value is None:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _generate_service_last_accessed_details(self):
    arn = self._get_param("Arn")
    job_id = str(uuid.uuid4())
    with _advisor_lock:
        spec = _advisor_by_arn.get(arn, {})
        _advisor_jobs[job_id] = {
            "arn": arn,
            "granularity": self._get_param("Granularity") or "SERVICE_LEVEL",
            "polls_left": int(spec.get("in_progress_polls", 0)),
            "created": datetime.datetime.now(datetime.timezone.utc),
        }
    return ActionResult({"JobId": job_id})


def _get_service_last_accessed_details(self):
    from moto.iam.exceptions import NotFoundException

    job_id = self._get_param("JobId")
    with _advisor_lock:
        job = _advisor_jobs.get(job_id)
        if job is None:
            raise NotFoundException(f"No job with id {job_id}")
        spec = _advisor_by_arn.get(job["arn"], {})
        result = {"JobType": job["granularity"], "JobCreationDate": job["created"]}
        if job["polls_left"] > 0:
            job["polls_left"] -= 1
            result.update({"JobStatus": "IN_PROGRESS", "ServicesLastAccessed": []})
            return ActionResult(result)
        now = datetime.datetime.now(datetime.timezone.utc)
        result["JobCompletionDate"] = now
        if spec.get("fail"):
            result.update(
                {
                    "JobStatus": "FAILED",
                    "ServicesLastAccessed": [],
                    "Error": {"Message": "access advisor failed (test)", "Code": "ServiceFailure"},
                }
            )
            return ActionResult(result)
        services = []
        for s in spec.get("services", []):
            entry = {
                "ServiceNamespace": s["ServiceNamespace"],
                "ServiceName": s.get("ServiceName", s["ServiceNamespace"]),
                "TotalAuthenticatedEntities": s.get("TotalAuthenticatedEntities", 0),
            }
            if s.get("LastAuthenticated"):
                entry["LastAuthenticated"] = _timestamp(s["LastAuthenticated"])
                entry["LastAuthenticatedEntity"] = s.get("LastAuthenticatedEntity", job["arn"])
            tracked = s.get("TrackedActionsLastAccessed")
            if tracked and job["granularity"] == "ACTION_LEVEL":
                entry["TrackedActionsLastAccessed"] = []
                for a in tracked:
                    action = {"ActionName": a["ActionName"]}
                    if a.get("LastAccessedTime"):
                        action["LastAccessedTime"] = _timestamp(a["LastAccessedTime"])
                        action["LastAccessedEntity"] = a.get("LastAccessedEntity", job["arn"])
                        action["LastAccessedRegion"] = a.get("LastAccessedRegion", "us-east-1")
                    entry["TrackedActionsLastAccessed"].append(action)
            services.append(entry)
        result.update({"JobStatus": "COMPLETED", "ServicesLastAccessed": services})
        return ActionResult(result)


IamResponse.generate_service_last_accessed_details = _generate_service_last_accessed_details
IamResponse.get_service_last_accessed_details = _get_service_last_accessed_details

if __name__ == "__main__":
    from moto.server import main

    main()
