#!/usr/bin/env python3
"""The happy path's instruction gate: instructions per successful call,
counted under callgrind (repeatable where times are not), for the bare
service, `tower::retry` and the layer, in one build. The layer may add no
more than `tower::retry` adds plus MARGIN, and the layer given a fleet
(`triage-fleet`) no more than the layer plus FLEET_SLACK.

MARGIN is a ratchet: the gap last measured (2026-12-07: about 1,660
instructions) with a little room for inlining that differs from build to
build; it only goes down as the happy path gets cheaper (BENCHMARKS.md,
"Issue 17: before and after").

Usage: python3 .ci/perf_gate.py [--calls N]
"""

import json
import os
import re
import subprocess
import sys
import tempfile

# Instructions per call the layer may add beyond what `tower::retry` adds.
MARGIN = 1750
CALLS = 2000
STACKS = ["bare", "tower_retry", "triage", "triage_no_retries", "triage_fleet"]
# Fleet sharing reads only the layer's own state on a success: the layer
# with a `triage_fleet::Fleet` may add at most this much to the layer.
FLEET_SLACK = 60


def bench_binary():
    out = subprocess.run(
        ["cargo", "bench", "-q", "-p", "triage-bench", "--bench", "overhead",
         "--no-run", "--message-format=json"],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
                and msg["target"]["name"] == "overhead":
            return msg["executable"]
    sys.exit("perf gate: the overhead bench's executable was not found")


def instructions(binary, stack, calls):
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "callgrind.out")
        env = dict(os.environ, TRIAGE_INSTRUCTIONS=f"{stack}:{calls}",
                   TRIAGE_TRACE_LEVEL="info")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             "--toggle-collect=*measured_calls*", binary, "--bench"],
            check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with open(out, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    return int(m.group(1)) / calls
    sys.exit(f"perf gate: no instruction total for {stack}")


def main():
    calls = CALLS
    if "--calls" in sys.argv:
        calls = int(sys.argv[sys.argv.index("--calls") + 1])
    binary = bench_binary()
    counts = {stack: instructions(binary, stack, calls) for stack in STACKS}
    bare = counts["bare"]
    print(f"instructions per call ({calls} calls each, callgrind):")
    for stack in STACKS:
        print(f"  {stack:<18} {counts[stack]:>9,.0f}  (+{counts[stack] - bare:,.0f} over bare)")
    tower = counts["tower_retry"] - bare
    triage = counts["triage"] - bare
    limit = tower + MARGIN
    verdict = "ok" if triage <= limit else "FAILED"
    print(f"gate: the layer adds {triage:,.0f}; tower::retry adds {tower:,.0f}; "
          f"limit {limit:,.0f} (margin {MARGIN:,}): {verdict}")
    fleet = counts["triage_fleet"] - counts["triage"]
    fleet_verdict = "ok" if fleet <= FLEET_SLACK else "FAILED"
    print(f"gate: fleet sharing adds {fleet:+,.0f} to the layer (at most {FLEET_SLACK}): {fleet_verdict}")
    if triage > limit or fleet > FLEET_SLACK:
        sys.exit(1)


if __name__ == "__main__":
    main()
