"""moto_server, one request at a time.

moto's server is threaded, and its DynamoDB does not make a conditional write atomic with
respect to a concurrent one: two `TransactWriteItems` with the same `version` condition can
both succeed when they arrive together. Real DynamoDB never lets that happen, and iamdesk's
"ten concurrent approvals apply once" relies on it. Serialising the requests makes moto keep
that promise; everything else is moto_server exactly (same arguments).
"""

import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_call = DomainDispatcherApplication.__call__


def _serialised(self, environ, start_response):
    with _lock:
        # moto builds whole responses; materialise them inside the lock all the same.
        return list(_call(self, environ, start_response))


DomainDispatcherApplication.__call__ = _serialised

if __name__ == "__main__":
    from moto.server import main

    main()
