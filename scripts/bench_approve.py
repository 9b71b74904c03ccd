"""Approval benchmark (driven by scripts/bench-approve; see README "Benchmarks").

iamdesk `serve` on DynamoDB (moto) with a real redis-server, one moto spoke account holding
ROLES roles, synced once. Then, APPROVALS times: a request is created by one user (an inline
policy on role i mod ROLES) and approved by another admin, through the JSON API. Measured:

- latency of create and of approve+apply (client side, keep-alive HTTP);
- AWS calls made while each HTTP call runs, counted by a small proxy in front of moto that reads
  the `X-Amz-Target` header (DynamoDB) or the `Action` form field (IAM, STS). Calls the
  background jobs (outbox worker, generation poll) make in between are counted apart;
- RSS of the iamdesk process (VmRSS from /proc) every SAMPLE_EVERY approvals.

Numbers go to OUT (JSON). Nothing is asserted: this measures.
"""

import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import boto3
import requests

ROLES = int(os.environ.get("ROLES", "5000"))
APPROVALS = int(os.environ.get("APPROVALS", "1000"))
# Approval i changes role i mod ROLE_CYCLE (default: every role in turn).
ROLE_CYCLE = min(int(os.environ.get("ROLE_CYCLE", str(ROLES))), ROLES)
SAMPLE_EVERY = int(os.environ.get("SAMPLE_EVERY", "25"))
BIN = os.environ["IAMDESK_BIN"]
OUT = os.environ.get("OUT", "target/bench/approve.json")
LABEL = os.environ.get("LABEL", "")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret-" + "x" * 40
DEV, DEV_GROUPS = "dev@example.com", "eng"
ADMIN, ADMIN_GROUPS = "admin@example.com", "admins"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"bench-approve: {what} did not come up on port {port}")


# --- counting proxy in front of moto ------------------------------------------------------------

class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}  # "dynamodb:PutItem" -> n
        self.spans = []  # (started, ended, service) of recent calls, perf_counter seconds
        self.bytes = 0

    def add(self, key, nbytes, started, ended):
        service = key.split(":")[0]
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            self.spans.append((started, ended, service))
            self.bytes += nbytes

    def snapshot(self):
        with self.lock:
            return dict(self.calls), self.bytes

    def waited(self, since, until):
        """Milliseconds within [since, until] during which moto was answering, by service and
        in all ("aws"): overlapping calls (moto runs one at a time; the others queue) count
        once."""
        with self.lock:
            spans = [(max(a, since), min(b, until), svc) for a, b, svc in self.spans
                     if b > since and a < until]
            self.spans = [sp for sp in self.spans if sp[1] > until - 60]

        def union(parts):
            total, end = 0.0, None
            for a, b in sorted(parts):
                if end is None or a > end:
                    total += b - a
                    end = b
                elif b > end:
                    total += b - end
                    end = b
            return round(total * 1000, 2)

        out = {svc: union([(a, b) for a, b, s in spans if s == svc])
               for svc in {s for _, _, s in spans}}
        out["aws"] = union([(a, b) for a, b, _ in spans])
        return out


COUNTS = Counts()


def classify(headers, body):
    target = headers.get("X-Amz-Target")
    if target:
        service, _, action = target.partition(".")
        service = "dynamodb" if service.startswith("DynamoDB") else service.lower()
        return f"{service}:{action}"
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    action = (form.get("Action") or ["?"])[0]
    auth = headers.get("Authorization", "")
    service = "aws"
    if "/iam/" in auth:
        service = "iam"
    elif "/sts/" in auth:
        service = "sts"
    return f"{service}:{action}"


def make_proxy(upstream_port):
    local = threading.local()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every proxied call.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            started = time.perf_counter()
            for attempt in range(2):
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection("127.0.0.1", upstream_port)
                    conn.connect()
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (http.client.HTTPException, OSError):
                    local.conn = None
                    if attempt == 1:
                        raise
            COUNTS.add(classify(self.headers, body), len(body) + len(data), started,
                       time.perf_counter())
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    port = free_port()
    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port


# --- helpers ------------------------------------------------------------------------------------

def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100 * (len(s) - 1)))))
    return round(s[k], 2)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def diff(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def service_total(calls, service):
    return sum(n for k, n in calls.items() if k.startswith(service + ":"))


def setup_roles(moto, account):
    sts = boto3.client("sts", endpoint_url=moto, region_name="us-east-1")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/bench-setup",
                            RoleSessionName="bench-setup")["Credentials"]
    iam = boto3.client("iam", endpoint_url=moto, region_name="us-east-1",
                       aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    started = time.time()
    for i in range(ROLES):
        name = f"bench-{i:05d}"
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust,
                        Description=f"benchmark role {i}",
                        Tags=[{"Key": "team", "Value": f"team-{i % 40}"},
                              {"Key": "consoleme-authorized", "Value": f"eng-{i % 100}:ops"}])
        iam.put_role_policy(RoleName=name, PolicyName="base", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket", "sqs:SendMessage"],
                "Resource": [f"arn:aws:s3:::data-{i}", f"arn:aws:s3:::data-{i}/*",
                             f"arn:aws:sqs:us-east-1:{account}:queue-{i}"]}]}))
        if i and i % 1000 == 0:
            print(f"bench-approve: {i} roles created ({time.time() - started:.0f} s)", flush=True)
    return round(time.time() - started, 1)


def main():
    work = tempfile.mkdtemp(prefix="iamdesk-bench-")
    procs = []

    def spawn(args, log, env=None):
        p = subprocess.Popen(args, stdout=open(os.path.join(work, log), "w"),
                             stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        procs.append(p)
        return p

    try:
        moto_port = free_port()
        spawn([os.path.join(ROOT, ".venv/bin/python"), os.path.join(ROOT, "scripts/moto_server.py"),
               "-H", "127.0.0.1", "-p", str(moto_port)], "moto.log")
        redis_port = free_port()
        spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
               "--appendonly", "no", "--dir", work], "redis.log")
        wait_port(moto_port, "moto_server")
        wait_port(redis_port, "redis-server")
        moto = f"http://127.0.0.1:{moto_port}"
        proxy = f"http://127.0.0.1:{make_proxy(moto_port)}"

        account = str(random.randint(100_000_000_000, 999_999_999_999))
        print(f"bench-approve: creating {ROLES} roles in moto account {account}", flush=True)
        setup_seconds = setup_roles(moto, account)

        port = free_port()
        prefix = f"bench{random.randint(0, 10**6)}-"
        config = os.path.join(work, "iamdesk.yaml")
        with open(config, "w") as f:
            f.write(f"""environment: dev
listen: 127.0.0.1:{port}
url: http://127.0.0.1:{port}
jwt_secret: {SECRET}
aws:
  mode: aws
  region: us-east-1
account_ids_to_name:
  "{account}": spoke
policies:
  role_name: iamdesk-spoke
storage:
  backend: dynamodb
  dynamodb:
    table_prefix: {prefix}
redis:
  url: redis://127.0.0.1:{redis_port}/0
auth:
  get_user_by_header: true
  get_groups_by_header: true
groups:
  can_admin: [admins]
sync:
  interval_seconds: 86400
rate_limit:
  api_per_minute: 100000000
""")
        env = dict(os.environ, AWS_ENDPOINT_URL=proxy, AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                   AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                   RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "CONFIG_LOCATION"):
            env.pop(k, None)
        subprocess.run([BIN, "--config", config, "migrate"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)

        before, _ = COUNTS.snapshot()
        t = time.time()
        subprocess.run([BIN, "--config", config, "sync"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        sync_seconds = round(time.time() - t, 2)
        after, sync_bytes = COUNTS.snapshot()
        sync_calls = diff(before, after)
        # Again, with nothing changed in AWS.
        t = time.time()
        subprocess.run([BIN, "--config", config, "sync"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        resync_seconds = round(time.time() - t, 2)
        again, resync_bytes = COUNTS.snapshot()
        resync_calls = diff(after, again)

        server = spawn([BIN, "--config", config, "serve"], "iamdesk.log", env=env)
        wait_port(port, "iamdesk serve", timeout=120)
        base = f"http://127.0.0.1:{port}"
        s = requests.Session()
        cookie = "ab" * 32  # the portal wants 64 hex digits
        token = hmac.new(SECRET.encode(), b"iamdesk-csrf:" + cookie.encode(),
                         hashlib.sha256).hexdigest()
        s.headers.update({"cookie": f"iamdesk_csrf={cookie}", "x-csrf-token": token})

        def call(method, path, who, groups, body):
            b, _ = COUNTS.snapshot()
            t0 = time.perf_counter()
            r = s.request(method, base + path, json=body,
                          headers={"x-user": who, "x-groups": groups}, timeout=120)
            t1 = time.perf_counter()
            a, _ = COUNTS.snapshot()
            if r.status_code != 200:
                sys.exit(f"bench-approve: {method} {path} -> {r.status_code}: {r.text[:500]}")
            return r.json(), (t1 - t0) * 1000, diff(b, a), COUNTS.waited(t0, t1)

        create_ms, approve_ms, create_calls, approve_calls = [], [], [], []
        create_waits, approve_waits = [], []
        rss = [{"approvals": 0, "rss_mib": rss_mib(server.pid)}]
        total_before, _ = COUNTS.snapshot()
        in_calls = {}
        started = time.time()
        for i in range(APPROVALS):
            role = f"bench-{i % ROLE_CYCLE:05d}"
            body = {"justification": f"benchmark approval {i}", "changes": {"changes": [{
                "change_type": "inline_policy",
                "principal": {"principal_type": "AwsResource",
                              "principal_arn": f"arn:aws:iam::{account}:role/{role}"},
                "policy_name": "bench", "action": "attach",
                "policy": {"policy_document": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::bench-{i}/*"]}]}}}]}}
            created, ms, calls, waited = call("POST", "/api/v2/request", DEV, DEV_GROUPS, body)
            create_ms.append(ms)
            create_calls.append(calls)
            create_waits.append(waited)
            rid = created["request_id"]
            approved, ms, calls, waited = call(
                "PUT", f"/api/v2/requests/{rid}", ADMIN, ADMIN_GROUPS,
                {"modification_model": {"command": "approve_request"}})
            approve_waits.append(waited)
            if approved.get("request", {}).get("status") != "approved":
                sys.exit(f"bench-approve: request {rid} not approved: {approved}")
            approve_ms.append(ms)
            approve_calls.append(calls)
            for c in (create_calls[-1], calls):
                for k, n in c.items():
                    in_calls[k] = in_calls.get(k, 0) + n
            if (i + 1) % SAMPLE_EVERY == 0 or i + 1 == APPROVALS:
                rss.append({"approvals": i + 1, "rss_mib": rss_mib(server.pid)})
                print(f"bench-approve: {i + 1}/{APPROVALS} approvals, approve p50 "
                      f"{pct(approve_ms, 50)} ms, RSS {rss[-1]['rss_mib']} MiB", flush=True)
        elapsed = round(time.time() - started, 1)
        total_after, _ = COUNTS.snapshot()
        background = {k: n - in_calls.get(k, 0) for k, n in diff(total_before, total_after).items()
                      if n - in_calls.get(k, 0)}

        def per_call(samples, service):
            totals = [service_total(c, service) for c in samples]
            actions = {}
            for c in samples:
                for k, n in c.items():
                    if k.startswith(service + ":"):
                        actions[k] = actions.get(k, 0) + n
            return {"p50": pct(totals, 50), "mean": round(statistics.mean(totals), 2),
                    "max": max(totals),
                    "by_action_mean": {k: round(v / len(samples), 2)
                                       for k, v in sorted(actions.items())}}

        def waits(samples):
            services = sorted({k for w in samples for k in w})
            return {k: pct([w.get(k, 0.0) for w in samples], 50) for k in services}

        result = {
            "label": LABEL,
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip(),
            "roles": ROLES, "approvals": APPROVALS, "role_cycle": ROLE_CYCLE,
            "setup_seconds": setup_seconds,
            "sync": {"seconds": sync_seconds,
                     "dynamodb_calls": service_total(sync_calls, "dynamodb"),
                     "iam_calls": service_total(sync_calls, "iam"),
                     "bytes_through_proxy": sync_bytes},
            "resync_unchanged": {"seconds": resync_seconds,
                                 "dynamodb_calls": service_total(resync_calls, "dynamodb"),
                                 "dynamodb_by_action": {k: v for k, v in resync_calls.items()
                                                        if k.startswith("dynamodb:")},
                                 "bytes_through_proxy": resync_bytes - sync_bytes},
            "create_ms": {"p50": pct(create_ms, 50), "p99": pct(create_ms, 99)},
            "approve_ms": {"p50": pct(approve_ms, 50), "p99": pct(approve_ms, 99)},
            "approve_over_create_p50": round(pct(approve_ms, 50) / pct(create_ms, 50), 2),
            # Time each HTTP call spent waiting for moto (through the proxy), by service and in
            # all, and what is left: iamdesk's own work, Redis, and the proxy's overhead.
            "create_waiting_ms_p50": waits(create_waits),
            "approve_waiting_ms_p50": waits(approve_waits),
            "create_ms_without_aws_p50": pct([m - w.get("aws", 0.0) for m, w in
                                              zip(create_ms, create_waits)], 50),
            "approve_ms_without_aws_p50": pct([m - w.get("aws", 0.0) for m, w in
                                               zip(approve_ms, approve_waits)], 50),
            "dynamodb_calls_per_create": per_call(create_calls, "dynamodb"),
            "dynamodb_calls_per_approval": per_call(approve_calls, "dynamodb"),
            "iam_calls_per_approval": per_call(approve_calls, "iam"),
            "background_calls_during_run": background,
            "rss_mib": {"first": rss[0]["rss_mib"], "last": rss[-1]["rss_mib"],
                        "max": max(r["rss_mib"] for r in rss), "samples": rss},
            "loop_seconds": elapsed,
        }
        os.makedirs(os.path.dirname(os.path.join(ROOT, OUT)), exist_ok=True)
        with open(os.path.join(ROOT, OUT), "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps({k: v for k, v in result.items() if k != "rss_mib"}, indent=2))
        print(f"bench-approve: RSS {result['rss_mib']['first']} -> {result['rss_mib']['last']} "
              f"MiB (max {result['rss_mib']['max']}); written to {OUT}")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("KEEP_LOGS"):
            print(f"bench-approve: logs kept in {work}")
        else:
            subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
