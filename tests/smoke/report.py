"""Times measured during a run (start-up, spawns, clusters): printed as they happen and in the summary.

Recorded, never asserted: a slow machine must not fail the suite, but its numbers should be visible.
"""

TIMINGS = {}


def record(what, seconds):
    TIMINGS[what] = seconds
    print(f"\n[timing] {what}: {seconds:.1f} s")


def summary_lines():
    return [f"{what:<48} {seconds:7.1f} s" for what, seconds in TIMINGS.items()]
