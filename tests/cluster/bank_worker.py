"""One client process of the bank test: transfers between accounts by multi-key transactions until its
time is up; each transfer also writes its own log key (``xfer:<worker>:<n>``, if absent). A transfer whose
outcome is unknown is retried with the same token until it is decided (the token makes that safe). Prints
JSON: the tokens acknowledged applied, refused, still unknown, the error count and how many were issued."""

from __future__ import annotations

import json
import random
import sys
import time

from zkv import Client
from zkv.errors import ConditionFailed, OutcomeUnknown, ZkvError

ACCOUNTS = [f"acct{i}" for i in range(5)]


def main() -> None:
    addresses, seconds, name = sys.argv[1].split(","), float(sys.argv[2]), sys.argv[3]
    rng = random.Random(name)
    until = time.monotonic() + seconds
    out: dict[str, list[str] | int] = {"applied": [], "refused": [], "unknown": [], "errors": 0}
    n = 0
    with Client(addresses, timeout=4.0) as db:
        while time.monotonic() < until:
            src, dst = rng.sample(ACCOUNTS, 2)
            try:
                a = db.get(src, consistency="serial").values
                b = db.get(dst, consistency="serial").values
            except ZkvError:
                out["errors"] += 1  # type: ignore[operator]
                time.sleep(0.05)
                continue
            if len(a) != 1 or len(b) != 1:
                raise SystemExit(f"an account without exactly one value: {src}={a} {dst}={b}")
            amount = rng.randint(1, 10)
            n += 1
            token = f"{name}-{n}"
            for _attempt in range(20):  # the same token until it is decided
                try:
                    with db.transaction(token=token) as tx:
                        tx.put(src, str(int(a[0]) - amount), if_value=a[0])
                        tx.put(dst, str(int(b[0]) + amount), if_value=b[0])
                        tx.put(f"xfer:{token}", f"{src}>{dst}:{amount}", if_absent=True)
                    out["applied"].append(token)  # type: ignore[union-attr]
                    break
                except ConditionFailed:
                    out["refused"].append(token)  # type: ignore[union-attr]
                    break
                except (OutcomeUnknown, ZkvError):
                    time.sleep(0.1)
            else:
                out["unknown"].append(token)  # type: ignore[union-attr]
    out["issued"] = n
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
