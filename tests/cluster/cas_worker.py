"""One client process of the CAS counter test: increments ``counter`` by serial compare-and-set until its
time is up, and prints what happened to its increments as JSON (applied, unknown, refused, errors)."""

from __future__ import annotations

import json
import sys
import time

from zkv import Client
from zkv.errors import ConditionFailed, OutcomeUnknown, Timeout, ZkvError


def main() -> None:
    addresses, seconds = sys.argv[1].split(","), float(sys.argv[2])
    until = time.monotonic() + seconds
    counts = {"applied": 0, "unknown": 0, "refused": 0, "errors": 0}
    current: bytes | None = None
    with Client(addresses, timeout=4.0) as db:
        while time.monotonic() < until:
            try:
                if current is None:
                    got = db.get("counter", consistency="serial")
                    current = got.values[0]
                new = str(int(current) + 1).encode()
                db.put("counter", new, consistency="serial", if_value=current)
                counts["applied"] += 1
                current = new
            except ConditionFailed as exc:
                counts["refused"] += 1
                current = exc.values[0] if len(exc.values) == 1 else None
            except (OutcomeUnknown, Timeout):
                # it may have been applied (a timeout seen by this client, too): read again first
                counts["unknown"] += 1
                current = None
            except ZkvError:
                counts["errors"] += 1  # unavailable, no node: nothing was proposed
                current = None
                time.sleep(0.05)
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
