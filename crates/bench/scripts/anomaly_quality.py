#!/usr/bin/env python3
"""Recall and false alerts of each detector of a replay, against the spike episodes a generated
dataset injected (the `--stats` JSON of testdata/gen_events.py).

    streampulse replay --config JOB.yaml --input EVENTS --output /dev/null --alerts ALERTS
    python3 crates/bench/scripts/anomaly_quality.py STATS EVENTS ALERTS

An episode counts only if some event of its metric falls inside it (a sparse metric may have
none). An alert catches an episode when their event-time spans overlap; an alert that overlaps
no episode is a false alert episode. Prints one Markdown table row per detector: detector,
episodes caught of those with events, false alert episodes, and false ones per 10,000 events.
"""
import gzip
import json
import sys


def main(stats_path, events_path, alerts_path):
    stats = json.load(open(stats_path))
    episodes = stats["anomaly_episodes"]
    by_metric = {}
    for i, e in enumerate(episodes):
        by_metric.setdefault(e["metric_id"], []).append((i, e))
    with_events = set()
    opener = gzip.open if events_path.endswith(".gz") else open
    with opener(events_path, "rt") as lines:
        for line in lines:
            event = json.loads(line)
            for i, e in by_metric.get(event["metric_id"], []):
                if e["start_ms"] <= event["ts"] < e["end_ms"]:
                    with_events.add(i)
    live = [e for i, e in enumerate(episodes) if i in with_events]
    last = {}
    for line in open(alerts_path):
        alert = json.loads(line)
        last[alert["id"]] = alert

    def overlaps(a, e):
        return (
            a["metric_id"] == e["metric_id"]
            and a["first_ts"] < e["end_ms"]
            and a["last_ts"] >= e["start_ms"]
        )

    normal_events = stats["events"] - stats["spike_events"]
    for detector in sorted({a["detector"] for a in last.values()}):
        mine = [a for a in last.values() if a["detector"] == detector]
        caught = sum(1 for e in live if any(overlaps(a, e) for a in mine))
        false = sum(1 for a in mine if not any(overlaps(a, e) for e in episodes))
        per_10k = false / (normal_events / 10_000)
        print(f"| {detector} | {caught} of {len(live)} | {false} | {per_10k:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
