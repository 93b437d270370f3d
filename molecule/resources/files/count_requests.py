"""Send N GETs to a URL from several threads and print which process answered how many (runs inside
the test container; the app answers {"pid": ...}). Several at once, so that nginx opens several
upstream connections and more than one worker serves. Stdlib only: usage count_requests.py URL N.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

THREADS = 8


def get_pid(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(json.load(response)["pid"])


def main(url: str, n: int) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        pids = Counter(pool.map(lambda _: get_pid(url), range(n)))
    print(json.dumps({"requests": sum(pids.values()), "pids": {str(pid): count for pid, count in pids.items()}}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
