"""``lambda-freeze trigger NAME``: fire a schedule of a running ``lambda-freeze serve`` now, through its inspection
API (``POST /_lambda-freeze/schedules/NAME/trigger``)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def trigger(name: str, endpoint_url: str) -> int:
    url = f"{endpoint_url.rstrip('/')}/_lambda-freeze/schedules/{urllib.parse.quote(name, safe='')}/trigger"
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"{exc.code} {exc.headers.get('x-amzn-ErrorType', '')}: {exc.read().decode()}", file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"cannot reach {endpoint_url}: {exc.reason} (is `lambda-freeze serve` running?)", file=sys.stderr)
        return 1
    print(f"{name}: fired, asynchronous invocation {answer['RequestId']}")
    return 0
